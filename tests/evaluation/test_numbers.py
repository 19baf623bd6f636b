"""Numbers that mean what they say: headline by dataset, standard errors of subset estimates, report columns."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from robust_train.callbacks import CorruptionEvalCallback
from robust_train.cli.report import Run, summary_rows
from robust_train.evaluation import EvalSuite
from robust_train.evaluation import engine as E
from robust_train.evaluation.report import headline, print_table, result_table, standard_error
from tests.evaluation._toy import ToyData, ToyModule, ToyNet, ToySet, toy_forward
from tests.evaluation.test_callbacks import C_SUITE, _trainer


def _result(num_images: int = 12):
    suite = EvalSuite(name="toy", corruptions=["contrast", "fog"], severities=[1, 5], num_images=num_images, seed=5)
    metric = E.evaluate_suite(toy_forward(ToyNet()), ToySet(), suite)
    return metric, metric.compute()


def test_standard_errors_of_the_subset() -> None:
    metric, result = _result()
    table = result_table(metric, result, num_images=12)["summary"]
    p = float(result["clean_error"])
    assert table["num_images"] == 12
    assert table["clean_error_se"] == pytest.approx(math.sqrt(p * (1 - p) / 12))
    cells = [math.sqrt(float(e) * (1 - float(e)) / 12) for e in result["error"].flatten()]
    assert table["mean_error_se"] == pytest.approx(sum(cells) / len(cells))
    assert "num_images" not in result_table(metric, result)["summary"]  # no size, no standard errors
    with pytest.raises(ValueError, match="n must be positive"):
        standard_error(0.1, 0)


def test_headline_is_the_unnormalised_error_unless_imagenet() -> None:
    metric, result = _result()
    table = result_table(metric, result, num_images=12)
    other, imagenet = headline(table, imagenet=False), headline(table, imagenet=True)
    assert other.startswith(f"mean corruption error {100 * float(result['mean_error']):.1f}% +- ")
    assert "mCE" in other and "meaningful for ImageNet only" in other
    assert imagenet.startswith(f"mCE {100 * float(result['mce']):.1f}% (AlexNet-normalised)")
    text = print_table(table, title="toy")
    assert "\nmean corruption error" in text


def test_callback_logs_standard_errors_and_headlines(tmp_path: Path) -> None:
    cb = CorruptionEvalCallback(EvalSuite(**C_SUITE), output_dir=str(tmp_path / "out"))
    trainer = _trainer(tmp_path, [cb])
    trainer.validate(ToyModule(), datamodule=ToyData())
    m = trainer.callback_metrics
    n = int(m["val/c_num_images"])
    assert n == C_SUITE["num_images"]
    p = float(m["val/clean_err"])
    assert float(m["val/clean_err_se"]) == pytest.approx(math.sqrt(p * (1 - p) / n), rel=1e-6)
    assert 0 < float(m["val/mce_unnorm_se"]) < 0.5
    summary = json.loads((tmp_path / "out" / "val_epoch000.json").read_text())["summary"]
    assert summary["headline"].startswith("mean corruption error")  # 16 px toy images: not ImageNet


def test_report_puts_same_image_clean_error_next_to_relative_numbers() -> None:
    metrics = {
        "test/acc": 0.9,  # every test image
        "test/clean_err": 0.12,  # the 200 images of the corruption evaluation
        "test/clean_err_se": 0.023,
        "test/c_num_images": 200.0,
        "test/mce_unnorm": 0.4,
        "test/mce_unnorm_se": 0.03,
        "test/rel_mce": 0.8,
        "test/mce": 0.55,
    }
    cols, rows = summary_rows([Run(Path("a"), "a", metrics=metrics)])
    assert cols == [
        "run",
        "clean_err",
        "c_images",
        "clean_err_c",
        "clean_err_c_se",
        "mce_unnorm",
        "mce_unnorm_se",
        "rel_mce",
        "mce",
    ]
    row = rows[0]
    assert row["clean_err"] == pytest.approx(10.0) and row["clean_err_c"] == pytest.approx(12.0)
    assert row["c_images"] == 200 and row["mce_unnorm_se"] == pytest.approx(3.0)
