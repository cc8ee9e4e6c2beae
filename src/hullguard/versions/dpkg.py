"""Debian package versions (Debian Policy 5.6.12, dpkg's ``verrevcmp``).

``[epoch:]upstream[-revision]``: epochs compare numerically, then upstream and
revision are compared with the same algorithm — alternating runs of
non-digits (compared character by character with letters before
non-letters and ``~`` before everything, even the end of the string) and runs
of digits (compared numerically).

Acceptance follows ``dpkg --compare-versions``: what dpkg rejects as an error
(empty version, bad epoch, empty revision, embedded whitespace) raises
:class:`InvalidVersion`; what dpkg merely warns about (upstream not starting
with a digit, unusual characters) still gets dpkg's ordering, but
:meth:`DpkgComparator.valid` reports it as not policy-conformant.
"""

from __future__ import annotations

import re

from ._base import BaseComparator, invalid

NAME = "dpkg"
_INT_MAX = 2**31 - 1
_SPACE = " \t\n\r\v\f"


def _weight_table() -> dict[str, tuple[int, ...]]:
    table: dict[str, tuple[int, ...]] = {}
    for code in range(128):
        ch = chr(code)
        if ch.isascii() and ch.isalpha():
            table[ch] = (code,)
        elif ch == "~":
            table[ch] = (-1,)
        elif code:
            table[ch] = (code + 256,)
    return table


_WEIGHTS = _weight_table()
_RUNS = re.compile(r"([^0-9]*)([0-9]*)")
_UPSTREAM_OK = re.compile(r"[0-9][A-Za-z0-9.+~:-]*\Z")
_REVISION_OK = re.compile(r"[A-Za-z0-9.+~]*\Z")


def _weights(run: str) -> tuple[int, ...]:
    out: list[int] = []
    for ch in run:
        w = _WEIGHTS.get(ch)
        if w is None:
            # dpkg works on bytes with a signed ``char``: a byte >= 0x80 is
            # negative, and ``c + 256`` lands it back on its unsigned value,
            # i.e. above letters but below ASCII punctuation.
            out.extend(ch.encode("utf-8", "surrogatepass"))
        else:
            out.extend(w)
    out.append(0)  # the end of a run weighs like a digit or the end of string
    return tuple(out)


def part_key(part: str) -> tuple[object, ...]:
    """Key for one upstream or revision string under ``verrevcmp``.

    The key alternates (non-digit weights, digit value).  Comparing two parts
    pads the shorter with empty runs, so trailing empty pairs are dropped and a
    terminal empty run is appended: a following ``~`` then sorts below it and
    anything else above it, exactly as dpkg does.
    """
    pairs: list[tuple[tuple[int, ...], int]] = []
    for m in _RUNS.finditer(part):
        letters, digits = m.group(1), m.group(2)
        if not letters and not digits:
            break
        pairs.append((_weights(letters), int(digits) if digits else 0))
    # Only the first pair can have an empty non-digit run, so after trimming
    # the terminal (0,) can only ever meet a non-empty run — except at index
    # 0, which is why the first pair is always kept.
    while len(pairs) > 1 and pairs[-1] == ((0,), 0):
        pairs.pop()
    if not pairs:
        pairs.append(((0,), 0))
    flat: list[object] = []
    for weights, number in pairs:
        flat.append(weights)
        flat.append(number)
    flat.append((0,))
    return tuple(flat)


def split(version: str) -> tuple[int, str, str]:
    """Split into (epoch, upstream, revision) with dpkg's error rules."""
    s = version.strip(_SPACE)
    if not s:
        raise invalid(NAME, version, "version string is empty")
    if any(c in _SPACE for c in s):
        raise invalid(NAME, version, "version string has embedded spaces")
    epoch_text, colon, rest = s.partition(":")
    if colon:
        if not epoch_text:
            raise invalid(NAME, version, "epoch in version is empty")
        if not (epoch_text.isascii() and epoch_text.isdigit()):
            raise invalid(NAME, version, "epoch in version is not number")
        epoch = int(epoch_text)
        if epoch > _INT_MAX:
            raise invalid(NAME, version, "epoch in version is too big")
        if not rest:
            raise invalid(NAME, version, "nothing after colon in version number")
    else:
        epoch, rest = 0, s
    upstream, hyphen, revision = rest.rpartition("-")
    if not hyphen:
        upstream, revision = rest, ""
    elif not revision:
        raise invalid(NAME, version, "revision number is empty")
    if not upstream:
        raise invalid(NAME, version, "version number is empty")
    return epoch, upstream, revision


def parse(version: str) -> tuple[object, ...]:
    epoch, upstream, revision = split(version)
    return (epoch, part_key(upstream), part_key(revision))


class DpkgComparator(BaseComparator):
    name = NAME

    def __init__(self, name: str = NAME) -> None:
        super().__init__(parse, name=name)

    def valid(self, version: str) -> bool:
        """Policy-conformant: parses, and dpkg would not even warn about it."""
        if not super().valid(version):
            return False
        _, upstream, revision = split(version)
        return bool(_UPSTREAM_OK.match(upstream)) and bool(_REVISION_OK.match(revision))


def compare(a: str, b: str) -> int:
    return COMPARATOR.compare(a, b)


COMPARATOR = DpkgComparator()
