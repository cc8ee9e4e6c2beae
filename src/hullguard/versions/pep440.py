"""Python package versions under PEP 440 (normalisation and ordering).

``[N!]N(.N)*[{a|b|rc}N][.postN][.devN][+local]`` with PEP 440's lenient
spellings: case-insensitive, optional leading ``v``, ``alpha/beta/c/pre/
preview`` for pre-releases, ``rev/r`` and a bare ``-N`` for post-releases,
``-``/``_``/``.`` separators (or none) and implicit ``0`` numbers.

Ordering within one release (``1.0``, trailing zeros insignificant)::

    1.0.dev0 < 1.0a1.dev0 < 1.0a1 < 1.0a1.post1.dev0 < 1.0a1.post1 < 1.0b1
    < 1.0rc1 < 1.0 < 1.0+local < 1.0.post1.dev0 < 1.0.post1

A local label sorts after the same public version; its segments compare
numerically when both are numbers, and a number outranks a word.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from ._base import BaseComparator, invalid

NAME = "PyPI"

# One regex in verbose form; every repetition is over a disjoint character
# class, so matching is linear in the input length.
_PEP440 = re.compile(
    r"""
    \s*v?
    (?:(?P<epoch>[0-9]+)!)?
    (?P<release>[0-9]+(?:\.[0-9]+)*)
    (?:[-_.]?(?P<pre_l>alpha|a|beta|b|preview|pre|c|rc)[-_.]?(?P<pre_n>[0-9]+)?)?
    (?:
        -(?P<post_implicit>[0-9]+)
      | [-_.]?(?P<post_l>post|rev|r)[-_.]?(?P<post_n>[0-9]+)?
    )?
    (?:[-_.]?(?P<dev_l>dev)[-_.]?(?P<dev_n>[0-9]+)?)?
    (?:\+(?P<local>[a-z0-9]+(?:[-_.][a-z0-9]+)*))?
    \s*\Z
    """,
    re.VERBOSE | re.IGNORECASE,
)

_PRE_RANK = {"a": 0, "b": 1, "rc": 2}
_PRE_SPELLING = {"alpha": "a", "a": "a", "beta": "b", "b": "b", "c": "rc", "pre": "rc", "preview": "rc", "rc": "rc"}

_NEG_INF = (0,)
_POS_INF = (2,)


class Parsed(NamedTuple):
    epoch: int
    release: tuple[int, ...]
    pre: tuple[str, int] | None
    post: int | None
    dev: int | None
    local: tuple[int | str, ...] | None

    def normalized(self) -> str:
        out = f"{self.epoch}!" if self.epoch else ""
        out += ".".join(str(n) for n in self.release)
        if self.pre is not None:
            out += f"{self.pre[0]}{self.pre[1]}"
        if self.post is not None:
            out += f".post{self.post}"
        if self.dev is not None:
            out += f".dev{self.dev}"
        if self.local is not None:
            out += "+" + ".".join(str(s) for s in self.local)
        return out


def parse_version(version: str) -> Parsed:
    m = _PEP440.match(version)
    if m is None:
        raise invalid(NAME, version, "does not match PEP 440")
    g = m.groupdict()
    pre = None
    if g["pre_l"]:
        pre = (_PRE_SPELLING[g["pre_l"].lower()], int(g["pre_n"] or 0))
    post = None
    if g["post_implicit"] is not None:
        post = int(g["post_implicit"])
    elif g["post_l"]:
        post = int(g["post_n"] or 0)
    dev = int(g["dev_n"] or 0) if g["dev_l"] else None
    local = None
    if g["local"]:
        local = tuple(int(seg) if seg.isdigit() else seg for seg in re.split(r"[-_.]", g["local"].lower()))
    return Parsed(
        epoch=int(g["epoch"] or 0),
        release=tuple(int(n) for n in g["release"].split(".")),
        pre=pre,
        post=post,
        dev=dev,
        local=local,
    )


def normalize(version: str) -> str:
    """The PEP 440 normal form, e.g. ``1.0-Alpha-1`` -> ``1.0a1``."""
    return parse_version(version).normalized()


def parse(version: str) -> tuple[object, ...]:
    p = parse_version(version)
    release = list(p.release)
    while len(release) > 1 and release[-1] == 0:
        release.pop()
    # A dev release of a final release (1.0.dev0) sorts before its
    # pre-releases; otherwise "no pre-release" sorts after all of them.
    if p.pre is None:
        pre_key: tuple[object, ...] = _NEG_INF if (p.post is None and p.dev is not None) else _POS_INF
    else:
        pre_key = (1, _PRE_RANK[p.pre[0]], p.pre[1])
    post_key = _NEG_INF if p.post is None else (1, p.post)
    dev_key = _POS_INF if p.dev is None else (1, p.dev)
    if p.local is None:
        local_key: tuple[object, ...] = _NEG_INF
    else:
        local_key = (
            1,
            tuple((1, s, "") if isinstance(s, int) else (0, 0, s) for s in p.local),
        )
    return (p.epoch, tuple(release), pre_key, post_key, dev_key, local_key)


class Pep440Comparator(BaseComparator):
    name = NAME

    def __init__(self, name: str = NAME) -> None:
        super().__init__(parse, name=name)


COMPARATOR = Pep440Comparator()
