"""NuGet versions, ordered as ``NuGet.Versioning.VersionComparer.Default``.

``Major[.Minor[.Patch[.Revision]]][-label(.label)*][+metadata]``: missing
parts are zero (``1.0 == 1.0.0.0``), numbers may carry leading zeros, and a
version with release labels sorts below the same version without.  Labels
compare left to right: numeric ones (those ``int.TryParse`` accepts) as
numbers and below alphanumeric ones, which compare case-insensitively by
ordinal; more labels win when the shared ones are equal.  Metadata is
ignored.
"""

from __future__ import annotations

import re

from ._base import BaseComparator, invalid

NAME = "NuGet"

_INT32_MAX = 2**31 - 1
_LABEL = r"[0-9A-Za-z-]+"
_NUGET = re.compile(
    rf"\s*([0-9]+)(?:\.([0-9]+))?(?:\.([0-9]+))?(?:\.([0-9]+))?"
    rf"(?:-({_LABEL}(?:\.{_LABEL})*))?"
    rf"(?:\+([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?\s*\Z"
)


def parse(version: str) -> tuple[object, ...]:
    m = _NUGET.match(version)
    if m is None:
        raise invalid(NAME, version, "not Major[.Minor[.Patch[.Revision]]][-Release][+Metadata]")
    parts = [int(p) if p is not None else 0 for p in m.groups()[:4]]
    if any(p > _INT32_MAX for p in parts):
        raise invalid(NAME, version, "version part exceeds Int32.MaxValue")
    labels = m.group(5)
    if labels is None:
        release: tuple[object, ...] = (1,)
    else:
        keyed: list[tuple[object, ...]] = []
        for label in labels.split("."):
            if label.isdigit() and int(label) <= _INT32_MAX:
                keyed.append((0, int(label), ""))
            else:
                keyed.append((1, 0, label.upper()))
        release = (0, tuple(keyed))
    return (*parts, release)


class NuGetComparator(BaseComparator):
    name = NAME

    def __init__(self, name: str = NAME) -> None:
        super().__init__(parse, name=name)


COMPARATOR = NuGetComparator()
