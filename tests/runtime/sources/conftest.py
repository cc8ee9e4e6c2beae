"""Shared fixtures: a throwaway CA with server and client certificates, an agent on a thread."""

from __future__ import annotations

import datetime
import http.server
import ipaddress
import json
import socketserver
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from hullguard.runtime.agent import Agent
from hullguard.runtime.engine import Alert

CID = "3f4e1c2b9a8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f"


@dataclass
class TLSFiles:
    ca: Path
    cert: Path
    key: Path
    client_cert: Path
    client_key: Path
    other_ca: Path  # a CA that signed nothing here: trusting it must not admit our client


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _cert(subject: str, key: ec.EllipticCurvePrivateKey, issuer: str, issuer_key: ec.EllipticCurvePrivateKey, *,
          ca: bool, usage: Any = None, san: bool = False) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    b = (x509.CertificateBuilder().subject_name(_name(subject)).issuer_name(_name(issuer))
         .public_key(key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
         .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if usage is not None:
        b = b.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    if san:
        b = b.add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                         x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                            critical=False)
    return b.sign(issuer_key, hashes.SHA256())


def _write(path: Path, cert: x509.Certificate | None = None, key: ec.EllipticCurvePrivateKey | None = None) -> Path:
    if cert is not None:
        path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    else:
        assert key is not None
        path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return path


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TLSFiles:
    return make_tls(tmp_path_factory.mktemp("tls"))


def make_tls(d: Path) -> TLSFiles:
    """A CA, a server certificate for localhost/127.0.0.1 and a client certificate, as PEM files."""
    ca_key, other_key, srv_key, cli_key = (ec.generate_private_key(ec.SECP256R1()) for _ in range(4))
    ca = _cert("hullguard test CA", ca_key, "hullguard test CA", ca_key, ca=True)
    other = _cert("unrelated CA", other_key, "unrelated CA", other_key, ca=True)
    srv = _cert("localhost", srv_key, "hullguard test CA", ca_key, ca=False, usage=ExtendedKeyUsageOID.SERVER_AUTH,
                san=True)
    cli = _cert("kube-apiserver", cli_key, "hullguard test CA", ca_key, ca=False,
                usage=ExtendedKeyUsageOID.CLIENT_AUTH)
    return TLSFiles(ca=_write(d / "ca.pem", ca), cert=_write(d / "server.pem", srv),
                    key=_write(d / "server.key", key=srv_key), client_cert=_write(d / "client.pem", cli),
                    client_key=_write(d / "client.key", key=cli_key), other_ca=_write(d / "other-ca.pem", other))


class ListSink:
    def __init__(self) -> None:
        self.alerts: list[Alert] = []
        self.lock = threading.Lock()

    def emit(self, alert: Alert) -> None:
        with self.lock:
            self.alerts.append(alert)

    def rules(self) -> list[str]:
        with self.lock:
            return [a.rule for a in self.alerts]

    def close(self) -> None:
        pass


def wait_for(pred: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Poll a condition; the timeout only bounds a failing test, nothing asserts on time."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.02)
    return pred()


@pytest.fixture
def run_agent() -> Iterator[Callable[..., tuple[Agent, threading.Thread]]]:
    started: list[tuple[Agent, threading.Thread]] = []

    def start(agent: Agent) -> tuple[Agent, threading.Thread]:
        t = threading.Thread(target=agent.run, daemon=True)
        t.start()
        started.append((agent, t))
        return agent, t

    yield start
    for agent, t in started:
        agent.stop()
        t.join(timeout=10)


class _UnixHTTPServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


class _FakeDockerAPI(http.server.BaseHTTPRequestHandler):
    """The two Docker Engine API answers the source asks for (no Docker daemon runs here)."""

    def log_message(self, *args: object) -> None:
        pass

    def address_string(self) -> str:
        return "unix"

    def do_GET(self) -> None:
        if self.path == f"/containers/{CID}/json":
            body = json.dumps({"Id": CID, "Name": "/k8s_web_web-0_shop_x_0", "Image": "sha256:" + "e" * 64,
                               "Config": {"Image": "nginx:1.27", "Labels": {
                                   "io.kubernetes.pod.name": "web-0", "io.kubernetes.pod.namespace": "shop",
                                   "io.kubernetes.container.name": "web"}},
                               "HostConfig": {"Privileged": True}}).encode()
            self.send_response(200)
        else:
            body = b'{"message":"No such container"}'
            self.send_response(404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def docker_socket(tmp_path: Path) -> Iterator[str]:
    path = str(tmp_path / "docker.sock")
    srv = _UnixHTTPServer(path, _FakeDockerAPI)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield path
    srv.shutdown()
    srv.server_close()
