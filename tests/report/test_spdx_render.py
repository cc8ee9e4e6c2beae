from __future__ import annotations

import json
import re
from typing import Any

from hullguard import __version__
from hullguard.model import Artifact, Location, Package, ScanResult
from hullguard.report import spdx

from .conftest import debian_image_result, filesystem_result

SPDX_ID = re.compile(r"SPDXRef-[A-Za-z0-9.\-]+")


def _doc(result: ScanResult) -> dict[str, Any]:
    return json.loads(spdx.render(result))


def _pkg(doc: dict[str, Any], name: str) -> dict[str, Any]:
    return next(p for p in doc["packages"] if p["name"] == name)


def _rels(doc: dict[str, Any], kind: str) -> set[tuple[str, str]]:
    return {
        (r["spdxElementId"], r["relatedSpdxElement"]) for r in doc["relationships"] if r["relationshipType"] == kind
    }


def test_document_header() -> None:
    doc = _doc(debian_image_result())
    assert doc["spdxVersion"] == "SPDX-2.3"
    assert doc["dataLicense"] == "CC0-1.0"
    assert doc["SPDXID"] == "SPDXRef-DOCUMENT"
    assert doc["name"] == "docker.io/library/debian:12"
    assert doc["creationInfo"] == {"created": "2024-03-01T12:34:56Z", "creators": [f"Tool: hullguard-{__version__}"]}
    assert doc["documentNamespace"].startswith("https://spdx.org/spdxdocs/hullguard-")
    assert "#" not in doc["documentNamespace"]


def test_namespace_is_stable_and_follows_content() -> None:
    first = _doc(debian_image_result())["documentNamespace"]
    assert _doc(debian_image_result())["documentNamespace"] == first
    changed = debian_image_result()
    changed.packages.pop()
    assert _doc(changed)["documentNamespace"] != first


def test_root_and_os_packages() -> None:
    doc = _doc(debian_image_result())
    root = _pkg(doc, "docker.io/library/debian")
    assert root["SPDXID"] == "SPDXRef-Image"
    assert root["primaryPackagePurpose"] == "CONTAINER"
    assert root["externalRefs"][0]["referenceLocator"].startswith("pkg:oci/debian@sha256:")
    assert ("SPDXRef-DOCUMENT", "SPDXRef-Image") in _rels(doc, "DESCRIBES")
    os_pkg = _pkg(doc, "debian")
    assert os_pkg["primaryPackagePurpose"] == "OPERATING-SYSTEM"
    assert os_pkg["versionInfo"] == "12"
    assert ("SPDXRef-Image", os_pkg["SPDXID"]) in _rels(doc, "CONTAINS")
    fs_root = _doc(filesystem_result())["packages"][0]
    assert fs_root["primaryPackagePurpose"] == "FILE"


def test_package_ids_are_valid_and_unique() -> None:
    doc = _doc(debian_image_result())
    ids = [p["SPDXID"] for p in doc["packages"]]
    assert len(ids) == len(set(ids))
    assert all(SPDX_ID.fullmatch(i) for i in ids)
    contained = {right for left, right in _rels(doc, "CONTAINS") if left == "SPDXRef-Image"}
    assert contained == set(ids) - {"SPDXRef-Image"}


def test_package_fields() -> None:
    doc = _doc(debian_image_result())
    libssl = _pkg(doc, "libssl3")
    assert libssl["versionInfo"] == "3.0.11-1~deb12u2"
    assert libssl["downloadLocation"] == "NOASSERTION"
    assert libssl["licenseConcluded"] == "NOASSERTION"
    assert libssl["licenseDeclared"] == "Apache-2.0"
    assert libssl["externalRefs"] == [
        {
            "referenceCategory": "PACKAGE-MANAGER",
            "referenceType": "purl",
            "referenceLocator": "pkg:deb/debian/libssl3@3.0.11-1~deb12u2?arch=amd64&distro=debian-12&upstream=openssl",
        }
    ]
    assert "var/lib/dpkg/status" in libssl["sourceInfo"]
    assert "sha256:a1" in libssl["sourceInfo"]
    assert "ADD file:abc" in libssl["comment"]
    comments = {a["comment"] for a in libssl["annotations"]}
    assert "hullguard:package:source_name=openssl" in comments
    assert all(a["annotationType"] == "OTHER" for a in libssl["annotations"])


def test_licences_become_valid_expressions() -> None:
    doc = _doc(debian_image_result())
    assert _pkg(doc, "serde")["licenseDeclared"] == "MIT OR Apache-2.0"
    assert _pkg(doc, "tzdata")["licenseDeclared"] == "MIT AND (BSD-3-Clause AND (MIT OR Apache-2.0))"
    assert _pkg(doc, "PyYAML")["licenseDeclared"] == "LicenseRef-MIT-License"
    assert _pkg(doc, "stdlib")["licenseDeclared"] == "NOASSERTION"
    libc = _pkg(doc, "libc6")["licenseDeclared"]
    assert libc == "GPL-2.0-or-later AND LGPL-2.1-or-later AND LicenseRef-GFDL-NIV-1.3 AND LicenseRef-public-domain"
    infos = {i["licenseId"]: i for i in doc["hasExtractedLicensingInfos"]}
    assert infos["LicenseRef-MIT-License"]["extractedText"] == "MIT License"
    # Every LicenseRef used anywhere is declared exactly once.
    used = set()
    for pkg in doc["packages"]:
        used.update(re.findall(r"LicenseRef-[A-Za-z0-9.\-]+", pkg.get("licenseDeclared", "")))
    assert used == set(infos)
    assert len(doc["hasExtractedLicensingInfos"]) == len(infos)


def test_colliding_licence_refs_stay_distinct() -> None:
    pkg = Package(name="a", version="1", ecosystem="npm", licenses=["Foo Bar", "Foo/Bar"])
    doc = _doc(ScanResult(artifact=Artifact(name="d", type="filesystem"), packages=[pkg]))
    refs = [i["licenseId"] for i in doc["hasExtractedLicensingInfos"]]
    assert len(refs) == len(set(refs)) == 2


def test_depends_on_relationships() -> None:
    doc = _doc(debian_image_result())
    ids = {p["name"]: p["SPDXID"] for p in doc["packages"]}
    depends = _rels(doc, "DEPENDS_ON")
    assert (ids["libssl3"], ids["libc6"]) in depends
    assert (ids["perl-base"], ids["libc6"]) in depends
    assert (ids["@babel/core"], ids["left-pad"]) in depends
    assert len(depends) == 3


def test_same_name_in_two_places_gets_two_ids() -> None:
    result = ScanResult(
        artifact=Artifact(name="d", type="filesystem"),
        packages=[
            Package(name="x", version="1", ecosystem="npm", locations=[Location(path="a/package.json")]),
            Package(name="x", version="1", ecosystem="npm", locations=[Location(path="b/package.json")]),
        ],
    )
    ids = [p["SPDXID"] for p in _doc(result)["packages"]]
    assert len(ids) == len(set(ids)) == 3
