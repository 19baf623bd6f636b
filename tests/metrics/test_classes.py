from __future__ import annotations

import pytest
import torch

from robust_train.corruptions.suites import BENCHMARK_ORDER, EXTRA
from robust_train.metrics import (
    ALEXNET,
    Baseline,
    CorruptionErrors,
    ExpectedCalibrationError,
    PerturbationStability,
    RMSCalibrationError,
)
from robust_train.metrics import functional as MF


def _preds_with_error(rate: float, n: int = 100) -> tuple[torch.Tensor, torch.Tensor]:
    target = torch.zeros(n, dtype=torch.long)
    preds = torch.zeros(n, dtype=torch.long)
    preds[: round(rate * n)] = 1
    return preds, target


def test_corruption_errors_alexnet_reproduces_100_percent():
    names = list(BENCHMARK_ORDER + EXTRA)
    m = CorruptionErrors(names)
    assert m.mce_corruptions == list(BENCHMARK_ORDER)
    # 50000 "images" per cell so every AlexNet error (5 decimals of a fraction of 50000) is exactly representable
    for c in names:
        for s in range(1, 6):
            m.update(*_preds_with_error(ALEXNET.errors[c][s], 50000), c, s)
    m.update(*_preds_with_error(ALEXNET.clean_error, 50000))
    r = m.compute()
    assert r["mce"].item() == pytest.approx(1.0, abs=1e-12)
    assert r["relative_mce"].item() == pytest.approx(1.0, abs=1e-9)
    assert r["ce"].tolist() == pytest.approx([1.0] * len(names))
    # unnormalised mean over the 15 benchmark corruptions only (extras excluded)
    expected = sum(sum(ALEXNET.errors[c].values()) for c in BENCHMARK_ORDER) / 75
    assert r["mean_error"].item() == pytest.approx(expected, abs=1e-12)


def test_corruption_errors_module_equals_functional_and_is_chunk_invariant():
    g = torch.Generator().manual_seed(0)
    names, sev = ["fog", "contrast"], [1, 3]
    logits = torch.randn(2, 2, 40, 7, generator=g)
    target = torch.randint(0, 7, (40,), generator=g)
    whole, chunked = CorruptionErrors(names, sev), CorruptionErrors(names, sev)
    for ci, c in enumerate(names):
        for si, s in enumerate(sev):
            whole.update(logits[ci, si], target, c, s)
            for lo in range(0, 40, 13):
                chunked.update(logits[ci, si, lo : lo + 13], target[lo : lo + 13], c, s)
    a, b = whole.compute(), chunked.compute()
    assert torch.equal(a["error"], b["error"])
    errors = torch.stack([torch.stack([MF.top1_error(logits[ci, si], target) for si in range(2)]) for ci in range(2)])
    assert torch.equal(a["error"], errors)
    assert a["mce"].item() == pytest.approx(MF.mean_corruption_error(errors, MF.alexnet_errors(names, sev)).item())


def test_corruption_errors_merge_state_like_two_processes():
    g = torch.Generator().manual_seed(1)
    preds, target = torch.randint(0, 3, (30,), generator=g), torch.randint(0, 3, (30,), generator=g)
    full, r0, r1 = (CorruptionErrors(["snow"], [2], baseline=None) for _ in range(3))
    full.update(preds, target, "snow", 2)
    r0.update(preds[::2], target[::2], "snow", 2)
    r1.update(preds[1::2], target[1::2], "snow", 2)
    r0.merge_state(r1)
    assert torch.equal(r0.compute()["error"], full.compute()["error"])


def test_corruption_errors_flat_keys_and_bad_input():
    m = CorruptionErrors(["fog", "spatter"], [1, 2])
    m.update(*_preds_with_error(0.5, 10), "fog", 1)
    m.update(*_preds_with_error(0.5, 10), "fog", 2)
    m.update(*_preds_with_error(0.2, 10), "spatter", 1)
    m.update(*_preds_with_error(0.0, 10), "spatter", 2)
    m.update(*_preds_with_error(0.1, 10))
    flat = m.flat(prefix="val/")
    assert flat["val/c/fog/s1/err"] == 0.5 and flat["val/c/spatter/s1/err"] == pytest.approx(0.2)
    assert flat["val/mce_unnorm"] == pytest.approx(0.5)  # fog only: spatter is an extra corruption
    assert flat["val/mce"] == pytest.approx(1.0 / (0.67474 + 0.76050))
    assert flat["val/clean_err"] == pytest.approx(0.1)
    assert "val/rel_mce" in flat
    with pytest.raises(ValueError, match="unknown corruption"):
        m.update(*_preds_with_error(0.5, 10), "frost", 1)
    with pytest.raises(ValueError, match="not tracked"):
        m.update(*_preds_with_error(0.5, 10), "fog", 4)
    with pytest.raises(ValueError, match="severity is required"):
        m.update(*_preds_with_error(0.5, 10), "fog")
    with pytest.raises(ValueError, match="no error for"):
        CorruptionErrors(["my_custom_blur"])
    assert "val/mce" not in CorruptionErrors(["my_custom_blur"], baseline=None).flat(
        {"error": torch.zeros(1, 5), "mean_error": torch.tensor(0.0)}, prefix="val/"
    )


