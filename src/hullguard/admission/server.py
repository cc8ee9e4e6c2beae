"""The HTTPS server: /validate, /mutate, /healthz, /readyz and /metrics.

Standard library only (ThreadingHTTPServer + ssl): HTTP/1.1 keep-alive, one thread per connection,
and the API server keeps a few connections open, so a request costs a JSON parse, the policies and
a JSON dump. The TLS context is rebuilt when the certificate or key file changes (cert-manager
rotates them in place), so rotation needs no restart.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import socket
import ssl
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import IO, Any

from hullguard.admission.engine import BadReview, Decision, Engine
from hullguard.admission.metrics import CONTENT_TYPE, Metrics
from hullguard.model import HullguardError

MAX_BODY = 8 * 1024 * 1024  # the API server caps objects near 1.5 MiB; an UPDATE carries two
MAX_CONNECTIONS = 512
IDLE_TIMEOUT = 60.0
MAX_HEADERS = 100
DRAIN_ON_REFUSAL = 64 * 1024  # body bytes read before refusing an oversized request (see _review)
MAX_HEADER_LINE = 8192


def _load_context(cert: str, key: str) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_alpn_protocols(["http/1.1"])  # the API server falls back to HTTP/1.1 keep-alive
    try:
        ctx.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise HullguardError(f"cannot load TLS certificate {cert} / key {key}: {exc}") from None
    return ctx


class TLSFiles:
    """The serving certificate, reloaded when either file's mtime/size changes (checked at most once
    per ``interval`` seconds, on new connections). A broken new pair keeps the old context serving."""

    def __init__(self, cert: str, key: str, interval: float = 1.0, on_error: Any = None) -> None:
        self.cert, self.key, self.interval = cert, key, interval
        self.on_error = on_error
        self._stamp = self._stat()
        self._ctx = _load_context(cert, key)
        self._checked = time.monotonic()
        self._lock = threading.Lock()
        self.reloads = 0

    def _stat(self) -> tuple[Any, ...]:
        out: list[Any] = []
        for path in (self.cert, self.key):
            try:
                st = os.stat(path)
                out += [st.st_mtime_ns, st.st_size, st.st_ino]
            except OSError:
                out += [None, None, None]
        return tuple(out)

    def context(self) -> ssl.SSLContext:
        now = time.monotonic()
        if now - self._checked < self.interval:
            return self._ctx
        with self._lock:
            self._checked = now
            stamp = self._stat()
            if stamp != self._stamp:
                try:
                    self._ctx = _load_context(self.cert, self.key)
                    self._stamp = stamp
                    self.reloads += 1
                except HullguardError as exc:
                    if self.on_error:
                        self.on_error(f"keeping the previous certificate: {exc}")
        return self._ctx


class DecisionLog:
    def __init__(self, stream: IO[str] | None = None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self._lock = threading.Lock()

    def write(self, record: dict[str, Any]) -> None:
        line = json.dumps(record, separators=(",", ":"), default=str) + "\n"
        with self._lock:
            try:
                self.stream.write(line)
                self.stream.flush()
            except (OSError, ValueError):
                pass  # a closed log must not fail admission


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class WebhookServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], engine: Engine, tls: TLSFiles, *, log: DecisionLog | None = None,
                 metrics: Metrics | None = None, max_body: int = MAX_BODY,
                 max_connections: int = MAX_CONNECTIONS) -> None:
        self.engine = engine
        self.tls = tls
        self.log = log or DecisionLog()
        self.metrics = metrics or Metrics()
        self.max_body = max_body
        self._slots = threading.BoundedSemaphore(max_connections)
        self.ready = True
        if tls.on_error is None:
            tls.on_error = self.event
        super().__init__(address, Handler)

    def event(self, message: str, **fields: Any) -> None:
        self.log.write({"time": _now(), "event": message, **fields})

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, addr = self.socket.accept()
        # The handshake happens in the connection's thread (first read), not in the accept loop.
        return self.tls.context().wrap_socket(sock, server_side=True, do_handshake_on_connect=False), addr

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            self.shutdown_request(request)  # over the connection bound: refuse rather than queue forever
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, ssl.SSLError | ConnectionError | TimeoutError | OSError):
            return  # clients that hang up or fail the handshake are normal on a network
        self.event("internal error handling a connection", error=f"{type(exc).__name__}: {exc}")

    def cache_metrics(self) -> bytes:
        deps = self.engine.deps
        return (
            "# HELP hullguard_admission_cache_lookups_total Digest, signature and scan lookups by outcome.\n"
            "# TYPE hullguard_admission_cache_lookups_total counter\n"
            f'hullguard_admission_cache_lookups_total{{outcome="hit"}} {deps.hits}\n'
            f'hullguard_admission_cache_lookups_total{{outcome="miss"}} {deps.misses}\n'
            "# HELP hullguard_admission_dependency_calls_in_flight Registry calls and scans running now.\n"
            "# TYPE hullguard_admission_dependency_calls_in_flight gauge\n"
            f"hullguard_admission_dependency_calls_in_flight {len(deps._inflight)}\n"
        ).encode()

    @property
    def port(self) -> int:
        return int(self.server_address[1])


class _Headers(dict[str, str]):
    """Lower-cased header names; get() accepts any case, as http.client's message does."""

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        return super().get(key.lower(), default)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = IDLE_TIMEOUT
    # Headers and body leave in separate writes; with Nagle on, the body waits for the client's
    # delayed ACK (~40 ms) on every keep-alive request.
    disable_nagle_algorithm = True
    server: WebhookServer
    server_version = "hullguard-admission"
    sys_version = ""

    def parse_request(self) -> bool:
        """Request line and headers without the email-package parser the stdlib uses: a third of
        the server's CPU per request went there. Headers are bounded in count and size."""
        line = str(self.raw_requestline, "iso-8859-1").rstrip("\r\n")
        self.requestline = line
        self.command = ""  # send_error reads it
        parts = line.split()
        if len(parts) != 3 or not parts[2].startswith("HTTP/"):
            self.request_version = "HTTP/1.0"
            self.close_connection = True
            self.send_error(400, "bad request line")
            return False
        self.command, self.path, self.request_version = parts
        if self.request_version not in ("HTTP/1.1", "HTTP/1.0"):
            self.close_connection = True
            self.send_error(505, "HTTP/1.1 only")
            return False
        headers = _Headers()
        for _ in range(MAX_HEADERS + 1):
            raw = self.rfile.readline(MAX_HEADER_LINE + 1)
            if len(raw) > MAX_HEADER_LINE:
                self.close_connection = True
                self.send_error(431, "header line too long")
                return False
            if raw in (b"\r\n", b"\n", b""):
                break
            name, sep, value = raw.decode("iso-8859-1").partition(":")
            if not sep:
                self.close_connection = True
                self.send_error(400, "malformed header line")
                return False
            headers[name.strip().lower()] = value.strip()
        else:
            self.close_connection = True
            self.send_error(431, "too many headers")
            return False
        self.headers = headers  # type: ignore[assignment]
        conn = headers.get("connection", "").lower()
        self.close_connection = conn == "close" or (self.request_version == "HTTP/1.0" and conn != "keep-alive")
        if headers.get("expect", "").lower() == "100-continue":
            self.send_response_only(100)
            self.end_headers()
        return True

    def log_message(self, format: str, *args: Any) -> None:
        pass  # decisions are logged as JSON; per-request access lines would double the log

    def _send(self, code: int, body: bytes, content_type: str = "application/json") -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        # Status line, headers and body in one TLS record and one send(): half the syscalls and
        # wake-ups of end_headers() followed by a second write.
        self._headers_buffer.append(b"\r\n" + body)
        self.flush_headers()

    def _error(self, code: int, message: str) -> None:
        body = json.dumps({"error": message, "code": code}).encode()
        self._send(code, body)

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/healthz":
            self._send(200, b"ok\n", "text/plain")
        elif path == "/readyz":
            ok = self.server.ready
            self._send(200 if ok else 503, b"ready\n" if ok else b"not ready\n", "text/plain")
        elif path == "/metrics":
            self._send(200, self.server.metrics.render() + self.server.cache_metrics(), CONTENT_TYPE)
        else:
            self._error(404, f"no such endpoint {path}; use /validate, /mutate, /healthz, /readyz or /metrics")

    def do_POST(self) -> None:
        path = self.path.split("?", 1)[0]
        endpoint = {"/validate": "validate", "/mutate": "mutate"}.get(path)
        if endpoint is None:
            self._drain()
            self._error(404, f"no such endpoint {path}; POST AdmissionReview to /validate or /mutate")
            return
        metrics = self.server.metrics
        metrics.enter()
        start = time.perf_counter()
        try:
            self._review(endpoint, start)
        finally:
            metrics.leave()

    def _drain(self) -> None:
        try:
            n = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            n = 0
        if 0 < n <= self.server.max_body:
            self.rfile.read(n)
        else:
            self.close_connection = True

    def _bad(self, endpoint: str, start: float, code: int, message: str) -> None:
        self.close_connection = code in (411, 413)
        self._error(code, message)
        self.server.metrics.observe(endpoint, "bad_request", time.perf_counter() - start, [])
        self.server.event("bad request", endpoint=endpoint, code=code, reason=message,
                          client=self.client_address[0] if self.client_address else "")

    def _review(self, endpoint: str, start: float) -> None:
        length = self.headers.get("Content-Length")
        if length is None or not length.strip().isdigit():
            self._bad(endpoint, start, 411, "Content-Length is required")
            return
        n = int(length)
        if n > self.server.max_body:
            # Closing with the body unread makes the kernel answer with a reset, which can reach the
            # client before it reads the 413: take in a bounded part of what it is already sending.
            with contextlib.suppress(OSError):
                self.rfile.read(min(n, DRAIN_ON_REFUSAL))
            self._bad(endpoint, start, 413, f"AdmissionReview is larger than {self.server.max_body} bytes")
            return
        raw = self.rfile.read(n)
        if len(raw) != n:
            self.close_connection = True
            return
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            self._bad(endpoint, start, 400, f"malformed AdmissionReview: not JSON ({exc})")
            return
        except RecursionError:
            self._bad(endpoint, start, 400, "malformed AdmissionReview: JSON nested too deeply")
            return
        engine = self.server.engine
        try:
            decision = engine.review(body, endpoint)
        except BadReview as exc:
            self._bad(endpoint, start, 400, f"malformed AdmissionReview: {exc}")
            return
        except RecursionError:
            self._bad(endpoint, start, 400, "malformed AdmissionReview: object nested too deeply")
            return
        except Exception as exc:
            # A bug must not be mistaken for a decision: 500 lets the API server apply its failurePolicy.
            self._error(500, f"internal error: {type(exc).__name__}: {exc}")
            self.server.metrics.observe(endpoint, "error", time.perf_counter() - start, [])
            self.server.event("internal error", endpoint=endpoint, error=f"{type(exc).__name__}: {exc}")
            return
        out = json.dumps(decision.response(), separators=(",", ":")).encode()
        self._send(200, out)
        elapsed = time.perf_counter() - start
        outcome = "allowed" if decision.allowed else "denied"
        self.server.metrics.observe(endpoint, outcome, elapsed,
                                    [(r.policy, _metric_result(r.mode, r.result)) for r in decision.results])
        self.server.log.write(_record(body, endpoint, decision, elapsed))


