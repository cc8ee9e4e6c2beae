"""CycloneDX 1.6 ``vulnerabilities`` from real matcher output: ratings with CVSS method and vector,
affects pointing at components, and ``analysis`` for findings a VEX statement suppresses."""

from __future__ import annotations

import json
from typing import Any

import msgspec

from hullguard.detect.vulns import match
from hullguard.model import Artifact, Location, Package, ScanResult
from hullguard.report import cyclonedx
from hullguard.vulndb.importer import import_path, snapshot_dir
from hullguard.vulndb.store import SQLiteStore


def _scan(tmp_path) -> ScanResult:
    store = SQLiteStore(str(tmp_path / "hg.db"))
    import_path(store, snapshot_dir(), "snapshot")
    pkgs = [Package(name="idna", version="2.10", ecosystem="pypi", purl="pkg:pypi/idna@2.10",
                    locations=[Location(path="usr/lib/python3/dist-packages/idna-2.10.dist-info/METADATA")]),
            Package(name="cookie", version="0.4.0", ecosystem="npm", purl="pkg:npm/cookie@0.4.0",
                    locations=[Location(path="srv/app/node_modules/cookie/package.json")])]
    result = ScanResult(artifact=Artifact(name="app", type="filesystem"), packages=pkgs)
    result = msgspec.structs.replace(result, findings=match(result, store).findings)
    store.close()
    return result


def _vulns(result: ScanResult) -> dict[str, dict[str, Any]]:
    doc = json.loads(cyclonedx.render(result))
    return {v["id"]: v for v in doc["vulnerabilities"]}, doc


def test_ratings_affects_and_schema(tmp_path, cdx_validator) -> None:
    result = _scan(tmp_path)
    by_id, doc = _vulns(result)
    assert set(by_id) == {f.rule_id for f in result.findings} == {"GHSA-jjg7-2v4v-x38h", "GHSA-pxg6-pf52-xh8x"}
    idna = by_id["GHSA-jjg7-2v4v-x38h"]
    finding = next(f for f in result.findings if f.rule_id == idna["id"])
    cvss = finding.details["cvss"]
    # The record carries v3.1 and v4.0 vectors; the matcher prefers v4.0 and the rating says so.
    assert [r for r in idna["ratings"] if "vector" in r] == [
        {"score": cvss["score"], "vector": cvss["vector"], "method": "CVSSv4"}]
    assert cvss["vector"].startswith("CVSS:4.0/")
    refs = {c["bom-ref"]: c for c in doc["components"]}
    [affect] = idna["affects"]
    assert refs[affect["ref"]]["name"] == "idna"
    assert affect["versions"] == [{"version": "2.10", "status": "affected"}]
    assert "analysis" not in idna
    # No vector in the cookie record: only GitHub's own word, as an "other" rating.
    assert by_id["GHSA-pxg6-pf52-xh8x"]["ratings"] == [{"severity": "low", "method": "other"}]
    assert [e.message for e in cdx_validator.iter_errors(doc)] == []


def test_vex_suppressed_finding_shown_with_analysis(tmp_path, cdx_validator) -> None:
    result = _scan(tmp_path)
    for f in result.findings:
        if f.rule_id == "GHSA-jjg7-2v4v-x38h":
            # What policy.vex.VexStatement.summary() gives for an OpenVEX not_affected statement.
            f.details = {**f.details, "vex": {"format": "openvex", "vulnerability": "CVE-2024-3651",
                                              "status": "not_affected",
                                              "justification": "vulnerable_code_not_in_execute_path",
                                              "detail": "idna.encode is never called", "source": "app.vex.json"}}
        if f.rule_id == "GHSA-pxg6-pf52-xh8x":
            f.details = {**f.details, "vex": {"format": "openvex", "vulnerability": "CVE-2024-47764",
                                              "status": "not_affected",
                                              "justification": "vulnerable_code_cannot_be_controlled_by_adversary"}}
    by_id, doc = _vulns(result)
    assert by_id["GHSA-jjg7-2v4v-x38h"]["analysis"] == {
        "state": "not_affected", "justification": "code_not_reachable",
        "detail": "idna.encode is never called [app.vex.json]"}
    assert by_id["GHSA-jjg7-2v4v-x38h"]["affects"][0]["versions"][0]["status"] == "unaffected"
    # No CycloneDX word for this OpenVEX justification: kept as text rather than mapped wrongly.
    assert by_id["GHSA-pxg6-pf52-xh8x"]["analysis"] == {
        "state": "not_affected", "detail": "(justification: vulnerable_code_cannot_be_controlled_by_adversary)"}
    assert [e.message for e in cdx_validator.iter_errors(doc)] == []
