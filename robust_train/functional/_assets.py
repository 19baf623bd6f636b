"""Lazily loaded data files: the six frost photographs of ImageNet-C (spec 2.11).

The textures are never redrawn or approximated: they are read at run time from the files that the
``imagecorruptions`` package installs (identical copies of the original ``frost1.png ... frost6.jpg``). The package
is located with :func:`importlib.util.find_spec` and is **not imported** (its import needs shims on current
NumPy/setuptools); only its data files are read, so ``pip install --no-deps imagecorruptions`` is enough.

Decoding follows ``cv2.imread`` with default flags: 3-channel 8-bit, alpha channels of the PNGs dropped without
compositing. We decode with Pillow and keep RGB order (the original reads BGR and flips to RGB after cropping, which is
the same pixels); the test suite checks the decoded pixels against ``cv2.imread``. Each file's MD5 is checked against
the digest of the original ImageNet-C files on first use.

Textures are cached once per process on the CPU (uint8) and per ``(device, scale, size)`` for the prepared stacks.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import io
import math
import os
import threading

import torch
from torch import Tensor

__all__ = [
    "FROST_FILES",
    "FROST_MD5",
    "clear_frost_cache",
    "cv_resize_linear_uint8",
    "frost_dir",
    "frost_sizes",
    "frost_stack",
    "load_frost",
]

#: The frost photographs of the original, in index order (index 5, ``frost6.jpg``, is never drawn by the original).
FROST_FILES: tuple[str, ...] = ("frost1.png", "frost2.png", "frost3.png", "frost4.jpg", "frost5.jpg", "frost6.jpg")
#: MD5 digests of the original files.
FROST_MD5: tuple[str, ...] = (
    "6ead634ace1f366d77e87078b465863c",
    "98f0d2b1d74a048d3bc9c7ecfd886939",
    "b3ed8eb147824261888e730f916c0d8b",
    "d70b9d6aa0b1fe7bd8133b113787e078",
    "50984ae2c871b7df2c28f1d71ca460a0",
    "bd01b8fc7c34a4ff3265c6fb476cff7b",
)

_INSTALL_HINT = (
    "The frost corruption reads the original ImageNet-C frost photographs from the files installed by the "
    "'imagecorruptions' package. Install it with `pip install imagecorruptions` (its dependencies are not needed: "
    "`pip install --no-deps imagecorruptions` is enough)."
)

_LOCK = threading.Lock()
_STACKS: dict[tuple, tuple[Tensor, Tensor]] = {}


def frost_dir() -> str:
    """Directory holding ``frost1.png ... frost6.jpg`` (inside the installed ``imagecorruptions`` package).

    Raises:
        RuntimeError: the package (or its ``frost`` folder) is not installed; the message says how to install it.
    """
    spec = importlib.util.find_spec("imagecorruptions")
    if spec is None or spec.origin is None:
        raise RuntimeError(f"frost textures not found: package 'imagecorruptions' is not installed. {_INSTALL_HINT}")
    path = os.path.join(os.path.dirname(spec.origin), "frost")
    missing = [f for f in FROST_FILES if not os.path.isfile(os.path.join(path, f))]
    if missing:
        raise RuntimeError(f"frost textures not found: {missing} missing in {path}. {_INSTALL_HINT}")
    return path


@functools.cache
def load_frost(index: int) -> Tensor:
    """Decode one frost photograph as ``cv2.imread`` would, in RGB order.

    Args:
        index: 0..5 (``frost1.png`` ... ``frost6.jpg``).

    Returns:
        uint8 tensor of shape (3, H, W) on the CPU (RGB; alpha dropped). Cached.

    Raises:
        ValueError: index out of range.
        RuntimeError: files missing or not the original ones (MD5 mismatch).
    """
    if not 0 <= int(index) < len(FROST_FILES):
        raise ValueError(f"frost index must be in [0, {len(FROST_FILES)}), got {index}")
    from PIL import Image

    path = os.path.join(frost_dir(), FROST_FILES[index])
    with open(path, "rb") as fh:
        data = fh.read()
    digest = hashlib.md5(data).hexdigest()
    if digest != FROST_MD5[index]:
        raise RuntimeError(
            f"{path} is not the original ImageNet-C frost texture (md5 {digest}, expected "
            f"{FROST_MD5[index]}); reinstall imagecorruptions"
        )
    with Image.open(io.BytesIO(data)) as im:
        rgb = im.convert("RGB")  # RGBA -> RGB drops alpha without compositing, as cv2.imread does
        t = torch.frombuffer(bytearray(rgb.tobytes()), dtype=torch.uint8)
        t = t.view(rgb.size[1], rgb.size[0], 3).permute(2, 0, 1).contiguous()
    return t


def _linear_coeffs(n_src: int, n_dst: int, scale: float) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """OpenCV ``INTER_LINEAR`` source indices and 11-bit fixed-point weights along one axis."""
    d = torch.arange(n_dst, dtype=torch.float64)
    f = ((d + 0.5) * scale - 0.5).to(torch.float32)  # OpenCV: fx = (float)((dx + 0.5) * scale_x - 0.5)
    s = torch.floor(f).to(torch.int64)
    f = f - s.to(torch.float32)
    low = s < 0
    f = torch.where(low, torch.zeros_like(f), f)
    s = torch.where(low, torch.zeros_like(s), s)
    high = s >= n_src - 1
    f = torch.where(high, torch.zeros_like(f), f)
    s = torch.where(high, torch.full_like(s, n_src - 1), s)
    c0 = torch.round((1.0 - f) * 2048.0).to(torch.int64)  # saturate_cast<short>: round half to even
    c1 = 2048 - c0
    s1 = (s + 1).clamp(max=n_src - 1)
    return s, s1, c0, c1


def cv_resize_linear_uint8(img: Tensor, fx: float, fy: float | None = None) -> Tensor:
    """``cv2.resize(img, (0, 0), fx=fx, fy=fy)`` (bilinear, 8 bit) bit for bit.

    Output size ``round_half_even(W * fx), round_half_even(H * fy)``; source coordinate ``(d + 0.5) / f - 0.5``
    (clamped at the borders, no antialiasing); 11-bit fixed-point weights, integer horizontal pass, then OpenCV's
    SIMD vertical pass ``(((S0 >> 4) * b0 >> 16) + ((S1 >> 4) * b1 >> 16) + 2) >> 2``. Verified equal to OpenCV
    for the frost textures at factors 0.3 and 0.2.

    Args:
        img: uint8 image, shape (C, H, W).
        fx: horizontal scale factor (> 0).
        fy: vertical scale factor; defaults to ``fx``.

    Returns:
        uint8 tensor of shape (C, round(H * fy), round(W * fx)).

    Example:
        >>> cv_resize_linear_uint8(torch.zeros(3, 10, 20, dtype=torch.uint8), 0.3).shape
        torch.Size([3, 3, 6])
    """
    if img.dtype != torch.uint8 or img.dim() != 3:
        raise ValueError(f"img: expected a uint8 tensor of shape (C, H, W), got {img.dtype} {tuple(img.shape)}")
    fy = fx if fy is None else fy
    if not (fx > 0 and fy > 0):
        raise ValueError(f"scale factors must be > 0, got fx={fx}, fy={fy}")
    _, h, w = img.shape
    oh, ow = round(h * fy), round(w * fx)  # Python round = half to even, as cvRound
    if oh < 1 or ow < 1:
        raise ValueError(f"resizing {h}x{w} by ({fy}, {fx}) gives an empty image")
    sy, sy1, b0, b1 = (t.to(img.device) for t in _linear_coeffs(h, oh, 1.0 / fy))
    sx, sx1, a0, a1 = (t.to(img.device) for t in _linear_coeffs(w, ow, 1.0 / fx))
    src = img.to(torch.int64)
    hor = src[:, :, sx] * a0 + src[:, :, sx1] * a1  # (C, H, ow)
    s0 = hor[:, sy] >> 4
    s1 = hor[:, sy1] >> 4
    v = ((s0 * b0.view(1, -1, 1)) >> 16) + ((s1 * b1.view(1, -1, 1)) >> 16)
    return ((v + 2) >> 2).clamp(0, 255).to(torch.uint8)


def frost_sizes(scale: float, count: int = len(FROST_FILES)) -> list[tuple[int, int]]:
    """(H, W) of the first ``count`` textures after the preset resize by ``scale`` (1 = no resize)."""
    out = []
    for i in range(count):
        _, h, w = load_frost(i).shape
        out.append((h, w) if scale == 1 else (round(h * scale), round(w * scale)))
    return out


def _prepare(index: int, scale: float, height: int, width: int) -> Tensor:
    """Texture ``index`` resized by ``scale`` (OpenCV semantics); upscaled further when it cannot hold a crop."""
    tex = load_frost(index)
    if scale != 1:
        tex = cv_resize_linear_uint8(tex, scale)
    _, h, w = tex.shape
    if h <= height or w <= width:
        # Generalisation for images at least as large as the texture: rescale (same bilinear) so that the texture
        # exceeds the image by at least one pixel on both axes, keeping its aspect ratio.
        f = max((height + 1) / h, (width + 1) / w)
        fy = max(math.ceil(h * f), height + 1) / h
        fx = max(math.ceil(w * f), width + 1) / w
        tex = cv_resize_linear_uint8(tex, fx, fy)
    return tex


def frost_stack(
    scale: float, height: int, width: int, device: torch.device | str = "cpu", count: int = len(FROST_FILES)
) -> tuple[Tensor, Tensor]:
    """The first ``count`` textures, prepared for crops of ``height`` x ``width``, stacked and zero-padded.

    Args:
        scale: preset resize factor (1 ImageNet, 0.3 Tiny-ImageNet, 0.2 CIFAR).
        height: image height H.
        width: image width W.
        device: where to keep the stack.
        count: number of textures (5 reproduces the original, 6 also loads ``frost6.jpg``).

    Returns:
        ``(stack, sizes)``: uint8 (count, 3, Hmax, Wmax) RGB textures on ``device`` and int64 (count, 2) sizes (CPU);
        every size is strictly larger than (H, W). Cached per ``(scale, size class, device, count)``.
    """
    device = torch.device(device)
    # Textures only change when one of them is too small for the image, so the key uses the smallest sizes.
    small = min(min(s) for s in frost_sizes(scale, count))
    key_size = (height, width) if max(height, width) >= small else (0, 0)
    key = (float(scale), key_size, str(device), int(count))
    with _LOCK:
        hit = _STACKS.get(key)
    if hit is not None and (hit[1][:, 0].min() > height and hit[1][:, 1].min() > width):
        return hit
    texs = [_prepare(i, scale, height, width) for i in range(count)]
    hmax = max(t.shape[1] for t in texs)
    wmax = max(t.shape[2] for t in texs)
    stack = torch.zeros(count, 3, hmax, wmax, dtype=torch.uint8)
    for i, t in enumerate(texs):
        stack[i, :, : t.shape[1], : t.shape[2]] = t
    sizes = torch.tensor([[t.shape[1], t.shape[2]] for t in texs], dtype=torch.int64)
    out = (stack.to(device), sizes)
    with _LOCK:
        if len(_STACKS) >= 32:  # many different large image sizes: keep memory bounded
            _STACKS.clear()
        _STACKS[key] = out
    return out


def clear_frost_cache() -> None:
    """Drop the cached texture stacks (and decoded files)."""
    with _LOCK:
        _STACKS.clear()
    load_frost.cache_clear()
