"""Fast paths of the blur family (functional/blur.py): each must compute what the plain reference computes.

* glass blur: the fused per-pass kernel (hash -> displacements -> pointers) against the public
  ``glass_displacements`` + ``glass_shuffle_index`` pair, bit for bit, fusion on and off;
* defocus blur: cached kernel spectra, per-sample padding and FFT length choice against a direct correlation;
* clipped zoom: all planes resampled as one image against per-sample ``interpolate`` calls.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as TF

import robust_train
from robust_train.functional import blur as F
from robust_train.functional.rng import MASK32, _keys


@pytest.mark.parametrize("mode", ["off", "on"])
@pytest.mark.parametrize("h,w", [(32, 32), (23, 40)])
def test_glass_fused_pass_equals_public_functions(mode: str, h: int, w: int) -> None:
    seed = torch.tensor([3, 77, 2**40 + 5, -9])
    d = torch.tensor([1.0, 2.0, 3.0, 4.0], dtype=torch.float64)
    stream = F.GLASS_STREAM
    for k in range(2):
        dx, dy = F.glass_displacements(seed, d, h, w, k, stream)
        ref = F.glass_shuffle_index(dx, dy, d)
        k1, k2 = _keys(seed, (stream + k * 0x9E3779B9) & MASK32)
        with robust_train.fusion(mode):
            q, root = F._glass_links(k1.view(-1, 1), k2.view(-1, 1), d.long().view(-1, 1), height=h, width=w)
        out = q.gather(1, F._follow_pointers(root))
        assert torch.equal(out, ref)
        assert not torch.equal(out, torch.arange(h * w).expand_as(out))  # the pass moves pixels


def test_glass_blur_fused_equals_eager() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, 3, 32, 28, generator=g)
    args = (x, torch.tensor([0.4, 0.9, 1.5]), torch.tensor([1, 2, 3]), torch.tensor([2, 0, 1]), torch.tensor([5, 6, 7]))
    with robust_train.fusion("off"):
        eager = F.glass_blur(*args)
    with robust_train.fusion("on"):
        compiled = F.glass_blur(*args)
    # the pixel shuffle is integer work (exact); the two Gaussians' fused tap sums round once per product and sum,
    # the eager add_(alpha=) may use FMA: a few float32 ulps apart, never more
    torch.testing.assert_close(compiled, eager, rtol=0.0, atol=4 * 2.0**-24)


def test_fast_fft_sizes() -> None:
    for n in range(1, 600):
        m = F._fast_size(n)
        odd = m
        while odd % 2 == 0:
            odd //= 2
        assert m >= n and odd in F._FFT_ODD_PARTS
        assert all(F._fast_size(k) <= m for k in range(1, n))  # monotone, so m is the smallest admissible length
    assert F._fast_size(240) == 240 and F._fast_size(244) == 256 and F._fast_size(48) == 48


def _defocus_direct(x: torch.Tensor, radius: float, alias: float) -> torch.Tensor:
    """Plain correlation with the disk kernel on reflect-101 padded planes (conv2d), clipped."""
    k = F.disk_kernel(radius, alias, batch=1)[0].to(x.dtype)
    r = (k.shape[-1] - 1) // 2
    c = x.shape[1]
    xp = F.pad2d(x, r, "mirror")
    return TF.conv2d(xp, k.view(1, 1, *k.shape).expand(c, 1, -1, -1), groups=c).clamp(0, 1)


def test_defocus_fft_equals_direct_and_is_batch_independent() -> None:
    g = torch.Generator().manual_seed(1)
    x = torch.rand(3, 3, 30, 37, generator=g, dtype=torch.float64)
    radius = torch.tensor([3.0, 10.0, 0.5], dtype=torch.float64)  # paddings 8, 10, 8: two FFT groups
    alias = torch.tensor([0.1, 0.5, 0.6], dtype=torch.float64)
    out = F.defocus_blur(x, radius, alias)
    for i in range(3):
        ref = _defocus_direct(x[i : i + 1], float(radius[i]), float(alias[i]))
        # the FFT path assumes a point-symmetric kernel; the float32 radius-10 kernel is symmetric to 2e-10 only
        torch.testing.assert_close(out[i : i + 1], ref, atol=1e-12 if radius[i] < 8 else 2e-9, rtol=0)
        alone = F.defocus_blur(x[i : i + 1], radius[i : i + 1], alias[i : i + 1])
        assert torch.equal(alone, out[i : i + 1])  # own padding per sample: independent of the batch
    again = F.defocus_blur(x, radius, alias)  # spectra now come from the cache
    assert torch.equal(again, out)
    wide = F.defocus_blur(x, radius, alias, pad=14)  # an explicit wider pad changes the FFT size only
    torch.testing.assert_close(wide, out, atol=1e-12, rtol=0)
    with pytest.raises(ValueError, match="pad"):
        F.defocus_blur(x, radius, alias, pad=9)


def test_defocus_gradient_path_matches_no_grad() -> None:
    x = torch.rand(2, 3, 20, 20, dtype=torch.float64) * 0.5 + 0.25
    xg = x.clone().requires_grad_(True)
    out = F.defocus_blur(xg, torch.tensor([3.0, 6.0]), 0.5)
    torch.testing.assert_close(out.detach(), F.defocus_blur(x, torch.tensor([3.0, 6.0]), 0.5), atol=1e-12, rtol=0)
    out.sum().backward()
    assert xg.grad is not None and torch.isfinite(xg.grad).all()


@pytest.mark.parametrize("precision", [torch.float32, torch.float64])
def test_clipped_zoom_planes_path_equals_per_sample(precision: torch.dtype) -> None:
    g = torch.Generator().manual_seed(2)
    x = torch.rand(3, 3, 40, 36, generator=g, dtype=precision)
    z = torch.tensor([1.13, 1.3, 1.13], dtype=torch.float64)
    out = F.clipped_zoom(x, z)
    for i, zi in enumerate(z.tolist()):
        top_h, ch_h, o_h, trim_h = F._zoom_geometry(40, zi)
        top_w, ch_w, o_w, trim_w = F._zoom_geometry(36, zi)
        crop = x[i : i + 1, :, top_h : top_h + ch_h, top_w : top_w + ch_w]
        # float64 coordinates are SciPy's; the batched gathers plan them in float64 for every input dtype
        ref = TF.interpolate(crop.double(), size=(o_h, o_w), mode="bilinear", align_corners=True).to(precision)
        ref = ref[..., trim_h : trim_h + 40, trim_w : trim_w + 36]
        tol = 1e-12 if precision == torch.float64 else 1e-6
        torch.testing.assert_close(out[i : i + 1], ref, atol=tol, rtol=0)


def test_gaussian_fft_path_equals_tap_loop_and_is_per_sample() -> None:
    from robust_train.functional.filters import gaussian_filter2d

    g = torch.Generator().manual_seed(3)
    x = torch.rand(3, 3, 64, 58, generator=g, dtype=torch.float64)
    sigma = torch.tensor([6.0, 1.0, 4.0], dtype=torch.float64)  # 49 and 33 taps: FFT; 9 taps: tap loop
    assert int(torch.floor(4 * sigma[2] + 0.5)) * 2 + 1 >= F._GAUSS_FFT_MIN_TAPS
    out = F.gaussian_nearest(x, sigma)
    torch.testing.assert_close(out, gaussian_filter2d(x, sigma, truncate=4.0, mode="nearest"), atol=1e-12, rtol=0)
    for i in range(3):
        assert torch.equal(F.gaussian_nearest(x[i : i + 1], sigma[i : i + 1]), out[i : i + 1])
    out32 = F.gaussian_blur(x.float(), sigma)
    torch.testing.assert_close(out32, F.gaussian_blur(x, sigma).float(), atol=2e-6, rtol=0)
