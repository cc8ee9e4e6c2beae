"""Pull images over the OCI Distribution API: anonymous, bearer-token and basic auth."""

from __future__ import annotations

import base64
import functools
import hashlib
import http.client
import http.cookiejar
import io
import json
import os
import re
import subprocess
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO
from urllib.parse import quote, urljoin

from hullguard.image.source import (
    INDEX_TYPES,
    MANIFEST_TYPES,
    ImageSource,
    Platform,
    SourceError,
    artifact_from_config,
    check_config_descriptor,
    check_digest,
    layers_from,
    parse_json,
    resolve_manifest,
    verified,
    verify_bytes,
)
from hullguard.model import Layer

DOCKER_HUB = "docker.io"
DOCKER_HUB_API = "registry-1.docker.io"
ACCEPT = ", ".join(sorted(INDEX_TYPES | MANIFEST_TYPES))
MAX_MANIFEST = 4 * 1024 * 1024

_HOST = re.compile(
    r"^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)(?:\.[a-zA-Z0-9-]+)*(?::[0-9]+)?$"
    r"|^\[[0-9a-fA-F:.]+\](?::[0-9]+)?$"
)
_PATH = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$")
_TAG = re.compile(r"^[\w][\w.-]{0,127}$")


@dataclass(frozen=True)
class Reference:
    registry: str  # host[:port] as the user wrote it (docker.io for Docker Hub)
    repository: str
    tag: str = ""
    digest: str = ""

    @property
    def api_host(self) -> str:
        return DOCKER_HUB_API if self.registry == DOCKER_HUB else self.registry

    @property
    def reference(self) -> str:
        return self.digest or self.tag or "latest"

    def __str__(self) -> str:
        out = f"{self.registry}/{self.repository}"
        if self.tag:
            out += f":{self.tag}"
        if self.digest:
            out += f"@{self.digest}"
        return out

    @classmethod
    def parse(cls, text: str) -> Reference:
        """Parse a reference with the docker grammar: [host[:port]/]path[:tag][@digest]."""
        ref = text.strip()
        digest = ""
        if "@" in ref:
            ref, digest = ref.split("@", 1)
            check_digest(digest, f"reference {text!r}")
        first, sep, rest = ref.partition("/")
        if sep and ("." in first or ":" in first or first == "localhost" or first.startswith("[")):
            registry, path = first, rest
        else:
            registry, path = DOCKER_HUB, ref
        tag = ""
        slash = path.rfind("/")
        colon = path.rfind(":")
        if colon > slash:
            path, tag = path[:colon], path[colon + 1 :]
            if not _TAG.match(tag):
                raise SourceError(f"invalid tag {tag!r} in {text!r}")
        if registry == DOCKER_HUB and "/" not in path:
            path = f"library/{path}"
        if not _HOST.match(registry) or not _PATH.match(path):
            raise SourceError(f"invalid image reference {text!r}")
        if not tag and not digest:
            tag = "latest"
        return cls(registry, path, tag, digest)


def looks_like_reference(text: str) -> bool:
    try:
        Reference.parse(text)
        return True
    except SourceError:
        return False


@dataclass
class Credentials:
    username: str = ""
    password: str = ""
    token: str = ""  # an identity/refresh token, or a registry token to use as-is


_CONFIG_CACHE: dict[str, tuple[tuple[int, int, int], dict[str, Any]]] = {}
_HELPER_CACHE: dict[tuple[str, str], tuple[float, Credentials | None]] = {}
HELPER_TTL = 60.0  # credential helpers hand out short-lived secrets (ECR: 12 h); re-ask every minute


def _docker_config() -> dict[str, Any]:
    root = os.environ.get("DOCKER_CONFIG") or os.path.join(os.path.expanduser("~"), ".docker")
    path = os.path.join(root, "config.json")
    try:
        st = os.stat(path)
    except OSError:
        return {}
    # Every registry client asks (a webhook: every image it verifies); re-read only when the file changes.
    stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
    cached = _CONFIG_CACHE.get(path)
    if cached and cached[0] == stamp:
        return cached[1]
    try:
        with open(path, "rb") as f:
            data = json.loads(f.read(1 << 20))
        config = data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        config = {}
    if len(_CONFIG_CACHE) > 16:
        _CONFIG_CACHE.clear()
    _CONFIG_CACHE[path] = (stamp, config)
    return config


