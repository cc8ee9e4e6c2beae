from __future__ import annotations

import shutil
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hullguard.inventory.base import AnalyzerError, FileInfo
from hullguard.inventory.dpkg import (
    PRESENT_STATES,
    DpkgAnalyzer,
    parse_copyright,
    parse_paragraphs,
    relation_names,
)
from hullguard.model import Location, Package, PackageHint

FIXTURES = Path(__file__).parent / "fixtures" / "os"
STATUS = "var/lib/dpkg/status"


def run(path: str, data: bytes | str) -> list[Package | PackageHint]:
    raw = data.encode() if isinstance(data, str) else data
    facts = list(DpkgAnalyzer().analyze(FileInfo(path), raw))
    assert all(isinstance(f, Package | PackageHint) for f in facts)
    return facts  # type: ignore[return-value]


def packages(path: str, data: bytes | str) -> list[Package]:
    facts = run(path, data)
    assert all(isinstance(f, Package) for f in facts)
    return facts  # type: ignore[return-value]


def by_name_arch(pkgs: list[Package]) -> dict[tuple[str, str], Package]:
    return {(p.name, p.arch): p for p in pkgs}


@pytest.fixture(scope="module")
def status_pkgs() -> dict[tuple[str, str], Package]:
    return by_name_arch(packages(STATUS, (FIXTURES / "dpkg-status").read_bytes()))


# --- wants -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("var/lib/dpkg/status", True),
        ("var/lib/dpkg/status-old", False),
        ("var/lib/dpkg/status.d/libssl3", True),
        ("var/lib/dpkg/status.d/libssl3.md5sums", False),
        ("var/lib/dpkg/status.d/", False),
        ("var/lib/dpkg/status.d/sub/dir", False),
        ("var/lib/dpkg/info/bash.list", True),
        ("var/lib/dpkg/info/libc6:amd64.list", True),
        ("var/lib/dpkg/info/bash.md5sums", False),
        ("var/lib/dpkg/info/bash.postinst", False),
        ("var/lib/dpkg/info/.list", False),
        ("var/lib/dpkg/info/x/bash.list", False),
        ("usr/share/doc/bash/copyright", True),
        ("usr/share/doc/copyright", False),
        ("usr/share/doc/bash/examples/copyright", False),
        ("usr/share/doc/bash/changelog.Debian.gz", False),
        ("opt/var/lib/dpkg/status", False),
        ("/var/lib/dpkg/status", False),
    ],
)
def test_wants(path: str, expected: bool) -> None:
    assert DpkgAnalyzer().wants(FileInfo(path)) is expected


# --- status file --------------------------------------------------------------------------------


def test_only_present_packages_are_reported(status_pkgs: dict[tuple[str, str], Package]) -> None:
    assert sorted(status_pkgs) == sorted(
        [
            ("base-files", "amd64"),
            ("libc6", "amd64"),
            ("libc6", "i386"),
            ("libssl3", "amd64"),
            ("libattr1", "amd64"),
            ("libzstd1", "amd64"),
            ("bash", "amd64"),
            ("debconf", "all"),
            ("mawk", "amd64"),
            ("tzdata", "all"),
            ("man-db", "amd64"),
            ("apt", "amd64"),
        ]
    )
    names = {name for name, _ in status_pkgs}
    # config-files, half-installed and not-installed leave no usable package behind.
    assert not names & {"vim-tiny", "nano", "gone"}


def test_states_other_than_installed_are_recorded(status_pkgs: dict[tuple[str, str], Package]) -> None:
    assert status_pkgs[("tzdata", "all")].metadata["status"] == "unpacked"
    assert status_pkgs[("man-db", "amd64")].metadata["status"] == "triggers-pending"
    assert "status" not in status_pkgs[("bash", "amd64")].metadata
    # Selected for removal but still on disk: its files are there to be scanned.
    assert "status" not in status_pkgs[("apt", "amd64")].metadata


