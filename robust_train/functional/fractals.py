"""Procedural fractal pictures from iterated function systems, rendered on the device (PixMix's mixing set).

A picture is the attractor of an iterated function system (IFS) of ``N`` affine maps ``p -> A_j p + b_j`` of the
plane, drawn with the *chaos game* and coloured by the last map applied. Everything random about picture ``i`` comes
from one int64 seed (:func:`fractal_seeds`, a hash of ``(seed, i)``), so a picture is the same on every machine, in
every batch and at every batch position; it depends on the output size only through the rasterisation.

**Sampling an IFS** (:func:`sample_ifs`, host, float64; FractalDB-style: Kataoka et al. 2020 random affine IFS, with
the singular-value filter of Anderson & Farrell 2022, "Improving Fractal Pre-training"):

* ``N ~ U{min_maps, ..., max_maps}`` maps;
* each map is ``A = R(theta) diag(s1, d s2) R(phi)`` with ``theta, phi ~ U[0, 2 pi)``, ``d = +-1`` and singular values
  ``1 > s_max >= s1 >= s2 >= 0``; the *sigma factor* ``sum_j (s1_j + 2 s2_j)`` is drawn uniform in
  ``[(5 + N) / 2 - 0.5, (5 + N) / 2 + 0.5]`` (the band in which Anderson & Farrell find well-spread, neither
  dust-like nor blob-like attractors). Our construction meets the band exactly without rejection: the factor is
  split over the maps with weights ``1 + u_j`` (so no map exceeds what one map can carry), and each map's share
  ``c`` is split as ``s1 ~ U[c / 3, min(c, s_max)]``, ``s2 = (c - s1) / 2``;
* offsets ``b ~ U[-1, 1]^2``; map probabilities proportional to ``|det A| = s1 s2`` (floored, FractalDB's rule);
* one colour per map (HSV with random hue, saturation in [0.5, 1], value 1).

**Rendering** (:func:`render_fractals`, device, batched over pictures): ``walkers`` points per picture start at the
fixed point of map 0 (which lies on the attractor), take ``burn_in`` unrecorded steps to spread out, then ``steps``
recorded ones; the map of every step comes from a counter-based uniform field (:func:`~.rng.field_uniform`) of the
picture's seed. Every loop is over a fixed number of steps; pictures and walkers are tensor dimensions. Points are
fitted into the image (one scale for both axes, centred, 1-pixel margin) and splatted with ``scatter_add``: a hit
count and the summed 8-bit colour per pixel. Both sums are integers held exactly in float32, so the picture is
bitwise the same whatever order a GPU adds them in. Pixel value: mean colour of its hits times
``sqrt(log1p(count) / log1p(max count))``; the background is black.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .rng import combine_seeds, draw_uniform, field_uniform, stream_id

__all__ = ["IFS", "default_walkers", "fractal_seeds", "fractals", "render_fractals", "sample_ifs"]

_STREAM_IFS = stream_id("fractal_ifs")
_STREAM_WALK = stream_id("fractal_walk")
_STREAM_SEED = stream_id("fractal_picture")
#: Upper bound of the larger singular value (keeps every map strictly contractive, so its fixed point exists).
S_MAX = 0.95
_MIN_PROB = 0.02

IFS = dict[str, Tensor]


def fractal_seeds(seed: int, index: Tensor) -> Tensor:
    """Per-picture int64 seeds from the mixing set's seed and the picture indices (host).

    Example:
        >>> s = fractal_seeds(0, torch.tensor([3, 3, 4]))
        >>> bool(s[0] == s[1]), bool(s[0] != s[2])
        (True, True)
    """
    return combine_seeds(int(seed), _STREAM_SEED, index.detach().to("cpu", torch.int64))


def _hsv_to_rgb(h: Tensor, s: Tensor, v: Tensor) -> Tensor:
    """HSV in [0, 1] to RGB in [0, 1]; shapes broadcast, RGB on a new last dim."""
    out = []
    for n in (5.0, 3.0, 1.0):
        k = torch.remainder(n + h * 6.0, 6.0)
        out.append(v - v * s * torch.clamp(torch.minimum(k, 4.0 - k), 0.0, 1.0))
    return torch.stack(out, dim=-1)


def sample_ifs(seeds: Tensor, min_maps: int = 2, max_maps: int = 4) -> IFS:
    """Draw one IFS per seed (host, float64; module docstring for the distribution).

    Args:
        seeds: int64 picture seeds, shape (P,).
        min_maps: fewest affine maps per system (>= 2).
        max_maps: most affine maps per system (>= ``min_maps``); the map axis is padded to it.

    Returns:
        ``{"A": (P, M, 2, 2), "b": (P, M, 2), "prob": (P, M) (zero for padded maps, rows sum to 1),
        "color": (P, M, 3) in [0, 1], "num_maps": (P,) int64}`` with ``M = max_maps``, float64 on the CPU.

    Example:
        >>> ifs = sample_ifs(torch.tensor([1, 2, 3]))
        >>> ifs["A"].shape, bool(torch.allclose(ifs["prob"].sum(-1), torch.ones(3, dtype=torch.float64)))
        (torch.Size([3, 4, 2, 2]), True)
    """
    if not (isinstance(min_maps, int) and isinstance(max_maps, int)) or min_maps < 2 or max_maps < min_maps:
        raise ValueError(
            f"min_maps/max_maps: expected integers with 2 <= min_maps <= max_maps, got {min_maps}, {max_maps}"
        )
    if max_maps > 8:
        raise ValueError(
            f"max_maps: expected at most 8 maps (the sigma-factor band is calibrated for 2-8), got {max_maps}"
        )
    p, m = int(seeds.shape[0]), int(max_maps)
    per_map = 8  # uniforms per map: weight, s1, theta, phi, d, bx, by, hue (+ saturation below)
    u = draw_uniform(seeds, 2 + per_map * m + m, _STREAM_IFS)
    n = min_maps + torch.floor(u[:, 0] * (max_maps - min_maps + 1)).clamp(max=max_maps - min_maps).to(torch.int64)
    active = torch.arange(m).view(1, m) < n.view(p, 1)
    factor = (5.0 + n.to(torch.float64)) / 2.0 - 0.5 + u[:, 1]
    um = u[:, 2 : 2 + per_map * m].view(p, m, per_map)
    weight = torch.where(active, 1.0 + um[..., 0], torch.zeros_like(um[..., 0]))
    share = factor.view(p, 1) * weight / weight.sum(-1, keepdim=True)
    lo = share / 3.0
    hi = torch.minimum(share, torch.full_like(share, S_MAX))
    s1 = lo + um[..., 1] * (hi - lo)
    s2 = (share - s1) / 2.0
    theta, phi = um[..., 2] * (2.0 * math.pi), um[..., 3] * (2.0 * math.pi)
    d = torch.where(um[..., 4] < 0.5, -1.0, 1.0).to(torch.float64)

    def rot(t: Tensor) -> Tensor:
        c, s = torch.cos(t), torch.sin(t)
        return torch.stack([torch.stack([c, -s], -1), torch.stack([s, c], -1)], -2)

    sig = torch.zeros(p, m, 2, 2, dtype=torch.float64)
    sig[..., 0, 0] = s1
    sig[..., 1, 1] = d * s2
    a = rot(theta) @ sig @ rot(phi)
    b = um[..., 5:7] * 2.0 - 1.0
    det = (s1 * s2).clamp_min(0.0)
    prob = torch.where(active, det.clamp_min(_MIN_PROB * det.amax(-1, keepdim=True).clamp_min(1e-12)), 0.0)
    prob = prob / prob.sum(-1, keepdim=True)
    sat = 0.5 + 0.5 * u[:, 2 + per_map * m :]
    color = _hsv_to_rgb(um[..., 7], sat, torch.ones_like(sat))
    zero = torch.zeros_like(a)
    return {
        "A": torch.where(active.view(p, m, 1, 1), a, zero),
        "b": torch.where(active.view(p, m, 1), b, torch.zeros_like(b)),
        "prob": prob,
        "color": color,
        "num_maps": n,
    }


def default_walkers(height: int, width: int, steps: int = 16) -> int:
    """Walkers per picture for about two recorded points per pixel (at least 256).

    Example:
        >>> default_walkers(32, 32), default_walkers(224, 224)
        (256, 6272)
    """
    return max(256, -(-2 * int(height) * int(width) // max(int(steps), 1)))


def _check_ifs(ifs: IFS, seeds: Tensor) -> tuple[int, int]:
    for key, nd in (("A", 4), ("b", 3), ("prob", 2), ("color", 3)):
        if key not in ifs or not isinstance(ifs[key], Tensor) or ifs[key].dim() != nd:
            got = tuple(ifs[key].shape) if isinstance(ifs.get(key), Tensor) else type(ifs.get(key)).__name__
            raise ValueError(f"ifs[{key!r}]: expected a {nd}-d tensor (see sample_ifs), got {got}")
    p, m = int(ifs["A"].shape[0]), int(ifs["A"].shape[1])
    if ifs["A"].shape[2:] != (2, 2) or ifs["b"].shape != (p, m, 2) or ifs["prob"].shape != (p, m):
        raise ValueError(
            f"ifs: inconsistent shapes A {tuple(ifs['A'].shape)}, b {tuple(ifs['b'].shape)}, "
            f"prob {tuple(ifs['prob'].shape)}"
        )
    if ifs["color"].shape != (p, m, 3):
        raise ValueError(f"ifs['color']: expected shape ({p}, {m}, 3), got {tuple(ifs['color'].shape)}")
    if seeds.dim() != 1 or seeds.shape[0] != p or seeds.is_floating_point():
        raise ValueError(f"seeds: expected a ({p},) int64 tensor, got {seeds.dtype} {tuple(seeds.shape)}")
    return p, m


def render_fractals(
    ifs: IFS,
    seeds: Tensor,
    height: int,
    width: int,
    *,
    walkers: int | None = None,
    steps: int = 16,
    burn_in: int = 10,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """Render IFS attractors with the chaos game, batched over pictures (device maths, no host reads).

    Args:
        ifs: systems from :func:`sample_ifs` (host or device tensors).
        seeds: int64 picture seeds on the host, shape (P,) (drive the map choices of the walk).
        height: H of the pictures.
        width: W of the pictures.
        walkers: independent chaos-game walkers per picture; ``None``: :func:`default_walkers` (about two points
            per pixel).
        steps: recorded steps per walker (points per picture: ``walkers * steps``).
        burn_in: unrecorded steps from the fixed point of map 0 before recording.
        device: where to render (default: ``ifs["A"]``'s device).
        dtype: floating dtype of the result.

    Returns:
        RGB pictures, shape (P, 3, H, W), values in [0, 1], black background.

    Example:
        >>> s = fractal_seeds(0, torch.arange(2))
        >>> render_fractals(sample_ifs(s), s, 16, 20).shape
        torch.Size([2, 3, 16, 20])
    """
    p, m = _check_ifs(ifs, seeds)
    walkers = default_walkers(height, width, steps) if walkers is None else walkers
    for v, nm, lo in ((height, "height", 2), (width, "width", 2), (walkers, "walkers", 1), (steps, "steps", 1)):
        if not isinstance(v, int) or v < lo:
            raise ValueError(f"{nm}: expected an integer >= {lo}, got {v!r}")
    if not isinstance(burn_in, int) or burn_in < 0:
        raise ValueError(f"burn_in: expected a non-negative integer, got {burn_in!r}")
    dev = torch.device(ifs["A"].device if device is None else device)
    a = ifs["A"].to(dev, torch.float32)
    b = ifs["b"].to(dev, torch.float32)
    cum = torch.cumsum(ifs["prob"].to(dev, torch.float32), dim=-1)
    # start at the fixed point of map 0, x* = (I - A_0)^-1 b_0 (map 0 is always active and contractive)
    a0, b0 = a[:, 0], b[:, 0]
    eye = torch.eye(2, device=dev, dtype=torch.float32).expand(p, 2, 2)
    start = torch.linalg.solve(eye - a0, b0.unsqueeze(-1)).squeeze(-1)
    total = burn_in + steps
    u = field_uniform(seeds, (total, walkers), _STREAM_WALK, device=dev)  # keys hashed on the host
    local = torch.zeros(p, total, walkers, device=dev, dtype=torch.int64)
    for j in range(m - 1):  # inverse CDF: the number of cumulative probabilities <= u (the last one is 1)
        local += (u >= cum[:, j].view(p, 1, 1)).to(torch.int64)
    # float32 rounding can leave the last active cumulative probability just below 1: never pick a padded map
    last = ((ifs["prob"] > 0).sum(-1) - 1).to(dev, torch.int64)
    local = torch.minimum(local, last.view(p, 1, 1))
    rows = local + torch.arange(p, device=dev).view(p, 1, 1) * m  # rows of coef: picture * M + map
    # per map: (a00, a01, a10, a11, b0, b1); one gather of the six coefficients per step, then plain arithmetic
    coef = torch.cat([a.reshape(p, m, 4), b], dim=-1).reshape(p * m, 6)
    px = start[:, 0:1].expand(p, walkers)
    py = start[:, 1:2].expand(p, walkers)
    rec_x, rec_y, rec_map = [], [], []
    for t in range(total):
        c = coef.index_select(0, rows[:, t].reshape(-1)).view(p, walkers, 6).unbind(-1)
        px, py = c[0] * px + c[1] * py + c[4], c[2] * px + c[3] * py + c[5]
        if t >= burn_in:
            rec_x.append(px)
            rec_y.append(py)
            rec_map.append(local[:, t])
    xy = torch.stack([torch.stack(rec_x, dim=1), torch.stack(rec_y, dim=1)], dim=-1).reshape(p, steps * walkers, 2)
    maps = torch.stack(rec_map, dim=1).reshape(p, steps * walkers)
    lo, hi = xy.amin(dim=1, keepdim=True), xy.amax(dim=1, keepdim=True)
    span = (hi - lo).clamp_min(1e-6)
    avail = torch.tensor([width - 3.0, height - 3.0], device=dev).view(1, 1, 2)
    scale = (avail / span).amin(dim=-1, keepdim=True)
    centre = (lo + hi) / 2.0
    pix = (xy - centre) * scale + torch.tensor([width / 2.0, height / 2.0], device=dev).view(1, 1, 2)
    ix = pix[..., 0].floor().clamp(0, width - 1).to(torch.int64)
    iy = pix[..., 1].floor().clamp(0, height - 1).to(torch.int64)
    flat = iy * width + ix
    counts = torch.zeros(p, height * width, device=dev, dtype=torch.float32)
    counts.scatter_add_(1, flat, torch.ones_like(flat, dtype=torch.float32))
    col8 = torch.round(ifs["color"].to(dev, torch.float32) * 255.0)  # integer colours: exact sums in any order
    pt_col = torch.gather(col8, 1, maps.unsqueeze(-1).expand(p, maps.shape[1], 3))  # (P, n, 3)
    sums = torch.zeros(p, 3, height * width, device=dev, dtype=torch.float32)
    sums.scatter_add_(2, flat.unsqueeze(1).expand(p, 3, flat.shape[1]), pt_col.transpose(1, 2).contiguous())
    mean_col = sums / (255.0 * counts.clamp_min(1.0).unsqueeze(1))
    dens = torch.log1p(counts) / torch.log1p(counts.amax(dim=1, keepdim=True)).clamp_min(1e-6)
    img = mean_col * dens.sqrt().unsqueeze(1)
    return img.clamp_(0.0, 1.0).view(p, 3, height, width).to(dtype)


def fractals(
    index: Tensor,
    height: int,
    width: int,
    *,
    seed: int = 0,
    min_maps: int = 2,
    max_maps: int = 4,
    walkers: int | None = None,
    steps: int = 16,
    burn_in: int = 10,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """Pictures ``index`` of the fractal set ``seed``: IFS drawn on the host, rendered on ``device``.

    Args:
        index: picture indices, shape (P,) int64 (host or device; read on the host).
        height: H.
        width: W.
        seed: seed of the set.
        min_maps: see :func:`sample_ifs`.
        max_maps: see :func:`sample_ifs`.
        walkers: see :func:`render_fractals`.
        steps: see :func:`render_fractals`.
        burn_in: see :func:`render_fractals`.
        device: where to render (default: ``index``'s device).
        dtype: floating dtype of the result.

    Returns:
        Pictures, shape (P, 3, H, W), in [0, 1].

    Example:
        >>> fractals(torch.tensor([0, 7]), 32, 32).shape
        torch.Size([2, 3, 32, 32])
    """
    if not isinstance(index, Tensor) or index.dim() != 1 or index.is_floating_point():
        got = f"{index.dtype} {tuple(index.shape)}" if isinstance(index, Tensor) else type(index).__name__
        raise ValueError(f"index: expected a (P,) integer tensor of picture indices, got {got}")
    dev = torch.device(index.device if device is None else device)
    seeds = fractal_seeds(seed, index)
    ifs = sample_ifs(seeds, min_maps, max_maps)
    return render_fractals(
        ifs, seeds, height, width, walkers=walkers, steps=steps, burn_in=burn_in, device=dev, dtype=dtype
    )
