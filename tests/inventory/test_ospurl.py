from __future__ import annotations

import pytest

from hullguard import purl
from hullguard.inventory.ospurl import os_package_purl
from hullguard.model import OSInfo, Package

DEBIAN12 = OSInfo(family="debian", release="12", codename="bookworm")
UBUNTU = OSInfo(family="ubuntu", release="22.04", codename="jammy", id_like=["debian"])
ALPINE = OSInfo(family="alpine", release="3.19.1")
ROCKY = OSInfo(family="rocky", release="9.3")


def deb(name: str, version: str, source: str = "", source_version: str = "", arch: str = "amd64") -> Package:
    return Package(
        name=name,
        version=version,
        ecosystem="deb",
        arch=arch,
        source_name=source or name,
        source_version=source_version or version,
    )


# --- deb ----------------------------------------------------------------------------------------


def test_deb_same_source_has_no_upstream() -> None:
    assert os_package_purl(deb("bash", "5.2.15-2+b7"), DEBIAN12) == (
        "pkg:deb/debian/bash@5.2.15-2%2Bb7?arch=amd64&distro=debian-12"
    )


def test_deb_with_source_package() -> None:
    pkg = deb("libssl3", "3.0.11-1~deb12u2", source="openssl")
    assert os_package_purl(pkg, DEBIAN12) == (
        "pkg:deb/debian/libssl3@3.0.11-1~deb12u2?arch=amd64&distro=debian-12&upstream=openssl"
    )


def test_deb_source_version_differs_binnmu() -> None:
    pkg = deb("libzstd1", "1.5.4+dfsg2-5+b1", source="libzstd", source_version="1.5.4+dfsg2-5")
    assert os_package_purl(pkg, DEBIAN12) == (
        "pkg:deb/debian/libzstd1@1.5.4%2Bdfsg2-5%2Bb1?arch=amd64&distro=debian-12&upstream=libzstd%401.5.4%2Bdfsg2-5"
    )


def test_deb_epoch_stays_in_version_unencoded() -> None:
    got = os_package_purl(deb("libattr1", "1:2.5.1-4", source="attr"), DEBIAN12)
    assert got.startswith("pkg:deb/debian/libattr1@1:2.5.1-4?")
    assert purl.parse(got)["version"] == "1:2.5.1-4"


def test_deb_on_ubuntu_uses_ubuntu_namespace() -> None:
    got = os_package_purl(deb("libc6", "2.35-0ubuntu3.6", source="glibc"), UBUNTU)
    assert got == "pkg:deb/ubuntu/libc6@2.35-0ubuntu3.6?arch=amd64&distro=ubuntu-22.04&upstream=glibc"


def test_deb_without_os_defaults_to_debian_and_no_distro() -> None:
    assert os_package_purl(deb("bash", "5.2", arch="all"), None) == "pkg:deb/debian/bash@5.2?arch=all"


def test_deb_testing_without_version_id_uses_codename() -> None:
    testing = OSInfo(family="debian", codename="trixie")
    assert os_package_purl(deb("bash", "5.2"), testing) == "pkg:deb/debian/bash@5.2?arch=amd64&distro=debian-trixie"


def test_deb_name_is_lowercased_per_spec_and_empty_arch_is_omitted() -> None:
    assert os_package_purl(deb("Weird", "1", arch=""), DEBIAN12) == "pkg:deb/debian/weird@1?distro=debian-12"


# --- apk ----------------------------------------------------------------------------------------


def apk(name: str, version: str, origin: str = "") -> Package:
    return Package(
        name=name,
        version=version,
        ecosystem="apk",
        arch="x86_64",
        source_name=origin or name,
        source_version=version,
    )


def test_apk_same_origin() -> None:
    assert os_package_purl(apk("musl", "1.2.4_git20230717-r4"), ALPINE) == (
        "pkg:apk/alpine/musl@1.2.4_git20230717-r4?arch=x86_64&distro=alpine-3.19.1"
    )


def test_apk_with_origin() -> None:
    assert os_package_purl(apk("libcrypto3", "3.1.4-r5", origin="openssl"), ALPINE) == (
        "pkg:apk/alpine/libcrypto3@3.1.4-r5?arch=x86_64&distro=alpine-3.19.1&upstream=openssl"
    )


def test_apk_on_wolfi() -> None:
    wolfi = OSInfo(family="wolfi", release="20230201")
    assert os_package_purl(apk("glibc", "2.39-r1"), wolfi) == (
        "pkg:apk/wolfi/glibc@2.39-r1?arch=x86_64&distro=wolfi-20230201"
    )


def test_apk_without_os_defaults_to_alpine() -> None:
    assert os_package_purl(apk("musl", "1.2.4-r4"), None) == "pkg:apk/alpine/musl@1.2.4-r4?arch=x86_64"


# --- rpm ----------------------------------------------------------------------------------------


