"""End to end: small Ubuntu, Alpine and AlmaLinux/Rocky images, the real distro records imported
with ``hullguard db import``, then ``hullguard image`` as a user runs it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from hullguard.cli.main import main
from tests.builders.rpmdb import PkgSpec, package_blob, sqlite_rpmdb
from tests.builders.synth import File, synth_image

RECORDS = Path(__file__).resolve().parents[1] / "vulndb" / "distro_records"


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("HULLGUARD_DB", raising=False)


@pytest.fixture
def db(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> str:
    path = str(tmp_path / "advisories.db")
    assert main(["db", "import", "--db", path, str(RECORDS)]) == 0
    capsys.readouterr()
    return path


def _scan(image: Path, db: str, capsys: pytest.CaptureFixture[str]) -> dict[tuple[str, str], dict]:
    code = main(["image", str(image), "--db", db, "-q", "-f", "json"])
    out = capsys.readouterr()
    assert code == 0, out.err
    doc = json.loads(out.out)
    return {(f["details"]["package"]["name"], f["rule_id"]): f for f in doc.get("findings", [])}


def _image(tmp_path: Path, name: str, files: list[File]) -> Path:
    out = tmp_path / name
    if out.exists():
        shutil.rmtree(out)
    return synth_image([files], fmt="oci", out=out)


def _dpkg(*pkgs: tuple[str, str, str]) -> str:
    return "\n".join(f"Package: {name}\nStatus: install ok installed\nArchitecture: amd64\nSource: {source}\n"
                     f"Version: {version}\n" for name, version, source in pkgs)


UBUNTU_OS = 'NAME="Ubuntu"\nVERSION_ID="22.04"\nVERSION="22.04.4 LTS (Jammy Jellyfish)"\nID=ubuntu\n' \
            'ID_LIKE=debian\nVERSION_CODENAME=jammy\n'


def test_ubuntu_image(tmp_path: Path, db: str, capsys: pytest.CaptureFixture[str]) -> None:
    old = _image(tmp_path, "ubuntu-old", [
        File("etc/os-release", UBUNTU_OS),
        File("var/lib/dpkg/status", _dpkg(("libc6", "2.35-0ubuntu3.13", "glibc"),
                                          ("libc-bin", "2.35-0ubuntu3.13", "glibc"),
                                          ("zlib1g", "1:1.2.11.dfsg-2ubuntu9.2", "zlib"))),
    ])
    found = _scan(old, db, capsys)
    usn = found[("libc6", "USN-8611-1")]
    assert usn["fix"] == "2.35-0ubuntu3.14" and usn["details"]["status"] == "fixed"
    assert usn["details"]["package"]["source_name"] == "glibc"
    assert usn["details"]["distro_severity"] == "medium" and usn["details"]["cve"] == "CVE-2026-4046"
    assert ("libc-bin", "USN-8611-1") in found
    assert found[("libc6", "UBUNTU-CVE-2026-4046")]["details"]["status"] == "not yet fixed"
    assert not any(name == "zlib1g" for name, _ in found)

    new = _image(tmp_path, "ubuntu-new", [
        File("etc/os-release", UBUNTU_OS),
        File("var/lib/dpkg/status", _dpkg(("libc6", "2.35-0ubuntu3.14", "glibc"))),
    ])
    assert ("libc6", "USN-8611-1") not in _scan(new, db, capsys)


ALPINE_OS = 'NAME="Alpine Linux"\nID=alpine\nVERSION_ID=3.19.1\nPRETTY_NAME="Alpine Linux v3.19"\n'


def _apk(*pkgs: tuple[str, str, str]) -> str:
    # lib/apk/db/installed: one stanza per package, "o:" the origin (the aport it was built from).
    return "\n".join(f"C:Q1{'A' * 27}=\nP:{name}\nV:{version}\nA:x86_64\nS:1024\nI:4096\nT:test\no:{origin}\n"
                     for name, version, origin in pkgs) + "\n"


def test_alpine_image(tmp_path: Path, db: str, capsys: pytest.CaptureFixture[str]) -> None:
    old = _image(tmp_path, "alpine-old", [
        File("etc/os-release", ALPINE_OS), File("etc/alpine-release", "3.19.1\n"),
        File("lib/apk/db/installed", _apk(("musl", "1.2.4_git20230717-r4", "musl"),
                                          ("musl-utils", "1.2.4_git20230717-r4", "musl"),
                                          ("busybox", "1.36.1-r15", "busybox"))),
    ])
    found = _scan(old, db, capsys)
    assert set(found) == {("musl", "ALPINE-CVE-2025-26519"), ("musl-utils", "ALPINE-CVE-2025-26519")}
    f = found[("musl-utils", "ALPINE-CVE-2025-26519")]
    assert f["fix"] == "1.2.4_git20230717-r5" and f["details"]["advisory_ecosystem"] == "Alpine:v3.19"
    assert f["details"]["matched_name"] == "musl"

    fixed = _image(tmp_path, "alpine-new", [
        File("etc/os-release", ALPINE_OS), File("etc/alpine-release", "3.19.1\n"),
        File("lib/apk/db/installed", _apk(("musl", "1.2.4_git20230717-r5", "musl"))),
    ])
    assert _scan(fixed, db, capsys) == {}


def _rpm_image(tmp_path: Path, name: str, os_release: str, specs: list[PkgSpec]) -> Path:
    rpmdb = sqlite_rpmdb([package_blob(s) for s in specs], wal=False)
    return _image(tmp_path, name, [File("etc/os-release", os_release),
                                   File("var/lib/rpm/rpmdb.sqlite", rpmdb)])


ALMA_OS = 'NAME="AlmaLinux"\nVERSION="9.0 (Emerald Puma)"\nID="almalinux"\nID_LIKE="rhel centos fedora"\n' \
          'VERSION_ID="9.0"\nPRETTY_NAME="AlmaLinux 9.0 (Emerald Puma)"\n'
ROCKY_OS = 'NAME="Rocky Linux"\nVERSION="9.3 (Blue Onyx)"\nID="rocky"\nID_LIKE="rhel centos fedora"\n' \
           'VERSION_ID="9.3"\nPRETTY_NAME="Rocky Linux 9.3 (Blue Onyx)"\n'


def test_alma_image_binary_names_and_epoch(tmp_path: Path, db: str, capsys: pytest.CaptureFixture[str]) -> None:
    old = _rpm_image(tmp_path, "alma-old", ALMA_OS, [
        PkgSpec("openssl-libs", "3.0.1", "40.el9_0", epoch=1, sourcerpm="openssl-3.0.1-40.el9_0.src.rpm"),
        PkgSpec("openssl", "3.0.1", "40.el9_0", epoch=1, sourcerpm="openssl-3.0.1-40.el9_0.src.rpm"),
        PkgSpec("bash", "5.1.8", "4.el9", sourcerpm="bash-5.1.8-4.el9.src.rpm"),
    ])
    found = _scan(old, db, capsys)
    assert set(found) == {("openssl-libs", "ALSA-2022:6224"), ("openssl", "ALSA-2022:6224")}
    f = found[("openssl-libs", "ALSA-2022:6224")]
    assert f["fix"] == "1:3.0.1-41.el9_0" and f["details"]["installed_version"] == "1:3.0.1-40.el9_0"
    assert f["details"]["distro_severity"] == "moderate" and f["severity"] == 2  # Severity.MEDIUM

    new = _rpm_image(tmp_path, "alma-new", ALMA_OS, [
        PkgSpec("openssl-libs", "3.0.1", "41.el9_0", epoch=1, sourcerpm="openssl-3.0.1-41.el9_0.src.rpm"),
    ])
    assert _scan(new, db, capsys) == {}


def test_rocky_image_source_name_fix_without_epoch(tmp_path: Path, db: str,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    old = _rpm_image(tmp_path, "rocky-old", ROCKY_OS, [
        PkgSpec("openssl-libs", "3.0.7", "25.el9", epoch=1, sourcerpm="openssl-3.0.7-25.el9.src.rpm"),
    ])
    found = _scan(old, db, capsys)
    f = found[("openssl-libs", "RLSA-TEST:0001")]
    assert f["fix"] == "1:3.0.7-27.el9" and f["details"]["matched_name"] == "openssl"
    assert f["details"]["advisory_ecosystem"] == "Rocky Linux:9"
    # The AlmaLinux advisory is for another distribution: not applied to Rocky.
    assert not any(rule.startswith("ALSA") for _, rule in found)

    new = _rpm_image(tmp_path, "rocky-new", ROCKY_OS, [
        PkgSpec("openssl-libs", "3.0.7", "27.el9", epoch=1, sourcerpm="openssl-3.0.7-27.el9.src.rpm"),
    ])
    assert _scan(new, db, capsys) == {}
