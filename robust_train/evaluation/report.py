"""Reports of an evaluation: JSON / CSV files, a rich table, and plots (error vs severity, CE bars vs AlexNet).

Headline number: the AlexNet-normalised mCE is an ImageNet-C quantity, meaningful only for ImageNet models; for any
other data (CIFAR, Fashion-MNIST, ...) the reports headline the unnormalised mean corruption error (the number
CIFAR-10-C papers report) and show the mCE second (:func:`headline`). Subset estimates come with a standard error:
``sqrt(p (1 - p) / n)`` for an error ``p`` over ``n`` images, and for the mean corruption error the mean of its cells'
standard errors, an upper bound (the cells share the same images, so their errors are positively correlated).
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ..metrics.baselines import Baseline
from ..metrics.corruption_error import CorruptionErrors
from ..metrics.stability import PerturbationStability
from ._io import atomic_write_text
from .suite import EvalSuite

__all__ = [
    "headline",
    "plot_ce_bars",
    "plot_error_vs_severity",
    "print_table",
    "result_table",
    "standard_error",
    "to_baseline",
    "write_reports",
]


def _f(v: Any) -> float | None:
    v = float(v)
    return None if math.isnan(v) else v


def standard_error(p: float, n: int) -> float:
    """Standard error of an error rate ``p`` measured on ``n`` images: ``sqrt(p (1 - p) / n)``.

    Example:
        >>> round(standard_error(0.5, 100), 3)
        0.05
    """
    if n <= 0:
        raise ValueError(f"n must be positive, got {n}")
    return math.sqrt(max(p * (1.0 - p), 0.0) / n)


def headline(table: Mapping[str, Any], imagenet: bool) -> str:
    """The one-line summary of a corruption result, led by the number that means something for the data.

    Args:
        table: from :func:`result_table`.
        imagenet: the evaluated images are ImageNet's (the AlexNet-normalised mCE is then the headline).

    Example:
        >>> headline({"summary": {"mean_error": 0.429, "mce": 0.589, "mean_error_se": 0.011, "num_images": 200}}, False)
        'mean corruption error 42.9% +- 1.1 (200 images); mCE 58.9% (AlexNet-normalised: meaningful for ImageNet only)'
    """
    s = table.get("summary", {})
    n = f" ({s['num_images']} images)" if s.get("num_images") else ""
    mean = None
    if s.get("mean_error") is not None:
        se = f" +- {100 * s['mean_error_se']:.1f}" if s.get("mean_error_se") is not None else ""
        mean = f"mean corruption error {100 * s['mean_error']:.1f}%{se}{n}"
    mce = f"mCE {100 * s['mce']:.1f}%" if s.get("mce") is not None else None
    if imagenet and mce:
        return "; ".join(x for x in (f"{mce} (AlexNet-normalised)", mean) if x)
    if mce:
        mce += " (AlexNet-normalised: meaningful for ImageNet only)"
    return "; ".join(x for x in (mean, mce) if x)


def result_table(
    metric: CorruptionErrors | PerturbationStability,
    result: Mapping[str, Tensor],
    num_images: int | None = None,
) -> dict[str, Any]:
    """A JSON-ready nested description of a computed result (per name rows plus the summary numbers).

    Args:
        metric: the metric the result came from.
        result: ``metric.compute()``.
        num_images: images per cell (the suite's subset over all processes); adds ``num_images`` and the standard
            errors ``clean_error_se`` / ``mean_error_se`` (see the module docstring) to the summary.
    """
    out: dict[str, Any] = {"rows": {}, "summary": {}}
    if isinstance(metric, CorruptionErrors):
        c, s = len(metric.corruptions), len(metric.severities)
        err = result["error"].reshape(c, s)
        ce = result["ce"].reshape(c) if "ce" in result else None
        rel = result["relative_ce"].reshape(c) if "relative_ce" in result else None
        for i, name in enumerate(metric.corruptions):
            row: dict[str, Any] = {f"s{sv}": _f(err[i, j]) for j, sv in enumerate(metric.severities)}
            row["mean"] = _f(err[i].mean())
            if ce is not None:
                row["ce"] = _f(ce[i])
            if rel is not None:
                row["relative_ce"] = _f(rel[i])
            out["rows"][name] = row
        for key in ("mce", "mean_error", "relative_mce", "clean_error"):
            if key in result:
                out["summary"][key] = _f(result[key])
        if num_images:
            out["summary"]["num_images"] = int(num_images)
            if "clean_error" in result:
                out["summary"]["clean_error_se"] = standard_error(float(result["clean_error"]), num_images)
            rows = [metric.corruptions.index(c) for c in metric.mce_corruptions]
            cells = [standard_error(float(p), num_images) for p in err[rows].flatten() if not math.isnan(float(p))]
            if cells:
                out["summary"]["mean_error_se"] = sum(cells) / len(cells)
        out["summary"]["mce_corruptions"] = list(metric.mce_corruptions)
        out["severities"] = list(metric.severities)
    else:
        p = len(metric.perturbations)
        for i, name in enumerate(metric.perturbations):
            out["rows"][name] = {
                k: _f(result[k].reshape(p)[i]) for k in ("fp", "t5d", "zipf", "fr", "t5d_ratio") if k in result
            }
        for key in ("mean_fp", "mean_t5d", "mfr", "mt5d"):
            if key in result:
                out["summary"][key] = _f(result[key])
        out["difficulty"] = metric.difficulty
    return out


def to_baseline(
    name: str, metric: CorruptionErrors | PerturbationStability, result: Mapping[str, Tensor], meta: dict[str, Any]
) -> Baseline:
    """A :class:`Baseline` holding this evaluation's numbers (save it to normalise other models with)."""
    table = result_table(metric, result)
    if isinstance(metric, CorruptionErrors):
        errors = {
            c: {s: row[f"s{s}"] for s in metric.severities if row[f"s{s}"] is not None}
            for c, row in table["rows"].items()
        }
        return Baseline(name, errors=errors, clean_error=table["summary"].get("clean_error"), meta=meta)
    return Baseline(
        name,
        fp={p: row["fp"] for p, row in table["rows"].items()},
        t5d={p: row["t5d"] for p, row in table["rows"].items()},
        difficulty=metric.difficulty,
        meta=meta,
    )


def write_reports(
    out_dir: str | os.PathLike[str],
    suite: EvalSuite,
    metric: CorruptionErrors | PerturbationStability,
    result: Mapping[str, Tensor],
    extra: Mapping[str, Any] | None = None,
    plots: bool = True,
    stem: str | None = None,
    num_images: int | None = None,
    imagenet: bool = False,
) -> dict[str, Path]:
    """Write ``<stem>.json``, ``<stem>.csv`` and the plots into ``out_dir``; returns the written paths.

    ``num_images`` adds standard errors (:func:`result_table`); ``imagenet`` selects the headline (:func:`headline`).
    """
    out = Path(out_dir)
    stem = stem or suite.name
    table = result_table(metric, result, num_images)
    if isinstance(metric, CorruptionErrors):
        table["summary"]["headline"] = headline(table, imagenet)
    doc = {"suite": suite.to_dict(), **table, **(dict(extra) if extra else {})}
    paths = {"json": out / f"{stem}.json", "csv": out / f"{stem}.csv"}
    atomic_write_text(paths["json"], json.dumps(doc, indent=2, sort_keys=True, default=str))
    cols = sorted({k for row in table["rows"].values() for k in row}, key=_column_order)
    lines: list[list[Any]] = [["name", *cols]]
    lines += [[name, *(row.get(c) for c in cols)] for name, row in table["rows"].items()]
    lines += [[f"summary/{k}", v] for k, v in table["summary"].items() if not isinstance(v, (list, str))]
    import io

    buf = io.StringIO()
    csv.writer(buf).writerows(lines)
    atomic_write_text(paths["csv"], buf.getvalue())
    if plots and isinstance(metric, CorruptionErrors):
        paths["severity_plot"] = plot_error_vs_severity(table, out / f"{stem}_error_vs_severity.png", suite.name)
        if metric.baseline is not None:
            paths["ce_plot"] = plot_ce_bars(
                table, metric.baseline, out / f"{stem}_vs_{metric.baseline.name}.png", imagenet=imagenet
            )
    return paths


def _column_order(c: str) -> tuple[int, str]:
    order = ["s1", "s2", "s3", "s4", "s5", "mean", "ce", "relative_ce", "fp", "t5d", "zipf", "fr", "t5d_ratio"]
    return (order.index(c) if c in order else len(order), c)


def _pyplot():  # noqa: ANN202
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def plot_error_vs_severity(table: Mapping[str, Any], path: str | os.PathLike[str], title: str = "") -> Path:
    """Top-1 error against severity, one line per corruption (PNG)."""
    plt = _pyplot()
    sev = table["severities"]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    cmap = plt.get_cmap("tab20")
    for i, (name, row) in enumerate(table["rows"].items()):
        ys = [row[f"s{s}"] for s in sev]
        style = ("-", "--", ":")[(i // 20) % 3]
        ax.plot(
            sev,
            [math.nan if y is None else 100 * y for y in ys],
            marker="o",
            label=name,
            color=cmap(i % 20),
            linestyle=style,
        )
    clean = table["summary"].get("clean_error")
    if clean is not None:
        ax.axhline(100 * clean, color="k", linestyle="--", linewidth=1, label="clean")
    ax.set_xlabel("severity")
    ax.set_ylabel("top-1 error (%)")
    ax.set_xticks(sev)
    ax.set_title(title)
    ax.legend(fontsize=7, ncol=2, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_ce_bars(
    table: Mapping[str, Any], baseline: Baseline, path: str | os.PathLike[str], imagenet: bool = False
) -> Path:
    """Mean error per corruption next to the baseline's (AlexNet) mean error over the same severities (PNG).

    The title is :func:`headline` (the mCE first only for ImageNet data).
    """
    plt = _pyplot()
    sev = table["severities"]
    names = [n for n in table["rows"] if n in baseline.errors]
    ours = [100 * (table["rows"][n]["mean"] or math.nan) for n in names]
    base = [100 * float(torch.tensor([baseline.errors[n][s] for s in sev]).mean()) for n in names]
    fig, ax = plt.subplots(figsize=(max(6, 0.55 * len(names)), 4.5))
    pos = torch.arange(len(names)).float()
    ax.bar((pos - 0.2).tolist(), ours, width=0.4, label="model")
    ax.bar((pos + 0.2).tolist(), base, width=0.4, label=baseline.name)
    ax.set_xticks(pos.tolist())
    ax.set_xticklabels(names, rotation=60, ha="right", fontsize=8)
    ax.set_ylabel("mean top-1 error (%)")
    ax.set_title(headline(table, imagenet), fontsize=9)
    ax.legend()
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def print_table(table: Mapping[str, Any], title: str = "", imagenet: bool = False) -> str:
    """Print the result as a rich table, then its :func:`headline` (corruptions) and summary; returns the text."""
    from rich.console import Console
    from rich.table import Table

    rows = table["rows"]
    cols = sorted({k for row in rows.values() for k in row}, key=_column_order)
    t = Table(title=title)
    t.add_column("name")
    for c in cols:
        t.add_column(c, justify="right")
    for name, row in rows.items():
        t.add_row(name, *(_fmt(c, row.get(c)) for c in cols))
    summary = ", ".join(
        f"{k} {_fmt(k, v)}"
        for k, v in table["summary"].items()
        if v is not None and not isinstance(v, (list, str)) and k != "num_images"
    )
    if "mean_error" in table["summary"]:
        summary = headline(table, imagenet) + "\n" + summary
    console = Console(width=160)
    with console.capture() as cap:
        console.print(t)
        console.print(summary)
    text = cap.get()
    print(text, end="")
    return text


def _fmt(key: str, v: Any) -> str:
    if v is None:
        return "-"
    if key in ("t5d", "zipf"):
        return f"{v:.3f}"
    return f"{100 * v:.1f}%"
