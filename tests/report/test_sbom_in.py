"""read_sbom: our own documents round-trip; syft- and trivy-shaped documents map onto the model."""

from __future__ import annotations

from pathlib import Path

import pytest

from hullguard.inventory.sbom_in import read_sbom
from hullguard.model import Location, Package, ScanResult
from hullguard.report import cyclonedx, spdx
from hullguard.report._licenses import spdx_id

from .conftest import BASE, debian_image_result, filesystem_result

FIXTURES = Path(__file__).parent / "fixtures"


def _key(pkg: Package) -> tuple[object, ...]:
    return (
        pkg.name,
        pkg.version,
        pkg.ecosystem,
        pkg.purl,
        pkg.source_name,
        pkg.source_version,
        pkg.arch,
        tuple(pkg.locations),
        pkg.found_by,
    )


def _by_name(result: ScanResult) -> dict[str, Package]:
    return {p.name: p for p in result.packages}


@pytest.mark.parametrize("fmt", [cyclonedx, spdx], ids=["cyclonedx", "spdx"])
@pytest.mark.parametrize("make", [debian_image_result, filesystem_result], ids=["image", "fs"])
def test_round_trip(fmt: object, make: object) -> None:
    original = make()  # type: ignore[operator]
    back = read_sbom(fmt.render(original), "sbom.json")  # type: ignore[attr-defined]
    assert sorted(map(_key, back.packages)) == sorted(map(_key, original.packages))
    assert back.warnings == []
    # Dependencies come back as package ids; the dangling one in the fixture is dropped on output.
    deps = {p.id: sorted(p.dependencies) for p in back.packages if p.dependencies}
    want = {
        p.id: sorted(d for d in p.dependencies if d in {q.id for q in original.packages})
        for p in original.packages
        if p.dependencies
    }
    assert deps == want
    assert back.os == original.os
    assert back.artifact.name == "sbom.json"
    assert back.artifact.type == "sbom"
    assert back.artifact.manifest_digest == original.artifact.manifest_digest
    assert back.artifact.config_digest == original.artifact.config_digest
    assert back.artifact.repo_tags == original.artifact.repo_tags
    assert [(lay.digest, lay.diff_id, lay.created_by) for lay in back.layers] == [
        (lay.digest, lay.diff_id, lay.created_by) for lay in original.layers
    ]


@pytest.mark.parametrize("fmt", [cyclonedx, spdx], ids=["cyclonedx", "spdx"])
def test_round_trip_licences(fmt: object) -> None:
    original = debian_image_result()
    back = _by_name(read_sbom(fmt.render(original), "x"))  # type: ignore[attr-defined]
    for pkg in original.packages:
        # Known SPDX ids come back in their canonical spelling ("mit" -> "MIT").
        want = [spdx_id(text) or text for text in pkg.licenses]
        assert back[pkg.name].licenses == want, pkg.name


def test_round_trip_keeps_scalar_metadata_as_strings() -> None:
    back = read_sbom(cyclonedx.render(debian_image_result()), "x")
    assert _by_name(back)["libssl3"].metadata == {
        "installed_size": "6200",
        "maintainer": "Debian OpenSSL Team",
    }


def test_syft_image_cyclonedx_fixture() -> None:
    result = read_sbom((FIXTURES / "syft-image.cdx.json").read_bytes(), "alpine.cdx.json")
    assert result.artifact.manifest_digest == "sha256:" + "1" * 64
    assert result.artifact.repo_tags == ["alpine:3.19"]
    assert result.os is not None
    assert (result.os.family, result.os.release, result.os.name) == ("alpine", "3.19.1", "Alpine Linux v3.19")
    pkgs = _by_name(result)
    crypto = pkgs["libcrypto3"]
    assert (crypto.ecosystem, crypto.source_name, crypto.arch) == ("apk", "openssl", "x86_64")
    assert crypto.locations == [Location(path="lib/apk/db/installed", layer="sha256:" + "2" * 64)]
    assert crypto.licenses == ["Apache-2.0"]
    assert crypto.found_by == "apk-db-cataloger"
    assert crypto.dependencies == [pkgs["musl"].id]
    assert pkgs["musl"].licenses == ["MIT"]
    # Maven names follow the advisory databases (group:artifact), nested components included.
    assert pkgs["com.fasterxml.jackson.core:jackson-databind"].ecosystem == "maven"
    assert "com.fasterxml.jackson.core:jackson-annotations" in pkgs
    assert pkgs["golang.org/x/net"].ecosystem == "golang"
    assert pkgs["actions/checkout"].ecosystem == "github"
    assert "/etc/passwd" not in pkgs
    assert result.warnings == []


