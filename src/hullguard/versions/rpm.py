"""RPM versions: ``rpmvercmp`` and epoch:version-release (EVR) ordering.

``rpmvercmp`` walks both strings segment by segment.  Anything that is not an
ASCII letter, digit, ``~`` or ``^`` only separates segments (so ``2.0`` equals
``2_0`` and non-ASCII text is invisible).  At each position:

* ``~`` sorts before everything, including the end of the string;
* the end of the string sorts next;
* ``^`` sorts after the end but before any further segment;
* an alphabetic segment sorts before a numeric one;
* numeric segments compare as integers (leading zeros ignored), alphabetic
  ones byte-wise.

EVR: a missing epoch is ``0``.  rpm treats a missing release as "matches any
release" when checking dependencies; that relation is not an order, so the
key sorts a missing release before every release (``1.0 < 1.0-0``) and
:func:`evr_matches` offers rpm's dependency relation separately.
"""

from __future__ import annotations

import re

from ._base import BaseComparator, invalid

NAME = "rpm"

_TILDE = (0,)
_END = (1,)
_CARET = (2,)
_ALPHA = 3
_NUM = 4

_SEGMENTS = re.compile(r"(~)|(\^)|([A-Za-z]+)|([0-9]+)")


def vercmp_key(s: str) -> tuple[tuple[object, ...], ...]:
    """Key for one version or release string under ``rpmvercmp``."""
    out: list[tuple[object, ...]] = []
    for m in _SEGMENTS.finditer(s):
        tilde, caret, alpha, digits = m.groups()
        if tilde:
            out.append(_TILDE)
        elif caret:
            out.append(_CARET)
        elif alpha:
            out.append((_ALPHA, alpha))
        else:
            out.append((_NUM, int(digits)))
    out.append(_END)
    return tuple(out)


def vercmp(a: str, b: str) -> int:
    """rpm's ``rpmvercmp``: -1, 0 or 1."""
    if a == b:
        return 0
    ka, kb = vercmp_key(a), vercmp_key(b)
    return (ka > kb) - (ka < kb)


def split_evr(evr: str) -> tuple[int, str, str | None]:
    """(epoch, version, release-or-None) following rpm's ``parseEVR``."""
    s = evr.strip()
    if not s:
        raise invalid(NAME, evr, "empty version")
    i = 0
    while i < len(s) and "0" <= s[i] <= "9":
        i += 1
    if i < len(s) and s[i] == ":":
        epoch = int(s[:i]) if i else 0
        rest = s[i + 1 :]
    else:
        epoch, rest = 0, s
    version, dash, release = rest.rpartition("-")
    if not dash:
        return epoch, rest, None
    if not version:
        raise invalid(NAME, evr, "empty version before the release")
    return epoch, version, release


def parse(evr: str) -> tuple[object, ...]:
    epoch, version, release = split_evr(evr)
    if not version:
        raise invalid(NAME, evr, "empty version")
    rel: tuple[object, ...] = () if release is None else (vercmp_key(release),)
    return (epoch, vercmp_key(version), rel)


def evr_matches(a: str, b: str) -> int:
    """rpm's dependency comparison: a release missing on either side is ignored."""
    ea, va, ra = split_evr(a)
    eb, vb, rb = split_evr(b)
    if ea != eb:
        return -1 if ea < eb else 1
    c = vercmp(va, vb)
    if c or ra is None or rb is None:
        return c
    return vercmp(ra, rb)


class RpmComparator(BaseComparator):
    name = NAME

    def __init__(self, name: str = NAME) -> None:
        super().__init__(parse, name=name)


COMPARATOR = RpmComparator()
