"""`hullguard runtime run` and `runtime sources` through the real command line."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hullguard.cli.main import main
from hullguard.cli.runtime import parse_duration
from hullguard.model import HullguardError

from .sources.test_k8s_webhook import SCENARIOS


def audit_lines(*rules: str) -> bytes:
    return b"".join(json.dumps(SCENARIOS[r]).encode() + b"\n" for r in rules)


def test_run_audit_log_from_start(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = tmp_path / "audit.log"
    log.write_bytes(audit_lines("Read secret", "Attach or exec into pod") + b"{broken\n")
    rc = main(["runtime", "run", "--audit-log", str(log), "--from-start", "--duration", "0.5s", "--stats", "json"])
    out, err = capsys.readouterr()
    assert rc == 0
    alerts = [json.loads(x) for x in out.splitlines()]
    assert sorted(a["rule"] for a in alerts) == ["Attach or exec into pod", "Read secret"]
    assert all(set(a) == {"hostname", "output", "output_fields", "priority", "rule", "source", "tags", "time"}
               for a in alerts)
    stats = json.loads(err.strip().splitlines()[-1])
    assert stats["events"] == 2 and stats["alerts"] == 2 and stats["malformed"] == 1 and stats["dropped_total"] == 0


def test_run_text_format_and_file_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = tmp_path / "audit.log"
    log.write_bytes(audit_lines("Anonymous request allowed"))
    out_file = tmp_path / "alerts.jsonl"
    rc = main(["runtime", "run", "--audit-log", str(log), "--from-start", "--duration", "300ms",
               "--output", "stdout", "--output", f"file:{out_file}"])
    out, err = capsys.readouterr()
    assert rc == 0
    assert "Warning" in out and "Anonymous request allowed (verb=list" in out
    assert [json.loads(x)["rule"] for x in out_file.read_text().splitlines()] == ["Anonymous request allowed"]
    assert "1 events, 1 alerts, 0 dropped" in err


@pytest.mark.parametrize(("argv", "msg"), [
    (["runtime", "run", "--duration", "1s"], "no event source"),
    (["runtime", "run", "--audit-webhook", "127.0.0.1:0"], "--tls-cert"),
    (["runtime", "run", "--proc", "--duration", "soon"], "bad duration"),
    (["runtime", "run", "--proc", "--queue-size", "0"], "--queue-size"),
    (["runtime", "run", "--proc", "--proc-interval", "0"], "--proc-interval"),
    (["runtime", "run", "--proc", "--min-priority", "loud"], "unknown priority"),
    (["runtime", "run", "--audit-webhook", "nope", "--tls-cert", "c", "--tls-key", "k"], "HOST:PORT"),
])
def test_bad_usage_exits_2_with_one_line(argv: list[str], msg: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("hullguard: error:") and msg in err[-1]


def test_audit_log_directory_rejected(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["runtime", "run", "--audit-log", str(tmp_path)]) == 2
    assert "is a directory" in capsys.readouterr().err


def test_parse_duration() -> None:
    assert parse_duration("90") == 90 and parse_duration("1.5m") == 90 and parse_duration("250ms") == 0.25
    assert parse_duration("2h") == 7200
    for bad in ("", "-1s", "1w", "s"):
        with pytest.raises(HullguardError):
            parse_duration(bad)


def test_sources_json_explains_ebpf(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["runtime", "sources", "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    by = {s["name"]: s for s in doc["sources"]}
    assert set(by) == {"proc", "k8s_audit_webhook", "audit_log", "ebpf"}
    e = by["ebpf"]
    # Either every prerequisite is met, or each missing one is named.
    assert e["available"] == (not e["reasons"])
    if shutil.which("bpftrace") is None:
        assert any("bpftrace is not installed" in r for r in e["reasons"])


@pytest.mark.skipif(sys.platform != "linux", reason="signals and /proc")
def test_sigterm_stops_cleanly_with_stats(tmp_path: Path) -> None:
    log = tmp_path / "audit.log"
    log.write_bytes(b"")
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    p = subprocess.Popen([sys.executable, "-m", "hullguard.cli.main", "runtime", "run", "--audit-log", str(log)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        # Appended while it runs: the agent picks it up (the tailer opened the file at its end).
        deadline = time.monotonic() + 20
        line = b""
        while time.monotonic() < deadline and p.poll() is None:
            with open(log, "ab") as f:
                f.write(audit_lines("Read secret"))
            assert p.stdout is not None
            import select
            ready, _, _ = select.select([p.stdout], [], [], 0.3)
            if ready:
                line = p.stdout.readline()
                break
        assert b"Read secret" in line
        p.send_signal(signal.SIGTERM)
        _out, err = p.communicate(timeout=20)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 0
    assert b"alerts" in err and b"dropped" in err and b"Traceback" not in err


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs a Linux /proc")
def test_proc_source_with_response_policy_kills_marked_shell(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    """End to end: a real shell appears, the /proc source reports it, a rule fires, and the
    response policy (hullguard.runtime.respond) captures evidence and kills it."""
    pytest.importorskip("hullguard.runtime.respond")
    marker = f"hgkill{os.getpid()}"
    rules = tmp_path / "rules.yaml"
    rules.write_text(f"""
