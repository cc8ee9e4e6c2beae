"""The /proc source against real processes this test starts, evaluated by Falco-syntax rules."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hullguard.runtime.engine import Engine
from hullguard.runtime.rules import load_rules
from hullguard.runtime.sources.containers import BundleMetadata, DockerMetadata
from hullguard.runtime.sources.proc import ProcSource, parse_net_table, parse_stat

pytestmark = pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs a Linux /proc")


class Collector:
    def __init__(self, src: ProcSource) -> None:
        self.src = src
        self.events: list[dict[str, Any]] = []
        src.emit = self._emit

    def _emit(self, ev: dict[str, Any]) -> bool:
        self.events.append(ev)
        return True

    def until(self, pred: Any, timeout: float = 10.0) -> list[dict[str, Any]]:
        """Poll /proc until an event satisfies pred; the timeout only bounds a failing test."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            self.src.poll()
            hits = [e for e in self.events if pred(e)]
            if hits:
                return hits
            time.sleep(0.02)
        return []


@pytest.fixture
def collector() -> Iterator[Collector]:
    src = ProcSource(interval=0.02, docker=DockerMetadata("/nonexistent/docker.sock"),
                     bundles=BundleMetadata("/nonexistent"))
    src.prime()
    yield Collector(src)


@pytest.fixture
def procs() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for p in started:
        p.kill()
        p.wait()


def rules_engine(text: str) -> Engine:
    return Engine(load_rules(texts=[("test_rules.yaml", text)]), rule_matching="all", hostname="t")


def alerts_for(engine: Engine, events: list[dict[str, Any]]) -> list[Any]:
    return [a for ev in events for a in engine.process(ev)]


def test_shell_spawned_by_shell_parent(collector: Collector, procs: list[subprocess.Popen[bytes]]) -> None:
    marker = f"hg{uuid.uuid4().hex[:10]}"
    # `; true` after each command stops the shells from exec'ing their last command in place.
    procs.append(subprocess.Popen(["sh", "-c", f"sleep 0.3; sh -c 'sleep 3; true {marker}'; true"]))
    engine = rules_engine(f"""
- macro: spawned_process
  condition: (evt.type in (execve, execveat) and evt.dir = <)
- list: shell_binaries
  items: [sh, bash, dash]
- rule: Shell spawned by shell
  desc: a shell whose parent is a shell
  condition: spawned_process and proc.name in (shell_binaries) and proc.pname in (shell_binaries)
             and proc.cmdline contains {marker}
  output: shell %proc.cmdline parent=%proc.pname gparent=%proc.aname[2] pid=%proc.pid ppid=%proc.ppid
  priority: WARNING
""")
    hits = collector.until(lambda e: e["evt.type"] == "execve" and marker in (e.get("proc.cmdline") or "")
                           and e.get("proc.pname") == "sh")
    assert hits, collector.events[-5:]
    ev = hits[0]
    outer = procs[0].pid
    assert ev["proc.ppid"] == outer and ev["_apid"][0] == outer and ev["_apid"][1] == os.getpid()
    assert ev["proc.name"] == "sh" and ev["proc.args"] == f"-c sleep 3; true {marker}"
    assert ev["proc.exepath"] == os.path.realpath("/bin/sh") or ev["proc.exepath"].endswith("sh")
    assert ev["container.id"] == "host" and ev["user.uid"] == os.geteuid()
    assert ev["proc.cwd"] == os.getcwd().rstrip("/") + "/"
    alerts = alerts_for(engine, hits)
    assert [a.rule for a in alerts] == ["Shell spawned by shell"]
    assert alerts[0].output_fields["proc.aname[2]"] == ev["_anc"][1]
    # Each shell forks before running sleep; those forks have not exec'd and are no execve
    # events: exactly the two shells are reported.
    for _ in range(5):
        collector.src.poll()
        time.sleep(0.02)
    marked = {e["proc.pid"] for e in collector.events if e["evt.type"] == "execve" and e["proc.name"] == "sh"
              and marker in (e.get("proc.cmdline") or "")}
    assert marked == {outer, ev["proc.pid"]}
    # The outer shell itself (parent: this Python process) does not match.
    outer_ev = [e for e in collector.events if e.get("proc.pid") == outer and e["evt.type"] == "execve"]
    assert outer_ev and not alerts_for(engine, outer_ev)


