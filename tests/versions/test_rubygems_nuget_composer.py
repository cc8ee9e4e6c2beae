"""RubyGems (test_gem_version facts), NuGet (NuGet.Versioning comparer facts)
and Composer (VersionParser / version_compare facts)."""

from __future__ import annotations

import pytest

from hullguard.versions import InvalidVersion, comparator_for
from hullguard.versions.composer import COMPARATOR as COMPOSER
from hullguard.versions.composer import normalize as composer_normalize
from hullguard.versions.generic import COMPARATOR as GENERIC
from hullguard.versions.nuget import COMPARATOR as NUGET
from hullguard.versions.rubygems import COMPARATOR as GEM
from hullguard.versions.rubygems import canonical_segments

from ._helpers import assert_ascending, assert_relation

GEM_RELATIONS = [
    ("1.0", "=", "1.0.0"),
    ("1.0", ">", "1.0.a"),
    ("1.8.2", ">", "0.0.0"),
    ("1.8.2", ">", "1.8.2.a"),
    ("1.8.2.b", ">", "1.8.2.a"),
    ("1.8.2.a", "<", "1.8.2"),
    ("1.8.2.a10", ">", "1.8.2.a9"),
    ("", "=", "0"),
    ("   ", "=", "0"),
    ("0.beta.1", "=", "0.0.beta.1"),
    ("0.0.beta", "<", "0.0.beta.1"),
    ("0.0.beta", "<", "0.beta.1"),
    ("5.a", "<", "5.0.0.rc2"),
    ("5.x", ">", "5.0.0.rc2"),
    ("1.2", "=", "1.2"),
    ("1.2", "<", "1.3"),
    ("1.2.b1", "=", "1.2.b.1"),
    ("1.2.pre.1", "=", "1.2.0.pre.1.0"),
    ("1.0", "=", " 1.0 "),
    ("1.0", "=", "\n1.0\n"),
    ("1.freeze.test", "<", "1"),
    ("1.0.0-rc1", "<", "1.0.0"),
    ("1.0.0-1", "<", "1"),
    ("1.A", "<", "1.a"),
    ("1.9.3.alpha.5", "<", "1.9.3"),
    ("1.1.rc10", "<", "1.1"),
    ("2.0.0.rc1", "<", "2.0.0"),
    ("3.2.22.5", ">", "3.2.22"),
]

GEM_SEMVER = ["1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-beta.2", "1.0.0-beta.11", "1.0.0-rc.1", "1.0.0"]


@pytest.mark.parametrize(("a", "op", "b"), GEM_RELATIONS)
def test_gem_relations(a: str, op: str, b: str) -> None:
    assert_relation(GEM, a, op, b)


def test_gem_semver_style() -> None:
    assert_ascending(GEM, GEM_SEMVER)


@pytest.mark.parametrize(
    ("version", "segments"),
    [("1.0.0", [1]), ("1.0.0.a.1.0", [1, "a", 1]), ("1.2.3-1", [1, 2, 3, "pre", 1])],
)
def test_gem_canonical_segments(version: str, segments: list[object]) -> None:
    assert canonical_segments(version) == segments


@pytest.mark.parametrize(
    "bad",
    [
        "junk",
        "1.0\n2.0",
        "1..2",
        "1.2 3.4",
        "an incorrect version",
        "2.3422222.222.222222222.22222.ads0as.dasd0.ddd2222.2.qd3e.",  # CVE-2013-4287 regression shape
        "1.0.",
        "-1",
        "1.0+build",
    ],
)
def test_gem_invalid(bad: str) -> None:
    with pytest.raises(InvalidVersion):
        GEM.key(bad)


NUGET_EQUAL = [
    ("1.0.0", "1.0.0"),
    ("1.0.0-BETA", "1.0.0-beta"),
    ("1.0.0-BETA+AA", "1.0.0-beta+aa"),
    ("1.0.0-BETA.X.y.5.77.0+AA", "1.0.0-beta.x.y.5.77.0+aa"),
    ("1.0", "1.0.0.0"),
    ("1", "1.0.0"),
    ("1.0.0+meta", "1.0.0"),
    ("01.02.03", "1.2.3"),
    ("1.0.0-01", "1.0.0-1"),
]