def _helper(helper: str, host: str) -> Credentials | None:
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", helper):
        return None
    cached = _HELPER_CACHE.get((helper, host))
    if cached and cached[0] > time.monotonic():
        return cached[1]
    try:
        out = subprocess.run([f"docker-credential-{helper}", "get"], input=host.encode(), capture_output=True,
                             timeout=20, check=True).stdout
        data = json.loads(out)
        creds: Credentials | None = Credentials(username=str(data.get("Username", "")),
                                                password=str(data.get("Secret", "")))
    except (OSError, subprocess.SubprocessError, ValueError, AttributeError):
        creds = None
    if len(_HELPER_CACHE) > 256:
        _HELPER_CACHE.clear()
    _HELPER_CACHE[(helper, host)] = (time.monotonic() + HELPER_TTL, creds)
    return creds


def credentials_for(registry: str) -> Credentials | None:
    """Credentials from ~/.docker/config.json (auths, credHelpers, credsStore), as docker finds them."""
    config = _docker_config()
    keys = {registry, f"https://{registry}", f"http://{registry}", f"https://{registry}/v1/", f"https://{registry}/v2/"}
    if registry == DOCKER_HUB:
        keys |= {"https://index.docker.io/v1/", "index.docker.io", "docker.io", "registry-1.docker.io"}
    helpers = config.get("credHelpers") if isinstance(config.get("credHelpers"), dict) else {}
    for key in keys:
        if key in helpers:
            return _helper(str(helpers[key]), key)
    auths = config.get("auths") if isinstance(config.get("auths"), dict) else {}
    for key in keys:
        entry = auths.get(key)
        if not isinstance(entry, dict):
            continue
        if entry.get("identitytoken"):
            return Credentials(username=str(entry.get("username", "<token>")), token=str(entry["identitytoken"]))
        if entry.get("auth"):
            try:
                user, _, pw = base64.b64decode(str(entry["auth"])).decode().partition(":")
                return Credentials(user, pw)
            except ValueError:
                continue
        if entry.get("username"):
            return Credentials(str(entry["username"]), str(entry.get("password", "")))
    if isinstance(config.get("credsStore"), str):
        return _helper(config["credsStore"], registry)
    return None


_SCHEME_SEEN: dict[str, str] = {}  # api host -> the scheme that last answered


@functools.lru_cache(maxsize=1)
def _tls_context() -> Any:
    """One verifying SSL context per process: building one loads the CA bundle (~50 ms), which a
    long-running caller (the admission webhook verifying signatures) would otherwise pay per image."""
    import httpx

    return httpx.create_ssl_context()


# One connection pool per registry host (and TLS mode), shared by every RegistryClient of the process:
# a webhook verifying each admitted image would otherwise pay a new client (proxy and SSL setup) and
# a new TCP/TLS connection per image. httpx.Client is documented as safe to share between threads.
MAX_SHARED_POOLS = 32
KEEPALIVE_EXPIRY = 20.0
_POOLS: dict[tuple[str, bool], Any] = {}
_POOLS_LOCK = threading.Lock()


class _NoCookies(http.cookiejar.CookieJar):
    """Registries need no cookies, and a pool shared by repositories and credentials must not
    carry one caller's cookies to another (go-containerregistry, which cosign uses, keeps none)."""

    def set_cookie(self, cookie: Any) -> None:
        pass

    def extract_cookies(self, response: Any, request: Any) -> None:
        pass


def _new_client(verify: Any, timeout: float, limits: Any = None) -> Any:
    import httpx

    return httpx.Client(timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)), verify=verify,
                        follow_redirects=True, headers={"User-Agent": "hullguard"}, cookies=_NoCookies(),
                        **({"limits": limits} if limits is not None else {}))


def _pool_for(api_host: str, tls: bool) -> Any | None:
    """The process-wide client for this host, or None when too many hosts are pooled already."""
    key = (api_host, tls)
    with _POOLS_LOCK:
        client = _POOLS.get(key)
        if client is None:
            if len(_POOLS) >= MAX_SHARED_POOLS:
                return None
            import httpx

            limits = httpx.Limits(max_connections=64, max_keepalive_connections=16,
                                  keepalive_expiry=KEEPALIVE_EXPIRY)
            client = _new_client(_tls_context() if tls else False, 30.0, limits)
            _POOLS[key] = client
        return client