def test_perturbation_stability_equals_functional():
    g = torch.Generator().manual_seed(2)
    names = ["gaussian_noise", "rotate"]
    logits = {n: torch.randn(6, 11, 8, generator=g) for n in names}
    m = PerturbationStability(names, difficulty=2)
    for n in names:
        m.update(logits[n][:4], n)
        m.update(logits[n][4:], n)
    r = m.compute()
    for i, n in enumerate(names):
        noise = "noise" in n
        assert r["fp"][i].item() == pytest.approx(MF.flip_probability(logits[n], noise, 2).item())
        assert r["t5d"][i].item() == pytest.approx(MF.top5_distance(logits[n], noise, 2).item())
        assert r["zipf"][i].item() == pytest.approx(MF.zipf_distance(logits[n], noise, 2).item())
    assert r["mean_fp"].item() == pytest.approx(r["fp"].mean().item())
    assert "mfr" not in r


def test_perturbation_stability_with_baseline_file(tmp_path):
    base = Baseline("alexnet_p", fp={"rotate": 0.2, "scale": 0.1}, t5d={"rotate": 2.0, "scale": 1.0}, difficulty=1)
    path = base.save(tmp_path / "b.json")
    m = PerturbationStability(["rotate", "scale"], baseline=str(path))
    m.update(torch.tensor([[[2.0, 1.0], [1.0, 2.0], [1.0, 2.0]]]), "rotate")  # fp 1/2, t5d (2 + 0)/2 = 1
    m.update(torch.tensor([[[2.0, 1.0], [2.0, 1.0], [2.0, 1.0]]]), "scale")  # fp 0, t5d 0
    r = m.compute()
    assert r["fr"].tolist() == pytest.approx([2.5, 0.0])
    assert r["mfr"].item() == pytest.approx(1.25)
    assert r["mt5d"].item() == pytest.approx((1.0 / 2.0 + 0.0) / 2)
    flat = m.flat(prefix="val/")
    assert flat["val/mfr"] == pytest.approx(1.25) and flat["val/p/rotate/fp"] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="difficulty 1"):
        PerturbationStability(["rotate"], difficulty=2, baseline=base)
    with pytest.raises(ValueError, match="tilt"):
        PerturbationStability(["rotate", "tilt"], baseline=base)


def test_baseline_roundtrip_and_errors(tmp_path):
    b = Baseline("x", errors={"fog": {1: 0.5, 3: 0.7}}, clean_error=0.2, meta={"data": "toy"})
    loaded = Baseline.load(b.save(tmp_path / "sub" / "b.json"))
    assert loaded == b
    with pytest.raises(ValueError, match=r"fog/s2"):
        loaded.error_table(["fog"], [1, 2])
    with pytest.raises(FileNotFoundError, match="does not exist"):
        Baseline.load(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text('{"a": 1}')
    with pytest.raises(ValueError, match="not a robust_train baseline"):
        Baseline.load(tmp_path / "bad.json")
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        Baseline("y", errors={"fog": {1: 1.5}})
    m = CorruptionErrors(["fog"], [1, 3], baseline=tmp_path / "sub" / "b.json")
    m.update(*_preds_with_error(0.25, 4), "fog", 1)
    m.update(*_preds_with_error(0.5, 4), "fog", 3)
    assert m.compute()["mce"].item() == pytest.approx(0.75 / 1.2)


def test_calibration_classes_equal_functional_and_chunks():
    g = torch.Generator().manual_seed(4)
    logits, target = torch.randn(350, 4, generator=g) * 3, torch.randint(0, 4, (350,), generator=g)
    ece, rms = ExpectedCalibrationError(n_bins=15, norm="l2"), RMSCalibrationError(bin_size=100)
    for lo in range(0, 350, 64):
        ece.update(logits[lo : lo + 64], target[lo : lo + 64])
        rms.update(logits[lo : lo + 64], target[lo : lo + 64])
    assert ece.compute().item() == pytest.approx(MF.expected_calibration_error(logits, target, 15, "l2").item())
    assert rms.compute().item() == pytest.approx(MF.rms_calibration_error(logits, target, 100).item())
    with pytest.warns(UserWarning, match="before the ``update``"):
        assert torch.isnan(RMSCalibrationError().compute())
    with pytest.raises(ValueError, match="norm"):
        ExpectedCalibrationError(norm="l3")
