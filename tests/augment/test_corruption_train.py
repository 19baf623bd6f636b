"""Corruption training (per-sample corruption from a held-out training list) and Gaussian-noise augmentation."""

from __future__ import annotations

import warnings

import pytest
import torch

from robust_train.augment import CorruptionAugment, GaussianNoiseAugment, resolve_corruption_names
from robust_train.corruptions import CORRUPTIONS, SUITES, create_corruption

pytestmark = pytest.mark.filterwarnings("ignore:corruptions not registered")


def _two() -> list[str]:
    names = [n for n in ("contrast", "brightness", "fog", "gaussian_noise") if n in CORRUPTIONS][:2]
    if len(names) < 2:
        pytest.skip("needs two registered c15 corruptions")
    return names


def _x(b: int = 16, size: int = 32) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.rand(b, 3, size // 4, size // 4, generator=g).repeat_interleave(4, -1).repeat_interleave(4, -2)


def test_eval_suite_is_held_out_by_default():
    names = resolve_corruption_names(None)
    assert names and not set(names) & set(SUITES["c15"])
    with pytest.warns(UserWarning, match="held out"):
        left = resolve_corruption_names(_two() + [n for n in CORRUPTIONS.list() if n not in SUITES["c15"]][:1])
    assert not set(left) & set(SUITES["c15"])


def test_overlap_warns_when_not_held_out():
    with pytest.warns(UserWarning, match="overlap the evaluation suite"):
        assert resolve_corruption_names(_two(), hold_out=False) == _two()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert resolve_corruption_names(_two(), eval_suite=None) == _two()


def test_nothing_left_and_unknown_names_are_clear_errors():
    with pytest.raises(ValueError, match="no training corruption left"), pytest.warns(UserWarning):
        resolve_corruption_names(_two())
    with pytest.raises(ValueError, match="unknown corruption 'contrst'"):
        resolve_corruption_names(["contrst"], eval_suite=None)


def test_per_sample_corruptions_and_replay():
    names = _two()
    aug = CorruptionAugment(names, severity=(1.0, 5.0), eval_suite=None, seed=0)
    x = _x()
    out = aug(x)
    p = aug.last_params
    assert out.shape == x.shape and out.min() >= 0 and out.max() <= 1
    assert set(p["corruption"].tolist()) == {0, 1}
    assert p["severity"].unique().numel() == 16 and (p["severity"] >= 1).all() and (p["severity"] <= 5).all()
    assert torch.equal(aug(x, params=p), out)
    assert torch.equal(CorruptionAugment(names, eval_suite=None, seed=0)(x), out)
    # each sample equals its corruption module applied alone with the same seed and severity
    for i in (0, 5, 11):
        op = create_corruption(names[int(p["corruption"][i])], severity=(1.0, 5.0))
        single = op.make_params(p["seed"][i : i + 1], p["severity"][i : i + 1], apply=torch.ones(1, dtype=torch.bool))
        torch.testing.assert_close(out[i : i + 1], op(x[i : i + 1], single))


def test_p_and_fixed_severity():
    names = _two()
    x = _x(8)
    assert torch.equal(CorruptionAugment(names, p=0.0, eval_suite=None)(x), x)
    aug = CorruptionAugment(names, severity=2, eval_suite=None, seed=1)
    aug(x)
    assert (aug.last_params["severity"] == 2).all()
    with pytest.raises(ValueError, match="severity"):
        CorruptionAugment(names, severity=(0.5, 3.0), eval_suite=None)


def test_grayscale_input():
    names = _two()
    x = _x(4)[:, :1]
    out = CorruptionAugment(names, eval_suite=None, seed=0)(x)
    assert out.shape == x.shape


def test_gaussian_noise_statistics_and_replay():
    x = torch.full((64, 3, 16, 16), 0.5)
    aug = GaussianNoiseAugment(sigma=(0.05, 0.1), p=0.5, seed=0)
    out = aug(x)
    p = aug.last_params
    assert torch.equal(aug(x, params=p), out)
    assert torch.equal(out[~p["apply"]], x[~p["apply"]])
    applied = torch.nonzero(p["apply"]).view(-1)
    assert 16 < applied.numel() < 48
    std = (out[applied] - 0.5).flatten(1).std(dim=1).double()
    torch.testing.assert_close(std, p["sigma"][applied], rtol=0.1, atol=0)
    with pytest.raises(ValueError, match="sigma: expected low <= high"):
        GaussianNoiseAugment(sigma=(0.2, 0.1))
