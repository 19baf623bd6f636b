"""The single dispatch point between torch references and the Triton kernels in ``kernels/`` (STYLE.md section 10).

Every kernel has a torch reference in ``robust_train/functional`` (the source of truth). Ops with a kernel take
``backend="auto" | "torch" | "kernel"`` and reach it through this module:

* ``"torch"``: the reference.
* ``"kernel"``: the Triton kernel; when it cannot run (no triton, no CUDA for a CPU tensor outside the Triton
  interpreter, a compile or launch failure) the reference runs instead and **one** ``RuntimeWarning`` per kernel and
  device type is emitted per process; a kernel whose launch failed is not tried again on that device type.
* ``"auto"``: the kernel for CUDA tensors when it works (otherwise the reference, with the same one-time warning),
  the reference for every other device, silently: on the CPU the reference *is* the fast path.

The kernel modules are plain files in the ``robust_train/kernels/`` subpackage, imported **lazily** by file
path under private module names (never as a top-level ``kernels`` package, which would clash with unrelated PyPI
packages of that name). Importing ``robust_train`` never imports triton; a missing triton or compiler only ever
produces the fallback warning.

The Triton interpreter (``TRITON_INTERPRET=1`` set before the first kernel call) runs the kernels on CPU tensors;
``backend="kernel"`` then uses them for CPU tensors too (tests in ``tests/kernels``). Interpreted and compiled
kernel modules are cached separately.

Ops are registered with ``torch.library.custom_op`` (namespace ``robust_train``) with fake (meta) implementations
and autograd formulas, so they compose with autograd and ``torch.compile``:

* ``robust_train::hash_noise(x, seed, sigma, mode, stream, use_kernel) -> out``: fused counter-hash normal noise,
  ``mode`` 0 = additive (Gaussian noise), 1 = multiplicative (speckle noise), then clip to [0, 1].
* ``robust_train::hash_noise_backward(grad, x, seed, sigma, mode, stream, use_kernel) -> grad_x``.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import threading
import warnings
from pathlib import Path
from types import ModuleType

import torch
from torch import Tensor

from ._hash_noise import _hash_noise_grad_reference, _hash_noise_reference

__all__ = [
    "BACKENDS",
    "KERNEL_MODULES",
    "check_backend",
    "hash_noise",
    "kernel_status",
    "kernels_dir",
    "load_kernel_module",
    "resolve_backend",
]

BACKENDS: tuple[str, ...] = ("auto", "torch", "kernel")

#: kernel name -> module file (without ``.py``) in ``kernels/``.
KERNEL_MODULES: dict[str, str] = {"hash_noise": "hash_noise"}

_LOCK = threading.Lock()
_MODULES: dict[tuple[str, bool], ModuleType | None] = {}
_LOAD_ERRORS: dict[tuple[str, bool], str] = {}
_BROKEN: dict[tuple[str, str, bool], str] = {}  # (kernel, device type, interpret) -> error of a failed launch
_WARNED: set[str] = set()


def check_backend(backend: str) -> None:
    """Raise ``ValueError`` unless ``backend`` is one of :data:`BACKENDS`.

    Example:
        >>> check_backend("auto")
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend: expected one of {list(BACKENDS)}, got {backend!r}")


def kernels_dir() -> Path:
    """The ``robust_train/kernels/`` subpackage folder (shipped in the wheel)."""
    return Path(__file__).resolve().parents[1] / "kernels"


def _interpret() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0").strip().lower() in ("1", "true", "yes", "on")


def _warn_once(key: str, message: str) -> None:
    with _LOCK:
        if key in _WARNED:
            return
        _WARNED.add(key)
    warnings.warn(message, RuntimeWarning, stacklevel=3)


