"""The torch JPEG codec (``functional/jpeg.py``) against Pillow, bit for bit, and its device-first contract.

Every comparison counts the differing 8-bit values between ``jpeg_roundtrip_torch`` and Pillow's
``Image.save(format="JPEG", quality=q)`` + ``Image.open`` (libjpeg-turbo); the expected count is 0 everywhere.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from robust_train.functional import digital as D
from robust_train.functional._fused import fusion
from robust_train.functional.jpeg import (
    _reciprocals,
    jpeg_codec_tables,
    jpeg_roundtrip_torch,
    jpeg_roundtrip_uint8,
)

from .._helpers import photo_at, photo_uint8

Image = pytest.importorskip("PIL.Image")

#: Every quality of the three presets' JPEG tables (corruptions/digital.py) plus the release quality 85.
PRESET_QUALITIES = (7, 10, 15, 18, 25, 40, 50, 58, 65, 80, 85)
SIZES = ((1, 1), (7, 9), (17, 33), (224, 224), (299, 299), (64, 64), (32, 32), (100, 150))
PHOTO_NAMES = ("astronaut", "chelsea", "coffee")


def _pil_roundtrip(x: np.ndarray, qualities: list[int]) -> np.ndarray:
    """Pillow encode (defaults: 4:2:0, islow, standard tables) + decode of (B, C, H, W) uint8, C in {1, 3}."""
    mode = "L" if x.shape[1] == 1 else "RGB"
    out = []
    for img, q in zip(x, qualities, strict=True):
        buf = io.BytesIO()
        Image.fromarray(img[0] if mode == "L" else img.transpose(1, 2, 0), mode).save(buf, format="JPEG", quality=q)
        dec = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert(mode))
        out.append(dec[None] if mode == "L" else dec.transpose(2, 0, 1))
    return np.stack(out)


def _differing(x: np.ndarray, qualities: list[int]) -> int:
    """Number of 8-bit values where the torch codec and Pillow disagree (shape and dtype checked too)."""
    ours = jpeg_roundtrip_torch(torch.from_numpy(np.ascontiguousarray(x)), qualities)
    assert ours.dtype == torch.uint8 and tuple(ours.shape) == x.shape
    return int((ours.numpy() != _pil_roundtrip(x, qualities)).sum())


def _grey(rgb: np.ndarray) -> np.ndarray:
    """(B, 3, H, W) -> (B, 1, H, W) with Pillow's ``convert("L")``."""
    return np.stack([np.asarray(Image.fromarray(i.transpose(1, 2, 0)).convert("L"))[None] for i in rgb])


def _photos(size: int | None) -> np.ndarray:
    """The three photos as (3, 3, S, S) uint8: resized to ``size``, or the native top-left 299 x 299 crop."""
    if size is None:
        return np.stack([photo_uint8(n)[:299, :299].transpose(2, 0, 1) for n in PHOTO_NAMES])
    return np.stack([photo_at(n, size).transpose(2, 0, 1) for n in PHOTO_NAMES])


