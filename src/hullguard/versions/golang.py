"""Go module versions, ordered as ``golang.org/x/mod/semver.Compare``.

Go versions are SemVer with a ``v`` prefix.  OSV's Go ranges drop the ``v``,
so it is optional here.  As in Go, ``v1`` and ``v1.2`` are shorthands for
``v1.0.0`` and ``v1.2.0`` (no pre-release or build allowed on a shorthand), and
build metadata — including ``+incompatible`` — is ignored.

Pseudo-versions need no special case: ``v0.0.0-20191109021931-daa7c04131f5``,
``v1.2.4-0.20191109021931-daa7c04131f5`` and ``v1.2.3-pre.0.2019...`` are
pre-releases whose timestamp identifier orders them by commit time and below
the release they lead up to.
"""

from __future__ import annotations

import re

from ._base import BaseComparator, invalid
from .semver import RELEASE, identifiers_key

NAME = "Go"

_NUM = r"(?:0|[1-9][0-9]*)"
_IDENT = r"[0-9A-Za-z-]+"
_GO = re.compile(
    rf"v?({_NUM})(?:\.({_NUM})(?:\.({_NUM})"
    rf"(?:-({_IDENT}(?:\.{_IDENT})*))?"
    rf"(?:\+({_IDENT}(?:\.{_IDENT})*))?)?)?\Z"
)
_PSEUDO_TAIL = re.compile(r"(?:^|\.)(?:0\.)?[0-9]{14}-[0-9a-f]{12}\Z")


def parse(version: str) -> tuple[object, ...]:
    m = _GO.match(version)
    if m is None:
        raise invalid(NAME, version, "not vMAJOR[.MINOR[.PATCH[-PRERELEASE][+BUILD]]]")
    major, minor, patch, pre = m.group(1), m.group(2), m.group(3), m.group(4)
    if pre is None:
        pre_key: tuple[object, ...] = RELEASE
    else:
        try:
            pre_key = (0, identifiers_key(pre))
        except ValueError as e:
            raise invalid(NAME, version, str(e)) from None
    return (int(major), int(minor or 0), int(patch or 0), pre_key)


def is_pseudo_version(version: str) -> bool:
    """Whether ``version`` has the shape of a Go pseudo-version."""
    m = _GO.match(version)
    if m is None or m.group(4) is None:
        return False
    return bool(_PSEUDO_TAIL.search(m.group(4)))


class GoComparator(BaseComparator):
    name = NAME

    def __init__(self, name: str = NAME) -> None:
        super().__init__(parse, name=name)


COMPARATOR = GoComparator()
