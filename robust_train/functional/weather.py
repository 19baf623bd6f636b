"""Weather corruptions (numerics): brightness, fog, frost, spatter, snow (spec 2.10-2.13, 2.19, H3, H7, H8).

Functional ops take images ``(B, 3, H, W)`` in [0, 1] and per-sample arguments ``(B,)``; they never draw random
numbers themselves: noise fields come from a per-sample int64 ``seed`` through the counter-based hash of
:mod:`robust_train.functional.rng` (or are passed in directly with ``noise=`` / ``uniform=``, which the parity tests
use to compare the deterministic part with a NumPy transcription of the original), small draws (texture index, crop
offsets, angles) come in as arguments. They return float output before the module's final 8-bit truncation; where
the original truncates inside the algorithm (snow layer, spatter water map, ImageMagick output) the op does so itself.

OpenCV building blocks of the spatter water branch are re-implemented batched and exactly (see each function):
:func:`canny` (``cv2.Canny`` with aperture 3 and the L1 norm), :func:`chamfer_distance` (``cv2.distanceTransform``
with ``DIST_L2`` and the 5x5 mask, truncated), :func:`equalize_hist` (``cv2.equalizeHist``), :func:`box_blur3`
(``cv2.blur`` 3x3) and :func:`filter3x3_u8` (``cv2.filter2D`` to ``CV_8U``).

Fused kernels (:func:`~robust_train.functional._fused.fused`, used when fusion is on for the device and no gradient is
recorded). With ``quantize`` each op has one exact path, eager or compiled: it evaluates the original's own arithmetic
for every pixel in one pass and truncates (``_brightness_exact``: float64 HSV round trip; ``_fog_exact``;
``_frost_exact``: texture gather + float64 blend; ``_snow_exact``: float32 scene + float64 layers; ``_water_exact`` /
``_mud_exact``: the spatter blends; ``_liquid_to_l8``: the spatter layer's ``uint8(255 L)``). They are exact because
Inductor compiles the same IEEE operations in the same order (no FMA contraction, no unsafe-math:
``-ffp-contract=off``), so both modes return the same 8-bit values (the tests check the fused paths against the
references bit for bit). ``_plasma_levels`` is the plasma fractal, written once without strided writes (interleaved
levels, ``torch.roll``); its map side is marked static so each size compiles once. Canny's Sobel and non-maximum
suppression are two fused kernels in exact float arithmetic (``_sobel_fused``, ``_nms_fused``) and each chamfer min-plus
step is one kernel between two padded buffers (``_chamfer_step``), all equal to the eager integer / in-place versions
(tested). Canny's hysteresis, the box blurs and the histogram equalisation stay eager: Inductor's CPU code for the
boolean 3x3 growth measured 250x slower than ATen's shifted in-place ORs, and a whole-transform chamfer kernel 5x slower
(recomputed, masked taps).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from . import checks
from ._assets import frost_stack
from ._common import eager_only, snap8, straight_through, truncate_uint8
from ._fused import fused, fused_runs, fusion_enabled
from .blur import clipped_zoom, gaussian_nearest, motion_blur
from .checks import POSITIVE, check_batch_param, check_image, check_shape, per_sample
from .color import GREY_WEIGHTS, hsv_to_rgb_planes, rgb_to_grey, rgb_to_hsv_planes
from .filters import pad2d
from .rng import field_normal, field_uniform, stream_id

__all__ = [
    "FOG_STREAM",
    "FROST_SCALE",
    "MUD_COLOR",
    "SNOW_STREAM",
    "SPATTER_STREAM",
    "WATER_COLOR",
    "box_blur3",
    "brightness",
    "canny",
    "chamfer_distance",
    "equalize_hist",
    "filter3x3_u8",
    "fog",
    "fog_map_size",
    "frost",
    "frost_offsets",
    "plasma_fractal",
    "snow",
    "spatter",
]

#: Default hash streams of the noise fields (equal to the modules' ``stream(...)`` ids).
FOG_STREAM = stream_id("fog/plasma")
SPATTER_STREAM = stream_id("spatter/liquid")
SNOW_STREAM = stream_id("snow/layer")
#: Frost texture resize factor per preset (spec 2.11).
FROST_SCALE: dict[str, float] = {"imagenet": 1.0, "tinyimagenet": 0.3, "cifar": 0.2}
#: Spatter colours (RGB, 8-bit units): pale turquoise water, brown mud.
WATER_COLOR: tuple[int, int, int] = (175, 238, 238)
MUD_COLOR: tuple[int, int, int] = (63, 42, 20)
#: OpenCV's 5x5 chamfer weights for ``DIST_L2`` (float32 values 1, 1.4, 2.1969).
_CHAMFER = (1.0, 1.399999976158142, 2.1968998908996582)
_BIG = 1.0e6
#: OpenCV Canny's tan(22.5 deg) in Q15 fixed point.
_TG22_Q15 = int(0.4142135623730950488016887242097 * (1 << 15) + 0.5)
#: OpenCV's float32 RGB -> grey weights as Python floats (the values :func:`rgb_to_grey` uses).
_GREY_W: tuple[float, ...] = tuple(float(v) for v in torch.tensor(GREY_WEIGHTS, dtype=torch.float32))


# ----------------------------------------------------------------------------------------------- helpers
def _view(t: Tensor, x: Tensor) -> Tensor:
    """(B,) -> (B, 1, 1, 1) in ``x``'s dtype and device."""
    return t.to(device=x.device, dtype=x.dtype).view(-1, 1, 1, 1)


def _field(
    seed: Tensor | None,
    given: Tensor | None,
    shape: tuple[int, int],
    batch: int,
    stream: int,
    kind: str,
    device: torch.device,
    name: str,
) -> Tensor:
    """The (B, H, W) float64 noise field: ``given`` when passed, else derived from ``seed``."""
    if (seed is None) == (given is None):
        raise ValueError(f"pass exactly one of seed (B,) int64 or {name} (B, {shape[0]}, {shape[1]})")
    if given is not None:
        if tuple(given.shape) != (batch, *shape):
            raise ValueError(f"{name}: expected shape ({batch}, {shape[0]}, {shape[1]}), got {tuple(given.shape)}")
        return given.to(device=device, dtype=torch.float64)
    if not isinstance(seed, Tensor) or seed.dtype not in (torch.int64, torch.int32):
        raise TypeError(f"seed: expected a (B,) int64 tensor, got {seed!r}")
    check_batch_param(seed, batch, "seed")
    if kind == "normal":  # float32 Box-Muller (24-bit uniforms anyway), used in float64 from here on
        return field_normal(seed.reshape(-1), shape, stream, dtype=torch.float32, device=device).to(torch.float64)
    return field_uniform(seed.reshape(-1), shape, stream, dtype=torch.float64, device=device)


def _records(x: Tensor) -> bool:
    """Whether autograd records an op on ``x`` (the exact 8-bit paths then add a straight-through gradient)."""
    return torch.is_grad_enabled() and x.requires_grad


def _st(x: Tensor, y: Tensor) -> Tensor:
    """Straight-through (value of ``y``, gradient of ``x``), skipped when no gradient is needed."""
    return straight_through(x, y) if x.requires_grad else y


def _to_levels(v255: Tensor, dtype: torch.dtype) -> Tensor:
    """``floor(v255) / 255`` computed in float32, returned in ``dtype``.

    ``v255`` must already be clipped to [0, 255].
    """
    return (torch.floor(v255).to(torch.float32) / 255.0).to(dtype)


