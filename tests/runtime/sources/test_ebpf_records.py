"""The eBPF source's record decoding, script building and availability checks, without a kernel.

Records are written here the way ``bpftrace -f json`` prints ``print()`` of a tuple:
``{"type": "value", "data": [...]}`` one per line, strings JSON-escaped, bytes >= 0x80 escaped
sign-extended (``\\uffffffc3``). Details that come from /proc are served by a fake /proc tree.
"""

from __future__ import annotations

import json
import os
import stat
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from hullguard.model import HullguardError
from hullguard.runtime.sources.containers import BundleMetadata, DockerMetadata
from hullguard.runtime.sources.ebpf import (
    MAX_PENDING,
    EbpfSource,
    bt_string,
    build_script,
    check_ebpf,
)

CID = "0123456789abcdef" * 4
PID, PPID, GPID = 4242, 4000, 1


def line(*data: Any) -> bytes:
    return json.dumps({"type": "value", "data": list(data)}).encode() + b"\n"


def bt_escape(raw: bytes) -> str:
    """How bpftrace 0.17 escapes a string: JSON, with bytes >= 0x80 as sign-extended \\u escapes."""
    out = []
    for b in raw:
        if b >= 0x80:
            out.append(f"\\uffffff{b:02x}")
        elif b in (0x22, 0x5C):
            out.append("\\" + chr(b))
        elif b < 0x20:
            out.append(f"\\u{b:04x}")
        else:
            out.append(chr(b))
    return "".join(out)


def raw_line(tag: str, *items: Any) -> bytes:
    """A record whose str items are given as bytes and escaped like bpftrace does."""
    parts = [json.dumps(tag)] + ['"' + bt_escape(i) + '"' if isinstance(i, bytes) else json.dumps(i) for i in items]
    return ('{"type": "value", "data": [' + ",".join(parts) + "]}\n").encode()


def _stat(pid: int, comm: str, ppid: int, start: int = 100) -> str:
    # Fields 3..22 of /proc/PID/stat; starttime is field 22.
    rest = ["S", str(ppid)] + ["0"] * 17 + [str(start)]
    return f"{pid} ({comm}) " + " ".join(rest) + " 0 0\n"


@pytest.fixture
def fake_proc(tmp_path: Path) -> Path:
    root = tmp_path / "proc"
    for pid, comm, ppid, cmd, cg in ((PID, "sh", PPID, b"sh\0-c\0id\0", f"0::/system.slice/docker-{CID}.scope\n"),
                                     (PPID, "nginx", GPID, b"nginx: worker\0", "0::/\n"),
                                     (GPID, "init", 0, b"/sbin/init\0", "0::/\n")):
        d = root / str(pid)
        d.mkdir(parents=True)
        (d / "stat").write_text(_stat(pid, comm, ppid))
        (d / "cmdline").write_bytes(cmd)
        (d / "cgroup").write_text(cg)
    # In its own pid namespace the process is init (a container's entrypoint).
    (root / str(PID) / "status").write_text(f"Name:\tsh\nNSpid:\t{PID}\t1\n")
    (root / str(PID) / "cwd").symlink_to(tmp_path)
    (root / str(PID) / "exe").symlink_to("/usr/bin/dash")
    (root / str(PPID) / "exe").symlink_to("/usr/sbin/nginx")
    return root


def make_source(root: Path, **kw: Any) -> tuple[EbpfSource, list[dict[str, Any]]]:
    src = EbpfSource(proc_root=str(root), docker=DockerMetadata("/nonexistent/d.sock"),
                     podman=DockerMetadata("/nonexistent/p.sock"), bundles=BundleMetadata("/nonexistent"), **kw)
    events: list[dict[str, Any]] = []
    src.emit = lambda ev: events.append(ev) is None
    src.self_pid = -1
    return src, events


def feed(src: EbpfSource, *lines: bytes) -> None:
    for ln in lines:
        src.handle_line(ln)


