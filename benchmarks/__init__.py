"""Benchmarks (not part of the installed package): shared infrastructure in :mod:`benchmarks.common`.

Run scripts from the repository root, e.g. ``python benchmarks/corruptions.py`` (see ``benchmarks/README.md``).
"""