def test_trivy_image_cyclonedx_fixture() -> None:
    result = read_sbom((FIXTURES / "trivy-image.cdx.json").read_bytes(), "ubi.json")
    art = result.artifact
    assert art.manifest_digest == "sha256:" + "4" * 64
    assert art.config_digest == "sha256:" + "6" * 64
    assert art.repo_tags == ["registry.access.redhat.com/ubi9:9.3"]
    assert art.repo_digests == ["registry.access.redhat.com/ubi9@sha256:" + "4" * 64]
    assert art.architecture == "amd64"
    assert [layer.diff_id for layer in result.layers] == ["sha256:" + "5" * 64]
    assert result.os is not None and (result.os.family, result.os.release) == ("rhel", "9.3")
    pkgs = _by_name(result)
    ssl = pkgs["openssl-libs"]
    assert (ssl.ecosystem, ssl.version) == ("rpm", "1:3.0.7-24.el9")
    assert (ssl.source_name, ssl.source_version) == ("openssl", "1:3.0.7-24.el9")
    assert ssl.licenses == ["ASL 2.0"]
    urllib3 = pkgs["urllib3"]
    assert urllib3.ecosystem == "pypi"
    assert urllib3.locations[0].path.endswith("PKG-INFO")
    assert urllib3.locations[0].layer == "sha256:" + "5" * 64


def test_trivy_image_spdx_fixture() -> None:
    result = read_sbom((FIXTURES / "trivy-image.spdx.json").read_bytes(), "debian.spdx.json")
    assert result.artifact.manifest_digest == "sha256:" + "7" * 64
    assert result.artifact.architecture == "amd64"
    assert result.os is not None and (result.os.family, result.os.release) == ("debian", "12.4")
    pkgs = _by_name(result)
    assert set(pkgs) == {"libssl3", "libc6", "express"}
    ssl = pkgs["libssl3"]
    assert (ssl.source_name, ssl.source_version) == ("openssl", "3.0.11-1~deb12u2")
    assert ssl.licenses == ["Apache-2.0"]
    assert ssl.dependencies == [pkgs["libc6"].id]
    # A lone LicenseRef is replaced by the licence name the document declares for it.
    assert pkgs["libc6"].licenses == ["GPL-2+"]
    express = pkgs["express"]
    assert express.locations == [Location(path="app/node_modules/express/package.json", layer="sha256:" + "ab" * 32)]
    assert result.generated_at == "2024-02-12T10:00:00Z"


def test_legacy_cyclonedx_1_2() -> None:
    result = read_sbom((FIXTURES / "legacy-1.2.cdx.json").read_bytes(), "old.json")
    pkgs = _by_name(result)
    assert pkgs["lodash"].licenses == ["MIT OR CC0-1.0"]
    assert pkgs["serde"].ecosystem == "cargo"
    assert result.os is None
    assert len(result.warnings) == 1 and "no-purl-no-type" in result.warnings[0]


def test_os_from_distro_qualifier() -> None:
    doc = b"""{"bomFormat": "CycloneDX", "specVersion": "1.4", "components": [
        {"type": "library", "name": "bash", "version": "5.2.15-2+b2",
         "purl": "pkg:deb/debian/bash@5.2.15-2%2Bb2?arch=amd64&distro=debian-12"},
        {"type": "library", "name": "zlib", "version": "1.3.1-r0",
         "purl": "pkg:apk/alpine/zlib@1.3.1-r0?distro=3.19.1"}]}"""
    result = read_sbom(doc, "x")
    assert result.os is not None and (result.os.family, result.os.release) == ("debian", "12")


@pytest.mark.parametrize(
    ("upstream", "ptype", "expected"),
    [
        ("openssl", "deb", ("openssl", "")),
        ("openssl%401.2", "deb", ("openssl", "1.2")),
        ("openssl-3.0.7-24.el9.src.rpm", "rpm", ("openssl", "3.0.7-24.el9")),
    ],
)
def test_source_from_upstream_qualifier(upstream: str, ptype: str, expected: tuple[str, str]) -> None:
    doc = (
        '{"bomFormat": "CycloneDX", "specVersion": "1.6", "components": [{"type": "library", '
        f'"name": "libx", "version": "1", "purl": "pkg:{ptype}/distro/libx@1?upstream={upstream}"}}]}}'
    )
    pkg = read_sbom(doc.encode(), "x").packages[0]
    assert (pkg.source_name, pkg.source_version) == expected


def test_layer_of_round_tripped_locations_is_kept() -> None:
    back = read_sbom(spdx.render(debian_image_result()), "x")
    assert _by_name(back)["libc6"].locations == [Location(path="var/lib/dpkg/status", layer=BASE)]
