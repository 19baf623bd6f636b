"""Batched AugMix operations and the AugMix chain/mix maths (layer 1: pure functions, parameters as arguments).

The operations follow the PIL semantics the AugMix reference code relies on, re-done on float ``[0, 1]`` tensors
for a whole batch with one argument per sample:

==============  =======================================================================================
op              definition (``x`` in [0, 1], one argument per sample)
==============  =======================================================================================
autocontrast    per image and channel, stretch ``[min, max]`` to ``[0, 1]`` (identity for a flat channel)
equalize        per image and channel histogram equalisation of the 8-bit levels (PIL's rule, via kornia)
posterize       keep the top ``bits`` bits of each 8-bit level (kornia)
solarize        invert ``x -> 1 - x`` where ``255 x >= threshold`` (threshold in 8-bit levels, kornia)
rotate          rotate counter-clockwise by ``degrees`` about the image centre, black fill
shear_x/y       ``x_in = x_out + f * y_out`` (resp. ``y_in = y_out + f * x_out``) about the top-left corner
translate_x/y   ``x_in = x_out + t`` (resp. ``y_in``): the content moves left/up by ``t`` pixels
color           blend with the luma image (ITU-R 601): ``g + f (x - g)``
contrast        blend with the mean luma of the image: ``m + f (x - m)``
brightness      blend with black: ``f x``
sharpness       blend with PIL's 3x3 ``SMOOTH`` filtered image, borders kept (kornia)
==============  =======================================================================================

Geometric ops use PIL's convention: a matrix maps *output* pixel coordinates to *input* coordinates, pixel
centres at ``i + 0.5``; all affine samples of a batch go through one ``grid_sample`` call with per-sample matrices
(bilinear, zero padding). Differences from PIL: no 8-bit rounding between operations, autocontrast/contrast use the
exact float min/max/mean instead of PIL's truncated 8-bit lookup tables (< 1 level apart), and bilinear weights at
the outermost pixel ring differ slightly (PIL clamps to the edge for one pixel before filling black).
``pil_exact=True`` (:func:`apply_ops`, :func:`augmix`) computes the ops as Pillow does on 8-bit images instead
(:mod:`.augment_ops_pil`; bit-exact on the parity photos, ``benchmarks/results/augmix_pil_parity.md``).

Batching: :func:`apply_ops` plans the groups of samples per op kind on the host (the parameters live there) and runs
every op kind of the list on its group, empty or not, with the affine kinds sharing one warp, so the ATen ops issued
depend on the op list only, never on the batch size or on the draws.

AugMix severity levels (Hendrycks et al. 2020, ``augmentations.py`` of the reference code): a chain step draws
``level ~ U(0.1, severity)`` and a random sign; :func:`augmix_argument` turns ``(level, sign)`` into the op's
argument with the table below (``int`` truncates toward zero as the reference does).

==============  ==============================================
op              argument
==============  ==============================================
posterize       ``bits = 4 - int(level * 4 / 10)``
solarize        ``threshold = 256 - int(level * 256 / 10)``
rotate          ``sign * int(level * 30 / 10)`` degrees
shear_x/y       ``sign * level * 0.3 / 10``
translate_x     ``sign * int(level * (W / 3) / 10)`` pixels (``H / 3`` for translate_y)
color, ...      ``level * 1.8 / 10 + 0.1`` (color, contrast, brightness, sharpness; no sign)
==============  ==============================================
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import kornia.enhance as KE
import torch
import torch.nn.functional as F
from torch import Tensor

from . import augment_ops_pil as P
from .checks import check_batch_param, check_image

__all__ = [
    "AUGMIX_OPS",
    "AUGMIX_OPS_ALL",
    "OP_SPECS",
    "OpSpec",
    "affine_theta",
    "apply_ops",
    "augmix",
    "augmix_argument",
    "augmix_mix",
    "autocontrast",
    "brightness",
    "color",
    "contrast",
    "equalize",
    "posterize",
    "rotate",
    "rotate_matrix",
    "sharpness",
    "shear_x",
    "shear_x_matrix",
    "shear_y",
    "shear_y_matrix",
    "solarize",
    "translate_x",
    "translate_x_matrix",
    "translate_y",
    "translate_y_matrix",
    "warp_affine",
]

#: The operation list of the AugMix paper (``augmentations`` in the reference code).
AUGMIX_OPS: tuple[str, ...] = (
    "autocontrast",
    "equalize",
    "posterize",
    "rotate",
    "solarize",
    "shear_x",
    "shear_y",
    "translate_x",
    "translate_y",
)
#: The extended list (``augmentations_all``); the four blend ops overlap ImageNet-C test corruptions
#: (contrast, brightness, saturate, blur), so AugMix uses them only with ``all_ops=True``.
AUGMIX_OPS_ALL: tuple[str, ...] = AUGMIX_OPS + ("color", "contrast", "brightness", "sharpness")

_LUMA = (0.299, 0.587, 0.114)


def _per_sample(v: Tensor | float, x: Tensor, name: str) -> Tensor:
    """A scalar or (B,) argument as a (B, 1, 1, 1) tensor in ``x``'s dtype and device."""
    t = torch.as_tensor(v, device=x.device)
    if t.dim() == 0:
        t = t.expand(x.shape[0])
    check_batch_param(t, x.shape[0], name)
    return t.to(device=x.device, dtype=x.dtype).view(-1, 1, 1, 1)


