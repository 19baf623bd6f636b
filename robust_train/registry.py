"""Name -> object registries (corruptions, perturbations, augmentation ops).

The pattern follows timm's model registry: ``register`` records an entry under a snake_case name (and warns when
an existing name is overwritten), ``create`` looks it up, drops ``None`` keyword arguments and raises a
``ValueError`` with close-match suggestions on unknown names, ``list`` filters with ``fnmatch`` patterns and returns
sorted names.
"""

from __future__ import annotations

import difflib
import fnmatch
import re
import warnings
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Generic, TypeVar

from .errors import ArgumentError, ArgumentTypeError

__all__ = ["Registry", "camel_to_snake", "suggest"]

T = TypeVar("T")


def camel_to_snake(name: str) -> str:
    """Convert ``CamelCase`` to ``snake_case``.

    Example:
        >>> camel_to_snake("GaussianNoise")
        'gaussian_noise'
    """
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def suggest(name: str, known: Iterable[str], n: int = 3) -> list[str]:
    """Close matches of ``name`` among ``known``: names that start with or contain it, then ``difflib`` matches.

    Example:
        >>> suggest("jpeg", ["jpeg_compression", "fog"]), suggest("c16", ["c15", "c19", "extra"])
        (['jpeg_compression'], ['c19', 'c15'])
    """
    known = list(known)
    key = name.lower().replace("-", "_").replace(" ", "_")
    hits = [k for k in known if key and (k.startswith(key) or key in k)] if len(key) >= 3 else []
    hits += [k for k in difflib.get_close_matches(key, known, n=n, cutoff=0.5) if k not in hits]
    return hits[:n]


class Registry(Generic[T]):
    """A named collection of factories with metadata.

    Args:
        kind: what the registry holds, used in error messages (``"corruption"``).

    Example:
        >>> reg = Registry("thing")
        >>> @reg.register(family="demo")
        ... class FooBar:
        ...     def __init__(self, k=1):
        ...         self.k = k
        >>> reg.list()
        ['foo_bar']
        >>> reg.create("foo_bar", k=None).k
        1
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}
        self._meta: dict[str, dict[str, Any]] = {}

    def register(self, name: str | None = None, **meta: Any) -> Callable[[T], T]:
        """Decorator that records an entry.

        Args:
            name: registry key; defaults to the class attribute ``name`` or the snake_case class name.
            **meta: metadata used by :meth:`list` filters (for example ``family="noise"``).
        """

        def decorator(obj: T) -> T:
            key = name or getattr(obj, "name", None) or camel_to_snake(getattr(obj, "__name__", ""))
            if not key:
                raise ValueError(f"cannot infer a {self.kind} name for {obj!r}; pass name=...")
            if key in self._entries and self._entries[key] is not obj:
                warnings.warn(f"overwriting {self.kind} {key!r} in the registry", stacklevel=2)
            self._entries[key] = obj
            self._meta[key] = dict(meta)
            return obj

        return decorator

    def get(self, name: str) -> T:
        """Return the entry registered as ``name``.

        Raises:
            ValueError: the name is unknown; the message lists the closest known names.
        """
        if not isinstance(name, str):
            raise ArgumentTypeError(f"{self.kind} name must be a str, got {type(name).__name__}")
        try:
            return self._entries[name]
        except KeyError:
            close = suggest(name, self._entries)
            hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
            raise ArgumentError(
                f"unknown {self.kind} {name!r}.{hint} Known: {', '.join(sorted(self._entries)) or '(none)'}"
            ) from None

    def create(self, name: str, **kwargs: Any) -> Any:
        """Instantiate the entry ``name``; keyword arguments that are ``None`` are dropped."""
        factory = self.get(name)
        return factory(**{k: v for k, v in kwargs.items() if v is not None})  # type: ignore[operator]

    def meta(self, name: str) -> dict[str, Any]:
        """Metadata recorded with ``name``."""
        self.get(name)
        return dict(self._meta[name])

    def list(self, pattern: str | list[str] | None = None, **meta: Any) -> list[str]:
        """Sorted names, optionally filtered by ``fnmatch`` pattern(s) and metadata equality."""
        names = list(self._entries)
        if pattern is not None:
            pats = [pattern] if isinstance(pattern, str) else list(pattern)
            names = [n for n in names if any(fnmatch.fnmatch(n, p) for p in pats)]
        for key, value in meta.items():
            names = [n for n in names if self._meta[n].get(key) == value]
        return sorted(names)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._entries))

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {len(self)} entries)"
