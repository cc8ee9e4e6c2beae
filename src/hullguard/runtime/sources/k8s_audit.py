"""Kubernetes audit events: the API server's webhook backend (HTTPS) and audit log files.

The webhook backend (``--audit-webhook-config-file``) POSTs ``audit.k8s.io/v1`` ``EventList``
objects, batched, to the URL in its kubeconfig; it needs a quick 2xx and treats anything else as
a failure to retry. So the handler only decodes and enqueues; evaluation happens on the agent's
thread. Bodies are bounded (Content-Length required, 413 above the limit), malformed bodies get a
400 and are counted, and authentication is either a bearer token (the kubeconfig ``token``) or a
client certificate signed by a given CA (the kubeconfig ``client-certificate``), or both.
"""

from __future__ import annotations

import hmac
import os
import ssl
import stat
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from hullguard.model import HullguardError
from hullguard.runtime.replay import MAX_LINE
from hullguard.runtime.sources import decode_events

DEFAULT_MAX_BODY = 16 * 1024 * 1024  # a 400-event RequestResponse batch fits comfortably
_READ_TIMEOUT = 10.0


def parse_hostport(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise HullguardError(f"--audit-webhook needs HOST:PORT, got {text!r}")
    return (host.strip("[]") or "0.0.0.0"), int(port)


MAX_CONNECTIONS = 64


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 64
    receiver: AuditWebhook
    slots: threading.BoundedSemaphore

    def process_request(self, request: Any, client_address: Any) -> None:
        # One thread per connection, but never more than MAX_CONNECTIONS: beyond that a new
        # connection is closed at once (the API server retries) instead of growing threads.
        if not self.slots.acquire(blocking=False):
            self.receiver._count("refused_busy")
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Failed TLS handshakes (no or untrusted client certificate), resets and timeouts: count
        # them; a stack trace on stderr per bad client would be noise an attacker controls.
        self.receiver._count("connection_errors")


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    timeout = _READ_TIMEOUT  # a client that stalls mid-body cannot hold a thread forever
    # Headers and body go out as two writes; with Nagle on, a keep-alive client's delayed ACK
    # stalls every response by ~40 ms.
    disable_nagle_algorithm = True
    server_version = "hullguard-audit"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:
        return  # request logs would flood stderr at API-server rates; counters tell the story

    def _reply(self, code: int, text: str) -> None:
        body = (text + "\n").encode()
        self.send_response(code)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        if code >= 400:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path in ("/healthz", "/readyz"):
            self._reply(200, "ok")
        else:
            self._reply(405, "POST audit events here")

    def do_POST(self) -> None:
        rx = self.server.receiver
        if rx.path and self.path.split("?", 1)[0] != rx.path:
            rx._count("not_found")
            self._reply(404, "not found")
            return
        if rx.token is not None:
            got = self.headers.get("Authorization", "")
            if not hmac.compare_digest(got.encode(), f"Bearer {rx.token}".encode()):
                rx._count("unauthorized")
                self._reply(401, "unauthorized")
                return
        length = self.headers.get("Content-Length")
        if self.headers.get("Transfer-Encoding") or length is None or not length.strip().isdigit():
            rx._count("rejected")
            self._reply(411, "Content-Length required")
            return
        n = int(length)
        if n > rx.max_body:
            rx._count("too_large")
            self._reply(413, f"body larger than {rx.max_body} bytes")
            return
        if not rx._reserve(n):
            # Bodies being read at once are bounded in total, not just each: 64 connections
            # with 16 MiB bodies must not add up to a gigabyte. The API server retries.
            rx._count("busy")
            self.send_response(503)
            self.send_header("Retry-After", "1")
            self.send_header("Content-Length", "0")
            self.send_header("Connection", "close")
            self.close_connection = True
            self.end_headers()
            return
        try:
            self._receive(rx, n)
        finally:
            rx._release(n)

    def _receive(self, rx: AuditWebhook, n: int) -> None:
        try:
            body = self.rfile.read(n)
        except (TimeoutError, OSError):
            rx._count("rejected")
            self.close_connection = True
            return
        if len(body) != n:
            rx._count("rejected")
            self.close_connection = True
            return
        events = decode_events(body, rx.max_body)
        if events is None or any(ev.get("_source") != "k8s_audit" for ev in events):
            rx._count("malformed")
            self._reply(400, "expected an audit.k8s.io/v1 Event or EventList")
            return
        rx._count("requests")
        for ev in events:
            rx._count("events")
            if not rx.emit(ev):
                rx._count("dropped")
        self._reply(200, "ok")


class AuditWebhook:
    """HTTPS receiver; ``start(emit)`` binds and serves on a daemon thread."""

    name = "k8s_audit_webhook"

    def __init__(self, host: str, port: int, *, certfile: str, keyfile: str, token: str | None = None,
                 client_ca: str | None = None, path: str = "", max_body: int = DEFAULT_MAX_BODY) -> None:
        self.host, self.port = host, port
        self.token = token
        self.path = path
        self.max_body = max_body
        self.max_inflight = max(4 * max_body, 64 << 20)
        self._inflight = 0
        self.emit: Callable[[dict[str, Any]], bool] = lambda ev: True
        self._counts: dict[str, int] = dict.fromkeys(
            ("requests", "events", "malformed", "unauthorized", "too_large", "rejected", "not_found", "dropped",
             "connection_errors", "refused_busy", "busy"), 0)
        self._lock = threading.Lock()
        try:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.minimum_version = ssl.TLSVersion.TLSv1_2
            ctx.load_cert_chain(certfile, keyfile)
            if client_ca:
                ctx.load_verify_locations(cafile=client_ca)
                ctx.verify_mode = ssl.CERT_REQUIRED
        except (OSError, ssl.SSLError) as exc:
            raise HullguardError(f"cannot load TLS material for the audit webhook: {exc}") from exc
        self._ctx = ctx
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def _count(self, key: str) -> None:
        with self._lock:
            self._counts[key] += 1

    def _reserve(self, n: int) -> bool:
        with self._lock:
            if self._inflight and self._inflight + n > self.max_inflight:
                return False
            self._inflight += n
            return True

    def _release(self, n: int) -> None:
        with self._lock:
            self._inflight -= n

    @property
    def address(self) -> tuple[str, int]:
        if self._server is None:
            return self.host, self.port
        return self._server.server_address[:2]  # type: ignore[return-value]

    def bind(self) -> None:
        if self._server is not None:
            return
        try:
            srv = _Server((self.host, self.port), _Handler, bind_and_activate=True)
        except OSError as exc:
            raise HullguardError(f"cannot listen on {self.host}:{self.port}: {exc.strerror or exc}") from exc
        # Handshake in the per-connection thread, not in accept(): a client that never finishes
        # the TLS handshake must not block the listener.
        srv.socket = self._ctx.wrap_socket(srv.socket, server_side=True, do_handshake_on_connect=False)
        srv.receiver = self
        srv.slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        self._server = srv

    def start(self, emit: Callable[[dict[str, Any]], bool]) -> None:
        self.emit = emit
        self.bind()
        assert self._server is not None
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="hullguard-audit-webhook", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            if self._thread is not None:
                # shutdown() waits for serve_forever to return: only call it when it ran.
                self._server.shutdown()
                self._thread = None
            self._server.server_close()
            self._server = None

    def stats(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)


class AuditLogTailer:
    """Follows a JSON-lines file as ``tail -F`` does.

    Rotation by rename (a new inode at the path) drains the old file to its end before switching
    to the new one from its start; copytruncate (the same file shrinking below our offset) restarts
    from the beginning. A partial last line waits for its newline. A line longer than MAX_LINE is
    skipped up to its newline and counted as malformed, so a broken writer cannot grow memory.
    """

    name = "audit_log"

    def __init__(self, path: str, *, from_start: bool = False, interval: float = 0.25,
                 max_line: int = MAX_LINE, max_read: int = 64 << 20) -> None:
        self.path = path
        self.max_read = max_read  # bytes read per round at most
        self.from_start = from_start
        self.interval = interval
        self.max_line = max_line
        self.finished = False
        self.emit: Callable[[dict[str, Any]], bool] = lambda ev: True
        self._fh: Any = None
        self._ino: tuple[int, int] | None = None
        self._buf = bytearray()
        self._skipping = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.counts = dict.fromkeys(("lines", "events", "malformed", "rotations", "truncations", "dropped",
                                     "open_errors", "read_errors"), 0)

    def open(self) -> None:
        """Open the file now (so lines written after ``run`` starts are not missed); a path that
        exists but cannot be followed is a usage error here, before any thread starts."""
        self._open(at_end=not self.from_start, strict=True)

    def _open(self, *, at_end: bool, strict: bool = False) -> bool:
        try:
            # O_NONBLOCK: opening a FIFO for reading would otherwise block until a writer appears.
            fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
            fh = os.fdopen(fd, "rb", buffering=0)
        except FileNotFoundError:
            return False
        except OSError as exc:
            if strict:
                raise HullguardError(f"cannot read audit log {self.path}: {exc.strerror or exc}") from exc
            self.counts["open_errors"] += 1
            return False
        st = os.fstat(fh.fileno())
        if not stat.S_ISREG(st.st_mode):
            # A FIFO or device has no size or inode to follow rotation by, and /dev/zero would
            # never end a read.
            fh.close()
            if strict:
                raise HullguardError(f"audit log {self.path} is not a regular file")
            self.counts["open_errors"] += 1
            return False
        if at_end:
            fh.seek(0, os.SEEK_END)
        self._fh, self._ino = fh, (st.st_dev, st.st_ino)
        self._buf.clear()
        self._skipping = False
        return True

    def start(self, emit: Callable[[dict[str, Any]], bool]) -> None:
        self.emit = emit
        if self._fh is None:
            self.open()
        self._thread = threading.Thread(target=self._loop, name="hullguard-audit-tail", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def stats(self) -> dict[str, int]:
        return dict(self.counts)

    def _loop(self) -> None:
        while not self._stop.is_set():
            if not self.poll():
                self._stop.wait(self.interval)

    def poll(self) -> bool:
        """One round: read what is new, then notice rotation or truncation. True when there is
        more to read right away."""
        # A file that did not exist yet is all new when it appears: read it from the start.
        if self._fh is None and not self._open(at_end=False):
            return False
        if self._drain():
            return True
        try:
            st = os.stat(self.path)
        except OSError:
            return False  # renamed away and not yet recreated: keep the old handle, it may still grow
        if (st.st_dev, st.st_ino) != self._ino:
            while self._drain():  # the rotated file gets no more writes: read it to its end
                pass
            self._flush_partial()
            self._fh.close()
            self._fh = None
            self.counts["rotations"] += 1
            return self._open(at_end=False) and self._drain()
        if st.st_size < self._fh.tell():
            self.counts["truncations"] += 1
            self._fh.seek(0)
            self._buf.clear()
            self._skipping = False
            return self._drain()
        return False

    def _drain(self) -> bool:
        """Read what is there, at most max_read bytes per call so stop() stays responsive behind
        a file that grows as fast as it is read. True when it stopped at that cap."""
        budget = self.max_read
        while budget > 0:
            if self._stop.is_set():
                return False
            try:
                chunk = self._fh.read(min(1 << 20, budget))
            except OSError:
                self.counts["read_errors"] += 1
                return False
            if not chunk:
                return False
            budget -= len(chunk)
            self._feed(chunk)
        return True

    def _feed(self, chunk: bytes) -> None:
        start = 0
        while True:
            nl = chunk.find(b"\n", start)
            if nl < 0:
                rest = chunk[start:]
                if self._skipping:
                    return
                if len(self._buf) + len(rest) > self.max_line:
                    self._buf.clear()
                    self._skipping = True
                    self.counts["malformed"] += 1
                    return
                self._buf += rest
                return
            piece = chunk[start:nl]
            start = nl + 1
            if self._skipping:
                self._skipping = False
                continue
            if self._buf:
                self._buf += piece
                line = bytes(self._buf)
                self._buf.clear()
            else:
                line = piece
            self._line(line)

    def _flush_partial(self) -> None:
        # A rotated file's last line without a newline is complete: nobody will append to it.
        if self._buf and not self._skipping:
            line = bytes(self._buf)
            self._buf.clear()
            self._line(line)

    def _line(self, line: bytes) -> None:
        line = line.strip()
        if not line:
            return
        self.counts["lines"] += 1
        if len(line) > self.max_line:
            self.counts["malformed"] += 1
            return
        events = decode_events(line, self.max_line)
        if events is None:
            self.counts["malformed"] += 1
            return
        for ev in events:
            self.counts["events"] += 1
            if not self.emit(ev):
                self.counts["dropped"] += 1

