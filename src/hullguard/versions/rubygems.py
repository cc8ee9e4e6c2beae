"""RubyGems versions, ordered as ``Gem::Version#<=>``.

A version is ``N(.X)*`` (segments of digits or letters) with an optional
SemVer-style ``-pre`` tail, which RubyGems rewrites to ``.pre.``.  Segments
are runs of digits (integers) or letters (strings); any letter makes the
version a pre-release because a string segment sorts below every number,
including the implicit ``0`` of a missing segment.  Trailing zeros are
insignificant in both the release part and the pre-release part
(``1.0.0.a.1.0 == 1.a.1``).  An empty or blank string is version ``0``.
"""

from __future__ import annotations

import re

from ._base import BaseComparator, invalid

NAME = "RubyGems"

_PATTERN = re.compile(r"[0-9]+(?:\.[0-9a-zA-Z]+)*(?:-[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?\Z")
_SEGMENT = re.compile(r"[0-9]+|[a-zA-Z]+")
# Ruby's String#strip: whitespace and NUL.
_STRIP = " \t\n\v\f\r\0"

# Element ranks: a string segment < the end (an endless run of zeros) < a
# positive number.
_STR, _END, _INT = 0, 1, 2


def canonical_segments(version: str) -> list[int | str]:
    s = version.strip(_STRIP)
    if not s:
        s = "0"
    if not _PATTERN.match(s):
        raise invalid(NAME, version, "Malformed version number string")
    s = s.replace("-", ".pre.")
    segments: list[int | str] = [int(t) if t[0].isdigit() else t for t in _SEGMENT.findall(s)]
    first_str = next((i for i, seg in enumerate(segments) if isinstance(seg, str)), len(segments))
    release, pre = segments[:first_str], segments[first_str:]
    while release and release[-1] == 0:
        release.pop()
    while pre and pre[-1] == 0:
        pre.pop()
    return release + pre


def parse(version: str) -> tuple[tuple[object, ...], ...]:
    """Key: runs of zeros are folded into the element that follows them.

    Gem pads the shorter version with zeros, so ``[1, 0, "a"]`` against
    ``[1]`` is decided by ``"a"`` against ``0``.  Folding each zero run into
    the next non-zero element keeps that decision local to one tuple element:
    for a number, fewer leading zeros means larger; for a string, more means
    larger (it is compared against a padding zero and loses).
    """
    out: list[tuple[object, ...]] = []
    zeros = 0
    for seg in canonical_segments(version):
        if seg == 0:
            zeros += 1
            continue
        if isinstance(seg, int):
            out.append((_INT, -zeros, seg))
        else:
            out.append((_STR, zeros, seg))
        zeros = 0
    out.append((_END,))
    return tuple(out)


class RubyGemsComparator(BaseComparator):
    name = NAME

    def __init__(self, name: str = NAME) -> None:
        super().__init__(parse, name=name)


COMPARATOR = RubyGemsComparator()
