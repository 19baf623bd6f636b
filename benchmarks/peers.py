"""Peer benchmark: robust_train's corruptions vs the libraries a user would pick instead, in the same run.

Run from the repository root (on a quiet machine; the full run takes a few minutes per corruption)::

    python benchmarks/peers.py                                   # 224 px, batch 64, every shared corruption
    python benchmarks/peers.py --quick --names brightness,contrast   # smoke run (seconds)

Sides compared on the same machine, same torch threads, same input batch (``build_batch`` of
``benchmarks/corruptions.py``: float32 (B, 3, H, W) in [0, 1]):

* ours: ``create_corruption(name, severity=3, seed=0)`` on the batch, in the *default* fusion mode (``"auto"``:
  tiered compiles). Before timing, each corruption is called ``TIER_CPU_CALLS + 1`` times (``common.tier_warmup``),
  so every kernel signature it repeats is compiled, as in a long evaluation run (skipped with ``--quick``).
* torch-uncertainty (``torch_uncertainty.transforms.corruption``): the class of the same corruption, constructed
  with ``severity=3`` (and ``seed=0`` where the constructor takes one); called on the batch when the class says
  ``batchable``, otherwise once per (C, H, W) image in a Python loop (how a user applies it in a dataset).
* kornia (``kornia.augmentation``): the closest batched op with ``p=1.0`` and parameters matched to ImageNet-C
  severity 3 at 224 px as far as the op allows; corruptions without such an op have no kornia column.

Per-image time = median batch time / batch (``common.time_call``). Ratios are peer time / our time (> 1: ours
faster). The peers compute different things (see the notes column): the ratios compare what a user gets, not
identical work. Writes ``benchmarks/results/peers_cpu[_quick].{json,md}``; always exits 0 (a report, not a test).
"""

from __future__ import annotations