def _metric_result(mode: str, result: str) -> str:
    if result == "fail":
        return {"enforce": "deny", "warn": "warn", "audit": "audit"}[mode]
    return result


def _record(body: dict[str, Any], endpoint: str, d: Decision, elapsed: float) -> dict[str, Any]:
    req = d.request
    assert req is not None
    mode = ""
    if not d.allowed:
        mode = "enforce"
    elif d.warnings:
        mode = "warn"
    elif any(r.result == "fail" for r in d.results):
        mode = "audit"
    return {
        "time": _now(), "event": "admission", "endpoint": endpoint, "uid": d.uid, "user": req.username,
        "groups": req.groups, "operation": req.operation, "kind": req.kind, "namespace": req.namespace,
        "name": req.name, "dryRun": req.dry_run, "images": d.images,
        "policies": [r.to_json() for r in d.results], "allowed": d.allowed, "mode": mode, "reason": d.reason,
        "warnings": d.warnings, "patched": len(d.patch), "latency_ms": round(elapsed * 1000, 3),
    }


def serve(server: WebhookServer) -> None:
    # Connection threads hand the GIL to each other every switch interval (5 ms by default): that
    # alone would put a request that arrives while another is being answered past a 5 ms p99.
    sys.setswitchinterval(0.0002)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever(poll_interval=0.5)
    server.server_close()


