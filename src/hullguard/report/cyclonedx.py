"""CycloneDX 1.6 JSON.

Properties use the ``hullguard:`` namespace so consumers (and our own SBOM reader) can tell them
from other tools' and round-trip what the standard fields cannot hold. ``<n>`` counts from 0.

On each package component:
  hullguard:package:ecosystem          deb, apk, rpm, pypi, npm, maven, golang, ...
  hullguard:package:source_name        distro source package (Debian Source:, apk origin, SRPM name)
  hullguard:package:source_version
  hullguard:package:arch
  hullguard:package:found_by           the analyzer that reported it
  hullguard:location:<n>:path          file that evidenced the package, relative to the image root
  hullguard:location:<n>:layer         digest of the layer that introduced that file
  hullguard:location:<n>:layer_diff_id
  hullguard:location:<n>:layer_created_by   the history entry (Dockerfile line) of that layer
  hullguard:metadata:<key>             scalar analyzer extras (rpm epoch, modularity label, ...)

On the image (metadata.component):
  hullguard:artifact:type, hullguard:image:manifest_digest, hullguard:image:config_digest,
  hullguard:image:repo_tag:<n>, hullguard:image:repo_digest:<n>, hullguard:image:os,
  hullguard:image:architecture, hullguard:image:variant, hullguard:image:created,
  hullguard:layer:<n>:digest, hullguard:layer:<n>:diff_id, hullguard:layer:<n>:created_by

On the operating-system component:
  hullguard:os:codename, hullguard:os:id_like:<n>, hullguard:os:distroless
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import msgspec

import hullguard
from hullguard import purl as purls
from hullguard.model import Artifact, Finding, Layer, OSInfo, Package, ScanResult, Severity
from hullguard.report import _licenses

SPEC_VERSION = "1.6"
NS = "hullguard:"
DISTRO_ECOSYSTEMS = frozenset({"deb", "apk", "rpm"})
ROOT_REF = "hullguard:artifact"
OS_REF = "hullguard:os"

_EPOCH = "1970-01-01T00:00:00Z"
_SEVERITY = {
    Severity.CRITICAL: "critical",
    Severity.HIGH: "high",
    Severity.MEDIUM: "medium",
    Severity.LOW: "low",
    Severity.UNKNOWN: "unknown",
}
_CVSS_METHOD = {
    "2": "CVSSv2",
    "2.0": "CVSSv2",
    "3.0": "CVSSv3",
    "3": "CVSSv31",
    "3.1": "CVSSv31",
    "4": "CVSSv4",
    "4.0": "CVSSv4",
}


# ---------------------------------------------------------------- helpers shared with spdx.py


def timestamp(result: ScanResult) -> str:
    """generated_at as UTC without fractions (SPDX's pattern forbids them). A result without a
    scan time gets the epoch rather than the wall clock, so output stays a function of input."""
    text = result.generated_at.strip()
    if not text:
        return _EPOCH
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return _EPOCH
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def split_reference(ref: str) -> tuple[str, str, str, str]:
    """(registry, repository, tag, digest) of an image reference, with Docker Hub defaults filled
    in so the repository_url of an image purl is the same however the user spelled the name."""
    digest = ""
    if "@" in ref:
        ref, digest = ref.split("@", 1)
    tag = ""
    colon = ref.rfind(":")
    if colon > ref.rfind("/"):
        ref, tag = ref[:colon], ref[colon + 1 :]
    first, _, rest = ref.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        registry, repository = first, rest
    else:
        registry, repository = "docker.io", ref
    if registry == "docker.io" and "/" not in repository:
        repository = "library/" + repository
    return registry, repository, tag, digest


def image_reference(artifact: Artifact) -> str:
    """The name by which the image is known, or "" for images only known by a file path."""
    if artifact.type == "registry":
        return artifact.name
    if artifact.repo_tags:
        return artifact.repo_tags[0]
    if artifact.repo_digests:
        return artifact.repo_digests[0]
    return ""


def is_image(artifact: Artifact) -> bool:
    return artifact.type not in ("filesystem", "sbom") or bool(artifact.manifest_digest)


def image_name_version(artifact: Artifact) -> tuple[str, str]:
    ref = image_reference(artifact)
    if not ref:
        return artifact.name, artifact.manifest_digest or artifact.config_digest
    _, _, tag, digest = split_reference(ref)
    name = ref.split("@", 1)[0]
    if tag:
        name = name[: -(len(tag) + 1)]
    return name, tag or digest or artifact.manifest_digest


def image_purl(artifact: Artifact) -> str:
    if not artifact.manifest_digest.startswith("sha256:"):
        return ""
    qualifiers: dict[str, str] = {}
    ref = image_reference(artifact)
    name = artifact.name.rsplit("/", 1)[-1]
    if ref:
        registry, repository, tag, _ = split_reference(ref)
        name = repository.rsplit("/", 1)[-1]
        qualifiers["repository_url"] = f"{registry}/{repository}"
        qualifiers["tag"] = tag
    qualifiers["arch"] = artifact.architecture
    return purls.build("oci", name.lower() or "image", artifact.manifest_digest, qualifiers=qualifiers)


def layer_index(result: ScanResult) -> dict[str, Layer]:
    """Layers by digest and by diff id: locations may name either."""
    out: dict[str, Layer] = {}
    for layer in result.layers:
        if layer.diff_id:
            out.setdefault(layer.diff_id, layer)
        out[layer.digest] = layer
    return out


def sorted_packages(packages: Iterable[Package]) -> list[Package]:
    return sorted(packages, key=lambda p: (p.ecosystem, p.name, p.version, p.id, p.purl))


def package_refs(packages: list[Package]) -> dict[int, str]:
    """A unique reference per package (by position), derived from Package.id; identical ids (the
    same package reported twice at one path) get a counter."""
    seen: dict[str, int] = {}
    out: dict[int, str] = {}
    for index, pkg in enumerate(packages):
        base = pkg.id
        count = seen.get(base, 0)
        seen[base] = count + 1
        out[index] = base if count == 0 else f"{base}~{count}"
    return out


def package_properties(pkg: Package, layers: dict[str, Layer]) -> list[tuple[str, str]]:
    props: list[tuple[str, str]] = [(NS + "package:ecosystem", pkg.ecosystem)]
    for key, value in (
        ("source_name", pkg.source_name),
        ("source_version", pkg.source_version),
        ("arch", pkg.arch),
        ("found_by", pkg.found_by),
    ):
        if value:
            props.append((f"{NS}package:{key}", value))
    for n, loc in enumerate(pkg.locations):
        props.append((f"{NS}location:{n}:path", loc.path))
        if loc.layer:
            props.append((f"{NS}location:{n}:layer", loc.layer))
            layer = layers.get(loc.layer)
            if layer is not None:
                if layer.diff_id and layer.diff_id != loc.layer:
                    props.append((f"{NS}location:{n}:layer_diff_id", layer.diff_id))
                if layer.created_by:
                    props.append((f"{NS}location:{n}:layer_created_by", layer.created_by))
    for key in sorted(pkg.metadata):
        value = pkg.metadata[key]
        # Only scalars: nested structures have no faithful flat string form.
        if isinstance(value, bool):
            props.append((f"{NS}metadata:{key}", "true" if value else "false"))
        elif isinstance(value, str | int | float) and str(value):
            props.append((f"{NS}metadata:{key}", str(value)))
    return props


def artifact_properties(result: ScanResult) -> list[tuple[str, str]]:
    art = result.artifact
    props: list[tuple[str, str]] = [(NS + "artifact:type", art.type)]
    for key, value in (
        ("manifest_digest", art.manifest_digest),
        ("config_digest", art.config_digest),
        ("os", art.os),
        ("architecture", art.architecture),
        ("variant", art.variant),
        ("created", art.created),
    ):
        if value:
            props.append((f"{NS}image:{key}", value))
    props += [(f"{NS}image:repo_tag:{n}", tag) for n, tag in enumerate(art.repo_tags)]
    props += [(f"{NS}image:repo_digest:{n}", dig) for n, dig in enumerate(art.repo_digests)]
    for n, layer in enumerate(result.layers):
        props.append((f"{NS}layer:{n}:digest", layer.digest))
        if layer.diff_id:
            props.append((f"{NS}layer:{n}:diff_id", layer.diff_id))
        if layer.created_by:
            props.append((f"{NS}layer:{n}:created_by", layer.created_by))
    return props


def os_properties(os_info: OSInfo) -> list[tuple[str, str]]:
    props: list[tuple[str, str]] = []
    if os_info.codename:
        props.append((NS + "os:codename", os_info.codename))
    props += [(f"{NS}os:id_like:{n}", like) for n, like in enumerate(os_info.id_like)]
    if os_info.distroless:
        props.append((NS + "os:distroless", "true"))
    return props


def _scrub(node: Any) -> Any:
    if isinstance(node, str):
        try:
            node.encode("utf-8")
        except UnicodeEncodeError:
            return node.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
        return node
    if isinstance(node, dict):
        return {_scrub(k): _scrub(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_scrub(v) for v in node]
    return node


def encode_json(doc: Any, *, deterministic: bool = False) -> bytes:
    """JSON bytes of ``doc``. Paths read from image tars can carry surrogate-escaped bytes that
    are not valid UTF-8; those become U+FFFD rather than failing the whole report."""
    order = "deterministic" if deterministic else None
    try:
        return msgspec.json.encode(doc, order=order)
    except UnicodeEncodeError:
        return msgspec.json.encode(_scrub(doc), order=order)


def content_uuid(doc: Any) -> uuid.UUID:
    digest = hashlib.sha256(encode_json(doc, deterministic=True)).hexdigest()
    return uuid.uuid5(uuid.NAMESPACE_URL, "urn:hullguard:sbom:" + digest)


# ---------------------------------------------------------------- CycloneDX


def _props(pairs: list[tuple[str, str]]) -> list[dict[str, str]]:
    return [{"name": name, "value": value} for name, value in pairs]


def _licenses_of(pkg: Package) -> list[dict[str, Any]]:
    texts = [t for t in dict.fromkeys(s.strip() for s in pkg.licenses) if t]
    if not texts:
        return []
    if len(texts) == 1:
        # The schema allows an expression only as the single entry of the list.
        text = texts[0]
        if _licenses.spdx_id(text) is None:
            expr = _licenses.expression(text)
            if expr is not None:
                return [{"expression": expr}]
    out: list[dict[str, Any]] = []
    for text in texts:
        known = _licenses.spdx_id(text)
        out.append({"license": {"id": known} if known else {"name": text}})
    return out


def _component(pkg: Package, ref: str, layers: dict[str, Layer]) -> dict[str, Any]:
    kind = "application" if pkg.metadata.get("component_type") == "application" else "library"
    comp: dict[str, Any] = {"type": kind, "bom-ref": ref, "name": pkg.name}
    if pkg.version:
        comp["version"] = pkg.version
    lic = _licenses_of(pkg)
    if lic:
        comp["licenses"] = lic
    if pkg.purl:
        comp["purl"] = pkg.purl
    comp["properties"] = _props(package_properties(pkg, layers))
    return comp


def _root_component(result: ScanResult) -> dict[str, Any]:
    art = result.artifact
    if is_image(art):
        name, version = image_name_version(art)
        comp: dict[str, Any] = {"type": "container", "bom-ref": ROOT_REF, "name": name or art.name}
        if version:
            comp["version"] = version
        purl = image_purl(art)
        if purl:
            comp["purl"] = purl
    else:
        comp = {"type": "file", "bom-ref": ROOT_REF, "name": art.name}
    comp["properties"] = _props(artifact_properties(result))
    return comp


def _os_component(os_info: OSInfo) -> dict[str, Any]:
    comp: dict[str, Any] = {"type": "operating-system", "bom-ref": OS_REF, "name": os_info.family}
    if os_info.release:
        comp["version"] = os_info.release
    if os_info.name:
        comp["description"] = os_info.name
    if os_info.cpe:
        comp["cpe"] = os_info.cpe
    props = os_properties(os_info)
    if props:
        comp["properties"] = _props(props)
    return comp


def _ratings(finding: Finding) -> list[dict[str, Any]]:
    ratings: list[dict[str, Any]] = []
    cvss = finding.details.get("cvss")
    entries = cvss if isinstance(cvss, list) else [cvss] if isinstance(cvss, dict) else []
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        rating: dict[str, Any] = {}
        source = entry.get("source")
        if isinstance(source, str) and source:
            rating["source"] = {"name": source}
        score = entry.get("score")
        if isinstance(score, int | float) and not isinstance(score, bool):
            rating["score"] = float(score)
        sev = entry.get("severity")
        if isinstance(sev, str) and sev:
            rating["severity"] = _SEVERITY[Severity.parse(sev)]
        vector = entry.get("vector")
        if isinstance(vector, str) and vector:
            rating["vector"] = vector
            version = str(entry.get("version", ""))
            if not version:
                m = re.match(r"CVSS:(\d(?:\.\d)?)/", vector)
                version = m.group(1) if m else "2"
            rating["method"] = _CVSS_METHOD.get(version, "other")
        if rating:
            ratings.append(rating)
    ratings.append({"severity": _SEVERITY[finding.severity], "method": "other"})
    return ratings


def _vulnerabilities(result: ScanResult, refs_by_id: dict[str, str]) -> list[dict[str, Any]]:
    names = {pkg.id: f"{pkg.name} {pkg.version}".rstrip() for pkg in result.packages}
    by_id: dict[str, list[Finding]] = {}
    for finding in result.findings:
        if finding.kind == "vulnerability" and finding.rule_id:
            by_id.setdefault(finding.rule_id, []).append(finding)
    out: list[dict[str, Any]] = []
    for vuln_id in sorted(by_id):
        findings = by_id[vuln_id]
        first = max(findings, key=lambda f: (f.severity, len(f.details)))
        vuln: dict[str, Any] = {"bom-ref": f"vuln:{vuln_id}", "id": vuln_id}
        details = first.details
        source = details.get("source")
        if isinstance(source, str) and source:
            vuln["source"] = {"name": source}
            url = details.get("source_url")
            if isinstance(url, str) and url:
                vuln["source"]["url"] = url
        aliases = details.get("aliases")
        if isinstance(aliases, list):
            refs = [{"id": a, "source": {"name": _alias_source(a)}} for a in aliases if isinstance(a, str)]
            if refs:
                vuln["references"] = refs
        vuln["ratings"] = _ratings(first)
        cwes = _cwes(details.get("cwes"))
        if cwes:
            vuln["cwes"] = cwes
        description = details.get("description") or first.title
        if isinstance(description, str) and description:
            vuln["description"] = description
        fixes = sorted({f"{names.get(f.target, f.target)} to {f.fix}" for f in findings if f.fix})
        if fixes:
            vuln["recommendation"] = "Upgrade " + "; ".join(fixes)
        urls = details.get("references")
        if isinstance(urls, list):
            advisories = [{"url": u} for u in dict.fromkeys(urls) if isinstance(u, str) and u]
            if advisories:
                vuln["advisories"] = advisories
        for key in ("published", "updated"):
            value = details.get(key)
            if isinstance(value, str) and value:
                vuln[key] = value
        affects: list[dict[str, Any]] = []
        for finding in findings:
            ref = refs_by_id.get(finding.target)
            if ref is None:
                continue
            affect: dict[str, Any] = {"ref": ref}
            version = finding.details.get("installed_version")
            if isinstance(version, str) and version:
                status = "unaffected" if _analysis(finding) else "affected"
                affect["versions"] = [{"version": version, "status": status}]
            affects.append(affect)
        if affects:
            vuln["affects"] = sorted(affects, key=lambda a: a["ref"])
        # A VEX statement speaks for the vulnerability as a whole only when it covers every finding.
        analyses = [_analysis(f) for f in findings]
        if analyses and all(analyses) and all(a == analyses[0] for a in analyses):
            vuln["analysis"] = analyses[0]
        out.append(vuln)
    return out


# OpenVEX and CycloneDX words for the same VEX states (CycloneDX 1.6 impactAnalysisState and
# impactAnalysisJustification). OpenVEX's "vulnerable_code_cannot_be_controlled_by_adversary"
# has no CycloneDX counterpart; its text goes to "detail" instead.
_VEX_STATE = {"not_affected": "not_affected", "fixed": "resolved", "resolved": "resolved",
              "resolved_with_pedigree": "resolved_with_pedigree", "false_positive": "false_positive",
              "under_investigation": "in_triage", "in_triage": "in_triage", "affected": "exploitable",
              "exploitable": "exploitable"}
_VEX_JUSTIFICATION = {
    "component_not_present": "code_not_present", "vulnerable_code_not_present": "code_not_present",
    "vulnerable_code_not_in_execute_path": "code_not_reachable",
    "inline_mitigations_already_exist": "protected_by_mitigating_control",
    **{j: j for j in ("code_not_present", "code_not_reachable", "requires_configuration", "requires_dependency",
                      "requires_environment", "protected_by_compiler", "protected_at_runtime",
                      "protected_at_perimeter", "protected_by_mitigating_control")},
}


def _analysis(finding: Finding) -> dict[str, Any] | None:
    """CycloneDX ``analysis`` for a finding shown although a VEX statement suppresses it; the
    statement is in ``details["vex"]`` as :meth:`hullguard.policy.vex.VexStatement.summary` gives it."""
    vex = finding.details.get("vex")
    if not isinstance(vex, dict):
        return None
    state = _VEX_STATE.get(str(vex.get("status", "")))
    if state is None:
        return None
    out: dict[str, Any] = {"state": state}
    raw = str(vex.get("justification", ""))
    justification = _VEX_JUSTIFICATION.get(raw)
    if justification and state == "not_affected":
        out["justification"] = justification
    detail = " ".join(str(part) for part in (
        vex.get("detail", ""), f"(justification: {raw})" if raw and not justification else "",
        f"[{vex['source']}]" if vex.get("source") else "") if part)
    if detail:
        out["detail"] = detail
    return out


def _cwes(value: object) -> list[int]:
    out: set[int] = set()
    for item in value if isinstance(value, list) else []:
        text = str(item).upper().removeprefix("CWE-")
        if text.isdigit():
            out.add(int(text))
    return sorted(out)


def _alias_source(alias: str) -> str:
    if alias.startswith("CVE-"):
        return "NVD"
    if alias.startswith("GHSA-"):
        return "GitHub"
    return alias.split("-", 1)[0]


def build(result: ScanResult) -> dict[str, Any]:
    """The document as plain data (render() encodes it)."""
    layers = layer_index(result)
    packages = sorted_packages(result.packages)
    refs = package_refs(packages)
    refs_by_id: dict[str, str] = {}
    for index, pkg in enumerate(packages):
        refs_by_id.setdefault(pkg.id, refs[index])

    components: list[dict[str, Any]] = []
    if result.os is not None and result.os.family:
        components.append(_os_component(result.os))
    components += [_component(pkg, refs[i], layers) for i, pkg in enumerate(packages)]

    dependencies: list[dict[str, Any]] = []
    for index, pkg in enumerate(packages):
        targets = sorted({refs_by_id[d] for d in pkg.dependencies if d in refs_by_id} - {refs[index]})
        if targets:
            dependencies.append({"ref": refs[index], "dependsOn": targets})
    if result.os is not None and result.os.family:
        distro = sorted(refs[i] for i, p in enumerate(packages) if p.ecosystem in DISTRO_ECOSYSTEMS)
        if distro:
            dependencies.append({"ref": OS_REF, "dependsOn": distro})
    dependencies.sort(key=lambda d: d["ref"])

    body: dict[str, Any] = {
        "bomFormat": "CycloneDX",
        "specVersion": SPEC_VERSION,
        "version": 1,
        "metadata": {
            "timestamp": timestamp(result),
            "tools": {"components": [{"type": "application", "name": "hullguard", "version": hullguard.__version__}]},
            "component": _root_component(result),
        },
        "components": components,
    }
    if dependencies:
        body["dependencies"] = dependencies
    vulnerabilities = _vulnerabilities(result, refs_by_id)
    if vulnerabilities:
        body["vulnerabilities"] = vulnerabilities
    serial = f"urn:uuid:{content_uuid(body)}"
    doc = {"$schema": "http://cyclonedx.org/schema/bom-1.6.schema.json"}
    doc.update({"bomFormat": body.pop("bomFormat"), "specVersion": body.pop("specVersion")})
    doc["serialNumber"] = serial
    doc.update(body)
    return doc


def render(result: ScanResult) -> bytes:
    return msgspec.json.format(encode_json(build(result)), indent=2) + b"\n"
