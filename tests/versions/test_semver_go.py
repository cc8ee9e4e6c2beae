"""SemVer 2.0.0 precedence (semver.org examples) for npm/crates.io/Hex/Pub,
and Go module versions including pseudo-versions."""

from __future__ import annotations

import pytest

from hullguard.versions import InvalidVersion, comparator_for
from hullguard.versions.golang import COMPARATOR as GO
from hullguard.versions.golang import is_pseudo_version
from hullguard.versions.semver import CARGO, NPM, PUB, STRICT

from ._helpers import assert_ascending, assert_relation

# semver.org, section 11.
SEMVER_ORG = [
    "1.0.0-alpha",
    "1.0.0-alpha.1",
    "1.0.0-alpha.beta",
    "1.0.0-beta",
    "1.0.0-beta.2",
    "1.0.0-beta.11",
    "1.0.0-rc.1",
    "1.0.0",
    "2.0.0",
    "2.1.0",
    "2.1.1",
]

MORE = [
    ("1.0.0+build.1", "=", "1.0.0"),
    ("1.0.0-alpha+001", "=", "1.0.0-alpha"),
    ("1.0.0+20130313144700", "=", "1.0.0+exp.sha.5114f85"),
    ("1.0.0-1", "<", "1.0.0-a"),  # numeric identifiers below alphanumeric
    ("1.0.0-2", "<", "1.0.0-10"),  # numeric identifiers compare as numbers
    ("1.0.0-a2", ">", "1.0.0-a10"),  # alphanumeric ones compare in ASCII order
    ("1.0.0-A", "<", "1.0.0-a"),
    ("1.0.0--", "<", "1.0.0-0a"),
    ("1.0.0-x.7.z.92", ">", "1.0.0-x.7.z.9"),
    ("10.0.0", ">", "9.99.99"),
    ("0.0.0", "<", "0.0.1-0"),
    ("1.2.3-rc.1", "<", "1.2.3-rc.1.0"),
]


@pytest.mark.parametrize("comp", [STRICT, NPM, CARGO])
def test_semver_org_precedence(comp: object) -> None:
    assert_ascending(comp, SEMVER_ORG)  # type: ignore[arg-type]


@pytest.mark.parametrize(("a", "op", "b"), MORE)
def test_more(a: str, op: str, b: str) -> None:
    assert_relation(STRICT, a, op, b)


@pytest.mark.parametrize(
    "bad",
    [
        "1",
        "1.2",
        "01.0.0",
        "1.02.0",
        "1.0.0-01",
        "1.0.0-",
        "1.0.0+",
        "1.0.0-a..b",
        "v1.0.0",
        " 1.0.0",
        "1.0.0.0",
        "1.0.0-a_b",
        "a.b.c",
        "",
    ],
)
def test_strict_invalid(bad: str) -> None:
    with pytest.raises(InvalidVersion):
        STRICT.key(bad)


def test_npm_tolerates_v_and_equals() -> None:
    assert NPM.compare("v1.2.3", "1.2.3") == 0
    assert NPM.compare("=1.2.3", "1.2.3") == 0
    assert NPM.compare(" 1.2.3 ", "1.2.3") == 0
    with pytest.raises(InvalidVersion):
        CARGO.key("v1.2.3")


def test_pub_orders_builds() -> None:
    assert PUB.compare("1.0.0+1", "1.0.0") == 1
    assert PUB.compare("1.0.0+2", "1.0.0+10") == -1
    assert STRICT.compare("1.0.0+1", "1.0.0") == 0


GO_ASCENDING = [
    "v0.0.0-20170915032832-14c0d48ead0c",
    "v0.0.0-20191109021931-daa7c04131f5",
    "v0.1.0",
    "v1.0.0-alpha",
    "v1.0.0-rc.1.0.20200101000000-abcdefabcdef",  # pseudo-version after a pre-release tag
    "v1.0.0-rc.2",
    "v1.0.0",
    "v1.2.3",
    "v1.2.4-0.20191109021931-daa7c04131f5",  # pseudo-version after v1.2.3
    "v1.2.4",
    "v2.0.0+incompatible",
    "v2.1.0",
]


def test_go_order() -> None:
    assert_ascending(GO, GO_ASCENDING)


@pytest.mark.parametrize(
    ("a", "op", "b"),
    [
        ("v1", "=", "v1.0.0"),
        ("v1.2", "=", "v1.2.0"),
        ("v2.0.0+incompatible", "=", "v2.0.0"),
        ("1.2.3", "=", "v1.2.3"),  # OSV writes Go versions without the v
        ("v1.2.3-pre", "<", "v1.2.3"),
        ("v1.10.0", ">", "v1.9.9"),
    ],
)
def test_go_relations(a: str, op: str, b: str) -> None:
    assert_relation(GO, a, op, b)


@pytest.mark.parametrize("bad", ["v1.2-pre", "v01.2.3", "v1.2.3-01", "vx", "", "v1.2.3.4", "go1.21"])
def test_go_invalid(bad: str) -> None:
    with pytest.raises(InvalidVersion):
        GO.key(bad)


def test_pseudo_detection() -> None:
    assert is_pseudo_version("v0.0.0-20191109021931-daa7c04131f5")
    assert is_pseudo_version("v1.2.4-0.20191109021931-daa7c04131f5")
    assert is_pseudo_version("v1.2.3-pre.0.20191109021931-daa7c04131f5")
    assert not is_pseudo_version("v1.2.3")
    assert not is_pseudo_version("v1.2.3-rc.1")


def test_registry() -> None:
    assert comparator_for("npm") is NPM
    assert comparator_for("crates.io") is CARGO
    assert comparator_for("cargo") is CARGO
    assert comparator_for("Go") is GO
    assert comparator_for("golang") is GO
    assert comparator_for("Hex").compare("1.0.0-rc.1", "1.0.0") == -1
    assert comparator_for("Pub") is PUB