def load_kernel_module(name: str) -> ModuleType | None:
    """Import ``kernels/<module>.py`` for kernel ``name`` (lazily, cached per interpreter mode).

    Returns:
        The module, or ``None`` when triton or the file is missing or the import fails; the reason is then
        available from :func:`kernel_status`.

    Raises:
        ValueError: unknown kernel name.
    """
    if name not in KERNEL_MODULES:
        raise ValueError(f"unknown kernel {name!r}; expected one of {sorted(KERNEL_MODULES)}")
    key = (name, _interpret())
    with _LOCK:
        if key in _MODULES:
            return _MODULES[key]
    module: ModuleType | None = None
    error = ""
    path = kernels_dir() / f"{KERNEL_MODULES[name]}.py"
    if importlib.util.find_spec("triton") is None:
        error = "triton is not installed (pip install 'robust-train[kernels]')"
    elif not path.is_file():
        error = f"kernel source {path} not found (robust_train/kernels is missing from this install)"
    else:
        mod_name = f"robust_train._kernels_{name}" + ("_interpreted" if key[1] else "")
        try:
            spec = importlib.util.spec_from_file_location(mod_name, path)
            assert spec is not None and spec.loader is not None
            module = importlib.util.module_from_spec(spec)
            sys.modules[mod_name] = module
            spec.loader.exec_module(module)
        except Exception as err:  # noqa: BLE001 - any import problem means "no kernel"
            sys.modules.pop(mod_name, None)
            module, error = None, f"importing {path.name} failed: {type(err).__name__}: {err}"
    with _LOCK:
        _MODULES[key] = module
        if error:
            _LOAD_ERRORS[key] = error
    return module


def kernel_status(name: str, device: torch.device | str) -> tuple[bool, str]:
    """Whether kernel ``name`` can run on ``device``, and why not.

    Returns:
        ``(True, "")`` or ``(False, reason)``.

    Example:
        >>> ok, reason = kernel_status("hash_noise", "cpu")
        >>> isinstance(ok, bool)
        True
    """
    device = torch.device(device)
    interpret = _interpret()
    if device.type != "cuda" and not interpret:
        return False, f"no Triton kernel for {device.type} tensors (needs CUDA, or TRITON_INTERPRET=1 for testing)"
    if device.type == "cuda" and interpret:
        return False, "TRITON_INTERPRET=1 is set; the interpreter runs on CPU tensors only"
    broken = _BROKEN.get((name, device.type, interpret))
    if broken:
        return False, broken
    if load_kernel_module(name) is None:
        return False, _LOAD_ERRORS.get((name, interpret), "kernel module unavailable")
    return True, ""


def resolve_backend(backend: str, device: torch.device | str, name: str) -> str:
    """``"torch"`` or ``"kernel"`` for a call of kernel ``name`` on ``device`` (see the module docstring).

    Example:
        >>> resolve_backend("torch", "cpu", "hash_noise")
        'torch'
    """
    check_backend(backend)
    if backend == "torch":
        return "torch"
    device = torch.device(device)
    if backend == "auto" and device.type != "cuda":
        return "torch"
    ok, reason = kernel_status(name, device)
    if ok:
        return "kernel"
    _warn_once(f"{name}:{device.type}", f"{name}: using the torch reference instead of the kernel: {reason}")
    return "torch"


# --------------------------------------------------------------------------------------------------- hash noise
def _noise_keys(seed: Tensor, stream: int, device: torch.device) -> Tensor:
    """(B, 4) int32 keys of the two Box-Muller uniform streams (computed by the torch reference: bit-exact)."""
    from .rng import _normal_keys

    return torch.cat(_normal_keys(seed, stream, device), dim=1).contiguous()


def _hash_noise_ref(x: Tensor, seed: Tensor, sigma: Tensor, mode: int, stream: int) -> Tensor:
    return _hash_noise_reference(x, seed, sigma, mode, stream)


def _hash_noise_grad_ref(grad: Tensor, x: Tensor, seed: Tensor, sigma: Tensor, mode: int, stream: int) -> Tensor:
    return _hash_noise_grad_reference(grad, x, seed, sigma, mode, stream)


def _hash_noise_kernel(x: Tensor, seed: Tensor, sigma: Tensor, mode: int, stream: int) -> Tensor:
    module = load_kernel_module("hash_noise")
    assert module is not None
    return module.hash_noise_forward(x, _noise_keys(seed, stream, x.device), sigma, mode)


def _hash_noise_grad_kernel(grad: Tensor, x: Tensor, seed: Tensor, sigma: Tensor, mode: int, stream: int) -> Tensor:
    module = load_kernel_module("hash_noise")
    assert module is not None
    return module.hash_noise_backward(grad, x, _noise_keys(seed, stream, x.device), sigma, mode)


def _try_kernel(fn, reference, *args):  # noqa: ANN001, ANN202
    """Run a kernel launcher; on failure mark the kernel broken, warn once and run the torch ``reference``."""
    device = args[0].device
    try:
        return fn(*args)
    except Exception as err:  # noqa: BLE001 - compiler missing, launch failure, ...
        reason = f"kernel launch failed: {type(err).__name__}: {err}"
        _BROKEN[("hash_noise", device.type, _interpret())] = reason
        _warn_once(f"hash_noise:{device.type}", f"hash_noise: using the torch reference instead: {reason}")
        return reference(*args)


