"""The fusion switch (``robust_train.functional._fused``): modes, fallback and the compiled == eager contract."""

from __future__ import annotations

import warnings

import pytest
import torch

import robust_train
from robust_train.functional import _fused
from robust_train.functional._common import truncate_uint8
from robust_train.functional._fused import fused, fusion, fusion_enabled, get_fusion, set_fusion


def test_modes_and_context() -> None:
    old = get_fusion()
    with fusion("on"):
        assert fusion_enabled("cpu") and get_fusion() == "on"
        with fusion(False):
            assert not fusion_enabled("cpu") and not fusion_enabled("cuda")
        assert get_fusion() == "on"
    with fusion("auto"):  # the compiled formulation everywhere; kernels compile once they pay for it (tiered)
        assert fusion_enabled("cpu") and fusion_enabled("cuda")
    assert get_fusion() == old
    assert robust_train.set_fusion is set_fusion


@pytest.mark.parametrize("bad", ["fast", "", 3])
def test_bad_mode(bad: object) -> None:
    with pytest.raises((ValueError, TypeError), match="fusion mode"):
        set_fusion(bad)  # type: ignore[arg-type]


def test_truncate_fused_matches_eager() -> None:
    x = torch.rand(2, 3, 17, 19, dtype=torch.float32) * 1.2 - 0.1
    with fusion("off"):
        eager = truncate_uint8(x)
    with fusion("on"):
        compiled = truncate_uint8(x)
    assert torch.equal(eager, compiled)
    assert float(compiled.mul(255).sub(compiled.mul(255).round()).abs().max()) < 1e-4


@pytest.mark.parametrize("work_dtype", [torch.float32, torch.float64])
def test_field_uniform_fused_is_bit_identical(work_dtype: torch.dtype) -> None:
    """The fused uniform field (fusion on) has the same bits as the blocked eager one, including the float32 clamp
    at the top end; big enough for several CPU blocks in the eager path."""
    from robust_train.functional import rng

    seeds = torch.tensor([0, 1, -5, 2**40 + 3], dtype=torch.int64)
    shape = (3, 200, 190)  # 114000 elements per sample: the eager path splits the batch into blocks
    with fusion("off"):
        eager = rng.field_uniform(seeds, shape, 1234, dtype=work_dtype)
    with fusion("on"):
        compiled = rng.field_uniform(seeds, shape, 1234, dtype=work_dtype)
    assert compiled.dtype == work_dtype and compiled.shape == (4, *shape)
    assert torch.equal(eager, compiled)
    assert float(compiled.min()) > 0.0 and float(compiled.max()) < 1.0


@pytest.mark.parametrize("work_dtype", [torch.float32, torch.float64])
def test_field_normal_fused_matches_eager(work_dtype: torch.dtype) -> None:
    """The fused normal field (one loop, fusion on) has the blocked field's hash bits; only ``log``/``cos``/``sin``
    may round differently (measured: a third of float32 values differ, by <= 1e-6 absolute). Odd sizes (the last
    Box-Muller pair cut in half) and sizes that the eager path splits into several blocks."""
    from robust_train.functional import rng

    seeds = torch.tensor([0, 1, -5, 2**40 + 3], dtype=torch.int64)
    for shape in ((3, 200, 190), (7, 5), (1,)):
        with fusion("off"):
            eager = rng.field_normal(seeds, shape, 99, dtype=work_dtype)
        with fusion("on"):
            compiled = rng.field_normal(seeds, shape, 99, dtype=work_dtype)
            assert torch.equal(compiled[2:3], rng.field_normal(seeds[2:3], shape, 99, dtype=work_dtype))  # replay
        assert compiled.dtype == work_dtype and compiled.shape == (4, *shape)
        tol = 2e-6 if work_dtype == torch.float32 else 1e-14
        torch.testing.assert_close(compiled, eager, rtol=0, atol=tol)


def test_fused_runs_predicate() -> None:
    """``fused_runs``: the one rule the fused wrapper and the callers choosing a formulation share."""
    from robust_train.functional._fused import fused_runs

    x = torch.rand(3)
    w = torch.rand(3, requires_grad=True)
    with fusion("off"):
        assert not fused_runs(x)
    with fusion("on"):
        assert fused_runs(x) and not fused_runs(x, w) and not fused_runs(w)
        with torch.no_grad():
            assert fused_runs(w)
        assert not fused_runs()


def test_grad_path_stays_eager() -> None:
    calls: list[bool] = []

    @fused
    def double(t: torch.Tensor) -> torch.Tensor:
        calls.append(torch.compiler.is_compiling())
        return t * 2

    x = torch.rand(4, requires_grad=True)
    with fusion("on"):
        y = double(x)
    y.sum().backward()
    assert calls == [False] and torch.equal(x.grad, torch.full((4,), 2.0))


def test_compile_failure_falls_back_with_one_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken_compile(fn, **kwargs):  # noqa: ANN001, ANN003, ARG001
        def run(*a, **k):  # noqa: ANN002, ANN003
            raise RuntimeError("no compiler here")

        return run

    monkeypatch.setattr(torch, "compile", broken_compile)

    @fused
    def plus_one(t: torch.Tensor) -> torch.Tensor:
        return t + 1

    x = torch.zeros(3)
    with fusion("on"), warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        assert torch.equal(plus_one(x), torch.ones(3))
        assert torch.equal(plus_one(x), torch.ones(3))
    assert len([w for w in rec if "plus_one" in str(w.message)]) == 1
    assert any("plus_one" in k[0] for k in _fused._BROKEN)


