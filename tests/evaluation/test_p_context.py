"""ImageNet-P evaluation context (issue 12): P suites perturb the Resize(256) image and crop 224."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from robust_train.data import ImageFolderDataModule
from robust_train.evaluation import engine as E
from robust_train.evaluation.suite import EvalSuite
from robust_train.sequences import create_sequence, perturb_sequence
from tests._helpers import photo_uint8

# photos of different aspect ratios: 512x512, 300x451, 400x600, 427x640 (H x W)
PHOTOS = {"n001": ("astronaut", "chelsea"), "n002": ("coffee", "rocket")}


def _imagenet_fixture(root: Path) -> Path:
    for split in ("train", "val"):
        for wnid, names in PHOTOS.items():
            d = root / split / wnid
            d.mkdir(parents=True)
            for name in names:
                Image.fromarray(photo_uint8(name)).save(d / f"{split}_{name}.png")
    return root


def _resize256(name: str) -> torch.Tensor:
    img = Image.fromarray(photo_uint8(name))
    w, h = img.size
    size = (256, int(256 * h / w)) if w < h else (int(256 * w / h), 256)
    x = torch.from_numpy(np.asarray(img.resize(size, Image.BILINEAR)).copy()).permute(2, 0, 1)
    return x.unsqueeze(0).float() / 255.0


class _Recorder:
    """Records the inputs of every sequence module the engine runs (and the frames it returns)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: list[tuple[str, int | None, torch.Tensor, torch.Tensor, torch.Tensor]] = []
        original = E.SuiteRunner.update_sequence
        recorder = self

        def spy(runner, forward, x, index, metric, name, crop=None):
            preset = runner.suite.preset_for(*((crop, crop) if crop else x.shape[-2:]))
            op = runner.sequence(name, preset, crop)
            frames = op(x, op.params_for_indices(index, runner.suite.seed))
            recorder.calls.append((name, crop, x.clone(), index.clone(), frames))
            return original(runner, forward, x, index, metric, name, crop)

        monkeypatch.setattr(E.SuiteRunner, "update_sequence", spy)


def test_imagefolder_hands_out_the_uncropped_256_context(tmp_path):
    dm = ImageFolderDataModule(data_dir=_imagenet_fixture(tmp_path / "in"), num_classes=2, image_size=224, val_size=1)
    dm.setup("test")
    ds, crop = dm.eval_context("test")
    assert crop == 224 and len(ds) == len(dm.eval_dataset("test")) == 4
    shapes = [tuple(ds[i][0].shape) for i in range(4)]
    assert all(min(s[1:]) == 256 for s in shapes) and len(set(shapes)) > 1  # aspect kept, sizes differ
    for i in range(4):  # same samples, labels and indices as the evaluated (cropped) dataset
        assert ds[i][1:] == dm.eval_dataset("test")[i][1:]
    val, _ = dm.eval_context("val")
    assert len(val) == 1 and val[0][2] == dm.eval_dataset("val")[0][2]


def test_engine_frames_are_perturb_sequence_of_the_256_image_cropped_224(tmp_path, monkeypatch):
    dm = ImageFolderDataModule(data_dir=_imagenet_fixture(tmp_path / "in"), num_classes=2, image_size=224, val_size=1)
    dm.setup("test")
    ds, crop = dm.eval_context("test")
    names = ["tilt", "gaussian_noise"]
    suite = EvalSuite("p", kind="p", corruptions=names, batch_size=64, num_images=2, seed=3)
    rec = _Recorder(monkeypatch)
    metric = E.evaluate_suite(lambda x: x.mean((2, 3)), ds, suite, crop=crop)  # 3 "logits" per frame
    flat = metric.flat(metric.compute(), prefix="")
    assert all(f"p/{n}/fp" in flat for n in names), sorted(flat)
    seen = {int(i) for _, _, _, index, _ in rec.calls for i in index}
    assert seen == set(suite.subset(4))
    files = [p.stem.split("_", 1)[1] for p, _ in ds.samples]
    for name, c, x, index, frames in rec.calls:
        assert c == 224 and min(x.shape[-2:]) == 256 and frames.shape[-2:] == (224, 224)
        for j, i in enumerate(index.tolist()):
            x256 = _resize256(files[i])
            assert torch.equal(x[j : j + 1] * 255, torch.round(x256 * 255))  # the Resize(256) image itself
            op = create_sequence(name, preset="imagenet", crop=224)
            ref = op(x256, op.params_for_indices(index[j : j + 1], suite.seed))
            assert torch.equal(frames[j : j + 1], ref), name
            if name != "gaussian_noise":  # deterministic types: exactly perturb_sequence(x256, crop=224)
                assert torch.equal(frames[j : j + 1], perturb_sequence(x256, name, crop=224))


