"""``robust-corrupt``: corruption tools on the command line (argparse subcommands).

Subcommands:

* ``list``: registered corruptions (with family) and perturbation sequences, optionally filtered.
* ``export``: write a corrupted copy of any configured dataset in the released layouts (CIFAR-10-C ``.npy`` or an
  ImageNet-C JPEG tree), resumable, with a progress bar (:func:`robust_train.evaluation.export.export_dataset`).
* ``preview``: image grids of corruptions (filled in by the corruption engine).

Examples::

    robust-corrupt list --pattern '*blur*'
    robust-corrupt export --data fashion_mnist --suite c15 --split test --num-images 1000 --out exports/fmnist-c
    robust-corrupt export --data imagefolder --set data.data_dir=/data/imagenet --layout imagenet_c --out imagenet-c
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ..errors import ArgumentError, report_user_error
from . import user_error_types

__all__ = ["build_parser", "cmd_export", "cmd_list", "main"]


def _csv(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with its ``list`` / ``export`` / ``preview`` subcommands."""
    parser = argparse.ArgumentParser(prog="robust-corrupt", description="Corruption tools for robust_train.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="{list,export,preview}")

    p_list = sub.add_parser(
        "list",
        help="list registered corruptions and perturbation sequences",
        description="List the registered corruptions (with their family) and perturbation sequences.",
    )
    p_list.add_argument("--suite", default=None, help="a named suite (c15, c19, extra, noise, ...)")
    p_list.add_argument("--pattern", default=None, help="fnmatch filter, e.g. '*blur*'")
    p_list.set_defaults(func=cmd_list)

    p_exp = sub.add_parser(
        "export",
        help="write a corrupted dataset in the released layout",
        description=(
            "Corrupt a configured dataset with every (corruption, severity) of a suite and write the released layout "
            "(CIFAR-10-C .npy or an ImageNet-C JPEG tree); resumable; one log line per finished corruption."
        ),
    )
    p_exp.add_argument(
        "--data", required=True, help="data config name (data/<name>.yaml: ./conf or the packaged robust_train/conf)"
    )
    p_exp.add_argument("--out", required=True, help="output folder")
    p_exp.add_argument("--suite", default="c15", help="evaluation suite (eval/<name>.yaml) or YAML path")
    p_exp.add_argument("--corruptions", type=_csv, default=None, help="comma-separated names (overrides the suite)")
    p_exp.add_argument("--severities", type=lambda s: [int(v) for v in _csv(s)], default=None, help="e.g. 1,2,3,4,5")
    p_exp.add_argument("--layout", choices=("cifar_c", "imagenet_c"), default="cifar_c")
    p_exp.add_argument("--split", choices=("test", "val"), default="test", help="which split of the data to export")
    p_exp.add_argument("--num-images", type=int, default=None, help="seeded subset size (default: suite's / all)")
    p_exp.add_argument("--all-images", action="store_true", help="export every image even if the suite subsets")
    p_exp.add_argument("--seed", type=int, default=None, help="evaluation seed (default: the suite's)")
    p_exp.add_argument("--preset", default=None, help="auto | imagenet | tinyimagenet | cifar (default: the suite's)")
    p_exp.add_argument("--device", default="cpu")
    p_exp.add_argument("--batch-size", type=int, default=None)
    p_exp.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="Hydra override for the data config, e.g. data.data_dir=/data (repeatable)",
    )
    p_exp.add_argument("--no-progress", action="store_true")
    p_exp.set_defaults(func=cmd_export)

    from . import preview

    p_prev = sub.add_parser(
        "preview",
        help="image grid of corruptions x severities for one image",
        description="Draw the ImageNet-C figure for one image: corruptions (rows) x severities (columns).",
    )
    preview.add_arguments(p_prev)
    p_prev.set_defaults(func=cmd_preview)
    return parser


def cmd_list(args: argparse.Namespace) -> int:
    """Print the registered corruptions (name, family) and perturbation sequences."""
    from rich.console import Console
    from rich.table import Table

    from ..corruptions.suites import CORRUPTIONS, list_corruptions

    table = Table(title="corruptions")
    table.add_column("name")
    table.add_column("family")
    for name in list_corruptions(args.suite, args.pattern):
        family = CORRUPTIONS.meta(name).get("family", "") if name in CORRUPTIONS else "(not registered)"
        table.add_row(name, str(family))
    console = Console()
    console.print(table)
    try:
        from ..sequences import SEQUENCES
    except ImportError:  # pragma: no cover
        return 0
    seqs = [n for n in SEQUENCES.list(args.pattern)]
    if seqs:
        console.print("perturbation sequences: " + ", ".join(seqs))
    return 0


def _build_dataset(data: str, overrides: Sequence[str], split: str):  # noqa: ANN202
    """Instantiate ``data/<data>.yaml`` (composed through ``train.yaml``) and return its eval dataset."""
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    from . import CONFIG_DIR

    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name="train", overrides=[f"data={data}", *overrides])
    dm = instantiate(cfg.data)
    if hasattr(dm, "prepare_data"):
        dm.prepare_data()
    if not hasattr(dm, "eval_dataset"):
        raise ValueError(f"data config {data!r} builds {type(dm).__name__}, which has no eval_dataset(stage)")
    return dm.eval_dataset(split)


def cmd_export(args: argparse.Namespace) -> int:
    """Run the export; prints the output folder."""
    from ..evaluation.export import export_dataset
    from ..evaluation.suite import load_suite

    overrides: dict = {}
    if args.corruptions is not None:
        overrides["corruptions"] = args.corruptions
    if args.severities is not None:
        overrides["severities"] = args.severities
    if args.num_images is not None:
        overrides["num_images"] = args.num_images
    if args.all_images:
        overrides["num_images"] = None
    if args.seed is not None:
        overrides["seed"] = args.seed
    if args.preset is not None:
        overrides["preset"] = args.preset
    if not args.out.strip():
        raise ArgumentError("--out: expected an output folder, got an empty path")
    if args.batch_size is not None and args.batch_size < 1:
        raise ArgumentError(f"--batch-size: expected a positive int, got {args.batch_size}")
    if args.num_images is not None and args.num_images < 1:
        raise ArgumentError(f"--num-images: expected a positive int, got {args.num_images}")
    suite = load_suite(args.suite, **overrides)
    dataset = _build_dataset(args.data, args.overrides, args.split)
    if args.num_images is not None and args.num_images > len(dataset):
        raise ArgumentError(
            f"--num-images: asked for {args.num_images} images, but the {args.split} split of {args.data!r} has "
            f"{len(dataset)}; pass at most {len(dataset)} or --all-images"
        )
    out = export_dataset(
        dataset,
        args.out,
        suite,
        layout=args.layout,
        device=args.device,
        batch_size=args.batch_size,
        progress=not args.no_progress,
    )
    print(f"wrote {suite.name} ({len(suite.names)} corruptions x {len(suite.severities)} severities) to {out}")
    return 0


def cmd_preview(args: argparse.Namespace) -> int:
    """Corruptions x severities figure for one image (:mod:`robust_train.cli.preview`; ``preview --help``)."""
    from .preview import run

    return run(args)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``robust-corrupt``."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (*user_error_types(), ValueError) as e:
        return report_user_error(f"robust-corrupt {args.command}", e)


if __name__ == "__main__":
    sys.exit(main())