def exec_records(pid: int = PID, ppid: int = PPID, args: tuple[str, ...] = ("sh", "-c", "id"), ret: int = 0,
                 comm: str = "sh", filename: str = "/bin/sh", tty: int = 0) -> tuple[list[bytes], bytes]:
    enter = [line("a", pid, i, a) for i, a in enumerate(args)] + [line("e", pid, len(args), 0, filename)]
    return enter, line("x", pid, pid, ret, 5_000_000_000, ppid, 0, 0, 4294967295, tty, comm)


# ---- strings -----------------------------------------------------------------------------------

@pytest.mark.parametrize("raw", [b"plain", "caf\u00e9 \u2603".encode(), b"\xff\xfe", b'q"]\\x', b"a\nb\r\x01"])
def test_bt_string_restores_the_original_bytes(raw: bytes) -> None:
    decoded = json.loads('"' + bt_escape(raw) + '"')
    assert bt_string(decoded) == raw.decode("utf-8", "replace")


def test_bt_string_leaves_a_literal_escape_text_alone() -> None:
    # A file literally named "\uffffffc3" is escaped as "\\uffffffc3": text, not a byte.
    text = json.loads('"' + bt_escape(b"\\uffffffc3") + '"')
    assert bt_string(text) == "\\uffffffc3"


# ---- exec --------------------------------------------------------------------------------------

@pytest.mark.parametrize("exit_first", [False, True])
def test_exec_joined_from_entry_and_exit_in_either_order(fake_proc: Path, exit_first: bool) -> None:
    src, events = make_source(fake_proc)
    enter, exit_ = exec_records()
    feed(src, *([exit_, *enter] if exit_first else [*enter, exit_]))
    assert len(events) == 1
    ev = events[0]
    assert ev["evt.type"] == "execve" and ev["evt.dir"] == "<" and ev["evt.category"] == "process"
    assert (ev["proc.pid"], ev["proc.ppid"], ev["proc.name"]) == (PID, PPID, "sh")
    assert ev["proc.exe"] == "sh" and ev["proc.args"] == "-c id" and ev["proc.cmdline"] == "sh -c id"
    assert ev["proc.exepath"] == "/usr/bin/dash" and ev["evt.arg.filename"] == "/bin/sh"
    assert ev["proc.pname"] == "nginx" and ev["proc.pexepath"] == "/usr/sbin/nginx"
    assert ev["_anc"] == ["nginx", "init"] and ev["_apid"] == [PPID, GPID]
    assert ev["user.uid"] == 0 and ev["user.loginuid"] == -1
    assert ev["container.id"] == CID[:12] and ev["container.type"] == "docker"
    assert ev["proc.cwd"] == str(fake_proc.parent) + "/"
    assert ev["evt.time"] == 5_000_000_000 + src._mono_offset and ev["proc.vpid"] == 1
    assert src.stats()["pending"] == 0


def test_terminal_feeds_falcos_interactive_macro(fake_proc: Path) -> None:
    from hullguard.runtime.engine import Engine
    from hullguard.runtime.rules import load_rules

    rules = """
- macro: interactive
  condition: (proc.tty != 0)
- rule: Non-interactive shell
  desc: a shell without a terminal
  condition: evt.type = execve and proc.name = sh and not interactive
  output: shell %proc.cmdline tty=%proc.tty
  priority: WARNING
"""
    engine = Engine(load_rules(texts=[("r.yaml", rules)]), hostname="t")
    src, events = make_source(fake_proc)
    for tty in (0, 34816):
        enter, exit_ = exec_records(tty=tty)
        feed(src, *enter, exit_)
    assert [e["proc.tty"] for e in events] == [0, 34816]
    assert [len(engine.process(e)) for e in events] == [1, 0]


