"""Base class of every corruption: settings, severity tables, parameter sampling apart from application.

Randomness model (see STYLE.md section 2):

* A call draws, per sample, an int64 ``seed``, a ``severity`` and an ``apply`` flag. Everything else a corruption
  needs at random (angles, crop offsets, whole noise fields) is a pure function of ``(seed, stream, element)``
  through the counter-based hash in :mod:`robust_train.functional.rng`. Small draws happen on the CPU in float64
  (:meth:`Corruption.draw`); large fields are hashed on the image's device inside :meth:`Corruption.apply`.
* Training: :meth:`Corruption.sample_params` draws seeds from a ``torch.Generator`` (the module's own when built
  with ``seed=``, otherwise the global one, so ``torch.manual_seed`` controls it).
* Evaluation: :meth:`Corruption.params_for_indices` derives each seed from ``(eval_seed, corruption, severity,
  sample_index)`` only, so batch size, shuffling, device and number of processes never change a corrupted image.

Presets: the original code has three parameter tables, ImageNet (224 px), Tiny-ImageNet (64 px) and CIFAR (32 px).
``preset="auto"`` picks from the shorter image side ``s``: ``s <= 48`` -> ``"cifar"``, ``s <= 128`` ->
``"tinyimagenet"``, otherwise ``"imagenet"``. An explicit preset whose native side is more than 4x away from ``s``
raises ``ValueError`` (almost certainly a mistake).

Continuous severity: a float ``s`` in [1, 5] interpolates every numeric table entry linearly between levels
``floor(s)`` and ``ceil(s)``; entries that must be integers (iteration counts, radii of discrete kernels) are rounded
by the corruption that uses them, as its docstring says.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from ..functional._common import truncate_uint8
from ..functional.checks import check_batch_param, check_image, check_int, check_per_sample, check_range, check_seed
from ..functional.rng import draw_uniform, op_seeds, severity_seeds, stream_id
from . import execution
from .execution import CpuPolicy
from .params import Params

__all__ = [
    "Corruption",
    "NATIVE_SIZE",
    "PRESETS",
    "SeverityTable",
    "resolve_preset",
    "Severity",
]

PRESETS: tuple[str, ...] = ("imagenet", "tinyimagenet", "cifar")
NATIVE_SIZE: dict[str, int] = {"imagenet": 224, "tinyimagenet": 64, "cifar": 32}
Severity = int | float | tuple[float, float] | Tensor


def resolve_preset(preset: str, height: int, width: int) -> str:
    """Resolve ``"auto"`` from the image size and check an explicit preset against it.

    Args:
        preset: ``"auto"`` or one of :data:`PRESETS`.
        height: image height in pixels.
        width: image width in pixels.

    Returns:
        One of :data:`PRESETS`.

    Raises:
        ValueError: unknown preset, or a preset whose native size is more than 4x away from the image.

    Example:
        >>> resolve_preset("auto", 32, 32), resolve_preset("auto", 64, 80), resolve_preset("auto", 224, 300)
        ('cifar', 'tinyimagenet', 'imagenet')
    """
    side = min(height, width)
    if preset == "auto":
        return "cifar" if side <= 48 else ("tinyimagenet" if side <= 128 else "imagenet")
    if preset not in NATIVE_SIZE:
        raise ValueError(f"unknown preset {preset!r}; expected 'auto' or one of {list(PRESETS)}")
    native = NATIVE_SIZE[preset]
    if side * 4 < native or side > native * 4:
        raise ValueError(
            f"preset {preset!r} is made for images of about {native} px, but the image is {height}x{width}; "
            "use preset='auto' or the preset that matches the resolution"
        )
    return preset


class SeverityTable:
    """Severity -> argument table of one corruption, for the three presets.

    Args:
        fields: names of the arguments, in column order.
        imagenet: five rows (severity 1..5) of values for the ImageNet preset.
        tinyimagenet: five rows for Tiny-ImageNet.
        cifar: five rows for CIFAR.

    Example:
        >>> t = SeverityTable(("sigma",), imagenet=[(1,), (2,), (3,), (4,), (6,)], tinyimagenet=[(1,)] * 5,
        ...                   cifar=[(1,)] * 5)
        >>> t.lookup(torch.tensor([1.0, 4.5, 5.0]), "imagenet")["sigma"].tolist()
        [1.0, 5.0, 6.0]
    """

    def __init__(
        self,
        fields: Sequence[str],
        *,
        imagenet: Sequence[Sequence[float]],
        tinyimagenet: Sequence[Sequence[float]],
        cifar: Sequence[Sequence[float]],
    ) -> None:
        self.fields = tuple(fields)
        self.rows: dict[str, Tensor] = {}
        for preset, rows in (("imagenet", imagenet), ("tinyimagenet", tinyimagenet), ("cifar", cifar)):
            t = torch.tensor([list(r) for r in rows], dtype=torch.float64)
            if t.shape != (5, len(self.fields)):
                raise ValueError(f"{preset}: expected 5 rows of {len(self.fields)} values, got shape {tuple(t.shape)}")
            self.rows[preset] = t

    def values(self, preset: str) -> Tensor:
        """The (5, k) float64 table of ``preset``."""
        return self.rows[preset]

    def lookup(self, severity: Tensor, preset: str) -> dict[str, Tensor]:
        """Per-sample arguments for (possibly fractional) severities.

        Args:
            severity: (B,) severities in [1, 5].
            preset: one of :data:`PRESETS`.

        Returns:
            Mapping field -> (B,) float64 tensor on ``severity``'s device.
        """
        table = self.rows[preset].to(severity.device)
        s = severity.to(torch.float64).clamp(1.0, 5.0) - 1.0
        lo = s.floor().long().clamp(0, 4)
        hi = (lo + 1).clamp(max=4)
        frac = (s - lo.to(s.dtype)).unsqueeze(-1)
        vals = table[lo] * (1.0 - frac) + table[hi] * frac
        return {f: vals[:, i] for i, f in enumerate(self.fields)}

    def markdown(self) -> str:
        """The table as markdown, for docs and ``robust-corrupt info``."""
        lines = ["| s | " + " | ".join(PRESETS) + " |", "|---" * (len(PRESETS) + 1) + "|"]
        for s in range(5):
            cells = [", ".join(f"{v:g}" for v in self.rows[p][s].tolist()) for p in PRESETS]
            lines.append(f"| {s + 1} | " + " | ".join(f"({c})" for c in cells) + " |")
        return "\n".join(lines)


def _check_severity(severity: Severity) -> None:
    if isinstance(severity, Tensor):
        check_per_sample(severity, "severity", lo=1.0, hi=5.0)
        return
    if isinstance(severity, bool):
        raise TypeError("severity must be an int 1-5, a float in [1, 5] or a (low, high) range, got a bool")
    if isinstance(severity, (int, float)):
        check_per_sample(severity, "severity", lo=1.0, hi=5.0)
        return
    if isinstance(severity, (tuple, list)) and len(severity) == 2:
        lo, hi = (float(check_per_sample(v, "severity range", lo=1.0, hi=5.0)) for v in severity)
        check_range(lo, 1.0, 5.0, "severity range low")
        check_range(hi, 1.0, 5.0, "severity range high")
        if lo > hi:
            raise ValueError(f"severity range must be (low, high) with low <= high, got {tuple(severity)}")
        return
    raise TypeError(
        f"severity must be an int 1-5, a float in [1, 5], a (low, high) range or a (B,) tensor, got {severity!r}"
    )


class Corruption(nn.Module):
    """Base class: holds settings, samples per-sample parameters, calls the functional op.

    Subclasses set the class attributes below, implement :meth:`apply` (deterministic in ``(x, params)``) and, when
    they draw small random quantities, :meth:`draw`.

    Args:
        severity: int 1-5 (benchmark levels), float in [1, 5] (interpolated tables) or a ``(low, high)`` range
            sampled uniformly per sample (training).
        p: probability that a sample is corrupted (per sample, gated with ``torch.where``).
        same_on_batch: draw one row of parameters and use it for every sample.
        preset: ``"auto"``, ``"imagenet"``, ``"tinyimagenet"`` or ``"cifar"`` (module docstring).
        quantize: truncate the output to 8 bit as the original's ``np.uint8`` cast did (straight-through gradient).
        jpeg_quality: if set, JPEG encode/decode the (quantized) output at this quality, as the released ImageNet-C
            and Tiny-ImageNet-C files were saved (quality 85). ``None`` keeps the in-memory output.
        seed: seed of the module's own ``torch.Generator``; ``None`` uses the global generator.

    Class attributes:
        name: registry key.
        family: ``"noise"``, ``"blur"``, ``"weather"`` or ``"digital"``.
        table: the :class:`SeverityTable`.
        differentiable: whether gradients reach the input.
        gradient: ``"exact"``, ``"straight-through"`` or ``"surrogate"``; how the backward pass is defined.
    """

    name: ClassVar[str] = ""
    family: ClassVar[str] = ""
    table: ClassVar[SeverityTable | None] = None
    differentiable: ClassVar[bool] = True
    gradient: ClassVar[str] = "exact"
    #: Execution policy on the CPU (chunking, host threads): :class:`~robust_train.corruptions.execution.CpuPolicy`.
    cpu: ClassVar[CpuPolicy] = CpuPolicy()
    #: ``apply`` already returns values on the 8-bit grid ``k / 255`` (exact 8-bit models such as JPEG and
    #: pixelate): the ``quantize`` truncation would be the identity and is skipped (tested per corruption).
    output_on_grid: ClassVar[bool] = False
    #: ``apply`` checks the value range (NaN, outside [0, 1]) itself, from a pass over the image it makes anyway;
    #: the execution layer then checks only shape and dtype up front.
    checks_values_in_apply: ClassVar[bool] = False

    def __init__(
        self,
        severity: Severity = 3,
        p: float = 1.0,
        same_on_batch: bool = False,
        preset: str = "auto",
        quantize: bool = True,
        jpeg_quality: int | None = None,
        seed: int | None = None,
    ) -> None:
        super().__init__()
        _check_severity(severity)
        check_range(float(p), 0.0, 1.0, "p")
        if preset != "auto" and preset not in PRESETS:
            raise ValueError(f"unknown preset {preset!r}; expected 'auto' or one of {list(PRESETS)}")
        if jpeg_quality is not None:
            jpeg_quality = check_int(jpeg_quality, "jpeg_quality", 1, 100)
        if seed is not None:
            seed = check_seed(seed)
        self.severity = severity
        self.p = float(p)
        self.same_on_batch = bool(same_on_batch)
        self.preset = preset
        self.quantize = bool(quantize)
        self.jpeg_quality = None if jpeg_quality is None else int(jpeg_quality)
        self.seed = seed
        self.generator: torch.Generator | None = None
        if seed is not None:
            self.generator = torch.Generator().manual_seed(int(seed))
        self.last_params: Params | None = None

    # ------------------------------------------------------------------ parameters
    def stream(self, what: str) -> int:
        """Stream id for an independent random quantity of this corruption."""
        return stream_id(f"{self.name}/{what}")

    def draw(self, seeds: Tensor, severity: Tensor) -> dict[str, Tensor]:
        """Derive the corruption's small random parameters from per-sample seeds (CPU, float64).

        Args:
            seeds: (B,) int64.
            severity: (B,) float64.

        Returns:
            Mapping of extra per-sample tensors (leading dim B). The default draws nothing.
        """
        return {}

    def make_params(self, seeds: Tensor, severity: Tensor, apply: Tensor | None = None) -> Params:
        """Build :class:`Params` from per-sample seeds and severities.

        Args:
            seeds: (B,) int64 seeds.
            severity: (B,) severities in [1, 5].
            apply: (B,) bool; drawn from ``p`` and the seeds when omitted.
        """
        seeds = seeds.to("cpu", torch.int64).reshape(-1)
        severity = severity.to("cpu", torch.float64).reshape(-1)
        if severity.numel() == 1 and seeds.numel() > 1:
            severity = severity.expand(seeds.numel()).clone()
        check_batch_param(severity, seeds.numel(), "severity")
        _check_severity(severity)
        if apply is None:
            apply = draw_uniform(seeds, 1, self.stream("apply"))[:, 0] < self.p
        params = Params(seed=seeds, severity=severity, apply=apply.to("cpu", torch.bool).reshape(-1))
        params.update(self.draw(seeds, severity))
        return params

    def _severity_rows(self, n: int, uniform: Tensor, severity: Severity | None = None) -> Tensor:
        sev = self.severity if severity is None else severity
        if isinstance(sev, Tensor):
            sev = sev.to("cpu", torch.float64)
            if sev.dim() == 0:
                return sev.expand(n).clone()
            check_batch_param(sev, n, "severity")
            return sev.clone()
        if isinstance(sev, (tuple, list)):
            lo, hi = float(sev[0]), float(sev[1])
            return lo + (hi - lo) * uniform
        return torch.full((n,), float(sev), dtype=torch.float64)

    def sample_params(self, batch_size: int, generator: torch.Generator | None = None) -> Params:
        """Draw parameters for a batch (training).

        Args:
            batch_size: B.
            generator: CPU generator; defaults to the module's own (``seed=``) or the global one.

        Returns:
            :class:`Params` with leading dim B, on the CPU.
        """
        g = generator if generator is not None else self.generator
        n = 1 if self.same_on_batch else batch_size
        seeds = torch.randint(-(2**62), 2**62, (n,), generator=g, dtype=torch.int64)
        u = torch.rand(n, generator=g, dtype=torch.float64)
        apply = torch.rand(n, generator=g, dtype=torch.float64) < self.p
        if isinstance(self.severity, Tensor) and self.severity.dim() == 1 and self.same_on_batch:
            raise ValueError("same_on_batch=True cannot be combined with per-sample severities")
        params = self.make_params(seeds, self._severity_rows(n, u), apply)
        return params.expand(batch_size) if self.same_on_batch else params

    def params_for_indices(
        self, indices: Tensor | Sequence[int], seed: int = 0, *, severity: Severity | None = None
    ) -> Params:
        """Evaluation parameters that depend only on ``(seed, corruption, severity, index)``.

        Args:
            indices: (B,) dataset indices of the samples.
            seed: evaluation seed.
            severity: the severity to draw for (as the constructor's ``severity``); ``None`` uses the module's. One
                module then serves every severity of a suite with the same parameters as a module per severity.

        Returns:
            :class:`Params` on the CPU; rows for equal indices are equal whatever the batch.

        Example:
            >>> from robust_train import create_corruption
            >>> a = create_corruption("fog", severity=2).params_for_indices([4, 5], 0)
            >>> a.equal(create_corruption("fog", severity=5).params_for_indices([4, 5], 0, severity=2))
            True
        """
        idx = torch.as_tensor(indices, dtype=torch.int64).reshape(-1)
        return self.params_for_seeds(op_seeds(check_seed(seed), self.name, idx), severity=severity)

    def params_for_seeds(self, base: Tensor, *, severity: Severity | None = None) -> Params:
        """Parameters from (B,) per-sample base seeds (:func:`~robust_train.functional.rng.op_seeds`).

        A severity range is drawn per sample from its base seed; the op's seeds are
        :func:`~robust_train.functional.rng.severity_seeds` of the base and the severity. Used by
        :meth:`params_for_indices` and by :func:`~robust_train.corruptions.api.corrupt` with per-sample seeds.
        """
        if severity is not None:
            _check_severity(severity)
        u = draw_uniform(base, 1, self.stream("severity"))[:, 0]
        sev = self._severity_rows(base.numel(), u, self.severity if severity is None else severity)
        return self.make_params(severity_seeds(base, sev), sev)

    # ------------------------------------------------------------------ application
    def resolve_preset(self, x: Tensor) -> str:
        """Preset for a batch of images ``x``."""
        return resolve_preset(self.preset, int(x.shape[-2]), int(x.shape[-1]))

    def args(self, params: Mapping[str, Tensor], preset: str) -> dict[str, Tensor]:
        """Table arguments (B,) float64 for the severities in ``params``."""
        if self.table is None:
            raise NotImplementedError(f"{type(self).__name__} has no severity table")
        return self.table.lookup(params["severity"], preset)

    def apply(self, x: Tensor, params: Params) -> Tensor:
        """Corrupt every sample of ``x`` (deterministic in ``(x, params)``; ignores ``apply``).

        Args:
            x: (B, 3, H, W) float images in [0, 1] (float32 or float64).
            params: parameters on ``x``'s device.

        Returns:
            (B, 3, H, W) tensor, same dtype, values in [0, 1].
        """
        raise NotImplementedError

    def forward(self, x: Tensor, params: Params | None = None) -> Tensor:
        """Corrupt ``x``; pass ``params`` (for example ``self.last_params``) to replay a call exactly.

        Args:
            x: images as torchvision users pass them (:func:`~robust_train.corruptions.execution.as_batch`):
                ``(C, H, W)`` or ``(B, C, H, W)``, float in [0, 1] or ``uint8``, 1 (grey) or 3 channels, any memory
                format, plain tensors or ``tv_tensors.Image``; so a module drops into a
                ``torchvision.transforms.v2.Compose`` (per image) and into a batch pipeline on the device alike.
            params: parameters to apply; sampled with :meth:`sample_params` when ``None``.

        Returns:
            The corrupted images in the input's form (rank, dtype, memory format, tv_tensor type; grey input comes
            back with 3 channels, as the original returned it), on ``x``'s device.
        """
        batch, restore = execution.as_batch(x)
        check_image(batch, check_values=False)
        params = Params.for_batch(params, batch.shape[0], self.sample_params)  # host (CPU) parameters
        self.last_params = params
        return restore(execution.run(self, batch, params))

    def finish(self, out: Tensor) -> Tensor:
        """Output stage: optional 8-bit truncation, then optional JPEG round trip."""
        if (self.quantize or self.jpeg_quality is not None) and not self.output_on_grid:
            out = truncate_uint8(out)
        if self.jpeg_quality is not None:
            from ..functional.digital import jpeg_roundtrip

            out = jpeg_roundtrip(out, self.jpeg_quality)  # a host int: no device tensor to read back
        return out

    def extra_repr(self) -> str:
        """Settings shown in ``repr``."""
        return (
            f"severity={self.severity}, p={self.p}, same_on_batch={self.same_on_batch}, preset={self.preset!r}, "
            f"quantize={self.quantize}, jpeg_quality={self.jpeg_quality}"
        )

    # ------------------------------------------------------------------ helpers for subclasses
    @staticmethod
    def per_sample(v: Tensor, x: Tensor) -> Tensor:
        """Reshape a (B,) parameter to broadcast against (B, C, H, W) ``x`` in ``x``'s dtype."""
        return v.to(device=x.device, dtype=x.dtype).view(-1, 1, 1, 1)

    @classmethod
    def describe(cls) -> dict[str, Any]:
        """Name, family, gradient type and the severity table, for docs and the CLI."""
        return {
            "name": cls.name,
            "family": cls.family,
            "differentiable": cls.differentiable,
            "gradient": cls.gradient,
            "table": cls.table.markdown() if cls.table is not None else None,
        }
