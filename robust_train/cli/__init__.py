"""Command-line entry points (layer 4): ``robust-train`` (:mod:`.train`) and ``robust-eval`` (:mod:`.eval`).

Both are Hydra applications reading ``conf/train.yaml`` / ``conf/eval.yaml`` from the repository (editable install).
Importing this package does not import Lightning; the sub-modules do.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["CONFIG_DIR"]

#: The repository's Hydra config folder (``<repo>/conf``), as used by the entry points.
CONFIG_DIR = str(Path(__file__).resolve().parents[2] / "conf")
