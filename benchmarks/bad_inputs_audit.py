"""Issue 14's audit: run a catalogue of bad inputs, degenerate metric states and failing exports against the public
API, the loaders and the command-line tools, and classify each outcome.

Outcomes:

* ``ok``: a bad input raised an exception (or a CLI exited non-zero with one line, no traceback) whose message names
  the argument or file; a valid or degenerate input returned the right value (degenerate: with a warning).
* ``unclear``: an error of the expected kind whose message does not name the argument / file, or a CLI traceback.
* ``silent``: a wrong answer without an error (a bad input accepted, a wrong value returned, a CLI exit status 0).
* ``crash``: an unexpected exception type (RuntimeError, IndexError, UnpicklingError, ...) or a signal.

Only APIs that already existed at the issue's base commit are used, so the same script measures the base and the fix::

    PYTHONPATH=$PWD python benchmarks/bad_inputs_audit.py [--tiny-fs /mnt/64k-tmpfs] [--no-cli]
    PYTHONPATH=/tmp/base python /path/to/bad_inputs_audit.py ...        # the same catalogue against another checkout

``--tiny-fs`` is a folder on a nearly full filesystem (root: ``mount -t tmpfs -o size=64k tmpfs DIR``); without it
the full-disk cases are skipped. The script is a report: it prints the table (and the non-ok cases) and exits 0.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import math
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import warnings
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

EXPECTED_TYPES = (ValueError, TypeError, OSError, LookupError)
RESULTS: list[tuple[str, str, str, str]] = []  # (category, case, outcome, detail)
NAN = float("nan")


def _record(cat: str, case: str, outcome: str, detail: str = "") -> None:
    RESULTS.append((cat, case, outcome, detail.replace("\n", " ")[:200]))


def _classify_exc(e: BaseException, names: list[str]) -> tuple[str, str]:
    msg = f"{type(e).__name__}: {e}"
    expected = isinstance(e, EXPECTED_TYPES) or type(e).__name__ == "ExportError"
    if not expected:
        return "crash", msg
    return ("ok" if any(n in str(e) for n in names) else "unclear"), msg


def bad(cat: str, case: str, fn: Callable[[], Any], names: list[str]) -> None:
    """A bad input: must raise, naming one of ``names``."""
    try:
        out = fn()
    except Exception as e:  # noqa: BLE001
        _record(cat, case, *_classify_exc(e, names))
        return
    _record(cat, case, "silent", f"returned {_short(out)}")


def valid(cat: str, case: str, fn: Callable[[], Any], check: Callable[[Any], bool]) -> None:
    """A valid input: must return a value that passes ``check``."""
    try:
        out = fn()
    except Exception as e:  # noqa: BLE001
        outcome, msg = _classify_exc(e, [])
        _record(cat, case, "crash" if outcome == "crash" else "unclear", msg)
        return
    _record(cat, case, "ok" if check(out) else "silent", f"returned {_short(out)}")


def degenerate(cat: str, case: str, fn: Callable[[], Any], names: list[str], check: Callable[[Any], bool]) -> None:
    """A degenerate state: raise naming ``names``, or return a value passing ``check`` *with* a warning."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            out = fn()
        except Exception as e:  # noqa: BLE001
            _record(cat, case, *_classify_exc(e, names))
            return
    ours = [w for w in caught if "before the ``update``" not in str(w.message)]  # torchmetrics' generic warning
    ok = check(out) and bool(ours)
    _record(
        cat, case, "ok" if ok else "silent", f"returned {_short(out)}; warnings: {[str(w.message)[:60] for w in ours]}"
    )


def _short(x: Any) -> str:
    if isinstance(x, torch.Tensor):
        return f"tensor{tuple(x.shape)} nan={bool(torch.isnan(x).any()) if x.is_floating_point() else False}"
    return repr(x)[:80]


