"""Kubernetes manifests: loading (multi-document, Lists, lines, hostile YAML), workload kinds,
least-privilege rules, RBAC subjects and NetworkPolicy coverage."""

from __future__ import annotations

import io
import textwrap
from pathlib import Path
from typing import Any

import pytest

from hullguard.detect.misconfig import kubernetes as k8s
from hullguard.detect.misconfig.kubernetes import (
    ManifestResult,
    check_manifests,
    check_paths,
    check_text,
    load_manifests,
    pod_template,
    selector_matches,
)

GOOD_CONTAINER: dict[str, Any] = {
    "name": "app", "image": "reg.example/app:1.2@sha256:" + "a" * 64,
    "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"cpu": "1", "memory": "128Mi"}},
    "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]},
                        "readOnlyRootFilesystem": True},
}


def pod(name: str = "p", ns: str = "shop", labels: dict[str, str] | None = None, **spec: Any) -> dict[str, Any]:
    s: dict[str, Any] = {"automountServiceAccountToken": False, "serviceAccountName": "app",
                         "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
                         "containers": [dict(GOOD_CONTAINER)]}
    s.update(spec)
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns, "labels": labels or {}},
            "spec": s}


DENY_ALL = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": "deny", "namespace": "shop"},
            "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}}


def rule_ids(docs: list[dict[str, Any]], **kw: Any) -> list[str]:
    return sorted(f.rule_id for f in check_manifests(docs, **kw))


def test_clean_pod_has_no_findings():
    assert rule_ids([pod(), DENY_ALL]) == []


# --- loading --------------------------------------------------------------------------------------

MULTI = textwrap.dedent("""\
    # leading comment
    apiVersion: v1
    kind: Namespace
    metadata: {name: shop}
    ---
    ---
    apiVersion: v1
    kind: List
    items:
    - apiVersion: v1
      kind: ConfigMap
      metadata: {name: a}
    - apiVersion: v1
      kind: Service
      metadata: {name: b}
      spec: {type: NodePort}
    ---
    just a string
    ---
    apiVersion: v1
    kind: Pod
    metadata:
      name: c
    spec:
      containers: [{name: x, image: "x"}]
    """)


def test_multi_document_lists_and_lines():
    result = ManifestResult()
    objs = load_manifests(MULTI, "m.yaml", result)
    assert [(o.kind, o.name, o.line) for o in objs] == [
        ("Namespace", "shop", 2), ("ConfigMap", "a", 10), ("Service", "b", 13), ("Pod", "c", 20)]
    assert any("not a mapping" in n for n in result.notices)
    svc = [f for f in check_manifests(objs) if f.rule_id == "HG-K8S-009"]
    assert svc and svc[0].location is not None and svc[0].location.line == 13 and svc[0].location.path == "m.yaml"


def test_invalid_yaml_keeps_earlier_documents():
    result = ManifestResult()
    objs = load_manifests("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ok}\n---\nkind: [unclosed\n", "x.yaml",
                          result)
    assert [o.name for o in objs] == ["ok"]
    assert len(result.errors) == 1 and "x.yaml:" in result.errors[0] and "invalid YAML" in result.errors[0]


def test_alias_bomb_is_refused():
    lines = ['a0: &a0 ["x","x","x","x","x","x","x","x","x","x"]']
    for i in range(1, 9):
        lines.append(f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 10) + "]")
    result = ManifestResult()
    assert load_manifests("\n".join(lines), "bomb.yaml", result) == []
    assert "bomb.yaml" in result.errors[0] and "nodes" in result.errors[0]


def test_deep_nesting_binary_and_huge_are_refused(monkeypatch: pytest.MonkeyPatch):
    result = ManifestResult()
    assert load_manifests("[" * 5000 + "]" * 5000, "deep.yaml", result) == []
    assert load_manifests(b"\x00\x01binary", "bin.yaml", result) == []
    monkeypatch.setattr(k8s, "MAX_FILE_BYTES", 100)
    assert load_manifests(b"a: b\n" * 100, "huge.yaml", result) == []
    assert [e.split(":")[0] for e in result.errors] == ["deep.yaml", "bin.yaml", "huge.yaml"]


def test_unknown_kinds_and_kindless_documents(tmp_path: Path):
    (tmp_path / "crd.yaml").write_text("apiVersion: x.io/v1\nkind: Widget\nmetadata: {name: w}\n---\nfoo: bar\n")
    result = check_paths([str(tmp_path)])
    assert result.errors == []
    assert any("Widget has no checks" in n for n in result.notices)
    assert any("has no kind" in n for n in result.notices)


