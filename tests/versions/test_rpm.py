"""rpm ordering: the rpmvercmp vectors from rpm's test suite (tests/rpmvercmp.at),
including the tilde and caret cases, plus EVR handling."""

from __future__ import annotations

import pytest

from hullguard.versions import InvalidVersion, comparator_for
from hullguard.versions.rpm import COMPARATOR as RPM
from hullguard.versions.rpm import evr_matches, vercmp

from ._helpers import assert_ascending, assert_relation

# (a, b, rpmvercmp(a, b)) as published in rpm's test suite.
RPMVERCMP = [
    ("1.0", "1.0", 0),
    ("1.0", "2.0", -1),
    ("2.0", "1.0", 1),
    ("2.0.1", "2.0.1", 0),
    ("2.0", "2.0.1", -1),
    ("2.0.1", "2.0", 1),
    ("2.0.1a", "2.0.1a", 0),
    ("2.0.1a", "2.0.1", 1),
    ("2.0.1", "2.0.1a", -1),
    ("5.5p1", "5.5p1", 0),
    ("5.5p1", "5.5p2", -1),
    ("5.5p2", "5.5p1", 1),
    ("5.5p10", "5.5p10", 0),
    ("5.5p1", "5.5p10", -1),
    ("5.5p10", "5.5p1", 1),
    ("10xyz", "10.1xyz", -1),
    ("10.1xyz", "10xyz", 1),
    ("xyz10", "xyz10", 0),
    ("xyz10", "xyz10.1", -1),
    ("xyz10.1", "xyz10", 1),
    ("xyz.4", "xyz.4", 0),
    ("xyz.4", "8", -1),
    ("8", "xyz.4", 1),
    ("xyz.4", "2", -1),
    ("2", "xyz.4", 1),
    ("5.5p2", "5.6p1", -1),
    ("5.6p1", "5.5p2", 1),
    ("5.6p1", "6.5p1", -1),
    ("6.5p1", "5.6p1", 1),
    ("6.0.rc1", "6.0", 1),
    ("6.0", "6.0.rc1", -1),
    ("10b2", "10a1", 1),
    ("10a2", "10b2", -1),
    ("1.0aa", "1.0aa", 0),
    ("1.0a", "1.0aa", -1),
    ("1.0aa", "1.0a", 1),
    ("10.0001", "10.0001", 0),
    ("10.0001", "10.1", 0),
    ("10.1", "10.0001", 0),
    ("10.0001", "10.0039", -1),
    ("10.0039", "10.0001", 1),
    ("4.999.9", "5.0", -1),
    ("5.0", "4.999.9", 1),
    ("20101121", "20101121", 0),
    ("20101121", "20101122", -1),
    ("20101122", "20101121", 1),
    ("2_0", "2_0", 0),
    ("2.0", "2_0", 0),
    ("2_0", "2.0", 0),
    # RhBug:178798: separators alone are all equal
    ("a", "a", 0),
    ("a+", "a+", 0),
    ("a+", "a_", 0),
    ("a_", "a+", 0),
    ("+a", "+a", 0),
    ("+a", "_a", 0),
    ("_a", "+a", 0),
    ("+_", "+_", 0),
    ("_+", "+_", 0),
    ("_+", "_+", 0),
    ("+", "_", 0),
    ("_", "+", 0),
    # tilde sorts before everything
    ("1.0~rc1", "1.0~rc1", 0),
    ("1.0~rc1", "1.0", -1),
    ("1.0", "1.0~rc1", 1),
    ("1.0~rc1", "1.0~rc2", -1),
    ("1.0~rc2", "1.0~rc1", 1),
    ("1.0~rc1~git123", "1.0~rc1~git123", 0),
    ("1.0~rc1~git123", "1.0~rc1", -1),
    ("1.0~rc1", "1.0~rc1~git123", 1),
    # caret sorts after the end but before anything else
    ("1.0^", "1.0^", 0),
    ("1.0^", "1.0", 1),
    ("1.0", "1.0^", -1),
    ("1.0^git1", "1.0^git1", 0),
    ("1.0^git1", "1.0", 1),
    ("1.0", "1.0^git1", -1),
    ("1.0^git1", "1.0^git2", -1),
    ("1.0^git2", "1.0^git1", 1),
    ("1.0^git1", "1.01", -1),
    ("1.01", "1.0^git1", 1),
    ("1.0^20160101", "1.0^20160101", 0),
    ("1.0^20160101", "1.0.1", -1),
    ("1.0.1", "1.0^20160101", 1),
    ("1.0^20160101^git1", "1.0^20160101^git1", 0),
    ("1.0^20160102", "1.0^20160101^git1", 1),
    ("1.0^20160101^git1", "1.0^20160102", -1),
    ("1.0~rc1^git1", "1.0~rc1^git1", 0),
    ("1.0~rc1^git1", "1.0~rc1", 1),
    ("1.0~rc1", "1.0~rc1^git1", -1),
    ("1.0^git1~pre", "1.0^git1~pre", 0),
    ("1.0^git1", "1.0^git1~pre", 1),
    ("1.0^git1~pre", "1.0^git1", -1),
    # documented oddities: non-ASCII text is a separator
    ("1.1.\u03b1", "1.1.\u03b2", 0),
    ("1.1.\u03b1\u03b1", "1.1.\u03b1", 0),
]


