"""Maven versions, ordered as ``org.apache.maven...ComparableVersion`` (3.x).

The version is lower-cased and split into items on ``.`` and ``-`` and at
every digit/letter transition.  ``-`` and a transition open a nested list, so
``1-1`` is ``[1, [1]]``.  Numbers compare numerically (leading zeros
ignored); words are qualifiers::

    alpha = a < beta = b < milestone = m < rc = cr < snapshot
      < "" = ga = final = release < sp < other words (alphabetical)

(``a``/``b``/``m`` are aliases only when a digit follows).  Trailing "null"
items (``0``, ``""``, empty lists) are dropped, so ``1.0.0 == 1``.  Where one
list is longer, the missing items compare as null: ``1-rc < 1 < 1-sp`` and
``1 < 1.1``.  Between kinds: number > list > word, so ``1.1 > 1-1 > 1-sp``.

The ordering is not a tuple ordering (a list can compare against "nothing"),
so keys are small objects implementing Maven's ``compareTo``.
"""

from __future__ import annotations

import functools
from typing import Union

from ._base import BaseComparator, invalid

NAME = "Maven"

Item = Union[int, str, "MavenList"]

_QUALIFIERS = ("alpha", "beta", "milestone", "rc", "snapshot", "", "sp")
_ALIASES = {"ga": "", "final": "", "release": "", "cr": "rc"}
_SHORT = {"a": "alpha", "b": "beta", "m": "milestone"}
_RELEASE_INDEX = "5"


class MavenList(list[Item]):
    """A (sub)list of version items; a distinct type from plain lists of items."""

    def normalize(self) -> None:
        i = len(self) - 1
        while i >= 0:
            last = self[i]
            if _is_null(last):
                del self[i]
            elif not isinstance(last, MavenList):
                break
            i -= 1


def _is_null(item: Item) -> bool:
    if isinstance(item, MavenList):
        return len(item) == 0
    if isinstance(item, int):
        return item == 0
    return item == ""


@functools.lru_cache(maxsize=4096)
def _comparable_qualifier(q: str) -> str:
    # Maven compares these strings, not indexes: unknown words become "7-word"
    # so they sort after every known qualifier and among themselves by name.
    if q in _QUALIFIERS:
        return str(_QUALIFIERS.index(q))
    return f"{len(_QUALIFIERS)}-{q}"


def _cmp_str(a: str, b: str) -> int:
    return (a > b) - (a < b)


def _compare(a: Item, b: Item | None) -> int:
    """Maven's ``a.compareTo(b)``; ``b is None`` means "no item here"."""
    if isinstance(a, int):
        if b is None:
            return 0 if a == 0 else 1
        if isinstance(b, int):
            return (a > b) - (a < b)
        return 1  # number beats word and list
    if isinstance(a, MavenList):
        if b is None:
            # MNG-6964: the whole list decides, not only its first item.
            for item in a:
                r = _compare(item, None)
                if r:
                    return r
            return 0
        if isinstance(b, int):
            return -1
        if isinstance(b, MavenList):
            n = max(len(a), len(b))
            for i in range(n):
                left = a[i] if i < len(a) else None
                right = b[i] if i < len(b) else None
                # Within max(len) one side is always present.
                r = -_compare(right, None) if left is None else _compare(left, right)  # type: ignore[arg-type]
                if r:
                    return r
            return 0
        return 1  # list beats word
    # a is a word
    if b is None:
        return _cmp_str(_comparable_qualifier(a), _RELEASE_INDEX)
    if isinstance(b, str):
        return _cmp_str(_comparable_qualifier(a), _comparable_qualifier(b))
    return -1


@functools.total_ordering
class MavenKey:
    """Sort key wrapping a parsed item list; compares with Maven's rules."""

    __slots__ = ("items",)

    def __init__(self, items: MavenList) -> None:
        self.items = items

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, MavenKey):
            return NotImplemented
        return _compare(self.items, other.items) == 0

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, MavenKey):
            return NotImplemented
        return _compare(self.items, other.items) < 0

    __hash__ = None  # type: ignore[assignment]  # equality is not structural

    def canonical(self) -> str:
        return _canonical(self.items)

    def __repr__(self) -> str:
        return f"MavenKey({self.canonical()!r})"


def _canonical(items: MavenList) -> str:
    out = ""
    for item in items:
        if out:
            out += "-" if isinstance(item, MavenList) else "."
        out += _canonical(item) if isinstance(item, MavenList) else str(item)
    return out


def _word(text: str, followed_by_digit: bool) -> str:
    if followed_by_digit and text in _SHORT:
        text = _SHORT[text]
    return _ALIASES.get(text, text)


def _item(is_digit: bool, text: str) -> Item:
    return int(text) if is_digit else _word(text, False)


# Every "-" and digit/letter switch nests one list deeper, and comparison
# recurses through the nesting; real versions stay in single digits.
MAX_DEPTH = 100


def parse_items(version: str) -> MavenList:
    v = version.lower()
    root = MavenList()
    current = root
    stack = [root]
    is_digit = False
    start = 0
    for i, c in enumerate(v):
        if c == ".":
            current.append(0 if i == start else _item(is_digit, v[start:i]))
            start = i + 1
        elif c == "-":
            current.append(0 if i == start else _item(is_digit, v[start:i]))
            start = i + 1
            sub = MavenList()
            current.append(sub)
            current = sub
            stack.append(sub)
        elif "0" <= c <= "9":
            if not is_digit and i > start:
                current.append(_word(v[start:i], True))
                start = i
                sub = MavenList()
                current.append(sub)
                current = sub
                stack.append(sub)
            is_digit = True
        else:
            if is_digit and i > start:
                current.append(int(v[start:i]))
                start = i
                sub = MavenList()
                current.append(sub)
                current = sub
                stack.append(sub)
            is_digit = False
    if len(v) > start:
        current.append(_item(is_digit, v[start:]))
    if len(stack) > MAX_DEPTH:
        raise invalid(NAME, version, f"nested more than {MAX_DEPTH} levels deep")
    for lst in reversed(stack):
        lst.normalize()
    return root


def parse(version: str) -> MavenKey:
    if not version.strip():
        raise invalid(NAME, version, "empty version")
    return MavenKey(parse_items(version))


def canonical(version: str) -> str:
    return _canonical(parse_items(version))


class MavenComparator(BaseComparator):
    name = NAME

    def __init__(self, name: str = NAME) -> None:
        super().__init__(parse, name=name)


COMPARATOR = MavenComparator()
