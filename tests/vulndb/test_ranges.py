"""Range evaluation, case by case against the OSV schema's evaluation pseudo-code."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hullguard.versions import comparator_for
from hullguard.vulndb.ranges import evaluate, in_range

PYPI = comparator_for("PyPI")
NPM = comparator_for("npm")
DEB = comparator_for("Debian")


def ev(*pairs: tuple[str, str]) -> list[tuple[str, str]]:
    return list(pairs)


def check(comp, version: str, events, versions=()) -> tuple[bool, str]:
    r = evaluate(comp, version, comp.key(version), [("ECOSYSTEM", events)], versions)
    return r.affected, r.fix


@pytest.mark.parametrize("version, affected", [("0.0.1", True), ("1.0.0", True), ("99.0.0", True)])
def test_introduced_zero_alone_means_every_version(version: str, affected: bool) -> None:
    assert check(NPM, version, ev(("introduced", "0")))[0] is affected


@pytest.mark.parametrize("version, affected, fix", [
    ("0.9.0", False, ""), ("1.0.0", True, "1.0.2"), ("1.0.1", True, "1.0.2"), ("1.0.2", False, ""),
    ("2.0.0", False, ""), ("3.0.0", True, "3.2.5"), ("3.2.4", True, "3.2.5"), ("3.2.5", False, ""),
    ("4.0.0", False, ""),
])
def test_multiple_introduced_fixed_pairs(version: str, affected: bool, fix: str) -> None:
    events = ev(("introduced", "1.0.0"), ("fixed", "1.0.2"), ("introduced", "3.0.0"), ("fixed", "3.2.5"))
    assert check(NPM, version, events) == (affected, fix)


def test_unsorted_events_are_sorted_first() -> None:
    events = ev(("fixed", "3.2.5"), ("introduced", "3.0.0"), ("fixed", "1.0.2"), ("introduced", "1.0.0"))
    assert check(NPM, "1.0.1", events) == (True, "1.0.2")
    assert check(NPM, "2.0.0", events) == (False, "")
    assert check(NPM, "3.1.0", events) == (True, "3.2.5")


@pytest.mark.parametrize("version, affected", [("2.1.213", True), ("2.1.214", True), ("2.1.215", False)])
def test_last_affected_is_inclusive(version: str, affected: bool) -> None:
    assert check(NPM, version, ev(("introduced", "0"), ("last_affected", "2.1.214"))) == (affected, "")


@pytest.mark.parametrize("version, affected", [("2.1.213", True), ("2.1.214", False)])
def test_fixed_is_exclusive(version: str, affected: bool) -> None:
    assert check(NPM, version, ev(("introduced", "0"), ("fixed", "2.1.214")))[0] is affected


@pytest.mark.parametrize("version, affected", [("1.0.0", True), ("1.4.0", True), ("1.5.0", False), ("2.0.0", False)])
def test_limit_caps_the_range(version: str, affected: bool) -> None:
    assert check(NPM, version, ev(("introduced", "1.0.0"), ("limit", "1.5.0")))[0] is affected


def test_limit_star_is_infinity_and_multiple_limits_widen() -> None:
    assert check(NPM, "9.0.0", ev(("introduced", "1.0.0"), ("limit", "*")))[0]
    events = ev(("introduced", "1.0.0"), ("limit", "1.5.0"), ("limit", "3.0.0"))
    assert check(NPM, "2.0.0", events)[0]
    assert not check(NPM, "3.0.0", events)[0]


def test_versions_only_record() -> None:
    assert check(PYPI, "1.0", [], versions=["1.0", "1.1"])[0]
    assert check(PYPI, "1.0.0", [], versions=["1.0"])[0]  # PEP 440: 1.0 == 1.0.0
    assert not check(PYPI, "1.2", [], versions=["1.0", "1.1"])[0]


def test_versions_list_adds_to_ranges() -> None:
    r = evaluate(PYPI, "0.5", PYPI.key("0.5"), [("ECOSYSTEM", ev(("introduced", "1.0"), ("fixed", "2.0")))], ["0.5"])
    assert r.affected


def test_git_ranges_are_ignored_but_versions_count() -> None:
    r = evaluate(NPM, "1.0.0", NPM.key("1.0.0"), [("GIT", ev(("introduced", "abc123")))], ["1.0.0"])
    assert r.affected
    r = evaluate(NPM, "1.0.1", NPM.key("1.0.1"), [("GIT", ev(("introduced", "abc123")))], ["1.0.0"])
    assert not r.affected


def test_lowest_fix_above_installed_across_ranges() -> None:
    ranges = [("ECOSYSTEM", ev(("introduced", "0"), ("fixed", "2.0.0"))),
              ("ECOSYSTEM", ev(("introduced", "0"), ("fixed", "1.5.0")))]
    r = evaluate(NPM, "1.0.0", NPM.key("1.0.0"), ranges)
    assert (r.affected, r.fix) == (True, "1.5.0")


def test_dpkg_ordering_with_tilde() -> None:
    events = ev(("introduced", "0"), ("fixed", "3.0.11-1~deb12u2"))
    assert check(DEB, "3.0.11-1~deb12u1", events) == (True, "3.0.11-1~deb12u2")
    assert check(DEB, "3.0.11-1", events)[0] is False  # 3.0.11-1 sorts after ...~deb12u2


def test_unparsable_event_skips_only_that_range() -> None:
    errors: list[str] = []
    ranges = [("ECOSYSTEM", ev(("introduced", "0"), ("fixed", "not a version!!"))),
              ("ECOSYSTEM", ev(("introduced", "1.0"), ("fixed", "1.2")))]
    r = evaluate(PYPI, "1.1", PYPI.key("1.1"), ranges, (), errors)
    assert r.affected and r.fix == "1.2"
    assert len(errors) == 1


def _reference(v: int, events: list[tuple[str, int]]) -> bool:
    """The spec's pseudo-code over integers, kept literal on purpose."""
    limits = [x for k, x in events if k == "limit"]
    if limits and not any(v < x for x in limits):
        return False
    vulnerable = False
    for kind, x in sorted(events, key=lambda e: e[1]):
        if kind == "introduced" and v >= x:
            vulnerable = True
        elif (kind == "fixed" and v >= x) or (kind == "last_affected" and v > x):
            vulnerable = False
    return vulnerable


@given(st.integers(0, 30), st.lists(st.tuples(st.sampled_from(["fixed", "last_affected", "limit"]),
                                              st.integers(1, 30)), max_size=6),
       st.lists(st.integers(0, 30), min_size=1, max_size=3, unique=True))
def test_matches_reference_pseudocode(v: int, others: list[tuple[str, int]], intro: list[int]) -> None:
    # Distinct versions per event, so ties (which the spec leaves unordered) do not arise.
    used = set(intro)
    events = [("introduced", x) for x in intro]
    for kind, x in others:
        if x not in used:
            used.add(x)
            events.append((kind, x))
    as_text = [(k, "0" if (k == "introduced" and x == 0) else f"{x}.0.0") for k, x in events]
    got = in_range(NPM, NPM.key(f"{v}.0.0"), as_text).affected
    assert got == _reference(v, events)