def test_paths_folders_stdin_and_missing(tmp_path: Path):
    (tmp_path / "a.yaml").write_text("apiVersion: v1\nkind: Pod\nmetadata: {name: a, namespace: shop}\n"
                                     "spec: {containers: [{name: c, image: nginx}]}\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.yml").write_text("{]")
    (tmp_path / "notes.txt").write_text("ignored")
    stdin = io.BytesIO(b"apiVersion: v1\nkind: Service\nmetadata: {name: s, namespace: shop}\n"
                       b"spec: {type: LoadBalancer}\n")
    result = check_paths([str(tmp_path), "-", str(tmp_path / "nope.yaml")], stdin=stdin)
    assert result.objects == 2
    assert len(result.errors) == 2
    assert {f.rule_id for f in result.findings} >= {"HG-K8S-007", "HG-K8S-010", "HG-PSS-013"}
    assert {f.location.path for f in result.findings if f.location} == {str(tmp_path / "a.yaml"), "-"}


def test_check_text_counts_objects():
    result = check_text(MULTI, "m.yaml")
    assert result.objects == 4 and result.findings


@pytest.mark.parametrize("kind", ["Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "ReplicationController",
                                  "Job", "CronJob", "Pod"])
def test_every_workload_kind_reaches_its_pod_template(kind: str):
    template = {"metadata": {"labels": {"app": "x"}}, "spec": {"hostPID": True, "containers": [{"name": "c"}]}}
    if kind == "Pod":
        obj = {"kind": "Pod", "metadata": {"name": "x"}, "spec": template["spec"]}
    elif kind == "CronJob":
        obj = {"kind": kind, "metadata": {"name": "x"}, "spec": {"jobTemplate": {"spec": {"template": template}}}}
    else:
        obj = {"kind": kind, "metadata": {"name": "x"}, "spec": {"template": template}}
    assert pod_template(obj) is not None
    found = check_manifests([obj], pss_level="baseline")
    assert [f.rule_id for f in found] == ["HG-PSS-002"]
    assert found[0].target == f"{kind}/x"


def test_pss_level_mode_reports_only_pss_and_version():
    bad = pod(containers=[dict(GOOD_CONTAINER, securityContext={"runAsUser": 0})])
    assert {f.rule_id for f in check_manifests([bad], pss_level="restricted")} == {
        "HG-PSS-013", "HG-PSS-015", "HG-PSS-017"}
    assert {f.rule_id for f in check_manifests([bad], pss_level="restricted", pss_version="v1.22")} == {
        "HG-PSS-013", "HG-PSS-017"}
    assert check_manifests([bad], pss_level="baseline") == []
    assert check_manifests([bad], pss_level="privileged") == []
    with pytest.raises(ValueError):
        check_manifests([bad], pss_level="nope")


# --- least privilege ------------------------------------------------------------------------------

def container(**changes: Any) -> dict[str, Any]:
    c = dict(GOOD_CONTAINER)
    c.update(changes)
    return c


LEAST = [
    ("HG-K8S-001", pod(containers=[container(securityContext={"allowPrivilegeEscalation": False,
                                                              "capabilities": {"drop": ["ALL"]}})])),
    ("HG-K8S-002", pod(containers=[container(resources={"limits": {"cpu": "1", "memory": "1Gi"}})])),
    ("HG-K8S-003", pod(containers=[container(resources={"requests": {"cpu": "1", "memory": "1Gi"},
                                                        "limits": {"cpu": "1"}})])),
    ("HG-K8S-004", pod(containers=[container(resources={"requests": {"cpu": "1", "memory": "1Gi"},
                                                        "limits": {"memory": "1Gi"}})])),
    ("HG-K8S-005", pod(automountServiceAccountToken=True)),
    ("HG-K8S-006", pod(containers=[container(image="reg.example/app:1.2")])),
    ("HG-K8S-007", pod(containers=[container(image="nginx:latest")])),
    ("HG-K8S-007", pod(containers=[container(image="localhost:5000/nginx")])),
    ("HG-K8S-008", pod(ns="default")),
    ("HG-K8S-011", pod(containers=[container(args=["--enable-skip-login"])])),
    ("HG-K8S-012", pod(volumes=[{"name": "s", "hostPath": {"path": "/var/run/docker.sock"}}])),
    ("HG-K8S-013", pod(serviceAccountName="default")),
    ("HG-K8S-014", pod(containers=[container(env=[{"name": "DB_PASSWORD", "value": "hunter2"}])])),
]


