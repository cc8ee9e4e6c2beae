"""A /proc polling source: new processes (exec), files opened for writing, new connections.

Every ``interval`` seconds the source lists /proc and compares each pid's start time, executable
and command line with the previous round: an unseen (pid, start time) is a new process, a known
one whose exe or cmdline changed has re-executed. Either becomes a syscall-shaped
``evt.type=execve, evt.dir=<`` event with the fields Falco rules read (see runtime/fields.py).

Processes that appeared after the source started are *watched*: their ``/proc/PID/fd`` links are
scanned each round. A new link to a file whose ``fdinfo`` flags show it open for writing (or
reading) becomes an ``openat`` event; a new socket found in the process's own network namespace
tables (``/proc/PID/net/tcp``, ``tcp6``, ``udp``, ``udp6``) in a connected state becomes
``connect`` (or ``accept`` when its local port is listening).

This is polling, not tracing: a process that starts and exits between two rounds, or a file
opened and closed between them, is never seen. Use the eBPF source (when available) or a sensor
such as Falco/Tetragon (replayed) where that matters.
"""

from __future__ import annotations

import os
import pwd
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hullguard.runtime.sources.containers import (
    BundleMetadata,
    CgroupInfo,
    ContainerMetadata,
    DockerMetadata,
    container_fields,
    parse_cgroup,
)

MAX_ARGS = 4096  # bytes of cmdline kept per process
MAX_ANCESTORS = 32
MAX_WATCHED = 1024  # processes whose fds are scanned; beyond this, new ones are exec-only
MAX_FDS_PER_PROC = 4096
_O_ACCMODE, _O_WRONLY, _O_RDWR = 0o3, 0o1, 0o2
# fdinfo shows the file's current status flags: open-time-only flags (O_CREAT, O_TRUNC, O_EXCL)
# are gone by then, so evt.is_open_create cannot be known from /proc and is not set.
_FLAG_NAMES = ((0o2000, "O_APPEND"), (0o4000, "O_NONBLOCK"), (0o2000000, "O_CLOEXEC"))
_TCP_STATES = {"01": "ESTABLISHED", "02": "SYN_SENT", "0A": "LISTEN"}


def _read(path: str, limit: int = 65536) -> bytes | None:
    try:
        with open(path, "rb") as f:
            return f.read(limit)
    except OSError:
        return None


def _readlink(path: str) -> str | None:
    try:
        return os.readlink(path)
    except OSError:
        return None


def _boot_time(root: str) -> int | None:
    raw = _read(f"{root}/stat", 1 << 20) or b""
    for line in raw.splitlines():
        if line.startswith(b"btime "):
            try:
                return int(line.split()[1])
            except (IndexError, ValueError):
                return None
    return None


@dataclass(slots=True)
class ProcInfo:
    pid: int
    ppid: int
    start: int  # clock ticks since boot: (pid, start) names a process uniquely
    comm: str
    tty: int
    exe: str | None = None
    cmdline: list[str] | None = None
    seen_at: float = 0.0


_PF_KTHREAD = 0x00200000


def parse_stat(raw: bytes) -> tuple[str, int, int, int, bool] | None:
    """(comm, ppid, tty_nr, starttime, is kernel thread) from /proc/PID/stat; comm may hold
    spaces and parens."""
    try:
        text = raw.decode("utf-8", "replace")
        open_, close = text.index("("), text.rindex(")")
        comm = text[open_ + 1:close]
        rest = text[close + 2:].split()
        # rest[0] is field 3 (state): ppid is field 4, tty_nr 7, flags 9, starttime 22.
        return comm, int(rest[1]), int(rest[4]), int(rest[19]), bool(int(rest[6]) & _PF_KTHREAD)
    except (ValueError, IndexError):
        return None


def _hex_addr(text: str) -> tuple[str, int]:
    host, port = text.split(":")
    raw = bytes.fromhex(host)
    if len(raw) == 4:
        addr = socket.inet_ntop(socket.AF_INET, struct.pack("<I", struct.unpack(">I", raw)[0]))
    else:
        # Four host-order 32-bit words.
        words = struct.unpack("<4I", raw)
        addr = socket.inet_ntop(socket.AF_INET6, struct.pack(">4I", *words))
        if addr.startswith("::ffff:") and "." in addr:
            addr = addr[7:]
    return addr, int(port, 16)


