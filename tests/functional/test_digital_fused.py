"""Fused (compiled) paths of the digital family against their eager references and the reference libraries."""

from __future__ import annotations

import io
import threading

import numpy as np
import pytest
import torch
from PIL import Image

from robust_train.functional import digital as F
from robust_train.functional._fused import fusion


def _photo_like(b: int, h: int, w: int, seed: int = 0, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Smooth 8-bit images with some texture (exercises rounding ties and the 8-bit grid)."""
    g = torch.Generator().manual_seed(seed)
    base = torch.nn.functional.interpolate(torch.rand(b, 3, 6, 7, generator=g), size=(h, w), mode="bilinear")
    noisy = (base * 200 + torch.rand(b, 3, h, w, generator=g) * 55).floor()
    return (noisy / 255.0).to(dtype)


def _to_u8(x: torch.Tensor) -> np.ndarray:
    return np.round(x.permute(0, 2, 3, 1).double().numpy() * 255.0).astype(np.uint8)


def _pil_pixelate(img: np.ndarray, c: float) -> np.ndarray:
    h, w = img.shape[:2]
    small = Image.fromarray(img).resize((int(w * c), int(h * c)), Image.BOX)
    return np.asarray(small.resize((w, h), Image.BOX))


@pytest.mark.parametrize("factor", [0.6, 0.5, 0.4, 0.25, 0.95])
def test_pixelate_fast_path_matches_pil_and_eager(factor: float) -> None:
    x = _photo_like(2, 40, 52)
    with fusion("off"):
        eager = F.pixelate(x, factor)
    with fusion("on"):
        compiled = F.pixelate(x, factor)
    assert torch.equal(eager, compiled)
    for i, img in enumerate(_to_u8(x)):
        assert np.array_equal(_to_u8(compiled[i : i + 1])[0], _pil_pixelate(img, factor))


def test_pixelate_fast_path_equals_general_path() -> None:
    """Uniform sizes take the fused path, mixed sizes the general one: a sample's result must not depend on it."""
    x = _photo_like(3, 33, 33, seed=1)
    mixed = F.pixelate(x, torch.tensor([0.5, 0.3, 0.5], dtype=torch.float64))
    assert torch.equal(mixed[0:1], F.pixelate(x[0:1], 0.5))
    assert torch.equal(mixed[1:2], F.pixelate(x[1:2], 0.3))


def test_jpeg_fused_conversions_match_pil() -> None:
    x = _photo_like(2, 24, 40, seed=2)
    with fusion("on"):
        out32 = F.jpeg_compression(x, torch.tensor([15, 60]))
        out64 = F.jpeg_compression(x.double(), torch.tensor([15, 60]))
    assert out32.is_contiguous() and out32.dtype == torch.float32 and out64.dtype == torch.float64
    assert torch.equal(out32.double(), out64.float().double())
    for i, (img, q) in enumerate(zip(_to_u8(x), (15, 60), strict=True)):
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, format="JPEG", quality=q)
        ref = np.asarray(Image.open(buf).convert("RGB"))
        assert np.array_equal(_to_u8(out32[i : i + 1])[0], ref)


@pytest.mark.parametrize("hw", [(32, 32), (37, 51), (9, 17)])
def test_torchvision_encoder_writes_pillows_files(hw: tuple[int, int]) -> None:
    """The CPU codec encodes with ``torchvision.io.encode_jpeg`` given a CHW view of HWC memory (as the codec
    threads do): the files must be byte-identical to the original's ``PIL.Image.save`` at every quality."""
    from torchvision.io import encode_jpeg

    img = _to_u8(_photo_like(1, *hw, seed=4))[0]
    view = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)
    for q in range(1, 101):
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, format="JPEG", quality=q)
        assert encode_jpeg(view, quality=q).numpy().tobytes() == buf.getvalue(), q


@pytest.mark.parametrize("fuse", ["off", "on"])
@pytest.mark.parametrize("mode", ["inference", "no_grad"])
def test_jpeg_codec_threads_under_inference_mode(mode: str, fuse: str) -> None:
    """The CPU codec's pool threads write into a tensor made by the caller: also under ``torch.inference_mode()``
    (evaluation runs there; inference mode is thread-local) - the pool must be used, hence two torch threads. With
    fusion on the pool threads run the compiled conversion kernels (one OpenMP thread each, GIL released)."""
    x = _photo_like(40, 24, 24, seed=3)  # 40 images: several conversion groups per thread
    q = torch.tensor([10, 30, 50, 90] * 10)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    group = F._CODEC_GROUP_BYTES
    F._CODEC_GROUP_BYTES = 7 * x[0].numel() * 4  # groups of 7 images: 20 per thread = 7 + 7 + 6
    try:
        with fusion(fuse):
            ctx = torch.inference_mode() if mode == "inference" else torch.no_grad()
            with ctx:
                out = F.jpeg_compression(x, q)
            assert torch.get_num_threads() == 2  # restored after the codec's one-OpenMP-thread section
        ref = []
        for i, img in enumerate(_to_u8(x)):
            buf = io.BytesIO()
            Image.fromarray(img).save(buf, format="JPEG", quality=int(q[i]))
            ref.append(np.asarray(Image.open(buf).convert("RGB")))
    finally:
        F._CODEC_GROUP_BYTES = group
        torch.set_num_threads(threads)
    assert out.is_inference() == (mode == "inference")
    assert np.array_equal(_to_u8(out), np.stack(ref))