- rule: Marked shell
  desc: the test's shell
  condition: evt.type = execve and proc.name = sh and proc.cmdline contains {marker}
  output: marked shell %proc.cmdline pid=%proc.pid
  priority: CRITICAL
  tags: [test]
""")
    policy = tmp_path / "policy.yaml"
    policy.write_text("version: 1\nbindings:\n  - name: kill-marked\n    rules: [Marked shell]\n"
                      "    actions: [capture, kill]\n")
    victim = subprocess.Popen(["sh", "-c", f"sleep 0.5; sh -c 'sleep 30; true {marker}'; true"])
    try:
        rc = main(["runtime", "run", "--proc", "--rules", str(rules), "--respond", str(policy),
                   "--evidence-dir", str(tmp_path / "evidence"), "--response-log", str(tmp_path / "actions.jsonl"),
                   "--duration", "3s"])
        out, _err = capsys.readouterr()
        # The outer shell only waits for the inner one, which the responder killed.
        victim.wait(timeout=20)
    finally:
        if victim.poll() is None:
            victim.kill()
            victim.wait()
    assert rc == 0
    alerts = [json.loads(x) for x in out.splitlines() if x.startswith("{")]
    assert any(a["rule"] == "Marked shell" for a in alerts)
    actions = [json.loads(x) for x in (tmp_path / "actions.jsonl").read_text().splitlines()]
    kinds = [a.get("action") for a in actions]
    # Evidence is taken before the process is killed.
    assert "capture" in kinds and "kill" in kinds and kinds.index("capture") < kinds.index("kill")
    kill = next(a for a in actions if a.get("action") == "kill")
    assert kill.get("status") == "done"
    assert list((tmp_path / "evidence").rglob("index.json"))


def test_cli_webhook_end_to_end(tmp_path: Path) -> None:
    import re
    import select
    import ssl

    import httpx

    from .sources.conftest import make_tls
    from .sources.test_k8s_webhook import event_list

    tls = make_tls(tmp_path)
    token = tmp_path / "token"
    token.write_text("tok-123\n")
    p = subprocess.Popen([sys.executable, "-m", "hullguard.cli.main", "runtime", "run", "--audit-webhook",
                          "127.0.0.1:0", "--tls-cert", str(tls.cert), "--tls-key", str(tls.key), "--token-file",
                          str(token), "--stats", "json"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=dict(os.environ, PYTHONUNBUFFERED="1"))
    try:
        assert p.stderr is not None and p.stdout is not None
        port = None
        deadline = time.monotonic() + 20
        while port is None and time.monotonic() < deadline:
            ready, _, _ = select.select([p.stderr], [], [], 0.5)
            if ready:
                m = re.search(rb"listening on https://127\.0\.0\.1:(\d+)/", p.stderr.readline())
                port = int(m.group(1)) if m else None
        assert port
        ctx = ssl.create_default_context(cafile=str(tls.ca))
        with httpx.Client(verify=ctx) as c:
            body = event_list([SCENARIOS["ClusterRoleBinding to cluster-admin"]])
            r = c.post(f"https://127.0.0.1:{port}/", content=body, headers={"Authorization": "Bearer tok-123"})
            assert r.status_code == 200
            assert c.post(f"https://127.0.0.1:{port}/", content=b"junk",
                          headers={"Authorization": "Bearer tok-123"}).status_code == 400
        select.select([p.stdout], [], [], 20)
        alert = json.loads(p.stdout.readline())
        assert alert["rule"] == "ClusterRoleBinding to cluster-admin" and alert["source"] == "k8s_audit"
        p.send_signal(signal.SIGTERM)
        _out, err = p.communicate(timeout=20)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 0
    stats = json.loads(err.decode().strip().splitlines()[-1])
    assert stats["events"] == 1 and stats["alerts"] == 1 and stats["malformed"] == 1
