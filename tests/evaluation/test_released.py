from __future__ import annotations

import numpy as np
import pytest
import torch

from robust_train.data.corrupted import (
    CifarCDataset,
    CifarPDataset,
    CorruptedImageFolder,
    ImageNetPDataset,
    ReleasedData,
    ReleasedDataError,
    detect_layout,
    read_video,
)


def _cifar_c(root, names=("fog", "snow"), n=6, repeat_labels=True):
    rng = np.random.default_rng(0)
    arrays = {}
    for c in names:
        arrays[c] = rng.integers(0, 256, (5 * n, 8, 8, 3), dtype=np.uint8)
        np.save(root / f"{c}.npy", arrays[c])
    labels = np.arange(n, dtype=np.uint8) % 3
    np.save(root / "labels.npy", np.tile(labels, 5) if repeat_labels else labels)
    return arrays, labels


def test_cifar_c_dataset_reads_severity_blocks(tmp_path):
    arrays, labels = _cifar_c(tmp_path)
    ds = CifarCDataset(tmp_path, "snow", 3)
    assert len(ds) == 6
    x, y, i = ds[4]
    assert x.dtype == torch.uint8 and x.shape == (3, 8, 8)
    assert torch.equal(x, torch.from_numpy(arrays["snow"][2 * 6 + 4]).permute(2, 0, 1))
    assert int(y) == labels[4] and i == 4
    # N labels (not repeated) are accepted too
    _cifar_c(tmp_path, repeat_labels=False)
    assert int(CifarCDataset(tmp_path, "fog", 5)[5][1]) == labels[5]
    assert detect_layout(tmp_path) == "cifar_c"


def test_cifar_c_bad_roots_list_every_problem(tmp_path):
    _cifar_c(tmp_path, names=("fog",))
    with pytest.raises(ReleasedDataError) as e:
        ReleasedData(tmp_path, ["fog", "snow", "frost"])
    assert "snow.npy (missing)" in str(e.value) and "frost.npy (missing)" in str(e.value)
    np.save(tmp_path / "labels.npy", np.zeros(7, np.uint8))
    with pytest.raises(ReleasedDataError, match=r"labels.npy has shape \(7,\).*30 rows"):
        CifarCDataset(tmp_path, "fog", 1)
    np.save(tmp_path / "fog.npy", np.zeros((7, 8, 8, 3), np.uint8))
    with pytest.raises(ReleasedDataError, match="not 5 severities"):
        CifarCDataset(tmp_path, "fog", 1)
    with pytest.raises(ReleasedDataError, match="does not exist"):
        ReleasedData(tmp_path / "nope", ["fog"])


def _jpeg_tree(root, names=("fog",), severities=(1, 2), classes=("n01", "n02"), per_class=2, category=None):
    from PIL import Image

    rng = np.random.default_rng(1)
    for c in names:
        base = root / category / c if category else root / c
        for s in severities:
            for k in classes:
                d = base / str(s) / k
                d.mkdir(parents=True)
                for j in range(per_class):
                    Image.fromarray(rng.integers(0, 256, (10, 12, 3), dtype=np.uint8)).save(d / f"img{j}.JPEG")


def test_imagenet_c_tree_with_and_without_category_folders(tmp_path):
    _jpeg_tree(tmp_path / "a", names=("fog", "contrast"))
    _jpeg_tree(tmp_path / "b", names=("gaussian_noise",), category="noise")
    ds = CorruptedImageFolder(tmp_path / "a", "fog", 2)
    assert len(ds) == 4 and ds.classes == ["n01", "n02"]
    x, y, i = ds[3]
    assert x.shape == (3, 10, 12) and x.dtype == torch.uint8 and int(y) == 1 and i == 3
    ds_b = CorruptedImageFolder(tmp_path / "b", "gaussian_noise", 1, classes=["n00", "n01", "n02"])
    assert int(ds_b[0][1]) == 1  # label follows the given class order
    assert detect_layout(tmp_path / "a") == "imagenet_c" and detect_layout(tmp_path / "b") == "imagenet_c"
    rd = ReleasedData(tmp_path / "a", ["fog", "contrast"], severities=[1, 2])
    assert rd.layout == "imagenet_c" and len(rd.dataset("contrast", 1)) == 4


def test_imagenet_c_missing_folders_and_mismatched_counts(tmp_path):
    _jpeg_tree(tmp_path, names=("fog", "contrast"))
    import shutil

    shutil.rmtree(tmp_path / "contrast" / "2" / "n02")
    (tmp_path / "fog" / "1" / "n01" / "img0.JPEG").unlink()
    with pytest.raises(ReleasedDataError) as e:
        ReleasedData(tmp_path, ["fog", "contrast", "snow"], severities=[1, 2, 3])
    msg = str(e.value)
    for needle in (
        "snow/ (missing corruption folder)",
        "fog/3/ (missing severity folder)",
        "contrast/2: 1 class folder(s) missing",
        "fog/1: 3 images where other folders hold 4",
    ):
        assert needle in msg, needle


def test_cifar_p_dataset_and_difficulty_files(tmp_path):
    rng = np.random.default_rng(2)
    seq = rng.integers(0, 256, (4, 5, 8, 8, 3), dtype=np.uint8)
    np.save(tmp_path / "rotate.npy", seq)
    np.save(tmp_path / "gaussian_noise_2.npy", seq[:, :3])
    x, y, i = CifarPDataset(tmp_path, "rotate")[2]
    assert x.shape == (5, 3, 8, 8) and int(y) == -1 and i == 2
    assert torch.equal(x, torch.from_numpy(seq[2]).permute(0, 3, 1, 2))
    assert CifarPDataset(tmp_path, "gaussian_noise", difficulty=2)[0][0].shape[0] == 3
    assert detect_layout(tmp_path) == "cifar_p"
    with pytest.raises(ReleasedDataError, match="gaussian_noise_3.npy"):
        CifarPDataset(tmp_path, "gaussian_noise", difficulty=3)
    np.save(tmp_path / "labels.npy", np.arange(4))
    assert int(CifarPDataset(tmp_path, "rotate")[3][1]) == 3


def _write_mp4(path, frames):
    av = pytest.importorskip("av")
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=1)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv444p"
        stream.options = {"crf": "0"}
        for f in frames:
            for pkt in stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                out.mux(pkt)
        for pkt in stream.encode():
            out.mux(pkt)


def test_imagenet_p_videos_decode(tmp_path):
    frames = np.zeros((6, 16, 16, 3), np.uint8)
    for t in range(6):
        frames[t, :, : 2 + 2 * t] = 200  # a growing bright band
    _write_mp4(tmp_path / "translate" / "n01" / "a.mp4", frames)
    _write_mp4(tmp_path / "translate" / "n02" / "b.mp4", frames[::-1].copy())
    v = read_video(tmp_path / "translate" / "n01" / "a.mp4")
    assert v.shape == (6, 3, 16, 16) and v.dtype == torch.uint8
    # near-lossless H.264: the band is where it was written (colour conversion costs a few DN)
    assert (v.permute(0, 2, 3, 1).int() - torch.from_numpy(frames).int()).abs().max() <= 8
    ds = ImageNetPDataset(tmp_path, "translate")
    assert len(ds) == 2 and int(ds[1][1]) == 1
    assert detect_layout(tmp_path) == "imagenet_p"
    with pytest.raises(ReleasedDataError, match="rotate/ \\(missing\\)"):
        ReleasedData(tmp_path, ["translate", "rotate"], layout="imagenet_p")
