"""Digital corruptions (numerics): contrast, saturate, jpeg_compression, pixelate, elastic_transform.

Spec sections 2.14-2.18 with helpers H6 (PIL ``BOX`` resize) and H7 (scikit-image HSV). Functional ops take images
``(B, 3, H, W)`` in [0, 1] and per-sample arguments ``(B,)``; they never draw random numbers (the elastic transform
takes its random affine offsets and either per-sample seeds or the uniform fields themselves). They return float
output *before* the 8-bit truncation that the module applies (``quantize``); where the original works on 8-bit data
inside the algorithm (JPEG, pixelate) the op does too.

Gradients:

* ``contrast``, ``saturate``, ``elastic_transform``: exact (the elastic sampling positions do not depend on the image).
* ``pixelate``: straight-through. The value is the exact two-pass 8-bit PIL model; the gradient is that of the
  unrounded float box filter followed by the same nearest-neighbour upscale.
* ``jpeg_compression`` / ``jpeg_roundtrip``: surrogate. The value is the real libjpeg codec output; the gradient is
  that of :func:`jpeg_surrogate`, a differentiable JPEG model (colour transform, 4:2:0 averaging, 8x8 DCT,
  quantisation with the same tables and a smooth rounding ``r + (x - r)^3``, bilinear chroma upsampling).

Fused kernels (:mod:`._fused`; compiled when fusion is on, otherwise the same functions run eagerly):

* ``contrast``: the blend and clip in one pass. The per-channel means stay in ATen: a compiled reduction sums less
  accurately, and with small factors the output is nearly the mean, so a whole channel could shift one 8-bit level.
  Elementwise maths is identical, so fused == eager bit for bit.
* ``saturate``: the scikit-image HSV round trip on planes (:func:`~.color.rgb_to_hsv_planes` /
  :func:`~.color.hsv_to_rgb_planes`), saturation change and clip in one pass; same per-pixel arithmetic (bit-exact).
* ``jpeg_compression`` (CPU codec): float -> planar uint8 with the range check's ``aminmax`` before, decoder HWC uint8
  -> float CHW after (one pass each, run by the codec threads per group of images, compiled with the C++ wrapper that
  releases the GIL); integer-valued results, hence exact. The codec threads interleave the planes with NumPy.
* ``pixelate``, all samples with one intermediate size and windows of <= 8 taps (always the case for the tables):
  rounding + width pass (column gathers at the intermediate width), height pass composed with the row upscale
  (whole-row gathers), column upscale. Integer sums and ``floor((sum + bias) / count)`` as in the general path,
  hence exact (the general path serves mixed sizes, long windows and gradients). The module's value check takes
  the min and max of the width pass's taps (they cover every column for the tables' sizes).
* ``elastic_transform`` (only when fusion is on and no gradient is needed; otherwise the ``grid_sample`` path): both
  bilinear samplings as four gathers with the boundary folded into the integer taps (reflect-101 / half-sample
  symmetric), float64 weights formed as ``grid_sample`` forms them, and the displacement scaling, float32 cast and
  final clip in the second kernel. Equal to the ``grid_sample`` path up to float64 rounding (<= 1 float32 ulp
  measured). Positions and the Gaussian smoothing stay eager (exact fixed-point maths; ATen matmul / filters).
"""

from __future__ import annotations

import functools
import math
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ._common import eager_only, host_threads, single_omp_thread
from ._fused import fused, fused_runs
from .checks import (
    POSITIVE,
    check_batch_param,
    check_image,
    check_shape,
    check_value_range,
    check_values_async,
    per_sample,
)
from .color import hsv_to_rgb_planes, rgb_to_hsv_planes
from .filters import gaussian_filter2d, gaussian_kernel1d
from .jpeg import jpeg_roundtrip_torch
from .rng import field_uniform, stream_id

__all__ = [
    "ELASTIC_FIELD_STREAM",
    "REFLECT_RULES",
    "contrast",
    "elastic_affine_coords",
    "elastic_displacement",
    "elastic_transform",
    "jpeg_compression",
    "jpeg_quant_tables",
    "jpeg_roundtrip",
    "jpeg_surrogate",
    "pixelate",
    "pixelate_sizes",
    "saturate",
]

#: Stream id of the elastic transform's two uniform fields (equals ``ElasticTransform().stream("field")``).
ELASTIC_FIELD_STREAM: int = stream_id("elastic_transform/field")


def _per_sample(v: Tensor | float, x: Tensor, name: str, **bounds: float) -> Tensor:
    """A per-sample argument as (B, 1, 1, 1) in ``x``'s dtype and device (:func:`per_sample`)."""
    return per_sample(v, x.shape[0], name, dtype=x.dtype, device=x.device, **bounds).view(-1, 1, 1, 1)


def _vector(
    v: Tensor | float, batch: int, name: str, dtype: torch.dtype, device: torch.device | str | None, **bounds: float
) -> Tensor:
    """A scalar or (B,) argument as a (B,) tensor of ``dtype`` on ``device`` (:func:`per_sample`)."""
    return per_sample(v, batch, name, dtype=dtype, device=device, **bounds)


def _needs_grad(x: Tensor) -> bool:
    return torch.is_grad_enabled() and x.requires_grad


def _value_with_grad_of(value: Tensor, surrogate: Tensor) -> Tensor:
    """Exactly ``value`` in the forward pass, the gradient of ``surrogate`` in the backward pass."""
    return value.detach() + (surrogate - surrogate.detach())


# ---------------------------------------------------------------------------------------------------- contrast


def contrast(x: Tensor, factor: Tensor | float) -> Tensor:
    """Scale each channel's deviation from its own spatial mean (spec 2.14; per-channel means, quirk 12).

    Args:
        x: images, shape (B, 3, H, W), float in [0, 1].
        factor: contrast factor per sample, shape (B,) or scalar (1 = identity).

    Returns:
        ``clip((x - mean_c) * factor + mean_c, 0, 1)``, shape (B, 3, H, W), same dtype.

    Example:
        >>> contrast(torch.rand(2, 3, 8, 8), torch.tensor([0.4, 0.1])).shape
        torch.Size([2, 3, 8, 8])
    """
    check_image(x, check_values=False)
    c = _per_sample(factor, x, "factor")
    return _contrast_kernel(x, c)


@fused
def _contrast_kernel(x: Tensor, c: Tensor) -> Tensor:
    """``clip((x - mean) * c + mean, 0, 1)`` with per-plane means: one reduction and one pass when fused.

    The means are summed in float64, independent of memory layout, batch size and summation order: with small factors
    the output is almost the mean itself, so the mean decides whole channels' 8-bit levels, and float32 values on the
    8-bit grid (multiples of 2**-32 in [0, 1]) add exactly in float64 up to 2**21 pixels per plane, so the sum is the
    same whatever order a reduction (eager, compiled, CUDA) takes. Compiled, the float64 sum reads the image once
    (eager ATen converts to float64 first; benchmarks/README.md, "Design measurements").
    """
    h, w = x.shape[-2:]
    means = (x.to(torch.float64).sum(dim=(-2, -1), keepdim=True) / (h * w)).to(x.dtype)
    return ((x - means) * c + means).clamp(0.0, 1.0)


# ---------------------------------------------------------------------------------------------------- saturate


def saturate(x: Tensor, multiplier: Tensor | float, offset: Tensor | float) -> Tensor:
    """Scale and shift the HSV saturation (spec 2.15, scikit-image HSV semantics H7).

    ``S <- clip(S * multiplier + offset, 0, 1)`` in scikit-image's ``rgb2hsv``/``hsv2rgb`` space, then clip to
    [0, 1]. Grey pixels (``max == min``) have hue 0 (red), so a positive offset tints them red, as in the original.

    Args:
        x: images, shape (B, 3, H, W), float in [0, 1].
        multiplier: saturation factor per sample, shape (B,) or scalar, >= 0.
        offset: added saturation per sample, shape (B,) or scalar.

    Returns:
        Shape (B, 3, H, W), same dtype, in [0, 1].

    Raises:
        ValueError: negative multiplier or wrongly shaped arguments.

    Example:
        >>> saturate(torch.rand(2, 3, 8, 8), torch.tensor([0.3, 5.0]), torch.tensor([0.0, 0.1])).shape
        torch.Size([2, 3, 8, 8])
    """
    check_image(x, check_values=False)
    m = _per_sample(multiplier, x, "multiplier", lo=0.0)
    o = _per_sample(offset, x, "offset")
    return _saturate_kernel(x, m, o)