def test_reexec_in_place_is_noticed(collector: Collector, procs: list[subprocess.Popen[bytes]]) -> None:
    marker = f"{uuid.uuid4().int % 1000}.{uuid.uuid4().int % 1000:03d}"
    p = subprocess.Popen(["sh", "-c", f"sleep 0.4; exec sleep 3{marker}"])
    procs.append(p)
    hits = collector.until(lambda e: e.get("proc.pid") == p.pid and e.get("proc.name") == "sleep"
                           and e.get("proc.args") == f"3{marker}")
    assert hits
    first = [e for e in collector.events if e.get("proc.pid") == p.pid]
    # Seen first as the shell (unless the poll missed that window), then as sleep, same pid.
    assert first[-1]["proc.name"] == "sleep" and collector.src.counts["reexec"] + collector.src.counts["exec"] >= 1


def test_write_below_etc_in_temp_root(collector: Collector, procs: list[subprocess.Popen[bytes]],
                                      tmp_path: Path) -> None:
    etc = tmp_path / "etc"
    etc.mkdir()
    target = etc / "passwd"
    engine = rules_engine(f"""
- macro: open_write
  condition: (evt.type in (open, openat, openat2) and evt.is_open_write = true and fd.typechar = 'f')
- rule: Write below temp etc
  desc: a file below the test's etc opened for writing
  condition: open_write and fd.name startswith {etc}/
  output: write %fd.name by %proc.name flags=%evt.arg.flags dir=%fd.directory
  priority: ERROR
- rule: Read of temp etc
  desc: a read-only open, which must not count as a write
  condition: evt.type = openat and evt.is_open_read = true and evt.is_open_write = false
             and fd.name startswith {etc}/
  output: read %fd.name
  priority: NOTICE
""")
    (etc / "hosts").write_text("127.0.0.1 localhost\n")
    # The shell opens the file (O_WRONLY|O_CREAT|O_TRUNC) and keeps it open while sleeping; a
    # second process only reads.
    procs.append(subprocess.Popen(["sh", "-c", f"exec 3>{target}; sleep 0.3; sleep 3; true"]))
    procs.append(subprocess.Popen(["sh", "-c", f"exec 4<{etc}/hosts; sleep 3; true"]))
    writes = collector.until(lambda e: e["evt.type"] == "openat" and e.get("fd.name") == str(target))
    reads = collector.until(lambda e: e["evt.type"] == "openat" and e.get("fd.name") == f"{etc}/hosts")
    assert writes and reads
    alerts = alerts_for(engine, writes + reads)
    assert sorted(a.rule for a in alerts) == ["Read of temp etc", "Write below temp etc"]
    w = next(a for a in alerts if a.rule == "Write below temp etc")
    assert w.output_fields["evt.arg.flags"].split("|")[0] == "O_WRONLY"
    assert w.output_fields["fd.directory"] == str(etc)
    assert w.output_fields["proc.name"] == "sh"


def test_outbound_connection_to_loopback_port(collector: Collector, procs: list[subprocess.Popen[bytes]]) -> None:
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)
    port = srv.getsockname()[1]
    engine = rules_engine(f"""
- rule: Connect to test port
  desc: outbound TCP connection to the test's listener
  condition: evt.type = connect and evt.dir = < and fd.l4proto = tcp and fd.dport = {port}
             and fd.dip = 127.0.0.1 and fd.typechar = 4
  output: connection %fd.name by %proc.name (%proc.cmdline)
  priority: NOTICE
""")
    code = (f"import socket,time; s=socket.create_connection(('127.0.0.1',{port})); time.sleep(0.3); "
            "s.sendall(b'x'); time.sleep(3)")
    try:
        procs.append(subprocess.Popen([sys.executable, "-c", code]))
        conn, _ = srv.accept()
        hits = collector.until(lambda e: e["evt.type"] == "connect" and e.get("fd.dport") == port)
        conn.close()
    finally:
        srv.close()
    assert hits
    ev = hits[0]
    assert ev["proc.pid"] == procs[0].pid and ev["fd.sip"] == "127.0.0.1" and ev["fd.sport"] > 0
    alerts = alerts_for(engine, hits)
    assert [a.rule for a in alerts] == ["Connect to test port"]
    assert alerts[0].output_fields["fd.name"] == f"127.0.0.1:{ev['fd.sport']}->127.0.0.1:{port}"
    # Reported once, not on every poll.
    collector.src.poll()
    assert len([e for e in collector.events if e["evt.type"] == "connect" and e.get("fd.dport") == port]) == 1


