from __future__ import annotations

import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hullguard.inventory.apk import ApkAnalyzer, split_license
from hullguard.inventory.base import AnalyzerError, FileInfo
from hullguard.model import Location, Package, PackageHint

FIXTURES = Path(__file__).parent / "fixtures" / "os"
DB = "lib/apk/db/installed"


def run(data: bytes | str, path: str = DB) -> list[Package | PackageHint]:
    raw = data.encode() if isinstance(data, str) else data
    facts = list(ApkAnalyzer().analyze(FileInfo(path), raw))
    assert all(isinstance(f, Package | PackageHint) for f in facts)
    return facts  # type: ignore[return-value]


def split(facts: list[Package | PackageHint]) -> tuple[dict[str, Package], dict[str, PackageHint]]:
    pkgs = {f.name: f for f in facts if isinstance(f, Package)}
    hints = {f.package: f for f in facts if isinstance(f, PackageHint)}
    return pkgs, hints


@pytest.fixture(scope="module")
def fixture_facts() -> tuple[dict[str, Package], dict[str, PackageHint]]:
    return split(run((FIXTURES / "apk-installed").read_bytes()))


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("lib/apk/db/installed", True),
        ("usr/lib/apk/db/installed", True),
        ("lib/apk/db/installed.old", False),
        ("lib/apk/db/triggers", False),
        ("etc/apk/world", False),
        ("/lib/apk/db/installed", False),
        ("x/lib/apk/db/installed", False),
    ],
)
def test_wants(path: str, expected: bool) -> None:
    assert ApkAnalyzer().wants(FileInfo(path)) is expected


def test_all_packages_found(fixture_facts: tuple[dict[str, Package], dict[str, PackageHint]]) -> None:
    pkgs, _ = fixture_facts
    assert sorted(pkgs) == ["busybox", "glibc-locale-posix", "libcrypto3", "musl", "scanelf", "ssl_client"]


def test_package_fields(fixture_facts: tuple[dict[str, Package], dict[str, PackageHint]]) -> None:
    pkgs, _ = fixture_facts
    assert pkgs["musl"] == Package(
        name="musl",
        version="1.2.4_git20230717-r4",
        ecosystem="apk",
        arch="x86_64",
        source_name="musl",
        source_version="1.2.4_git20230717-r4",
        licenses=["MIT"],
        locations=[Location(path=DB)],
        found_by="apk",
        metadata={
            "maintainer": "Timo Teräs <timo.teras@iki.fi>",
            "url": "https://musl.libc.org/",
            "description": "the musl c library (libc) implementation",
            "commit": "cbc4d4ee6c1d5c7e3d1c8fda64dbd6a6f5a2f8fb",
            "installed_size": 663552,
            "size": 407133,
            "build_time": 1705337567,
            "checksum": "Q1k2r+gbGuNvDHDIZ9VX1kBg2zCGk=",
            "provides": ["so:libc.musl-x86_64.so.1"],
            "license_expression": "MIT",
        },
    )


def test_origin_is_the_source_package(fixture_facts: tuple[dict[str, Package], dict[str, PackageHint]]) -> None:
    pkgs, _ = fixture_facts
    assert (pkgs["libcrypto3"].source_name, pkgs["libcrypto3"].source_version) == ("openssl", "3.1.4-r5")
    assert pkgs["scanelf"].source_name == "pax-utils"
    assert pkgs["ssl_client"].source_name == "busybox"


def test_depends_provides_and_conflicts(fixture_facts: tuple[dict[str, Package], dict[str, PackageHint]]) -> None:
    pkgs, _ = fixture_facts
    assert pkgs["busybox"].metadata["depends"] == ["so:libc.musl-x86_64.so.1"]
    assert pkgs["busybox"].metadata["provides"] == ["cmd:busybox"]
    assert pkgs["scanelf"].metadata["depends"] == ["so:libc.musl-x86_64.so.1"]
    assert pkgs["scanelf"].metadata["conflicts"] == ["scanelf-legacy"]
    assert pkgs["glibc-locale-posix"].metadata["depends"] == ["glibc", "python3", "cmd:sh"]
    assert "depends" not in pkgs["musl"].metadata