def test_failed_exec_is_dropped_and_the_next_one_starts_clean(fake_proc: Path) -> None:
    src, events = make_source(fake_proc)
    enter, exit_ = exec_records(args=("nope", "x", "y"), ret=-2, filename="/nope")
    feed(src, *enter, exit_)
    assert events == []
    enter, exit_ = exec_records(args=("sh", "-c", "id"))
    feed(src, *enter, exit_)
    assert [e["proc.args"] for e in events] == ["-c id"]


def test_argv_beyond_the_limit_is_marked(fake_proc: Path) -> None:
    src, events = make_source(fake_proc, max_args=2)
    feed(src, line("a", PID, 0, "sh"), line("a", PID, 1, "-c"), line("e", PID, 2, 1, "/bin/sh"),
         exec_records()[1])
    assert events[0]["proc.args"] == "-c ..." and src.counts["truncated"] == 1


def test_dead_process_falls_back_to_what_the_probe_saw(fake_proc: Path) -> None:
    src, events = make_source(fake_proc)
    # pid 5000 has no /proc entry (exited); its parent is alive and its cgroup is used.
    enter, exit_ = exec_records(pid=5000, ppid=PID, args=("true", "x"), comm="true", filename="/bin/true")
    feed(src, *enter, exit_)
    ev = events[0]
    assert ev["proc.exepath"] == "/bin/true" and "proc.cwd" not in ev
    assert ev["proc.pname"] == "sh" and ev["_anc"] == ["sh", "nginx", "init"]
    assert ev["container.id"] == CID[:12]


def test_hostile_strings_stay_inside_their_field(fake_proc: Path) -> None:
    src, events = make_source(fake_proc)
    evil = b'x"], "proc.name": "evil"}\n{"type": "value", "data": ["x", 1]}\\\xff'
    feed(src, raw_line("a", PID, 0, b"sh"), raw_line("a", PID, 1, evil), raw_line("e", PID, 2, 0, b"/bin/sh"),
         raw_line("x", PID, PID, 0, 1, PPID, 0, 0, 0, 0, b'c"]\n'))
    assert len(events) == 1
    assert events[0]["proc.args"] == evil.decode("utf-8", "replace") and events[0]["proc.name"] == 'c"]\n'
    assert src.counts["malformed"] == 0


# ---- open and connect --------------------------------------------------------------------------

def test_open_relative_path_flags_and_dfd(fake_proc: Path) -> None:
    src, events = make_source(fake_proc)
    flags = 0o1 | 0o100 | 0o1000 | 0o2000000
    # dfd arrives zero-extended: 4294967196 is AT_FDCWD (-100).
    feed(src, raw_line("f", PID, b"etc/passwd"),
         line("o", PID, PID, 3, 10, PPID, 0, 0, 1000, flags, 4294967196, 34816, "sh"))
    ev = events[0]
    assert ev["evt.type"] == "openat" and ev["fd.name"] == f"{fake_proc.parent}/etc/passwd"
    assert ev["evt.arg.flags"] == "O_WRONLY|O_CREAT|O_TRUNC|O_CLOEXEC"
    assert (ev["evt.is_open_write"], ev["evt.is_open_read"], ev["evt.is_open_create"]) == ("true", "false", "true")
    assert ev["fd.num"] == 3 and ev["fd.typechar"] == "f" and ev["user.loginuid"] == 1000
    assert ev["proc.tty"] == 34816


def test_open_without_its_path_record_is_counted_not_guessed(fake_proc: Path) -> None:
    src, events = make_source(fake_proc)
    feed(src, line("o", PID, PID, 3, 10, PPID, 0, 0, 0, 0, 4294967196, 0, "sh"))
    assert events == [] and src.counts["unmatched"] == 1


def test_open_of_a_gone_process_keeps_the_relative_path(fake_proc: Path) -> None:
    src, events = make_source(fake_proc)
    feed(src, line("f", 6000, "x.txt"), line("o", 6000, 6000, 3, 10, PID, 0, 0, 0, 1, 4294967196, 0, "tee"))
    assert events[0]["fd.name"] == "x.txt" and src.counts["unresolved"] == 1


