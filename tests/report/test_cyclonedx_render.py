from __future__ import annotations

import json
import uuid
from typing import Any

from hullguard import __version__
from hullguard.model import Artifact, Location, Package, ScanResult
from hullguard.report import cyclonedx

from .conftest import APP, APP_DIFF, MANIFEST, debian_image_result, filesystem_result


def _doc(result: ScanResult) -> dict[str, Any]:
    return json.loads(cyclonedx.render(result))


def _props(comp: dict[str, Any]) -> dict[str, str]:
    return {p["name"]: p["value"] for p in comp.get("properties", [])}


def _by_name(doc: dict[str, Any], name: str) -> dict[str, Any]:
    return next(c for c in doc["components"] if c["name"] == name)


def test_header_and_metadata() -> None:
    doc = _doc(debian_image_result())
    assert doc["bomFormat"] == "CycloneDX"
    assert doc["specVersion"] == "1.6"
    assert doc["version"] == 1
    uuid.UUID(doc["serialNumber"].removeprefix("urn:uuid:"))
    meta = doc["metadata"]
    assert meta["timestamp"] == "2024-03-01T12:34:56Z"
    assert meta["tools"]["components"][0] == {"type": "application", "name": "hullguard", "version": __version__}
    root = meta["component"]
    assert root["type"] == "container"
    assert root["name"] == "docker.io/library/debian"
    assert root["version"] == "12"
    assert root["purl"] == (f"pkg:oci/debian@{MANIFEST}?arch=amd64&repository_url=docker.io%2Flibrary%2Fdebian&tag=12")
    props = _props(root)
    assert props["hullguard:image:config_digest"].startswith("sha256:d4")
    assert props["hullguard:image:repo_tag:0"] == "debian:12"
    assert props["hullguard:layer:1:digest"] == APP
    assert props["hullguard:layer:1:created_by"] == "COPY app /app # buildkit"


def test_image_without_manifest_digest_has_no_purl() -> None:
    result = ScanResult(artifact=Artifact(name="img.tar", type="docker-archive", repo_tags=["app:1.0"]))
    root = _doc(result)["metadata"]["component"]
    assert root["type"] == "container"
    assert (root["name"], root["version"]) == ("app", "1.0")
    assert "purl" not in root


def test_filesystem_root_is_a_file_component() -> None:
    root = _doc(filesystem_result())["metadata"]["component"]
    assert root["type"] == "file"
    assert root["name"] == "./project"


def test_operating_system_component() -> None:
    os_comp = _by_name(_doc(debian_image_result()), "debian")
    assert os_comp["type"] == "operating-system"
    assert os_comp["version"] == "12"
    assert os_comp["description"] == "Debian GNU/Linux 12 (bookworm)"
    assert _props(os_comp)["hullguard:os:codename"] == "bookworm"


def test_package_components_carry_purl_and_properties() -> None:
    doc = _doc(debian_image_result())
    libssl = _by_name(doc, "libssl3")
    assert libssl["type"] == "library"
    assert libssl["bom-ref"] == "deb:libssl3@3.0.11-1~deb12u2#var/lib/dpkg/status"
    assert libssl["purl"].startswith("pkg:deb/debian/libssl3@3.0.11-1~deb12u2?arch=amd64&distro=debian-12")
    props = _props(libssl)
    assert props["hullguard:package:ecosystem"] == "deb"
    assert props["hullguard:package:source_name"] == "openssl"
    assert props["hullguard:package:arch"] == "amd64"
    assert props["hullguard:location:0:path"] == "var/lib/dpkg/status"
    assert props["hullguard:location:0:layer_created_by"].startswith("/bin/sh -c #(nop) ADD")
    assert props["hullguard:metadata:installed_size"] == "6200"
    babel = _by_name(doc, "@babel/core")
    assert babel["purl"] == "pkg:npm/%40babel/core@7.23.9"
    assert _props(babel)["hullguard:location:0:layer"] == APP
    assert _props(babel)["hullguard:location:0:layer_diff_id"] == APP_DIFF
    log4j = _by_name(doc, "org.apache.logging.log4j:log4j-core")
    assert log4j["purl"] == "pkg:maven/org.apache.logging.log4j/log4j-core@2.14.1"
    weird = _by_name(doc, "weird name/with spaces&ampersand?#")
    assert " " not in weird["purl"]


