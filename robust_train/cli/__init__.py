"""Command-line entry points (layer 4): ``robust-train`` (:mod:`.train`) and ``robust-eval`` (:mod:`.eval`).

Both are Hydra applications whose configs ship inside the package (``robust_train/conf``, :data:`CONFIG_DIR`), so an
installed wheel trains and evaluates from any folder. User config folders (``./conf`` or ``ROBUST_TRAIN_CONFIG_DIR``,
:mod:`robust_train._searchpath`) come first on the search path (:func:`config_dirs`; the Hydra plugin
``hydra_plugins.robust_train_searchpath``).
Importing this package does not import Lightning; the sub-modules do.
"""

from __future__ import annotations

from pathlib import Path

from .._searchpath import user_config_dirs

__all__ = ["CONFIG_DIR", "config_dirs", "find_config_files", "user_error_types"]

#: The packaged Hydra config folder (``robust_train/conf``), the primary config folder of every entry point.
CONFIG_DIR = str(Path(__file__).resolve().parents[1] / "conf")


def config_dirs() -> list[Path]:
    """Config folders in Hydra's search order: the user folders (highest priority first), then the packaged one."""
    return [*user_config_dirs(), Path(CONFIG_DIR)]


def find_config_files(group: str) -> dict[str, Path]:
    """Options of a config ``group`` (``"eval"``, ``"data"``, ...) as ``{name: yaml file}``, user files winning.

    Example:
        >>> "c15" in find_config_files("eval")
        True
    """
    found: dict[str, Path] = {}
    for d in reversed(config_dirs()):
        for p in sorted((d / group).glob("*.yaml")):
            found[p.stem] = p
    return dict(sorted(found.items()))


def user_error_types() -> tuple[type[BaseException], ...]:
    """Exceptions the entry points report as one line without a traceback (exit status 2).

    :class:`~robust_train.errors.RobustTrainError` (bad argument, file, config, output path), ``OSError`` on a user
    path (permission, missing file, full disk) and Hydra / OmegaConf config errors.
    """
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from ..errors import RobustTrainError

    return (RobustTrainError, OSError, HydraException, OmegaConfBaseException)
