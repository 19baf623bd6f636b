"""Register the CIFAR nets with timm whenever timm is imported, without importing timm (or triton) ourselves.

``import robust_train`` calls :func:`install`: if timm is already imported the nets are registered at once
(:mod:`robust_train.models.cifar`); otherwise a one-shot import hook waits for ``import timm`` and registers them right
after timm has loaded. So ``import robust_train, timm; timm.create_model("wrn40_2_cifar")`` works, while importing
robust_train alone stays free of timm (whose import pulls in triton through torch when triton is installed).
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import sys
from types import ModuleType
from typing import Any

__all__ = ["install"]


def _register() -> None:
    import robust_train.models.cifar  # noqa: F401  (timm's register_model runs at import)


class _RegisteringLoader(importlib.abc.Loader):
    """Delegates to timm's loader, then registers the nets."""

    def __init__(self, loader: Any) -> None:
        self.loader = loader

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self.loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self.loader.exec_module(module)
        _register()


class _TimmImportHook(importlib.abc.MetaPathFinder):
    """A one-shot finder for ``timm``: the real spec with a loader that registers our nets after timm loads."""

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        if fullname != "timm":
            return None
        if self in sys.meta_path:
            sys.meta_path.remove(self)
        spec = importlib.util.find_spec("timm")
        if spec is None or spec.loader is None:
            return spec
        spec.loader = _RegisteringLoader(spec.loader)
        return spec


def install() -> None:
    """Register now if timm is loaded, else once timm gets imported (idempotent)."""
    if "timm" in sys.modules:
        _register()
    elif not any(isinstance(f, _TimmImportHook) for f in sys.meta_path):
        sys.meta_path.insert(0, _TimmImportHook())
