"""DeepAugment's Noise2Net (Hendrycks et al., "The Many Faces of Robustness", ICCV 2021) on the device.

Each augmented image passes through a freshly drawn random residual network of Res2Net bottlenecks; the maths are in
:func:`robust_train.functional.noise2net.noise2net`. Values verified in the reference code
(``github.com/hendrycks/imagenet-r``, ``DeepAugment/train_noise2net.py``, read at commit ``3131cac``):

* architecture: ``Res2Net`` of 4 ``Bottle2neck`` blocks, each ``3 -> 3`` channels, ``hidden_planes=16``,
  ``scale=4`` (1x1 conv to 64 channels, 3 branch convolutions of 16 channels, 1x1 conv back to 3), ReLU, BatchNorms
  in training mode (per-image instance norms: the batch is reshaped to ``(1, B * 3, H, W)`` and convolved with
  ``groups = B``), residual ``x = block(x) * epsilon + x`` per block;
* branch convolutions: kernel size ``random.choice([1, 3])``, dilation ``random.choice([1, 2, 3])``, padding
  ``(K - 1) / 2 * D``; weights from ``reset_parameters`` (``U(+-1/sqrt(fan_in))``), re-drawn before every batch;
* strength: ``epsilon = random.uniform(max_eps / 2, max_eps)`` per batch with ``--noisenet-max-eps 0.75``
  (the constructor's ``epsilon=0.50`` is overwritten before the first batch), so ``eps ~ U(0.375, 0.75)``;
* half the batch: the reference augments the first ``batch_size / 2`` images of every batch under
  ``torch.no_grad()``; the network runs on ImageNet-normalised images and its output is not clipped.

Ours differs where the framework's contracts require it, or where it only adds diversity: every image draws its own
weights (from a per-image seed), its own ``eps`` and its own kernel sizes and dilations (the reference shares the
kernel sizes and dilations of one network per epoch across the batch, and ``eps`` per batch); ``p=0.5`` augments
each image with probability one half (half the batch on average); the network runs on ``(x - mean) / std`` with the
model's normalisation constants (``mean``/``std``, the ImageNet ones by default, as in the reference) and the result
is mapped back and clamped to ``[0, 1]``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from ..corruptions.params import Params
from ..errors import ArgumentError
from ..functional.checks import check_int
from ..functional.noise2net import noise2net
from .base import BatchAugment

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "Noise2Net"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _eps_range(eps: float | Sequence[float]) -> tuple[float, float]:
    if isinstance(eps, (int, float)) and not isinstance(eps, bool):
        lo = hi = float(eps)
    elif isinstance(eps, Sequence) and not isinstance(eps, str) and len(eps) == 2:
        lo, hi = float(eps[0]), float(eps[1])
    else:
        raise ArgumentError(f"eps: expected a number or a (low, high) pair, got {eps!r}")
    if not (0.0 <= lo <= hi < float("inf")):
        raise ArgumentError(f"eps: expected 0 <= low <= high (finite), got ({lo}, {hi})")
    return lo, hi


def _choices(values: Sequence[int], name: str, odd: bool) -> tuple[int, ...]:
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or not values:
        raise ArgumentError(f"{name}: expected a non-empty list of positive integers, got {values!r}")
    out = tuple(check_int(v, name, lo=1) for v in values)
    if odd and any(v % 2 == 0 for v in out):
        raise ArgumentError(f"{name}: expected odd kernel sizes, got {list(out)}")
    return out


class Noise2Net(BatchAugment):
    """DeepAugment's Noise2Net: each image through its own random Res2Net, batched and replayable.

    Args:
        eps: residual strength per block, a number or a ``(low, high)`` range drawn uniformly per image
            (reference: ``U(0.375, 0.75)``, ``--noisenet-max-eps 0.75``).
        num_blocks: Res2Net bottlenecks (reference: 4).
        hidden_planes: channels of each branch (reference: 16).
        scale: branches per block (reference: 4).
        kernel_sizes: kernel sizes a branch convolution draws from, uniformly (reference: 1, 3).
        dilations: dilations a branch convolution draws from, uniformly (reference: 1, 2, 3).
        mean: per-channel mean of the model's input normalisation (reference: ImageNet's).
        std: per-channel standard deviation of that normalisation (reference: ImageNet's).
        p: probability that an image is augmented (reference: the first half of every batch).
        seed: seed of the module's own generator; ``None`` uses the global one.

    Params (leading dim B; ``N = num_blocks``, ``S = scale``): ``apply`` (B,) bool, ``seed`` (B,) int64 (the
    network weights are a counter-based hash of it, drawn on the image's device), ``eps`` (B,) float64, ``kernel``
    and ``dilation`` (B, N, S - 1) int64.

    Only the images with ``apply`` go through the network (their indices come from the host copy of the params, so
    no device value is read); the others are returned unchanged. Runs under ``torch.no_grad`` (no gradient flows
    through the augmentation, as in the reference).

    Shape:
        - Input: (B, C, H, W), float in [0, 1], C = ``len(mean)``.
        - Output: (B, C, H, W), same dtype, in [0, 1].

    Example:
        >>> aug = Noise2Net(p=1.0, seed=0)
        >>> aug(torch.rand(4, 3, 16, 16)).shape
        torch.Size([4, 3, 16, 16])
        >>> aug.last_params["kernel"].shape
        torch.Size([4, 4, 3])
    """

    def __init__(
        self,
        eps: float | Sequence[float] = (0.375, 0.75),
        num_blocks: int = 4,
        hidden_planes: int = 16,
        scale: int = 4,
        kernel_sizes: Sequence[int] = (1, 3),
        dilations: Sequence[int] = (1, 2, 3),
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        p: float = 0.5,
        seed: int | None = None,
    ) -> None:
        super().__init__(p=p, seed=seed)
        self.eps = _eps_range(eps)
        self.num_blocks = check_int(num_blocks, "num_blocks", lo=1)
        self.hidden_planes = check_int(hidden_planes, "hidden_planes", lo=1)
        self.scale = check_int(scale, "scale", lo=2)
        self.kernel_sizes = _choices(kernel_sizes, "kernel_sizes", odd=True)
        self.dilations = _choices(dilations, "dilations", odd=False)
        self.mean = tuple(float(v) for v in mean)
        self.std = tuple(float(v) for v in std)
        if not self.mean or len(self.mean) != len(self.std):
            raise ArgumentError(
                f"mean, std: expected one value per channel each, got {len(self.mean)} and {len(self.std)} values"
            )
        if not all(v > 0 for v in self.std):
            raise ArgumentError(f"std: expected positive values, got {list(self.std)}")

    def check_input(self, x: Tensor) -> None:
        """Validate the images; their channel count must match ``mean``/``std``."""
        super().check_input(x)
        if x.shape[1] != len(self.mean):
            raise ArgumentError(
                f"x: expected {len(self.mean)} channels (one per mean/std value), got shape {tuple(x.shape)}"
            )

    def sample_params(self, batch_size: int, generator: torch.Generator | None = None) -> Params:
        """Draw ``apply``, the network seeds, ``eps`` and the branch kernel sizes / dilations (CPU)."""
        g = self._gen(generator)
        params = super().sample_params(batch_size, g)
        b, arch = batch_size, (batch_size, self.num_blocks, self.scale - 1)
        params["seed"] = torch.randint(-(2**62), 2**62, (b,), generator=g, dtype=torch.int64)
        lo, hi = self.eps
        params["eps"] = lo + (hi - lo) * torch.rand(b, generator=g, dtype=torch.float64)
        ks, ds = torch.tensor(self.kernel_sizes), torch.tensor(self.dilations)
        params["kernel"] = ks[torch.randint(0, len(ks), arch, generator=g)]
        params["dilation"] = ds[torch.randint(0, len(ds), arch, generator=g)]
        return params

    def apply(self, x: Tensor, params: Params) -> Tensor:
        """Run the networks of the images with ``apply``; the others pass unchanged."""
        flags = params["apply"].detach().to("cpu")  # the host copy (sampled on the CPU: no device read)
        idx = flags.nonzero().view(-1)
        # the selected images plus one zero image (row 0's network, output dropped): the networks run on every call,
        # even when no image is selected, so the ATen ops do not depend on the batch or the draw
        rows = torch.cat([idx, idx.new_zeros(1)])
        with torch.no_grad():
            sel = idx.to(x.device)
            xs = torch.cat([x.index_select(0, sel), x.new_zeros(1, *x.shape[1:])])
            sub = noise2net(
                xs,
                params["seed"].to("cpu")[rows],
                params["eps"].to("cpu")[rows],
                params["kernel"].to("cpu")[rows],
                params["dilation"].to("cpu")[rows],
                self.mean,
                self.std,
                hidden_planes=self.hidden_planes,
                scale=self.scale,
                kernel_sizes=self.kernel_sizes,
                dilations=self.dilations,
            )
            return x.detach().index_copy(0, sel, sub[:-1])

    def extra_repr(self) -> str:
        """Settings shown in ``repr``."""
        return (
            f"eps={self.eps}, num_blocks={self.num_blocks}, hidden_planes={self.hidden_planes}, scale={self.scale}, "
            f"kernel_sizes={list(self.kernel_sizes)}, dilations={list(self.dilations)}, mean={list(self.mean)}, "
            f"std={list(self.std)}, p={self.p}"
        )
