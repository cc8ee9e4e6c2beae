"""Cross-checks against the real tools: rpm/rpmbuild (Debian's ``rpm``) and libdb's ``db_load``.

Skipped when the tools are not installed; the tests install nothing themselves.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from hullguard.inventory.base import FileInfo
from hullguard.inventory.rpm import RpmAnalyzer
from hullguard.inventory.rpmdb import bdb, sqlite
from hullguard.model import Package, PackageHint
from tests.builders.rpmdb import PkgSpec, bdb_hash, package_blob, rpm_bdb_items

RPM = shutil.which("rpm")
RPMBUILD = shutil.which("rpmbuild")
DB_LOAD = shutil.which("db5.3_load") or shutil.which("db_load")

needs_rpm = pytest.mark.skipif(not (RPM and RPMBUILD), reason="rpm and rpmbuild are not installed")
needs_db_load = pytest.mark.skipif(not DB_LOAD, reason="libdb's db_load is not installed")

SPEC = """\
Name: {name}
Version: {version}
Release: {release}
{epoch_line}
Summary: hullguard test package
License: {license}
Vendor: Hullguard Tests
BuildArch: noarch
%description
A package built only to exercise the rpm database reader.
%install
{install}
%files
{files}
"""

QUERY_FORMAT = "%{NAME}|%{EPOCHNUM}|%{EPOCH}|%{VERSION}|%{RELEASE}|%{ARCH}|%{SOURCERPM}|%{LICENSE}|%{VENDOR}\\n"


def _run(*args: str) -> str:
    proc = subprocess.run(args, capture_output=True, text=True, check=True)
    return proc.stdout


def _build(topdir: Path, name: str, version: str, release: str, epoch: int | None, files: list[str]) -> Path:
    install = "\n".join(f"mkdir -p %{{buildroot}}{Path(f).parent} && echo {name} > %{{buildroot}}{f}" for f in files)
    spec = topdir / f"{name}.spec"
    spec.write_text(
        SPEC.format(
            name=name,
            version=version,
            release=release,
            epoch_line=f"Epoch: {epoch}" if epoch is not None else "",
            license="MIT and (BSD or GPLv2+)",
            install=install,
            files="\n".join(files),
        )
    )
    _run(RPMBUILD or "rpmbuild", "--define", f"_topdir {topdir}", "-bb", str(spec))
    return topdir / "RPMS" / "noarch" / f"{name}-{version}-{release}.noarch.rpm"


@pytest.fixture(scope="module")
def real_rpmdb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real rpmdb.sqlite written by rpm itself, holding three freshly built packages."""
    if not (RPM and RPMBUILD):
        pytest.skip("rpm and rpmbuild are not installed")
    top = tmp_path_factory.mktemp("rpmbuild")
    many = [f"/usr/share/hg-many/dir{i % 7}/file{i}.txt" for i in range(40)]
    rpms = [
        _build(top, "hg-epoch", "1.2.3", "4.el9", 2, ["/usr/share/hg-epoch/a.txt", "/etc/hg-epoch.conf"]),
        _build(top, "hg-plain", "0.9", "1", None, ["/usr/bin/hg-plain"]),
        _build(top, "hg-zero", "3.0~rc1", "2.fc39", 0, many),
    ]
    dbpath = tmp_path_factory.mktemp("rpmdb")
    _run(RPM or "rpm", "--dbpath", str(dbpath), "--initdb")
    for rpm_file in rpms:
        _run(RPM or "rpm", "--dbpath", str(dbpath), "-i", "--justdb", "--nodeps", "--nosignature", str(rpm_file))
    return dbpath


def _rpm_query(dbpath: Path, *backend: str) -> dict[str, list[str]]:
    out = _run(RPM or "rpm", *backend, "--dbpath", str(dbpath), "-qa", "--qf", QUERY_FORMAT)
    rows = [line.split("|") for line in out.splitlines() if line]
    return {row[0]: row for row in rows}


def _rpm_files(dbpath: Path, name: str, *backend: str) -> list[str]:
    out = _run(RPM or "rpm", *backend, "--dbpath", str(dbpath), "-qa", "--qf", "[%{=NAME}\t%{FILENAMES}\\n]")
    return sorted(
        path
        for pkg, path in (line.split("\t") for line in out.splitlines() if line)
        if pkg == name and path != "(none)"
    )


def _check_against_rpm(facts: list, expected: dict[str, list[str]], files_of: dict[str, list[str]]) -> None:
    pkgs = {f.name: f for f in facts if isinstance(f, Package)}
    hints = {f.package: f for f in facts if isinstance(f, PackageHint)}
    assert sorted(pkgs) == sorted(expected)
    for name, (_, epochnum, epoch, version, release, arch, srpm, lic, vendor) in expected.items():
        pkg = pkgs[name]
        evr = f"{version}-{release}"
        assert pkg.version == (f"{epochnum}:{evr}" if epochnum != "0" else evr)
        assert pkg.metadata["epoch"] == (None if epoch == "(none)" else int(epoch))
        assert (pkg.metadata["version"], pkg.metadata["release"]) == (version, release)
        assert pkg.arch == arch
        assert pkg.metadata["sourcerpm"] == srpm
        assert pkg.source_name == name
        assert pkg.licenses == [lic]
        assert pkg.metadata["vendor"] == vendor
        assert sorted(hints[name].files) == [f.lstrip("/") for f in files_of[name]]


