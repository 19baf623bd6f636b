"""Issue #14: every bad input, degenerate metric state and failing export gives a clear error (or a documented NaN
with a warning), never a silent wrong answer or a crash. One test (or parametrised case) per bullet of the issue."""

from __future__ import annotations

import errno
import os
import shutil
import stat
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf

import robust_train as rt
from robust_train.augment.corruption_train import CorruptionAugment
from robust_train.cli import corrupt as corrupt_cli
from robust_train.data.corrupted import (
    CifarCDataset,
    CorruptedImageFolder,
    ReleasedData,
    ReleasedDataError,
    detect_layout,
    read_video,
)
from robust_train.errors import (
    ArgumentError,
    BadFileError,
    IncompleteMetricError,
    IncompleteMetricWarning,
    OutputPathError,
    RobustTrainError,
)
from robust_train.evaluation import EvalSuite
from robust_train.evaluation import export as export_mod
from robust_train.evaluation.export import ExportError, export_dataset
from robust_train.losses.jsd import JsdCrossEntropy
from robust_train.metrics import CorruptionErrors, ExpectedCalibrationError, PerturbationStability, RMSCalibrationError
from robust_train.metrics import functional as MF
from robust_train.utils import ConfigError, check_checkpoint_file, check_trainer_config

from .evaluation.test_export import ToyImages

X = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
NAN = float("nan")


# ----------------------------------------------------------------------------------------------- per-sample arguments
@pytest.mark.parametrize("name", ["contrast", "saturate", "gaussian_noise", "fog"])
def test_nan_severity_is_an_error_naming_severity(name):
    with pytest.raises(ValueError, match=r"^severity: contains NaN"):
        rt.corrupt(X, name, torch.tensor([NAN, 3.0]))


@pytest.mark.parametrize("severity", [torch.tensor([float("inf"), 3.0]), NAN, (1.0, NAN)])
def test_non_finite_severity_forms(severity):
    with pytest.raises(ValueError, match="severity"):
        rt.corrupt(X, "contrast", severity)


def test_complex_severity_is_a_dtype_error():
    with pytest.raises(TypeError, match=r"severity: expected a real-valued tensor, got dtype torch.complex64"):
        rt.corrupt(X, "contrast", torch.tensor([1 + 0j, 2 + 0j]))


@pytest.mark.parametrize("seed", [2**63, -(2**63) - 1, 2**64])
def test_seed_outside_int64_names_seed(seed):
    with pytest.raises(ValueError, match=r"^seed: expected an int in"):
        rt.corrupt(X, "contrast", 3, seed=seed)
    with pytest.raises(ValueError, match=r"^seed: expected an int in"):
        rt.create_corruption("contrast", seed=seed)
    with pytest.raises(ValueError, match=r"^seed: expected an int in"):
        rt.create_corruption("contrast").params_for_indices([0, 1], seed=seed)


def test_float_seed_tensor_is_a_type_error():
    with pytest.raises(TypeError, match=r"^seed: expected an integer tensor"):
        rt.corrupt(X, "contrast", 3, seed=torch.tensor([1.5, 2.0]))


def test_jpeg_quality_nan_names_the_argument():
    with pytest.raises(ValueError, match=r"^jpeg_quality: expected an int, got nan"):
        rt.create_corruption("contrast", jpeg_quality=NAN)


def test_severity_range_with_seed_tensor_draws_per_sample():
    seeds = torch.tensor([1, 2])
    y = rt.corrupt(X, "contrast", (1.0, 5.0), seed=seeds)
    assert y.shape == X.shape
    # deterministic in (seed, range), and sample i depends on seed[i] only
    assert torch.equal(y, rt.corrupt(X, "contrast", (1.0, 5.0), seed=seeds))
    assert torch.equal(y[:1], rt.corrupt(X[:1], "contrast", (1.0, 5.0), seed=seeds[:1]))


