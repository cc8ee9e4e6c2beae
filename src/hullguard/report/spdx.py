"""SPDX 2.3 JSON.

SPDX 2.3 has no free-form properties, so the facts CycloneDX carries as ``hullguard:*``
properties (see report/cyclonedx.py for the list) travel here as annotations of type OTHER whose
comment is ``<property name>=<value>``: machine-readable for our SBOM reader, and the same names in
both formats. sourceInfo and comment repeat the locations in prose for people.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any
from urllib.parse import quote

import msgspec

import hullguard
from hullguard.model import Package, ScanResult
from hullguard.report import _licenses
from hullguard.report.cyclonedx import (
    NS,
    artifact_properties,
    content_uuid,
    encode_json,
    image_name_version,
    image_purl,
    image_reference,
    is_image,
    layer_index,
    os_properties,
    package_properties,
    package_refs,
    sorted_packages,
    timestamp,
)

NOASSERTION = "NOASSERTION"
DOCUMENT = "SPDXRef-DOCUMENT"
OS_ID = "SPDXRef-OperatingSystem"
_UNSAFE_ID = re.compile(r"[^A-Za-z0-9.\-]+")


def _tool() -> str:
    return f"Tool: hullguard-{hullguard.__version__}"


def _spdx_id(prefix: str, text: str, unique: str) -> str:
    # Names keep a readable part; the hash of the unique reference keeps ids distinct when two
    # names sanitise to the same string.
    readable = _UNSAFE_ID.sub("-", text).strip("-.")[:80]
    digest = hashlib.sha256(unique.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    return f"SPDXRef-{prefix}-{readable}-{digest}" if readable else f"SPDXRef-{prefix}-{digest}"


class _LicenseRefs:
    """Non-SPDX licence names become LicenseRef ids, each declared once in the document."""

    def __init__(self) -> None:
        self.by_name: dict[str, str] = {}
        self.used_ids: set[str] = set()
        self.verbatim: set[str] = set()

    def ref(self, name: str) -> str:
        found = self.by_name.get(name)
        if found is not None:
            return found
        ref = _licenses.license_ref(name)
        if ref in self.used_ids:
            ref = f"{ref}-{hashlib.sha256(name.encode('utf-8', 'surrogatepass')).hexdigest()[:8]}"
        self.by_name[name] = ref
        self.used_ids.add(ref)
        return ref

    def declared(self, pkg: Package) -> str:
        texts = [t for t in dict.fromkeys(s.strip() for s in pkg.licenses) if t]
        parts: list[str] = []
        for text in texts:
            expr = _licenses.expression(text)
            # A DocumentRef would need an externalDocumentRefs entry we cannot fill in.
            if expr is None or "DocumentRef-" in expr:
                parts.append(self.ref(text))
                continue
            # LicenseRefs written by the package itself must be declared in the document too.
            self.verbatim.update(re.findall(r"(?<![:\w-])LicenseRef-[A-Za-z0-9.\-]+", expr))
            parts.append(f"({expr})" if len(texts) > 1 and _licenses.is_compound(expr) else expr)
        return " AND ".join(parts) if parts else NOASSERTION

    def infos(self) -> list[dict[str, str]]:
        out = [{"licenseId": ref, "name": name, "extractedText": name} for name, ref in self.by_name.items()]
        for ref in self.verbatim - self.used_ids:
            out.append({"licenseId": ref, "name": ref, "extractedText": ref})
        return sorted(out, key=lambda info: info["licenseId"])


def _annotations(pairs: list[tuple[str, str]], created: str) -> list[dict[str, str]]:
    return [
        {
            "annotationDate": created,
            "annotationType": "OTHER",
            "annotator": _tool(),
            "comment": f"{name}={value}",
        }
        for name, value in pairs
    ]


def _source_info(pkg: Package, layers: dict[str, Any]) -> tuple[str, str]:
    where: list[str] = []
    built_by: list[str] = []
    for loc in pkg.locations:
        where.append(f"{loc.path} (layer {loc.layer})" if loc.layer else loc.path)
        layer = layers.get(loc.layer) if loc.layer else None
        if layer is not None and layer.created_by and layer.created_by not in built_by:
            built_by.append(layer.created_by)
    source = ""
    if where:
        source = f"acquired package info from {', '.join(where)}"
        if pkg.found_by:
            source += f" by {pkg.found_by}"
    comment = ""
    if built_by:
        comment = "layer created by: " + " | ".join(built_by)
    if pkg.source_name:
        src = f"source package: {pkg.source_name} {pkg.source_version}".rstrip()
        comment = f"{comment}; {src}" if comment else src
    return source, comment


def build(result: ScanResult) -> dict[str, Any]:
    created = timestamp(result)
    art = result.artifact
    layers = layer_index(result)
    packages = sorted_packages(result.packages)
    refs = package_refs(packages)
    licenses = _LicenseRefs()

    if is_image(art):
        root_name, root_version = image_name_version(art)
        root_id = "SPDXRef-Image"
    else:
        root_name, root_version = art.name, ""
        root_id = "SPDXRef-Filesystem"
    root: dict[str, Any] = {"name": root_name or art.name or "unknown", "SPDXID": root_id}
    if root_version:
        root["versionInfo"] = root_version
    root.update({"downloadLocation": NOASSERTION, "filesAnalyzed": False})
    root_purl = image_purl(art)
    if root_purl:
        root["externalRefs"] = [
            {"referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl", "referenceLocator": root_purl}
        ]
    root["primaryPackagePurpose"] = "CONTAINER" if is_image(art) else "FILE"
    root["annotations"] = _annotations(artifact_properties(result), created)

    spdx_packages: list[dict[str, Any]] = [root]
    relationships: list[dict[str, str]] = []

    if result.os is not None and result.os.family:
        os_pkg: dict[str, Any] = {"name": result.os.family, "SPDXID": OS_ID}
        if result.os.release:
            os_pkg["versionInfo"] = result.os.release
        os_pkg.update({"downloadLocation": NOASSERTION, "filesAnalyzed": False})
        if result.os.name:
            os_pkg["description"] = result.os.name
        os_pkg["primaryPackagePurpose"] = "OPERATING-SYSTEM"
        props = os_properties(result.os)
        if props:
            os_pkg["annotations"] = _annotations(props, created)
        spdx_packages.append(os_pkg)
        relationships.append(_rel(root_id, "CONTAINS", OS_ID))

    ids: dict[str, str] = {}
    for index, pkg in enumerate(packages):
        spdx_id = _spdx_id(f"Package-{pkg.ecosystem}", pkg.name, refs[index])
        ids.setdefault(pkg.id, spdx_id)
        entry: dict[str, Any] = {"name": pkg.name, "SPDXID": spdx_id}
        if pkg.version:
            entry["versionInfo"] = pkg.version
        entry.update(
            {
                "downloadLocation": NOASSERTION,
                "filesAnalyzed": False,
                "licenseConcluded": NOASSERTION,
                "licenseDeclared": licenses.declared(pkg),
                "copyrightText": NOASSERTION,
            }
        )
        source, comment = _source_info(pkg, layers)
        if source:
            entry["sourceInfo"] = source
        if comment:
            entry["comment"] = comment
        if pkg.purl:
            entry["externalRefs"] = [
                {"referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl", "referenceLocator": pkg.purl}
            ]
        kind = pkg.metadata.get("component_type") == "application"
        entry["primaryPackagePurpose"] = "APPLICATION" if kind else "LIBRARY"
        props = package_properties(pkg, layers)
        # licenseDeclared folds all licences into one expression; keep the list for round trips.
        props += [(f"{NS}package:license:{n}", _licenses.spdx_id(text) or text) for n, text in enumerate(pkg.licenses)]
        entry["annotations"] = _annotations(props, created)
        spdx_packages.append(entry)
        relationships.append(_rel(root_id, "CONTAINS", spdx_id))

    for pkg in packages:
        own = ids[pkg.id]
        for dep in sorted({ids[d] for d in pkg.dependencies if d in ids} - {own}):
            relationships.append(_rel(own, "DEPENDS_ON", dep))
    # Sorted for stable output; DESCRIBES is put first because readers look for it there.
    relationships.sort(key=lambda r: (r["spdxElementId"], r["relationshipType"], r["relatedSpdxElement"]))
    relationships.insert(0, _rel(DOCUMENT, "DESCRIBES", root_id))

    doc: dict[str, Any] = {
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": DOCUMENT,
        "name": image_reference(art) or art.name or "unknown",
        "documentNamespace": "",
        "creationInfo": {"created": created, "creators": [_tool()]},
        "packages": spdx_packages,
        "relationships": relationships,
    }
    infos = licenses.infos()
    if infos:
        doc["hasExtractedLicensingInfos"] = infos
    uid = content_uuid(doc)
    doc["documentNamespace"] = f"https://spdx.org/spdxdocs/hullguard-{quote(doc['name'], safe='')}-{uid}"
    return doc


def _rel(left: str, kind: str, right: str) -> dict[str, str]:
    return {"spdxElementId": left, "relationshipType": kind, "relatedSpdxElement": right}


def render(result: ScanResult) -> bytes:
    return msgspec.json.format(encode_json(build(result)), indent=2) + b"\n"
