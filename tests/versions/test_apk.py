"""apk ordering: vectors from apk-tools' test/version.data, plus validity."""

from __future__ import annotations

import pytest

from hullguard.versions import comparator_for
from hullguard.versions.apk import COMPARATOR as APK

from ._helpers import assert_ascending, assert_relation, parse_table

# Transcribed from apk-tools test/version.data (a representative subset).
VERSION_DATA = parse_table(
    """
    2.34 > 0.1.0_alpha
    23_foo > 4_beta
    1.0 < 1.0bc
    0.1.0_alpha = 0.1.0_alpha
    0.1.0_alpha < 0.1.3_alpha
    0.1.0_alpha2 > 0.1.0_alpha
    0.1.0_alpha < 2.2.39-r1
    2.2.39-r1 > 1.0.4-r3
    1.0.4-r3 < 1.0.4-r4
    1.0.4-r4 < 1.6
    1.0.2 > 0.7-r1
    1.0.0 < 1.0.1
    1.1 > 1.1_alpha1
    1.1_alpha1 < 1.2.1
    1.2.1 > 1.2
    1.2 < 1.3_alpha
    1.3_alpha < 1.3_alpha2
    1.3_alpha8 > 0.6.0
    0.7.0 < 0.8_beta1
    0.8_beta1 < 0.8_beta2
    0.8_beta4 < 4.8-r1
    3.10.18-r1 > 2.3.0b-r1
    2.3.0b-r1 < 2.3.0b-r2
    2.3.0b-r4 > 0.12.1
    0.12.3 > 0.12
    0.12 < 0.13_beta1
    0.13_beta4 < 0.13_beta5
    0.9.12 < 0.9.13
    1.2.11 < 1.2.12.1
    1.2.12.1 < 1.2.13
    0.2.0-r1 = 0.2.0-r1
    0.2.0-r1 < 3.1_p16
    3.1_p16 < 3.1_p17
    3.1_p17 > 1.06-r6
    1.06-r6 < 006
    006 > 1.0.0
    1.2.2-r1 > 1.2.2
    9.3.2-r4 < 9.3.4-r2
    9.3.4-r2 > 9.3.4
    2.16.1-r3 = 2.16.1-r3
    1.0.3-r6 < 1.0.4
    2.59 < 20050718-r1
    20050718-r1 < 20050718-r2
    3.9.8-r5 > 2.01.01_alpha10
    2.01.01_alpha10 > 0.94
    1.0 > 0.99.3.20040818
    1.39 > 1.00_beta2
    1.00_beta2 > 0.9.2
    2.8.9-r1 > 2.8.9
    7.15.1-r1 > 1.02
    1.02 < 1.03-r1
    4.2.52_p2-r1 < 4.2.52_p4-r2
    4.2.52_p4-r2 > 1.02.07
    1.02.07 < 1.02.10-r1
    2.18.3-r10 > 1.05-r18
    1.05-r18 < 1.05-r19
    2.38 < 20050405
    10-r1 > 4
    20060720 > 3.0.20060720
    3.0.20060720 < 20060720
    2.5.1-r8 < 2.5.1a-r1
    1.3.5-r10 > 1.3.5-r8
    20040401 > 2.0.0_rc3-r1
    2.6.15.20060110 < 2.6.16.20060323
    3.0.0-r2 < 021109-r3
    021109-r3 < 20060512
    0.9.16-r1 < 3.9_pre20060124
    1.1.7 < 6b-r7
    0.10.0-r1 > 0.10.0
    0.10.0 < 0.10.1_rc1
    0.9.11 < 394
    1.1a < 1.3a
    1.0-r1 > 0.15.1b
    0.15.1b-r2 > 0.15.1b
    22.7-r1 < 22.7.3-r1
    22.7.3-r1 > 22.7
    22.7 > 2.1_pre20
    2.1_pre20 < 2.1_pre26
    2.10.1 > 02.08.01b
    8.1.2.20050715-r1 < 20030215
    3.81 > 1.6d
    1.6d > 1.2.07.8
    1.2.07.8 < 1.2.12.04
    1.2.12.04 < 1.2.12.05
    1.07-r1 < 1.07.5
    20061003 > 0.1_pre20060810
    0.1_pre20060810 < 0.1_pre20060817
    3.3.17 > 0.59s-r11
    0.59s-r11 < 0.65
    1.60-r12 < 110-r8
    4.01 < 4.20
    4.20 > 0.20070118
    0.20070118 < 0.20070207_rc1
    0.20070207_rc1 < 1.0
    2.3.30-r2 < 3.7_p1
    4.3_p2-r1 < 4.3_p2-r5
    4.4_p1-r6 < 4.5_p1-r1
    4.5_p1-r1 > 4.5_p1
    0.9.8c-r1 < 0.9.8d
    2.2.3-r2 < 013
    013 < 014-r1
    0.1.23 < 5b-r9
    3.2.7 > 0.3.1_rc8
    5.7-r3 > 5.1_p4
    1.7 < 1.7b
    1.7b < 1.8.4-r3
    1.8.5 < 1.8.5_p2
    1.4.9-r2 < 2.9.11_pre20051101-r2
    2.9.11_pre20051101-r3 > 2.9.11_pre20051101
    2.9.11_pre20051101 < 2.9.11_pre20061021-r1
    2.6.1.3-r1 > 2.6.1.3
    1.6.8_p12-r1 > 1.6.8_p9-r2
    2.25b-r5 < 2.25b-r6
    1.4_p12-r2 < 1.4_p12-r5
    0.9.28-r2 < 0.9.28.1
    0.9.28.1 < 087-r1
    104-r11 > 104-r9
    5.52-r1 > 1.2.5_rc2
    20040406-r1 > 2.12r-r4
    2.12r-r4 < 2.12r-r5
    7.0.17 < 7.0.174
    1.1.1-r3 > 0.3.4_pre20061029
    1.2.9.1-r1 > 1.2.9.1
    1.3-r0 < 1.3.1-r0
    1.3_pre1-r1 < 1.3.2
    1.0_p10-r0 > 1.0_p9-r0
    0.1.0_alpha_pre2 < 0.1.0_alpha
    1.0.0_pre20191002222144-r0 < 1.0.0_pre20210530193627-r0
    """
)

