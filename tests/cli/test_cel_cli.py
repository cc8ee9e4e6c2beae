"""`hullguard config --policy` and `hullguard rules list|explain --policy`."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pytest

from hullguard.cli.main import main

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "policies"

LATEST = """apiVersion: v1
kind: Pod
metadata: {name: web, namespace: shop}
spec:
  securityContext: {runAsNonRoot: true}
  containers:
  - name: c
    image: nginx:latest
---
apiVersion: v1
kind: Pod
metadata: {name: pinned, namespace: shop}
spec:
  securityContext: {runAsNonRoot: true}
  containers:
  - name: c
    image: nginx:1.25
"""

BROKEN = """apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {name: broken}
spec:
  matchConstraints:
    resourceRules: [{apiGroups: [""], apiVersions: [v1], operations: [CREATE], resources: [pods]}]
  validations:
  - expression: "object.spec.containers.all(c,"
"""

ERRORING = """apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {name: erroring}
spec:
  matchConstraints:
    resourceRules: [{apiGroups: [""], apiVersions: [v1], operations: [CREATE], resources: [pods]}]
  validations:
  - expression: "object.spec.nodeName == 'x'"
"""


def cel_findings(out: str) -> list[dict]:
    return [f for f in json.loads(out)["findings"] if f["rule_id"].startswith("CEL:")]


def test_violations_are_findings_with_file_line_and_severity(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "pods.yaml").write_text(LATEST)
    code = main(["config", str(tmp_path), "-q", "-f", "json", "--exit-code", "4",
                 "--policy", str(EXAMPLES / "disallow-latest-tag.yaml")])
    assert code == 4
    (f,) = cel_findings(capsys.readouterr().out)
    assert f["rule_id"] == "CEL:disallow-latest-tag" and f["severity"] == 3  # Severity.HIGH
    assert f["location"] == {"path": str(tmp_path / "pods.yaml"), "line": 1}
    assert f["target"] == "Pod/shop/web" and f["title"] == "image without a pinned tag: nginx:latest"
    assert f["details"]["reason"] == "Forbidden" and f["kind"] == "misconfiguration"


def test_severity_filter_and_clean_objects(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "pods.yaml").write_text(LATEST.split("---")[1])
    assert main(["config", str(tmp_path / "pods.yaml"), "-q", "-f", "json", "--severity", "CRITICAL",
                 "--policy", str(EXAMPLES), "--exit-code", "1"]) == 1
    (f,) = cel_findings(capsys.readouterr().out)
    assert f["rule_id"] == "CEL:allowed-registries"  # nginx is not from registry.example.com
    assert main(["config", str(tmp_path / "pods.yaml"), "-q", "-f", "json", "--severity", "HIGH",
                 "--policy", str(EXAMPLES), "--exit-code", "1"]) == 0
    assert json.loads(capsys.readouterr().out).get("findings", []) == []


def test_sarif_output_points_at_the_manifest(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "pods.yaml").write_text(LATEST)
    assert main(["config", str(tmp_path / "pods.yaml"), "-q", "-f", "sarif",
                 "--policy", str(EXAMPLES / "disallow-latest-tag.yaml")]) == 0
    run = json.loads(capsys.readouterr().out)["runs"][0]
    results = [r for r in run["results"] if r["ruleId"] == "CEL:disallow-latest-tag"]
    assert len(results) == 1
    region = results[0]["locations"][0]["physicalLocation"]["region"]
    assert region["startLine"] == 1
    assert any(r["id"] == "CEL:disallow-latest-tag" for r in run["tool"]["driver"]["rules"])


def test_stdin_is_read_once_for_builtin_checks_and_policies(monkeypatch: pytest.MonkeyPatch,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(LATEST.encode())))
    assert main(["config", "-", "-q", "-f", "json", "--policy", str(EXAMPLES / "disallow-latest-tag.yaml")]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert len(cel_findings(json.dumps(doc))) == 1
    assert any(f["rule_id"] == "HG-K8S-007" for f in doc["findings"])  # the built-in latest-tag check too


def test_broken_policy_is_reported_and_the_others_still_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "pods.yaml").write_text(LATEST)
    pol = tmp_path / "policies"
    pol.mkdir()
    (pol / "broken.yaml").write_text(BROKEN)
    (pol / "latest.yaml").write_text((EXAMPLES / "disallow-latest-tag.yaml").read_text())
    (pol / "notes.yaml").write_text("just: a mapping\n")
    code = main(["config", str(tmp_path / "pods.yaml"), "-q", "-f", "json", "--exit-code", "1", "--policy", str(pol)])
    out, err = capsys.readouterr()
    assert code == 1 and len(cel_findings(out)) == 1
    lines = err.strip().splitlines()
    assert any("'broken'" in ln and "object.spec.containers.all(c," in ln and "does not compile" in ln for ln in lines)
    assert any("notes.yaml: no ValidatingAdmissionPolicy" in ln for ln in lines)
    assert "Traceback" not in err


def test_evaluation_errors_are_findings_under_failure_policy_fail(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "pods.yaml").write_text(LATEST)
    (tmp_path / "erroring.yaml").write_text(ERRORING)
    policy = str(tmp_path / "erroring.yaml")
    assert main(["config", str(tmp_path / "pods.yaml"), "-q", "-f", "json", "--policy", policy]) == 0
    found = cel_findings(capsys.readouterr().out)
    assert len(found) == 2 and all(f["details"]["evaluation_error"] for f in found)
    assert "no such key" in found[0]["title"]
    (tmp_path / "erroring.yaml").write_text(ERRORING.replace("spec:\n", "spec:\n  failurePolicy: Ignore\n", 1))
    assert main(["config", str(tmp_path / "pods.yaml"), "-f", "json", "--policy", str(tmp_path / "erroring.yaml")]) == 0
    out, err = capsys.readouterr()
    assert cel_findings(out) == [] and err.count("failurePolicy Ignore") == 2


def test_bad_inputs_exit_two_only_when_nothing_was_checked(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "bad.yaml").write_text("key: [unclosed\n")
    assert main(["config", str(tmp_path / "bad.yaml"), "-q", "--policy", str(EXAMPLES)]) == 2
    err = capsys.readouterr().err
    assert "nothing could be checked" in err and "Traceback" not in err
    (tmp_path / "good.yaml").write_text(LATEST)
    assert main(["config", str(tmp_path), "-q", "-f", "json", "--exit-code", "1",
                 "--policy", str(tmp_path / "missing-policy.yaml"), "--policy", str(EXAMPLES)]) == 1
    out, err = capsys.readouterr()
    assert "missing-policy.yaml: no such policy file" in err and cel_findings(out)
    # Every asked-for policy broken: an error, not a clean pass.
    (tmp_path / "broken.yaml").write_text(BROKEN)
    assert main(["config", str(tmp_path / "good.yaml"), "-q", "--exit-code", "1",
                 "--policy", str(tmp_path / "broken.yaml")]) == 2
    err = capsys.readouterr().err
    assert "'broken'" in err and "no usable policy in --policy (1 error(s))" in err


def test_policy_files_in_the_checked_folder_are_not_admitted_as_objects(tmp_path: Path,
                                                                        capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "pods.yaml").write_text(LATEST)
    (tmp_path / "policy.yaml").write_text((EXAMPLES / "allowed-registries.yaml").read_text())
    assert main(["config", str(tmp_path), "-q", "-f", "json", "--policy", str(tmp_path / "policy.yaml")]) == 0
    targets = {f["target"] for f in cel_findings(capsys.readouterr().out)}
    assert targets == {"Pod/shop/web", "Pod/shop/pinned"}


def test_rules_list_and_explain_include_policies(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules", "list", "--policy", str(EXAMPLES)]) == 0
    out = capsys.readouterr().out
    assert "CEL:require-resource-limits" in out and "HG-K8S-001" in out
    assert main(["rules", "explain", "cel:require-resource-limits", "--policy", str(EXAMPLES)]) == 0
    out = capsys.readouterr().out
    assert "severity: MEDIUM" in out and "resources.limits.cpu" in out and "quantity('4Gi')" in out
    assert main(["rules", "explain", "CEL:require-resource-limits"]) == 2
    assert "no rule" in capsys.readouterr().err