def test_replayed_params_with_integer_apply():
    op = rt.create_corruption("contrast")
    params = op.params_for_indices([0, 1])
    params["apply"] = params["apply"].long()
    with pytest.raises(TypeError, match=r"params\['apply'\]: expected a \(B,\) bool tensor"):
        op(X, params)
    params = op.params_for_indices([0, 1])
    params["severity"] = torch.tensor([NAN, 2.0], dtype=torch.float64)
    with pytest.raises(ValueError, match=r"params\['severity'\]: contains NaN"):
        op(X, params)


def test_unknown_names_suggest_close_matches():
    with pytest.raises(ValueError, match="Did you mean 'jpeg_compression'"):
        rt.create_corruption("jpeg")
    with pytest.raises(ValueError, match=r"unknown eval_suite 'c16'\. Did you mean .*'c15'"):
        CorruptionAugment(eval_suite="c16")
    with pytest.raises(ValueError, match="Did you mean 'zoom_blur'"):
        CorruptionAugment(eval_suite=["zoom_blurr"])
    with pytest.raises(ValueError, match="unknown corruption suite 'c20'"):
        rt.list_corruptions("c20")


def test_errors_are_one_hierarchy_and_keep_builtin_bases():
    with pytest.raises(RobustTrainError):
        rt.corrupt(X, "contrast", torch.tensor([NAN, 3.0]))
    assert issubclass(ArgumentError, ValueError) and issubclass(OutputPathError, OSError)
    assert issubclass(ExportError, RobustTrainError) and issubclass(ConfigError, RobustTrainError)


# ------------------------------------------------------------------------------------------------------------ metrics
def _preds(error: float, n: int = 10) -> tuple[torch.Tensor, torch.Tensor]:
    target = torch.zeros(n, dtype=torch.long)
    preds = target.clone()
    preds[: round(error * n)] = 1
    return preds, target


def test_corruption_errors_warn_on_missing_cells_and_keep_keys():
    m = CorruptionErrors(["fog", "snow"], [1, 2])
    m.update(*_preds(0.5), "fog", 1)
    m.update(*_preds(0.5), "fog", 2)
    m.update(*_preds(0.5), "snow", 1)
    with pytest.warns(IncompleteMetricWarning, match=r"1 of 4 .*snow/s2"):
        flat = m.flat(prefix="val/")
    for key in ("val/mce", "val/mce_unnorm", "val/c/snow/s2/err", "val/c/snow/ce"):
        assert key in flat and np.isnan(flat[key]), key
    assert flat["val/c/fog/s1/err"] == 0.5


def test_corruption_errors_input_checks():
    with pytest.raises(TypeError, match="corruptions: expected a list of names, got the string 'fog'"):
        CorruptionErrors("fog", baseline=None)
    m = CorruptionErrors(["fog"], [1, 2], baseline=None)
    with pytest.raises(ValueError, match=r"^severity: expected an int, got 1.7"):
        m.update(*_preds(0.5), "fog", 1.7)
    with pytest.raises(ValueError, match="preds: contains NaN"):
        m.update(torch.tensor([[NAN, 0.0], [1.0, 0.0]]), torch.tensor([0, 0]), "fog", 1)
    with pytest.raises(ValueError, match="severities"):
        CorruptionErrors(["fog"], [1.5], baseline=None)
    with pytest.raises(TypeError, match="perturbations: expected a list of names"):
        PerturbationStability("rotate")


def test_perturbation_stability_warns_before_update():
    m = PerturbationStability(["rotate", "scale"])
    m.update(torch.randn(2, 3, 4), "rotate")
    with pytest.warns(IncompleteMetricWarning, match=r"\['scale'\]"):
        r = m.compute()
    assert torch.isnan(r["fp"][1]) and not torch.isnan(r["fp"][0])
    with pytest.raises(ValueError, match="logits: contains NaN"):
        m.update(torch.full((1, 3, 4), NAN), "rotate")