# ---------------------------------------------------------------------------------------------- point ops
def autocontrast(x: Tensor) -> Tensor:
    """Stretch every channel of every image to span ``[0, 1]`` (PIL ``ImageOps.autocontrast`` without cutoff).

    Args:
        x: images, shape (B, C, H, W), float in [0, 1].

    Returns:
        Images of the same shape and dtype; a constant channel is returned unchanged.

    Example:
        >>> autocontrast(torch.rand(2, 3, 8, 8) * 0.5).shape
        torch.Size([2, 3, 8, 8])
    """
    check_image(x, channels=None, check_values=False)
    return _autocontrast(x)


def _autocontrast(x: Tensor) -> Tensor:
    lo = x.amin(dim=(-2, -1), keepdim=True)
    hi = x.amax(dim=(-2, -1), keepdim=True)
    span = hi - lo
    flat = span <= 0
    out = (x - lo) / torch.where(flat, torch.ones_like(span), span)
    return torch.where(flat, x, out.clamp(0.0, 1.0))


def equalize(x: Tensor) -> Tensor:
    """Histogram-equalise every channel of every image (PIL ``ImageOps.equalize`` on the 8-bit levels; kornia).

    Args:
        x: images, shape (B, C, H, W), float in [0, 1].

    Returns:
        Images of the same shape and dtype.

    Example:
        >>> equalize(torch.rand(2, 3, 8, 8)).shape
        torch.Size([2, 3, 8, 8])
    """
    check_image(x, channels=None, check_values=False)
    return _equalize(x)


def _equalize(x: Tensor) -> Tensor:
    return KE.equalize(x.clamp(0.0, 1.0))


def posterize(x: Tensor, bits: Tensor | int) -> Tensor:
    """Keep the ``bits`` most significant bits of each 8-bit level (PIL ``ImageOps.posterize``; kornia).

    Args:
        x: images, shape (B, C, H, W), float in [0, 1].
        bits: bits kept per sample, shape (B,) integer in [0, 8] (or one int for all).

    Returns:
        Images of the same shape and dtype; ``bits=0`` gives black.

    Example:
        >>> posterize(torch.rand(2, 3, 8, 8), torch.tensor([4, 2])).shape
        torch.Size([2, 3, 8, 8])
    """
    check_image(x, channels=None, check_values=False)
    return _posterize(x, bits)


def _posterize(x: Tensor, bits: Tensor | int) -> Tensor:
    b = torch.as_tensor(bits, device=x.device)
    if b.dim() == 0:
        b = b.expand(x.shape[0])
    check_batch_param(b, x.shape[0], "bits")
    b = torch.round(b.to(torch.float64)).to(torch.int64).clamp(0, 8).to(x.device)
    return KE.posterize(x.clamp(0.0, 1.0), b)


def solarize(x: Tensor, threshold: Tensor | float) -> Tensor:
    """Invert every value at or above ``threshold`` (PIL ``ImageOps.solarize``; kornia).

    Args:
        x: images, shape (B, C, H, W), float in [0, 1].
        threshold: per-sample threshold in 8-bit levels, shape (B,) in [0, 256] (256 inverts nothing).

    Returns:
        Images of the same shape and dtype.

    Example:
        >>> solarize(torch.rand(2, 3, 8, 8), torch.tensor([128.0, 200.0])).shape
        torch.Size([2, 3, 8, 8])
    """
    check_image(x, channels=None, check_values=False)
    return _solarize(x, threshold)


def _solarize(x: Tensor, threshold: Tensor | float) -> Tensor:
    t = _per_sample(threshold, x, "threshold").view(-1) / 255.0
    return KE.solarize(x.clamp(0.0, 1.0), t)


def _luma(x: Tensor) -> Tensor:
    if x.shape[1] == 1:
        return x
    if x.shape[1] != 3:
        raise ValueError(f"x: expected 1 or 3 channels for a luma blend, got shape {tuple(x.shape)}")
    w = torch.tensor(_LUMA, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x * w).sum(dim=1, keepdim=True)


def color(x: Tensor, factor: Tensor | float) -> Tensor:
    """Saturation blend with the luma image (PIL ``ImageEnhance.Color``): ``clamp(g + f (x - g))``.

    Args:
        x: images, shape (B, C, H, W), float in [0, 1], C in {1, 3} (identity for C = 1).
        factor: per-sample factor, shape (B,); 0 gives grey, 1 the input.

    Returns:
        Images of the same shape and dtype.

    Example:
        >>> color(torch.rand(2, 3, 8, 8), torch.tensor([0.5, 1.5])).shape
        torch.Size([2, 3, 8, 8])
    """
    check_image(x, channels=None, check_values=False)
    return _color(x, factor)


