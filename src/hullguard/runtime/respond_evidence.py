"""Evidence capture for a process and its container, read from /proc (and Docker when reachable).

Every artefact is a JSON file in the incident directory; ``index.json`` lists each with its SHA-256
and size, and the index's own SHA-256 is returned for the audit log, so later tampering with any
file (or with the index) shows. Environment values are masked: by key name (passwords, tokens,
keys...), by URL credentials, and by hullguard's secret rules.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import socket
import struct
from datetime import UTC, datetime
from typing import Any

from hullguard.detect.secrets import mask

MAX_READ = 256 * 1024  # per /proc file: environ, cmdline, status...
MAX_NET_READ = 4 << 20
MAX_FDS = 4096
MAX_TREE = 512
MAX_SCAN_PROCS = 200_000
SCHEMA = 1

_SECRET_KEY = re.compile(r"(?i)(pass(wd|word|phrase)?|secret|token|api[_-]?key|access[_-]?key|private[_-]?key|"
                         r"credential|auth|session|cookie|signature|dsn|conn(ection)?[_-]?str|_pw$|^pw$|salt|"
                         r"client[_-]?key)")
_URL_CRED = re.compile(r"(?P<pre>[a-zA-Z][a-zA-Z0-9+.-]*://[^/:@\s]*:)(?P<pw>[^@/\s]+)(?=@)")
_TCP_STATES = {"01": "ESTABLISHED", "02": "SYN_SENT", "03": "SYN_RECV", "04": "FIN_WAIT1", "05": "FIN_WAIT2",
               "06": "TIME_WAIT", "07": "CLOSE", "08": "CLOSE_WAIT", "09": "LAST_ACK", "0A": "LISTEN",
               "0B": "CLOSING"}
_secret_engine: Any = None


def _read(path: str, limit: int = MAX_READ) -> bytes:
    with open(path, "rb") as fh:
        return fh.read(limit)


def mask_env_value(key: str, value: str) -> tuple[str, bool]:
    """(value safe to store, whether anything was masked)."""
    if _SECRET_KEY.search(key) and value:
        return mask(value), True
    masked = _URL_CRED.sub(lambda m: m.group("pre") + mask(m.group("pw")), value)
    global _secret_engine
    if _secret_engine is None:
        from hullguard.detect.secrets import default_engine

        _secret_engine = default_engine()
    line = f"{key}={masked}".encode()
    matches = _secret_engine.scan(line, "environ")
    if matches:
        buf = bytearray(line)
        for m in sorted(matches, key=lambda m: -m.secret_start):
            buf[m.secret_start:m.secret_end] = mask(m.secret.decode("utf-8", "replace")).encode()
        masked = bytes(buf).decode("utf-8", "replace").partition("=")[2]
    return masked, masked != value


_SECRET_FLAG = re.compile(r"(?i)^(--?[\w.-]*(pass(wd|word)?|secret|token|api[_-]?key|credential)[\w.-]*=)(.+)$")


def mask_arg(arg: str) -> str:
    """A command-line argument with ``--password=...``-style values and recognised secrets masked."""
    m = _SECRET_FLAG.match(arg)
    if m:
        return m.group(1) + mask(m.group(4))
    return mask_env_value("ARG", arg)[0]


def read_environ(pid: int) -> tuple[dict[str, str], int]:
    raw = _read(f"/proc/{pid}/environ")
    env: dict[str, str] = {}
    hidden = 0
    for item in raw.split(b"\0"):
        if not item:
            continue
        k, _, v = item.decode("utf-8", "replace").partition("=")
        env[k], did = mask_env_value(k, v)
        hidden += did
    return env, hidden


def stat_of(pid: int) -> dict[str, Any] | None:
    try:
        raw = _read(f"/proc/{pid}/stat", 4096).decode("utf-8", "replace")
    except OSError:
        return None
    # comm may contain spaces and ')': it ends at the last ')'.
    head, _, rest = raw.rpartition(")")
    fields = rest.split()
    try:
        return {"pid": pid, "comm": head.partition("(")[2], "state": fields[0], "ppid": int(fields[1]),
                "starttime": int(fields[19])}
    except (IndexError, ValueError):
        return None


def _cmdline(pid: int) -> list[str]:
    try:
        return [mask_arg(a.decode("utf-8", "replace")) for a in _read(f"/proc/{pid}/cmdline").split(b"\0") if a]
    except OSError:
        return []


def _readlink(path: str) -> str | None:
    try:
        return os.readlink(path)
    except OSError:
        return None


def process_info(pid: int) -> dict[str, Any]:
    st = stat_of(pid)
    if st is None:
        raise ProcessLookupError(f"no process {pid}")
    info: dict[str, Any] = {**st, "exe": _readlink(f"/proc/{pid}/exe"), "cwd": _readlink(f"/proc/{pid}/cwd"),
                            "root": _readlink(f"/proc/{pid}/root"), "cmdline": _cmdline(pid)}
    with contextlib.suppress(OSError):
        status = {}
        for line in _read(f"/proc/{pid}/status").decode("utf-8", "replace").splitlines():
            k, _, v = line.partition(":")
            if k in ("Name", "State", "PPid", "Uid", "Gid", "NSpid", "NSpgid", "CapEff", "CapBnd", "Seccomp",
                     "NoNewPrivs", "Threads"):
                status[k] = " ".join(v.split())
        info["status"] = status
    with contextlib.suppress(OSError):
        info["cgroup"] = _read(f"/proc/{pid}/cgroup", 16384).decode("utf-8", "replace").splitlines()
    with contextlib.suppress(OSError):
        info["namespaces"] = {n: _readlink(f"/proc/{pid}/ns/{n}") for n in sorted(os.listdir(f"/proc/{pid}/ns"))}
    return info


def ancestors(pid: int) -> list[int]:
    """Parent chain of ``pid``, nearest first, ending at pid 1 (or where /proc stops answering)."""
    chain: list[int] = []
    cur = pid
    while len(chain) < MAX_TREE:
        st = stat_of(cur)
        if st is None or st["ppid"] <= 0:
            break
        chain.append(st["ppid"])
        if st["ppid"] == 1:
            break
        cur = st["ppid"]
    return chain


def process_tree(pid: int) -> dict[str, Any]:
    children: dict[int, list[int]] = {}
    with contextlib.suppress(OSError):
        for n, name in enumerate(os.listdir("/proc")):
            if n >= MAX_SCAN_PROCS:
                break
            if name.isdigit():
                st = stat_of(int(name))
                if st is not None:
                    children.setdefault(st["ppid"], []).append(st["pid"])
    descendants: list[int] = []
    todo = list(children.get(pid, []))
    while todo and len(descendants) < MAX_TREE:
        p = todo.pop(0)
        descendants.append(p)
        todo.extend(children.get(p, []))

    def brief(p: int) -> dict[str, Any] | None:
        st = stat_of(p)
        return None if st is None else {**st, "cmdline": _cmdline(p), "exe": _readlink(f"/proc/{p}/exe")}

    return {"pid": pid, "ancestors": [b for b in map(brief, ancestors(pid)) if b],
            "descendants": [b for b in map(brief, descendants) if b]}


def _hex_addr(text: str) -> str:
    addr, _, port = text.partition(":")
    raw = bytes.fromhex(addr)
    # /proc/net prints the address as host-order 32-bit words.
    if len(raw) == 4:
        ip = socket.inet_ntop(socket.AF_INET, struct.pack("<I", int(addr, 16)))
        return f"{ip}:{int(port, 16)}"
    words = b"".join(struct.pack("<I", int(addr[i:i + 8], 16)) for i in range(0, 32, 8))
    return f"[{socket.inet_ntop(socket.AF_INET6, words)}]:{int(port, 16)}"


def open_files(pid: int) -> tuple[list[dict[str, Any]], set[str]]:
    fds = []
    inodes: set[str] = set()
    names = sorted(os.listdir(f"/proc/{pid}/fd"), key=lambda x: int(x) if x.isdigit() else -1)
    for name in names[:MAX_FDS]:
        target = _readlink(f"/proc/{pid}/fd/{name}")
        if target is None:
            continue
        fds.append({"fd": int(name) if name.isdigit() else name, "target": target})
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    return fds, inodes


def sockets(pid: int, inodes: set[str]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if not inodes:
        return out
    for proto in ("tcp", "tcp6", "udp", "udp6"):
        try:
            lines = _read(f"/proc/{pid}/net/{proto}", MAX_NET_READ).decode("ascii", "replace").splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            f = line.split()
            if len(f) > 9 and f[9] in inodes:
                with contextlib.suppress(ValueError):
                    out.append({"proto": proto, "local": _hex_addr(f[1]), "remote": _hex_addr(f[2]),
                                "state": _TCP_STATES.get(f[3], f[3]) if proto.startswith("tcp") else f[3],
                                "inode": f[9]})
    with contextlib.suppress(OSError):
        for line in _read(f"/proc/{pid}/net/unix", MAX_NET_READ).decode("utf-8", "replace").splitlines()[1:]:
            f = line.split()
            if len(f) > 6 and f[6] in inodes:
                out.append({"proto": "unix", "path": f[7] if len(f) > 7 else "", "inode": f[6]})
    return out


class EvidenceWriter:
    """Writes artefacts into one incident directory and keeps their hashes for the index."""

    def __init__(self, directory: str) -> None:
        os.makedirs(directory, mode=0o700, exist_ok=False)
        self.dir = directory
        self.artefacts: list[dict[str, Any]] = []
        self.errors: list[str] = []

    def add(self, name: str, doc: Any) -> None:
        data = (json.dumps(doc, indent=1, sort_keys=True, default=str) + "\n").encode()
        self.add_bytes(name, data)

    def add_bytes(self, name: str, data: bytes) -> None:
        path = os.path.join(self.dir, name)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        self.artefacts.append({"name": name, "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)})

    def finish(self, meta: dict[str, Any]) -> tuple[str, str]:
        """Write index.json; (its path, its SHA-256)."""
        index = {"schema": SCHEMA, **meta, "created": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
                 "artefacts": self.artefacts, "errors": self.errors}
        data = (json.dumps(index, indent=1, sort_keys=True, default=str) + "\n").encode()
        path = os.path.join(self.dir, "index.json")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        return path, hashlib.sha256(data).hexdigest()


def capture_process(w: EvidenceWriter, pid: int) -> dict[str, Any]:
    """Process, tree, fds, sockets and masked environment of ``pid``; a summary for the audit record."""
    summary: dict[str, Any] = {}
    if stat_of(pid) is None:
        w.errors.append(f"process {pid}: not running (exited before capture?)")
        return summary
    steps = (
        ("process.json", lambda: process_info(pid)),
        ("process_tree.json", lambda: process_tree(pid)),
    )
    for name, fn in steps:
        try:
            w.add(name, fn())
        except (OSError, ProcessLookupError) as exc:
            w.errors.append(f"{name}: {exc}")
    try:
        fds, inodes = open_files(pid)
        w.add("open_files.json", fds)
        w.add("sockets.json", sockets(pid, inodes))
        summary["fds"] = len(fds)
    except OSError as exc:
        w.errors.append(f"open_files.json: {exc}")
    try:
        env, hidden = read_environ(pid)
        w.add("environ.json", env)
        summary["environ_masked"] = hidden
    except OSError as exc:
        w.errors.append(f"environ.json: {exc}")
    return summary