def test_connect_ipv4_and_ipv6_sockaddr(fake_proc: Path) -> None:
    src, events = make_source(fake_proc)
    # sin_port and s_addr as the kernel stores them (network order) read as little-endian integers.
    port = 42321
    raw_port = int.from_bytes(port.to_bytes(2, "big"), "little")
    v4 = int.from_bytes(bytes([127, 0, 0, 1]), "little")
    v6 = bytes(15) + b"\x01"
    lo, hi = int.from_bytes(v6[:8], "little"), int.from_bytes(v6[8:], "little")
    feed(src, line("c", PID, PID, 0, 10, PPID, 0, 0, 0, 2, raw_port, v4, 0, 5, 0, "sh"),
         line("c", PID, PID, -115, 11, PPID, 0, 0, 0, 10, raw_port, lo, hi, 6, 0, "sh"))
    a, b = events
    assert (a["fd.dip"], a["fd.dport"], a["fd.typechar"], a["fd.num"]) == ("127.0.0.1", port, "4", 5)
    assert (b["fd.dip"], b["fd.dport"], b["fd.typechar"], b["evt.rawres"]) == ("::1", port, "6", -115)
    assert a["evt.type"] == "connect" and a["fd.name"].endswith(f"->127.0.0.1:{port}")


# ---- bad input and bounds ----------------------------------------------------------------------

@pytest.mark.parametrize("bad", [b"not json\n", b"[1, 2]\n", b'{"type": "value", "data": "x"}\n',
                                 b'{"type": "value", "data": ["zz", 1]}\n', b'{"type": "value", "data": ["x", 1]}\n',
                                 b'{"type": "value", "data": ["a", "tid", 0, "x"]}\n', b'{"type": "mystery"}\n'])
def test_malformed_records_are_counted(fake_proc: Path, bad: bytes) -> None:
    src, events = make_source(fake_proc)
    feed(src, bad)
    assert events == [] and src.counts["malformed"] == 1


def test_control_messages(fake_proc: Path) -> None:
    src, _events = make_source(fake_proc)
    feed(src, b"\n", b'{"type": "attached_probes", "data": {"probes": 15}}\n',
         b'{"type": "lost_events", "data": {"events": 7}}\n', line("ready", 1),
         b'{"type": "helper_error", "helper": "probe_read", "retcode": -14, "line": 3, "col": 5}\n')
    assert src.probes == 15 and src.counts["lost"] == 7 and src._attached.is_set() and src.counts["malformed"] == 0
    assert src.counts["helper_errors"] == 1


def test_rate_limit_drops_and_counts(fake_proc: Path) -> None:
    src, events = make_source(fake_proc, max_rate=2)
    for _ in range(5):
        enter, exit_ = exec_records()
        feed(src, *enter, exit_)
    assert len(events) == 2 and src.counts["rate_limited"] == 3


def test_half_joined_execs_are_bounded(fake_proc: Path) -> None:
    src, _events = make_source(fake_proc)
    for tid in range(10_000, 10_000 + MAX_PENDING * 2):
        src.handle_line(line("e", tid, 0, 0, "/bin/x"))
    assert len(src._pending) <= MAX_PENDING and src.counts["unmatched"] >= MAX_PENDING


# ---- the script --------------------------------------------------------------------------------

@pytest.mark.parametrize("prefix", ['/etc", 1) == 0 || 1 == (1', "etc/relative", "/" + "a" * 63, "/with space"])
def test_read_prefixes_that_would_need_escaping_are_refused(prefix: str) -> None:
    with pytest.raises(HullguardError):
        build_script(read_prefixes=(prefix,))


