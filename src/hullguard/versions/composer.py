"""Composer (Packagist) versions: Composer's normalisation, then PHP's
``version_compare`` on the normalised form, as Composer itself does.

Normalisation turns ``v1.2-beta.3`` into ``1.2.0.0-beta3``: an optional
``v``, up to four numeric parts padded to four (date-like versions such as
``20230131`` are kept as they are), a stability suffix (``a``/``alpha``,
``b``/``beta``, ``RC``, ``p``/``pl``/``patch``, ``stable``) with an optional
number, and an optional ``-dev``.  Build metadata after ``+`` is dropped.

``version_compare`` then orders::

    dev < alpha < beta < RC < (release) < patch

Branch names (``dev-main``, ``1.x-dev``) have no place in that order and are
rejected.
"""

from __future__ import annotations

import re

from ._base import BaseComparator, invalid

NAME = "Packagist"

_MODIFIER = r"[._-]?(?:(stable|beta|b|rc|alpha|a|patch|pl|p)((?:[.-]?[0-9]+)*+)?)?([.-]?dev)?"
_CLASSIC = re.compile(r"v?([0-9]{1,5})(\.[0-9]+)?(\.[0-9]+)?(\.[0-9]+)?" + _MODIFIER + r"\Z", re.IGNORECASE)
_DATE = re.compile(r"v?([0-9]{4}(?:[.:-]?[0-9]{2}){1,6}(?:[.:-]?[0-9]{1,3}){0,2})" + _MODIFIER + r"\Z", re.IGNORECASE)

_EXPAND = {
    "a": "alpha",
    "alpha": "alpha",
    "b": "beta",
    "beta": "beta",
    "rc": "RC",
    "p": "patch",
    "pl": "patch",
    "patch": "patch",
}

# PHP's special version forms, matched by prefix in this order.
_SPECIAL = (
    ("dev", 0),
    ("alpha", 1),
    ("a", 1),
    ("beta", 2),
    ("b", 2),
    ("RC", 3),
    ("rc", 3),
    ("#", 4),
    ("pl", 5),
    ("p", 5),
)
_NUMBER_ORDER = 4
_END = (_NUMBER_ORDER, -1)
_PHP_SPECIAL = re.compile(r"[-_+]")
_PHP_TRANSITION = re.compile(r"(?<=[0-9])(?=[^0-9.])|(?<=[^0-9.])(?=[0-9])")
_DATE_SEPARATORS = re.compile(r"[.:-]")


def normalize(version: str) -> str:
    """Composer's ``VersionParser::normalize`` for non-branch versions."""
    s = version.strip()
    plus = s.find("+")
    if plus > 0:
        s = s[:plus]
    if not s:
        raise invalid(NAME, version, "empty version")
    if s.lower().startswith("dev-") or s.lower().endswith(".x-dev") or s.lower().endswith("x-dev"):
        raise invalid(NAME, version, "branch versions are not ordered")
    m = _CLASSIC.match(s)
    if m:
        nums = [m.group(1)] + [(g[1:] if g else "0") for g in m.group(2, 3, 4)]
        base = ".".join(nums)
        stability, number, dev = m.group(5, 6, 7)
    else:
        m = _DATE.match(s)
        if not m:
            raise invalid(NAME, version, "not a Composer version")
        base = _DATE_SEPARATORS.sub(".", m.group(1))
        stability, number, dev = m.group(2, 3, 4)
    if stability and stability.lower() != "stable":
        base += "-" + _EXPAND[stability.lower()] + (number or "").lstrip(".-")
    if dev:
        base += "-dev"
    return base


def _special_order(part: str) -> int:
    for name, order in _SPECIAL:
        if part.startswith(name):
            return order
    return -1


def php_version_key(version: str) -> tuple[tuple[int, int], ...]:
    """Key reproducing PHP ``version_compare`` on a canonicalised string."""
    canon = _PHP_SPECIAL.sub(".", version)
    canon = _PHP_TRANSITION.sub(".", canon)
    out: list[tuple[int, int]] = []
    for part in canon.split("."):
        if not part:
            continue
        if part.isdigit():
            out.append((_NUMBER_ORDER, int(part)))
        else:
            out.append((_special_order(part), 0))
    out.append(_END)
    return tuple(out)


def parse(version: str) -> tuple[tuple[int, int], ...]:
    return php_version_key(normalize(version))


class ComposerComparator(BaseComparator):
    name = NAME

    def __init__(self, name: str = NAME) -> None:
        super().__init__(parse, name=name)


COMPARATOR = ComposerComparator()
