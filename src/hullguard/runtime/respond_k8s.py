"""Quarantine in Kubernetes: a deny-all NetworkPolicy selected by a label, and the minimal REST calls
(create the policy, then label the pod) made with httpx when credentials exist.

Credentials, in order: an explicit kubeconfig path, ``$KUBECONFIG`` (first existing file), the
in-cluster service account, ``~/.kube/config``. Token, client-certificate and CA settings are
understood; exec/auth-provider plugins are not (the caller then prints the manifest instead).
"""

from __future__ import annotations

import base64
import contextlib
import os
import re
import ssl
import tempfile
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import yaml

QUARANTINE_LABEL = "hullguard.io/quarantine"
SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
_DNS1123 = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_LABEL_VALUE = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")


def valid_name(name: Any) -> bool:
    return isinstance(name, str) and len(name) <= 253 and all(_DNS1123.match(p) for p in name.split("."))


def network_policy(namespace: str, incident: str) -> dict[str, Any]:
    """Deny all ingress and egress for pods carrying the incident's quarantine label: both policy
    types listed and no rules, so nothing is allowed (the pod keeps running for forensics)."""
    if not _LABEL_VALUE.match(incident) or len(incident) > 63:
        raise ValueError(f"incident id {incident!r} is not a valid label value")
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": f"hullguard-quarantine-{incident.lower()}"[:253], "namespace": namespace,
                     "labels": {"app.kubernetes.io/managed-by": "hullguard"},
                     "annotations": {"hullguard.io/incident": incident}},
        "spec": {"podSelector": {"matchLabels": {QUARANTINE_LABEL: incident}},
                 "policyTypes": ["Ingress", "Egress"]},
    }


def label_command(namespace: str, pod: str, incident: str) -> str:
    return f"kubectl label pod --namespace {namespace} {pod} {QUARANTINE_LABEL}={incident} --overwrite"


def apply_command(path: str) -> str:
    return f"kubectl apply -f {path}"


class KubeError(Exception):
    pass


@dataclass
class KubeClient:
    server: str
    token: str | None = None
    verify: Any = True  # bool or ssl.SSLContext
    source: str = ""

    @classmethod
    def discover(cls, kubeconfig: str | None = None, *, sa_dir: str = SA_DIR) -> tuple[KubeClient | None, str]:
        """(client, where the credentials came from) or (None, why there are none)."""
        paths: list[str] = []
        if kubeconfig:
            paths.append(kubeconfig)
        elif os.environ.get("KUBECONFIG"):
            paths += [p for p in os.environ["KUBECONFIG"].split(os.pathsep) if p]
        for p in paths:
            if os.path.isfile(p):
                return _from_kubeconfig(p)
        if paths and kubeconfig:
            return None, f"kubeconfig {kubeconfig} not found"
        host, port = os.environ.get("KUBERNETES_SERVICE_HOST"), os.environ.get("KUBERNETES_SERVICE_PORT")
        token_path = os.path.join(sa_dir, "token")
        if host and port and os.path.isfile(token_path):
            with open(token_path, encoding="utf-8") as fh:
                token = fh.read(65536).strip()
            ca = os.path.join(sa_dir, "ca.crt")
            verify: Any = ssl.create_default_context(cafile=ca) if os.path.isfile(ca) else True
            h = f"[{host}]" if ":" in host else host
            return cls(f"https://{h}:{port}", token=token, verify=verify, source="in-cluster service account"), ""
        home = os.path.join(os.path.expanduser("~"), ".kube", "config")
        if not paths and os.path.isfile(home):
            return _from_kubeconfig(home)
        return None, "no cluster credentials (no KUBECONFIG, no in-cluster service account, no ~/.kube/config)"

    def _client(self) -> Any:
        import httpx

        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        return httpx.Client(base_url=self.server, headers=headers, verify=self.verify, timeout=10.0)

    def create_network_policy(self, manifest: dict[str, Any]) -> int:
        ns = quote(manifest["metadata"]["namespace"], safe="")
        return self._call("POST", f"/apis/networking.k8s.io/v1/namespaces/{ns}/networkpolicies", manifest,
                          "application/json", ok=(200, 201, 409))

    def label_pod(self, namespace: str, pod: str, labels: dict[str, str]) -> int:
        path = f"/api/v1/namespaces/{quote(namespace, safe='')}/pods/{quote(pod, safe='')}"
        return self._call("PATCH", path, {"metadata": {"labels": labels}}, "application/merge-patch+json")

    def _call(self, method: str, path: str, body: Any, ctype: str, ok: tuple[int, ...] = (200, 201)) -> int:
        import httpx

        try:
            with self._client() as c:
                r = c.request(method, path, json=body, headers={"Content-Type": ctype})
        except httpx.HTTPError as exc:
            raise KubeError(f"{method} {path}: {exc}") from None
        if r.status_code not in ok:
            msg = ""
            with contextlib.suppress(ValueError, AttributeError):
                msg = str(r.json().get("message", ""))[:200]
            raise KubeError(f"{method} {path}: HTTP {r.status_code} {msg}".rstrip())
        return r.status_code


