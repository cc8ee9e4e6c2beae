"""--ignorefile and --vex on a real scan of the demo image."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from hullguard.cli.main import main

DEMO = Path(__file__).resolve().parents[2] / "demo" / "hullguard-demo.tar"


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)


def scan(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, dict, str]:
    code = main(["image", str(DEMO), "-f", "json", "--exit-code", "1", *args])
    captured = capsys.readouterr()
    return code, json.loads(captured.out), captured.err


def test_ignore_file_suppresses_until_it_expires(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / ".hullguardignore").write_text(
        "ignore:\n"
        "  - id: CVE-2021-44906\n    reason: minimist is only used by a build script\n    expires: 2999-01-01\n"
        "  - id: GHSA-35jh-r3h4-6jhm\n    package: lodash\n    reason: accepted until upgrade\n"
        "    expires: 2001-01-01\n")
    _, doc, err = scan([], capsys)
    ids = {f["rule_id"] for f in doc["findings"]}
    assert "GHSA-xvch-5gv4-984h" not in ids  # minimist: suppressed by its CVE alias
    assert "GHSA-35jh-r3h4-6jhm" in ids  # lodash: the entry expired, so it counts again
    assert "expired" in err


def test_bad_ignore_file_is_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("ignore:\n  - id: CVE-1\n")  # no reason
    assert main(["image", str(DEMO), "-q", "--ignorefile", str(bad)]) == 2
    assert "reason" in capsys.readouterr().err


def test_openvex_not_affected_suppresses(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    vex = {
        "@context": "https://openvex.dev/ns/v0.2.0", "@id": "https://example.com/vex/1",
        "author": "app team", "timestamp": "2026-11-01T00:00:00Z", "version": 1,
        "statements": [{
            "vulnerability": {"name": "CVE-2021-23337"},
            "products": [{"@id": "pkg:npm/lodash@4.17.15"}],
            "status": "not_affected", "justification": "vulnerable_code_not_in_execute_path",
        }],
    }
    path = tmp_path / "app.openvex.json"
    path.write_text(json.dumps(vex))
    _, doc, _ = scan(["--vex", str(path)], capsys)
    assert "GHSA-35jh-r3h4-6jhm" not in {f["rule_id"] for f in doc["findings"]}
    assert any("VEX" in w for w in doc["warnings"])


def _vex_for_every_finding(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    """An OpenVEX document marking every finding of the demo scan not_affected, built from the scan itself."""
    _, doc, _ = scan([], capsys)
    statements = [{
        "vulnerability": {"name": f["rule_id"]},
        "products": [{"@id": f["details"]["package"]["purl"]}],
        "status": "not_affected", "justification": "vulnerable_code_not_in_execute_path",
    } for f in doc["findings"] if f["kind"] == "vulnerability"]
    assert statements
    path = tmp_path / "all.openvex.json"
    path.write_text(json.dumps({"@context": "https://openvex.dev/ns/v0.2.0", "@id": "https://example.com/vex/all",
                                "author": "app team", "timestamp": "2026-11-01T00:00:00Z", "version": 1,
                                "statements": statements}))
    return path


def test_show_suppressed_lists_without_gating(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    vex = _vex_for_every_finding(tmp_path, capsys)
    code, doc, _ = scan(["--vex", str(vex)], capsys)
    assert code == 0 and not [f for f in doc.get("findings", []) if f["kind"] == "vulnerability"]
    code, doc, _ = scan(["--vex", str(vex), "--show-suppressed"], capsys)
    vulns = [f for f in doc["findings"] if f["kind"] == "vulnerability"]
    assert code == 0, "suppressed findings must not trip --exit-code"
    assert vulns and all(f["details"]["suppressed"] == "vex" for f in vulns)
    assert all(f["details"]["vex"]["justification"] == "vulnerable_code_not_in_execute_path" for f in vulns)
    assert doc["summary"]["total"] == 0

    assert main(["image", str(DEMO), "-f", "cyclonedx", "--vex", str(vex), "--show-suppressed"]) == 0
    bom = json.loads(capsys.readouterr().out)
    assert bom["vulnerabilities"] and all(v["analysis"]["state"] == "not_affected" for v in bom["vulnerabilities"])

    assert main(["image", str(DEMO), "-f", "sarif", "--vex", str(vex), "--show-suppressed"]) == 0
    log = json.loads(capsys.readouterr().out)
    results = log["runs"][0]["results"]
    assert results and all(r["suppressions"][0]["kind"] == "external" for r in results)
    schema = json.loads((Path(__file__).parents[1] / "report" / "schemas" / "sarif-schema-2.1.0.json").read_text())
    jsonschema.validate(log, schema)

    assert main(["image", str(DEMO), "--vex", str(vex), "--show-suppressed"]) == 0
    table = capsys.readouterr().out
    assert f"Suppressed ({len(vulns)})" in table and "Vulnerabilities:" not in table


def test_show_suppressed_names_the_ignore_entry(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / ".hullguardignore").write_text(
        "ignore:\n  - id: CVE-2021-44906\n    reason: build-time only\n    expires: 2999-01-01\n")
    _, doc, _ = scan(["--show-suppressed"], capsys)
    [minimist] = [f for f in doc["findings"] if f["details"].get("suppressed")]
    assert minimist["details"]["ignore"]["reason"] == "build-time only"
    assert "CVE-2021-44906" not in {a for f in doc["findings"] if not f["details"].get("suppressed")
                                     for a in f["details"].get("aliases", [])}