def _color(x: Tensor, factor: Tensor | float) -> Tensor:
    f = _per_sample(factor, x, "factor")
    g = _luma(x)
    return (g + f * (x - g)).clamp(0.0, 1.0)


def contrast(x: Tensor, factor: Tensor | float) -> Tensor:
    """Contrast blend with the image's mean luma (PIL ``ImageEnhance.Contrast``): ``clamp(m + f (x - m))``.

    Args:
        x: images, shape (B, C, H, W), float in [0, 1], C in {1, 3}.
        factor: per-sample factor, shape (B,); 0 gives a flat grey image, 1 the input.

    Returns:
        Images of the same shape and dtype.

    Example:
        >>> contrast(torch.rand(2, 3, 8, 8), torch.tensor([0.5, 1.5])).shape
        torch.Size([2, 3, 8, 8])
    """
    check_image(x, channels=None, check_values=False)
    return _contrast(x, factor)


def _contrast(x: Tensor, factor: Tensor | float) -> Tensor:
    f = _per_sample(factor, x, "factor")
    m = _luma(x).mean(dim=(1, 2, 3), keepdim=True)
    return (m + f * (x - m)).clamp(0.0, 1.0)


def brightness(x: Tensor, factor: Tensor | float) -> Tensor:
    """Blend with black (PIL ``ImageEnhance.Brightness``): ``clamp(f x)``.

    Args:
        x: images, shape (B, C, H, W), float in [0, 1].
        factor: per-sample factor, shape (B,).

    Returns:
        Images of the same shape and dtype.

    Example:
        >>> brightness(torch.rand(2, 3, 8, 8), torch.tensor([0.5, 1.5])).shape
        torch.Size([2, 3, 8, 8])
    """
    check_image(x, channels=None, check_values=False)
    return _brightness(x, factor)


def _brightness(x: Tensor, factor: Tensor | float) -> Tensor:
    return (x * _per_sample(factor, x, "factor")).clamp(0.0, 1.0)


def sharpness(x: Tensor, factor: Tensor | float) -> Tensor:
    """Blend with PIL's ``SMOOTH``-filtered image, borders unchanged (PIL ``ImageEnhance.Sharpness``; kornia).

    Args:
        x: images, shape (B, C, H, W), float in [0, 1], H and W at least 3.
        factor: per-sample factor, shape (B,); 0 gives the smoothed image, 1 the input, > 1 sharpens.

    Returns:
        Images of the same shape and dtype.

    Example:
        >>> sharpness(torch.rand(2, 3, 8, 8), torch.tensor([0.5, 1.5])).shape
        torch.Size([2, 3, 8, 8])
    """
    check_image(x, channels=None, check_values=False)
    return _sharpness(x, factor)


def _sharpness(x: Tensor, factor: Tensor | float) -> Tensor:
    f = _per_sample(factor, x, "factor").view(-1)
    return KE.sharpness(x, f)


# ---------------------------------------------------------------------------------------------- geometry
def _as_vec(v: Tensor | float, name: str) -> Tensor:
    t = torch.as_tensor(v, dtype=torch.float64)
    if t.dim() == 0:
        t = t.view(1)
    if t.dim() != 1:
        raise ValueError(f"{name}: expected a (B,) tensor, got shape {tuple(t.shape)}")
    return t.to(torch.float64)


def _matrix(a: Tensor, b: Tensor, c: Tensor, d: Tensor, e: Tensor, f: Tensor) -> Tensor:
    return torch.stack([torch.stack([a, b, c], -1), torch.stack([d, e, f], -1)], -2)


def rotate_matrix(degrees: Tensor | float, height: int, width: int) -> Tensor:
    """Output->input pixel matrix of a counter-clockwise rotation about the image centre (PIL ``rotate``).

    Args:
        degrees: per-sample angle, shape (B,), positive = counter-clockwise on screen.
        height: image height H.
        width: image width W.

    Returns:
        float64 matrices, shape (B, 2, 3).

    Example:
        >>> rotate_matrix(torch.tensor([0.0, 90.0]), 8, 8).shape
        torch.Size([2, 2, 3])
    """
    t = torch.deg2rad(_as_vec(degrees, "degrees"))
    cos, sin = torch.cos(t), torch.sin(t)
    cx, cy = width / 2.0, height / 2.0
    # in = R(-t) (out - c) + c with y pointing down
    tx = cx - cos * cx + sin * cy
    ty = cy - sin * cx - cos * cy
    return _matrix(cos, -sin, tx, sin, cos, ty)


