"""PixMix's mixing maths (Hendrycks et al., CVPR 2022), batched on the device (layer 1: every draw is an argument).

Per sample (reference ``pixmix`` in ``cifar.py`` / ``imagenet.py`` and ``add`` / ``multiply`` / ``get_ab`` in
``pixmix_utils.py`` of github.com/andyzoujm/pixmix):

1. ``mixed`` starts as one augmented copy of the image (one AugMix op, probability 1/2) or the clean image;
2. ``k ~ U{0, ..., k_max}`` rounds; round ``r`` picks a partner, another augmented copy of the *clean* image (one
   fresh op, probability 1/2) or the mixing picture (the same picture in every round of a sample), and an operation,
   additive or multiplicative (1/2 each), with weights ``(a, b)``:

   * additive: ``((a (2 x1 - 1) + b (2 x2 - 1)) + 1) / 2``;
   * multiplicative: ``(2 x1)^a (max(2 x2, 1e-37))^b / 2``;

   the result is clipped to ``[0, 1]`` after every round.

``(a, b)`` (``get_ab``): with probability 1/2, ``a ~ Beta(beta, 1)``, ``b ~ Beta(1, beta)``; otherwise
``a = 1 + Beta(1, beta)``, ``b = -Beta(1, beta)`` (extrapolation away from the partner).

Batched form: the starting copy and every round's augmented partner are one AugMix op each, applied with
:func:`~robust_train.functional.augment_ops.apply_ops`, whose ATen-op count does not depend on the batch or on which ops
were drawn; the rounds are a loop over the fixed ``k_max``, and samples that stop earlier keep their image through
``torch.where``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from . import augment_ops as AF
from .checks import check_batch_param, check_image

__all__ = [
    "MIX_ADD",
    "MIX_MULTIPLY",
    "op_arguments",
    "pixmix",
    "pixmix_add",
    "pixmix_mix",
    "pixmix_multiply",
]

#: Index of the additive mixing in ``mix_op``.
MIX_ADD = 0
#: Index of the multiplicative mixing in ``mix_op``.
MIX_MULTIPLY = 1
#: Extra rows per op group: at least two, because some ops take another code path for a batch of one (kornia's
#: ``posterize`` with a single ``bits`` value), which would make the op count depend on the draw.
_PAD = 2
_TINY = 1e-37  # the reference's clip of the multiplicative partner (a float32 normal number)


def _w(v: Tensor, x: Tensor, name: str) -> Tensor:
    check_batch_param(v, x.shape[0], name)
    return v.to(device=x.device, dtype=x.dtype).view(-1, *([1] * (x.dim() - 1)))


def _work(x: Tensor) -> Tensor:
    return x if x.dtype in (torch.float32, torch.float64) else x.float()


def pixmix_add(x1: Tensor, x2: Tensor, a: Tensor, b: Tensor) -> Tensor:
    """Additive PixMix mixing ``((a (2 x1 - 1) + b (2 x2 - 1)) + 1) / 2`` (not clipped).

    Args:
        x1: images, shape (B, C, H, W), float.
        x2: partner images, same shape.
        a: weight of ``x1`` per sample, shape (B,).
        b: weight of ``x2`` per sample, shape (B,).

    Returns:
        Mixed images, same shape and dtype (may leave [0, 1]).

    Example:
        >>> x = torch.rand(2, 3, 4, 4)
        >>> bool(torch.allclose(pixmix_add(x, x, torch.full((2,), 0.5), torch.full((2,), 0.5)), x))
        True
    """
    w1, w2 = _w(a, _work(x1), "a"), _w(b, _work(x1), "b")
    out = (w1 * (_work(x1) * 2.0 - 1.0) + w2 * (_work(x2) * 2.0 - 1.0) + 1.0) / 2.0
    return out.to(x1.dtype)


def pixmix_multiply(x1: Tensor, x2: Tensor, a: Tensor, b: Tensor) -> Tensor:
    """Multiplicative PixMix mixing ``(2 x1)^a max(2 x2, 1e-37)^b / 2`` (not clipped; computed in float32 at least).

    Args:
        x1: images, shape (B, C, H, W), float.
        x2: partner images, same shape.
        a: exponent of ``x1`` per sample, shape (B,), positive.
        b: exponent of ``x2`` per sample, shape (B,), may be negative.

    Returns:
        Mixed images, same shape and dtype (may leave [0, 1]; ``inf`` where the float32 range overflows).

    Example:
        >>> x = torch.rand(2, 3, 4, 4) * 0.9 + 0.05
        >>> out = pixmix_multiply(x, torch.full_like(x, 0.5), torch.ones(2), torch.full((2,), -1.0))
        >>> bool(torch.allclose(out, x))
        True
    """
    w1, w2 = _w(a, _work(x1), "a"), _w(b, _work(x1), "b")
    out = torch.pow(_work(x1) * 2.0, w1) * torch.pow((_work(x2) * 2.0).clamp_min(_TINY), w2) / 2.0
    return out.to(x1.dtype)


def pixmix_mix(x1: Tensor, x2: Tensor, mix_op: Tensor, a: Tensor, b: Tensor) -> Tensor:
    """One PixMix round: additive or multiplicative per sample, clipped to ``[0, 1]``.

    Args:
        x1: images, shape (B, C, H, W), float in [0, 1].
        x2: partner images, same shape.
        mix_op: per-sample :data:`MIX_ADD` (0) or :data:`MIX_MULTIPLY` (1), shape (B,) int64.
        a: per-sample first weight, shape (B,).
        b: per-sample second weight, shape (B,).

    Returns:
        Mixed images in [0, 1], same shape and dtype.

    Example:
        >>> x = torch.rand(2, 3, 4, 4)
        >>> pixmix_mix(x, x.flip(0), torch.tensor([0, 1]), torch.ones(2), torch.full((2,), 0.5)).shape
        torch.Size([2, 3, 4, 4])
    """
    if x2.shape != x1.shape:
        raise ValueError(f"x2: expected the shape of x1 {tuple(x1.shape)}, got {tuple(x2.shape)}")
    check_batch_param(mix_op, x1.shape[0], "mix_op")
    mult = mix_op.to(x1.device).view(-1, 1, 1, 1) == MIX_MULTIPLY
    out = torch.where(mult, pixmix_multiply(x1, x2, a, b), pixmix_add(x1, x2, a, b))
    # NaN cannot arise (x1 >= 0, the partner is clipped above 0); +inf from an overflowing power clips to 1
    return out.clamp(0.0, 1.0)


def op_arguments(
    names: Sequence[str], op_index: Tensor, level: Tensor, sign: Tensor, height: int, width: int
) -> Tensor:
    """Op arguments for per-sample op choices (host; the AugMix level table of :func:`~.augment_ops.augmix_argument`).

    Every op's table is evaluated for every sample and the drawn one is selected, so the number of tensor ops does not
    depend on the batch.

    Args:
        names: the op list indexed by ``op_index``.
        op_index: per-sample op, shape (N,) int64.
        level: per-sample AugMix level, shape (N,).
        sign: per-sample sign in {-1, 1}, shape (N,).
        height: H.
        width: W.

    Returns:
        float64 arguments on the CPU, shape (N,).

    Example:
        >>> op_arguments(["rotate", "solarize"], torch.tensor([0, 1]), torch.tensor([10.0, 10.0]),
        ...              torch.tensor([-1.0, 1.0]), 32, 32).tolist()
        [-30.0, 0.0]
    """
    idx = op_index.to("cpu", torch.int64)
    lev, sgn = level.to("cpu", torch.float64), sign.to("cpu", torch.float64)
    table = torch.stack([AF.augmix_argument(n, lev, sgn, height, width) for n in names], dim=-1)
    return torch.gather(table, -1, idx.clamp(0, len(names) - 1).unsqueeze(-1)).squeeze(-1)


def pixmix(
    x: Tensor,
    mixing: Tensor,
    names: Sequence[str],
    op_index: Tensor,
    arg: Tensor,
    start_aug: Tensor,
    use_aug: Tensor,
    rounds: Tensor,
    mix_op: Tensor,
    a: Tensor,
    b: Tensor,
) -> Tensor:
    """PixMix on a batch (module docstring): start, then up to ``K`` mixing rounds per sample.

    Args:
        x: clean images, shape (B, C, H, W), float in [0, 1].
        mixing: one mixing picture per sample, shape (B, C, H, W), float in [0, 1].
        names: op list indexed by ``op_index``.
        op_index: op of the starting copy (slot 0) and of every round's copy (slots 1..K), shape (B, 1 + K) int64,
            on the host.
        arg: the ops' arguments (:func:`op_arguments`), shape (B, 1 + K), on the host.
        start_aug: start from the augmented copy (else the clean image), shape (B,) bool, on the host.
        use_aug: round ``r`` mixes in an augmented copy (else the mixing picture), shape (B, K) bool, on the host.
        rounds: number of rounds ``k`` per sample, shape (B,) int64 in [0, K].
        mix_op: per round :data:`MIX_ADD` or :data:`MIX_MULTIPLY`, shape (B, K) int64.
        a: per round first weight, shape (B, K).
        b: per round second weight, shape (B, K).

    Returns:
        PixMix images, shape (B, C, H, W), same dtype, values in [0, 1].

    Example:
        >>> bsz, k = 2, 4
        >>> out = pixmix(torch.rand(bsz, 3, 8, 8), torch.rand(bsz, 3, 8, 8), ["rotate", "equalize"],
        ...              torch.randint(0, 2, (bsz, 1 + k)), torch.zeros(bsz, 1 + k), torch.tensor([True, False]),
        ...              torch.ones(bsz, k, dtype=torch.bool), torch.tensor([4, 1]),
        ...              torch.zeros(bsz, k, dtype=torch.long), torch.full((bsz, k), 0.5), torch.full((bsz, k), 0.5))
        >>> out.shape
        torch.Size([2, 3, 8, 8])
    """
    check_image(x, channels=None)
    check_image(mixing, "mixing", channels=None, check_values=False)
    bsz = x.shape[0]
    if mixing.shape != x.shape:
        raise ValueError(f"mixing: expected the shape of x {tuple(x.shape)}, got {tuple(mixing.shape)}")
    if op_index.dim() != 2 or op_index.shape[0] != bsz or op_index.shape[1] < 1:
        raise ValueError(f"op_index: expected shape ({bsz}, 1 + K), got {tuple(op_index.shape)}")
    k = int(op_index.shape[1]) - 1
    if arg.shape != op_index.shape:
        raise ValueError(f"arg: expected shape {tuple(op_index.shape)}, got {tuple(arg.shape)}")
    for t, nm in ((use_aug, "use_aug"), (mix_op, "mix_op"), (a, "a"), (b, "b")):
        if t.shape != (bsz, k):
            raise ValueError(f"{nm}: expected shape ({bsz}, {k}), got {tuple(t.shape)}")
    check_batch_param(start_aug, bsz, "start_aug")
    check_batch_param(rounds, bsz, "rounds")
    rounds_h = rounds.to("cpu", torch.int64)
    use_h = use_aug.to("cpu", torch.bool)
    mixed = AF.apply_ops(x, names, op_index[:, 0], arg[:, 0], start_aug)
    r_dev = rounds.to(x.device).view(-1, 1, 1, 1)
    for r in range(k):
        needed = use_h[:, r] & (rounds_h > r)  # augmented copies that are actually used
        aug = AF.apply_ops(x, names, op_index[:, r + 1], arg[:, r + 1], needed)
        partner = torch.where(use_aug[:, r].to(x.device).view(-1, 1, 1, 1), aug, mixing)
        new = pixmix_mix(mixed, partner, mix_op[:, r], a[:, r], b[:, r])
        mixed = torch.where(r_dev > r, new, mixed)
    return mixed
