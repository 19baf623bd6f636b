"""PixMix (Hendrycks, Zou, Mazeika, Tang, Li, Song, Steinhardt, CVPR 2022) on the device, with its mixing sets.

Every image is mixed, over ``k ~ U{0..k_max}`` rounds, with augmented copies of itself and with one *mixing picture*
(fractals, feature visualisations in the paper); the maths and the exact order of the draws are documented in
:mod:`robust_train.functional.pixmix`. All draws are :class:`Params` (CPU, float64), so a call replays exactly.

Mixing sets (:class:`MixingSet`): choose one picture per sample by index (and a crop) in ``sample``, and produce the
pictures at the batch's size on its device in ``pictures``:

* :class:`FractalMixingSet` (default): an embedded, download-free set of IFS fractals rendered on the device
  (:mod:`robust_train.functional.fractals`); picture ``i`` depends only on ``(seed, i)``.
* :class:`ImageFolderMixingSet`: any folder of images (recursive), decoded with PIL on the host, resized so the
  shorter side is ``resize_ratio`` times the batch's (the reference: ``Resize(36)`` then ``RandomCrop(32)`` on CIFAR,
  ``Resize(256)`` then ``RandomCrop(224)`` on ImageNet, a ratio of 1.125 / 1.143) and randomly cropped.

Published settings (github.com/andyzoujm/pixmix, read for this port): ``k = 4`` and ``aug_severity = 3`` / ``beta = 3``
on CIFAR (``cifar.py`` argparse defaults), ``aug_severity = 1`` / ``beta = 4`` on ImageNet (``imagenet.py``); the
training recipes of the README pass ``--all-ops`` (the 13 AugMix ops), which is therefore our default.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor, nn

from ..corruptions.params import Params
from ..functional import augment_ops as AF
from ..functional import fractals as FF
from ..functional import pixmix as PF
from ..functional.checks import check_range
from .augmix import sample_beta
from .base import BatchAugment
from .ops import AUGMENT_OPS, list_augment_ops

__all__ = [
    "IMAGE_EXTENSIONS",
    "FractalMixingSet",
    "ImageFolderMixingSet",
    "MixingSet",
    "PixMix",
    "build_mixing_set",
]

#: File name endings :class:`ImageFolderMixingSet` reads (case-insensitive).
IMAGE_EXTENSIONS: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".ppm", ".pgm", ".tif", ".tiff", ".webp")


class MixingSet(nn.Module):
    """A set of mixing pictures: per-sample choices on the host, pictures at the batch's size on its device.

    Subclasses implement :meth:`__len__`, :meth:`sample` and :meth:`pictures`. Choices are returned as a dict of
    (N,)-leading CPU tensors whose keys start with ``mix_`` (they go into the augmentation's :class:`Params`).
    """

    def __len__(self) -> int:  # pragma: no cover - abstract
        raise NotImplementedError

    def sample(self, n: int, generator: torch.Generator | None) -> dict[str, Tensor]:
        """Draw ``n`` picture choices: ``mix_index`` (n,) int64 uniform over the set, ``mix_crop`` (n, 2) float64."""
        return {
            "mix_index": torch.randint(0, len(self), (n,), generator=generator, dtype=torch.int64),
            "mix_crop": torch.rand((n, 2), generator=generator, dtype=torch.float64),
        }

    def pictures(
        self,
        choice: dict[str, Tensor],
        height: int,
        width: int,
        channels: int,
        device: torch.device,
        dtype: torch.dtype,
    ) -> Tensor:  # pragma: no cover - abstract
        """The chosen pictures, shape (N, channels, height, width), float in [0, 1] on ``device``."""
        raise NotImplementedError

    def indices(self, choice: dict[str, Tensor]) -> Tensor:
        """The chosen picture indices (``mix_index``) on the host, checked against the set's size."""
        idx = choice["mix_index"].to("cpu", torch.int64).reshape(-1)
        if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= len(self)):
            raise ValueError(
                f"mix_index: expected picture indices in [0, {len(self)}), got [{int(idx.min())}, {int(idx.max())}]"
            )
        return idx

    @staticmethod
    def _channels(x: Tensor, channels: int) -> Tensor:
        if channels == x.shape[1]:
            return x
        if channels == 1:
            w = torch.tensor([0.299, 0.587, 0.114], dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
            return (x * w).sum(1, keepdim=True)
        if x.shape[1] == 1:
            return x.expand(-1, channels, -1, -1).contiguous()
        raise ValueError(f"mixing pictures have {x.shape[1]} channels; cannot convert them to {channels}")


class FractalMixingSet(MixingSet):
    """Embedded fractal mixing set: ``size`` IFS fractals rendered on the device (no download, no files).

    Picture ``i`` is drawn from ``(seed, i)`` alone (:mod:`robust_train.functional.fractals`), so it is the same on
    every machine and in every batch. Each batch renders its pictures afresh (a fixed-length chaos game batched over
    the pictures: about 2 points per pixel, 26 steps); nothing is cached.

    Args:
        size: number of distinct pictures (ours: 100 000; the pictures are generated, so any size costs the same).
        seed: seed of the set.
        min_maps: fewest affine maps per fractal.
        max_maps: most affine maps per fractal.
        walkers: chaos-game walkers per picture (``None``: about two points per pixel).
        steps: recorded chaos-game steps per walker.

    Example:
        >>> fs = FractalMixingSet(seed=0)
        >>> c = fs.sample(3, torch.Generator().manual_seed(0))
        >>> fs.pictures(c, 32, 32, 3, torch.device("cpu"), torch.float32).shape
        torch.Size([3, 3, 32, 32])
    """

    def __init__(
        self,
        size: int = 100_000,
        seed: int = 0,
        min_maps: int = 2,
        max_maps: int = 4,
        walkers: int | None = None,
        steps: int = 16,
    ) -> None:
        super().__init__()
        if not isinstance(size, int) or isinstance(size, bool) or size < 1:
            raise ValueError(f"size: expected a positive number of pictures, got {size!r}")
        if not isinstance(min_maps, int) or not isinstance(max_maps, int) or not 2 <= min_maps <= max_maps <= 8:
            raise ValueError(
                f"min_maps/max_maps: expected integers with 2 <= min_maps <= max_maps <= 8, got "
                f"{min_maps!r}, {max_maps!r}"
            )
        if walkers is not None and (not isinstance(walkers, int) or walkers < 1):
            raise ValueError(f"walkers: expected a positive integer or None, got {walkers!r}")
        if not isinstance(steps, int) or steps < 1:
            raise ValueError(f"steps: expected a positive integer, got {steps!r}")
        self.size = int(size)
        self.seed = int(seed)
        self.min_maps, self.max_maps = int(min_maps), int(max_maps)
        self.walkers = walkers
        self.steps = int(steps)

    def __len__(self) -> int:
        return self.size

    def pictures(
        self,
        choice: dict[str, Tensor],
        height: int,
        width: int,
        channels: int,
        device: torch.device,
        dtype: torch.dtype,
    ) -> Tensor:
        """Render the chosen fractals (``mix_index``; the crop is unused: each fractal is fitted to the image)."""
        idx = self.indices(choice)
        seeds = FF.fractal_seeds(self.seed, idx)
        ifs = FF.sample_ifs(seeds, self.min_maps, self.max_maps)
        img = FF.render_fractals(
            ifs, seeds, height, width, walkers=self.walkers, steps=self.steps, device=device, dtype=dtype
        )
        return self._channels(img, channels)

    def extra_repr(self) -> str:
        """Settings shown in ``repr``."""
        return f"size={self.size}, seed={self.seed}, maps={self.min_maps}-{self.max_maps}, steps={self.steps}"


class ImageFolderMixingSet(MixingSet):
    """Mixing pictures from a folder of images (searched recursively; sorted paths, so indices are stable).

    Pictures are decoded with PIL on the host when a batch needs them, resized (bilinear) so that they cover
    ``resize_ratio`` times the batch's height and width, cropped at the per-sample offset ``mix_crop`` and moved to
    the batch's device.

    Args:
        root: folder of images (any depth; extensions :data:`IMAGE_EXTENSIONS`).
        resize_ratio: resized size over crop size (reference: 36/32 on CIFAR, 256/224 on ImageNet), >= 1.

    Raises:
        FileNotFoundError: ``root`` does not exist or is not a folder.
        ValueError: ``root`` holds no image file; a file cannot be decoded (raised when it is first used, naming it).

    Example:
        >>> import tempfile, PIL.Image
        >>> d = tempfile.mkdtemp()
        >>> PIL.Image.new("RGB", (40, 30), (255, 0, 0)).save(f"{d}/red.png")
        >>> ms = ImageFolderMixingSet(d)
        >>> len(ms), ms.pictures(ms.sample(2, None), 16, 16, 3, torch.device("cpu"), torch.float32).shape
        (1, torch.Size([2, 3, 16, 16]))
    """

    def __init__(self, root: str | Path, resize_ratio: float = 36 / 32) -> None:
        super().__init__()
        path = Path(root).expanduser()
        if not path.is_dir():
            raise FileNotFoundError(f"root: mixing-set folder {str(path)!r} does not exist or is not a folder")
        if not float(resize_ratio) >= 1.0 or not math.isfinite(float(resize_ratio)):
            raise ValueError(f"resize_ratio: expected a finite ratio >= 1, got {resize_ratio!r}")
        self.root = path
        self.resize_ratio = float(resize_ratio)
        self.files: list[Path] = sorted(
            p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
        )
        if not self.files:
            raise ValueError(
                f"root: mixing-set folder {str(path)!r} holds no image file (looked for {', '.join(IMAGE_EXTENSIONS)})"
            )

    def __len__(self) -> int:
        return len(self.files)

    def load(self, index: int, height: int, width: int, crop: Tensor, channels: int) -> Tensor:
        """Decode, resize and crop one picture on the host: uint8, shape (channels, height, width)."""
        from PIL import Image, UnidentifiedImageError

        f = self.files[index]
        try:
            with Image.open(f) as im:
                im = im.convert("L" if channels == 1 else "RGB")
                w0, h0 = im.size
                scale = max(height / h0, width / w0) * self.resize_ratio
                nw, nh = max(width, round(w0 * scale)), max(height, round(h0 * scale))
                im = im.resize((nw, nh), Image.BILINEAR)
                top = min(int(float(crop[0]) * (nh - height + 1)), nh - height)
                left = min(int(float(crop[1]) * (nw - width + 1)), nw - width)
                im = im.crop((left, top, left + width, top + height))
                data = torch.frombuffer(bytearray(im.tobytes()), dtype=torch.uint8)
        except (OSError, UnidentifiedImageError, ValueError) as err:
            raise ValueError(f"mixing set: cannot read image file {str(f)!r}: {err}") from err
        c = 1 if channels == 1 else 3
        return data.view(height, width, c).permute(2, 0, 1)

    def pictures(
        self,
        choice: dict[str, Tensor],
        height: int,
        width: int,
        channels: int,
        device: torch.device,
        dtype: torch.dtype,
    ) -> Tensor:
        """Load the chosen pictures on the host and move them to ``device`` (one host-to-device copy)."""
        idx = self.indices(choice)
        crop = choice["mix_crop"].to("cpu", torch.float64).reshape(-1, 2)
        imgs = torch.stack([self.load(int(i), height, width, crop[n], channels) for n, i in enumerate(idx.tolist())])
        out = imgs.to(device=device).to(dtype) / 255.0
        return self._channels(out, channels)

    def extra_repr(self) -> str:
        """Settings shown in ``repr``."""
        return f"root={str(self.root)!r}, files={len(self.files)}, resize_ratio={self.resize_ratio:.4g}"


def build_mixing_set(
    root: str | Path | None = None,
    *,
    resize_ratio: float = 36 / 32,
    size: int = 100_000,
    seed: int = 0,
    min_maps: int = 2,
    max_maps: int = 4,
) -> MixingSet:
    """The mixing set of a config: an :class:`ImageFolderMixingSet` of ``root``, or the fractals when ``root`` is None.

    One factory for both, so a config switches with a single key (``augment.mixing_set.root=/data/mixing``).

    Args:
        root: folder of mixing pictures; ``None``: the embedded :class:`FractalMixingSet`.
        resize_ratio: folder pictures only (see :class:`ImageFolderMixingSet`).
        size: fractals only: number of distinct pictures.
        seed: fractals only: seed of the set.
        min_maps: fractals only: fewest maps per fractal.
        max_maps: fractals only: most maps per fractal.

    Example:
        >>> type(build_mixing_set()).__name__
        'FractalMixingSet'
    """
    if root is None:
        return FractalMixingSet(size=size, seed=seed, min_maps=min_maps, max_maps=max_maps)
    return ImageFolderMixingSet(root, resize_ratio=resize_ratio)


class PixMix(BatchAugment):
    """PixMix as a batched, replayable module.

    Args:
        mixing_set: a :class:`MixingSet`, or a folder path (an :class:`ImageFolderMixingSet`); ``None``: the
            embedded :class:`FractalMixingSet`.
        k: most mixing rounds ``k_max`` (reference: 4; the rounds of a sample are ``U{0..k}``).
        beta: mixing severity (reference: 3 on CIFAR, 4 on ImageNet).
        aug_severity: AugMix op severity of the augmented copies, 1-10 scale (reference: 3 on CIFAR, 1 on ImageNet).
        all_ops: use the 13 AugMix ops (the reference recipes pass ``--all-ops``) instead of the 9 that do not overlap
            ImageNet-C.
        ops: explicit op names (registry keys); overrides ``all_ops``.
        jsd: return ``[clean, pixmix_1, ..., pixmix_n]`` for the JSD loss (not in the PixMix paper, which trains with
            cross-entropy).
        num_views: PixMix views per sample with ``jsd``.
        p: probability that a sample is augmented (others are returned clean).
        seed: seed of the module's own generator; ``None`` uses the global generator.

    Params (leading dim B; ``V = num_views`` if ``jsd`` else 1, ``K = k``):
        ``apply`` (B,) bool, ``severity`` (B,), ``rounds`` (B, V) int64 in [0, K], ``start_aug`` (B, V) bool,
        ``use_aug`` (B, V, K) bool, ``op`` (B, V, 1 + K) int64 index into :attr:`ops` (slot 0: the starting copy),
        ``level`` / ``sign`` (B, V, 1 + K) float64, ``blend`` (B, V, K) int64 (0 add, 1 multiply), ``a`` / ``b``
        (B, V, K) float64, ``mix_index`` (B, V) int64 and ``mix_crop`` (B, V, 2) float64 (the mixing picture).

    Shape:
        - Input: (B, C, H, W), float in [0, 1].
        - Output: (B, C, H, W), or ((1 + num_views) B, C, H, W) with ``jsd=True``.

    Example:
        >>> aug = PixMix(seed=0)
        >>> aug(torch.rand(4, 3, 16, 16)).shape
        torch.Size([4, 3, 16, 16])
        >>> aug.last_params["op"].shape
        torch.Size([4, 1, 5])
    """

    def __init__(
        self,
        mixing_set: MixingSet | str | Path | None = None,
        k: int = 4,
        beta: float = 3.0,
        aug_severity: float = 3.0,
        all_ops: bool = True,
        ops: Sequence[str] | None = None,
        jsd: bool = False,
        num_views: int = 2,
        p: float = 1.0,
        seed: int | None = None,
    ) -> None:
        super().__init__(p=p, seed=seed)
        if isinstance(k, bool) or not isinstance(k, int) or k < 0:
            raise ValueError(f"k: expected a non-negative number of mixing rounds, got {k!r}")
        if not (isinstance(beta, (int, float)) and math.isfinite(float(beta)) and float(beta) > 0):
            raise ValueError(f"beta: expected a positive finite mixing severity, got {beta!r}")
        check_range(float(aug_severity), 1.0, 10.0, "aug_severity")
        if isinstance(num_views, bool) or not isinstance(num_views, int) or num_views < 1:
            raise ValueError(f"num_views: expected >= 1 PixMix views, got {num_views!r}")
        names = list(ops) if ops is not None else list_augment_ops(all_ops)
        if not names:
            raise ValueError("ops: expected at least one augment op")
        for n in names:
            AUGMENT_OPS.get(n)
            if n not in AF.OP_SPECS:
                raise ValueError(f"ops: augment op {n!r} is registered but has no functional spec in OP_SPECS")
        if mixing_set is None:
            mixing_set = FractalMixingSet()
        elif isinstance(mixing_set, (str, Path)):
            mixing_set = ImageFolderMixingSet(mixing_set)
        elif not isinstance(mixing_set, MixingSet):
            raise TypeError(f"mixing_set: expected a MixingSet, a folder path or None, got {type(mixing_set).__name__}")
        self.mixing_set = mixing_set
        self.k = int(k)
        self.beta = float(beta)
        self.aug_severity = float(aug_severity)
        self.all_ops = bool(all_ops)
        self.ops: tuple[str, ...] = tuple(names)
        self.jsd = bool(jsd)
        self.num_views = int(num_views)

    @property
    def num_splits(self) -> int:
        """``1 + num_views`` with ``jsd``, else 1."""
        return 1 + self.num_views if self.jsd else 1

    def sample_params(self, batch_size: int, generator: torch.Generator | None = None) -> Params:
        """Draw every PixMix choice for a batch (CPU)."""
        g = self._gen(generator)
        b, v, k = batch_size, (self.num_views if self.jsd else 1), self.k
        params = super().sample_params(b, g)
        f64 = torch.float64
        params["severity"] = torch.full((b,), self.aug_severity, dtype=f64)
        params["rounds"] = torch.randint(0, k + 1, (b, v), generator=g, dtype=torch.int64)
        params["start_aug"] = torch.rand((b, v), generator=g, dtype=f64) < 0.5
        params["use_aug"] = torch.rand((b, v, k), generator=g, dtype=f64) < 0.5
        params["op"] = torch.randint(0, len(self.ops), (b, v, 1 + k), generator=g, dtype=torch.int64)
        params["level"] = 0.1 + (self.aug_severity - 0.1) * torch.rand((b, v, 1 + k), generator=g, dtype=f64)
        params["sign"] = torch.where(torch.rand((b, v, 1 + k), generator=g, dtype=f64) < 0.5, -1.0, 1.0).to(f64)
        params["blend"] = torch.randint(0, 2, (b, v, k), generator=g, dtype=torch.int64)
        # get_ab: interpolate (a ~ Beta(beta, 1), b ~ Beta(1, beta)) or extrapolate (a = 1 + Beta(1, beta),
        # b = -Beta(1, beta)), 1/2 each
        interp = torch.rand((b, v, k), generator=g, dtype=f64) < 0.5
        a_in, b_in = sample_beta((b, v, k), self.beta, g, 1.0), sample_beta((b, v, k), 1.0, g, self.beta)
        a_ex, b_ex = sample_beta((b, v, k), 1.0, g, self.beta), sample_beta((b, v, k), 1.0, g, self.beta)
        params["a"] = torch.where(interp, a_in, 1.0 + a_ex)
        params["b"] = torch.where(interp, b_in, -b_ex)
        choice = self.mixing_set.sample(b * v, g)
        for key, t in choice.items():
            params[key] = t.view(b, v, *t.shape[1:])
        return params

    def apply(self, x: Tensor, params: Params) -> Tensor:
        """PixMix every view; returns ``[x, views...]`` with ``jsd`` else the single view."""
        b, c, h, w = x.shape
        v = int(params["rounds"].shape[1])

        def flat(t: Tensor) -> Tensor:  # (B, V, ...) -> (V * B, ...), view-major
            return t.transpose(0, 1).reshape(v * b, *t.shape[2:])

        xr = x.repeat(v, 1, 1, 1)
        choice = {key: flat(t) for key, t in params.items() if key.startswith("mix_")}
        pics = self.mixing_set.pictures(choice, h, w, c, x.device, x.dtype)
        op = flat(params["op"]).to("cpu")
        arg = PF.op_arguments(
            self.ops, op.reshape(-1), flat(params["level"]).reshape(-1), flat(params["sign"]).reshape(-1), h, w
        ).view(op.shape)
        out = PF.pixmix(
            xr,
            pics,
            self.ops,
            op,
            arg,
            flat(params["start_aug"]).to("cpu"),
            flat(params["use_aug"]).to("cpu"),
            flat(params["rounds"]),
            flat(params["blend"]),
            flat(params["a"]),
            flat(params["b"]),
        )
        out = self.gate(params["apply"].repeat(v), out, xr)
        return torch.cat([x, out]) if self.jsd else out

    def extra_repr(self) -> str:
        """Settings shown in ``repr``."""
        return (
            f"k={self.k}, beta={self.beta}, aug_severity={self.aug_severity}, ops={list(self.ops)}, jsd={self.jsd}, "
            f"num_views={self.num_views}, p={self.p}"
        )
