"""Classify free-form licence strings as SPDX ids, SPDX expressions or plain names.

Analyzers record licences exactly as packages declare them ("MIT", "Apache 2.0", "GPL-2+ or
Artistic", "(MIT OR Apache-2.0)"); SBOM formats each want the three cases told apart, and both
schemas reject an unknown string where an id is expected.
"""

from __future__ import annotations

import functools
import re
from importlib import resources

_LICENSE_REF = re.compile(r"(?:DocumentRef-[A-Za-z0-9.\-]+:)?LicenseRef-[A-Za-z0-9.\-]+")
_TOKEN = re.compile(r"\s*(\(|\)|[A-Za-z0-9.\-+:]+)")
_OPERATORS = {"AND", "OR", "WITH"}
# Expressions longer than this are not worth parsing: no real licence expression comes close.
_MAX_EXPRESSION = 2000


@functools.cache
def _ids() -> dict[str, str]:
    """Lower-cased id -> canonical id, so "mit" and "apache-2.0" are recognised."""
    text = resources.files("hullguard").joinpath("data/spdx_licenses.txt").read_text(encoding="utf-8")
    out: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            out[line.lower()] = line
    return out


def spdx_id(text: str) -> str | None:
    """The canonical SPDX licence id for ``text``, or None when it is not one."""
    return _ids().get(text.strip().lower())


def _term(token: str) -> str | None:
    if _LICENSE_REF.fullmatch(token):
        return token
    known = spdx_id(token)
    if known is not None:
        return known
    # "GPL-2.0-only+" is not in the list but "id+" (or later) is valid syntax for any listed id.
    if token.endswith("+"):
        known = spdx_id(token[:-1])
        if known is not None:
            return known + "+"
    return None


class _Parser:
    """Recursive descent over the SPDX expression grammar (spec annex D), producing a normalised
    string. Precedence: WITH binds tighter than AND, AND tighter than OR."""

    def __init__(self, tokens: list[str]) -> None:
        self.tokens = tokens
        self.pos = 0
        self.depth = 0

    def peek(self) -> str | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> str:
        tok = self.tokens[self.pos]
        self.pos += 1
        return tok

    def parse(self) -> str | None:
        out = self.or_expr()
        if out is None or self.pos != len(self.tokens):
            return None
        return out

    def or_expr(self) -> str | None:
        left = self.and_expr()
        while left is not None and (self.peek() or "").upper() == "OR":
            self.take()
            right = self.and_expr()
            if right is None:
                return None
            left = f"{left} OR {right}"
        return left

    def and_expr(self) -> str | None:
        left = self.with_expr()
        while left is not None and (self.peek() or "").upper() == "AND":
            self.take()
            right = self.with_expr()
            if right is None:
                return None
            left = f"{left} AND {right}"
        return left

    def with_expr(self) -> str | None:
        starts_group = self.peek() == "("
        left = self.atom()
        # The grammar only allows an exception after a single licence, never after a group.
        if left is not None and not starts_group and (self.peek() or "").upper() == "WITH":
            self.take()
            tok = self.peek()
            exception = spdx_id(tok) if tok is not None else None
            if exception is None:
                return None
            self.take()
            left = f"{left} WITH {exception}"
        return left

    def atom(self) -> str | None:
        tok = self.peek()
        if tok is None:
            return None
        if tok == "(":
            self.depth += 1
            if self.depth > 50:
                return None
            self.take()
            inner = self.or_expr()
            if inner is None or self.peek() != ")":
                return None
            self.take()
            self.depth -= 1
            return f"({inner})"
        if tok == ")" or tok.upper() in _OPERATORS:
            return None
        self.take()
        return _term(tok)


def expression(text: str) -> str | None:
    """``text`` as a normalised SPDX licence expression (canonical ids, upper-case operators),
    or None when it is not a valid expression over known ids and LicenseRefs."""
    if len(text) > _MAX_EXPRESSION:
        return None
    tokens: list[str] = []
    pos = 0
    stripped = text.strip()
    while pos < len(stripped):
        m = _TOKEN.match(stripped, pos)
        if m is None:
            return None
        tokens.append(m.group(1))
        pos = m.end()
    if not tokens:
        return None
    return _Parser(tokens).parse()


def is_compound(expr: str) -> bool:
    return any(tok.upper() in _OPERATORS for tok in expr.replace("(", " ").replace(")", " ").split())


def license_ref(name: str) -> str:
    """A LicenseRef id for a licence that has no SPDX id: only the characters SPDX allows."""
    cleaned = re.sub(r"[^A-Za-z0-9.\-]+", "-", name).strip("-.")
    return "LicenseRef-" + (cleaned or "unknown")
