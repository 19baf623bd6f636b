"""Training-method overhead: time of one full training step per method, as a ratio to the plain step.

Run from the repository root on a quiet machine (the CPU default takes a few minutes; ``--quick`` seconds)::

    python benchmarks/train_overhead.py                         # CPU, ResNet-8 (CIFAR), 32 px, batch 128
    python benchmarks/train_overhead.py --device cuda --model wrn40_2_cifar
    python benchmarks/train_overhead.py --quick                 # smoke run

A *step* is what ``RobustClassifier`` does per batch, all on the device: parameter sampling and augmentation
(``on_after_batch_transfer``), normalisation, forward over every view, the method's loss, backward and an SGD step.
Methods (each with its published/default settings unless an option says otherwise):

==============  ======================================================================================
plain           no augmentation, cross-entropy (the denominator of every ratio)
augmix          AugMix (severity 3, width 3, depth 1-3), one view, cross-entropy
augmix_jsd      AugMix with [clean, aug_1, aug_2] (3x forward/backward) and the JSD loss
augmix_jsd_pil  augmix_jsd with ``pil_exact=True`` (the reference's 8-bit Pillow arithmetic; the recipes' default)
prime           PRIME (CIFAR preset: diffeo, colour, filter; width 3, depth 1-3), one view, cross-entropy
prime_jsd       PRIME with [clean, aug_1, aug_2] and the JSD loss (the reference's CIFAR setting)
pixmix          PixMix (k 4, beta 3, severity 3, all ops) with the embedded fractals, cross-entropy
gaussian_noise  Gaussian noise on half the batch, cross-entropy
corrupt         one random non-c15 corruption per image on half the batch, cross-entropy
noise2net       DeepAugment's Noise2Net (a random Res2Net per image) on half the batch, cross-entropy
stylize         AdaIN stylization of half the batch (random weights, same cost as the real ones)
alp             PGD-k (default 10 steps) [clean, adv] views + logit pairing (1 + k forward/backward passes)
clp             clean logit pairing (loss only)
==============  ======================================================================================

Writes ``benchmarks/results/train_overhead_<device>[_quick][_<tag>].{json,md}``: per method the median step time
with its IQR, the augmentation-only time, and the ratio to ``plain``. It is a report, never a test.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make ``benchmarks`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import common  # noqa: E402  (stdlib-only at import time)

METHODS = (
    "plain",
    "augmix",
    "augmix_jsd",
    "augmix_jsd_pil",
    "prime",
    "prime_jsd",
    "pixmix",
    "gaussian_noise",
    "corrupt",
    "noise2net",
    "stylize",
    "alp",
    "clp",
)
QUICK = {"batch": 8, "min_run_time": 0.05, "pgd_steps": 2, "methods": "plain,augmix_jsd,alp"}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="train_overhead", description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cpu", help="cpu | cuda | cuda:1")
    p.add_argument(
        "--model", default="resnet8_cifar", help="timm model name (robust_train.models registers CIFAR nets)"
    )
    p.add_argument("--size", type=int, default=32, help="square image size")
    p.add_argument("--batch", type=int, default=None, help="batch size (default 128; quick 8)")
    p.add_argument("--num-classes", type=int, default=10)
    p.add_argument("--methods", default=None, help=f"comma list from {','.join(METHODS)} (default all)")
    p.add_argument("--pgd-steps", type=int, default=None, help="PGD steps of alp (default 10; quick 2)")
    p.add_argument("--stylize-encoder-size", type=int, default=None, help="min_encoder_size of stylize (default size)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: cores available)")
    p.add_argument("--min-run-time", type=float, default=None, help="Timer min_run_time per method (default 2 s)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--allocator", default="fixed", choices=("fixed", "default", "inherit"))
    p.add_argument("--out", default=str(common.RESULTS_DIR), help="output directory")
    p.add_argument("--tag", default="", help="suffix of the output file names")
    p.add_argument("--quick", action="store_true", help="tiny smoke run")
    args = p.parse_args(argv)
    q = args.quick
    args.batch = args.batch or (QUICK["batch"] if q else 128)
    args.min_run_time = args.min_run_time if args.min_run_time is not None else (QUICK["min_run_time"] if q else 2.0)
    args.pgd_steps = args.pgd_steps if args.pgd_steps is not None else (QUICK["pgd_steps"] if q else 10)
    args.methods = [m.strip() for m in (args.methods or (QUICK["methods"] if q else ",".join(METHODS))).split(",")]
    bad = [m for m in args.methods if m not in METHODS]
    if bad:
        p.error(f"unknown method(s) {bad}; expected some of {list(METHODS)}")
    if "plain" not in args.methods:
        args.methods.insert(0, "plain")
    args.threads = args.threads or common.cpu_cores()
    args.stylize_encoder_size = args.stylize_encoder_size or max(args.size, 16)
    return args


def build_model(name: str, num_classes: int, device: str) -> tuple[Any, str]:
    """A timm model (CIFAR nets come from ``robust_train.models``); a tiny conv net if it cannot be built."""
    import torch
    from torch import nn

    try:
        import timm

        try:
            import robust_train.models  # noqa: F401  (registers the CIFAR nets with timm)
        except ImportError:
            pass
        return timm.create_model(name, pretrained=False, num_classes=num_classes).to(device), name
    except Exception as err:  # noqa: BLE001 - the benchmark still runs, and says so
        warnings.warn(f"model {name!r} unavailable ({err}); using a small conv net", stacklevel=2)
        torch.manual_seed(0)
        net = nn.Sequential(
            nn.Conv2d(3, 32, 3, padding=1),
            nn.BatchNorm2d(32),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1),
            nn.BatchNorm2d(64),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(64, num_classes),
        )
        return net.to(device), "small_convnet (fallback)"


def build_method(method: str, args: argparse.Namespace) -> tuple[Any, Any, str]:
    """``(augment or None, loss, description)`` of a method."""
    import torch

    from robust_train import augment as A
    from robust_train import losses as LS
    from robust_train.perturbations import PGD

    ce = LS.SplitCrossEntropy()
    seed = args.seed
    if method == "plain":
        return None, ce, "cross-entropy"
    if method == "augmix":
        return A.AugMix(seed=seed), ce, "AugMix s3 w3 d1-3, 1 view"
    if method == "augmix_jsd":
        return A.AugMix(jsd=True, seed=seed), LS.JsdCrossEntropy(), "AugMix + JSD, 3 views"
    if method == "augmix_jsd_pil":
        return A.AugMix(jsd=True, pil_exact=True, seed=seed), LS.JsdCrossEntropy(), "AugMix + JSD, 3 views, 8-bit PIL"
    if method == "prime":
        return A.Prime(seed=seed), ce, "PRIME cifar preset, w3 d1-3, 1 view"
    if method == "prime_jsd":
        return A.Prime(jsd=True, seed=seed), LS.JsdCrossEntropy(), "PRIME cifar preset + JSD, 3 views"
    if method == "pixmix":
        return A.PixMix(seed=seed), ce, "PixMix k4 beta3 s3, all ops, fractals rendered per batch"
    if method == "gaussian_noise":
        return A.GaussianNoiseAugment(sigma=(0.0, 0.1), p=0.5, seed=seed), ce, "sigma U(0, 0.1), p 0.5"
    if method == "corrupt":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            aug = A.CorruptionAugment(None, severity=(1.0, 5.0), p=0.5, seed=seed)
        return aug, ce, f"{len(aug.names)} corruptions ({', '.join(aug.names)}), p 0.5"
    if method == "noise2net":
        # the benchmark model's normalisation (run(): mean 0.5, std 0.25), in which the networks work
        aug = A.Noise2Net(mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25), p=0.5, seed=seed)
        return aug, ce, "random Res2Net per image (4 blocks), eps U(0.375, 0.75), p 0.5"
    if method == "stylize":
        g = torch.Generator().manual_seed(seed)
        aug = A.Stylize(
            styles=torch.rand(8, 3, 64, 64, generator=g),
            pretrained=False,
            p=0.5,
            min_encoder_size=args.stylize_encoder_size,
            seed=seed,
        )
        return aug, ce, f"AdaIN, p 0.5, encoder at >= {args.stylize_encoder_size} px"
    if method == "alp":
        attack = PGD(eps=8 / 255, step_size=2 / 255, steps=args.pgd_steps, seed=seed)
        return A.AdversarialAugment(attack, seed=seed), LS.LogitPairingLoss(lam=0.5), f"PGD-{args.pgd_steps} + ALP"
    if method == "clp":
        return None, LS.CleanLogitPairingLoss(lam=0.5), "clean logit pairing"
    raise ValueError(method)


def run(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    if str(args.device).startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit(f"--device {args.device}: CUDA is not available on this machine")
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    net, model_name = build_model(args.model, args.num_classes, args.device)
    mean = torch.full((1, 3, 1, 1), 0.5, device=args.device)
    std = torch.full((1, 3, 1, 1), 0.25, device=args.device)

    def model01(x: torch.Tensor) -> torch.Tensor:
        return net((x - mean) / std)

    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    g = torch.Generator().manual_seed(args.seed)
    x = torch.rand(args.batch, 3, args.size, args.size, generator=g).to(args.device)
    y = torch.randint(0, args.num_classes, (args.batch,), generator=g).to(args.device)
    regime = (
        "one optimizer step on a float32 (B, 3, H, W) batch already on the device; parameter sampling, "
        "augmentation, normalisation, forward over every view, loss, backward and SGD step inside the timed region"
    )
    metadata = common.collect_metadata(
        args.device,
        args.threads,
        model=model_name,
        size=args.size,
        batch=args.batch,
        methods=args.methods,
        pgd_steps=args.pgd_steps,
        min_run_time=args.min_run_time,
        seed=args.seed,
        quick=args.quick,
        regime=regime,
    )
    rows: list[dict[str, Any]] = []
    for method in args.methods:
        augment, loss, desc = build_method(method, args)
        row: dict[str, Any] = {"method": method, "settings": desc, "status": "ok"}
        rows.append(row)

        def step(augment: Any = augment, loss: Any = loss) -> None:
            net.train()
            views = x if augment is None else augment(x, y=y, model=model01)
            value = loss(model01(views), y, num_splits=views.shape[0] // x.shape[0])
            opt.zero_grad(set_to_none=True)
            value.backward()
            opt.step()

        try:
            if not args.quick:  # fusion "auto": warm up to the tier's steady state (compiles excluded from timing)
                row.update(common.tier_warmup(step))
            t = common.time_call(
                step, threads=args.threads, min_run_time=args.min_run_time, label="train_step", sub_label=method
            )
            row.update(step_ms=t["median_s"] * 1e3, step_iqr_ms=t["iqr_s"] * 1e3, step=t)
            if augment is not None:
                a = common.time_call(
                    lambda augment=augment: augment(x, y=y, model=model01),
                    threads=args.threads,
                    min_run_time=args.min_run_time / 2,
                    label="augment",
                    sub_label=method,
                )
                row.update(augment_ms=a["median_s"] * 1e3, augment=a)
        except Exception as err:  # noqa: BLE001 - one broken method must not stop the report
            row["status"] = f"error: {type(err).__name__}: {err}"
        print(f"{method:<15} {row.get('step_ms', float('nan')):9.2f} ms/step  {row['status']}", flush=True)
    base = next((r.get("step_ms") for r in rows if r["method"] == "plain"), None)
    for r in rows:
        r["ratio"] = r["step_ms"] / base if base and r.get("step_ms") else None
    table = common.markdown_table(
        rows,
        [
            ("method", "method", ""),
            ("settings", "settings", ""),
            ("step ms (median)", "step_ms", ".2f"),
            ("IQR ms", "step_iqr_ms", ".2f"),
            ("augment ms", "augment_ms", ".2f"),
            ("ratio to plain", "ratio", ".2f"),
            ("status", "status", ""),
        ],
    )
    md = (
        f"# Training-method overhead ({args.device}, {model_name}, {args.size} px, batch {args.batch}, "
        f"{args.threads} threads)\n\n{regime}\n\n{table}\n"
    )
    stem = Path(args.out) / (
        f"train_overhead_{str(args.device).replace(':', '')}{'_quick' if args.quick else ''}"
        f"{'_' + args.tag if args.tag else ''}"
    )
    json_path, md_path = common.write_results(stem, metadata, rows, md)
    print(table)
    print(f"wrote {json_path} and {md_path}")
    return {"metadata": metadata, "results": rows}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    common.ensure_allocator(args.allocator)  # may re-execute this process once (before any big allocation)
    run(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
