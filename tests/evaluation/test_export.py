from __future__ import annotations

import io
import json

import numpy as np
import pytest
import torch
from torch.utils.data import Dataset

from robust_train.corruptions import create_corruption
from robust_train.data.corrupted import CifarCDataset, CorruptedImageFolder
from robust_train.evaluation import EvalSuite
from robust_train.evaluation.export import ExportError, export_dataset


class ToyImages(Dataset):
    """(x uint8 (3, 16, 16), y, index) with dataset indices offset by 100, optionally failing after k reads."""

    def __init__(self, n: int = 8, fail_after: int | None = None, channels: int = 3) -> None:
        g = torch.Generator().manual_seed(0)
        self.x = torch.randint(0, 256, (n, channels, 16, 16), generator=g, dtype=torch.uint8)
        self.y = torch.arange(n) % 3
        self.classes = ["cat", "dog", "eel"]
        self.fail_after, self.reads = fail_after, 0

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int):
        self.reads += 1
        if self.fail_after is not None and self.reads > self.fail_after:
            raise KeyboardInterrupt("simulated interruption")
        return self.x[i], self.y[i], 100 + i


def _suite(**kw) -> EvalSuite:
    kw.setdefault("corruptions", ["contrast"])
    return EvalSuite(name="t", num_images=5, seed=3, batch_size=2, **kw)


def _expected(ds: ToyImages, suite: EvalSuite, severity: int) -> tuple[torch.Tensor, list[int]]:
    pos = suite.subset(len(ds))
    op = create_corruption("contrast", severity=severity, preset=suite.preset_for(16, 16))
    x = ds.x[pos].float() / 255
    out = op(x, op.params_for_indices(torch.tensor([100 + p for p in pos]), suite.seed))
    return (out * 255).round().to(torch.uint8), pos


def test_cifar_layout_round_trip(tmp_path):
    ds, suite = ToyImages(), _suite()
    export_dataset(ds, tmp_path, suite, layout="cifar_c", progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["contrast.npy", "export_manifest.json", "labels.npy"]
    arr = np.load(tmp_path / "contrast.npy")
    assert arr.shape == (25, 16, 16, 3) and arr.dtype == np.uint8
    for s in range(1, 6):
        expected, pos = _expected(ds, suite, s)
        loaded = CifarCDataset(tmp_path, "contrast", s)
        assert len(loaded) == 5
        got = torch.stack([loaded[i][0] for i in range(5)])
        assert torch.equal(got, expected), s
        assert [int(loaded[i][1]) for i in range(5)] == ds.y[pos].tolist()


def test_cifar_export_resumes_after_interruption(tmp_path):
    suite = _suite(corruptions=["contrast"])
    reference = tmp_path / "ref"
    export_dataset(ToyImages(), reference, suite, progress=False)
    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        export_dataset(ToyImages(fail_after=14), out, suite, progress=False)
    assert not (out / "contrast.npy").exists()  # never a half-written final file
    assert (out / ".contrast.npy.partial").exists()
    done = int((out / ".contrast.npy.progress").read_text())
    assert 0 < done < 25
    export_dataset(ToyImages(), out, suite, progress=False)
    assert (out / "contrast.npy").read_bytes() == (reference / "contrast.npy").read_bytes()
    assert not (out / ".contrast.npy.partial").exists() and not (out / ".contrast.npy.progress").exists()


def test_export_refuses_to_mix_settings(tmp_path):
    export_dataset(ToyImages(), tmp_path, _suite(), progress=False)
    with pytest.raises(ExportError, match="fingerprint"):
        export_dataset(
            ToyImages(), tmp_path, EvalSuite(name="t", corruptions=["contrast"], num_images=5, seed=4), progress=False
        )
    with pytest.raises(ValueError, match="severities 1-5"):
        export_dataset(ToyImages(), tmp_path / "x", _suite(severities=[1, 2]), progress=False)
    with pytest.raises(ValueError, match="layout"):
        export_dataset(ToyImages(), tmp_path / "y", _suite(), layout="tar")


def test_imagenet_layout_round_trip_and_resume(tmp_path):
    from PIL import Image

    ds, suite = ToyImages(), _suite(severities=[2, 5])
    out = tmp_path / "tree"
    with pytest.raises(KeyboardInterrupt):
        export_dataset(ToyImages(fail_after=9), out, suite, layout="imagenet_c", progress=False)
    partial = sorted(out.rglob("*.JPEG"))
    assert 0 < len(partial) < 10
    export_dataset(ds, out, suite, layout="imagenet_c", progress=False)
    assert not list(out.rglob("*.tmp"))
    manifest = json.loads((out / "export_manifest.json").read_text())
    assert manifest["layout"] == "imagenet_c" and manifest["num_images"] == 5
    for s in (2, 5):
        expected, pos = _expected(ds, suite, s)
        loaded = CorruptedImageFolder(out, "contrast", s, classes=ds.classes)
        assert len(loaded) == 5
        by_label = {}
        for k in range(5):
            x, y, _ = loaded[k]
            by_label.setdefault(int(y), []).append(x)
        for j, p in enumerate(pos):
            # decoded file == our expected corrupted image after the same JPEG q85 round trip
            buf = io.BytesIO()
            Image.fromarray(expected[j].permute(1, 2, 0).numpy()).save(buf, "JPEG", quality=85, optimize=True)
            ref = torch.from_numpy(np.array(Image.open(buf).convert("RGB"))).permute(2, 0, 1)
            path = out / "contrast" / str(s) / ds.classes[int(ds.y[p])] / f"{100 + p:08d}.JPEG"
            got = torch.from_numpy(np.array(Image.open(path).convert("RGB"))).permute(2, 0, 1)
            assert torch.equal(got, ref)
            assert any(torch.equal(got, x) for x in by_label[int(ds.y[p])])


def test_grey_images_are_exported_as_rgb(tmp_path):
    export_dataset(ToyImages(channels=1), tmp_path, _suite(), progress=False)
    arr = np.load(tmp_path / "contrast.npy")
    assert arr.shape[-1] == 3
