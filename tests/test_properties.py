"""Property-based contract of every corruption and perturbation sequence (issue #14).

Hypothesis draws batch size, image size, dtype, memory layout (contiguous, channels_last, a transposed view, a strided
slice), value range (inside [0, 1], constant images, values outside [0, 1], NaN), severity (int, float, per-sample
tensor, out of range, NaN, bool) and seed (int, per-sample tensor, beyond int64). Each call must either

* raise ``ValueError`` / ``TypeError`` whose message names the bad argument, or
* return a tensor of the right shape, dtype and device, finite, in [0, 1], and bit-identical to the output for the
  same values laid out contiguously.

The default suite runs a small, derandomized number of examples per op (``FAST``); the ``slow`` suite runs many
more (``MANY``). Run with ``--hypothesis-show-statistics`` to see the example counts.
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import robust_train as rt
from robust_train.sequences import list_sequences

CORRUPTIONS = rt.list_corruptions("c19")
SEQUENCES = list_sequences()

FAST = settings(max_examples=6, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck), database=None)
MANY = settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck), database=None)

DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16)
LAYOUTS = ("contiguous", "channels_last", "transposed", "strided")
VALUES = ("uniform", "zeros", "ones", "above_one", "negative", "nan")


def _make_image(data: st.DataObject, max_side: int) -> tuple[torch.Tensor, torch.Tensor, str, str]:
    """(x in the drawn layout, the same values contiguous, layout, value kind)."""
    b = data.draw(st.integers(1, 3), label="batch")
    h = data.draw(st.integers(8, max_side), label="height")
    w = data.draw(st.integers(8, max_side), label="width")
    dtype = data.draw(st.sampled_from(DTYPES), label="dtype")
    layout = data.draw(st.sampled_from(LAYOUTS), label="layout")
    values = data.draw(st.sampled_from(VALUES), label="values")
    g = torch.Generator().manual_seed(data.draw(st.integers(0, 2**16), label="pixels"))
    x = torch.rand(b, 3, h, w, generator=g, dtype=torch.float64)
    if values == "zeros":
        x.zero_()
    elif values == "ones":
        x.fill_(1.0)
    elif values == "above_one":
        x[0, 0, 0, 0] = 1.5
    elif values == "negative":
        x[-1, -1, -1, -1] = -0.25
    elif values == "nan":
        x[0, 1, h // 2, w // 2] = math.nan
    x = x.to(dtype)
    ref = x.contiguous()
    if layout == "channels_last":
        x = x.contiguous(memory_format=torch.channels_last)
    elif layout == "transposed":
        x = x.transpose(-1, -2).contiguous().transpose(-1, -2)
    elif layout == "strided":
        big = torch.zeros(b, 3, h, 2 * w, dtype=dtype)
        big[..., ::2] = x
        x = big[..., ::2]
    assert torch.equal(x, ref) or values == "nan"
    return x, ref, layout, values


def _draw_severity(data: st.DataObject, b: int) -> tuple[object, bool]:
    """A severity and whether it is valid."""
    kind = data.draw(st.sampled_from(["int", "float", "tensor", "range", "bad"]), label="severity kind")
    if kind == "int":
        return data.draw(st.integers(1, 5), label="severity"), True
    if kind == "float":
        return data.draw(st.floats(1.0, 5.0), label="severity"), True
    if kind == "tensor":
        vals = data.draw(st.lists(st.floats(1.0, 5.0), min_size=b, max_size=b), label="severity")
        return torch.tensor(vals, dtype=torch.float64), True
    if kind == "range":
        lo = data.draw(st.floats(1.0, 5.0), label="low")
        return (lo, data.draw(st.floats(lo, 5.0), label="high")), True
    bad = data.draw(
        st.sampled_from(
            [0, 6, -1, 5.0001, 0.999, math.nan, math.inf, True, "3", torch.tensor([math.nan] * b), torch.zeros(b, 2)]
        ),
        label="bad severity",
    )
    return bad, False


def _draw_seed(data: st.DataObject, b: int) -> tuple[object, bool]:
    kind = data.draw(st.sampled_from(["int", "tensor", "bad"]), label="seed kind")
    if kind == "int":
        return data.draw(st.integers(-(2**63), 2**63 - 1), label="seed"), True
    if kind == "tensor":
        vals = data.draw(st.lists(st.integers(-(2**63), 2**63 - 1), min_size=b, max_size=b), label="seed")
        return torch.tensor(vals, dtype=torch.int64), True
    bad = data.draw(
        st.sampled_from([2**63, -(2**63) - 1, 2**64, 1.5, "0", torch.tensor([0.5] * b), torch.zeros(b + 1).long()]),
        label="bad seed",
    )
    return bad, False


def _check_error(err: Exception, names: list[str]) -> None:
    assert isinstance(err, (ValueError, TypeError)), f"{type(err).__name__}: {err}"
    msg = str(err)
    assert any(n in msg for n in names), f"error does not name any of {names}: {msg}"


def _check_output(out: torch.Tensor, x: torch.Tensor, shape: tuple[int, ...]) -> None:
    assert out.shape == shape, (out.shape, shape)
    assert out.dtype == x.dtype and out.device == x.device
    assert bool(torch.isfinite(out).all()), "output has NaN / inf"
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0, (float(out.min()), float(out.max()))


def _corruption_case(name: str, data: st.DataObject) -> None:
    x, ref, layout, values = _make_image(data, 40)
    b = x.shape[0]
    severity, sev_ok = _draw_severity(data, b)
    seed, seed_ok = _draw_seed(data, b)
    bad = ([] if values in ("uniform", "zeros", "ones") else ["x"]) + ([] if sev_ok else ["severity"])
    bad += [] if seed_ok else ["seed"]
    try:
        out = rt.corrupt(x, name, severity, seed=seed)
    except Exception as err:  # noqa: BLE001 - the contract is checked below
        assert bad, f"valid input raised {type(err).__name__}: {err}"
        _check_error(err, bad)
        return
    assert not bad, f"invalid {bad} accepted silently"
    _check_output(out, x, tuple(x.shape))
    assert torch.equal(out, rt.corrupt(ref, name, severity, seed=seed)), f"{layout} output differs from contiguous"


def _sequence_case(name: str, data: st.DataObject) -> None:
    x, ref, layout, values = _make_image(data, 36)
    b = x.shape[0]
    seed, seed_ok = _draw_seed(data, b)
    difficulty = data.draw(st.sampled_from([1, 2, 3, 0, 4, 1.5]), label="difficulty")
    bad = ([] if values in ("uniform", "zeros", "ones") else ["x"]) + ([] if seed_ok else ["seed"])
    bad += [] if difficulty in (1, 2, 3) else ["difficulty"]
    try:
        out = rt.perturb_sequence(x, name, seed=seed, difficulty=difficulty)
    except Exception as err:  # noqa: BLE001 - the contract is checked below
        assert bad, f"valid input raised {type(err).__name__}: {err}"
        _check_error(err, bad)
        return
    assert not bad, f"invalid {bad} accepted silently"
    assert out.dim() == 5 and out.shape[0] == b and out.shape[2] == 3 and out.shape[1] >= 2
    _check_output(out, x, (b, out.shape[1], 3, *x.shape[-2:]))
    assert torch.equal(out, rt.perturb_sequence(ref, name, seed=seed, difficulty=difficulty)), layout


@pytest.mark.parametrize("name", CORRUPTIONS)
@FAST
@given(data=st.data())
def test_corruption_contract(name: str, data: st.DataObject) -> None:
    _corruption_case(name, data)


@pytest.mark.parametrize("name", SEQUENCES)
@FAST
@given(data=st.data())
def test_sequence_contract(name: str, data: st.DataObject) -> None:
    _sequence_case(name, data)


@pytest.mark.slow
@pytest.mark.parametrize("name", CORRUPTIONS)
@MANY
@given(data=st.data())
def test_corruption_contract_many(name: str, data: st.DataObject) -> None:
    _corruption_case(name, data)


@pytest.mark.slow
@pytest.mark.parametrize("name", SEQUENCES)
@MANY
@given(data=st.data())
def test_sequence_contract_many(name: str, data: st.DataObject) -> None:
    _sequence_case(name, data)
