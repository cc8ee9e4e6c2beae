"""The webhook started for real over HTTPS with a CA made here, and AdmissionReview builders.

Only the outside world the webhook would call (registry, signature checks, scans) is replaced by
FakeBackend in the unit tests; tests/admission/test_registry.py uses the real registry instead.
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
import hashlib
import io
import ipaddress
import json
import ssl
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from hullguard.admission.config import parse_config
from hullguard.admission.deps import Dependencies, VerifyOutcome
from hullguard.admission.engine import Engine
from hullguard.admission.server import DecisionLog, TLSFiles, WebhookServer
from hullguard.model import HullguardError, ScanResult


def make_tls(out: Path, cn: str = "hullguard test CA") -> tuple[Path, Path, Path]:
    """(ca.pem, cert.pem, key.pem): a fresh CA and a serving certificate for 127.0.0.1/localhost."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    out.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now)
          .not_valid_after(now + dt.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "webhook")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = out / "ca.pem", out / "cert.pem", out / "key.pem"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return paths


@dataclass
class FakeBackend:
    """Stands in for the registry: tag -> digest, signatures and scans by image, errors, delays."""

    digests: dict[str, str] = field(default_factory=dict)
    signed: dict[str, bool] = field(default_factory=dict)
    attested: dict[tuple[str, str], bool] = field(default_factory=dict)
    scans: dict[str, ScanResult] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    calls: list[tuple[str, str]] = field(default_factory=list)
    any_tag: bool = True  # every tag exists (with a digest derived from its name) unless listed in errors
    tags: dict[str, str] = field(default_factory=dict)

    def _enter(self, what: str, image: str) -> None:
        self.calls.append((what, image))
        if self.delay:
            time.sleep(self.delay)
        if image in self.errors:
            raise HullguardError(self.errors[image])

    def _digest(self, reference: str) -> str:
        if "@" in reference:
            return reference.split("@", 1)[1]
        if reference not in self.digests and not self.any_tag:
            raise HullguardError(f"registry: manifest not found: {reference}")
        digest = self.digests.get(reference) or "sha256:" + hashlib.sha256(reference.encode()).hexdigest()
        self.tags[digest] = reference
        return digest

    def resolve(self, reference: str, *, insecure: bool, timeout: float) -> str:
        self._enter("resolve", reference)
        return self._digest(reference)

    def _tag(self, reference: str) -> str:
        # A reference by digest maps back to the tag the test configured.
        return self.tags.get(reference.split("@", 1)[-1], reference)

    def verify_image(self, reference: str, keys: list[bytes], *, insecure: bool, timeout: float) -> VerifyOutcome:
        self._enter("verify", reference)
        digest = self._digest(reference)
        ok = self.signed.get(self._tag(reference), False)
        return VerifyOutcome(ok, digest, "1 valid signature" if ok else "no signatures found")

    def verify_attestation(self, reference: str, keys: list[bytes], predicate_type: str, *, insecure: bool,
                           timeout: float) -> VerifyOutcome:
        self._enter("attest", reference)
        digest = self._digest(reference)
        ok = self.attested.get((self._tag(reference), predicate_type), False)
        return VerifyOutcome(ok, digest, "ok" if ok else "no attestations found")

    def scan(self, reference: str, *, insecure: bool, timeout: float, db: str) -> ScanResult:
        self._enter("scan", reference)
        return self.scans[reference.split("@", 1)[0]]


@dataclass
class Webhook:
    server: WebhookServer
    client: httpx.Client
    log: io.StringIO
    backend: Any
    ca: Path
    cert: Path
    key: Path

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.server.port}"

    def post(self, review: Any, endpoint: str = "validate") -> dict[str, Any]:
        r = self.client.post(f"{self.url}/{endpoint}?timeout=10s", json=review)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["apiVersion"] == "admission.k8s.io/v1" and body["kind"] == "AdmissionReview"
        # The decision is logged just after the response is sent; wait for it so tests can read it.
        deadline = time.monotonic() + 5
        while body["response"]["uid"] not in self.log.getvalue() and time.monotonic() < deadline:
            time.sleep(0.002)
        return body["response"]

    def records(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.log.getvalue().splitlines() if line.strip()]

    def decisions(self) -> list[dict[str, Any]]:
        return [r for r in self.records() if r.get("event") == "admission"]


StartFn = Callable[..., Webhook]


