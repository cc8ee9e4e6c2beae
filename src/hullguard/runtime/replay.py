"""Replay captured events through the engine: Kubernetes audit logs, Falco JSON, Tetragon export.

Each line is detected on its own, so one file may mix shapes. Everything is turned into the flat
event dict the engine reads (see fields.py): syscall fields by Falco name plus ``_source``, and
for audit events the raw Event under ``_k8s``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, TextIO

import msgspec

from hullguard.runtime.engine import Alert, Engine
from hullguard.runtime.fields import normalise_value

MAX_LINE = 4 * 1024 * 1024  # a single event larger than this is treated as malformed


@dataclass
class ReplayStats:
    lines: int = 0
    events: int = 0
    malformed: int = 0
    alerts: int = 0


_INPUT_PRIVATE_OK = ("_anc", "_apid")  # ancestry chains a flat event may carry


def _flat(fields: dict[str, Any], source: str) -> dict[str, Any]:
    # Keys starting with "_" are the engine's own bookkeeping; input may not forge them.
    ev = {k: normalise_value(v) for k, v in fields.items()
          if not (isinstance(k, str) and k.startswith("_")) or k in _INPUT_PRIVATE_OK}
    ev["_source"] = source
    return ev


def _audit(obj: dict[str, Any]) -> dict[str, Any]:
    return {"_source": "k8s_audit", "_k8s": obj,
            "evt.time": obj.get("stageTimestamp") or obj.get("requestReceivedTimestamp")}


def _tetragon_process(proc: dict[str, Any], parent: dict[str, Any] | None, ancestors: list[Any],
                      node: str | None) -> dict[str, Any]:
    binary = str(proc.get("binary") or "")
    args = str(proc.get("arguments") or "")
    name = binary.rsplit("/", 1)[-1]
    ev: dict[str, Any] = {
        "proc.name": name, "proc.exe": binary, "proc.exepath": binary, "proc.args": args,
        "proc.cmdline": f"{name} {args}".rstrip(), "proc.pid": proc.get("pid"), "proc.cwd": proc.get("cwd"),
        "user.uid": proc.get("uid"), "proc.tty": 0,
    }
    if proc.get("uid") == 0:
        ev["user.name"] = "root"
    anc: list[str] = []
    apid: list[Any] = []
    for p in ([parent] if parent else []) + [a for a in ancestors if isinstance(a, dict)]:
        anc.append(str(p.get("binary") or "").rsplit("/", 1)[-1])
        apid.append(p.get("pid"))
    if parent:
        ev["proc.pname"] = anc[0]
        ev["proc.ppid"] = parent.get("pid")
        ev["proc.pexe"] = parent.get("binary")
        ev["proc.pcmdline"] = f"{anc[0]} {parent.get('arguments') or ''}".rstrip()
    ev["_anc"], ev["_apid"] = anc, apid
    pod = proc.get("pod") or {}
    container = pod.get("container") or {}
    image = (container.get("image") or {}).get("name")
    cid = container.get("id") or proc.get("docker")
    if cid:
        cid = str(cid).split("://", 1)[-1]
        ev["container.id"] = cid[:12]
        ev["container.name"] = container.get("name")
    else:
        ev["container.id"], ev["container.name"] = "host", "host"
    if image:
        ev["container.image"] = image
        repo = image.split("@", 1)[0]
        slash, colon = repo.rfind("/"), repo.rfind(":")
        ev["container.image.repository"] = repo[:colon] if colon > slash else repo
        ev["container.image.tag"] = repo[colon + 1:] if colon > slash else "latest"
    if pod:
        ev["k8s.ns.name"] = pod.get("namespace")
        ev["k8s.pod.name"] = pod.get("name")
    if node:
        ev["_hostname"] = node
    return ev


def _tetragon(obj: dict[str, Any]) -> dict[str, Any] | None:
    node = obj.get("node_name")
    when = obj.get("time")
    for kind in ("process_exec", "process_exit", "process_kprobe", "process_tracepoint", "process_lsm"):
        body = obj.get(kind)
        if isinstance(body, dict):
            break
    else:
        return None
    proc = body.get("process") or {}
    if not isinstance(proc, dict):
        return None
    ev = _tetragon_process(proc, body.get("parent"), body.get("ancestors") or [], node)
    ev["_source"] = "syscall"
    ev["evt.time"] = when
    ev["evt.dir"] = "<"
    if kind == "process_exec":
        ev["evt.type"] = "execve"
    elif kind == "process_exit":
        ev["evt.type"] = "procexit"
    else:
        func = str(body.get("function_name") or body.get("event") or "")
        ev["evt.type"] = _kprobe_type(func)
        for arg in body.get("args") or []:
            if not isinstance(arg, dict):
                continue
            sock = arg.get("sock_arg")
            if isinstance(sock, dict):
                ev.update({"fd.sip": sock.get("saddr"), "fd.sport": sock.get("sport"), "fd.dip": sock.get("daddr"),
                           "fd.dport": sock.get("dport"), "fd.typechar": "4",
                           "fd.l4proto": str(sock.get("protocol", "")).replace("IPPROTO_", "").lower() or None,
                           "fd.sockfamily": "ip"})
            for key in ("file_arg", "path_arg"):
                f = arg.get(key)
                if isinstance(f, dict) and f.get("path"):
                    ev["fd.name"] = f["path"]
                    ev["fd.typechar"] = "f"
            if "int_arg" in arg and ev["evt.type"] == "openat":
                # security_file_permission's mask: MAY_WRITE (2) means a write.
                ev["evt.is_open_write"] = "true" if int(arg["int_arg"]) & 2 else "false"
                ev["evt.is_open_read"] = "true" if int(arg["int_arg"]) & 4 else "false"
    return ev


def _kprobe_type(func: str) -> str:
    f = func.lower()
    for needle, etype in (("connect", "connect"), ("accept", "accept"), ("bind", "bind"), ("listen", "listen"),
                          ("file_permission", "openat"), ("fd_install", "openat"), ("open", "openat"),
                          ("unlink", "unlinkat"), ("rename", "renameat2"), ("mount", "mount"),
                          ("setuid", "setuid"), ("ptrace", "ptrace"), ("write", "write"), ("read", "read")):
        if needle in f:
            return etype
    return f or "unknown"


def normalise(obj: Any) -> list[dict[str, Any]] | None:
    """The engine events in one decoded line, or None when the line is no event we know."""
    if not isinstance(obj, dict):
        return None
    api = obj.get("apiVersion")
    if isinstance(api, str) and api.startswith("audit.k8s.io/"):
        if obj.get("kind") == "EventList":
            return [_audit(i) for i in obj.get("items") or [] if isinstance(i, dict)]
        return [_audit(obj)] if obj.get("kind", "Event") == "Event" else None
    if isinstance(obj.get("output_fields"), dict):
        source = str(obj.get("source") or "syscall")
        ev = _flat(obj["output_fields"], source)
        ev.setdefault("evt.time", obj.get("time"))
        if obj.get("hostname"):
            ev["_hostname"] = obj["hostname"]
        return [ev]
    tet = _tetragon(obj)
    if tet is not None:
        return [tet]
    if any(isinstance(k, str) and (k.startswith(("evt.", "proc.", "fd."))) for k in obj):
        return [_flat(obj, str(obj.get("evt.source") or "syscall"))]
    return None


_decoder = msgspec.json.Decoder()


def iter_events(lines: Iterable[bytes | str], stats: ReplayStats) -> Iterator[dict[str, Any]]:
    for raw in lines:
        stats.lines += 1
        line = raw.strip()
        if not line:
            continue
        if len(line) > MAX_LINE:
            stats.malformed += 1
            continue
        try:
            evs = normalise(_decoder.decode(line))
        except (msgspec.DecodeError, ValueError, TypeError, AttributeError):
            evs = None
        if evs is None:
            stats.malformed += 1
            continue
        for ev in evs:
            stats.events += 1
            yield ev


def replay(engine: Engine, lines: Iterable[bytes | str], out: TextIO | None = None,
           stats: ReplayStats | None = None) -> tuple[list[Alert], ReplayStats]:
    """Run every event through the engine; alerts are written as JSON lines to ``out`` when given
    (and then not kept in memory), else returned."""
    stats = stats or ReplayStats()
    kept: list[Alert] = []
    enc = msgspec.json.Encoder()
    for ev in iter_events(lines, stats):
        for alert in engine.process(ev):
            stats.alerts += 1
            if out is not None:
                out.write(enc.encode(alert.to_dict()).decode() + "\n")
            else:
                kept.append(alert)
    return kept, stats
