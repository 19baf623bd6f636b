"""The Triton hash-noise kernel against its torch reference, and the dispatch point.

The kernel runs in the Triton interpreter (``TRITON_INTERPRET=1``, CPU tensors) so these tests run in the default
suite whenever triton is importable; the ``gpu`` tests repeat the comparison with the compiled kernel on CUDA.
"""

from __future__ import annotations

import subprocess
import sys
import warnings

import pytest
import torch

from robust_train.functional import _dispatch, rng
from robust_train.functional import noise as F

from .._helpers import RunIf, gradcheck

SEEDS = torch.tensor([0, 1, -7, 2**40 + 5, -(2**62) + 3])
# float32 normals: log / cos / sin differ by a few ulp between Sleef (torch CPU), NumPy (interpreter) and libdevice
NORMAL_TOL = {torch.float32: (1e-5, 1e-5), torch.float64: (1e-12, 1e-12)}


@pytest.fixture
def fresh_dispatch(monkeypatch: pytest.MonkeyPatch):
    """Isolate the dispatch module's one-time warnings and failure marks."""
    monkeypatch.setattr(_dispatch, "_WARNED", set())
    monkeypatch.setattr(_dispatch, "_BROKEN", {})
    return _dispatch


@pytest.fixture
def kmod(monkeypatch: pytest.MonkeyPatch, fresh_dispatch):
    """The kernel module loaded in Triton interpreter mode."""
    pytest.importorskip("triton")
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    mod = _dispatch.load_kernel_module("hash_noise")
    ok, reason = _dispatch.kernel_status("hash_noise", "cpu")
    assert mod is not None and ok, reason
    return mod


def _keys2(seed: torch.Tensor, stream: int) -> torch.Tensor:
    return torch.stack(rng._keys(seed, stream), dim=1).contiguous()


@RunIf(kernels=True)
@pytest.mark.parametrize("n", [1, 7, 1024, 3 * 17 * 13])
def test_hash_bits_bit_exact(kmod, n: int) -> None:
    stream = rng.stream_id("kernel/test")
    bits = kmod.hash_bits(_keys2(SEEDS, stream), n)
    ref = rng.hash32(SEEDS, torch.arange(n).view(1, n), stream)
    assert bits.dtype == torch.int32 and torch.equal(bits, ref)


@RunIf(kernels=True)
@pytest.mark.parametrize("precision", [torch.float32, torch.float64], ids=["float32", "float64"])
def test_uniform_bit_exact(kmod, precision: torch.dtype) -> None:
    dtype = precision
    stream, n = 99, 2 * 1024 + 5
    u = kmod.uniform(_keys2(SEEDS, stream), n, dtype)
    assert torch.equal(u, rng.field_uniform(SEEDS, (n,), stream, dtype=dtype))
    assert bool((u > 0).all()) and bool((u < 1).all())


