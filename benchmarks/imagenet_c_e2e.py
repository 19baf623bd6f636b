"""End-to-end ImageNet-C evaluation cost: corruption vs model time per batch, host syncs and peak memory.

A torchvision ResNet-50 (random weights, nothing downloaded) is evaluated on the c15 suite the way the evaluation
engine does it: per batch, each corruption at each severity with evaluation parameters of the batch's indices
(:meth:`~robust_train.corruptions.Corruption.params_for_indices`), the released-file emulation (8-bit, JPEG q85), then
the model's forward under autocast. The same script runs unchanged on CUDA (bf16, batch 256) and on the CPU (a
small batch). On CUDA, host syncs are counted per batch with ``torch.cuda.set_sync_debug_mode("warn")`` (every
synchronising call warns); the target for the corruptions is 0 except the documented spatter hysteresis check.

Usage::

    python benchmarks/imagenet_c_e2e.py --device cuda                 # batch 256, bf16
    python benchmarks/imagenet_c_e2e.py --device cpu --batch 8        # the CPU run (default on CPU)

Prints one summary table and writes ``benchmarks/results/imagenet_c_e2e_<device>.{json,md}``.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import common  # noqa: E402
from benchmarks.corruptions import build_batch  # noqa: E402


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize(device)


def _count_syncs(fn: Any, device: str) -> tuple[Any, int | None]:
    """Run ``fn()``; on CUDA count the synchronising calls it makes (sync debug mode ``warn``)."""
    import torch

    if not device.startswith("cuda"):
        return fn(), None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            out = fn()
        finally:
            torch.cuda.set_sync_debug_mode("default")
    return out, sum("synchroniz" in str(w.message).lower() for w in caught)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N")
    p.add_argument("--batch", type=int, default=None, help="batch size (default: 256 on CUDA, 8 on the CPU)")
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--suite", default="c15")
    p.add_argument("--severities", default="1,3,5", help="comma list (default 1,3,5; the full suite is 1-5)")
    p.add_argument("--repeats", type=int, default=2, help="timed batches per cell after one warm-up batch")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--allocator", choices=("fixed", "default", "inherit"), default="fixed")
    p.add_argument("--out", default=str(common.RESULTS_DIR))
    args = p.parse_args(argv)
    common.ensure_allocator(args.allocator)

    import torch
    import torchvision

    import robust_train as rt

    cuda = args.device.startswith("cuda")
    if cuda and not torch.cuda.is_available():
        print("CUDA is not available", file=sys.stderr)
        return 2
    batch = args.batch or (256 if cuda else 8)
    threads = args.threads or common.cpu_cores()
    torch.set_num_threads(threads)
    dtype = torch.bfloat16 if cuda else torch.float32
    model = torchvision.models.resnet50(weights=None).to(args.device).eval()
    mean = torch.tensor([0.485, 0.456, 0.406], device=args.device).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225], device=args.device).view(1, 3, 1, 1)
    x = build_batch(args.size, batch, args.device)  # the scikit-image photos, repeated
    idx = torch.arange(batch)

    def forward(img: Any) -> Any:
        with torch.autocast(device_type="cuda" if cuda else "cpu", dtype=dtype, enabled=cuda):
            return model((img - mean) / std).argmax(-1)

    if cuda:
        torch.cuda.reset_peak_memory_stats(args.device)
    rows = []
    with torch.inference_mode():
        forward(x)
        _sync(args.device)
        t0 = time.perf_counter()
        for _ in range(args.repeats):
            forward(x)
        _sync(args.device)
        model_s = (time.perf_counter() - t0) / args.repeats
        for name in rt.list_corruptions(args.suite):
            for sev in (int(s) for s in args.severities.split(",")):
                op = rt.create_corruption(name, severity=sev, preset="imagenet", jpeg_quality=85)
                params = op.params_for_indices(idx, seed=0)
                op(x, params=params)  # warm-up (tables, textures, tiered compiles start counting)
                _sync(args.device)
                syncs = []
                t0 = time.perf_counter()
                for _ in range(args.repeats):
                    out, n = _count_syncs(lambda op=op, params=params: op(x, params=params), args.device)
                    syncs.append(n)
                _sync(args.device)
                corr_s = (time.perf_counter() - t0) / args.repeats
                forward(out)
                rows.append(
                    {
                        "corruption": name,
                        "severity": sev,
                        "corrupt_ms_per_batch": corr_s * 1e3,
                        "model_ms_per_batch": model_s * 1e3,
                        "ratio": corr_s / model_s,
                        "host_syncs_per_batch": None if syncs[0] is None else max(syncs),
                    }
                )
                print(f"{name:18s} s{sev}  corrupt {corr_s * 1e3:9.1f} ms  model {model_s * 1e3:8.1f} ms", flush=True)
    peak = torch.cuda.max_memory_allocated(args.device) if cuda else None
    if not cuda:
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    total_c = sum(r["corrupt_ms_per_batch"] for r in rows)
    total_m = sum(r["model_ms_per_batch"] for r in rows)
    md = [
        f"# ImageNet-C end to end ({args.suite}, severities {args.severities}) on {args.device}",
        "",
        f"ResNet-50 (random weights), batch {batch}, {args.size} px, {'bf16 autocast' if cuda else 'float32'}, "
        f"{threads} threads, fusion `{rt.get_fusion()}`, allocator `{args.allocator}`. Peak memory "
        f"{'(CUDA allocated)' if cuda else '(process RSS)'}: {peak / 2**20:.0f} MB.",
        "",
        common.markdown_table(
            rows,
            [
                ("corruption", "corruption", ""),
                ("s", "severity", ""),
                ("corrupt ms/batch", "corrupt_ms_per_batch", ".1f"),
                ("model ms/batch", "model_ms_per_batch", ".1f"),
                ("corrupt / model", "ratio", ".2f"),
                (
                    "host syncs/batch",
                    lambda r: "n/a (CPU)" if r["host_syncs_per_batch"] is None else r["host_syncs_per_batch"],
                    "",
                ),
            ],
        ),
        "",
        f"Whole table: corruption {total_c / 1e3:.2f} s vs model {total_m / 1e3:.2f} s "
        f"(ratio {total_c / total_m:.2f}).",
    ]
    text = "\n".join(md)
    print(text)
    meta = common.collect_metadata(args.device, threads, config=vars(args) | {"batch": batch})
    common.write_results(Path(args.out) / f"imagenet_c_e2e_{args.device.split(':')[0]}", meta, rows, text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