def _truncate8(out: Tensor) -> Tensor:
    """The original's ``np.uint8(255 out) / 255`` of a result computed in its own arithmetic (no ties to resolve).

    ``floor(clip(255 out, 0, 255)) / 255`` in ``out``'s dtype, with the straight-through gradient of ``out``.
    """
    with torch.no_grad():
        q = torch.floor(out.detach() * 255.0).clamp_(0.0, 255.0).div_(255.0)
    return _st(out, q)


def _pad_mirror1(x: Tensor) -> Tensor:
    """Pad (B, H, W) by one pixel with OpenCV's default border (reflect-101), any size."""
    return pad2d(x.unsqueeze(1), 1, "mirror").squeeze(1)


# ----------------------------------------------------------------------------------------------- brightness
def brightness(x: Tensor, value: Tensor | float, *, quantize: bool = False) -> Tensor:
    """Add ``value`` to the HSV value channel (spec 2.13).

    ``x -> HSV`` (skimage semantics, :func:`~robust_train.functional.color.rgb_to_hsv`), ``V <- clip(V + c, 0, 1)``,
    back to RGB, clip. Exact gradient (piecewise smooth).

    With ``quantize`` the output is the original's 8-bit result ``np.uint8(255 out)`` bit for bit: the op then runs
    in float64 on the 8-bit grid like the original (``img / 255.``) and truncates without tolerance, so values that
    the original's float64 arithmetic puts a hair below an integer are truncated the same way (straight-through
    gradient). Without it the op computes in ``x``'s dtype.

    Args:
        x: images, shape (B, 3, H, W), float in [0, 1].
        value: additive change of V per sample, shape (B,) or scalar.
        quantize: return the original's 8-bit values ``k / 255``.

    Returns:
        (B, 3, H, W), same dtype, in [0, 1].

    Example:
        >>> brightness(torch.rand(2, 3, 8, 8), torch.tensor([0.1, 0.5])).shape
        torch.Size([2, 3, 8, 8])
    """
    check_image(x, check_values=False)
    b = x.shape[0]
    c = per_sample(value, b, "value", device=x.device)

    def core(img: Tensor, cv: Tensor) -> Tensor:
        h, s, v = rgb_to_hsv_planes(*img.unbind(1))
        v = (v + cv).clamp(0.0, 1.0)
        return torch.stack(hsv_to_rgb_planes(h, s, v), 1).clamp(0.0, 1.0)

    if quantize:  # the exact 8-bit result, with the straight-through gradient of the float computation
        q = _brightness_exact(x.detach(), c.view(-1, 1, 1))
        return _st(core(x, c.to(x.dtype).view(-1, 1, 1)), q) if _records(x) else q
    return core(x, c.to(x.dtype).view(-1, 1, 1))


@fused
def _brightness_exact(x: Tensor, c: Tensor) -> Tensor:
    """Quantised :func:`brightness` in the original's float64 arithmetic on the 8-bit grid, truncated (no ties left).

    One fused pass when compiled (the HSV round trip, clip and truncation of every pixel); ``c`` is (B, 1, 1) float64.
    """
    h, s, v = rgb_to_hsv_planes(*(snap8(x, 255.0) / 255.0).unbind(1))
    v = (v + c).clamp(0.0, 1.0)
    return _to_levels(torch.stack(hsv_to_rgb_planes(h, s, v), 1).clamp(0.0, 1.0) * 255.0, x.dtype)


# ----------------------------------------------------------------------------------------------- fog
def fog_map_size(height: int, width: int) -> int:
    """Side of the plasma map for an image: the smallest power of two >= max(H, W) (at least 2).

    Equals the original's 256 / 64 / 32 at 224 / 64 / 32 px.

    Example:
        >>> fog_map_size(224, 224), fog_map_size(64, 64), fog_map_size(32, 32), fog_map_size(100, 300)
        (256, 64, 32, 512)
    """
    return max(2, 1 << max(0, math.ceil(math.log2(max(height, width)))))


def plasma_fractal(uniform: Tensor, wibbledecay: Tensor | float) -> Tensor:
    """Diamond-square plasma fractal of the original (``plasma_fractal``, spec H3), batched over images.

    Toroidal grid (every neighbour look-up wraps); ``A[0, 0] = 0``; per level with step ``s`` (from M down to 2) the
    square step writes ``sum/4 + wibble * U(-wibble, wibble)`` at the cell centres from the four surrounding corners,
    then the two diamond steps write the edge midpoints, ``wibble /= wibbledecay``; finally the map is shifted to
    min 0 and divided by its max. The noise amplitude is ``wibble**2`` (quirk 7, reproduced). Point ``(i, j)`` uses
    ``uniform[:, i, j]`` as its random number (every point except ``(0, 0)`` is written exactly once), so the order of
    the original's draws does not matter; NumPy's ``uniform(-w, w)`` is ``-w + 2w u``. Computed in float64.

    Args:
        uniform: (B, M, M) uniforms in [0, 1), M a power of two >= 2.
        wibbledecay: (B,) or scalar decay per level (> 0).

    Returns:
        (B, M, M) float64 maps in [0, 1].

    Raises:
        ValueError: M not a power of two or shapes that do not match.

    Example:
        >>> plasma_fractal(torch.rand(2, 32, 32, dtype=torch.float64), torch.tensor([3.0, 1.75])).shape
        torch.Size([2, 32, 32])
    """
    check_shape(uniform, "B M M", "uniform")
    b, m, _ = uniform.shape
    if m < 2 or m & (m - 1):
        raise ValueError(f"uniform: map side must be a power of two >= 2, got {m}")
    decay = per_sample(wibbledecay, b, "wibbledecay", lo=POSITIVE, device=uniform.device)
    u = uniform.to(torch.float64)
    if fusion_enabled(u.device) and not torch.compiler.is_compiling():  # the level loop unrolls per map side
        torch._dynamo.mark_static(u, 1)
        torch._dynamo.mark_static(u, 2)
    return _plasma_levels(u, decay.view(b, 1, 1))


@fused
def _plasma_levels(u: Tensor, dec: Tensor) -> Tensor:
    """The diamond-square levels on (B, M, M) float64 uniforms with decay (B, 1, 1), coarse to fine.

    Written once for eager and compiled runs (the same speed eager as strided writes into one grid, which Inductor
    would turn into full copies of the grid; the two were bit-identical): the corner
    lattice at step ``s`` is (B, n, n); a level computes the centres ``d`` and edge midpoints ``e1`` (corner row,
    centre column), ``e2`` (centre row, corner column) and interleaves the four planes into the (B, 2n, 2n) lattice
    of step ``s / 2``; wrapping neighbours are ``torch.roll`` (index arithmetic, no copies, when compiled).
    """
    b, m, _ = u.shape
    wib = torch.full((b, 1, 1), 100.0, dtype=torch.float64, device=u.device)
    c = torch.zeros((b, 1, 1), dtype=torch.float64, device=u.device)
    step = m
    while step >= 2:
        half = step // 2
        n = m // step
        span = 2.0 * wib
        sq = c + torch.roll(c, -1, 1)
        sq = sq + torch.roll(sq, -1, 2)
        d = sq / 4 + wib * (-wib + span * u[:, half::step, half::step])
        e1 = ((d + torch.roll(d, 1, 1)) + (c + torch.roll(c, -1, 2))) / 4 + wib * (
            -wib + span * u[:, ::step, half::step]
        )
        e2 = ((d + torch.roll(d, 1, 2)) + (c + torch.roll(c, -1, 1))) / 4 + wib * (
            -wib + span * u[:, half::step, ::step]
        )
        top = torch.stack((c, e1), -1).reshape(b, n, 2 * n)  # corner rows: corner, edge, corner, ...
        bottom = torch.stack((e2, d), -1).reshape(b, n, 2 * n)  # centre rows: edge, centre, edge, ...
        c = torch.stack((top, bottom), 2).reshape(b, 2 * n, 2 * n)
        step //= 2
        wib = wib / dec
    c = c - c.amin(dim=(1, 2), keepdim=True)
    return c / c.amax(dim=(1, 2), keepdim=True)