def shear_x_matrix(factor: Tensor | float) -> Tensor:
    """Output->input pixel matrix ``x_in = x_out + f * y_out`` (PIL ``AFFINE (1, f, 0, 0, 1, 0)``), shape (B, 2, 3).

    Example:
        >>> shear_x_matrix(torch.tensor([0.1, -0.2])).shape
        torch.Size([2, 2, 3])
    """
    f = _as_vec(factor, "factor")
    one, zero = torch.ones_like(f), torch.zeros_like(f)
    return _matrix(one, f, zero, zero, one, zero)


def shear_y_matrix(factor: Tensor | float) -> Tensor:
    """Output->input pixel matrix ``y_in = f * x_out + y_out`` (PIL ``AFFINE (1, 0, 0, f, 1, 0)``), shape (B, 2, 3).

    Example:
        >>> shear_y_matrix(torch.tensor([0.1, -0.2])).shape
        torch.Size([2, 2, 3])
    """
    f = _as_vec(factor, "factor")
    one, zero = torch.ones_like(f), torch.zeros_like(f)
    return _matrix(one, zero, zero, f, one, zero)


def translate_x_matrix(pixels: Tensor | float) -> Tensor:
    """Output->input pixel matrix ``x_in = x_out + t`` (content moves left by ``t``), shape (B, 2, 3).

    Example:
        >>> translate_x_matrix(torch.tensor([3.0, -2.0])).shape
        torch.Size([2, 2, 3])
    """
    t = _as_vec(pixels, "pixels")
    one, zero = torch.ones_like(t), torch.zeros_like(t)
    return _matrix(one, zero, t, zero, one, zero)


def translate_y_matrix(pixels: Tensor | float) -> Tensor:
    """Output->input pixel matrix ``y_in = y_out + t`` (content moves up by ``t``), shape (B, 2, 3).

    Example:
        >>> translate_y_matrix(torch.tensor([3.0, -2.0])).shape
        torch.Size([2, 2, 3])
    """
    t = _as_vec(pixels, "pixels")
    one, zero = torch.ones_like(t), torch.zeros_like(t)
    return _matrix(one, zero, zero, zero, one, t)


def affine_theta(matrix: Tensor, height: int, width: int) -> Tensor:
    """Convert output->input pixel matrices (pixel edges at 0..W) to ``affine_grid`` thetas (``align_corners=False``).

    With ``S = diag(W/2, H/2)``, normalised coordinates are ``u = S^-1 p - 1``, so a pixel map ``p_in = A p_out + t``
    becomes ``u_in = S^-1 A S u_out + S^-1 (A S 1 + t) - 1``.

    Args:
        matrix: shape (B, 2, 3), float.
        height: H.
        width: W.

    Returns:
        float64 thetas, shape (B, 2, 3).

    Example:
        >>> affine_theta(translate_x_matrix(torch.zeros(1)), 4, 4)[0].tolist()
        [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]
    """
    m = matrix.to(torch.float64)
    s = torch.tensor([width / 2.0, height / 2.0], dtype=torch.float64, device=m.device)
    a = m[:, :, :2]
    t = m[:, :, 2]
    a_n = a * s.view(1, 1, 2) / s.view(1, 2, 1)
    t_n = (a @ s.view(2, 1)).squeeze(-1) / s.view(1, 2) + t / s.view(1, 2) - 1.0
    return torch.cat([a_n, t_n.unsqueeze(-1)], dim=-1)


def warp_affine(x: Tensor, matrix: Tensor) -> Tensor:
    """Warp every image with its own output->input pixel matrix (bilinear, black outside), one ``grid_sample``.

    Args:
        x: images, shape (B, C, H, W), float.
        matrix: output->input pixel matrices, shape (B, 2, 3) (PIL ``AFFINE`` data order).

    Returns:
        Warped images, shape (B, C, H, W), same dtype.

    Example:
        >>> warp_affine(torch.rand(2, 3, 8, 8), rotate_matrix(torch.tensor([10.0, -5.0]), 8, 8)).shape
        torch.Size([2, 3, 8, 8])
    """
    check_image(x, channels=None, check_values=False)
    if matrix.dim() != 3 or matrix.shape[1:] != (2, 3) or matrix.shape[0] != x.shape[0]:
        raise ValueError(f"matrix: expected shape ({x.shape[0]}, 2, 3), got {tuple(matrix.shape)}")
    return _warp_affine(x, matrix)


