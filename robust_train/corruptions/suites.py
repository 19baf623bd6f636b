"""The corruption registry and the named suites (benchmark order of the original)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import ClassVar, TypeVar

from ..errors import ArgumentError
from ..registry import Registry, suggest

__all__ = [
    "BENCHMARK_ORDER",
    "CORRUPTIONS",
    "EXTRA",
    "FAMILIES",
    "SUITES",
    "check_suite_name",
    "list_corruptions",
    "register_corruption",
]

T = TypeVar("T")

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

#: The corruption families (each corruption class declares one; its registry entry carries it).
FAMILIES: tuple[str, ...] = ("noise", "blur", "weather", "digital")


class _Suites(Mapping[str, tuple[str, ...]]):
    """The named suites: ``c15``, ``c19``, ``extra`` and one per family, derived from the registry on access.

    A family suite lists the registered corruptions of that family in benchmark order (then any others, sorted), so a
    corruption registered later (a plug-in) joins its family without editing a table.
    """

    _FIXED: ClassVar[dict[str, tuple[str, ...]]] = {
        "c15": BENCHMARK_ORDER,
        "c19": BENCHMARK_ORDER + EXTRA,
        "extra": EXTRA,
    }

    def __getitem__(self, key: str) -> tuple[str, ...]:
        if key in self._FIXED:
            return self._FIXED[key]
        if key not in FAMILIES:
            raise KeyError(key)
        members = set(CORRUPTIONS.list(family=key))
        order = self._FIXED["c19"]
        return tuple(n for n in order if n in members) + tuple(sorted(members.difference(order)))

    def __iter__(self) -> Iterator[str]:
        return iter((*self._FIXED, *FAMILIES))

    def __len__(self) -> int:
        return len(self._FIXED) + len(FAMILIES)


SUITES: Mapping[str, tuple[str, ...]] = _Suites()


def register_corruption(cls: type[T]) -> type[T]:
    """Class decorator: register a corruption under its ``name`` with its ``family`` as registry metadata.

    Raises:
        ValueError: the class declares no known family.
    """
    family = getattr(cls, "family", "")
    if family not in FAMILIES:
        raise ValueError(f"{cls.__name__}.family: expected one of {list(FAMILIES)}, got {family!r}")
    return CORRUPTIONS.register(family=family)(cls)


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