@pytest.mark.parametrize(("rule", "doc"), LEAST, ids=[f"{r}-{i}" for i, (r, _) in enumerate(LEAST)])
def test_least_privilege_rules(rule: str, doc: dict[str, Any]):
    assert rule in rule_ids([doc, DENY_ALL])
    assert rule not in rule_ids([pod(), DENY_ALL])


def test_secret_env_from_secret_ref_is_fine():
    doc = pod(containers=[container(env=[{"name": "DB_PASSWORD",
                                          "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}])])
    assert "HG-K8S-014" not in rule_ids([doc, DENY_ALL])


def test_automount_follows_the_service_account():
    p = pod()
    del p["spec"]["automountServiceAccountToken"]
    assert "HG-K8S-005" in rule_ids([p, DENY_ALL])
    sa = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "app", "namespace": "shop"},
          "automountServiceAccountToken": False}
    assert "HG-K8S-005" not in rule_ids([p, sa, DENY_ALL])


def test_missing_namespace_is_reported():
    p = pod()
    del p["metadata"]["namespace"]
    found = [f for f in check_manifests([p]) if f.rule_id == "HG-K8S-008"]
    assert found and found[0].details["message"] == "no namespace set"


def test_services_and_dashboards():
    def svc(name: str, stype: str, selector: dict[str, str] | None = None) -> dict[str, Any]:
        return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": "shop"},
                "spec": {"type": stype, "selector": selector or {}}}

    dash = pod(name="d", labels={"k8s-app": "ui"},
               containers=[container(image="kubernetesui/dashboard:v2.7.0@sha256:" + "b" * 64)])
    assert rule_ids([svc("a", "ClusterIP")]) == []
    assert rule_ids([svc("a", "NodePort")]) == ["HG-K8S-009"]
    assert rule_ids([svc("a", "LoadBalancer")]) == ["HG-K8S-010"]
    found = [f for f in check_manifests([dash, DENY_ALL, svc("ui", "LoadBalancer", {"k8s-app": "ui"})])
             if f.rule_id == "HG-K8S-011"]
    assert len(found) == 1 and found[0].target == "Service/shop/ui"
    assert "HG-K8S-011" in rule_ids([svc("kubernetes-dashboard", "NodePort")])


# --- RBAC -----------------------------------------------------------------------------------------

def role(kind: str, name: str, rules: list[dict[str, Any]], ns: str = "shop") -> dict[str, Any]:
    meta = {"name": name} if kind == "ClusterRole" else {"name": name, "namespace": ns}
    return {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": kind, "metadata": meta, "rules": rules}


def binding(kind: str, role_kind: str, role_name: str, subjects: list[dict[str, Any]], ns: str = "shop"):
    meta = {"name": "b"} if kind == "ClusterRoleBinding" else {"name": "b", "namespace": ns}
    return {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": kind, "metadata": meta,
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": role_name},
            "subjects": subjects}


SA = {"kind": "ServiceAccount", "name": "ci", "namespace": "build"}

RBAC = [
    ("HG-K8S-020", [{"apiGroups": [""], "resources": ["*"], "verbs": ["get"]}]),
    ("HG-K8S-021", [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["list"]}]),
    ("HG-K8S-022", [{"apiGroups": [""], "resources": ["pods/exec"], "verbs": ["create"]}]),
    ("HG-K8S-023", [{"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["clusterroles"], "verbs": ["bind"]}]),
    ("HG-K8S-023", [{"apiGroups": [""], "resources": ["users", "groups"], "verbs": ["impersonate"]}]),
    ("HG-K8S-024", [{"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["create"]}]),
]


@pytest.mark.parametrize(("rule", "rules"), RBAC, ids=[f"{r}-{i}" for i, (r, _) in enumerate(RBAC)])
def test_rbac_powers_name_the_subject(rule: str, rules: list[dict[str, Any]]):
    docs = [role("Role", "r", rules), binding("RoleBinding", "Role", "r", [SA])]
    found = [f for f in check_manifests(docs) if f.rule_id == rule]
    assert found, rule
    assert found[0].details["subject"] == "ServiceAccount build/ci"
    assert found[0].target == "RoleBinding/shop/b"
    assert 'in namespace "shop"' in found[0].details["message"]


def test_harmless_role_and_named_secret_are_fine():
    rules = [{"apiGroups": [""], "resources": ["configmaps", "pods"], "verbs": ["get", "list"]},
             {"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["tls"], "verbs": ["get"]}]
    docs = [role("Role", "r", rules), binding("RoleBinding", "Role", "r", [SA])]
    assert [f for f in check_manifests(docs) if f.rule_id.startswith("HG-K8S-02")] == []


def test_cluster_admin_to_broad_subjects():
    for subject in (SA, {"kind": "Group", "name": "system:authenticated"},
                    {"kind": "Group", "name": "system:unauthenticated"}):
        docs = [binding("ClusterRoleBinding", "ClusterRole", "cluster-admin", [subject])]
        found = [f for f in check_manifests(docs) if f.rule_id == "HG-K8S-025"]
        assert len(found) == 1 and "cluster-wide" in found[0].details["message"]
    admins = binding("ClusterRoleBinding", "ClusterRole", "cluster-admin", [{"kind": "Group", "name": "ops-admins"}])
    assert "HG-K8S-025" not in rule_ids([admins])
    assert "HG-K8S-020" in rule_ids([admins])  # the group still gets the power, just not a 025


def test_custom_all_wildcard_cluster_role_counts_as_cluster_admin():
    docs = [role("ClusterRole", "god", [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]),
            binding("RoleBinding", "ClusterRole", "god", [{"kind": "ServiceAccount", "name": "app"}], ns="team")]
    found = [f for f in check_manifests(docs) if f.rule_id == "HG-K8S-025"]
    assert found and found[0].details["subject"] == "ServiceAccount team/app"
    assert 'in namespace "team"' in found[0].details["scope"]


def test_unbound_role_reported_on_the_role():
    found = [f for f in check_manifests([role("ClusterRole", "r", RBAC[1][1])]) if f.rule_id == "HG-K8S-021"]
    assert found and found[0].target == "ClusterRole/r" and "subject" not in found[0].details


# --- NetworkPolicy --------------------------------------------------------------------------------

def netpol(name: str, selector: dict[str, Any], ns: str = "shop", **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": name, "namespace": ns},
            "spec": {"podSelector": selector, **spec}}


def test_namespace_without_default_deny():
    found = [f for f in check_manifests([pod(name="a"), pod(name="b")]) if f.rule_id == "HG-K8S-030"]
    assert len(found) == 1 and found[0].details["namespace"] == "shop"
    allow_all = netpol("allow", {}, ingress=[{}])
    assert "HG-K8S-030" in rule_ids([pod(), allow_all])
    assert "HG-K8S-030" not in rule_ids([pod(), netpol("deny", {}, policyTypes=["Ingress"])])
    # A policy in another namespace does not count.
    assert "HG-K8S-030" in rule_ids([pod(), netpol("deny", {}, ns="other", policyTypes=["Ingress"])])


def test_pods_selected_by_no_policy():
    web = pod(name="web", labels={"app": "web", "tier": "front"})
    db = pod(name="db", labels={"app": "db"})
    pol = netpol("web", {"matchLabels": {"app": "web"}}, ingress=[{}])
    found = {f.target for f in check_manifests([web, db, pol]) if f.rule_id == "HG-K8S-031"}
    assert found == {"Pod/shop/db"}


def test_label_selector_semantics():
    labels = {"app": "web", "tier": "front"}
    assert selector_matches({}, labels)
    assert not selector_matches(None, labels)
    assert selector_matches({"matchExpressions": [{"key": "app", "operator": "In", "values": ["web", "x"]}]}, labels)
    assert not selector_matches({"matchExpressions": [{"key": "app", "operator": "NotIn", "values": ["web"]}]}, labels)
    assert selector_matches({"matchExpressions": [{"key": "env", "operator": "DoesNotExist"}]}, labels)
    assert not selector_matches({"matchExpressions": [{"key": "env", "operator": "Exists"}]}, labels)
    assert not selector_matches({"matchLabels": {"app": "web"},
                                 "matchExpressions": [{"key": "tier", "operator": "In", "values": ["back"]}]}, labels)


def test_hostile_documents_do_not_crash():
    docs: list[Any] = [
        {"kind": "Pod", "metadata": "x", "spec": {"containers": [None, "x", {"env": [None], "resources": "r"}]}},
        {"kind": "Deployment", "spec": {"template": "nope"}},
        {"kind": "RoleBinding", "roleRef": None, "subjects": "all"},
        {"kind": "ClusterRole", "metadata": {"name": "x"}, "rules": [None, {"verbs": "get"}]},
        {"kind": "NetworkPolicy", "spec": {"podSelector": {"matchExpressions": [None]}}},
        {"kind": "Service", "spec": None},
        {"kind": "List", "items": [None, 5, {"kind": "Pod"}]},
    ]
    check_manifests(docs)
    check_manifests(docs, pss_level="restricted")


def test_config_paths_mixes_dockerfiles_and_manifests(tmp_path: Path):
    from hullguard.detect.misconfig.config import check_config_paths

    (tmp_path / "svc").mkdir()
    (tmp_path / "svc" / "Dockerfile").write_text("FROM alpine\nCOPY . .\n")
    (tmp_path / "svc" / "Dockerfile.dev").write_bytes(b"\x00\x00binary")
    (tmp_path / "k8s.yaml").write_text("apiVersion: v1\nkind: Pod\nmetadata: {name: a, namespace: shop}\n"
                                       "spec: {hostNetwork: true, containers: [{name: c, image: nginx}]}\n")
    result = check_config_paths([str(tmp_path), str(tmp_path / "gone")])
    ids = {f.rule_id for f in result.findings}
    assert {"HG-DF-001", "HG-DF-004", "HG-DF-020", "HG-PSS-002", "HG-K8S-007"} <= ids
    assert result.objects == 2
    assert len(result.errors) == 2 and "gone" in result.errors[0] and "binary" in result.errors[1]
    only_pss = check_config_paths([str(tmp_path)], pss_level="baseline", pss_version="v1.30")
    assert {f.rule_id for f in only_pss.findings} == {"HG-PSS-002"}


def test_rule_catalogue_is_complete():
    from hullguard.detect.misconfig import all_rules, get_rule

    rules = all_rules()
    prefixes = {r.id.rsplit("-", 1)[0] for r in rules}
    assert prefixes == {"HG-DF", "HG-IMG", "HG-K8S", "HG-PSS"}
    assert len({r.id for r in rules}) == len(rules)
    assert get_rule("HG-PSS-002") is not None and get_rule("HG-PSS-002").pss == "baseline/hostNamespaces"
    assert get_rule("HG-K8S-025") is not None


def test_default_mode_reports_baseline_violation_hidden_by_restricted_override():
    doc = pod(containers=[container(securityContext={"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                                     "capabilities": {"drop": ["ALL"], "add": ["SYS_ADMIN"]}})])
    findings = check_manifests([doc, DENY_ALL])
    found = {f.rule_id: f.details["pss_level"] for f in findings if f.rule_id.startswith("HG-PSS")}
    assert found == {"HG-PSS-004": "baseline", "HG-PSS-017": "restricted"}


def test_aggregated_cluster_role_gets_matching_rules():
    part = role("ClusterRole", "secret-reader", [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}])
    part["metadata"]["labels"] = {"rbac.example/aggregate-to-monitoring": "true"}
    agg = role("ClusterRole", "monitoring", [])
    selector = {"matchLabels": {"rbac.example/aggregate-to-monitoring": "true"}}
    agg["aggregationRule"] = {"clusterRoleSelectors": [selector]}
    bind = binding("ClusterRoleBinding", "ClusterRole", "monitoring", [SA])
    found = [f for f in check_manifests([part, agg, bind]) if f.rule_id == "HG-K8S-021"]
    subjects = [f.details.get("subject") for f in found if f.target == "ClusterRoleBinding/b"]
    assert subjects == ["ServiceAccount build/ci"]


def test_container_findings_point_at_the_container_line():
    text = textwrap.dedent("""\
        apiVersion: v1
        kind: List
        items:
        - apiVersion: batch/v1
          kind: CronJob
          metadata: {name: c, namespace: shop}
          spec:
            jobTemplate:
              spec:
                template:
                  spec:
                    initContainers:
                    - name: init
                      image: busybox:1.36
                    containers:
                    - name: main
                      image: busybox
        """)
    findings = check_text(text, "c.yaml").findings
    lines = {(f.rule_id, f.details.get("container")): f.location.line for f in findings if f.location}
    assert lines[("HG-K8S-006", "init")] == 13
    assert lines[("HG-K8S-007", "main")] == 16
    assert lines[("HG-K8S-005", None)] == 4  # pod-level findings stay on the object