def _warp_affine(x: Tensor, matrix: Tensor) -> Tensor:
    h, w = int(x.shape[-2]), int(x.shape[-1])
    work = x if x.dtype in (torch.float32, torch.float64) else x.float()
    theta = affine_theta(matrix.to(x.device), h, w).to(work.dtype)
    grid = F.affine_grid(theta, [x.shape[0], x.shape[1], h, w], align_corners=False)
    out = F.grid_sample(work, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return out.to(x.dtype)


def rotate(x: Tensor, degrees: Tensor | float) -> Tensor:
    """Rotate each image counter-clockwise about its centre by its own angle (PIL ``rotate``, bilinear, black fill).

    Args:
        x: images, shape (B, C, H, W), float in [0, 1].
        degrees: shape (B,).

    Returns:
        Rotated images, same shape and dtype.

    Example:
        >>> rotate(torch.rand(2, 3, 8, 8), torch.tensor([10.0, -5.0])).shape
        torch.Size([2, 3, 8, 8])
    """
    return warp_affine(x, _bcast(rotate_matrix(degrees, x.shape[-2], x.shape[-1]), x))


def shear_x(x: Tensor, factor: Tensor | float) -> Tensor:
    """Shear along x about the top-left corner (:func:`shear_x_matrix`). Shapes as :func:`rotate`.

    Example:
        >>> shear_x(torch.rand(2, 3, 8, 8), torch.tensor([0.1, -0.1])).shape
        torch.Size([2, 3, 8, 8])
    """
    return warp_affine(x, _bcast(shear_x_matrix(factor), x))


def shear_y(x: Tensor, factor: Tensor | float) -> Tensor:
    """Shear along y about the top-left corner (:func:`shear_y_matrix`). Shapes as :func:`rotate`.

    Example:
        >>> shear_y(torch.rand(2, 3, 8, 8), torch.tensor([0.1, -0.1])).shape
        torch.Size([2, 3, 8, 8])
    """
    return warp_affine(x, _bcast(shear_y_matrix(factor), x))


def translate_x(x: Tensor, pixels: Tensor | float) -> Tensor:
    """Move the content left by ``pixels`` (right when negative), black fill. Shapes as :func:`rotate`.

    Example:
        >>> translate_x(torch.rand(2, 3, 8, 8), torch.tensor([2.0, -1.0])).shape
        torch.Size([2, 3, 8, 8])
    """
    return warp_affine(x, _bcast(translate_x_matrix(pixels), x))


def translate_y(x: Tensor, pixels: Tensor | float) -> Tensor:
    """Move the content up by ``pixels`` (down when negative), black fill. Shapes as :func:`rotate`.

    Example:
        >>> translate_y(torch.rand(2, 3, 8, 8), torch.tensor([2.0, -1.0])).shape
        torch.Size([2, 3, 8, 8])
    """
    return warp_affine(x, _bcast(translate_y_matrix(pixels), x))


def _bcast(m: Tensor, x: Tensor) -> Tensor:
    if m.shape[0] == 1 and x.shape[0] != 1:
        m = m.expand(x.shape[0], 2, 3)
    return m


# ---------------------------------------------------------------------------------------------- op table
@dataclass(frozen=True)
class OpSpec:
    """How one AugMix operation is computed, in float and in PIL-exact 8-bit mode.

    Attributes:
        name: op name (registry key in :data:`robust_train.augment.AUGMENT_OPS`).
        kind: ``"point"`` (``fn(x, arg)``) or ``"affine"`` (``matrix(arg, H, W)`` then one shared warp).
        level_to_arg: ``(level, sign, H, W) -> arg`` with the AugMix table (module docstring).
        fn: the float point op, ``(x, arg (B,)) -> x``, without input checks (it also runs on empty subsets);
            ``None`` for affine ops.
        matrix: the affine op's output->input pixel matrix builder, ``(arg (B,), H, W) -> (B, 2, 3)``.
        overlaps_eval: the op resembles an ImageNet-C test corruption (kept out of AugMix unless ``all_ops``).
        pil_fn: the point op on 8-bit levels as Pillow computes it (:mod:`.augment_ops_pil`).
        pil_matrix: the matrix Pillow's implementation of the affine op passes to ``Image.transform``.
    """

    name: str
    kind: str
    level_to_arg: Callable[[Tensor, Tensor, int, int], Tensor]
    fn: Callable[[Tensor, Tensor], Tensor] | None = None
    matrix: Callable[[Tensor, int, int], Tensor] | None = None
    overlaps_eval: bool = False
    pil_fn: Callable[[Tensor, Tensor], Tensor] | None = None
    pil_matrix: Callable[[Tensor, int, int], Tensor] | None = None


def _int_param(level: Tensor, maxval: float) -> Tensor:
    return torch.trunc(level.to(torch.float64) * maxval / 10.0)


def _float_param(level: Tensor, maxval: float) -> Tensor:
    return level.to(torch.float64) * maxval / 10.0


def _zero(level: Tensor, sign: Tensor, h: int, w: int) -> Tensor:
    return torch.zeros_like(level, dtype=torch.float64)


def _enhance(level: Tensor, sign: Tensor, h: int, w: int) -> Tensor:
    return _float_param(level, 1.8) + 0.1


def _padded(fn: Callable[[Tensor, Tensor], Tensor]) -> Callable[[Tensor, Tensor], Tensor]:
    """``fn`` run with two zero rows appended to the batch (and dropped after).

    kornia takes other code paths for batches of 0 (``conv2d``) or 1 (``posterize``); with the two rows a host-planned
    group of any size issues the same ATen ops.
    """

    def run(x: Tensor, arg: Tensor) -> Tensor:
        out = fn(torch.cat([x, x.new_zeros(2, *x.shape[1:])]), torch.cat([arg.reshape(-1), arg.new_ones(2)]))
        return out[:-2]

    return run


def _affine_spec(
    name: str, level_to_arg: Callable[[Tensor, Tensor, int, int], Tensor], matrix: Callable[[Tensor, int, int], Tensor]
) -> OpSpec:
    return OpSpec(name, "affine", level_to_arg, matrix=matrix, pil_matrix=matrix)


OP_SPECS: dict[str, OpSpec] = {
    s.name: s
    for s in (
        OpSpec(
            "autocontrast", "point", _zero, fn=lambda x, a: _autocontrast(x), pil_fn=lambda v, a: P.autocontrast8(v)
        ),
        OpSpec("equalize", "point", _zero, fn=_padded(lambda x, a: _equalize(x)), pil_fn=lambda v, a: P.equalize8(v)),
        OpSpec(
            "posterize",
            "point",
            lambda lv, sg, h, w: 4.0 - _int_param(lv, 4),
            fn=_padded(_posterize),
            pil_fn=P.posterize8,
        ),
        OpSpec(
            "solarize",
            "point",
            lambda lv, sg, h, w: 256.0 - _int_param(lv, 256),
            fn=_padded(_solarize),
            pil_fn=P.solarize8,
        ),
        OpSpec(
            "rotate",
            "affine",
            lambda lv, sg, h, w: sg * _int_param(lv, 30),
            matrix=lambda a, h, w: rotate_matrix(a, h, w),
            pil_matrix=P.pil_rotate_matrix,
        ),
        _affine_spec("shear_x", lambda lv, sg, h, w: sg * _float_param(lv, 0.3), lambda a, h, w: shear_x_matrix(a)),
        _affine_spec("shear_y", lambda lv, sg, h, w: sg * _float_param(lv, 0.3), lambda a, h, w: shear_y_matrix(a)),
        _affine_spec(
            "translate_x", lambda lv, sg, h, w: sg * _int_param(lv, w / 3.0), lambda a, h, w: translate_x_matrix(a)
        ),
        _affine_spec(
            "translate_y", lambda lv, sg, h, w: sg * _int_param(lv, h / 3.0), lambda a, h, w: translate_y_matrix(a)
        ),
        OpSpec("color", "point", _enhance, fn=_color, overlaps_eval=True, pil_fn=P.color8),
        OpSpec("contrast", "point", _enhance, fn=_contrast, overlaps_eval=True, pil_fn=P.contrast8),
        OpSpec("brightness", "point", _enhance, fn=_brightness, overlaps_eval=True, pil_fn=P.brightness8),
        OpSpec("sharpness", "point", _enhance, fn=_padded(_sharpness), overlaps_eval=True, pil_fn=P.sharpness8),
    )
}


def _spec(name: str) -> OpSpec:
    try:
        return OP_SPECS[name]
    except KeyError:
        raise ValueError(f"unknown augment op {name!r}; expected one of {sorted(OP_SPECS)}") from None


def augmix_argument(name: str, level: Tensor, sign: Tensor, height: int, width: int) -> Tensor:
    """The argument of op ``name`` for AugMix levels (table in the module docstring).

    Args:
        name: op name (:data:`AUGMIX_OPS_ALL`).
        level: per-sample level in [0.1, severity], shape (B,).
        sign: per-sample sign in {-1, 1}, shape (B,) (ignored by ops without a direction).
        height: H.
        width: W.

    Returns:
        float64 arguments, shape (B,).

    Example:
        >>> augmix_argument("rotate", torch.tensor([3.0, 10.0]), torch.tensor([1.0, -1.0]), 32, 32).tolist()
        [9.0, -30.0]
    """
    return _spec(name).level_to_arg(level.to(torch.float64), sign.to(torch.float64), int(height), int(width))


def _warp_planned(x: Tensor, sel: Tensor, mats: Tensor, pil_exact: bool) -> Tensor:
    """Warp the samples ``sel`` (host indices, possibly none) of ``x`` with ``mats``: the same ATen ops for any count.

    The float warp (``affine_grid``) rejects an empty batch, so one identity row is always appended and dropped.
    """
    if pil_exact:
        return P.affine8(x[sel.to(x.device)], mats)
    ident = torch.tensor([[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]], dtype=torch.float64)
    rows = torch.cat([sel, torch.zeros(1, dtype=sel.dtype)])
    return _warp_affine(x[rows.to(x.device)], torch.cat([mats, ident]))[:-1]


def _apply_planned(
    x: Tensor, specs: Sequence[OpSpec], idx: Tensor, arg: Tensor, act: Tensor, pil_exact: bool
) -> Tensor:
    """One op per sample on ``x`` (images, or 8-bit levels when ``pil_exact``); ``idx``/``arg``/``act`` on the host.

    Every op kind of ``specs`` runs once, on its host-planned subset of samples (possibly empty), and the affine
    kinds share one warp, so the ATen ops issued depend on the op list, never on the batch or on the draws.
    """
    out = x.clone()
    h, w = int(x.shape[-2]), int(x.shape[-1])
    affine_ids = [i for i, s in enumerate(specs) if s.kind == "affine"]
    if affine_ids:
        is_aff = torch.zeros(len(specs), dtype=torch.bool)
        is_aff[affine_ids] = True
        sel = torch.nonzero(act & is_aff[idx]).view(-1)
        idx_sel, arg_sel = idx[sel], arg[sel]
        mats = torch.zeros(sel.numel(), 2, 3, dtype=torch.float64)
        for i in affine_ids:  # every affine kind of the list, drawn or not: a fixed number of host steps
            build = specs[i].pil_matrix if pil_exact else specs[i].matrix
            mats = torch.where((idx_sel == i).view(-1, 1, 1), build(arg_sel, h, w), mats)  # type: ignore[misc]
        out.index_put_((sel.to(x.device),), _warp_planned(x, sel, mats, pil_exact))
    arg_dev = arg.to(x.device)
    for i, s in enumerate(specs):
        if s.kind != "point":
            continue
        dsel = torch.nonzero(act & (idx == i)).view(-1).to(x.device)
        fn = s.pil_fn if pil_exact else s.fn
        # index_put_ rather than out[dsel] = ...: item assignment adds a view when one sample is selected
        out.index_put_((dsel,), fn(x[dsel], arg_dev[dsel]))  # type: ignore[misc]
    return out


def _plan(b: int, n_ops: int, op_index: Tensor, arg: Tensor, active: Tensor | None) -> tuple[Tensor, Tensor, Tensor]:
    """Host copies of the per-sample op plan, checked: ``(op_index int64, arg float64, active bool)``."""
    idx = op_index.to("cpu", torch.int64).reshape(-1)
    check_batch_param(idx, b, "op_index")
    check_batch_param(arg, b, "arg")
    if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= n_ops):
        raise ValueError(f"op_index: expected values in [0, {n_ops}), got range [{int(idx.min())}, {int(idx.max())}]")
    act = torch.ones(b, dtype=torch.bool) if active is None else active.to("cpu", torch.bool).reshape(-1)
    check_batch_param(act, b, "active")
    return idx, arg.to("cpu", torch.float64), act


