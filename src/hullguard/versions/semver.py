"""Semantic Versioning 2.0.0 precedence (npm, crates.io, Hex, Pub).

Precedence compares MAJOR.MINOR.PATCH numerically, then a version without a
pre-release outranks one with it, and pre-release identifiers compare
left to right: numeric ones numerically and below alphanumeric ones, which
compare in ASCII order; a longer list wins when all shared identifiers are
equal.  Build metadata never affects precedence (Pub is the exception: it
orders builds after the pre-release, which ``compare_build=True`` enables).

The npm flavour also accepts what node-semver's parser tolerates in version
fields: surrounding whitespace and a leading ``v`` or ``=``.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from ._base import BaseComparator, invalid

_NUM = r"(?:0|[1-9][0-9]*)"
_IDENT = r"[0-9A-Za-z-]+"
_SEMVER = re.compile(
    rf"({_NUM})\.({_NUM})\.({_NUM})"
    rf"(?:-({_IDENT}(?:\.{_IDENT})*))?"
    rf"(?:\+({_IDENT}(?:\.{_IDENT})*))?\Z"
)
_NUMERIC = re.compile(r"[0-9]+\Z")

RELEASE = (1,)


def identifiers_key(text: str, *, allow_leading_zero: bool = False) -> tuple[tuple[object, ...], ...]:
    """Key for a dot-separated pre-release identifier list.

    Numeric identifiers come first (rank 0) and compare as integers,
    alphanumeric ones (rank 1) compare as strings.
    """
    out: list[tuple[object, ...]] = []
    for ident in text.split("."):
        if _NUMERIC.match(ident):
            if len(ident) > 1 and ident[0] == "0" and not allow_leading_zero:
                raise ValueError("numeric identifier has a leading zero")
            out.append((0, int(ident)))
        else:
            out.append((1, ident))
    return tuple(out)


def _build_key(build: str | None) -> tuple[object, ...]:
    if build is None:
        return ()
    return (identifiers_key(build, allow_leading_zero=True),)


def make_parse(name: str, *, loose_prefix: bool, compare_build: bool) -> Callable[[str], tuple[object, ...]]:
    def parse(version: str) -> tuple[object, ...]:
        s = version
        if loose_prefix:
            s = s.strip()
            if s[:1] in ("v", "=", "V"):
                s = s[1:].lstrip() if s[:1] == "=" else s[1:]
        m = _SEMVER.match(s)
        if m is None:
            raise invalid(name, version, "not MAJOR.MINOR.PATCH[-PRERELEASE][+BUILD]")
        major, minor, patch, pre, build = m.groups()
        if pre is None:
            pre_key: tuple[object, ...] = RELEASE
        else:
            try:
                pre_key = (0, identifiers_key(pre))
            except ValueError as e:
                raise invalid(name, version, str(e)) from None
        key: tuple[object, ...] = (int(major), int(minor), int(patch), pre_key)
        if compare_build:
            key += (_build_key(build),)
        return key

    return parse


class SemverComparator(BaseComparator):
    name = "semver"

    def __init__(self, name: str = "semver", *, loose_prefix: bool = False, compare_build: bool = False) -> None:
        parse = make_parse(name, loose_prefix=loose_prefix, compare_build=compare_build)
        super().__init__(parse, name=name)


STRICT = SemverComparator("semver")
NPM = SemverComparator("npm", loose_prefix=True)
CARGO = SemverComparator("crates.io")
HEX = SemverComparator("Hex")
PUB = SemverComparator("Pub", compare_build=True)
COMPARATOR = STRICT
