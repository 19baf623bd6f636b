"""The severity tables written in the class docstrings equal the ``SeverityTable`` the code uses (issue #10)."""

from __future__ import annotations

import re

import pytest
import torch

import robust_train as rt
from robust_train.corruptions import CORRUPTIONS
from robust_train.corruptions.base import PRESETS


def _numbers(cell: str) -> list[float]:
    """The table values of one cell: ``0.6 (134)`` -> [0.6] (bracketed sizes are notes), ``(488, 170.8, 24.4)``,
    ``arange(1, 1.11, 0.01): 12`` -> [0.01, 12] (zoom blur's (step, count))."""
    m = re.fullmatch(r"arange\(1, [\d.]+, ([\d.]+)\): (\d+)", cell)
    if m:
        return [float(m.group(1)), float(m.group(2))]
    cell = re.sub(r"(?<=\d) \(\d+\)$", "", cell)
    return [float(v) for v in re.findall(r"-?\d+(?:\.\d+)?(?:e-?\d+)?", cell)]


def _doc_table(doc: str) -> dict[str, list[list[float]]]:
    """Rows 1-5 of the reST severity table in ``doc``: preset -> five rows of numbers."""
    lines = doc.splitlines()
    head = next(i for i, line in enumerate(lines) if re.match(r"\s*s\s+imagenet\b.*cifar", line))
    columns = [[p for p in PRESETS if re.search(rf"\b{p}\b", h)] for h in re.split(r"\s{2,}", lines[head].strip())[1:]]
    rows: dict[str, list[list[float]]] = {p: [] for p in PRESETS}
    for k, line in enumerate(lines[head + 2 : head + 7], start=1):
        cells = re.split(r"\s{2,}|(?<=\))\s+(?=\()", line.strip())
        assert cells[0] == str(k), line
        assert len(cells) == len(columns) + 1, line
        for presets, cell in zip(columns, cells[1:], strict=True):
            for preset in presets:
                rows[preset].append(_numbers(cell))
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
