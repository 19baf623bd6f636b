"""Noise2Net: shapes and dtypes, parameters, replay, batch invariance, maths against a per-image reference network,
bad arguments, and a short training run."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from robust_train.augment import Noise2Net
from robust_train.corruptions import Params
from robust_train.functional.noise2net import NOISE2NET_STREAM, noise2net, noise2net_weight_count
from robust_train.functional.rng import field_uniform
from robust_train.losses import SplitCrossEntropy
from tests.augment.test_training import _check, _train


def _x(b: int = 6, size: int = 16, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    base = torch.rand(b, 3, 4, 4, generator=g)
    x = F.interpolate(base, size=(size, size), mode="bilinear", align_corners=False)
    return (x + 0.1 * torch.rand(b, 3, size, size, generator=g)).clamp(0, 1).to(dtype)


def test_shapes_range_dtype(device, dtype):
    x = _x().to(device=device, dtype=dtype)
    aug = Noise2Net(p=1.0, seed=0)
    out = aug(x)
    assert out.shape == x.shape and out.dtype == dtype and out.device == x.device
    assert aug.num_splits == 1
    assert out.min() >= 0 and out.max() <= 1 and torch.isfinite(out.float()).all()
    assert ((out.float() - x.float()).abs().flatten(1).mean(1) > 1e-3).all()  # every image changed


def test_params_shapes_and_distributions():
    aug = Noise2Net(seed=1)
    p = aug.sample_params(4000)
    assert set(p) == {"apply", "seed", "eps", "kernel", "dilation"}
    assert p["kernel"].shape == p["dilation"].shape == (4000, 4, 3)
    assert p["seed"].dtype == p["kernel"].dtype == torch.int64 and p["eps"].dtype == torch.float64
    assert 0.4 < p["apply"].double().mean() < 0.6  # p = 0.5: half the batch on average
    assert p["eps"].min() >= 0.375 and p["eps"].max() <= 0.75
    assert abs(float(p["eps"].mean()) - 0.5625) < 0.01
    assert set(p["kernel"].unique().tolist()) == {1, 3} and set(p["dilation"].unique().tolist()) == {1, 2, 3}
    assert abs(float((p["kernel"] == 3).double().mean()) - 0.5) < 0.02
    assert abs(float((p["dilation"] == 2).double().mean()) - 1 / 3) < 0.02


def test_per_sample_parameters_differ_within_the_batch():
    p = Noise2Net(seed=0).sample_params(8)
    for key in ("seed", "eps", "kernel", "dilation"):
        assert torch.unique(p[key].reshape(8, -1), dim=0).shape[0] >= 7, key
    # the same image gets a different network in every position of the batch
    aug = Noise2Net(p=1.0, seed=0)
    out = aug(_x(1).repeat(4, 1, 1, 1))
    assert all(not torch.equal(out[i], out[j]) for i in range(4) for j in range(i + 1, 4))


def test_batch_invariance():
    x = _x(6)
    aug = Noise2Net(p=1.0, seed=3)
    out = aug(x)
    p = aug.last_params
    singles = torch.cat([aug(x[i : i + 1], params=p.index(slice(i, i + 1))) for i in range(6)])
    assert torch.equal(singles, out), (singles - out).abs().max()
    perm = torch.tensor([4, 0, 5, 2, 1, 3])
    assert torch.equal(aug(x[perm], params=p.index(perm)), out[perm])
    assert torch.equal(aug(x.contiguous(memory_format=torch.channels_last), params=p), out)
    halves = torch.cat([aug(x[:3], params=p.index(slice(0, 3))), aug(x[3:], params=p.index(slice(3, 6)))])
    assert torch.equal(halves, out)


def test_apply_gates_samples():
    x = _x(6)
    aug = Noise2Net(p=1.0, seed=2)
    full = aug(x)
    p = Params(aug.last_params)
    p["apply"] = torch.tensor([True, False, True, False, False, True])
    out = aug(x, params=p)
    assert torch.equal(out[~p["apply"]], x[~p["apply"]])
    assert torch.equal(out[p["apply"]], full[p["apply"]])
    assert torch.equal(Noise2Net(p=0.0, seed=0)(x), x)


def test_module_equals_functional():
    x = _x(5)
    aug = Noise2Net(p=1.0, eps=(0.1, 0.9), seed=4)
    out = aug(x)
    p = aug.last_params
    ref = noise2net(x, p["seed"], p["eps"], p["kernel"], p["dilation"], aug.mean, aug.std)
    assert torch.equal(out, ref)


def test_zero_eps_is_identity():
    x = _x(3)
    out = Noise2Net(eps=0.0, p=1.0, seed=0)(x)
    torch.testing.assert_close(out, x, atol=1e-6, rtol=0)


def _reference_net(x1: torch.Tensor, seed: int, eps: float, kernel, dilation, mean, std) -> torch.Tensor:
    """One image through an explicitly built Noise2Net: ungrouped convolutions with the true K x K kernels, dilation
    and padding (as the reference's ``Bottle2neck``), the BatchNorms in training mode (one image: per-channel
    statistics over the pixels), branch biases included (the instance norm removes them). Weights: the same uniform
    draws as the batched op, in the same layout."""
    c, h, s, kmax = 3, 16, 4, 3
    n1, nb = c * s * h, (s - 1) * h * h * kmax * kmax
    u = field_uniform(torch.tensor([seed]), (len(kernel), 2 * n1 + nb), NOISE2NET_STREAM, dtype=x1.dtype)[0] * 2 - 1
    m = torch.tensor(mean, dtype=x1.dtype).view(1, c, 1, 1)
    sd = torch.tensor(std, dtype=x1.dtype).view(1, c, 1, 1)
    z = (x1 - m) / sd
    bn = lambda t: F.batch_norm(t, None, None, training=True, eps=1e-5)  # noqa: E731
    g = torch.Generator().manual_seed(seed & 0xFFFF)
    for blk in range(len(kernel)):
        ub = u[blk]
        w1 = ub[:n1].reshape(s * h, c, 1, 1) / math.sqrt(c)
        wb = ub[n1 : n1 + nb].reshape(s - 1, h, h, kmax, kmax)
        w3 = ub[n1 + nb :].reshape(c, s * h, 1, 1) / math.sqrt(s * h)
        t = F.relu(bn(F.conv2d(z, w1)))
        chunks = torch.split(t, h, dim=1)
        outs, sp = [], None
        for i in range(s - 1):
            sp = chunks[0] if i == 0 else sp + chunks[i]
            k, d = int(kernel[blk][i]), int(dilation[blk][i])
            lo = kmax // 2 - k // 2
            w = wb[i][:, :, lo : lo + k, lo : lo + k] / math.sqrt(h * k * k)
            bias = (torch.rand(h, generator=g, dtype=x1.dtype) * 2 - 1) / math.sqrt(h * k * k)
            sp = F.relu(bn(F.conv2d(sp, w, bias, padding=d * (k - 1) // 2, dilation=d)))
            outs.append(sp)
        outs.append(chunks[s - 1])
        z = z + eps * bn(F.conv2d(torch.cat(outs, 1), w3))
    return (z * sd + m).clamp(0, 1)


def test_matches_per_image_reference_network():
    x = _x(6, size=20).double()
    aug = Noise2Net(p=1.0, seed=7)
    out = aug(x)
    p = aug.last_params
    assert set(p["kernel"].unique().tolist()) == {1, 3} and set(p["dilation"].unique().tolist()) == {1, 2, 3}
    for i in range(6):
        ref = _reference_net(
            x[i : i + 1], int(p["seed"][i]), float(p["eps"][i]), p["kernel"][i], p["dilation"][i], aug.mean, aug.std
        )
        torch.testing.assert_close(out[i : i + 1], ref, atol=1e-9, rtol=0)


def test_weight_count():
    assert noise2net_weight_count(3, 4, 16, 4, 3) == 4 * (2 * 3 * 64 + 3 * 16 * 16 * 9)


def test_grey_and_odd_sizes():
    aug = Noise2Net(mean=[0.5], std=[0.25], p=1.0, seed=0)
    x = torch.rand(3, 1, 11, 17)
    out = aug(x)
    assert out.shape == x.shape and not torch.equal(out, x)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"eps": -0.1}, "eps"),
        ({"eps": (0.8, 0.4)}, "eps"),
        ({"eps": (0.1, 0.2, 0.3)}, "eps"),
        ({"num_blocks": 0}, "num_blocks"),
        ({"scale": 1}, "scale"),
        ({"hidden_planes": 0}, "hidden_planes"),
        ({"kernel_sizes": [2, 3]}, "kernel_sizes"),
        ({"kernel_sizes": []}, "kernel_sizes"),
        ({"dilations": [0, 1]}, "dilations"),
        ({"mean": [0.5, 0.5], "std": [0.2, 0.2, 0.2]}, "mean, std"),
        ({"std": [0.2, 0.0, 0.2]}, "std"),
        ({"p": 1.5}, "p"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Noise2Net(**kwargs)


def test_bad_input_and_params():
    aug = Noise2Net(p=1.0, seed=0)
    with pytest.raises(ValueError, match="3 channels"):
        aug(torch.rand(2, 1, 8, 8))
    with pytest.raises(ValueError, match="x"):
        aug(torch.rand(2, 3, 8, 8) + 1.0)
    p = aug.sample_params(2)
    p["kernel"] = p["kernel"].clone()
    p["kernel"][0, 0, 0] = 5
    with pytest.raises(ValueError, match=r"kernel: expected values in \[1, 3\], got \[5\]"):
        aug(torch.rand(2, 3, 8, 8), params=p)
    p = aug.sample_params(2)
    p["dilation"] = p["dilation"][:, :2]
    with pytest.raises(ValueError, match="dilation: expected shape"):
        aug(torch.rand(2, 3, 8, 8), params=p)
    with pytest.raises(ValueError, match="params were drawn for a batch of 2"):
        aug(torch.rand(3, 3, 8, 8), params=aug.sample_params(2))
    x = torch.rand(2, 3, 8, 8)
    seed, arch = torch.tensor([1, 2]), torch.ones(2, 4, 3, dtype=torch.int64)
    with pytest.raises(ValueError, match="eps"):
        noise2net(x, seed, -1.0, arch, arch, [0.5] * 3, [0.2] * 3)
    with pytest.raises(ValueError, match="std: expected 3 values"):
        noise2net(x, seed, 0.5, arch, arch, [0.5] * 3, [0.2] * 2)
    with pytest.raises(ValueError, match="seed"):
        noise2net(x, torch.tensor([1]), 0.5, arch, arch, [0.5] * 3, [0.2] * 3)
    with pytest.raises(TypeError, match="kernel"):
        noise2net(x, seed, 0.5, arch.double(), arch, [0.5] * 3, [0.2] * 3)
    with pytest.raises(ValueError, match=r"dilation: expected a host \(CPU\) tensor"):
        noise2net(x, seed, 0.5, arch, arch.to("meta"), [0.5] * 3, [0.2] * 3)


def test_runs_without_autograd_graph():
    x = _x(2).requires_grad_(True)
    out = Noise2Net(p=1.0, seed=0)(x)
    assert not out.requires_grad


def test_trains():
    # the data flow of RobustClassifier on a tiny net: the loss goes down with Noise2Net on half the batch
    _check(_train(Noise2Net(mean=[0.5] * 3, std=[0.25] * 3, seed=0), SplitCrossEntropy()))


@pytest.mark.parametrize(
    ("experiment", "mean"),
    [("imagenet_deepaugment_noise2net_resnet50", (0.485, 0.456, 0.406)), ("fmnist_ablation_noise2net", (0.219,) * 3)],
)
def test_experiments_normalise_as_their_data(experiment, mean):
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    from robust_train.cli import CONFIG_DIR

    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("train.yaml", overrides=[f"experiment={experiment}"])
    aug = instantiate(cfg.augment)
    assert isinstance(aug, Noise2Net) and aug.eps == (0.375, 0.75) and aug.p == 0.5
    assert aug.mean == pytest.approx(mean) and list(aug.std) == pytest.approx(list(cfg.data.std))
    assert cfg.loss._target_ == "torch.nn.CrossEntropyLoss"
