from __future__ import annotations

import json

import lightning as L
import pytest
import torch

from robust_train.callbacks import CorruptionEvalCallback, PerturbationEvalCallback
from robust_train.evaluation import EvalSuite
from robust_train.evaluation import engine as E
from tests.evaluation._toy import ToyData, ToyModule, ToyNet, ToySet, toy_forward

C_SUITE = dict(name="cb", corruptions=["contrast", "fog"], severities=[1, 5], num_images=12, seed=3, batch_size=5)


def _trainer(tmp_path, callbacks, **kw):
    kw.setdefault("accelerator", "cpu")
    kw.setdefault("devices", 1)
    return L.Trainer(
        default_root_dir=tmp_path,
        callbacks=callbacks,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        **kw,
    )


def test_callback_logs_validation_numbers_and_writes_reports(tmp_path):
    cb = CorruptionEvalCallback(EvalSuite(**C_SUITE), output_dir=str(tmp_path / "out"))
    trainer = _trainer(tmp_path, [cb])
    trainer.validate(ToyModule(), datamodule=ToyData())
    m = trainer.callback_metrics
    for key in (
        "val/c/contrast/s1/err",
        "val/c/fog/s5/err",
        "val/c/fog/err",
        "val/mce",
        "val/mce_unnorm",
        "val/clean_err",
        "val/rel_mce",
    ):
        assert key in m, key
    # the logged numbers are the engine's numbers on the same fixed subset
    ref = E.evaluate_suite(toy_forward(ToyNet()), ToySet(), EvalSuite(**C_SUITE)).compute()
    assert float(m["val/c/fog/s5/err"]) == pytest.approx(ref["error"][1, 1].item())
    assert float(m["val/mce"]) == pytest.approx(ref["mce"].item())
    out = tmp_path / "out"
    assert (out / "val_epoch000.json").is_file() and (out / "val_epoch000_error_vs_severity.png").is_file()
    hist = json.loads((out / "val_history.json").read_text())
    assert hist[0]["epoch"] == 0 and hist[0]["metrics"]["val/mce"] == pytest.approx(float(m["val/mce"]))


def test_callback_every_n_epochs_and_sanity_check(tmp_path):
    class Trainable(ToyModule):
        def training_step(self, batch, batch_idx):
            x, y, _ = batch
            return torch.nn.functional.cross_entropy(self.forward_normalized(x.float() / 255), y)

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.0)

    class TrainData(ToyData):
        def train_dataloader(self):
            return torch.utils.data.DataLoader(ToySet(8), batch_size=8)

    cb = CorruptionEvalCallback(
        EvalSuite(**{**C_SUITE, "corruptions": ["contrast"], "num_images": 4}),
        every_n_epochs=2,
        on_test=False,
        plots=False,
        output_dir=str(tmp_path / "o"),
    )
    trainer = _trainer(tmp_path, [cb], max_epochs=4, num_sanity_val_steps=1, limit_val_batches=1)
    trainer.fit(Trainable(), datamodule=TrainData())
    assert [h["epoch"] for h in cb.history] == [1, 3]  # not in the sanity check, every 2nd epoch


def test_test_stage_prints_table_and_saves_baseline(tmp_path, capsys):
    suite = EvalSuite(name="pcb", kind="p", corruptions=["rotate", "speckle_noise"], num_images=3, batch_size=64)
    cb = PerturbationEvalCallback(
        suite, every_n_epochs=0, save_baseline=str(tmp_path / "alexnet_p.json"), output_dir=str(tmp_path / "p")
    )
    trainer = _trainer(tmp_path, [cb])
    trainer.test(ToyModule(), datamodule=ToyData())
    m = trainer.callback_metrics
    assert "test/p/rotate/fp" in m and "test/mfp" in m and "test/mt5d_unnorm" in m and "test/mfr" not in m
    assert "rotate" in capsys.readouterr().out
    # a second model normalised by the saved baseline: the same model scores exactly 100 %
    suite2 = EvalSuite(
        name="pcb",
        kind="p",
        corruptions=["rotate", "speckle_noise"],
        num_images=3,
        batch_size=64,
        baseline=str(tmp_path / "alexnet_p.json"),
    )
    cb2 = PerturbationEvalCallback(suite2, print_results=False, output_dir=str(tmp_path / "p2"))
    trainer = _trainer(tmp_path, [cb2])
    trainer.test(ToyModule(), datamodule=ToyData())
    assert float(trainer.callback_metrics["test/mfr"]) == pytest.approx(1.0)


def test_released_root_at_test_time(tmp_path):
    from robust_train.evaluation.export import export_dataset

    suite = EvalSuite(**{**C_SUITE, "severities": [1, 2, 3, 4, 5], "corruptions": ["contrast"]})
    export_dataset(ToySet(), tmp_path / "cifar_c", suite, progress=False)
    cb = CorruptionEvalCallback(
        suite, released_root=str(tmp_path / "cifar_c"), print_results=False, output_dir=str(tmp_path / "r")
    )
    trainer = _trainer(tmp_path, [cb])
    trainer.test(ToyModule(), datamodule=ToyData())
    on_the_fly = E.evaluate_suite(toy_forward(ToyNet()), ToySet(), suite).compute()
    assert float(trainer.callback_metrics["test/c/contrast/s4/err"]) == pytest.approx(on_the_fly["error"][0, 3].item())
    doc = json.loads((tmp_path / "r" / "test.json").read_text())
    assert doc["data"] == str(tmp_path / "cifar_c")


def test_bad_suite_kind():
    with pytest.raises(ValueError, match="kind-'c'"):
        CorruptionEvalCallback(EvalSuite("p", kind="p", corruptions=["rotate"]))


@pytest.mark.slow
def test_ddp_two_processes_give_the_same_numbers(tmp_path):
    """1 process vs 2 spawned CPU processes (gloo), batch sizes differ too: identical corrupted-eval numbers."""
    suite = EvalSuite(**{**C_SUITE, "num_images": 10, "batch_size": 3})
    one = CorruptionEvalCallback(suite, output_dir=str(tmp_path / "one"), plots=False)
    _trainer(tmp_path, [one]).validate(ToyModule(), datamodule=ToyData())
    two = CorruptionEvalCallback(
        EvalSuite(**{**C_SUITE, "num_images": 10, "batch_size": 2}), output_dir=str(tmp_path / "two"), plots=False
    )
    _trainer(tmp_path, [two], strategy="ddp_spawn", devices=2).validate(ToyModule(), datamodule=ToyData())
    a = json.loads((tmp_path / "one" / "val_history.json").read_text())[0]
    b = json.loads((tmp_path / "two" / "val_history.json").read_text())[0]
    assert (a["world_size"], b["world_size"]) == (1, 2)
    a, b = a["metrics"], b["metrics"]
    assert a.keys() == b.keys() and len(a) > 5
    for k in a:
        assert a[k] == pytest.approx(b[k], abs=1e-12), k
