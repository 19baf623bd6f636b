"""Base class of the ImageNet-P perturbation sequences: settings, per-sample seeds, presets.

A sequence module turns a batch of clean images ``(B, 3, H, W)`` into frames ``(B, T, 3, h, w)``. Its only random
parameter is a per-sample int64 ``seed`` (noise, snow and spatter derive their fields from it; the other types are
deterministic); evaluation seeds depend on ``(eval_seed, perturbation, sample_index)`` only
(:meth:`PerturbationSequence.params_for_indices`), so frames are identical for any batch size, device or number of
processes, exactly like corrupted evaluation images.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import torch
from torch import Tensor, nn
from typing_extensions import override

from ..corruptions.base import PRESETS, resolve_preset
from ..corruptions.params import Params
from ..functional._common import to_compute_dtype, truncate_uint8
from ..functional.checks import check_image, check_seed
from ..functional.rng import op_seeds
from ..functional.sequences import center_crop_offsets
from ..registry import Registry

__all__ = ["SEQUENCES", "PerturbationSequence"]

SEQUENCES: Registry = Registry("perturbation_sequence")


class PerturbationSequence(nn.Module):
    """Holds the settings of one perturbation type and calls its functional op.

    Args:
        preset: ``"auto"`` (from the output size: crop, or the image), ``"imagenet"``, ``"tinyimagenet"`` or
            ``"cifar"``; selects the parameter table of spec 6.3.
        difficulty: 1, 2 or 3. Noise types use the matching noise strength; for the others it is an evaluation-time
            frame stride (the metrics apply it) and frames do not change.
        crop: centre-crop size of the frames; the input is then the larger context image (ImageNet-P: Resize(256)
            input, ``crop=224``). ``None`` keeps the input size.
        quantize: truncate frames to 8 bit (the original saved uint8 PNG frames).
        h264: emulate the released videos: encode and decode every sequence with libx264 as the original did
            (:mod:`robust_train.sequences.h264`; CPU, host-side, a thread pool over sequences, 0.6-4 s per
            31-frame 224-px sequence and core). Needs PyAV with libx264. Implies 8-bit frames.
        seed: seed of the module's generator for :meth:`sample_params` (``None``: global generator).

    Class attributes:
        name: registry key (the ImageNet-P perturbation name).
        noise: frames are independent noisy copies compared with the clean frame 0 (metrics).
        random: frames depend on the per-sample seed.
    """

    name: ClassVar[str] = ""
    noise: ClassVar[bool] = False
    random: ClassVar[bool] = False

    def __init__(
        self,
        preset: str = "auto",
        difficulty: int = 1,
        crop: int | None = None,
        quantize: bool = True,
        seed: int | None = None,
        h264: bool = False,
    ) -> None:
        super().__init__()
        if preset != "auto" and preset not in PRESETS:
            raise ValueError(f"unknown preset {preset!r}; expected 'auto' or one of {list(PRESETS)}")
        if isinstance(difficulty, bool) or int(difficulty) not in (1, 2, 3) or int(difficulty) != difficulty:
            raise ValueError(f"difficulty must be 1, 2 or 3, got {difficulty!r}")
        if crop is not None and int(crop) < 1:
            raise ValueError(f"crop must be a positive int or None, got {crop!r}")
        self.preset = preset
        self.difficulty = int(difficulty)
        self.crop = None if crop is None else int(crop)
        self.quantize = bool(quantize)
        self.h264 = bool(h264)
        if self.h264:
            from .h264 import h264_available

            if not h264_available():
                raise RuntimeError("h264=True needs PyAV with the libx264 encoder (pip install av)")
        self.generator = None if seed is None else torch.Generator().manual_seed(check_seed(seed))
        self.last_params: Params | None = None

    # ------------------------------------------------------------------ parameters
    def sample_params(self, batch_size: int, generator: torch.Generator | None = None) -> Params:
        """Random per-sample seeds (CPU), from ``generator``, the module's own or the global one."""
        g = generator if generator is not None else self.generator
        return Params(seed=torch.randint(-(2**62), 2**62, (batch_size,), generator=g, dtype=torch.int64))

    def params_for_indices(self, indices: Tensor | Sequence[int], seed: int = 0) -> Params:
        """Evaluation seeds: a function of ``(seed, name, index)`` only.

        Example:
            >>> from robust_train.sequences import create_sequence
            >>> op = create_sequence("rotate")
            >>> op.params_for_indices([3, 4], 0)["seed"].shape
            torch.Size([2])
        """
        idx = torch.as_tensor(indices, dtype=torch.int64).reshape(-1)
        return Params(seed=op_seeds(check_seed(seed), f"sequence/{self.name}", idx))

    # ------------------------------------------------------------------ application
    def resolve_preset(self, x: Tensor) -> str:
        """Preset for the frames of ``x`` (from the crop size when cropping)."""
        _, _, h, w = center_crop_offsets(int(x.shape[-2]), int(x.shape[-1]), self.crop)
        return resolve_preset(self.preset, h, w)

    def num_frames(self, preset: str) -> int:
        """T for a resolved preset."""
        raise NotImplementedError

    def frames(self, x: Tensor, seed: Tensor, preset: str) -> Tensor:
        """The float frames (B, T, 3, h, w) before quantisation (subclasses call their functional op)."""
        raise NotImplementedError

    def forward(self, x: Tensor, params: Params | None = None) -> Tensor:
        """Perturbation sequences of a batch.

        Args:
            x: images, shape (B, 3, H, W), float in [0, 1].
            params: per-sample ``seed`` s (replay ``self.last_params``); sampled when ``None``.

        Returns:
            Frames, shape (B, T, 3, h, w) (``h = w = crop`` when cropping), same dtype and device, in [0, 1].
        """
        check_image(x)
        params = Params.for_batch(params, x.shape[0], self.sample_params)
        self.last_params = params
        xc, out_dtype = to_compute_dtype(x)
        out = self.frames(xc, params["seed"], self.resolve_preset(x))
        if self.quantize or self.h264:
            out = truncate_uint8(out)
        if self.h264:
            from .h264 import h264_roundtrip

            out = h264_roundtrip(out, noise=self.noise)
        return out.clamp(0.0, 1.0).to(out_dtype)

    @override
    def extra_repr(self) -> str:
        return (
            f"preset={self.preset!r}, difficulty={self.difficulty}, crop={self.crop}, quantize={self.quantize}, "
            f"h264={self.h264}"
        )