# ------------------------------------------------------------------------------------------------ per-sample arguments
def corruption_cases() -> None:
    import robust_train as rt

    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    cat = "per-sample arguments"
    for name in rt.list_corruptions("c19"):
        bad(
            cat, f"{name}: NaN severity tensor", lambda n=name: rt.corrupt(x, n, torch.tensor([NAN, 3.0])), ["severity"]
        )
    for name in ("contrast", "gaussian_noise", "glass_blur"):
        bad(cat, f"{name}: inf severity", lambda n=name: rt.corrupt(x, n, torch.tensor([math.inf, 3.0])), ["severity"])
        bad(
            cat,
            f"{name}: complex severity",
            lambda n=name: rt.corrupt(x, n, torch.tensor([1 + 0j, 2 + 0j])),
            ["severity: expected a real"],
        )
        bad(cat, f"{name}: severity 0", lambda n=name: rt.corrupt(x, n, 0), ["severity"])
        bad(cat, f"{name}: severity NaN float", lambda n=name: rt.corrupt(x, n, NAN), ["severity"])
        bad(cat, f"{name}: severity (1, NaN)", lambda n=name: rt.corrupt(x, n, (1.0, NAN)), ["severity"])
        for seed in (2**63, -(2**63) - 1, 2**64):
            bad(cat, f"{name}: corrupt seed={seed}", lambda n=name, s=seed: rt.corrupt(x, n, 3, seed=s), ["seed"])
        bad(cat, f"{name}: create_corruption seed=2**64", lambda n=name: rt.create_corruption(n, seed=2**64), ["seed"])
        bad(
            cat,
            f"{name}: params_for_indices seed=2**63",
            lambda n=name: rt.create_corruption(n).params_for_indices([0, 1], 2**63),
            ["seed"],
        )
        bad(
            cat,
            f"{name}: float seed tensor",
            lambda n=name: rt.corrupt(x, n, 3, seed=torch.tensor([0.5, 1.5])),
            ["seed"],
        )
        valid(
            cat,
            f"{name}: severity (1, 5) with seed tensor",
            lambda n=name: rt.corrupt(x, n, (1.0, 5.0), seed=torch.tensor([1, 2])),
            lambda y: y.shape == x.shape and bool(torch.isfinite(y).all()),
        )
        bad(
            cat, f"{name}: jpeg_quality=nan", lambda n=name: rt.create_corruption(n, jpeg_quality=NAN), ["jpeg_quality"]
        )

        def int_apply(n: str = name) -> Any:
            op = rt.create_corruption(n)
            p = op.params_for_indices([0, 1])
            p["apply"] = p["apply"].long()
            return op(x, p)

        bad(cat, f"{name}: replayed params with int apply", int_apply, ["apply"])
    bad(
        cat,
        "unknown name 'jpeg'",
        lambda: rt.create_corruption("jpeg"),
        ["did you mean 'jpeg_compression'", "Did you mean 'jpeg_compression'"],
    )
    bad(
        cat,
        "unknown name 'gausian_noise'",
        lambda: rt.create_corruption("gausian_noise"),
        ["Did you mean 'gaussian_noise'"],
    )

    from robust_train.augment.corruption_train import CorruptionAugment

    bad(cat, "CorruptionAugment(eval_suite='c16')", lambda: CorruptionAugment(eval_suite="c16"), ["c16"])
    bad(cat, "CorruptionAugment(eval_suite=['fogg'])", lambda: CorruptionAugment(eval_suite=["fogg"]), ["fogg"])

    from robust_train.sequences import perturb_sequence

    for seed in (2**63, 2**64):
        bad(cat, f"perturb_sequence seed={seed}", lambda s=seed: perturb_sequence(x, "rotate", seed=s), ["seed"])
    bad(cat, "perturb_sequence difficulty=4", lambda: perturb_sequence(x, "rotate", difficulty=4), ["difficulty"])


