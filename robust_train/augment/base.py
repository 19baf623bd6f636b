"""Base class of the training-time batch augmentations, and the splits contract.

Every augmentation is an ``nn.Module`` applied on the device to a batch of ``[0, 1]`` images ``(B, C, H, W)``:

* ``sample_params(B, generator)`` draws per-sample :class:`~robust_train.corruptions.Params` on the CPU (float64
  where it matters) from the module's own generator (``seed=``) or the global one; ``apply(x, params)`` is
  deterministic; ``forward(x, params=self.last_params)`` replays a call exactly.
* **Splits contract** (STYLE.md section 5): an augmentation returns ``num_splits * B`` images, the views concatenated
  along the batch in the order ``[clean, aug_1, ..., aug_k]`` (``num_splits == 1``: just the augmented batch).
  Labels of every split are the input labels; losses in :mod:`robust_train.losses` take ``num_splits``.
* Augmentations that need the network (adversarial ones) set ``needs_model = True`` and use the keyword arguments
  ``y`` (labels, shape (B,)) and ``model`` (a callable from ``[0, 1]`` images to logits) of ``forward``; the
  others accept and ignore them, so a caller can always pass both.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from ..corruptions.params import Params
from ..functional.checks import check_image, check_range
from ..functional.rng import combine_seeds

__all__ = ["BatchAugment", "ModelFn"]

ModelFn = Callable[[Tensor], Tensor]


class BatchAugment(nn.Module):
    """Base class: settings in the constructor, per-sample parameters in :class:`Params`, deterministic ``apply``.

    Args:
        p: probability that a sample is augmented (per sample; others pass unchanged).
        seed: seed of the module's own CPU ``torch.Generator``; ``None`` uses the global generator
            (``torch.manual_seed`` / Lightning's ``seed_everything`` then control it).

    Class attributes:
        needs_model: ``forward`` needs ``model`` and ``y`` (adversarial augmentations).
        channels: accepted channel counts (``None``: any).
    """

    needs_model: ClassVar[bool] = False
    channels: ClassVar[tuple[int, ...] | None] = None

    def __init__(self, p: float = 1.0, seed: int | None = None) -> None:
        super().__init__()
        check_range(float(p), 0.0, 1.0, "p")
        self.p = float(p)
        self.seed = seed
        self.generator: torch.Generator | None = None
        if seed is not None:
            self.generator = torch.Generator().manual_seed(int(seed))
        self.last_params: Any = None
        self._rank: int | None = None

    @property
    def num_splits(self) -> int:
        """Number of views returned per input sample (``[clean, aug_1, ...]``); 1 for a plain augmentation."""
        return 1

    def reseed(self, seed: int) -> None:
        """Reset the module's own generator to ``seed`` (creates one if the module used the global generator)."""
        self.seed = int(seed)
        self.generator = torch.Generator().manual_seed(int(seed))
        self._rank = None

    def _gen(self, generator: torch.Generator | None) -> torch.Generator | None:
        """The generator of a draw: the given one, else the module's own, else the global one.

        Under ``torch.distributed`` with several processes every rank would otherwise make the same draws (the seed,
        or ``seed_everything``'s global seed, is the same on every rank), so the first draw there switches to a
        private generator seeded from ``(seed or torch.initial_seed(), rank)``.
        """
        if generator is not None:
            return generator
        dist = torch.distributed
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            rank = dist.get_rank()
            if getattr(self, "_rank", None) != rank:
                base = self.seed if self.seed is not None else torch.initial_seed()
                self.generator = torch.Generator().manual_seed(int(combine_seeds(int(base), rank)))
                self._rank = rank
        return self.generator

    def _apply_flags(self, n: int, g: torch.Generator | None) -> Tensor:
        return torch.rand(n, generator=g, dtype=torch.float64) < self.p

    def sample_params(self, batch_size: int, generator: torch.Generator | None = None) -> Params:
        """Draw parameters for a batch on the CPU (subclasses extend). Holds ``"apply"`` (B,) bool."""
        return Params(apply=self._apply_flags(batch_size, self._gen(generator)))

    def apply(self, x: Tensor, params: Params) -> Tensor:
        """Augment ``x`` with ``params`` (deterministic); returns ``num_splits * B`` images."""
        raise NotImplementedError

    def check_input(self, x: Tensor) -> None:
        """Validate the image batch (float, (B, C, H, W), values in [0, 1], allowed channel count)."""
        check_image(x, channels=None)
        if self.channels is not None and x.shape[1] not in self.channels:
            raise ValueError(
                f"{type(self).__name__}: expected images with {' or '.join(map(str, self.channels))} channels, "
                f"got shape {tuple(x.shape)}"
            )

    def forward(
        self,
        x: Tensor,
        params: Params | None = None,
        *,
        y: Tensor | None = None,
        model: ModelFn | None = None,
    ) -> Tensor:
        """Augment a batch; pass ``params`` (e.g. ``self.last_params``) to replay a call.

        Args:
            x: images, shape (B, C, H, W), float in [0, 1], any device.
            params: parameters to apply; sampled when ``None``.
            y: labels, shape (B,) (used only when ``needs_model``).
            model: ``[0, 1]`` images -> logits (used only when ``needs_model``).

        Returns:
            Images, shape (num_splits * B, C, H, W), same dtype and device, values in [0, 1].
        """
        self.check_input(x)
        params = Params.for_batch(params, x.shape[0], self.sample_params)
        self.last_params = params
        return self.apply(x, params)

    @staticmethod
    def gate(apply: Tensor, out: Tensor, x: Tensor) -> Tensor:
        """Per-sample ``where(apply, out, x)``."""
        return torch.where(apply.to(x.device).view(-1, *([1] * (x.dim() - 1))), out, x)
