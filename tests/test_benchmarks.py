"""Smoke tests of ``benchmarks/``: the corruption benchmark's ``--quick`` run and the shared helpers.

No timing assertions: only structure (JSON ``{metadata, results}``, markdown tables), bookkeeping (ratio =
reference / ours, goal evaluation) and the measurement helpers' contracts.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import common  # noqa: E402
from benchmarks import corruptions as bench  # noqa: E402

from ._helpers import has_module  # noqa: E402

HAS_REFERENCE = all(has_module(m) for m in ("imagecorruptions", "cv2", "skimage", "scipy"))


def _registered(k: int = 2) -> list[str]:
    from robust_train.corruptions.suites import CORRUPTIONS, SUITES

    preferred = ["contrast", "gaussian_noise", "brightness", "saturate"]
    names = [n for n in preferred if n in CORRUPTIONS] + [n for n in SUITES["c19"] if n in CORRUPTIONS]
    names = list(dict.fromkeys(names))[:k]
    if not names:
        pytest.skip("no corruption registered yet")
    return names


def _run_quick(tmp_path: Path, k: int, *extra: str) -> tuple[dict, str, list[str], subprocess.CompletedProcess]:
    names = _registered(k)
    cmd = [
        sys.executable,
        "benchmarks/corruptions.py",
        "--quick",
        "--names",
        ",".join(names),
        "--sizes",
        "32",
        "--out",
        str(tmp_path),
        *extra,
    ]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    stems = sorted(p.name for p in tmp_path.iterdir())
    assert stems == ["corruptions_cpu_quick.json", "corruptions_cpu_quick.md"], stems
    data = json.loads((tmp_path / "corruptions_cpu_quick.json").read_text())
    md = (tmp_path / "corruptions_cpu_quick.md").read_text()
    return data, md, names, proc


def _check_common_structure(data: dict, md: str, names: list[str]) -> None:
    assert set(data) == {"metadata", "results"}
    meta = data["metadata"]
    for key in (
        "git_commit",
        "torch",
        "cuda",
        "device",
        "gpu_name",
        "cpu_model",
        "cpu_cores",
        "torch_threads",
        "allocator",
        "loadavg_start",
        "loadavg_end",
        "foreign_cpu",
        "foreign_cpu_before",
        "packages",
        "config",
        "date_utc",
        "command",
    ):
        assert key in meta, key
    assert meta["device"] == "cpu" and meta["gpu_name"] is None
    assert meta["torch_threads"] == common.cpu_cores() == meta["config"]["processes"]
    assert meta["config"]["names"] == names and meta["config"]["sizes"] == [32]
    res = data["results"]
    assert set(res) == {"rows", "summary", "goals"}
    rows = res["rows"]
    assert [(r["name"], r["size"], r["severity"]) for r in rows] == [(n, 32, 3) for n in names]
    for r in rows:
        assert r["in_table"] and r["batch"] == 4 and r["preset"] == "cifar"
        assert r["ours_ms"] > 0 and r["ours_iqr_ms"] >= 0 and r["ours"]["runs"] >= 1
        assert r["ours_faults_per_call"] >= 0 and r["ours_cpu_ms"] >= 0
        assert math.isclose(r["ours_ms"], r["ours"]["median_s"] / 4 * 1e3, rel_tol=1e-9)
    s = res["summary"]["32"]
    assert s["batch"] == 4 and s["suite_timed"] is False and s["suite_ratio"] is None
    # 224 px was not measured: every goal is N/A, never PASS
    assert [g["status"] for g in res["goals"]] == ["N/A"] * 3
    # markdown: title, goals table, one table row per corruption
    assert md.startswith("# Corruption benchmark (cpu)")
    assert "## Goals (issue 3, 224 px)" in md and "## 32 px, severity 3" in md
    header = next(ln for ln in md.splitlines() if ln.startswith("| corruption | s |"))
    n_cols = header.count("|") - 1
    for name in names:
        line = next(ln for ln in md.splitlines() if ln.startswith(f"| {name} | 3 |"))
        assert line.count("|") - 1 == n_cols


@pytest.mark.skipif(not HAS_REFERENCE, reason="needs imagecorruptions, cv2, scikit-image, scipy")
def test_corruptions_quick_with_reference(tmp_path: Path) -> None:
    data, md, names, proc = _run_quick(tmp_path, 1)
    _check_common_structure(data, md, names)
    meta, rows = data["metadata"], data["results"]["rows"]
    # fixed allocator: the script re-executed itself with the settings and recorded them
    alloc = meta["allocator"]
    assert alloc["mode"] == "fixed" and alloc["reexecuted"] is True
    for key, value in common.FIXED_MALLOC.items():
        assert alloc["env"][key] == value
    if alloc["libc"].startswith("glibc"):
        assert alloc["malloc_64MiB_uses_mmap"] is False
    assert meta["packages"]["imagecorruptions"] is not None
    for r in rows:
        assert r["status"] == "ok", r["status"]
        ref = r["reference"]
        assert ref["images"] == meta["config"]["ref_images"]["32"] and ref["images"] % ref["processes"] == 0
        assert r["ref_ms"] > 0 and ref["worker_s_per_image"] > 0
        assert math.isclose(r["ratio"], r["ref_ms"] / r["ours_ms"], rel_tol=1e-9)
        for side in ("ours", "reference"):
            mem = r["memory"][side]
            assert "error" not in mem, mem
            assert mem["peak_mb"] >= mem["baseline_mb"] > 0 and mem["extra_mb"] >= 0
        assert r["ours_peak_mb"] == r["memory"]["ours"]["extra_mb"]
    assert data["results"]["summary"]["32"]["geomean_ratio_table"] is not None
    assert "=== corruption benchmark summary ===" in proc.stdout and "[       N/A]" in proc.stdout
    assert "| ratio |" in md


def test_corruptions_quick_ours_only_default_allocator(tmp_path: Path) -> None:
    data, md, names, _ = _run_quick(tmp_path, 2, "--no-reference", "--no-memory", "--allocator", "default")
    _check_common_structure(data, md, names)
    alloc = data["metadata"]["allocator"]
    assert alloc["mode"] == "default"
    assert all(alloc["env"][k] is None for k in common.FIXED_MALLOC)
    for r in data["results"]["rows"]:
        assert r["reference"] is None and r["ratio"] is None and r["memory"] is None
    assert data["results"]["summary"]["32"]["geomean_ratio_table"] is None


# ---------------------------------------------------------------------------------------------------- helpers
def _args(**kw) -> SimpleNamespace:
    base = {"sizes": [224], "severities": [3], "suite": True, "batch": {224: 64}, "ref_images": {224: 8}}
    base.update(kw)
    return SimpleNamespace(**base)


def _rows(names: list[str], ratio, sevs=range(1, 6)) -> list[dict]:
    rows = []
    for n in names:
        for s in sevs:
            r = ratio(n, s)
            rows.append(
                {
                    "name": n,
                    "size": 224,
                    "severity": s,
                    "in_table": s == 3,
                    "ratio": r,
                    "ref_ms": None if r is None else 10.0 * r,
                    "ours_ms": None if r is None else 10.0,
                }
            )
    return rows


def test_goals_pass_fail_incomplete() -> None:
    from robust_train.corruptions.suites import SUITES

    c19 = list(SUITES["c19"])
    # every cell 30x: all three goals pass
    summary = bench.summarize(_rows(c19, lambda n, s: 30.0), c19, _args())
    assert summary["224"]["geomean_ratio_table"] == pytest.approx(30.0)
    assert summary["224"]["suite_ratio"] == pytest.approx(30.0) and summary["224"]["suite_complete"]
    assert [g["status"] for g in bench.evaluate_goals(summary, c19)] == ["PASS"] * 3
    # one cell slower than the reference: goal 1 fails and names it
    slow = bench.summarize(_rows(c19, lambda n, s: 0.5 if (n, s) == ("fog", 4) else 30.0), c19, _args())
    goals = bench.evaluate_goals(slow, c19)
    assert goals[0]["status"] == "FAIL" and "fog s4" in goals[0]["note"]
    assert slow["224"]["slower_than_reference"] == ["fog s4"]
    # suite ratio is total time / total time, not a mean of ratios
    mixed = bench.summarize(_rows(c19, lambda n, s: 400.0 if n == "contrast" else 3.0), c19, _args())
    expected = (18 * 5 * 30.0 + 5 * 4000.0) / (19 * 5 * 10.0)  # 23.9x although 18 of 19 corruptions are at 3x
    assert mixed["224"]["suite_ratio"] == pytest.approx(expected)
    assert [g["status"] for g in bench.evaluate_goals(mixed, c19)] == ["PASS", "FAIL", "PASS"]
    # a missing corruption: passing goals become INCOMPLETE, never PASS
    part = bench.summarize(_rows(c19, lambda n, s: None if n == "glass_blur" else 30.0), c19, _args())
    assert [g["status"] for g in bench.evaluate_goals(part, c19)] == ["INCOMPLETE"] * 3
    # part of the suite, slow: goal 1 fails for good, the aggregates are only INCOMPLETE
    part_slow = bench.summarize(_rows(c19, lambda n, s: None if n == "glass_blur" else 0.5), c19, _args())
    assert [g["status"] for g in bench.evaluate_goals(part_slow, c19)] == ["FAIL", "INCOMPLETE", "INCOMPLETE"]
    # suite not timed: N/A
    no_suite = bench.summarize(_rows(c19, lambda n, s: 30.0, sevs=[3]), c19, _args(suite=False))
    assert bench.evaluate_goals(no_suite, c19)[2]["status"] == "N/A"


def test_argument_parsing() -> None:
    args = bench.parse_args(["--sizes", "224,32", "--batch", "224:16", "--ref-images", "3", "--processes", "2"])
    assert args.batch == {224: 16, 32: 256}
    assert args.ref_images == {224: 4, 32: 4}  # rounded up to a multiple of the pool size
    assert args.suite is True and args.severities == [3]
    quick = bench.parse_args(["--quick"])
    assert quick.sizes == [32] and quick.batch == {32: 4} and quick.suite is False and quick.min_run_time == 0.05
    with pytest.raises(SystemExit):
        bench.parse_args(["--severities", "6"])
    with pytest.raises(SystemExit):
        bench.resolve_names("not_a_corruption", quick=False)
    assert bench.resolve_names("c15", quick=False)[0] == "gaussian_noise"


def test_common_helpers() -> None:
    assert common.geomean([2.0, 8.0]) == pytest.approx(4.0) and common.geomean([]) is None
    with pytest.raises(ValueError, match="positive"):
        common.geomean([1.0, 0.0])
    s = common.summarize_times([5.0, 1.0, 3.0, 2.0, 4.0])
    assert s["median_s"] == 3.0 and s["iqr_s"] == pytest.approx(2.0) and s["runs"] == 5
    with pytest.raises(ValueError):
        common.summarize_times([])
    table = common.markdown_table(
        [{"a": 1.23456, "b": None}, {"a": float("nan"), "b": "x|y"}],
        [("A", "a", ".2f"), ("B", "b", ""), ("twice", lambda r: 2, "d")],
    )
    assert table.splitlines() == ["| A | B | twice |", "|---|---|---|", "| 1.23 | - | 2 |", "| - | x\\|y | 2 |"]
    assert common.sanitize({"x": float("inf"), 1: (1.0, float("nan"))}) == {"x": None, "1": [1.0, None]}
    assert common.allocator_env("fixed") == {**common.FIXED_MALLOC, "MALLOC_MMAP_MAX_": None}
    assert set(common.allocator_env("default").values()) == {None} and common.allocator_env("inherit") == {}
    with pytest.raises(ValueError, match="allocator mode"):
        common.allocator_env("jemalloc")


def test_time_call_and_peak_rss() -> None:
    res = common.time_call(lambda: sum(range(100)), threads=1, min_run_time=0.01)
    assert res["runs"] == len(res["times_s"]) >= 1 and res["median_s"] > 0 and res["iqr_s"] >= 0
    assert res["minor_faults_per_call"] >= 0 and res["cpu_s_per_call"] >= 0
    held = []
    mem = common.measure_peak_rss(lambda: held.append(np.ones(96 << 20, dtype=np.uint8)))  # touches 96 MiB
    assert mem["extra_mb"] >= 90, mem
    assert mem["peak_mb"] >= mem["baseline_mb"] + 90


def test_foreign_cpu_excludes_own_work() -> None:
    """Busy CPU time of this process (and its children) is not counted as competition."""
    start = {"wall_s": 0.0, "busy_s": 100.0, "steal_s": 1.0, "own_s": 10.0}
    end = {"wall_s": 10.0, "busy_s": 119.0, "steal_s": 1.5, "own_s": 28.0}  # 19 s busy, 18 s of it ours
    got = common.foreign_cpu(start, end, cores=2)
    assert got["foreign_cpu_s"] == pytest.approx(1.0)
    assert got["foreign_share"] == pytest.approx(1.0 / 20.0)
    assert got["steal_share"] == pytest.approx(0.5 / 20.0)
    assert common.foreign_cpu(None, end, cores=2) == {}
    snap = common.cpu_accounting()
    if snap is not None:  # Linux: real counters, monotonic
        later = common.cpu_accounting()
        assert later["wall_s"] >= snap["wall_s"] and later["busy_s"] >= snap["busy_s"]
        assert later["own_s"] >= snap["own_s"] > 0


@pytest.mark.parametrize(
    ("before", "foreign", "expect"),
    [
        ({"foreign_share": 0.0, "steal_share": 0.0}, {"foreign_share": 0.01, "steal_share": 0.0}, None),
        (
            {"foreign_share": 0.4, "steal_share": 0.0},
            {"foreign_share": 0.01, "steal_share": 0.0},
            "40.0% of the CPU capacity in the second before",
        ),
        (
            {"foreign_share": 0.0, "steal_share": 0.0},
            {"foreign_share": 0.20, "steal_share": 0.0},
            "20.0% of the CPU capacity during the run",
        ),
        (
            {"foreign_share": 0.0, "steal_share": 0.0},
            {"foreign_share": 0.0, "steal_share": 0.08},
            "hypervisor stole 8.0%",
        ),
    ],
)
def test_load_warning(before: dict, foreign: dict, expect: str | None) -> None:
    """Load averages (the run's own load, or a job that ended a minute ago) never trigger the warning; the CPU time
    of other processes does."""
    meta = {
        "cpu_cores": 2,
        "foreign_cpu_before": before,
        "foreign_cpu": foreign,
        "loadavg_start": [1.9, 1.0, 1.0],
        "loadavg_end": [2.0] * 3,
    }
    got = bench.load_warning(meta)
    if expect is None:
        assert got is None
    else:
        assert got is not None and expect in got


@pytest.mark.slow  # ~10 s: a subprocess that imports torch, kornia and torch-uncertainty
@pytest.mark.skipif(not has_module("torch_uncertainty"), reason="torch_uncertainty is not installed")
def test_peers_quick(tmp_path: Path) -> None:
    """``benchmarks/peers.py --quick``: one row per requested corruption, our timing positive, ratios = peer / ours."""
    names = ["brightness", "gaussian_noise"]
    cmd = [sys.executable, "benchmarks/peers.py", "--quick", "--names", ",".join(names), "--out", str(tmp_path)]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["peers_cpu_quick.json", "peers_cpu_quick.md"]
    data = json.loads((tmp_path / "peers_cpu_quick.json").read_text())
    assert set(data) == {"metadata", "results"}
    assert data["metadata"]["config"]["fusion"] == "auto" and data["metadata"]["config"]["size"] == 32
    rows = data["results"]["rows"]
    assert [r["name"] for r in rows] == names
    for r in rows:
        assert r["ours_ms"] > 0, r["errors"]
        assert math.isclose(r["ours_ms"], r["ours"]["median_s"] / 4 * 1e3, rel_tol=1e-9)
        assert r["tu_ms"] > 0 and r["tu_batchable"] is True, r["errors"]  # both classes are batchable in TU 0.13
        assert math.isclose(r["ratio_tu"], r["tu_ms"] / r["ours_ms"], rel_tol=1e-9)
        if r["kornia_ms"] is not None:
            assert math.isclose(r["ratio_kornia"], r["kornia_ms"] / r["ours_ms"], rel_tol=1e-9)
        else:
            assert "kornia" in r["errors"]
    md = (tmp_path / "peers_cpu_quick.md").read_text()
    for name in names:
        assert any(ln.startswith(f"| {name} | ") for ln in md.splitlines()), name
    assert "torch-uncertainty is faster than ours on" in md and "kornia is faster than ours on" in md
