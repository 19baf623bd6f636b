"""PRIME's three primitive families and its AugMix-style mix, batched on the device (layer 1).

PRIME (Modas, Rade, Ortiz-Jimenez, Moosavi-Dezfooli, Frossard, ECCV 2022) augments with random *smooth*
transformations drawn per sample. Every function here takes one random draw per sample as arguments; the large
random fields (mode coefficients, filter taps) come from per-sample int64 seeds through the counter-based
:func:`~robust_train.functional.rng.field_normal`, so the parameters stay small and a sample's output does not depend
on the batch it is in. Seeds are host tensors (their keys are hashed on the host, as every field of :mod:`.rng` is);
the other per-sample arguments may live on either device.

==============  ======================================================================================================
primitive       definition (``x`` in [0, 1], ``(N, C, H, W)``; one draw per sample)
==============  ======================================================================================================
smooth_diffeo   displacement fields ``u, v = sum_{|(i,j)| < cut + 1/2} c_ij / |(i,j)| sin(pi i x) sin(pi j y)``
                (``i, j <= K``) on ``[0, 1]^2`` with ``c_ij ~ N(0, 1)``; ``dx = sqrt(T) u W``, ``dy = sqrt(T) v H``
                pixels; output pixel ``(x, y)`` samples the input at ``(x - dx, y - dy)`` clamped to the image,
                bilinearly. Frequencies the pixel grid cannot tell apart are drawn folded together (the same
                distribution with ``min(K, W - 2) min(K, H - 2)`` coefficients instead of ``K^2``)
smooth_color    per channel ``x + sum_{k in band} a_k sin(pi k x)``, ``a_k ~ N(0, T)``, clamped to [0, 1]; the band is
                ``k0 .. min(k0 + F, cut + 1) - 1`` (``F`` frequencies; ``k0 = 1, F = cut`` without a bandwidth)
random_filter   one ``s x s`` kernel per sample, ``delta + sigma N(0, 1)`` taps (the same kernel on every channel),
                zero padding ("same" size), clamped to [0, 1]; every kernel sits centred in a ``K x K`` grid so the
                whole batch is one grouped convolution
==============  ======================================================================================================

Diffeomorphism temperature (the reference's ``temperature_range``): for an image of width ``n`` and cut-off ``c``,
``T1 = 1 / (pi n^2 ln c)`` (a typical displacement of half a pixel) and ``T2 = max(T1, alpha 4 / (pi^3 c^2 ln c))``
(the largest ``T`` without fold-overs); ``T = T1 + u (T2 - T1)`` for a per-sample draw ``u`` in [0, 1]
(:func:`diffeo_temperature`). The colour sum is evaluated with Clenshaw's recurrence for sine series
(``F`` fused multiply-adds per pixel, no ``(N, C, H, W, F)`` intermediate).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from ._fused import fused, fusion_enabled
from .augment_ops import augmix_mix
from .checks import check_batch_param, check_image
from .rng import field_normal, stream_id

__all__ = [
    "PRIMITIVES",
    "diffeo_temperature",
    "prime_chains",
    "prime_mix",
    "random_filter",
    "smooth_color",
    "smooth_diffeo",
]

#: The primitive families, in the order of the reference's ``enable_aug`` (diffeo, color_jit, rand_filter).
PRIMITIVES: tuple[str, ...] = ("diffeo", "color", "filter")

_S_DIFFEO = stream_id("prime/diffeo")
_S_COLOR = stream_id("prime/color")
_S_FILTER = stream_id("prime/filter")


def _work(x: Tensor) -> torch.dtype:
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def _host_seed(seed: Tensor, n: int, name: str = "seed") -> Tensor:
    check_batch_param(seed, n, name)
    if seed.dim() != 1 or seed.is_floating_point() or seed.dtype == torch.bool:
        raise ValueError(
            f"{name}: expected a ({n},) int64 tensor of per-sample seeds, got {seed.dtype} {tuple(seed.shape)}"
        )
    if seed.device.type != "cpu":
        raise ValueError(
            f"{name}: expected seeds on the host (CPU) so their keys need no device read, got {seed.device}"
        )
    return seed.to(torch.int64)


def _arg(t: Tensor, n: int, name: str, device: torch.device, dtype: torch.dtype) -> Tensor:
    check_batch_param(t, n, name)
    if t.dim() != 1:
        raise ValueError(f"{name}: expected shape ({n},), got {tuple(t.shape)}")
    return t.to(device=device, dtype=dtype)


def diffeo_temperature(cut: Tensor, u: Tensor, size: int, alpha: float = 1.0) -> Tensor:
    """Per-sample diffeomorphism temperature ``T = T1 + u (max(T1, alpha T2) - T1)`` (module docstring).

    Args:
        cut: per-sample cut-off (>= 2), shape (N,).
        u: per-sample position in the allowed range, in [0, 1], shape (N,).
        size: image width ``n`` in pixels.
        alpha: scale of the upper end ``T2`` (PRIME: 1).

    Returns:
        float64 temperatures, shape (N,), on ``cut``'s device.

    Example:
        >>> t = diffeo_temperature(torch.tensor([2, 100]), torch.tensor([0.0, 0.0]), 32)
        >>> [round(v, 6) for v in t.tolist()]  # T1 = 1 / (pi 32^2 ln c)
        [0.000448, 6.8e-05]
    """
    c = cut.to(torch.float64) + 1e-6  # the reference adds 1e-6 to an integer cut before the logarithm
    log = torch.log(c)
    t1 = 1.0 / (math.pi * float(size) ** 2 * log)
    t2 = torch.maximum(t1, float(alpha) * 4.0 / (math.pi**3 * c**2 * log))
    return t1 + u.to(device=cut.device, dtype=torch.float64) * (t2 - t1)


def _alias_matrix(k: int, n: int, device: torch.device, dtype: torch.dtype) -> Tensor:
    """(m, K) 0/1 matrix folding sine frequencies ``1..K`` onto the ``m = min(K, n - 2)`` ones ``n`` points resolve.

    On the grid ``x_p = p / P`` (``P = n - 1``), ``sin(pi k x_p) = sin(pi r x_p)`` for ``r = k mod 2P``, which is
    ``-sin(pi (2P - r) x_p)`` for ``r > P`` and zero for ``r in {0, P}``: frequency ``k`` lands on ``r`` or
    ``2P - r`` (up to a sign, irrelevant for a symmetric coefficient) or vanishes.
    """
    p = n - 1
    r = torch.arange(1, k + 1, device=device) % (2 * p)
    target = torch.where(r > p, 2 * p - r, r)
    m = min(k, n - 2)
    return (target.view(1, k) == torch.arange(1, m + 1, device=device).view(m, 1)).to(dtype)


def _diffeo_modes(cut: Tensor, h: int, w: int, k: int, dtype: torch.dtype) -> tuple[Tensor, Tensor, Tensor]:
    """Variance of the folded mode coefficients per sample (N, Mx, My) and the folded sine bases (W, Mx), (H, My).

    The field on the pixel grid is ``sum_ij c_ij e_ij sin(pi i x) sin(pi j y)`` over ``i, j <= K`` with
    ``e_ij = [|(i,j)| < cut + 1/2] / |(i,j)|``; folding aliased frequencies (:func:`_alias_matrix`) sums independent
    Gaussians, so the same field is ``sum_{i'j'} c'_{i'j'} sin(pi i' x) sin(pi j' y)`` with ``c' ~ N(0, V)``,
    ``V = A_x (e^2) A_y^T``: identical in distribution, with ``min(K, W - 2) x min(K, H - 2)`` draws instead of
    ``K^2`` (CIFAR: 900 instead of 10 000).
    """
    dev = cut.device
    freq = torch.arange(1, k + 1, device=dev, dtype=dtype)
    r2 = freq.view(-1, 1) ** 2 + freq.view(1, -1) ** 2  # (K, K): i indexes x-modes, j y-modes
    inside = torch.sqrt(r2).view(1, k, k) < cut.view(-1, 1, 1) + 0.5
    energy2 = torch.where(inside, 1.0 / r2, 0.0)  # (N, K, K)
    ax, ay = _alias_matrix(k, w, dev, dtype), _alias_matrix(k, h, dev, dtype)
    var = torch.matmul(torch.matmul(ax, energy2), ay.T)  # (N, Mx, My)
    sin_x = torch.sin(math.pi * torch.linspace(0.0, 1.0, w, device=dev, dtype=dtype).view(-1, 1) * freq[: ax.shape[0]])
    sin_y = torch.sin(math.pi * torch.linspace(0.0, 1.0, h, device=dev, dtype=dtype).view(-1, 1) * freq[: ay.shape[0]])
    return var, sin_x, sin_y


def smooth_diffeo(x: Tensor, seed: Tensor, cut: Tensor, temperature: Tensor, max_cut: int) -> Tensor:
    """Random smooth diffeomorphism per sample (bilinear warp, borders clamped).

    The displacement fields are drawn on the pixel grid with aliased frequencies folded together (exactly the
    distribution of the ``K x K``-mode sum in the module docstring; see :func:`_diffeo_modes`).

    Args:
        x: images, shape (N, C, H, W), float in [0, 1]; H, W >= 3.
        seed: host int64 per-sample seeds of the mode coefficients, shape (N,).
        cut: per-sample cut-off in [1, max_cut], shape (N,): modes with ``|(i, j)| < cut + 1/2`` are kept.
        temperature: per-sample temperature ``T`` (>= 0), shape (N,) (:func:`diffeo_temperature`).
        max_cut: size ``K`` of the mode grid (the largest cut-off of the batch; a constant of the caller).

    Returns:
        Warped images, same shape and dtype, values in [0, 1].

    Example:
        >>> x = torch.rand(2, 3, 16, 16)
        >>> smooth_diffeo(x, torch.tensor([1, 2]), torch.tensor([3, 8]), torch.tensor([1e-3, 1e-3]), 8).shape
        torch.Size([2, 3, 16, 16])
    """
    check_image(x, channels=None, check_values=False)
    n, _, h, w = x.shape
    if h < 3 or w < 3:
        raise ValueError(f"x: smooth_diffeo needs images of at least 3 x 3 pixels, got {h} x {w}")
    k = int(max_cut)
    if k < 1:
        raise ValueError(f"max_cut: expected a positive mode count, got {max_cut}")
    seed = _host_seed(seed, n)
    dev, work = x.device, _work(x)
    cut_t = _arg(cut, n, "cut", dev, work)
    temp = _arg(temperature, n, "temperature", dev, work)
    var, sin_x, sin_y = _diffeo_modes(cut_t, h, w, k, work)
    mx, my = sin_x.shape[1], sin_y.shape[1]
    coeff = field_normal(seed, (2, mx, my), _S_DIFFEO, dtype=work, device=dev) * torch.sqrt(var).unsqueeze(1)
    # field[y, x] = sum_ij c_ij sin_x[x, i] sin_y[y, j]  ->  sin_y @ c^T @ sin_x^T
    field = torch.matmul(torch.matmul(sin_y, coeff.transpose(-1, -2)), sin_x.T)  # (N, 2, H, W)
    amp = torch.sqrt(temp.clamp_min(0.0)).view(-1, 1, 1)
    ys = torch.arange(h, device=dev, dtype=work).view(1, h, 1)
    xs = torch.arange(w, device=dev, dtype=work).view(1, 1, w)
    src_x = (xs - amp * w * field[:, 0]).clamp(0.0, w - 1.0)
    src_y = (ys - amp * h * field[:, 1]).clamp(0.0, h - 1.0)
    grid = torch.stack((src_x * (2.0 / (w - 1)) - 1.0, src_y * (2.0 / (h - 1)) - 1.0), dim=-1)
    out = F.grid_sample(x.to(work), grid, mode="bilinear", padding_mode="border", align_corners=True)
    return out.clamp_(0.0, 1.0).to(x.dtype)


def smooth_color(x: Tensor, seed: Tensor, cut: Tensor, temperature: Tensor, first: Tensor, num_freqs: int) -> Tensor:
    """Random smooth colour transform per sample and channel: ``x + sum_k a_k sin(pi k x)``, clamped.

    Args:
        x: images, shape (N, C, H, W), float in [0, 1].
        seed: host int64 per-sample seeds of the coefficients, shape (N,).
        cut: per-sample highest frequency (>= 1), shape (N,).
        temperature: per-sample coefficient variance ``T`` (>= 0), shape (N,).
        first: per-sample lowest frequency ``k0`` in [1, cut], shape (N,).
        num_freqs: ``F``, the most frequencies a sample uses (the bandwidth, or the largest cut without one).

    Returns:
        Images, same shape and dtype, values in [0, 1].

    Example:
        >>> x = torch.rand(2, 3, 8, 8)
        >>> one = torch.ones(2, dtype=torch.int64)
        >>> smooth_color(x, torch.tensor([1, 2]), torch.tensor([4, 9]), torch.tensor([0.01, 0.01]), one, 9).shape
        torch.Size([2, 3, 8, 8])
    """
    check_image(x, channels=None, check_values=False)
    n, c = x.shape[:2]
    f = int(num_freqs)
    if f < 1:
        raise ValueError(f"num_freqs: expected a positive frequency count, got {num_freqs}")
    seed = _host_seed(seed, n)
    dev, work = x.device, _work(x)
    cut_t = _arg(cut, n, "cut", dev, work)
    k0 = _arg(first, n, "first", dev, work)
    temp = _arg(temperature, n, "temperature", dev, work)
    count = torch.minimum(cut_t + 1.0 - k0, torch.full_like(cut_t, float(f)))  # frequencies in the band
    j = torch.arange(f, device=dev, dtype=work).view(1, 1, f)
    scale = torch.sqrt(temp.clamp_min(0.0)).view(-1, 1, 1)
    coeff = field_normal(seed, (c, f), _S_COLOR, dtype=work, device=dev) * scale * (j < count.view(-1, 1, 1))
    coeff = coeff.view(n, c, f, 1, 1)
    k0v = k0.view(-1, 1, 1, 1)
    grad = torch.is_grad_enabled() and (x.requires_grad or temp.requires_grad)
    if grad or fusion_enabled(dev):  # the differentiable reference; with fusion on, compiled to one loop
        return _color_fused(x.to(work), coeff, k0v).to(x.dtype)
    # the same arithmetic into three rotating buffers (no allocation per frequency: 1.7x faster eager on a CPU)
    theta = x.to(work) * math.pi
    two_cos = 2.0 * torch.cos(theta)
    b1 = torch.zeros_like(theta)
    b2 = torch.zeros_like(theta)
    tmp = torch.empty_like(theta)
    for i in range(f - 1, -1, -1):
        torch.sub(coeff[:, :, i], b2, out=tmp)
        torch.addcmul(tmp, two_cos, b1, out=b2)
        b1, b2 = b2, b1
    total = b1 * torch.sin(k0v * theta) - b2 * torch.sin((k0v - 1.0) * theta)
    return (x.to(work) + total).clamp_(0.0, 1.0).to(x.dtype)


@fused
def _color_fused(x: Tensor, coeff: Tensor, k0: Tensor) -> Tensor:
    """The colour sum of :func:`smooth_color` by Clenshaw's recurrence, as one pure expression.

    ``phi_j = sin((k0 + j) theta)`` satisfies ``phi_{j+1} = 2 cos(theta) phi_j - phi_{j-1}``, so with
    ``b_j = a_j + 2 cos(theta) b_{j+1} - b_{j+2}`` the sum is ``b_0 sin(k0 theta) - b_1 sin((k0 - 1) theta)``.
    Compiled (``@fused``), the ``F`` steps become one loop over the pixels (CIFAR preset, 768 x 3 x 32 x 32 on one
    CPU thread: 0.08 s instead of 1.3 s eager; float32 error <= 3e-4 against float64, eager 1.7e-4).

    Args:
        x: images in the working dtype, shape (N, C, H, W).
        coeff: masked coefficients ``a_j``, shape (N, C, F, 1, 1).
        k0: lowest frequency per sample, shape (N, 1, 1, 1).
    """
    theta = x * math.pi
    two_cos = 2.0 * torch.cos(theta)
    b1 = torch.zeros_like(theta)
    b2 = torch.zeros_like(theta)
    for i in range(coeff.shape[2] - 1, -1, -1):  # a fixed number of frequencies, not a loop over samples
        b1, b2 = torch.addcmul(coeff[:, :, i] - b2, two_cos, b1), b1
    return (x + (b1 * torch.sin(k0 * theta) - b2 * torch.sin((k0 - 1.0) * theta))).clamp(0.0, 1.0)


def random_filter(x: Tensor, seed: Tensor, size: Tensor, sigma: Tensor, max_size: int) -> Tensor:
    """Random convolution per sample: kernel ``delta + sigma N(0, 1)`` of odd size ``s``, zero padding, clamped.

    Args:
        x: images, shape (N, C, H, W), float in [0, 1].
        seed: host int64 per-sample seeds of the taps, shape (N,).
        size: per-sample odd kernel size in [1, max_size], shape (N,).
        sigma: per-sample tap standard deviation (>= 0), shape (N,).
        max_size: odd size ``K`` of the common kernel grid (a constant of the caller).

    Returns:
        Filtered images, same shape and dtype, values in [0, 1] (NaN from a half-precision overflow becomes 1, as in
        the reference).

    Example:
        >>> x = torch.rand(2, 3, 8, 8)
        >>> random_filter(x, torch.tensor([1, 2]), torch.tensor([3, 5]), torch.tensor([0.5, 1.0]), 5).shape
        torch.Size([2, 3, 8, 8])
    """
    check_image(x, channels=None, check_values=False)
    k = int(max_size)
    if k < 1 or k % 2 == 0:
        raise ValueError(f"max_size: expected a positive odd kernel size, got {max_size}")
    n, c, h, w = x.shape
    seed = _host_seed(seed, n)
    dev, work = x.device, _work(x)
    half = _arg(size, n, "size", dev, work).sub(1.0).div(2.0).view(-1, 1, 1)
    sig = _arg(sigma, n, "sigma", dev, work).view(-1, 1, 1)
    offset = (torch.arange(k, device=dev, dtype=work) - (k // 2)).abs()
    inside = (offset.view(1, k, 1) <= half) & (offset.view(1, 1, k) <= half)  # (N, K, K)
    delta = ((offset.view(k, 1) == 0) & (offset.view(1, k) == 0)).to(work)
    taps = field_normal(seed, (k, k), _S_FILTER, dtype=work, device=dev) * sig * inside + delta  # (N, K, K)
    weight = taps.unsqueeze(1).repeat_interleave(c, dim=0)  # (N * C, 1, K, K): one kernel per sample, every channel
    out = F.conv2d(x.to(work).reshape(1, n * c, h, w), weight, padding=k // 2, groups=n * c).view(n, c, h, w)
    return torch.nan_to_num(out, nan=1.0).clamp_(0.0, 1.0).to(x.dtype)


def prime_chains(
    x: Tensor,
    primitives: Sequence[str],
    op: Tensor,
    depth: Tensor,
    seed: Tensor,
    diffeo_cut: Tensor,
    diffeo_temp: Tensor,
    color_cut: Tensor,
    color_temp: Tensor,
    color_first: Tensor,
    filter_size: Tensor,
    filter_sigma: Tensor,
    *,
    max_cut: int,
    num_freqs: int,
    max_size: int,
) -> Tensor:
    """Run PRIME chains: at step ``d < depth`` a chain applies its drawn primitive, later steps keep the image.

    Every step evaluates each enabled primitive on every chain and keeps the drawn one per chain (``torch.where``),
    as the reference's ``PRIMEAugModule`` does: a fixed amount of work, no data-dependent control flow.

    Args:
        x: images, shape (N, C, H, W), float in [0, 1] (one row per chain).
        primitives: enabled primitive names (subset of :data:`PRIMITIVES`); ``op`` indexes it.
        op: per-chain primitive index per step, shape (N, D) int64.
        depth: per-chain number of active steps in [1, D], shape (N,).
        seed: host int64 seeds per chain and step, shape (N, D).
        diffeo_cut: (N, D) diffeomorphism cut-offs.
        diffeo_temp: (N, D) diffeomorphism temperatures.
        color_cut: (N, D) colour cut-offs.
        color_temp: (N, D) colour temperatures.
        color_first: (N, D) lowest colour frequencies.
        filter_size: (N, D) odd kernel sizes.
        filter_sigma: (N, D) tap standard deviations.
        max_cut: diffeomorphism mode grid size.
        num_freqs: colour frequencies per sample.
        max_size: filter kernel grid size.

    Returns:
        Chain outputs, shape (N, C, H, W), dtype of ``x``.
    """
    check_image(x, channels=None, check_values=False)
    names = tuple(primitives)
    unknown = [p for p in names if p not in PRIMITIVES]
    if not names or unknown:
        raise ValueError(f"primitives: expected a non-empty subset of {list(PRIMITIVES)}, got {list(names)}")
    n = x.shape[0]
    check_batch_param(op, n, "op")
    if op.dim() != 2:
        raise ValueError(f"op: expected shape ({n}, D), got {tuple(op.shape)}")
    steps = int(op.shape[1])
    dev = x.device
    op_d = op.to(dev)
    active = torch.arange(steps, device=dev).view(1, steps) < depth.to(dev).view(-1, 1)  # (N, D)
    out = x
    for d in range(steps):  # a fixed number of chain steps
        results = []
        for name in names:
            if name == "diffeo":
                results.append(smooth_diffeo(out, seed[:, d], diffeo_cut[:, d], diffeo_temp[:, d], max_cut))
            elif name == "color":
                results.append(
                    smooth_color(out, seed[:, d], color_cut[:, d], color_temp[:, d], color_first[:, d], num_freqs)
                )
            else:
                results.append(random_filter(out, seed[:, d], filter_size[:, d], filter_sigma[:, d], max_size))
        step = results[0]
        for i in range(1, len(results)):
            step = torch.where((op_d[:, d] == i).view(-1, 1, 1, 1), results[i], step)
        out = torch.where(active[:, d].view(-1, 1, 1, 1), step, out)
    return out


def prime_mix(x: Tensor, chains: Tensor, weights: Tensor, skip: Tensor) -> Tensor:
    """PRIME's (and AugMix's) mix: ``(1 - m) x + m sum_i w_i chain_i``, clamped to [0, 1] against rounding.

    Args:
        x: clean images, shape (N, C, H, W).
        chains: chain outputs, shape (N, K, C, H, W).
        weights: Dirichlet chain weights, shape (N, K).
        skip: Beta weight ``m`` of the augmented part, shape (N,).

    Returns:
        Mixed images, shape (N, C, H, W), dtype of ``x``.

    Example:
        >>> prime_mix(torch.rand(2, 3, 4, 4), torch.rand(2, 3, 3, 4, 4), torch.full((2, 3), 1 / 3),
        ...           torch.full((2,), 0.5)).shape
        torch.Size([2, 3, 4, 4])
    """
    return augmix_mix(x, chains, weights, skip).clamp_(0.0, 1.0)