def apply_ops(
    x: Tensor,
    names: Sequence[str],
    op_index: Tensor,
    arg: Tensor,
    active: Tensor | None = None,
    pil_exact: bool = False,
) -> Tensor:
    """Apply one op per sample, grouping the samples by op (affine ones share a single warp).

    Args:
        x: images, shape (B, C, H, W), float in [0, 1].
        names: the op list; ``op_index`` indexes it.
        op_index: per-sample op, shape (B,) int64.
        arg: per-sample op argument (:func:`augmix_argument`), shape (B,).
        active: per-sample bool, shape (B,); inactive samples pass unchanged. ``None``: all active.
        pil_exact: compute as PIL does on 8-bit images (:mod:`.augment_ops_pil`): the active samples are rounded to
            8-bit levels, transformed and returned as ``level / 255``.

    Returns:
        Images, same shape and dtype. Grouping indices are computed on the CPU copy of ``op_index`` / ``active``
        (parameters are sampled on the CPU, so this needs no device sync); every op kind of ``names`` runs on its
        (possibly empty) group, so the ATen ops issued do not depend on the batch size.

    Example:
        >>> apply_ops(torch.rand(3, 3, 8, 8), ["rotate", "equalize"], torch.tensor([0, 1, 0]),
        ...           torch.tensor([5.0, 0.0, -5.0])).shape
        torch.Size([3, 3, 8, 8])
    """
    check_image(x, channels=None, check_values=False)
    specs = [_spec(n) for n in names]
    idx, arg64, act = _plan(x.shape[0], len(specs), op_index, arg, active)
    if not pil_exact:
        return _apply_planned(x, specs, idx, arg64, act, False)
    out = P.from_levels(_apply_planned(P.to_levels(x), specs, idx, arg64, act, True), x.dtype)
    return torch.where(act.to(x.device).view(-1, 1, 1, 1), out, x)