def test_script_only_probes_what_the_kernel_has() -> None:
    script = build_script(syscalls={"execve", "connect"})
    assert "sys_enter_execve " in script and "sys_enter_connect" in script
    assert "openat" not in script and "execveat" not in script and "clear(@o)" not in script
    full = build_script(read_prefixes=("/etc/shadow", "/" + "b" * 50))
    # A long literal gets a program of its own (BPF stack): two enter programs per open syscall.
    assert full.count("tracepoint:syscalls:sys_enter_openat ") == 2
    assert full.count('"/etc/shadow"') == len(("openat", "openat2", "open", "creat"))
    with pytest.raises(HullguardError):
        build_script(max_args=0)


# ---- availability ------------------------------------------------------------------------------

def test_check_lists_every_missing_prerequisite(tmp_path: Path) -> None:
    (tmp_path / "proc/self").mkdir(parents=True)
    (tmp_path / "proc/self/status").write_text("Name:\tx\nCapEff:\t0000000000000000\n")
    res = check_ebpf(root=str(tmp_path), release="6.1.0-test", bpftrace=str(tmp_path / "no-bpftrace"))
    assert not res.available
    text = " | ".join(res.reasons)
    assert f"{tmp_path / 'no-bpftrace'} is not an executable file" in text
    assert "not permitted to load BPF programs" in text
    assert "no kernel BTF" in text and "6.1.0-test" in text
    assert "tracefs is not mounted" in text
    assert res.to_dict()["reasons"] == res.reasons


def test_check_names_missing_syscall_tracepoints(tmp_path: Path) -> None:
    (tmp_path / "proc/self").mkdir(parents=True)
    (tmp_path / "proc/self/status").write_text("CapEff:\t000001ffffffffff\n")
    (tmp_path / "sys/kernel/btf").mkdir(parents=True)
    (tmp_path / "sys/kernel/btf/vmlinux").write_bytes(b"\0")
    for name in ("sys_enter_execve", "sys_exit_execve"):
        (tmp_path / "sys/kernel/tracing/events/syscalls" / name).mkdir(parents=True)
    res = check_ebpf(root=str(tmp_path), bpftrace=str(tmp_path / "none"), probe=False)
    missing = [r for r in res.reasons if r.startswith("syscall tracepoints missing")]
    assert missing and "connect" in missing[0] and "execveat" in missing[0] and "execve," not in missing[0]
    assert not any("permitted" in r or "BTF" in r for r in res.reasons)


# ---- the child process, played by a script ------------------------------------------------------

def _fake_bpftrace(tmp_path: Path, body: str) -> str:
    path = tmp_path / "bpftrace"
    path.write_text(f"#!{sys.executable}\n" + textwrap.dedent(body))
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def test_child_that_fails_to_start_is_reported(tmp_path: Path, fake_proc: Path) -> None:
    exe = _fake_bpftrace(tmp_path, """
        import sys
        print("ERROR: Unknown error -1: couldn't set RLIMIT_MEMLOCK for bpftrace", file=sys.stderr)
        print("ERROR: tracepoint not found: syscalls:sys_enter_execve", file=sys.stderr)
        sys.exit(1)
    """)
    src, _events = make_source(fake_proc, bpftrace=exe)
    with pytest.raises(HullguardError, match="status 1: ERROR: tracepoint not found"):
        src.start(lambda ev: True)


def test_oversized_lines_are_skipped_and_an_exit_is_reported(tmp_path: Path, fake_proc: Path) -> None:
    exe = _fake_bpftrace(tmp_path, f"""
        import json, sys
        out = sys.stdout
        out.write(json.dumps({{"type": "value", "data": ["ready", 1]}}) + "\\n")
        out.write('{{"type": "value", "data": ["a", 1, 0, "' + "x" * 200000 + '"]}}\\n')
        for rec in (["a", {PID}, 0, "sh"], ["e", {PID}, 1, 0, "/bin/sh"],
                    ["x", {PID}, {PID}, 0, 1, {PPID}, 0, 0, 0, 0, "sh"]):
            out.write(json.dumps({{"type": "value", "data": rec}}) + "\\n")
        out.flush()
        print("bpftrace: lost the perf buffer", file=sys.stderr)
        sys.exit(3)
    """)
    logs: list[str] = []
    src, events = make_source(fake_proc, bpftrace=exe, log=logs.append)
    src.start(src.emit)
    for t in src._threads:
        t.join(timeout=10)
    assert src.finished and src.counts["malformed"] == 1
    assert [e["proc.pid"] for e in events] == [PID]
    assert src.error == "bpftrace exited with status 3: bpftrace: lost the perf buffer"
    assert any("ebpf source stopped" in m for m in logs)
    src.stop()
    assert os.path.exists(exe)