def test_context_off_or_unavailable_perturbs_the_evaluated_images(tmp_path, monkeypatch):
    dm = ImageFolderDataModule(data_dir=_imagenet_fixture(tmp_path / "in"), num_classes=2, image_size=224, val_size=1)
    dm.setup("test")
    suite = EvalSuite("p", kind="p", corruptions=["rotate"], num_images=2, context=False)
    rec = _Recorder(monkeypatch)
    E.evaluate_suite(lambda x: x.mean((2, 3)), dm.eval_dataset("test"), suite)
    assert all(c is None and tuple(x.shape[-2:]) == (224, 224) for _, c, x, _, _ in rec.calls)
    c_suite = EvalSuite("c", kind="c", corruptions=["contrast"], num_images=2)
    with pytest.raises(ValueError, match="kind 'p'"):
        E.evaluate_suite(lambda x: x.mean((2, 3)), dm.eval_dataset("test"), c_suite, crop=224)
    # the fingerprint of corruption suites does not depend on the (ignored) context field
    assert (
        c_suite.fingerprint()
        == EvalSuite("c", kind="c", corruptions=["contrast"], num_images=2, context=False).fingerprint()
    )


@pytest.mark.slow
def test_robust_eval_p10_on_an_image_folder_uses_the_256_context(tmp_path, monkeypatch):
    import timm

    import robust_train.models  # noqa: F401  (registers the CIFAR nets with timm)
    from robust_train.cli.eval import evaluate

    from .test_cli import _compose

    root = _imagenet_fixture(tmp_path / "in")
    torch.save(timm.create_model("resnet8_cifar", num_classes=2).state_dict(), tmp_path / "sd.pth")
    overrides = [
        "data=imagefolder",
        f"data.data_dir={root}",
        "data.num_classes=2",
        "data.num_workers=0",
        "data.persistent_workers=false",
        "data.pin_memory=false",
        "data.val_size=1",
        "data.batch_size=2",
        "data.eval_batch_size=2",
        "ckpt_path=null",
        f"+model.net.checkpoint_path={tmp_path / 'sd.pth'}",
        "eval=p10",
        "eval.perturbation_eval.suite.num_images=2",
        "eval.perturbation_eval.suite.preset=imagenet",
        "eval.perturbation_eval.suite.batch_size=124",
        "eval.perturbation_eval.plots=false",
        "trainer=cpu",
        "logger=csv",
        "+trainer.limit_test_batches=1",
    ]
    rec = _Recorder(monkeypatch)
    metrics, _ = evaluate(_compose("eval", overrides, tmp_path))
    assert "test/mfp" in metrics and "test/p/tilt/fp" in metrics
    from robust_train.sequences import list_sequences

    assert {name for name, *_ in rec.calls} == set(list_sequences("p10"))
    for name, c, x, _, frames in rec.calls:
        assert c == 224 and min(x.shape[-2:]) == 256 and frames.shape[-2:] == (224, 224), (name, x.shape)
        if name in ("translate", "rotate", "tilt", "scale"):
            for j in range(x.shape[0]):
                assert torch.equal(frames[j : j + 1], perturb_sequence(x[j : j + 1], name, crop=224)), name