def test_existing_processes_not_reported_unless_asked(procs: list[subprocess.Popen[bytes]]) -> None:
    p = subprocess.Popen(["sleep", "3"])
    procs.append(p)
    quiet = ProcSource(docker=DockerMetadata("/nonexistent"), bundles=BundleMetadata("/nonexistent"))
    quiet.prime()
    c = Collector(quiet)
    quiet.poll()
    assert not [e for e in c.events if e.get("proc.pid") == p.pid]
    loud = ProcSource(report_existing=True, docker=DockerMetadata("/nonexistent"),
                      bundles=BundleMetadata("/nonexistent"))
    c2 = Collector(loud)
    loud.prime()
    loud.poll()
    assert [e for e in c2.events if e.get("proc.pid") == p.pid and e["evt.type"] == "execve"]


def test_parse_stat_with_hostile_comm() -> None:
    raw = b"4242 (a) b (c)) S 17 4242 4242 34816 4242 4194560 1 0 0 0 0 0 0 0 20 0 1 0 987654 0 0\n"
    assert parse_stat(raw) == ("a) b (c)", 17, 34816, 987654, False)
    kworker = b"77 (kworker/0:1-events) I 2 0 0 0 -1 69238880 0 0 0 0 0 0 0 0 20 0 1 0 5555 0 0\n"
    assert parse_stat(kworker) == ("kworker/0:1-events", 2, 0, 5555, True)
    assert parse_stat(b"garbage") is None
    assert parse_stat(b"1 (x) S") is None


def test_parse_net_tables_v4_and_v6() -> None:
    tcp = ("  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
           "   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1111 1\n"
           "   1: 0100007F:C350 0100007F:1F90 01 00000000:00000000 00:00000000 00000000  1000        0 2222 1\n"
           "   2: broken line\n")
    t = parse_net_table(tcp, "tcp")
    assert t[1111] == ("127.0.0.1", 8080, "0.0.0.0", 0, "0A")
    assert t[2222] == ("127.0.0.1", 50000, "127.0.0.1", 8080, "01")
    tcp6 = ("  sl  local_address                         remote_address                        st ...\n"
            "   0: 00000000000000000000000001000000:1F90 00000000000000000000000001000000:D431 01 "
            "00000000:00000000 00:00000000 00000000     0        0 3333 1\n"
            "   1: 0000000000000000FFFF00000100007F:1F90 0000000000000000FFFF00000200007F:D432 01 "
            "00000000:00000000 00:00000000 00000000     0        0 4444 1\n")
    t6 = parse_net_table(tcp6, "tcp6")
    assert t6[3333][0] == "::1" and t6[3333][3] == 0xD431
    assert t6[4444][0] == "127.0.0.1" and t6[4444][2] == "127.0.0.2"


def test_in_place_exec_of_preexisting_process_found_on_sweep(procs: list[subprocess.Popen[bytes]]) -> None:
    suffix = f"{uuid.uuid4().int % 1000}.{uuid.uuid4().int % 1000:03d}"
    p = subprocess.Popen(["sh", "-c", f"sleep 0.5; exec sleep 3{suffix}"])
    procs.append(p)
    src = ProcSource(sweep_every=3, docker=DockerMetadata("/nonexistent"), bundles=BundleMetadata("/nonexistent"))
    src.prime()  # the shell is already running: known, not watched
    c = Collector(src)
    hits = c.until(lambda e: e.get("proc.pid") == p.pid and e.get("proc.args") == f"3{suffix}")
    assert hits and hits[0]["proc.name"] == "sleep" and src.counts["reexec"] >= 1


def _fake_proc(root: Path, pid: int, ppid: int, comm: str, argv: list[str], exe: str, cgroup: str,
               start: int, uid: int = 0, tty: int = 0) -> None:
    """A /proc/PID directory with the files the source reads, in the kernel's formats."""
    d = root / str(pid)
    (d / "fd").mkdir(parents=True)
    (d / "stat").write_text(f"{pid} ({comm}) S {ppid} {pid} {pid} {tty} -1 4194560 100 0 0 0 1 1 0 0 20 0 1 0 "
                            f"{start} 1000000 100 18446744073709551615\n")
    (d / "cmdline").write_bytes(b"\0".join(a.encode() for a in argv) + b"\0")
    (d / "cgroup").write_text(cgroup)
    (d / "status").write_text(f"Name:\t{comm}\nUid:\t{uid}\t{uid}\t{uid}\t{uid}\nGid:\t0\t0\t0\t0\n"
                              f"NSpid:\t{pid}\t{pid - 1000 if pid > 1000 else pid}\n")
    if exe:  # a kernel thread has no executable
        os.symlink(exe, d / "exe")
    os.symlink("/app", d / "cwd")