@pytest.fixture
def start_webhook(tmp_path: Path) -> Iterator[StartFn]:
    started: list[Webhook] = []

    def start(policy: str | dict[str, Any] | None = None, backend: Any = None, cel: Any = None) -> Webhook:
        data = yaml.safe_load(policy) if isinstance(policy, str) else (policy or {})
        config = parse_config(data, str(tmp_path), "test-policy")
        backend = backend if backend is not None else FakeBackend()
        deps = Dependencies(backend, ttl=config.cache_ttl, failure_ttl=config.failure_ttl)
        engine = Engine(config, deps, cel=cel)
        ca, cert, key = make_tls(tmp_path / f"tls{len(started)}")
        log = io.StringIO()
        server = WebhookServer(("127.0.0.1", 0), engine, TLSFiles(str(cert), str(key), interval=0.0),
                               log=DecisionLog(log))
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        client = httpx.Client(verify=ssl.create_default_context(cafile=str(ca)), timeout=30.0, trust_env=False)
        hook = Webhook(server, client, log, backend, ca, cert, key)
        started.append(hook)
        return hook

    yield start
    for hook in started:
        hook.client.close()
        hook.server.shutdown()
        hook.server.server_close()
        hook.server.engine.deps.close()


# -- AdmissionReview builders -------------------------------------------------------------------------

def pod(*images: str, name: str = "web", init: tuple[str, ...] = (), ephemeral: tuple[str, ...] = (),
        **spec: Any) -> dict[str, Any]:
    s: dict[str, Any] = {"containers": [{"name": f"c{i}", "image": im} for i, im in enumerate(images)], **spec}
    if init:
        s["initContainers"] = [{"name": f"init{i}", "image": im} for i, im in enumerate(init)]
    if ephemeral:
        s["ephemeralContainers"] = [{"name": f"debug{i}", "image": im} for i, im in enumerate(ephemeral)]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default"}, "spec": s}


GROUPS = {"Pod": ("", "v1", "pods"), "Deployment": ("apps", "v1", "deployments"),
          "StatefulSet": ("apps", "v1", "statefulsets"), "DaemonSet": ("apps", "v1", "daemonsets"),
          "ReplicaSet": ("apps", "v1", "replicasets"), "Job": ("batch", "v1", "jobs"),
          "CronJob": ("batch", "v1", "cronjobs"), "ConfigMap": ("", "v1", "configmaps"),
          "Service": ("", "v1", "services")}


def workload(kind: str, template: dict[str, Any], name: str = "app") -> dict[str, Any]:
    """Wrap a pod (its metadata/spec) in a workload of ``kind`` the way the API serves it."""
    tpl = {"metadata": {"labels": {"app": name}}, "spec": copy.deepcopy(template["spec"])}
    group, version, _ = GROUPS[kind]
    api = f"{group}/{version}" if group else version
    meta = {"name": name, "namespace": "default"}
    if kind == "CronJob":
        return {"apiVersion": api, "kind": kind, "metadata": meta,
                "spec": {"schedule": "*/5 * * * *", "jobTemplate": {"spec": {"template": tpl}}}}
    spec: dict[str, Any] = {"template": tpl}
    if kind != "Job":
        spec["selector"] = {"matchLabels": {"app": name}}
    return {"apiVersion": api, "kind": kind, "metadata": meta, "spec": spec}


def review(obj: dict[str, Any] | None, *, operation: str = "CREATE", namespace: str = "default",
           old: dict[str, Any] | None = None, username: str = "alice", kind: str | None = None,
           groups: tuple[str, ...] = ("system:authenticated",)) -> dict[str, Any]:
    src = obj or old or {}
    kind = kind or src.get("kind", "Pod")
    group, version, resource = GROUPS.get(kind, ("", "v1", kind.lower() + "s"))
    name = (src.get("metadata") or {}).get("name", "")
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": str(uuid.uuid4()),
            "kind": {"group": group, "version": version, "kind": kind},
            "resource": {"group": group, "version": version, "resource": resource},
            "requestKind": {"group": group, "version": version, "kind": kind},
            "requestResource": {"group": group, "version": version, "resource": resource},
            "name": name,
            "namespace": namespace,
            "operation": operation,
            "userInfo": {"username": username, "uid": "1", "groups": list(groups)},
            "object": obj,
            "oldObject": old,
            "dryRun": False,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": f"{operation.title()}Options"},
        },
    }


def apply_patch(doc: dict[str, Any], patch_b64: str) -> dict[str, Any]:
    """Apply a JSONPatch of replace operations (RFC 6902), as the API server would."""
    out = copy.deepcopy(doc)
    for op in json.loads(base64.b64decode(patch_b64)):
        assert op["op"] == "replace", op
        tokens = [t.replace("~1", "/").replace("~0", "~") for t in op["path"].split("/")[1:]]
        node: Any = out
        for t in tokens[:-1]:
            node = node[int(t)] if isinstance(node, list) else node[t]
        last = tokens[-1]
        if isinstance(node, list):
            node[int(last)] = op["value"]
        else:
            assert last in node, f"replace of a missing member {op['path']}"
            node[last] = op["value"]
    return out