def test_full_package_fields(status_pkgs: dict[tuple[str, str], Package]) -> None:
    libc = status_pkgs[("libc6", "amd64")]
    assert libc == Package(
        name="libc6",
        version="2.36-9+deb12u7",
        ecosystem="deb",
        arch="amd64",
        source_name="glibc",
        source_version="2.36-9+deb12u7",
        locations=[Location(path=STATUS)],
        found_by="dpkg",
        metadata={
            "maintainer": "GNU Libc Maintainers <debian-glibc@lists.debian.org>",
            "installed_size": 12986,
            "depends": ["libgcc-s1"],
        },
    )
    assert libc.purl == ""


def test_source_rules(status_pkgs: dict[tuple[str, str], Package]) -> None:
    def src(name: str) -> tuple[str, str, str]:
        p = status_pkgs[(name, "amd64")]
        return p.version, p.source_name, p.source_version

    # No Source: the package is its own source.
    assert src("bash") == ("5.2.15-2+b7", "bash", "5.2.15-2+b7")
    # Source without version: same version as the binary.
    assert src("libssl3") == ("3.0.11-1~deb12u2", "openssl", "3.0.11-1~deb12u2")
    # binNMU: the source version differs from the binary's.
    assert src("libzstd1") == ("1.5.4+dfsg2-5+b1", "libzstd", "1.5.4+dfsg2-5")
    # Epochs are part of the version, on both sides.
    assert src("libattr1") == ("1:2.5.1-4", "attr", "1:2.5.1-4")


def test_depends_keep_bare_names_of_all_alternatives(status_pkgs: dict[tuple[str, str], Package]) -> None:
    assert status_pkgs[("bash", "amd64")].metadata["depends"] == [
        "libc6",
        "libtinfo6",
        "base-files",
        "debianutils",
    ]
    # A folded Depends over three lines, with :any/:native, an arch list and a build profile.
    assert status_pkgs[("debconf", "all")].metadata["depends"] == [
        "perl-base",
        "debconf-i18n",
        "debconf-english",
        "python3",
        "python3-minimal",
        "perl",
    ]
    assert status_pkgs[("man-db", "amd64")].metadata["depends"] == [
        "bsdextrautils",
        "bsdmainutils",
        "groff-base",
        "libc6",
    ]
    assert status_pkgs[("apt", "amd64")].metadata["depends"] == [
        "adduser",
        "gpgv",
        "gpgv2",
        "gpgv1",
        "libapt-pkg6.0",
        "debian-archive-keyring",
    ]


def test_provides(status_pkgs: dict[tuple[str, str], Package]) -> None:
    assert status_pkgs[("mawk", "amd64")].metadata["provides"] == ["awk"]
    assert status_pkgs[("apt", "amd64")].metadata["provides"] == ["apt-transport-https"]
    assert "provides" not in status_pkgs[("bash", "amd64")].metadata


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("", []),
        ("libc6", ["libc6"]),
        ("a (>= 1.0), b (<< 2) | c", ["a", "b", "c"]),
        ("python3:any (>= 3.7~)", ["python3"]),
        ("foo [amd64 !i386] <!nocheck> <stage1 cross>, bar", ["foo", "bar"]),
        ("x,\n y |\n\tz", ["x", "y", "z"]),
        ("dup, dup (>= 2), other | dup", ["dup", "other"]),
        ("  ,  , lone", ["lone"]),
    ],
)
def test_relation_names(value: str, expected: list[str]) -> None:
    assert relation_names(value) == expected


def test_crlf_status_parses_like_lf() -> None:
    lf = (FIXTURES / "dpkg-status").read_text()
    crlf = lf.replace("\n", "\r\n")
    assert packages(STATUS, crlf) == packages(STATUS, lf)


