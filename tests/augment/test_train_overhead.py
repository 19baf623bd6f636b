"""Smoke test of ``benchmarks/train_overhead.py`` (tiny sizes; the real run is done by hand on a quiet machine)."""

from __future__ import annotations

import json

import pytest

from benchmarks import train_overhead


@pytest.mark.slow
def test_quick_run_writes_results(tmp_path):
    args = train_overhead.parse_args(
        [
            "--quick",
            "--size",
            "16",
            "--batch",
            "4",
            "--min-run-time",
            "0.01",
            "--methods",
            "augmix_jsd,clp",
            "--out",
            str(tmp_path),
            "--threads",
            "1",
        ]
    )
    assert args.methods == ["plain", "augmix_jsd", "clp"]
    out = train_overhead.run(args)
    rows = {r["method"]: r for r in out["results"]}
    assert all(r["status"] == "ok" for r in rows.values()), rows
    assert rows["plain"]["ratio"] == 1.0 and rows["augmix_jsd"]["ratio"] > 0
    assert rows["augmix_jsd"]["augment_ms"] > 0 and "augment_ms" not in rows["clp"]
    doc = json.loads((tmp_path / "train_overhead_cpu_quick.json").read_text())
    assert set(doc) == {"metadata", "results"} and doc["metadata"]["config"]["batch"] == 4
    assert (tmp_path / "train_overhead_cpu_quick.md").read_text().startswith("# Training-method overhead")