@RunIf(kernels=True)
@pytest.mark.parametrize("precision", [torch.float32, torch.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("n", [1, 5, 3 * 17 * 13])
def test_normal_matches_reference(kmod, precision: torch.dtype, n: int) -> None:
    dtype = precision
    stream = rng.stream_id("kernel/normal")
    keys = _dispatch._noise_keys(SEEDS, stream, torch.device("cpu"))
    z = kmod.normal(keys, n, dtype)
    rtol, atol = NORMAL_TOL[dtype]
    torch.testing.assert_close(z, rng.field_normal(SEEDS, (n,), stream, dtype=dtype), rtol=rtol, atol=atol)


@RunIf(kernels=True)
@pytest.mark.parametrize("precision", [torch.float32, torch.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("mode", [0, 1], ids=["gaussian", "speckle"])
def test_fused_noise_matches_reference_and_is_deterministic(kmod, mode: int, precision: torch.dtype) -> None:
    dtype = precision
    g = torch.Generator().manual_seed(0)
    x = torch.rand(5, 3, 17, 13, generator=g, dtype=dtype)
    sigma = torch.tensor([0.05, 0.1, 0.3, 0.6, 0.0], dtype=dtype)
    out = _dispatch.hash_noise(x, SEEDS, sigma, mode, 1234, backend="kernel")
    ref = _dispatch.hash_noise(x, SEEDS, sigma, mode, 1234, backend="torch")
    rtol, atol = NORMAL_TOL[dtype]
    torch.testing.assert_close(out, ref, rtol=rtol, atol=atol)
    assert torch.equal(out[4], x[4])  # sigma 0 is the identity
    again = _dispatch.hash_noise(x, SEEDS, sigma, mode, 1234, backend="kernel")
    assert torch.equal(out, again)  # deterministic on repeated calls


@RunIf(kernels=True)
def test_public_ops_through_the_kernel(kmod) -> None:
    x = torch.rand(2, 3, 9, 11)
    seed = torch.tensor([5, 6])
    for fn, arg in ((F.gaussian_noise, 0.2), (F.speckle_noise, 0.4)):
        torch.testing.assert_close(
            fn(x, arg, seed, backend="kernel"), fn(x, arg, seed, backend="torch"), rtol=1e-5, atol=1e-5
        )


@RunIf(kernels=True)
@pytest.mark.grad
@pytest.mark.parametrize("mode", [0, 1], ids=["gaussian", "speckle"])
def test_kernel_gradients(kmod, mode: int) -> None:
    x = torch.rand(2, 3, 2, 2, dtype=torch.float64) * 0.8 + 0.1  # small: every gradcheck probe runs the interpreter
    seed, sigma = SEEDS[:2], torch.tensor([0.2, 0.5], dtype=torch.float64)
    assert gradcheck(lambda t: _dispatch.hash_noise(t, seed, sigma, mode, 7, backend="kernel"), x)
    xg = x.clone().requires_grad_(True)
    (gk,) = torch.autograd.grad(_dispatch.hash_noise(xg, seed, sigma, mode, 7, backend="kernel").sum(), xg)
    (gt,) = torch.autograd.grad(_dispatch.hash_noise(xg, seed, sigma, mode, 7, backend="torch").sum(), xg)
    torch.testing.assert_close(gk, gt, rtol=1e-12, atol=1e-12)


@RunIf(kernels=True)
def test_custom_op_registration(kmod) -> None:
    """Schema, fake (meta) kernel, autograd registration: torch.library.opcheck."""
    x = torch.rand(2, 3, 4, 4, dtype=torch.float64)
    sigma = torch.tensor([0.1, 0.2], dtype=torch.float64)
    for use_kernel in (False, True):
        torch.library.opcheck(
            torch.ops.robust_train.hash_noise.default,
            (x, SEEDS[:2], sigma, 0, 3, use_kernel),
            test_utils=("test_schema", "test_faketensor", "test_autograd_registration"),
        )
    fake = torch.ops.robust_train.hash_noise.default(x.to("meta"), SEEDS[:2].to("meta"), sigma.to("meta"), 0, 3, False)
    assert fake.shape == x.shape and fake.device.type == "meta"


# -------------------------------------------------------------------------------------------- dispatch behaviour
def test_backend_resolution_on_cpu_without_interpreter(fresh_dispatch, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "auto" on the CPU is the reference, silently
        assert _dispatch.resolve_backend("auto", "cpu", "hash_noise") == "torch"
        assert _dispatch.resolve_backend("torch", "cpu", "hash_noise") == "torch"
    ok, reason = _dispatch.kernel_status("hash_noise", "cpu")
    assert not ok and "CUDA" in reason
    with pytest.warns(RuntimeWarning, match="torch reference"):
        assert _dispatch.resolve_backend("kernel", "cpu", "hash_noise") == "torch"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # only one warning per reason and process
        assert _dispatch.resolve_backend("kernel", "cpu", "hash_noise") == "torch"
    x = torch.rand(2, 3, 5, 5)
    out = F.gaussian_noise(x, 0.1, torch.tensor([1, 2]), backend="kernel")
    assert torch.equal(out, F.gaussian_noise(x, 0.1, torch.tensor([1, 2]), backend="torch"))
    with pytest.raises(ValueError, match="backend"):
        _dispatch.resolve_backend("triton", "cpu", "hash_noise")
    with pytest.raises(ValueError, match="unknown kernel"):
        _dispatch.load_kernel_module("nope")


def test_missing_triton_falls_back(fresh_dispatch, monkeypatch: pytest.MonkeyPatch) -> None:
    """A missing triton (or kernel file) only produces the fallback warning."""
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    monkeypatch.setattr(_dispatch, "_MODULES", {})
    monkeypatch.setattr(_dispatch, "_LOAD_ERRORS", {})
    real_find_spec = _dispatch.importlib.util.find_spec
    monkeypatch.setattr(
        _dispatch.importlib.util, "find_spec", lambda name, *a: None if name == "triton" else real_find_spec(name, *a)
    )
    ok, reason = _dispatch.kernel_status("hash_noise", "cpu")
    assert not ok and "triton is not installed" in reason
    x = torch.rand(1, 3, 4, 4)
    with pytest.warns(RuntimeWarning, match="triton is not installed"):
        out = F.speckle_noise(x, 0.3, torch.tensor([9]), backend="kernel")
    assert torch.equal(out, F.speckle_noise(x, 0.3, torch.tensor([9]), backend="torch"))


@RunIf(kernels=True)
def test_failing_launch_falls_back_once(kmod, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*args, **kwargs):
        raise RuntimeError("no compiler")

    monkeypatch.setattr(kmod, "hash_noise_forward", boom)
    x = torch.rand(2, 3, 4, 4)
    seed = torch.tensor([1, 2])
    with pytest.warns(RuntimeWarning, match="no compiler"):
        out = F.gaussian_noise(x, 0.1, seed, backend="kernel")
    assert torch.equal(out, F.gaussian_noise(x, 0.1, seed, backend="torch"))
    ok, reason = _dispatch.kernel_status("hash_noise", "cpu")
    assert not ok and "no compiler" in reason  # marked broken: later calls go straight to the reference
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        F.gaussian_noise(x, 0.1, seed, backend="kernel")


def test_import_does_not_load_triton() -> None:
    code = "import sys, robust_train, robust_train.functional.noise; print('triton' in sys.modules)"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "False"


@pytest.mark.slow
def test_compile_fullgraph() -> None:
    x = torch.rand(2, 3, 8, 8, requires_grad=True)
    seed, sigma = torch.tensor([1, 2]), torch.tensor([0.1, 0.3])

    def f(t: torch.Tensor) -> torch.Tensor:
        return F.speckle_noise(t, sigma, seed, backend="torch")

    compiled = torch.compile(f, backend="aot_eager", fullgraph=True)
    out = compiled(x)
    assert torch.equal(out, f(x))
    (g1,) = torch.autograd.grad(out.sum(), x)
    (g2,) = torch.autograd.grad(f(x).sum(), x)
    torch.testing.assert_close(g1, g2)


@RunIf(min_gpus=1, kernels=True)
@pytest.mark.gpu
@pytest.mark.parametrize("precision", [torch.float32, torch.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("mode", [0, 1], ids=["gaussian", "speckle"])
def test_cuda_kernel_matches_reference(
    fresh_dispatch, monkeypatch: pytest.MonkeyPatch, mode: int, precision: torch.dtype
) -> None:
    dtype = precision
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    x = torch.rand(4, 3, 64, 48, dtype=dtype, device="cuda")
    seed, sigma = SEEDS[:4], torch.tensor([0.05, 0.1, 0.3, 0.6], dtype=dtype)
    assert _dispatch.resolve_backend("auto", "cuda", "hash_noise") == "kernel"
    mod = _dispatch.load_kernel_module("hash_noise")
    keys2 = _keys2(SEEDS, 5).cuda()
    assert torch.equal(mod.hash_bits(keys2, 4099).cpu(), rng.hash32(SEEDS, torch.arange(4099).view(1, -1), 5))
    out = _dispatch.hash_noise(x, seed, sigma, mode, 77, backend="kernel")
    ref = _dispatch.hash_noise(x.cpu(), seed, sigma.cpu(), mode, 77, backend="torch")
    torch.testing.assert_close(
        out.cpu(), ref, rtol=1e-4 if dtype == torch.float32 else 1e-10, atol=1e-4 if dtype == torch.float32 else 1e-10
    )
    assert torch.equal(out, _dispatch.hash_noise(x, seed, sigma, mode, 77, backend="kernel"))
    xg = x.clone().requires_grad_(True)
    (gk,) = torch.autograd.grad(_dispatch.hash_noise(xg, seed, sigma, mode, 77, backend="kernel").sum(), xg)
    xc = x.detach().cpu().requires_grad_(True)
    (gt,) = torch.autograd.grad(_dispatch.hash_noise(xc, seed, sigma.cpu(), mode, 77, backend="torch").sum(), xc)
    torch.testing.assert_close(gk.cpu(), gt, rtol=1e-4, atol=1e-4)