def fog(
    x: Tensor,
    strength: Tensor | float,
    wibbledecay: Tensor | float,
    seed: Tensor | None = None,
    *,
    uniform: Tensor | None = None,
    stream: int = FOG_STREAM,
    quantize: bool = False,
) -> Tensor:
    """Fog (spec 2.12): add a plasma fractal and renormalise by the image maximum.

    ``m = max(x)`` over all pixels and channels (before the fog); ``F`` = :func:`plasma_fractal` of side
    :func:`fog_map_size` (256 / 64 / 32 at the native sizes; for other sizes the next power of two >= max(H, W)),
    cropped top-left to H x W and shared by the channels; ``out = clip((x + c F) * m / (m + c), 0, 1)``.
    Exact gradient (through ``x`` and ``m``). ``quantize`` returns the original's 8-bit values bit for bit (float64
    on the 8-bit grid, truncation without tolerance, as in :func:`brightness`).

    Args:
        x: images, shape (B, 3, H, W), float in [0, 1].
        strength: fog strength ``c`` per sample, (B,) or scalar, >= 0.
        wibbledecay: plasma decay per sample, (B,) or scalar, > 0.
        seed: (B,) int64 per-sample seeds for the uniform field (one uniform per map point).
        uniform: instead of ``seed``, the (B, M, M) uniforms in [0, 1) themselves.
        stream: hash stream of the field.
        quantize: return the original's 8-bit values ``k / 255``.

    Returns:
        (B, 3, H, W), same dtype, in [0, 1].

    Example:
        >>> fog(torch.rand(2, 3, 24, 20), 1.0, 2.0, torch.tensor([1, 2])).shape
        torch.Size([2, 3, 24, 20])
    """
    check_image(x, check_values=False)
    b, _, h, w = x.shape
    c = per_sample(strength, b, "strength", lo=0.0, device=x.device)
    m = fog_map_size(h, w)
    u = _field(seed, uniform, (m, m), b, stream, "uniform", x.device, "uniform")
    xc = x.to(torch.float32) if quantize else x
    plasma = plasma_fractal(u, wibbledecay)
    fmap = plasma[:, None, :h, :w].to(xc.dtype)
    cc = _view(c, xc)
    mx = xc.amax(dim=(1, 2, 3), keepdim=True)
    if not quantize:
        return ((xc + cc * fmap) * mx / (mx + cc)).clamp(0.0, 1.0)
    m64 = snap8(mx.view(b), 255.0) / 255.0  # the original's max of its float64 image
    q = _fog_exact(x.detach(), c.view(b, 1, 1, 1), m64.view(b, 1, 1, 1), plasma[:, None, :h, :w])
    return _st(((xc + cc * fmap) * mx / (mx + cc)).clamp(0.0, 1.0), q) if _records(x) else q


@fused
def _fog_exact(x: Tensor, c: Tensor, m: Tensor, fmap: Tensor) -> Tensor:
    """Quantised :func:`fog` in the original's float64 arithmetic, truncated: one fused pass when compiled.

    ``c``, ``m``: (B, 1, 1, 1) float64 strength and image maximum (8-bit grid); ``fmap``: (B, 1, H, W) float64 plasma.
    """
    xv = snap8(x, 255.0) / 255.0
    return _to_levels(((xv + c * fmap) * m / (m + c)).clamp(0.0, 1.0) * 255.0, x.dtype)


# ----------------------------------------------------------------------------------------------- frost
def frost_offsets(
    index: Tensor, u_top: Tensor, u_left: Tensor, scale: float, height: int, width: int
) -> tuple[Tensor, Tensor]:
    """Integer crop offsets from uniforms: ``top = floor(u * (H_f - H))``, ``left = floor(u * (W_f - W))``.

    This is NumPy's ``randint(0, H_f - H)`` (exclusive upper bound, quirk 3) for the texture ``index`` prepared for
    ``scale`` and the image size (see :func:`~robust_train.functional._assets.frost_stack`).

    Args:
        index: (B,) int64 texture indices.
        u_top: (B,) uniforms in [0, 1).
        u_left: (B,) uniforms in [0, 1).
        scale: preset resize factor (:data:`FROST_SCALE`).
        height: image height H.
        width: image width W.

    Returns:
        ``(top, left)`` (B,) int64 tensors on the CPU.
    """
    count = int(index.max()) + 1 if index.numel() else 1
    _, sizes = frost_stack(scale, height, width, "cpu", max(count, 5))
    idx = index.to("cpu", torch.int64)
    span_h = (sizes[idx, 0] - height).to(torch.float64)
    span_w = (sizes[idx, 1] - width).to(torch.float64)
    top = torch.floor(u_top.to("cpu", torch.float64) * span_h).to(torch.int64)
    left = torch.floor(u_left.to("cpu", torch.float64) * span_w).to(torch.int64)
    return top, left


