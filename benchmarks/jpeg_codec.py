"""JPEG round trip on the CPU: the libjpeg-turbo path vs the torch codec (``functional/jpeg.py``), same output.

Run from the repository root on a quiet machine::

    python benchmarks/jpeg_codec.py                 # 224 and 32 px, batch 64, eager + compiled torch codec
    python benchmarks/jpeg_codec.py --no-compiled   # skip the Inductor C++ build of the torch codec (~1 min/size)
    python benchmarks/jpeg_codec.py --quick         # smoke run (32 px, batch 4, 0.05 s per measurement)

Regimes, each timed as ``F.jpeg_compression(x, quality, codec=...)`` on a float32 (64, 3, S, S) batch in [0, 1] (the
test photos tiled; per-sample qualities cycling through the preset's severity table) with
``Timer.blocked_autorange``, at each of ``--threads`` torch thread counts (default 1 and all cores) and glibc malloc
pinned (``MALLOC_MMAP_THRESHOLD_=1073741824 MALLOC_TRIM_THRESHOLD_=4294967296 MALLOC_TOP_PAD_=268435456``, see
``common.ensure_allocator``):

* ``libjpeg``: ``codec="cpu"`` (what ``"auto"`` runs on the CPU): libjpeg-turbo through ``torchvision.io``, one
  image per call, split over the torch threads.
* ``torch eager``: ``codec="torch"``, fusion off: ~400 ATen integer ops per call on whole-batch tensors.
* ``torch compiled``: ``codec="torch"``, fusion on (Inductor C++/OpenMP, compiled before timing).

Every regime's output is checked to equal the libjpeg output bit for bit. Writes
``benchmarks/results/jpeg_codec_cpu[_quick].{json,md}``. A report, never a test: always exits 0.
"""

from __future__ import annotations

import argparse
import itertools
import math
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import common  # noqa: E402

#: Per-sample qualities at each size: the preset's severity table (imagenet at 224 px, cifar at 32 px).
QUALITIES = {224: (25, 18, 15, 10, 7), 32: (80, 65, 58, 50, 40)}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="224,32", help="comma list of square sizes (default 224,32)")
    p.add_argument("--batch", type=int, default=64, help="images per call (default 64)")
    p.add_argument("--threads", default=None, help="comma list of torch thread counts (default: 1 and all cores)")
    p.add_argument("--min-run-time", type=float, default=2.0, help="seconds of measured runs per regime (default 2)")
    p.add_argument("--compiled", action=argparse.BooleanOptionalAction, default=True, help="also time fusion on")
    p.add_argument("--quick", action="store_true", help="smoke run: 32 px, batch 4, 0.05 s, eager only")
    p.add_argument("--out", default=str(common.RESULTS_DIR), help="output directory")
    args = p.parse_args(argv)
    if args.quick:
        args.sizes, args.batch, args.min_run_time, args.compiled = "32", 4, 0.05, False
    args.sizes = [int(s) for s in args.sizes.split(",")]
    cores = common.cpu_cores()
    args.threads = [int(t) for t in args.threads.split(",")] if args.threads else sorted({1, cores})
    return args


