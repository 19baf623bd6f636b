"""``robust-report``: runs of a multirun folder -> markdown / CSV / PNG comparison."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from robust_train.cli import report


def _run(root: Path, job: str, overrides: list[str], rows: list[dict[str, object]], tags: list[str]) -> Path:
    d = root / job
    (d / ".hydra").mkdir(parents=True)
    (d / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    (d / ".hydra" / "config.yaml").write_text(f"tags: {json.dumps(tags)}\nseed: 0\n")
    m = d / "csv" / "version_0"
    m.mkdir(parents=True)
    keys = sorted({k for r in rows for k in r})
    with (m / "metrics.csv").open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=keys)
        w.writeheader()
        w.writerows(rows)
    return d


@pytest.fixture
def multirun(tmp_path: Path) -> Path:
    root = tmp_path / "multirun"
    _run(
        root,
        "0",
        ["experiment=fmnist_ablation_baseline", "hydra.job.chdir=false"],
        [
            {"epoch": 0, "step": 10, "val/acc": 0.8},
            {"epoch": 1, "step": 20, "val/acc": 0.85},
            {
                "epoch": 1,
                "step": 20,
                "test/acc": 0.9,
                "test/mce_unnorm": 0.4,
                "test/c/fog/err": 0.5,
                "test/c/contrast/err": 0.3,
            },
        ],
        ["fmnist_ablation", "baseline"],
    )
    d = _run(
        root,
        "1",
        ["experiment=fmnist_ablation_augmix_jsd"],
        [{"epoch": 1, "step": 20, "test/acc": 0.88, "test/mce_unnorm": 0.3, "test/c/fog/err": 0.35}],
        ["fmnist_ablation", "augmix_jsd"],
    )
    ev = d / "csv" / "version_0" / "c15_fast"
    ev.mkdir()
    (ev / "test.json").write_text(json.dumps({"summary": {"mfr": 0.12, "mean_error": 0.99}, "rows": {}}))
    (root / "multirun.yaml").write_text("hydra: {}\n")
    return root


def test_collect_and_summarise(multirun):
    runs = report.collect_runs(multirun)
    assert [r.name for r in runs] == ["experiment=fmnist_ablation_baseline", "experiment=fmnist_ablation_augmix_jsd"]
    assert runs[1].tags == ["fmnist_ablation", "augmix_jsd"]
    assert runs[0].metrics["val/acc"] == 0.85  # last value of a column wins
    cols, rows = report.summary_rows(runs)
    assert cols == ["run", "clean_err", "mce_unnorm", "mfr"]
    assert rows[0]["clean_err"] == pytest.approx(10.0) and rows[1]["clean_err"] == pytest.approx(12.0)
    assert rows[0]["mce_unnorm"] == pytest.approx(40.0)
    assert rows[1]["mce_unnorm"] == pytest.approx(30.0)  # the CSV value wins over the JSON summary
    assert rows[1]["mfr"] == pytest.approx(12.0) and rows[0]["mfr"] is None  # JSON fills what the CSV lacks
    ccols, crows = report.corruption_rows(runs)
    assert ccols == ["run", "fog", "contrast"] and crows[1]["contrast"] is None


def test_write_report_files(multirun, tmp_path):
    out = tmp_path / "out"
    paths = report.write_report(report.collect_runs(multirun), out)
    md = paths["markdown"].read_text()
    assert "| fmnist_ablation_baseline | 10.00 | 40.00 | - |" in md  # experiment= shown by its name
    assert "## Mean error per corruption" in md
    rows = list(csv.reader(paths["csv"].open()))
    assert rows[0] == ["run", "clean_err", "mce_unnorm", "mfr"] and len(rows) == 3
    for key in ("plot", "corruption_plot"):
        assert paths[key].stat().st_size > 1000 and paths[key].read_bytes()[:4] == b"\x89PNG"


def test_val_stage_and_plain_csv_logger_dirs(tmp_path):
    m = tmp_path / "run_a" / "csv" / "version_0"
    m.mkdir(parents=True)
    (m / "metrics.csv").write_text("epoch,step,val/acc,val/mce_unnorm\n0,5,0.7,0.5\n")
    runs = report.collect_runs(tmp_path, stage="val")
    assert [r.name for r in runs] == ["run_a"]
    cols, rows = report.summary_rows(runs, stage="val")
    assert rows[0]["clean_err"] == pytest.approx(30.0) and rows[0]["mce_unnorm"] == pytest.approx(50.0)


def test_main_and_errors(multirun, tmp_path, capsys):
    assert report.main([str(multirun), "--out", str(tmp_path / "o")]) == 0
    assert "fmnist_ablation_augmix_jsd" in capsys.readouterr().out
    assert report.main([str(tmp_path / "missing")]) == 2
    assert "is not a directory" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert report.main([str(tmp_path / "empty")]) == 2
    assert "no runs" in capsys.readouterr().err


def test_short_labels_drop_shared_overrides():
    labels, common = report.short_labels(
        ["experiment=a trainer.max_epochs=2 threads=2", "experiment=b trainer.max_epochs=2 threads=2 seed=1"]
    )
    assert labels == ["a", "b seed=1"] and common == ["trainer.max_epochs=2", "threads=2"]
    assert report.short_labels(["x=1", "x=1"]) == (["x=1", "x=1"], ["x=1"])  # nothing of its own: full name
    assert report.short_labels(["experiment=solo y=2"]) == (["solo y=2"], [])
