"""Rich console output: the composed config as a tree, and the end-of-run summary table."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import rich
import rich.syntax
import rich.tree
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf
from rich.console import Console
from rich.table import Table

__all__ = ["format_value", "print_config_tree", "print_summary", "summary_table"]


@rank_zero_only
def print_config_tree(
    cfg: DictConfig,
    print_order: Sequence[str] = ("data", "model", "augment", "loss", "callbacks", "logger", "trainer", "paths"),
    resolve: bool = False,
    save_to_file: bool = False,
) -> None:
    """Print the config as a rich tree (groups in ``print_order`` first); optionally save it to the output dir."""
    tree = rich.tree.Tree("CONFIG", style="dim", guide_style="dim")
    queue = [f for f in print_order if f in cfg] + [f for f in cfg if f not in print_order]
    for field in queue:
        branch = tree.add(field, style="dim", guide_style="dim")
        group = cfg[field]
        content = OmegaConf.to_yaml(group, resolve=resolve) if isinstance(group, DictConfig) else str(group)
        branch.add(rich.syntax.Syntax(content, "yaml"))
    rich.print(tree)
    if save_to_file:
        with open(Path(cfg.paths.output_dir, "config_tree.log"), "w") as f:
            rich.print(tree, file=f)


def format_value(v: Any) -> str:
    """Format a metric value for the summary (tensors and floats to 4 decimals)."""
    if hasattr(v, "item") and getattr(v, "numel", lambda: 0)() == 1:
        v = v.item()
    if isinstance(v, float):
        return f"{v:.4f}"
    return "-" if v is None else str(v)


def summary_table(title: str, metrics: Mapping[str, Any], info: Mapping[str, Any] | None = None) -> Table:
    """A two-column table: selected metrics first, then run information (paths, timings)."""
    table = Table(title=title, show_header=True, header_style="bold", title_style="bold")
    table.add_column("item", style="cyan", no_wrap=True)
    table.add_column("value", overflow="fold")
    for k, v in metrics.items():
        table.add_row(k, format_value(v))
    if info:
        table.add_section()
        for k, v in info.items():
            table.add_row(k, format_value(v))
    return table


@rank_zero_only
def print_summary(
    title: str, metrics: Mapping[str, Any], info: Mapping[str, Any] | None = None, console: Console | None = None
) -> None:
    """Print :func:`summary_table` on rank zero."""
    (console or Console()).print(summary_table(title, metrics, info))