@torch.library.custom_op("robust_train::hash_noise", mutates_args=())
def _hash_noise_op(x: Tensor, seed: Tensor, sigma: Tensor, mode: int, stream: int, use_kernel: bool) -> Tensor:
    if use_kernel:
        return _try_kernel(_hash_noise_kernel, _hash_noise_ref, x, seed, sigma, mode, stream)
    return _hash_noise_ref(x, seed, sigma, mode, stream)


@_hash_noise_op.register_fake
def _(x: Tensor, seed: Tensor, sigma: Tensor, mode: int, stream: int, use_kernel: bool) -> Tensor:
    return torch.empty_like(x, memory_format=torch.contiguous_format)


@torch.library.custom_op("robust_train::hash_noise_backward", mutates_args=())
def _hash_noise_backward_op(
    grad: Tensor, x: Tensor, seed: Tensor, sigma: Tensor, mode: int, stream: int, use_kernel: bool
) -> Tensor:
    if use_kernel:
        return _try_kernel(_hash_noise_grad_kernel, _hash_noise_grad_ref, grad, x, seed, sigma, mode, stream)
    return _hash_noise_grad_ref(grad, x, seed, sigma, mode, stream)


@_hash_noise_backward_op.register_fake
def _(grad: Tensor, x: Tensor, seed: Tensor, sigma: Tensor, mode: int, stream: int, use_kernel: bool) -> Tensor:
    return torch.empty_like(x, memory_format=torch.contiguous_format)


def _hash_noise_setup(ctx, inputs, output) -> None:  # noqa: ANN001
    x, seed, sigma, mode, stream, use_kernel = inputs
    ctx.save_for_backward(x, seed, sigma)
    ctx.mode, ctx.stream, ctx.use_kernel = mode, stream, use_kernel


def _hash_noise_backward(ctx, grad: Tensor):  # noqa: ANN001, ANN202
    x, seed, sigma = ctx.saved_tensors
    grad_x = _hash_noise_backward_op(grad.contiguous(), x, seed, sigma, ctx.mode, ctx.stream, ctx.use_kernel)
    return grad_x, None, None, None, None, None


torch.library.register_autograd("robust_train::hash_noise", _hash_noise_backward, setup_context=_hash_noise_setup)


def hash_noise(x: Tensor, seed: Tensor, sigma: Tensor, mode: int, stream: int, backend: str = "auto") -> Tensor:
    """Fused counter-hash normal noise: ``clip(x + sigma z, 0, 1)`` (mode 0) or ``clip(x + x sigma z, 0, 1)`` (mode 1).

    ``z`` is :func:`robust_train.functional.rng.field_normal` of ``(seed, x.shape[1:], stream)``; the kernel
    agrees with it bit for bit on the integer hash and to float rounding on the normals.

    Args:
        x: images (B, ...), float32 or float64, on any device.
        seed: (B,) int64 per-sample seeds.
        sigma: (B,) noise standard deviations.
        mode: 0 additive, 1 multiplicative.
        stream: stream id of the noise field.
        backend: ``"auto"``, ``"torch"`` or ``"kernel"``.

    Returns:
        Contiguous tensor shaped like ``x``. Differentiable in ``x`` (clip gradient mask times ``1`` or
        ``1 + sigma z``); ``sigma`` gets no gradient.

    Example:
        >>> hash_noise(torch.rand(2, 3, 4, 4), torch.tensor([1, 2]), torch.full((2,), 0.1), 0, 7).shape
        torch.Size([2, 3, 4, 4])
    """
    if mode not in (0, 1):
        raise ValueError(f"mode: expected 0 (additive) or 1 (multiplicative), got {mode}")
    if x.dtype not in (torch.float32, torch.float64):
        raise TypeError(f"x: expected float32 or float64 (upcast half precision first), got {x.dtype}")
    use_kernel = resolve_backend(backend, x.device, "hash_noise") == "kernel"
    seed = seed.to(device=x.device, dtype=torch.int64).contiguous()
    sigma = sigma.to(device=x.device, dtype=x.dtype).contiguous()
    return _hash_noise_op(x.contiguous(), seed, sigma, int(mode), int(stream) & 0xFFFFFFFF, use_kernel)
