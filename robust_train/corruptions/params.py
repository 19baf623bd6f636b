"""``Params``: the per-sample parameters of one corruption call (every tensor has leading dim ``B``)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

import torch
from torch import Tensor

from ..errors import ArgumentError, ArgumentTypeError
from ..functional.checks import check_per_sample

__all__ = ["Params"]


class Params(dict[str, Tensor]):
    """A mapping of per-sample tensors with leading dimension ``B``.

    Always holds ``"apply"`` (B,) bool, ``"severity"`` (B,) float64 and ``"seed"`` (B,) int64; corruptions add
    their own draws (angles, crop offsets, ...). Parameters are sampled on the CPU in float64 and moved to the
    image's device with :meth:`to` right before they are applied.

    Example:
        >>> p = Params(apply=torch.ones(4, dtype=torch.bool), severity=torch.full((4,), 3.0))
        >>> p.batch_size, p.index(torch.tensor([0, 2])).batch_size
        (4, 2)
    """

    @staticmethod
    def for_batch(params: Mapping[str, Tensor] | None, batch_size: int, sample: Callable[[int], Params]) -> Params:
        """The parameters a module's ``forward`` uses for a batch: freshly sampled, or the given ones checked.

        Args:
            params: parameters passed by the caller (for replay), or ``None``.
            batch_size: number of images in the batch.
            sample: the module's ``sample_params``, called with ``batch_size`` when ``params`` is ``None``.

        Raises:
            ValueError: ``params`` were drawn for a different batch size, or hold a NaN / infinite severity.
            TypeError: ``params`` is not a mapping of tensors, or ``apply`` is not a bool tensor.

        Example:
            >>> p = Params(apply=torch.ones(2, dtype=torch.bool))
            >>> Params.for_batch(p, 2, lambda b: p).batch_size
            2
        """
        if params is None:
            return sample(batch_size)
        if not isinstance(params, Mapping) or not all(isinstance(v, Tensor) for v in params.values()):
            raise ArgumentTypeError(f"params: expected a mapping of tensors (Params), got {type(params).__name__}")
        out = params if isinstance(params, Params) else Params(params)
        if out.batch_size != batch_size:
            raise ArgumentError(f"params were drawn for a batch of {out.batch_size}, got {batch_size} images")
        if "apply" in out and out["apply"].dtype != torch.bool:
            raise ArgumentTypeError(f"params['apply']: expected a (B,) bool tensor, got dtype {out['apply'].dtype}")
        if "severity" in out:  # finite (the range is the module's: 1-5 for corruptions, 1-10 for AugMix ops)
            check_per_sample(out["severity"], "params['severity']", batch=batch_size)
        return out

    @property
    def batch_size(self) -> int:
        """Leading dimension shared by every entry."""
        sizes = {int(v.shape[0]) for v in self.values()}
        if len(sizes) != 1:
            shapes = {k: tuple(v.shape) for k, v in self.items()}
            raise ValueError(f"Params entries disagree on the batch size: {shapes}")
        return sizes.pop()

    def to(self, device: torch.device | str) -> Params:
        """Copy to ``device`` (dtypes unchanged)."""
        return Params({k: v.to(device) for k, v in self.items()})

    def index(self, idx: Tensor | slice) -> Params:
        """Select samples along the batch dimension."""
        return Params({k: v[idx] for k, v in self.items()})

    def expand(self, batch: int) -> Params:
        """Repeat a single-row ``Params`` to ``batch`` rows (``same_on_batch``)."""
        return Params({k: v.expand(batch, *v.shape[1:]).clone() for k, v in self.items()})

    @staticmethod
    def cat(items: Iterable[Mapping[str, Tensor]]) -> Params:
        """Concatenate several ``Params`` along the batch."""
        items = list(items)
        keys = set(items[0])
        for it in items[1:]:
            if set(it) != keys:
                raise ValueError(f"cannot concatenate Params with different keys: {sorted(keys)} vs {sorted(it)}")
        return Params({k: torch.cat([it[k] for it in items]) for k in items[0]})

    def equal(self, other: Mapping[str, Tensor]) -> bool:
        """Bitwise equality of keys and values."""
        return set(self) == set(other) and all(torch.equal(self[k].cpu(), other[k].cpu()) for k in self)