def test_licenses(fixture_facts: tuple[dict[str, Package], dict[str, PackageHint]]) -> None:
    pkgs, _ = fixture_facts
    # Old-style space-separated list.
    assert pkgs["ssl_client"].licenses == ["MIT", "BSD", "GPL2+"]
    assert pkgs["ssl_client"].metadata["license_expression"] == "MIT BSD GPL2+"
    # SPDX expression: split into ids, the expression kept as written.
    glibc = pkgs["glibc-locale-posix"]
    assert glibc.licenses == [
        "GPL-2.0-or-later",
        "LGPL-2.1-or-later",
        "BSD-3-Clause",
        "GPL-2.0-only WITH Linux-syscall-note",
    ]
    assert glibc.metadata["license_expression"] == (
        "GPL-2.0-or-later AND (LGPL-2.1-or-later OR BSD-3-Clause) AND GPL-2.0-only WITH Linux-syscall-note"
    )


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("MIT", ["MIT"]),
        ("MIT OR Apache-2.0", ["MIT", "Apache-2.0"]),
        ("(MIT)", ["MIT"]),
        ("GPL-2.0-or-later and MIT", ["GPL-2.0-or-later", "MIT"]),
        ("MIT, BSD", ["MIT", "BSD"]),
        ("MIT MIT", ["MIT"]),
        ("Apache-2.0 WITH LLVM-exception OR MIT", ["Apache-2.0 WITH LLVM-exception", "MIT"]),
        ("MIT WITH", ["MIT", "WITH"]),
        ("", []),
    ],
)
def test_split_license(expr: str, expected: list[str]) -> None:
    assert split_license(expr) == expected


def test_file_hints_join_f_and_r(fixture_facts: tuple[dict[str, Package], dict[str, PackageHint]]) -> None:
    _, hints = fixture_facts
    assert hints["musl"] == PackageHint(
        ecosystem="apk", package="musl", files=["lib/ld-musl-x86_64.so.1", "lib/libc.musl-x86_64.so.1"]
    )
    assert hints["busybox"].files == ["bin/busybox", "etc/securetty", "etc/udhcpd.conf", "etc/logrotate.d/acpid"]
    assert hints["glibc-locale-posix"].files == ["usr/lib/locale/C.utf8/LC_CTYPE"]


def test_file_before_any_directory_is_at_the_root() -> None:
    _, hints = split(run("P:a\nV:1-r0\nR:toplevel\nF:etc/\nR:conf\n"))
    assert hints["a"].files == ["toplevel", "etc/conf"]


def test_package_without_files_has_no_hint() -> None:
    pkgs, hints = split(run("P:meta\nV:1-r0\nA:noarch\n"))
    assert "meta" in pkgs and hints == {}
    assert pkgs["meta"].source_name == "meta"
    assert pkgs["meta"].arch == "noarch"


def test_record_without_version_is_skipped() -> None:
    pkgs, _ = split(run("P:broken\n\nP:ok\nV:1-r0\n"))
    assert list(pkgs) == ["ok"]


def test_multiple_blank_lines_and_crlf() -> None:
    text = (FIXTURES / "apk-installed").read_text()
    weird = text.replace("\n\n", "\n\n\n\n").replace("\n", "\r\n")
    assert run(weird) == run(text)


def test_empty_database_gives_nothing() -> None:
    assert run(b"") == []
    assert run(b"\n\n") == []


def test_binary_garbage_is_an_analyzer_error() -> None:
    with pytest.raises(AnalyzerError):
        run(b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03garbage")


def test_text_that_is_not_a_database_is_an_analyzer_error() -> None:
    with pytest.raises(AnalyzerError):
        run("hello world\nthis is not apk\n")
    with pytest.raises(AnalyzerError):
        run("x:y\nz:w\n")


def test_invalid_utf8_is_replaced() -> None:
    pkgs, _ = split(run(b"P:a\nV:1-r0\nm:J\xe9r\xf4me <j@x>\n"))
    assert pkgs["a"].metadata["maintainer"] == "J\ufffdr\ufffdme <j@x>"


def test_big_database_is_fast() -> None:
    record = (FIXTURES / "apk-installed").read_text().split("\n\n")[1]
    text = "\n\n".join(record.replace("P:busybox", f"P:pkg{i}") for i in range(2000))
    start = time.process_time()
    pkgs, hints = split(run(text))
    assert len(pkgs) == 2000 and len(hints) == 2000
    assert time.process_time() - start < 1.0


def test_huge_line() -> None:
    pkgs, _ = split(run("P:a\nV:1-r0\nT:" + "x" * 5_000_000 + "\n"))
    assert len(pkgs["a"].metadata["description"]) == 5_000_000


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=3000))
def test_random_bytes_raise_only_analyzer_error(data: bytes) -> None:
    try:
        run(data)
    except AnalyzerError:
        pass


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from("PVAoLDpFRZ:=<>~! \n\r/x1()"), max_size=400))
def test_apk_like_text_raises_only_analyzer_error(text: str) -> None:
    try:
        facts = run(text)
    except AnalyzerError:
        return
    for fact in facts:
        if isinstance(fact, Package):
            assert fact.name and fact.version and "\n" not in fact.version
