"""An eBPF event source that runs bpftrace, and the check of whether it can run here.

bpftrace compiles a script of ours (built by :func:`build_script`) against the kernel's BTF and
attaches it to syscall tracepoints: execve/execveat (argv and filename read at entry, result and
credentials at exit), open/openat/openat2/creat (writes and creations always, reads only under
sensitive prefixes, so ``/etc/ld.so.cache`` opened by every exec does not flood the queue) and
connect (IPv4/IPv6 sockaddr read at entry, reported when the call succeeds or is in progress).

Output encoding: every record is ``print()`` of a tuple under ``bpftrace -f json``, so each is one
JSON line ``{"type": "value", "data": [...]}`` whose strings bpftrace JSON-escapes. Attacker-chosen
bytes (filenames, argv, comm) therefore stay inside one JSON string and can never add or move a
field or a record. bpftrace (0.17 at least) escapes bytes >= 0x80 sign-extended, as
``\\uffffffXX``; :func:`bt_string` turns that back into the original bytes. Strings are cut by
bpftrace at ``STRLEN - 1`` bytes (199) and argv at ``max_args`` entries; both are marked.

A record never holds more than one long string (the BPF stack is 512 bytes), so an exec is
several records keyed by process id (a thread that execs becomes the process leader, so its
thread id changes on the way): one ``a`` per argument, then ``e`` with the filename at entry,
and ``x`` at exit. Per-CPU buffers can reorder entry and exit of one call when the thread moved
CPU, so either may arrive first; unmatched halves are kept (bounded) for a few seconds. An open
is ``f`` (path) then ``o`` (the rest), printed by one probe run on one CPU, keyed by thread.

The events have the shape the /proc source emits (``evt.type``, ``evt.dir=<``, ``proc.*``,
``fd.*``, ``user.*``, container fields, ancestry), with details that only /proc has (cwd, the
executable's real path, the parent chain, the container) read from /proc when the process is
still alive, and from what this source saw at earlier execs otherwise.
"""

from __future__ import annotations

import collections
import contextlib
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec

from hullguard.model import HullguardError
from hullguard.runtime.sources.containers import (
    BundleMetadata,
    CgroupInfo,
    ContainerMetadata,
    DockerMetadata,
    container_fields,
    parse_cgroup,
)
from hullguard.runtime.sources.proc import _read, _readlink, _UserNames, parse_stat

_CAP_SYS_ADMIN, _CAP_BPF, _CAP_PERFMON = 21, 39, 38
STRLEN = 200  # bpftrace 0.17's largest BPFTRACE_STRLEN
MAX_ARGS = 20  # argv entries read per exec
MAX_LINE = 64 * 1024  # a record is a few hundred bytes; anything longer is not ours
MAX_PENDING = 4096  # half-joined execs kept per source
PENDING_SECONDS = 5.0
MAX_ANCESTORS = 32
CACHE_SECONDS = 5.0
# Reads (O_RDONLY without O_CREAT) are reported only under these prefixes; writes everywhere.
DEFAULT_READ_PREFIXES = ("/etc/shadow", "/etc/gshadow", "/etc/sudoers", "/etc/pam.d/", "/etc/ssl/private/",
                         "/etc/kubernetes/", "/root/", "/run/secrets/", "/var/run/secrets/")
_MAX_PREFIXES = 64
_PREFIX_OK = re.compile(r"^/[A-Za-z0-9_./+-]{1,62}$")  # bpftrace literals are at most 63 bytes
_TRACEFS = ("sys/kernel/tracing", "sys/kernel/debug/tracing")
_EXECS = ("execve", "execveat")
# syscall -> (expression for the path pointer, expression for the open flags, expression for dfd)
_OPENS = {
    "openat": ("args->filename", "args->flags", "args->dfd"),
    "openat2": ("args->filename", "((struct open_how *)args->how)->flags", "args->dfd"),
    "open": ("args->filename", "args->flags", "-100"),
    "creat": ("args->pathname", "577", "-100"),  # O_CREAT|O_WRONLY|O_TRUNC
}
_O_ACCMODE, _O_WRONLY, _O_RDWR, _O_CREAT, _O_TRUNC = 0o3, 0o1, 0o2, 0o100, 0o1000
_FLAG_NAMES = ((0o100, "O_CREAT"), (0o200, "O_EXCL"), (0o1000, "O_TRUNC"), (0o2000, "O_APPEND"),
               (0o4000, "O_NONBLOCK"), (0o200000, "O_DIRECTORY"), (0o2000000, "O_CLOEXEC"),
               (0o20200000, "O_TMPFILE"))
_ARITY = {"ready": 2, "a": 4, "e": 5, "x": 11, "f": 3, "o": 13, "c": 16}  # fields per record, as printed
_AT_FDCWD = -100
_EINPROGRESS = 115
_decode = msgspec.json.Decoder().decode
_NOISE = ("couldn't set RLIMIT_MEMLOCK",)  # bpftrace warns about it as root and works anyway