# ------------------------------------------------------------------------------------------------------------ metrics
def metric_cases() -> None:
    from robust_train.losses.jsd import JsdCrossEntropy
    from robust_train.metrics import (
        CorruptionErrors,
        ExpectedCalibrationError,
        PerturbationStability,
        RMSCalibrationError,
    )
    from robust_train.metrics import functional as MF

    cat = "metrics"
    t = torch.zeros(10, dtype=torch.long)
    p = t.clone()
    p[:5] = 1

    def missing_cell() -> Any:
        m = CorruptionErrors(["fog", "snow"], [1, 2])
        for c, s in (("fog", 1), ("fog", 2), ("snow", 1)):
            m.update(p, t, c, s)
        return m.flat()

    degenerate(
        cat,
        "CorruptionErrors: one cell never updated -> flat()",
        missing_cell,
        ["snow"],
        lambda f: "mce" in f and "mce_unnorm" in f,
    )

    def missing_corruption() -> Any:
        m = CorruptionErrors(["fog", "snow"], [1])
        m.update(p, t, "fog", 1)
        return m.compute()

    degenerate(
        cat, "CorruptionErrors: a corruption never updated -> compute()", missing_corruption, ["snow"], lambda r: True
    )
    bad(cat, "CorruptionErrors('fog') (a str)", lambda: CorruptionErrors("fog", baseline=None), ["corruptions"])

    def frac_sev() -> Any:
        m = CorruptionErrors(["fog"], [1, 2], baseline=None)
        m.update(p, t, "fog", 1.7)
        return m.compute()["error"]

    bad(cat, "CorruptionErrors severity 1.7", frac_sev, ["severity"])

    def nan_logits() -> Any:
        m = CorruptionErrors(["fog"], [1], baseline=None)
        m.update(torch.full((4, 3), NAN), torch.zeros(4, dtype=torch.long), "fog", 1)
        return m.compute()["error"]

    bad(cat, "CorruptionErrors NaN logits", nan_logits, ["NaN"])
    base = MF.alexnet_errors(["fog", "snow"])
    bad(
        cat,
        "functional mCE with percentages",
        lambda: MF.mean_corruption_error(base * 50, base),
        ["percentages", "fractions"],
    )
    bad(
        cat,
        "functional mCE all-zero baseline",
        lambda: MF.mean_corruption_error(base / 2, torch.zeros_like(base)),
        ["baseline"],
    )

    def reordered() -> Any:
        errs = {"snow": base[1] / 2, "fog": base[0] / 2}  # a model's table, rows in another order than the baseline's
        try:
            return MF.mean_corruption_error(errs, None)  # name-keyed tables (rows matched by name)
        except AttributeError:  # a version without them: tensors, whose rows cannot be matched
            return MF.mean_corruption_error(torch.stack(list(errs.values())), base)

    valid(cat, "functional mCE, tables in different row order", reordered, lambda v: abs(float(v) - 0.5) < 1e-9)

    def ece_empty() -> Any:
        return ExpectedCalibrationError().compute()

    degenerate(cat, "ECE compute() without data", ece_empty, ["no sample", "empty"], lambda v: bool(torch.isnan(v)))
    degenerate(
        cat,
        "RMS compute() without data",
        lambda: RMSCalibrationError().compute(),
        ["no sample"],
        lambda v: bool(torch.isnan(v)),
    )

    def stab_empty() -> Any:
        return PerturbationStability(["rotate"]).compute()["fp"]

    degenerate(cat, "PerturbationStability before update", stab_empty, ["rotate"], lambda v: bool(torch.isnan(v).all()))
    for cls in (ExpectedCalibrationError, RMSCalibrationError):

        def empty_batch(c: Any = cls) -> Any:
            m = c()
            m.update(torch.zeros(0, 4), torch.zeros(0, dtype=torch.long))
            m.update(torch.tensor([[0.9, 0.1]]), torch.tensor([0]))
            return m.compute()

        valid(cat, f"{cls.__name__}: empty (0, K) batch update", empty_batch, lambda v: bool(torch.isfinite(v)))
    bad(
        cat,
        "ECE NaN probs",
        lambda: MF.expected_calibration_error(torch.tensor([[NAN, 1.0]]), torch.tensor([0])),
        ["NaN"],
    )
    for n in (66, 64):
        g = torch.Generator().manual_seed(n)
        logits, y = torch.randn(n, 10, generator=g), torch.randint(0, 10, (n,), generator=g)
        ce = torch.nn.functional.cross_entropy(logits, y)
        valid(
            cat,
            f"JsdCrossEntropy eval mode, {n} samples",
            lambda lg=logits, yy=y: JsdCrossEntropy().eval()(lg, yy),
            lambda v, c=ce: abs(float(v) - float(c)) < 1e-5,
        )


