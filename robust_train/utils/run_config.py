"""The composed config of the training run behind a checkpoint, and how ``robust-eval`` applies it.

A checkpoint written by ``robust-train`` carries the run's composed config as YAML text (``checkpoint["robust_train"]
["config"]``, see :class:`~robust_train.models.RobustClassifier`); older checkpoints have it next to them, in the
run folder's ``.hydra/config.yaml`` (``<run>/checkpoints/<name>.ckpt``). ``robust-eval`` takes the model, data and
precision from it unless the command line chooses them (:data:`RUN_KEYS`), and warns when a chosen value differs
from the training run's.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from .pylogger import RankedLogger

__all__ = ["RUN_KEYS", "apply_run_config", "command_line_overrides", "load_run_config"]

log = RankedLogger(__name__)

#: config keys taken from the training run -> override keys (besides the key itself) that count as choosing them
RUN_KEYS: dict[str, tuple[str, ...]] = {
    "data": ("experiment",),
    "model": ("experiment",),
    "trainer.precision": ("trainer", "experiment"),
}


def load_run_config(ckpt_path: str | os.PathLike[str]) -> tuple[DictConfig | None, str]:
    """The training run's composed config for ``ckpt_path`` and where it came from (``None, ""`` if not found).

    Looked up in the checkpoint first, then in ``.hydra/config.yaml`` of the run folder (the checkpoint's parent's
    parent, or its own folder).
    """
    import torch

    from ..models.lit_classifier import CHECKPOINT_KEY

    path = Path(ckpt_path)
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - not a loadable checkpoint: the .hydra folder may still tell
        log.debug(f"could not read {path} with weights_only=True: {err}")
        ckpt = {}
    entry = ckpt.get(CHECKPOINT_KEY) if isinstance(ckpt, dict) else None
    if isinstance(entry, dict) and entry.get("config"):
        cfg = OmegaConf.create(entry["config"])
        if isinstance(cfg, DictConfig):
            return cfg, f"the config stored in {path}"
    for run_dir in (path.parent.parent, path.parent):
        yaml = run_dir / ".hydra" / "config.yaml"
        if yaml.is_file():
            cfg = OmegaConf.load(yaml)
            if isinstance(cfg, DictConfig):
                return cfg, str(yaml)
    return None, ""


def command_line_overrides(cfg: DictConfig) -> list[str]:
    """The task overrides of the running Hydra app (or of a config composed with ``return_hydra_config=True``)."""
    from hydra.core.hydra_config import HydraConfig

    if HydraConfig.initialized():
        return list(HydraConfig.get().overrides.task)
    node = OmegaConf.select(cfg, "hydra.overrides.task", default=None)
    return list(node) if node is not None else []


def _override_keys(overrides: Sequence[str]) -> set[str]:
    keys = set()
    for o in overrides:
        key = o.split("=", 1)[0].lstrip("+~")
        keys.add(key.split("@", 1)[0])
    return keys


def _chosen(key: str, extra: Sequence[str], keys: set[str]) -> bool:
    return any(k == key or k.startswith(key + ".") or k in extra for k in keys)


def _fingerprint(key: str, node: Any) -> Any:
    """What must agree between training and evaluation for ``key`` (identity of data / net, precision)."""
    if key == "data" and isinstance(node, DictConfig):
        return node.get("_target_"), OmegaConf.select(node, "num_classes", default=None)
    if key == "model" and isinstance(node, DictConfig):
        net = node.get("net")
        if isinstance(net, DictConfig):
            return net.get("_target_"), net.get("model_name")
        return node.get("_target_")
    return node


def apply_run_config(cfg: DictConfig, run_cfg: DictConfig, overrides: Sequence[str], source: str = "") -> list[str]:
    """Copy :data:`RUN_KEYS` from ``run_cfg`` into ``cfg`` unless ``overrides`` choose them; warn on mismatches.

    Args:
        cfg: the evaluation config (modified in place).
        run_cfg: the training run's composed config.
        overrides: the evaluation's command-line overrides (``data=cifar10``, ``trainer.precision=32``...).
        source: where ``run_cfg`` came from (for messages).

    Returns:
        The warnings issued (one per mismatch between a chosen value and the training run's).
    """
    keys = _override_keys(overrides)
    taken, warnings = [], []
    for key, extra in RUN_KEYS.items():
        train_value = OmegaConf.select(run_cfg, key, default=None, throw_on_missing=False)
        if train_value is None:
            continue
        if not _chosen(key, extra, keys):
            with open_dict(cfg):
                OmegaConf.update(cfg, key, train_value, merge=False, force_add=True)
            taken.append(key)
            continue
        ours = OmegaConf.select(cfg, key, default=None, throw_on_missing=False)
        if _fingerprint(key, ours) != _fingerprint(key, train_value):
            msg = (
                f"{key}: evaluating with {_fingerprint(key, ours)} but the checkpoint was trained with "
                f"{_fingerprint(key, train_value)} ({source or 'training run'}); drop the override to use the "
                "training run's"
            )
            log.warning(msg)
            warnings.append(msg)
    if taken:
        log.info(f"From the training run ({source}): {', '.join(taken)}")
    return warnings
