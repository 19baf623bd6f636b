"""Test helpers: per-dtype tolerances, ``assert_close``, a float64 ``gradcheck`` wrapper, ``RunIf``, photos, seeded
random image batches."""

from __future__ import annotations

import functools
import importlib.util

import numpy as np
import pytest
import torch
from torch import Tensor

TOLERANCES: dict[torch.dtype, tuple[float, float]] = {  # (rtol, atol)
    torch.float64: (1e-7, 1e-7),
    torch.float32: (1e-4, 1e-5),
    torch.float16: (1e-2, 1e-2),
    torch.bfloat16: (5e-2, 5e-2),
}


def tolerance(dtype: torch.dtype) -> tuple[float, float]:
    return TOLERANCES[dtype]


def assert_close(actual: Tensor, expected: Tensor, rtol: float | None = None, atol: float | None = None) -> None:
    """``torch.testing.assert_close`` with tolerances from the per-dtype table."""
    r, a = tolerance(actual.dtype if actual.is_floating_point() else torch.float64)
    torch.testing.assert_close(
        actual, expected.to(actual.dtype), rtol=r if rtol is None else rtol, atol=a if atol is None else atol
    )


def gradcheck(fn, *inputs: Tensor, **kwargs) -> bool:
    """``torch.autograd.gradcheck`` with float tensors cast to float64 and ``requires_grad`` set."""
    cast = []
    for t in inputs:
        if isinstance(t, Tensor) and t.is_floating_point():
            t = t.detach().to(torch.float64).requires_grad_(True)
        cast.append(t)
    kwargs.setdefault("eps", 1e-6)
    kwargs.setdefault("atol", 1e-4)
    kwargs.setdefault("nondet_tol", 1e-10)
    return torch.autograd.gradcheck(fn, tuple(cast), **kwargs)


def has_module(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


class RunIf:
    """``@RunIf(min_gpus=1, kernels=True, modules=["cv2"])`` -> a skipif marker."""

    def __new__(cls, min_gpus: int = 0, kernels: bool = False, modules: tuple[str, ...] = ()):  # type: ignore[misc]
        reasons = []
        if min_gpus and torch.cuda.device_count() < min_gpus:
            reasons.append(f"needs {min_gpus} GPU(s)")
        if kernels and not has_module("triton"):
            reasons.append("needs triton")
        for m in modules:
            if not has_module(m):
                reasons.append(f"needs {m}")
        return pytest.mark.skipif(bool(reasons), reason=", ".join(reasons) or "ok")


PHOTOS = ("astronaut", "chelsea", "coffee", "rocket")


@functools.cache
def photo_uint8(name: str) -> np.ndarray:
    """A CC0 photo bundled with scikit-image as (H, W, 3) uint8."""
    skdata = pytest.importorskip("skimage.data")
    img = getattr(skdata, name)()
    if img.ndim == 2:
        img = np.stack([img] * 3, -1)
    return np.ascontiguousarray(img[..., :3])


def photo_at(name: str, size: int) -> np.ndarray:
    """Centre square crop of a bundled photo, resized with PIL bilinear to ``size`` x ``size`` uint8."""
    from PIL import Image

    img = photo_uint8(name)
    h, w = img.shape[:2]
    s = min(h, w)
    top, left = (h - s) // 2, (w - s) // 2
    pil = Image.fromarray(img[top : top + s, left : left + s]).resize((size, size), Image.BILINEAR)
    return np.asarray(pil).copy()


def to_tensor(img: np.ndarray, device: str = "cpu", dtype: torch.dtype = torch.float32) -> Tensor:
    """(H, W, 3) uint8 -> (1, 3, H, W) float in [0, 1]."""
    return torch.from_numpy(img).permute(2, 0, 1).unsqueeze(0).to(device=device, dtype=dtype) / 255.0


def to_uint8(x: Tensor) -> np.ndarray:
    """(1, 3, H, W) float in [0, 1] -> (H, W, 3) uint8 by truncation (as the original's np.uint8 cast)."""
    return np.floor(x[0].permute(1, 2, 0).double().cpu().numpy() * 255 + 1e-6).clip(0, 255).astype(np.uint8)


def seeded_images(
    b: int = 8, size: int = 16, device: str = "cpu", dtype: torch.dtype = torch.float32, channels: int = 3
) -> Tensor:
    """A (b, channels, size, size) batch of uniform [0, 1) images, seeded with 0 (the same on every call)."""
    g = torch.Generator().manual_seed(0)
    return torch.rand(b, channels, size, size, generator=g).to(device=device, dtype=dtype)
