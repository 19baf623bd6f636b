"""User config folders in front of the packaged configs (standard library only).

Used by ``robust_train.cli`` and by the Hydra search-path plugin ``hydra_plugins.robust_train_searchpath``, which
loads this file by path so that Hydra's plugin scan never imports ``robust_train`` (and torch). User folders:

* ``ROBUST_TRAIN_CONFIG_DIR`` when set: one or more folders separated by ``os.pathsep`` (earlier ones win; an empty
  value means none);
* otherwise ``./conf`` in the working directory, when it exists.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["ENV_VAR", "is_packaged_config_dir", "user_config_dirs"]

#: environment variable naming the user config folders
ENV_VAR = "ROBUST_TRAIN_CONFIG_DIR"


def is_packaged_config_dir(path: str) -> bool:
    """Whether a search-path entry (``file://...`` / ``pkg://...`` / a path) is robust_train's packaged config folder.

    Example:
        >>> is_packaged_config_dir("file:///site-packages/robust_train/conf"), is_packaged_config_dir("pkg://hydra.conf")
        (True, False)
    """
    if path.startswith("pkg://"):
        return path[len("pkg://") :].replace("/", ".").strip(".") == "robust_train.conf"
    path = path[len("file://") :] if path.startswith("file://") else path
    return Path(os.path.normpath(path)).parts[-2:] == ("robust_train", "conf")


def user_config_dirs() -> list[Path]:
    """The user config folders, highest priority first (see the module docstring).

    Raises:
        NotADirectoryError: a folder named in ``ROBUST_TRAIN_CONFIG_DIR`` does not exist.
    """
    value = os.environ.get(ENV_VAR)
    if value is not None:
        dirs = [Path(v).expanduser().resolve() for v in value.split(os.pathsep) if v.strip()]
        for d in dirs:
            if not d.is_dir():
                raise NotADirectoryError(f"{ENV_VAR}: expected existing config folders, got {str(d)!r} (not a folder)")
        return dirs
    cwd_conf = Path.cwd() / "conf"
    if cwd_conf.is_dir() and not is_packaged_config_dir(str(cwd_conf.resolve())):
        return [cwd_conf.resolve()]
    return []