def close_pools() -> None:
    """Close every shared connection (tests; a long-running server at exit)."""
    with _POOLS_LOCK:
        clients = list(_POOLS.values())
        fast = [f for f in _FAST.values() if f is not None]
        _POOLS.clear()
        _FAST.clear()
    for client in clients:
        client.close()
    for pool in fast:
        pool.close()


# GETs (manifests, signatures, blobs) through http.client on the same keep-alive idea: a third of
# httpx's CPU per request (measured on loopback: 0.19 vs 0.64 ms), which the webhook's cold path
# pays 9 times per Pod of 3 containers. Used only where nothing httpx adds applies: no proxy for
# the host, no request body, no redirect (a redirect is replayed through httpx, which follows it).
_FAST: dict[tuple[str, bool], _FastPool | None] = {}
_REDIRECTS = (301, 302, 303, 307, 308)
MAX_IDLE_PER_HOST = 16
MAX_ERROR_BODY = 64 * 1024


def _fast_pool_for(api_host: str, tls: bool) -> _FastPool | None:
    key = (api_host, tls)
    with _POOLS_LOCK:
        if key in _FAST:
            return _FAST[key]
        import ssl
        import urllib.request

        host = api_host.rsplit(":", 1)[0].strip("[]") if not api_host.endswith("]") else api_host.strip("[]")
        pool: _FastPool | None = None
        if not (urllib.request.getproxies_environment() and not urllib.request.proxy_bypass_environment(host)):
            if tls:
                context = _tls_context()
            else:
                context = ssl.create_default_context()
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            pool = _FastPool(api_host, context)
        if len(_FAST) < MAX_SHARED_POOLS:
            _FAST[key] = pool
        return pool


def _readable(sock: Any) -> bool:
    """An idle socket with something to read was closed by the server (or sent junk): not reusable.
    poll, not select: select cannot watch descriptors above 1023, which a busy process reaches."""
    import select

    try:
        if hasattr(select, "poll"):
            poller = select.poll()
            poller.register(sock, select.POLLIN)
            return bool(poller.poll(0))
        return bool(select.select([sock], [], [], 0)[0])
    except (OSError, ValueError):
        return True


class _FastPool:
    """Idle keep-alive http.client connections to one registry host, one request per connection at a time."""

    def __init__(self, api_host: str, context: Any) -> None:
        self.api_host = api_host
        self.context = context
        self._idle: dict[str, list[tuple[Any, float]]] = {"http": [], "https": []}
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            idle = [c for conns in self._idle.values() for c, _ in conns]
            self._idle = {"http": [], "https": []}
        for conn in idle:
            conn.close()

    def _take(self, scheme: str) -> Any | None:
        while True:
            with self._lock:
                if not self._idle[scheme]:
                    return None
                conn, since = self._idle[scheme].pop()
            sock = conn.sock
            if sock is None or time.monotonic() - since > KEEPALIVE_EXPIRY or _readable(sock):
                conn.close()
                continue
            return conn

    def give_back(self, scheme: str, conn: Any) -> None:
        with self._lock:
            if len(self._idle[scheme]) < MAX_IDLE_PER_HOST:
                self._idle[scheme].append((conn, time.monotonic()))
                return
        conn.close()

    def _connect(self, scheme: str, timeout: Any) -> Any:
        import http.client

        if scheme == "https":
            conn = http.client.HTTPSConnection(self.api_host, timeout=timeout.connect, context=self.context)
        else:
            conn = http.client.HTTPConnection(self.api_host, timeout=timeout.connect)
        conn.connect()
        conn.sock.settimeout(timeout.read)
        return conn

    def get(self, scheme: str, path: str, headers: dict[str, str], timeout: Any, registry: str) -> _FastResponse:
        """Raises TimeoutError, OSError or http.client.HTTPException like a transport would."""
        import http.client

        conn = self._take(scheme)
        if conn is not None:
            conn.sock.settimeout(timeout.read)
            try:
                conn.request("GET", path, headers=headers)
                return _FastResponse(self, scheme, conn, conn.getresponse(), registry)
            except TimeoutError:
                conn.close()
                raise
            except (OSError, http.client.HTTPException):
                conn.close()  # the server dropped an idle connection as we reused it: one fresh try
        conn = self._connect(scheme, timeout)
        try:
            conn.request("GET", path, headers=headers)
            return _FastResponse(self, scheme, conn, conn.getresponse(), registry)
        except BaseException:
            conn.close()
            raise


