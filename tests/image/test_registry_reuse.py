"""Connection and token reuse across RegistryClients, against a small registry on 127.0.0.1 that
speaks the distribution token flow (401 + WWW-Authenticate, GET realm?service&scope) and counts
what it sees: connections opened, token requests, 401s, cookies sent back."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest

from hullguard.image import registry
from hullguard.image.registry import Credentials, Reference, RegistryClient
from hullguard.image.source import SourceError

USERS = {"alice": "wonderland", "bob": "builder"}


@dataclass
class FakeRegistry:
    bearer: bool = False  # manifests need a token from /token
    expires_in: int | None = 300
    hostile_token: str = ""  # handed out instead of a real token
    connections: int = 0
    open_connections: int = 0
    token_requests: list[tuple[str, str]] = field(default_factory=list)  # (user, scope)
    unauthorized: int = 0
    cookies_seen: int = 0
    tokens: dict[str, tuple[str, str]] = field(default_factory=dict)  # token -> (user, scope)
    lock: threading.Lock = field(default_factory=threading.Lock)
    port: int = 0

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def manifest_body(self, repo: str, ref: str) -> bytes:
        return json.dumps({"schemaVersion": 2, "repo": repo, "ref": ref}).encode()


def _handler(reg: FakeRegistry) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self) -> None:
            super().setup()
            with reg.lock:
                reg.connections += 1
                reg.open_connections += 1

        def finish(self) -> None:
            with reg.lock:
                reg.open_connections -= 1
            try:
                super().finish()
            except OSError:
                pass

        def _reply(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            try:
                self.wfile.write(body)
            except OSError:  # the client hung up mid-body, as an abandoned download does
                self.close_connection = True

        def do_GET(self) -> None:
            if self.headers.get("Cookie"):
                with reg.lock:
                    reg.cookies_seen += 1
            url = urlparse(self.path)
            if url.path == "/token":
                self._token(parse_qs(url.query))
                return
            parts = url.path.split("/")
            # /v2/<repo...>/<kind>/<ref>
            repo, kind, ref = "/".join(parts[2:-2]), parts[-2], parts[-1]
            if reg.bearer and not self._authorized(repo):
                with reg.lock:
                    reg.unauthorized += 1
                challenge = (f'Bearer realm="http://{reg.host}/token",service="fake",'
                             f'scope="repository:{repo}:pull"')
                self._reply(401, b'{"errors":[{"code":"UNAUTHORIZED"}]}', {"WWW-Authenticate": challenge})
                return
            if repo == "team/slow":
                time.sleep(1.5)  # longer than the client's timeout
            if repo == "team/moved" and kind == "manifests" and not url.query:
                # Registries send blobs (here a manifest) elsewhere: the client must follow.
                self._reply(307, b"", {"Location": f"/v2/team/app/manifests/{ref}?moved=1"})
                return
            if repo == "team/hangup":
                self.close_connection = True  # no "Connection: close": the client learns it on reuse
            if kind == "blobs":
                # Larger than what one read buffers, so an unread stream keeps its connection busy.
                self._reply(200, b"x" * (1 << 20), {"Content-Type": "application/octet-stream"})
                return
            self._reply(200, reg.manifest_body(repo, ref),
                        {"Content-Type": "application/vnd.oci.image.manifest.v1+json",
                         "Set-Cookie": f"session={secrets.token_hex(4)}; Path=/"})

        def _authorized(self, repo: str) -> bool:
            scheme, _, token = (self.headers.get("Authorization") or "").partition(" ")
            with reg.lock:
                grant = reg.tokens.get(token) if scheme == "Bearer" else None
            return grant is not None and grant[1] == f"repository:{repo}:pull"

        def _token(self, query: dict[str, list[str]]) -> None:
            scheme, _, value = (self.headers.get("Authorization") or "").partition(" ")
            user = ""
            if scheme == "Basic":
                name, _, password = base64.b64decode(value).decode().partition(":")
                if USERS.get(name) != password:
                    self._reply(401, b"{}")
                    return
                user = name
            scope = query.get("scope", [""])[0]
            token = secrets.token_hex(16)
            with reg.lock:
                reg.token_requests.append((user, scope))
                reg.tokens[token] = (user, scope)
            body: dict[str, Any] = {"token": reg.hostile_token or token}
            if reg.expires_in is not None:
                body["expires_in"] = reg.expires_in
            self._reply(200, json.dumps(body).encode(), {"Content-Type": "application/json"})

        def log_message(self, *args: object) -> None:
            pass

    return Handler


@pytest.fixture
def fake() -> Iterator[FakeRegistry]:
    reg = FakeRegistry()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(reg))
    httpd.daemon_threads = True
    reg.port = int(httpd.server_address[1])
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield reg
    finally:
        registry.close_pools()
        with registry._AUTH_LOCK:
            registry._TOKENS.clear()
            registry._CHALLENGES.clear()
        httpd.shutdown()
        httpd.server_close()


def fetch(reg: FakeRegistry, repo: str = "team/app", tag: str = "v1", creds: Credentials | None = None,
          timeout: float = 5.0) -> str:
    client = RegistryClient(Reference.parse(f"{reg.host}/{repo}:{tag}"), insecure=True, credentials=creds,
                            timeout=timeout)
    try:
        data, _, digest = client.manifest(tag)
    finally:
        client.close()
    assert json.loads(data) == {"schemaVersion": 2, "repo": repo, "ref": tag}
    return digest


def test_clients_of_one_host_share_a_keep_alive_connection(fake: FakeRegistry) -> None:
    digests = {fetch(fake, tag=f"v{i}") for i in range(6)}
    assert len(digests) == 6
    assert digests == {"sha256:" + hashlib.sha256(fake.manifest_body("team/app", f"v{i}")).hexdigest()
                       for i in range(6)}
    assert fake.connections == 1


def test_shared_pool_serves_concurrent_clients(fake: FakeRegistry) -> None:
    results: list[str] = []
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            for j in range(5):
                results.append(fetch(fake, repo=f"team/app{i}", tag=f"t{j}"))
        except BaseException as exc:  # surfaced below with its thread's failure
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(set(results)) == 40
    assert fake.connections <= 8


def test_cookies_are_never_sent_back(fake: FakeRegistry) -> None:
    for i in range(3):
        fetch(fake, tag=f"c{i}")
    assert fake.cookies_seen == 0


def test_unread_streams_are_released_when_the_client_closes(fake: FakeRegistry) -> None:
    # Downloads abandoned half-read (and still referenced): each client's close() must release its
    # connection, or every one of them would stay busy at the registry and in the shared pool.
    streams = []
    for _ in range(20):
        client = RegistryClient(Reference.parse(f"{fake.host}/team/app:v1"), insecure=True, timeout=2.0)
        stream = client.blob_stream("sha256:" + "a" * 64)
        assert stream.read(10) == b"x" * 10
        streams.append(stream)
        client.close()
    deadline = time.monotonic() + 5
    while fake.open_connections > 1 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert fake.open_connections <= 1
    assert fetch(fake, timeout=2.0).startswith("sha256:")


def test_bearer_token_is_reused_for_the_same_repository(fake: FakeRegistry) -> None:
    fake.bearer = True
    alice = Credentials("alice", "wonderland")
    for i in range(4):
        fetch(fake, tag=f"v{i}", creds=alice)
    assert fake.token_requests == [("alice", "repository:team/app:pull")]
    assert fake.unauthorized == 1  # only the first client met the challenge


def test_tokens_are_scoped_to_repository_and_credentials(fake: FakeRegistry) -> None:
    fake.bearer = True
    alice, bob = Credentials("alice", "wonderland"), Credentials("bob", "builder")
    fetch(fake, repo="team/app", creds=alice)
    fetch(fake, repo="team/other", creds=alice)
    fetch(fake, repo="team/app", creds=bob)
    fetch(fake, repo="team/app", creds=alice)
    assert fake.token_requests == [("alice", "repository:team/app:pull"), ("alice", "repository:team/other:pull"),
                                   ("bob", "repository:team/app:pull")]
    # Wrong credentials never ride on a token cached for someone else.
    with pytest.raises(SourceError, match="login refused"):
        fetch(fake, repo="team/app", creds=Credentials("alice", "guess"))


def test_a_rejected_cached_token_is_dropped_and_renewed(fake: FakeRegistry) -> None:
    fake.bearer = True
    alice = Credentials("alice", "wonderland")
    fetch(fake, creds=alice)
    with fake.lock:
        fake.tokens.clear()  # the registry revoked every token
    fetch(fake, creds=alice)
    fetch(fake, creds=alice)
    assert len(fake.token_requests) == 2
    assert fake.unauthorized == 2


def test_tokens_expire(fake: FakeRegistry, monkeypatch: pytest.MonkeyPatch) -> None:
    fake.bearer = True
    fake.expires_in = 60
    now = [1000.0]
    monkeypatch.setattr(registry, "_clock", lambda: now[0])
    alice = Credentials("alice", "wonderland")
    fetch(fake, creds=alice)
    now[0] += 60 - registry.TOKEN_MARGIN - 1
    fetch(fake, creds=alice)
    assert len(fake.token_requests) == 1
    now[0] += 2  # inside the safety margin before expiry: fetch a new one
    fetch(fake, creds=alice)
    assert len(fake.token_requests) == 2


@pytest.mark.parametrize("expires_in", [5, 0, -1])
def test_tokens_too_short_lived_to_cache_are_not_cached(fake: FakeRegistry, expires_in: int) -> None:
    fake.bearer = True
    fake.expires_in = expires_in
    for i in range(3):
        fetch(fake, tag=f"v{i}", creds=Credentials("bob", "builder"))
    assert len(fake.token_requests) == 3


def test_default_token_lifetime_applies_without_expires_in(fake: FakeRegistry, monkeypatch: pytest.MonkeyPatch
                                                           ) -> None:
    fake.bearer = True
    fake.expires_in = None
    now = [0.0]
    monkeypatch.setattr(registry, "_clock", lambda: now[0])
    fetch(fake, creds=Credentials("bob", "builder"))
    now[0] += registry.DEFAULT_TOKEN_LIFETIME - registry.TOKEN_MARGIN - 1
    fetch(fake, creds=Credentials("bob", "builder"))
    now[0] += 2
    fetch(fake, creds=Credentials("bob", "builder"))
    assert len(fake.token_requests) == 2


def test_redirects_are_followed(fake: FakeRegistry) -> None:
    client = RegistryClient(Reference.parse(f"{fake.host}/team/moved:v1"), insecure=True, timeout=5)
    try:
        data, _, digest = client.manifest("v1")
    finally:
        client.close()
    assert json.loads(data) == {"schemaVersion": 2, "repo": "team/app", "ref": "v1"}
    assert digest == "sha256:" + hashlib.sha256(data).hexdigest()


def test_connections_the_server_closed_are_not_reused(fake: FakeRegistry) -> None:
    for i in range(4):
        fetch(fake, repo="team/hangup", tag=f"v{i}")
    assert fake.connections == 4


def test_a_registry_that_does_not_answer_times_out(fake: FakeRegistry) -> None:
    with pytest.raises(SourceError, match="did not answer in time"):
        fetch(fake, repo="team/slow", timeout=0.3)


def test_plain_http_loopback_registry_without_insecure(fake: FakeRegistry) -> None:
    # Loopback tries TLS first; the failed handshake must fall back to plain HTTP, then stick to it.
    client = RegistryClient(Reference.parse(f"{fake.host}/team/app:v1"), timeout=5)
    try:
        _, _, digest = client.manifest("v1")
    finally:
        client.close()
    assert digest == "sha256:" + hashlib.sha256(fake.manifest_body("team/app", "v1")).hexdigest()


def test_cached_tokens_are_bound_to_the_scheme(fake: FakeRegistry, monkeypatch: pytest.MonkeyPatch) -> None:
    fake.bearer = True
    alice = Credentials("alice", "wonderland")
    fetch(fake, creds=alice)
    ref = Reference.parse(f"{fake.host}/team/app:v1")
    assert RegistryClient(ref, insecure=True, credentials=alice).auth_header.startswith("Bearer ")
    # Got over plain HTTP here; a client that would talk TLS to the same host:port starts afresh,
    # and the reverse (a TLS token going out in clear text) is the same key mismatch.
    monkeypatch.setitem(registry._SCHEME_SEEN, fake.host, "https")
    assert RegistryClient(ref, insecure=True, credentials=alice).auth_header == ""


@pytest.mark.parametrize("token", ["abc\r\nX-Injected: 1", "tok en", "\u00e9t\u00e9"])
def test_a_malformed_token_is_a_clear_error(fake: FakeRegistry, token: str) -> None:
    fake.bearer = True
    fake.hostile_token = token
    with pytest.raises(SourceError, match="malformed token"):
        fetch(fake, creds=Credentials("alice", "wonderland"))
