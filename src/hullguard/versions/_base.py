"""Shared contract for version comparators.

Each ecosystem module turns a version string into a *key*: a plain Python
value (usually nested tuples of ints and strings) whose natural ordering is
the ecosystem's own ordering.  Matching sorts and bisects thousands of
versions, so a key is computed once per distinct string (LRU cache) and then
compared with native tuple comparison instead of re-running the ecosystem's
algorithm on every comparison.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from typing import Any, Protocol, runtime_checkable

# Real versions are short; the longest legitimate ones (Debian backports with
# git snapshots) stay well under 200 characters.  A hard cap keeps hostile
# input from costing more than a bounded, linear amount of work and keeps
# multi-kilobyte strings out of the cache.
MAX_VERSION_LENGTH = 1024

CACHE_SIZE = 1 << 16


class InvalidVersion(ValueError):
    """The string is not a version in this comparator's ecosystem."""


class UnknownEcosystem(LookupError):
    """No comparator is registered for the requested ecosystem name."""


@runtime_checkable
class Comparator(Protocol):
    """Orders versions of one ecosystem exactly as its own tooling does."""

    name: str
    #: True when the ordering is a heuristic rather than the ecosystem's rules.
    approximate: bool

    def key(self, version: str) -> Any:
        """Sortable key; keys are only comparable with keys of the same comparator."""
        ...

    def compare(self, a: str, b: str) -> int:
        """-1, 0 or 1 as ``a`` sorts before, equal to or after ``b``."""
        ...

    def valid(self, version: str) -> bool:
        """Whether ``version`` is well formed for this ecosystem."""
        ...


class BaseComparator:
    """Comparator built from a pure ``parse(str) -> key`` function."""

    name: str = "base"
    approximate: bool = False

    def __init__(self, parse: Callable[[str], Any], *, name: str | None = None) -> None:
        if name is not None:
            self.name = name
        # The cache lives on the instance (not on a method) so that each
        # comparator owns its cache and instances can be garbage collected.
        self._parse = parse
        self._cached = functools.lru_cache(maxsize=CACHE_SIZE)(parse)

    def key(self, version: str) -> Any:
        if not isinstance(version, str):
            raise InvalidVersion(f"{self.name}: version must be a str, not {type(version).__name__}")
        if len(version) > MAX_VERSION_LENGTH:
            raise InvalidVersion(f"{self.name}: version is {len(version)} characters long (limit {MAX_VERSION_LENGTH})")
        return self._cached(version)

    def compare(self, a: str, b: str) -> int:
        ka = self.key(a)
        kb = self.key(b)
        return (ka > kb) - (ka < kb)

    def valid(self, version: str) -> bool:
        try:
            self.key(version)
        except InvalidVersion:
            return False
        return True

    def sorted(self, versions: Iterable[str]) -> list[str]:
        return sorted(versions, key=self.key)

    def cache_clear(self) -> None:
        self._cached.cache_clear()

    def __repr__(self) -> str:
        flag = " approximate" if self.approximate else ""
        return f"<{type(self).__name__} {self.name}{flag}>"


def invalid(name: str, version: str, reason: str) -> InvalidVersion:
    """Build an InvalidVersion whose message names the ecosystem and the input."""
    shown = version if len(version) <= 80 else version[:77] + "..."
    return InvalidVersion(f"{name}: invalid version {shown!r}: {reason}")