def frost(
    x: Tensor,
    image_weight: Tensor | float,
    frost_weight: Tensor | float,
    index: Tensor,
    top: Tensor,
    left: Tensor,
    scale: float = 1.0,
    *,
    quantize: bool = False,
) -> Tensor:
    """Frost (spec 2.11): blend with a crop of one of the original frost photographs.

    ``out = clip(a * x + b * frost, 0, 1)``, computed like the original in [0, 255] units
    (``clip(a * 255 x + b * frost8, 0, 255) / 255``), where ``frost`` is the ``H x W`` crop at ``(top, left)`` of
    texture ``index`` (``frost1.png`` = 0 ... ``frost6.jpg`` = 5, decoded like ``cv2.imread``, alpha dropped, RGB),
    resized first by ``scale`` with OpenCV's bilinear semantics (0.3 Tiny-ImageNet, 0.2 CIFAR, 1 ImageNet = none).
    Generalisation: when a texture is not strictly larger than the image on both axes, it is upscaled with the same
    bilinear rule (aspect kept) until it exceeds the image by at least one pixel; native sizes never need this.
    One batched gather, no loop over images. Exact gradient (linear in ``x``). ``quantize`` returns the original's
    8-bit values bit for bit (float64 on the 8-bit grid, truncation without tolerance).

    Args:
        x: images, shape (B, 3, H, W), float in [0, 1].
        image_weight: ``a`` per sample, (B,) or scalar.
        frost_weight: ``b`` per sample, (B,) or scalar.
        index: (B,) int64 texture indices in [0, 6).
        top: (B,) int64 crop rows, ``0 <= top <= H_f - H - 1``.
        left: (B,) int64 crop columns, ``0 <= left <= W_f - W - 1``.
        scale: preset resize factor of the textures.
        quantize: return the original's 8-bit values ``k / 255``.

    Returns:
        (B, 3, H, W), same dtype, in [0, 1].

    Raises:
        ValueError: index or offsets out of range.
        RuntimeError: the texture files are not installed (``pip install imagecorruptions``).

    Example:
        >>> z = torch.zeros(2, dtype=torch.int64)
        >>> frost(torch.rand(2, 3, 32, 32), 1.0, 0.2, torch.tensor([0, 4]), z, z, scale=0.2).shape
        torch.Size([2, 3, 32, 32])
    """
    check_image(x, check_values=False)
    b, _, h, w = x.shape
    a = per_sample(image_weight, b, "image_weight", device=x.device)
    fw = per_sample(frost_weight, b, "frost_weight", device=x.device)
    for name, t in (("index", index), ("top", top), ("left", left)):
        if not isinstance(t, Tensor) or t.dtype not in (torch.int64, torch.int32):
            raise TypeError(f"{name}: expected a (B,) integer tensor, got {t!r}")
        check_batch_param(t, b, name)
    idx = index.to("cpu", torch.int64).reshape(-1)
    if (idx < 0).any() or (idx >= 6).any():
        raise ValueError(f"index: expected texture indices in [0, 6), got {idx.tolist()}")
    count = max(5, int(idx.max()) + 1)
    stack, sizes = frost_stack(scale, h, w, x.device, count)
    t0 = top.to("cpu", torch.int64).reshape(-1)
    l0 = left.to("cpu", torch.int64).reshape(-1)
    max_top = sizes[idx, 0] - h - 1
    max_left = sizes[idx, 1] - w - 1
    if (t0 < 0).any() or (t0 > max_top).any() or (l0 < 0).any() or (l0 > max_left).any():
        raise ValueError(
            f"crop offsets out of range: top {t0.tolist()} (max {max_top.tolist()}), "
            f"left {l0.tolist()} (max {max_left.tolist()})"
        )
    dev = x.device
    rows = (t0.to(dev).view(b, 1) + torch.arange(h, device=dev).view(1, h)).view(b, h, 1)
    cols = (l0.to(dev).view(b, 1) + torch.arange(w, device=dev).view(1, w)).view(b, 1, w)
    ti = idx.to(dev).view(b, 1, 1)
    if quantize:  # the exact 8-bit result (straight-through gradient of the float blend)
        q = _frost_exact(x.detach(), a.view(b, 1, 1, 1), fw.view(b, 1, 1, 1), stack, ti, rows, cols)
        if not _records(x):
            return q
    tex = stack[ti, :, rows, cols].permute(0, 3, 1, 2)  # (B, 3, H, W) uint8
    v255 = torch.addcmul(_view(fw, x) * tex.to(x.dtype), _view(a * 255.0, x), x)  # a * 255 x + b * f
    out = v255.clamp(0.0, 255.0).div(255.0)
    return _st(out, q) if quantize else out


@fused
def _frost_exact(x: Tensor, a: Tensor, fw: Tensor, stack: Tensor, idx: Tensor, rows: Tensor, cols: Tensor) -> Tensor:
    """Quantised :func:`frost`: texture gather, ``clip(a k + b f, 0, 255)`` in float64 and truncation in one pass.

    ``a``, ``fw``: (B, 1, 1, 1) float64 weights; ``stack``: (N, H_f, W_f, 3) uint8 textures; ``idx`` (B, 1, 1),
    ``rows`` (B, H, 1), ``cols`` (B, 1, W) int64 gather indices.
    """
    tex = stack[idx, :, rows, cols].permute(0, 3, 1, 2)  # (B, 3, H, W) uint8
    return _to_levels((a * snap8(x, 255.0) + fw * tex.to(torch.float64)).clamp(0.0, 255.0), x.dtype)


# ----------------------------------------------------------------------------------------------- OpenCV blocks
@eager_only  # data-dependent hysteresis loop; Inductor (torch 2.13, CPU) also miscompiles its int masks
def canny(img: Tensor, low: float, high: float) -> Tensor:
    """``cv2.Canny(img, low, high)`` (aperture 3, L1 gradient norm) on a batch of 8-bit single-channel images.

    Exact re-implementation: 3x3 Sobel derivatives with replicated borders; magnitude ``|dx| + |dy|``;
    non-maximum suppression with OpenCV's fixed-point sector test (``tan 22.5`` in Q15) and its asymmetric
    comparisons (``>`` against one neighbour, ``>=`` against the other along horizontal and vertical directions,
    ``>`` both ways on diagonals; magnitudes outside the image are 0); candidates ``mag > low``, seeds
    ``mag > high``; hysteresis by iterated 8-connected growth of the seeds inside the candidates until nothing
    changes. Verified pixel-exact against OpenCV on spatter layers and random images.

    Args:
        img: (B, H, W) integer-valued tensor with values in [0, 255] (any dtype).
        low: lower hysteresis threshold.
        high: upper hysteresis threshold.

    Returns:
        (B, H, W) bool edge map (``True`` where OpenCV writes 255).

    Example:
        >>> canny(torch.randint(0, 256, (2, 16, 16)), 50, 150).shape
        torch.Size([2, 16, 16])
    """
    check_shape(img, "B H W", "img")
    b, h, w = img.shape
    if fused_runs(img):
        gx, gy, mag = _sobel_fused(img.to(torch.float32))
        code = _nms_fused(gx, gy, F.pad(mag, (1, 1, 1, 1)), low=float(low), high=float(high))
        return _hysteresis(code > 1, code > 0)
    gx, gy, mag = _sobel_l1(img)
    mp = F.pad(mag, (1, 1, 1, 1))

    def n(dy: int, dx: int) -> Tensor:
        return mp[:, 1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w]

    tg22 = _TG22_Q15
    ax = gx.abs()  # |g| <= 1020, so the Q15 products below fit in int32
    ay = gy.abs() << 15
    tg22x = ax * tg22
    tg67x = torch.add(tg22x, ax, alpha=1 << 16)
    horiz = ay < tg22x
    vert = ay > tg67x  # excludes horiz: tg67x >= tg22x
    anti = (gx ^ gy) < 0  # signs differ: OpenCV's s = -1
    cand = _local_max(mag, n, horiz, vert, anti) & (mag > low)
    return _hysteresis(cand & (mag > high), cand)


def _local_max(mag: Tensor, n: Callable[[int, int], Tensor], horiz: Tensor, vert: Tensor, anti: Tensor) -> Tensor:
    """OpenCV's non-maximum test of ``mag`` against its two neighbours along the gradient sector.

    ``n(dy, dx)`` is the shifted magnitude (0 outside): ``>`` one way and ``>=`` the other on horizontal and vertical
    sectors, ``>`` both ways on diagonals.
    """
    lm_h = (mag > n(0, -1)) & (mag >= n(0, 1))
    lm_v = (mag > n(-1, 0)) & (mag >= n(1, 0))
    lm_a = (mag > n(-1, 1)) & (mag > n(1, -1))
    lm_d = (mag > n(-1, -1)) & (mag > n(1, 1))
    diag = ~(horiz | vert)
    return (horiz & lm_h) | (vert & lm_v) | (diag & ((anti & lm_a) | (~anti & lm_d)))


#: Growth steps of Canny's hysteresis between two convergence checks (each check is one host read of a device flag).
HYSTERESIS_STEPS_PER_CHECK = 16


def _hysteresis(cur: Tensor, cand: Tensor) -> Tensor:
    """Grow the seeds ``cur`` 8-connectedly inside the candidates ``cand`` until nothing changes (bool maps).

    Exact for any image: growth runs in blocks of :data:`HYSTERESIS_STEPS_PER_CHECK` steps (4 on the CPU, where the
    check costs no synchronisation) and stops after the first block that changed nothing. The check reads one flag
    back (:func:`~robust_train.functional.checks.host_flag`): one device synchronisation per block, typically one per
    call (spatter layers converge within the first block).
    """
    steps = 4 if cur.device.type == "cpu" else HYSTERESIS_STEPS_PER_CHECK  # a host read is free on the host
    while True:
        prev = cur
        for _ in range(steps):
            cur = _dilate3(cur) & cand
        if checks.host_flag(
            torch.equal(cur, prev) if cur.device.type == "cpu" else (cur == prev).all(), "canny hysteresis"
        ):
            return cur