def test_licence_kinds() -> None:
    doc = _doc(debian_image_result())
    assert _by_name(doc, "libssl3")["licenses"] == [{"license": {"id": "Apache-2.0"}}]
    assert _by_name(doc, "serde")["licenses"] == [{"expression": "MIT OR Apache-2.0"}]
    assert _by_name(doc, "PyYAML")["licenses"] == [{"license": {"name": "MIT License"}}]
    # Several licences: ids where known, everything else (expressions included) by name, because
    # the schema allows an expression only as the single entry.
    assert _by_name(doc, "tzdata")["licenses"] == [
        {"license": {"id": "MIT"}},
        {"license": {"name": "BSD-3-Clause AND (MIT OR Apache-2.0)"}},
    ]
    assert "licenses" not in _by_name(doc, "stdlib")


def test_dependencies_resolve_to_bom_refs() -> None:
    doc = _doc(debian_image_result())
    refs = {c["bom-ref"] for c in doc["components"]}
    deps = {d["ref"]: d["dependsOn"] for d in doc["dependencies"]}
    libc = "deb:libc6@2.36-9+deb12u4#var/lib/dpkg/status"
    # The dangling id (deb:missing@1) is dropped rather than pointing nowhere.
    assert deps["deb:perl-base@5.36.0-7+deb12u1#var/lib/dpkg/status"] == [libc]
    assert deps["npm:@babel/core@7.23.9#app/node_modules/@babel/core/package.json"] == [
        "npm:left-pad@1.3.0#app/node_modules/left-pad/package.json"
    ]
    assert libc in deps[cyclonedx.OS_REF]
    for ref, targets in deps.items():
        assert ref in refs
        assert set(targets) <= refs


def test_vulnerabilities_section() -> None:
    doc = _doc(debian_image_result())
    vulns = {v["id"]: v for v in doc["vulnerabilities"]}
    assert set(vulns) == {"CVE-2021-44228", "CVE-2023-5678"}  # the secret finding is not a vuln
    log4shell = vulns["CVE-2021-44228"]
    assert log4shell["source"]["name"] == "osv"
    assert {"severity": "critical", "method": "other"} in log4shell["ratings"]
    cvss = next(r for r in log4shell["ratings"] if "vector" in r)
    assert cvss["method"] == "CVSSv31" and cvss["score"] == 10.0
    assert log4shell["cwes"] == [502, 917]
    assert log4shell["affects"] == [
        {
            "ref": "maven:org.apache.logging.log4j:log4j-core@2.14.1#app/lib/log4j-core-2.14.1.jar",
            "versions": [{"version": "2.14.1", "status": "affected"}],
        }
    ]
    assert "2.15.0" in log4shell["recommendation"]
    assert vulns["CVE-2023-5678"]["affects"][0]["ref"].startswith("deb:libssl3@")


def test_output_is_deterministic_and_serial_follows_content() -> None:
    first = debian_image_result()
    shuffled = debian_image_result()
    shuffled.packages.reverse()
    assert cyclonedx.render(first) == cyclonedx.render(shuffled)
    changed = debian_image_result()
    changed.packages[0].version = "9.9.9"
    assert _doc(changed)["serialNumber"] != _doc(first)["serialNumber"]


def test_duplicate_packages_get_unique_bom_refs() -> None:
    pkg = Package(name="a", version="1", ecosystem="npm", locations=[Location(path="x/package.json")])
    twin = Package(name="a", version="1", ecosystem="npm", locations=[Location(path="x/package.json")])
    doc = _doc(ScanResult(artifact=Artifact(name="dir", type="filesystem"), packages=[pkg, twin]))
    refs = [c["bom-ref"] for c in doc["components"]]
    assert len(refs) == len(set(refs)) == 2


def test_missing_or_odd_timestamp_falls_back_to_epoch() -> None:
    result = filesystem_result()
    assert _doc(result)["metadata"]["timestamp"] == "1970-01-01T00:00:00Z"
    result.generated_at = "2024-05-05T10:00:00+02:00"
    assert _doc(result)["metadata"]["timestamp"] == "2024-05-05T08:00:00Z"
    result.generated_at = "yesterday"
    assert _doc(result)["metadata"]["timestamp"] == "1970-01-01T00:00:00Z"