def augmix_mix(x: Tensor, chains: Tensor, weights: Tensor, skip: Tensor) -> Tensor:
    """AugMix's final mix: ``(1 - m) x + m * sum_i w_i chain_i``.

    Args:
        x: clean images, shape (B, C, H, W).
        chains: augmented chains, shape (B, K, C, H, W).
        weights: chain weights, shape (B, K) (Dirichlet draws; rows sum to one).
        skip: mixing weight ``m`` of the augmented part, shape (B,) (Beta draws).

    Returns:
        Mixed images, shape (B, C, H, W), dtype of ``x``.

    Example:
        >>> augmix_mix(torch.rand(2, 3, 4, 4), torch.rand(2, 3, 3, 4, 4), torch.full((2, 3), 1 / 3),
        ...            torch.full((2,), 0.5)).shape
        torch.Size([2, 3, 4, 4])
    """
    if chains.dim() != 5 or chains.shape[0] != x.shape[0] or chains.shape[2:] != x.shape[1:]:
        raise ValueError(
            f"chains: expected shape ({x.shape[0]}, K, {', '.join(map(str, x.shape[1:]))}), got {tuple(chains.shape)}"
        )
    if weights.shape != chains.shape[:2]:
        raise ValueError(f"weights: expected shape {tuple(chains.shape[:2])}, got {tuple(weights.shape)}")
    check_batch_param(skip, x.shape[0], "skip")
    w = weights.to(device=x.device, dtype=x.dtype).view(*weights.shape, 1, 1, 1)
    m = skip.to(device=x.device, dtype=x.dtype).view(-1, 1, 1, 1)
    mix = (w * chains).sum(dim=1)
    return (1.0 - m) * x + m * mix


