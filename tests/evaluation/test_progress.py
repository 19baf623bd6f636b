"""Progress of evaluations and exports: a log line per finished corruption / perturbation; real subcommand help."""

from __future__ import annotations

import logging
import re

import pytest
import torch
from torch.utils.data import Dataset

from robust_train.cli.corrupt import main as corrupt_main
from robust_train.evaluation import EvalSuite
from robust_train.evaluation import engine as E
from robust_train.evaluation import progress as P
from robust_train.evaluation.export import export_dataset
from tests.evaluation._toy import ToyNet, ToySet, toy_forward

NAMES = ["contrast", "gaussian_noise", "fog"]
LINE = re.compile(r"toy: (\w+) \((\d)/3\) error (\d+\.\d\d)% on 12 images, [\d.]+ s \(elapsed [\d.]+ s\)")


class PairSet(Dataset):
    """The toy images as ``(x, y)`` pairs (no index): the index is the position."""

    def __init__(self, base: ToySet) -> None:
        self.base = base

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int):
        return self.base.x[i], self.base.y[i]


def test_a_log_line_per_corruption_with_its_error(caplog: pytest.LogCaptureFixture) -> None:
    suite = EvalSuite(name="toy", corruptions=NAMES, severities=[1, 5], num_images=12, seed=5, batch_size=5)
    with caplog.at_level(logging.INFO, logger="robust_train.evaluation"):
        metric = E.evaluate_suite(toy_forward(ToyNet()), ToySet(), suite)
    lines = [r.getMessage() for r in caplog.records if r.name == "robust_train.evaluation"]
    assert len(lines) == 3, lines
    result = metric.compute()
    for k, (line, name) in enumerate(zip(lines, NAMES, strict=True)):
        m = LINE.fullmatch(line)
        assert m is not None, line
        assert m.group(1) == name and int(m.group(2)) == k + 1
        # the logged error is the corruption's mean error over its severities
        assert float(m.group(3)) == pytest.approx(100 * float(result["error"][k].mean()), abs=0.006)


def test_perturbation_lines(caplog: pytest.LogCaptureFixture) -> None:
    suite = EvalSuite(
        name="ptoy", kind="p", corruptions=["gaussian_noise", "brightness"], num_images=4, seed=1, baseline=None
    )
    with caplog.at_level(logging.INFO, logger="robust_train.evaluation"):
        E.evaluate_suite(toy_forward(ToyNet()), ToySet(), suite)
    lines = [r.getMessage() for r in caplog.records if r.name == "robust_train.evaluation"]
    assert [line.split(" (")[0] for line in lines] == ["ptoy: gaussian_noise", "ptoy: brightness"]
    assert all("flip probability" in line for line in lines)


def test_pairs_dataset_equals_indexed_dataset() -> None:
    base = ToySet()
    suite = EvalSuite(name="toy", corruptions=NAMES, severities=[2], num_images=12, seed=5)
    fwd = toy_forward(ToyNet())

    class PositionIndexed(Dataset):
        def __len__(self) -> int:
            return len(base)

        def __getitem__(self, i: int):
            return base.x[i], base.y[i], i

    a = E.evaluate_suite(fwd, PairSet(base), suite).compute()
    b = E.evaluate_suite(fwd, PositionIndexed(), suite).compute()
    assert torch.equal(a["error"], b["error"])
    with pytest.raises(ValueError, match=r"must yield \(x, y\) or \(x, y, index\), got Tensor"):

        class Bad(Dataset):
            def __len__(self) -> int:
                return 4

            def __getitem__(self, i: int):
                return base.x[i]

        E.evaluate_suite(fwd, Bad(), suite)


def test_chunks_give_the_same_numbers(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    suite = EvalSuite(name="toy", corruptions=NAMES, severities=[1, 5], num_images=12, seed=5, batch_size=5)
    fwd = toy_forward(ToyNet())
    whole = E.evaluate_suite(fwd, ToySet(), suite).compute()
    monkeypatch.setattr(E, "CHUNK_BYTES", 1)  # one batch per chunk
    with caplog.at_level(logging.INFO, logger="robust_train.evaluation"):
        chunked = E.evaluate_suite(fwd, ToySet(), suite).compute()
    assert torch.equal(whole["error"], chunked["error"])
    lines = [r.getMessage() for r in caplog.records if r.name == "robust_train.evaluation"]
    assert len(lines) == 9 and "so far (images read: 5 of 12)" in lines[0] and "so far" not in lines[-1]


def test_export_logs_each_corruption(tmp_path, caplog: pytest.LogCaptureFixture) -> None:
    suite = EvalSuite(name="toy", corruptions=["contrast", "fog"], severities=[1, 2, 3, 4, 5], num_images=6)
    with caplog.at_level(logging.INFO, logger="robust_train.evaluation"):
        export_dataset(PairSet(ToySet()), tmp_path, suite, layout="cifar_c")
    lines = [r.getMessage() for r in caplog.records if r.name == "robust_train.evaluation"]
    assert [line.split(":")[1].strip() for line in lines] == ["contrast", "fog"]
    assert "30 images written to contrast.npy" in lines[0]


def test_no_bar_without_a_terminal_and_a_bar_with_one(monkeypatch: pytest.MonkeyPatch) -> None:
    rep = P.ProgressReporter(10, "x")
    assert rep._bar is None  # pytest captures stderr: not a terminal
    monkeypatch.setattr(P, "interactive", lambda: True)
    with P.ProgressReporter(10, "x") as rep:
        assert rep._bar is not None
        rep.advance(5, "half")
        with P.ProgressReporter(10, "nested") as inner:  # a second live display (Lightning's bar): never an error
            inner.advance(3)
    assert rep._bar is None
    monkeypatch.setenv("ROBUST_TRAIN_PROGRESS", "0")
    monkeypatch.undo()
    assert P.format_seconds(59.94) == "59.9 s"


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        ("preview", ["--out", "--corruptions", "--severities", "image"]),
        ("export", ["--suite", "--layout"]),
        ("list", ["--pattern"]),
    ],
)
def test_every_subcommand_has_its_help(command: str, expected: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        corrupt_main([command, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: robust-corrupt {command}")
    for flag in expected:
        assert flag in out
    assert "rest" not in out.split()
