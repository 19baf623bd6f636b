"""Literal NumPy / PIL / OpenCV transcriptions of steps of the original ImageNet-P generators (test references).

Written from the published generation scripts' operation order (``make_imagenet_p.py``, ``make_tinyimagenet_p.py``,
``make_cifar_p.py``), torchvision 0.2's ``affine`` / ``ToTensor`` / ``ToPILImage`` and OpenCV's fixed-point warp
(the uint8 ``INTER_LINEAR`` path of OpenCV 2.x-4.x that generated the released data).
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image

from tests._helpers import photo_uint8

__all__ = [
    "affine_reference",
    "center_crop",
    "opencv_fixed_point_warp",
    "resize_short",
    "tiny_motion_blur_reference",
    "tilt_matrix",
    "tilt_reference",
    "tv02_inverse_matrix",
    "zoom_blur_reference",
]


def resize_short(name: str, short: int = 256) -> np.ndarray:
    """torchvision ``Resize(short)`` of a bundled photo (PIL bilinear, shorter side ``short``)."""
    img = Image.fromarray(photo_uint8(name))
    w, h = img.size
    size = (short, int(short * h / w)) if w < h else (int(short * w / h), short)
    return np.asarray(img.resize(size, Image.BILINEAR)).copy()


def center_crop(a: np.ndarray, crop: int | None) -> np.ndarray:
    """torchvision ``CenterCrop`` offsets: ``int(round((H - crop) / 2))``."""
    if crop is None:
        return a
    h, w = a.shape[:2]
    top, left = int(round((h - crop) / 2.0)), int(round((w - crop) / 2.0))
    return a[top : top + crop, left : left + crop]


def tv02_inverse_matrix(
    w: int, h: int, angle: float = 0.0, scale: float = 1.0, shear: float = 0.0, translate: tuple[float, float] = (0, 0)
) -> list[float]:
    """torchvision 0.2 ``_get_inverse_affine_matrix``, operation by operation, as PIL receives it."""
    cx, cy = w * 0.5 + 0.5, h * 0.5 + 0.5
    tx, ty = translate
    a, s, inv_scale = math.radians(angle), math.radians(shear), 1.0 / scale
    d = math.cos(a + s) * math.cos(a) + math.sin(a + s) * math.sin(a)
    m = [math.cos(a + s), math.sin(a + s), 0.0, -math.sin(a), math.cos(a), 0.0]
    m = [inv_scale / d * v for v in m]
    m[2] += m[0] * (-cx - tx) + m[1] * (-cy - ty)
    m[5] += m[3] * (-cx - tx) + m[4] * (-cy - ty)
    m[2] += cx
    m[5] += cy
    return m


def zoom_blur_reference(img: np.ndarray, crop: int | None, frames: int = 31) -> np.ndarray:
    """Zoom-blur frames of the original: frame 0 the crop; then float32 running sums of ``ToTensor`` of 8-bit PIL
    zooms (scale ``1 + 0.004 i``, bilinear) and ``ToPILImage`` (``mul(255)``, truncation) of ``sum / (i + 1)``."""
    h, w = img.shape[:2]
    out = [center_crop(img, crop)]
    avg = center_crop(img, crop).astype(np.float32) / np.float32(255)
    for i in range(1, frames):
        z = Image.fromarray(img).transform(
            (w, h), Image.AFFINE, tv02_inverse_matrix(w, h, scale=1 + 0.004 * i), resample=Image.BILINEAR
        )
        avg = avg + center_crop(np.asarray(z), crop).astype(np.float32) / np.float32(255)
        out.append(((avg / np.float32(i + 1)) * np.float32(255)).astype(np.uint8))
    return np.stack(out)


def opencv_fixed_point_warp(img: np.ndarray, mat: np.ndarray) -> np.ndarray:
    """``warpPerspective(img, mat, (w, h))`` as OpenCV's uint8 ``INTER_LINEAR`` / ``BORDER_CONSTANT`` 0 path computes
    it: inverse map in double, source position ``cvRound(32 X / W)`` (1/32 pixel), integer cell and fraction, the
    bilinear table weights ``(32 - a)(32 - b) * 32`` etc. (sum ``2^15``), ``(sum + 2^14) >> 15``."""
    h, w = img.shape[:2]
    mi = np.linalg.inv(mat)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    wz = mi[2, 0] * xs + mi[2, 1] * ys + mi[2, 2]
    wz = np.where(wz != 0, 32.0 / np.where(wz != 0, wz, 1.0), 0.0)
    fx = np.rint((mi[0, 0] * xs + mi[0, 1] * ys + mi[0, 2]) * wz).astype(np.int64)
    fy = np.rint((mi[1, 0] * xs + mi[1, 1] * ys + mi[1, 2]) * wz).astype(np.int64)
    ix, iy, a, b = fx >> 5, fy >> 5, fx & 31, fy & 31
    pad = np.zeros((h + 2, w + 2, img.shape[2]), np.int64)
    pad[1:-1, 1:-1] = img

    def g(yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
        return pad[np.clip(yy + 1, 0, h + 1), np.clip(xx + 1, 0, w + 1)]

    acc = (
        ((32 - a) * (32 - b) * 32)[..., None] * g(iy, ix)
        + (a * (32 - b) * 32)[..., None] * g(iy, ix + 1)
        + ((32 - a) * b * 32)[..., None] * g(iy + 1, ix)
        + (a * b * 32)[..., None] * g(iy + 1, ix + 1)
    )
    return ((acc + (1 << 14)) >> 15).astype(np.uint8)


def tilt_matrix(h: int, w: int, deg: float) -> np.ndarray:
    """The original's ``P2 @ T @ RX @ RY @ P1`` with ``phi = theta = deg``."""
    phi = theta = np.deg2rad(deg)
    f = np.sqrt(w**2 + h**2)
    p1 = np.array([[1, 0, -w / 2], [0, 1, -h / 2], [0, 0, 1], [0, 0, 1]])
    rx = np.array(
        [[1, 0, 0, 0], [0, np.cos(theta), -np.sin(theta), 0], [0, np.sin(theta), np.cos(theta), 0], [0, 0, 0, 1]]
    )
    ry = np.array([[np.cos(phi), 0, -np.sin(phi), 0], [0, 1, 0, 0], [np.sin(phi), 0, np.cos(phi), 0], [0, 0, 0, 1]])
    t = np.array([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, f], [0, 0, 0, 1]])
    p2 = np.array([[f, 0, w / 2, 0], [0, f, h / 2, 0], [0, 0, 1, 0]])
    return p2 @ t @ rx @ ry @ p1


