"""AugMix: shapes and splits, parameter distributions, replay, module == functional, mixing maths."""

from __future__ import annotations

import pytest
import torch

from robust_train.augment import AugMix
from robust_train.augment.augmix import sample_beta, sample_dirichlet
from robust_train.corruptions import Params
from robust_train.functional import augment_ops as AF
from tests._helpers import seeded_images as _x


def test_shapes_and_splits(device, dtype):
    x = _x(device=device, dtype=dtype)
    plain = AugMix(seed=0)
    out = plain(x)
    assert out.shape == x.shape and out.dtype == dtype and out.device == x.device
    assert plain.num_splits == 1
    jsd = AugMix(jsd=True, seed=0)
    out = jsd(x)
    assert jsd.num_splits == 3 and out.shape == (24, *x.shape[1:])
    assert torch.equal(out[:8], x)  # clean split first
    assert not torch.equal(out[8:16], out[16:])  # two independent views
    assert out.min() >= 0 and out.max() <= 1


def test_params_shapes_and_distributions():
    aug = AugMix(width=4, jsd=True, seed=1)
    p = aug.sample_params(64)
    assert p.batch_size == 64
    assert p["weights"].shape == (64, 2, 4) and p["skip"].shape == (64, 2)
    assert p["op"].shape == p["level"].shape == p["sign"].shape == (64, 2, 4, 3)
    torch.testing.assert_close(p["weights"].sum(-1), torch.ones(64, 2, dtype=torch.float64))  # mixing weights sum to 1
    assert (p["weights"] >= 0).all() and (p["skip"] >= 0).all() and (p["skip"] <= 1).all()
    assert set(p["depth"].unique().tolist()) == {1, 2, 3}
    assert (p["level"] >= 0.1).all() and (p["level"] <= 3).all()
    assert set(p["sign"].unique().tolist()) == {-1.0, 1.0}
    assert set(p["op"].unique().tolist()) == set(range(9))


def test_per_sample_parameters_differ_within_the_batch():
    p = AugMix(seed=0).sample_params(8)
    for key in ("weights", "skip", "level"):
        rows = p[key].reshape(8, -1)
        assert torch.unique(rows, dim=0).shape[0] == 8, key


def test_dirichlet_and_beta_moments():
    g = torch.Generator().manual_seed(0)
    w = sample_dirichlet((20000, 3), 1.0, g)
    torch.testing.assert_close(w.mean(0), torch.full((3,), 1 / 3, dtype=torch.float64), atol=0.01, rtol=0)
    # Dirichlet(1,1,1) marginal is Beta(1, 2): variance 2 / 36
    torch.testing.assert_close(w.var(0), torch.full((3,), 2 / 36, dtype=torch.float64), atol=0.005, rtol=0)
    m = sample_beta((20000,), 0.5, g)
    assert abs(float(m.mean()) - 0.5) < 0.01
    assert abs(float(m.var()) - 0.125) < 0.01  # Beta(a, a) variance 1 / (4 (2a + 1))


def test_module_equals_functional():
    x = _x(4)
    aug = AugMix(seed=2, all_ops=True)
    out = aug(x)
    p = aug.last_params
    ref = AF.augmix(
        x,
        aug.ops,
        p["op"][:, 0],
        p["level"][:, 0],
        p["sign"][:, 0],
        p["depth"][:, 0],
        p["weights"][:, 0],
        p["skip"][:, 0],
    )
    assert torch.equal(out, ref)


def _manual_params(b: int, op: int, level: float, skip: float) -> Params:
    w = torch.zeros(b, 1, 3, dtype=torch.float64)
    w[..., 0] = 1.0
    return Params(
        apply=torch.ones(b, dtype=torch.bool),
        severity=torch.full((b,), 3.0, dtype=torch.float64),
        weights=w,
        skip=torch.full((b, 1), skip, dtype=torch.float64),
        depth=torch.ones(b, 1, 3, dtype=torch.int64),
        op=torch.full((b, 1, 3, 3), op, dtype=torch.int64),
        level=torch.full((b, 1, 3, 3), level, dtype=torch.float64),
        sign=torch.ones(b, 1, 3, 3, dtype=torch.float64),
    )