import argparse
import inspect
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make ``benchmarks`` and ``tests`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import common  # noqa: E402  (stdlib-only at import time)

__all__ = ["TU_PEERS", "KORNIA_PEERS", "KORNIA_UNMAPPED", "shared_names", "parse_args", "run", "main"]

SEVERITY = 3
QUICK = {"size": 32, "batch": 4, "min_run_time": 0.05}

#: torch-uncertainty 0.13: our name -> (class in ``torch_uncertainty.transforms.corruption``, what it computes at
#: severity 3, read from ``inspect.getsource`` of the class).
TU_PEERS: dict[str, tuple[str, str]] = {
    "gaussian_noise": ("GaussianNoise", "torch.normal(x, 0.18) clamped; float noise, no 8-bit truncation"),
    "shot_noise": ("ShotNoise", "torch.poisson(12 x) / 12 clamped; no 8-bit truncation"),
    "impulse_noise": (
        "ImpulseNoise",
        "kornia RandomSaltAndPepperNoise(amount 0.09, s/p 0.5) on a (B*C, 1, H, W) view (per channel)",
    ),
    "speckle_noise": ("SpeckleNoise", "x * NumPy normal(1, 0.35) of the input's shape, float64 noise drawn on host"),
    "defocus_blur": ("DefocusBlur", "kornia filter2d with a 17x17 radius-6 disk smoothed by a 3x3 Gaussian"),
    "glass_blur": (
        "GlassBlur",
        "Gaussian blur (sigma 1, k 7), one vectorised swap with offsets from a symmetrised distribution, blur",
    ),
    "motion_blur": (
        "MotionBlur",
        "kornia motion_blur: uniform 17 px line (radius 8) at one U(-45, 45) angle per call (ImageNet-C: "
        "one-sided Gaussian, radius 15 sigma 5)",
    ),
    "zoom_blur": ("ZoomBlur", "NumPy/SciPy: mean of x and 11 scipy zoom (order 1) crops, zoom 1..1.2 step 0.02"),
    "gaussian_blur": ("GaussianBlur", "kornia gaussian_blur2d sigma 3 with a 9-tap kernel (cut at 1.3 sigma)"),
    "snow": (
        "Snow",
        "NumPy snow layer, scipy zoom x4, threshold 0.9, kornia motion_blur k 17; grey*1.5+0.5 blend (no PIL/Wand)",
    ),
    "frost": ("Frost", "0.7 x + 0.7 * random resized crop of one of 5 frost JPEGs (decoded on every call)"),
    "fog": ("Fog", "NumPy diamond-square plasma (2^k >= size, decay 1.7), (x + 2.5 fog) * max / (max + 2.5)"),
    "brightness": (
        "Brightness",
        "torchvision adjust_brightness: RGB x 1.9 clamped (ImageNet-C: +0.3 on the HSV value)",
    ),
    "contrast": (
        "Contrast",
        "torchvision adjust_contrast(0.2): blend with the grey-level mean (ImageNet-C: mean of all RGB values)",
    ),
    "saturate": (
        "Saturation",
        "torchvision adjust_saturation(0.4): blend toward grey, desaturates (ImageNet-C s3: HSV saturation x 2)",
    ),
    "elastic_transform": (
        "Elastic",
        "OpenCV warpAffine + SciPy map_coordinates (order 1) with (0.05, 0.01, 0.02) x size, NumPy float32",
    ),
    "pixelate": ("Pixelate", "PIL (uint8): BOX resize to 0.4 x size and BOX back"),
    "jpeg_compression": ("JPEGCompression", "PIL JPEG encode/decode at quality 15 through BytesIO"),
}

#: kornia: our name -> (``kornia.augmentation`` class, keyword arguments (p=1.0 added), how it differs).
KORNIA_PEERS: dict[str, tuple[str, dict[str, Any], str]] = {
    "gaussian_noise": (
        "RandomGaussianNoise",
        {"mean": 0.0, "std": 0.18},
        "adds N(0, 0.18), no clamp, no 8-bit truncation",
    ),
    "impulse_noise": (
        "RandomSaltAndPepperNoise",
        {"amount": (0.09, 0.09), "salt_vs_pepper": (0.5, 0.5)},
        "one mask shared by the 3 channels (ImageNet-C: per channel value)",
    ),
    "motion_blur": (
        "RandomMotionBlur",
        {"kernel_size": 31, "angle": (-45.0, 45.0), "direction": (0.0, 0.0)},
        "uniform centred 31 px line, dense 31x31 conv (ImageNet-C: one-sided Gaussian, radius 15 sigma 5)",
    ),
    "gaussian_blur": (
        "RandomGaussianBlur",
        {"kernel_size": 25, "sigma": (3.0, 3.0)},
        "separable sigma 3, 25 taps (skimage truncates at 4 sigma), reflect border",
    ),
    "brightness": (
        "RandomBrightness",
        {"brightness": (1.3, 1.3)},
        "adds 0.3 to RGB and clamps (ImageNet-C: +0.3 on the HSV value)",
    ),
    "contrast": (
        "RandomContrast",
        {"contrast": (0.2, 0.2)},
        "x * 0.2 clamped, no mean subtraction (ImageNet-C: (x - mean) * 0.2 + mean)",
    ),
    "saturate": (
        "RandomSaturation",
        {"saturation": (2.0, 2.0)},
        "HSV saturation x 2 (ImageNet-C s3: same, plus clip)",
    ),
    "elastic_transform": (
        "RandomElasticTransform",
        {"kernel_size": (21, 21), "sigma": (2.44, 2.44), "alpha": (0.109, 0.109), "padding_mode": "reflection"},
        "smoothed-noise displacement only (alpha 12.2 px in normalised units); no random affine pre-warp",
    ),
    "fog": (
        "RandomPlasmaBrightness",
        {"roughness": (0.59, 0.59), "intensity": (0.5, 0.5)},
        "adds a diamond-square plasma in [-0.5, 0.5] (roughness ~ 1 / wibbledecay 1.7); no fog rescale",
    ),
    "jpeg_compression": (
        "RandomJPEG",
        {"jpeg_quality": (15.0, 15.0)},
        "differentiable torch JPEG approximation at quality 15 (ImageNet-C: PIL, quality 15)",
    ),
}

#: Shared corruptions without a kornia op close enough to time (why).
KORNIA_UNMAPPED: dict[str, str] = {
    "shot_noise": "no Poisson-noise augmentation",
    "speckle_noise": "no multiplicative-noise augmentation",
    "defocus_blur": "no disk-kernel blur (RandomBoxBlur is a square box)",
    "glass_blur": "no pixel-shuffle blur",
    "zoom_blur": "no zoom-average blur",
    "snow": "RandomSnow is an HLS lightness threshold, no flake layer or motion blur",
    "frost": "no frost-texture overlay",
    "pixelate": "no downscale/upscale op",
}


def shared_names() -> list[str]:
    """Our corruptions with at least one peer, in the registry's c19 order."""
    from robust_train import list_corruptions

    return [n for n in list_corruptions("c19") if n in TU_PEERS or n in KORNIA_PEERS]


# ---------------------------------------------------------------------------------------------------- arguments
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python benchmarks/peers.py",
        description="Time robust_train's corruptions (default fusion) against torch-uncertainty and kornia.",
    )
    p.add_argument("--size", type=int, default=None, help="square image size (default 224; quick 32)")
    p.add_argument("--batch", type=int, default=None, help="batch size (default 64; quick 4)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: cores available)")
    p.add_argument("--min-run-time", type=float, default=None, help="Timer min_run_time per measurement (default 1 s)")
    p.add_argument(
        "--names", default=None, help="comma list of corruptions (default: every c19 corruption with a peer)"
    )
    p.add_argument(
        "--allocator",
        choices=("fixed", "default", "inherit"),
        default="fixed",
        help="glibc malloc settings for the run (default fixed; see benchmarks/README.md)",
    )
    p.add_argument("--out", default=str(common.RESULTS_DIR), help="output directory (default benchmarks/results)")
    p.add_argument(
        "--quick", action="store_true", help="smoke run: size 32, batch 4, 0.05 s per measurement, no tier warm-up"
    )
    args = p.parse_args(argv)
    for key, value in QUICK.items():
        if getattr(args, key) is None:
            setattr(args, key, value if args.quick else {"size": 224, "batch": 64, "min_run_time": 1.0}[key])
    if args.size < 8:
        p.error(f"--size must be >= 8, got {args.size}")
    if args.batch < 1:
        p.error(f"--batch must be >= 1, got {args.batch}")
    if not args.min_run_time > 0:
        p.error(f"--min-run-time must be > 0, got {args.min_run_time}")
    args.threads = args.threads or common.cpu_cores()
    if args.names is None:
        args.names = shared_names()
    else:
        args.names = [n.strip() for n in args.names.split(",") if n.strip()]
        shared = shared_names()
        bad = [n for n in args.names if n not in shared]
        if bad or not args.names:
            p.error(f"--names: expected a comma list of shared corruptions from {shared}, got {bad or 'none'}")
    return args


# ---------------------------------------------------------------------------------------------------- sides
def _err(err: BaseException) -> str:
    text = f"{type(err).__name__}: {err}".replace("\n", " ")
    return text if len(text) <= 200 else text[:197] + "..."


def _timed(fn: Callable[[], Any], batch: int, args: argparse.Namespace, who: str, name: str) -> dict[str, Any]:
    res = common.time_call(
        fn,
        warmup=2,
        threads=args.threads,
        min_run_time=args.min_run_time,
        label="peers",
        sub_label=f"{name} s{SEVERITY}",
        description=f"{who} {args.size}px b{batch}",
    )
    res["per_image_ms"] = res["median_s"] / batch * 1e3
    res["iqr_per_image_ms"] = res["iqr_s"] / batch * 1e3
    return res


def time_ours(name: str, x: Any, args: argparse.Namespace) -> dict[str, Any]:
    """Our module on the batch in the default fusion mode, after the tier warm-up (unless ``--quick``)."""
    from robust_train import create_corruption

    op = create_corruption(name, severity=SEVERITY, seed=0)
    warm = {"tier_warmup_calls": 0, "tier_warmup_s": 0.0}
    if not args.quick:  # tiered "auto": warm up to the steady state of a long job
        warm = common.tier_warmup(lambda: op(x))
    res = _timed(lambda: op(x), x.shape[0], args, "ours", name)
    res.update(warm)
    res["preset"] = op.resolve_preset(x) if hasattr(op, "resolve_preset") else None
    return res


def time_tu(name: str, x: Any, args: argparse.Namespace) -> dict[str, Any]:
    """The torch-uncertainty class on the batch (``batchable``) or per image in a Python loop."""
    import torch_uncertainty.transforms.corruption as tu

    cls = getattr(tu, TU_PEERS[name][0])
    kwargs: dict[str, Any] = {"severity": SEVERITY}
    if "seed" in inspect.signature(cls.__init__).parameters:
        kwargs["seed"] = 0
    op = cls(**kwargs)
    batchable = bool(getattr(cls, "batchable", False))
    if batchable:
        fn: Callable[[], Any] = lambda: op(x)  # noqa: E731
    else:
        fn = lambda: [op(img) for img in x]  # noqa: E731
    res = _timed(fn, x.shape[0], args, "torch-uncertainty", name)
    res["batchable"] = batchable
    res["class"] = cls.__name__
    return res


def time_kornia(name: str, x: Any, args: argparse.Namespace) -> dict[str, Any]:
    """The kornia augmentation with p=1 on the batch."""
    import kornia.augmentation as K

    cls_name, kwargs, _ = KORNIA_PEERS[name]
    op = getattr(K, cls_name)(**kwargs, p=1.0)
    res = _timed(lambda: op(x), x.shape[0], args, "kornia", name)
    res["class"] = cls_name
    res["kwargs"] = kwargs
    return res


# ---------------------------------------------------------------------------------------------------- report
def _row(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "ours_ms": None,
        "tu_ms": None,
        "ratio_tu": None,
        "kornia_ms": None,
        "ratio_kornia": None,
        "tu_batchable": None,
        "tu_note": TU_PEERS[name][1] if name in TU_PEERS else None,
        "kornia_op": KORNIA_PEERS[name][0] if name in KORNIA_PEERS else None,
        "kornia_note": KORNIA_PEERS[name][2] if name in KORNIA_PEERS else KORNIA_UNMAPPED.get(name),
        "errors": {},
        "ours": None,
        "tu": None,
        "kornia": None,
    }


def _notes(r: dict[str, Any]) -> str:
    parts = []
    if r["name"] in TU_PEERS:
        how = {True: "batched", False: "per image"}.get(r["tu_batchable"], "")
        parts.append(f"TU ({how}): {r['tu_note']}" if how else f"TU: {r['tu_note']}")
    else:
        parts.append("TU: no such corruption")
    if r["kornia_op"]:
        parts.append(f"kornia {r['kornia_op']}: {r['kornia_note']}")
    else:
        parts.append(f"kornia: not mapped ({r['kornia_note']})")
    parts += [f"{who} error: {msg}" for who, msg in r["errors"].items()]
    return "; ".join(parts)


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Per peer: the shared corruptions timed on both sides, those where the peer is faster, geomean ratio."""
    out: dict[str, Any] = {}
    for peer, key in (("torch-uncertainty", "ratio_tu"), ("kornia", "ratio_kornia")):
        timed = [r for r in rows if r[key] is not None]
        faster = [r["name"] for r in timed if r[key] < 1.0]
        out[peer] = {
            "compared": len(timed),
            "peer_faster": faster,
            "geomean_ratio": common.geomean(r[key] for r in timed),
        }
    return out


def summary_lines(summary: dict[str, Any]) -> list[str]:
    lines = []
    for peer, s in summary.items():
        faster = ", ".join(s["peer_faster"]) or "none"
        lines.append(
            f"{peer} is faster than ours on {len(s['peer_faster'])} of {s['compared']} shared corruptions "
            f"({faster}); geometric-mean ratio (peer / ours) {common.fmt(s['geomean_ratio'], '.2f')}"
        )
    return lines


def render_markdown(metadata: dict[str, Any], rows: list[dict[str, Any]], summary: dict[str, Any]) -> str:
    from benchmarks.corruptions import load_warning

    cfg = metadata["config"]
    pk = metadata["packages"]
    warning = load_warning(metadata)
    lines = [
        f"# Peer benchmark (cpu): robust_train vs torch-uncertainty and kornia, severity {SEVERITY}",
        "",
        f"- {cfg['size']} px, batch {cfg['batch']}, {metadata['torch_threads']} torch threads, "
        f"min_run_time {cfg['min_run_time']} s{' (quick run)' if cfg['quick'] else ''}",
        f"- {metadata['date_utc']}, commit `{(metadata['git_commit'] or '?')[:10]}`"
        f"{' (dirty tree)' if metadata['git_dirty'] else ''}; torch {metadata['torch']}, robust-train "
        f"{pk.get('robust-train')}, torch-uncertainty {pk.get('torch-uncertainty')}, kornia {pk.get('kornia')}",
        f"- CPU {metadata['cpu_model']}, {metadata['cpu_cores']} cores; allocator `{metadata['allocator']['mode']}`",
        f"- ours: `create_corruption(name, severity={SEVERITY}, seed=0)` on the float32 batch, fusion "
        f"`{cfg['fusion']}` (default)"
        + (
            "; no tier warm-up (quick)"
            if cfg["quick"]
            else f"; warmed up with {cfg['tier_warmup_calls']} untimed calls per corruption (the tier's steady state)"
        ),
        "- TU: `torch_uncertainty.transforms.corruption.<Class>(severity)` on the batch if the class is "
        "`batchable`, else per (C, H, W) image in a Python loop; kornia: the `kornia.augmentation` op with p=1.0",
        "- ratio = peer ms/image / ours ms/image (> 1: ours faster). The peers compute different things (notes): "
        "ratios compare what a user gets, not identical work."
        + (" At 32 px ours uses the CIFAR preset; the peers keep their 224 px parameters." if cfg["size"] < 64 else ""),
        *([f"- **{warning}**"] if warning else []),
        "",
        common.markdown_table(
            rows,
            [
                ("corruption", "name", ""),
                ("ours ms/img", "ours_ms", ".3g"),
                ("TU ms/img", "tu_ms", ".3g"),
                ("ours/TU speed ratio", "ratio_tu", ".2f"),
                ("kornia ms/img", "kornia_ms", ".3g"),
                ("ratio vs kornia", "ratio_kornia", ".2f"),
                ("notes", _notes, ""),
            ],
        ),
        "",
        *[f"- {ln}" for ln in summary_lines(summary)],
    ]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------------- main
def run(args: argparse.Namespace) -> dict[str, Any]:
    """Run the benchmark described by ``args`` (from :func:`parse_args`); returns ``{metadata, results, paths}``."""
    import torch

    import robust_train
    from benchmarks.corruptions import build_batch
    from robust_train.functional import _fused

    torch.set_num_threads(args.threads)
    before = common.cpu_accounting()
    time.sleep(1.0)
    cpu_start = common.cpu_accounting()
    metadata = common.collect_metadata(
        "cpu",
        args.threads,
        packages=("torch-uncertainty", "kornia"),
        names=args.names,
        size=args.size,
        batch=args.batch,
        severity=SEVERITY,
        min_run_time=args.min_run_time,
        quick=args.quick,
        fusion=robust_train.get_fusion(),
        tier_warmup_calls=0 if args.quick else _fused.TIER_CPU_CALLS + 1,
    )
    x = build_batch(args.size, args.batch, "cpu")
    rows: list[dict[str, Any]] = []
    for name in args.names:
        row = _row(name)
        rows.append(row)
        try:
            row["ours"] = time_ours(name, x, args)
            row["ours_ms"] = row["ours"]["per_image_ms"]
        except Exception as err:  # noqa: BLE001 - one failing side must not stop the report
            row["errors"]["ours"] = _err(err)
        if name in TU_PEERS:
            try:
                row["tu"] = time_tu(name, x, args)
                row["tu_ms"] = row["tu"]["per_image_ms"]
                row["tu_batchable"] = row["tu"]["batchable"]
            except Exception as err:  # noqa: BLE001 - includes a failed import of torch_uncertainty
                row["errors"]["TU"] = _err(err)
        if name in KORNIA_PEERS:
            try:
                row["kornia"] = time_kornia(name, x, args)
                row["kornia_ms"] = row["kornia"]["per_image_ms"]
            except Exception as err:  # noqa: BLE001 - includes a failed import of kornia
                row["errors"]["kornia"] = _err(err)
        if row["ours_ms"]:
            if row["tu_ms"] is not None:
                row["ratio_tu"] = row["tu_ms"] / row["ours_ms"]
            if row["kornia_ms"] is not None:
                row["ratio_kornia"] = row["kornia_ms"] / row["ours_ms"]
        print(
            f"{name:<18} ours {common.fmt(row['ours_ms'], '9.4f')} ms/img  TU {common.fmt(row['tu_ms'], '9.4f')} "
            f"(x{common.fmt(row['ratio_tu'], '.2f')})  kornia {common.fmt(row['kornia_ms'], '9.4f')} "
            f"(x{common.fmt(row['ratio_kornia'], '.2f')})" + (f"  errors: {row['errors']}" if row["errors"] else ""),
            flush=True,
        )
    metadata["loadavg_end"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    metadata["foreign_cpu_before"] = common.foreign_cpu(before, cpu_start, metadata["cpu_cores"])
    metadata["foreign_cpu"] = common.foreign_cpu(cpu_start, common.cpu_accounting(), metadata["cpu_cores"])
    summary = summarize(rows)
    results = {"rows": rows, "summary": summary}
    stem = "peers_cpu" + ("_quick" if args.quick else "")
    paths = common.write_results(Path(args.out) / stem, metadata, results, render_markdown(metadata, rows, summary))
    print("\n=== peer benchmark summary ===")
    for line in summary_lines(summary):
        print(line)
    print(f"written: {paths[0]}\n         {paths[1]}")
    return {"metadata": metadata, "results": results, "paths": [str(p) for p in paths]}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    common.ensure_allocator(args.allocator)  # may re-execute this process once (before any big allocation)
    run(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
