"""`hullguard config --policy` evaluates CEL policies on the objects the built-in checks already
loaded: each manifest is read and parsed once, and the findings are those of a fresh read."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hullguard.cli import config as cli_config
from hullguard.cli.main import main
from hullguard.detect.misconfig import kubernetes
from hullguard.detect.misconfig.config import check_config_paths

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "policies"

PODS = """apiVersion: v1
kind: Pod
metadata: {name: web, namespace: shop}
spec:
  hostNetwork: true
  containers: [{name: c, image: nginx:latest}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: api, namespace: shop, labels: {app.kubernetes.io/name: api, team: core}}
spec:
  selector: {matchLabels: {app: api}}
  template:
    metadata: {labels: {app: api}}
    spec:
      securityContext: {runAsNonRoot: true}
      containers:
      - name: c
        image: registry.example/api:1.2
        resources: {limits: {cpu: 100m, memory: 64Mi}}
"""

SERVICE = """apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec: {type: NodePort, ports: [{port: 80}]}
"""


def _tree(tmp_path: Path) -> Path:
    (tmp_path / "k8s" / "sub").mkdir(parents=True)
    (tmp_path / "k8s" / "pods.yaml").write_text(PODS)
    (tmp_path / "k8s" / "sub" / "svc.yml").write_text(SERVICE)
    (tmp_path / "k8s" / "Dockerfile").write_text("FROM debian\n")
    return tmp_path / "k8s"


def _key(f) -> tuple:
    return (f.rule_id, f.target, f.location.path, f.location.line, f.details["message"])


def test_manifests_are_parsed_once_with_policies(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    root = _tree(tmp_path)
    calls: list[str] = []
    real = kubernetes.load_manifests

    def counting(data, path="-", result=None):
        calls.append(path)
        return real(data, path, result)

    monkeypatch.setattr(kubernetes, "load_manifests", counting)
    assert main(["config", "-f", "json", "--policy", str(EXAMPLES), str(root)]) == 0
    # The policy files are read through the same loader; the manifests under root once each.
    read = sorted(c for c in calls if c.startswith(str(root)))
    assert read == sorted([str(root / "pods.yaml"), str(root / "sub" / "svc.yml")])
    rules = {f["rule_id"] for f in json.loads(capsys.readouterr().out)["findings"]}
    assert {"CEL:disallow-latest-tag", "CEL:disallow-host-namespaces"} <= rules
    assert {"HG-PSS-002", "HG-K8S-030"} <= rules  # the built-in checks ran on the same objects


def test_reused_objects_give_the_findings_of_a_fresh_read(tmp_path: Path) -> None:
    root = _tree(tmp_path)
    result = check_config_paths([str(root)])
    assert [o.kind for o in result.loaded] == ["Pod", "Deployment", "Service"]
    reused = cli_config._cel_findings([str(root)], [str(EXAMPLES)], None, result.loaded)
    fresh = cli_config._cel_findings([str(root)], [str(EXAMPLES)], None)
    assert reused[0] and sorted(map(_key, reused[0])) == sorted(map(_key, fresh[0]))
    assert reused[1:] == fresh[1:]


def test_no_manifests_means_no_objects_for_policies(tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM debian\n")
    result = check_config_paths([str(tmp_path)])
    assert result.loaded == []
    findings, errors, _ = cli_config._cel_findings([str(tmp_path)], [str(EXAMPLES)], None, result.loaded)
    assert findings == [] and errors == []