def test_function_errors_are_not_swallowed() -> None:
    @fused
    def needs_square(t: torch.Tensor) -> torch.Tensor:
        if t.shape[0] != t.shape[1]:
            raise ValueError(f"expected a square matrix, got {tuple(t.shape)}")
        return t @ t

    with fusion("on"), pytest.raises(ValueError, match="square"):
        needs_square(torch.zeros(2, 3))


@pytest.mark.parametrize("work_dtype", [torch.float32, torch.float64])
def test_gaussian_tap_loop_fused_matches_eager(work_dtype: torch.dtype) -> None:
    """The fused separable tap loop (per-sample sigmas, so several kernel groups) agrees with the eager in-place
    loop up to float rounding (the eager ``add_(alpha=)`` may fuse multiply and add)."""
    from robust_train.functional.filters import gaussian_filter2d

    g = torch.Generator().manual_seed(3)
    x = torch.rand(4, 3, 40, 37, generator=g, dtype=work_dtype)
    sigma = torch.tensor([0.7, 2.0, 2.0, 5.5], dtype=torch.float64)
    with fusion("off"):
        eager = gaussian_filter2d(x, sigma)
    with fusion("on"):
        compiled = gaussian_filter2d(x, sigma)
    eps = torch.finfo(work_dtype).eps
    torch.testing.assert_close(compiled, eager, rtol=0.0, atol=8 * eps)
    assert not torch.equal(compiled, x)


def test_single_omp_thread_restores_and_reports_host_threads() -> None:
    from robust_train.functional._common import host_threads, single_omp_thread

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        assert host_threads() == 2
        with single_omp_thread():
            assert torch.get_num_threads() == 1 and host_threads() == 2
            with single_omp_thread():  # nested: still the caller's budget
                assert torch.get_num_threads() == 1 and host_threads() == 2
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 2 and host_threads() == 2
        with pytest.raises(RuntimeError, match="boom"), single_omp_thread():
            raise RuntimeError("boom")
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_jpeg_forward_keeps_thread_count_and_output() -> None:
    """The JPEG module runs its torch ops on one OpenMP thread and its codec on the caller's thread budget: same
    output as the functional codec, thread count restored."""
    from robust_train.corruptions.digital import JpegCompression
    from robust_train.functional import digital as D

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        x = torch.rand(4, 3, 24, 24, generator=torch.Generator().manual_seed(0))
        op = JpegCompression(severity=3)
        y = op(x)
        assert torch.get_num_threads() == 2
        assert op.resolve_preset(x) == "cifar"  # severity 3: quality 58
        assert torch.equal(y, D.jpeg_compression(x, torch.full((4,), 58)))
    finally:
        torch.set_num_threads(before)


def test_auto_mode_compiles_a_signature_once_it_pays_for_itself(monkeypatch: pytest.MonkeyPatch) -> None:
    from robust_train.functional import _fused

    compiled: list[str] = []

    def fake_compile(fn, **kwargs):  # noqa: ANN001, ANN202 - records the compile instead of running Inductor
        compiled.append(fn.__name__)
        return fn

    monkeypatch.setattr(torch, "compile", fake_compile)
    monkeypatch.setattr(_fused, "TIER_CPU_SECONDS", 0.05)
    monkeypatch.setattr(_fused, "TIER_CPU_CALLS", 100)  # the time budget decides here

    @fused
    def slow_kernel(x: torch.Tensor) -> torch.Tensor:
        import time

        time.sleep(0.02)  # an eager run costs 20 ms
        return x + 1

    with fusion("auto"):
        x = torch.zeros(3)
        for _ in range(2):
            slow_kernel(x)
        assert compiled == []  # 40 ms of eager time: below the budget, never waited for a compiler
        slow_kernel(x)  # 60 ms: pays for a compile from the next call
        assert compiled == []
        slow_kernel(x)
        assert compiled == ["slow_kernel"]
        slow_kernel(torch.zeros(4))  # a new signature starts eager again
        with fusion("off"):
            slow_kernel(x)
    assert torch.equal(slow_kernel(x), x + 1)


def test_auto_mode_on_the_cpu_compiles_from_the_tier_call_count(monkeypatch: pytest.MonkeyPatch) -> None:
    """A cheap kernel never reaches the time budget: it compiles from its ``TIER_CPU_CALLS``-th call."""
    from robust_train.functional import _fused

    monkeypatch.setattr(_fused, "TIER_CPU_SECONDS", 3600.0)
    monkeypatch.setattr(_fused, "TIER_CPU_CALLS", 4)
    tier = _fused._Tier()
    key = ("cheap", 1)
    for _ in range(3):
        assert not tier.hot(key, "cpu")
        tier.record(key, 1e-4)
    assert tier.hot(key, "cpu")  # the 4th call compiles
    assert not tier.hot(("cheap", 2), "cpu")  # per signature


def test_auto_mode_on_devices_compiles_from_the_second_call() -> None:
    from robust_train.functional import _fused

    tier = _fused._Tier()
    key = ("k", 1)
    assert not tier.hot(key, "cuda")
    tier.record(key, 0.0)
    assert tier.hot(key, "cuda") and not tier.hot(key, "cpu")