# ------------------------------------------------------------------------------------------------------------ loaders
def loader_cases(tmp: Path) -> None:
    from PIL import Image

    from robust_train.data.corrupted import CifarCDataset, CorruptedImageFolder, ReleasedData, detect_layout, read_video

    cat = "loaders"
    rng = np.random.default_rng(0)
    for kind in ("truncated", "empty", "text", "pickled"):
        root = tmp / f"npy_{kind}"
        root.mkdir()
        np.save(root / "fog.npy", rng.integers(0, 256, (20, 8, 8, 3), dtype=np.uint8))
        np.save(root / "labels.npy", np.tile(np.arange(4, dtype=np.uint8), 5))
        path = root / "fog.npy"
        if kind == "truncated":
            path.write_bytes(path.read_bytes()[:300])
        elif kind == "empty":
            path.write_bytes(b"")
        elif kind == "text":
            path.write_text("0 1 2 3\n")
        else:
            np.save(path, np.array([{"a": 1}], dtype=object), allow_pickle=True)
        bad(cat, f"{kind} .npy (CifarCDataset)", lambda r=root: CifarCDataset(r, "fog", 1)[0], ["fog.npy"])
        bad(cat, f"{kind} .npy (ReleasedData)", lambda r=root: ReleasedData(r, ["fog"]), ["fog.npy"])
    root = tmp / "npy_3d"
    root.mkdir()
    np.save(root / "fog.npy", np.zeros((20, 8, 8), np.uint8))
    np.save(root / "labels.npy", np.zeros(20, np.uint8))
    valid(cat, "3-D CIFAR-C array: layout", lambda: detect_layout(root), lambda v: v == "cifar_c")

    tree = tmp / "tree"
    for c in ("fog", "snow"):
        for s in range(1, 6):
            d = tree / c / str(s) / "n01"
            d.mkdir(parents=True)
            for j in range(2):
                Image.fromarray(rng.integers(0, 256, (10, 12, 3), dtype=np.uint8)).save(d / f"img{j}.JPEG")
    shutil.copy(tree / "fog/1/n01/img0.JPEG", tree / "fog/1/n01/extra.JPEG")

    def extra_file() -> Any:
        try:
            return ReleasedData(tree, ["fog", "snow"])
        except ValueError as e:
            lines = [ln for ln in str(e).splitlines() if ln.strip().startswith("-")]
            if all("fog/1" in ln for ln in lines):
                raise
            raise ValueError("blames other folders: " + " | ".join(lines[:2])) from None

    bad(cat, "one extra JPEG in fog/1", extra_file, ["fog/1"])
    (tree / "fog/1/n01/extra.JPEG").unlink()
    path = tree / "fog/2/n01/img1.JPEG"
    path.write_bytes(path.read_bytes()[:120])
    bad(cat, "truncated JPEG", lambda: CorruptedImageFolder(tree, "fog", 2)[1], ["img1.JPEG"])
    try:
        import av

        for faststart, cuts in ((False, (13, 32, 35, 36)), (True, (1, 4, 5, 7, 20))):
            mp4 = tmp / f"full_{faststart}.mp4"
            with av.open(str(mp4), "w", options={"movflags": "faststart"} if faststart else {}) as out:
                st = out.add_stream("libx264", rate=1)
                st.width, st.height, st.pix_fmt = 16, 16, "yuv420p"
                for f in rng.integers(0, 256, (8, 16, 16, 3), dtype=np.uint8):
                    for pkt in st.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                        out.mux(pkt)
                for pkt in st.encode():
                    out.mux(pkt)
            full = mp4.read_bytes()
            for k in cuts:  # cut points that gave different NumPy / PyAV failures (and silent short videos)
                cut = tmp / f"cut_{int(faststart)}_{k}.mp4"
                cut.write_bytes(full[: len(full) * k // 40])
                bad(cat, f".mp4 cut at {k}/40 (faststart={faststart})", lambda c=cut: read_video(c), [cut.name])
        (tmp / "b.mp4").write_bytes(b"not a video")
        bad(cat, "text file named .mp4", lambda: read_video(tmp / "b.mp4"), ["b.mp4"])
    except ImportError:  # pragma: no cover
        pass


# ------------------------------------------------------------------------------------------------------------- export
class _Toy(torch.utils.data.Dataset):
    def __init__(self, n: int = 8, fail_after: int | None = None) -> None:
        g = torch.Generator().manual_seed(0)
        self.x = torch.randint(0, 256, (n, 3, 16, 16), generator=g, dtype=torch.uint8)
        self.y = torch.arange(n) % 3
        self.classes = ["cat", "dog", "eel"]
        self.fail_after, self.reads = fail_after, 0

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> Any:
        self.reads += 1
        if self.fail_after is not None and self.reads > self.fail_after:
            raise KeyboardInterrupt
        return self.x[i], self.y[i], 100 + i


def _cli(argv: list[str]) -> tuple[int, str]:
    from robust_train.cli import corrupt as corrupt_cli

    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = corrupt_cli.main(argv)
        except SystemExit as e:
            code = int(e.code or 0)
        except BaseException as e:  # noqa: BLE001 - what a user would see: a traceback
            import traceback

            traceback.print_exc(file=err)
            code = 1
            err.write(f"{type(e).__name__}: {e}")
    return code, err.getvalue()


def cli_case(cat: str, case: str, run: Callable[[], tuple[int, str]], names: list[str]) -> None:
    """A failing command line: non-zero exit, one message naming ``names``, no traceback."""
    code, err = run()
    if code < 0:
        _record(cat, case, "crash", f"signal {signal.Signals(-code).name}")
    elif code == 0:
        _record(cat, case, "silent", "exit status 0")
    elif "Traceback" in err or not any(n in err for n in names):
        _record(cat, case, "unclear", f"exit {code}: {err.strip().splitlines()[-1] if err.strip() else ''}")
    else:
        _record(cat, case, "ok", f"exit {code}: {err.strip().splitlines()[-1]}")


def export_cases(tmp: Path, tiny_fs: Path | None) -> None:
    from robust_train.evaluation import EvalSuite
    from robust_train.evaluation.export import export_dataset

    cat = "export"

    def suite(**kw: Any) -> EvalSuite:
        kw.setdefault("corruptions", ["contrast"])
        return EvalSuite(name="t", num_images=5, seed=3, batch_size=2, **kw)

    base = ["export", "--data", "synthetic", "--suite", "c15", "--corruptions", "contrast", "--no-progress"]
    here = os.getcwd()
    os.chdir(tmp)
    try:
        cli_case(cat, "--out ''", lambda: _cli([*base, "--out", ""]), ["--out"])
    finally:
        os.chdir(here)
    cli_case(
        cat,
        "--batch-size 0",
        lambda: _cli([*base, "--out", str(tmp / "e1"), "--batch-size", "0"]),
        ["batch-size", "batch_size"],
    )
    cli_case(
        cat,
        "--num-images 100000",
        lambda: _cli([*base, "--out", str(tmp / "e2"), "--num-images", "100000"]),
        ["num-images", "num_images"],
    )
    f = tmp / "a_file"
    f.write_text("x")
    cli_case(cat, "--out is a file", lambda: _cli([*base, "--out", str(f)]), ["not a folder", "is a file"])
    cli_case(cat, "--out below a file", lambda: _cli([*base, "--out", str(f / "sub")]), ["is a file"])
    mixed = tmp / "mixed"
    export_dataset(_Toy(), mixed, suite(), progress=False)
    cli_case(
        cat,
        "ExportError (settings mismatch) in the CLI",
        lambda: _cli([*base, "--out", str(mixed), "--num-images", "3"]),
        ["different settings"],
    )
    if os.geteuid() != 0:
        ro = tmp / "ro"
        ro.mkdir()
        ro.chmod(0o555)
        cli_case(
            cat, "read-only output folder", lambda: _cli([*base, "--out", str(ro)]), ["permission denied", str(ro)]
        )
    bad(
        cat,
        "export_dataset(batch_size=0)",
        lambda: export_dataset(_Toy(), tmp / "b0", suite(), batch_size=0, progress=False),
        ["batch_size"],
    )

    # kill and resume: byte-identical, no orphaned temporaries, readable by others
    out = tmp / "resume"
    with contextlib.suppress(KeyboardInterrupt):
        export_dataset(_Toy(fail_after=9), out, suite(severities=[2, 5]), layout="imagenet_c", progress=False)
    jpeg = next(out.rglob("*.JPEG"))
    (jpeg.parent / f".{jpeg.name}.x1y2z3.tmp").write_bytes(b"half")  # what a kill during a write leaves
    old = os.umask(0o022)
    try:
        export_dataset(_Toy(), out, suite(severities=[2, 5]), layout="imagenet_c", progress=False)
    finally:
        os.umask(old)
    valid(cat, "resume removes orphaned .tmp files", lambda: sorted(out.rglob("*.tmp")), lambda v: v == [])
    valid(
        cat,
        "exported files readable by others (umask 022)",
        lambda: {oct(stat.S_IMODE(p.stat().st_mode)) for p in out.rglob("*.JPEG")},
        lambda v: v == {"0o644"},
    )
    ref = tmp / "ref_c"
    export_dataset(_Toy(), ref, suite(), progress=False)
    cut = tmp / "cut_c"
    with contextlib.suppress(KeyboardInterrupt):
        export_dataset(_Toy(fail_after=14), cut, suite(), progress=False)
    export_dataset(_Toy(), cut, suite(), progress=False)
    valid(
        cat,
        "cifar_c kill + resume byte-identical",
        lambda: (cut / "contrast.npy").read_bytes() == (ref / "contrast.npy").read_bytes(),
        lambda v: v is True,
    )

    if tiny_fs is not None:
        # "fooled": shutil.disk_usage reports plenty of space, so the disk fills *during* the export (another process
        # filling it, or a JPEG size estimate that was too low) -- what a version without an up-front check meets
        for layout, fooled in (("cifar_c", False), ("imagenet_c", False), ("cifar_c", True), ("imagenet_c", True)):
            target = tiny_fs / f"full_{layout}"
            here = str(Path(__file__).parent)
            fool = (
                "import shutil; u = shutil.disk_usage('/'); shutil.disk_usage = lambda p: u._replace(free=2**50); "
                if fooled
                else ""
            )
            code = (
                f"{fool}import sys, torch; sys.path.insert(0, {here!r}); from bad_inputs_audit import _Toy; "
                "from robust_train.cli.corrupt import main; "
                "import robust_train.cli.corrupt as c; c._build_dataset = lambda *a: _Toy(200); "
                "sys.exit(main(['export', '--data', 'synthetic', '--corruptions', 'contrast,fog,snow,frost', "
                f"'--layout', {layout!r}, '--out', {str(target)!r}, '--no-progress', '--all-images']))"
            )

            def run(c: str = code) -> tuple[int, str]:
                proc = subprocess.run([sys.executable, "-c", c], capture_output=True, text=True, timeout=600)
                return proc.returncode, proc.stderr

            what = "disk fills during the export" if fooled else "too little free space"
            cli_case(cat, f"export onto a full disk ({layout}, {what})", run, ["space", "ENOSPC"])
            shutil.rmtree(target, ignore_errors=True)


# ---------------------------------------------------------------------------------------------------------------- CLI
def cli_cases(tmp: Path) -> None:
    cat = "CLI (robust-eval / robust-train)"
    rnd = tmp / "random.ckpt"
    rnd.write_bytes(os.urandom(4096))
    good = tmp / "good.ckpt"
    torch.save({"state_dict": {"w": torch.zeros(5000)}}, good)
    cut = tmp / "truncated.ckpt"
    cut.write_bytes(good.read_bytes()[:3000])
    folder = tmp / "ckpt_folder"
    folder.mkdir()
    env = {**os.environ, "PROJECT_ROOT": str(tmp), "OMP_NUM_THREADS": "1"}

    def run(module: str, args: list[str]) -> tuple[int, str]:
        proc = subprocess.run(
            [sys.executable, "-m", module, *args], capture_output=True, text=True, timeout=900, env=env, cwd=tmp
        )
        return proc.returncode, proc.stderr

    common = ["data=synthetic", "logger=none", "callbacks=none", "hydra.run.dir=" + str(tmp / "h")]
    for path, what in ((rnd, "random bytes"), (cut, "truncated"), (folder, "a folder")):
        cli_case(
            cat,
            f"robust-eval checkpoint of {what}",
            lambda p=path: run("robust_train.cli.eval", [f"ckpt_path={p}", *common]),
            ["is a folder"] if path.is_dir() else [path.name],
        )
    cli_case(
        cat,
        "robust-train trainer.max_epochs=abc",
        lambda: run("robust_train.cli.train", ["debug=fdr", "trainer.max_epochs=abc", *common]),
        ["max_epochs"],
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny-fs", type=Path, default=None, help="a folder on a tiny filesystem (full-disk cases)")
    parser.add_argument("--no-cli", action="store_true", help="skip the subprocess CLI cases (about a minute)")
    parser.add_argument("--verbose", action="store_true", help="list every case, not only those that are not ok")
    args = parser.parse_args()
    torch.set_num_threads(1)
    import robust_train

    print(f"robust_train from {Path(robust_train.__file__).parent}")
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        for fn in (corruption_cases, metric_cases):
            fn()
        (tmp / "l").mkdir()
        loader_cases(tmp / "l")
        (tmp / "x").mkdir()
        export_cases(tmp / "x", args.tiny_fs)
        if not args.no_cli:
            (tmp / "c").mkdir()
            cli_cases(tmp / "c")
    table: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for cat, _, outcome, _ in RESULTS:
        table[cat][outcome] += 1
    for _cat, _, outcome, _ in RESULTS:
        table["total"][outcome] += 1
    cols = ("ok", "unclear", "silent", "crash")
    print("\n| category | cases tried | clear error / right result | unclear error | silent wrong | crash |")
    print("|---|---|---|---|---|---|")
    for cat, row in table.items():
        print(f"| {cat} | {sum(row.values())} | " + " | ".join(str(row[c]) for c in cols) + " |")
    print("\nnot ok:" if not args.verbose else "\nevery case:")
    for cat, case, outcome, detail in RESULTS:
        if outcome != "ok" or args.verbose:
            print(f"  [{outcome}] {cat}: {case} -- {detail}")


if __name__ == "__main__":
    main()