def test_field_names_are_case_insensitive() -> None:
    text = "PACKAGE: foo\nversion: 1.0-1\nstatus: install ok installed\nARCHITECTURE: arm64\nsOuRcE: bar (0.9-1)\n"
    (pkg,) = packages(STATUS, text)
    assert (pkg.name, pkg.version, pkg.arch, pkg.source_name, pkg.source_version) == (
        "foo",
        "1.0-1",
        "arm64",
        "bar",
        "0.9-1",
    )


def test_case_folding_survives_non_ascii_that_grows_when_lowered() -> None:
    # "İ" lower-cases to two code points; field positions must still line up.
    text = "Package: foo\nMaintainer: İsmail Ünal <i@example.org>\nVERSION: 2.0\nStatus: install ok installed\n"
    (pkg,) = packages(STATUS, text)
    assert pkg.version == "2.0"
    assert pkg.metadata["maintainer"] == "İsmail Ünal <i@example.org>"


def test_whitespace_only_line_separates_paragraphs() -> None:
    text = "Package: a\nVersion: 1\nDescription: x\n y\n \t \nPackage: b\nVersion: 2\n"
    assert [p.name for p in packages(STATUS, text)] == ["a", "b"]


def test_first_duplicate_field_wins() -> None:
    (pkg,) = packages(STATUS, "Package: a\nVersion: 1\nVersion: 2\n")
    assert pkg.version == "1"


def test_paragraph_without_version_is_skipped() -> None:
    text = "Package: broken\nStatus: install ok installed\n\nPackage: ok\nVersion: 1\nStatus: install ok installed\n"
    assert [p.name for p in packages(STATUS, text)] == ["ok"]


@pytest.mark.parametrize("status", ["install ok", "install", "", "install ok not-installed"])
def test_short_or_absent_state_is_not_installed(status: str) -> None:
    assert packages(STATUS, f"Package: a\nVersion: 1\nStatus: {status}\n") == []


def test_present_states_are_the_ones_with_files_on_disk() -> None:
    assert {"installed", "unpacked", "half-configured", "triggers-awaited", "triggers-pending"} == PRESENT_STATES


def test_missing_status_counts_as_installed() -> None:
    (pkg,) = packages(STATUS, "Package: a\nVersion: 1\n")
    assert pkg.name == "a" and "status" not in pkg.metadata


def test_odd_installed_size_is_left_out() -> None:
    (pkg,) = packages(STATUS, "Package: a\nVersion: 1\nInstalled-Size: lots\n")
    assert "installed_size" not in pkg.metadata


def test_empty_status_file_gives_nothing() -> None:
    assert packages(STATUS, b"") == []
    assert packages(STATUS, b"\n\n  \n") == []


def test_paragraph_parser_keeps_multiline_values() -> None:
    (para,) = parse_paragraphs("Package: a\nDescription: short\n long one\n .\n long two\nX-Custom: y\n")
    assert para == {"package": "a", "description": "short\n long one\n .\n long two", "x-custom": "y"}


def test_comment_and_dash_lines_are_not_fields() -> None:
    (para,) = parse_paragraphs("# comment: here\n-not: a field\nPackage: a\n")
    assert para == {"package": "a"}


# --- status.d (distroless) ------------------------------------------------------------------------


def test_status_d_entries() -> None:
    (ssl,) = packages("var/lib/dpkg/status.d/libssl3", (FIXTURES / "status.d" / "libssl3").read_bytes())
    assert (ssl.name, ssl.version, ssl.arch, ssl.source_name) == ("libssl3", "3.0.11-1~deb12u2", "amd64", "openssl")
    assert ssl.locations == [Location(path="var/lib/dpkg/status.d/libssl3")]
    (tz,) = packages("var/lib/dpkg/status.d/tzdata", (FIXTURES / "status.d" / "tzdata").read_bytes())
    assert (tz.name, tz.source_name, tz.source_version) == ("tzdata", "tzdata", "2024a-0+deb12u1")
    assert tz.metadata["depends"] == ["debconf", "debconf-2.0"]


