"""The bpftrace source against real processes this test starts, through the agent and Falco-syntax rules.

Skips with the host's exact reason when eBPF cannot run here (not root, no BTF, no tracefs,
bpftrace cannot attach): that is a property of the kernel, not a missing tool. A missing bpftrace
binary fails when HULLGUARD_REQUIRE_INTEGRATION is set, because .ci/setup.sh installs it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from hullguard.runtime.agent import Agent
from hullguard.runtime.engine import Engine
from hullguard.runtime.rules import load_rules
from hullguard.runtime.sources.containers import BundleMetadata, DockerMetadata
from hullguard.runtime.sources.ebpf import DEFAULT_READ_PREFIXES, STRLEN, EbpfSource, check_ebpf
from tests.runtime.sources.conftest import ListSink, wait_for


def _require_ebpf() -> None:
    if shutil.which("bpftrace") is None:
        if os.environ.get("HULLGUARD_REQUIRE_INTEGRATION", "").strip().lower() not in ("", "0", "false", "no"):
            pytest.fail("HULLGUARD_REQUIRE_INTEGRATION is set but bpftrace is not installed (.ci/setup.sh)",
                        pytrace=False)
        pytest.skip("bpftrace is not installed")
    avail = check_ebpf()
    if not avail.available:
        pytest.skip("eBPF cannot run on this host: " + "; ".join(avail.reasons))


def _source(**kw: Any) -> EbpfSource:
    return EbpfSource(docker=DockerMetadata("/nonexistent/docker.sock"), podman=DockerMetadata("/nonexistent/p.sock"),
                      bundles=BundleMetadata("/nonexistent"), **kw)


class Recorder:
    """Wraps the source so the test sees every event the agent got."""

    def __init__(self, src: EbpfSource) -> None:
        self.src = src
        self.name = src.name
        self.events: list[dict[str, Any]] = []
        self.lock = threading.Lock()

    def start(self, emit: Callable[[dict[str, Any]], bool]) -> None:
        def tee(ev: dict[str, Any]) -> bool:
            with self.lock:
                self.events.append(ev)
            return emit(ev)
        self.src.start(tee)

    def stop(self) -> None:
        self.src.stop()

    def stats(self) -> dict[str, int]:
        return self.src.stats()

    def find(self, pred: Callable[[dict[str, Any]], bool], timeout: float = 15.0) -> list[dict[str, Any]]:
        """Events matching pred, waiting for at least one; the timeout only bounds a failing test."""
        def hits() -> list[dict[str, Any]]:
            with self.lock:
                return [e for e in self.events if pred(e)]
        wait_for(lambda: bool(hits()), timeout)
        return hits()


class Live:
    def __init__(self, rec: Recorder, sink: ListSink, etc: Path, port: int, marker: str) -> None:
        self.rec, self.sink, self.etc, self.port, self.marker = rec, sink, etc, port, marker

    def alerts(self, rule: str, timeout: float = 15.0) -> list[Any]:
        wait_for(lambda: rule in self.sink.rules(), timeout)
        with self.sink.lock:
            return [a for a in self.sink.alerts if a.rule == rule]


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    _require_ebpf()
    etc = tmp_path_factory.mktemp("ebpfroot") / "etc"
    etc.mkdir()
    marker = f"hgm{uuid.uuid4().hex[:10]}"
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    port = srv.getsockname()[1]
    rules = f"""
- macro: spawned_process
  condition: (evt.type in (execve, execveat) and evt.dir = <)
- macro: open_write
  condition: (evt.type in (open, openat, openat2) and evt.is_open_write = true and fd.typechar = 'f')
- list: shell_binaries
  items: [sh, bash, dash]
- rule: Shell spawned by shell
  desc: a shell whose parent is a shell
  condition: spawned_process and proc.name in (shell_binaries) and proc.pname in (shell_binaries)
             and proc.cmdline contains {marker}
  output: shell %proc.cmdline parent=%proc.pname gparent=%proc.aname[2] pid=%proc.pid ppid=%proc.ppid
  priority: WARNING
- rule: Write below temp etc
  desc: a file below the test's etc opened for writing
  condition: open_write and fd.directory = {etc}
  output: write %fd.name by %proc.name flags=%evt.arg.flags
  priority: ERROR
- rule: Read secret below temp etc
  desc: a read-only open of the test's secret
  condition: evt.type in (open, openat, openat2) and evt.is_open_read = true and evt.is_open_write = false
             and fd.name = {etc}/secret
  output: read %fd.name by %proc.name
  priority: WARNING
- rule: Connect to test port
  desc: outbound TCP connection to the test's listener
  condition: evt.type = connect and evt.dir = < and fd.dport = {port} and fd.dip in (127.0.0.1, "::1")
  output: connection %fd.name by %proc.name (%proc.cmdline)
  priority: NOTICE