def test_check_tells_unreadable_tracefs_from_unmounted(tmp_path: Path) -> None:
    (tmp_path / "proc/self").mkdir(parents=True)
    (tmp_path / "proc/self/status").write_text("CapEff:\t0000000000000000\n")
    (tmp_path / "proc/self/mounts").write_text("proc /proc proc rw 0 0\nnodev /sys/kernel/tracing tracefs rw 0 0\n")
    res = check_ebpf(root=str(tmp_path), bpftrace=str(tmp_path / "none"), probe=False)
    assert any("mounted at /sys/kernel/tracing but its events are not readable" in r for r in res.reasons)
    assert not any("tracefs is not mounted" in r for r in res.reasons)


def test_a_compile_error_is_reported_by_its_error_line(tmp_path: Path, fake_proc: Path) -> None:
    # bpftrace prints the offending source line and a ~~~ marker after the error itself.
    exe = _fake_bpftrace(tmp_path, """
        import sys
        sys.stderr.write("stdin:7:21-87: ERROR: String is too long (over 64 bytes): /aaaa\\n")
        sys.stderr.write("    if (strncmp($s, \\"/aaaa\\", 64) == 0) { }\\n")
        sys.stderr.write("                ~~~~~~~~~~~~~~~\\n")
        sys.exit(1)
    """)
    src, _events = make_source(fake_proc, bpftrace=exe)
    with pytest.raises(HullguardError, match=r"status 1: stdin:7:21-87: ERROR: String is too long"):
        src.start(lambda ev: True)


def test_short_prefixes_share_one_program_per_syscall() -> None:
    # Every open on the host runs each program, so the defaults (all short) must be one program.
    script = build_script(syscalls={"openat"})
    assert script.count("tracepoint:syscalls:sys_enter_openat ") == 1
    many = build_script(read_prefixes=tuple(f"/p{i:02d}/" for i in range(20)), syscalls={"openat"})
    assert many.count("tracepoint:syscalls:sys_enter_openat ") == 2 and many.count("strncmp($s,") == 20


# ---- CLI ---------------------------------------------------------------------------------------

def test_cli_refuses_ebpf_with_the_reason(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from hullguard.cli.main import main

    missing = tmp_path / "bpftrace"
    assert main(["runtime", "run", "--ebpf", "--bpftrace", str(missing), "--duration", "1s"]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("hullguard: error: the eBPF source cannot run here:") and str(missing) in err
    assert main(["runtime", "run", "--ebpf", "--ebpf-read-prefix", 'x") || 1 || ("', "--duration", "1s"]) == 2
    assert "read prefix" in capsys.readouterr().err
    assert main(["runtime", "run", "--ebpf", "--ebpf-max-rate", "0", "--duration", "1s"]) == 2


def test_cli_sources_lists_ebpf(capsys: pytest.CaptureFixture[str]) -> None:
    from hullguard.cli.main import main

    assert main(["runtime", "sources", "--format", "json"]) == 0
    e = {s["name"]: s for s in json.loads(capsys.readouterr().out)["sources"]}["ebpf"]
    assert e["available"] == (not e["reasons"])
    assert not any("bcc" in r for r in e["reasons"] + e["notes"])
    if e["available"]:
        assert any("bpftrace" in n for n in e["notes"])
