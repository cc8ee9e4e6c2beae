from __future__ import annotations

import datetime as dt

import pytest

from hullguard.model import HullguardError
from hullguard.policy.ignore import apply_ignores, load_ignore_file, parse_ignore
from tests.policy.conftest import secret, vuln

TODAY = dt.date(2026, 6, 15)


def _apply(text: str, findings, today=TODAY):
    return apply_ignores(findings, parse_ignore(text), today=today)


def test_loads_entries_from_file(write):
    path = write(".hullguardignore", """
ignore:
  - id: CVE-2024-0001
    package: openssl
    path: var/lib/dpkg/*
    reason: patched in our base image build
    expires: 2026-12-31
  - id: HG-aws-access-key
    reason: test fixture key
""")
    rules = load_ignore_file(path)
    assert [r.id for r in rules] == ["CVE-2024-0001", "HG-aws-access-key"]
    assert rules[0].expires == dt.date(2026, 12, 31)
    assert rules[0].source == str(path) and rules[0].index == 1
    assert rules[1].package == "" and rules[1].expires is None


@pytest.mark.parametrize("rule_id", ["CVE-2024-0001", "cve-2024-0001", "GHSA-aaaa-bbbb-cccc", "ghsa-AAAA-bbbb-cccc"])
def test_matches_rule_id_or_alias_case_insensitively(rule_id):
    res = _apply(f"ignore:\n  - id: {rule_id}\n    reason: r\n", [vuln()])
    assert not res.kept and len(res.suppressed) == 1
    assert res.suppressed[0][1].id == rule_id


def test_other_id_is_kept():
    res = _apply("ignore:\n  - id: CVE-2024-9999\n    reason: r\n", [vuln()])
    assert res.kept and not res.suppressed


@pytest.mark.parametrize(
    ("package", "suppressed"),
    [
        ("openssl", True),
        ("libssl3", False),
        ("pkg:deb/debian/openssl", True),  # any version
        ("pkg:deb/debian/openssl@3.0.11-1~deb12u2", True),  # qualifiers on the finding ignored
        ("pkg:deb/debian/openssl@3.0.11-1~deb12u1", False),
        ("pkg:deb/ubuntu/openssl", False),
        ("pkg:rpm/debian/openssl", False),
    ],
)
def test_package_by_name_or_purl(package, suppressed):
    res = _apply(f"ignore:\n  - id: CVE-2024-0001\n    package: '{package}'\n    reason: r\n", [vuln()])
    assert bool(res.suppressed) is suppressed


def test_package_never_matches_a_finding_without_one():
    res = _apply("ignore:\n  - id: HG-aws-access-key\n    package: openssl\n    reason: r\n", [secret()])
    assert res.kept


@pytest.mark.parametrize(
    ("pattern", "suppressed"),
    [
        ("app/config/*.py", True),
        ("/app/config/settings.py", True),  # a leading slash in the pattern is tolerated
        ("app/*", True),  # fnmatch: '*' crosses directory separators
        ("app/config/*.yaml", False),
        ("other/**", False),
    ],
)
def test_path_glob(pattern, suppressed):
    res = _apply(f"ignore:\n  - id: HG-aws-access-key\n    path: '{pattern}'\n    reason: r\n", [secret()])
    assert bool(res.suppressed) is suppressed


def test_path_glob_against_finding_with_leading_slash():
    res = _apply("ignore:\n  - id: HG-aws-access-key\n    path: etc/*\n    reason: r\n", [secret(path="/etc/shadow")])
    assert res.suppressed


def test_all_given_conditions_must_hold():
    text = "ignore:\n  - id: CVE-2024-0001\n    package: openssl\n    path: usr/lib/*\n    reason: r\n"
    assert _apply(text, [vuln()]).kept  # path differs
    assert _apply(text, [vuln(path="usr/lib/x")]).suppressed


