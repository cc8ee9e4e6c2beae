"""The rule table is data with invariants the engine depends on."""

from __future__ import annotations

import re

try:  # Python 3.11+
    import re._parser as sre_parse  # type: ignore[import-not-found]
    from re._constants import MAXREPEAT  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover
    import sre_parse  # type: ignore[no-redef]
    from sre_constants import MAXREPEAT  # type: ignore[no-redef]

import pytest

from hullguard.detect.secrets.rules import RULES, rule_by_id
from hullguard.model import Severity


def test_at_least_100_rules_with_stable_unique_ids() -> None:
    assert len(RULES) >= 100
    ids = [r.id for r in RULES]
    assert len(set(ids)) == len(ids)
    assert all(re.fullmatch(r"HG-SECRET-\d{3}", i) for i in ids)
    assert len({r.slug for r in RULES}) == len(RULES)
    assert rule_by_id("HG-SECRET-001") is RULES[0]


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.id)
def test_rule_metadata_and_pattern(rule) -> None:
    assert rule.title and rule.description and rule.remediation
    assert rule.severity in Severity and rule.severity != Severity.UNKNOWN
    assert all(k == k.lower() and k for k in rule.keywords)
    pattern = re.compile(rule.regex.encode())
    assert 0 <= rule.group <= pattern.groups


def _unbounded(tree) -> bool:
    for op, arg in tree:
        if op in (sre_parse.MAX_REPEAT, sre_parse.MIN_REPEAT):
            _lo, hi, sub = arg
            if hi == MAXREPEAT or _unbounded(sub):
                return True
        elif op == sre_parse.SUBPATTERN:
            if _unbounded(arg[-1]):
                return True
        elif op == sre_parse.BRANCH:
            if any(_unbounded(b) for b in arg[1]):
                return True
        elif op in (sre_parse.ASSERT, sre_parse.ASSERT_NOT) and _unbounded(arg[1]):
            return True
    return False


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.id)
def test_every_repetition_is_bounded(rule) -> None:
    # Unbounded repeats let a hostile multi-megabyte line make re backtrack quadratically.
    assert not _unbounded(sre_parse.parse(rule.regex)), rule.regex


def _class_has_newline(items) -> bool:
    hit = False
    negate = False
    for op, arg in items:
        if op == sre_parse.NEGATE:
            negate = True
        elif op == sre_parse.LITERAL:
            hit |= arg == 10
        elif op == sre_parse.RANGE:
            hit |= arg[0] <= 10 <= arg[1]
        elif op == sre_parse.CATEGORY:
            hit |= arg in (sre_parse.CATEGORY_SPACE, sre_parse.CATEGORY_NOT_DIGIT,
                           sre_parse.CATEGORY_NOT_WORD)
    return hit != negate


def _can_consume_newline(tree) -> bool:
    for op, arg in tree:
        if (op == sre_parse.LITERAL and arg == 10) or (op == sre_parse.NOT_LITERAL and arg != 10):
            return True
        if op == sre_parse.IN and _class_has_newline(arg):
            return True
        if op == sre_parse.CATEGORY and _class_has_newline([(op, arg)]):
            return True
        if op in (sre_parse.MAX_REPEAT, sre_parse.MIN_REPEAT) and _can_consume_newline(arg[2]):
            return True
        if op == sre_parse.SUBPATTERN and _can_consume_newline(arg[-1]):
            return True
        if op == sre_parse.BRANCH and any(_can_consume_newline(b) for b in arg[1]):
            return True
        # Lookarounds (ASSERT, ASSERT_NOT) consume nothing, so they may look at a newline.
    return False


@pytest.mark.parametrize("rule", [r for r in RULES if r.line_local], ids=lambda r: r.id)
def test_line_local_rules_cannot_span_lines(rule) -> None:
    # The hyperscan backend confirms these rules line by line; that is only exact if no match
    # can contain a newline.
    assert not _can_consume_newline(sre_parse.parse(rule.regex)), rule.regex


def test_line_local_check_catches_newlines() -> None:
    for regex in (r"a\sb", r"a[^x]b", r"a\nb", r"a[\s\S]b", r"a\Wb"):
        assert _can_consume_newline(sre_parse.parse(regex)), regex
    assert not _can_consume_newline(sre_parse.parse(r"a[^\s]b(?=\s)[ \t]."))


def test_line_local_matches_contain_a_keyword() -> None:
    # The re backend only confirms line-local rules on lines holding one of their keywords.
    from tests.detect.secrets.corpus import FILES

    text = "\n".join(f.text for f in FILES).encode()
    variants = [text, text.upper(), text.lower()]
    for rule in RULES:
        if not rule.line_local:
            continue
        pattern = re.compile(rule.regex.encode(), re.M | (re.I if rule.ignore_case else 0))
        for data in variants:
            for m in pattern.finditer(data):
                assert any(k.encode() in m.group(0).lower() for k in rule.keywords), (rule.id, m)


def test_catalog_for_rules_cli() -> None:
    from hullguard.detect.secrets.rules import catalog

    entries = catalog()
    assert len(entries) == len(RULES)
    assert entries[0].id == "HG-SECRET-001" and entries[0].remediation
