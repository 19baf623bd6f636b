from __future__ import annotations

import json

import pytest
import torch

from robust_train.corruptions import create_corruption
from robust_train.evaluation import EvalSuite
from robust_train.evaluation import engine as E
from robust_train.evaluation.export import export_dataset
from robust_train.evaluation.report import print_table, result_table, to_baseline, write_reports
from robust_train.metrics import CorruptionErrors, PerturbationStability
from robust_train.metrics import functional as MF
from robust_train.sequences import create_sequence
from tests.evaluation._toy import ToyNet, ToySet, toy_forward

NAMES = ["contrast", "gaussian_noise", "fog"]


def _suite(**kw) -> EvalSuite:
    kw.setdefault("corruptions", NAMES)
    kw.setdefault("severities", [1, 5])
    kw.setdefault("num_images", 12)
    return EvalSuite(name="toy", seed=5, **kw)


def test_engine_equals_manual_loop():
    ds, suite = ToySet(), _suite(batch_size=7)
    fwd = toy_forward(ToyNet())
    metric = E.evaluate_suite(fwd, ds, suite)
    r = metric.compute()
    pos = suite.subset(len(ds))
    x = ds.x[pos].float() / 255
    y = ds.y[pos]
    idx = torch.tensor([1000 + p for p in pos])
    for ci, name in enumerate(NAMES):
        for si, s in enumerate([1, 5]):
            op = create_corruption(name, severity=s, preset="cifar", quantize=True)
            expected = MF.top1_error(fwd(op(x, op.params_for_indices(idx, 5))), y)
            assert r["error"][ci, si].item() == pytest.approx(expected.item()), (name, s)
    assert r["clean_error"].item() == pytest.approx(MF.top1_error(fwd(x), y).item())
    assert "mce" in r and "relative_mce" in r


def test_engine_invariant_to_batch_size_and_process_count():
    ds, fwd = ToySet(), toy_forward(ToyNet())
    ref = E.evaluate_suite(fwd, ds, _suite(batch_size=12)).compute()
    assert torch.equal(E.evaluate_suite(fwd, ds, _suite(batch_size=5)).compute()["error"], ref["error"])
    ranks = [E.evaluate_suite(fwd, ds, _suite(batch_size=4), rank=r, world_size=3) for r in range(3)]
    ranks[0].merge_state(ranks[1])
    ranks[0].merge_state(ranks[2])
    merged = ranks[0].compute()
    assert torch.equal(merged["error"], ref["error"]) and torch.equal(merged["clean_error"], ref["clean_error"])
    with pytest.raises(ValueError, match="rank"):
        E.shard([1, 2], 2, 2)


def test_released_files_give_the_same_numbers_as_on_the_fly(tmp_path):
    from robust_train.data.corrupted import ReleasedData

    ds, fwd = ToySet(), toy_forward(ToyNet())
    suite = _suite(severities=[1, 2, 3, 4, 5], corruptions=["contrast", "pixelate"], batch_size=8, num_images=8)
    export_dataset(ds, tmp_path, suite, layout="cifar_c", progress=False)
    released = ReleasedData(tmp_path, suite.names, suite.severities)
    a = E.evaluate_released(fwd, released, suite).compute()
    b = E.evaluate_suite(fwd, ds, suite).compute()
    assert torch.equal(a["error"], b["error"])
    assert a["mce"].item() == pytest.approx(b["mce"].item())


