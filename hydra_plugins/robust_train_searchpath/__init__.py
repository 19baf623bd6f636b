"""Hydra search-path plugin of robust_train: user config folders in front of the packaged configs.

The configs of ``robust-train`` / ``robust-eval`` ship inside the package (``robust_train/conf``). This plugin puts
the user's config folders *before* them on Hydra's search path, so a user file adds options to a packaged group
(``conf/experiment/my_run.yaml`` -> ``experiment=my_run``) or replaces a packaged option of the same name
(``conf/data/cifar10.yaml``), and ``conf/local/default.yaml`` holds machine settings. User folders:

* ``ROBUST_TRAIN_CONFIG_DIR`` when set: one or more folders separated by ``os.pathsep`` (earlier ones win; an empty
  value means none);
* otherwise ``./conf`` in the working directory, when it exists.

Hydra's own ``--config-dir`` still works but only *extends* (Hydra appends it after the primary config folder, so
same-named packaged options win). The plugin acts only on searches whose primary folder is robust_train's packaged
config folder, and does not import ``robust_train`` (Hydra imports every plugin at the start of any Hydra app).
"""

from __future__ import annotations

import os
from pathlib import Path

from hydra.core.config_search_path import ConfigSearchPath
from hydra.plugins.search_path_plugin import SearchPathPlugin

__all__ = ["ENV_VAR", "PROVIDER", "RobustTrainSearchPathPlugin", "is_packaged_config_dir", "user_config_dirs"]

#: environment variable naming the user config folders
ENV_VAR = "ROBUST_TRAIN_CONFIG_DIR"
#: provider name of the user folders in ``--info searchpath``
PROVIDER = "robust_train-user"


def is_packaged_config_dir(path: str) -> bool:
    """Whether a search-path entry (``file://...`` / ``pkg://...``) is robust_train's packaged config folder."""
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


class RobustTrainSearchPathPlugin(SearchPathPlugin):
    """Prepend :func:`user_config_dirs` to the search path of robust_train's Hydra apps."""

    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        """Put the user config folders first when the primary config folder is robust_train's."""
        if not any(is_packaged_config_dir(entry.path or "") for entry in search_path.get_path()):
            return
        for d in reversed(user_config_dirs()):
            search_path.prepend(provider=PROVIDER, path=f"file://{d}")