def parse_net_table(text: str, proto: str) -> dict[int, tuple[str, int, str, int, str]]:
    """inode -> (local ip, local port, remote ip, remote port, state) from /proc/net/{tcp,udp}[6]."""
    out: dict[int, tuple[str, int, str, int, str]] = {}
    for line in text.splitlines()[1:]:
        parts = line.split()
        if len(parts) < 10:
            continue
        try:
            lip, lport = _hex_addr(parts[1])
            rip, rport = _hex_addr(parts[2])
            out[int(parts[9])] = (lip, lport, rip, rport, parts[3])
        except (ValueError, OSError, struct.error):
            continue
    return out


class _UserNames:
    def __init__(self) -> None:
        self._cache: dict[int, str] = {}

    def __call__(self, uid: int) -> str:
        name = self._cache.get(uid)
        if name is None:
            try:
                name = pwd.getpwuid(uid).pw_name
            except (KeyError, OverflowError):
                name = str(uid)
            if len(self._cache) < 4096:
                self._cache[uid] = name
        return name


class ProcSource:
    """Polls ``proc_root`` (normally /proc); see the module docstring for what it reports."""

    name = "proc"

    def __init__(self, *, interval: float = 0.1, proc_root: str = "/proc", report_existing: bool = False,
                 watch_fds: bool = True, docker: DockerMetadata | None = None,
                 bundles: BundleMetadata | None = None, hostname: str | None = None, sweep_every: int = 10,
                 podman: DockerMetadata | None = None) -> None:
        self.interval = interval
        self.sweep_every = max(1, sweep_every)
        self.root = proc_root
        self.report_existing = report_existing
        self.watch_fds = watch_fds
        self.metadata = ContainerMetadata(docker, podman, bundles)
        self.docker, self.podman, self.bundles = self.metadata.docker, self.metadata.podman, self.metadata.bundles
        self.hostname = hostname
        self.self_pid = os.getpid()
        self.emit: Callable[[dict[str, Any]], bool] = lambda ev: True
        self.procs: dict[int, ProcInfo] = {}
        self._watched: dict[int, dict[int, str]] = {}  # pid -> fd -> link target already reported
        self._pending_sockets: dict[tuple[int, int], int] = {}
        self._forks: set[int] = set()  # forked children that have not exec'd yet
        self._ticks = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
        self._btime = _boot_time(proc_root)  # (pid, fd) -> polls left to classify
        self._containers: dict[int, tuple[CgroupInfo | None, dict[str, Any]]] = {}
        self._user = _UserNames()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._primed = False
        self.counts = dict.fromkeys(("polls", "exec", "reexec", "open", "connect", "accept", "dropped",
                                     "unwatched"), 0)

    # ---- lifecycle -----------------------------------------------------------------------------

    def start(self, emit: Callable[[dict[str, Any]], bool]) -> None:
        self.emit = emit
        if not self._primed:
            self.prime()
        self._thread = threading.Thread(target=self._loop, name="hullguard-proc", daemon=True)
        self._thread.start()

    def prime(self) -> None:
        """Record what runs now, so only later processes are reported (unless report_existing)."""
        self._primed = True
        if not self.report_existing:
            self.poll(emit_events=False)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.docker.close()
        self.podman.close()

    def stats(self) -> dict[str, int]:
        return dict(self.counts, processes=len(self.procs), watched=len(self._watched), forks=len(self._forks))

    def _loop(self) -> None:
        while not self._stop.is_set():
            began = time.monotonic()
            self.poll()
            self._stop.wait(max(0.0, self.interval - (time.monotonic() - began)))

    def _send(self, ev: dict[str, Any], kind: str) -> None:
        self.counts[kind] += 1
        if not self.emit(ev):
            self.counts["dropped"] += 1

    # ---- one round -----------------------------------------------------------------------------

    def poll(self, *, emit_events: bool = True) -> None:
        self.counts["polls"] += 1
        now = time.time()
        try:
            names = os.listdir(self.root)
        except OSError:
            return
        alive: set[int] = set()
        fresh: list[tuple[ProcInfo, bool]] = []
        # Reading /proc/PID/stat is the main cost (tens of µs each on some kernels). Known,
        # unwatched processes are re-read only on every sweep_every-th round, to notice an
        # in-place exec or a reused pid; new and watched processes are read every round.
        sweep = self.counts["polls"] % self.sweep_every == 1 or self.sweep_every == 1
        procs, watched, forks = self.procs, self._watched, self._forks
        for name in names:
            if not name.isdigit():
                continue
            pid = int(name)
            if not sweep and pid in procs and pid not in watched and pid not in forks:
                alive.add(pid)
                continue
            raw = _read(f"{self.root}/{pid}/stat", 4096)
            if raw is None:
                continue
            st = parse_stat(raw)
            if st is None:
                continue
            comm, ppid, tty, start, kthread = st
            alive.add(pid)
            old = self.procs.get(pid)
            if old is not None and old.start == start:
                # Same process: did it exec something else? exe/cmdline differ after execve.
                if old.comm == comm and pid not in watched and pid not in forks:
                    continue
                exe = _readlink(f"{self.root}/{pid}/exe")
                cmd = self._cmdline(pid)
                if exe == old.exe and cmd == old.cmdline:
                    old.comm = comm
                    continue
                info = ProcInfo(pid, ppid, start, comm, tty, exe, cmd, now)
                self.procs[pid] = info
                # A fork that now exec'd is a new program, not a re-exec of a known one.
                fresh.append((info, pid not in forks))
                forks.discard(pid)
                continue
            if old is not None:
                self._forget(pid)
            if kthread:
                # Kernel threads (kworker & co.) come and go constantly and never exec: remember
                # them so they are not read again, report nothing.
                self.procs[pid] = ProcInfo(pid, ppid, start, comm, tty, None, [], now)
                continue
            info = ProcInfo(pid, ppid, start, comm, tty, _readlink(f"{self.root}/{pid}/exe"), self._cmdline(pid), now)
            self.procs[pid] = info
            fresh.append((info, False))
        for pid in [p for p in self.procs if p not in alive]:
            del self.procs[pid]
            self._forget(pid)
        # Parents before children so a child's ancestry reads this round's parent details.
        fresh.sort(key=lambda t: (t[0].start, t[0].pid))
        for info, reexec in fresh:
            if not emit_events or info.pid == self.self_pid:
                continue
            parent = procs.get(info.ppid)
            if not reexec and parent is not None and parent.comm == info.comm and parent.exe == info.exe \
                    and parent.cmdline == info.cmdline:
                # fork() without exec yet (a shell about to run a command, a worker process):
                # Falco reports no execve for it. Re-checked every round until it execs.
                forks.add(info.pid)
                continue
            if self.watch_fds and info.pid not in self._watched:
                if len(self._watched) < MAX_WATCHED:
                    self._watched[info.pid] = {}
                    self._scan_fds(info.pid, report=True, inherited=self._fd_targets(info.ppid))
                else:
                    self.counts["unwatched"] += 1
            self._send(self._exec_event(info, reexec), "reexec" if reexec else "exec")
        if emit_events and self.watch_fds:
            for pid in list(self._watched):
                if pid in alive:
                    self._scan_fds(pid, report=True, full=sweep)

    def _forget(self, pid: int) -> None:
        self._watched.pop(pid, None)
        self._forks.discard(pid)
        self._containers.pop(pid, None)
        for key in [k for k in self._pending_sockets if k[0] == pid]:
            del self._pending_sockets[key]

    def _cmdline(self, pid: int) -> list[str] | None:
        raw = _read(f"{self.root}/{pid}/cmdline", MAX_ARGS)
        if raw is None:
            return None
        return [a.decode("utf-8", "replace") for a in raw.rstrip(b"\0").split(b"\0")] if raw else []

    # ---- events --------------------------------------------------------------------------------

    def _status(self, pid: int) -> dict[str, str]:
        raw = _read(f"{self.root}/{pid}/status", 16384) or b""
        out = {}
        for line in raw.decode("utf-8", "replace").splitlines():
            k, _, v = line.partition(":")
            if k in ("Uid", "Gid", "NSpid"):
                out[k] = v.split()
        return out  # type: ignore[return-value]

    def _container(self, pid: int) -> tuple[CgroupInfo | None, dict[str, Any]]:
        got = self._containers.get(pid)
        if got is not None:
            return got
        raw = _read(f"{self.root}/{pid}/cgroup", 65536)
        info = parse_cgroup(raw.decode("utf-8", "replace")) if raw else None
        meta = self.metadata.get(info) if info is not None else {}
        self._containers[pid] = (info, meta)
        return info, meta

    def _proc_fields(self, info: ProcInfo) -> dict[str, Any]:
        args = info.cmdline or []
        argv0 = args[0] if args else info.comm
        rest = " ".join(args[1:])
        return {"proc.pid": info.pid, "proc.ppid": info.ppid, "proc.name": info.comm, "proc.exe": argv0,
                "proc.exepath": info.exe, "proc.args": rest, "proc.cmdline": f"{info.comm} {rest}".rstrip(),
                "proc.tty": info.tty}

    def _parent(self, ppid: int) -> ProcInfo | None:
        p = self.procs.get(ppid)
        if p is not None:
            return p
        raw = _read(f"{self.root}/{ppid}/stat", 4096)
        st = parse_stat(raw) if raw else None
        if st is None:
            return None
        return ProcInfo(ppid, st[1], st[3], st[0], st[2], _readlink(f"{self.root}/{ppid}/exe"),
                        self._cmdline(ppid))

    def _common(self, info: ProcInfo, etype: str) -> dict[str, Any]:
        ev = self._proc_fields(info)
        ev.update({"_source": "syscall", "evt.type": etype, "evt.dir": "<", "evt.time": time.time_ns()})
        if self.hostname:
            ev["_hostname"] = self.hostname
        status = self._status(info.pid)
        uids, gids, nspid = status.get("Uid") or [], status.get("Gid") or [], status.get("NSpid") or []
        if len(uids) > 1:
            ev["user.uid"] = int(uids[1])  # effective uid, the one permission checks use
            ev["user.name"] = self._user(int(uids[1]))
        if len(gids) > 1:
            ev["group.gid"] = int(gids[1])
        if nspid:
            ev["proc.vpid"] = int(nspid[-1])
        loginuid = _read(f"{self.root}/{info.pid}/loginuid", 32)
        if loginuid and loginuid.strip().isdigit():
            ev["user.loginuid"] = int(loginuid) if int(loginuid) != 4294967295 else -1
        cwd = _readlink(f"{self.root}/{info.pid}/cwd")
        if cwd is not None:
            ev["proc.cwd"] = cwd if cwd.endswith("/") else cwd + "/"
        cinfo, meta = self._container(info.pid)
        ev.update(container_fields(cinfo, meta))
        anc: list[str] = []
        apid: list[int] = []
        parent = self._parent(info.ppid) if info.ppid else None
        if parent is not None:
            pf = self._proc_fields(parent)
            ev.update({"proc.pname": parent.comm, "proc.pexe": pf["proc.exe"], "proc.pexepath": parent.exe,
                       "proc.pcmdline": pf["proc.cmdline"]})
        cur = parent
        while cur is not None and len(anc) < MAX_ANCESTORS:
            anc.append(cur.comm)
            apid.append(cur.pid)
            if cur.ppid <= 0 or cur.ppid == cur.pid:
                break
            cur = self._parent(cur.ppid)
        ev["_anc"], ev["_apid"] = anc, apid
        return ev

    def _exec_event(self, info: ProcInfo, reexec: bool) -> dict[str, Any]:
        ev = self._common(info, "execve")
        ev["evt.category"] = "process"
        if not reexec and self._btime is not None:
            # The process's start (fork) time is closer to the exec than our poll; an in-place
            # exec keeps the old start time, so it gets the poll time.
            ev["evt.time"] = self._btime * 1_000_000_000 + info.start * 1_000_000_000 // self._ticks
        return ev

    # ---- files and sockets ---------------------------------------------------------------------

    def _fd_targets(self, pid: int) -> set[str]:
        try:
            fds = os.listdir(f"{self.root}/{pid}/fd")
        except OSError:
            return set()
        return {t for fd in fds[:MAX_FDS_PER_PROC] if (t := _readlink(f"{self.root}/{pid}/fd/{fd}")) is not None}

    def _scan_fds(self, pid: int, *, report: bool, inherited: set[str] | None = None, full: bool = True) -> None:
        """Report fds not seen before. At a process's first sight, fds its parent also holds
        (stdio, pipes) came with the fork and are not reported; anything else was opened before
        we looked — e.g. a shell redirect set up just before exec — and is reported.

        Between full rounds only fd numbers absent last round are resolved: a closed fd leaves
        the listing, so its number coming back is seen as new. A dup2() over a live fd number
        is caught by the next full round."""
        seen = self._watched.get(pid)
        if seen is None:
            return
        try:
            fds = [int(n) for n in os.listdir(f"{self.root}/{pid}/fd")[:MAX_FDS_PER_PROC] if n.isdigit()]
        except OSError:
            return
        if len(seen) > len(fds):
            current = set(fds)
            for gone in [fd for fd in seen if fd not in current]:
                del seen[gone]
        tables: dict[str, dict[int, tuple[str, int, str, int, str]]] | None = None
        for fd in fds:
            if not full and fd in seen:
                continue
            target = _readlink(f"{self.root}/{pid}/fd/{fd}")
            if target is None or seen.get(fd) == target:
                continue
            if inherited is not None and target in inherited:
                seen[fd] = target
                continue
            if target.startswith("socket:["):
                if not report:
                    seen[fd] = target
                    continue
                if tables is None:
                    tables = self._net_tables(pid)
                if self._socket_event(pid, fd, target, tables):
                    seen[fd] = target
                continue
            seen[fd] = target
            if report and target.startswith("/"):
                self._file_event(pid, fd, target)

    def _file_event(self, pid: int, fd: int, path: str) -> None:
        raw = _read(f"{self.root}/{pid}/fdinfo/{fd}", 4096)
        if raw is None:
            return
        flags = None
        for line in raw.decode("ascii", "replace").splitlines():
            if line.startswith("flags:"):
                try:
                    flags = int(line.split()[1], 8)
                except (IndexError, ValueError):
                    return
        info = self.procs.get(pid)
        if flags is None or info is None:
            return
        acc = flags & _O_ACCMODE
        names = ["O_RDWR" if acc == _O_RDWR else "O_WRONLY" if acc == _O_WRONLY else "O_RDONLY"]
        names += [n for bit, n in _FLAG_NAMES if flags & bit]
        if path.endswith(" (deleted)"):
            path = path[: -len(" (deleted)")]
        ev = self._common(info, "openat")
        ev.update({"evt.category": "file", "fd.num": fd, "fd.name": path, "fd.typechar": "f", "fd.type": "file",
                   "evt.arg.flags": "|".join(names), "evt.arg.fd": fd,
                   "evt.is_open_write": "true" if acc in (_O_WRONLY, _O_RDWR) else "false",
                   "evt.is_open_read": "true" if acc in (0, _O_RDWR) else "false"})
        self._send(ev, "open")

    def _net_tables(self, pid: int) -> dict[str, dict[int, tuple[str, int, str, int, str]]]:
        # The process's own view: a container's sockets live in its network namespace's tables.
        out = {}
        for proto in ("tcp", "tcp6", "udp", "udp6"):
            raw = _read(f"{self.root}/{pid}/net/{proto}", 8 * 1024 * 1024)
            out[proto] = parse_net_table(raw.decode("ascii", "replace"), proto) if raw else {}
        return out

    def _socket_event(self, pid: int, fd: int, target: str,
                      tables: dict[str, dict[int, tuple[str, int, str, int, str]]]) -> bool:
        """True once the socket is classified (reported or known to be uninteresting)."""
        try:
            inode = int(target[8:-1])
        except ValueError:
            return True
        for proto, table in tables.items():
            row = table.get(inode)
            if row is None:
                continue
            lip, lport, rip, rport, state = row
            if state == "0A" or rport == 0:
                if proto.startswith("tcp") and state == "0A":
                    return True  # a listening socket: its accepted connections are separate fds
                return self._retry(pid, fd)  # bound or not yet connected: look again next round
            listening = any(r[4] == "0A" and r[1] == lport for t in (tables["tcp"], tables["tcp6"])
                            for r in t.values()) if proto.startswith("tcp") else False
            info = self.procs.get(pid)
            if info is None:
                return True
            etype = "accept" if listening else "connect"
            ev = self._common(info, etype)
            l4 = "tcp" if proto.startswith("tcp") else "udp"
            # Falco's fd.sip/sport are the client side, fd.dip/dport the server side.
            if listening:
                sip, sport, dip, dport = rip, rport, lip, lport
            else:
                sip, sport, dip, dport = lip, lport, rip, rport
            ev.update({"evt.category": "net", "fd.num": fd, "fd.typechar": "6" if ":" in dip else "4",
                       "fd.type": "ipv6" if ":" in dip else "ipv4", "fd.l4proto": l4, "fd.sockfamily": "ip",
                       "fd.sip": sip, "fd.sport": sport, "fd.dip": dip, "fd.dport": dport,
                       "fd.cip": sip, "fd.cport": sport, "fd.rip": rip, "fd.rport": rport,
                       "fd.lip": lip, "fd.lport": lport, "fd.connected": "true",
                       "fd.name": f"{sip}:{sport}->{dip}:{dport}"})
            self._send(ev, etype)
            self._pending_sockets.pop((pid, fd), None)
            return True
        # Unix sockets and the like are not in the IP tables: nothing to report.
        return self._retry(pid, fd) if any(tables.values()) else True

    def _retry(self, pid: int, fd: int) -> bool:
        left = self._pending_sockets.get((pid, fd), 20)
        if left <= 0:
            self._pending_sockets.pop((pid, fd), None)
            return True
        self._pending_sockets[(pid, fd)] = left - 1
        return False