@fused
def _sobel_fused(x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """3x3 Sobel derivatives (replicated border) and L1 magnitude of (B, H, W) float32 8-bit values, separably.

    ``gx`` = column difference of the vertically smoothed image ``[1, 2, 1]``, ``gy`` = row difference of the
    horizontally smoothed one: the same integers as the 3x3 kernels, exact in float32 (every intermediate is an
    integer below 2^11). One pass when fused.
    """
    _, h, w = x.shape
    xp = F.pad(x.unsqueeze(1), (1, 1, 1, 1), mode="replicate").squeeze(1)
    vs = xp[:, 0:h] + xp[:, 2 : h + 2] + 2 * xp[:, 1 : h + 1]  # (B, H, W + 2)
    hs = xp[:, :, 0:w] + xp[:, :, 2 : w + 2] + 2 * xp[:, :, 1 : w + 1]  # (B, H + 2, W)
    gx = vs[:, :, 2 : w + 2] - vs[:, :, 0:w]
    gy = hs[:, 2 : h + 2] - hs[:, 0:h]
    return gx, gy, gx.abs() + gy.abs()


@fused
def _nms_fused(gx: Tensor, gy: Tensor, mp: Tensor, *, low: float, high: float) -> Tensor:
    """Canny's non-maximum suppression and thresholds in one pass: uint8 0 (no edge), 1 (candidate), 2 (seed).

    The integer tests of :func:`canny` in exact float arithmetic: ``gx``, ``gy`` are integers of magnitude <= 1020,
    so ``|gy| 2**15`` (a power-of-two scaling), ``|gx| tan22_Q15`` (< 2**24) and ``gx gy`` are exact in float32, and
    ``|gx| (tan22_Q15 + 2**16)`` is compared in float64. ``gx gy < 0`` replaces the sign test ``(gx ^ gy) < 0``: they
    differ only where one derivative is 0, where the direction is horizontal or vertical (or the magnitude 0) and
    the test is unused. ``mp`` is the magnitude padded by one zero.
    """
    h, w = gx.shape[-2:]
    mag = mp[:, 1 : 1 + h, 1 : 1 + w]

    def n(dy: int, dx: int) -> Tensor:
        return mp[:, 1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w]

    ax = gx.abs()
    ay = gy.abs() * float(1 << 15)
    horiz = ay < ax * float(_TG22_Q15)
    vert = ay.to(torch.float64) > ax.to(torch.float64) * float(_TG22_Q15 + (1 << 16))
    anti = (gx * gy) < 0
    cand = _local_max(mag, n, horiz, vert, anti) & (mag > low)
    return cand.to(torch.uint8) + (cand & (mag > high)).to(torch.uint8)


def _sobel_l1(x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """3x3 Sobel derivatives (replicated border) and L1 magnitude of (B, H, W) 8-bit images, as int32.

    The eager run of :func:`_sobel_fused` (float32, exact), converted to the integers the eager NMS works on.
    """
    gx, gy, mag = _sobel_fused.eager(x.to(torch.float32))
    return gx.to(torch.int32), gy.to(torch.int32), mag.to(torch.int32)


def _dilate3(m: Tensor) -> Tensor:
    """3x3 binary dilation of (B, H, W) bool maps (outside = False), with shifted ORs."""
    r = m.clone()
    r[:, :, 1:] |= m[:, :, :-1]
    r[:, :, :-1] |= m[:, :, 1:]
    out = r.clone()
    out[:, 1:] |= r[:, :-1]
    out[:, :-1] |= r[:, 1:]
    return out


def chamfer_distance(edges: Tensor, truncate: float = 20.0) -> Tensor:
    """``min(cv2.distanceTransform(255 - edges, DIST_L2, 5), truncate)``: 5x5 chamfer distance to the edges.

    OpenCV's two-pass 5x5 chamfer transform with weights 1 (axial), 1.4 (diagonal) and 2.1969 (knight moves)
    computes the minimum, over lattice paths made of those 16 moves, of the summed weights (distances larger than
    ``truncate`` are only needed as "at least ``truncate``" here, as the original truncates at 20). Every optimal
    path can be reordered into runs along the eight move directions without leaving the image, so the transform is
    computed exactly as eight 1-D min-plus transforms (one per direction, each by log-step doubling up to the
    truncation radius), all batched. Distances are accumulated in float32 like OpenCV 5; they agree with
    ``cv2.distanceTransform`` within 2e-6 (float summation order), and the spatter pipeline after the box blur and
    8-bit truncation is pixel-exact on tested layers. Images without edges get ``truncate`` everywhere.

    Args:
        edges: (B, H, W) bool, ``True`` at edge pixels (the zeros of OpenCV's input).
        truncate: upper bound of the returned distances (> 0).

    Returns:
        (B, H, W) float32 distances in [0, truncate].

    Example:
        >>> e = torch.zeros(1, 5, 7, dtype=torch.bool); e[0, 2, 3] = True
        >>> chamfer_distance(e)[0, 2].tolist()
        [3.0, 2.0, 1.0, 0.0, 1.0, 2.0, 3.0]
    """
    check_shape(edges, "B H W", "edges")
    if not truncate > 0:
        raise ValueError(f"truncate: expected a value > 0, got {truncate}")
    b, h, w = edges.shape
    a, d, k = _CHAMFER
    moves = (((0, 1), a), ((1, 0), a), ((1, 1), d), ((1, -1), d), ((1, 2), k), ((1, -2), k), ((2, 1), k), ((2, -1), k))
    plan = []  # (sy, sx, added distance) of every min-plus step, in order
    for (dy, dx), wgt in moves:
        need = int(truncate / wgt) + 1  # longest useful run of this move
        step = 1
        while True:
            sy, sx = step * dy, step * dx
            if abs(sy) >= h or abs(sx) >= w:  # longer jumps leave the image
                break
            plan.append((sy, sx, step * wgt))
            if 2 * step - 1 >= need:
                break
            step *= 2
    # t lives inside a buffer padded by the largest shift, whose border stays _BIG: the shifted reads are views
    py = max((abs(sy) for sy, _, _ in plan), default=0)
    px = max((abs(sx) for _, sx, _ in plan), default=0)
    buf = torch.full((b, h + 2 * py, w + 2 * px), _BIG, dtype=torch.float32, device=edges.device)
    t = buf[:, py : py + h, px : px + w]
    t.masked_fill_(edges.to(torch.bool), 0.0)
    if fused_runs(edges):
        # one fused kernel per step, ping-ponging between two padded buffers (the border of both stays _BIG)
        bufs = (buf, torch.full_like(buf, _BIG))
        for k, (sy, sx, dist) in enumerate(plan):
            src, dst = bufs[k % 2], bufs[1 - k % 2]
            _chamfer_step(
                src[:, py : py + h, px : px + w],
                src[:, py - sy : py - sy + h, px - sx : px - sx + w],
                src[:, py + sy : py + sy + h, px + sx : px + sx + w],
                dst[:, py : py + h, px : px + w],
                torch.tensor(dist, dtype=torch.float32, device=edges.device),
            )
        t = bufs[len(plan) % 2][:, py : py + h, px : px + w]
        return t.clamp(max=truncate)
    for sy, sx, dist in plan:
        fwd = buf[:, py - sy : py - sy + h, px - sx : px - sx + w]  # t[y - sy, x - sx]
        bwd = buf[:, py + sy : py + sy + h, px + sx : px + sx + w]  # t[y + sy, x + sx]
        t.clamp_max_(torch.minimum(fwd, bwd).add_(dist))  # min(t, min(fwd, bwd) + dist), float32 as before
    return t.clamp(max=truncate)


@fused
def _chamfer_step(t: Tensor, fwd: Tensor, bwd: Tensor, out: Tensor, dist: Tensor) -> None:
    """One min-plus step of :func:`chamfer_distance` into ``out``: ``min(t, min(fwd, bwd) + dist)`` (float32)."""
    out.copy_(torch.minimum(t, torch.minimum(fwd, bwd) + dist))


def box_blur3(x: Tensor, integer: bool = False) -> Tensor:
    """``cv2.blur(x, (3, 3))``: 3x3 mean with OpenCV's default border (reflect-101).

    Float input: the window sum is taken in float64 and multiplied by ``1/9`` in float64, then rounded to float32
    (OpenCV's ``ColumnSum<double, float>``). Integer (8-bit) input (``integer=True``): the exact sum divided by 9 and
    rounded to the nearest integer (OpenCV's 8-bit path; no ties occur).

    Args:
        x: (B, H, W) tensor (float32 values, or integer values 0..255 when ``integer``).
        integer: use the 8-bit rounding path.

    Returns:
        (B, H, W) float32 (float path: the blurred values; 8-bit path: integer values).
    """
    check_shape(x, "B H W", "x")
    # integer sums (<= 9 * 255) and their rounding are exact in float32; float input is summed in float64
    p = _pad_mirror1(x.to(torch.float32 if integer else torch.float64))
    h, w = x.shape[-2:]
    rows = p[:, :, 0:w] + p[:, :, 1 : w + 1] + p[:, :, 2 : w + 2]
    tot = rows[:, 0:h] + rows[:, 1 : h + 1] + rows[:, 2 : h + 2]
    if integer:
        return torch.round(tot / 9.0)
    return (tot * (1.0 / 9.0)).to(torch.float32)


def equalize_hist(x: Tensor) -> Tensor:
    """``cv2.equalizeHist`` per image on integer values 0..255.

    Histogram ``h``; ``i0`` = smallest occupied level; if all pixels share it the image is returned as it is
    (OpenCV fills with ``i0``); else ``lut[i0] = 0``, ``lut[k] = round(float32(cumsum_{i0 < i <= k} h) * s)`` with
    ``s = float32(255) / float32(N - h[i0])`` (round half to even, saturated). Exact.

    Args:
        x: (B, H, W) tensor of integer values in [0, 255] (any dtype).

    Returns:
        (B, H, W) float32 integer values in [0, 255].
    """
    check_shape(x, "B H W", "x")
    b = x.shape[0]
    flat = x.reshape(b, -1).to(torch.int64)
    n = flat.shape[1]
    hist = torch.zeros(b, 256, dtype=torch.int64, device=x.device)
    hist.scatter_add_(1, flat, torch.ones_like(flat))
    first = (hist > 0).to(torch.int64).argmax(1, keepdim=True)
    h_first = hist.gather(1, first)
    cum = hist.cumsum(1) - h_first
    scale = torch.tensor(255.0, dtype=torch.float32, device=x.device) / (n - h_first).clamp_min(1).to(torch.float32)
    lut = torch.round(cum.to(torch.float32) * scale).clamp(0, 255)
    levels = torch.arange(256, device=x.device).view(1, 256)
    lut = lut * (levels > first).to(lut.dtype)
    const = (h_first == n).to(lut.dtype)  # a constant image keeps its level
    lut = lut * (1.0 - const) + first.to(lut.dtype) * const
    return lut.gather(1, flat).view(x.shape)


def filter3x3_u8(x: Tensor, kernel: tuple[tuple[int, int, int], ...]) -> Tensor:
    """``cv2.filter2D(x, cv2.CV_8U, kernel)`` for an integer 3x3 kernel: correlation, reflect-101 border, saturate.

    Args:
        x: (B, H, W) integer values in [0, 255].
        kernel: 3x3 integer kernel (rows of columns), anchored at the centre.

    Returns:
        (B, H, W) float32 integer values in [0, 255] (negative responses clip to 0).
    """
    check_shape(x, "B H W", "x")
    p = _pad_mirror1(x.to(torch.float32))  # integer arithmetic, exact in float32
    h, w = x.shape[-2:]
    out = torch.zeros(x.shape, dtype=torch.float32, device=x.device)
    for i in range(3):
        for j in range(3):
            if kernel[i][j]:
                out.add_(p[:, i : i + h, j : j + w], alpha=kernel[i][j])  # exact integer arithmetic
    return out.clamp_(0.0, 255.0)


_EMBOSS = ((-2, -1, 0), (-1, 1, 1), (0, 1, 2))


def _water_map(l8: Tensor) -> Tensor:
    """Spatter water steps 2-8 on (B, H, W) 8-bit layers -> the (B, H, W) float32 map ``D``."""
    edges = canny(l8, 50, 150)
    d = chamfer_distance(edges, 20.0)
    if fusion_enabled(l8.device) and min(l8.shape[-2:]) >= 2:
        d = _blur3_floor(d)
    else:
        d = torch.floor(box_blur3(d))  # blur (float), astype(uint8)
    d = equalize_hist(d)
    d = filter3x3_u8(d, _EMBOSS)
    return box_blur3(d, integer=True).to(torch.float32)


@fused
def _blur3_floor(d: Tensor) -> Tensor:
    """``floor(box_blur3(d))`` for (B, H, W) float32 chamfer distances (H, W >= 2) in one pass when fused.

    The float64 window sums of float32 values in [0, 20] are exact in any order (at most 31 significant bits), so
    this equals :func:`box_blur3`'s sum; then the same ``* (1 / 9)`` in float64, rounding to float32 and floor.
    """
    h, w = d.shape[-2:]
    p = F.pad(d.unsqueeze(1), (1, 1, 1, 1), mode="reflect").squeeze(1).to(torch.float64)  # reflect-101 border
    rows = p[:, :, 0:w] + p[:, :, 1 : w + 1] + p[:, :, 2 : w + 2]
    tot = rows[:, 0:h] + rows[:, 1 : h + 1] + rows[:, 2 : h + 2]
    return torch.floor((tot * (1.0 / 9.0)).to(torch.float32))


# ----------------------------------------------------------------------------------------------- spatter
def spatter(
    x: Tensor,
    loc: Tensor | float,
    scale: Tensor | float,
    sigma: Tensor | float,
    threshold: Tensor | float,
    intensity: Tensor | float,
    mud: Tensor | bool,
    seed: Tensor | None = None,
    *,
    noise: Tensor | None = None,
    stream: int = SPATTER_STREAM,
    quantize: bool = False,
) -> Tensor:
    """Spatter (spec 2.19): water drops (OpenCV edge/distance pipeline) or mud blobs.

    Common start: liquid layer ``L = loc + scale * N(0, 1)`` (float64, one field per sample), Gaussian blur
    ``sigma`` (skimage semantics: edge replicate, truncate 4), ``L[L < threshold] = 0``.

    Water (``mud`` false): ``L8 = uint8(255 L)``; ``E = Canny(L8, 50, 150)``; chamfer distance to the edges,
    truncated at 20; 3x3 mean, truncated to 8 bit; histogram equalisation; the emboss filter
    ``[[-2,-1,0],[-1,1,1],[0,1,2]]`` with 8-bit saturation; 3x3 mean (rounded); ``m = L8 * D``;
    ``m = m / max(m) * intensity`` (per-image maximum); ``out = clip(x + m * (175, 238, 238) / 255, 0, 1)``.
    Quirk 11: ``uint8(255 L)`` wraps modulo 256 for ``L > 1`` as NumPy's cast does on x86 -- reproduced, because it
    does happen with the shipped parameters (Tiny-ImageNet / CIFAR severity 3, scale 0.3 with sigma 1: roughly one
    image in ten at 64 px gets a few wrapped, dark pixels inside a drop); when ``max(m) == 0`` (no water) the
    original divides 0 by 0 and returns NaN (a black image after the cast), here the water map is 0 and the image is
    returned unchanged.

    Mud (``mud`` true): ``M = [L > threshold]``, Gaussian blur with sigma ``intensity`` (the table's fifth column
    means the mask sigma in this branch), ``M[M < 0.8] = 0``, ``out = clip(x (1 - M) + M (63, 42, 20) / 255, 0, 1)``.

    Every step is batched; each branch runs only for the samples that use it. Exact gradient (the output is linear
    in ``x`` for a given layer). ``quantize`` computes the blend in float32 like the original and returns its 8-bit
    values bit for bit (truncation without tolerance); otherwise the blend is computed in ``x``'s dtype.

    Args:
        x: images, shape (B, 3, H, W), float in [0, 1].
        loc: mean of the liquid layer, (B,) or scalar.
        scale: standard deviation of the liquid layer, (B,) or scalar, >= 0.
        sigma: blur of the liquid layer, (B,) or scalar, >= 0.
        threshold: liquid threshold, (B,) or scalar.
        intensity: water intensity (water) or mask blur sigma (mud), (B,) or scalar, >= 0.
        mud: (B,) or scalar bool: mud branch instead of water.
        seed: (B,) int64 per-sample seeds of the normal field.
        noise: instead of ``seed``, the (B, H, W) standard normal field itself.
        stream: hash stream of the field.
        quantize: return the original's 8-bit values ``k / 255``.

    Returns:
        (B, 3, H, W), same dtype, in [0, 1].

    Example:
        >>> spatter(torch.rand(2, 3, 32, 32), 0.65, 0.3, 1.0, 0.69, 0.5, torch.tensor([False, True]),
        ...         torch.tensor([3, 4])).shape
        torch.Size([2, 3, 32, 32])
    """
    check_image(x, check_values=False)
    b, _, h, w = x.shape
    dev = x.device
    loc_ = per_sample(loc, b, "loc", device=dev)
    scale_ = per_sample(scale, b, "scale", lo=0.0, device=dev)
    sigma_ = per_sample(sigma, b, "sigma", lo=0.0)  # host: plans the Gaussian taps
    thr = per_sample(threshold, b, "threshold", device=dev).view(b, 1, 1)
    inten = per_sample(intensity, b, "intensity", lo=0.0)  # host: mud samples plan their mask blur from it
    if isinstance(mud, Tensor) and mud.device.type != "cpu":
        raise ValueError("mud: expected a host value (bool, or a CPU (B,) tensor): it selects each sample's branch")
    mud_ = torch.as_tensor(mud).reshape(-1)
    if mud_.numel() == 1 and b != 1:
        mud_ = mud_.expand(b)
    check_batch_param(mud_, b, "mud")
    mud_ = mud_.to(torch.bool)
    z = _field(seed, noise, (h, w), b, stream, "normal", dev, "noise")
    liquid = loc_.view(b, 1, 1) + scale_.view(b, 1, 1) * z
    liquid = gaussian_nearest(liquid.unsqueeze(1), sigma_).squeeze(1)
    liquid = liquid * (liquid >= thr).to(liquid.dtype)
    # the original works on float32 images (np.float32(img) / 255.); without quantize we keep x's dtype
    wd = torch.float32 if quantize else x.dtype
    xw_all = x.to(wd)
    # quantize: one exact blend + truncation kernel per branch (eager or compiled); ``out`` then holds 8-bit values.
    # Only a recorded gradient takes the float blend, truncated straight-through at the end.
    exact = quantize and not _records(x)
    out = x if exact else xw_all
    mud_list = mud_.tolist()
    if not all(mud_list):  # water samples (the branch of each sample is a host parameter)
        sel_h = (~mud_).nonzero().flatten()
        sel = sel_h.to(dev)
        iw = inten.index_select(0, sel_h).to(device=dev, dtype=torch.float32)
        lw = liquid.index_select(0, sel) if len(sel) < b else liquid
        l8 = _liquid_to_l8(lw)
        m = l8 * _water_map(l8)
        mx = m.amax(dim=(1, 2), keepdim=True)
        if exact:
            color = torch.tensor([v / 255.0 for v in WATER_COLOR], dtype=torch.float32, device=dev).view(1, 3, 1, 1)
            q = _water_exact(
                x.index_select(0, sel) if len(sel) < b else x,
                m.unsqueeze(1),
                mx.unsqueeze(1),
                iw.view(-1, 1, 1, 1),
                color,
            )
            out = out.index_copy(0, sel, q) if len(sel) < b else q
        else:
            has = (mx > 0).to(m.dtype)  # no water: map 0 (the original divides 0 by 0)
            m = (m / (mx + (1.0 - has))) * has
            m = (m * iw.view(-1, 1, 1)).unsqueeze(1).to(wd)
            color = torch.tensor([v / 255.0 for v in WATER_COLOR], dtype=torch.float32).to(device=dev, dtype=wd)
            xw = (xw_all.index_select(0, sel) + m * color.view(1, 3, 1, 1)).clamp(0.0, 1.0)
            out = out.index_copy(0, sel, xw) if len(sel) < b else xw
    if any(mud_list):  # mud samples
        sel_h = mud_.nonzero().flatten()
        sel = sel_h.to(dev)
        lm = liquid.index_select(0, sel)
        mask = (lm > thr.index_select(0, sel)).to(torch.float64).unsqueeze(1)
        mask = gaussian_nearest(mask, inten.index_select(0, sel_h))
        mask = mask * (mask >= 0.8).to(mask.dtype)
        color = torch.tensor([v / 255.0 for v in MUD_COLOR], dtype=torch.float32).to(device=dev, dtype=torch.float64)
        xs = xw_all.index_select(0, sel) if len(sel) < b else xw_all
        if exact:
            q = _mud_exact(x.index_select(0, sel) if len(sel) < b else x, mask, color.view(1, 3, 1, 1))
            out = out.index_copy(0, sel, q) if len(sel) < b else q
        else:  # as the original's in-place float32 updates: products in float64, stored in the image dtype
            xm = (xs.to(torch.float64) * (1.0 - mask)).to(wd) + (color.view(1, 3, 1, 1) * mask).to(wd)
            xm = xm.clamp(0.0, 1.0)
            out = out.index_copy(0, sel, xm) if len(sel) < b else xm
    if exact:
        return out
    if quantize:
        return _truncate8(out).to(x.dtype)  # float32 arithmetic is the original's
    return out


@fused
def _liquid_to_l8(lw: Tensor) -> Tensor:
    """``uint8(255 L)`` of the water samples' (B, H, W) float64 layers as float32 values, in one pass when fused.

    Wraps modulo 256 (quirk 11) the layers of the samples whose maximum reaches 256 (a per-sample tensor select, no
    host synchronisation; layers are >= 0, so wrapping is the identity below 256).
    """
    l8 = torch.floor(lw * 255.0)
    wrapped = l8 - 256.0 * torch.floor(l8 / 256.0)
    return torch.where(l8.amax(dim=(1, 2), keepdim=True) >= 256, wrapped, l8).to(torch.float32)


@fused
def _water_exact(x: Tensor, m: Tensor, mx: Tensor, inten: Tensor, color: Tensor) -> Tensor:
    """Quantised water blend of :func:`spatter`: normalise the map, tint, clip and truncate in one pass.

    ``x`` (B, 3, H, W); ``m`` (B, 1, H, W) float32 unnormalised map ``L8 * D``; ``mx`` (B, 1, 1, 1) its maximum;
    ``inten`` (B, 1, 1, 1) float32; ``color`` (1, 3, 1, 1) float32. The same float32 operations as the eager path.
    """
    has = (mx > 0).to(m.dtype)  # no water: map 0 (the original divides 0 by 0)
    mw = (m / (mx + (1.0 - has))) * has * inten
    v = (x.to(torch.float32) + mw * color).clamp(0.0, 1.0) * 255.0
    return _to_levels(v, x.dtype)


@fused
def _mud_exact(x: Tensor, mask: Tensor, color: Tensor) -> Tensor:
    """Quantised mud blend of :func:`spatter`: float64 products stored in float32, clip, truncate in one pass.

    ``x`` (B, 3, H, W); ``mask`` (B, 1, H, W) float64; ``color`` (1, 3, 1, 1) float64.
    """
    xs = x.to(torch.float32)
    xm = (xs.to(torch.float64) * (1.0 - mask)).to(torch.float32) + (color * mask).to(torch.float32)
    return _to_levels(xm.clamp(0.0, 1.0) * 255.0, x.dtype)


# ----------------------------------------------------------------------------------------------- snow
def snow(
    x: Tensor,
    loc: Tensor | float,
    scale: Tensor | float,
    zoom: Tensor | float,
    threshold: Tensor | float,
    radius: Tensor | float,
    sigma: Tensor | float,
    blend: Tensor | float,
    angle: Tensor | float,
    seed: Tensor | None = None,
    *,
    noise: Tensor | None = None,
    stream: int = SNOW_STREAM,
    quantize: bool = False,
) -> Tensor:
    """Snow (spec 2.10): zoomed, thresholded, motion-blurred flake layer added twice, on a brightened scene.

    1. Layer ``L = loc + scale * N(0, 1)``, one H x W field per sample (float64).
    2. ``L = clipped_zoom(L, zoom)`` (H4, top-left aligned, per axis for non-square images); ``L[L < threshold] = 0``.
    3. ``L = uint8(clip(L, 0, 1) * 255)`` (truncation before the blur, quirk 10, reproduced).
    4. ImageMagick motion blur (H5) with ``(radius, sigma, angle)``, 8-bit output (Q16 rounding), ``/ 255``.
    5. ``x' = blend x + (1 - blend) max(x, 1.5 g + 0.5)`` with ``g`` the OpenCV grey level (H8).
    6. ``out = clip(x' + L + rot180(L), 0, 1)``.

    The flake layer does not depend on ``x``; the gradient w.r.t. ``x`` is exact (piecewise linear). ``quantize``
    follows the original's precision (scene in float32, sum with the float64 layer) and returns its 8-bit values bit
    for bit (truncation without tolerance); otherwise the scene is computed in ``x``'s dtype.

    Args:
        x: images, shape (B, 3, H, W), float in [0, 1].
        loc: mean of the layer, (B,) or scalar.
        scale: standard deviation of the layer, (B,) or scalar, >= 0.
        zoom: zoom factor, (B,) or scalar, >= 1.
        threshold: flake threshold, (B,) or scalar.
        radius: motion-blur radius, (B,) or scalar, > 0.
        sigma: motion-blur sigma, (B,) or scalar, >= 0.
        blend: weight of the original scene, (B,) or scalar in [0, 1].
        angle: motion-blur angle in degrees, (B,) or scalar (the original draws U(-135, -45)).
        seed: (B,) int64 per-sample seeds of the normal field.
        noise: instead of ``seed``, the (B, H, W) standard normal field itself.
        stream: hash stream of the field.
        quantize: return the original's 8-bit values ``k / 255``.

    Returns:
        (B, 3, H, W), same dtype, in [0, 1].

    Example:
        >>> snow(torch.rand(2, 3, 32, 32), 0.1, 0.2, 1.75, 0.55, 10.0, 4.0, 0.9, -90.0, torch.tensor([1, 2])).shape
        torch.Size([2, 3, 32, 32])
    """
    check_image(x, check_values=False)
    b, _, h, w = x.shape
    dev = x.device
    loc_ = per_sample(loc, b, "loc", device=dev)
    scale_ = per_sample(scale, b, "scale", lo=0.0, device=dev)
    zoom_ = per_sample(zoom, b, "zoom", lo=1.0)  # host: plans the zoom crops
    thr = per_sample(threshold, b, "threshold", device=dev)
    blend_ = per_sample(blend, b, "blend", lo=0.0, hi=1.0, device=dev)
    z = _field(seed, noise, (h, w), b, stream, "normal", dev, "noise")
    layer = (loc_.view(b, 1, 1) + scale_.view(b, 1, 1) * z).unsqueeze(1)
    layer = clipped_zoom(layer, zoom_)
    layer = layer * (layer >= thr.view(b, 1, 1, 1)).to(layer.dtype)
    layer = truncate_uint8(layer, straight_through_grad=False)
    layer = motion_blur(layer, radius, sigma, angle, quantize=True)  # float64, values k / 255
    xs = x.to(torch.float32) if quantize else x  # the original's scene is float32
    bl = _view(blend_, xs)
    one_minus = _view(1.0 - blend_, xs)  # (1 - c) in float64, then cast, as NumPy does with a Python float
    if quantize and not _records(x):
        return _snow_exact(xs, bl, one_minus, layer).to(x.dtype)
    grey = rgb_to_grey(xs)
    scene = bl * xs + one_minus * torch.maximum(xs, grey * 1.5 + 0.5)
    out = (scene + (layer + layer.flip(-1, -2)).to(xs.dtype)).clamp(0.0, 1.0)
    return _st(out, _snow_exact(xs.detach(), bl, one_minus, layer).to(x.dtype)) if quantize else out


@fused
def _snow_exact(xs: Tensor, bl: Tensor, one_minus: Tensor, layer: Tensor) -> Tensor:
    """Quantised :func:`snow` output in one pass: float32 scene, plus the float64 layer and its 180-degree rotation.

    ``xs`` (B, 3, H, W) float32; ``bl``, ``one_minus`` (B, 1, 1, 1) float32; ``layer`` (B, 1, H, W) float64. The
    grey level is :func:`~robust_train.functional.color.rgb_to_grey`'s arithmetic inlined (float64 products, one
    rounding to float32 per step). The original's arithmetic (no tie refinement needed), truncated; float32 out.
    """
    wr, wg, wb = _GREY_W
    xd = xs.to(torch.float64)
    acc = (xd[:, 1:2] * wg).to(torch.float32).to(torch.float64)
    acc = (xd[:, 0:1] * wr + acc).to(torch.float32).to(torch.float64)
    grey = (xd[:, 2:3] * wb + acc).to(torch.float32)
    scene = bl * xs + one_minus * torch.maximum(xs, grey * 1.5 + 0.5)
    v = ((scene.to(torch.float64) + layer) + layer.flip(-1, -2)).clamp(0.0, 1.0) * 255.0
    return _to_levels(v, torch.float32)
