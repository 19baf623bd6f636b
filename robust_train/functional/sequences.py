"""ImageNet-P perturbation sequences (numerics, spec section 6): ``(B, C, H, W) -> (B, T, C, h, w)``.

Every op takes a batch of clean images and the per-frame arguments of the sequence (shape ``(T,)``, shared by the
batch, as in ImageNet-P where frame ``i`` of every video uses the same angle / shift / scale), plus a per-sample
int64 ``seed`` for the ones with random content (noise, snow, spatter). They return float frames in [0, 1] before
the final 8-bit truncation (the module applies it, as the original saved 8-bit PNG frames).

Geometry follows the original generators:

* translate / rotate / scale / shear / zoom use **torchvision 0.2's** ``functional.affine`` through PIL (quirk 21):
  inverse map around the centre ``(W/2 + 0.5, H/2 + 0.5)``, forward matrix with columns ``scale (cos a, sin a)``
  and ``scale (-sin(a + s), cos(a + s))``, PIL's sampling (output pixel centre ``(x + 0.5, y + 0.5)`` mapped to the
  input; outside ``[0, W) x [0, H)`` black; bilinear between clamped neighbours, no antialiasing) - see
  :func:`tv02_affine_coords`;
* tilt is OpenCV ``warpPerspective`` with the homography of spec 6.4 (bilinear, black border, integer pixel
  centres) - see :func:`tilt_homography`.

``crop`` emulates ImageNet-P's context: the input is the larger image (Resize(256)) and frames are centre-cropped to
``crop`` (torchvision ``CenterCrop`` offsets); geometric ops transform the whole input before cropping (content moves
in from outside the crop), photometric ops work on the crop. ``crop=None`` keeps the input size (CIFAR-P, or inputs
that are already the final crop: then black borders enter instead of context).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from .blur import motion_blur
from .checks import check_batch_param, check_image
from .filters import gaussian_filter2d
from .rng import combine_seeds
from .weather import brightness, snow, spatter

__all__ = [
    "affine_sequence",
    "brightness_sequence",
    "center_crop_offsets",
    "frame_seeds",
    "gaussian_blur_sequence",
    "motion_blur_sequence",
    "noise_sequence",
    "repeat_frames",
    "resize_shorter_side",
    "snow_sequence",
    "spatter_layers",
    "spatter_sequence",
    "tilt_homography",
    "tilt_sequence",
    "translate_sequence",
    "tv02_affine_coords",
    "zoom_blur_sequence",
]


# ----------------------------------------------------------------------------------------------- helpers
def center_crop_offsets(height: int, width: int, crop: int | None) -> tuple[int, int, int, int]:
    """``(top, left, h, w)`` of torchvision's ``CenterCrop(crop)`` (``int(round((H - crop) / 2))``).

    Example:
        >>> center_crop_offsets(256, 341, 224)
        (16, 58, 224, 224)
    """
    if crop is None:
        return 0, 0, height, width
    if crop > height or crop > width or crop < 1:
        raise ValueError(f"crop {crop} does not fit into an image of {height}x{width}")
    return int(round((height - crop) / 2.0)), int(round((width - crop) / 2.0)), crop, crop


def _crop(x: Tensor, crop: int | None) -> Tensor:
    top, left, h, w = center_crop_offsets(x.shape[-2], x.shape[-1], crop)
    return x[..., top : top + h, left : left + w]


def _frames_arg(v: Tensor | Sequence[float], name: str) -> Tensor:
    t = torch.as_tensor(v, dtype=torch.float64).reshape(-1).cpu()
    if t.numel() == 0 or not torch.isfinite(t).all():
        raise ValueError(f"{name}: expected a non-empty (T,) tensor of finite per-frame values, got {v!r}")
    return t


def repeat_frames(x: Tensor, t: int) -> Tensor:
    """``(B, C, H, W) -> (B * T, C, H, W)``: every image repeated for its ``T`` frames (sample-major)."""
    return x.unsqueeze(1).expand(-1, t, *x.shape[1:]).reshape(-1, *x.shape[1:])


def _unflatten(y: Tensor, b: int) -> Tensor:
    return y.reshape(b, -1, *y.shape[1:])


def frame_seeds(seed: Tensor, num_frames: int) -> Tensor:
    """Per-(sample, frame) seeds ``combine_seeds(seed_b, t)``, flattened sample-major to (B * T,) int64 (CPU).

    Example:
        >>> frame_seeds(torch.tensor([1, 2]), 3).shape
        torch.Size([6])
    """
    s = seed.to("cpu", torch.int64).reshape(-1, 1)
    return combine_seeds(s, torch.arange(num_frames).view(1, -1)).reshape(-1)


def _check_seed(seed: Tensor, b: int) -> Tensor:
    if not isinstance(seed, Tensor) or seed.dtype not in (torch.int64, torch.int32):
        raise TypeError(f"seed: expected a (B,) int64 tensor, got {seed!r}")
    check_batch_param(seed.reshape(-1), b, "seed")
    return seed.reshape(-1)


# ----------------------------------------------------------------------------------------------- affine (tv 0.2)
def tv02_affine_coords(
    height: int,
    width: int,
    angle: Tensor,
    translate: Tensor,
    scale: Tensor,
    shear: Tensor,
    out_box: tuple[int, int, int, int] | None = None,
) -> Tensor:
    """Input coordinates that torchvision 0.2's ``affine`` (through PIL ``Image.transform``) reads per output pixel.

    ``center = (W/2 + 0.5, H/2 + 0.5)``; with ``a`` = angle and ``s`` = shear in radians the inverse linear part is
    ``(1/scale) / cos(s) * [[cos(a + s), sin(a + s)], [-sin(a), cos(a)]]``, and the output pixel ``(x, y)`` reads the
    input at ``M (x + 0.5 - c_x - t_x, y + 0.5 - c_y - t_y) + c`` in PIL's continuous coordinates (pixel ``k``
    covers ``[k, k + 1)``).

    Args:
        height: input height H.
        width: input width W.
        angle: (T,) degrees (torchvision 0.2 convention; positive = clockwise on screen).
        translate: (T, 2) pixels ``(t_x, t_y)``.
        scale: (T,) scale factors > 0.
        shear: (T,) degrees.
        out_box: ``(top, left, h, w)`` of the output window (a centre crop of the H x W output), default all.

    Returns:
        (T, h, w, 2) float64 ``(x_in, y_in)`` in PIL's continuous coordinates.

    Example:
        >>> c = tv02_affine_coords(4, 4, torch.zeros(1), torch.zeros(1, 2), torch.ones(1), torch.zeros(1))
        >>> c[0, 0, 0].tolist()
        [0.5, 0.5]
    """
    a = torch.deg2rad(_frames_arg(angle, "angle"))
    s = torch.deg2rad(_frames_arg(shear, "shear"))
    sc = _frames_arg(scale, "scale")
    if (sc <= 0).any():
        raise ValueError(f"scale: expected values > 0, got {sc.tolist()}")
    tr = torch.as_tensor(translate, dtype=torch.float64).reshape(-1, 2)
    cx, cy = width * 0.5 + 0.5, height * 0.5 + 0.5
    d = torch.cos(a + s) * torch.cos(a) + torch.sin(a + s) * torch.sin(a)
    k = (1.0 / sc) / d
    m00, m01 = k * torch.cos(a + s), k * torch.sin(a + s)
    m10, m11 = -k * torch.sin(a), k * torch.cos(a)
    top, left, h, w = out_box if out_box is not None else (0, 0, height, width)
    ys = torch.arange(top, top + h, dtype=torch.float64) + 0.5
    xs = torch.arange(left, left + w, dtype=torch.float64) + 0.5
    u = xs.view(1, 1, -1) - cx - tr[:, 0].view(-1, 1, 1)
    v = ys.view(1, -1, 1) - cy - tr[:, 1].view(-1, 1, 1)
    x_in = m00.view(-1, 1, 1) * u + m01.view(-1, 1, 1) * v + cx
    y_in = m10.view(-1, 1, 1) * u + m11.view(-1, 1, 1) * v + cy
    return torch.stack((x_in, y_in), -1)


def _pil_sample(x: Tensor, coords: Tensor, mode: str) -> Tensor:
    """Sample ``x`` (B, C, H, W) at PIL coordinates (T, h, w, 2) -> (B, T, C, h, w), black outside the image."""
    b, c, hh, ww = x.shape
    t = coords.shape[0]
    xin, yin = coords[..., 0], coords[..., 1]
    valid = (xin >= 0) & (xin < ww) & (yin >= 0) & (yin < hh)
    if mode == "nearest":
        ix = torch.floor(xin).clamp(0, ww - 1).long().to(x.device)
        iy = torch.floor(yin).clamp(0, hh - 1).long().to(x.device)
        flat = (iy * ww + ix).view(1, 1, -1).expand(b, c, -1)
        out = x.reshape(b, c, hh * ww).gather(2, flat).view(b, c, t, *coords.shape[1:3]).transpose(1, 2)
    elif mode == "bilinear":
        # pixel-index position (xin - 0.5) in align_corners=False normalised units is 2 * xin / W - 1
        grid = torch.stack((2.0 * xin / ww - 1.0, 2.0 * yin / hh - 1.0), -1).to(device=x.device, dtype=x.dtype)
        g = grid.unsqueeze(0).expand(b, -1, -1, -1, -1).reshape(b * t, *grid.shape[1:])
        out = F.grid_sample(repeat_frames(x, t), g, mode="bilinear", padding_mode="border", align_corners=False)
        out = _unflatten(out, b)
    else:
        raise ValueError(f"mode must be 'bilinear' or 'nearest', got {mode!r}")
    return out * valid.to(device=x.device, dtype=x.dtype).unsqueeze(0).unsqueeze(2)


def _tv02_pil_coords(
    height: int, width: int, scale: Tensor, out_box: tuple[int, int, int, int]
) -> tuple[Tensor, Tensor, Tensor]:
    """PIL's input position per output pixel of a torchvision 0.2 centre zoom, in PIL's own double arithmetic.

    The coefficients follow torchvision 0.2's ``_get_inverse_affine_matrix`` operation by operation (angle, shear
    and translation 0), and PIL's ``affine_transform`` evaluates ``a0 (x + 0.5) + a1 (y + 0.5) + a2``; matching the
    rounding of these doubles matters where a sample lands a hair beside a pixel centre and PIL truncates.

    Returns:
        ``(x_in, y_in, valid)``, each (T, h, w) on the CPU (float64, float64, bool).
    """
    cx, cy = width * 0.5 + 0.5, height * 0.5 + 0.5
    rows = []
    for s in scale.tolist():  # host values: the per-frame table
        k = (1.0 / s) / 1.0  # scale / d with d = cos(0) cos(0) + sin(0) sin(0) = 1
        m = [k * 1.0, k * 0.0, 0.0, -k * 0.0, k * 1.0, 0.0]
        m[2] += m[0] * (-cx - 0.0) + m[1] * (-cy - 0.0)
        m[5] += m[3] * (-cx - 0.0) + m[4] * (-cy - 0.0)
        m[2] += cx
        m[5] += cy
        rows.append(m)
    a = torch.tensor(rows, dtype=torch.float64).view(-1, 6, 1, 1)
    top, left, h, w = out_box
    xh = (torch.arange(left, left + w, dtype=torch.float64) + 0.5).view(1, 1, -1)
    yh = (torch.arange(top, top + h, dtype=torch.float64) + 0.5).view(1, -1, 1)
    xin = a[:, 0] * xh + a[:, 1] * yh + a[:, 2]
    yin = a[:, 3] * xh + a[:, 4] * yh + a[:, 5]
    valid = (xin >= 0) & (xin < width) & (yin >= 0) & (yin < height)
    return xin, yin, valid


def _pil_bilinear_levels(x: Tensor, xin: Tensor, yin: Tensor, valid: Tensor) -> Tensor:
    """PIL's uint8 ``BILINEAR`` transform filter: (B, C, H, W) -> (B, T, C, h, w) integer levels (float64).

    Host: ``floor(x_in - 0.5)``, the fractions and clamped neighbour indices. Device: the 8-bit levels are
    interpolated in float64 in PIL's order (``a + (b - a) d`` along x on both rows, then along y), truncated, and set
    to 0 where the position is outside the image.
    """
    b, c, hh, ww = x.shape
    t, h, w = xin.shape
    xs, ys = xin - 0.5, yin - 0.5
    x0, y0 = torch.floor(xs), torch.floor(ys)
    dx, dy = (xs - x0).to(x.device), (ys - y0).to(x.device)
    x0, y0 = x0.to(torch.int64), y0.to(torch.int64)
    xa, xb = x0.clamp(0, ww - 1), (x0 + 1).clamp(0, ww - 1)
    ya, yb = y0.clamp(0, hh - 1), (y0 + 1).clamp(0, hh - 1)
    levels = torch.round(x.clamp(0.0, 1.0) * 255.0).to(torch.float64).reshape(b * c, hh * ww)

    def at(yy: Tensor, xx: Tensor) -> Tensor:
        return levels[:, (yy * ww + xx).reshape(-1).to(x.device)].view(b * c, t, h, w)

    p00, p01, p10, p11 = at(ya, xa), at(ya, xb), at(yb, xa), at(yb, xb)
    v1 = p00 + (p01 - p00) * dx
    v2 = p10 + (p11 - p10) * dx
    v = torch.floor(v1 + (v2 - v1) * dy) * valid.to(x.device)
    return v.view(b, c, t, h, w).transpose(1, 2)


def affine_sequence(
    x: Tensor,
    angle: Tensor | Sequence[float] | None = None,
    scale: Tensor | Sequence[float] | None = None,
    shear: Tensor | Sequence[float] | None = None,
    translate: Tensor | Sequence[Sequence[float]] | None = None,
    mode: str = "bilinear",
    crop: int | None = None,
) -> Tensor:
    """Frames ``affine(x, angle_t, translate_t, scale_t, shear_t)`` with torchvision 0.2 / PIL semantics.

    Used for rotate (angle ``i - 15``), scale, shear and translate (``mode="nearest"``) sequences.

    Args:
        x: images, shape (B, C, H, W), float in [0, 1].
        angle: (T,) degrees (default 0).
        scale: (T,) factors (default 1).
        shear: (T,) degrees (default 0).
        translate: (T, 2) pixels (default 0).
        mode: ``"bilinear"`` or ``"nearest"`` (PIL filters).
        crop: centre-crop size of the frames (module docstring), ``None`` for the input size.

    Returns:
        (B, T, C, h, w) frames, same dtype as ``x``.

    Example:
        >>> affine_sequence(torch.rand(2, 3, 16, 16), angle=torch.tensor([-5.0, 0.0, 5.0])).shape
        torch.Size([2, 3, 3, 16, 16])
    """
    check_image(x, channels=None, check_values=False)
    given = [torch.as_tensor(v).reshape(-1) for v in (angle, scale, shear) if v is not None]
    if translate is not None:
        given.append(torch.as_tensor(translate).reshape(-1, 2)[:, 0])
    if not given:
        raise ValueError("affine_sequence needs at least one of angle, scale, shear, translate")
    t = given[0].numel()
    if any(g.numel() != t for g in given):
        raise ValueError(f"per-frame arguments disagree on the number of frames: {[g.numel() for g in given]}")
    zeros, ones = torch.zeros(t, dtype=torch.float64), torch.ones(t, dtype=torch.float64)
    h, w = x.shape[-2:]
    coords = tv02_affine_coords(
        h,
        w,
        zeros if angle is None else torch.as_tensor(angle),
        torch.zeros(t, 2) if translate is None else torch.as_tensor(translate, dtype=torch.float64).reshape(t, 2),
        ones if scale is None else torch.as_tensor(scale),
        zeros if shear is None else torch.as_tensor(shear),
        out_box=center_crop_offsets(h, w, crop),
    )
    return _pil_sample(x, coords, mode)


def translate_sequence(x: Tensor, shifts: Tensor | Sequence[float], crop: int | None = None) -> Tensor:
    """Horizontal shifts (content moves right by ``shift`` pixels), nearest neighbour, black fill, then crop.

    Example:
        >>> translate_sequence(torch.rand(1, 3, 8, 8), torch.arange(-2.0, 3.0)).shape
        torch.Size([1, 5, 3, 8, 8])
    """
    s = _frames_arg(shifts, "shifts")
    tr = torch.stack((s, torch.zeros_like(s)), -1)
    return affine_sequence(x, translate=tr, mode="nearest", crop=crop)


def zoom_blur_sequence(
    x: Tensor, scales: Tensor | Sequence[float], crop: int | None = None, emulate_uint8: bool = False
) -> Tensor:
    """Running average of centre zooms: frame ``i`` = mean of ``affine(x, scale=scales[j])`` for ``j <= i``.

    ImageNet-P uses ``scales = 1 + 0.004 j`` (``j = 0 .. 30``): frame 0 is the (cropped) image itself. The zooms
    use torchvision 0.2 / PIL bilinear sampling of the whole input, then the centre crop, as the original.

    With ``emulate_uint8`` the original's 8-bit steps are reproduced: every zoom is truncated to 8 bits (PIL's
    ``Image.transform`` returns uint8), the running sum of ``ToTensor`` values (``k / 255``) and the division by
    the frame count are float32, and ``ToPILImage`` truncates ``mean * 255`` (frame 0 is the crop itself). The
    result is on the 8-bit grid; without it the mean of the unquantised zooms is returned.

    Example:
        >>> zoom_blur_sequence(torch.rand(2, 3, 16, 16), 1 + 0.004 * torch.arange(4.0)).shape
        torch.Size([2, 4, 3, 16, 16])
    """
    if not emulate_uint8:
        z = affine_sequence(x, scale=_frames_arg(scales, "scales"), crop=crop)
        count = torch.arange(1, z.shape[1] + 1, device=x.device, dtype=x.dtype).view(1, -1, 1, 1, 1)
        return z.cumsum(1) / count
    sc = _frames_arg(scales, "scales")
    hh, ww = x.shape[-2:]
    levels = _pil_bilinear_levels(x, *_tv02_pil_coords(hh, ww, sc, center_crop_offsets(hh, ww, crop)))
    frames = [levels[:, 0].to(x.dtype)]
    acc = levels[:, 0].float() / 255.0  # torchvision 0.2 ToTensor: float32 k / 255
    for i in range(1, levels.shape[1]):  # sequential float32 sums, as the original's loop (T steps, batched)
        acc = acc + levels[:, i].float() / 255.0
        frames.append(torch.floor((acc / float(i + 1)) * 255.0).to(x.dtype))  # ToPILImage: mul(255).byte()
    return torch.stack(frames, 1) / 255.0


# ----------------------------------------------------------------------------------------------- tilt
def tilt_homography(height: int, width: int, phi: Tensor | Sequence[float], theta: Tensor | Sequence[float]) -> Tensor:
    """Source-to-destination homographies of the tilt sequence (spec 6.4), float64 (T, 3, 3).

    Lift ``(u, v)`` to ``(u - w/2, v - h/2, 1)``, rotate by ``R_x(theta) R_y(phi)``, move by ``f = sqrt(w^2 + h^2)``
    along z, project with focal length ``f`` and principal point ``(w/2, h/2)``. At zero angles this is a uniform
    scale by ``f / (f + 1)`` around the centre, not the identity (quirk 20).

    Example:
        >>> tilt_homography(32, 32, torch.zeros(1), torch.zeros(1)).shape
        torch.Size([1, 3, 3])
    """
    p = torch.deg2rad(_frames_arg(phi, "phi"))
    q = torch.deg2rad(_frames_arg(theta, "theta"))
    if p.numel() != q.numel():
        raise ValueError(f"phi and theta must have the same number of frames, got {p.numel()} and {q.numel()}")
    h, w = float(height), float(width)
    f = math.sqrt(w * w + h * h)
    t = p.numel()
    a1 = torch.tensor([[1.0, 0, -w / 2], [0, 1, -h / 2], [0, 0, 1], [0, 0, 1]], dtype=torch.float64)
    ry = torch.zeros(t, 4, 4, dtype=torch.float64)
    ry[:, 0, 0], ry[:, 0, 2], ry[:, 1, 1] = torch.cos(p), -torch.sin(p), 1.0
    ry[:, 2, 0], ry[:, 2, 2], ry[:, 3, 3] = torch.sin(p), torch.cos(p), 1.0
    rx = torch.zeros(t, 4, 4, dtype=torch.float64)
    rx[:, 0, 0], rx[:, 1, 1], rx[:, 1, 2] = 1.0, torch.cos(q), -torch.sin(q)
    rx[:, 2, 1], rx[:, 2, 2], rx[:, 3, 3] = torch.sin(q), torch.cos(q), 1.0
    tz = torch.eye(4, dtype=torch.float64)
    tz[2, 3] = f
    a2 = torch.tensor([[f, 0, w / 2, 0], [0, f, h / 2, 0], [0, 0, 1, 0]], dtype=torch.float64)
    return a2 @ tz @ rx @ ry @ a1


def tilt_sequence(
    x: Tensor,
    phi: Tensor | Sequence[float],
    theta: Tensor | Sequence[float],
    crop: int | None = None,
    emulate_uint8: bool = False,
) -> Tensor:
    """Perspective tilt frames (OpenCV ``warpPerspective`` semantics: bilinear, zero border), then centre crop.

    With ``emulate_uint8`` the arithmetic of OpenCV's 8-bit warp (OpenCV 2.x-4.x, which made the released data) is
    reproduced (:func:`_opencv_fixed_point_warp`): source positions rounded to 1/32 pixel, integer bilinear weights,
    the weighted sum of the 8-bit input rounded to the nearest level. Otherwise frames are exact float bilinear
    samples (no quantisation).

    Example:
        >>> tilt_sequence(torch.rand(2, 3, 16, 16), torch.tensor([-3.0, 3.0]), torch.tensor([-3.0, 3.0])).shape
        torch.Size([2, 2, 3, 16, 16])
    """
    check_image(x, channels=None, check_values=False)
    b, c, hh, ww = x.shape
    hom = tilt_homography(hh, ww, phi, theta)
    inv = torch.linalg.inv(hom)  # warpPerspective maps destination pixels through H^-1
    top, left, h, w = center_crop_offsets(hh, ww, crop)
    ys = torch.arange(top, top + h, dtype=torch.float64)
    xs = torch.arange(left, left + w, dtype=torch.float64)
    pts = torch.stack(torch.broadcast_tensors(xs.view(1, -1), ys.view(-1, 1), torch.ones(1, 1, dtype=torch.float64)))
    src = torch.einsum("tij,jhw->tihw", inv, pts)
    if emulate_uint8:
        return _opencv_fixed_point_warp(x, src)
    sx, sy = src[:, 0] / src[:, 2], src[:, 1] / src[:, 2]
    # OpenCV pixel centres are integers: index p -> align_corners=False normalised (2p + 1) / n - 1
    grid = torch.stack(((2.0 * sx + 1.0) / ww - 1.0, (2.0 * sy + 1.0) / hh - 1.0), -1).to(x.device, x.dtype)
    t = grid.shape[0]
    g = grid.unsqueeze(0).expand(b, -1, -1, -1, -1).reshape(b * t, h, w, 2)
    out = F.grid_sample(repeat_frames(x, t), g, mode="bilinear", padding_mode="zeros", align_corners=False)
    return _unflatten(out, b)


_CV_TAB = 32  # OpenCV INTER_TAB_SIZE: source positions in 1/32 pixel


def _opencv_fixed_point_warp(x: Tensor, src: Tensor) -> Tensor:
    """OpenCV's uint8 bilinear warp with zero border on homogeneous source points ``src`` (T, 3, h, w) float64.

    Planning (host, data independent): ``X = round(32 x / w)`` (``cvRound``, half to even), integer cell
    ``X >> 5`` and fraction ``X & 31``; the four weights ``(32 - a)(32 - b)``, ``a (32 - b)``, ... sum to 1024
    (OpenCV's table entries are these times 32, summing to ``2^15``). Device: the 8-bit input levels are gathered
    (zero outside the image), weighted, and ``(S + 512) >> 10`` gives the rounded output level.

    Returns:
        (B, T, C, h, w) frames on the 8-bit grid, dtype of ``x``.
    """
    b, c, hh, ww = x.shape
    t, _, h, w = src.shape
    wz = src[:, 2]
    scale = torch.where(wz != 0, _CV_TAB / torch.where(wz != 0, wz, torch.ones_like(wz)), torch.zeros_like(wz))
    big = float(2**31 - 1)
    fx = torch.round((src[:, 0] * scale).clamp(-big, big)).to(torch.int64)  # torch.round: half to even, as cvRound
    fy = torch.round((src[:, 1] * scale).clamp(-big, big)).to(torch.int64)
    ix, iy, a, bb = fx >> 5, fy >> 5, fx & (_CV_TAB - 1), fy & (_CV_TAB - 1)
    pw = ww + 2  # one zero pixel around the image: every out-of-range neighbour reads a zero

    def flat(yy: Tensor, xx: Tensor) -> Tensor:
        return ((yy + 1).clamp(0, hh + 1) * pw + (xx + 1).clamp(0, ww + 1)).reshape(-1)

    idx = torch.stack((flat(iy, ix), flat(iy, ix + 1), flat(iy + 1, ix), flat(iy + 1, ix + 1)))  # (4, T h w)
    wts = torch.stack(((32 - a) * (32 - bb), a * (32 - bb), (32 - a) * bb, a * bb)).reshape(4, -1)
    levels = torch.round(x.clamp(0.0, 1.0) * 255.0)  # the 8-bit image OpenCV warps
    padded = F.pad(levels, (1, 1, 1, 1)).reshape(b * c, -1)
    idx, wts = idx.to(x.device), wts.to(device=x.device, dtype=x.dtype)
    acc = padded[:, idx[0]] * wts[0]
    for k in range(1, 4):
        acc = acc + padded[:, idx[k]] * wts[k]  # integers < 2^18: exact in float32
    out = torch.floor((acc + 512.0) / 1024.0) / 255.0
    return out.view(b, c, t, h, w).transpose(1, 2)


# ----------------------------------------------------------------------------------------------- photometric
def noise_sequence(
    x: Tensor, kind: str, strength: float, seed: Tensor, num_frames: int, crop: int | None = None
) -> Tensor:
    """Frame 0 = the clean image, frames ``1 .. T-1`` = independent noisy copies (spec 6.3).

    ``kind`` selects :func:`~robust_train.functional.noise.gaussian_noise` (``strength`` = sigma),
    :func:`~robust_train.functional.noise.shot_noise` (photon scale lambda) or
    :func:`~robust_train.functional.noise.speckle_noise` (sigma). Frame ``t`` of sample ``b`` uses the seed
    ``combine_seeds(seed_b, t)`` (:func:`frame_seeds`).

    Example:
        >>> noise_sequence(torch.rand(2, 3, 8, 8), "gaussian", 0.05, torch.tensor([1, 2]), 4).shape
        torch.Size([2, 4, 3, 8, 8])
    """
    from . import noise as N

    ops = {"gaussian": N.gaussian_noise, "shot": N.shot_noise, "speckle": N.speckle_noise}
    if kind not in ops:
        raise ValueError(f"kind must be one of {sorted(ops)}, got {kind!r}")
    if num_frames < 2:
        raise ValueError(f"num_frames must be >= 2, got {num_frames}")
    check_image(x, check_values=False)
    xc = _crop(x, crop)
    b = xc.shape[0]
    seeds = frame_seeds(_check_seed(seed, b), num_frames).view(b, num_frames)[:, 1:].reshape(-1)
    noisy = ops[kind](repeat_frames(xc, num_frames - 1), strength, seeds)  # host seeds: keys are hashed on the host
    return torch.cat((xc.unsqueeze(1), _unflatten(noisy, b)), 1)


def resize_shorter_side(x: Tensor, size: int) -> tuple[int, int]:
    """Output ``(h, w)`` of torchvision's ``Resize(size)`` on an ``H x W`` image (shorter side ``size``).

    Example:
        >>> resize_shorter_side(torch.zeros(1, 3, 300, 451), 64)
        (64, 96)
    """
    h, w = int(x.shape[-2]), int(x.shape[-1])
    if w <= h:
        return int(size * h / w), size
    return size, int(size * w / h)


def motion_blur_sequence(
    x: Tensor,
    radius: float,
    sigma: float,
    angles: Tensor | Sequence[float],
    crop: int | None = None,
    resize: int | None = None,
) -> Tensor:
    """ImageMagick motion blur (H5, :func:`~robust_train.functional.blur.motion_blur`) at one angle per frame.

    ``resize``: Tiny-ImageNet-P's pipeline (quirk 19): the full-resolution input is blurred, then every frame is
    resized to ``resize`` on its shorter side (torchvision ``Resize``, PIL bilinear with antialiasing, no crop;
    rounded to 8 bits as PIL writes them). ``crop`` and ``resize`` exclude each other.

    Example:
        >>> motion_blur_sequence(torch.rand(2, 3, 16, 16), 6.0, 1.8, torch.tensor([-180.0, -90.0, 0.0])).shape
        torch.Size([2, 3, 3, 16, 16])
    """
    check_image(x, check_values=False)
    if resize is not None and crop is not None:
        raise ValueError(f"motion_blur_sequence: give crop or resize, not both (crop={crop}, resize={resize})")
    xc = _crop(x, crop)
    a = _frames_arg(angles, "angles")
    b, t = xc.shape[0], a.numel()
    out = motion_blur(repeat_frames(xc, t), radius, sigma, a.repeat(b), quantize=True)
    if resize is not None:
        size = resize_shorter_side(out, int(resize))
        out = F.interpolate(out, size=size, mode="bilinear", align_corners=False, antialias=True)
        out = torch.round(out.clamp(0.0, 1.0) * 255.0) / 255.0
    return _unflatten(out, b)


def brightness_sequence(x: Tensor, values: Tensor | Sequence[float], crop: int | None = None) -> Tensor:
    """HSV value shifted by ``values[t]`` per frame (:func:`~robust_train.functional.weather.brightness`).

    Example:
        >>> brightness_sequence(torch.rand(2, 3, 8, 8), torch.linspace(-0.3, 0.3, 5)).shape
        torch.Size([2, 5, 3, 8, 8])
    """
    check_image(x, check_values=False)
    xc = _crop(x, crop)
    v = _frames_arg(values, "values")
    b = xc.shape[0]
    return _unflatten(brightness(repeat_frames(xc, v.numel()), v.repeat(b).to(xc.device)), b)


def gaussian_blur_sequence(
    x: Tensor, sigmas: Tensor | Sequence[float], truncate: float, crop: int | None = None
) -> Tensor:
    """Gaussian blur of skimage (edge replicate) with one sigma per frame and the sequence's ``truncate``.

    Example:
        >>> gaussian_blur_sequence(torch.rand(2, 3, 8, 8), torch.tensor([0.3, 0.6]), truncate=7.0).shape
        torch.Size([2, 2, 3, 8, 8])
    """
    check_image(x, check_values=False)
    xc = _crop(x, crop)
    s = _frames_arg(sigmas, "sigmas")
    b = xc.shape[0]
    out = gaussian_filter2d(repeat_frames(xc, s.numel()), s.repeat(b), truncate=truncate)  # host sigmas plan taps
    return _unflatten(out, b)


def snow_sequence(
    x: Tensor,
    seed: Tensor,
    loc: float,
    scale: float,
    zoom: float,
    threshold: float,
    radius: float,
    sigma: float,
    blend: float,
    angles: Tensor | Sequence[float],
    crop: int | None = None,
) -> Tensor:
    """Snow with one flake layer per sample and a motion-blur angle per frame (spec 6.3).

    The layer is a function of the sample's seed only, so every frame re-derives the same layer and blurs it at
    its own angle (:func:`~robust_train.functional.weather.snow`).

    Example:
        >>> snow_sequence(torch.rand(2, 3, 32, 32), torch.tensor([1, 2]), 0.05, 0.3, 2.0, 0.5, 10.0, 2.0, 0.85,
        ...               torch.tensor([-150.0, -146.0])).shape
        torch.Size([2, 2, 3, 32, 32])
    """
    check_image(x, check_values=False)
    xc = _crop(x, crop)
    b = xc.shape[0]
    seed = _check_seed(seed, b)
    a = _frames_arg(angles, "angles")
    t = a.numel()
    seeds = seed.reshape(-1, 1).expand(b, t).reshape(-1)
    out = snow(repeat_frames(xc, t), loc, scale, zoom, threshold, radius, sigma, blend, a.repeat(b), seeds)
    return _unflatten(out, b)


def spatter_layers(layer: Tensor, kernel: Sequence[float], num_frames: int) -> Tensor:
    """Evolve a liquid layer: frame ``t`` is the layer after ``t`` column convolutions with ``kernel``.

    Each column is convolved (NumPy ``convolve(..., "same")`` semantics: zero padding, output aligned at
    ``(len(kernel) - 1) // 2``) so liquid runs down the image: ``[0.05, 0.1, 0.15, 0.7]`` moves mass 1.5 rows per
    frame on average, ``[0.2, 0.8]`` 0.8 rows.

    Args:
        layer: (B, H, W) float layer.
        kernel: 1-D kernel (top to bottom as written in the original).
        num_frames: T.

    Returns:
        (B, T, H, W).

    Example:
        >>> spatter_layers(torch.zeros(1, 8, 8), [0.2, 0.8], 3).shape
        torch.Size([1, 3, 8, 8])
    """
    k = torch.as_tensor(kernel, dtype=layer.dtype, device=layer.device).flip(0)  # convolution = flipped correlation
    n = k.numel()
    start = (n - 1) // 2
    pad_top, pad_bottom = n - 1 - start, start
    b, h, w = layer.shape
    weight = k.view(1, 1, n, 1)
    frames = [layer]
    cur = layer.unsqueeze(1)
    for _ in range(num_frames - 1):
        cur = F.conv2d(F.pad(cur, (0, 0, pad_top, pad_bottom)), weight)
        frames.append(cur.squeeze(1))
    return torch.stack(frames, 1)


def spatter_sequence(
    x: Tensor,
    seed: Tensor,
    loc: float,
    scale: float,
    sigma: float,
    threshold: float,
    intensity: float,
    kernel: Sequence[float],
    num_frames: int,
    stream: int,
    crop: int | None = None,
) -> Tensor:
    """Spatter water drops running down the image (spec 6.3, 6.5).

    The layer ``N(loc, scale^2)`` (from ``seed``) is blurred with a Gaussian ``sigma`` (edge replicate, truncate 4)
    and thresholded once; frame ``t`` applies the water branch of
    :func:`~robust_train.functional.weather.spatter` to the layer after ``t`` column convolutions
    (:func:`spatter_layers`), so values below the threshold can reappear after a convolution, as in the original.

    Example:
        >>> spatter_sequence(torch.rand(1, 3, 32, 32), torch.tensor([5]), 0.6, 0.265, 1.75, 0.7, 0.6, [0.2, 0.8], 3,
        ...                  stream=1).shape
        torch.Size([1, 3, 3, 32, 32])
    """
    from .rng import field_normal

    check_image(x, check_values=False)
    xc = _crop(x, crop)
    b, _, h, w = xc.shape
    seed = _check_seed(seed, b)
    z = field_normal(seed, (h, w), stream, dtype=torch.float64, device=xc.device)
    layer = gaussian_filter2d((loc + scale * z).unsqueeze(1), sigma, truncate=4.0, mode="nearest").squeeze(1)
    layer = torch.where(layer < threshold, torch.zeros_like(layer), layer)
    layers = spatter_layers(layer, kernel, num_frames).reshape(b * num_frames, h, w)
    # the water branch of spatter() on a given layer: loc 0, scale 1, no blur, threshold 0 (layers are >= 0)
    out = spatter(repeat_frames(xc, num_frames), 0.0, 1.0, 0.0, 0.0, intensity, False, noise=layers)
    return _unflatten(out, b)