def test_functional_mce_rejects_percentages_zero_baselines_and_mismatched_tables():
    base = MF.alexnet_errors(["fog", "snow"])
    err = base * 0.5
    assert MF.mean_corruption_error(err, base).item() == pytest.approx(0.5)
    with pytest.raises(ValueError, match=r"errors: expected error rates as fractions .*percentages"):
        MF.mean_corruption_error(err * 100, base)
    with pytest.raises(IncompleteMetricError, match="sum to 0"):
        MF.mean_corruption_error(err, torch.zeros_like(base))
    # rows matched by name, whatever the order; different names are an error
    by_name = {"snow": err[1], "fog": err[0]}
    assert MF.mean_corruption_error(by_name, None).item() == pytest.approx(0.5)
    assert MF.corruption_error(by_name, {"fog": base[0], "snow": base[1]}).tolist() == pytest.approx([0.5, 0.5])
    with pytest.raises(ValueError, match=r"missing from baseline \['snow'\]"):
        MF.mean_corruption_error(by_name, {"fog": base[0], "frost": base[1]})


def test_calibration_without_data_is_nan_with_warning_and_empty_batches_are_fine():
    for m in (ExpectedCalibrationError(), RMSCalibrationError()):
        m.update(torch.zeros(0, 4), torch.zeros(0, dtype=torch.long))  # a DDP rank with an empty shard
        with pytest.warns(IncompleteMetricWarning, match="no samples"):
            assert torch.isnan(m.compute())
        m.update(torch.tensor([[0.9, 0.1]]), torch.tensor([0]))
        assert m.compute().item() == pytest.approx(0.1 if isinstance(m, ExpectedCalibrationError) else 0.0)
    with pytest.raises(ValueError, match="probs: contains NaN"):
        MF.expected_calibration_error(torch.tensor([[NAN, 1.0]]), torch.tensor([0]))


@pytest.mark.parametrize("n", [66, 64])
def test_jsd_eval_mode_is_plain_cross_entropy(n):
    g = torch.Generator().manual_seed(n)
    logits, y = torch.randn(n, 10, generator=g), torch.randint(0, 10, (n,), generator=g)
    loss = JsdCrossEntropy(num_splits=3).eval()
    assert loss(logits, y).item() == pytest.approx(F.cross_entropy(logits, y).item(), abs=1e-6)
    assert loss.train()(torch.cat([logits] * 3), y).item() == pytest.approx(F.cross_entropy(logits, y).item(), abs=1e-5)


# ------------------------------------------------------------------------------------------------------------ loaders
def _cifar_root(root, n=4):
    rng = np.random.default_rng(0)
    np.save(root / "fog.npy", rng.integers(0, 256, (5 * n, 8, 8, 3), dtype=np.uint8))
    np.save(root / "labels.npy", np.tile(np.arange(n, dtype=np.uint8), 5))


