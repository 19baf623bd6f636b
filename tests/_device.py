"""Device-first proofs that run on a CPU (STYLE.md section 1b).

* :func:`fake_cuda`: a ``FakeTensorMode`` in which tensors on ``"cuda"`` are fake (shapes, dtypes and devices only,
  no data) while CPU tensors stay real. Host code may read host tensors (that costs no device sync); any read of a
  device value (``.item()``, ``bool(t)``, ``.tolist()``, ``.cpu()``/``.numpy()``, ``nonzero``, data-dependent shapes)
  raises, and so does mixing devices in one op. Every such read would be a device-to-host synchronisation on a GPU.
* :func:`count_aten_ops`: ATen ops issued by a call (a ``TorchDispatchMode``); equal counts at two batch sizes show
  that no Python loop runs per sample.
"""

from __future__ import annotations

import collections
import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch._subclasses.fake_tensor import FakeTensor, FakeTensorMode, unset_fake_temporarily
from torch.utils import _pytree as pytree
from torch.utils._python_dispatch import TorchDispatchMode

import robust_train as rt


class HostSyncError(RuntimeError):
    """A device value was copied to the host (a device-to-host synchronisation on a GPU)."""


def _device_arg(kwargs: dict[str, Any]) -> torch.device | None:
    dev = kwargs.get("device")
    return None if dev is None else torch.device(dev)


class _HostRealFakeMode(FakeTensorMode):
    """Fake tensors for accelerator devices, real tensors for the host."""

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN201
        kwargs = kwargs or {}
        leaves = pytree.tree_leaves((args, kwargs))
        fakes = [a for a in leaves if isinstance(a, FakeTensor)]
        dev = _device_arg(kwargs)
        if not fakes and (dev is None or dev.type == "cpu"):
            with unset_fake_temporarily():  # pure host computation: run it for real
                return func(*args, **kwargs)
        real_cpu = [a for a in leaves if isinstance(a, torch.Tensor) and not isinstance(a, FakeTensor) and a.dim() > 0]
        if fakes and func is torch.ops.aten._to_copy.default and dev is not None and dev.type == "cpu":
            if any(f.device.type != "cpu" for f in fakes):
                raise HostSyncError(f"{func}: a device tensor is copied to the host")
        if fakes and real_cpu and func in (torch.ops.aten.copy_.default, torch.ops.aten._copy_from.default):
            raise HostSyncError(f"{func}: a device tensor is copied into host memory (.cpu(), .numpy(), .tolist())")
        return super().__torch_dispatch__(func, types, args, kwargs)


@contextlib.contextmanager
def fake_cuda() -> Iterator[None]:
    """Run the block with fake ``"cuda"`` tensors (no GPU needed) and real host tensors; fusion off.

    Fused kernels would try to compile for a GPU that is not there; their eager bodies (the code they compile) run.
    """
    with rt.fusion("off"), _HostRealFakeMode(allow_non_fake_inputs=True):
        yield


def to_fake_cuda(t: torch.Tensor) -> torch.Tensor:
    """A fake ``"cuda"`` copy of a host tensor (call inside :func:`fake_cuda`)."""
    return t.to("cuda")


class _OpCounter(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.counts: collections.Counter[str] = collections.Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN201
        self.counts[str(func.overloadpacket)] += 1
        return func(*args, **(kwargs or {}))


def count_aten_ops(fn: Callable[[], Any]) -> collections.Counter[str]:
    """ATen ops issued by ``fn()`` (fusion off: the eager reference runs)."""
    counter = _OpCounter()
    with rt.fusion("off"), counter:
        fn()
    return counter.counts
