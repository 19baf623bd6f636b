"""H.264 release emulation of ImageNet-P sequences (issue 12)."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from robust_train.evaluation import engine as E
from robust_train.evaluation.suite import EvalSuite
from robust_train.sequences import create_sequence, perturb_sequence
from robust_train.sequences.h264 import h264_available, h264_encode, h264_roundtrip, h264_sequence
from tests._helpers import photo_at, to_tensor

pytestmark = pytest.mark.skipif(not h264_available(), reason="needs PyAV with libx264")


def _x264_options(data: bytes) -> dict[str, str]:
    """The option string x264 writes into the stream (SEI user data) as a dict."""
    m = re.search(rb"x264 - core .*?options: (.*?)\x00", data, re.S)
    assert m is not None, "no x264 SEI in the stream"
    return dict(kv.split("=", 1) for kv in m.group(1).decode().split())


def test_encoder_settings_are_the_releases():
    frames = np.stack([photo_at("chelsea", 32)] * 4)
    other, grain = _x264_options(h264_encode(frames, noise=False)), _x264_options(h264_encode(frames, noise=True))
    # -preset veryslow
    for opts in (other, grain):
        assert opts["ref"] == "16" and opts["subme"] == "10" and opts["me"] == "umh" and opts["bframes"] == "8"
        assert opts["trellis"] == "2" and opts["rc_lookahead"] == "60" and opts["rc"] == "crf"
    assert other["crf"] == "20.0" and other["deblock"] == "1:0:0" and other["deadzone"] == "21,11"
    # -tune grain (default CRF 23): weaker deblocking, small deadzones, no decimation, qcomp 0.8, aq 0.5
    assert grain["crf"] == "23.0" and grain["deblock"] == "1:-2:-2" and grain["deadzone"] == "6,6"
    assert grain["decimate"] == "0" and grain["qcomp"] == "0.80" and grain["aq"] == "1:0.50"
    with pytest.raises(ValueError, match="uint8"):
        h264_encode(frames.astype(np.float32), noise=False)


def test_roundtrip_is_close_on_smooth_sequences_and_damps_noise():
    x = to_tensor(photo_at("coffee", 64))
    rot = perturb_sequence(x, "rotate", preset="tinyimagenet")
    dec = h264_roundtrip(rot, noise=False)
    assert dec.shape == rot.shape and dec.dtype == rot.dtype and torch.equal(dec * 255, torch.round(dec * 255))
    d = (dec - rot).abs() * 255
    assert 0.1 < float(d.mean()) < 3.0, float(d.mean())
    noisy = perturb_sequence(x, "gaussian_noise", preset="tinyimagenet", seed=1)
    dn = h264_roundtrip(noisy, noise=True)
    change = float((noisy[:, 2:] - noisy[:, 1:-1]).abs().mean())
    change_dec = float((dn[:, 2:] - dn[:, 1:-1]).abs().mean())
    assert change_dec < 0.95 * change, (change_dec, change)  # the codec removes part of the frame-to-frame change
    # one sequence: the batched pool gives the per-sequence result
    s = np.floor(rot[0].permute(0, 2, 3, 1).numpy() * 255 + 1e-4).astype(np.uint8)
    assert np.array_equal(h264_sequence(s, False), np.round(dec[0].permute(0, 2, 3, 1).numpy() * 255))


def test_module_option_and_perturb_sequence():
    x = torch.cat([to_tensor(photo_at(n, 32)) for n in ("astronaut", "rocket")])
    plain = create_sequence("translate", preset="cifar")(x)
    coded = perturb_sequence(x, "translate", preset="cifar", h264=True)
    assert torch.equal(coded, h264_roundtrip(plain, noise=False))
    op = create_sequence("shot_noise", preset="cifar", h264=True)
    p = op.params_for_indices([0, 1], 0)
    assert torch.equal(op(x, p), h264_roundtrip(create_sequence("shot_noise", preset="cifar")(x, p), noise=True))
    assert "h264=True" in repr(op)


def test_suite_emulate_release_turns_it_on_for_imagenet_and_tiny_only():
    s = EvalSuite("p", kind="p", corruptions=["rotate"], emulate_release=True)
    assert s.release_h264("imagenet") and s.release_h264("tinyimagenet") and not s.release_h264("cifar")
    assert not EvalSuite("p", kind="p", corruptions=["rotate"]).release_h264("imagenet")
    runner = E.SuiteRunner(s)
    assert runner.sequence("rotate", "tinyimagenet").h264 and not runner.sequence("rotate", "cifar").h264


def test_encode_is_reproducible():
    """The same frames give the same stream (x264's AVX-512 paths did not; see ``_x264_asm_option``)."""
    x = to_tensor(photo_at("coffee", 64))
    for name in ("rotate", "gaussian_noise"):
        seq = perturb_sequence(x, name, preset="tinyimagenet", seed=2)
        s = np.floor(seq[0].permute(0, 2, 3, 1).numpy() * 255 + 1e-4).astype(np.uint8)
        streams = {h264_encode(s, "noise" in name) for _ in range(4)}
        assert len(streams) == 1, name