@pytest.mark.parametrize("kind", ["truncated", "empty", "text", "pickled"])
def test_unreadable_npy_names_the_file(tmp_path, kind):
    _cifar_root(tmp_path)
    path = tmp_path / "fog.npy"
    if kind == "truncated":
        path.write_bytes(path.read_bytes()[:300])
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "text":
        path.write_text("0 1 2 3\n")
    else:
        np.save(path, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(BadFileError, match=r"fog\.npy: not a readable \.npy array"):
        CifarCDataset(tmp_path, "fog", 1)
    with pytest.raises(ReleasedDataError, match=r"fog\.npy"):
        ReleasedData(tmp_path, ["fog"])


def test_three_d_cifar_c_array_is_not_taken_for_cifar_p(tmp_path):
    np.save(tmp_path / "fog.npy", np.zeros((20, 8, 8), np.uint8))
    np.save(tmp_path / "labels.npy", np.zeros(20, np.uint8))
    assert detect_layout(tmp_path) == "cifar_c"
    with pytest.raises(ReleasedDataError, match=r"fog\.npy: expected uint8 \(5N, H, W, 3\)"):
        ReleasedData(tmp_path, ["fog"])


def _jpeg_tree(root, per_class=2):
    from PIL import Image

    rng = np.random.default_rng(1)
    for c in ("fog", "snow"):
        for s in (1, 2, 3, 4, 5):
            d = root / c / str(s) / "n01"
            d.mkdir(parents=True)
            for j in range(per_class):
                Image.fromarray(rng.integers(0, 256, (10, 12, 3), dtype=np.uint8)).save(d / f"img{j}.JPEG")


def test_one_extra_jpeg_blames_its_own_folder(tmp_path):
    _jpeg_tree(tmp_path)
    shutil.copy(tmp_path / "fog/1/n01/img0.JPEG", tmp_path / "fog/1/n01/extra.JPEG")
    with pytest.raises(ReleasedDataError) as e:
        ReleasedData(tmp_path, ["fog", "snow"])
    problems = [line for line in str(e.value).splitlines() if line.strip().startswith("-")]
    assert problems == ["  - fog/1: 3 images where other folders hold 2"]


def test_truncated_jpeg_names_the_path(tmp_path):
    _jpeg_tree(tmp_path)
    path = tmp_path / "fog/2/n01/img1.JPEG"
    path.write_bytes(path.read_bytes()[:120])
    ds = CorruptedImageFolder(tmp_path, "fog", 2)
    with pytest.raises(BadFileError, match=r"img1\.JPEG: cannot decode the image"):
        ds[1]


def test_truncated_mp4_names_the_file(tmp_path):
    from .evaluation.test_released import _write_mp4

    frames = np.random.default_rng(0).integers(0, 256, (4, 16, 16, 3), dtype=np.uint8)
    path = tmp_path / "a.mp4"
    _write_mp4(path, frames)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 3])
    with pytest.raises(BadFileError, match=r"a\.mp4"):
        read_video(path)
    # moov atom first (faststart): a cut file decodes its first frames silently unless frames are counted
    av = pytest.importorskip("av")
    fast = tmp_path / "fast.mp4"
    with av.open(str(fast), "w", options={"movflags": "faststart"}) as out:
        st = out.add_stream("libx264", rate=1)
        st.width, st.height, st.pix_fmt = 16, 16, "yuv420p"
        for f in np.random.default_rng(0).integers(0, 256, (8, 16, 16, 3), dtype=np.uint8):
            for pkt in st.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                out.mux(pkt)
        for pkt in st.encode():
            out.mux(pkt)
    assert read_video(fast).shape[0] == 8
    full = fast.read_bytes()
    for k, msg in ((7, r"truncated video, 0 of 8 frames"), (20, r"(truncated video, \d of 8 frames|cannot decode)")):
        fast.write_bytes(full[: len(full) * k // 40])
        with pytest.raises(BadFileError, match=rf"fast\.mp4: {msg}"):
            read_video(fast)
    (tmp_path / "b.mp4").write_bytes(b"not a video")
    with pytest.raises(BadFileError, match=r"b\.mp4"):
        read_video(tmp_path / "b.mp4")


# ------------------------------------------------------------------------------------------------------------- export
def _suite(**kw) -> EvalSuite:
    kw.setdefault("corruptions", ["contrast"])
    return EvalSuite(name="t", num_images=5, seed=3, batch_size=2, **kw)


def _run_cli(argv, capsys):
    code = corrupt_cli.main(argv)
    err = capsys.readouterr().err
    return code, err


def test_cli_export_argument_errors(tmp_path, capsys):
    base = ["export", "--data", "synthetic", "--suite", "c15", "--corruptions", "contrast", "--no-progress"]
    code, err = _run_cli([*base, "--out", ""], capsys)
    assert code == 2 and "--out: expected an output folder" in err and "Traceback" not in err
    code, err = _run_cli([*base, "--out", str(tmp_path / "o"), "--batch-size", "0"], capsys)
    assert code == 2 and "--batch-size: expected a positive int, got 0" in err
    code, err = _run_cli([*base, "--out", str(tmp_path / "o"), "--num-images", "100000"], capsys)
    assert code == 2 and "--num-images: asked for 100000 images" in err and "has 256" in err
    assert not (tmp_path / "o").exists()


def test_cli_export_settings_mismatch_is_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(
        "robust_train.evaluation.export.export_dataset",
        lambda *a, **k: (_ for _ in ()).throw(ExportError("holds an export with different settings")),
    )
    code, err = _run_cli(["export", "--data", "synthetic", "--out", str(tmp_path), "--no-progress"], capsys)
    assert code == 2 and err.strip() == "robust-corrupt export: error: holds an export with different settings"


def test_export_out_is_a_file_or_read_only(tmp_path, monkeypatch):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(OutputPathError, match="exists and is not a folder"):
        export_dataset(ToyImages(), f, _suite(), progress=False)
    with pytest.raises(OutputPathError, match="is a file"):
        export_dataset(ToyImages(), f / "sub", _suite(), progress=False)
    with pytest.raises(ArgumentError, match="out_dir"):
        export_dataset(ToyImages(), "", _suite(), progress=False)
    with pytest.raises(ArgumentError, match="batch_size"):
        export_dataset(ToyImages(), tmp_path / "b", _suite(), batch_size=0, progress=False)
    monkeypatch.setattr(export_mod.os, "access", lambda *a: False)  # root can write anywhere: simulate read-only
    with pytest.raises(OutputPathError, match="permission denied"):
        export_dataset(ToyImages(), tmp_path / "ro", _suite(), progress=False)


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores folder permissions")
def test_export_into_read_only_folder(tmp_path):  # pragma: no cover - runs as non-root only
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        with pytest.raises(OutputPathError, match="permission denied"):
            export_dataset(ToyImages(), ro, _suite(), progress=False)
    finally:
        ro.chmod(0o755)


def test_export_checks_free_space_up_front(tmp_path, monkeypatch):
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(export_mod.shutil, "disk_usage", lambda p: usage._replace(free=1000))
    with pytest.raises(OutputPathError, match=r"not enough free space .* needs about"):
        export_dataset(ToyImages(), tmp_path / "o", _suite(), progress=False)
    monkeypatch.setattr(export_mod.shutil, "disk_usage", lambda p: usage._replace(free=100))
    with pytest.raises(OutputPathError, match=r"needs about 960 B, 100 B are free"):
        export_dataset(ToyImages(), tmp_path / "j", _suite(), layout="imagenet_c", progress=False)


def test_full_disk_while_allocating_the_memory_map_is_an_error_not_sigbus(tmp_path, monkeypatch):
    def enospc(fd, off, n):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(export_mod.os, "posix_fallocate", enospc)
    with pytest.raises(OutputPathError, match=r"no space left on the device .*\.contrast\.npy\.partial"):
        export_dataset(ToyImages(), tmp_path / "o", _suite(), progress=False)
    monkeypatch.undo()
    # resuming after space was freed gives the same bytes as an uninterrupted export
    export_dataset(ToyImages(), tmp_path / "o", _suite(), progress=False)
    export_dataset(ToyImages(), tmp_path / "ref", _suite(), progress=False)
    assert (tmp_path / "o/contrast.npy").read_bytes() == (tmp_path / "ref/contrast.npy").read_bytes()


def test_fallocate_fallback_fills_holes_only(tmp_path, monkeypatch):
    def unsupported(fd, off, n):
        raise OSError(errno.EOPNOTSUPP, "Operation not supported")

    monkeypatch.setattr(export_mod.os, "posix_fallocate", unsupported)
    export_dataset(ToyImages(), tmp_path / "o", _suite(), progress=False)
    monkeypatch.undo()
    export_dataset(ToyImages(), tmp_path / "ref", _suite(), progress=False)
    assert (tmp_path / "o/contrast.npy").read_bytes() == (tmp_path / "ref/contrast.npy").read_bytes()


def test_full_disk_in_jpeg_layout_is_an_output_path_error(tmp_path, monkeypatch):
    def full(path, write, mode="wb"):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(export_mod, "atomic_write", full)
    with pytest.raises(OutputPathError, match="no space left on the device"):
        export_dataset(ToyImages(), tmp_path / "o", _suite(), layout="imagenet_c", progress=False)


def test_resume_removes_orphaned_temporaries_and_files_respect_umask(tmp_path):
    out = tmp_path / "tree"
    with pytest.raises(KeyboardInterrupt):
        export_dataset(ToyImages(fail_after=9), out, _suite(severities=[2]), layout="imagenet_c", progress=False)
    orphan = next(out.rglob("*.JPEG")).parent / ".00000101.JPEG.abc123.tmp"
    orphan.write_bytes(b"half a jpeg")
    old = os.umask(0o022)
    try:
        export_dataset(ToyImages(), out, _suite(severities=[2]), layout="imagenet_c", progress=False)
        export_dataset(ToyImages(), tmp_path / "c", _suite(), progress=False)
    finally:
        os.umask(old)
    assert not list(out.rglob("*.tmp"))
    for p in [*out.rglob("*.JPEG"), out / "export_manifest.json", *(tmp_path / "c").iterdir()]:
        assert stat.S_IMODE(p.stat().st_mode) == 0o644, p


# ---------------------------------------------------------------------------------------------------------------- CLI
def test_checkpoint_files_are_checked_naming_the_file(tmp_path):
    rnd = tmp_path / "random.ckpt"
    rnd.write_bytes(os.urandom(2000))
    with pytest.raises(BadFileError, match=r"random\.ckpt' is not a readable PyTorch checkpoint"):
        check_checkpoint_file(rnd)
    good = tmp_path / "good.ckpt"
    torch.save({"state_dict": {"w": torch.zeros(1000)}}, good)
    check_checkpoint_file(good)
    cut = tmp_path / "cut.ckpt"
    cut.write_bytes(good.read_bytes()[:1500])
    with pytest.raises(BadFileError, match=r"cut\.ckpt"):
        check_checkpoint_file(cut)
    with pytest.raises(ConfigError, match="is a folder"):
        check_checkpoint_file(tmp_path)
    with pytest.raises(ConfigError, match="does not exist"):
        check_checkpoint_file(tmp_path / "missing.ckpt")
    (tmp_path / "empty.ckpt").write_bytes(b"")
    with pytest.raises(BadFileError, match="is empty"):
        check_checkpoint_file(tmp_path / "empty.ckpt")


@pytest.mark.parametrize(
    ("key", "value"), [("max_epochs", "abc"), ("max_epochs", 1.5), ("limit_val_batches", "x"), ("fast_dev_run", "y")]
)
def test_trainer_numeric_options_are_type_checked(key, value):
    with pytest.raises(ConfigError, match=rf"^trainer\.{key}: expected"):
        check_trainer_config(OmegaConf.create({"_target_": "lightning.pytorch.Trainer", key: value}))
    check_trainer_config(OmegaConf.create({"max_epochs": 3, "limit_val_batches": 0.5, "fast_dev_run": True}))


def test_trainer_check_runs_in_build_run():
    from robust_train.utils.builders import check_config

    cfg = OmegaConf.create(
        {"data": {"_target_": "x"}, "model": {"_target_": "y"}, "trainer": {"_target_": "z", "max_epochs": "abc"}}
    )
    with pytest.raises(ConfigError, match="trainer.max_epochs"):
        check_config(cfg)


def test_no_warning_for_complete_metrics():
    m = CorruptionErrors(["fog"], [1], baseline=None)
    m.update(*_preds(0.5), "fog", 1)
    with warnings.catch_warnings():
        warnings.simplefilter("error", IncompleteMetricWarning)
        assert m.flat() == {"c/fog/s1/err": 0.5, "c/fog/err": 0.5, "mce_unnorm": 0.5}


def test_config_value_rejected_by_a_constructor_is_one_config_error():
    from hydra.utils import instantiate

    from robust_train.utils.utils import task_wrapper

    cfg = OmegaConf.create(
        {
            "paths": {"output_dir": "x"},
            "augment": {"_target_": "robust_train.augment.CorruptionAugment", "eval_suite": "c16"},
        }
    )
    with pytest.raises(ConfigError, match=r"^augment: unknown eval_suite 'c16'\. Did you mean"):
        task_wrapper(lambda c: instantiate(c.augment))(cfg)