def _random(shape: tuple[int, ...], seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


# ---------------------------------------------------------------------------------------------------- bit-exactness


@pytest.mark.parametrize("size", [224, None], ids=["224", "299crop"])
@pytest.mark.parametrize("grey", [False, True], ids=["rgb", "grey"])
def test_photos_preset_qualities_equal_pillow(size: int | None, grey: bool) -> None:
    photos = _photos(size)
    qs = list(PRESET_QUALITIES)
    x = np.repeat(photos, len(qs), 0)  # every photo at every quality
    x = _grey(x) if grey else x
    assert _differing(x, qs * len(PHOTO_NAMES)) == 0


@pytest.mark.parametrize(("h", "w"), SIZES, ids=[f"{h}x{w}" for h, w in SIZES])
@pytest.mark.parametrize("channels", [3, 1])
def test_random_images_sizes_equal_pillow(h: int, w: int, channels: int) -> None:
    qs = list(PRESET_QUALITIES) + [1, 100]
    x = _random((len(qs), channels, h, w), seed=h * 1000 + w)
    assert _differing(x, qs) == 0


def test_quality_sweep_equal_pillow() -> None:
    """Qualities 1-100 on a resized photo, a random image (odd size) and a grey photo."""
    qs = list(range(1, 101))
    photo = np.repeat(_photos(48)[:1], 100, 0)
    assert _differing(photo, qs) == 0
    assert _differing(_random((100, 3, 23, 41), seed=5), qs) == 0
    assert _differing(_grey(photo), qs) == 0


def test_small_sizes_equal_pillow() -> None:
    """Edge cases of MCU padding and upsampling (chroma width <= 2 switches libjpeg to plain replication)."""
    sides = (1, 2, 3, 4, 5, 8, 9, 15, 16, 17, 33)
    total = 0
    for h in sides:
        for w in sides:
            x = _random((2, 3, h, w), seed=h * 100 + w)
            total += _differing(x, [5, 90]) + _differing(x[:, :1].copy(), [5, 90])
    assert total == 0


def test_extreme_patterns_equal_pillow() -> None:
    """0/255 checkerboards and random sign blocks at the lowest qualities (largest IDCT overshoot)."""
    yy, xx = np.mgrid[:32, :48]
    rng = np.random.default_rng(7)
    pats = [(yy + xx) % 2, xx % 2, (yy // 2 + xx // 2) % 2, np.tile(rng.random((8, 8)) < 0.5, (4, 6))]
    x = np.stack([np.stack([p, 1 - p, p]).astype(np.uint8) * 255 for p in pats])
    for q in (1, 2, 5, 100):
        assert _differing(x, [q] * len(pats)) == 0


@pytest.mark.slow
def test_quality_sweep_photos_equal_pillow() -> None:
    """Every quality 1-100 on the three native 299 x 299 photo crops, RGB and grey."""
    qs = list(range(1, 101))
    for photo in _photos(None):
        x = np.repeat(photo[None], 100, 0)
        assert _differing(x, qs) == 0
        assert _differing(_grey(x), qs) == 0


@pytest.mark.slow
def test_size_sweep_equal_pillow() -> None:
    """Every H, W in 1..40, random images, RGB and grey, random qualities."""
    rng = np.random.default_rng(11)
    total = 0
    for h in range(1, 41):
        for w in range(1, 41):
            qs = [int(q) for q in rng.integers(1, 101, 2)]
            x = _random((2, 3, h, w), seed=h * 100 + w)
            total += _differing(x, qs) + _differing(x[:, :1].copy(), qs)
    assert total == 0


# ---------------------------------------------------------------------------------------------------- stages, API


def test_reciprocal_quantisation_is_rounded_division() -> None:
    """libjpeg-turbo's reciprocal quantiser equals round-half-up division of |c| by 8q for every 16-bit |c|."""
    rec = torch.as_tensor(_reciprocals())
    c = torch.arange(0, 1 << 15, dtype=torch.int64).view(-1, 1)
    q = torch.arange(1, 256, dtype=torch.int64).view(1, -1)
    recip, corr, shift = rec[1:, 0], rec[1:, 1], rec[1:, 2]
    got = ((c + corr) * recip) >> shift
    assert torch.equal(got, torch.div(c + 4 * q, 8 * q, rounding_mode="floor"))


def test_tables_match_digital_quant_tables() -> None:
    qs = torch.arange(1, 101)
    tables = torch.as_tensor(jpeg_codec_tables(qs, 100))
    assert tables.shape == (100, 2, 4, 8, 8) and tables.dtype == torch.int32
    assert torch.equal(tables[:, :, 0].long(), D.jpeg_quant_tables(qs))


def test_float_input_and_scalar_quality() -> None:
    x = torch.rand(3, 3, 13, 21, dtype=torch.float64)
    u8 = torch.round(x * 255).to(torch.uint8)
    out = jpeg_roundtrip_torch(x, 30)
    assert out.dtype == torch.float64
    assert torch.equal(out, jpeg_roundtrip_torch(u8, torch.tensor([30.2, 29.6, 30.0])).double() / 255)


def test_bad_arguments_raise() -> None:
    x = torch.zeros(2, 3, 8, 8, dtype=torch.uint8)
    with pytest.raises(ValueError, match="quality"):
        jpeg_roundtrip_torch(x, [0, 50])
    with pytest.raises(ValueError, match="quality"):
        jpeg_roundtrip_torch(x, [50, 50, 50])
    with pytest.raises(ValueError, match="x: expected images of shape"):
        jpeg_roundtrip_torch(torch.zeros(2, 2, 8, 8, dtype=torch.uint8), 50)
    with pytest.raises(ValueError, match="non-empty"):
        jpeg_roundtrip_torch(torch.zeros(2, 3, 0, 8, dtype=torch.uint8), 50)
    with pytest.raises(ValueError, match="dtype"):
        jpeg_roundtrip_torch(x.to(torch.int32), 50)
    with pytest.raises(ValueError, match="codec"):
        D.jpeg_compression(x.float(), 50, codec="nvjpeg")


# ---------------------------------------------------------------------------------------------------- device first


def test_runs_under_fake_tensor_mode_on_cuda() -> None:
    """No data-dependent op: fake CUDA tensors go through (any read of a value would raise)."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    with fusion("off"), FakeTensorMode(allow_non_fake_inputs=False):  # the eager ops (compiling needs a GPU)
        for channels in (3, 1):
            for dtype in (torch.uint8, torch.float32):
                x = torch.empty(4, channels, 37, 53, device="cuda", dtype=dtype)
                out = jpeg_roundtrip_torch(x, [7, 25, 85, 100])
                assert out.shape == x.shape and out.device.type == "cuda" and out.dtype == dtype


class _CountOps(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.ops: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204
        self.ops.append(str(func))
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("channels", [3, 1])
def test_aten_ops_independent_of_batch_size(channels: int) -> None:
    counts = {}
    for b in (2, 32):
        x = torch.from_numpy(_random((b, channels, 19, 27), seed=b))
        tables = torch.as_tensor(jpeg_codec_tables(list(range(1, b + 1)), b))
        with _CountOps() as mode:
            jpeg_roundtrip_uint8.eager(x, tables)
        counts[b] = mode.ops
    assert len(counts[2]) > 50
    assert counts[2] == counts[32]


# ---------------------------------------------------------------------------------------------------- wiring


def test_torch_and_libjpeg_codecs_identical() -> None:
    photos = torch.from_numpy(_photos(64)).float() / 255
    rand = torch.rand(4, 3, 37, 29)
    for x, qs in ((photos, [7, 50, 85]), (rand, [1, 18, 65, 100])):
        q = torch.tensor(qs)
        a = D.jpeg_compression(x, q, codec="cpu")
        b = D.jpeg_compression(x, q, codec="torch")
        assert torch.equal(a, b)
        assert torch.equal(D.jpeg_compression(x, q), a)  # auto on the CPU: the libjpeg path, same values
        assert torch.equal(D.jpeg_roundtrip(x, q, codec="torch"), a)


def test_torch_codec_value_and_surrogate_gradient() -> None:
    x = torch.rand(2, 3, 16, 24, requires_grad=True)
    q = torch.tensor([20, 80])
    out = D.jpeg_compression(x, q, codec="torch")
    assert torch.equal(out.detach(), D.jpeg_compression(x.detach(), q, codec="cpu"))
    out.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


@pytest.mark.slow
def test_fused_equals_eager() -> None:
    """The compiled kernel (Inductor C++ here; Triton on CUDA) computes the same integers (compiles ~1 min)."""
    x = torch.from_numpy(_random((4, 3, 37, 53), seed=3))
    tables = torch.as_tensor(jpeg_codec_tables([1, 20, 85, 100], 4))
    with fusion("on"):
        compiled = jpeg_roundtrip_uint8(x, tables)
    assert torch.equal(compiled, jpeg_roundtrip_uint8.eager(x, tables))


@pytest.mark.slow
def test_benchmark_quick_run(tmp_path) -> None:  # noqa: ANN001
    """``benchmarks/jpeg_codec.py --quick`` runs and reports identical outputs (structure only, no timings)."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    cmd = [sys.executable, "benchmarks/jpeg_codec.py", "--quick", "--out", str(tmp_path)]
    subprocess.run(cmd, cwd=root, check=True, capture_output=True, timeout=600)
    rows = json.loads((tmp_path / "jpeg_codec_cpu_quick.json").read_text())["results"]
    assert {r["regime"] for r in rows} == {"libjpeg", "torch eager"}
    assert all(r["identical_to_libjpeg"] and r["ms_per_image"] > 0 for r in rows)


def test_module_codecs_and_release_roundtrip_identical() -> None:
    """``JpegCompression(codec=...)`` and the release-JPEG stage (``jpeg_quality=85``) agree across codecs."""
    from robust_train.corruptions import create_corruption

    x = torch.from_numpy(_photos(32)).float() / 255
    outs = [create_corruption("jpeg_compression", severity=2, seed=0, codec=c)(x) for c in ("cpu", "torch")]
    assert torch.equal(outs[0], outs[1])
    released = create_corruption("contrast", severity=1, seed=0, jpeg_quality=85)(x)
    contrast = create_corruption("contrast", severity=1, seed=0, quantize=True)(x)
    assert torch.equal(released, D.jpeg_compression(contrast, 85, codec="torch"))
