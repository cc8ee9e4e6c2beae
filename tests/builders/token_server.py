"""A small bearer-token server for the distribution registry's ``auth: token`` mode.

Flow (distribution's token auth): the registry answers 401 with
``WWW-Authenticate: Bearer realm=<this server>,service=...,scope=...``; the client
calls ``GET realm?service=...&scope=repository:NAME:pull,push`` with basic
credentials; we answer ``{"token": JWT, "access_token": JWT, ...}``; the registry
verifies the JWT against the certificates in its ``rootcertbundle``.

How the registry (distribution 2.8, what Debian bookworm ships) finds the key:
the JWT header either carries the signing certificate chain in ``x5c`` (verified
against the bundle) or a ``kid`` naming a bundle key by its libtrust fingerprint.
Both are supported here (``header_mode``); the default is ``kid``. Newer
distribution releases (3.x) also accept a JWKS file; not needed for 2.8.

Only loopback: the server binds 127.0.0.1 and is meant for tests.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import secrets
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def libtrust_key_id(public_key: ec.EllipticCurvePublicKey) -> str:
    """The key id format distribution 2.x expects in ``kid``: 240 bits of SHA-256 of the
    DER SubjectPublicKeyInfo, base32, in 12 colon-separated groups of four."""
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    b32 = base64.b32encode(hashlib.sha256(der).digest()[:30]).decode().rstrip("=")
    return ":".join(b32[i : i + 4] for i in range(0, len(b32), 4))


@dataclass
class SigningMaterial:
    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate
    cert_path: Path  # the registry's rootcertbundle

    @property
    def kid(self) -> str:
        return libtrust_key_id(self.key.public_key())


def make_signing_material(directory: Path, common_name: str = "hullguard-test-token-signer") -> SigningMaterial:
    """A fresh P-256 key and a self-signed certificate for it, written as PEM."""
    directory.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path = directory / "token-signer.crt"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return SigningMaterial(key, cert, cert_path)


def sign_jwt(material: SigningMaterial, claims: dict[str, Any], header_mode: str = "kid") -> str:
    header: dict[str, Any] = {"typ": "JWT", "alg": "ES256"}
    if header_mode == "kid":
        header["kid"] = material.kid
    elif header_mode == "x5c":
        header["x5c"] = [base64.b64encode(material.cert.public_bytes(serialization.Encoding.DER)).decode()]
    else:
        raise ValueError(f"unknown header_mode {header_mode!r}")
    signing_input = (
        _b64url(json.dumps(header, separators=(",", ":")).encode())
        + "."
        + _b64url(json.dumps(claims, separators=(",", ":")).encode())
    )
    der = material.key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256()))
    r, s = decode_dss_signature(der)
    # JWS wants the raw fixed-width r||s form, not the DER that cryptography returns.
    sig = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    return signing_input + "." + _b64url(sig)


def parse_scopes(scopes: Iterable[str]) -> list[dict[str, Any]]:
    """``repository:ns/name:pull,push`` -> access claim entries. Names may contain ':'? no; ports? no."""
    out: list[dict[str, Any]] = []
    for scope in scopes:
        for part in scope.split(" "):
            typ, _, rest = part.partition(":")
            name, _, actions = rest.rpartition(":")
            if typ and name:
                out.append({"type": typ, "name": name, "actions": [a for a in actions.split(",") if a]})
    return out


@dataclass
class TokenServer:
    """Issues registry tokens to holders of ``users`` credentials.

    ``anonymous_pull``: requests without credentials get pull access only,
    like a public repository; otherwise they get 401.
    """

    material: SigningMaterial
    users: dict[str, str]
    issuer: str = "hullguard-test-issuer"
    service: str = "hullguard-test-registry"
    header_mode: str = "kid"
    anonymous_pull: bool = False
    ttl: int = 300
    issued: list[dict[str, Any]] = field(default_factory=list)  # claims handed out, for assertions
    _httpd: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        assert self._httpd is not None, "not started"
        return int(self._httpd.server_address[1])

    @property
    def realm(self) -> str:
        return f"http://127.0.0.1:{self.port}/token"

    def start(self) -> TokenServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server._handle(self)

            def do_POST(self) -> None:
                # The OAuth2 variant (form POST); clients fall back to GET on 404/405.
                self.send_response(405)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="token-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> TokenServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _check_basic(self, header: str | None) -> str | bool | None:
        """Username on success, None when no credentials were sent, False when they are wrong."""
        if not header:
            return None
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, _, password = base64.b64decode(value).decode().partition(":")
        except ValueError:
            return False
        expected = self.users.get(user)
        if expected is None or not secrets.compare_digest(expected, password):
            return False
        return user

    def _handle(self, req: BaseHTTPRequestHandler) -> None:
        url = urlparse(req.path)
        if url.path != "/token":
            req.send_response(404)
            req.end_headers()
            return
        q = parse_qs(url.query)
        who = self._check_basic(req.headers.get("Authorization"))
        if who is False or (who is None and not self.anonymous_pull):
            body = b'{"errors":[{"code":"UNAUTHORIZED","message":"bad credentials"}]}'
            req.send_response(401)
            req.send_header("WWW-Authenticate", 'Basic realm="hullguard-test-token"')
            req.send_header("Content-Type", "application/json")
            req.send_header("Content-Length", str(len(body)))
            req.end_headers()
            req.wfile.write(body)
            return
        access = parse_scopes(q.get("scope", []))
        if who is None:
            for a in access:
                a["actions"] = [x for x in a["actions"] if x == "pull"]
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "sub": who or "",
            "aud": q.get("service", [self.service])[0],
            "exp": now + self.ttl,
            "nbf": now - 10,
            "iat": now,
            "jti": secrets.token_hex(12),
            "access": access,
        }
        self.issued.append(claims)
        token = sign_jwt(self.material, claims, self.header_mode)
        body = json.dumps(
            {
                "token": token,
                "access_token": token,
                "expires_in": self.ttl,
                "issued_at": dt.datetime.fromtimestamp(now, dt.UTC).isoformat().replace("+00:00", "Z"),
            }
        ).encode()
        req.send_response(200)
        req.send_header("Content-Type", "application/json")
        req.send_header("Content-Length", str(len(body)))
        req.end_headers()
        req.wfile.write(body)
