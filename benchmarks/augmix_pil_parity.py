"""AugMix's ``pil_exact`` mode against Pillow (issue #15 item 4): every op at every argument AugMix can draw.

The AugMix reference code (google-research/augmix ``augmentations.py``) applies Pillow operations to 8-bit images.
This script compares :func:`robust_train.functional.augment_ops.apply_ops` with ``pil_exact=True`` against Pillow
itself, op by op, on the scikit-image photos (astronaut 512x512, chelsea 300x451, coffee 400x600):

* integer-argument ops (posterize, solarize, rotate, translate): every argument the AugMix level table yields for
  levels ``0.1 .. 10`` (a 0.01 grid, which crosses every truncation step) and both signs;
* float-argument ops (shear, color, contrast, brightness, sharpness): a level grid ``0.1 .. 10`` (``--level-step``)
  and both signs;
* argument-free ops (autocontrast, equalize): once per photo.

Then whole AugMix chains (``AugMix(pil_exact=True)``, severity 10 and 3, all 13 ops) against the reference's
``augment_and_mix`` rebuilt with Pillow from the same parameters (:func:`pil_augmix`), and the cost of the mode.

Rule per op in the table: **bit-exact** when every pixel of every case matches, else **within 1 level on >= 99%**
of the pixels of every case (the bar ``tests/augment/test_augmix_pil.py`` asserts).

Pillow >= 10 refuses ``posterize(bits=0)``, which AugMix draws only at level 10 exactly; older Pillow (the one the
reference used) returns black there (``lut = i & 0``), which is what the reference side uses for that one case.

Usage::

    python benchmarks/augmix_pil_parity.py            # results/augmix_pil_parity.{json,md}
    python benchmarks/augmix_pil_parity.py --quick    # photos downscaled 4x, coarse grid, seconds
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.common import RESULTS_DIR, collect_metadata, markdown_table, write_results  # noqa: E402

__all__ = [
    "INT_OPS",
    "augmix_args",
    "compare_op",
    "load_photos",
    "main",
    "ours",
    "pil_augmix",
    "pil_op",
]

#: Ops whose AugMix argument is an integer (finitely many values); the others take a float or nothing.
INT_OPS = ("posterize", "solarize", "rotate", "translate_x", "translate_y")
SIGNED = ("rotate", "shear_x", "shear_y", "translate_x", "translate_y")
PHOTOS = ("astronaut", "chelsea", "coffee")


def load_photos(scale: int = 1) -> dict[str, np.ndarray]:
    """The scikit-image photos as uint8 (H, W, 3) arrays, downscaled ``scale`` times by Pillow (BOX) if > 1."""
    from PIL import Image
    from skimage import data

    out = {}
    for name in PHOTOS:
        a = getattr(data, name)()
        if scale > 1:
            im = Image.fromarray(a)
            a = np.asarray(im.resize((im.width // scale, im.height // scale), Image.BOX))
        out[name] = np.array(a, copy=True)  # writable, contiguous
    return out


def augmix_args(op: str, height: int, width: int, level_step: float) -> list[float]:
    """The distinct arguments AugMix can give ``op`` on an ``height x width`` image (see the module docstring)."""
    import torch

    from robust_train.functional.augment_ops import augmix_argument

    if op in ("autocontrast", "equalize"):
        return [0.0]
    step = 0.01 if op in INT_OPS else level_step
    n = int(round((10.0 - 0.1) / step))
    levels = torch.tensor([0.1 + i * step for i in range(n)] + [10.0], dtype=torch.float64)
    signs = (1.0, -1.0) if op in SIGNED else (1.0,)
    args = set()
    for s in signs:
        a = augmix_argument(op, levels, torch.full_like(levels, s), height, width)
        args.update(a.tolist())
    return sorted(args)


def pil_op(img: Any, op: str, arg: float) -> Any:
    """``op`` with argument ``arg`` exactly as the AugMix reference applies it to a PIL image."""
    from PIL import Image, ImageEnhance, ImageOps

    w, h = img.size
    if op == "autocontrast":
        return ImageOps.autocontrast(img)
    if op == "equalize":
        return ImageOps.equalize(img)
    if op == "posterize":
        bits = int(arg)
        if bits == 0:  # Pillow >= 10 refuses 0 bits; the reference's Pillow returned i & 0
            return img.point([0] * 256 * len(img.getbands()))
        return ImageOps.posterize(img, bits)
    if op == "solarize":
        return ImageOps.solarize(img, int(arg))
    if op == "rotate":
        return img.rotate(int(arg), resample=Image.BILINEAR)
    affine = {
        "shear_x": (1, arg, 0, 0, 1, 0),
        "shear_y": (1, 0, 0, arg, 1, 0),
        "translate_x": (1, 0, int(arg), 0, 1, 0),
        "translate_y": (1, 0, 0, 0, 1, int(arg)),
    }
    if op in affine:
        return img.transform((w, h), Image.AFFINE, affine[op], resample=Image.BILINEAR)
    enhance = {
        "color": ImageEnhance.Color,
        "contrast": ImageEnhance.Contrast,
        "brightness": ImageEnhance.Brightness,
        "sharpness": ImageEnhance.Sharpness,
    }
    return enhance[op](img).enhance(arg)


def ours(photo: np.ndarray, op: str, args: list[float]) -> np.ndarray:
    """``apply_ops(pil_exact=True)`` on the photo repeated once per argument; uint8 (N, H, W, 3)."""
    import torch

    from robust_train.functional.augment_ops import apply_ops

    x = torch.from_numpy(photo).permute(2, 0, 1).float().div(255.0).unsqueeze(0).repeat(len(args), 1, 1, 1)
    arg = torch.tensor(args, dtype=torch.float64)
    out = apply_ops(x, [op], torch.zeros(len(args), dtype=torch.int64), arg, pil_exact=True)
    return torch.round(out * 255.0).to(torch.uint8).permute(0, 2, 3, 1).numpy()


def compare_op(photo: np.ndarray, op: str, args: list[float], chunk: int = 8) -> list[dict[str, Any]]:
    """Per argument: fraction of exact pixels, fraction within one level, largest difference."""
    from PIL import Image

    img = Image.fromarray(photo)
    rows = []
    for i in range(0, len(args), chunk):
        part = args[i : i + chunk]
        mine = ours(photo, op, part)
        for a, m in zip(part, mine, strict=True):
            ref = np.asarray(pil_op(img, op, a))
            d = np.abs(ref.astype(np.int16) - m.astype(np.int16))
            rows.append(
                {"arg": a, "exact": float(np.mean(d == 0)), "within1": float(np.mean(d <= 1)), "max": int(d.max())}
            )
    return rows


def pil_augmix(photo: np.ndarray, names: list[str], params: dict[str, Any], view: int = 0) -> np.ndarray:
    """The reference's ``augment_and_mix`` with Pillow, replaying one sample's AugMix params (float64 result in [0, 1]).

    ``params`` holds one sample's tensors (leading dim 1): ``weights``, ``skip``, ``depth``, ``op``, ``level``,
    ``sign``. Each chain starts from the 8-bit photo, applies its ops with Pillow (8-bit after every step), and the
    chains are mixed in float as ``preprocess`` (``ToTensor``) and the mix of the reference do.
    """
    from PIL import Image

    from robust_train.functional.augment_ops import augmix_argument

    h, w = photo.shape[:2]
    clean = photo.astype(np.float64) / 255.0
    mix = np.zeros_like(clean)
    width = params["weights"].shape[2]
    for k in range(width):
        img = Image.fromarray(photo)
        for d in range(int(params["depth"][0, view, k])):
            name = names[int(params["op"][0, view, k, d])]
            level = params["level"][0, view, k, d].view(1)
            sign = params["sign"][0, view, k, d].view(1)
            img = pil_op(img, name, float(augmix_argument(name, level, sign, h, w)[0]))
        mix += float(params["weights"][0, view, k]) * (np.asarray(img).astype(np.float64) / 255.0)
    m = float(params["skip"][0, view])
    return np.clip((1.0 - m) * clean + m * mix, 0.0, 1.0)


def _chain_check(photos: dict[str, np.ndarray], samples: int, severity: float) -> dict[str, Any]:
    import torch

    from robust_train.augment import AugMix

    aug = AugMix(severity=severity, all_ops=True, pil_exact=True, seed=0)
    worst = 0.0
    for photo in photos.values():
        x = torch.from_numpy(photo).permute(2, 0, 1).float().div(255.0).unsqueeze(0).repeat(samples, 1, 1, 1)
        out = aug(x).permute(0, 2, 3, 1).double().numpy()
        params = aug.last_params
        for i in range(samples):
            one = {k: v[i : i + 1] for k, v in params.items()}
            ref = pil_augmix(photo, list(aug.ops), one)
            worst = max(worst, float(np.abs(ref - out[i]).max()))
    return {"severity": severity, "samples": samples * len(photos), "max_abs_diff": worst}


def _timing(batch: int, size: int) -> list[dict[str, Any]]:
    import torch

    from benchmarks.common import time_call
    from robust_train.augment import AugMix

    rows = []
    x = torch.rand(batch, 3, size, size)
    for label, kw in (("float", {}), ("pil_exact", {"pil_exact": True})):
        aug = AugMix(seed=0, jsd=True, **kw)
        t = time_call(lambda aug=aug: aug(x), threads=torch.get_num_threads(), min_run_time=2.0)
        rows.append({"mode": label, "batch": batch, "size": size, "median_ms": 1e3 * t["median_s"]})
    aug = AugMix(seed=0, jsd=True)
    params = aug.sample_params(batch)
    photos = (x * 255.0).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()

    def reference() -> None:  # the reference's per-image Pillow loop, both views
        for i in range(batch):
            one = {k: v[i : i + 1] for k, v in params.items()}
            for view in range(2):
                pil_augmix(photos[i], list(aug.ops), one, view)

    t = time_call(reference, threads=torch.get_num_threads(), min_run_time=2.0)
    rows.append({"mode": "Pillow reference, 1 process", "batch": batch, "size": size, "median_ms": 1e3 * t["median_s"]})
    return rows


def main(argv: list[str] | None = None) -> int:
    """Run the parity sweep and write ``augmix_pil_parity.{json,md}``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="photos downscaled 4x, level step 1.0, 2 chain samples")
    parser.add_argument("--level-step", type=float, default=0.1, help="level grid step of the float-argument ops")
    parser.add_argument("--chain-samples", type=int, default=8, help="AugMix samples per photo in the chain check")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR, help="output directory")
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(min(2, torch.get_num_threads()))
    from robust_train.functional.augment_ops import AUGMIX_OPS_ALL

    scale = 4 if args.quick else 1
    step = 1.0 if args.quick else args.level_step
    samples = 2 if args.quick else args.chain_samples
    photos = load_photos(scale)
    t0 = time.perf_counter()
    rows = []
    for op in AUGMIX_OPS_ALL:
        cases, pixels, exact_cases, min_exact, min_within1, worst, nargs = 0, 0, 0, 1.0, 1.0, 0, 0
        for photo in photos.values():
            h, w = photo.shape[:2]
            op_args = augmix_args(op, h, w, step)
            nargs += len(op_args)
            for r in compare_op(photo, op, op_args):
                cases += 1
                pixels += photo.size
                exact_cases += r["max"] == 0
                min_exact = min(min_exact, r["exact"])
                min_within1 = min(min_within1, r["within1"])
                worst = max(worst, r["max"])
        rule = "bit-exact" if worst == 0 else ("within 1 level on >= 99%" if min_within1 >= 0.99 else "FAILS")
        rows.append(
            {
                "op": op,
                "args": nargs,
                "cases": cases,
                "pixels": pixels,
                "exact_cases": exact_cases,
                "min_exact": min_exact,
                "min_within1": min_within1,
                "max_diff": worst,
                "rule": rule,
            }
        )
        print(f"{op:13s} cases={cases:5d} exact={exact_cases:5d} min_exact={min_exact:.6f} max={worst} -> {rule}")
    chains = [_chain_check(photos, samples, s) for s in (10.0, 3.0)]
    for c in chains:
        print(f"AugMix chains severity {c['severity']}: {c['samples']} samples, max |ours - PIL| = {c['max_abs_diff']}")
    timing = _timing(16 if args.quick else 64, 32)
    elapsed = time.perf_counter() - t0
    md = [
        "# AugMix `pil_exact` vs Pillow",
        "",
        "Generated by `benchmarks/augmix_pil_parity.py`"
        + (" --quick (photos downscaled 4x, level step 1.0)" if args.quick else f" (level step {step})")
        + f"; {elapsed:.0f} s. Photos: scikit-image astronaut, chelsea, coffee"
        + (" (downscaled 4x)." if args.quick else " at full size (512x512, 300x451, 400x600)."),
        "One case = one photo x one argument; integer-argument ops are checked at every argument AugMix's level "
        "table yields for levels 0.1-10 and both signs, float-argument ops on the level grid and both signs. "
        "`posterize` bits 0 (level 10 exactly) is compared with black (Pillow < 10; Pillow >= 10 refuses 0 bits).",
        "",
        markdown_table(
            rows,
            [
                ("op", "op", ""),
                ("args", "args", "d"),
                ("cases", "cases", "d"),
                ("pixels compared", "pixels", "d"),
                ("bit-exact cases", "exact_cases", "d"),
                ("min exact fraction", "min_exact", ".6f"),
                ("min within-1 fraction", "min_within1", ".6f"),
                ("max diff (levels)", "max_diff", "d"),
                ("rule", "rule", ""),
            ],
        ),
        "",
        "## Whole AugMix chains",
        "",
        "`AugMix(all_ops=True, pil_exact=True)` against the reference `augment_and_mix` rebuilt with Pillow from the "
        "same params (width 3, depth 1-3; 8-bit after every op, mix in float64 on the reference side, float32 here).",
        "",
        markdown_table(
            chains,
            [("severity", "severity", ".0f"), ("samples", "samples", "d"), ("max abs diff", "max_abs_diff", ".2e")],
        ),
        "",
        "## Cost (CPU, JSD: 3 splits, 2 threads)",
        "",
        markdown_table(
            timing,
            [("mode", "mode", ""), ("batch", "batch", "d"), ("size", "size", "d"), ("median ms", "median_ms", ".1f")],
        ),
    ]
    meta = collect_metadata("cpu", torch.get_num_threads(), packages=("pillow", "scikit-image"), quick=args.quick)
    stem = args.out / ("augmix_pil_parity_quick" if args.quick else "augmix_pil_parity")
    paths = write_results(stem, meta, {"ops": rows, "chains": chains, "timing": timing}, "\n".join(md))
    print("wrote", *paths)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