"""
    engine = Engine(load_rules(texts=[("ebpf_rules.yaml", rules)]), rule_matching="all", hostname="t")
    rec = Recorder(_source(read_prefixes=(*DEFAULT_READ_PREFIXES, f"{etc}/secret")))
    sink = ListSink()
    agent = Agent(engine, [rec], sink, queue_size=100000)
    t = threading.Thread(target=agent.run, daemon=True)
    t.start()
    # The agent starts the source on its thread; bpftrace compiles for a few seconds first.
    if not wait_for(lambda: rec.src._attached.is_set() or rec.src.finished, 90):
        pytest.fail("bpftrace did not start within 90 s")
    if rec.src.finished:
        pytest.fail(f"bpftrace stopped at start: {rec.src.error}")
    accepter = threading.Thread(target=_accept_all, args=(srv,), daemon=True)
    accepter.start()
    yield Live(rec, sink, etc, port, marker)
    agent.stop()
    t.join(timeout=20)
    srv.close()


def _accept_all(srv: socket.socket) -> None:
    while True:
        try:
            conn, _ = srv.accept()
        except OSError:
            return
        conn.close()


def test_short_lived_shell_spawned_by_shell(live: Live) -> None:
    m = f"{live.marker}a"
    # The inner shell lives for microseconds: a /proc poller would miss it, tracing does not.
    outer = subprocess.run(["sh", "-c", f"sh -c 'true {m}'; true"], check=True)
    assert outer.returncode == 0
    hits = live.rec.find(lambda e: e["evt.type"] == "execve" and e.get("proc.pname") == "sh"
                         and m in e.get("proc.cmdline", ""))
    assert hits, live.rec.stats()
    ev = hits[0]
    outer_ev = live.rec.find(lambda e: e["evt.type"] == "execve" and e.get("proc.pid") == ev["proc.ppid"])
    assert outer_ev and outer_ev[0]["proc.ppid"] == os.getpid()
    assert ev["proc.name"] == "sh" and ev["proc.args"] == f"-c true {m}" and ev["proc.exe"] == "sh"
    assert ev["proc.exepath"].endswith("sh")
    assert ev["_apid"][:2] == [ev["proc.ppid"], os.getpid()] and ev["_anc"][0] == "sh"
    assert ev["user.uid"] == os.geteuid() and ev["container.id"] == "host"
    alerts = live.alerts("Shell spawned by shell")
    mine = [a for a in alerts if m in a.output_fields["proc.cmdline"]]
    assert len(mine) == 1 and mine[0].output_fields["proc.aname[2]"] == ev["_anc"][1]


def test_write_below_etc_and_sensitive_read(live: Live) -> None:
    (live.etc / "hosts").write_text("127.0.0.1 localhost\n")
    (live.etc / "secret").write_text("s3cret\n")
    subprocess.run(["sh", "-c", f"echo x > {live.etc}/passwd; cat {live.etc}/hosts {live.etc}/secret >/dev/null"],
                   check=True)
    writes = live.rec.find(lambda e: e["evt.type"] == "openat" and e.get("fd.name") == f"{live.etc}/passwd")
    reads = live.rec.find(lambda e: e.get("fd.name") == f"{live.etc}/secret")
    assert writes and reads
    w = writes[0]
    assert w["evt.arg.flags"].split("|")[:1] == ["O_WRONLY"] and "O_CREAT" in w["evt.arg.flags"]
    assert w["evt.is_open_create"] == "true" and w["proc.name"] == "sh" and w["fd.num"] >= 0
    assert reads[0]["proc.name"] == "cat" and reads[0]["evt.is_open_write"] == "false"
    assert [a.output_fields["fd.name"] for a in live.alerts("Write below temp etc")] == [f"{live.etc}/passwd"]
    assert [a.output_fields["fd.name"] for a in live.alerts("Read secret below temp etc")] == [f"{live.etc}/secret"]
    # A read outside the sensitive prefixes is filtered in the kernel and never reported.
    assert not [e for e in live.rec.events if e.get("fd.name") == f"{live.etc}/hosts"]


def test_relative_path_is_resolved_against_cwd(live: Live) -> None:
    # The cwd comes from /proc, so the writer stays alive (blocked on stdin) until it is seen.
    p = subprocess.Popen(["sh", "-c", "echo y > relative.txt; read x"], cwd=live.etc, stdin=subprocess.PIPE)
    try:
        hits = live.rec.find(lambda e: e.get("fd.name") == f"{live.etc}/relative.txt")
    finally:
        assert p.stdin is not None
        p.stdin.close()
        p.wait()
    assert hits and hits[0]["evt.is_open_write"] == "true" and hits[0]["proc.cwd"] == f"{live.etc}/"


def test_connect_to_loopback_port(live: Live) -> None:
    code = f"import socket; socket.create_connection(('127.0.0.1', {live.port})).close()"
    p = subprocess.run([sys.executable, "-c", code], check=True)
    assert p.returncode == 0
    hits = live.rec.find(lambda e: e["evt.type"] == "connect" and e.get("fd.dport") == live.port
                         and e.get("fd.typechar") == "4")
    assert hits
    ev = hits[0]
    assert ev["fd.dip"] == "127.0.0.1" and ev["fd.type"] == "ipv4"
    assert ev["proc.name"].startswith("python")
    alerts = [a for a in live.alerts("Connect to test port") if a.output_fields["fd.name"].endswith(f"->127.0.0.1:"
                                                                                                  f"{live.port}")]
    assert alerts


def test_connect_ipv6_address_decoded(live: Live) -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6 sockets in this Python")
    # Nothing listens on ::1 at this port: the connect fails (ECONNREFUSED), and failed connects
    # are not events; a non-blocking connect is in progress, which counts like Falco's.
    code = (f"import socket; s = socket.socket(socket.AF_INET6); s.setblocking(False)\n"
            f"try: s.connect(('::1', {live.port}, 0, 0))\nexcept OSError: pass")
    try:
        subprocess.run([sys.executable, "-c", code], check=True)
    except subprocess.CalledProcessError:
        pytest.skip("IPv6 loopback is not usable here")
    hits = live.rec.find(lambda e: e["evt.type"] == "connect" and e.get("fd.dport") == live.port
                         and e.get("fd.typechar") == "6", timeout=5)
    if not hits:
        pytest.skip("the IPv6 connect failed at once (no ::1 on this host)")
    assert hits[0]["fd.dip"] == "::1" and hits[0]["fd.type"] == "ipv6" and hits[0]["evt.rawres"] in (0, -115)


HOSTILE_ARGS = [
    'x", "proc.name": "evil',  # JSON-looking
    "line1\nline2\r\n{\"type\": \"value\", \"data\": [\"x\", 1]}",  # a forged record after a newline
    'q"]]} \\ \\u0041 \\"',  # quotes, brackets, backslashes and a literal \u escape
    "tab\there|pipe\x01\x1f",  # control characters and a classic delimiter
    "caf\u00e9 \u2603",  # non-ASCII UTF-8
]


def test_hostile_argv_and_filenames_do_not_forge_fields(live: Live) -> None:
    m = f"{live.marker}h"
    long_arg = "L" * 1000
    argv = ["/bin/true", m, *HOSTILE_ARGS, long_arg]
    subprocess.run(argv, check=True)
    hits = live.rec.find(lambda e: e["evt.type"] == "execve" and e.get("proc.name") == "true"
                         and e.get("proc.args", "").startswith(m))
    assert len(hits) == 1, hits
    ev = hits[0]
    # The long argument is cut at bpftrace's string size; everything else arrives byte-exact.
    expected = " ".join([m, *HOSTILE_ARGS, "L" * (STRLEN - 1)])
    assert ev["proc.args"] == expected
    assert ev["proc.exe"] == "/bin/true" and ev["proc.name"] == "true" and ev["evt.arg.filename"] == "/bin/true"
    assert ev["proc.pname"] != "evil" and live.rec.src.counts["truncated"] >= 1
    # A file name with the same payloads, opened for writing by a process whose comm is hostile too.
    name = f'{m}\n", "fd.name": "evil"]\\\u00e9|'
    comm = 'c"]\nx'
    code = ("import ctypes, sys; ctypes.CDLL(None).prctl(15, sys.argv[2].encode(), 0, 0, 0); "
            "open(sys.argv[1], 'w').close()")
    subprocess.run([sys.executable, "-c", code, str(live.etc / name), comm], check=True)
    files = live.rec.find(lambda e: e["evt.type"] == "openat" and m in e.get("fd.name", ""))
    assert [e["fd.name"] for e in files] == [f"{live.etc}/{name}"]
    assert files[0]["proc.name"] == comm
    assert not [e for e in live.rec.events if e.get("fd.name") == "evil" or e.get("proc.name") == "evil"]


def test_argv_beyond_the_limit_is_marked(live: Live) -> None:
    m = f"{live.marker}n"
    src = live.rec.src
    subprocess.run(["/bin/true", m, *[str(i) for i in range(src.max_args + 5)]], check=True)
    hits = live.rec.find(lambda e: e["evt.type"] == "execve" and e.get("proc.args", "").startswith(m))
    assert hits
    args = hits[0]["proc.args"].split(" ")
    assert len(args) == src.max_args and args[-1] == "..." and args[:3] == [m, "0", "1"]


def test_exec_from_a_non_leader_thread(live: Live) -> None:
    m = f"{live.marker}t"
    # The exec'ing thread becomes the process leader: its thread id changes between entry and exit.
    code = ("import os, sys, threading\n"
            "t = threading.Thread(target=lambda: os.execv('/bin/true', ['/bin/true', sys.argv[1]]))\n"
            "t.start(); t.join()")
    p = subprocess.run([sys.executable, "-c", code, m], check=True)
    assert p.returncode == 0
    hits = live.rec.find(lambda e: e["evt.type"] == "execve" and e.get("proc.args") == m)
    assert len(hits) == 1 and hits[0]["proc.name"] == "true" and hits[0]["proc.ppid"] == os.getpid()


def test_controlling_terminal(live: Live) -> None:
    if shutil.which("script") is None:
        pytest.skip("script(1) from util-linux is needed to run a command on a pseudo-terminal")
    m = f"{live.marker}y"
    # script(1) gives the command a fresh pty; it prints that terminal's tty_nr from /proc as proof.
    out = subprocess.run(["script", "-qc", f"/bin/true {m}; cut -d' ' -f7 /proc/self/stat", "/dev/null"],
                         check=True, capture_output=True, text=True, stdin=subprocess.DEVNULL).stdout
    tty_nr = int(out.split()[-1])
    # A new session has no controlling terminal, whatever the test runner has.
    subprocess.run(["/bin/true", f"{m}n"], check=True, stdin=subprocess.DEVNULL, start_new_session=True)
    on = live.rec.find(lambda e: e["evt.type"] == "execve" and e.get("proc.args") == m)
    off = live.rec.find(lambda e: e["evt.type"] == "execve" and e.get("proc.args") == f"{m}n")
    assert on and off and tty_nr != 0
    assert on[0]["proc.tty"] == tty_nr and off[0]["proc.tty"] == 0


def test_failed_exec_is_not_an_event(live: Live) -> None:
    m = f"/nonexistent/{live.marker}f"
    with pytest.raises(OSError):
        subprocess.run([m], check=False)
    # A later exec proves the earlier one had time to arrive.
    subprocess.run(["/bin/true", f"{live.marker}after"], check=True)
    assert live.rec.find(lambda e: f"{live.marker}after" in e.get("proc.args", ""))
    assert not [e for e in live.rec.events if e.get("evt.arg.filename") == m]


def test_stop_kills_the_child_and_a_dead_bpftrace_is_reported() -> None:
    _require_ebpf()
    logs: list[str] = []
    src = _source(log=logs.append)
    src.start(lambda ev: True)
    child = src.child_pid
    assert child is not None and src.probes > 0
    os.kill(child, signal.SIGKILL)
    assert wait_for(lambda: src.finished, 20)
    assert src.error is not None and "exited with status -9" in src.error
    assert any("ebpf source stopped" in line for line in logs)
    src.stop()
    # A clean stop: the child has been reaped and the threads are gone.
    clean = _source()
    clean.start(lambda ev: True)
    pid = clean.child_pid
    assert pid is not None
    clean.stop()
    assert clean._proc is not None and clean._proc.returncode is not None and clean.error is None
    assert not any(t.is_alive() for t in clean._threads)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_cli_runtime_run_ebpf(tmp_path: Path) -> None:
    _require_ebpf()
    m = f"hgcli{uuid.uuid4().hex[:8]}"
    rules = tmp_path / "r.yaml"
    rules.write_text(f"""
- rule: Marked exec
  desc: the test's marked process ran
  condition: evt.type = execve and proc.cmdline contains {m}
  output: ran %proc.cmdline
  priority: WARNING
""")
    cmd = [sys.executable, "-m", "hullguard.cli.main", "runtime", "run", "--ebpf", "--rules", str(rules),
           "--duration", "60s", "--format", "json", "--stats", "json"]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert p.stderr is not None
    err: list[str] = []
    for line in p.stderr:
        err.append(line)
        if "ebpf source ready" in line:
            break
    assert any("ebpf source ready" in line for line in err), err
    subprocess.run(["/bin/true", m], check=True)
    # Give the event a moment to pass through, then stop the agent as an operator would.
    time.sleep(2)
    p.send_signal(signal.SIGINT)
    out, rest = p.communicate(timeout=60)
    assert p.returncode == 0, rest
    alerts = [json.loads(line) for line in out.splitlines() if line.strip()]
    assert [(a["rule"], a["output_fields"]["proc.cmdline"]) for a in alerts] == [("Marked exec", f"true {m}")]
    stats = json.loads(rest.strip().splitlines()[-1])
    assert stats["sources"]["ebpf"]["exec"] >= 1 and stats["dropped_total"] == 0
