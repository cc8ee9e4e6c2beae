"""SARIF output: schema-valid, and shaped the way GitHub code scanning reads it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from hullguard import __version__
from hullguard.model import Artifact, Finding, Layer, Location, ScanResult, Severity
from hullguard.report import sarif

from .conftest import APP, debian_image_result

SCHEMA = Path(__file__).parent / "schemas" / "sarif-schema-2.1.0.json"
HOSTILE = "<script>alert(1)</script> | `x` \n second line"


def _log(result: ScanResult) -> dict[str, Any]:
    return json.loads(sarif.render(result))


def _hostile_result() -> ScanResult:
    return ScanResult(
        artifact=Artifact(name=HOSTILE, type="registry"),
        layers=[Layer(digest=APP, created_by=HOSTILE)],
        findings=[
            Finding(kind="vulnerability", rule_id="GHSA-xxxx-<b>", severity=Severity.HIGH, title=HOSTILE,
                    target="npm:" + HOSTILE, location=Location(path="/app/dir with space/#?%ü.json", layer=APP),
                    fix="1.2.3|4", details={"package": {"name": HOSTILE, "version": "1`0", "ecosystem": "npm"},
                                            "url": "https://example.com/a?b=<c>", "description": HOSTILE}),
            Finding(kind="secret", rule_id="HG-SEC-001", severity=Severity.CRITICAL, title=HOSTILE,
                    target="", evidence="AKIA****", location=None),
        ],
    )


def _structural_errors(log: dict[str, Any]) -> list[str]:
    # Our own reading of the parts of SARIF 2.1.0 GitHub insists on; it runs next to the schema.
    errors = []
    if log.get("version") != "2.1.0" or len(log.get("runs", [])) != 1:
        errors.append("version/runs")
    run = log["runs"][0]
    rules = run["tool"]["driver"]["rules"]
    ids = [r["id"] for r in rules]
    if len(ids) != len(set(ids)):
        errors.append("duplicate rule ids")
    for rule in rules:
        sev = rule["properties"].get("security-severity")
        if sev is not None and not (isinstance(sev, str) and 0.0 < float(sev) <= 10.0):
            errors.append("security-severity must be a string holding a score")
    for res in run["results"]:
        if rules[res["ruleIndex"]]["id"] != res["ruleId"]:
            errors.append("ruleIndex mismatch")
        if res["level"] not in ("error", "warning", "note"):
            errors.append("level")
        if not res["message"]["text"]:
            errors.append("empty message")
        phys = res["locations"][0]["physicalLocation"]
        uri = phys["artifactLocation"]["uri"]
        if uri.startswith("/") or any(c in uri for c in " #?\n<>`|"):
            errors.append(f"bad uri {uri!r}")
        if phys["region"]["startLine"] < 1:
            errors.append("startLine")
        if not res["partialFingerprints"]:
            errors.append("fingerprint")
    return errors


@pytest.fixture(scope="module")
def sarif_validator() -> Any:
    if not SCHEMA.exists():
        pytest.skip("official SARIF 2.1.0 schema not vendored under tests/report/schemas/")
    from jsonschema import Draft4Validator

    return Draft4Validator(json.loads(SCHEMA.read_text()), format_checker=Draft4Validator.FORMAT_CHECKER)


@pytest.mark.parametrize("make", [debian_image_result, _hostile_result,
                                  lambda: ScanResult(artifact=Artifact(name="empty", type="filesystem"))])
def test_valid(make: Any) -> None:
    log = _log(make())
    assert _structural_errors(log) == []


@pytest.mark.parametrize("make", [debian_image_result, _hostile_result])
def test_schema(make: Any, sarif_validator: Any) -> None:
    errors = sorted(sarif_validator.iter_errors(_log(make())), key=str)
    assert not errors, errors[0]


def test_driver_and_rules(debian_result: ScanResult) -> None:
    run = _log(debian_result)["runs"][0]
    driver = run["tool"]["driver"]
    assert driver["name"] == "hullguard" and driver["version"] == __version__
    assert driver["informationUri"].startswith("https://")
    rules = {r["id"]: r for r in driver["rules"]}
    assert set(rules) == {"CVE-2021-44228", "CVE-2023-5678", "HG-SEC-001"}
    log4j = rules["CVE-2021-44228"]
    # The fixture's CVSS (a list from an SBOM import) wins over the severity map.
    assert log4j["properties"]["security-severity"] == "10.0"
    assert log4j["properties"]["tags"] == ["security", "vulnerability", "maven"]
    assert "2.15.0" in log4j["help"]["text"] and "2.15.0" in log4j["help"]["markdown"]
    assert rules["CVE-2023-5678"]["properties"]["security-severity"] == "5.5"
    assert rules["HG-SEC-001"]["properties"]["security-severity"] == "8.0"
    assert rules["HG-SEC-001"]["properties"]["precision"] == "high"


def test_results(debian_result: ScanResult) -> None:
    results = _log(debian_result)["runs"][0]["results"]
    assert [r["level"] for r in results] == ["error", "warning", "error"]
    log4j = results[0]
    text = log4j["message"]["text"]
    for part in ("Package: org.apache.logging.log4j:log4j-core\n", "Installed Version: 2.14.1",
                 "Fixed Version: 2.15.0", "COPY app /app"):
        assert part in text
    loc = log4j["locations"][0]["physicalLocation"]
    assert loc["artifactLocation"]["uri"] == "app/lib/log4j-core-2.14.1.jar"
    assert loc["region"]["startLine"] == 1
    # No location: the secret falls back to its target path.
    assert results[2]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "app/.env"


def test_helpuri_only_when_known(debian_result: ScanResult) -> None:
    f = debian_result.findings[1]
    f.details = {"url": "https://osv.dev/vulnerability/DSA-1"}
    rules = {r["id"]: r for r in _log(debian_result)["runs"][0]["tool"]["driver"]["rules"]}
    assert rules["CVE-2023-5678"]["helpUri"] == "https://osv.dev/vulnerability/DSA-1"
    assert "helpUri" not in rules["HG-SEC-001"]


def test_fingerprints_stable_and_distinct() -> None:
    a = _log(debian_image_result())["runs"][0]["results"]
    b = _log(debian_image_result())["runs"][0]["results"]
    assert [r["partialFingerprints"] for r in a] == [r["partialFingerprints"] for r in b]
    assert len({json.dumps(r["partialFingerprints"]) for r in a}) == len(a)


def test_line_and_shared_rule() -> None:
    findings = [
        Finding(kind="misconfiguration", rule_id="HG-DF-001", severity=sev, title="root user",
                target="Dockerfile", location=Location(path="Dockerfile", line=line))
        for sev, line in ((Severity.LOW, 7), (Severity.HIGH, 0))
    ]
    log = _log(ScanResult(artifact=Artifact(name=".", type="filesystem"), findings=findings))
    run = log["runs"][0]
    assert len(run["tool"]["driver"]["rules"]) == 1
    # A rule shared by findings of different severities is ranked by the worst of them.
    assert run["tool"]["driver"]["rules"][0]["properties"]["security-severity"] == "8.0"
    assert [r["locations"][0]["physicalLocation"]["region"]["startLine"] for r in run["results"]] == [7, 1]
    assert [r["ruleIndex"] for r in run["results"]] == [0, 0]


def test_hostile_strings_stay_data() -> None:
    raw = sarif.render(_hostile_result())
    log = json.loads(raw)
    res = log["runs"][0]["results"][0]
    assert res["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == \
        "app/dir%20with%20space/%23%3F%25%C3%BC.json"
    assert HOSTILE in res["message"]["text"]
    rule = log["runs"][0]["tool"]["driver"]["rules"][0]
    md = rule["help"]["markdown"]
    assert "1.2.3\\|4" in md
    assert "<script>" not in md and "&lt;script&gt;" in md
    assert "\n second line" not in md
    # A URL that would break out of the Markdown autolink is not offered as a link at all.
    assert "helpUri" not in rule and "example.com" not in md


def test_unknown_severity_has_no_score() -> None:
    f = Finding(kind="vulnerability", rule_id="GHSA-0000", severity=Severity.UNKNOWN, target="npm:a@1#p")
    rule = _log(ScanResult(artifact=Artifact(name="x", type="registry"), findings=[f]))["runs"][0]["tool"]["driver"][
        "rules"][0]
    assert "security-severity" not in rule["properties"]
    assert rule["defaultConfiguration"]["level"] == "note"


def test_uri_never_looks_absolute() -> None:
    f = Finding(kind="vulnerability", rule_id="CVE-1", severity=Severity.LOW, target="deb:a@1#x")
    log = _log(ScanResult(artifact=Artifact(name="debian:12", type="registry"), findings=[f]))
    # No location at all: the artifact name stands in, with its colon encoded.
    assert log["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == \
        "debian%3A12"


def test_empty() -> None:
    log = _log(ScanResult(artifact=Artifact(name="scratch", type="registry")))
    run = log["runs"][0]
    assert run["results"] == [] and run["tool"]["driver"]["rules"] == []


def test_schema_rejects_broken_logs(sarif_validator: Any) -> None:
    # Guards the guard: the vendored schema must catch what GitHub would reject.
    log = _log(debian_image_result())
    res = log["runs"][0]["results"][0]
    res["level"] = "fatal"
    res["locations"][0]["physicalLocation"]["region"]["startLine"] = 0
    del log["version"]
    messages = " ".join(e.message for e in sarif_validator.iter_errors(log))
    assert "'fatal' is not one of" in messages
    assert "0 is less than the minimum of 1" in messages
    assert "'version' is a required property" in messages
