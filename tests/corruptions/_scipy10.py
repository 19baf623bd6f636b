"""SciPy 1.0's ``map_coordinates(order=1, mode='reflect')`` transcribed to NumPy (the released ImageNet-C's SciPy).

SciPy < 1.6 (``ni_interpolation.c``) first folds every coordinate with ``map_coordinate``, whose ``reflect`` case
is: below 0, remove whole periods ``2 len`` (C ``(npy_intp)`` truncation), then ``c < -len ? c + 2 len : -c - 1``;
above ``len - 1``, remove whole periods, then ``c >= len ? 2 len - c - 1 : c``. A folded coordinate ``<= -1`` gives
``cval``. Otherwise the spline of order 1 starts at ``floor(c)``; taps outside the grid are folded with the
*mirror* rule (period ``2 len - 2``: ``-1 -> 1``, ``len -> len - 2``), and the weights are ``1 - |start - c + k|``.
SciPy 1.6 replaced this with a half-sample symmetric extension, which differs for positions in ``(-1, 0)`` and
``(len - 1, len)`` (and their periodic images).
"""

from __future__ import annotations

import itertools

import numpy as np

__all__ = ["map_coordinates_scipy10_reflect"]


def _fold_reflect(c: np.ndarray, n: int) -> np.ndarray:
    """``map_coordinate(c, n, NI_EXTEND_REFLECT)`` element-wise (float64)."""
    c = np.asarray(c, dtype=np.float64)
    if n <= 1:
        return np.zeros_like(c)
    sz2 = 2 * n
    out = c.copy()
    neg = c < 0
    v = c[neg]
    v = np.where(v < -sz2, sz2 * np.trunc(-v / sz2) + v, v)
    out[neg] = np.where(v < -n, v + sz2, -v - 1)
    big = c > n - 1
    v = c[big]
    v = v - sz2 * np.trunc(v / sz2)
    out[big] = np.where(v >= n, sz2 - v - 1, v)
    return out


def _mirror_tap(idx: np.ndarray, n: int) -> np.ndarray:
    """The edge-tap folding of ``NI_GeometricTransform`` (period ``2 n - 2``) on int64 indices."""
    if n <= 1:
        return np.zeros_like(idx)
    s2 = 2 * n - 2
    out = idx.copy()
    neg = idx < 0
    v = idx[neg]
    v = s2 * (-v // s2) + v  # C: s2 * (int)(-idx / s2) + idx, -idx > 0 so floor == trunc
    out[neg] = np.where(v <= 1 - n, v + s2, -v)
    big = idx >= n
    v = idx[big]
    v = v - s2 * (v // s2)
    out[big] = np.where(v >= n, s2 - v, v)
    return out


def map_coordinates_scipy10_reflect(image: np.ndarray, coords: np.ndarray, cval: float = 0.0) -> np.ndarray:
    """``scipy.ndimage.map_coordinates(image, coords, order=1, mode='reflect')`` as SciPy 1.0 computed it.

    Args:
        image: N-d float array.
        coords: (N, ...) coordinates, one row per axis of ``image``.
        cval: value where a folded coordinate is ``<= -1``.

    Returns:
        Array of shape ``coords.shape[1:]`` (float64).
    """
    image = np.asarray(image, dtype=np.float64)
    coords = np.asarray(coords, dtype=np.float64)
    starts, weights, keep = [], [], np.ones(coords.shape[1:], dtype=bool)
    for axis, n in enumerate(image.shape):
        cc = _fold_reflect(coords[axis], n)
        keep &= cc > -1.0
        start = np.floor(cc).astype(np.int64)
        starts.append(start)
        weights.append([1.0 - np.abs(start - cc + k) for k in (0, 1)])  # spline_coefficients, order 1
    out = np.zeros(coords.shape[1:], dtype=np.float64)
    for taps in itertools.product((0, 1), repeat=image.ndim):
        idx = tuple(_mirror_tap(starts[a] + k, image.shape[a]) for a, k in enumerate(taps))
        coeff = image[idx]
        for a, k in enumerate(taps):
            coeff = coeff * weights[a][k]
        out += coeff
    return np.where(keep, out, cval)
