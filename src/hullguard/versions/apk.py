"""Alpine apk versions, ordered as apk-tools' ``apk_version_compare``.

Grammar: ``digits{.digits}[letter]{_suffix[digits]}[~hexhash][-rN]``.
Pre-release suffixes (``_alpha _beta _pre _rc``) sort below the bare version,
post-release ones (``_cvs _svn _git _hg _p``) above.  A dotted number with a
leading zero (``1.05``) is compared as a string against its peer, as Gentoo
does.

apk never refuses to compare: tokenising stops at the first token that does
not fit the grammar, and an invalid tail sorts *below* the end of the string
(``1.0-foo < 1.0``); two versions that go invalid at the same point after
equal prefixes compare equal.  This module reproduces that, so ``key`` accepts
any string (bounded in length) and :meth:`ApkComparator.valid` tells whether
apk would call the version valid.  Wolfi and Chainguard use the same rules.
"""

from __future__ import annotations

import re

from ._base import BaseComparator

NAME = "apk"

# Token types, in apk-tools' order.  When two versions first differ in token
# type, the higher type sorts lower — except that a pre-release suffix sorts
# lowest of all.
_INITIAL_DIGIT, _DIGIT, _LETTER, _SUFFIX, _SUFFIX_NO, _HASH, _REVISION, _END, _INVALID = range(9)

_PRE_SUFFIXES = {"alpha": 0, "beta": 1, "pre": 2, "rc": 3}
_POST_SUFFIXES = {"cvs": 5, "svn": 6, "git": 7, "hg": 8, "p": 9}

# Rank used in keys: larger is greater.  Derived from the type order above.
_RANK = {
    "pre": 0,
    _INVALID: 1,
    _END: 2,
    _REVISION: 3,
    _HASH: 4,
    _SUFFIX_NO: 5,
    "post": 6,
    _LETTER: 7,
    _DIGIT: 8,
    _INITIAL_DIGIT: 9,
}

_DIGITS = re.compile(r"[0-9]*")
_LOWER = re.compile(r"[a-z]*")
_HEX = re.compile(r"[0-9a-f]*")


def _tokens(s: str) -> tuple[list[tuple[object, ...]], bool]:
    """Key elements for ``s`` and whether apk considers it valid."""
    out: list[tuple[object, ...]] = []
    n = len(s)
    m = _DIGITS.match(s, 0)
    assert m is not None
    if not m.group():
        out.append((_RANK[_INVALID],))
        return out, False
    out.append((_RANK[_INITIAL_DIGIT], int(m.group())))
    pos = m.end()
    prev = _INITIAL_DIGIT
    while True:
        if pos >= n:
            out.append((_RANK[_END],))
            return out, True
        ch = s[pos]
        tok = _INVALID
        if "a" <= ch <= "z":
            if prev <= _DIGIT:
                out.append((_RANK[_LETTER], ch))
                pos += 1
                tok = _LETTER
        elif ch == "." or "0" <= ch <= "9":
            if ch == "." and prev <= _DIGIT:
                pos += 1
                tok = _DIGIT
            elif ch != "." and prev == _SUFFIX:
                tok = _SUFFIX_NO
            if tok != _INVALID:
                m = _DIGITS.match(s, pos)
                assert m is not None
                digits = m.group()
                if not digits:
                    tok = _INVALID
                else:
                    pos = m.end()
                    if tok == _DIGIT:
                        # Either side having a leading zero means raw string
                        # comparison; strings starting with '0' sort below every
                        # number without one, so the split below is an order.
                        value: tuple[object, ...] = (0, digits) if digits[0] == "0" else (1, int(digits))
                        out.append((_RANK[_DIGIT], value))
                    else:
                        out.append((_RANK[_SUFFIX_NO], int(digits)))
        elif ch == "_":
            if prev <= _SUFFIX_NO:
                m = _LOWER.match(s, pos + 1)
                assert m is not None
                word = m.group()
                if word in _PRE_SUFFIXES:
                    out.append((_RANK["pre"], _PRE_SUFFIXES[word]))
                    tok = _SUFFIX
                elif word in _POST_SUFFIXES:
                    out.append((_RANK["post"], _POST_SUFFIXES[word]))
                    tok = _SUFFIX
                if tok != _INVALID:
                    pos = m.end()
        elif ch == "~":
            if prev < _HASH:
                m = _HEX.match(s, pos + 1)
                assert m is not None
                if m.group():
                    out.append((_RANK[_HASH], m.group()))
                    pos = m.end()
                    tok = _HASH
        elif ch == "-" and prev < _REVISION and s.startswith("-r", pos):
            m = _DIGITS.match(s, pos + 2)
            assert m is not None
            if m.group():
                out.append((_RANK[_REVISION], int(m.group())))
                pos = m.end()
                tok = _REVISION
        if tok == _INVALID:
            out.append((_RANK[_INVALID],))
            return out, False
        prev = tok


def parse(version: str) -> tuple[tuple[object, ...], ...]:
    return tuple(_tokens(version)[0])


def is_valid(version: str) -> bool:
    return _tokens(version)[1]


class ApkComparator(BaseComparator):
    name = NAME

    def __init__(self, name: str = NAME) -> None:
        super().__init__(parse, name=name)

    def valid(self, version: str) -> bool:
        return super().valid(version) and is_valid(version)


COMPARATOR = ApkComparator()
