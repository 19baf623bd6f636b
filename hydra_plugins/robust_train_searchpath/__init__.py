"""Hydra search-path plugin of robust_train: user config folders in front of the packaged configs.

The configs of ``robust-train`` / ``robust-eval`` ship inside the package (``robust_train/conf``). This plugin puts
the user's config folders (``./conf``, or ``ROBUST_TRAIN_CONFIG_DIR``; see ``robust_train/_searchpath.py``) *before*
them on Hydra's search path, so a user file adds options to a packaged group (``conf/experiment/my_run.yaml`` ->
``experiment=my_run``) or replaces a packaged option of the same name (``conf/data/cifar10.yaml``), and
``conf/local/default.yaml`` holds machine settings.

Hydra's own ``--config-dir`` still works but only *extends* (Hydra appends it after the primary config folder, so
same-named packaged options win). The plugin acts only on searches whose primary folder is robust_train's packaged
config folder. Hydra imports every plugin at the start of any Hydra app, so this module does not import
``robust_train`` (and torch): it loads ``robust_train/_searchpath.py`` (standard library only) by file path.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from hydra.core.config_search_path import ConfigSearchPath
from hydra.plugins.search_path_plugin import SearchPathPlugin

__all__ = ["PROVIDER", "RobustTrainSearchPathPlugin"]

#: provider name of the user folders in ``--info searchpath``
PROVIDER = "robust_train-user"
_MODULE = "robust_train_searchpath._impl"


def _impl() -> ModuleType | None:
    """``robust_train/_searchpath.py`` without importing the ``robust_train`` package (``None``: not installed)."""
    if _MODULE in sys.modules:
        return sys.modules[_MODULE]
    spec = importlib.util.find_spec("robust_train")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "_searchpath.py"
    file_spec = importlib.util.spec_from_file_location(_MODULE, path)
    if file_spec is None or file_spec.loader is None or not path.is_file():
        return None
    module = importlib.util.module_from_spec(file_spec)
    sys.modules[_MODULE] = module
    file_spec.loader.exec_module(module)
    return module


class RobustTrainSearchPathPlugin(SearchPathPlugin):
    """Prepend the user config folders to the search path of robust_train's Hydra apps."""

    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        """Put the user config folders first when the primary config folder is robust_train's."""
        impl = _impl()
        if impl is None or not any(impl.is_packaged_config_dir(e.path or "") for e in search_path.get_path()):
            return
        for d in reversed(impl.user_config_dirs()):
            search_path.prepend(provider=PROVIDER, path=f"file://{d}")
