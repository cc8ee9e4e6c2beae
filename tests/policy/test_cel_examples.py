"""Every policy under examples/policies on manifests that pass and manifests that fail it."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from hullguard.policy.cel import build_request, check_object, load_policies

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "policies"

GOOD_DEPLOYMENT = yaml.safe_load("""
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: shop
  labels: {app.kubernetes.io/name: web, team: payments}
spec:
  replicas: 2
  template:
    metadata: {labels: {app: web}}
    spec:
      securityContext: {runAsNonRoot: true}
      initContainers:
      - name: init
        image: registry.example.com/tools/init:1.0
        resources: {limits: {cpu: 100m, memory: 64Mi}}
      containers:
      - name: app
        image: registry.example.com/shop/web:2.3.1
        resources: {limits: {cpu: "1", memory: 512Mi}}
      - name: sidecar
        image: ghcr.io/example-org/proxy@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
        resources: {limits: {cpu: 200m, memory: 4Gi}}
""")

GOOD_POD = yaml.safe_load("""
apiVersion: v1
kind: Pod
metadata: {name: one, namespace: shop}
spec:
  containers:
  - name: c
    image: registry.example.com/shop/one:1
    securityContext: {runAsNonRoot: true}
    resources: {limits: {cpu: 1, memory: 1Gi}}