# Suffix ladder and the newer commit-hash token, from apk-tools' grammar.
LADDER = [
    "1.0_alpha",
    "1.0_alpha1",
    "1.0_beta",
    "1.0_pre",
    "1.0_rc",
    "1.0_rc2",
    "1.0-r1",
    "1.0_cvs",
    "1.0_svn",
    "1.0_git",
    "1.0_hg",
    "1.0_p1",
    "1.0a",
    "1.0b",
    "1.0.0",
    "1.0.1",
    "1.01",
    "1.1",
]


@pytest.mark.parametrize(("a", "op", "b"), VERSION_DATA)
def test_version_data(a: str, op: str, b: str) -> None:
    assert_relation(APK, a, op, b)


def test_suffix_ladder() -> None:
    assert_ascending(APK, LADDER)


@pytest.mark.parametrize(
    ("a", "op", "b"),
    [
        ("1.0~abc123", ">", "1.0"),
        ("1.0~abc123", "<", "1.0~abc124"),
        ("1.0~abc123-r1", ">", "1.0~abc123"),
        ("1.0~abc123", ">", "1.0-r0"),  # at the same position a hash outranks a revision
        ("1.05", "<", "1.1"),  # leading zero: string comparison with the peer
        ("1.05", ">", "1.0"),
        ("1.010", "<", "1.09"),
        ("1.9", "<", "1.10"),
    ],
)
def test_grammar_cases(a: str, op: str, b: str) -> None:
    assert_relation(APK, a, op, b)


@pytest.mark.parametrize(
    ("a", "op", "b"),
    [
        ("1.0-foo", "<", "1.0"),  # an invalid tail sorts below the end
        ("1.0-foo", "=", "1.0-bar"),  # invalid at the same point: equal
        ("1.0_foo", "<", "1.0"),
        ("abc", "=", "xyz"),
        ("abc", "<", "0"),
        ("1.0.", "<", "1.0"),
    ],
)
def test_invalid_versions_order_like_apk(a: str, op: str, b: str) -> None:
    assert_relation(APK, a, op, b)


@pytest.mark.parametrize("bad", ["", "abc", "1.0-foo", "1.0bc", "1..0", "1.0_foo", "1.0-r", "1.0~", "1.0A", "v1.0"])
def test_invalid(bad: str) -> None:
    APK.key(bad)  # apk compares anything; validity is reported separately
    assert not APK.valid(bad)


@pytest.mark.parametrize("good", ["1.0", "1.2.3_rc1-r0", "2.3.0b-r1", "1.0_alpha_pre2", "1.0~deadbeef-r3", "0"])
def test_valid(good: str) -> None:
    assert APK.valid(good)


def test_registry() -> None:
    for name in ("Alpine", "Alpine:v3.19", "Wolfi", "Chainguard", "apk"):
        assert comparator_for(name) is APK
