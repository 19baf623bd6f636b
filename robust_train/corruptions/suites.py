"""The corruption registry and the named suites (benchmark order of the original)."""

from __future__ import annotations

from ..errors import ArgumentError
from ..registry import Registry, suggest

__all__ = ["CORRUPTIONS", "SUITES", "BENCHMARK_ORDER", "EXTRA", "check_suite_name", "list_corruptions"]

CORRUPTIONS: Registry = Registry("corruption")

#: The 15 ImageNet-C benchmark corruptions in the paper's order (noise, blur, weather, digital).
BENCHMARK_ORDER: tuple[str, ...] = (
    "gaussian_noise",
    "shot_noise",
    "impulse_noise",
    "defocus_blur",
    "glass_blur",
    "motion_blur",
    "zoom_blur",
    "snow",
    "frost",
    "fog",
    "brightness",
    "contrast",
    "elastic_transform",
    "pixelate",
    "jpeg_compression",
)
#: The 4 extra ("validation") corruptions.
EXTRA: tuple[str, ...] = ("speckle_noise", "gaussian_blur", "spatter", "saturate")

SUITES: dict[str, tuple[str, ...]] = {
    "c15": BENCHMARK_ORDER,
    "c19": BENCHMARK_ORDER + EXTRA,
    "extra": EXTRA,
    "noise": ("gaussian_noise", "shot_noise", "impulse_noise", "speckle_noise"),
    "blur": ("defocus_blur", "glass_blur", "motion_blur", "zoom_blur", "gaussian_blur"),
    "weather": ("snow", "frost", "fog", "brightness", "spatter"),
    "digital": ("contrast", "elastic_transform", "pixelate", "jpeg_compression", "saturate"),
}


def check_suite_name(suite: str, what: str = "corruption suite") -> None:
    """Raise :class:`~robust_train.errors.ArgumentError` (with close matches) unless ``suite`` is a named suite.

    Example:
        >>> check_suite_name("c15")
    """
    if suite not in SUITES:
        close = suggest(str(suite), SUITES)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise ArgumentError(f"unknown {what} {suite!r}.{hint} Expected one of {sorted(SUITES)}")


def list_corruptions(suite: str | None = None, pattern: str | None = None) -> list[str]:
    """Names of registered corruptions.

    Args:
        suite: a named suite (``"c15"``, ``"c19"``, ``"extra"``, or a family) in its canonical order; ``None``
            for every registered corruption, sorted.
        pattern: optional ``fnmatch`` filter (``"*blur*"``).

    Raises:
        ValueError: unknown suite.

    Example:
        >>> list_corruptions("c15")[:3]
        ['gaussian_noise', 'shot_noise', 'impulse_noise']
    """
    import fnmatch

    if suite is None:
        names = CORRUPTIONS.list()
    else:
        check_suite_name(suite)
        names = list(SUITES[suite])
    if pattern is not None:
        names = [n for n in names if fnmatch.fnmatch(n, pattern)]
    return names
