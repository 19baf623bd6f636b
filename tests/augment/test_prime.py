"""PRIME: primitives against direct formulas, parameter distributions, replay, batch invariance, splits, training."""

from __future__ import annotations

import math

import pytest
import torch

import robust_train as rt
from robust_train.augment import Prime
from robust_train.augment.prime import PRESETS
from robust_train.corruptions import Params
from robust_train.functional import prime as PF
from robust_train.functional.rng import field_normal
from robust_train.losses import JsdCrossEntropy, SplitCrossEntropy
from tests._helpers import seeded_images
from tests.augment.test_training import _check, _train


@pytest.fixture(autouse=True)
def _eager():
    """Bitwise replay holds within one fusion mode; "auto" may switch a field kernel to compiled mid-test."""
    with rt.fusion("off"):
        yield


def _x(b: int = 6, size: int = 16, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return seeded_images(b, size, dtype=dtype)


# ----------------------------------------------------------------------------------------------- primitives


@pytest.mark.parametrize("work", [torch.float32, torch.float64])
def test_smooth_color_equals_direct_sine_series(work):
    dtype = work
    x = _x(4, 12, dtype)
    seed = torch.tensor([1, 2, 3, 4])
    cut, first, temp = (
        torch.tensor([40, 9, 30, 1]),
        torch.tensor([1, 1, 25, 1]),
        torch.full((4,), 0.01, dtype=torch.float64),
    )
    out = PF.smooth_color(x, seed, cut, temp, first, 12)
    # direct: band k0 .. min(k0 + 12, cut + 1) - 1, coefficients N(0, T)
    a = field_normal(seed, (3, 12), PF._S_COLOR, dtype=torch.float64) * 0.1
    count = torch.minimum(cut + 1 - first, torch.tensor(12))
    a = a * (torch.arange(12).view(1, 1, -1) < count.view(-1, 1, 1))
    k = first.view(-1, 1, 1, 1, 1).double() + torch.arange(12).double()
    ref = x.double() + torch.einsum("bcf,bchwf->bchw", a, torch.sin(math.pi * x.double()[..., None] * k))
    tol = 1e-9 if dtype == torch.float64 else 2e-4  # Clenshaw in float32: error grows with the frequency count
    torch.testing.assert_close(out.double(), ref.clamp(0, 1), atol=tol, rtol=0)
    assert out.dtype == dtype
    zero = PF.smooth_color(x, seed, cut, torch.zeros(4), first, 12)
    torch.testing.assert_close(zero, x, atol=1e-6, rtol=0)


def test_smooth_diffeo_field_and_warp():
    x = _x(3, 20)
    seed, cut = torch.tensor([5, 6, 7]), torch.tensor([2, 5, 9])
    torch.testing.assert_close(PF.smooth_diffeo(x, seed, cut, torch.zeros(3), 9), x, atol=1e-5, rtol=0)
    # a pure translation-free check: with one mode the displacement is c / sqrt(2) sin(pi x) sin(pi y) (times sqrt T n)
    t = torch.full((1,), 1e-3, dtype=torch.float64)
    c = field_normal(seed[:1], (2, 9, 9), PF._S_DIFFEO)[0, :, 0, 0] / math.sqrt(2)  # (i, j) = (1, 1) only at cut 1
    ramp = torch.linspace(0, 1, 20).repeat(20, 1).expand(1, 3, 20, 20).contiguous()  # value = x / (W - 1)
    out = PF.smooth_diffeo(ramp, seed[:1], torch.tensor([1]), t, 9)
    s = torch.sin(math.pi * torch.linspace(0, 1, 20))
    dx = math.sqrt(1e-3) * 20 * c[0] * s.view(-1, 1) * s.view(1, -1)
    src = (torch.arange(20.0).view(1, -1) - dx).clamp(0, 19)
    torch.testing.assert_close(out[0, 0], src / 19, atol=1e-5, rtol=0)
    big = PF.smooth_diffeo(x, seed, cut, PF.diffeo_temperature(cut, torch.ones(3), 20), 9)
    assert (big - x).abs().mean() > 0.01 and big.min() >= 0 and big.max() <= 1


@pytest.mark.parametrize(("h", "w", "k", "cut"), [(6, 7, 12, 9), (9, 5, 4, 3), (5, 5, 30, 30)])
def test_diffeo_folded_modes_have_the_reference_covariance(h, w, k, cut):
    """The folded draw has exactly the covariance of the reference's K x K mode sum on the pixel grid."""
    i = torch.arange(1, k + 1, dtype=torch.float64)
    r = torch.sqrt(i.view(-1, 1) ** 2 + i.view(1, -1) ** 2)
    e2 = torch.where(r < cut + 0.5, 1.0 / r**2, 0.0)
    sx = torch.sin(math.pi * torch.linspace(0, 1, w, dtype=torch.float64).view(-1, 1) * i)  # (W, K)
    sy = torch.sin(math.pi * torch.linspace(0, 1, h, dtype=torch.float64).view(-1, 1) * i)  # (H, K)
    ref = torch.einsum("ij,xi,yj,zi,vj->yxvz", e2, sx, sy, sx, sy).reshape(h * w, h * w)
    var, fx, fy = PF._diffeo_modes(torch.tensor([float(cut)], dtype=torch.float64), h, w, k, torch.float64)
    ours = torch.einsum("ij,xi,yj,zi,vj->yxvz", var[0], fx, fy, fx, fy).reshape(h * w, h * w)
    torch.testing.assert_close(ours, ref, atol=1e-10, rtol=1e-9)
    assert var.shape[1:] == (min(k, w - 2), min(k, h - 2))


def test_diffeo_temperature_range():
    t1 = PF.diffeo_temperature(torch.tensor([10]), torch.tensor([0.0]), 32)
    t2 = PF.diffeo_temperature(torch.tensor([10]), torch.tensor([1.0]), 32)
    log = math.log(10 + 1e-6)
    assert math.isclose(float(t1), 1 / (math.pi * 32**2 * log), rel_tol=1e-12)
    assert math.isclose(float(t2), 4 / (math.pi**3 * (10 + 1e-6) ** 2 * log), rel_tol=1e-9)
    # large cut: T2 < T1, the range collapses to T1
    lo, hi = (PF.diffeo_temperature(torch.tensor([500]), torch.tensor([u]), 32) for u in (0.0, 1.0))
    assert torch.equal(lo, hi)


def test_random_filter_is_a_centred_per_sample_convolution():
    x = _x(3, 10)
    seed, size, sigma = torch.tensor([1, 2, 3]), torch.tensor([3, 1, 5]), torch.tensor([0.3, 0.2, 0.1])
    out = PF.random_filter(x, seed, size, sigma, 5)
    taps = field_normal(seed, (5, 5), PF._S_FILTER)
    for i, s in enumerate(size.tolist()):  # reference: the sample's own s x s kernel, delta at the centre
        lo = (5 - s) // 2
        k = taps[i, lo : lo + s, lo : lo + s] * sigma[i]
        k[s // 2, s // 2] += 1
        ref = torch.nn.functional.conv2d(x[i].unsqueeze(1), k.view(1, 1, s, s), padding=s // 2).squeeze(1)
        torch.testing.assert_close(out[i], ref.clamp(0, 1), atol=1e-6, rtol=0)
    assert torch.equal(PF.random_filter(x, seed, size, torch.zeros(3), 5), x)  # sigma 0: the identity


# ------------------------------------------------------------------------------------------------ the module


def test_shapes_splits_range_dtype():
    x = _x()
    plain = Prime(seed=0)
    out = plain(x)
    assert out.shape == x.shape and out.dtype == x.dtype and plain.num_splits == 1
    assert out.min() >= 0 and out.max() <= 1 and not torch.equal(out, x)
    jsd = Prime(jsd=True, seed=0)
    out = jsd(x)
    assert jsd.num_splits == 3 and out.shape == (18, *x.shape[1:])
    assert torch.equal(out[:6], x) and not torch.equal(out[6:12], out[12:])
    x64 = _x(dtype=torch.float64)
    assert Prime(seed=0)(x64).dtype == torch.float64
    assert Prime(seed=0)(torch.rand(2, 1, 9, 13)).shape == (2, 1, 9, 13)  # grayscale, odd, non-square


def test_params_distributions():
    aug = Prime(width=4, jsd=True, seed=1)
    p = aug.sample_params(400)
    assert p["weights"].shape == (400, 2, 4) and p["skip"].shape == (400, 2) and p["op"].shape == (400, 2, 4, 3)
    torch.testing.assert_close(p["weights"].sum(-1), torch.ones(400, 2, dtype=torch.float64))
    assert set(p["depth"].unique().tolist()) == {1, 2, 3} and set(p["op"].unique().tolist()) == {0, 1, 2}
    assert p["diffeo_cut"].min() >= 2 and p["diffeo_cut"].max() <= 100
    assert 0 <= p["diffeo_u"].min() and p["diffeo_u"].max() <= 1
    assert abs(float(p["diffeo_u"].var()) - 0.125) < 0.01  # Beta(1/2, 1/2): variance 1/8
    assert p["color_cut"].min() >= 1 and p["color_cut"].max() <= 100 and (p["color_first"] == 1).all()
    assert 0 <= p["color_temp"].min() and p["color_temp"].max() <= 0.01
    assert (p["filter_size"] == 3).all() and 0 <= p["filter_sigma"].min() and p["filter_sigma"].max() <= 4
    q = Prime(preset="imagenet", seed=1).sample_params(400)
    assert q["diffeo_cut"].max() > 100 and q["color_cut"].max() > 100
    assert (q["color_first"] >= 1).all() and (q["color_first"] <= q["color_cut"]).all()
    assert (q["color_first"] > 1).any()
    r = Prime(filter_sizes=(3, 5, 7), depth=2, seed=0).sample_params(300)
    assert set(r["filter_size"].unique().tolist()) == {3, 5, 7} and (r["depth"] == 2).all()


def test_per_sample_parameters_differ_within_the_batch():
    p = Prime(seed=0).sample_params(8)
    for key in ("weights", "skip", "seed", "diffeo_u", "color_temp", "filter_sigma"):
        assert torch.unique(p[key].reshape(8, -1), dim=0).shape[0] == 8, key


def test_batch_invariance():
    x = _x(5)
    aug = Prime(jsd=True, seed=3)
    out = aug(x).view(3, 5, *x.shape[1:])
    params = aug.last_params
    for i in (0, 3):
        alone = aug(x[i : i + 1], params=params.index(slice(i, i + 1)))
        assert torch.equal(alone.view(3, *x.shape[1:]), out[:, i]), i


def test_module_equals_functional():
    x = _x(3)
    aug = Prime(seed=2)
    out = aug(x)
    p = {k: v[:, 0] for k, v in aug.last_params.items() if v.dim() > 1}  # the single view
    temp = PF.diffeo_temperature(p["diffeo_cut"], p["diffeo_u"], 16)
    chains = [
        PF.prime_chains(
            x,
            aug.primitives,
            p["op"][:, c],
            p["depth"][:, c],
            p["seed"][:, c],
            p["diffeo_cut"][:, c],
            temp[:, c],
            p["color_cut"][:, c],
            p["color_temp"][:, c],
            p["color_first"][:, c],
            p["filter_size"][:, c],
            p["filter_sigma"][:, c],
            max_cut=100,
            num_freqs=100,
            max_size=3,
        )
        for c in range(3)
    ]
    ref = PF.prime_mix(x, torch.stack(chains, 1), p["weights"], p["skip"])
    assert torch.equal(out, ref)


def _one_step_params(aug: Prime, b: int, op: int, skip: float) -> Params:
    p = aug.sample_params(b)
    w = torch.zeros(b, 1, 3, dtype=torch.float64)
    w[..., 0] = 1.0
    p["weights"], p["skip"] = w, torch.full((b, 1), skip, dtype=torch.float64)
    p["depth"] = torch.ones(b, 1, 3, dtype=torch.int64)
    p["op"] = torch.full_like(p["op"], op)
    return p


@pytest.mark.parametrize("name", PF.PRIMITIVES)
def test_one_step_is_the_drawn_primitive(name):
    x = _x(3)
    aug = Prime(seed=0)
    op = aug.primitives.index(name)
    p = _one_step_params(aug, 3, op, 1.0)
    out = aug(x, params=p)
    s = {k: v[:, 0, 0, 0] for k, v in p.items() if v.dim() == 4}
    if name == "diffeo":
        t = PF.diffeo_temperature(s["diffeo_cut"], s["diffeo_u"], 16)
        ref = PF.smooth_diffeo(x, s["seed"], s["diffeo_cut"], t, 100)
    elif name == "color":
        ref = PF.smooth_color(x, s["seed"], s["color_cut"], s["color_temp"], s["color_first"], 100)
    else:
        ref = PF.random_filter(x, s["seed"], s["filter_size"], s["filter_sigma"], 3)
    torch.testing.assert_close(out, ref, atol=1e-6, rtol=0)
    assert torch.equal(aug(x, params=_one_step_params(aug, 3, op, 0.0)), x)  # m = 0: the clean image


def test_primitive_subset_and_p_zero():
    x = _x(4)
    aug = Prime(primitives=["filter"], seed=0)
    assert aug.primitives == ("filter",) and (aug.sample_params(4)["op"] == 0).all()
    assert aug(x).shape == x.shape
    assert torch.equal(Prime(p=0.0, jsd=True, seed=0)(x), x.repeat(3, 1, 1, 1))


def test_presets_are_the_published_defaults():
    c, i = Prime(), Prime(preset="imagenet")
    assert (c.diffeo_cut, c.color_cut, c.color_temperature, c.color_bandwidth) == ((2, 100), 100, 0.01, None)
    assert (i.diffeo_cut, i.color_cut, i.color_temperature, i.color_bandwidth) == ((2, 500), 500, 0.05, 20)
    assert c.filter_sizes == i.filter_sizes == (3,) and c.filter_sigma == i.filter_sigma == 4.0
    assert Prime(preset="imagenet", color_bandwidth=5).num_freqs == 5 and c.num_freqs == 100
    assert set(PRESETS) == {"cifar", "imagenet"}


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"preset": "svhn"}, "preset"),
        ({"width": 0}, "width"),
        ({"depth": 0}, "depth"),
        ({"alpha": 0.0}, "alpha"),
        ({"primitives": ["diffeo", "blur"]}, "primitives"),
        ({"primitives": []}, "primitives"),
        ({"diffeo_cut": (1, 10)}, "diffeo_cut"),
        ({"diffeo_cut": (5, 5)}, "diffeo_cut"),
        ({"diffeo_alpha": 0.0}, "diffeo_alpha"),
        ({"color_cut": 0}, "color_cut"),
        ({"color_temperature": -0.1}, "color_temperature"),
        ({"color_bandwidth": 0}, "color_bandwidth"),
        ({"filter_sizes": (3, 4)}, "filter_sizes"),
        ({"filter_sigma": -1.0}, "filter_sigma"),
        ({"num_views": 0}, "num_views"),
        ({"p": 1.5}, "p"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Prime(**kwargs)


def test_bad_inputs():
    aug = Prime()
    with pytest.raises(ValueError, match=r"values in \[0, 1\]"):
        aug(torch.rand(2, 3, 8, 8) * 3)
    with pytest.raises(ValueError, match="batch of 3"):
        aug(torch.rand(2, 3, 8, 8), params=aug.sample_params(3))
    with pytest.raises(ValueError, match="at least 3 x 3"):
        aug(torch.rand(2, 3, 2, 8))
    x, s = _x(2), torch.tensor([1, 2])
    with pytest.raises(ValueError, match="max_size"):
        PF.random_filter(x, s, torch.tensor([3, 3]), torch.ones(2), 4)
    with pytest.raises(ValueError, match="seed"):
        PF.random_filter(x, torch.tensor([1.0, 2.0]), torch.tensor([3, 3]), torch.ones(2), 3)
    with pytest.raises(ValueError, match="cut"):
        PF.smooth_diffeo(x, s, torch.tensor([3]), torch.ones(2), 4)
    with pytest.raises(ValueError, match="primitives"):
        PF.prime_chains(x, ["warp"], *([torch.zeros(2, 1, dtype=torch.int64)] * 10), max_cut=2, num_freqs=2, max_size=3)


@pytest.mark.parametrize("jsd", [False, True])
def test_prime_trains(jsd):
    aug = Prime(jsd=jsd, seed=0)
    _check(_train(aug, JsdCrossEntropy() if jsd else SplitCrossEntropy()))


def test_configs_recipes_and_ablation_budget():
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    from robust_train.cli import CONFIG_DIR

    def cfg(name: str):
        with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
            return compose("train.yaml", overrides=[f"experiment={name}"])

    ours, augmix = cfg("fmnist_ablation_prime"), cfg("fmnist_ablation_augmix_jsd")
    for key in ("seed", "trainer", "data", "model", "eval", "loss"):
        assert ours[key] == augmix[key], key  # the same budget as the AugMix + JSD arm
    for name, preset, jsd, lr in [
        ("cifar10_prime_resnet18", "cifar", True, 0.2),
        ("cifar100_prime_resnet18", "cifar", True, 0.2),
        ("imagenet_prime_resnet50", "imagenet", False, 0.02),
    ]:
        c = cfg(name)
        aug = instantiate(c.augment)
        assert isinstance(aug, Prime) and aug.preset == preset and aug.jsd == jsd, name
        assert c.model.optimizer.lr == lr and c.model.scheduler._target_.endswith("OneCycleLR"), name
        assert c.trainer.max_epochs == 100


def test_smooth_color_autograd_path_matches():
    x = _x(2, 8).requires_grad_(True)
    args = (torch.tensor([1, 2]), torch.tensor([30, 7]), torch.full((2,), 0.01), torch.ones(2, dtype=torch.int64), 30)
    out = PF.smooth_color(x, *args)
    out.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    assert torch.equal(out.detach(), PF.smooth_color(x.detach(), *args))  # the buffered (no-grad) path, same bits


@pytest.mark.slow
def test_smooth_color_compiled_matches_eager():
    """With fusion on, the colour sum is one compiled loop (tens of seconds to compile once: slow)."""
    x = _x(4, 16)
    args = (torch.tensor([1, 2, 3, 4]), torch.tensor([100, 40, 7, 1]), torch.full((4,), 0.01))
    first = torch.ones(4, dtype=torch.int64)
    with rt.fusion("on"):
        out = PF.smooth_color(x, *args, first, 100)
    torch.testing.assert_close(out, PF.smooth_color(x, *args, first, 100), atol=5e-4, rtol=0)