def _batch(size: int, batch: int):  # noqa: ANN202 - torch imported lazily
    import numpy as np
    import torch

    from tests._helpers import PHOTOS, photo_at

    imgs = np.stack([photo_at(p, size) for p in PHOTOS])  # (4, S, S, 3) uint8
    x = torch.from_numpy(imgs).permute(0, 3, 1, 2).float() / 255.0
    return x.repeat((batch + len(PHOTOS) - 1) // len(PHOTOS), 1, 1, 1)[:batch].contiguous()


def main(argv: list[str] | None = None) -> int:
    common.ensure_allocator("fixed")
    args = parse_args(argv)
    import torch

    from robust_train.functional import digital as D
    from robust_train.functional._fused import fusion

    regimes = [("libjpeg", "cpu", "off"), ("torch eager", "torch", "off")]
    if args.compiled:
        regimes.append(("torch compiled", "torch", "on"))
    rows = []
    for size, threads in itertools.product(args.sizes, args.threads):
        torch.set_num_threads(threads)
        x = _batch(size, args.batch)
        table = QUALITIES.get(size, QUALITIES[224])
        q = torch.tensor([table[i % len(table)] for i in range(args.batch)])
        ref = D.jpeg_compression(x, q, codec="cpu")
        base = None
        for name, codec, mode in regimes:
            with fusion(mode):
                out = D.jpeg_compression(x, q, codec=codec)  # also the compile, outside the timing
                t = common.time_call(
                    lambda x=x, q=q, codec=codec: D.jpeg_compression(x, q, codec=codec),
                    threads=threads,
                    min_run_time=args.min_run_time,
                    label="jpeg_codec",
                    sub_label=f"{size}px",
                    description=name,
                )
            base = t["median_s"] if base is None else base
            row = {
                "size": size,
                "threads": threads,
                "batch": args.batch,
                "regime": name,
                "ms_per_image": 1e3 * t["median_s"] / args.batch,
                "iqr_ms_per_image": 1e3 * t["iqr_s"] / args.batch,
                "vs_libjpeg": t["median_s"] / base,
                "identical_to_libjpeg": bool(torch.equal(out, ref)),
                "timing": t,
            }
            rows.append(row)
            print(
                f"{size:4d}px {threads} thr {name:15s} {row['ms_per_image']:8.3f} ms/image "
                f"(IQR {row['iqr_ms_per_image']:.3f}) "
                f"x{row['vs_libjpeg']:.2f} of libjpeg, identical={row['identical_to_libjpeg']}",
                flush=True,
            )
    meta = common.collect_metadata("cpu", max(args.threads), batch=args.batch, sizes=args.sizes, qualities=QUALITIES)
    table = common.markdown_table(
        rows,
        [
            ("size", "size", "d"),
            ("threads", "threads", "d"),
            ("regime", "regime", ""),
            ("ms / image (median)", "ms_per_image", ".3f"),
            ("IQR", "iqr_ms_per_image", ".3f"),
            ("time / libjpeg", "vs_libjpeg", ".2f"),
            ("identical to libjpeg", "identical_to_libjpeg", ""),
        ],
    )
    summary = []
    for size in args.sizes:
        best = {}
        for row in rows:
            if row["size"] == size:
                best[row["regime"]] = min(best.get(row["regime"], math.inf), row["ms_per_image"])
        lib, eager = best["libjpeg"], best["torch eager"]
        line = (
            f"* {size} px, best over thread counts: libjpeg {lib:.3f}, torch eager {eager:.3f}"
            + (f", torch compiled {best['torch compiled']:.3f}" if "torch compiled" in best else "")
            + f" ms/image; default configuration (CPU fusion off): {'libjpeg' if lib <= eager else 'torch'} faster."
        )
        summary.append(line)
    load = meta["loadavg_start"]
    if load and load[0] > meta["cpu_cores"]:
        summary.append(
            f"* Load average {load[0]:.1f} on {meta['cpu_cores']} cores at the start (a shared machine): OpenMP "
            "runs with more than one thread stall behind other processes, so the multi-thread rows overstate the "
            "torch codec's cost; repeat on a quiet machine."
        )
    md = "\n".join(
        [
            "# JPEG round trip on the CPU: libjpeg-turbo vs the torch codec",
            "",
            f"Batch {args.batch}, float32 input, torch threads {args.threads} (libjpeg: that many codec threads "
            "with one OpenMP thread each; torch codec: that many OpenMP threads), glibc malloc pinned "
            f"({common.allocator_metadata().get('mode')}: MALLOC_MMAP_THRESHOLD_=1073741824 "
            "MALLOC_TRIM_THRESHOLD_=4294967296 MALLOC_TOP_PAD_=268435456), `Timer.blocked_autorange` "
            f"(min run time {args.min_run_time} s). CPU: {meta['cpu_model']}, {meta['cpu_cores']} cores, "
            f"load average at start {meta['loadavg_start']}. torch {meta['torch']}, commit {meta['git_commit']}.",
            "",
            table,
            "",
            *summary,
            "",
        ]
    )
    stem = Path(args.out) / ("jpeg_codec_cpu_quick" if args.quick else "jpeg_codec_cpu")
    common.write_results(stem, meta, rows, md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
