"""Fallback ordering for ecosystems without a dedicated comparator.

Digit runs compare numerically, letter runs case-insensitively, and
everything else only separates.  It orders the common ``1.2.10 > 1.2.9``
correctly but knows nothing of an ecosystem's pre-release words, so the
comparator is flagged ``approximate`` and matches made with it should be
reported as such.
"""

from __future__ import annotations

import re

from ._base import BaseComparator, invalid

NAME = "generic"

_TOKENS = re.compile(r"[0-9]+|[^\W\d_]+")


def parse(version: str) -> tuple[tuple[int, int, str], ...]:
    tokens = _TOKENS.findall(version)
    if not tokens:
        raise invalid(NAME, version, "no digits or letters")
    return tuple((1, int(t), "") if "0" <= t[0] <= "9" else (0, 0, t.casefold()) for t in tokens)


class GenericComparator(BaseComparator):
    name = NAME
    approximate = True

    def __init__(self, name: str = NAME) -> None:
        super().__init__(parse, name=name)


COMPARATOR = GenericComparator()
