"""Command-line entry points (layer 4): ``robust-train`` (:mod:`.train`) and ``robust-eval`` (:mod:`.eval`).

Both are Hydra applications reading ``conf/train.yaml`` / ``conf/eval.yaml`` from the repository (editable install).
Importing this package does not import Lightning; the sub-modules do.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["CONFIG_DIR", "user_error_types"]

#: The repository's Hydra config folder (``<repo>/conf``), as used by the entry points.
CONFIG_DIR = str(Path(__file__).resolve().parents[2] / "conf")


def user_error_types() -> tuple[type[BaseException], ...]:
    """Exceptions the entry points report as one line without a traceback (exit status 2).

    :class:`~robust_train.errors.RobustTrainError` (bad argument, file, config, output path), ``OSError`` on a user
    path (permission, missing file, full disk) and Hydra / OmegaConf config errors.
    """
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from ..errors import RobustTrainError

    return (RobustTrainError, OSError, HydraException, OmegaConfBaseException)
