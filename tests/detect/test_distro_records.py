"""Distro matching against real OSV records (tests/vulndb/distro_records, sources in its README)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from hullguard.detect.vulns import distro_ecosystem, match
from hullguard.model import Artifact, Location, OSInfo, Package, ScanResult, Severity
from hullguard.vulndb.osv import parse, split_ecosystem
from hullguard.vulndb.store import SQLiteStore, Store
from tests.vulndb.records import fixed, record

RECORDS = Path(__file__).resolve().parents[1] / "vulndb" / "distro_records"

UBUNTU_2204 = OSInfo(family="ubuntu", release="22.04", codename="jammy")
UBUNTU_2004 = OSInfo(family="ubuntu", release="20.04", codename="focal")
UBUNTU_2404 = OSInfo(family="ubuntu", release="24.04", codename="noble")
ALPINE_319 = OSInfo(family="alpine", release="3.19.1")
ALMA_9 = OSInfo(family="almalinux", release="9.0")
ROCKY_9 = OSInfo(family="rocky", release="9.3")
DEBIAN_9 = OSInfo(family="debian", release="9.13", codename="stretch")


def _real(*names: str) -> list[dict]:
    return [json.loads((RECORDS / n).read_text()) for n in names]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = SQLiteStore(str(tmp_path / "hullguard.db"))
    try:
        yield s
    finally:
        s.close()


def _load(store: Store, recs: list[dict]) -> None:
    store.replace_source("test", [parse(json.dumps(r)) for r in recs])


def _scan(store: Store, os_info: OSInfo, *pkgs: Package) -> dict[tuple[str, str], object]:
    result = ScanResult(artifact=Artifact(name="t", type="docker-archive"), os=os_info, packages=list(pkgs))
    rep = match(result, store)
    assert not rep.warnings, rep.warnings
    return {(f.details["package"]["name"], f.rule_id): f for f in rep.findings}


def _pkg(name: str, version: str, eco: str, source: str = "", **kw) -> Package:
    return Package(name=name, version=version, ecosystem=eco, source_name=source,
                   locations=[Location(path="x", layer="sha256:" + "b" * 64)], **kw)


def _ids(found: dict) -> set[str]:
    return {rule for _, rule in found}


# --- which advisory ecosystems an OS release reads ------------------------------------------------


@pytest.mark.parametrize(("os_info", "pkg_eco", "ecosystem", "expected"), [
    (OSInfo(family="debian", release="12"), "deb", "Debian:12", True),
    (OSInfo(family="debian", release="12.5"), "deb", "Debian:12", True),
    (OSInfo(family="debian", release="12"), "deb", "Debian:11", False),
    (OSInfo(family="debian", release="", codename="trixie"), "deb", "Debian:13", True),  # testing
    (UBUNTU_2204, "deb", "Ubuntu:22.04:LTS", True),
    (UBUNTU_2204, "deb", "Ubuntu:Pro:22.04:LTS", True),  # ESM data; osv.dev folds Pro into the release
    (UBUNTU_2204, "deb", "Ubuntu:Pro:FIPS:22.04:LTS", False),  # FIPS builds are other packages
    (UBUNTU_2204, "deb", "Ubuntu:Pro:22.04:LTS:Realtime:Kernel", False),
    (UBUNTU_2204, "deb", "Ubuntu:20.04:LTS", False),
    (OSInfo(family="ubuntu", release="25.04"), "deb", "Ubuntu:25.04", True),
    (OSInfo(family="ubuntu", release="25.04"), "deb", "Ubuntu:25.10", False),
    (ALPINE_319, "apk", "Alpine:v3.19", True),
    (ALPINE_319, "apk", "Alpine:v3.1", False),
    (OSInfo(family="alpine", release="3.20.3"), "apk", "Alpine:v3.19", False),
    (OSInfo(family="wolfi", release="20230201"), "apk", "Wolfi", True),
    (OSInfo(family="chainguard", release="20230214"), "apk", "Chainguard", True),
    (ROCKY_9, "rpm", "Rocky Linux:9", True),
    (ROCKY_9, "rpm", "Rocky Linux:8", False),
    (ALMA_9, "rpm", "AlmaLinux:9", True),
    (OSInfo(family="almalinux", release="8.10"), "rpm", "AlmaLinux:9", False),
    (OSInfo(family="rhel", release="9.4"), "rpm", "Red Hat:enterprise_linux:9::appstream", True),
    (OSInfo(family="rhel", release="9.4"), "rpm", "Red Hat:enterprise_linux:9::baseos", True),
    (OSInfo(family="rhel", release="9.4"), "rpm", "Red Hat:enterprise_linux:8::baseos", False),
    (OSInfo(family="rhel", release="9.4"), "rpm", "Red Hat:rhel_eus:9.2::appstream", False),
    (OSInfo(family="opensuse-leap", release="15.6", name="openSUSE Leap 15.6"), "rpm", "openSUSE:Leap 15.6", True),
    (OSInfo(family="opensuse-leap", release="15.6", name="openSUSE Leap 15.6"), "rpm",
     "openSUSE:Leap 15.6 NonFree", True),
    (OSInfo(family="opensuse-leap", release="15.6", name="openSUSE Leap 15.6"), "rpm", "openSUSE:Leap 15.5", False),
    (OSInfo(family="opensuse-tumbleweed", release="20240801", name="openSUSE Tumbleweed"), "rpm",
     "openSUSE:Tumbleweed", True),
    (OSInfo(family="sles", release="15.5", name="SUSE Linux Enterprise Server 15 SP5"), "rpm",
     "SUSE:Linux Enterprise Server 15 SP5", True),
    (OSInfo(family="sles", release="15.5", name="SUSE Linux Enterprise Server 15 SP5"), "rpm",
     "SUSE:Linux Enterprise Module for Basesystem 15 SP5", True),
    (OSInfo(family="sles", release="15.5", name="SUSE Linux Enterprise Server 15 SP5"), "rpm",
     "SUSE:Linux Enterprise Server 15 SP4", False),
])
def test_release_to_advisory_ecosystem(os_info: OSInfo, pkg_eco: str, ecosystem: str, expected: bool) -> None:
    eco = distro_ecosystem(os_info, pkg_eco)
    assert eco is not None
    base, release = split_ecosystem(ecosystem)
    assert (eco[0] == base and eco[1](release)) is expected


@pytest.mark.parametrize(("os_info", "pkg_eco"), [
    (OSInfo(family="raspbian", release="12"), "deb"),  # a derivative: Debian's fixes are not its fixes
    (OSInfo(family="fedora", release="40"), "rpm"),  # no OSV feed
    (OSInfo(family="centos", release="7"), "rpm"),
    (OSInfo(family="alpine", release=""), "apk"),
    (OSInfo(family="debian", release="", codename="sid"), "deb"),  # unstable has no release data
])
def test_no_advisory_data(os_info: OSInfo, pkg_eco: str) -> None:
    assert distro_ecosystem(os_info, pkg_eco) is None


# --- Ubuntu -------------------------------------------------------------------------------------


def test_ubuntu_usn_and_cve_record_through_the_source_package(store: Store) -> None:
    _load(store, _real("USN-8611-1.json", "UBUNTU-CVE-2026-4046.json"))
    found = _scan(store, UBUNTU_2204, _pkg("libc6", "2.35-0ubuntu3.13", "deb", "glibc"),
                  _pkg("libc-bin", "2.35-0ubuntu3.13", "deb", "glibc"))
    assert _ids(found) == {"USN-8611-1", "UBUNTU-CVE-2026-4046"}
    usn = found[("libc6", "USN-8611-1")]
    assert usn.fix == "2.35-0ubuntu3.14" and usn.details["status"] == "fixed"
    assert usn.details["matched_name"] == "glibc" and usn.details["advisory_ecosystem"] == "Ubuntu:22.04:LTS"
    # The USN's CVEs are in "upstream"; its priorities per CVE under database_specific.cves_map.
    assert usn.details["cve"] == "CVE-2026-4046" and "CVE-2026-6238" in usn.details["aliases"]
    assert usn.details["distro_severity"] == "medium" and usn.severity == Severity.MEDIUM
    cve = found[("libc6", "UBUNTU-CVE-2026-4046")]
    assert cve.fix == "" and cve.details["status"] == "not yet fixed"
    assert cve.details["distro_severity"] == "medium" and cve.details["cvss"]["score"] == 7.5
    assert cve.severity == Severity.MEDIUM  # Ubuntu's priority, not the CVSS 7.5


def test_ubuntu_fixed_version_installed(store: Store) -> None:
    _load(store, _real("USN-8611-1.json", "UBUNTU-CVE-2026-4046.json"))
    found = _scan(store, UBUNTU_2204, _pkg("libc6", "2.35-0ubuntu3.14", "deb", "glibc"))
    # This copy of the CVE record predates the fix (22.04 still "introduced 0" with no fix), so by
    # the schema's rules every version is affected; the USN, which has the fix, is not reported.
    assert _ids(found) == {"UBUNTU-CVE-2026-4046"}


def test_ubuntu_esm_release_reads_pro_entries(store: Store) -> None:
    _load(store, _real("UBUNTU-CVE-2026-4046.json"))
    found = _scan(store, UBUNTU_2004, _pkg("libc6", "2.31-0ubuntu9.17", "deb", "glibc"))
    assert _ids(found) == {"UBUNTU-CVE-2026-4046"}
    assert found[("libc6", "UBUNTU-CVE-2026-4046")].details["advisory_ecosystem"] == "Ubuntu:Pro:20.04:LTS"
    assert _scan(store, UBUNTU_2404, _pkg("libc6", "2.39-0ubuntu8.7", "deb", "glibc")) == {}


def test_ubuntu_pro_only_fix_is_shown(store: Store) -> None:
    # An older record shape (ecosystem_specific.ubuntu_priority, availability) seen in Canonical's repository.
    _load(store, [record("UBUNTU-CVE-2024-0727", "Ubuntu:Pro:18.04:LTS", "openssl",
                         fixed("1.1.1-1ubuntu2.1~18.04.23+esm4"),
                         ecosystem_specific={"availability": "Available with Ubuntu Pro (Infra-only): "
                                                             "https://ubuntu.com/pro", "ubuntu_priority": "low"})])
    found = _scan(store, OSInfo(family="ubuntu", release="18.04"),
                  _pkg("libssl1.1", "1.1.1-1ubuntu2.1~18.04.23", "deb", "openssl"))
    f = found[("libssl1.1", "UBUNTU-CVE-2024-0727")]
    assert f.details["fix_availability"].startswith("Available with Ubuntu Pro")
    assert f.details["distro_severity"] == "low" and f.severity == Severity.LOW


# --- Alpine -------------------------------------------------------------------------------------


def test_alpine_origin_and_release(store: Store) -> None:
    _load(store, _real("ALPINE-CVE-2025-26519.json"))
    found = _scan(store, ALPINE_319, _pkg("musl", "1.2.4_git20230717-r4", "apk", "musl"),
                  _pkg("musl-utils", "1.2.4_git20230717-r4", "apk", "musl"))
    assert set(found) == {("musl", "ALPINE-CVE-2025-26519"), ("musl-utils", "ALPINE-CVE-2025-26519")}
    f = found[("musl-utils", "ALPINE-CVE-2025-26519")]
    assert f.fix == "1.2.4_git20230717-r5" and f.details["advisory_ecosystem"] == "Alpine:v3.19"
    assert f.details["cve"] == "CVE-2025-26519"  # from "upstream"
    assert f.title.startswith("musl libc 0.9.13 through 1.2.5")  # no summary: the details' first words
    assert f.severity == Severity.HIGH and "distro_severity" not in f.details  # CVSS 7.0, no Alpine rating
    assert _scan(store, ALPINE_319, _pkg("musl", "1.2.4_git20230717-r5", "apk", "musl")) == {}
    # Before the range's upstream "introduced" version nothing is affected.
    assert _scan(store, ALPINE_319, _pkg("musl", "0.9.12-r0", "apk", "musl")) == {}
    # 3.18's own fix applies to 3.18, not 3.19's.
    found = _scan(store, OSInfo(family="alpine", release="3.18.6"), _pkg("musl", "1.2.4-r2", "apk", "musl"))
    assert [f.fix for f in found.values()] == ["1.2.4-r3"]


# --- Debian -------------------------------------------------------------------------------------


def test_debian_dla_source_package(store: Store) -> None:
    _load(store, _real("DLA-3008-1.json"))
    found = _scan(store, DEBIAN_9, _pkg("libssl1.1", "1.1.0l-1~deb9u5", "deb", "openssl"))
    f = found[("libssl1.1", "DLA-3008-1")]
    assert f.fix == "1.1.0l-1~deb9u6" and f.details["cve"] == "CVE-2022-1292"
    assert "DEBIAN-CVE-2022-1292" in f.details["aliases"]
    assert _scan(store, DEBIAN_9, _pkg("libssl1.1", "1.1.0l-1~deb9u6", "deb", "openssl")) == {}
    assert _scan(store, OSInfo(family="debian", release="10"), _pkg("libssl1.1", "1.1.0l-1~deb9u5", "deb",
                                                                     "openssl")) == {}


def test_debian_tracker_urgency_and_states(store: Store) -> None:
    # DEBIAN-CVE records as osv.dev's Debian converter writes them: one affected entry per
    # release, ecosystem_specific {"urgency": <tracker urgency>}, no "fixed" event while open.
    cvss = [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}]
    _load(store, [
        record("DEBIAN-CVE-2024-1000", "Debian:12", "openssl", [{"introduced": "0"}],
               ecosystem_specific={"urgency": "end-of-life"}),
        record("DEBIAN-CVE-2024-1001", "Debian:12", "openssl", [{"introduced": "0"}],
               ecosystem_specific={"urgency": "unimportant"}),
        record("DEBIAN-CVE-2024-1002", "Debian:12", "openssl", fixed("3.0.99-1"),
               ecosystem_specific={"urgency": "not yet assigned"}, severity=cvss),
        record("DEBIAN-CVE-2024-1003", "Debian:12", "openssl", [{"introduced": "0"}],
               ecosystem_specific={"urgency": "low*"}),
    ])
    found = _scan(store, OSInfo(family="debian", release="12"), _pkg("libssl3", "3.0.11-1~deb12u1", "deb", "openssl"))
    by_id = {rule: f for (_, rule), f in found.items()}
    assert {k: f.details["status"] for k, f in by_id.items()} == {
        "DEBIAN-CVE-2024-1000": "will not fix", "DEBIAN-CVE-2024-1001": "not yet fixed",
        "DEBIAN-CVE-2024-1002": "fixed", "DEBIAN-CVE-2024-1003": "not yet fixed"}
    assert by_id["DEBIAN-CVE-2024-1001"].details["distro_severity"] == "unimportant"
    assert by_id["DEBIAN-CVE-2024-1001"].severity == Severity.LOW
    # "not yet assigned" is no rating: the CVSS vector decides.
    assert "distro_severity" not in by_id["DEBIAN-CVE-2024-1002"].details
    assert by_id["DEBIAN-CVE-2024-1002"].severity == Severity.CRITICAL
    assert by_id["DEBIAN-CVE-2024-1003"].details["distro_severity"] == "low"


# --- RPM distributions --------------------------------------------------------------------------


def test_alma_binary_names_and_epoch(store: Store) -> None:
    _load(store, _real("ALSA-2022-6224.json"))
    found = _scan(store, ALMA_9, _pkg("openssl-libs", "1:3.0.1-40.el9_0", "rpm", "openssl"),
                  # No SOURCERPM in the header: the binary name alone must find the record.
                  _pkg("openssl-devel", "1:3.0.1-40.el9_0", "rpm"),
                  _pkg("openssl-libs-debuginfo", "1:3.0.1-40.el9_0", "rpm", "openssl-debug"))
    assert set(found) == {("openssl-libs", "ALSA-2022:6224"), ("openssl-devel", "ALSA-2022:6224")}
    f = found[("openssl-libs", "ALSA-2022:6224")]
    assert f.fix == "1:3.0.1-41.el9_0" and f.details["matched_name"] == "openssl-libs"
    assert f.details["distro_severity"] == "moderate" and f.severity == Severity.MEDIUM  # "Moderate: ..." summary
    assert f.details["cve"] == "CVE-2022-1292" and len(f.details["aliases"]) == 5
    assert _scan(store, ALMA_9, _pkg("openssl-libs", "1:3.0.1-41.el9_0", "rpm", "openssl")) == {}
    # Epoch 1 dominates: 3.0.1-99 without it is older than the 1:3.0.1-41 fix.
    assert len(_scan(store, ALMA_9, _pkg("openssl-libs", "3.0.1-99.el9_0", "rpm", "openssl"))) == 1


def test_rocky_source_name_and_fix_without_epoch(store: Store) -> None:
    _load(store, _real("RLSA-TEST-0001.json"))
    found = _scan(store, ROCKY_9, _pkg("openssl-libs", "1:3.0.7-25.el9", "rpm", "openssl"))
    f = found[("openssl-libs", "RLSA-TEST:0001")]
    # "3.0.7-27.el9" read (and shown) with the installed epoch 1, not rpm's default 0, which
    # would sort it below the installed 1:3.0.7-25 and hide the finding.
    assert f.fix == "1:3.0.7-27.el9" and f.details["matched_name"] == "openssl"
    assert f.details["distro_severity"] == "important" and f.severity == Severity.HIGH
    assert _scan(store, ROCKY_9, _pkg("openssl-libs", "1:3.0.7-27.el9", "rpm", "openssl")) == {}
    assert _scan(store, ROCKY_9, _pkg("openssl-libs", "1:3.0.7-28.el9", "rpm", "openssl")) == {}
    # Epoch 0 installed: nothing to fill, the advisory's text is the fix.
    found = _scan(store, ROCKY_9, _pkg("openssl-libs", "3.0.7-25.el9", "rpm", "openssl"))
    assert [f.fix for f in found.values()] == ["3.0.7-27.el9"]


def test_rpm_explicit_epoch_in_advisory_is_honoured(store: Store) -> None:
    _load(store, [record("RLSA-TEST:0002", "Rocky Linux:9", "sudo", fixed("0:1.9.5p2-10.el9_3")),
                  record("RLSA-TEST:0003", "Rocky Linux:9", "openssl", fixed("2:3.0.7-1.el9"))])
    # Installed epoch 1 is above an explicit epoch 0, and below an explicit epoch 2.
    found = _scan(store, ROCKY_9, _pkg("sudo", "1:1.9.5p2-9.el9", "rpm", "sudo"),
                  _pkg("openssl-libs", "1:3.0.7-25.el9", "rpm", "openssl"))
    assert _ids(found) == {"RLSA-TEST:0003"}


def test_ubuntu_release_entry_decides_over_pro_entry(store: Store) -> None:
    def entry(eco: str, events: list[dict[str, str]]) -> dict:
        return {"package": {"ecosystem": eco, "name": "glibc"}, "ranges": [{"type": "ECOSYSTEM", "events": events}]}

    both = record("UBUNTU-CVE-2026-0001", "Ubuntu:22.04:LTS", "glibc", fixed("2.35-0ubuntu3.5"))
    both["affected"].append(entry("Ubuntu:Pro:22.04:LTS", [{"introduced": "0"}]))
    pro_only = record("UBUNTU-CVE-2026-0002", "Ubuntu:Pro:22.04:LTS", "glibc", fixed("2.35-0ubuntu3.13+esm1"))
    _load(store, [both, pro_only])
    found = _scan(store, UBUNTU_2204, _pkg("libc6", "2.35-0ubuntu3.13", "deb", "glibc"))
    # The release's entry says fixed below the installed version; the Pro entry is not consulted.
    assert _ids(found) == {"UBUNTU-CVE-2026-0002"}
    assert found[("libc6", "UBUNTU-CVE-2026-0002")].fix == "2.35-0ubuntu3.13+esm1"
    found = _scan(store, UBUNTU_2204, _pkg("libc6", "2.35-0ubuntu3.1", "deb", "glibc"))
    assert found[("libc6", "UBUNTU-CVE-2026-0001")].fix == "2.35-0ubuntu3.5"


def test_debian_binary_with_its_own_version_is_compared_by_source_version(store: Store) -> None:
    # dpkg status: "Package: cpp / Source: gcc-defaults (1.203) / Version: 4:12.2.0-3". The
    # records version the source package, so the binary's own version says nothing about them.
    _load(store, [record("DEBIAN-CVE-2024-2000", "Debian:12", "gcc-defaults", fixed("1.204")),
                  record("DEBIAN-CVE-2024-2001", "Debian:12", "bzip2", fixed("1.0.8-5+b2"))])
    debian12 = OSInfo(family="debian", release="12")
    found = _scan(store, debian12, _pkg("cpp", "4:12.2.0-3", "deb", "gcc-defaults", source_version="1.203"),
                  # A binNMU ("+b1") keeps the binary's version: it orders with the source's revisions.
                  _pkg("libbz2-1.0", "1.0.8-5+b1", "deb", "bzip2", source_version="1.0.8-5"))
    assert set(found) == {("cpp", "DEBIAN-CVE-2024-2000"), ("libbz2-1.0", "DEBIAN-CVE-2024-2001")}
    cpp = found[("cpp", "DEBIAN-CVE-2024-2000")]
    assert cpp.details["installed_version"] == "4:12.2.0-3" and cpp.details["compared_version"] == "1.203"
    assert "compared_version" not in found[("libbz2-1.0", "DEBIAN-CVE-2024-2001")].details
    assert _scan(store, debian12, _pkg("cpp", "4:12.2.0-3", "deb", "gcc-defaults", source_version="1.204"),
                 _pkg("libbz2-1.0", "1.0.8-5+b2", "deb", "bzip2", source_version="1.0.8-5")) == {}