class _FastResponse:
    """What RegistryClient uses of an httpx.Response, over an http.client response."""

    def __init__(self, pool: _FastPool, scheme: str, conn: Any, resp: Any, registry: str) -> None:
        self._pool = pool
        self._scheme = scheme
        self._conn = conn
        self._resp = resp
        self._registry = registry
        self.status_code = resp.status
        self.headers = resp.headers  # http.client.HTTPMessage: get() is case-insensitive
        self.is_closed = False
        self._content: bytes | None = None

    def iter_raw(self, chunk_size: int = 1 << 16) -> Iterator[bytes]:
        import http.client

        while True:
            try:
                data = self._resp.read(chunk_size)
            except TimeoutError:
                self.close()
                raise SourceError(f"registry {self._registry} stopped sending data (timeout)") from None
            except (OSError, http.client.HTTPException) as exc:
                self.close()
                raise SourceError(f"download from {self._registry} failed: {_short(exc)}") from None
            if not data:
                return
            yield data

    @property
    def content(self) -> bytes:
        """The body, only ever wanted for an error message: bounded."""
        if self._content is None:
            buf = bytearray()
            for chunk in self.iter_raw():
                buf += chunk
                if len(buf) > MAX_ERROR_BODY:
                    break
            self._content = bytes(buf[:MAX_ERROR_BODY])
        return self._content

    def close(self) -> None:
        if self.is_closed:
            return
        self.is_closed = True
        resp, conn = self._resp, self._conn
        if not resp.isclosed() and resp.length is not None and resp.length <= MAX_ERROR_BODY:
            try:
                resp.read()  # a small unread body (a 401, a 404): drain it and keep the connection
            except (OSError, Exception):
                conn.close()
                return
        if resp.isclosed() and not resp.will_close:
            self._pool.give_back(self._scheme, conn)
        else:
            conn.close()


# Bearer tokens by (registry host, realm, service, scope, credentials) until shortly before they expire,
# and each host's last challenge, so that a new client for a repository it has already pulled from
# sends the token at once instead of a 401 round trip and a token request per image.
MAX_TOKENS = 1024
TOKEN_MARGIN = 10.0  # seconds before expiry a token stops being handed out
DEFAULT_TOKEN_LIFETIME = 60  # the token spec's default when expires_in is absent
_TOKENS: OrderedDict[tuple[str, ...], tuple[str, float]] = OrderedDict()
_CHALLENGES: dict[str, str] = {}
_AUTH_LOCK = threading.Lock()
_clock = time.monotonic  # token expiry clock (a seam for tests)


def _creds_id(creds: Credentials | None) -> str:
    if not creds:
        return ""
    raw = "\0".join((creds.username, creds.password, creds.token)).encode()
    return hashlib.sha256(raw).hexdigest()


def _cached_token(key: tuple[str, ...]) -> str:
    with _AUTH_LOCK:
        entry = _TOKENS.get(key)
        if entry is None:
            return ""
        if entry[1] <= _clock():
            del _TOKENS[key]
            return ""
        return entry[0]


def _store_token(key: tuple[str, ...], token: str, expires_in: object) -> None:
    lifetime = expires_in if isinstance(expires_in, int | float) and not isinstance(expires_in, bool) \
        else DEFAULT_TOKEN_LIFETIME
    ttl = min(float(lifetime), 3600.0) - TOKEN_MARGIN
    if ttl <= 0:
        return
    with _AUTH_LOCK:
        _TOKENS[key] = (token, _clock() + ttl)
        _TOKENS.move_to_end(key)
        while len(_TOKENS) > MAX_TOKENS:
            _TOKENS.popitem(last=False)


def _forget_token(key: tuple[str, ...]) -> None:
    with _AUTH_LOCK:
        _TOKENS.pop(key, None)


def _parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    scheme, _, rest = header.strip().partition(" ")
    params = {k.lower(): v for k, v in re.findall(r'(\w+)="([^"]*)"', rest)}
    params.update({k.lower(): v for k, v in re.findall(r'(\w+)=([^",\s]+)', rest) if k.lower() not in params})
    return scheme.lower(), params


