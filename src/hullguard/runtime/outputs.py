"""Where alerts go: stdout, JSON lines, files, webhooks (Falco JSON or Slack), syslog (RFC 5424).

    outputs = OutputSet([parse_output_spec("json"), parse_output_spec("webhook:http://127.0.0.1:2801/")],
                        dedupe_seconds=60, rate_per_rule=5)
    for alert in engine.process(ev):
        outputs.emit(alert)
    outputs.close()

``emit`` never blocks on the network: webhook-like sinks hand alerts to a background thread through
a bounded queue and count what they had to drop. De-duplication and per-rule rate limiting happen
once in the OutputSet, before any sink sees the alert; what they suppress is reported as an
"Alerts suppressed" summary alert when the rule next gets through and when the set is closed.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import os
import queue
import re
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol, TextIO
from urllib.parse import urlsplit

import msgspec

from hullguard.model import HullguardError
from hullguard.runtime.engine import PRIORITY_LABEL, Alert

SYSLOG_SEVERITY = {"emergency": 0, "alert": 1, "critical": 2, "error": 3, "warning": 4, "notice": 5,
                   "informational": 6, "debug": 7}
_PRIORITY_ALIASES = {"info": "informational", "warn": "warning", "err": "error", "crit": "critical",
                     "emerg": "emergency"}
SLACK_COLOR = {0: "#9b0000", 1: "#9b0000", 2: "#d00000", 3: "#e01e5a", 4: "#ecb22e", 5: "#2eb67d",
               6: "#36c5f0", 7: "#aaaaaa"}
MAX_QUEUE = 10_000
MAX_SYSLOG_BYTES = 8192  # larger datagrams are truncated: UDP receivers commonly cap near here
MAX_SLACK_FIELDS = 20
MAX_DEDUPE_KEYS = 65_536
_CLOCK_PREFIX = re.compile(r"^\d\d:\d\d:\d\d\.\d+: [A-Za-z]+ ")
SUPPRESSED_RULE = "Alerts suppressed"


def priority_key(priority: str) -> str:
    p = str(priority).strip().lower()
    return _PRIORITY_ALIASES.get(p, p)


def severity_of(priority: str) -> int:
    """Syslog severity (RFC 5424 table 2) for a Falco priority; unknown priorities count as notice."""
    return SYSLOG_SEVERITY.get(priority_key(priority), 5)


_encoder = msgspec.json.Encoder(enc_hook=str)  # unknown value types (from hostile events) become strings


def encode(alert: dict[str, Any]) -> bytes:
    return _encoder.encode(alert)


def alert_dict(alert: Alert | dict[str, Any]) -> dict[str, Any]:
    return alert.to_dict() if isinstance(alert, Alert) else dict(alert)


def bare_output(d: dict[str, Any]) -> str:
    """The alert text without the "HH:MM:SS.ns: Priority " prefix the engine puts in front."""
    return _CLOCK_PREFIX.sub("", str(d.get("output", "")), count=1)


class Sink(Protocol):
    name: str

    def emit(self, alert: dict[str, Any]) -> None: ...

    def close(self) -> None: ...


@dataclass
class _Counters:
    sent: int = 0
    dropped: int = 0
    failed: int = 0
    retries: int = 0


class StreamSink:
    """Human lines ("time priority output [rule]") or JSON lines on a text stream (stdout)."""

    def __init__(self, stream: TextIO | None = None, *, fmt: str = "human") -> None:
        self.stream = stream
        self.fmt = fmt
        self.name = "json" if fmt == "json" else "stdout"
        self.counters = _Counters()

    def emit(self, alert: dict[str, Any]) -> None:
        out = self.stream or sys.stdout
        if self.fmt == "json":
            out.write(encode(alert).decode() + "\n")
        else:
            out.write(f"{alert.get('time', '')} {alert.get('priority', '')} {bare_output(alert)} "
                      f"[{alert.get('rule', '')}]\n")
        out.flush()
        self.counters.sent += 1

    def close(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            (self.stream or sys.stdout).flush()


class FileSink:
    """JSON lines appended to a file, reopened on ``reopen()`` (wire it to SIGHUP) and whenever the
    path no longer names the file we hold open (logrotate moved or deleted it)."""

    def __init__(self, path: str) -> None:
        if not path:
            raise HullguardError("file output needs a path: file:PATH")
        self.path = path
        self.name = f"file:{path}"
        self.counters = _Counters()
        self._lock = threading.Lock()
        self._fd = -1
        self._ident: tuple[int, int] | None = None
        self._open()

    def _open(self) -> None:
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise HullguardError(f"cannot open alert file {self.path}: {exc.strerror or exc}") from None
        st = os.fstat(fd)
        self._fd, self._ident = fd, (st.st_dev, st.st_ino)

    def reopen(self) -> None:
        with self._lock:
            self._close_fd()
            self._open()

    def _rotated(self) -> bool:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return True
        return (st.st_dev, st.st_ino) != self._ident

    def _close_fd(self) -> None:
        if self._fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self._fd)
        self._fd = -1

    def emit(self, alert: dict[str, Any]) -> None:
        data = encode(alert) + b"\n"
        with self._lock:
            if self._fd < 0 or self._rotated():
                self._close_fd()
                self._open()
            try:
                # One write per line: O_APPEND keeps lines whole even with other writers.
                os.write(self._fd, data)
                self.counters.sent += 1
            except OSError:
                self.counters.failed += 1

    def close(self) -> None:
        with self._lock:
            self._close_fd()


class _QueuedSink:
    """Delivery on a background thread through a bounded queue, so detection never waits on I/O."""

    def __init__(self, name: str, *, max_queue: int = MAX_QUEUE) -> None:
        self.name = name
        self.counters = _Counters()
        self._q: queue.Queue[dict[str, Any] | None] = queue.Queue(maxsize=max_queue)
        self._closing = threading.Event()
        self._deadline = float("inf")
        self._thread = threading.Thread(target=self._run, name=f"hullguard-{name[:20]}", daemon=True)
        self._thread.start()

    def emit(self, alert: dict[str, Any]) -> None:
        try:
            self._q.put_nowait(alert)
        except queue.Full:
            self.counters.dropped += 1

    def _run(self) -> None:
        while True:
            item = self._q.get()
            if item is None:
                return
            if self._closing.is_set() and time.monotonic() > self._deadline:
                self.counters.dropped += 1  # shutdown is bounded: what is left after the deadline is lost
                continue
            try:
                self.deliver(item)
            except Exception:  # one bad delivery must not kill the sender thread
                self.counters.failed += 1

    def deliver(self, alert: dict[str, Any]) -> None:
        raise NotImplementedError

    def close(self, timeout: float = 10.0) -> None:
        self._deadline = time.monotonic() + timeout
        self._closing.set()
        with contextlib.suppress(queue.Full):
            self._q.put(None, timeout=timeout)
        self._thread.join(max(0.0, self._deadline - time.monotonic()) + 1.0)


class WebhookSink(_QueuedSink):
    """POSTs each alert as Falco JSON (or a Slack message with ``slack=True``).

    Connection errors, 429 and 5xx are retried with exponential backoff (``backoff``, doubled per
    try, capped at 30 s); other 4xx are final. While closing, retries stop waiting so shutdown is
    bounded.
    """

    def __init__(self, url: str, *, slack: bool = False, retries: int = 4, backoff: float = 0.5,
                 timeout: float = 5.0, max_queue: int = MAX_QUEUE, headers: dict[str, str] | None = None) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise HullguardError(f"webhook URL must be http:// or https:// with a host: {url!r}")
        import httpx

        self.url = url
        self.slack = slack
        self.retries = max(0, retries)
        self.backoff = max(0.0, backoff)
        self._client = httpx.Client(timeout=timeout, headers={"User-Agent": "hullguard", **(headers or {})})
        super().__init__(("slack:" if slack else "webhook:") + _redact_url(url), max_queue=max_queue)

    def deliver(self, alert: dict[str, Any]) -> None:
        import httpx

        body = slack_payload(alert) if self.slack else alert
        data = encode(body)
        delay = self.backoff
        for attempt in range(self.retries + 1):
            try:
                r = self._client.post(self.url, content=data, headers={"Content-Type": "application/json"})
                if r.status_code < 300:
                    self.counters.sent += 1
                    return
                if r.status_code < 500 and r.status_code != 429:
                    break
            except httpx.HTTPError:
                pass
            if attempt == self.retries:
                break
            self.counters.retries += 1
            if self._closing.wait(min(delay, 30.0)):
                delay = 0.0  # shutting down: still try the remaining attempts, but without waiting
            delay *= 2
        self.counters.failed += 1

    def close(self, timeout: float = 10.0) -> None:
        super().close(timeout)
        self._client.close()


def _redact_url(url: str) -> str:
    # Slack and most webhook services put the credential in the path; never print it.
    p = urlsplit(url)
    return f"{p.scheme}://{p.hostname}{':' + str(p.port) if p.port else ''}/…" if p.path not in ("", "/") \
        else f"{p.scheme}://{p.hostname}{':' + str(p.port) if p.port else ''}/"


def slack_payload(alert: dict[str, Any]) -> dict[str, Any]:
    """A Slack incoming-webhook message: ``text`` for notifications, an attachment with the rule,
    priority and output fields (coloured by severity), and the same in Block Kit form."""
    rule = str(alert.get("rule", ""))
    prio = str(alert.get("priority", ""))
    text = bare_output(alert)
    fields = [{"title": "rule", "value": rule, "short": True}, {"title": "priority", "value": prio, "short": True},
              {"title": "time", "value": str(alert.get("time", "")), "short": True},
              {"title": "source", "value": str(alert.get("source", "")), "short": True}]
    of = alert.get("output_fields") or {}
    for k, v in list(of.items())[:MAX_SLACK_FIELDS]:
        fields.append({"title": str(k), "value": str(v)[:500], "short": len(str(v)) < 40})
    color = SLACK_COLOR.get(severity_of(prio), "#aaaaaa")
    summary = f"[{prio}] {rule}: {text}"[:3000]
    block_fields = [{"type": "mrkdwn", "text": f"*{f['title']}*\n{f['value']}"[:2000]} for f in fields[:10]]
    return {
        "text": summary,
        "attachments": [{"fallback": summary, "color": color, "title": rule, "text": text[:3000],
                         "fields": fields, "footer": "hullguard", "ts": int(time.time())}],
        "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": f"*{prio}* {rule}\n{text}"[:3000]}},
                   {"type": "section", "fields": block_fields}],
    }


class SyslogSink:
    """RFC 5424 messages over UDP (RFC 5426: one message per datagram) or a local unix socket."""

    def __init__(self, *, host: str | None = None, port: int = 514, unix: str | None = None,
                 facility: int = 1, app: str = "hullguard") -> None:
        if not 0 <= facility <= 23:
            raise HullguardError(f"syslog facility must be 0-23, got {facility}")
        self.facility, self.app = facility, app
        self.hostname = socket.gethostname()[:255] or "-"
        self.counters = _Counters()
        self._lock = threading.Lock()
        self.unix = unix
        if unix:
            self.name = f"syslog:unix:{unix}"
            self._addr: Any = unix
            self._sock = self._unix_socket(unix)
        else:
            host = host or "127.0.0.1"
            self.name = f"syslog:{host}:{port}"
            try:
                info = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)[0]
            except socket.gaierror as exc:
                raise HullguardError(f"syslog host {host!r}: {exc.strerror}") from None
            self._addr = info[4]
            self._sock = socket.socket(info[0], socket.SOCK_DGRAM)

    @staticmethod
    def _unix_socket(path: str) -> socket.socket:
        for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
            s = socket.socket(socket.AF_UNIX, kind)
            try:
                s.connect(path)
                return s
            except OSError as exc:
                s.close()
                if exc.errno != errno.EPROTOTYPE:
                    raise HullguardError(f"cannot connect to syslog socket {path}: {exc.strerror or exc}") from None
        raise HullguardError(f"cannot connect to syslog socket {path}")

    def format(self, alert: dict[str, Any]) -> bytes:
        pri = self.facility * 8 + severity_of(str(alert.get("priority", "")))
        ts = str(alert.get("time") or "") or datetime.now(UTC).isoformat().replace("+00:00", "Z")
        # RFC 5424 TIME-SECFRAC allows at most six digits.
        m = re.match(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)?$", ts)
        ts = (m.group(1) + (m.group(2) or "")[:7] + (m.group(3) or "Z")) if m else "-"
        host = _sd_name(str(alert.get("hostname") or self.hostname), 255)
        sd = (f'[hullguard@32473 rule="{_sd_escape(alert.get("rule", ""))}" '
              f'priority="{_sd_escape(alert.get("priority", ""))}" source="{_sd_escape(alert.get("source", ""))}"]')
        head = f"<{pri}>1 {ts} {host} {self.app} {os.getpid()} alert {sd} "
        msg = head.encode() + b"\xef\xbb\xbf" + bare_output(alert).encode("utf-8", "replace")
        return msg[:MAX_SYSLOG_BYTES]

    def emit(self, alert: dict[str, Any]) -> None:
        data = self.format(alert)
        with self._lock:
            try:
                if self.unix:
                    if self._sock.type == socket.SOCK_STREAM:
                        # Octet-counting framing (RFC 6587) so the receiver can split messages.
                        self._sock.sendall(f"{len(data)} ".encode() + data)
                    else:
                        self._sock.send(data)
                else:
                    self._sock.sendto(data, self._addr)
                self.counters.sent += 1
            except OSError:
                self.counters.failed += 1

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.close()


def _sd_escape(v: Any) -> str:
    return str(v).replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")


def _sd_name(v: str, limit: int) -> str:
    # HOSTNAME and APP-NAME are PRINTUSASCII without spaces.
    clean = "".join(c for c in v if 33 <= ord(c) <= 126)[:limit]
    return clean or "-"


def parse_output_spec(spec: str, *, retries: int = 4, backoff: float = 0.5) -> Sink:
    """One sink from its spec: ``stdout``, ``json``, ``file:PATH``, ``webhook:URL``, ``slack:URL``,
    ``syslog``, ``syslog:HOST[:PORT]``, ``syslog:[V6ADDR]:PORT``, ``syslog:unix:PATH``. ``retries``
    and ``backoff`` (seconds, doubled per try) apply to webhook and slack outputs."""
    if not isinstance(spec, str) or not spec.strip():
        raise HullguardError("empty output spec")
    spec = spec.strip()
    kind, _, rest = spec.partition(":")
    kind = kind.lower()
    if kind == "stdout" and not rest:
        return StreamSink(fmt="human")
    if kind == "json" and not rest:
        return StreamSink(fmt="json")
    if kind == "file":
        return FileSink(rest)
    if kind in ("webhook", "slack"):
        return WebhookSink(rest, slack=kind == "slack", retries=retries, backoff=backoff)
    if kind == "syslog":
        if not rest:
            if os.path.exists("/dev/log"):
                return SyslogSink(unix="/dev/log")
            return SyslogSink(host="127.0.0.1", port=514)
        if rest.startswith("unix:"):
            return SyslogSink(unix=rest[5:] or "/dev/log")
        host, port = _host_port(rest, 514)
        return SyslogSink(host=host, port=port)
    raise HullguardError(f"unknown output {spec!r} (stdout, json, file:PATH, webhook:URL, slack:URL, "
                         "syslog[:HOST[:PORT]], syslog:unix:PATH)")


def _host_port(text: str, default: int) -> tuple[str, int]:
    if text.startswith("["):
        host, _, tail = text[1:].partition("]")
        port_s = tail[1:] if tail.startswith(":") else ""
    elif text.count(":") > 1:
        host, port_s = text, ""  # a bare IPv6 address
    else:
        host, _, port_s = text.partition(":")
    try:
        port = int(port_s) if port_s else default
    except ValueError:
        raise HullguardError(f"bad port in {text!r}") from None
    if not 0 < port < 65536 or not host:
        raise HullguardError(f"bad host or port in {text!r}")
    with contextlib.suppress(ValueError):
        host = str(ipaddress.ip_address(host))
    return host, port


@dataclass
class _Bucket:
    tokens: float
    stamp: float


@dataclass
class OutputStats:
    emitted: int = 0
    duplicates: int = 0
    rate_limited: int = 0
    sink_errors: int = 0
    pending: dict[str, dict[str, int]] = field(default_factory=dict)


class OutputSet:
    """Fan alerts out to sinks after de-duplication and a per-rule token bucket.

    ``dedupe_seconds``: an alert with the same rule and the same output text (ignoring the time
    prefix) as one emitted less than this long ago is suppressed. ``rate_per_rule``: tokens per
    second per rule, bursts up to ``burst`` (default: max(1, rate)). 0 disables either.
    """

    def __init__(self, sinks: Iterable[Sink], *, dedupe_seconds: float = 0, rate_per_rule: float = 0,
                 burst: float | None = None, clock: Callable[[], float] = time.monotonic,
                 hostname: str | None = None) -> None:
        self.sinks = list(sinks)
        self.dedupe_seconds = max(0.0, float(dedupe_seconds))
        self.rate = max(0.0, float(rate_per_rule))
        self.burst = float(burst) if burst else max(1.0, self.rate)
        self.clock = clock
        self.hostname = hostname or socket.gethostname()
        self.stats = OutputStats()
        self._seen: dict[tuple[str, str], float] = {}
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()
        self._closed = False

    @classmethod
    def from_config(cls, path: str) -> OutputSet:
        """An OutputSet from a YAML file: ``outputs: [spec, ...]``, ``dedupe_seconds``, ``rate_per_rule``,
        ``burst``, and ``retries``/``backoff`` for webhooks."""
        import yaml

        try:
            with open(path, "rb") as fh:
                doc = yaml.load(fh.read(1 << 20), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
        except OSError as exc:
            raise HullguardError(f"cannot read outputs config {path}: {exc.strerror or exc}") from None
        except yaml.YAMLError as exc:
            raise HullguardError(f"{path}: not valid YAML: {exc}") from None
        if not isinstance(doc, dict) or not isinstance(doc.get("outputs"), list) or not doc["outputs"]:
            raise HullguardError(f"{path}: expected a mapping with a non-empty 'outputs' list")
        try:
            dedupe = float(doc.get("dedupe_seconds") or 0)
            rate = float(doc.get("rate_per_rule") or 0)
            burst = float(doc["burst"]) if doc.get("burst") else None
            retries = int(doc.get("retries", 4))
            backoff = float(doc.get("backoff", 0.5))
        except (TypeError, ValueError):
            raise HullguardError(f"{path}: dedupe_seconds, rate_per_rule, burst, retries and backoff must be "
                                 "numbers") from None
        sinks = [parse_output_spec(str(s), retries=retries, backoff=backoff) for s in doc["outputs"]]
        return cls(sinks, dedupe_seconds=dedupe, rate_per_rule=rate, burst=burst)

    def emit(self, alert: Alert | dict[str, Any]) -> bool:
        """Send one alert to every sink unless suppressed; True when it was sent."""
        d = alert_dict(alert)
        rule = str(d.get("rule", ""))
        now = self.clock()
        with self._lock:
            if self._closed:
                return False
            if self.dedupe_seconds:
                key = (rule, bare_output(d))
                last = self._seen.get(key)
                if last is not None and now - last < self.dedupe_seconds:
                    self.stats.duplicates += 1
                    self._pend(rule, "duplicate")
                    return False
                if len(self._seen) >= MAX_DEDUPE_KEYS:
                    self._seen = {k: t for k, t in self._seen.items() if now - t < self.dedupe_seconds}
                    if len(self._seen) >= MAX_DEDUPE_KEYS:
                        self._seen.clear()
                self._seen[key] = now
            if self.rate and not self._take(rule, now):
                self.stats.rate_limited += 1
                self._pend(rule, "rate_limited")
                return False
            summary = self._summary(rule) if rule in self.stats.pending else None
        if summary is not None:
            self._fanout(summary)
        self._fanout(d)
        self.stats.emitted += 1
        return True

    def _take(self, rule: str, now: float) -> bool:
        b = self._buckets.get(rule)
        if b is None:
            if len(self._buckets) >= MAX_DEDUPE_KEYS:
                self._buckets.clear()
            b = self._buckets[rule] = _Bucket(self.burst, now)
        b.tokens = min(self.burst, b.tokens + (now - b.stamp) * self.rate)
        b.stamp = now
        if b.tokens >= 1.0:
            b.tokens -= 1.0
            return True
        return False

    def _pend(self, rule: str, why: str) -> None:
        counts = self.stats.pending.setdefault(rule, {})
        counts[why] = counts.get(why, 0) + 1

    def _summary(self, rule: str) -> dict[str, Any]:
        counts = self.stats.pending.pop(rule, {})
        parts = ", ".join(f"{n} {why.replace('_', ' ')}" for why, n in sorted(counts.items()))
        now = datetime.now(UTC)
        stamp = now.strftime("%Y-%m-%dT%H:%M:%S.%f") + "000Z"
        total = sum(counts.values())
        return {"hostname": self.hostname,
                "output": f"{stamp[11:29]}: {PRIORITY_LABEL['informational']} {total} alerts of rule "
                          f"{rule!r} were suppressed ({parts})",
                "output_fields": {"hullguard.rule": rule, "hullguard.suppressed": total,
                                  **{f"hullguard.{k}": v for k, v in counts.items()}},
                "priority": PRIORITY_LABEL["informational"], "rule": SUPPRESSED_RULE, "source": "internal",
                "tags": ["hullguard"], "time": stamp}

    def _fanout(self, d: dict[str, Any]) -> None:
        for s in self.sinks:
            try:
                s.emit(d)
            except (OSError, ValueError, HullguardError):
                self.stats.sink_errors += 1

    def reopen(self) -> None:
        """Reopen file sinks (what SIGHUP does after log rotation)."""
        for s in self.sinks:
            if isinstance(s, FileSink):
                with contextlib.suppress(HullguardError):
                    s.reopen()

    def install_sighup(self) -> None:
        """Reopen file outputs on SIGHUP; only possible from the main thread."""
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGHUP, lambda _sig, _frm: self.reopen())

    def flush_suppressed(self) -> None:
        with self._lock:
            summaries = [self._summary(r) for r in list(self.stats.pending)]
        for s in summaries:
            self._fanout(s)

    def sink_counters(self) -> dict[str, dict[str, int]]:
        return {s.name: vars(getattr(s, "counters", _Counters())).copy() for s in self.sinks}

    def close(self) -> None:
        if self._closed:
            return
        self.flush_suppressed()
        with self._lock:
            self._closed = True
        for s in self.sinks:
            with contextlib.suppress(OSError, ValueError):
                s.close()