def rpm(version: str, metadata: dict[str, object] | None = None, **kw: str) -> Package:
    return Package(
        name=kw.get("name", "openssl-libs"),
        version=version,
        ecosystem="rpm",
        arch=kw.get("arch", "x86_64"),
        source_name=kw.get("source_name", "openssl"),
        source_version=kw.get("source_version", ""),
        metadata=metadata or {},
    )


def test_rpm_epoch_in_version_becomes_qualifier() -> None:
    pkg = rpm(
        "1:3.0.7-25.el9_3",
        {"epoch": 1, "release": "25.el9_3", "sourcerpm": "openssl-3.0.7-25.el9_3.src.rpm"},
    )
    assert os_package_purl(pkg, ROCKY) == (
        "pkg:rpm/rocky/openssl-libs@3.0.7-25.el9_3?arch=x86_64&distro=rocky-9.3&epoch=1"
        "&upstream=openssl-3.0.7-25.el9_3.src.rpm"
    )


def test_rpm_bare_version_with_release_and_epoch_in_metadata() -> None:
    pkg = rpm("3.0.7", {"epoch": "1", "release": "25.el9", "source_rpm": "openssl-3.0.7-25.el9.src.rpm"})
    parsed = purl.parse(os_package_purl(pkg, ROCKY))
    assert parsed["version"] == "3.0.7-25.el9"
    assert parsed["qualifiers"] == {
        "arch": "x86_64",
        "distro": "rocky-9.3",
        "epoch": "1",
        "upstream": "openssl-3.0.7-25.el9.src.rpm",
    }


def test_rpm_no_epoch_and_epoch_zero_are_omitted() -> None:
    for meta in ({"epoch": None}, {"epoch": 0}, {}):
        got = os_package_purl(rpm("2.34-83.el9", meta, name="glibc", source_name=""), ROCKY)
        assert got == "pkg:rpm/rocky/glibc@2.34-83.el9?arch=x86_64&distro=rocky-9.3"


def test_rpm_upstream_built_from_source_when_no_srpm_name() -> None:
    pkg = rpm("3.0.7-25.el9", {}, source_name="openssl", source_version="3.0.7-25.el9")
    assert purl.parse(os_package_purl(pkg, ROCKY))["qualifiers"]["upstream"] == "openssl-3.0.7-25.el9.src.rpm"  # type: ignore[index]


def test_rpm_name_keeps_its_case() -> None:
    got = os_package_purl(rpm("1.0-1.fc39", {}, name="SDL2", source_name=""), OSInfo(family="fedora", release="39"))
    assert got == "pkg:rpm/fedora/SDL2@1.0-1.fc39?arch=x86_64&distro=fedora-39"


@pytest.mark.parametrize(
    ("family", "namespace"),
    [
        ("rhel", "redhat"),
        ("centos", "centos"),
        ("rocky", "rocky"),
        ("almalinux", "almalinux"),
        ("fedora", "fedora"),
        ("amzn", "amzn"),
        ("ol", "oracle"),
        ("opensuse-leap", "opensuse"),
        ("opensuse-tumbleweed", "opensuse"),
        ("sles", "suse"),
        ("photon", "photon"),
        ("mariner", "mariner"),
    ],
)
def test_rpm_vendor_namespace(family: str, namespace: str) -> None:
    osinfo = OSInfo(family=family, release="1")
    parsed = purl.parse(os_package_purl(rpm("1-1", {}, source_name=""), osinfo))
    assert parsed["namespace"] == namespace
    # The distro qualifier keeps the os-release ID, which is what advisories key on.
    assert parsed["qualifiers"]["distro"] == f"{family}-1"  # type: ignore[index]


def test_rpm_without_os_has_no_namespace() -> None:
    assert os_package_purl(rpm("1-1", {}, name="x", source_name=""), None) == "pkg:rpm/x@1-1?arch=x86_64"


# --- everything else ----------------------------------------------------------------------------


def test_language_packages_keep_their_purl() -> None:
    pkg = Package(name="requests", version="2.31.0", ecosystem="pypi", purl="pkg:pypi/requests@2.31.0")
    assert os_package_purl(pkg, DEBIAN12) == "pkg:pypi/requests@2.31.0"


@pytest.mark.parametrize("eco", ["deb", "apk", "rpm"])
def test_round_trips_through_the_parser(eco: str) -> None:
    pkg = Package(
        name="name+with@odd/chars",
        version="1:2.0+x-1",
        ecosystem=eco,
        arch="amd64",
        source_name="src",
        source_version="1:2.0+x-1",
    )
    parsed = purl.parse(os_package_purl(pkg, OSInfo(family="x", release="1")))
    assert parsed["type"] == eco
    expected_name = pkg.name if eco == "rpm" else pkg.name.lower()
    assert parsed["name"] == expected_name