@needs_rpm
def test_real_sqlite_rpmdb(real_rpmdb: Path) -> None:
    data = (real_rpmdb / "rpmdb.sqlite").read_bytes()
    assert data[18:20] == b"\x02\x02"  # rpm leaves it in WAL mode; the reader must cope
    facts = list(RpmAnalyzer().analyze(FileInfo(path="var/lib/rpm/rpmdb.sqlite"), data))
    expected = _rpm_query(real_rpmdb)
    assert set(expected) == {"hg-epoch", "hg-plain", "hg-zero"}
    _check_against_rpm(facts, expected, {n: _rpm_files(real_rpmdb, n) for n in expected})
    pkgs = {f.name: f for f in facts if isinstance(f, Package)}
    assert pkgs["hg-epoch"].version == "2:1.2.3-4.el9"
    assert pkgs["hg-zero"].version == "3.0~rc1-2.fc39"
    assert pkgs["hg-plain"].version == "0.9-1"


def _real_or_built_blobs(real_rpmdb_path: Path | None) -> list[bytes]:
    blobs = [package_blob(PkgSpec("hg-built", epoch=5, files=[f"/opt/hg/{i}" for i in range(500)]))]
    blobs.append(package_blob(PkgSpec("hg-huge", padding=200_000)))
    if real_rpmdb_path is not None:
        blobs += list(sqlite.iter_blobs((real_rpmdb_path / "rpmdb.sqlite").read_bytes()))
    return blobs


def _db_load(tmp_path: Path, items: list[tuple[bytes, bytes]], config: list[str]) -> bytes:
    dump = tmp_path / "dump.txt"
    lines = ["VERSION=3", "format=bytevalue", "type=hash", "HEADER=END"]
    for key, value in items:
        lines += [" " + key.hex(), " " + value.hex()]
    lines.append("DATA=END")
    dump.write_text("\n".join(lines) + "\n")
    out = tmp_path / "Packages"
    out.unlink(missing_ok=True)
    args = [DB_LOAD or "db_load"]
    for c in config:
        args += ["-c", c]
    _run(*args, "-f", str(dump), str(out))
    return out.read_bytes()


@needs_db_load
@pytest.mark.parametrize(
    "config",
    [
        ["db_lorder=1234"],
        ["db_lorder=4321"],
        ["db_lorder=1234", "chksum=1"],
        ["db_lorder=4321", "db_pagesize=512"],
        ["db_lorder=1234", "db_pagesize=65536"],
    ],
    ids=["le", "be", "le-chksum", "be-512", "le-64k"],
)
def test_bdb_written_by_libdb(tmp_path: Path, config: list[str]) -> None:
    """A real Berkeley DB hash file (libdb's own writer) holding rpm header blobs."""
    order = ">" if "db_lorder=4321" in config else "<"
    blobs = _real_or_built_blobs(None)
    items = rpm_bdb_items(blobs, order)
    data = _db_load(tmp_path, items, config)
    assert sorted(bdb.iter_blobs(data)) == sorted(blobs)
    facts = list(RpmAnalyzer().analyze(FileInfo(path="var/lib/rpm/Packages"), data))
    assert sorted(f.name for f in facts if isinstance(f, Package)) == ["hg-built", "hg-huge"]


@needs_db_load
@needs_rpm
def test_bdb_written_by_libdb_with_real_headers(tmp_path: Path, real_rpmdb: Path) -> None:
    blobs = _real_or_built_blobs(real_rpmdb)
    data = _db_load(tmp_path, rpm_bdb_items(blobs), ["db_lorder=1234"])
    assert sorted(bdb.iter_blobs(data)) == sorted(blobs)


@needs_rpm
@pytest.mark.parametrize("order", ["<", ">"])
def test_builder_bdb_is_read_by_real_rpm(tmp_path: Path, real_rpmdb: Path, order: str) -> None:
    """rpm's own bdb_ro backend reads what the fixture writer produces, and agrees with us."""
    blobs = _real_or_built_blobs(real_rpmdb)
    data = bdb_hash(rpm_bdb_items(blobs, order), order=order, page_size=4096)
    (tmp_path / "Packages").write_bytes(data)
    try:
        expected = _rpm_query(tmp_path, "--define", "_db_backend bdb_ro")
    except subprocess.CalledProcessError:
        pytest.skip("this rpm cannot read Berkeley DB databases (no bdb_ro backend)")
    if not expected:
        pytest.skip("this rpm cannot read Berkeley DB databases (no bdb_ro backend)")
    facts = list(RpmAnalyzer().analyze(FileInfo(path="var/lib/rpm/Packages"), data))
    files = {n: _rpm_files(tmp_path, n, "--define", "_db_backend bdb_ro") for n in expected}
    _check_against_rpm(facts, expected, files)
    assert struct.unpack_from(f"{order}I", data, 12)[0] == bdb.HASH_MAGIC