# The controlling terminal as /proc's tty_nr (Falco's proc.tty; 0 = none). bpftrace 0.17 cannot
# read struct tty_driver from newer kernels' BTF, so the major number is inferred from the name:
# exact for /dev/pts/N and the console ttys, which is what "interactive" rules look at.
_TTY = """  $tty = (uint64)0;
  $tt = curtask->signal->tty;
  if ($tt != 0) {
    $ix = (uint64)$tt->index;
    $mj = (uint64)4;
    if (strncmp($tt->name, "pts", 3) == 0) { $mj = 136; }
    $tty = ($ix & 0xff) | ($mj << 8) | (($ix & ~0xff) << 12);
  }"""


# ---- the script -------------------------------------------------------------------------------

def build_script(*, read_prefixes: tuple[str, ...] = DEFAULT_READ_PREFIXES, max_args: int = MAX_ARGS,
                 syscalls: set[str] | None = None) -> str:
    """The bpftrace program; ``$1`` is a pid (ours) whose own syscalls are not traced.

    ``syscalls`` limits the probes to tracepoints this kernel has (``open``/``creat`` are absent on
    arm64, for one)."""
    for p in read_prefixes:
        if not _PREFIX_OK.match(p):
            raise HullguardError(f"read prefix {p!r} must be an absolute path of at most 63 letters, digits and ._/+-")
    if len(read_prefixes) > _MAX_PREFIXES:
        raise HullguardError(f"at most {_MAX_PREFIXES} read prefixes")
    if not 1 <= max_args <= 64:
        raise HullguardError("max_args must be between 1 and 64")
    have = (lambda name: True) if syscalls is None else (lambda name: name in syscalls)
    out: list[str] = []
    for sc in _EXECS:
        if not have(sc):
            continue
        out.append(f"""tracepoint:syscalls:sys_enter_{sc} /pid != $1/ {{
  $i = 0; $done = 0;
  unroll({max_args}) {{
    if ($done == 0) {{
      $p = *(args->argv + $i);
      if ($p == 0) {{ $done = 1; }} else {{ print(("a", pid, $i, str($p))); $i++; }}
    }}
  }}
  $more = 0;
  if ($done == 0) {{ if (*(args->argv + $i) != 0) {{ $more = 1; }} }}
  print(("e", pid, $i, $more, str(args->filename)));
}}
tracepoint:syscalls:sys_exit_{sc} /pid != $1/ {{
{_TTY}
  print(("x", pid, tid, args->ret, nsecs, curtask->real_parent->tgid, curtask->cred->euid.val,
         curtask->cred->egid.val, curtask->loginuid.val, $tty, comm));
}}
""")
    # Byte-exact prefix tests; the prefixes were checked above to need no escaping. Each string
    # literal takes BPF stack next to the 200-byte path, so the tests are spread over several
    # programs on the same tracepoint, each within its own 512-byte stack.
    # Measured with bpftrace 0.17: sixteen literals of up to 40 bytes fit one program, a longer
    # one (up to 63) only alone.
    groups: list[list[str]] = [[]]
    for p in read_prefixes:
        if groups[-1] and (len(p) > 40 or len(groups[-1]) >= 16 or len(groups[-1][0]) > 40):
            groups.append([])
        groups[-1].append(p)
    for sc, (path, flags, dfd) in _OPENS.items():
        if not have(sc):
            continue
        for n, group in enumerate(groups):
            reads = " || ".join(f'strncmp($s, "{p}", {len(p)}) == 0' for p in group) or "0"
            writes = f"@o[tid] = ((uint64){path}, $f, (int64){dfd});" if n == 0 else ""
            out.append(f"""tracepoint:syscalls:sys_enter_{sc} /pid != $1/ {{
  $f = (uint64){flags};
  if (($f & 3) != 0 || ($f & 64) != 0) {{
    {writes}
  }} else {{
    $s = str({path});
    if ({reads}) {{ @o[tid] = ((uint64){path}, $f, (int64){dfd}); }}
  }}
}}
""")
        out.append(f"""tracepoint:syscalls:sys_exit_{sc} /@o[tid].0 != 0/ {{
  $o = @o[tid];
  delete(@o[tid]);
  if (args->ret >= 0) {{
{_TTY}
    print(("f", tid, str($o.0)));
    print(("o", tid, pid, args->ret, nsecs, curtask->real_parent->tgid, curtask->cred->euid.val,
           curtask->cred->egid.val, curtask->loginuid.val, $o.1, $o.2, $tty, comm));
  }}
}}
""")
    if have("connect"):
        out.append("""tracepoint:syscalls:sys_enter_connect /pid != $1/ {
  $sa = (struct sockaddr_in6 *)args->uservaddr;
  $fam = (uint64)$sa->sin6_family;
  if ($fam == 2) {
    $s4 = (struct sockaddr_in *)args->uservaddr;
    @c[tid] = ($fam, (uint64)$s4->sin_port, (uint64)$s4->sin_addr.s_addr, (uint64)0, (int64)args->fd);
  }
  if ($fam == 10) {
    @c[tid] = ($fam, (uint64)$sa->sin6_port, *(uint64 *)((uint64)$sa + 8), *(uint64 *)((uint64)$sa + 16),
               (int64)args->fd);
  }
}
tracepoint:syscalls:sys_exit_connect /@c[tid].0 != 0/ {
  $c = @c[tid];
  delete(@c[tid]);
  if (args->ret == 0 || args->ret == -115) {
""" + _TTY + """
    print(("c", tid, pid, args->ret, nsecs, curtask->real_parent->tgid, curtask->cred->euid.val,
           curtask->cred->egid.val, curtask->loginuid.val, $c.0, $c.1, $c.2, $c.3, $c.4, $tty, comm));
  }
}
""")
    # bpftrace announces "attached_probes" before attaching; BEGIN runs once every probe is live.
    maps = [m for m, used in (("@o", any(have(sc) for sc in _OPENS)), ("@c", have("connect"))) if used]
    out.append('BEGIN { print(("ready", 1)); }\nEND { ' + " ".join(f"clear({m});" for m in maps) + " }\n")
    return "".join(out)