NUGET_LESS = [
    ("0.0.0", "1.0.0"),
    ("1.0.0", "1.1.0"),
    ("1.0.0", "1.0.1"),
    ("1.999.9999", "2.1.1"),
    ("1.0.0-BETA", "1.0.0-beta2"),
    ("1.0.0-beta+AA", "1.0.0+aa"),
    ("1.0.0-BETA", "1.0.0-beta.1+AA"),
    ("1.0.0-BETA.X.y.5.77.0+AA", "1.0.0-beta.x.y.5.79.0+aa"),
    ("1.0.0-BETA.X.y.5.79.0+AA", "1.0.0-beta.x.y.5.790.0+abc"),
    ("1.0.0", "1.0.0.1"),
    ("1.0.0.1-alpha", "1.0.0.1"),
    ("1.0.0-2", "1.0.0-10"),
    ("1.0.0-10", "1.0.0-a"),
    ("1.0.0-alpha", "1.0.0-alpha.1"),
]


@pytest.mark.parametrize(("a", "b"), NUGET_EQUAL)
def test_nuget_equal(a: str, b: str) -> None:
    assert_relation(NUGET, a, "=", b)


@pytest.mark.parametrize(("a", "b"), NUGET_LESS)
def test_nuget_less(a: str, b: str) -> None:
    assert_relation(NUGET, a, "<", b)


@pytest.mark.parametrize("bad", ["", "1.0.0.0.0", "a.b", "1.0-", "1.0.0-beta..1", "2147483648.0", "-1.0", "1.0.0+"])
def test_nuget_invalid(bad: str) -> None:
    with pytest.raises(InvalidVersion):
        NUGET.key(bad)


COMPOSER_ASCENDING = [
    "1.0.0-dev",
    "1.0.0-alpha1",
    "1.0.0-alpha2",
    "1.0.0-beta1",
    "1.0.0-beta.2",
    "1.0.0-RC1",
    "1.0.0-rc2",
    "1.0.0",
    "1.0.0-p1",
    "1.0.0-patch2",
    "1.0.1",
    "1.1",
    "v2.0.0",
    "2.0.0.1",
]


def test_composer_order() -> None:
    assert_ascending(COMPOSER, COMPOSER_ASCENDING)


@pytest.mark.parametrize(
    ("raw", "normal"),
    [
        ("1.0.0", "1.0.0.0"),
        ("1.2.3.4", "1.2.3.4"),
        ("v1.0.0", "1.0.0.0"),
        ("1.0.0-RC1", "1.0.0.0-RC1"),
        ("1.0.0-rc1", "1.0.0.0-RC1"),
        ("1.0.0-alpha3.1", "1.0.0.0-alpha3.1"),
        ("1.0.0-a", "1.0.0.0-alpha"),
        ("1.0.0-b1", "1.0.0.0-beta1"),
        ("1.0.0-pl3", "1.0.0.0-patch3"),
        ("1.0.0-stable", "1.0.0.0"),
        ("1.0.0-beta.5-dev", "1.0.0.0-beta5-dev"),
        ("1.0.0-dev", "1.0.0.0-dev"),
        ("1.0.0+foo", "1.0.0.0"),
        ("20100102", "20100102"),
        ("2010.01.02", "2010.01.02.0"),
        ("2010-01-02.5", "2010.01.02.5"),
    ],
)
def test_composer_normalize(raw: str, normal: str) -> None:
    assert composer_normalize(raw) == normal


@pytest.mark.parametrize(
    ("a", "op", "b"),
    [
        ("1.0", "=", "1.0.0.0"),
        ("1.0.0-alpha", "=", "1.0.0-a"),
        ("1.0.0-beta", "<", "1.0.0-b0"),
        ("1.0-RC1", "=", "1.0.0.0-rc1"),
        ("1.0.0-RC1-dev", "<", "1.0.0-RC1"),
        ("1.10.0", ">", "1.9.9"),
    ],
)
def test_composer_relations(a: str, op: str, b: str) -> None:
    assert_relation(COMPOSER, a, op, b)


@pytest.mark.parametrize("bad", ["dev-master", "1.x-dev", "1.0.x-dev", "", "foo", "1.0.0-gamma", "1.0.0.0.0"])
def test_composer_invalid(bad: str) -> None:
    with pytest.raises(InvalidVersion):
        COMPOSER.key(bad)


def test_generic_is_approximate() -> None:
    assert GENERIC.approximate
    assert_ascending(GENERIC, ["0.9", "1.0", "1.0.1", "1.2", "1.10", "2"])
    with pytest.raises(InvalidVersion):
        GENERIC.key("...")


def test_registry() -> None:
    assert comparator_for("RubyGems") is GEM
    assert comparator_for("gem") is GEM
    assert comparator_for("NuGet") is NUGET
    assert comparator_for("nuget") is NUGET
    assert comparator_for("Packagist") is COMPOSER
    assert comparator_for("composer") is COMPOSER
    assert comparator_for("Hackage").approximate
