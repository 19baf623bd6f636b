"""PixMix: shapes and splits, parameter distributions, replay, batch invariance, mixing maths, the fractal and
image-folder mixing sets, bad arguments, and a short CPU training."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from robust_train.augment import FractalMixingSet, ImageFolderMixingSet, PixMix
from robust_train.augment.augmix import sample_beta
from robust_train.corruptions import Params
from robust_train.functional import augment_ops as AF
from robust_train.functional import fractals as FF
from robust_train.functional import pixmix as PF
from tests._helpers import seeded_images as _x


# ------------------------------------------------------------------------------------------------ module contract
def test_shapes_and_splits(device, dtype):
    x = _x(device=device, dtype=dtype)
    plain = PixMix(seed=0)
    out = plain(x)
    assert out.shape == x.shape and out.dtype == dtype and out.device == x.device
    assert plain.num_splits == 1
    assert out.min() >= 0 and out.max() <= 1
    jsd = PixMix(jsd=True, seed=0)
    out = jsd(x)
    assert jsd.num_splits == 3 and out.shape == (24, *x.shape[1:])
    assert torch.equal(out[:8], x)  # clean split first
    assert not torch.equal(out[8:16], out[16:])  # two independent views
    assert out.min() >= 0 and out.max() <= 1


def test_params_shapes_and_distributions():
    aug = PixMix(jsd=True, seed=1)
    n = 4000
    p = aug.sample_params(n)
    assert p.batch_size == n
    assert p["rounds"].shape == p["start_aug"].shape == p["mix_index"].shape == (n, 2)
    assert p["op"].shape == p["level"].shape == p["sign"].shape == (n, 2, 5)
    assert p["use_aug"].shape == p["blend"].shape == p["a"].shape == p["b"].shape == (n, 2, 4)
    assert p["mix_crop"].shape == (n, 2, 2)
    assert set(p["rounds"].unique().tolist()) == {0, 1, 2, 3, 4}  # k ~ U{0..4}
    assert abs(p["rounds"].double().mean().item() - 2.0) < 0.1
    for key in ("start_aug", "use_aug"):
        assert abs(p[key].double().mean().item() - 0.5) < 0.03, key
    assert set(p["blend"].unique().tolist()) == {PF.MIX_ADD, PF.MIX_MULTIPLY}
    assert set(p["op"].unique().tolist()) == set(range(13))  # all_ops: the 13 AugMix ops
    assert (p["level"] >= 0.1).all() and (p["level"] <= 3).all()
    assert set(p["sign"].unique().tolist()) == {-1.0, 1.0}
    a, b = p["a"], p["b"]
    interp = b > 0  # get_ab: (Beta(beta, 1), Beta(1, beta)) or (1 + Beta(1, beta), -Beta(1, beta))
    assert ((a > 0) & (a < 1))[interp].all() and ((a > 1) & (a < 2))[~interp].all()
    assert ((b > -1) & (b < 0))[~interp].all()
    assert abs(interp.double().mean().item() - 0.5) < 0.03
    beta = 3.0
    assert abs(a[interp].mean().item() - beta / (beta + 1)) < 0.02  # E Beta(3, 1) = 3/4
    assert abs(b[interp].mean().item() - 1 / (beta + 1)) < 0.02  # E Beta(1, 3) = 1/4
    assert abs(a[~interp].mean().item() - (1 + 1 / (beta + 1))) < 0.02
    assert (p["mix_index"] >= 0).all() and (p["mix_index"] < len(aug.mixing_set)).all()


def test_beta_sampler_moments():
    x = sample_beta((40000,), 2.0, torch.Generator().manual_seed(0), beta=5.0)
    assert abs(x.mean().item() - 2 / 7) < 0.005
    assert abs(x.var().item() - (2 * 5) / (49 * 8)) < 0.002


def test_per_sample_parameters_differ_within_the_batch():
    p = PixMix(seed=0).sample_params(8)
    for key in ("a", "b", "level", "mix_index"):
        rows = p[key].reshape(8, -1)
        assert torch.unique(rows, dim=0).shape[0] == 8, key


def test_batch_invariance():
    """Sample i of a batch equals sample i run alone with its own params (ops, mixing picture, rounds)."""
    x = _x(6, 24)
    aug = PixMix(seed=2)
    out = aug(x)
    params = aug.last_params
    for i in range(6):
        alone = aug(x[i : i + 1], params=params.index(slice(i, i + 1)))
        assert torch.equal(alone, out[i : i + 1]), i
    two = aug(x[2:4], params=params.index(slice(2, 4)))
    assert torch.equal(two, out[2:4])


def test_p_zero_returns_clean_views():
    x = _x(4)
    out = PixMix(p=0.0, jsd=True, seed=0)(x)
    assert torch.equal(out, x.repeat(3, 1, 1, 1))


def test_grayscale_and_odd_sizes():
    x = torch.rand(3, 1, 15, 21)
    out = PixMix(seed=0)(x)
    assert out.shape == x.shape and out.min() >= 0 and out.max() <= 1


def test_non_contiguous_input():
    x = _x(4, 16).transpose(-1, -2)
    aug = PixMix(seed=0)
    out = aug(x)
    assert torch.equal(out, aug(x.contiguous(), params=aug.last_params))


# ------------------------------------------------------------------------------------------------ mixing maths
def _manual(n: int, k: int = 4, **over: object) -> Params:
    """Params with every choice fixed: no augmentation, zero rounds, add with a = b = 0.5, picture 0."""
    p = Params(
        apply=torch.ones(n, dtype=torch.bool),
        severity=torch.full((n,), 3.0, dtype=torch.float64),
        rounds=torch.zeros(n, 1, dtype=torch.int64),
        start_aug=torch.zeros(n, 1, dtype=torch.bool),
        use_aug=torch.zeros(n, 1, k, dtype=torch.bool),
        op=torch.zeros(n, 1, 1 + k, dtype=torch.int64),
        level=torch.full((n, 1, 1 + k), 3.0, dtype=torch.float64),
        sign=torch.ones(n, 1, 1 + k, dtype=torch.float64),
        blend=torch.zeros(n, 1, k, dtype=torch.int64),
        a=torch.full((n, 1, k), 0.5, dtype=torch.float64),
        b=torch.full((n, 1, k), 0.5, dtype=torch.float64),
        mix_index=torch.zeros(n, 1, dtype=torch.int64),
        mix_crop=torch.zeros(n, 1, 2, dtype=torch.float64),
    )
    for key, v in over.items():
        p[key] = torch.as_tensor(v, dtype=p[key].dtype).expand_as(p[key]).clone()
    return p


def test_mixing_maths():
    x = _x(3)
    aug = PixMix(ops=["solarize", "rotate"], seed=0)
    pic = aug.mixing_set.pictures({"mix_index": torch.zeros(3, dtype=torch.int64)}, 16, 16, 3, x.device, x.dtype)
    assert torch.equal(aug(x, params=_manual(3)), x)  # no start op, zero rounds: the clean image
    # start from the augmented copy (solarize at level 3 -> threshold 256 - int(76.8) = 180), no rounds
    sol = AF.solarize(x, torch.full((3,), 180.0))
    torch.testing.assert_close(aug(x, params=_manual(3, start_aug=True)), sol)
    # one additive round with the mixing picture, a = 0, b = 1: the picture itself
    one = aug(x, params=_manual(3, rounds=1, a=0.0, b=1.0))
    torch.testing.assert_close(one, pic)
    # a = b = 0.5: the average
    avg = aug(x, params=_manual(3, rounds=1))
    torch.testing.assert_close(avg, 0.5 * x + 0.5 * pic)
    # multiplicative round: (2 x)^a (2 pic)^b / 2, clipped
    mul = aug(x, params=_manual(3, rounds=1, blend=PF.MIX_MULTIPLY, a=1.2, b=-0.3))
    ref = ((2 * x) ** 1.2 * (2 * pic).clamp_min(1e-37) ** -0.3 / 2).clamp(0, 1)
    torch.testing.assert_close(mul, ref)
    # two rounds with an augmented partner (solarize of the clean image, not of the mixed one)
    two = aug(x, params=_manual(3, rounds=2, use_aug=True))
    torch.testing.assert_close(two, 0.5 * (0.5 * x + 0.5 * sol) + 0.5 * sol)
    # later rounds are ignored: rounds=2 with different weights in rounds 3 and 4 gives the same image
    p = _manual(3, rounds=2, use_aug=True)
    p["a"][..., 2:] = 0.9
    assert torch.equal(aug(x, params=p), two)


def test_extrapolation_and_clipping():
    x = torch.full((2, 3, 4, 4), 0.9)
    y = torch.full((2, 3, 4, 4), 0.1)
    out = PF.pixmix_mix(x, y, torch.tensor([0, 1]), torch.full((2,), 1.5), torch.full((2,), -0.5))
    # add: ((1.5 * 0.8 - 0.5 * -0.8) + 1) / 2 = 1.3 -> 1; multiply: 1.8^1.5 * 0.2^-0.5 / 2 = 2.70 -> 1
    assert torch.equal(out, torch.ones_like(out))
    tiny = PF.pixmix_multiply(x, torch.zeros_like(x), torch.ones(2), torch.full((2,), -1.0))
    assert torch.isfinite(tiny).all()  # the partner is clipped at 1e-37 as in the reference


def test_module_equals_functional():
    x = _x(4)
    aug = PixMix(seed=3)
    out = aug(x)
    p = aug.last_params
    pics = aug.mixing_set.pictures(
        {"mix_index": p["mix_index"][:, 0], "mix_crop": p["mix_crop"][:, 0]}, 16, 16, 3, x.device, x.dtype
    )
    arg = PF.op_arguments(
        aug.ops, p["op"][:, 0].reshape(-1), p["level"][:, 0].reshape(-1), p["sign"][:, 0].reshape(-1), 16, 16
    ).view(4, 5)
    ref = PF.pixmix(
        x,
        pics,
        aug.ops,
        p["op"][:, 0],
        arg,
        p["start_aug"][:, 0],
        p["use_aug"][:, 0],
        p["rounds"][:, 0],
        p["blend"][:, 0],
        p["a"][:, 0],
        p["b"][:, 0],
    )
    assert torch.equal(out, ref)


def test_functional_bad_shapes():
    x = _x(2)
    with pytest.raises(ValueError, match="mixing"):
        PF.pixmix(
            x,
            x[:1],
            ["rotate"],
            torch.zeros(2, 5, dtype=torch.long),
            torch.zeros(2, 5),
            torch.zeros(2, dtype=torch.bool),
            torch.zeros(2, 4, dtype=torch.bool),
            torch.zeros(2, dtype=torch.long),
            torch.zeros(2, 4, dtype=torch.long),
            torch.zeros(2, 4),
            torch.zeros(2, 4),
        )
    with pytest.raises(ValueError, match="use_aug"):
        PF.pixmix(
            x,
            x,
            ["rotate"],
            torch.zeros(2, 5, dtype=torch.long),
            torch.zeros(2, 5),
            torch.zeros(2, dtype=torch.bool),
            torch.zeros(2, 3, dtype=torch.bool),
            torch.zeros(2, dtype=torch.long),
            torch.zeros(2, 4, dtype=torch.long),
            torch.zeros(2, 4),
            torch.zeros(2, 4),
        )
    with pytest.raises(ValueError, match="op_index"):
        AF.apply_ops(x, ["rotate"], torch.tensor([0, 3]), torch.zeros(2))
    with pytest.raises(ValueError, match="unknown augment op 'rotat'"):
        AF.apply_ops(x, ["rotat"], torch.tensor([0, 0]), torch.zeros(2))


# ------------------------------------------------------------------------------------------------ fractals
def test_fractals_are_deterministic_per_index_and_batch_invariant():
    a = FF.fractals(torch.tensor([3, 5, 11]), 32, 32)
    b = FF.fractals(torch.tensor([11, 3]), 32, 32)
    assert torch.equal(a[0], b[1]) and torch.equal(a[2], b[0])
    assert not torch.equal(a[0], a[1])
    assert not torch.equal(FF.fractals(torch.tensor([3]), 32, 32, seed=1)[0], a[0])  # another set
    assert a.shape == (3, 3, 32, 32) and a.min() >= 0 and a.max() <= 1


def test_fractal_set_seeded_expected_values():
    """Pinned values of the default set (seed 0): the host draws exactly, the rendering to float32 round-off (CPU)."""
    assert FF.fractal_seeds(0, torch.arange(2)).tolist() == [-1000023830626993555, -9161442459227299860]
    ifs = FF.sample_ifs(FF.fractal_seeds(0, torch.arange(4)))
    assert ifs["num_maps"].tolist() == [3, 2, 2, 3]
    torch.testing.assert_close(
        ifs["A"][0, 0],
        torch.tensor(
            [[0.1946886760879965, 0.22140244052356156], [0.4675298841336068, -0.2972132389099081]], dtype=torch.float64
        ),
        rtol=1e-12,
        atol=1e-12,
    )
    x = FF.fractals(torch.arange(4), 32, 32)
    assert (x.amax(1) > 0).sum(dim=(1, 2)).tolist() == [136, 89, 110, 180]  # lit pixels
    torch.testing.assert_close(
        x.sum(dim=(1, 2, 3)), torch.tensor([171.1194, 154.0061, 149.3890, 250.4646]), rtol=1e-4, atol=0
    )


def test_fractal_pictures_look_like_fractals():
    imgs = FF.fractals(torch.arange(64), 32, 32)
    lit = (imgs.amax(1) > 0).double().mean(dim=(1, 2))  # fraction of non-black pixels per picture
    assert (lit > 0.02).all(), lit.min()  # never empty or a single dot
    assert (lit < 0.8).all(), lit.max()  # never a filled square: a structure on a black background
    assert imgs.amax(dim=(1, 2, 3)).min() > 0.5  # the densest pixel is bright
    assert torch.unique(imgs.reshape(64, -1), dim=0).shape[0] == 64


def test_sample_ifs_constraints():
    seeds = FF.fractal_seeds(0, torch.arange(500))
    ifs = FF.sample_ifs(seeds, 2, 4)
    n = ifs["num_maps"]
    assert set(n.unique().tolist()) == {2, 3, 4}
    sv = torch.linalg.svdvals(ifs["A"])  # (P, M, 2), descending
    active = torch.arange(4).view(1, 4) < n.view(-1, 1)
    assert (sv[..., 0][active] <= FF.S_MAX + 1e-9).all()  # every map contractive
    factor = (sv[..., 0] + 2 * sv[..., 1]).where(active, torch.zeros(())).sum(-1)
    centre = (5 + n.double()) / 2
    assert ((factor - centre).abs() <= 0.5 + 1e-9).all()  # the sigma-factor band of Anderson & Farrell
    torch.testing.assert_close(ifs["prob"].sum(-1), torch.ones(500, dtype=torch.float64))
    assert (ifs["prob"][~active] == 0).all() and (ifs["prob"][active] > 0).all()
    assert ((ifs["color"] >= 0) & (ifs["color"] <= 1)).all()


def test_fractal_bad_arguments():
    with pytest.raises(ValueError, match="max_maps"):
        FF.sample_ifs(torch.tensor([1]), 2, 9)
    with pytest.raises(ValueError, match="min_maps"):
        FF.sample_ifs(torch.tensor([1]), 1, 4)
    with pytest.raises(ValueError, match="index"):
        FF.fractals(torch.tensor([0.5]), 8, 8)
    seeds = torch.tensor([1])
    with pytest.raises(ValueError, match="height"):
        FF.render_fractals(FF.sample_ifs(seeds), seeds, 1, 8)
    with pytest.raises(ValueError, match="size"):
        FractalMixingSet(size=0)
    with pytest.raises(ValueError, match="mix_index"):
        FractalMixingSet(size=10).pictures(
            {"mix_index": torch.tensor([10])}, 8, 8, 3, torch.device("cpu"), torch.float32
        )


# ------------------------------------------------------------------------------------------------ image folders
def _folder(tmp_path: Path) -> Path:
    root = tmp_path / "mixing"
    (root / "sub" / "deeper").mkdir(parents=True)
    g = torch.Generator().manual_seed(0)
    for name, size in [("a.png", (40, 30)), ("sub/b.jpg", (20, 50)), ("sub/deeper/c.PNG", (64, 64))]:
        arr = (torch.rand(size[1], size[0], 3, generator=g) * 255).to(torch.uint8).numpy()
        Image.fromarray(arr).save(root / name)
    (root / "notes.txt").write_text("not an image")
    return root


def test_image_folder_mixing_set(tmp_path):
    root = _folder(tmp_path)
    ms = ImageFolderMixingSet(root)
    assert len(ms) == 3 and [p.name for p in ms.files] == ["a.png", "b.jpg", "c.PNG"]
    choice = {
        "mix_index": torch.tensor([0, 1, 2, 0]),
        "mix_crop": torch.tensor([[0.0, 0.0], [0.5, 0.5], [1.0, 1.0], [0.99, 0.0]]).double(),
    }
    pics = ms.pictures(choice, 16, 16, 3, torch.device("cpu"), torch.float32)
    assert pics.shape == (4, 3, 16, 16) and pics.min() >= 0 and pics.max() <= 1
    assert torch.equal(pics, ms.pictures(choice, 16, 16, 3, torch.device("cpu"), torch.float32))  # replayable
    assert not torch.equal(pics[0], pics[3])  # another crop of the same file
    # the crop is a window of the resized picture (shorter side 16 * 36/32 = 18)
    with Image.open(root / "a.png") as im:
        full = torch.tensor(np.array(im.convert("RGB").resize((24, 18), Image.BILINEAR)))
    torch.testing.assert_close(pics[0], full[:16, :16].permute(2, 0, 1).float() / 255)
    grey = ms.pictures(choice, 8, 12, 1, torch.device("cpu"), torch.float64)
    assert grey.shape == (4, 1, 8, 12) and grey.dtype == torch.float64
    aug = PixMix(mixing_set=str(root), seed=0)  # a folder path builds the folder set
    assert isinstance(aug.mixing_set, ImageFolderMixingSet)
    out = aug(_x(4))
    assert torch.equal(aug(_x(4), params=aug.last_params), out)


def test_image_folder_mixing_set_on_fake_cuda(tmp_path):
    """Folder pictures are decoded on the host and copied to the device; nothing is read back."""
    from tests._device import fake_cuda

    aug = PixMix(mixing_set=_folder(tmp_path), jsd=True, seed=0)
    params = aug.sample_params(3)
    with fake_cuda():
        out = aug(torch.empty(3, 3, 16, 16, device="cuda"), params)
    assert out.device.type == "cuda" and out.shape == (9, 3, 16, 16)


def test_image_folder_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does-not-exist"):
        ImageFolderMixingSet(tmp_path / "does-not-exist")
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.txt").write_text("x")
    with pytest.raises(ValueError, match="holds no image file"):
        ImageFolderMixingSet(empty)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "broken.png").write_bytes(b"this is not a png")
    ms = ImageFolderMixingSet(bad)
    with pytest.raises(ValueError, match="broken.png"):
        ms.pictures(
            {"mix_index": torch.tensor([0]), "mix_crop": torch.zeros(1, 2, dtype=torch.float64)},
            8,
            8,
            3,
            torch.device("cpu"),
            torch.float32,
        )
    with pytest.raises(ValueError, match="resize_ratio"):
        ImageFolderMixingSet(_folder(tmp_path), resize_ratio=0.5)


# ------------------------------------------------------------------------------------------------ arguments
@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"k": -1}, "k: expected"),
        ({"beta": 0.0}, "beta"),
        ({"beta": math.inf}, "beta"),
        ({"aug_severity": 11}, "aug_severity"),
        ({"ops": ["rotat"]}, "unknown augment_op 'rotat'"),
        ({"ops": []}, "at least one"),
        ({"num_views": 0}, "num_views"),
        ({"p": 1.5}, "p"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        PixMix(**kwargs)


def test_bad_mixing_set_and_input():
    with pytest.raises(TypeError, match="mixing_set"):
        PixMix(mixing_set=5)  # type: ignore[arg-type]
    aug = PixMix()
    with pytest.raises(ValueError, match=r"values in \[0, 1\]"):
        aug(torch.rand(2, 3, 8, 8) * 3)
    with pytest.raises(ValueError, match="batch of 3"):
        aug(torch.rand(2, 3, 8, 8), params=aug.sample_params(3))


def test_defaults_are_the_published_cifar_ones():
    aug = PixMix()
    assert (aug.k, aug.beta, aug.aug_severity, aug.ops) == (4, 3.0, 3.0, AF.AUGMIX_OPS_ALL)
    assert isinstance(aug.mixing_set, FractalMixingSet)
    assert PixMix(all_ops=False).ops == AF.AUGMIX_OPS


# ------------------------------------------------------------------------------------------------ training
def test_short_training_loss_decreases():
    from robust_train.losses import SplitCrossEntropy
    from tests.augment.test_training import _check, _train

    _check(_train(PixMix(seed=0), SplitCrossEntropy(), steps=24))