@fused
def _saturate_kernel(x: Tensor, m: Tensor, o: Tensor) -> Tensor:
    """scikit-image HSV round trip with ``S <- clip(S m + o, 0, 1)`` and the final clip: one pass when fused.

    Exactly :func:`~robust_train.functional.color.rgb_to_hsv` / :func:`~robust_train.functional.color.hsv_to_rgb`
    per pixel (the same plane functions), without stacking the HSV planes in between.
    """
    h, s, v = rgb_to_hsv_planes(x[:, 0:1], x[:, 1:2], x[:, 2:3])
    r, g, b = hsv_to_rgb_planes(h, (s * m + o).clamp(0.0, 1.0), v)
    return torch.cat((r, g, b), dim=1).clamp(0.0, 1.0)


# ---------------------------------------------------------------------------------------------------- JPEG

# JPEG standard (ITU T.81 Annex K) base quantisation tables, natural (row-major) order.
_LUMA_TABLE = (
    (16, 11, 10, 16, 24, 40, 51, 61),
    (12, 12, 14, 19, 26, 58, 60, 55),
    (14, 13, 16, 24, 40, 57, 69, 56),
    (14, 17, 22, 29, 51, 87, 80, 62),
    (18, 22, 37, 56, 68, 109, 103, 77),
    (24, 35, 55, 64, 81, 104, 113, 92),
    (49, 64, 78, 87, 103, 121, 120, 101),
    (72, 92, 95, 98, 112, 100, 103, 99),
)
_CHROMA_TABLE = (
    (17, 18, 24, 47, 99, 99, 99, 99),
    (18, 21, 26, 66, 99, 99, 99, 99),
    (24, 26, 56, 99, 99, 99, 99, 99),
    (47, 66, 99, 99, 99, 99, 99, 99),
) + ((99,) * 8,) * 4


def _quality_vector(quality: Tensor | float, batch: int) -> Tensor:
    """Per-sample integer JPEG qualities as a (B,) int64 CPU tensor (fractional values are rounded)."""
    q = torch.as_tensor(quality).detach().to("cpu").reshape(-1)
    if q.numel() == 1:
        q = q.expand(batch)
    check_batch_param(q, batch, "quality")
    if q.is_floating_point():
        if not bool(torch.isfinite(q).all()):
            raise ValueError(f"quality: expected finite values, got {q.tolist()}")
        q = torch.round(q.to(torch.float64))
    q = q.to(torch.int64)
    if bool(((q < 1) | (q > 100)).any()):
        raise ValueError(f"quality: expected JPEG qualities in [1, 100], got {q.tolist()}")
    return q


def jpeg_quant_tables(quality: Tensor) -> Tensor:
    """The quantisation tables of libjpeg for ``jpeg_set_quality(q, force_baseline=TRUE)``.

    ``scale = 5000 // q`` for ``q < 50`` else ``200 - 2 q``; ``table = clip((base * scale + 50) // 100, 1, 255)``.

    Args:
        quality: (B,) integer qualities in [1, 100].

    Returns:
        (B, 2, 8, 8) int64: luminance and chrominance tables in natural order.

    Example:
        >>> jpeg_quant_tables(torch.tensor([50, 100]))[:, 0, 0, 0].tolist()
        [16, 1]
    """
    q = quality.to(torch.int64).reshape(-1).clamp(1, 100)
    scale = torch.where(q < 50, torch.div(5000, q, rounding_mode="floor"), 200 - 2 * q)
    base = torch.tensor((_LUMA_TABLE, _CHROMA_TABLE), dtype=torch.int64, device=q.device)
    tables = torch.div(base.unsqueeze(0) * scale.view(-1, 1, 1, 1) + 50, 100, rounding_mode="floor")
    return tables.clamp(1, 255)


@functools.lru_cache(maxsize=8)
def _dct_matrix(dtype: torch.dtype, device: str) -> Tensor:
    """Orthonormal 8-point DCT-II matrix ``C`` (``coef = C @ block @ C.T``)."""
    k = torch.arange(8, dtype=torch.float64).view(8, 1)
    n = torch.arange(8, dtype=torch.float64).view(1, 8)
    c = torch.cos((2 * n + 1) * k * math.pi / 16) * 0.5
    c[0] = c[0] / math.sqrt(2.0)
    return c.to(device=device, dtype=dtype)


def _smooth_round(x: Tensor) -> Tensor:
    """``round(x) + (x - round(x))^3``: rounds approximately, with a non-zero gradient between integers."""
    r = torch.round(x).detach()
    return r + (x - r) ** 3