class PolicyReloader:
    """Re-reads the policy file when it changes (a mounted ConfigMap is updated in place) and swaps
    the server's engine; the dependency cache is kept. A file that no longer loads is refused with
    a log event and the previous policies stay in force."""

    def __init__(self, path: str, server: WebhookServer, interval: float = 2.0) -> None:
        self.path = path
        self.server = server
        self.interval = interval
        self._stamp = self._stat()
        self._stop = threading.Event()
        self.reloads = 0

    def _stat(self) -> tuple[Any, ...]:
        try:
            st = os.stat(self.path)
            return st.st_mtime_ns, st.st_size, st.st_ino
        except OSError:
            return (None, None, None)

    def check(self) -> bool:
        from hullguard.admission.config import load_config

        stamp = self._stat()
        if stamp == self._stamp:
            return False
        self._stamp = stamp
        old = self.server.engine
        try:
            config = load_config(self.path)
            deps = old.deps
            deps.ttl, deps.failure_ttl, deps.max_entries = config.cache_ttl, config.failure_ttl, config.cache_entries
            engine = Engine(config, deps, cel=old._cel)
        except HullguardError as exc:
            self.server.event("keeping the previous policies", error=str(exc), policy_file=self.path)
            return False
        self.server.engine = engine
        self.reloads += 1
        self.server.event("policies reloaded", policies=[p.name for p in config.policies], policy_file=self.path)
        return True

    def start(self) -> PolicyReloader:
        def loop() -> None:
            while not self._stop.wait(self.interval):
                self.check()

        threading.Thread(target=loop, daemon=True, name="hg-policy-reload").start()
        return self

    def stop(self) -> None:
        self._stop.set()
