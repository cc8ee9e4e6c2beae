"""Maven ComparableVersion orderings from maven-artifact's ComparableVersionTest."""

from __future__ import annotations

import pytest

from hullguard.versions import InvalidVersion, comparator_for
from hullguard.versions.maven import COMPARATOR as MAVEN
from hullguard.versions.maven import canonical

from ._helpers import assert_all_equal, assert_ascending, assert_relation

QUALIFIER_ORDER = [
    "1-alpha2snapshot",
    "1-alpha2",
    "1-alpha-123",
    "1-beta-2",
    "1-beta123",
    "1-m2",
    "1-m11",
    "1-rc",
    "1-cr2",
    "1-rc123",
    "1-SNAPSHOT",
    "1",
    "1-sp",
    "1-sp2",
    "1-sp123",
    "1-abc",
    "1-def",
    "1-pom-1",
    "1-1-snapshot",
    "1-1",
    "1-2",
    "1-123",
]

NUMBER_ORDER = [
    "2.0",
    "2-1",
    "2.0.a",
    "2.0.0.a",
    "2.0.2",
    "2.0.123",
    "2.1.0",
    "2.1-a",
    "2.1b",
    "2.1-c",
    "2.1-1",
    "2.1.0.1",
    "2.2",
    "2.123",
    "11.a2",
    "11.a11",
    "11.b2",
    "11.b11",
    "11.m2",
    "11.m11",
    "11",
    "11.a",
    "11b",
    "11c",
    "11m",
]

EQUAL_PAIRS = [
    ("1", "1"),
    ("1", "1.0"),
    ("1", "1.0.0"),
    ("1.0", "1.0.0"),
    ("1", "1-0"),
    ("1", "1.0-0"),
    ("1.0", "1.0-0"),
    ("1a", "1-a"),
    ("1a", "1.0-a"),
    ("1a", "1.0.0-a"),
    ("1.0a", "1-a"),
    ("1.0.0a", "1-a"),
    ("1x", "1-x"),
    ("1x", "1.0-x"),
    ("1x", "1.0.0-x"),
    ("1.0x", "1-x"),
    ("1.0.0x", "1-x"),
    ("1ga", "1"),
    ("1release", "1"),
    ("1final", "1"),
    ("1cr", "1rc"),
    ("1a1", "1-alpha-1"),
    ("1b2", "1-beta-2"),
    ("1m3", "1-milestone-3"),
    ("1X", "1x"),
    ("1A", "1a"),
    ("1B", "1b"),
    ("1M", "1m"),
    ("1Ga", "1"),
    ("1GA", "1"),
    ("1RELEASE", "1"),
    ("1release", "1"),
    ("1RELeaSE", "1"),
    ("1Final", "1"),
    ("1FinaL", "1"),
    ("1FINAL", "1"),
    ("1Cr", "1Rc"),
    ("1cR", "1rC"),
    ("1m3", "1Milestone3"),
    ("1m3", "1MileStone3"),
    ("1m3", "1MILESTONE3"),
    ("1-abcdefghijklmnopqrstuvwxyz", "1-ABCDEFGHIJKLMNOPQRSTUVWXYZ"),
]

LESS_PAIRS = [
    ("1", "2"),
    ("1.5", "2"),
    ("1", "2.5"),
    ("1.0", "1.1"),
    ("1.1", "1.2"),
    ("1.0.0", "1.1"),
    ("1.0.1", "1.1"),
    ("1.1", "1.2.0"),
    ("1.0-alpha-1", "1.0"),
    ("1.0-alpha-1", "1.0-alpha-2"),
    ("1.0-alpha-1", "1.0-beta-1"),
    ("1.0-beta-1", "1.0-SNAPSHOT"),
    ("1.0-SNAPSHOT", "1.0"),
    ("1.0-alpha-1-SNAPSHOT", "1.0-alpha-1"),
    ("1.0", "1.0-1"),
    ("1.0-1", "1.0-2"),
    ("1.0.0", "1.0-1"),
    ("2.0-1", "2.0.1"),
    ("2.0.1-klm", "2.0.1-lmn"),
    ("2.0.1", "2.0.1-xyz"),
    ("2.0.1", "2.0.1-123"),
    ("2.0.1-xyz", "2.0.1-123"),
    # MNG-5568: transitivity with an unusual qualifier in the middle
    ("6.1.0rc3", "6.1.0"),
    ("6.1.0rc3", "6.1H.5-beta"),
    ("6.1.0", "6.1H.5-beta"),
    # MNG-6572: numbers beyond int and long
    ("20190126.230843", "1234567890.12345"),
    ("1234567890.12345", "123456789012345.1H.5-beta"),
    ("123456789012345.1H.5-beta", "12345678901234567890.1H.5-beta"),
    ("20190126.230843", "12345678901234567890.1H.5-beta"),
    # MNG-6964: a qualifier list starting with 0 is not the release
    ("1-0.alpha", "1"),
    ("1-0.beta", "1"),
    ("1-0.alpha", "1-0.beta"),
    # common real-world shapes
    ("1.0.0.RELEASE", "1.0.1.RELEASE"),
    ("5.3.0.M1", "5.3.0.RC1"),
    ("5.3.0.RC1", "5.3.0"),
    ("2.12.7", "2.12.7.1"),
    ("31.1-android", "31.1-jre"),
    ("1.0-SNAPSHOT", "1.0-sp"),
    ("9.4.50.v20221201", "9.4.51.v20230217"),
]


def test_qualifier_order() -> None:
    assert_ascending(MAVEN, QUALIFIER_ORDER)


def test_number_order() -> None:
    assert_ascending(MAVEN, NUMBER_ORDER)


@pytest.mark.parametrize(("a", "b"), EQUAL_PAIRS)
def test_equal(a: str, b: str) -> None:
    assert_relation(MAVEN, a, "=", b)


@pytest.mark.parametrize(("a", "b"), LESS_PAIRS)
def test_less(a: str, b: str) -> None:
    assert_relation(MAVEN, a, "<", b)


def test_leading_zeroes() -> None:
    assert_all_equal(MAVEN, ["0" * n + "1" for n in range(19)])
    assert_all_equal(MAVEN, ["0" * n for n in range(1, 20)])


@pytest.mark.parametrize(
    ("version", "canon"),
    [
        ("1.0.0", "1"),
        ("1-SNAPSHOT", "1-snapshot"),
        ("1.0-alpha-1", "1-alpha-1"),
        ("1.0.0a1", "1-alpha-1"),
        ("1.0-0", "1"),
        ("2.0.1-xyz", "2.0.1-xyz"),
    ],
)
def test_canonical(version: str, canon: str) -> None:
    assert canonical(version) == canon


def test_empty_is_invalid() -> None:
    with pytest.raises(InvalidVersion):
        MAVEN.key("")


def test_registry() -> None:
    assert comparator_for("Maven") is MAVEN
    assert comparator_for("maven") is MAVEN
