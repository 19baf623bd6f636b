"""Noise corruptions (numerics). See the spec section for each op."""

from __future__ import annotations

__all__: list[str] = []
