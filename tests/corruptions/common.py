"""``CommonCorruptionTests``: the contract every corruption module must meet (kornia ``CommonTests`` style).

A test class sets ``corruption_cls`` and ``default_args`` and inherits: smoke (shape/dtype/device/range), ``p=0``
identity, ``p=1`` changes the input, ``same_on_batch``, replay, batch invariance of evaluation params, severity
monotonicity (``monotone = False`` opts out), module == functional (``call_functional``), non-contiguous input,
presets, bad input, gradients (``gradcheck`` for ``gradient == "exact"``, finite non-zero gradients otherwise) and a
``torch.compile`` smoke test (slow).
"""

from __future__ import annotations

from typing import Any, ClassVar

import pytest
import torch
from torch import Tensor

from robust_train.corruptions import Corruption, Params

from .._helpers import gradcheck, photo_at, to_tensor


def natural_batch(size: int = 32, device: str = "cpu", dtype: torch.dtype = torch.float32) -> Tensor:
    """Two natural photos (astronaut, chelsea) at ``size`` px: (2, 3, size, size) in [0, 1]."""
    try:
        imgs = [to_tensor(photo_at(n, size), device, dtype) for n in ("astronaut", "chelsea")]
        return torch.cat(imgs)
    except Exception:  # scikit-image missing: smooth random images
        g = torch.Generator().manual_seed(0)
        x = torch.rand(2, 3, size // 4, size // 4, generator=g)
        return torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear").to(device, dtype)


class CommonCorruptionTests:
    corruption_cls: ClassVar[type[Corruption]]
    default_args: ClassVar[dict[str, Any]] = {}
    monotone: ClassVar[bool] = True
    size: ClassVar[int] = 32
    # atol for outputs compared across batch compositions (grouped convs may reorder float sums)
    batch_atol: ClassVar[float] = 1e-5

    def make(self, **kwargs: Any) -> Corruption:
        args = {**self.default_args, **kwargs}
        return self.corruption_cls(**args)

    def call_functional(self, op: Corruption, x: Tensor, params: Params) -> Tensor:
        """Call the functional twin with the arguments ``op.apply`` would use; override per corruption."""
        pytest.skip("no functional twin comparison defined")

    # ---------------------------------------------------------------- smoke
    def test_smoke(self, device: str, dtype: torch.dtype) -> None:
        x = natural_batch(self.size, device, dtype)
        op = self.make()
        out = op(x)
        assert out.shape == x.shape and out.dtype == x.dtype and out.device == x.device
        assert torch.isfinite(out).all()
        assert out.min() >= 0 and out.max() <= 1

    def test_registered(self) -> None:
        from robust_train.corruptions import CORRUPTIONS

        assert CORRUPTIONS.get(self.corruption_cls.name) is self.corruption_cls
        assert self.corruption_cls.table is not None
        assert "severity" in repr(self.make())

    def test_p0_identity_p1_changes(self, device: str) -> None:
        x = natural_batch(self.size, device)
        assert torch.equal(self.make(p=0.0)(x), x)
        out = self.make(p=1.0, severity=5)(x)
        assert (out - x).abs().mean() > 1e-3

    def test_p_gates_per_sample(self) -> None:
        x = natural_batch(self.size).repeat(8, 1, 1, 1)
        op = self.make(p=0.5, seed=3, severity=5)
        out = op(x)
        applied = op.last_params["apply"]
        assert 0 < int(applied.sum()) < x.shape[0]
        assert torch.equal(out[~applied], x[~applied])

    def test_same_on_batch(self) -> None:
        x = natural_batch(self.size)[:1].repeat(3, 1, 1, 1)
        op = self.make(same_on_batch=True, seed=1)
        out = op(x)
        p = op.last_params
        for k, v in p.items():
            assert (v == v[:1]).all(), k
        torch.testing.assert_close(out[1:], out[:1].expand(2, -1, -1, -1), atol=self.batch_atol, rtol=0)

    def test_replay(self, device: str) -> None:
        x = natural_batch(self.size, device)
        op = self.make(seed=5)
        out1 = op(x)
        out2 = op(x, params=op.last_params)
        assert torch.equal(out1, out2)
        out3 = self.make(seed=5)(x)
        assert torch.equal(out1, out3)

    def test_batch_invariance(self) -> None:
        op = self.make()
        full = op.params_for_indices(torch.arange(8), seed=11)
        halves = Params.cat(
            [op.params_for_indices(torch.arange(4), seed=11), op.params_for_indices(torch.arange(4, 8), seed=11)]
        )
        assert full.equal(halves)
        shuffled = op.params_for_indices(torch.tensor([5, 2]), seed=11)
        assert shuffled.equal(full.index(torch.tensor([5, 2])))
        assert not full.equal(op.params_for_indices(torch.arange(8), seed=12))
        x = natural_batch(self.size).repeat(4, 1, 1, 1)
        out_full = op(x, full)
        out_parts = torch.cat([op(x[:4], full.index(slice(0, 4))), op(x[4:], full.index(slice(4, 8)))])
        torch.testing.assert_close(out_full, out_parts, atol=self.batch_atol, rtol=0)

    def test_severity_monotone(self) -> None:
        if not self.monotone:
            pytest.skip("severity is not monotone for this corruption (documented quirk)")
        x = natural_batch(self.size)
        deltas = []
        for s in range(1, 6):
            op = self.make(severity=s)
            out = op(x, op.params_for_indices(torch.arange(x.shape[0]), seed=0))
            deltas.append(float((out - x).abs().mean()))
        assert all(b >= a - 1e-4 for a, b in zip(deltas, deltas[1:], strict=False)), deltas
        assert deltas[-1] > deltas[0]

    def test_module_matches_functional(self) -> None:
        x = natural_batch(self.size)
        op = self.make(quantize=False)
        params = op.params_for_indices(torch.arange(x.shape[0]), seed=0)
        out = op(x, params)
        ref = self.call_functional(op, x, params)
        torch.testing.assert_close(out, ref, atol=1e-6, rtol=0)

    def test_noncontiguous(self) -> None:
        x = natural_batch(self.size)
        xt = x.transpose(-1, -2).contiguous().transpose(-1, -2)
        assert not xt.is_contiguous()
        op = self.make()
        params = op.params_for_indices(torch.arange(2), seed=0)
        torch.testing.assert_close(op(xt, params), op(x, params), atol=self.batch_atol, rtol=0)

    @pytest.mark.parametrize("preset,size", [("cifar", 32), ("tinyimagenet", 64)])
    def test_presets(self, preset: str, size: int) -> None:
        x = natural_batch(size)
        out = self.make(preset=preset)(x)
        assert out.shape == x.shape and 0 <= out.min() and out.max() <= 1

    def test_continuous_severity(self) -> None:
        x = natural_batch(self.size)
        op = self.make(severity=(1.0, 5.0), seed=0)
        out = op(x)
        sev = op.last_params["severity"]
        assert ((sev >= 1) & (sev <= 5)).all() and sev[0] != sev[1]
        assert out.shape == x.shape and 0 <= out.min() and out.max() <= 1

    def test_per_sample_severity_tensor(self) -> None:
        x = natural_batch(self.size)
        op = self.make(severity=torch.tensor([1.0, 5.0]))
        p = op.params_for_indices(torch.arange(2), seed=0)
        assert p["severity"].tolist() == [1.0, 5.0]
        out = op(x, p)
        one = self.make(severity=1)
        assert torch.equal(out[:1], one(x[:1], one.params_for_indices(torch.arange(1), seed=0)))

    def test_bad_input(self) -> None:
        op = self.make()
        with pytest.raises(TypeError, match="uint8"):
            op((natural_batch(self.size) * 255).to(torch.int32))
        with pytest.raises(ValueError, match="shape"):
            op(torch.rand(self.size, self.size))
        with pytest.raises(ValueError, match="channels"):
            op(torch.rand(2, 4, self.size, self.size))
        with pytest.raises(ValueError, match=r"\[0, 1\]"):
            op(torch.rand(2, 3, self.size, self.size) * 2)
        x = torch.rand(2, 3, self.size, self.size)
        x[0, 0, 0, 0] = float("nan")
        with pytest.raises(ValueError, match="NaN"):
            op(x)
        with pytest.raises(ValueError, match="severity"):
            self.make(severity=6)
        with pytest.raises(ValueError, match="severity"):
            self.make(severity=0)
        with pytest.raises(ValueError, match="preset"):
            self.make(preset="imagenet")(torch.rand(1, 3, 16, 16))

    @pytest.mark.grad
    def test_gradients(self) -> None:
        cls = self.corruption_cls
        if not cls.differentiable:
            pytest.skip("not differentiable")
        op = self.make(quantize=False, preset="auto")
        g = torch.Generator().manual_seed(0)
        x = torch.rand(1, 3, 5, 5, generator=g, dtype=torch.float64) * 0.8 + 0.1
        params = op.params_for_indices(torch.arange(1), seed=0)
        if cls.gradient == "exact":
            assert gradcheck(lambda t: op(t, params), x)
        else:
            xg = x.clone().requires_grad_(True)
            op(xg, params).sum().backward()
            assert xg.grad is not None and torch.isfinite(xg.grad).all() and xg.grad.abs().sum() > 0

    @pytest.mark.slow
    def test_compile(self) -> None:
        x = natural_batch(self.size)
        op = self.make()
        params = op.params_for_indices(torch.arange(2), seed=0)
        compiled = torch.compile(op.apply)
        torch.testing.assert_close(compiled(x, params), op.apply(x, params), atol=1e-5, rtol=0)

    @pytest.mark.parametrize("work_dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
    def test_fusion_matches_eager(self, work_dtype: torch.dtype) -> None:
        """Fused kernels (``torch.compile``, fusion "on") agree with the eager reference on 8-bit outputs.

        Integer hash maths is exact in both; float rounding may move a value that sits within an ulp of an 8-bit
        boundary by one level, so: at most one level apart everywhere, and equal on >= 99.9 % of the values.
        """
        from robust_train import fusion

        x = natural_batch(self.size, dtype=work_dtype).repeat(2, 1, 1, 1)
        op = self.make(severity=(1.0, 5.0), seed=0)
        params = op.params_for_indices(torch.arange(x.shape[0]), seed=0)
        with fusion("off"):
            eager = op(x, params)
        with fusion("on"):
            fused = op(x, params)
        levels = (fused - eager).abs().mul(255.0)
        assert float(levels.max()) <= 1.0 + 1e-3, f"fused and eager outputs differ by {float(levels.max()):.3g} levels"
        assert float((levels > 0.5).float().mean()) <= 1e-3
