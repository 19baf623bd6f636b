"""The severity tables written in the class docstrings equal the ``SeverityTable`` the code uses (issue #10)."""

from __future__ import annotations

import re

import pytest
import torch

import robust_train as rt
from robust_train.corruptions import CORRUPTIONS
from robust_train.corruptions.base import PRESETS


def _doc_table(doc: str) -> dict[str, list[list[float]]]:
    """Rows 1-5 of the reST severity table in ``doc``: preset -> five rows of numbers."""
    lines = doc.splitlines()
    head = next(i for i, line in enumerate(lines) if re.match(r"\s*s\s+imagenet\s+tinyimagenet\s+cifar\s*$", line))
    rows: dict[str, list[list[float]]] = {p: [] for p in PRESETS}
    for line in lines[head + 2 : head + 7]:
        cells = re.split(r"\s{2,}|(?<=\))\s+", line.strip())
        assert cells[0] == str(len(rows["imagenet"]) + 1), line
        for preset, cell in zip(PRESETS, cells[1:4], strict=True):
            rows[preset].append([float(v) for v in re.findall(r"-?\d+(?:\.\d+)?(?:e-?\d+)?", cell)])
    return rows


@pytest.mark.parametrize("name", rt.list_corruptions("c19"))
def test_docstring_table_equals_severity_table(name: str) -> None:
    cls = CORRUPTIONS.get(name)
    doc = _doc_table(cls.__doc__)
    for preset in PRESETS:
        want = cls.table.values(preset)
        got = torch.tensor(doc[preset], dtype=torch.float64)
        assert got.shape == want.shape, (preset, got.shape, want.shape)
        torch.testing.assert_close(got, want, rtol=0, atol=1e-9, msg=lambda m, p=preset: f"{name} {p}: {m}")
