"""`hullguard config`, `rules` and `runtime` as wired into the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hullguard.cli.main import main

PRIVILEGED = """apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  template:
    spec:
      containers:
      - name: c
        image: nginx:1.25
        securityContext: {privileged: true}
"""
RESTRICTED_OK = """apiVersion: v1
kind: Pod
metadata: {name: ok, namespace: shop}
spec:
  securityContext: {runAsNonRoot: true, seccompProfile: {type: RuntimeDefault}}
  containers:
  - name: c
    image: nginx:1.25
    securityContext: {allowPrivilegeEscalation: false, capabilities: {drop: [ALL]}}
"""


def test_config_reports_dockerfile_and_manifest_findings(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "Dockerfile").write_text("FROM ubuntu:latest\nRUN curl https://get.example | sh\n")
    (tmp_path / "deploy.yaml").write_text(PRIVILEGED)
    assert main(["config", str(tmp_path), "-q", "-f", "json", "--exit-code", "3"]) == 3
    doc = json.loads(capsys.readouterr().out)
    ids = {f["rule_id"] for f in doc["findings"]}
    assert {"HG-DF-003", "HG-DF-008", "HG-PSS-003"} <= ids
    piped = next(f for f in doc["findings"] if f["rule_id"] == "HG-DF-008")
    assert piped["location"]["line"] == 2


@pytest.mark.parametrize(("manifest", "level", "code"), [
    (PRIVILEGED, "baseline", 1), (RESTRICTED_OK, "baseline", 0), (RESTRICTED_OK, "restricted", 0),
])
def test_pss_gate(tmp_path: Path, capsys: pytest.CaptureFixture[str], manifest: str, level: str, code: int) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(manifest)
    assert main(["config", str(path), "-q", "--pss-level", level, "--exit-code", "1"]) == code


def test_config_with_nothing_checkable_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", str(tmp_path / "missing.yaml")]) == 2
    assert "nothing could be checked" in capsys.readouterr().err


def test_rules_list_and_explain(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules", "list"]) == 0
    listing = capsys.readouterr().out
    assert "HG-DF-001" in listing and "HG-PSS-003" in listing
    assert main(["rules", "explain", "hg-df-008"]) == 0
    assert "How to fix" in capsys.readouterr().out
    assert main(["rules", "explain", "HG-NOPE-1"]) == 2


def test_runtime_replay_of_an_audit_event(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    event = {
        "kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "RequestResponse", "auditID": "a1",
        "stage": "ResponseComplete", "requestURI": "/api/v1/namespaces/shop/pods/web-1/exec?command=sh",
        "verb": "create", "user": {"username": "alice", "groups": ["system:authenticated"]},
        "sourceIPs": ["10.0.0.9"], "objectRef": {"resource": "pods", "namespace": "shop", "name": "web-1",
                                                 "subresource": "exec", "apiVersion": "v1"},
        "responseStatus": {"code": 101}, "requestReceivedTimestamp": "2026-11-23T10:00:00.000000Z",
        "stageTimestamp": "2026-11-23T10:00:00.100000Z",
    }
    events = tmp_path / "audit.jsonl"
    events.write_text(json.dumps(event) + "\nnot json\n")
    assert main(["runtime", "replay", str(events), "--format", "json"]) == 0
    alerts = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]
    assert alerts and all({"time", "rule", "priority", "output", "output_fields"} <= set(a) for a in alerts)
    assert any("exec" in a["output"].lower() for a in alerts)