class RegistryClient:
    def __init__(self, ref: Reference, *, insecure: bool = False, credentials: Credentials | None = None,
                 timeout: float = 30.0) -> None:
        import httpx

        self.httpx = httpx
        self.ref = ref
        self.credentials = credentials or credentials_for(ref.registry)
        host = ref.api_host.split(":")[0].strip("[]")
        loopback = host in ("localhost", "::1") or host.startswith("127.")
        self.schemes = ["http", "https"] if insecure else (["https", "http"] if loopback else ["https"])
        known = _SCHEME_SEEN.get(ref.api_host)
        if known in self.schemes:
            # Try what worked last time first: a plain-HTTP registry otherwise costs a failed TLS
            # attempt per client, which a webhook verifying every admitted image would pay each time.
            self.schemes = [known] + [x for x in self.schemes if x != known]
        self.timeout = httpx.Timeout(timeout, connect=min(timeout, 10.0))
        tls = not (insecure or loopback)
        shared = _pool_for(ref.api_host, tls)
        self._own_client = shared is None
        self.client = shared if shared is not None else _new_client(_tls_context() if tls else False, timeout)
        self._fast = _fast_pool_for(ref.api_host, tls) if shared is not None else None
        # Streamed responses a caller may leave open: closed with this client, so that an abandoned
        # download cannot keep a connection of the shared pool busy for good.
        self._streams: weakref.WeakSet[Any] = weakref.WeakSet()
        self.base = ""
        self.auth_header = ""
        self._token_key: tuple[str, ...] = ()  # the shared-cache entry auth_header came from, if any
        self._preauthorize()

    def close(self) -> None:
        for response in list(self._streams):
            response.close()
        if self._own_client:
            self.client.close()

    def _preauthorize(self) -> None:
        """Reuse a cached pull token for this repository, if this host challenged us before."""
        challenge = _CHALLENGES.get(self.ref.api_host)
        if not challenge:
            return
        scheme, params = _parse_challenge(challenge)
        if scheme != "bearer" or "realm" not in params:
            return
        scheme_seen = _SCHEME_SEEN.get(self.ref.api_host, "")
        if not scheme_seen:
            return
        key = self._token_cache_key(params, f"repository:{self.ref.repository}:pull", scheme_seen)
        token = _cached_token(key)
        if token:
            self.auth_header = f"Bearer {token}"
            self._token_key = key

    def _token_cache_key(self, params: dict[str, str], scope: str, scheme: str = "") -> tuple[str, ...]:
        # The scheme first: a token got over TLS is never sent in clear text to the same host:port.
        return (scheme or self.base, self.ref.api_host, params.get("realm", ""), params.get("service", ""), scope,
                _creds_id(self.credentials))

    def _drop_auth(self, forget: bool = True) -> None:
        """The registry refused auth_header; unless it only lacked a push scope, its cached token goes too."""
        if self._token_key and forget:
            _forget_token(self._token_key)
        self._token_key = ()
        self.auth_header = ""

    def _url(self, scheme: str, path: str) -> str:
        return f"{scheme}://{self.ref.api_host}/v2/{self.ref.repository}/{path}"

    def _send(self, path: str, headers: dict[str, str], stream: bool = False, method: str = "GET",
              content: bytes | None = None, url: str = "") -> Any:
        httpx = self.httpx
        # An absolute URL (an upload Location) is only ever used after a request has settled the scheme.
        schemes = [self.base] if (self.base or url) else self.schemes
        last_error: Exception | None = None
        for scheme in schemes:
            hdrs = dict(headers)
            if self.auth_header and (not self._token_key or self._token_key[0] == scheme):
                hdrs["Authorization"] = self.auth_header
            fast = self._fast is not None and method == "GET" and stream and content is None and not url
            try:
                response = None
                if fast:
                    assert self._fast is not None
                    hdrs.setdefault("User-Agent", "hullguard")
                    response = self._fast.get(scheme, f"/v2/{self.ref.repository}/{path}", hdrs, self.timeout,
                                              self.ref.registry)
                    if response.status_code in _REDIRECTS:
                        response.close()
                        response = None
                if response is None:
                    target = url or self._url(scheme, path)
                    request = self.client.build_request(method, target, headers=hdrs, content=content,
                                                        timeout=self.timeout)
                    response = self.client.send(request, stream=stream)
            except (httpx.TimeoutException, TimeoutError):
                raise SourceError(f"registry {self.ref.registry} did not answer in time") from None
            except (httpx.TransportError, httpx.InvalidURL, OSError, http.client.HTTPException, ValueError) as exc:
                # ValueError: http.client refusing a header or path it will not send (hostile input).
                last_error = exc
                continue
            if response.status_code == 400 and scheme == "http" and len(schemes) > 1:
                response.close()  # plain HTTP spoken to a TLS port
                continue
            self.base = scheme
            _SCHEME_SEEN[self.ref.api_host] = scheme
            if stream:
                self._streams.add(response)
            return response
        raise SourceError(f"cannot connect to registry {self.ref.registry}: {_short(last_error)}")

    def get(self, path: str, headers: dict[str, str] | None = None, stream: bool = False) -> Any:
        headers = headers or {}
        response = self._send(path, headers, stream)
        if response.status_code == 401 and (not self.auth_header or self._token_key):
            challenge = response.headers.get("www-authenticate", "")
            response.close()
            self._drop_auth()
            self._authenticate(challenge)
            response = self._send(path, headers, stream)
        if response.status_code >= 400:
            status = response.status_code
            body = b"" if stream else response.content[:300]
            response.close()
            raise SourceError(self._explain(status, path, body))
        return response

    def _explain(self, status: int, path: str, body: bytes) -> str:
        what = f"{self.ref.registry}/{self.ref.repository}"
        detail = ""
        try:
            errors = json.loads(body).get("errors") or []
            if errors and isinstance(errors[0], dict):
                detail = f" ({errors[0].get('code', '')}: {errors[0].get('message', '')})"
        except (ValueError, AttributeError):
            pass
        if status == 401:
            return f"registry {self.ref.registry}: authentication failed for {what}{detail}"
        if status == 403:
            return f"registry {self.ref.registry}: access to {what} denied{detail}"
        if status == 404:
            kind = path.split("/")[0][:-1]
            return f"registry {self.ref.registry}: {kind} not found: {what} {path.split('/')[-1]}{detail}"
        if status == 429:
            return f"registry {self.ref.registry}: rate limited (429); try again later or log in"
        return f"registry {self.ref.registry} answered HTTP {status} for {path}{detail}"

    def _authenticate(self, challenge: str, push: bool = False) -> None:
        scheme, params = _parse_challenge(challenge)
        creds = self.credentials
        if scheme in ("basic", "bearer"):
            with _AUTH_LOCK:
                if len(_CHALLENGES) >= 256 and self.ref.api_host not in _CHALLENGES:
                    _CHALLENGES.clear()
                _CHALLENGES[self.ref.api_host] = challenge[:2048]
        if scheme == "basic":
            if not creds or not (creds.username or creds.password):
                raise SourceError(f"registry {self.ref.registry} requires a login (use --username/--password "
                                  "or docker login)")
            raw = f"{creds.username}:{creds.password}".encode()
            self.auth_header = "Basic " + base64.b64encode(raw).decode()
            return
        if scheme != "bearer" or "realm" not in params:
            raise SourceError(f"registry {self.ref.registry} asks for unsupported authentication {challenge[:80]!r}")
        actions = "pull,push" if push else "pull"
        query = {"scope": params.get("scope") or f"repository:{self.ref.repository}:{actions}"}
        if params.get("service"):
            query["service"] = params["service"]
        key = self._token_cache_key(params, query["scope"])
        token = _cached_token(key)
        if token:
            self.auth_header = f"Bearer {token}"
            self._token_key = key
            return
        auth = None
        if creds and creds.token and not creds.password:
            # An identity token is a refresh token for the OAuth2 flow of the token spec.
            try:
                response = self.client.post(params["realm"], data={
                    "grant_type": "refresh_token", "refresh_token": creds.token,
                    "service": query.get("service", ""), "scope": query["scope"], "client_id": "hullguard"},
                    timeout=self.timeout)
            except self.httpx.HTTPError as exc:
                raise SourceError(f"token service {params['realm']} failed: {_short(exc)}") from None
        else:
            if creds and (creds.username or creds.password):
                auth = (creds.username, creds.password)
            try:
                response = self.client.get(params["realm"], params=query, auth=auth, timeout=self.timeout)
            except self.httpx.TimeoutException:
                raise SourceError(f"token service {params['realm']} did not answer in time") from None
            except self.httpx.HTTPError as exc:
                raise SourceError(f"token service {params['realm']} failed: {_short(exc)}") from None
        if response.status_code in (401, 403):
            raise SourceError(f"registry {self.ref.registry}: login refused by the token service "
                              f"({response.status_code})")
        if response.status_code >= 400:
            raise SourceError(f"token service {params['realm']} answered HTTP {response.status_code}")
        try:
            body = response.json()
            token = body.get("token") or body.get("access_token")
            expires_in = body.get("expires_in")
        except (ValueError, AttributeError):
            token = expires_in = None
        if not isinstance(token, str) or not token:
            raise SourceError(f"token service {params['realm']} returned no token")
        if len(token) > 64 * 1024 or not token.isascii() or not token.isprintable() or " " in token:
            raise SourceError(f"token service {params['realm']} returned a malformed token")
        self.auth_header = f"Bearer {token}"
        self._token_key = key
        _store_token(key, token, expires_in)

    def manifest(self, reference: str) -> tuple[bytes, str, str]:
        response = self.get(f"manifests/{reference}", {"Accept": ACCEPT}, stream=True)
        try:
            data = _read_bounded(response, MAX_MANIFEST, f"manifest {reference}")
        finally:
            response.close()
        media_type = response.headers.get("content-type", "").split(";")[0].strip()
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        if reference.startswith("sha"):
            verify_bytes(data, reference, f"manifest {reference}")
            digest = reference
        return data, media_type, digest

    def blob_bytes(self, digest: str, limit: int, what: str) -> bytes:
        response = self.get(f"blobs/{digest}", stream=True)
        try:
            data = _read_bounded(response, limit, what)
        finally:
            response.close()
        return verify_bytes(data, digest, what)

    def blob_stream(self, digest: str) -> BinaryIO:
        response = self.get(f"blobs/{digest}", stream=True)
        return _ResponseStream(response, self.httpx, self.ref.registry)  # type: ignore[return-value]


    # ------------------------------------------------------------------ writing (OCI distribution push)

    def request(self, method: str, path: str, *, headers: dict[str, str] | None = None,
                content: bytes | None = None, url: str = "", ok: tuple[int, ...] = (200,),
                stream: bool = False) -> Any:
        """One request; on 401 authenticate (again: a pull token does not cover a push)."""
        headers = headers or {}
        response = self._send(path, headers, stream, method, content, url)
        if response.status_code == 401:
            challenge = response.headers.get("www-authenticate", "")
            response.close()
            push = method not in ("GET", "HEAD")
            self._drop_auth(forget=not push)
            self._authenticate(challenge, push=push)
            response = self._send(path, headers, stream, method, content, url)
        if response.status_code not in ok:
            status = response.status_code
            body = b"" if (method == "HEAD" or stream) else response.content[:300]
            response.close()
            raise SourceError(self._explain(status, path, body))
        return response

    def manifest_if_exists(self, reference: str, accept: str = ACCEPT) -> tuple[bytes, str, str] | None:
        """(bytes, media type, digest) of a manifest, or None when the registry has no such tag/digest."""
        response = self.request("GET", f"manifests/{reference}", headers={"Accept": accept}, ok=(200, 404),
                                stream=True)
        try:
            if response.status_code == 404:
                return None
            data = _read_bounded(response, MAX_MANIFEST, f"manifest {reference}")
        finally:
            response.close()
        if reference.startswith("sha256:"):
            verify_bytes(data, reference, f"manifest {reference}")
        media_type = response.headers.get("content-type", "").split(";")[0].strip()
        return data, media_type, "sha256:" + hashlib.sha256(data).hexdigest()

    def blob_exists(self, digest: str) -> bool:
        response = self.request("HEAD", f"blobs/{digest}", ok=(200, 404))
        response.close()
        return response.status_code == 200

    def push_blob(self, data: bytes) -> str:
        """Upload ``data`` (monolithic POST then PUT, OCI distribution spec) unless present; returns its digest."""
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        if self.blob_exists(digest):
            return digest
        started = self.request("POST", "blobs/uploads/", headers={"Content-Length": "0"}, content=b"", ok=(202,))
        location = started.headers.get("location", "")
        if not location:
            raise SourceError(f"registry {self.ref.registry} started an upload without a Location")
        url = urljoin(str(started.url), location)
        url += ("&" if "?" in url else "?") + "digest=" + quote(digest, safe="")
        done = self.request("PUT", "blobs/uploads/", url=url, content=data,
                            headers={"Content-Type": "application/octet-stream"}, ok=(201, 204))
        stored = done.headers.get("docker-content-digest", digest)
        if stored != digest:
            raise SourceError(f"registry {self.ref.registry} stored blob {digest} as {stored}")
        return digest

    def push_manifest(self, reference: str, data: bytes, media_type: str) -> str:
        """PUT a manifest under a tag or its digest; returns the manifest digest."""
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        self.request("PUT", f"manifests/{reference}", headers={"Content-Type": media_type}, content=data,
                     ok=(200, 201, 202))
        return digest