@pytest.mark.parametrize(("a", "b", "expected"), RPMVERCMP)
def test_rpmvercmp(a: str, b: str, expected: int) -> None:
    assert vercmp(a, b) == expected
    # As whole EVRs (no release) the order is the same.
    op = "<=>"[expected + 1]
    assert_relation(RPM, a, op, b)


EVR = [
    ("1:1.0-1", ">", "2.0-1"),
    ("0:1.0-1", "=", "1.0-1"),
    ("1.0-1", "<", "1.0-2"),
    ("1.0-1.el9", "<", "1.0-1.el9_1"),
    ("1.0-1.el8", "<", "1.0-1.el9"),
    ("2.0-1.fc38", ">", "1.99-5.fc38"),
    ("1.0-10", ">", "1.0-9"),
    ("1.0", "<", "1.0-0"),  # missing release sorts first in the key order
    ("3:1.0-1", ">", "2:5.0-1"),
    ("1.0-1.el9~bootstrap", "<", "1.0-1.el9"),
    ("5.14.0-362.8.1.el9_3", "<", "5.14.0-362.13.1.el9_3"),
    ("2.28-225.el9", "<", "2.28-225.el9_3.1"),
    ("1.1.1k-7.el8_6", "<", "1.1.1k-9.el8_7"),
]


@pytest.mark.parametrize(("a", "op", "b"), EVR)
def test_evr(a: str, op: str, b: str) -> None:
    assert_relation(RPM, a, op, b)


def test_missing_release_matches_any_release_in_dependency_sense() -> None:
    assert evr_matches("1.0", "1.0-5") == 0
    assert evr_matches("1.0-4", "1.0-5") == -1
    assert evr_matches("1:1.0", "1.0-5") == 1


def test_ascending() -> None:
    assert_ascending(
        RPM,
        ["1.0~alpha", "1.0~rc1", "1.0", "1.0^git1", "1.0a", "1.0.1", "1.1", "1:0.1"],
    )


@pytest.mark.parametrize("bad", ["", "   ", "1:-1"])
def test_invalid(bad: str) -> None:
    with pytest.raises(InvalidVersion):
        RPM.key(bad)


def test_registry() -> None:
    names = ("Red Hat", "Rocky Linux", "AlmaLinux:9", "openSUSE", "SUSE:Linux Enterprise Server 15", "Mageia", "rpm")
    for name in names:
        assert comparator_for(name) is RPM
