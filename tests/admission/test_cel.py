"""CEL (ValidatingAdmissionPolicy) policies from hullguard.policy.cel, run by the webhook."""

from __future__ import annotations

import pytest
from tests.admission.conftest import pod, review, workload

from hullguard.model import HullguardError

pytest.importorskip("hullguard.policy.cel")

POLICIES = """
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {name: require-team-label}
spec:
  matchConstraints:
    resourceRules:
    - {apiGroups: ["apps"], apiVersions: ["v1"], operations: ["CREATE", "UPDATE"], resources: ["deployments"]}
  validations:
  - expression: "has(object.metadata.labels) && 'team' in object.metadata.labels"
    message: "deployments need a team label"
  - expression: "oldObject == null || !has(oldObject.metadata.labels) || !('team' in oldObject.metadata.labels)
      || object.metadata.labels['team'] == oldObject.metadata.labels['team']"
    messageExpression: "'the team label may not change (was ' + oldObject.metadata.labels['team'] + ')'"
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {name: protect-db}
spec:
  matchConstraints:
    resourceRules:
    - {apiGroups: ["apps"], apiVersions: ["v1"], operations: ["DELETE"], resources: ["deployments"]}
  validations:
  - expression: "oldObject.metadata.name != 'db'"
    message: "the db deployment may not be deleted"
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {name: prod-replicas}
spec:
  matchConstraints:
    namespaceSelector: {matchLabels: {tier: prod}}
    resourceRules:
    - {apiGroups: ["apps"], apiVersions: ["v1"], operations: ["CREATE"], resources: ["deployments"]}
  validations:
  - expression: "object.spec.replicas >= 2"
    message: "prod deployments need at least 2 replicas"
"""


def _deploy(name: str = "web", team: str | None = "shop", replicas: int = 1) -> dict:
    d = workload("Deployment", pod("nginx:1.27"), name=name)
    if team:
        d["metadata"]["labels"] = {"team": team}
    d["spec"]["replicas"] = replicas
    return d


@pytest.fixture
def hook(start_webhook, tmp_path):
    (tmp_path / "vap.yaml").write_text(POLICIES)
    return start_webhook("""
namespaces:
  prod: {labels: {tier: prod}}
policies:
  - name: cel
    type: cel
    files: [vap.yaml]
    operations: [CREATE, UPDATE, DELETE]
""")


def test_cel_create_update_delete(hook) -> None:
    assert hook.post(review(_deploy()))["allowed"] is True
    resp = hook.post(review(_deploy(team=None)))
    assert resp["allowed"] is False
    assert "[cel] require-team-label: deployments need a team label" in resp["status"]["message"]
    # UPDATE sees oldObject.
    resp = hook.post(review(_deploy(team="ads"), operation="UPDATE", old=_deploy(team="shop")))
    assert resp["allowed"] is False
    assert "the team label may not change (was shop)" in resp["status"]["message"]
    assert hook.post(review(_deploy(replicas=3), operation="UPDATE", old=_deploy()))["allowed"] is True
    # DELETE: nothing to check unless a policy says so.
    assert hook.post(review(None, operation="DELETE", old=_deploy(name="web")))["allowed"] is True
    resp = hook.post(review(None, operation="DELETE", old=_deploy(name="db")))
    assert resp["allowed"] is False and "the db deployment may not be deleted" in resp["status"]["message"]
    # The namespace labels from the policy file feed the policy's namespaceSelector.
    assert hook.post(review(_deploy(), namespace="dev"))["allowed"] is True
    resp = hook.post(review(_deploy(), namespace="prod"))
    assert resp["allowed"] is False and "at least 2 replicas" in resp["status"]["message"]
    # Pods are not matched by these policies.
    assert hook.post(review(pod("nginx:1")))["allowed"] is True


def test_cel_compile_error_stops_start(start_webhook, tmp_path) -> None:
    (tmp_path / "bad.yaml").write_text(POLICIES.replace("object.spec.replicas >= 2", "object.spec.replicas >= "))
    with pytest.raises(HullguardError) as exc:
        start_webhook("policies: [{name: cel, type: cel, files: [bad.yaml]}]")
    assert "prod-replicas" in str(exc.value)