_SIGNEXT = re.compile("\uffff(ff[89a-f][0-9a-f])")


def bt_string(s: str) -> str:
    """A string as bpftrace printed it, back to the bytes the process gave, decoded as UTF-8.

    bpftrace escapes a byte >= 0x80 as ``\\uffffffXX`` (a sign-extended char), which JSON reads as
    U+FFFF followed by ``ffXX``. U+FFFF cannot otherwise occur: its UTF-8 bytes are all >= 0x80
    and would themselves have been escaped."""
    if "\uffff" not in s:
        return s
    raw = bytearray()
    pos = 0
    for m in _SIGNEXT.finditer(s):
        raw += s[pos:m.start()].encode("utf-8", "surrogatepass")
        raw.append(int(m.group(1)[2:], 16))
        pos = m.end()
    raw += s[pos:].encode("utf-8", "surrogatepass")
    return raw.decode("utf-8", "replace")


# ---- availability -----------------------------------------------------------------------------

@dataclass
class Availability:
    name: str
    available: bool
    reasons: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        return {"name": self.name, "available": self.available, "reasons": self.reasons, "notes": self.notes}


def _cap_eff(status_path: str = "/proc/self/status") -> int | None:
    try:
        with open(status_path, encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("CapEff:"):
                    return int(line.split()[1], 16)
    except (OSError, ValueError, IndexError):
        return None
    return None


def tracefs_dir(root: str = "/") -> str | None:
    for p in _TRACEFS:
        d = os.path.join(root, p)
        if os.path.isdir(os.path.join(d, "events")):
            return d
    return None


def _tracefs_mounts(root: str = "/") -> list[str]:
    raw = _read(os.path.join(root, "proc/self/mounts"), 1 << 20) or b""
    out = []
    for ln in raw.decode("utf-8", "replace").splitlines():
        parts = ln.split()
        if len(parts) >= 3 and parts[2] == "tracefs":
            out.append(parts[1])
    return out


def mount_tracefs() -> str:
    """Mount tracefs at /sys/kernel/tracing (root only); the mount point, or HullguardError."""
    target = "/sys/kernel/tracing"
    if os.geteuid() != 0:
        raise HullguardError("tracefs is not mounted and only root can mount it "
                             "(mount -t tracefs nodev /sys/kernel/tracing)")
    mount = shutil.which("mount")
    if mount is None:
        raise HullguardError("tracefs is not mounted and the mount command is missing")
    try:
        r = subprocess.run([mount, "-t", "tracefs", "nodev", target], capture_output=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise HullguardError(f"mounting tracefs at {target} failed: {exc}") from exc
    if r.returncode != 0 or tracefs_dir() is None:
        msg = r.stderr.decode("utf-8", "replace").strip().splitlines()
        raise HullguardError(f"mounting tracefs at {target} failed: {msg[-1] if msg else 'no events directory'}")
    return target


def available_syscalls(root: str = "/") -> set[str]:
    """Syscalls of ours that have both enter and exit tracepoints in tracefs."""
    d = tracefs_dir(root)
    if d is None:
        return set()
    names = set(_EXECS) | set(_OPENS) | {"connect"}
    base = os.path.join(d, "events", "syscalls")
    return {n for n in names if os.path.isdir(os.path.join(base, f"sys_enter_{n}"))
            and os.path.isdir(os.path.join(base, f"sys_exit_{n}"))}


def _bpftrace_version(exe: str) -> str | None:
    try:
        r = subprocess.run([exe, "--version"], capture_output=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    text = r.stdout.decode("utf-8", "replace").strip()
    return text or None


def attach_test(exe: str, timeout: float = 60.0) -> str | None:
    """None when bpftrace compiles and attaches a syscall tracepoint here, else why not."""
    prog = "tracepoint:syscalls:sys_enter_getppid { @n = count(); } interval:ms:100 { clear(@n); exit(); }"
    try:
        r = subprocess.run([exe, "-q", "-e", prog], capture_output=True, timeout=timeout, check=False,
                           env=_child_env())
    except subprocess.TimeoutExpired:
        return f"bpftrace did not attach a test probe within {timeout:.0f} s"
    except OSError as exc:
        return f"cannot run {exe}: {exc.strerror or exc}"
    if r.returncode == 0:
        return None
    why = _error_line(r.stderr.decode("utf-8", "replace").splitlines())
    return f"bpftrace cannot attach a syscall tracepoint: {why or f'exit status {r.returncode}'}"


def _error_line(lines: Any) -> str:
    """The line of bpftrace's stderr that says what went wrong: compile errors are followed by
    the offending source line and a ~~~ marker, so the last line is not always it."""
    useful = [ln.strip() for ln in lines if ln.strip() and not any(n in ln for n in _NOISE)]
    errors = [ln for ln in useful if "error" in ln.lower()]
    return (errors or useful or [""])[-1]


def check_ebpf(*, root: str = "/", release: str | None = None, bpftrace: str | None = None,
               probe: bool = True) -> Availability:
    """Every missing prerequisite, each as one sentence; ``available`` when none is missing.

    ``probe`` runs a real attach test once the static checks pass (it takes about a second)."""
    res = Availability("ebpf", False)
    exe = bpftrace or shutil.which("bpftrace")
    if exe is None:
        res.reasons.append("bpftrace is not installed (Debian/Ubuntu: apt install bpftrace)")
    elif not os.access(exe, os.X_OK):
        res.reasons.append(f"bpftrace: {exe} is not an executable file")
    else:
        ver = _bpftrace_version(exe)
        res.notes.append(f"backend: {ver or exe}")
    caps = _cap_eff(os.path.join(root, "proc/self/status"))
    if caps is None:
        res.reasons.append("cannot read the effective capabilities from /proc/self/status")
    elif not (caps >> _CAP_SYS_ADMIN) & 1 and not ((caps >> _CAP_BPF) & 1 and (caps >> _CAP_PERFMON) & 1):
        res.reasons.append("not permitted to load BPF programs (needs root, or CAP_BPF with CAP_PERFMON)")
    release = release or os.uname().release
    headers = os.path.join(root, "lib/modules", release, "build")
    btf = os.path.join(root, "sys/kernel/btf/vmlinux")
    if not os.path.exists(btf):
        if os.path.isdir(headers):
            res.notes.append(f"no BTF at {btf}: bpftrace falls back to the kernel headers at {headers}")
        else:
            res.reasons.append(f"no kernel BTF ({btf}) and no kernel headers ({headers}): bpftrace cannot "
                               "resolve struct sockaddr_in or task_struct")
    mounted = _tracefs_mounts(root)
    if tracefs_dir(root) is None and mounted:
        res.reasons.append(f"tracefs is mounted at {mounted[0]} but its events are not readable by this user "
                           "(needs root)")
    elif tracefs_dir(root) is None:
        res.reasons.append("tracefs is not mounted (neither /sys/kernel/tracing nor /sys/kernel/debug/tracing); "
                           "`runtime run --ebpf` mounts it when root, or: mount -t tracefs nodev /sys/kernel/tracing")
    else:
        have = available_syscalls(root)
        missing = sorted((set(_EXECS) | {"openat", "connect"}) - have)
        if missing:
            res.reasons.append("syscall tracepoints missing: " + ", ".join(missing)
                               + " (kernel built without CONFIG_FTRACE_SYSCALLS?)")
    if not res.reasons and probe and exe is not None:
        why = attach_test(exe)
        if why:
            res.reasons.append(why)
    if not res.reasons:
        res.available = True
        res.notes.append("exec, open (writes; reads under sensitive paths) and connect via bpftrace "
                         "(`runtime run --ebpf`)")
    return res


def _child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BPFTRACE_")}
    env.update({"BPFTRACE_STRLEN": str(STRLEN), "BPFTRACE_NO_USER_SYMBOLS": "1", "LC_ALL": "C"})
    return env


# ---- the source -------------------------------------------------------------------------------

def _ip4(n: int) -> str:
    return socket.inet_ntop(socket.AF_INET, struct.pack("<I", n & 0xFFFFFFFF))


def _ip6(lo: int, hi: int) -> str:
    addr = socket.inet_ntop(socket.AF_INET6, struct.pack("<QQ", lo & (2**64 - 1), hi & (2**64 - 1)))
    if addr.startswith("::ffff:") and "." in addr:
        return addr[7:]
    return addr


@dataclass(slots=True)
class _Proc:
    """What is known of a process: from its exec (seen by us) or from /proc."""
    pid: int
    ppid: int
    comm: str
    exe: str  # argv[0]
    exepath: str | None
    args: list[str]
    at: float
    vpid: int | None = None


@dataclass(slots=True)
class _Exec:
    args: list[str] = field(default_factory=list)
    filename: str | None = None
    more: bool = False
    entered: bool = False
    exit: list[Any] | None = None
    at: float = 0.0


class EbpfSource:
    """Runs bpftrace with :func:`build_script`; see the module docstring for what it reports."""

    name = "ebpf"

    def __init__(self, *, bpftrace: str | None = None, proc_root: str = "/proc",
                 read_prefixes: tuple[str, ...] = DEFAULT_READ_PREFIXES, max_args: int = MAX_ARGS,
                 max_rate: float = 20000.0, docker: DockerMetadata | None = None,
                 bundles: BundleMetadata | None = None, podman: DockerMetadata | None = None,
                 hostname: str | None = None, start_timeout: float = 60.0,
                 log: Callable[[str], None] | None = None) -> None:
        self.bpftrace = bpftrace or shutil.which("bpftrace") or "bpftrace"
        self.root = proc_root
        self.script = build_script(read_prefixes=read_prefixes, max_args=max_args,
                                   syscalls=available_syscalls() or None)
        self.max_args = max_args
        self.max_rate = max_rate
        self.metadata = ContainerMetadata(docker, podman, bundles)
        self.docker, self.podman, self.bundles = self.metadata.docker, self.metadata.podman, self.metadata.bundles
        self.hostname = hostname
        self.start_timeout = start_timeout
        self.log = log or (lambda msg: None)
        self.self_pid = os.getpid()
        self.emit: Callable[[dict[str, Any]], bool] = lambda ev: True
        self.finished = False
        self.error: str | None = None
        self.probes = 0
        self.counts = dict.fromkeys(("records", "exec", "open", "connect", "dropped", "rate_limited", "malformed",
                                     "lost", "unmatched", "truncated", "unresolved", "helper_errors"), 0)
        self._proc: subprocess.Popen[bytes] | None = None
        self._stderr: collections.deque[str] = collections.deque(maxlen=40)
        self._attached = threading.Event()
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._pending: dict[int, _Exec] = {}
        self._paths: dict[int, str] = {}
        self._procs: collections.OrderedDict[int, _Proc] = collections.OrderedDict()
        self._containers: collections.OrderedDict[int, tuple[CgroupInfo | None, dict[str, Any]]] = \
            collections.OrderedDict()
        self._user = _UserNames()
        self._tokens = max_rate
        self._last_refill = time.monotonic()
        # bpftrace's nsecs is CLOCK_MONOTONIC; this turns it into wall-clock nanoseconds.
        self._mono_offset = time.time_ns() - time.monotonic_ns()

    # ---- lifecycle ---------------------------------------------------------------------------

    def start(self, emit: Callable[[dict[str, Any]], bool]) -> None:
        self.emit = emit
        try:
            self._proc = subprocess.Popen(
                # The program goes in on stdin ("-"): on the command line it would make a multi-KiB
                # cmdline that trips "long command line" rules of a /proc source running alongside.
                [self.bpftrace, "-B", "line", "-f", "json", "-", str(self.self_pid)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_child_env(),
                start_new_session=True)
        except OSError as exc:
            raise HullguardError(f"cannot run bpftrace ({self.bpftrace}): {exc.strerror or exc}") from exc
        assert self._proc.stdin is not None
        try:
            self._proc.stdin.write(self.script.encode())
            self._proc.stdin.close()
        except OSError:
            pass  # it exited before reading; the reason is on its stderr, reported below
        # Both threads exist before either runs: the stdout reader joins the stderr reader at EOF.
        self._threads = [threading.Thread(target=target, name=nm, daemon=True) for target, nm in
                         ((self._read_stdout, "hullguard-ebpf"), (self._read_stderr, "hullguard-ebpf-err"))]
        for t in self._threads:
            t.start()
        end = time.monotonic() + self.start_timeout
        while not self._attached.wait(0.05):
            if self._proc.poll() is not None or time.monotonic() > end:
                why = self._why()
                self.stop()
                raise HullguardError(f"the eBPF source did not start: {why}")
        self.log(f"ebpf source ready: bpftrace attached {self.probes} probes")

    def _why(self) -> str:
        if self._proc is not None and self._proc.poll() is None:
            return f"bpftrace attached no probes within {self.start_timeout:.0f} s"
        for t in self._threads[1:]:
            t.join(timeout=2)
        code = self._proc.returncode if self._proc is not None else None
        return f"bpftrace exited with status {code}" + (f": {why}" if (why := _error_line(self._stderr)) else "")

    def stop(self) -> None:
        self._stopping.set()
        p = self._proc
        if p is not None and p.poll() is None:
            # SIGINT is how bpftrace expects to be stopped (it detaches and runs END); kill if it lingers.
            with contextlib.suppress(ProcessLookupError):
                p.send_signal(signal.SIGINT)
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGKILL)
                p.wait(timeout=5)
        for t in self._threads:
            t.join(timeout=5)
        if p is not None:
            for f in (p.stdout, p.stderr):
                if f is not None:
                    f.close()
        self.docker.close()
        self.podman.close()

    def stats(self) -> dict[str, int]:
        return dict(self.counts, pending=len(self._pending), known_processes=len(self._procs))

    @property
    def child_pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def _read_stderr(self) -> None:
        assert self._proc is not None and self._proc.stderr is not None
        for raw in iter(lambda: self._proc.stderr.readline(4096), b""):  # type: ignore[union-attr]
            line = raw.decode("utf-8", "replace").strip()
            if line:
                self._stderr.append(line[:500])

    def _read_stdout(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        out = self._proc.stdout
        while True:
            raw = out.readline(MAX_LINE)
            if not raw:
                break
            if not raw.endswith(b"\n"):
                # Longer than any record of ours: skip to the end of the line.
                self.counts["malformed"] += 1
                while raw and not raw.endswith(b"\n"):
                    raw = out.readline(MAX_LINE)
                continue
            try:
                self.handle_line(raw)
            except Exception as exc:  # one bad record must not end the source
                self.counts["malformed"] += 1
                self.log(f"ebpf source: record skipped ({type(exc).__name__}: {exc})")
        self._proc.wait()
        self.finished = True
        if not self._stopping.is_set():
            self.error = self._why()
            if self._attached.is_set():  # a failed start is reported by start() itself
                self.log(f"ebpf source stopped: {self.error}")

    # ---- records -----------------------------------------------------------------------------

    def handle_line(self, raw: bytes) -> None:
        if not raw.strip():
            return  # bpftrace separates some messages with blank lines
        try:
            doc = _decode(raw)
        except (msgspec.DecodeError, ValueError, UnicodeDecodeError):
            self.counts["malformed"] += 1
            return
        if not isinstance(doc, dict):
            self.counts["malformed"] += 1
            return
        kind = doc.get("type")
        data = doc.get("data")
        if kind == "attached_probes":
            if isinstance(data, dict) and isinstance(data.get("probes"), int):
                self.probes = data["probes"]
            return
        if kind == "helper_error":
            self.counts["helper_errors"] += 1  # a failed read in a probe (bpftrace -k); the record is gone
            return
        if kind == "lost_events" and isinstance(data, dict):
            n = data.get("events")
            self.counts["lost"] += n if isinstance(n, int) else 1
            return
        if kind != "value" or not isinstance(data, list) or not data or not isinstance(data[0], str):
            self.counts["malformed"] += 1
            return
        self.counts["records"] += 1
        try:
            self._record(data)
        except (ValueError, TypeError, IndexError):
            self.counts["malformed"] += 1

    def _record(self, d: list[Any]) -> None:
        tag = d[0]
        if _ARITY.get(tag) != len(d):
            self.counts["malformed"] += 1
            return
        if tag == "ready":
            self._attached.set()
        elif tag == "a":
            tid, idx, text = int(d[1]), int(d[2]), str(d[3])
            ex = self._pending_for(tid, reset=idx == 0)
            if len(ex.args) == idx and idx < self.max_args:
                ex.args.append(self._cut(bt_string(text)))
        elif tag == "e":
            tid, _n, more, fn = int(d[1]), int(d[2]), int(d[3]), str(d[4])
            ex = self._pending_for(tid)
            ex.filename, ex.more, ex.entered = self._cut(bt_string(fn)), bool(more), True
            if ex.exit is not None:
                self._finish_exec(tid, ex)
        elif tag == "x":
            tid = int(d[1])
            ex = self._pending_for(tid)
            ex.exit = d
            if ex.entered:
                self._finish_exec(tid, ex)
        elif tag == "f":
            # The path of the "o" record that follows from the same probe run (one CPU buffer,
            # so nothing of the same thread comes between them).
            tid = int(d[1])
            if tid not in self._paths and len(self._paths) >= MAX_PENDING:
                self._paths.clear()
                self.counts["unmatched"] += MAX_PENDING
            self._paths[tid] = str(d[2])
        elif tag == "o":
            path = self._paths.pop(int(d[1]), None)
            if path is None:
                self.counts["unmatched"] += 1
            else:
                self._open(d, path)
        elif tag == "c":
            self._connect(d)

    def _cut(self, s: str) -> str:
        if len(s.encode("utf-8", "replace")) >= STRLEN - 1:
            self.counts["truncated"] += 1
        return s

    def _pending_for(self, tid: int, reset: bool = False) -> _Exec:
        now = time.monotonic()
        ex = self._pending.get(tid)
        if ex is None or (reset and ex.entered) or now - ex.at > PENDING_SECONDS:
            if ex is not None and ex.exit is None:
                self.counts["unmatched"] += 1
            if ex is None and len(self._pending) >= MAX_PENDING:
                self._expire(now)
            ex = _Exec(at=now)
            self._pending[tid] = ex
        return ex

    def _expire(self, now: float) -> None:
        old = [t for t, e in self._pending.items() if now - e.at > PENDING_SECONDS]
        if len(old) < MAX_PENDING // 4:
            old = list(self._pending)[: MAX_PENDING // 4]
        for t in old:
            del self._pending[t]
            self.counts["unmatched"] += 1

    def _allow(self) -> bool:
        now = time.monotonic()
        self._tokens = min(self.max_rate, self._tokens + (now - self._last_refill) * self.max_rate)
        self._last_refill = now
        if self._tokens < 1:
            self.counts["rate_limited"] += 1
            return False
        self._tokens -= 1
        return True

    def _send(self, ev: dict[str, Any], kind: str) -> None:
        self.counts[kind] += 1
        if not self.emit(ev):
            self.counts["dropped"] += 1

    def _ours(self, pid: int) -> bool:
        return pid == self.self_pid or pid == self.child_pid

    # ---- events ------------------------------------------------------------------------------

    def _finish_exec(self, tid: int, ex: _Exec) -> None:
        self._pending.pop(tid, None)
        x = ex.exit
        assert x is not None
        _tag, pid, _tid, ret, ns, ppid, euid, egid, loginuid, tty, comm = x[:11]
        if int(ret) != 0 or self._ours(int(pid)):
            return
        pid, ppid = int(pid), int(ppid)
        comm = bt_string(str(comm))
        args = list(ex.args)
        if ex.more:
            args.append("...")
            self.counts["truncated"] += 1
        filename = ex.filename or ""
        exepath = _readlink(f"{self.root}/{pid}/exe")
        if exepath is None and filename.startswith("/"):
            exepath = filename
        info = _Proc(pid, ppid, comm, args[0] if args else comm, exepath, args, time.monotonic(),
                     self._vpid(pid))
        self._remember(info)
        # The new program may sit in a new cgroup only if the runtime moved it before exec;
        # what /proc says now is the truth for this pid.
        self._containers.pop(pid, None)
        if not self._allow():
            return
        ev = self._common(info, "execve", int(ns), int(euid), int(egid), int(loginuid), int(tty))
        ev["evt.category"] = "process"
        ev["evt.arg.filename"] = filename
        self._send(ev, "exec")

    def _open(self, d: list[Any], path: str) -> None:
        _t, _tid, pid, fd, ns, ppid, euid, egid, loginuid, flags, dfd, tty, comm = d[:13]
        pid, fd, flags, dfd = int(pid), int(fd), int(flags), int(dfd) & 0xFFFFFFFF
        if dfd >= 1 << 31:  # the tracepoint hands the int over zero-extended
            dfd -= 1 << 32
        if self._ours(pid) or not self._allow():
            return
        path = bt_string(str(path))
        if not path.startswith("/"):
            base = _readlink(f"{self.root}/{pid}/cwd") if dfd == _AT_FDCWD else \
                _readlink(f"{self.root}/{pid}/fd/{dfd}")
            if base is not None:
                path = os.path.normpath(os.path.join(base, path))
            else:
                self.counts["unresolved"] += 1  # exited already: the path stays relative
        path = self._cut(path)
        info = self._lookup(pid, int(ppid), bt_string(str(comm)))
        ev = self._common(info, "openat", int(ns), int(euid), int(egid), int(loginuid), int(tty))
        acc = flags & _O_ACCMODE
        names = ["O_RDWR" if acc == _O_RDWR else "O_WRONLY" if acc == _O_WRONLY else "O_RDONLY"]
        names += [n for bit, n in _FLAG_NAMES if flags & bit == bit]
        ev.update({"evt.category": "file", "fd.num": fd, "fd.name": path, "fd.typechar": "f", "fd.type": "file",
                   "evt.arg.flags": "|".join(names), "evt.arg.fd": fd, "evt.rawres": fd,
                   "evt.is_open_write": "true" if acc in (_O_WRONLY, _O_RDWR) else "false",
                   "evt.is_open_read": "true" if acc in (0, _O_RDWR) else "false",
                   "evt.is_open_create": "true" if flags & _O_CREAT else "false"})
        self._send(ev, "open")

    def _connect(self, d: list[Any]) -> None:
        _t, _tid, pid, ret, ns, ppid, euid, egid, loginuid, fam, port, a, b, fd, tty, comm = d[:16]
        pid, fam = int(pid), int(fam)
        if self._ours(pid) or not self._allow():
            return
        port = int(port)
        dport = ((port & 0xFF) << 8) | ((port >> 8) & 0xFF)
        dip = _ip4(int(a)) if fam == 2 else _ip6(int(a), int(b))
        info = self._lookup(pid, int(ppid), bt_string(str(comm)))
        sip, sport, l4 = self._local_end(pid, dip, dport)
        ev = self._common(info, "connect", int(ns), int(euid), int(egid), int(loginuid), int(tty))
        v6 = ":" in dip
        ev.update({"evt.category": "net", "fd.num": int(fd), "fd.typechar": "6" if v6 else "4",
                   "fd.type": "ipv6" if v6 else "ipv4", "fd.sockfamily": "ip", "fd.dip": dip, "fd.dport": dport,
                   "fd.sip": sip, "fd.sport": sport, "fd.rip": dip, "fd.rport": dport, "fd.lip": sip,
                   "fd.lport": sport, "fd.cip": sip, "fd.cport": sport, "fd.connected": "true",
                   "evt.rawres": int(ret), "fd.name": f"{sip or ''}:{sport or ''}->{dip}:{dport}"})
        if l4:
            ev["fd.l4proto"] = l4
        self._send(ev, "connect")

    def _local_end(self, pid: int, dip: str, dport: int) -> tuple[str | None, int | None, str | None]:
        """The socket's local address and protocol, from the process's own network tables."""
        from hullguard.runtime.sources.proc import parse_net_table

        for proto in ("tcp", "tcp6", "udp", "udp6"):
            raw = _read(f"{self.root}/{pid}/net/{proto}", 4 * 1024 * 1024)
            if not raw:
                continue
            for lip, lport, rip, rport, _st in parse_net_table(raw.decode("ascii", "replace"), proto).values():
                if rport == dport and rip == dip:
                    return lip, lport, proto.rstrip("6")
        return None, None, None

    def _vpid(self, pid: int) -> int | None:
        """The pid inside the process's own pid namespace (1 for a container's init), read once at
        exec and kept with the process, so opens and connects cost no extra read."""
        status = _read(f"{self.root}/{pid}/status", 16384)
        for ln in (status or b"").split(b"\n"):
            if ln.startswith(b"NSpid:"):
                try:
                    return int(ln.split()[-1])
                except (ValueError, IndexError):
                    return None
        return None

    def _remember(self, info: _Proc) -> None:
        self._procs[info.pid] = info
        self._procs.move_to_end(info.pid)
        while len(self._procs) > 8192:
            self._procs.popitem(last=False)

    def _from_proc(self, pid: int) -> _Proc | None:
        raw = _read(f"{self.root}/{pid}/stat", 4096)
        st = parse_stat(raw) if raw else None
        if st is None:
            return None
        cmd = _read(f"{self.root}/{pid}/cmdline", 4096) or b""
        args = [a.decode("utf-8", "replace") for a in cmd.rstrip(b"\0").split(b"\0")] if cmd else []
        return _Proc(pid, st[1], st[0], args[0] if args else st[0], _readlink(f"{self.root}/{pid}/exe"), args,
                     time.monotonic())

    def _lookup(self, pid: int, ppid: int = 0, comm: str | None = None) -> _Proc:
        """A process's details: our own record of its exec when fresh, else /proc, else the bare
        facts the probe gave (pid, ppid, comm)."""
        got = self._procs.get(pid)
        if got is not None and (comm is None or got.comm == comm) \
                and (got.args or time.monotonic() - got.at < CACHE_SECONDS):
            return got
        info = self._from_proc(pid)
        if info is None or (comm is not None and info.comm != comm):
            info = got if got is not None and (comm is None or got.comm == comm) else \
                _Proc(pid, ppid, comm or "", comm or "", None, [], time.monotonic())
        if ppid:
            info.ppid = ppid
        self._remember(info)
        return info

    def _parent(self, pid: int) -> _Proc | None:
        got = self._procs.get(pid)
        if got is not None and time.monotonic() - got.at < CACHE_SECONDS:
            return got
        info = self._from_proc(pid)
        if info is None:
            return got
        self._remember(info)
        return info

    def _container(self, pid: int, ppid: int) -> tuple[CgroupInfo | None, dict[str, Any]]:
        got = self._containers.get(pid)
        if got is not None:
            return got
        raw = _read(f"{self.root}/{pid}/cgroup", 65536)
        if raw is None:
            # Gone already: a short-lived child sits in its parent's cgroup.
            return self._containers.get(ppid) or self._container_of_live(ppid)
        cinfo = parse_cgroup(raw.decode("utf-8", "replace"))
        meta = self.metadata.get(cinfo) if cinfo is not None else {}
        self._containers[pid] = (cinfo, meta)
        while len(self._containers) > 8192:
            self._containers.popitem(last=False)
        return cinfo, meta

    def _container_of_live(self, pid: int) -> tuple[CgroupInfo | None, dict[str, Any]]:
        if pid <= 0 or not os.path.exists(f"{self.root}/{pid}/cgroup"):
            return None, {}
        return self._container(pid, 0)

    def _common(self, info: _Proc, etype: str, ns: int, euid: int, egid: int, loginuid: int,
                tty: int) -> dict[str, Any]:
        rest = " ".join(info.args[1:])
        ev: dict[str, Any] = {
            "_source": "syscall", "evt.type": etype, "evt.dir": "<", "evt.time": ns + self._mono_offset,
            "proc.pid": info.pid, "proc.ppid": info.ppid, "proc.name": info.comm, "proc.exe": info.exe,
            "proc.exepath": info.exepath, "proc.args": rest, "proc.cmdline": f"{info.comm} {rest}".rstrip(),
            "user.uid": euid, "user.name": self._user(euid), "group.gid": egid,
            "user.loginuid": -1 if loginuid == 4294967295 else loginuid, "proc.tty": tty,
        }
        if self.hostname:
            ev["_hostname"] = self.hostname
        if info.vpid is not None:
            ev["proc.vpid"] = info.vpid
        cwd = _readlink(f"{self.root}/{info.pid}/cwd")
        if cwd is not None:
            ev["proc.cwd"] = cwd if cwd.endswith("/") else cwd + "/"
        cinfo, meta = self._container(info.pid, info.ppid)
        ev.update(container_fields(cinfo, meta))
        anc: list[str] = []
        apid: list[int] = []
        parent = self._parent(info.ppid) if info.ppid > 0 else None
        if parent is not None:
            prest = " ".join(parent.args[1:])
            ev.update({"proc.pname": parent.comm, "proc.pexe": parent.exe, "proc.pexepath": parent.exepath,
                       "proc.pcmdline": f"{parent.comm} {prest}".rstrip()})
        cur = parent
        seen: set[int] = set()
        while cur is not None and len(anc) < MAX_ANCESTORS and cur.pid not in seen:
            seen.add(cur.pid)
            anc.append(cur.comm)
            apid.append(cur.pid)
            if cur.ppid <= 0 or cur.ppid == cur.pid:
                break
            cur = self._parent(cur.ppid)
        ev["_anc"], ev["_apid"] = anc, apid
        return ev
