"""``robust-report RUN_DIR``: compare the runs of a (multi)run directory in one table, a CSV and plots.

A run is any directory below ``RUN_DIR`` that holds a ``.hydra/config.yaml`` (a Hydra job) or, failing that, a
Lightning ``metrics.csv``. For every run the report reads

* the metrics the loggers wrote (every ``metrics.csv`` below the run: the CSV logger's sparse table, last value of
  each column wins), and
* the JSON summaries of the evaluation callbacks (``test.json`` files with a ``summary`` block) for numbers the CSV
  lacks,

and names the run after its Hydra overrides (``experiment=fmnist_ablation_alp``) or its folder. Columns, all in %
and for the chosen stage (``test`` by default):

=============  ===============================================================================================
clean_err      ``100 (1 - <stage>/acc)``: clean error on every image of the stage's set
c_images       ``<stage>/c_num_images``: images of the corruption evaluation (a seeded subset for ``*_fast``)
clean_err_c    ``<stage>/clean_err``: clean error on exactly those images (what the relative numbers use)
clean_err_c_se its standard error ``sqrt(p (1 - p) / n)``
mce_unnorm     ``<stage>/mce_unnorm``: the unnormalised mean corruption error (CIFAR-10-C papers' number; the
               headline for non-ImageNet data)
mce_unnorm_se  its standard error (upper bound: mean of the cells' standard errors, the cells share the images)
rel_mce        ``<stage>/rel_mce``: relative mCE, from the corrupted and clean errors of the same images
mce            ``<stage>/mce``: CE normalised by the suite's baseline (AlexNet on ImageNet-C), averaged over
               corruptions: meaningful for ImageNet models only
mfr, mt5d      ``<stage>/mfr``, ``<stage>/mt5d`` (ImageNet-P style stability; ``mfp`` when not normalised)
ece, rms       calibration errors when a run logged them (``<stage>/ece``, ``<stage>/rms_calib``)
=============  ===============================================================================================

A column appears only when at least one run has it. Per-corruption errors (``<stage>/c/<name>/err``) go into a second
table. Outputs (next to ``RUN_DIR`` unless ``--out``): ``report.md``, ``report.csv``, ``report.png`` (clean error,
mCE and mFR per run) and ``report_corruptions.png`` (per-corruption errors, grouped by run).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import report_user_error
from . import user_error_types

__all__ = ["COLUMNS", "Run", "collect_runs", "main", "summary_rows", "write_report"]

#: (column, candidate metric keys without the stage prefix, transform) in display order.
COLUMNS: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("clean_err", ("acc",), "err"),
    ("c_images", ("c_num_images",), "count"),
    ("clean_err_c", ("clean_err",), "pct"),
    ("clean_err_c_se", ("clean_err_se",), "pct"),
    ("mce_unnorm", ("mce_unnorm",), "pct"),
    ("mce_unnorm_se", ("mce_unnorm_se",), "pct"),
    ("rel_mce", ("rel_mce",), "pct"),
    ("mce", ("mce",), "pct"),
    ("mfr", ("mfr",), "pct"),
    ("mt5d", ("mt5d",), "pct"),
    ("mfp", ("mfp",), "pct"),
    ("ece", ("ece", "calib/ece"), "pct"),
    ("rms_calib", ("rms_calib", "calib/rms", "rms_calibration_error"), "pct"),
)


@dataclass
class Run:
    """One run: its folder, display name, tags and the last value of every logged metric."""

    path: Path
    name: str
    tags: list[str] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)


def _read_metrics_csv(path: Path) -> dict[str, float]:
    out: dict[str, float] = {}
    with path.open(newline="") as fh:
        for row in csv.DictReader(fh):
            for k, v in row.items():
                if k is None or v in (None, ""):
                    continue
                try:
                    out[k] = float(v)
                except ValueError:
                    continue
    return out


def _read_json_summaries(run_dir: Path, stage: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for p in sorted(run_dir.rglob(f"{stage}.json")):
        try:
            doc = json.loads(p.read_text())
        except (OSError, ValueError):
            continue
        summary = doc.get("summary", {}) if isinstance(doc, dict) else {}
        aliases = {
            "mean_error": "mce_unnorm",
            "relative_mce": "rel_mce",
            "clean_error": "clean_err",
            "num_images": "c_num_images",
            "mean_error_se": "mce_unnorm_se",
            "clean_error_se": "clean_err_se",
        }
        for k, v in summary.items():
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                out[f"{stage}/{aliases.get(k, k)}"] = float(v)
        for name, row in (doc.get("rows", {}) or {}).items():
            if isinstance(row, dict) and isinstance(row.get("mean"), (int, float)):
                out.setdefault(f"{stage}/c/{name}/err", float(row["mean"]))
    return out


def _run_name(run_dir: Path, root: Path) -> tuple[str, list[str]]:
    tags: list[str] = []
    overrides = run_dir / ".hydra" / "overrides.yaml"
    name = str(run_dir.relative_to(root)) if run_dir != root else run_dir.name
    try:
        import yaml

        if overrides.is_file():
            items = [str(o) for o in (yaml.safe_load(overrides.read_text()) or [])]
            keep = [o for o in items if not o.split("=")[0].lstrip("+~").startswith(("hydra", "paths", "trainer.fast"))]
            if keep:
                name = " ".join(keep)
        cfg_file = run_dir / ".hydra" / "config.yaml"
        if cfg_file.is_file():
            cfg = yaml.safe_load(cfg_file.read_text()) or {}
            tags = [str(t) for t in (cfg.get("tags") or [])]
    except Exception:  # noqa: BLE001 - a broken YAML must not hide the other runs
        pass
    return name, tags


def collect_runs(run_dir: str | Path, stage: str = "test") -> list[Run]:
    """Find the runs below ``run_dir`` and read their metrics.

    Args:
        run_dir: a Hydra multirun folder (``logs/train/multiruns/<date>``), a single run folder, or any parent.
        stage: metric prefix that JSON summaries fill in (``test`` or ``val``).

    Returns:
        Runs sorted by folder; runs without any metric are dropped.

    Raises:
        FileNotFoundError: ``run_dir`` does not exist.
    """
    root = Path(run_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"RUN_DIR '{root}' is not a directory")
    hydra_runs = sorted({p.parent.parent for p in root.rglob(".hydra/config.yaml")})
    if hydra_runs:
        dirs = hydra_runs
    else:
        dirs = sorted({p.parent for p in root.rglob("metrics.csv")})
        # a CSV logger writes <run>/csv/version_k/metrics.csv: group by the folder above csv/
        dirs = sorted({d.parent.parent if d.parent.name == "csv" else d for d in dirs})
    runs = []
    for d in dirs:
        metrics: dict[str, float] = {}
        for csv_path in sorted(d.rglob("metrics.csv")):
            metrics.update(_read_metrics_csv(csv_path))
        for k, v in _read_json_summaries(d, stage).items():
            metrics.setdefault(k, v)
        if not metrics:
            continue
        name, tags = _run_name(d, root)
        runs.append(Run(d, name, tags, metrics))
    return runs


def _value(run: Run, stage: str, keys: tuple[str, ...], kind: str) -> float | None:
    for k in keys:
        v = run.metrics.get(f"{stage}/{k}")
        if v is None or math.isnan(v):
            continue
        if kind == "err":
            return 100.0 * (1.0 - v) if k == "acc" else 100.0 * v
        if kind == "count":
            return float(int(v))
        return 100.0 * v
    return None


def summary_rows(runs: Sequence[Run], stage: str = "test") -> tuple[list[str], list[dict[str, Any]]]:
    """Summary table: column names and one row per run (``run`` plus the columns some run has).

    Example:
        >>> r = Run(Path("a"), "augment=augmix", metrics={"test/acc": 0.9, "test/mce_unnorm": 0.25})
        >>> summary_rows([r])[0]
        ['run', 'clean_err', 'mce_unnorm']
    """
    rows: list[dict[str, Any]] = []
    for r in runs:
        row: dict[str, Any] = {"run": r.name}
        for col, keys, kind in COLUMNS:
            row[col] = _value(r, stage, keys, kind)
        rows.append(row)
    cols = ["run"] + [c for c, _, _ in COLUMNS if any(row[c] is not None for row in rows)]
    return cols, [{c: row[c] for c in cols} for row in rows]


def corruption_rows(runs: Sequence[Run], stage: str = "test") -> tuple[list[str], list[dict[str, Any]]]:
    """Per-corruption mean errors (%): columns ``run`` + corruption names (benchmark order, then alphabetical)."""
    from ..corruptions.suites import BENCHMARK_ORDER, EXTRA

    names: list[str] = []
    prefix = f"{stage}/c/"
    for r in runs:
        for k in r.metrics:
            if k.startswith(prefix) and k.endswith("/err") and k.count("/") == 3:
                n = k[len(prefix) : -len("/err")]
                if n not in names:
                    names.append(n)
    order = {n: i for i, n in enumerate(BENCHMARK_ORDER + EXTRA)}
    names.sort(key=lambda n: (order.get(n, len(order)), n))
    rows = []
    for r in runs:
        row: dict[str, Any] = {"run": r.name}
        for n in names:
            v = r.metrics.get(f"{prefix}{n}/err")
            row[n] = None if v is None else 100.0 * v
        rows.append(row)
    return ["run", *names], rows


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.2f}"
    return str(v).replace("|", "\\|")


def _markdown(cols: list[str], rows: list[dict[str, Any]]) -> str:
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(_fmt(row.get(c)) for c in cols) + " |" for row in rows]
    return "\n".join(lines)


def _csv_text(cols: list[str], rows: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(cols)
    for row in rows:
        w.writerow(["" if row.get(c) is None else row.get(c) for c in cols])
    return buf.getvalue()


def short_labels(names: Sequence[str]) -> tuple[list[str], list[str]]:
    """Run labels without the override tokens every run shares, and those shared tokens.

    ``experiment=NAME`` shows as ``NAME``; a run left with no token of its own keeps its full name.

    Example:
        >>> short_labels(["experiment=a epochs=2", "experiment=b epochs=2"])
        (['a', 'b'], ['epochs=2'])
    """
    tokens = [n.split() for n in names]
    common = [t for t in tokens[0] if all(t in ts for ts in tokens)] if len(names) > 1 else []
    labels = []
    for name, ts in zip(names, tokens, strict=True):
        own = [t.split("=", 1)[1] if t.startswith("experiment=") else t for t in ts if t not in common]
        labels.append(" ".join(own) or name)
    return labels, common


def _bar_plot(cols: list[str], rows: list[dict[str, Any]], path: Path, title: str) -> Path | None:
    series = [c for c in cols if c != "run"]
    if not series or not rows:
        return None
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    n = len(rows)
    width = 0.8 / n
    fig, ax = plt.subplots(figsize=(max(6.0, 1.2 * len(series) + 0.6 * n), 4.0))
    for i, row in enumerate(rows):
        xs = [j + (i - (n - 1) / 2) * width for j in range(len(series))]
        ys = [row.get(c) if row.get(c) is not None else float("nan") for c in series]
        ax.bar(xs, ys, width=width, label=row["run"])
    ax.set_xticks(range(len(series)))
    ax.set_xticklabels(series, rotation=30 if len(series) > 6 else 0, ha="right" if len(series) > 6 else "center")
    ax.set_ylabel("%")
    ax.set_title(title)
    # below the axes, so long run names never cover the bars
    ax.legend(fontsize="small", loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=min(n, 3), frameon=False)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path


def write_report(runs: Sequence[Run], out_dir: str | Path, stage: str = "test") -> dict[str, Path]:
    """Write ``report.md``, ``report.csv`` and the plots; returns the written paths.

    Raises:
        ValueError: no runs.
    """
    if not runs:
        raise ValueError("no runs with logged metrics to report")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cols, rows = summary_rows(runs, stage)
    ccols, crows = corruption_rows(runs, stage)
    labels, common = short_labels([r.name for r in runs])
    for table in (rows, crows):
        for row, label in zip(table, labels, strict=True):
            row["run"] = label
    md = [f"# Robustness report ({stage})", "", f"{len(runs)} runs. All numbers in %."]
    if common:
        md += ["", "Common to every run: `" + " ".join(common) + "`."]
    md += ["", _markdown(cols, rows)]
    if len(ccols) > 1:
        md += ["", "## Mean error per corruption", "", _markdown(ccols, crows)]
    paths = {"markdown": out / "report.md", "csv": out / "report.csv"}
    paths["markdown"].write_text("\n".join(md) + "\n")
    paths["csv"].write_text(_csv_text(cols, rows))
    main_cols = [c for c in cols if c in ("run", "clean_err", "clean_err_c", "mce_unnorm", "mfr", "ece")]
    p = _bar_plot(main_cols, rows, out / "report.png", f"clean and corruption error ({stage})")
    if p is not None:
        paths["plot"] = p
    if len(ccols) > 1:
        p = _bar_plot(ccols, crows, out / "report_corruptions.png", f"error per corruption ({stage})")
        if p is not None:
            paths["corruption_plot"] = p
    return paths


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``robust-report``."""
    parser = argparse.ArgumentParser(prog="robust-report", description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", help="multirun folder (e.g. logs/train/multiruns/<date>_<time>) or a run folder")
    parser.add_argument("--out", default=None, help="output folder (default: RUN_DIR)")
    parser.add_argument("--stage", default="test", choices=("test", "val"), help="which logged stage to compare")
    args = parser.parse_args(argv)
    try:
        runs = collect_runs(args.run_dir, args.stage)
        paths = write_report(runs, args.out or args.run_dir, args.stage)
    except (*user_error_types(), ValueError) as err:
        return report_user_error("robust-report", err)
    print(paths["markdown"].read_text())
    for kind, p in paths.items():
        print(f"{kind}: {p}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