def _from_kubeconfig(path: str) -> tuple[KubeClient | None, str]:
    try:
        with open(path, "rb") as fh:
            doc = yaml.safe_load(fh.read(1 << 20))
    except (OSError, yaml.YAMLError) as exc:
        return None, f"kubeconfig {path} unreadable: {exc}"
    if not isinstance(doc, dict):
        return None, f"kubeconfig {path} is not a mapping"

    def named(kind: str, name: Any) -> dict[str, Any]:
        for item in doc.get(kind) or []:
            if isinstance(item, dict) and item.get("name") == name:
                return item.get(kind[:-1]) or {}
        return {}

    ctx = named("contexts", doc.get("current-context"))
    cluster, user = named("clusters", ctx.get("cluster")), named("users", ctx.get("user"))
    server = cluster.get("server")
    if not isinstance(server, str) or not server.startswith(("http://", "https://")):
        return None, f"kubeconfig {path}: current context has no usable cluster server"
    if user.get("exec") or user.get("auth-provider"):
        return None, f"kubeconfig {path}: exec/auth-provider credentials are not supported"
    base = os.path.dirname(os.path.abspath(path))

    def rel(p: str) -> str:
        return p if os.path.isabs(p) else os.path.join(base, p)

    token = user.get("token")
    if not token and user.get("tokenFile"):
        with contextlib.suppress(OSError), open(rel(user["tokenFile"]), encoding="utf-8") as fh:
            token = fh.read(65536).strip()
    verify: Any = True
    if server.startswith("https://"):
        if cluster.get("insecure-skip-tls-verify"):
            verify = False
        else:
            ctx_ssl = ssl.create_default_context()
            try:
                if cluster.get("certificate-authority-data"):
                    ctx_ssl.load_verify_locations(
                        cadata=base64.b64decode(cluster["certificate-authority-data"]).decode())
                elif cluster.get("certificate-authority"):
                    ctx_ssl.load_verify_locations(cafile=rel(cluster["certificate-authority"]))
                _client_cert(ctx_ssl, user, rel)
            except (OSError, ValueError, ssl.SSLError) as exc:
                return None, f"kubeconfig {path}: bad TLS material: {exc}"
            verify = ctx_ssl
    return KubeClient(server.rstrip("/"), token=token or None, verify=verify, source=f"kubeconfig {path}"), ""


def _client_cert(ctx: ssl.SSLContext, user: dict[str, Any], rel: Any) -> None:
    if user.get("client-certificate") and user.get("client-key"):
        ctx.load_cert_chain(rel(user["client-certificate"]), rel(user["client-key"]))
    elif user.get("client-certificate-data") and user.get("client-key-data"):
        # ssl only loads chains from files: write them to a private temp dir and remove it at once.
        with tempfile.TemporaryDirectory() as d:
            cert, key = os.path.join(d, "c.pem"), os.path.join(d, "k.pem")
            for p, field in ((cert, "client-certificate-data"), (key, "client-key-data")):
                fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "wb") as fh:
                    fh.write(base64.b64decode(user[field]))
            ctx.load_cert_chain(cert, key)