# --- info/*.list ------------------------------------------------------------------------------------


def test_multiarch_list_strips_arch_and_leading_slash() -> None:
    (hint,) = run("var/lib/dpkg/info/libc6:amd64.list", (FIXTURES / "libc6_amd64.list").read_bytes())
    assert isinstance(hint, PackageHint)
    assert hint.ecosystem == "deb"
    assert hint.package == "libc6"
    assert hint.licenses == []
    assert hint.files[:3] == ["etc", "etc/ld.so.conf.d", "etc/ld.so.conf.d/x86_64-linux-gnu.conf"]
    assert "usr/lib/x86_64-linux-gnu/libc.so.6" in hint.files
    assert "." not in hint.files and "" not in hint.files
    assert all(not f.startswith("/") for f in hint.files)
    assert len(hint.files) == 12


def test_plain_list_with_crlf() -> None:
    (hint,) = run("var/lib/dpkg/info/bash.list", "/.\r\n/bin\r\n/bin/bash\r\n")
    assert hint == PackageHint(ecosystem="deb", package="bash", files=["bin", "bin/bash"])


def test_empty_list_gives_nothing() -> None:
    assert run("var/lib/dpkg/info/empty.list", "") == []
    assert run("var/lib/dpkg/info/empty.list", "/.\n") == []


# --- copyright ----------------------------------------------------------------------------------------


def test_dep5_copyright() -> None:
    (hint,) = run("usr/share/doc/zlib1g/copyright", (FIXTURES / "copyright-dep5").read_bytes())
    assert hint == PackageHint(
        ecosystem="deb", package="zlib1g", licenses=["Zlib", "BSL-1.0", "GPL-2+", "MIT", "BSD-3-clause"]
    )


def test_dep5_header_license_and_with_exception() -> None:
    text = (
        "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n"
        "License: GPL-3+ with Bison exception\n"
        "\n"
        "Files: *\n"
        "Copyright: someone\n"
        "License: GPL-3+ with Bison exception or Artistic-2.0\n"
    )
    assert parse_copyright(text) == ["GPL-3+ with Bison exception", "Artistic-2.0"]


def test_legacy_copyright_uses_common_licenses_paths() -> None:
    (hint,) = run("usr/share/doc/sed/copyright", (FIXTURES / "copyright-legacy").read_bytes())
    assert hint == PackageHint(ecosystem="deb", package="sed", licenses=["GPL-3", "GFDL-1.3"])


def test_legacy_copyright_does_not_trust_free_text_license_lines() -> None:
    assert parse_copyright("License: do whatever you like, see below\n") == []


def test_copyright_without_licences_gives_nothing() -> None:
    assert run("usr/share/doc/foo/copyright", "Copyright 2020 Nobody.\nAll rights reserved.\n") == []


# --- hostile input ----------------------------------------------------------------------------------


def test_binary_status_is_an_analyzer_error() -> None:
    with pytest.raises(AnalyzerError):
        run(STATUS, b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")


def test_text_that_is_not_a_control_file_is_an_analyzer_error() -> None:
    with pytest.raises(AnalyzerError):
        run(STATUS, "just some words\nwithout any field\n")
    with pytest.raises(AnalyzerError):
        run("var/lib/dpkg/status.d/x", "Foo: bar\nBaz: qux\n")


def test_invalid_utf8_is_replaced() -> None:
    (pkg,) = packages(STATUS, b"Package: a\nVersion: 1\nMaintainer: J\xe9r\xf4me <j@x>\n")
    assert pkg.metadata["maintainer"] == "J\ufffdr\ufffdme <j@x>"


def test_huge_lines_are_linear() -> None:
    text = "Package: a\nVersion: 1\nDescription: " + "x" * 3_000_000 + "\n" + " y" * 500_000 + "\n"
    (pkg,) = packages(STATUS, text)
    assert pkg.name == "a"


@settings(max_examples=300, deadline=None)
@given(
    path=st.sampled_from(
        [STATUS, "var/lib/dpkg/status.d/x", "var/lib/dpkg/info/x:amd64.list", "usr/share/doc/x/copyright"]
    ),
    data=st.binary(max_size=3000),
)
def test_random_bytes_raise_only_analyzer_error(path: str, data: bytes) -> None:
    try:
        run(path, data)
    except AnalyzerError:
        pass


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from("Pa:ckgeVrsion \t\n:|,()[]<>#-\r1"), max_size=400))
def test_control_like_text_raises_only_analyzer_error(text: str) -> None:
    try:
        facts = run(STATUS, text)
    except AnalyzerError:
        return
    for pkg in facts:
        assert isinstance(pkg, Package)
        assert pkg.name and pkg.version and "\n" not in pkg.name


