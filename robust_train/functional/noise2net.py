"""DeepAugment's Noise2Net (Hendrycks et al., "The Many Faces of Robustness", ICCV 2021) as batched device maths.

Every image goes through its own randomly initialised residual network of ``num_blocks`` Res2Net bottlenecks. The
weights of sample ``b`` are a pure function of its int64 seed (:func:`robust_train.functional.rng.field_uniform`),
so a call replays exactly and a sample's output does not depend on the rest of the batch. The networks of a batch
run as grouped convolutions (one group per image) and batched matrix products; there is no loop over samples, only
over the fixed number of blocks and branches and the kernel-size/dilation pairs of the plan.

One block, per image, in the model's normalised input space ``z`` (``C`` channels, ``h = hidden_planes``,
``s = scale``), as in the reference ``Bottle2neck`` of ``DeepAugment/train_noise2net.py``:

1. ``conv1``: 1x1, ``C -> s h`` channels, no bias; instance norm; ReLU; split into ``s`` chunks of ``h`` channels.
2. For ``i < s - 1``: ``sp = chunk_0`` (``i = 0``) or ``sp + chunk_i``; ``sp = relu(norm(conv_i(sp)))`` with a
   ``h -> h`` convolution of kernel size ``K_i`` and dilation ``D_i`` (``padding = D_i (K_i - 1) / 2``); the last
   chunk passes unchanged. The ``s`` results are concatenated.
3. ``conv3``: 1x1, ``s h -> C``, no bias; instance norm. The block output is added: ``z = z + eps * block(z)``.

The reference's BatchNorms run in training mode on a ``(1, B C, H, W)`` tensor, so each normalises one channel of
one image over its pixels: an instance norm without affine parameters (weight 1, bias 0 after ``reset_parameters``),
biased variance, ``eps = 1e-5``. Weights follow ``nn.Conv2d.reset_parameters``: ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``
with ``fan_in = in_channels * K * K``. The reference's ``conv_i`` have a bias; an instance norm follows every
convolution and removes any per-channel constant, so the bias changes nothing and is left out here.

Per-sample kernel sizes and dilations: each image draws its own ``K_i`` and ``D_i`` (the reference draws them when
it builds the network, once per epoch in its ``train()``, shared by every image of the epoch). They are a host-side
plan (CPU tensors, like the kernel sizes of the blur corruptions): for every branch convolution the images are
grouped by their ``(K_i, D_i)`` (``K_i = 1`` ignores the dilation) and each group runs one grouped convolution with
its true ``K x K`` kernels, so every image costs exactly its own convolution. Every allowed pair runs on every call
(an empty group on one zero image), so the ATen ops of a call depend on the allowed pairs only, never on the batch.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import ArgumentError, ArgumentTypeError
from .checks import check_image, per_sample
from .rng import field_uniform, stream_id

__all__ = ["NOISE2NET_STREAM", "noise2net", "noise2net_weight_count"]

#: Stream id of the network weights (:func:`robust_train.functional.rng.field_uniform`).
NOISE2NET_STREAM = stream_id("augment/noise2net")

#: Instance-norm epsilon (``nn.BatchNorm2d``'s default in the reference).
_NORM_EPS = 1e-5


def noise2net_weight_count(channels: int, num_blocks: int, hidden_planes: int, scale: int, max_kernel: int) -> int:
    """Uniform draws per image: ``num_blocks`` blocks of ``conv1`` + ``scale - 1`` branch kernels + ``conv3``.

    Example:
        >>> noise2net_weight_count(3, 4, 16, 4, 3)
        29184
    """
    per_block = 2 * channels * scale * hidden_planes + (scale - 1) * hidden_planes * hidden_planes * max_kernel**2
    return num_blocks * per_block


def _instance_norm(h: Tensor) -> Tensor:
    """Normalise each channel of each image over its pixels (biased variance, eps 1e-5, no affine)."""
    return F.instance_norm(h, eps=_NORM_EPS)


def _pointwise(h: Tensor, w: Tensor) -> Tensor:
    """Per-image 1x1 convolution: ``h`` (B, Cin, H, W), ``w`` (B, Cout, Cin) -> (B, Cout, H, W)."""
    b, c, hh, ww = h.shape
    return torch.bmm(w, h.reshape(b, c, hh * ww)).view(b, w.shape[1], hh, ww)


def _plan(
    kernel: Tensor, dilation: Tensor, kernel_sizes: Sequence[int], dilations: Sequence[int], device: torch.device
) -> list[list[list[tuple[int, int, Tensor]]]]:
    """Group the images of every branch convolution by ``(K, D)`` on the host, for every allowed pair.

    Returns ``plan[block][branch]``: one ``(K, D, index)`` per allowed pair (``K = 1`` ignores the dilation), in a
    fixed order, ``index`` the images of the group on ``device`` (possibly empty). The groups, hence the ATen ops of a
    call, depend on the allowed pairs only, never on the batch or on which pairs it happens to draw.
    """
    pairs = sorted({(1, 1) if k == 1 else (k, d) for k in kernel_sizes for d in dilations})
    key = torch.where(kernel == 1, torch.ones_like(kernel), kernel * 1024 + dilation)  # one key per (K, D) pair
    _, nblocks, nbranch = key.shape

    def members(col: Tensor, k: int, d: int) -> Tensor:
        return (col == (1 if k == 1 else k * 1024 + d)).nonzero().view(-1).to(device)

    return [
        [[(k, d, members(key[:, blk, i], k, d)) for k, d in pairs] for i in range(nbranch)] for blk in range(nblocks)
    ]


def _branch_conv(sp: Tensor, w: Tensor, groups: list[tuple[int, int, Tensor]], h: int) -> Tensor:
    """One branch convolution of every image: ``sp`` (B, h, H, W), ``w`` (B, h, h, kmax, kmax) in U(-1, 1).

    Each ``(K, D, index)`` group of the plan runs one grouped convolution (one group per image) with the centred
    ``K x K`` part of its images' kernels, scaled to ``U(+-1/sqrt(h K^2))`` (``nn.Conv2d.reset_parameters``),
    dilation ``D`` and padding ``D (K - 1) / 2``. Every group gets one zero image appended, whose output is dropped:
    an empty group still runs (a fixed op count), and a group of one image runs the grouped kernel like any other
    (a single group would take the ungrouped kernel, whose float rounding differs in the last bits on the CPU), so an
    image's bits do not depend on its batch.
    """
    b, _, hh, ww = sp.shape
    kmax = int(w.shape[-1])
    out = torch.empty_like(sp)
    for k, d, idx in groups:
        lo = kmax // 2 - k // 2
        n = int(idx.shape[0]) + 1
        xs = torch.cat([sp.index_select(0, idx), sp.new_zeros(1, *sp.shape[1:])])
        wk = w.index_select(0, idx)[..., lo : lo + k, lo : lo + k]
        wk = torch.cat([wk, wk.new_zeros(1, *wk.shape[1:])]) * (1.0 / (h * k * k) ** 0.5)
        y = F.conv2d(
            xs.reshape(1, n * h, hh, ww), wk.reshape(n * h, h, k, k), padding=d * (k // 2), dilation=d, groups=n
        )
        out.index_copy_(0, idx, y.view(n, h, hh, ww)[: n - 1])
    return out


def _check_arch(t: Tensor, name: str, shape: tuple[int, ...], allowed: Sequence[int]) -> None:
    if not isinstance(t, Tensor) or t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
        got = t.dtype if isinstance(t, Tensor) else type(t).__name__
        raise ArgumentTypeError(f"{name}: expected an int64 tensor of shape {shape}, got {got}")
    if tuple(t.shape) != shape:
        raise ArgumentError(f"{name}: expected shape {shape} (batch, blocks, scale - 1), got {tuple(t.shape)}")
    if t.device.type != "cpu":
        raise ArgumentError(f"{name}: expected a host (CPU) tensor (it plans the convolutions), got device {t.device}")
    if t.numel():
        bad = ~torch.isin(t, torch.tensor(list(allowed), dtype=t.dtype))
        if bool(bad.any()):
            raise ArgumentError(f"{name}: expected values in {sorted(allowed)}, got {sorted(set(t[bad].tolist()))}")


def noise2net(
    x: Tensor,
    seed: Tensor,
    eps: Tensor | float,
    kernel: Tensor,
    dilation: Tensor,
    mean: Sequence[float] | Tensor,
    std: Sequence[float] | Tensor,
    *,
    hidden_planes: int = 16,
    scale: int = 4,
    kernel_sizes: Sequence[int] = (1, 3),
    dilations: Sequence[int] = (1, 2, 3),
) -> Tensor:
    """Pass every image through its own random Noise2Net (see the module docstring).

    Args:
        x: images, shape (B, C, H, W), float in [0, 1].
        seed: int64 per-image seeds, shape (B,) (the weights are drawn from them; keep them on the host so the keys
            are hashed there).
        eps: residual strength per image, shape (B,) or a number, >= 0 (reference: U(0.375, 0.75) per batch).
        kernel: kernel size of every branch convolution, int64 (B, num_blocks, scale - 1) on the CPU (a host-side
            plan), values in ``kernel_sizes``.
        dilation: dilation of every branch convolution, int64 (B, num_blocks, scale - 1) on the CPU, values in
            ``dilations``.
        mean: per-channel mean of the model's input normalisation (C values); the network works on
            ``(x - mean) / std`` as the reference works on normalised images.
        std: per-channel standard deviation of that normalisation (C values, > 0).
        hidden_planes: channels of each branch (reference: 16).
        scale: number of branches of a block (reference: 4).
        kernel_sizes: the odd kernel sizes ``kernel`` may hold (reference: 1, 3).
        dilations: the dilations ``dilation`` may hold (reference: 1, 2, 3).

    Returns:
        Images of the same shape and dtype, ``clamp(z * std + mean, 0, 1)``.

    Raises:
        ArgumentError: a shape, a kernel size, a dilation, ``eps``, ``mean`` or ``std`` is invalid.

    Example:
        >>> b = 2
        >>> arch = torch.ones(b, 4, 3, dtype=torch.int64)
        >>> noise2net(torch.rand(b, 3, 8, 8), torch.tensor([1, 2]), 0.5, 3 * arch, arch, [0.5] * 3, [0.25] * 3).shape
        torch.Size([2, 3, 8, 8])
    """
    check_image(x, channels=None)
    b, c = int(x.shape[0]), int(x.shape[1])
    if not isinstance(seed, Tensor) or seed.dim() != 1 or seed.shape[0] != b:
        got = tuple(seed.shape) if isinstance(seed, Tensor) else type(seed).__name__
        raise ArgumentError(f"seed: expected a ({b},) int64 tensor of per-image seeds, got {got}")
    if int(hidden_planes) < 1 or int(scale) < 2:
        raise ArgumentError(f"hidden_planes >= 1 and scale >= 2 expected, got {hidden_planes} and {scale}")
    ks = [int(k) for k in kernel_sizes]
    if not ks or any(k < 1 or k % 2 == 0 for k in ks):
        raise ArgumentError(f"kernel_sizes: expected odd positive kernel sizes, got {list(kernel_sizes)}")
    ds = sorted({int(d) for d in dilations})
    if not ds or ds[0] < 1 or ds[-1] >= 1024:
        raise ArgumentError(f"dilations: expected dilations in [1, 1023], got {list(dilations)}")
    if not isinstance(kernel, Tensor) or kernel.dim() != 3:
        raise ArgumentError(f"kernel: expected an int64 tensor (B, num_blocks, scale - 1), got {kernel!r}")
    num_blocks = int(kernel.shape[1])
    shape = (b, num_blocks, int(scale) - 1)
    _check_arch(kernel, "kernel", shape, ks)
    _check_arch(dilation, "dilation", shape, ds)
    mean_t = torch.as_tensor(mean, dtype=torch.float64).reshape(-1)
    std_t = torch.as_tensor(std, dtype=torch.float64).reshape(-1)
    for name, t in (("mean", mean_t), ("std", std_t)):
        if t.numel() != c:
            raise ArgumentError(f"{name}: expected {c} values (one per channel), got {t.numel()}")
    if mean_t.device.type == "cpu" and std_t.device.type == "cpu" and not bool((std_t > 0).all()):
        raise ArgumentError(f"std: expected positive values, got {std_t.tolist()}")

    dev = x.device
    work = x.dtype if x.dtype in (torch.float32, torch.float64) else torch.float32
    eps_t = per_sample(eps, b, "eps", lo=0.0, dtype=work, device=dev).view(b, 1, 1, 1)
    mean_t = mean_t.to(device=dev, dtype=work).view(1, c, 1, 1)
    std_t = std_t.to(device=dev, dtype=work).view(1, c, 1, 1)
    if num_blocks == 0:
        return x.clone()

    h, s, kmax = int(hidden_planes), int(scale), max(ks)
    n1, nb = c * s * h, (s - 1) * h * h * kmax * kmax
    per_block = 2 * n1 + nb
    plan = _plan(kernel, dilation, ks, ds, dev)
    with torch.no_grad():
        u = field_uniform(seed, (num_blocks, per_block), NOISE2NET_STREAM, dtype=work, device=dev)
        u = u.mul(2.0).sub(1.0)  # U(-1, 1), scaled per layer below
        z = (x.to(work) - mean_t) / std_t
        hh, ww = int(x.shape[2]), int(x.shape[3])
        for blk in range(num_blocks):
            ub = u[:, blk]
            w1 = ub[:, :n1].reshape(b, s * h, c) / c**0.5
            wb = ub[:, n1 : n1 + nb].reshape(b, s - 1, h, h, kmax, kmax)
            w3 = ub[:, n1 + nb :].reshape(b, c, s * h) / (s * h) ** 0.5
            t = F.relu(_instance_norm(_pointwise(z, w1))).view(b, s, h, hh, ww)
            outs = []
            sp = t[:, 0]
            for i in range(s - 1):
                if i > 0:
                    sp = sp + t[:, i]
                acc = _branch_conv(sp, wb[:, i], plan[blk][i], h)
                sp = F.relu(_instance_norm(acc))
                outs.append(sp)
            outs.append(t[:, s - 1])
            out = _instance_norm(_pointwise(torch.cat(outs, dim=1), w3))
            z = z + eps_t * out
        return (z * std_t + mean_t).clamp_(0.0, 1.0).to(x.dtype)
