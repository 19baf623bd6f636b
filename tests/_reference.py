"""Load the CPU reference packages on today's numpy / scikit-image / setuptools without editing them.

* ``imagecorruptions`` 1.1.2 (bethgelab re-packaging, deviates from the original in a few corruptions: spec section 5)
* ``imagenet_c`` 0.0.3 (the original 224-px code; needs Wand + Debian's ImageMagick library, frost files from
  ``imagecorruptions``)

Shims, applied in this test process only: a stand-in ``pkg_resources.resource_filename``; ``np.float_`` and
``np.fromstring`` (both removed in NumPy 2); skimage's ``gaussian(multichannel=True)`` -> ``channel_axis=-1``.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import os
import sys
import types

import numpy as np
import pytest


def _frost_dir() -> str:
    spec = importlib.util.find_spec("imagecorruptions")
    if spec is None or spec.origin is None:
        pytest.skip("imagecorruptions is not installed")
    return os.path.join(os.path.dirname(spec.origin), "frost")


def _install_shims() -> None:
    if "pkg_resources" not in sys.modules:
        try:
            import pkg_resources  # noqa: F401
        except ImportError:
            mod = types.ModuleType("pkg_resources")

            def resource_filename(package: str, resource: str) -> str:
                if os.path.basename(resource).startswith("frost"):
                    return os.path.join(_frost_dir(), os.path.basename(resource))
                pkg = importlib.import_module(package)
                return os.path.join(os.path.dirname(pkg.__file__), resource)

            mod.resource_filename = resource_filename  # type: ignore[attr-defined]
            sys.modules["pkg_resources"] = mod
    if not hasattr(np, "float_"):
        np.float_ = np.float64  # type: ignore[attr-defined]
    try:
        np.fromstring(b"\x00", np.uint8)
    except (DeprecationWarning, ValueError, TypeError, AttributeError):
        np.fromstring = lambda s, dtype=np.float64, **_: np.frombuffer(s, dtype).copy()  # type: ignore[assignment]


def _require(*modules: str) -> None:
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        pytest.skip(f"reference needs {missing}")


def _gaussian_compat(image, sigma=1, *args, multichannel=None, **kwargs):
    from skimage.filters import gaussian

    if multichannel:
        kwargs.setdefault("channel_axis", -1)
    return gaussian(image, sigma, *args, **kwargs)


@functools.cache
def imagecorruptions():
    """The ``imagecorruptions.corruptions`` module, shimmed; skips the test when it is missing."""
    _require("imagecorruptions", "cv2", "skimage")
    _install_shims()
    mod = importlib.import_module("imagecorruptions.corruptions")
    mod.gaussian = _gaussian_compat
    return mod


@functools.cache
def imagenet_c():
    """The original ``imagenet_c.corruptions`` module (224 px code), shimmed; skips when it cannot load."""
    _require("imagenet_c", "cv2", "skimage", "wand")
    try:
        import wand.image  # noqa: F401
    except ImportError as err:  # MagickWand library missing
        pytest.skip(f"Wand/ImageMagick unavailable: {err}")
    _install_shims()
    _frost_dir()
    mod = importlib.import_module("imagenet_c.corruptions")
    mod.gaussian = _gaussian_compat
    return mod


def run_reference(mod, name: str, img: np.ndarray, severity: int, seed: int = 0) -> np.ndarray:
    """Run ``mod.<name>(PIL image, severity)`` with a seeded NumPy global RNG; returns uint8 (H, W, 3)."""
    from PIL import Image

    np.random.seed(seed)
    out = getattr(mod, name)(Image.fromarray(img), severity)
    return np.uint8(np.asarray(out))
