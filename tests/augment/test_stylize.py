"""AdaIN stylization with randomly initialised weights: layout, AdaIN statistics, determinism, gradients, I/O."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from robust_train.augment.stylize import Stylize, build_adain_decoder, build_vgg_encoder, load_style_images
from robust_train.functional.adain import adain, adain_blend, channel_mean_std


def _aug(**kw) -> Stylize:
    g = torch.Generator().manual_seed(0)
    kw.setdefault("styles", torch.rand(4, 3, 16, 16, generator=g))
    kw.setdefault("pretrained", False)
    kw.setdefault("p", 1.0)
    kw.setdefault("min_encoder_size", 16)
    return Stylize(**kw)


def _x(b: int = 3, c: int = 3, size: int = 16) -> torch.Tensor:
    return torch.rand(b, c, size, size, generator=torch.Generator().manual_seed(1))


def test_network_layout_matches_released_state_dicts():
    enc = build_vgg_encoder().state_dict()
    dec = build_adain_decoder().state_dict()
    # conv positions of naoto0804/pytorch-AdaIN's vgg_normalised.pth (first 31 layers) and decoder.pth
    assert sorted({int(k.split(".")[0]) for k in enc}) == [0, 2, 5, 9, 12, 16, 19, 22, 25, 29]
    assert sorted({int(k.split(".")[0]) for k in dec}) == [1, 5, 8, 11, 14, 18, 21, 25, 28]
    assert enc["0.weight"].shape == (3, 3, 1, 1) and enc["29.weight"].shape == (512, 256, 3, 3)
    assert dec["1.weight"].shape == (256, 512, 3, 3) and dec["28.weight"].shape == (3, 64, 3, 3)


def test_adain_functional_gives_style_statistics():
    g = torch.Generator().manual_seed(0)
    content = torch.randn(2, 8, 5, 6, generator=g) * 3 + 1
    s_mean, s_std = torch.randn(2, 8, generator=g), torch.rand(2, 8, generator=g) + 0.5
    out = adain(content, s_mean, s_std)
    m, s = channel_mean_std(out, eps=0.0)
    torch.testing.assert_close(m, s_mean, atol=1e-5, rtol=0)
    torch.testing.assert_close(s, s_std, atol=1e-3, rtol=1e-3)
    torch.testing.assert_close(adain_blend(content, out, 0.0), content)
    torch.testing.assert_close(adain_blend(content, out, torch.tensor([1.0, 0.5]))[0], out[0])
    with pytest.raises(ValueError, match="style_mean"):
        adain(content, s_mean[:, :4], s_std)


@pytest.fixture(scope="module")
def shared() -> Stylize:
    """One module for the tests that only need a working stylizer (networks and style statistics built once)."""
    return _aug(seed=0)


def test_module_adain_step_matches_style_features(shared):
    enc, _ = shared.networks()
    s_mean, s_std = shared.style_stats()
    assert s_mean.shape == (4, 512)
    with torch.no_grad():
        feat_style = enc(shared.styles[2:3])
        feat = enc(_x(2, size=32))  # 4x4 feature maps
    ref_m, ref_s = channel_mean_std(feat_style)
    torch.testing.assert_close(s_mean[2:3], ref_m)
    t = adain(feat, s_mean[[2, 2]], s_std[[2, 2]])
    m, s = channel_mean_std(t, eps=0.0)  # s_std already holds the style's eps
    # ReLU channels that are constant in the content image cannot take the style's spread; skip them
    live = channel_mean_std(feat)[1] > 0.05
    assert live.float().mean() > 0.3
    torch.testing.assert_close(m, ref_m.expand(2, -1), atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(s[live], ref_s.expand(2, -1)[live], atol=1e-5, rtol=5e-3)


def test_forward_shapes_determinism_and_replay(shared):
    x = _x(4)
    shared.reseed(0)
    out = shared(x)
    assert out.shape == x.shape and out.min() >= 0 and out.max() <= 1
    assert (out - x).abs().mean() > 0.05
    params = shared.last_params
    assert torch.equal(shared(x, params=params), out)
    assert _aug(seed=0).sample_params(4).equal(params)  # same seed, same draws
    shared.reseed(0)
    assert torch.equal(shared(x), out)
    assert not _aug(seed=1).sample_params(4).equal(params)


def test_p_alpha_and_per_sample_styles(shared):
    x = _x(4)
    assert torch.equal(_aug(p=0.0)(x), x)
    aug = _aug(alpha=(0.2, 0.9), seed=3)
    p = aug.sample_params(32)
    assert p["style"].unique().numel() > 1 and p["alpha"].unique().numel() == 32
    assert (p["alpha"] >= 0.2).all() and (p["alpha"] <= 0.9).all()
    params = shared.sample_params(4, torch.Generator().manual_seed(0))
    params["alpha"] = torch.zeros(4, dtype=torch.float64)
    zero = shared(x, params=params)
    params["alpha"] = torch.ones(4, dtype=torch.float64)
    one = shared(x, params=params)
    assert (zero - one).abs().mean() > 1e-3  # the style changes the decoded image
    params["style"] = (params["style"] + 1) % 4
    assert (shared(x, params=params) - one).abs().mean() > 1e-3  # and so does the choice of style


def test_gradient_flows_to_the_input(shared):
    x = _x(2).requires_grad_(True)
    out = shared(x)
    out.square().sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    assert all(not p.requires_grad for p in shared.networks()[0].parameters())
    assert all(p.grad is None for p in shared.networks()[0].parameters())


def test_small_grey_and_odd_sized_images():
    aug = _aug(min_encoder_size=32, seed=0)
    assert aug._encoder_size(16, 16) == (32, 32) and aug._encoder_size(28, 20) == (48, 32)
    grey = aug(_x(2, c=1, size=12))
    assert grey.shape == (2, 1, 12, 12)
    out = _aug(grayscale_output=True, seed=0)(_x(2, size=20))
    assert out.shape == (2, 3, 20, 20) and torch.equal(out[:, 0], out[:, 1])


def test_networks_stay_out_of_the_state_dict(shared):
    shared(_x(1))
    assert shared.state_dict() == {} and list(shared.parameters()) == []


def test_weights_are_loaded_lazily_from_paths(tmp_path):
    enc, dec = build_vgg_encoder(), build_adain_decoder()
    for p in list(enc.parameters()) + list(dec.parameters()):
        torch.nn.init.normal_(p, std=0.05)
    sd = dict(enc.state_dict())
    sd["31.weight"] = torch.zeros(512, 512, 3, 3)  # the released file goes on to relu5_4; extra layers are ignored
    torch.save(sd, tmp_path / "vgg_normalised.pth")
    torch.save(dec.state_dict(), tmp_path / "decoder.pth")
    aug = _aug(
        pretrained=True, encoder_path=str(tmp_path / "vgg_normalised.pth"), decoder_path=str(tmp_path / "decoder.pth")
    )
    loaded_enc, loaded_dec = aug.networks()
    torch.testing.assert_close(loaded_enc[29].weight, enc[29].weight)
    torch.testing.assert_close(loaded_dec[28].bias, dec[28].bias)


def test_missing_or_wrong_weights_are_clear_errors(tmp_path):
    aug = _aug(pretrained=True, encoder_path=str(tmp_path / "nope.pth"), decoder_path=None)
    with pytest.raises(FileNotFoundError, match=r"augment\.encoder_path: .*nope\.pth.*naoto0804/pytorch-AdaIN"):
        aug(_x(1))
    torch.save({"foo": torch.zeros(1)}, tmp_path / "bad.pth")
    aug = _aug(pretrained=True, encoder_path=str(tmp_path / "bad.pth"), config_key="model.stylize")
    with pytest.raises(ValueError, match=r"model\.stylize\.encoder_path: .* not an AdaIN encoder"):
        aug(_x(1))
    torch.save(build_vgg_encoder().state_dict(), tmp_path / "enc.pth")
    aug = _aug(pretrained=True, encoder_path=str(tmp_path / "enc.pth"))
    with pytest.raises(FileNotFoundError, match=r"augment\.decoder_path: .*not set"):
        aug(_x(1))


def test_style_folder_loading(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    (tmp_path / "sub").mkdir()
    for i, (w, h) in enumerate([(40, 30), (24, 50), (32, 32)]):
        folder = tmp_path / "sub" if i == 2 else tmp_path
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(folder / f"s{i}.png")
    (tmp_path / "notes.txt").write_text("not an image")
    styles = load_style_images(tmp_path, 16)
    assert styles.shape == (3, 3, 16, 16) and styles.min() >= 0 and styles.max() <= 1
    assert load_style_images(tmp_path, 16, max_images=2).shape[0] == 2
    aug = Stylize(style_dir=str(tmp_path), style_size=16, pretrained=False, p=1.0, min_encoder_size=16, seed=0)
    assert aug.num_styles == 3 and aug(_x(2)).shape == (2, 3, 16, 16)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_style_images(tmp_path / "missing", 16)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no images"):
        load_style_images(tmp_path / "empty", 16)


def test_bad_arguments():
    with pytest.raises(ValueError, match="exactly one of style_dir"):
        Stylize(pretrained=False)
    with pytest.raises(ValueError, match="alpha"):
        _aug(alpha=1.5)
    with pytest.raises(ValueError, match="channels"):
        _aug()(torch.rand(1, 2, 16, 16))


def test_style_folder_is_streamed_and_stats_are_cached(tmp_path, monkeypatch):
    from PIL import Image

    rng = np.random.default_rng(1)
    for i in range(5):
        Image.fromarray(rng.integers(0, 255, (20, 20, 3), dtype=np.uint8)).save(tmp_path / f"s{i}.png")
    cache = tmp_path / "cache" / "stats.pt"
    kw = {"style_dir": str(tmp_path), "style_size": 16, "pretrained": False, "min_encoder_size": 16}
    aug = Stylize(stats_cache=str(cache), **kw)
    assert aug.num_styles == 5 and aug._styles[0] is None  # counted from the file list, nothing loaded
    mean, std = aug.style_stats(chunk=2)
    ref_mean, _ = Stylize(**kw).style_stats(chunk=32)
    torch.testing.assert_close(mean, ref_mean)  # chunking does not change the statistics
    assert cache.is_file()
    again = Stylize(stats_cache=str(cache), **kw)
    monkeypatch.setattr(again, "networks", lambda *a, **k: pytest.fail("statistics were recomputed"))
    torch.testing.assert_close(again.style_stats()[1], std)
    other = Stylize(stats_cache=str(cache), **{**kw, "style_size": 24})  # different settings: recomputed
    assert other.style_stats()[0].shape == (5, 512)
    assert torch.load(cache, weights_only=True)["key"] == other._cache_key() != aug._cache_key()
