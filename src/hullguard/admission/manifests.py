"""The Kubernetes objects that install the webhook, as plain dicts (dumped as multi-document YAML)."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any

from hullguard.model import HullguardError

NAME = "hullguard-admission"
PORT = 8443
WEBHOOK_RULES = [
    {"apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods", "pods/ephemeralcontainers",
                                                           "replicationcontrollers"]},
    {"apiGroups": ["apps"], "apiVersions": ["v1"],
     "resources": ["deployments", "statefulsets", "daemonsets", "replicasets"]},
    {"apiGroups": ["batch"], "apiVersions": ["v1"], "resources": ["jobs", "cronjobs"]},
]
DEFAULT_POLICY = """\
# hullguard admission policy; see docs/admission.md
defaults:
  mode: enforce
  failurePolicy: Fail
policies:
  - name: pin-digests
    type: mutateDigest
  - name: no-latest
    type: disallowLatest
  - name: pod-security
    type: podSecurity
    level: baseline
    warn: restricted
"""


@dataclass
class Options:
    namespace: str
    image: str
    cert_pem: bytes
    key_pem: bytes
    ca_pem: bytes
    policy_text: str = DEFAULT_POLICY
    name: str = NAME
    replicas: int = 2
    timeout_seconds: int = 10
    failure_policy: str = "Fail"
    operations: list[str] = field(default_factory=lambda: ["CREATE", "UPDATE"])


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def build(o: Options) -> list[dict[str, Any]]:
    if b"-----BEGIN CERTIFICATE-----" not in o.ca_pem:
        raise HullguardError("--ca is not a PEM certificate")
    if b"-----BEGIN CERTIFICATE-----" not in o.cert_pem:
        raise HullguardError("--cert is not a PEM certificate")
    if b"PRIVATE KEY-----" not in o.key_pem:
        raise HullguardError("--key is not a PEM private key")
    if not 1 <= o.timeout_seconds <= 30:
        raise HullguardError("--timeout-seconds must be between 1 and 30 (the API server's limit)")
    labels = {"app.kubernetes.io/name": o.name, "app.kubernetes.io/part-of": "hullguard"}
    meta = {"name": o.name, "namespace": o.namespace, "labels": labels}
    tls_secret, config_map = f"{o.name}-tls", f"{o.name}-policy"
    objects: list[dict[str, Any]] = [
        {"apiVersion": "v1", "kind": "Namespace",
         "metadata": {"name": o.namespace, "labels": {"pod-security.kubernetes.io/enforce": "restricted"}}},
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta, "automountServiceAccountToken": False},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": meta,
         "rules": [{"apiGroups": [""], "resources": ["secrets"], "resourceNames": [tls_secret],
                    "verbs": ["get", "watch"]},
                   {"apiGroups": [""], "resources": ["configmaps"], "resourceNames": [config_map],
                    "verbs": ["get", "watch"]}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": meta,
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": o.name},
         "subjects": [{"kind": "ServiceAccount", "name": o.name, "namespace": o.namespace}]},
        {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
         "metadata": {**meta, "name": tls_secret},
         "data": {"tls.crt": _b64(o.cert_pem), "tls.key": _b64(o.key_pem)}},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {**meta, "name": config_map},
         "data": {"policy.yaml": o.policy_text}},
        _deployment(o, meta, labels, tls_secret, config_map),
        # Default-deny ingress for the namespace, then open only the webhook port (the API server's
        # source address is not known in advance, so the port is open to any peer).
        {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
         "metadata": {**meta, "name": "default-deny-ingress"},
         "spec": {"podSelector": {}, "policyTypes": ["Ingress"]}},
        {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": meta,
         "spec": {"podSelector": {"matchLabels": labels}, "policyTypes": ["Ingress"],
                  "ingress": [{"ports": [{"port": PORT, "protocol": "TCP"}]}]}},
        {"apiVersion": "v1", "kind": "Service", "metadata": meta,
         "spec": {"selector": labels, "ports": [{"name": "https", "port": 443, "targetPort": PORT,
                                                 "protocol": "TCP"}]}},
    ]
    for kind, path, suffix in (("MutatingWebhookConfiguration", "/mutate", "mutate"),
                               ("ValidatingWebhookConfiguration", "/validate", "validate")):
        hook: dict[str, Any] = {
            "name": f"{suffix}.{o.name}.hullguard.dev",
            "clientConfig": {"service": {"name": o.name, "namespace": o.namespace, "path": path, "port": 443},
                             "caBundle": _b64(o.ca_pem)},
            "rules": [{**r, "operations": o.operations, "scope": "*"} for r in WEBHOOK_RULES],
            "admissionReviewVersions": ["v1"],
            "sideEffects": "None",
            "timeoutSeconds": o.timeout_seconds,
            "failurePolicy": o.failure_policy,
            "matchPolicy": "Equivalent",
            # Never judge the webhook's own namespace: a broken webhook could not be redeployed.
            "namespaceSelector": {"matchExpressions": [
                {"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": [o.namespace]}]},
        }
        if kind == "MutatingWebhookConfiguration":
            hook["reinvocationPolicy"] = "IfNeeded"
        objects.append({"apiVersion": "admissionregistration.k8s.io/v1", "kind": kind,
                        "metadata": {"name": o.name, "labels": labels}, "webhooks": [hook]})
    return objects


def _deployment(o: Options, meta: dict[str, Any], labels: dict[str, str], tls_secret: str, config_map: str
                ) -> dict[str, Any]:
    probe = {"httpGet": {"path": "/healthz", "port": PORT, "scheme": "HTTPS"}, "periodSeconds": 10}
    container = {
        "name": "webhook",
        "image": o.image,
        "imagePullPolicy": "IfNotPresent",
        "args": ["admission", "serve", "--port", str(PORT), "--cert", "/tls/tls.crt", "--key", "/tls/tls.key",
                 "--policy", "/config/policy.yaml"],
        "ports": [{"name": "https", "containerPort": PORT, "protocol": "TCP"}],
        "livenessProbe": probe,
        "readinessProbe": {**probe, "httpGet": {**probe["httpGet"], "path": "/readyz"}},
        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": "1", "memory": "512Mi"}},
        "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                            "runAsNonRoot": True, "runAsUser": 65532, "runAsGroup": 65532,
                            "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}},
        "volumeMounts": [{"name": "tls", "mountPath": "/tls", "readOnly": True},
                         {"name": "config", "mountPath": "/config", "readOnly": True},
                         {"name": "cache", "mountPath": "/cache"}],
        "env": [{"name": "XDG_CACHE_HOME", "value": "/cache"}],
    }
    return {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta,
        "spec": {
            "replicas": o.replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "serviceAccountName": o.name,
                    "automountServiceAccountToken": False,
                    "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
                    "containers": [container],
                    "volumes": [{"name": "tls", "secret": {"secretName": tls_secret}},
                                {"name": "config", "configMap": {"name": config_map}},
                                {"name": "cache", "emptyDir": {"sizeLimit": "1Gi"}}],
                },
            },
        },
    }


def render(objects: list[dict[str, Any]]) -> str:
    import yaml

    return yaml.safe_dump_all(objects, sort_keys=False, default_flow_style=False, width=1000)
