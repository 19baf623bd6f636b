"""The execution layer of the corruption modules: how a call runs, kept apart from what it computes.

:meth:`Corruption.forward <robust_train.corruptions.base.Corruption.forward>` samples (or takes) the host parameters
and hands the call to :func:`run`, the one place that decides how the work is executed:

* **input check**: shape and dtype at once; values (NaN, outside [0, 1]) on the CPU at once, on an accelerator with
  ``torch._assert_async`` (no stall), unless the op checks them in a pass it makes anyway (``checks_values_in_apply``);
* **compute dtype**: half precision is computed in float32 and returned in its own dtype;
* **CPU cache blocking** (:class:`CpuPolicy`): memory-bound corruptions run the batch in chunks of a few MB on the
  CPU; parameters are per sample, so chunking never changes what a sample receives;
* **host threads**: ops whose CPU work runs in host threads of their own (the JPEG codec) run their torch ops on one
  OpenMP thread;
* **gating**: the ``apply`` flags select corrupted or clean samples (a tensor select; skipped when every flag is set,
  read from the host copy).

Fusion (compiled kernels) is chosen per kernel by :mod:`robust_train.functional._fused`. On accelerators none of the
CPU policies apply: a call is the op's maths on the whole batch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from ..functional._common import single_omp_thread, to_compute_dtype
from ..functional._fused import fusion_enabled
from ..functional.checks import check_image

if TYPE_CHECKING:
    from .base import Corruption
    from .params import Params

__all__ = ["CpuPolicy", "as_batch", "run"]


@dataclass(frozen=True)
class CpuPolicy:
    """How a corruption runs on the CPU (execution policy only: values never depend on it).

    Args:
        chunk_bytes: run the batch in chunks of about this many bytes of input (cache blocking); ``None``: never.
        unchunked_when_fused: with fusion on, run the batch in one piece (the CPU path is fully fused, and per-chunk
            overhead then costs more than cache blocking saves; benchmarks/README.md, "Design measurements").
        host_threads: the work runs in host threads of the op's own; its torch ops then use one OpenMP thread.
    """

    chunk_bytes: int | None = 4 * 2**20
    unchunked_when_fused: bool = False
    host_threads: bool = False


def run(op: Corruption, x: Tensor, params: Params) -> Tensor:
    """Run ``op`` on ``x`` with host ``params`` under the execution policy (module docstring)."""
    check_image(x, check_values=not op.checks_values_in_apply)
    policy = op.cpu
    on_host = x.device.type == "cpu" and not torch.compiler.is_compiling()
    if on_host and policy.host_threads:
        with single_omp_thread():
            return _run_batch(op, x, params, policy, on_host)
    return _run_batch(op, x, params, policy, on_host)


def _run_batch(op: Corruption, x: Tensor, params: Params, policy: CpuPolicy, on_host: bool) -> Tensor:
    xc, out_dtype = to_compute_dtype(x)
    b = xc.shape[0]
    chunk = None if policy.unchunked_when_fused and fusion_enabled(xc.device) else policy.chunk_bytes
    n = b if chunk is None or not on_host else max(1, chunk // max(1, xc[0].numel() * xc.element_size()))
    if n >= b:
        return _gated(op, xc, params).to(out_dtype)
    first = _gated(op, xc[:n], params.index(slice(0, n)))
    rest = (_gated(op, xc[i : i + n], params.index(slice(i, i + n))) for i in range(n, b, n))
    if first.requires_grad:  # autograd records: keep the graph
        return torch.cat([first, *rest]).to(out_dtype)
    out = torch.empty(x.shape, dtype=out_dtype, device=x.device)  # each chunk is copied out while still in cache
    out[:n].copy_(first)
    for i, part in zip(range(n, b, n), rest, strict=True):
        out[i : i + n].copy_(part)
    return out


def _gated(op: Corruption, x: Tensor, params: Params) -> Tensor:
    out = op.finish(op.apply(x, params))
    gate = params["apply"]
    if not torch.compiler.is_compiling() and gate.device.type == "cpu" and bool(gate.all()):
        return out  # a host read of host parameters: no device sync
    return torch.where(gate.to(x.device).view(-1, 1, 1, 1), out, x)


def as_batch(x: Tensor) -> tuple[Tensor, Callable[[Tensor], Tensor]]:
    """Inputs as torchvision users pass them, as the float ``(B, 3, H, W)`` batch the ops compute on.

    Accepted: ``(C, H, W)`` or ``(B, C, H, W)``; float in [0, 1] or ``uint8`` in [0, 255]; 1 channel (grey: replicated
    to 3 channels, as the original did with grey images, so the output has 3 channels) or 3; ``tv_tensors.Image`` and
    any memory format. Returns the batch and a function that gives the output the input's form back: the rank, the
    dtype (``uint8`` output is the 8-bit result ``round(255 y)``, exact for the 8-bit outputs of ``quantize=True``),
    the memory format and the tv_tensor type (3 channels for grey input).

    Raises:
        TypeError: not a tensor, or an integer dtype other than ``uint8``.
        ValueError: a rank other than 3 or 4, or a channel count other than 1 or 3.
    """
    if not isinstance(x, Tensor):
        raise TypeError(f"x: expected a torch.Tensor image (C, H, W) or batch (B, C, H, W), got {type(x).__name__}")
    if x.dim() not in (3, 4):
        raise ValueError(f"x: expected an image (C, H, W) or a batch (B, C, H, W), got shape {tuple(x.shape)}")
    if x.dtype != torch.uint8 and not torch.is_floating_point(x):
        raise TypeError(f"x: expected a float image in [0, 1] or a uint8 image in [0, 255], got dtype {x.dtype}")
    if x.shape[-3] not in (1, 3):
        raise ValueError(f"x: expected 1 (grey) or 3 (RGB) channels, got {x.shape[-3]} (shape {tuple(x.shape)})")
    wrapper = type(x) if type(x) is not Tensor and type(x).__module__.startswith("torchvision") else None
    channels_last = x.dim() == 4 and x.shape[1] > 1 and x.is_contiguous(memory_format=torch.channels_last)
    channels_last = channels_last and not x.is_contiguous()
    unbatched, dtype = x.dim() == 3, x.dtype
    b = x.as_subclass(Tensor) if wrapper is not None else x
    b = b.unsqueeze(0) if unbatched else b
    if dtype == torch.uint8:
        b = b.float().div_(255.0)
    if b.shape[1] == 1:
        b = b.expand(-1, 3, -1, -1)

    def restore(y: Tensor) -> Tensor:
        if dtype == torch.uint8:
            y = torch.round(y.detach() * 255.0).clamp_(0, 255).to(torch.uint8)
        if channels_last:
            y = y.contiguous(memory_format=torch.channels_last)
        if unbatched:
            y = y.squeeze(0)
        if wrapper is not None:
            from torchvision import tv_tensors

            y = tv_tensors.wrap(y, like=x) if x.shape[-3] == y.shape[-3] else wrapper(y)
        return y

    return b, restore
