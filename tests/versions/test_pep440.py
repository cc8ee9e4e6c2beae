"""PEP 440: the ordering and normalisation examples of the PEP and of
pypa/packaging's test suite, and a cross-check against ``packaging`` when it
is installed (it is a test-time peer only; the comparator does not use it)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hullguard.versions import InvalidVersion, comparator_for
from hullguard.versions.pep440 import COMPARATOR as PEP440
from hullguard.versions.pep440 import normalize

from ._helpers import assert_all_equal, assert_ascending

ASCENDING_SEGMENTS = [
    "1.0.dev456",
    "1.0a1",
    "1.0a2.dev456",
    "1.0a12.dev456",
    "1.0a12",
    "1.0b1.dev456",
    "1.0b2",
    "1.0b2.post345.dev456",
    "1.0b2.post345",
    "1.0b2-346",
    "1.0c1.dev456",
    "1.0c1",
    "1.0rc2",
    "1.0c3",
    "1.0",
    "1.0.post456.dev34",
    "1.0.post456",
    "1.1.dev1",
    "1.2+123abc",
    "1.2+123abc456",
    "1.2+abc",
    "1.2+abc123",
    "1.2+abc123def",
    "1.2+1234.abc",
    "1.2+123456",
    "1.2.r32+123456",
    "1.2.rev33+123456",
]

ASCENDING = ASCENDING_SEGMENTS + ["1!" + v for v in ASCENDING_SEGMENTS]

# PEP 440 "summary of permitted suffixes and relative ordering".
PEP_EXAMPLE = [
    "1.dev0",
    "1.0.dev456",
    "1.0a1",
    "1.0a2.dev456",
    "1.0a12.dev456",
    "1.0a12",
    "1.0b1.dev456",
    "1.0b2",
    "1.0b2.post345.dev456",
    "1.0b2.post345",
    "1.0rc1.dev456",
    "1.0rc1",
    "1.0",
    "1.0+abc.5",
    "1.0+abc.7",
    "1.0+5",
    "1.0.post456.dev34",
    "1.0.post456",
    "1.0.15",
    "1.1.dev1",
]

EQUIVALENT = [
    ["1.0", "1.0.0", "1", "1.0.0.0", "v1.0", "V1.0", " 1.0\n", "0!1.0"],
    ["1.0a1", "1.0alpha1", "1.0.a1", "1.0-a1", "1.0_a.1", "1.0A1", "1.0a01"],
    ["1.0b2", "1.0beta2", "1.0-beta-2", "1.0.b2"],
    ["1.0rc1", "1.0c1", "1.0pre1", "1.0preview1", "1.0-rc-1", "1.0.RC1"],
    ["1.0a0", "1.0a", "1.0alpha"],
    ["1.0.post1", "1.0-1", "1.0post1", "1.0-post1", "1.0.rev1", "1.0r1", "1.0-r-1"],
    ["1.0.post0", "1.0.post", "1.0-post", "1.0.rev"],
    ["1.0.dev0", "1.0.dev", "1.0-dev", "1.0dev0", "1.0_dev_0"],
    ["1.0+ubuntu-1", "1.0+ubuntu.1", "1.0+ubuntu_1", "1.0+UBUNTU.1", "1.0+ubuntu.01"],
]

NORMAL_FORMS = [
    ("1.0alpha1", "1.0a1"),
    ("1.0-Beta-2", "1.0b2"),
    ("1.0c1", "1.0rc1"),
    ("1.0-1", "1.0.post1"),
    ("1.0.rev2", "1.0.post2"),
    ("1.0-dev", "1.0.dev0"),
    ("v1.0", "1.0"),
    ("1.0+Ubuntu-1", "1.0+ubuntu.1"),
    ("01.002", "1.2"),
    ("0!1.0", "1.0"),
    ("2!1.0.preview3.post4.dev5+x.y", "2!1.0rc3.post4.dev5+x.y"),
]


def test_packaging_ordering() -> None:
    assert_ascending(PEP440, ASCENDING)


def test_pep_ordering() -> None:
    assert_ascending(PEP440, PEP_EXAMPLE)


@pytest.mark.parametrize("group", EQUIVALENT)
def test_equivalent_spellings(group: list[str]) -> None:
    assert_all_equal(PEP440, group)


@pytest.mark.parametrize(("raw", "normal"), NORMAL_FORMS)
def test_normalize(raw: str, normal: str) -> None:
    assert normalize(raw) == normal


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "french toast",
        "1.0+",
        "1.0+_foo",
        "1.0+foo&asdf",
        "1.0.",
        "1..0",
        "1.0a1a1",
        "1.0-dev-post",
        "1.0 1",
        "=1.0",
        "1.0++",
        "v",
        "1.0.post1.post2",
        "1.0+foo+bar",
    ],
)
def test_invalid(bad: str) -> None:
    with pytest.raises(InvalidVersion):
        PEP440.key(bad)


def test_registry() -> None:
    assert comparator_for("PyPI") is PEP440
    assert comparator_for("pypi") is PEP440


# --- cross-check against pypa/packaging ---------------------------------

packaging_version = pytest.importorskip("packaging.version")

_num = st.integers(min_value=0, max_value=30).map(str) | st.sampled_from(["00", "007", "10"])
_sep = st.sampled_from(["", ".", "-", "_"])
pep440_strings = st.builds(
    lambda v, epoch, release, pre, post, dev, local: v + epoch + release + pre + post + dev + local,
    st.sampled_from(["", "v"]),
    st.sampled_from(["", "1!", "0!", "2!"]),
    st.lists(_num, min_size=1, max_size=4).map(".".join),
    st.one_of(
        st.just(""),
        st.builds(
            lambda s, w, n: s + w + n,
            _sep,
            st.sampled_from(["a", "b", "rc", "c", "alpha", "beta", "pre", "preview", "A", "RC"]),
            _num | st.just(""),
        ),
    ),
    st.one_of(
        st.just(""),
        _num.map(lambda n: "-" + n),
        st.builds(lambda s, w, n: s + w + n, _sep, st.sampled_from(["post", "rev", "r"]), _num | st.just("")),
    ),
    st.one_of(st.just(""), st.builds(lambda s, n: s + "dev" + n, _sep, _num | st.just(""))),
    st.one_of(
        st.just(""),
        st.lists(st.sampled_from(["1", "01", "abc", "ubuntu", "2", "x9", "10"]), min_size=1, max_size=3).map(
            lambda parts: "+" + ".".join(parts)
        ),
    ),
)


@settings(max_examples=400, deadline=None)
@given(pep440_strings, pep440_strings)
def test_cross_check_with_packaging(a: str, b: str) -> None:
    try:
        pa, pb = packaging_version.Version(a), packaging_version.Version(b)
    except packaging_version.InvalidVersion:
        with pytest.raises(InvalidVersion):
            PEP440.key(a)
            PEP440.key(b)
        return
    expected = (pa > pb) - (pa < pb)
    assert PEP440.compare(a, b) == expected
    assert normalize(a) == str(pa)