def augmix(
    x: Tensor,
    names: Sequence[str],
    op_index: Tensor,
    level: Tensor,
    sign: Tensor,
    depth: Tensor,
    weights: Tensor,
    skip: Tensor,
    pil_exact: bool = False,
) -> Tensor:
    """AugMix on a batch: ``K`` chains of up to ``D`` ops per sample, Dirichlet-weighted and Beta-mixed with ``x``.

    Args:
        x: images, shape (B, C, H, W), float in [0, 1].
        names: op list indexed by ``op_index``.
        op_index: op of every chain step, shape (B, K, D) int64.
        level: AugMix level of every step, shape (B, K, D), in [0.1, severity].
        sign: direction of every step, shape (B, K, D), in {-1, 1}.
        depth: chain lengths, shape (B, K) int64 in [1, D]; steps ``d >= depth`` are skipped.
        weights: chain weights, shape (B, K), rows summing to one.
        skip: weight of the augmented mix against the clean image, shape (B,).
        pil_exact: run the chains as the reference code does, with PIL on 8-bit images: ``x`` is rounded to 8-bit
            levels, every step is Pillow's arithmetic (:mod:`.augment_ops_pil`), the chains come back as
            ``level / 255`` and are mixed with the unrounded ``x`` in float.

    Returns:
        Augmented images, shape (B, C, H, W), same dtype, values in [0, 1].

    Example:
        >>> b, k, d = 2, 3, 2
        >>> augmix(torch.rand(b, 3, 8, 8), ["rotate", "solarize"], torch.randint(0, 2, (b, k, d)),
        ...        torch.full((b, k, d), 3.0), torch.ones(b, k, d), torch.full((b, k), 2), torch.full((b, k), 1 / 3),
        ...        torch.full((b,), 0.5)).shape
        torch.Size([2, 3, 8, 8])
    """
    check_image(x, channels=None)
    b, c, h, w = x.shape
    if op_index.dim() != 3 or op_index.shape[0] != b:
        raise ValueError(f"op_index: expected shape ({b}, K, D), got {tuple(op_index.shape)}")
    k, d = int(op_index.shape[1]), int(op_index.shape[2])
    for t, nm in ((level, "level"), (sign, "sign")):
        if t.shape != op_index.shape:
            raise ValueError(f"{nm}: expected shape {tuple(op_index.shape)}, got {tuple(t.shape)}")
    if depth.shape != (b, k):
        raise ValueError(f"depth: expected shape ({b}, {k}), got {tuple(depth.shape)}")
    specs = [_spec(n) for n in names]
    start = P.to_levels(x) if pil_exact else x
    chains = start.unsqueeze(1).expand(b, k, c, h, w).reshape(b * k, c, h, w)
    idx = op_index.to("cpu", torch.int64).reshape(b * k, d)
    if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= len(specs)):
        raise ValueError(
            f"op_index: expected values in [0, {len(specs)}), got range [{int(idx.min())}, {int(idx.max())}]"
        )
    lev = level.to("cpu", torch.float64).reshape(b * k, d)
    sgn = sign.to("cpu", torch.float64).reshape(b * k, d)
    dep = depth.to("cpu", torch.int64).reshape(b * k)
    for step in range(d):  # every step and every op kind runs (on possibly empty groups): a fixed op count
        col = idx[:, step]
        arg = torch.zeros(b * k, dtype=torch.float64)
        for i, name in enumerate(names):
            arg = torch.where(col == i, augmix_argument(name, lev[:, step], sgn[:, step], h, w), arg)
        chains = _apply_planned(chains, specs, col, arg, dep > step, pil_exact)
    if pil_exact:
        chains = P.from_levels(chains, x.dtype)
    return augmix_mix(x, chains.view(b, k, c, h, w), weights, skip).clamp(0.0, 1.0)