@pytest.mark.parametrize(
    ("today", "suppressed", "expired"),
    [
        (dt.date(2026, 6, 14), True, False),
        (dt.date(2026, 6, 15), True, False),  # the expiry day itself still suppresses
        (dt.date(2026, 6, 16), False, True),
    ],
)
def test_expiry_boundary(today, suppressed, expired):
    text = "ignore:\n  - id: CVE-2024-0001\n    reason: r\n    expires: 2026-06-15\n"
    res = _apply(text, [vuln()], today=today)
    assert bool(res.suppressed) is suppressed
    assert bool(res.expired) is expired
    assert len(res.kept) + len(res.suppressed) == 1


def test_expired_rules_are_reported_even_when_unmatched_and_others_still_apply():
    text = """
ignore:
  - id: CVE-2000-0001
    reason: old
    expires: 2020-01-01
  - id: CVE-2024-0001
    reason: old too
    expires: 2020-01-01
  - id: GHSA-aaaa-bbbb-cccc
    reason: current
"""
    res = _apply(text, [vuln()])
    assert [r.id for r in res.expired] == ["CVE-2000-0001", "CVE-2024-0001"]
    assert res.suppressed[0][1].reason == "current"


def test_default_today_is_utc_date():
    far_future = "ignore:\n  - id: CVE-2024-0001\n    reason: r\n    expires: 2999-01-01\n"
    assert apply_ignores([vuln()], parse_ignore(far_future)).suppressed
    past = "ignore:\n  - id: CVE-2024-0001\n    reason: r\n    expires: 2001-01-01\n"
    assert apply_ignores([vuln()], parse_ignore(past)).kept


@pytest.mark.parametrize("text", ["", "ignore:\n", "ignore: []\n", "# only a comment\n"])
def test_empty_files_ignore_nothing(text):
    assert parse_ignore(text) == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("ignore: [\n", "not valid YAML"),
        ("- id: CVE-1\n", "expected a mapping"),
        ("ignores: []\n", "unknown top-level key"),
        ("ignore: CVE-1\n", "'ignore' must be a list"),
        ("ignore:\n  - CVE-1\n", "ignore entry 1: must be a mapping"),
        ("ignore:\n  - id: CVE-1\n", "ignore entry 1: missing 'reason'"),
        ("ignore:\n  - id: CVE-1\n    reason: '  '\n", "'reason' must not be empty"),
        ("ignore:\n  - reason: r\n", "missing 'id'"),
        ("ignore:\n  - id: [CVE-1]\n    reason: r\n", "'id' must be a string"),
        ("ignore:\n  - id: CVE-1 CVE-2\n    reason: r\n", "single identifier"),
        ("ignore:\n  - id: CVE-1\n    reason: r\n    expiry: 2026-01-01\n", "unknown key(s) expiry"),
        ("ignore:\n  - id: CVE-1\n    reason: r\n    expires: 2026-02-30\n", "'expires' must be a date"),
        ("ignore:\n  - id: CVE-1\n    reason: r\n    expires: 31/12/2026\n", "'expires' must be a date"),
        ("ignore:\n  - id: CVE-1\n    reason: r\n    expires: 2026-1-1\n", "'expires' must be a date"),
        ("ignore:\n  - id: CVE-1\n    reason: r\n    package: 'pkg:'\n", "not a valid package URL"),
        ("ignore:\n  - id: CVE-1\n    reason: r\n  - id: CVE-2\n", "ignore entry 2: missing 'reason'"),
    ],
)
def test_bad_input_is_one_line_error_naming_file_and_entry(write, text, message):
    path = write("bad.yaml", text)
    with pytest.raises(HullguardError) as err:
        load_ignore_file(path)
    text_out = str(err.value)
    assert "\n" not in text_out
    assert text_out.startswith(str(path))
    assert message in text_out


def test_alias_bomb_is_refused():
    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
    for i in range(1, 9):
        bomb += f"{chr(97 + i)}: &{chr(97 + i)} [" + ", ".join([f"*{chr(96 + i)}"] * 10) + "]\n"
    with pytest.raises(HullguardError, match="not valid YAML"):
        parse_ignore(bomb, "bomb.yaml")


def test_missing_file(tmp_path):
    with pytest.raises(HullguardError, match="cannot read ignore file"):
        load_ignore_file(tmp_path / "nope")