def test_jpeg_codec_threads_leave_the_thread_count_of_new_threads() -> None:
    """The pool threads set their own OpenMP thread count to one; a thread started after a JPEG call (a data loader
    thread, say) must still get the process's count, not the codec threads' one."""
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        F.jpeg_compression(_photo_like(4, 16, 16), 50)
        seen: list[int] = []
        t = threading.Thread(target=lambda: seen.append(torch.get_num_threads()))
        t.start()
        t.join()
    finally:
        torch.set_num_threads(threads)
    assert seen == [2]


@pytest.mark.parametrize("fuse", ["off", "on"])
def test_jpeg_value_check_folded_into_the_conversion(fuse: str) -> None:
    """``check_values=True`` (the module's path) raises as ``check_image`` does, from the ``aminmax`` that the uint8
    conversion computes (fused: Inductor's min/max must propagate NaN); without it values are clipped."""
    x = _photo_like(3, 16, 16, seed=5)
    with fusion(fuse):
        for bad, match in (
            (float("nan"), "NaN"),
            (1.5, r"\[0, 1\]"),
            (-0.25, r"\[0, 1\]"),
            (float("inf"), r"\[0, 1\]"),
        ):
            y = x.clone()
            y[2, 1, 5, 7] = bad
            with pytest.raises(ValueError, match=match):
                F.jpeg_compression(y, 50, check_values=True)
        y = x.clone()
        y[0, 0, 0, 0] = 1.5
        clipped = x.clone()
        clipped[0, 0, 0, 0] = 1.0
        assert torch.equal(F.jpeg_compression(y, 50), F.jpeg_compression(clipped, 50, check_values=True))


def test_saturate_and_contrast_fused_are_bit_exact() -> None:
    x = torch.rand(2, 3, 17, 23, generator=torch.Generator().manual_seed(3))
    x[0, :, :4] = 0.5  # grey pixels (hue 0) and ties between channels
    x[1, 1, :3] = x[1, 2, :3]
    m, o = torch.tensor([0.3, 20.0]), torch.tensor([0.0, 0.2])
    c = torch.tensor([0.05, 0.4])
    with fusion("off"):
        sat, con = F.saturate(x, m, o), F.contrast(x, c)
    with fusion("on"):
        assert torch.equal(F.saturate(x, m, o), sat)
        assert torch.equal(F.contrast(x, c), con)


@pytest.mark.parametrize("n", [5, 8])
@pytest.mark.parametrize("mirror", [True, False])
def test_tap_index_folds_like_numpy_pad(n: int, mirror: bool) -> None:
    i = torch.arange(-4 * n, 5 * n, dtype=torch.float64)
    got = F._tap_index(i, n, mirror)
    pad = 4 * n
    ref = np.pad(np.arange(n), (pad, pad + n), mode="reflect" if mirror else "symmetric")
    assert got.dtype == torch.int64
    assert np.array_equal(got.numpy(), ref[(i.numpy() + pad).astype(int)])


@pytest.mark.parametrize(("h", "w", "alpha", "sigma", "rng"), [(40, 40, 30.0, 4.0, 6.0), (36, 52, 90.0, 40.0, 9.0)])
def test_elastic_fused_matches_grid_sample_path(h: int, w: int, alpha: float, sigma: float, rng: float) -> None:
    """The fused tap-folded sampling equals the eager ``grid_sample`` path to float rounding (large displacements
    included: positions far outside the image fold several times)."""
    x = _photo_like(2, h, w, seed=4)
    g = torch.Generator().manual_seed(5)
    offsets = (torch.rand(2, 3, 2, generator=g, dtype=torch.float64) * 2 - 1) * rng
    noise = torch.rand(2, 2, h, w, generator=g, dtype=torch.float64) * 2 - 1
    with fusion("off"):
        eager = F.elastic_transform(x, alpha, sigma, offsets, noise=noise)
    with fusion("on"):
        compiled = F.elastic_transform(x, alpha, sigma, offsets, noise=noise)
    assert float((compiled - eager).abs().max()) <= 1e-6
    q = lambda t: torch.floor(t * 255.0 + 1e-4)  # noqa: E731
    assert float((q(compiled) == q(eager)).float().mean()) >= 0.999


@pytest.mark.parametrize("fuse", ["off", "on"])
@pytest.mark.parametrize(("size", "factor"), [(40, 0.3), (13, 0.5)])  # 13 -> 6: Pillow's windows skip column 6
def test_pixelate_value_check_folded_into_the_rounding_pass(fuse: str, size: int, factor: float) -> None:
    """``check_values=True`` (the module's path) raises as ``check_image`` does, from the range that the rounding to
    8 bit computes. Every column is tried, the one no 13 -> 6 window takes included (Pillow's window bounds skip it).
    Without ``check_values`` values are clipped."""
    x = _photo_like(2, size, size, seed=6)
    with fusion(fuse):
        for col in range(size):
            for bad, match in ((float("nan"), "NaN"), (1.5, r"\[0, 1\]"), (-0.25, r"\[0, 1\]")):
                y = x.clone()
                y[1, 2, col % 5, col] = bad
                with pytest.raises(ValueError, match=match):
                    F.pixelate(y, factor, check_values=True)
        assert torch.equal(F.pixelate(x, factor, check_values=True), F.pixelate(x, factor))
        y = x.clone()
        y[0, 0, 0, 0] = 1.5
        clipped = x.clone()
        clipped[0, 0, 0, 0] = 1.0
        assert torch.equal(F.pixelate(y, factor), F.pixelate(clipped, factor))