def test_container_attribution_and_bundled_rule(tmp_path: Path, docker_socket: str) -> None:
    """A shell started by a Node.js app inside a Docker container (a fake /proc tree, a loopback
    Docker API) is attributed to the container and fires the bundled rule."""
    from hullguard.runtime.rules import default_rules_path

    from .conftest import CID

    root = tmp_path / "proc"
    docker = f"0::/system.slice/docker-{CID}.scope\n"
    _fake_proc(root, 1, 0, "systemd", ["/sbin/init"], "/usr/lib/systemd/systemd", "0::/init.scope\n", 10)
    _fake_proc(root, 1500, 1, "node", ["node", "server.js"], "/usr/local/bin/node", docker, 500)
    (root / "stat").write_text("cpu  1 2 3 4\nbtime 1700000000\nprocesses 4242\n")
    src = ProcSource(proc_root=str(root), docker=DockerMetadata(docker_socket), bundles=BundleMetadata("/x"))
    src.prime()
    c = Collector(src)
    _fake_proc(root, 1600, 1500, "sh", ["/bin/sh", "-c", "id; cat /etc/shadow"], "/usr/bin/dash", docker, 900,
               uid=33)
    # A kernel thread appearing at the same time (flags carry PF_KTHREAD) is not an exec.
    _fake_proc(root, 1700, 2, "kworker/1:2", [], "", "0::/\n", 950)
    stat = (root / "1700" / "stat").read_text().split(" ")
    stat[8] = str(0x00200000 | 0x40)
    (root / "1700" / "stat").write_text(" ".join(stat))
    src.poll()
    execs = [e for e in c.events if e["evt.type"] == "execve"]
    assert [e["proc.pid"] for e in execs] == [1600]
    ev = execs[0]
    # evt.time from the kernel's start time: boot time + start ticks / CLK_TCK.
    assert ev["evt.time"] == (1_700_000_000 + 900 // os.sysconf("SC_CLK_TCK")) * 1_000_000_000 + \
        (900 % os.sysconf("SC_CLK_TCK")) * 1_000_000_000 // os.sysconf("SC_CLK_TCK")
    assert ev["container.id"] == CID[:12] and ev["container.type"] == "docker"
    assert ev["container.name"] == "web" and ev["k8s.pod.name"] == "web-0" and ev["k8s.ns.name"] == "shop"
    assert ev["container.image.repository"] == "nginx" and ev["container.image.tag"] == "1.27"
    assert ev["proc.pname"] == "node" and ev["_anc"] == ["node", "systemd"] and ev["proc.vpid"] == 600
    assert ev["proc.exe"] == "/bin/sh" and ev["proc.exepath"] == "/usr/bin/dash"
    assert ev["proc.cmdline"] == "sh -c id; cat /etc/shadow" and ev["proc.cwd"] == "/app/"
    assert ev["user.uid"] == 33
    engine = Engine(load_rules([default_rules_path()]), rule_matching="all", hostname="t")
    rules = [a.rule for a in engine.process(ev)]
    assert "Shell spawned by non-shell in container" in rules
    # Seen again unchanged: nothing new. A pid that disappears is forgotten.
    src.poll()
    assert len([e for e in c.events if e["evt.type"] == "execve"]) == 1
    import shutil
    shutil.rmtree(root / "1600")
    src.poll()
    assert 1600 not in src.procs


def test_podman_container_metadata_from_its_socket(tmp_path: Path, docker_socket: str) -> None:
    from .conftest import CID

    root = tmp_path / "proc"
    podman = f"0::/machine.slice/libpod-{CID}.scope/container\n"
    _fake_proc(root, 1, 0, "systemd", ["/sbin/init"], "/usr/lib/systemd/systemd", "0::/init.scope\n", 10)
    src = ProcSource(proc_root=str(root), docker=DockerMetadata("/nonexistent"), podman=DockerMetadata(docker_socket),
                     bundles=BundleMetadata("/x"))
    src.prime()
    c = Collector(src)
    _fake_proc(root, 2000, 1, "bash", ["bash"], "/usr/bin/bash", podman, 700, tty=34816)
    src.poll()
    ev = next(e for e in c.events if e["evt.type"] == "execve")
    assert ev["container.type"] == "podman" and ev["container.id"] == CID[:12]
    assert ev["container.image"] == "nginx:1.27" and ev["proc.tty"] == 34816
