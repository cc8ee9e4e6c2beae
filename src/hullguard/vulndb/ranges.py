"""Whether one version falls inside an OSV ``affected`` entry, by the schema's evaluation rules.

The rules (https://ossf.github.io/osv-schema/#evaluation): a version is affected when it is in
the explicit ``versions`` list, or when some ECOSYSTEM/SEMVER range holds it. A range is walked
in version order: ``introduced`` (``"0"`` sorting before everything) switches "affected" on,
``fixed`` switches it off at that version, ``last_affected`` off just above it. ``limit`` events
cap the whole range (``"*"`` meaning no cap; no limit event at all means the same).

GIT ranges need a repository's commit graph; they are ignored here, which the schema allows as
long as the record also lists versions (osv.dev fills those in from tags).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from hullguard.versions import Comparator, InvalidVersion

_LOWEST = (0,)
_HIGHEST = (2,)


def _bound(comp: Comparator, kind: str, version: str) -> tuple[Any, ...]:
    # Keys are wrapped so that the spec's two sentinels sort around every real version without
    # asking the comparator to parse them ("0" is not valid SemVer, "*" is valid nowhere).
    if kind == "introduced" and version == "0":
        return _LOWEST
    if kind == "limit" and version == "*":
        return _HIGHEST
    return (1, comp.key(version))


class RangeResult:
    """``affected`` and, when affected, the lowest ``fixed`` above the version ('' if none)."""

    __slots__ = ("affected", "fix")

    def __init__(self, affected: bool, fix: str = "") -> None:
        self.affected = affected
        self.fix = fix

    def __repr__(self) -> str:
        return f"RangeResult(affected={self.affected}, fix={self.fix!r})"


def in_range(comp: Comparator, version_key: Any, events: Sequence[tuple[str, str]]) -> RangeResult:
    """Evaluate one range; raises InvalidVersion when one of its event versions does not parse."""
    v = (1, version_key)
    bounded = [(_bound(comp, kind, ver), i, kind, ver) for i, (kind, ver) in enumerate(events)]
    limits = [b for b, _, kind, _ in bounded if kind == "limit"]
    if limits and not any(v < b for b in limits):
        return RangeResult(False)
    # Ties keep the record's order, so {"introduced": X}, {"fixed": X} means "never affected".
    bounded.sort(key=lambda t: (t[0], t[1]))
    affected = False
    for b, _, kind, _ in bounded:
        if kind == "introduced":
            if v >= b:
                affected = True
        elif kind == "fixed":
            if v >= b:
                affected = False
        elif kind == "last_affected" and v > b:
            affected = False
    if not affected:
        return RangeResult(False)
    fixes = [(b, ver) for b, _, kind, ver in bounded if kind == "fixed" and b > v]
    return RangeResult(True, min(fixes)[1] if fixes else "")


def in_versions(comp: Comparator, version: str, version_key: Any, versions: Iterable[str]) -> bool:
    """The explicit list: equal strings, or equal keys (PEP 440 "1.0" == "1.0.0")."""
    for listed in versions:
        if listed == version:
            return True
        try:
            if comp.key(listed) == version_key:
                return True
        except InvalidVersion:
            continue
    return False


class Compiled:
    """An ``affected`` entry's ranges and versions with every event version parsed once.

    Matching a scan checks the same entry against one or a few installed versions, and many
    entries share identical range text, so parsing is paid once per distinct entry and each
    check is a walk over pre-sorted keys with no parsing at all.
    """

    __slots__ = ("errors", "ranges", "version_keys", "versions")

    def __init__(self, comp: Comparator, ranges: Iterable[tuple[str, Sequence[Sequence[str]]]],
                 versions: Iterable[str] = ()) -> None:
        self.errors: list[str] = []
        # Each range: (limit bounds, events sorted as (bound, kind, version)).
        self.ranges: list[tuple[list[tuple[Any, ...]], list[tuple[tuple[Any, ...], str, str]]]] = []
        for rtype, events in ranges:
            if rtype == "GIT":
                continue
            try:
                bounded = [(_bound(comp, kind, ver), i, kind, ver) for i, (kind, ver) in enumerate(events)]
            except InvalidVersion as exc:
                self.errors.append(str(exc))
                continue
            limits = [b for b, _, kind, _ in bounded if kind == "limit"]
            # Ties keep the record's order, so {"introduced": X}, {"fixed": X} means "never affected".
            bounded.sort(key=lambda t: (t[0], t[1]))
            self.ranges.append((limits, [(b, kind, ver) for b, _, kind, ver in bounded if kind != "limit"]))
        self.versions = frozenset(versions)
        self.version_keys: list[Any] = []
        for listed in self.versions:
            try:
                self.version_keys.append(comp.key(listed))
            except InvalidVersion:
                continue

    def check(self, version: str, version_key: Any) -> RangeResult:
        v = (1, version_key)
        hit = False
        best: tuple[tuple[Any, ...], str] | None = None
        for limits, events in self.ranges:
            if limits and not any(v < b for b in limits):
                continue
            affected = False
            fix: tuple[tuple[Any, ...], str] | None = None
            for n, (b, kind, _ver) in enumerate(events):
                if v < b:
                    # Nothing at or above this bound can switch the state; the fix, if any, is the
                    # first "fixed" from here on.
                    if affected:
                        fix = next(((b2, v2) for b2, k2, v2 in events[n:] if k2 == "fixed"), None)
                    break
                if kind == "introduced":
                    affected = True
                elif kind == "fixed" or (kind == "last_affected" and v > b):
                    affected = False
            if not affected:
                continue
            hit = True
            if fix is not None and (best is None or fix[0] < best[0]):
                best = fix
        if hit:
            return RangeResult(True, best[1] if best else "")
        if version in self.versions or version_key in self.version_keys:
            return RangeResult(True, "")
        return RangeResult(False)


def evaluate(
    comp: Comparator,
    version: str,
    version_key: Any,
    ranges: Iterable[tuple[str, Sequence[tuple[str, str]]]],
    versions: Iterable[str] = (),
    errors: list[str] | None = None,
) -> RangeResult:
    """Whether ``version`` is affected by one ``affected`` entry, with the lowest fix above it.

    A range whose own versions do not parse is skipped and described in ``errors``: skipping
    one bad range of one advisory is better than failing the whole scan.
    """
    compiled = Compiled(comp, ranges, versions)
    if errors is not None:
        errors.extend(compiled.errors)
    return compiled.check(version, version_key)
