"""dpkg ordering: Debian Policy 5.6.12 examples, dpkg's own comparison
vectors, and a cross-check against the real ``dpkg --compare-versions``."""

from __future__ import annotations

import random
import shutil
import subprocess

import pytest

from hullguard.versions import InvalidVersion, comparator_for
from hullguard.versions.dpkg import COMPARATOR as DPKG

from ._helpers import assert_ascending, assert_relation, parse_table

# Facts from Debian Policy 5.6.12 and dpkg's version-comparison tests.
VECTORS = parse_table(
    """
    1.0 = 1.0
    1.0 = 1.0-0          # a missing revision is the empty string, equal to 0
    0:1.0 = 1.0          # a missing epoch is 0
    1:0 > 0:9999
    1:1.0 > 1.0
    2:0.1 > 1:9.9
    0 < 1
    0 < 0.1
    1.0 < 1.1
    1.9 < 1.10
    1.0.1 > 1.0
    1.0 < 1.0.0
    1.0 < 1.0a           # letters sort after the end of string
    1.0a < 1.0b
    1.0A < 1.0a          # ASCII order among letters
    1.0z < 1.0+          # letters sort before non-letters
    1.0+ < 1.0.
    1.0a < 1.0.
    1.0~ < 1.0           # tilde sorts before anything, even the end
    1.0~~ < 1.0~
    1.0~~ < 1.0~~a
    1.0~~a < 1.0~
    1.0~ < 1.0a
    1.0~rc1 < 1.0
    1.0~rc1 < 1.0~rc2
    1.0~beta < 1.0~rc
    1.0~rc1-1 < 1.0-1
    1.0-1 < 1.0-1+b1     # binNMU
    1.0-1+b1 < 1.0-2
    1.0-1~bpo1 < 1.0-1   # backport
    1.0-1 < 1.0-1.1      # NMU
    1.0-1ubuntu1 > 1.0-1
    1.0-1ubuntu1 < 1.0-2
    1.0-1build1 < 1.0-1ubuntu1
    2.30-0ubuntu1 > 2.3-0ubuntu1
    001 = 1              # digit runs compare numerically
    1.001 = 1.1
    1.02 > 1.1
    1.0-010 = 1.0-10
    1:1.0-1 = 1:1.0-1
    0:0-0 = 0
    0:0 = 0
    0 = 00
    1-1 < 1-2
    1.2.3 > 1.2-3
    1.2+dfsg-1 > 1.2-1
    1.2~dfsg-1 < 1.2-1
    7.6p2-4 > 7.6-0
    1.0.3-3 > 1.0-1
    1.3 > 1.2.2-2
    1.3 > 1.2.2
    0-pre = 0-pre
    0-pre < 0-pree
    1.1.6r2-2 > 1.1.6r-1
    2.6b2-1 > 2.6b-2
    98.1p5-1 < 98.1-pre2-b6-2
    0.4a6-2 > 0.4-1
    1:3.0.5-2 < 1:3.0.5.1
    10.3 < 10.3a
    10a < 10.
    2:1.0 > 1:9
    2.0.7pre1-4 < 2.0.7r-1
    0.2-1 = 0.2-1
    1:1.0-1 > 1.0-1
    2.3.1-1 < 2.3.1-2
    1.0 > 1.0~0
    1.2.3~rc1~git5 < 1.2.3~rc1
    1:2.0~ < 1:2.0
    """
)

ASCENDING = [
    "0:0~~",
    "0~",
    "0",
    "0a",
    "0.1~~",
    "0.1~~a",
    "0.1~",
    "0.1",
    "0.1a",
    "0.1+",
    "0.1.0",
    "0.2",
    "0.10",
    "1.0~alpha1",
    "1.0~beta1",
    "1.0~rc1",
    "1.0",
    "1.0-0.1",
    "1.0-1~bpo10+1",
    "1.0-1",
    "1.0-1+b1",
    "1.0-1+deb12u1",
    "1.0-1.1",
    "1.0-2",
    "1.0+dfsg-1",
    "1.0.1",
    "1:0.1",
    "2:0",
]


@pytest.mark.parametrize(("a", "op", "b"), VECTORS)
def test_vectors(a: str, op: str, b: str) -> None:
    assert_relation(DPKG, a, op, b)


def test_ascending_chain() -> None:
    assert_ascending(DPKG, ASCENDING)


@pytest.mark.parametrize(
    "bad",
    ["", "   ", "1.0 2", ":1.0", "a:1.0", "-1:1.0", "1:", "1.0-", "-1", "99999999999:1", "1:-1"],
)
def test_invalid(bad: str) -> None:
    with pytest.raises(InvalidVersion):
        DPKG.key(bad)
    assert not DPKG.valid(bad)


def test_whitespace_trimmed() -> None:
    assert DPKG.compare(" 1.0-1 \n", "1.0-1") == 0


@pytest.mark.parametrize("warned", ["a1.0", "1.0_1", "1.0-1_1", "1.0@"])
def test_dpkg_warnings_still_order_but_are_not_valid(warned: str) -> None:
    DPKG.key(warned)
    assert not DPKG.valid(warned)


@pytest.mark.parametrize("good", ["1.0", "1:2.3~rc1+dfsg-4ubuntu0.1", "0", "2:1.2.3-4.5~bpo11+1"])
def test_valid(good: str) -> None:
    assert DPKG.valid(good)


def test_registry_names() -> None:
    for name in ("Debian", "Debian:12", "Ubuntu", "Ubuntu:22.04:LTS", "deb"):
        assert comparator_for(name) is DPKG


# --- cross-check against the real dpkg -------------------------------------

_DPKG = shutil.which("dpkg")


def _random_version(rng: random.Random) -> str:
    chars = "0123456789" * 3 + ".~+abzAZ"
    upstream = rng.choice("0123456789") + "".join(rng.choice(chars) for _ in range(rng.randint(0, 7)))
    if rng.random() < 0.25:
        upstream = f"{rng.randint(0, 3)}:{upstream}"
    if rng.random() < 0.6:
        upstream += "-" + "".join(rng.choice("0123456789.~+ab") for _ in range(rng.randint(1, 5)))
    return upstream


def _dpkg_compare(a: str, b: str) -> int:
    def holds(op: str) -> bool:
        return subprocess.run([_DPKG, "--compare-versions", a, op, b], capture_output=True).returncode == 0  # type: ignore[list-item]

    if holds("lt"):
        return -1
    return 0 if holds("eq") else 1


def _pairs() -> list[tuple[str, str]]:
    rng = random.Random(20240611)
    pairs = []
    for _ in range(300):
        a = _random_version(rng)
        if rng.random() < 0.4:
            # Near neighbours exercise the tilde/end-of-string rules.
            b = a + rng.choice(["~", "~~", "a", ".", "+", "0", ".0", "~a", "-0", "-1"])
            if "-" in a and b.endswith(("-0", "-1")):
                b = a + "0"
        else:
            b = _random_version(rng)
        pairs.append((a, b))
    return pairs


@pytest.mark.skipif(_DPKG is None, reason="dpkg is not installed")
def test_cross_check_with_dpkg() -> None:
    mismatches = []
    for a, b in _pairs() + [(a, b) for a, _, b in VECTORS]:
        ours = DPKG.compare(a, b)
        theirs = _dpkg_compare(a, b)
        if ours != theirs:
            mismatches.append((a, b, ours, theirs))
    assert not mismatches, mismatches[:10]
