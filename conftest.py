"""Repository-level pytest settings: the Triton kernel modules are collected (doctests) only when triton imports."""

from __future__ import annotations

import importlib.util

# robust_train/kernels/*.py import triton at module level (robust_train itself loads them lazily, by path)
collect_ignore_glob = [] if importlib.util.find_spec("triton") else ["robust_train/kernels/*.py"]