def _block_quantise(plane: Tensor, table: Tensor) -> Tensor:
    """DCT, smooth quantisation and inverse DCT of every 8x8 block. plane (B, Hp, Wp), table (B, 8, 8)."""
    b, hp, wp = plane.shape
    c = _dct_matrix(plane.dtype, str(plane.device))
    blocks = plane.view(b, hp // 8, 8, wp // 8, 8).permute(0, 1, 3, 2, 4)
    coef = c @ blocks @ c.T
    t = table.to(plane.dtype).view(b, 1, 1, 8, 8)
    rec = c.T @ (_smooth_round(coef / t) * t) @ c
    return rec.permute(0, 1, 3, 2, 4).reshape(b, hp, wp)


def jpeg_surrogate(x: Tensor, quality: Tensor | float) -> Tensor:
    """Differentiable approximation of baseline 4:2:0 JPEG (used for the backward pass of the real codec).

    RGB -> JFIF YCbCr, edge-replicate to a multiple of 16, 2x2 chroma averaging, per 8x8 block orthonormal DCT,
    quantisation with libjpeg's tables for ``quality`` and a smooth rounding ``r + (x - r)^3``, inverse DCT, bilinear
    chroma upsampling (libjpeg's "fancy" triangle filter), YCbCr -> RGB, crop, clip. Its value is close to, not equal
    to, the codec's; only its gradient is used.

    Args:
        x: images, shape (B, 3, H, W), float in [0, 1].
        quality: JPEG quality per sample, shape (B,) or scalar, in [1, 100].

    Returns:
        Shape (B, 3, H, W), same dtype.

    Example:
        >>> jpeg_surrogate(torch.rand(2, 3, 20, 12), torch.tensor([10, 80])).shape
        torch.Size([2, 3, 20, 12])
    """
    check_image(x, check_values=False)
    b, _, h, w = x.shape
    q = _quality_vector(quality, b)
    tables = jpeg_quant_tables(q).to(x.device)
    v = x * 255.0
    r, g, bl = v[:, 0], v[:, 1], v[:, 2]
    y = 0.299 * r + 0.587 * g + 0.114 * bl - 128.0
    cb = -0.168735892 * r - 0.331264108 * g + 0.5 * bl
    cr = 0.5 * r - 0.418687589 * g - 0.081312411 * bl
    hp, wp = -(-h // 16) * 16, -(-w // 16) * 16
    planes = F.pad(torch.stack((y, cb, cr), 1), (0, wp - w, 0, hp - h), mode="replicate")
    y_rec = _block_quantise(planes[:, 0], tables[:, 0])
    chroma = F.avg_pool2d(planes[:, 1:], 2)
    cb_rec = _block_quantise(chroma[:, 0], tables[:, 1])
    cr_rec = _block_quantise(chroma[:, 1], tables[:, 1])
    chroma = F.interpolate(torch.stack((cb_rec, cr_rec), 1), scale_factor=2, mode="bilinear", align_corners=False)
    y_rec = y_rec[:, :h, :w] + 128.0
    cb_rec, cr_rec = chroma[:, 0, :h, :w], chroma[:, 1, :h, :w]
    out = torch.stack(
        (y_rec + 1.402 * cr_rec, y_rec - 0.344136286 * cb_rec - 0.714136286 * cr_rec, y_rec + 1.772 * cb_rec), 1
    )
    return (out / 255.0).clamp(0.0, 1.0)


@fused(release_gil=True)
def _to_uint8_planes(x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """``round(clip(x, 0, 1) * 255)`` as planar uint8, and ``aminmax(x)`` for the value check: one pass when fused."""
    lo, hi = torch.aminmax(x)
    return torch.round(x.clamp(0.0, 1.0) * 255.0).to(torch.uint8), lo, hi


@fused(release_gil=True)
def _hwc_uint8_into(hwc: Tensor, out: Tensor) -> None:
    """Write (n, H, W, 3) uint8 as ``k / 255`` into ``out``, (n, 3, H, W) float: one pass with the layout change."""
    out.copy_((hwc.to(out.dtype) / 255.0).permute(0, 3, 1, 2))


#: Float bytes per group of images that a codec thread converts with one kernel call (a few MB: cache-sized work,
#: few calls). At 224 px float32 that is 13 images.
_CODEC_GROUP_BYTES = 8 << 20


@eager_only  # the codec is opaque host code: torch.compile runs it eagerly (graph break)
def _codec_cpu(x: Tensor, quality: list[int], out: Tensor) -> tuple[float, float]:
    """JPEG round trip of ``x`` (B, 3, H, W) float on the CPU into ``out`` (same shape, float), in parallel threads.

    Returns ``(min, max)`` of ``x`` (NaN if it contains NaN), for the caller's value check.

    Coding is libjpeg-turbo through ``torchvision.io``: ``encode_jpeg`` writes files byte-identical to Pillow's
    ``Image.save(format="JPEG", quality=q)`` (the original's encoder: same libjpeg defaults, 4:2:0, islow DCT,
    baseline tables; checked in the tests for every quality), and ``decode_jpeg`` (islow IDCT, fancy upsampling)
    decodes them bit-identically to Pillow. Both release the GIL (Pillow's encoder does not).

    The batch is split into one contiguous run of images per thread of the caller's budget (:func:`host_threads`): the
    calling thread takes the first run, pool threads the others. Each thread does all the work of its run, a group of a
    few MB at a time: float -> planar uint8 (with the ``aminmax`` of the check) in one kernel, then per image the planes
    interleaved with NumPy (the encoder's HWC layout), encoded and decoded, and finally the decoded HWC images written
    to ``out`` as floats in one kernel. Nothing runs serially around the codec. Run inside :func:`single_omp_thread`:
    the calling thread then has one OpenMP thread, like the pool threads always, and none of them starts an OpenMP team
    (a second team makes libgomp stop spin-waiting, and every later parallel region of the main thread paid for it),
    and the two conversion kernels are compiled with Inductor's C++ wrapper, which releases the GIL while they run
    (the default wrapper holds it and serialised the threads); numbers in benchmarks/README.md, "Design measurements".
    The encoder gets a CHW view of HWC memory, for which its internal ``contiguous()`` is a no-op. Every run is coded
    under ``torch.inference_mode()`` (thread-local: the caller's mode does not reach pool threads), which may write into
    a caller's inference tensor.
    """
    b, _, h, w = x.shape
    group = max(1, _CODEC_GROUP_BYTES // (x[0].numel() * x.element_size()))
    workers = min(b, host_threads())
    bounds = [b * k // workers for k in range(workers + 1)]
    futures = []
    if workers > 1:  # the calling thread codes the first run, pool threads the others (one hand-off fewer: -2%)
        pool = _codec_pool(workers - 1)
        futures = [
            pool.submit(_codec_cpu_run, x, quality, out, range(bounds[k], bounds[k + 1]), group)
            for k in range(1, workers)
        ]
    try:
        los, his = _codec_cpu_run(x, quality, out, range(bounds[0], bounds[1]), group)
    finally:
        results = [fut.result() for fut in futures]  # never return while a pool thread still writes into out
    for lo_k, hi_k in results:
        los += lo_k
        his += hi_k
    return float(torch.stack(los).min()), float(torch.stack(his).max())


def _codec_cpu_run(
    x: Tensor, quality: list[int], out: Tensor, run: range, group: int
) -> tuple[list[Tensor], list[Tensor]]:
    """Images ``run`` of ``x`` through the codec into ``out`` (see :func:`_codec_cpu`); the groups' min and max."""
    from torchvision.io import ImageReadMode, decode_jpeg, encode_jpeg

    los, his = [], []
    h, w = x.shape[-2:]
    with torch.inference_mode():
        scratch = np.empty((min(group, len(run)), h, w, 3), dtype=np.uint8)
        hwc = np.empty_like(scratch)  # reused: no large allocation per group (glibc maps those)
        for i in range(run.start, run.stop, group):
            j = min(i + group, run.stop)
            planes, lo, hi = _to_uint8_planes(x[i:j])
            los.append(lo)
            his.append(hi)
            p = planes.numpy()
            # the encoder's HWC layout by a 3-plane stack (3x faster than a transpose), passed as a CHW view
            np.stack((p[:, 0], p[:, 1], p[:, 2]), axis=-1, out=hwc[: j - i])
            for k in range(j - i):
                enc = encode_jpeg(torch.from_numpy(hwc[k]).permute(2, 0, 1), quality=int(quality[i + k]))
                dec = decode_jpeg(enc, mode=ImageReadMode.RGB)  # (3, H, W) view of (H, W, 3) memory
                np.copyto(scratch[k], dec.permute(1, 2, 0).numpy())  # a plain copy
            _hwc_uint8_into(torch.from_numpy(scratch[: j - i]), out[i:j])
    return los, his


_POOLS: dict[int, ThreadPoolExecutor] = {}


def _codec_pool(workers: int) -> ThreadPoolExecutor:
    """A lazily created, reused thread pool for the CPU codec; its threads use one OpenMP thread each."""
    if workers not in _POOLS:
        # created inside single_omp_thread (the process-wide count is already 1): this only sets the new thread's own
        # OpenMP thread count, which is per thread
        _POOLS[workers] = ThreadPoolExecutor(
            max_workers=workers, thread_name_prefix="rt-jpeg", initializer=torch.set_num_threads, initargs=(1,)
        )
    return _POOLS[workers]


def jpeg_compression(x: Tensor, quality: Tensor | float, codec: str = "auto", *, check_values: bool = False) -> Tensor:
    """JPEG encode and decode each image at its own quality (spec 2.16).

    Images are quantised to 8 bit by rounding (exact for images already on the 8-bit grid), encoded as baseline
    JPEG with libjpeg's standard tables scaled by ``quality``, 4:2:0 chroma subsampling and the islow DCT, and decoded
    with the islow IDCT and fancy upsampling. Two codecs give identical output (checked in the tests):

    * ``"cpu"``: libjpeg-turbo through ``torchvision.io.encode_jpeg`` / ``decode_jpeg`` on the host, one thread per
      torch thread: the files are byte-identical to the original's ``PIL.Image.save(format="JPEG", quality=q)`` and
      decode bit-identically to Pillow's decoder (both checked in the tests, the files for every quality 1-100).
    * ``"torch"``: :func:`~.jpeg.jpeg_roundtrip_torch`, the same lossy stages (no entropy coding) as batched integer
      tensor maths on the tensor's own device, bit-exact with Pillow; no host copies or synchronisation.

    ``codec="auto"`` uses ``"torch"`` on every device but the CPU, and ``"cpu"`` on the CPU, where it is faster
    (``benchmarks/jpeg_codec.py``, ``benchmarks/results/jpeg_codec_cpu.md``).

    Gradient: the value is the codec output; the gradient is that of :func:`jpeg_surrogate` (straight-through onto
    a differentiable JPEG model). The surrogate is only evaluated when a gradient is needed.

    Args:
        x: images, shape (B, 3, H, W), float in [0, 1].
        quality: JPEG quality per sample, shape (B,) or scalar, in [1, 100] (fractional values are rounded).
        codec: ``"auto"`` (the torch codec off the CPU, libjpeg on it), ``"cpu"`` (always libjpeg on the host) or
            ``"torch"`` (always the torch codec, on ``x.device``).
        check_values: raise on values outside [0, 1] or NaN, as :func:`~.checks.check_image` does (free on the CPU
            codec: its uint8 conversion computes the range); otherwise values are clipped to [0, 1].

    Returns:
        Decoded images, shape (B, 3, H, W), same dtype and device, values on the 8-bit grid ``k / 255``.

    Raises:
        ValueError: quality outside [1, 100], wrong shapes, unknown codec; with ``check_values``, values outside
            [0, 1] or NaN.

    Example:
        >>> jpeg_compression(torch.rand(2, 3, 16, 16), torch.tensor([25, 80])).shape
        torch.Size([2, 3, 16, 16])
    """
    check_image(x, check_values=False)
    if codec not in ("auto", "cpu", "torch"):
        raise ValueError(f"codec: expected 'auto', 'cpu' or 'torch', got {codec!r}")
    q = _quality_vector(quality, x.shape[0])
    if codec == "torch" or (codec == "auto" and x.device.type != "cpu"):
        if check_values:
            check_image(x)
        out = jpeg_roundtrip_torch(x.detach(), q)
    else:
        src = x.detach().to("cpu").contiguous()
        out = torch.empty(src.shape, dtype=x.dtype)
        with single_omp_thread():
            lo, hi = _codec_cpu(src, q.tolist(), out)
        if check_values:
            check_value_range(lo, hi)
        out = out.to(x.device)
    if _needs_grad(x):
        return _value_with_grad_of(out, jpeg_surrogate(x, q))
    return out


def jpeg_roundtrip(x: Tensor, quality: Tensor | float, codec: str = "auto") -> Tensor:
    """The released-data JPEG round trip (save as JPEG at ``quality``, usually 85, and decode).

    The original saved every ImageNet-C and Tiny-ImageNet-C image with PIL at quality 85 (``optimize=True`` only
    changes the Huffman tables, which is lossless). Same codec and gradient as :func:`jpeg_compression`.

    Args:
        x: images, shape (B, 3, H, W), float in [0, 1] (normally already truncated to the 8-bit grid).
        quality: JPEG quality per sample, shape (B,) or scalar, in [1, 100].
        codec: ``"auto"``, ``"cpu"`` or ``"torch"`` (see :func:`jpeg_compression`).

    Returns:
        Shape (B, 3, H, W), same dtype and device.

    Example:
        >>> jpeg_roundtrip(torch.rand(2, 3, 16, 16), torch.full((2,), 85)).shape
        torch.Size([2, 3, 16, 16])
    """
    return jpeg_compression(x, quality, codec=codec)


# ---------------------------------------------------------------------------------------------------- pixelate

_PREC = 22  # Pillow's fixed-point precision for 8-bit resampling (32 - 8 - 2 bits)


@functools.lru_cache(maxsize=512)
def _box_windows(n: int, m: int) -> tuple[Tensor, Tensor, Tensor]:
    """Pillow ``BOX`` coefficients for resizing ``n`` -> ``m`` pixels along one axis (spec H6).

    Follows Pillow's ``precompute_coeffs`` arithmetic (window centre ``(j + 0.5) * n / m``, support ``scale / 2``,
    tap ``x`` kept when ``-0.5 < (x - centre + 0.5) / scale <= 0.5``) and its 8-bit normalisation (weights
    ``int(0.5 + w * 2**22)``). A box row's taps are contiguous and share one weight.

    Returns:
        ``(start, stop, k)``, each (m,) int64: output ``j`` averages inputs ``start[j]:stop[j]`` with fixed-point
        weight ``k[j]``.
    """
    scale = n / m
    filterscale = max(scale, 1.0)
    support = 0.5 * filterscale
    ss = 1.0 / filterscale
    start = torch.zeros(m, dtype=torch.int64)
    stop = torch.zeros(m, dtype=torch.int64)
    k = torch.zeros(m, dtype=torch.int64)
    for j in range(m):
        center = (j + 0.5) * scale
        xmin = max(int(center - support + 0.5), 0)
        xmax = min(int(center + support + 0.5), n)
        taps = [xi for xi in range(xmin, xmax) if -0.5 < (xi - center + 0.5) * ss <= 0.5]
        if not taps or taps != list(range(taps[0], taps[-1] + 1)):
            raise AssertionError(f"unexpected BOX window {taps} for {n}->{m}")  # pragma: no cover
        start[j], stop[j] = taps[0], taps[-1] + 1
        k[j] = int(0.5 + (1.0 / len(taps)) * (1 << _PREC))
    return start, stop, k


def pixelate_sizes(height: int, width: int, factor: Tensor) -> Tensor:
    """Intermediate sizes ``(int(H * c), int(W * c))`` per sample (truncation, at least 1).

    Args:
        height: image height H.
        width: image width W.
        factor: (B,) downscale factors in (0, 1].

    Returns:
        (B, 2) int64 ``(side_h, side_w)``.

    Example:
        >>> pixelate_sizes(224, 224, torch.tensor([0.6, 0.25], dtype=torch.float64)).tolist()
        [[134, 134], [56, 56]]
    """
    c = factor.detach().to("cpu", torch.float64).reshape(-1)
    sh = torch.floor(height * c).to(torch.int64).clamp_min(1)
    sw = torch.floor(width * c).to(torch.int64).clamp_min(1)
    return torch.stack((sh, sw), 1)


@functools.lru_cache(maxsize=256)
def _axis_plan_cpu(n: int, sides: tuple[int, ...]) -> tuple[Tensor, ...]:
    """Per-sample plan of one axis for the downscale n -> side and the upscale back.

    Windows padded to the largest side with empty windows, their tap counts, rounding biases and fixed-point
    weights, and the nearest-neighbour source index of the upscale side -> n. Shapes (B, M) x 5 and (B, n).
    """
    mx = max(sides)
    start = torch.zeros(len(sides), mx, dtype=torch.int64)
    stop = torch.zeros(len(sides), mx, dtype=torch.int64)
    k = torch.zeros(len(sides), mx, dtype=torch.int64)
    up = torch.zeros(len(sides), n, dtype=torch.int64)
    for i, s in enumerate(sides):
        start[i, :s], stop[i, :s], k[i, :s] = _box_windows(n, s)
        ustart, ustop, uk = _box_windows(s, n)
        if not (bool((ustop - ustart == 1).all()) and bool((uk == (1 << _PREC)).all())):
            raise AssertionError(f"BOX upscale {s}->{n} is expected to be nearest-neighbour")  # pragma: no cover
        up[i] = ustart
    count = (stop - start).clamp_min(1)
    # Ties (sum / count exactly half-way) round up when the fixed-point weight k >= 2**22 / count, down otherwise.
    bias = count.to(torch.float64) / 2 - torch.where(k * count >= (1 << _PREC), 0.0, 0.25)
    bias = torch.where(stop > start, bias, torch.zeros_like(bias))
    return start, stop, count.to(torch.float64), bias, k.to(torch.float64), up


@functools.lru_cache(maxsize=256)
def _nearest_exact_matches(m: int, n: int) -> bool:
    """Whether ``interpolate(mode="nearest-exact")`` picks Pillow's BOX-upscale source pixels for m -> n."""
    src = torch.arange(m, dtype=torch.float32).view(1, 1, 1, m)
    got = F.interpolate(src, size=(1, n), mode="nearest-exact").view(-1).to(torch.int64)
    return bool(torch.equal(got, _axis_plan_cpu(n, (m,))[5][0]))


def _window_sums(v: Tensor, start: Tensor, stop: Tensor, dim: int, plan: Tensor) -> Tensor:
    """Sums of ``v`` over per-sample windows ``start:stop`` along ``dim`` (-1 or -2), exact for 8-bit integers.

    Short windows (the usual case: 1-4 taps) add one gathered tap at a time; long ones use a cumulative sum.
    ``plan`` is the host copy of the window lengths ``stop - start``: it decides the tap count.
    """
    count = stop - start
    taps = int(plan.max())
    if taps <= 8:
        n = v.shape[dim]
        out = _take(v, start.clamp(max=n - 1), dim)
        shape = (v.shape[0], 1, 1, -1) if dim == -1 else (v.shape[0], 1, -1, 1)
        if bool((plan == 0).any()):
            out = out * (count > 0).to(v.dtype).view(shape)
        for t in range(1, taps):
            out = out + _take(v, (start + t).clamp(max=n - 1), dim) * (count > t).to(v.dtype).view(shape)
        return out
    pad = (1, 0) if dim == -1 else (0, 0, 1, 0)
    csum = F.pad(torch.cumsum(v, dim=dim), pad)
    return _take(csum, stop, dim) - _take(csum, start, dim)


def _take(v: Tensor, index: Tensor, dim: int) -> Tensor:
    """Gather along ``dim`` (-1 or -2) with a per-sample (B, M) index shared by channels and the other axis."""
    b, c, h, w = v.shape
    if dim == -1:
        return v.gather(3, index.view(b, 1, 1, -1).expand(b, c, h, index.shape[1]))
    return v.gather(2, index.view(b, 1, -1, 1).expand(b, c, index.shape[1], w))


def _round_pass(sums: Tensor, count: Tensor, bias: Tensor, k: Tensor, max_count: float) -> Tensor:
    """Pillow's rounding of one 8-bit pass, ``clip((sum * k + 2**21) >> 22, 0, 255)``, for box sums of 8-bit ints.

    With ``k = round(2**22 / count)`` this equals ``floor((sum + bias) / count)`` (round half up, or half down where
    ``k < 2**22 / count``) as long as ``count < 128``: the fixed-point error is then smaller than the distance to the
    next rounding boundary, and the float32 division is exact enough. Larger windows use the float64 fixed-point form.
    ``max_count`` is the largest window (a host value).
    """
    if max_count < 128 and sums.dtype in (torch.float32, torch.float64):
        return torch.floor((sums + bias.to(sums.dtype)) / count.to(sums.dtype))
    acc = sums.to(torch.float64) * k + float(1 << (_PREC - 1))
    return torch.floor(acc * (1.0 / (1 << _PREC))).clamp_(0.0, 255.0).to(sums.dtype)


def _upscale(t: Tensor, h_up: Tensor, w_up: Tensor, sides: Tensor, h: int, w: int) -> Tensor:
    """Nearest-neighbour upscale with Pillow's source indices (fast path when every sample has the same size)."""
    mh, mw = int(sides[0, 0]), int(sides[0, 1])
    uniform = bool((sides == sides[0]).all())
    if uniform and _nearest_exact_matches(mh, h) and _nearest_exact_matches(mw, w):
        return F.interpolate(t, size=(h, w), mode="nearest-exact")
    return _take(_take(t, w_up, -1), h_up, -2)


_FAST_TAPS = 8  # the fast path handles windows of up to this many taps (count < 128 keeps the float rounding exact)


@functools.lru_cache(maxsize=64)
def _pass_plan_cpu(n: int, m: int) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """One BOX pass n -> m per intermediate line ``j``, and the nearest upscale source of each of the n lines.

    Returns ``(idx, mask, bias, count, up)``: (T, m) int64 source lines ``start + t`` (clamped) and float32 0/1 masks
    ``t < count`` for the T taps, (m,) float32 bias and count of the rounding ``floor((sum + bias) / count)``, and (n,)
    int64 upscale sources. Float32 is exact here: sums of at most ``_FAST_TAPS`` 8-bit values.
    """
    start, stop, count, bias, _, up = (t[0] for t in _axis_plan_cpu(n, (m,)))
    taps = int((stop - start).max())
    idx = torch.stack([(start + t).clamp(max=n - 1) for t in range(taps)])
    mask = torch.stack([(stop - start) > t for t in range(taps)]).to(torch.float32)
    return idx, mask, bias.to(torch.float32), count.to(torch.float32), up


@fused
def _box_pass_u8(u: Tensor, idx: Tensor, mask: Tensor, bias: Tensor, count: Tensor, *, taps: int, dim: int) -> Tensor:
    """One exact BOX pass of 8-bit planes along ``dim`` (-1: columns, -2: rows): uint8 (B, C, H, W) -> uint8.

    ``out[..., j] = floor((sum_t u[..., idx[t, j]] * mask[t, j] + bias[j]) / count[j])`` along ``dim``. Along rows
    whole rows are gathered (contiguous loads). The gathers are ``_unsafe_index``: the plan's indices are in range by
    construction, so no bounds check per element.
    """
    lead: list[Tensor | None] = [None, None] if dim == -2 else [None, None, None]
    shape = (-1,) if dim == -1 else (-1, 1)
    acc = None
    for t in range(taps):
        g = torch.ops.aten._unsafe_index(u, [*lead, idx[t]]).to(torch.float32) * mask[t].view(shape)
        acc = g if acc is None else acc + g
    return torch.floor((acc + bias.view(shape)) / count.view(shape)).to(torch.uint8)


@fused
def _upscale_u8(v: Tensor, up_h: Tensor, up_w: Tensor | None, *, dtype: torch.dtype) -> Tensor:
    """Nearest upscale of 8-bit planes with Pillow's source indices, as ``k / 255`` in ``dtype``: one gather pass.

    ``up_w=None`` upscales the rows only (whole-row gathers).
    """
    index = [None, None, up_h] if up_w is None else [None, None, up_h.view(-1, 1), up_w]
    return torch.ops.aten._unsafe_index(v, index).to(dtype) / 255.0


@fused
def _take_cols_u8(v: Tensor, index: Tensor) -> Tensor:
    """``v[..., index]`` for uint8 planes."""
    return torch.ops.aten._unsafe_index(v, [None, None, None, index])


def _pixelate_uniform(x: Tensor, mh: int, mw: int, work: torch.dtype, check_values: bool) -> Tensor | None:
    """Pixelate when every sample has the same intermediate size (the usual case); ``None`` if windows are long.

    Same arithmetic as the general path on 8-bit planes, in four kernels: rounding to uint8 (with the input's range
    for the value check, in the same pass), the width pass, the height pass (at the intermediate size, whole-row
    gathers) and the nearest upscale of both axes back to ``work`` (the general path's dtype); below half the height
    the upscale widens the few distinct rows first and then copies whole rows (a fifth kernel, fewer gathers).
    Working in uint8 quarters the memory the passes read and write; measured in benchmarks/README.md, "Design
    measurements".
    """
    h, w = x.shape[-2:]
    pw, ph = _pass_plan_cpu(w, mw), _pass_plan_cpu(h, mh)
    taps_w, taps_h = pw[0].shape[0], ph[0].shape[0]
    if max(taps_w, taps_h) > _FAST_TAPS:
        return None
    pw, ph = [t.to(x.device) for t in pw], [t.to(x.device) for t in ph]
    u, lo, hi = _to_uint8_planes(x.to(work))
    if check_values:
        check_value_range(float(lo), float(hi))
    u = _box_pass_u8(u, *pw[:4], taps=taps_w, dim=-1)  # (B, C, H, Mw)
    u = _box_pass_u8(u, *ph[:4], taps=taps_h, dim=-2)  # (B, C, Mh, Mw)
    if 2 * mh < h:  # few distinct rows: widen them once, then copy whole rows (fewer gathers)
        return _upscale_u8(_take_cols_u8(u, pw[4]), ph[4], None, dtype=work).to(x.dtype)
    return _upscale_u8(u, ph[4], pw[4], dtype=work).to(x.dtype)


def pixelate(x: Tensor, factor: Tensor | float, *, check_values: bool = False) -> Tensor:
    """Pixelate: PIL ``BOX`` resize to ``int(S * c)`` and back (spec 2.17, H6), exact 8-bit model.

    The image is quantised to 8 bit (rounding; exact for 8-bit inputs). Downscale: each output pixel averages, with
    equal weights, the input pixels whose centres lie in its box window; two separable passes (width first, then
    height), each in Pillow's 22-bit fixed point with round-half-up and clamping to uint8 after the pass. Upscale:
    nearest neighbour with source index ``floor((j + 0.5) * side / S)`` (what ``BOX`` reduces to when enlarging).
    Per-sample factors give per-sample intermediate sizes (continuous severities). Non-square images use
    ``int(H * c)`` by ``int(W * c)``; the original's hard-coded ``int(224 * c)`` is the square special case. The
    width-first pass order is Pillow's up to 12.x (the original pinned 5.0); Pillow >= 13 runs the height pass first
    when ``H - h > 2 (W - w)``, which never happens for square images.

    Gradient: straight-through: the value is the exact 8-bit result, the gradient that of the float box average
    (no rounding) followed by the same nearest-neighbour upscale.

    Args:
        x: images, shape (B, 3, H, W), float in [0, 1].
        factor: downscale factor per sample, shape (B,) or scalar, in (0, 1]; sizes are ``int(S * c)`` computed in
            float64, so pass Python floats or float64 tensors (a float32 ``0.02`` is slightly below 0.02).
        check_values: raise on values outside [0, 1] or NaN, as :func:`~.checks.check_image` does (for uniform
            sizes from the range that the rounding to 8 bit computes in its pass); otherwise values are clipped to
            [0, 1].

    Returns:
        Shape (B, 3, H, W), same dtype, values on the 8-bit grid ``k / 255``.

    Raises:
        ValueError: factor outside (0, 1] or wrongly shaped; with ``check_values``, values outside [0, 1] or NaN.

    Example:
        >>> pixelate(torch.rand(2, 3, 32, 32), torch.tensor([0.95, 0.65])).shape
        torch.Size([2, 3, 32, 32])
    """
    check_image(x, check_values=False)
    b, c, h, w = x.shape
    fac = _vector(factor, b, "factor", torch.float64, "cpu", lo=POSITIVE, hi=1.0)  # host values plan the windows
    if check_values and x.device.type != "cpu":  # on a device the value check must not stall the stream
        check_values_async(x)
        check_values = False
    sizes = pixelate_sizes(h, w, fac)
    work = torch.float64 if x.dtype == torch.float64 else torch.float32  # window sums of 8-bit ints are exact
    if not _needs_grad(x) and bool((sizes == sizes[0]).all()):
        out = _pixelate_uniform(x.detach(), int(sizes[0, 0]), int(sizes[0, 1]), work, check_values)
        if out is not None:
            return out
    if check_values:
        check_image(x)
    hplan = _axis_plan_cpu(h, tuple(sizes[:, 0].tolist()))  # host plans; the maths gets device copies
    wplan = _axis_plan_cpu(w, tuple(sizes[:, 1].tolist()))
    h0, h1, hn, hb, hk, hup = (t.to(x.device) for t in hplan)
    w0, w1, wn, wb, wk, wup = (t.to(x.device) for t in wplan)
    hc, wc = hplan[1] - hplan[0], wplan[1] - wplan[0]
    hmax, wmax = float(hplan[2].max()), float(wplan[2].max())
    u = x.detach().to(work).mul(255.0).clamp_(0.0, 255.0).round_()
    sums = _window_sums(u, w0, w1, -1, wc)
    t = _round_pass(sums, wn.view(b, 1, 1, -1), wb.view(b, 1, 1, -1), wk.view(b, 1, 1, -1), wmax)
    sums = _window_sums(t, h0, h1, -2, hc)
    t = _round_pass(sums, hn.view(b, 1, -1, 1), hb.view(b, 1, -1, 1), hk.view(b, 1, -1, 1), hmax)
    out = _upscale(t, hup, wup, sizes, h, w).div_(255.0).to(x.dtype)
    if _needs_grad(x):
        cw = (w1 - w0).clamp_min(1).to(x.dtype).view(b, 1, 1, -1)
        ch = (h1 - h0).clamp_min(1).to(x.dtype).view(b, 1, -1, 1)
        avg = _window_sums(_window_sums(x, w0, w1, -1, wc) / cw, h0, h1, -2, hc) / ch
        return _value_with_grad_of(out, _take(_take(avg, wup, -1), hup, -2))
    return out


# ---------------------------------------------------------------------------------------------------- elastic


def _bilinear(img: Tensor, rows: Tensor, cols: Tensor, mode: str) -> Tensor:
    """Bilinear sample ``img`` at float pixel positions with a symmetric boundary (float64 ``grid_sample``).

    Linear interpolation of a symmetrically extended signal equals interpolation at the reflected coordinate, so
    OpenCV's tap-wise ``BORDER_REFLECT_101`` is ``grid_sample(padding_mode="reflection", align_corners=True)`` and
    SciPy's ``mode='reflect'`` (half-sample symmetric) is the same with ``align_corners=False`` (checked against both
    libraries in the tests). Sampling runs in float64 (no coordinate round-off), the result is cast back.

    Args:
        img: (B, C, H, W).
        rows: (B, Ho, Wo) float64 row positions (pixel centres at integers).
        cols: (B, Ho, Wo) float64 column positions.
        mode: ``"mirror"`` (reflect-101) or ``"reflect"`` (half-sample symmetric).

    Returns:
        (B, C, Ho, Wo) in ``img``'s dtype.
    """
    h, w = img.shape[-2:]
    if mode == "mirror":
        gx = cols * (2.0 / max(w - 1, 1)) - 1.0
        gy = rows * (2.0 / max(h - 1, 1)) - 1.0
    elif mode == "reflect":
        gx = (2.0 * cols + 1.0) / w - 1.0
        gy = (2.0 * rows + 1.0) / h - 1.0
    else:
        raise ValueError(f"mode: expected 'mirror' or 'reflect', got {mode!r}")
    grid = torch.stack((gx, gy), dim=-1).to(torch.float64)
    out = F.grid_sample(
        img.to(torch.float64), grid, mode="bilinear", padding_mode="reflection", align_corners=(mode == "mirror")
    )
    return out.to(img.dtype)


def _tap_index(i: Tensor, n: int, mirror: bool) -> Tensor:
    """Integer-valued float taps ``i`` folded into ``[0, n)`` as int64, reflect-101 or half-sample symmetric.

    ``mirror`` selects reflect-101. Any distance; a float floor replaces an integer remainder (not vectorised).
    """
    p = 2 * (n - 1) if mirror else 2 * n
    m = i - p * torch.floor(i * (1.0 / p))
    m = m - p * (m >= p).to(m.dtype)  # guards the rounding of i / p just below an integer
    return torch.minimum(m, p - m if mirror else p - 1 - m).to(torch.int64)


#: ``reflect_rule`` values of :func:`elastic_transform`: SciPy < 1.6 (made the released data) or SciPy >= 1.6.
REFLECT_RULES = ("scipy_1.0", "scipy_1.6")


def _scipy10_reflect(c: Tensor, n: int) -> tuple[Tensor, Tensor]:
    """SciPy 1.0's ``map_coordinate`` for ``mode='reflect'``: positions folded before the spline taps are placed.

    Below 0: ``c -> -c - 1`` (after whole periods ``2n`` are removed); above ``n - 1``: whole periods removed, then
    ``c >= n -> 2n - c - 1``. A position in ``(n - 1, n)`` stays, one in ``(-1, 0)`` maps into ``(-1, 0)``; their
    taps are then folded reflect-101 (``-1 -> 1``, ``n -> n - 2``), unlike SciPy >= 1.6's half-sample symmetric
    taps. Returns the folded positions and the mask of positions SciPy 1.0 keeps (``> -1``; else ``cval`` 0).
    """
    if n <= 1:
        return torch.zeros_like(c), torch.ones_like(c, dtype=torch.bool)
    p = float(2 * n)
    neg = torch.where(c < -p, p * torch.trunc(-c / p) + c, c)
    neg = torch.where(neg < -n, neg + p, -neg - 1.0)
    pos = c - p * torch.trunc(c / p)
    pos = torch.where(pos >= n, p - pos - 1.0, pos)
    out = torch.where(c < 0, neg, torch.where(c > n - 1, pos, c))
    return out, out > -1.0


def _bilinear_taps(img: Tensor, rows: Tensor, cols: Tensor, mirror: bool) -> Tensor:
    """Bilinear sampling with the boundary applied to the four taps (the same values as :func:`_bilinear`).

    ``img`` (B, C, H, W), ``rows``/``cols`` (B, H', W') float64 positions; float64 weights formed as
    ``grid_sample`` forms them. Returns (B, C, H', W') float64.
    """
    b, c, h, w = img.shape
    r0, c0 = torch.floor(rows), torch.floor(cols)
    fr, fc = (rows - r0).unsqueeze(1), (cols - c0).unsqueeze(1)
    ra, rb = _tap_index(r0, h, mirror) * w, _tap_index(r0 + 1, h, mirror) * w
    ca, cb = _tap_index(c0, w, mirror), _tap_index(c0 + 1, w, mirror)
    flat = img.reshape(b, c, h * w).to(torch.float64)
    n = rows.shape[1] * rows.shape[2]

    def tap(idx: Tensor) -> Tensor:
        return flat.gather(2, idx.reshape(b, 1, n).expand(b, c, n)).view(b, c, *rows.shape[1:])

    gr, gc = 1.0 - fr, 1.0 - fc
    return tap(ra + ca) * (gc * gr) + tap(ra + cb) * (fc * gr) + tap(rb + ca) * (gc * fr) + tap(rb + cb) * (fc * fr)


@fused
def _elastic_warp_kernel(x: Tensor, rows: Tensor, cols: Tensor) -> Tensor:
    """Step 1 (OpenCV ``warpAffine``, reflect-101) at float64 source positions, cast back to ``x``'s dtype."""
    return _bilinear_taps(x, rows, cols, mirror=True).to(x.dtype)


@fused
def _elastic_displace_kernel(warped: Tensor, smooth: Tensor, alpha: Tensor, scipy10: bool = False) -> Tensor:
    """Steps 2-3: float32 displacements ``alpha * smooth``, SciPy ``map_coordinates(order=1, mode='reflect')``, clip.

    ``scipy10`` selects SciPy 1.0's border rule (:func:`_scipy10_reflect`), else SciPy >= 1.6's.
    """
    b, _, h, w = warped.shape
    disp = (smooth * alpha.view(-1, 1, 1, 1)).to(torch.float32).to(torch.float64)
    ys = torch.arange(h, dtype=torch.float64, device=warped.device).view(1, -1, 1)
    xs = torch.arange(w, dtype=torch.float64, device=warped.device).view(1, 1, -1)
    rows, cols = ys + disp[:, 1], xs + disp[:, 0]
    if not scipy10:
        return _bilinear_taps(warped, rows, cols, mirror=False).to(warped.dtype).clamp(0.0, 1.0)
    (rows, keep_r), (cols, keep_c) = _scipy10_reflect(rows, h), _scipy10_reflect(cols, w)
    out = _bilinear_taps(warped, rows, cols, mirror=True) * (keep_r & keep_c).unsqueeze(1)
    return out.to(warped.dtype).clamp(0.0, 1.0)


def _affine_points(height: int, width: int) -> Tensor:
    """The original's source triangle as (3, 2) float32 ``(x, y)`` points (generalised to non-square images)."""
    cx, cy = float(width // 2), float(height // 2)
    q = float(max(min(height, width) // 3, 1))  # the original's triangle degenerates below 3 px; keep it valid
    pts = [[cx + q, cy + q], [cx + q, cy - q], [cx - q, cy - q]]
    return torch.tensor(pts, dtype=torch.float32)


def elastic_affine_coords(
    offsets: Tensor, height: int, width: int, opencv_fixed_point: bool = True
) -> tuple[Tensor, Tensor]:
    """Source positions of OpenCV ``warpAffine(getAffineTransform(P, P + offsets))`` for every output pixel.

    ``P`` is the original's triangle: centre ``(W // 2, H // 2)``, half-size ``q = min(H, W) // 3``, points
    ``(cx+q, cy+q), (cx+q, cy-q), (cx-q, cy-q)`` (the original uses ``(H // 2, W // 2)`` as ``(x, y)``, which is the
    same for the square images it supports). ``P + offsets`` is formed in float32 as the original does. The forward
    matrix is solved in float64 and inverted with OpenCV's formula. With ``opencv_fixed_point`` (default, OpenCV 3.4 /
    4.x up to 4.10, which the original pinned) the positions follow ``warpAffine``'s fixed-point arithmetic: each term
    rounded to 1/1024 px, the sum floored to 1/32 px (``INTER_BITS = 5``). Without it, positions are exact float64 (as
    OpenCV >= 4.11's float kernels compute them).

    Args:
        offsets: (B, 3, 2) perturbations of the destination triangle in pixels, ``(dx, dy)`` per point.
        height: image height H.
        width: image width W.
        opencv_fixed_point: emulate OpenCV's 1/32-pixel coordinate quantisation.

    Returns:
        ``(rows, cols)``, each (B, H, W) float64 on ``offsets``' device.

    Example:
        >>> r, c = elastic_affine_coords(torch.zeros(1, 3, 2), 8, 8)
        >>> bool((r[0] == torch.arange(8.0).view(8, 1)).all()), r.shape
        (True, torch.Size([1, 8, 8]))
    """
    check_shape(offsets, "B 3 2", "offsets")
    dev = offsets.device
    src = _affine_points(height, width).to(dev)
    dst = (src.unsqueeze(0) + offsets.detach().to(torch.float32)).to(torch.float64)
    src64 = src.to(torch.float64)
    a = torch.cat((src64, torch.ones(3, 1, dtype=torch.float64, device=dev)), 1)  # (3, 3) rows (x, y, 1)
    sol = torch.linalg.solve(a.unsqueeze(0).expand(dst.shape[0], 3, 3), dst)  # (B, 3, 2)
    m0, m1, m2 = sol[:, 0, 0], sol[:, 1, 0], sol[:, 2, 0]
    m3, m4, m5 = sol[:, 0, 1], sol[:, 1, 1], sol[:, 2, 1]
    det = m0 * m4 - m1 * m3
    det = torch.where(det != 0, 1.0 / torch.where(det != 0, det, torch.ones_like(det)), torch.zeros_like(det))
    i0, i4 = m4 * det, m0 * det
    i1, i3 = m1 * (-det), m3 * (-det)
    i2 = -i0 * m2 - i1 * m5
    i5 = -i3 * m2 - i4 * m5
    xs = torch.arange(width, dtype=torch.float64, device=dev).view(1, 1, -1)
    ys = torch.arange(height, dtype=torch.float64, device=dev).view(1, -1, 1)
    v = [t.view(-1, 1, 1) for t in (i0, i1, i2, i3, i4, i5)]
    if opencv_fixed_point:
        ab, half = 1024.0, 16.0  # AB_SCALE = 2**10; round_delta = AB_SCALE / INTER_TAB_SIZE / 2
        adelta = torch.round(v[0] * xs * ab)
        bdelta = torch.round(v[3] * xs * ab)
        x0 = torch.round((v[1] * ys + v[2]) * ab) + half
        y0 = torch.round((v[4] * ys + v[5]) * ab) + half
        cols = torch.floor((x0 + adelta) / 32.0) / 32.0
        rows = torch.floor((y0 + bdelta) / 32.0) / 32.0
    else:
        cols = v[0] * xs + (v[1] * ys + v[2])
        rows = v[3] * xs + (v[4] * ys + v[5])
    return rows, cols


def _reflect_gaussian_matrix(kernel: Tensor, n: int) -> Tensor:
    """(B, n, n) matrices ``G`` with ``G @ v`` = correlation with ``kernel`` under SciPy ``'reflect'`` (any width).

    Uses the period-``2n`` folding of the half-sample symmetric extension: ``G[i, j] = wf((j - i) mod 2n) +
    wf((2n - 1 - j - i) mod 2n)`` where ``wf`` is the kernel folded modulo ``2n``.
    """
    b, k = kernel.shape
    r = (k - 1) // 2
    period = 2 * n
    pos = torch.remainder(torch.arange(-r, r + 1, device=kernel.device), period)
    folded = torch.zeros(b, period, dtype=kernel.dtype, device=kernel.device).index_add_(1, pos, kernel)
    i = torch.arange(n, device=kernel.device).view(-1, 1)
    j = torch.arange(n, device=kernel.device).view(1, -1)
    return folded[:, torch.remainder(j - i, period)] + folded[:, torch.remainder(period - 1 - j - i, period)]


@functools.lru_cache(maxsize=16)
def _reflect_gaussian_matrix_cached(sigma: float, n: int, device: str) -> Tensor:
    """:func:`_reflect_gaussian_matrix` of one float64 sigma as an (n, n) matrix, cached per (sigma, n, device)."""
    kernel = gaussian_kernel1d(torch.tensor([sigma], dtype=torch.float64, device=device), truncate=3.0)
    return _reflect_gaussian_matrix(kernel, n)[0]


def _elastic_smooth(noise: Tensor, alpha: Tensor | float, sigma: Tensor | float) -> tuple[Tensor, Tensor]:
    """``G_sigma(noise)`` in float64 and the (B,) float64 alpha (checked); see :func:`elastic_displacement`."""
    check_shape(noise, "B 2 H W", "noise")
    b, _, h, w = noise.shape
    nz = noise.to(torch.float64)
    sig = _vector(sigma, b, "sigma", torch.float64, None, lo=0.0)  # host values plan the smoothing
    alp = _vector(alpha, b, "alpha", torch.float64, nz.device, lo=0.0)
    radius = int(torch.floor(3.0 * sig.max() + 0.5))
    if 2 * radius + 1 <= min(31, h, w):
        smooth = gaussian_filter2d(nz, sig, truncate=3.0, mode="reflect")
    else:
        if bool((sig == sig[0]).all()):  # one sigma (the usual case): cached matrices, two plain matmuls
            gh = _reflect_gaussian_matrix_cached(float(sig[0]), h, str(nz.device))
            gw = gh if w == h else _reflect_gaussian_matrix_cached(float(sig[0]), w, str(nz.device))
            smooth = torch.matmul(gh, nz @ gw.t())
        else:
            kernel = gaussian_kernel1d(sig, truncate=3.0).to(nz.device)
            gh = _reflect_gaussian_matrix(kernel, h).unsqueeze(1)
            gw = _reflect_gaussian_matrix(kernel, w).unsqueeze(1)
            smooth = gh @ nz @ gw.transpose(-1, -2)
    return smooth, alp


def elastic_displacement(noise: Tensor, alpha: Tensor, sigma: Tensor) -> Tensor:
    """Smoothed displacement fields ``alpha * G_sigma(noise)`` cast to float32 (spec 2.18 step 2).

    ``G_sigma`` is ``skimage.filters.gaussian(mode='reflect', truncate=3)``: radius ``int(3 sigma + 0.5)``, which can
    be far larger than the image (repeated half-sample reflection, exact here by folding the kernel).

    Args:
        noise: (B, 2, H, W) fields in [-1, 1] (channel 0 -> column displacement dx, 1 -> row displacement dy).
        alpha: (B,) displacement scale >= 0.
        sigma: (B,) smoothing sigma >= 0 (0 = no smoothing).

    Returns:
        (B, 2, H, W) float32 displacements in pixels.

    Example:
        >>> noise = torch.rand(2, 2, 8, 8) * 2 - 1
        >>> elastic_displacement(noise, torch.tensor([1.0, 2.0]), torch.tensor([0.5, 9.0])).shape
        torch.Size([2, 2, 8, 8])
    """
    smooth, alp = _elastic_smooth(noise, alpha, sigma)
    return (smooth * alp.view(-1, 1, 1, 1)).to(torch.float32)


def elastic_transform(
    x: Tensor,
    alpha: Tensor | float,
    sigma: Tensor | float,
    offsets: Tensor,
    seed: Tensor | None = None,
    *,
    noise: Tensor | None = None,
    opencv_fixed_point: bool = True,
    reflect_rule: str = "scipy_1.0",
) -> Tensor:
    """The original ImageNet-C elastic transform: random affine, then smoothed random displacements (spec 2.18).

    1. Affine: OpenCV ``warpAffine`` of the image with the transform mapping the triangle ``P`` to ``P + offsets``
       (:func:`elastic_affine_coords`), bilinear, border reflect-101.
    2. Displacements ``dx, dy = alpha * G_sigma(U)`` from two uniform fields in [-1, 1] (:func:`elastic_displacement`).
    3. SciPy ``map_coordinates(order=1, mode='reflect')`` of the warped image at ``(row + dy, col + dx)``
       (``reflect_rule``: SciPy 1.0's border rule by default, see below); clip to [0, 1].

    ``reflect_rule``: ``"scipy_1.0"`` (default; the released ImageNet-C was made with SciPy 1.0) folds positions
    outside the grid as SciPy < 1.6 did, so a position in ``(-1, 0)`` or ``(n - 1, n)`` interpolates towards the
    second pixel (reflect-101 taps); ``"scipy_1.6"`` is SciPy >= 1.6's half-sample symmetric ``reflect``. They
    differ only on the outer pixel ring where displacements point outwards.

    Args:
        x: images, shape (B, 3, H, W), float in [0, 1].
        alpha: displacement scale per sample, shape (B,) or scalar, >= 0.
        sigma: displacement smoothing per sample, shape (B,) or scalar, >= 0.
        offsets: (B, 3, 2) affine control-point perturbations in pixels (``U(-r, r)`` in the original).
        seed: (B,) int64 seeds of the uniform fields (stream :data:`ELASTIC_FIELD_STREAM`); ignored if ``noise``.
        noise: optional (B, 2, H, W) fields in [-1, 1] used instead of the seeded ones (dx field first, as drawn).
        opencv_fixed_point: quantise affine source positions to 1/32 px like OpenCV <= 4.10 (the original's 3.4).
        reflect_rule: ``"scipy_1.0"`` or ``"scipy_1.6"``: ``map_coordinates``' ``reflect`` border of that SciPy.

    Returns:
        Shape (B, 3, H, W), same dtype, in [0, 1].

    Raises:
        ValueError: wrong shapes, negative alpha/sigma, or neither ``seed`` nor ``noise``.

    Example:
        >>> x = torch.rand(2, 3, 16, 16)
        >>> elastic_transform(x, 2.0, 1.0, torch.zeros(2, 3, 2), torch.tensor([0, 1])).shape
        torch.Size([2, 3, 16, 16])
    """
    check_image(x, check_values=False)
    if reflect_rule not in REFLECT_RULES:
        raise ValueError(f"reflect_rule: expected one of {REFLECT_RULES}, got {reflect_rule!r}")
    scipy10 = reflect_rule == "scipy_1.0"
    b, _, h, w = x.shape
    check_shape(offsets, "B 3 2", "offsets")
    check_batch_param(offsets, b, "offsets")
    if noise is None:
        if seed is None:
            raise ValueError("elastic_transform needs per-sample `seed` (B,) int64 or explicit `noise` (B, 2, H, W)")
        check_batch_param(seed, b, "seed")
        noise = field_uniform(seed, (2, h, w), ELASTIC_FIELD_STREAM, dtype=torch.float64, device=x.device) * 2 - 1
    else:
        check_shape(noise, "B 2 H W", "noise")
        if tuple(noise.shape) != (b, 2, h, w):
            raise ValueError(f"noise: expected shape {(b, 2, h, w)}, got {tuple(noise.shape)}")
    rows, cols = elastic_affine_coords(offsets.to(x.device), h, w, opencv_fixed_point)
    if fused_runs(x) and min(h, w) > 1:
        # compiled: both bilinear samplings as gathers with folded tap indices (one loop each), the displacement
        # scaling and float32 cast inside the second one
        warped = _elastic_warp_kernel(x.detach(), rows, cols)
        return _elastic_displace_kernel(warped, *_elastic_smooth(noise.to(x.device), alpha, sigma), scipy10=scipy10)
    warped = _bilinear(x, rows, cols, "mirror")
    disp = elastic_displacement(noise.to(x.device), alpha, sigma).to(torch.float64)
    ys = torch.arange(h, dtype=torch.float64, device=x.device).view(1, -1, 1)
    xs = torch.arange(w, dtype=torch.float64, device=x.device).view(1, 1, -1)
    rows, cols = ys + disp[:, 1], xs + disp[:, 0]
    if not scipy10:
        return _bilinear(warped, rows, cols, "reflect").clamp(0.0, 1.0)
    (rows, keep_r), (cols, keep_c) = _scipy10_reflect(rows, h), _scipy10_reflect(cols, w)
    # linear interpolation of the reflect-101 extension = sampling at the reflect-101 folded position
    out = _bilinear(warped, rows, cols, "mirror") * (keep_r & keep_c).unsqueeze(1).to(warped.dtype)
    return out.clamp(0.0, 1.0)