def test_mixing_maths():
    x = _x(3)
    aug = AugMix(seed=0)
    assert torch.equal(aug(x, params=_manual_params(3, 4, 3.0, 0.0)), x)  # m = 0: the clean image
    # m = 1, one-hot weights, depth 1: exactly the single op (solarize at level 3 -> threshold 180)
    out = aug(x, params=_manual_params(3, aug.ops.index("solarize"), 3.0, 1.0))
    torch.testing.assert_close(out, AF.solarize(x, torch.full((3,), 180.0)))
    half = aug(x, params=_manual_params(3, aug.ops.index("solarize"), 3.0, 0.5))
    torch.testing.assert_close(half, 0.5 * x + 0.5 * out)


def test_depth_masks_later_steps():
    x = _x(2)
    aug = AugMix(seed=0)
    p = _manual_params(2, aug.ops.index("rotate"), 10.0, 1.0)  # three 30-degree rotations if depth were 3
    one = aug(x, params=p)
    torch.testing.assert_close(one, AF.rotate(x, torch.full((2,), 30.0)))


def test_p_zero_returns_clean_views():
    x = _x(4)
    out = AugMix(p=0.0, jsd=True, seed=0)(x)
    assert torch.equal(out, x.repeat(3, 1, 1, 1))


def test_op_lists():
    assert AugMix().ops == AF.AUGMIX_OPS
    assert "contrast" not in AugMix().ops and "brightness" not in AugMix().ops
    assert AugMix(all_ops=True).ops == AF.AUGMIX_OPS_ALL
    assert AugMix(ops=["rotate", "equalize"]).ops == ("rotate", "equalize")


def test_fixed_depth():
    p = AugMix(depth=2, seed=0).sample_params(5)
    assert (p["depth"] == 2).all() and p["op"].shape[-1] == 2


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"severity": 11}, "severity"),
        ({"width": 0}, "width"),
        ({"depth": 0}, "depth"),
        ({"alpha": 0.0}, "alpha"),
        ({"ops": ["rotat"]}, "unknown augment_op 'rotat'"),
        ({"ops": []}, "at least one"),
        ({"p": 1.5}, "p"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        AugMix(**kwargs)


def test_bad_input():
    aug = AugMix()
    with pytest.raises(ValueError, match=r"values in \[0, 1\]"):
        aug(torch.rand(2, 3, 8, 8) * 3)
    with pytest.raises(ValueError, match="batch of 3"):
        aug(torch.rand(2, 3, 8, 8), params=aug.sample_params(3))


def test_grayscale_and_odd_sizes():
    x = torch.rand(3, 1, 15, 21)
    out = AugMix(all_ops=True, seed=0)(x)
    assert out.shape == x.shape


def test_non_contiguous_input():
    x = _x(4, 16).transpose(-1, -2)
    aug = AugMix(seed=0)
    out = aug(x)
    assert torch.equal(out, aug(x.contiguous(), params=aug.last_params))


def test_ranks_draw_different_parameters(monkeypatch):
    """Under DDP every rank has the same seed; each rank must still augment differently (and reproducibly)."""
    import torch.distributed as dist

    def draws(rank: int, seed: int | None) -> torch.Tensor:
        monkeypatch.setattr(dist, "is_initialized", lambda: True)
        monkeypatch.setattr(dist, "get_world_size", lambda: 2)
        monkeypatch.setattr(dist, "get_rank", lambda: rank)
        torch.manual_seed(7)
        return AugMix(seed=seed).sample_params(4)["level"]

    for seed in (None, 3):
        r0, r1 = draws(0, seed), draws(1, seed)
        assert not torch.equal(r0, r1)
        assert torch.equal(draws(0, seed), r0)
    monkeypatch.undo()
    torch.manual_seed(7)
    single = AugMix().sample_params(4)["level"]
    torch.manual_seed(7)
    assert torch.equal(AugMix().sample_params(4)["level"], single)  # one process: the global generator as before
