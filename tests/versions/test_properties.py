"""Properties every comparator must have: a total order over its grammar,
keys consistent with compare, and bounded, crash-free handling of hostile
input."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hullguard.versions import MAX_VERSION_LENGTH, Comparator, InvalidVersion, UnknownEcosystem, comparator_for
from hullguard.versions.apk import COMPARATOR as APK
from hullguard.versions.composer import COMPARATOR as COMPOSER
from hullguard.versions.dpkg import COMPARATOR as DPKG
from hullguard.versions.generic import COMPARATOR as GENERIC
from hullguard.versions.golang import COMPARATOR as GO
from hullguard.versions.maven import COMPARATOR as MAVEN
from hullguard.versions.nuget import COMPARATOR as NUGET
from hullguard.versions.pep440 import COMPARATOR as PEP440
from hullguard.versions.rpm import COMPARATOR as RPM
from hullguard.versions.rubygems import COMPARATOR as GEM
from hullguard.versions.semver import NPM, PUB, STRICT


def _join(parts: list[str], sep: str = "") -> str:
    return sep.join(parts)


_n = st.integers(min_value=0, max_value=12).map(str) | st.sampled_from(["0", "00", "01", "10", "123456789012"])
_word = st.sampled_from(["a", "b", "rc", "alpha", "beta", "pre", "dev", "p", "git", "z", "A", "snapshot", "sp"])

dpkg_versions = st.builds(
    lambda epoch, up, rev: epoch + up + rev,
    st.sampled_from(["", "0:", "1:", "2:"]),
    st.builds(
        lambda d, rest: d + rest, st.sampled_from("0123456789"), st.text(alphabet="0123456789.~+aAzZ", max_size=8)
    ),
    st.one_of(st.just(""), st.text(alphabet="0123456789.~+ab", min_size=1, max_size=5).map(lambda r: "-" + r)),
)
rpm_versions = st.builds(
    lambda epoch, v, rel: epoch + v + rel,
    st.sampled_from(["", "0:", "1:"]),
    st.text(alphabet="0123456789ab.~^_", min_size=1, max_size=8).filter(lambda s: s.strip()),
    st.one_of(st.just(""), st.text(alphabet="0123456789.~^el", max_size=5).map(lambda r: "-" + r)),
)
_apk_suffix = st.builds(
    lambda w, n: "_" + w + n,
    st.sampled_from(["alpha", "beta", "pre", "rc", "cvs", "svn", "git", "hg", "p"]),
    st.sampled_from(["", "1", "20"]),
)
apk_versions = st.one_of(
    st.builds(
        lambda nums, letter, sufs, h, rev: nums + letter + sufs + h + rev,
        st.lists(_n, min_size=1, max_size=4).map(lambda xs: ".".join(xs)),
        st.sampled_from(["", "a", "b", "z"]),
        st.lists(_apk_suffix, max_size=2).map(_join),
        st.sampled_from(["", "~abc", "~0f1"]),
        st.sampled_from(["", "-r0", "-r1", "-r10"]),
    ),
    st.text(alphabet="0123456789.abr_~-", max_size=10),  # including invalid ones: apk orders those too
)
_ident = st.one_of(
    _n.filter(lambda s: s == "0" or not s.startswith("0")),
    st.sampled_from(["alpha", "beta", "rc", "x-y", "A"]),
)
_core = st.tuples(_n, _n, _n).filter(lambda t: all(p == "0" or not p.startswith("0") for p in t)).map(".".join)
semver_versions = st.builds(
    lambda core, pre, build: core + pre + build,
    _core,
    st.one_of(st.just(""), st.lists(_ident, min_size=1, max_size=3).map(lambda xs: "-" + ".".join(xs))),
    st.sampled_from(["", "+build", "+1.2", "+001"]),
)
go_versions = st.one_of(
    semver_versions.map(lambda v: "v" + v),
    st.builds(
        lambda core, ts, h: f"v{core}-{ts}-{h}",
        _core,
        st.sampled_from(["20190101000000", "20200101000000", "0.20200101000000", "pre.0.20190101000000"]),
        st.just("abcdefabcdef"),
    ),
    st.sampled_from(["v1", "v1.2", "v2.0.0+incompatible"]),
)
pep440_versions = st.builds(
    lambda epoch, rel, pre, post, dev, local: epoch + rel + pre + post + dev + local,
    st.sampled_from(["", "1!"]),
    st.lists(_n, min_size=1, max_size=3).map(".".join),
    st.sampled_from(["", "a1", "b", "rc2", "c1", ".alpha"]),
    st.sampled_from(["", ".post1", "-2", ".rev"]),
    st.sampled_from(["", ".dev0", "dev3"]),
    st.sampled_from(["", "+abc", "+1", "+abc.2", "+01"]),
)
maven_versions = st.lists(
    st.one_of(_n, _word, st.sampled_from(["ga", "final", "release", "cr", "m", "x", "jre"])),
    min_size=1,
    max_size=5,
).flatmap(
    lambda parts: st.lists(st.sampled_from([".", "-", ""]), min_size=len(parts) - 1, max_size=len(parts) - 1).map(
        lambda seps: parts[0] + "".join(s + p for s, p in zip(seps, parts[1:], strict=True))
    )
)
gem_versions = st.builds(
    lambda head, rest, pre: head + rest + pre,
    _n,
    st.lists(st.one_of(_n, _word.filter(lambda w: w.isalpha())), max_size=4).map(
        lambda xs: "".join("." + x for x in xs)
    ),
    st.sampled_from(["", "-1", "-rc.1", "-beta"]),
)
nuget_versions = st.builds(
    lambda parts, pre, meta: parts + pre + meta,
    st.lists(_n.filter(lambda s: len(s) < 10), min_size=1, max_size=4).map(".".join),
    st.one_of(
        st.just(""),
        st.lists(st.one_of(_n, st.sampled_from(["beta", "BETA", "rc", "a-b"])), min_size=1, max_size=3).map(
            lambda xs: "-" + ".".join(xs)
        ),
    ),
    st.sampled_from(["", "+meta"]),
)
composer_versions = st.builds(
    lambda v, nums, stab, dev: v + nums + stab + dev,
    st.sampled_from(["", "v"]),
    st.lists(_n.filter(lambda s: len(s) <= 5), min_size=1, max_size=4).map(".".join),
    st.sampled_from(["", "-alpha", "-a1", "-beta2", "-RC1", "-rc", "-p1", "-patch", "-pl2", "-stable"]),
    st.sampled_from(["", "-dev"]),
)
generic_versions = st.text(alphabet="0123456789.-abcXYZ~", min_size=1, max_size=10).filter(
    lambda s: any(c.isalnum() for c in s)
)

CASES: list[tuple[Comparator, Any]] = [
    (DPKG, dpkg_versions),
    (RPM, rpm_versions),
    (APK, apk_versions),
    (STRICT, semver_versions),
    (NPM, semver_versions),
    (PUB, semver_versions),
    (GO, go_versions),
    (PEP440, pep440_versions),
    (MAVEN, maven_versions),
    (GEM, gem_versions),
    (NUGET, nuget_versions),
    (COMPOSER, composer_versions),
    (GENERIC, generic_versions),
]
IDS = [f"{c.name}-{i}" for i, (c, _) in enumerate(CASES)]


def _sign(x: Any, y: Any) -> int:
    return (x > y) - (x < y)


@pytest.mark.parametrize(("comp", "strategy"), CASES, ids=IDS)
def test_total_order(comp: Comparator, strategy: Any) -> None:
    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
    @given(strategy, strategy, strategy)
    def check(a: str, b: str, c: str) -> None:
        assert comp.valid(a) or comp is APK  # the generators stay inside the grammar
        assert comp.compare(a, a) == 0
        ab, bc, ac = comp.compare(a, b), comp.compare(b, c), comp.compare(a, c)
        assert ab == -comp.compare(b, a)
        assert _sign(comp.key(a), comp.key(b)) == ab
        if ab <= 0 and bc <= 0:
            assert ac <= 0, (a, b, c)
        if ab == 0 and bc == 0:
            assert ac == 0, (a, b, c)
        ordered = sorted([c, b, a], key=comp.key)
        assert comp.compare(ordered[0], ordered[1]) <= 0 <= comp.compare(ordered[2], ordered[1])

    check()


ALL = [DPKG, RPM, APK, STRICT, NPM, GO, PEP440, MAVEN, GEM, NUGET, COMPOSER, GENERIC]


@pytest.mark.parametrize("comp", ALL, ids=[c.name for c in ALL])
def test_arbitrary_text_is_invalid_or_ordered(comp: Comparator) -> None:
    @settings(max_examples=200, deadline=None)
    @given(st.text(max_size=40), st.text(alphabet="0123456789.-~^_+:ab", max_size=40))
    def check(a: str, b: str) -> None:
        for v in (a, b):
            try:
                k = comp.key(v)
            except InvalidVersion:
                assert not comp.valid(v)
                continue
            assert comp.compare(v, v) == 0
            assert _sign(k, comp.key(v)) == 0

    check()


HOSTILE = [
    "1" * 10_000,
    "1." * 5_000,
    "a" * 10_000,
    "1" + ".0" * 511,
    "0" * (MAX_VERSION_LENGTH - 1) + "!",
    "1" + "-1" * 511,
    "1.0" + "a1" * 510,
    "1" + "." * 1_000 + "x",
    "v" + "1." * 500 + "a",
    "1.0-" + "a-" * 509,
    "1!" + "1." * 500 + "+",
    "1.0.0-" + "a." * 508 + "!",
    "1" + "_p" * 500 + "x",
    "1.0" + "~" * 1000,
    "\x00\x01\xff\ud800\U0001f600",
    "1.0\x00",
    "\uff11.\uff10",  # fullwidth digits
]


@pytest.mark.parametrize("comp", ALL, ids=[c.name for c in ALL])
def test_hostile_input_is_bounded(comp: Comparator) -> None:
    for text in HOSTILE:
        # Length is capped and every regex is linear, so these return at once;
        # speed itself is measured in bench/, not asserted here.
        try:
            first = comp.key(text)
        except InvalidVersion as e:
            assert comp.name in str(e)
        else:
            assert _sign(first, comp.key(text)) == 0


@pytest.mark.parametrize("comp", ALL, ids=[c.name for c in ALL])
def test_non_str_is_invalid(comp: Comparator) -> None:
    for value in (None, 1, b"1.0", 1.0):
        with pytest.raises(InvalidVersion):
            comp.key(value)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "name",
    [
        "Debian",
        "Debian:12",
        "Ubuntu:22.04:LTS",
        "Alpine:v3.19",
        "Wolfi",
        "Chainguard",
        "Rocky Linux:9",
        "AlmaLinux",
        "Red Hat",
        "openSUSE",
        "SUSE",
        "Mageia",
        "PyPI",
        "npm",
        "crates.io",
        "Go",
        "Maven",
        "RubyGems",
        "NuGet",
        "Packagist",
        "Hex",
        "Pub",
        "deb",
        "apk",
        "rpm",
        "pypi",
        "cargo",
        "golang",
        "maven",
        "gem",
        "nuget",
        "composer",
        "PYPI",
        "debian",
    ],
)
def test_registry_knows_ecosystem(name: str) -> None:
    comp = comparator_for(name)
    assert isinstance(comp, Comparator)
    assert comp.name


@pytest.mark.parametrize("name", ["", "Nope", "cobol", ":12"])
def test_registry_unknown(name: str) -> None:
    with pytest.raises(UnknownEcosystem):
        comparator_for(name)