def tilt_reference(img: np.ndarray, crop: int | None, step: float = 1.0, warp=opencv_fixed_point_warp) -> np.ndarray:
    """Tilt frames ``i = 0 .. 30``: warp of the whole image with the homography of ``(i - 15) * step`` degrees, crop."""
    h, w = img.shape[:2]
    return np.stack([center_crop(warp(img, tilt_matrix(h, w, (i - 15) * step)), crop) for i in range(31)])


def tiny_motion_blur_reference(img: np.ndarray, frames: int = 31) -> np.ndarray:
    """Tiny-ImageNet-P motion blur: ImageMagick ``MotionBlurImage(14, 3, 5 (i - 30))`` of the full-resolution image
    (PNG round trip, as the original), then torchvision ``Resize(64)`` (PIL bilinear, shorter side 64, no crop)."""
    import io

    import cv2

    from tests._reference import imagenet_c

    mod = imagenet_c()  # provides the original's ``MotionImage`` (Wand with MagickMotionBlurImage)
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    blob = buf.getvalue()
    h, w = img.shape[:2]
    size = (64, int(64 * h / w)) if w <= h else (int(64 * w / h), 64)
    out = []
    for i in range(frames):
        wimg = mod.MotionImage(blob=blob)
        wimg.motion_blur(radius=14, sigma=3, angle=(i - 30) * 5)
        z = cv2.imdecode(np.frombuffer(wimg.make_blob(), np.uint8), cv2.IMREAD_UNCHANGED)
        z = np.stack([z] * 3, -1) if z.ndim == 2 else z[..., [2, 1, 0]]
        out.append(np.asarray(Image.fromarray(z).resize(size, Image.BILINEAR)))
    return np.stack(out)


def affine_reference(img: np.ndarray, crop: int | None, kind: str, values: list[float]) -> np.ndarray:
    """Frames ``CenterCrop(trn_F.affine(img, ...))`` of the original for ``kind`` in translate (x shift, nearest),
    rotate / scale / shear (bilinear), one frame per value."""
    h, w = img.shape[:2]
    out = []
    for v in values:
        if kind == "translate":
            m, resample = tv02_inverse_matrix(w, h, translate=(v, 0)), Image.NEAREST
        else:
            m, resample = tv02_inverse_matrix(w, h, **{"angle" if kind == "rotate" else kind: v}), Image.BILINEAR
        out.append(
            center_crop(np.asarray(Image.fromarray(img).transform((w, h), Image.AFFINE, m, resample=resample)), crop)
        )
    return np.stack(out)