def test_sequence_engine_equals_manual_and_shards():
    ds, fwd = ToySet(), toy_forward(ToyNet())
    suite = EvalSuite(name="p", kind="p", corruptions=["rotate", "gaussian_noise"], num_images=5, seed=2, batch_size=40)
    r = E.evaluate_suite(fwd, ds, suite).compute()
    pos = suite.subset(len(ds))
    x = ds.x[pos].float() / 255
    idx = torch.tensor([1000 + p for p in pos])
    for i, name in enumerate(["rotate", "gaussian_noise"]):
        op = create_sequence(name, preset="cifar")
        frames = op(x, op.params_for_indices(idx, 2))
        logits = fwd(frames.flatten(0, 1)).view(5, frames.shape[1], -1)
        assert r["fp"][i].item() == pytest.approx(MF.flip_probability(logits, "noise" in name).item())
        assert r["t5d"][i].item() == pytest.approx(MF.top5_distance(logits, "noise" in name).item())
    parts = [E.evaluate_suite(fwd, ds, suite, rank=k, world_size=2) for k in range(2)]
    parts[0].merge_state(parts[1])
    assert torch.equal(parts[0].compute()["fp"], r["fp"])


@pytest.mark.filterwarnings("ignore:The ``compute`` method")
def test_reports_and_baseline_round_trip(tmp_path, capsys):
    ds, fwd = ToySet(), toy_forward(ToyNet())
    suite = _suite()
    metric = E.evaluate_suite(fwd, ds, suite)
    result = metric.compute()
    paths = write_reports(tmp_path, suite, metric, result, extra={"model": "toy"})
    doc = json.loads(paths["json"].read_text())
    assert set(doc["rows"]) == set(NAMES) and doc["model"] == "toy"
    assert doc["rows"]["fog"]["s5"] == pytest.approx(result["error"][2, 1].item())
    assert paths["csv"].read_text().splitlines()[0] == "name,s1,s5,mean,ce,relative_ce"
    assert paths["severity_plot"].stat().st_size > 1000 and paths["ce_plot"].stat().st_size > 1000
    text = print_table(result_table(metric, result), title="toy")
    assert "gaussian_noise" in text and "mce" in text
    # the measured errors as a baseline normalise the same model to exactly 100 %
    base = to_baseline("self", metric, result, {"note": "test"})
    base.save(tmp_path / "self.json")
    again = CorruptionErrors(NAMES, [1, 5], baseline=tmp_path / "self.json")
    again.merge_state(metric)
    assert again.compute()["mce"].item() == pytest.approx(1.0)


@pytest.mark.filterwarnings("ignore:The ``compute`` method")
def test_perturbation_baseline_from_a_run(tmp_path):
    ds, fwd = ToySet(), toy_forward(ToyNet())
    suite = EvalSuite(name="p", kind="p", corruptions=["translate", "gaussian_noise"], num_images=4, batch_size=64)
    metric = E.evaluate_suite(fwd, ds, suite)
    result = metric.compute()
    to_baseline("alexnet_p", metric, result, {}).save(tmp_path / "p.json")
    m2 = PerturbationStability(["translate", "gaussian_noise"], baseline=tmp_path / "p.json")
    m2.merge_state(metric)
    r2 = m2.compute()
    assert r2["mfr"].item() == pytest.approx(1.0) and r2["mt5d"].item() == pytest.approx(1.0)


def test_suite_validation_and_loading():
    from robust_train.evaluation import load_suite

    for name in ("c15", "c19", "c15_fast", "p10", "p14", "p10_fast"):
        s = load_suite(name)
        assert s.name == name
    assert load_suite("c15").names[0] == "gaussian_noise" and len(load_suite("c19").names) == 19
    assert len(load_suite("p14").names) == 14 and load_suite("p10").kind == "p"
    assert load_suite("c15_fast", num_images=10).num_images == 10
    with pytest.raises(FileNotFoundError, match="available"):
        load_suite("c16")
    with pytest.raises(ValueError, match="kind"):
        EvalSuite("x", kind="q")
    with pytest.raises(ValueError, match="unknown c-suite"):
        EvalSuite("x", corruptions="c16")
    with pytest.raises(ValueError, match="severities"):
        EvalSuite("x", severities=[0, 1])
    s = EvalSuite("x", emulate_release=True)
    assert s.release_jpeg_quality("imagenet") == 85 and s.release_jpeg_quality("cifar") is None
    assert EvalSuite("x", kind="p", corruptions="p10").baseline is None  # no published AlexNet-P numbers
