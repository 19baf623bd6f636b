"""``robust-corrupt preview``: the ImageNet-C figure for one image, corruptions (rows) x severities (columns).

The image (any size) is brought to the preset's resolution the way the original datasets were made: ImageNet
``Resize(256)`` (shorter side, bilinear) + ``CenterCrop(224)``; Tiny-ImageNet and CIFAR a centre square crop resized to
64 / 32 px. Every registered corruption (suite ``c19`` order first, then any others) is applied at every severity with
replayable evaluation parameters (``seed``), and the grid is drawn with matplotlib (Agg, no display needed).

Example::

    robust-corrupt preview photo.jpg --out grid.png --preset imagenet --seed 0
    python -m robust_train.cli.preview photo.jpg --out grid.png --corruptions fog,snow --severities 1,3,5
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor

from ..errors import report_user_error
from . import user_error_types

__all__ = ["add_arguments", "build_parser", "load_image", "main", "preview", "preview_grid", "run"]

_PRESET_SIZE = {"imagenet": 224, "tinyimagenet": 64, "cifar": 32}


def load_image(path: str | Path, preset: str = "auto") -> tuple[Tensor, str]:
    """Load an image and prepare it like the preset's source images.

    Args:
        path: any image Pillow can read (converted to RGB).
        preset: ``"auto"`` (from the shorter side: <= 48 px cifar, <= 128 px tinyimagenet, else imagenet),
            ``"imagenet"``, ``"tinyimagenet"`` or ``"cifar"``.

    Returns:
        ``(x, preset)``: (1, 3, S, S) float32 in [0, 1] on the 8-bit grid, and the resolved preset.

    Raises:
        FileNotFoundError: no such file.
        ValueError: unknown preset.
    """
    from PIL import Image

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image not found: {path}")
    try:
        img = Image.open(path).convert("RGB")
    except OSError as err:
        raise ValueError(f"cannot read an image from {path}: {err}") from err
    w, h = img.size
    if preset == "auto":
        side = min(w, h)
        preset = "cifar" if side <= 48 else ("tinyimagenet" if side <= 128 else "imagenet")
    if preset not in _PRESET_SIZE:
        raise ValueError(f"unknown preset {preset!r}; expected 'auto' or one of {sorted(_PRESET_SIZE)}")
    size = _PRESET_SIZE[preset]
    if preset == "imagenet":
        nw, nh = (256, int(256 * h / w)) if w <= h else (int(256 * w / h), 256)
        img = img.resize((nw, nh), Image.BILINEAR)
        left, top = int(round((nw - size) / 2.0)), int(round((nh - size) / 2.0))
        img = img.crop((left, top, left + size, top + size))
    else:
        s = min(w, h)
        left, top = (w - s) // 2, (h - s) // 2
        img = img.crop((left, top, left + s, top + s)).resize((size, size), Image.BILINEAR)
    data = torch.frombuffer(bytearray(img.tobytes()), dtype=torch.uint8).view(size, size, 3)
    return data.permute(2, 0, 1).unsqueeze(0).float() / 255.0, preset


def _default_names() -> list[str]:
    from ..corruptions.suites import CORRUPTIONS, SUITES

    registered = set(CORRUPTIONS.list())
    ordered = [n for n in SUITES["c19"] if n in registered]
    return ordered + sorted(registered - set(ordered))


def preview_grid(
    x: Tensor,
    names: Sequence[str] | None = None,
    severities: Sequence[float] = (1, 2, 3, 4, 5),
    preset: str = "auto",
    seed: int = 0,
) -> tuple[Tensor, list[str]]:
    """Corrupt one image with every corruption at every severity.

    Args:
        x: (1, 3, H, W) image in [0, 1].
        names: corruptions (rows); default every registered one, ``c19`` order first.
        severities: columns (ints 1-5 or floats in [1, 5]).
        preset: parameter table (``"auto"`` from the image size).
        seed: evaluation seed; cell (r, c) depends only on ``(seed, name, severity)``.

    Returns:
        ``(grid, rows)``: (R, S, 3, H, W) tensor on ``x``'s device and the names of the R rows that succeeded
        (a corruption that raises is skipped with a warning).

    Example:
        >>> grid, rows = preview_grid(torch.rand(1, 3, 32, 32), ["contrast"], (1, 5))
        >>> grid.shape, rows
        (torch.Size([1, 2, 3, 32, 32]), ['contrast'])
    """
    from ..corruptions.api import corrupt
    from ..corruptions.suites import CORRUPTIONS

    if x.dim() != 4 or x.shape[0] != 1:
        raise ValueError(f"x: expected one image of shape (1, 3, H, W), got {tuple(x.shape)}")
    names = list(_default_names() if names is None else names)
    for name in names:
        CORRUPTIONS.get(name)  # ValueError with close matches for unknown names
    sev = torch.tensor([float(s) for s in severities], dtype=torch.float64)
    batch = x.expand(len(sev), -1, -1, -1).contiguous()
    rows, out = [], []
    for name in names:
        try:
            with torch.no_grad():
                y = corrupt(batch, name, sev, preset=preset, seed=seed)
        except Exception as err:  # noqa: BLE001 - a broken corruption must not hide the others
            warnings.warn(f"preview: skipping {name!r}: {type(err).__name__}: {err}", stacklevel=2)
            continue
        rows.append(name)
        out.append(y)
    if not out:
        raise ValueError(f"no corruption could be applied (asked for {names})")
    return torch.stack(out), rows


def preview(
    image_path: str | Path,
    out: str | Path,
    preset: str = "auto",
    seed: int = 0,
    corruptions: Sequence[str] | None = None,
    severities: Sequence[float] = (1, 2, 3, 4, 5),
    show_clean: bool = True,
    dpi: int = 100,
    device: str = "cpu",
) -> Path:
    """Write the corruptions x severities figure for one image.

    Args:
        image_path: input image (any size, any format Pillow reads).
        out: output figure path (format from the suffix, e.g. ``.png``, ``.pdf``); parent folders are created.
        preset: ``"auto"``, ``"imagenet"``, ``"tinyimagenet"`` or ``"cifar"`` (image size and parameter table).
        seed: evaluation seed (replayable figure).
        corruptions: row names; default every registered corruption.
        severities: column severities.
        show_clean: add a first column with the clean image.
        dpi: figure resolution; each cell is drawn at the image's pixel size, magnified to at least 1 inch.
        device: where to run the corruptions.

    Returns:
        The path written.

    Raises:
        FileNotFoundError: missing input image.
        ValueError: unknown preset or corruption, or nothing could be drawn.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    x, preset = load_image(image_path, preset)
    grid, rows = preview_grid(x.to(device), corruptions, severities, preset=preset, seed=seed)
    cols = [f"severity {s:g}" for s in severities]
    images = grid.cpu()
    if show_clean:
        cols = ["clean", *cols]
        images = torch.cat([x.expand(len(rows), -1, -1, -1).unsqueeze(1), images], dim=1)
    n_r, n_c, _, h, w = images.shape
    pad = max(2, w // 16)
    mosaic = torch.ones(n_r * (h + pad) - pad, n_c * (w + pad) - pad, 3)
    for r in range(n_r):
        for c in range(n_c):
            top, left = r * (h + pad), c * (w + pad)
            mosaic[top : top + h, left : left + w] = images[r, c].permute(1, 2, 0).clamp(0, 1)
    cell = max(1.0, w / dpi)  # inches per cell: small images are magnified to about an inch
    fig_w, fig_h = cell * n_c + 1.7, cell * n_r + 0.7
    fig = Figure(figsize=(fig_w, fig_h), dpi=dpi)
    FigureCanvasAgg(fig)
    ax = fig.add_axes((1.6 / fig_w, 0.05 / fig_h, (fig_w - 1.7) / fig_w, (fig_h - 0.7) / fig_h))
    ax.imshow(mosaic.numpy(), interpolation="nearest")
    ax.xaxis.tick_top()
    ax.set_xticks([c * (w + pad) + w / 2 for c in range(n_c)], cols, fontsize=9)
    ax.set_yticks([r * (h + pad) + h / 2 for r in range(n_r)], rows, fontsize=9)
    ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    fig.suptitle(f"{Path(image_path).name}: preset {preset}, seed {seed}", fontsize=10, y=1 - 0.12 / fig_h)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    return out


def _csv(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def build_parser() -> argparse.ArgumentParser:
    """Arguments of ``robust-corrupt preview``."""
    p = argparse.ArgumentParser(
        prog="python -m robust_train.cli.preview",
        description="Draw the ImageNet-C figure for one image: corruptions (rows) x severities (columns).",
    )
    add_arguments(p)
    return p


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Add the ``preview`` arguments to ``p`` (this module's parser and the ``robust-corrupt preview`` subparser)."""
    p.add_argument("image", help="input image (any size)")
    p.add_argument("--out", required=True, help="output figure, e.g. grid.png")
    p.add_argument(
        "--preset",
        default="auto",
        choices=("auto", *_PRESET_SIZE),
        help="parameter table and image size (auto: by size)",
    )
    p.add_argument("--seed", type=int, default=0, help="evaluation seed of the replayable parameters")
    p.add_argument("--corruptions", type=_csv, default=None, help="comma-separated names (default: all registered)")
    p.add_argument(
        "--severities",
        type=lambda s: [float(v) for v in _csv(s)],
        default=[1, 2, 3, 4, 5],
        help="comma-separated severities (default: 1,2,3,4,5)",
    )
    p.add_argument("--no-clean", action="store_true", help="omit the clean-image column")
    p.add_argument("--dpi", type=int, default=100, help="figure resolution")
    p.add_argument("--device", default="cpu", help="where the corruptions run (cpu, cuda, ...)")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m robust_train.cli.preview``."""
    return run(build_parser().parse_args(argv))


def run(args: argparse.Namespace) -> int:
    """Draw the figure for parsed arguments (also called by ``robust-corrupt preview``)."""
    try:
        path = preview(
            args.image,
            args.out,
            preset=args.preset,
            seed=args.seed,
            corruptions=args.corruptions,
            severities=args.severities,
            show_clean=not args.no_clean,
            dpi=args.dpi,
            device=args.device,
        )
    except (*user_error_types(), ValueError) as err:
        return report_user_error("robust-corrupt preview", err)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