""")


def policy(name: str):
    (p,) = load_policies([EXAMPLES / f"{name}.yaml"])
    return p


def violations(name: str, obj: dict) -> list[str]:
    out = check_object([policy(name)], obj)
    assert not any(v.error for v in out), out
    return [v.message for v in out]


def changed(obj: dict, path: str, value) -> dict:
    obj = copy.deepcopy(obj)
    keys = [int(k) if k.isdigit() else k for k in path.split(".")]
    target = obj
    for k in keys[:-1]:
        target = target[k]
    if value is None:
        del target[keys[-1]]
    else:
        target[keys[-1]] = value
    return obj


def test_every_example_loads_and_has_a_test() -> None:
    names = sorted(p.stem for p in EXAMPLES.glob("*.yaml"))
    assert len(names) >= 5
    tested = {"require-resource-limits", "disallow-latest-tag", "require-run-as-non-root", "allowed-registries",
              "require-labels", "disallow-host-namespaces"}
    assert set(names) == tested
    for n in names:
        assert policy(n).name == n


@pytest.mark.parametrize("name", ["require-resource-limits", "disallow-latest-tag", "require-run-as-non-root",
                                  "allowed-registries", "require-labels", "disallow-host-namespaces"])
def test_good_manifests_pass(name: str) -> None:
    assert violations(name, GOOD_DEPLOYMENT) == []
    if name != "require-labels":  # a Pod is not among the kinds require-labels selects
        assert violations(name, GOOD_POD) == []


def test_require_resource_limits() -> None:
    no_limits = changed(GOOD_DEPLOYMENT, "spec.template.spec.containers.0.resources", None)
    assert violations("require-resource-limits", no_limits) == ["containers without cpu and memory limits: app"]
    no_cpu_init = changed(GOOD_DEPLOYMENT, "spec.template.spec.initContainers.0.resources.limits", {"memory": "1Mi"})
    assert violations("require-resource-limits", no_cpu_init) == ["containers without cpu and memory limits: init"]
    too_big = changed(GOOD_DEPLOYMENT, "spec.template.spec.containers.1.resources.limits.memory", "4097Mi")
    assert violations("require-resource-limits", too_big) == ["memory limit above 4Gi"]
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}, "spec": {}}
    assert violations("require-resource-limits", service) == []


@pytest.mark.parametrize(("image", "bad"), [
    ("nginx", True), ("nginx:latest", True), ("docker.io/library/nginx:latest", True),
    ("registry:5000/app", True), ("registry:5000/app:1.2", False), ("nginx:1.25", False),
    ("nginx@sha256:" + "a" * 64, False), ("ghcr.io/org/latest:1", False),
])
def test_disallow_latest_tag(image: str, bad: bool) -> None:
    obj = changed(GOOD_POD, "spec.containers.0.image", image)
    got = violations("disallow-latest-tag", obj)
    assert got == ([f"image without a pinned tag: {image}"] if bad else [])
    assert check_object([policy("disallow-latest-tag")], obj)[0].reason == "Forbidden" if bad else True


def test_require_run_as_non_root() -> None:
    pod_level_off = changed(GOOD_DEPLOYMENT, "spec.template.spec.securityContext", None)
    assert violations("require-run-as-non-root", pod_level_off) == ["containers that may run as root: app, sidecar"]
    per_container = changed(pod_level_off, "spec.template.spec.containers.0.securityContext", {"runAsNonRoot": True})
    per_container = changed(per_container, "spec.template.spec.containers.1.securityContext", {"runAsNonRoot": True})
    assert violations("require-run-as-non-root", per_container) == []
    override = changed(GOOD_DEPLOYMENT, "spec.template.spec.containers.1.securityContext", {"runAsNonRoot": False})
    assert violations("require-run-as-non-root", override) == ["containers that may run as root: sidecar"]
    job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j", "namespace": "x"},
           "spec": {"template": {"spec": {"containers": [{"name": "j", "image": "x:1"}]}}}}
    assert violations("require-run-as-non-root", job) == ["containers that may run as root: j"]


def test_allowed_registries_uses_the_configmap_params() -> None:
    p = policy("allowed-registries")
    assert p.param_kind == {"apiVersion": "v1", "kind": "ConfigMap"} and p.bindings[0].param_ref
    bad = changed(GOOD_DEPLOYMENT, "spec.template.spec.initContainers.0.image", "docker.io/busybox:1")
    assert violations("allowed-registries", bad) == ["images from registries not allowed: docker.io/busybox:1"]
    # A prefix of an allowed registry host is not that registry.
    lookalike = changed(GOOD_POD, "spec.containers.0.image", "registry.example.com.evil.io/x:1")
    assert violations("allowed-registries", lookalike) == [
        "images from registries not allowed: registry.example.com.evil.io/x:1"]
    cron = {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "c", "namespace": "x"},
            "spec": {"jobTemplate": {"spec": {"template": {"spec": {
                "containers": [{"name": "c", "image": "quay.io/c:1"}]}}}}}}
    assert violations("allowed-registries", cron) == ["images from registries not allowed: quay.io/c:1"]


def test_allowed_registries_denies_when_its_params_are_gone() -> None:
    p = policy("allowed-registries")
    p.param_objects = []
    (v,) = check_object([p], GOOD_POD)
    assert v.error and "no params found" in v.message


def test_require_labels() -> None:
    missing = changed(GOOD_DEPLOYMENT, "metadata.labels", {"team": "payments"})
    assert violations("require-labels", missing) == ["missing labels: app.kubernetes.io/name"]
    none = changed(GOOD_DEPLOYMENT, "metadata.labels", None)
    assert violations("require-labels", none) == ["missing labels: app.kubernetes.io/name, team"]
    bad_team = changed(GOOD_DEPLOYMENT, "metadata.labels.team", "Pay_Ments")
    assert violations("require-labels", bad_team) == [
        "the team label must be a DNS label (lower-case letters, digits and '-')"]
    exempt = changed(none, "metadata.labels", {"hullguard.dev/exempt": "true"})
    assert violations("require-labels", exempt) == []


def test_disallow_host_namespaces() -> None:
    host = changed(GOOD_DEPLOYMENT, "spec.template.spec.hostNetwork", True)
    host = changed(host, "spec.template.spec.hostPID", True)
    assert violations("disallow-host-namespaces", host) == ["host namespaces shared: hostNetwork, hostPID"]
    explicit_false = changed(GOOD_POD, "spec.hostIPC", False)
    assert violations("disallow-host-namespaces", explicit_false) == []
    system = changed(host, "metadata.namespace", "kube-system")
    assert check_object([policy("disallow-host-namespaces")], system, request=build_request(system)) == []
