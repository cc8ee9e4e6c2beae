"""Behaviour baselines: learn what each workload normally does, then alert on anything else.

A workload is a Kubernetes owner (``k8s:NS/NAME``) when the event names one, else an image
repository (``image:REPO``), else a container (``container:ID``), else ``host``. For each one, a
learning window (starting at its first event, measured on event time) records executables,
parent→child exec pairs, outbound destinations and files written below sensitive directories.
After the window — or at once when the baseline is locked — events outside it raise Alerts in
Falco's JSON shape. One JSON file per workload, written atomically; ``schema`` is versioned.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import json
import os
import re
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any

from hullguard.fileio import read_bounded
from hullguard.model import HullguardError
from hullguard.runtime.engine import PRIORITY_LABEL, Alert, _time_of

SCHEMA = 1
MAX_ENTRIES = 5000  # per kind per workload: a noisy workload stops learning rather than grow without bound
MAX_WORKLOADS = 10_000
MAX_FILE_BYTES = 8 << 20
SENSITIVE_DIRS = ("/etc/", "/bin/", "/sbin/", "/usr/bin/", "/usr/sbin/", "/usr/local/bin/", "/lib/", "/lib64/",
                  "/usr/lib/", "/root/", "/boot/", "/var/spool/cron/", "/var/lib/dpkg/", "/var/lib/rpm/")
EXEC_TYPES = frozenset({"execve", "execveat"})
CONNECT_TYPES = frozenset({"connect", "sendto", "sendmsg"})
OPEN_TYPES = frozenset({"open", "openat", "openat2", "creat"})
WRITE_TYPES = frozenset({"rename", "renameat", "renameat2", "unlink", "unlinkat", "mkdir", "mkdirat",
                         "chmod", "fchmodat", "symlink", "symlinkat", "link", "linkat"})
KINDS = ("processes", "exec_pairs", "connections", "files_written")
RULES = {
    "processes": "Unexpected process in workload",
    "exec_pairs": "Unexpected process spawn in workload",
    "connections": "Unexpected outbound connection from workload",
    "files_written": "Unexpected write below sensitive directory in workload",
}
OWNER_FIELDS = ("k8s.deployment.name", "k8s.statefulset.name", "k8s.daemonset.name", "k8s.job.name",
                "k8s.cronjob.name", "k8s.rs.name", "k8s.rc.name", "k8s.owner.name")
_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def workload_key(ev: dict[str, Any]) -> str:
    ns = ev.get("k8s.ns.name")
    for f in OWNER_FIELDS:
        owner = ev.get(f)
        if isinstance(owner, str) and owner:
            return f"k8s:{ns or 'default'}/{owner}"
    repo = ev.get("container.image.repository")
    if isinstance(repo, str) and repo:
        return f"image:{repo}"
    cid = ev.get("container.id")
    if isinstance(cid, str) and cid and cid != "host":
        return f"container:{cid}"
    return "host"


def file_name(workload: str) -> str:
    # Readable yet collision-free: two workloads that sanitise alike differ by their hash.
    digest = hashlib.sha256(workload.encode()).hexdigest()[:10]
    return f"{_SAFE.sub('_', workload)[:80]}-{digest}.json"


MAX_VALUE = 4096  # longer paths/names are hostile or broken input; they are not learned or compared


def _str(v: Any) -> str | None:
    return v if isinstance(v, str) and v and v != "<NA>" and len(v) <= MAX_VALUE else None


def _flag_write(ev: dict[str, Any]) -> bool:
    w = ev.get("evt.is_open_write")
    if w in (True, "true", 1):
        return True
    flags = ev.get("evt.arg.flags")
    return isinstance(flags, str) and any(f in flags for f in ("O_WRONLY", "O_RDWR", "O_CREAT", "O_TRUNC"))


def facts(ev: dict[str, Any]) -> dict[str, str]:
    """What one event contributes to a baseline, by kind."""
    out: dict[str, str] = {}
    etype = ev.get("evt.type")
    if etype in EXEC_TYPES and ev.get("evt.dir", "<") == "<":
        exe = _str(ev.get("proc.exe")) or _str(ev.get("proc.exepath")) or _str(ev.get("proc.name"))
        if exe:
            out["processes"] = exe
            parent = _str(ev.get("proc.pname"))
            child = _str(ev.get("proc.name")) or exe.rsplit("/", 1)[-1]
            if parent:
                out["exec_pairs"] = f"{parent}->{child}"
    elif etype in CONNECT_TYPES:
        ip = _str(str(ev.get("fd.dip") or ev.get("fd.rip") or ""))
        port = ev.get("fd.dport") if ev.get("fd.dport") is not None else ev.get("fd.rport")
        if ip and port is not None and ip not in ("0.0.0.0", "::") and ev.get("fd.typechar") in (None, "4", "6"):
            out["connections"] = f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"
    elif etype in OPEN_TYPES or etype in WRITE_TYPES:
        path = _str(ev.get("fd.name")) or _str(ev.get("evt.arg.path")) or _str(ev.get("fs.path.name"))
        if path and (etype in WRITE_TYPES or _flag_write(ev)) and path.startswith(SENSITIVE_DIRS):
            out["files_written"] = path
    return out


@dataclass
class Workload:
    name: str
    created: float = field(default_factory=time.time)
    learn_seconds: float = 0.0
    learn_started: float | None = None  # event time (s) of the first event seen while learning
    locked: bool = False
    entries: dict[str, set[str]] = field(default_factory=lambda: {k: set() for k in KINDS})
    allowed: dict[str, set[str]] = field(default_factory=lambda: {k: set() for k in KINDS})
    truncated: bool = False
    events: int = 0

    def mode(self, at: float | None = None) -> str:
        """locked, learning or enforcing at event time ``at`` (default: now)."""
        if self.locked:
            return "locked"
        if self.learn_started is None:
            return "learning"
        now = time.time() if at is None else at
        return "learning" if now < self.learn_started + self.learn_seconds else "enforcing"

    def knows(self, kind: str, value: str) -> bool:
        if value in self.entries[kind] or value in self.allowed[kind]:
            return True
        return kind == "connections" and any(_connect_match(p, value) for p in self.allowed[kind])

    def learn(self, kind: str, value: str) -> None:
        bucket = self.entries[kind]
        if value not in bucket:
            if len(bucket) >= MAX_ENTRIES:
                self.truncated = True
                return
            bucket.add(value)

    def to_dict(self) -> dict[str, Any]:
        return {"schema": SCHEMA, "workload": self.name, "created": self.created,
                "learn_seconds": self.learn_seconds, "learn_started": self.learn_started, "locked": self.locked,
                "mode": self.mode(), "truncated": self.truncated, "events": self.events,
                **{k: sorted(self.entries[k]) for k in KINDS},
                "allowed": {k: sorted(self.allowed[k]) for k in KINDS}}

    @classmethod
    def from_dict(cls, d: Any, where: str) -> Workload:
        if not isinstance(d, dict) or d.get("schema") != SCHEMA or not isinstance(d.get("workload"), str):
            raise HullguardError(f"{where}: not a hullguard baseline (schema {SCHEMA})")
        try:
            w = cls(name=d["workload"], created=float(d.get("created") or 0),
                    learn_seconds=float(d.get("learn_seconds") or 0),
                    learn_started=None if d.get("learn_started") is None else float(d["learn_started"]),
                    locked=bool(d.get("locked")), truncated=bool(d.get("truncated")), events=int(d.get("events") or 0))
            allowed = d.get("allowed") or {}
            for k in KINDS:
                w.entries[k] = {str(x) for x in (d.get(k) or [])[:MAX_ENTRIES]}
                w.allowed[k] = {str(x) for x in (allowed.get(k) or [])[:MAX_ENTRIES]}
        except (TypeError, ValueError, AttributeError) as exc:
            raise HullguardError(f"{where}: malformed baseline: {exc}") from None
        return w


def _connect_match(pattern: str, value: str) -> bool:
    """``pattern`` is HOST:PORT where HOST may be an address, a CIDR or ``*`` and PORT a number or ``*``."""
    ph, _, pp = pattern.rpartition(":")
    vh, _, vp = value.rpartition(":")
    if pp not in ("*", vp):
        return False
    ph, vh = ph.strip("[]"), vh.strip("[]")
    if ph in ("*", vh):
        return True
    try:
        return ipaddress.ip_address(vh) in ipaddress.ip_network(ph, strict=False)
    except ValueError:
        return False


def parse_connect(text: str) -> str:
    """Validate ``allow --connect``: HOST:PORT with HOST an IP, CIDR or *, PORT 1-65535 or *."""
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host:
        raise HullguardError(f"--connect wants HOST:PORT (HOST an address, CIDR or *; PORT a number or *): {text!r}")
    if port != "*" and not (port.isdigit() and 0 < int(port) < 65536):
        raise HullguardError(f"bad port in {text!r}")
    if host != "*":
        try:
            net = ipaddress.ip_network(host, strict=False)
        except ValueError:
            raise HullguardError(f"bad address or CIDR in {text!r}") from None
        host = str(net.network_address) if net.num_addresses == 1 else str(net)
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class BaselineStore:
    """Baselines of every workload, kept in memory and saved to one JSON file each under ``path``.

    ``observe(ev)`` learns while the workload's window is open and returns deviation Alerts once it
    has closed; ``check(ev)`` only compares; ``save()`` writes the workloads that changed.
    """

    def __init__(self, path: str, *, learn_seconds: float, priority: str = "warning",
                 hostname: str | None = None, create: bool = True) -> None:
        if priority.lower() not in PRIORITY_LABEL:
            raise HullguardError(f"unknown priority {priority!r}")
        self.path = path
        self.learn_seconds = max(0.0, float(learn_seconds))
        self.priority = PRIORITY_LABEL[priority.lower()]
        self.hostname = hostname
        self.workloads: dict[str, Workload] = {}
        self.dirty: set[str] = set()
        self.skipped_workloads = 0
        if create:
            try:
                os.makedirs(path, mode=0o700, exist_ok=True)
            except OSError as exc:
                raise HullguardError(f"cannot create baseline directory {path}: {exc.strerror or exc}") from None
        self.reload()

    def reload(self) -> None:
        try:
            names = sorted(os.listdir(self.path))
        except FileNotFoundError:
            names = []
        except OSError as exc:
            raise HullguardError(f"cannot read baseline directory {self.path}: {exc.strerror or exc}") from None
        loaded: dict[str, Workload] = {}
        for n in names:
            if not n.endswith(".json") or n.startswith("."):
                continue
            full = os.path.join(self.path, n)
            raw = read_bounded(full, MAX_FILE_BYTES)
            try:
                doc = json.loads(raw)
            except ValueError as exc:
                raise HullguardError(f"{full}: not valid JSON: {exc}") from None
            w = Workload.from_dict(doc, full)
            loaded[w.name] = w
        self.workloads = loaded
        self.dirty.clear()

    def get(self, name: str) -> Workload:
        w = self.workloads.get(name)
        if w is None:
            raise HullguardError(f"no baseline for workload {name!r} (see `hullguard runtime baseline list`)")
        return w

    def _workload(self, name: str) -> Workload | None:
        w = self.workloads.get(name)
        if w is None:
            if len(self.workloads) >= MAX_WORKLOADS:
                self.skipped_workloads += 1
                return None
            w = self.workloads[name] = Workload(name=name, learn_seconds=self.learn_seconds)
            self.dirty.add(name)
        return w

    def observe(self, ev: dict[str, Any], *, force_learn: bool = False) -> list[Alert]:
        found = facts(ev)
        if not found:
            return []
        w = self._workload(workload_key(ev))
        if w is None:
            return []
        _iso, ns = _time_of(ev)
        at = ns / 1e9
        if not w.locked and w.learn_started is None:
            w.learn_started = at
            self.dirty.add(w.name)
        w.events += 1
        if force_learn or w.mode(at) == "learning":
            for kind, value in found.items():
                if not w.knows(kind, value):
                    w.learn(kind, value)
                    self.dirty.add(w.name)
            return []
        return self._deviations(w, found, ev)

    def check(self, ev: dict[str, Any]) -> list[Alert]:
        """Deviations of one event from the stored baseline, learning nothing (unknown workloads pass)."""
        found = facts(ev)
        w = self.workloads.get(workload_key(ev)) if found else None
        return self._deviations(w, found, ev) if w is not None else []

    def _deviations(self, w: Workload, found: dict[str, str], ev: dict[str, Any]) -> list[Alert]:
        alerts = []
        for kind, value in found.items():
            if not w.knows(kind, value):
                alerts.append(self._alert(w, kind, value, ev))
        return alerts

    def _alert(self, w: Workload, kind: str, value: str, ev: dict[str, Any]) -> Alert:
        iso, ns = _time_of(ev)
        keys = ("proc.name", "proc.exe", "proc.cmdline", "proc.pname", "proc.pid", "user.name", "fd.name",
                "fd.dip", "fd.dport", "container.id", "container.name", "container.image.repository",
                "k8s.ns.name", "k8s.pod.name", "evt.type")
        fields: dict[str, Any] = {k: ev[k] for k in keys if ev.get(k) is not None}
        fields["hullguard.workload"] = w.name
        fields["hullguard.baseline.kind"] = kind
        fields["hullguard.baseline.value"] = value
        what = {"processes": f"executable {value}", "exec_pairs": f"spawn {value}",
                "connections": f"connection to {value}", "files_written": f"write to {value}"}[kind]
        ctx = " ".join(f"{k}={fields[k]}" for k in ("proc.cmdline", "container.id", "k8s.ns.name", "k8s.pod.name")
                       if k in fields)
        text = f"{RULES[kind]} (workload={w.name} {what} mode={w.mode(ns / 1e9)}{' ' + ctx if ctx else ''})"
        return Alert(time=iso, rule=RULES[kind], priority=self.priority, source="syscall",
                     output=f"{iso[11:29]}: {self.priority} {text}", output_fields=fields,
                     tags=["baseline", "hullguard", kind], hostname=str(ev.get("_hostname") or self.hostname
                                                                        or os.uname().nodename))

    def allow(self, name: str, kind: str, value: str) -> None:
        w = self.get(name)
        w.allowed[kind].add(value)
        self.dirty.add(name)

    def set_locked(self, name: str, locked: bool, *, learn_seconds: float | None = None) -> None:
        w = self.get(name)
        w.locked = locked
        if not locked:
            # Unlocking reopens learning: the window restarts at the workload's next event.
            w.learn_started = None
            if learn_seconds is not None:
                w.learn_seconds = max(0.0, learn_seconds)
        self.dirty.add(name)

    def save(self) -> list[str]:
        """Write every changed workload atomically; the paths written."""
        written = []
        for name in sorted(self.dirty):
            w = self.workloads.get(name)
            if w is None:
                continue
            dest = os.path.join(self.path, file_name(name))
            fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".json", dir=self.path)
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as fh:
                    json.dump(w.to_dict(), fh, indent=1)
                    fh.flush()
                    os.fsync(fh.fileno())
                os.replace(tmp, dest)
            except OSError as exc:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise HullguardError(f"cannot write {dest}: {exc.strerror or exc}") from None
            written.append(dest)
        self.dirty.clear()
        return written