# --- speed --------------------------------------------------------------------------------------------


def _synthetic_status(count: int) -> str:
    block = (FIXTURES / "dpkg-status").read_text().split("\n\n")[1]  # libc6, a typical paragraph
    return "\n\n".join(block.replace("Package: libc6", f"Package: pkg{i}") for i in range(count)) + "\n"


def test_five_hundred_packages_parse_quickly() -> None:
    data = _synthetic_status(500).encode()
    analyzer = DpkgAnalyzer()
    best = float("inf")
    for _ in range(5):
        start = time.process_time()
        pkgs = list(analyzer.analyze(FileInfo(STATUS), data))
        best = min(best, time.process_time() - start)
    assert len(pkgs) == 500
    # Generous: catches an accidentally quadratic parser, not a busy CI machine.
    assert best < 0.25


# --- cross-check with the dpkg of this machine ----------------------------------------------------


def test_matches_dpkg_query_on_this_machine() -> None:
    status = Path("/var/lib/dpkg/status")
    if not status.exists() or shutil.which("dpkg-query") is None:
        pytest.skip("no dpkg database here")
    for _ in range(3):
        before = status.read_bytes()
        out = subprocess.run(
            ["dpkg-query", "-W", "-f", "${Package}\t${Version}\t${Architecture}\t${db:Status-Status}\n"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        if status.read_bytes() == before:
            break
    else:
        pytest.skip("dpkg database kept changing while reading it")
    expected = Counter()
    for line in out.splitlines():
        name, version, arch, state = line.split("\t")
        if state in PRESENT_STATES:
            expected[(name, version, arch)] += 1
    got = Counter((p.name, p.version, p.arch) for p in packages(STATUS, before))
    assert got == expected
    assert sum(got.values()) > 0


def test_real_info_lists_and_copyrights_parse() -> None:
    info = Path("/var/lib/dpkg/info")
    if not info.is_dir():
        pytest.skip("no dpkg database here")
    analyzer = DpkgAnalyzer()
    installed = {p.name for p in packages(STATUS, Path("/var/lib/dpkg/status").read_bytes())}
    hinted = set()
    for path in sorted(info.glob("*.list"))[:400]:
        rel = str(path).lstrip("/")
        assert analyzer.wants(FileInfo(rel))
        for hint in analyzer.analyze(FileInfo(rel), path.read_bytes()):
            assert isinstance(hint, PackageHint) and ":" not in hint.package
            hinted.add(hint.package)
    # A list belongs to a package the status file knows; config-files leftovers may keep one.
    assert hinted
    assert len(hinted - installed) <= len(hinted) // 20
    with_licences = 0
    docs = sorted(Path("/usr/share/doc").glob("*/copyright"))[:300]
    for path in docs:
        rel = str(path).lstrip("/")
        assert analyzer.wants(FileInfo(rel))
        with_licences += bool(list(analyzer.analyze(FileInfo(rel), path.read_bytes())))
    if docs:
        assert with_licences > len(docs) // 2