def _read_bounded(response: Any, limit: int, what: str) -> bytes:
    buf = bytearray()
    for chunk in response.iter_raw():
        buf += chunk
        if len(buf) > limit:
            raise SourceError(f"{what} is larger than {limit} bytes")
    return bytes(buf)


def _short(exc: Exception | None) -> str:
    text = str(exc) if exc else "unknown error"
    return text.splitlines()[0][:160] if text else type(exc).__name__


class _ResponseStream(io.RawIOBase):
    def __init__(self, response: Any, httpx: Any, registry: str) -> None:
        self._response = response
        self._iter = response.iter_raw(1 << 20)
        self._buf = b""
        self._httpx = httpx
        self._registry = registry

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:  # type: ignore[override]
        if not self._buf:
            try:
                self._buf = next(self._iter, b"")
            except self._httpx.TimeoutException:
                raise SourceError(f"registry {self._registry} stopped sending data (timeout)") from None
            except self._httpx.HTTPError as exc:
                raise SourceError(f"download from {self._registry} failed: {_short(exc)}") from None
        n = min(len(b), len(self._buf))
        b[:n] = self._buf[:n]
        self._buf = self._buf[n:]
        return n

    def close(self) -> None:
        self._response.close()
        super().close()


class RegistrySource(ImageSource):
    def __init__(self, text: str, *, platform: Platform | None = None, insecure: bool = False,
                 credentials: Credentials | None = None, timeout: float = 30.0) -> None:
        self.ref = Reference.parse(text)
        self.client = RegistryClient(self.ref, insecure=insecure, credentials=credentials, timeout=timeout)
        try:
            self._load(text, platform)
        except BaseException:
            self.client.close()
            raise

    def _load(self, text: str, platform: Platform | None) -> None:
        data, media_type, digest = self.client.manifest(self.ref.reference)

        def fetch(desc: dict[str, Any]) -> tuple[bytes, str]:
            d, mt, _ = self.client.manifest(desc["digest"])
            return d, mt

        manifest, digest = resolve_manifest(data, media_type, fetch, platform, f"manifest of {self.ref}", digest)
        cfg = check_config_descriptor(manifest, f"manifest {digest}")
        config = parse_json(self.client.blob_bytes(cfg["digest"], 16 << 20, "image config"), "image config")
        if not isinstance(config, dict):
            raise SourceError("image config is not a JSON object")
        repo = f"{self.ref.registry}/{self.ref.repository}"
        self.artifact = artifact_from_config(
            text, "registry", config, manifest_digest=digest, config_digest=cfg["digest"],
            repo_tags=[f"{repo}:{self.ref.tag}"] if self.ref.tag else [],
            repo_digests=[f"{repo}@{digest}"] if digest else [],
        )
        self.layers = layers_from(manifest, config, f"manifest {digest}")

    def blobs(self, layers: list[Layer]) -> Iterator[tuple[Layer, BinaryIO]]:
        for layer in layers:
            stream = self.client.blob_stream(layer.digest)
            try:
                yield layer, verified(stream, layer, f"layer {layer.digest}")  # type: ignore[arg-type]
            finally:
                stream.close()

    def close(self) -> None:
        self.client.close()


read_bounded = _read_bounded
