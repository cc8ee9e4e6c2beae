"""`hullguard runtime respond|outputs` end to end: Falco-syntax rules, a real process, dry run then act."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from hullguard.model import HullguardError
from hullguard.runtime.respond_evidence import stat_of
from tests.runtime.test_baseline import run

RULES = """
- rule: Test sleeper
  desc: a process named like our test child was executed
  condition: evt.type = execve and proc.name = %s
  output: "Sleeper started (proc.pid=%%proc.pid proc.cmdline=%%proc.cmdline)"
  priority: CRITICAL
  tags: [test]
"""

POLICY = """
bindings:
  - rules: ["Test *"]
    actions: [kill]
"""


@pytest.fixture
def sleeper():
    p = subprocess.Popen([sys.executable, "-c", "import time; print(1, flush=True); time.sleep(60)"],
                         stdout=subprocess.PIPE)
    p.stdout.readline()
    yield p
    if p.poll() is None:
        p.kill()
    p.wait()
    p.stdout.close()


def test_respond_run_dry_then_real(tmp_path, capsys, sleeper) -> None:
    comm = stat_of(sleeper.pid)["comm"]
    (tmp_path / "rules.yaml").write_text(RULES % comm)
    (tmp_path / "policy.yaml").write_text(POLICY)
    ev = {"evt.type": "execve", "evt.dir": "<", "proc.name": comm, "proc.pid": sleeper.pid,
          "proc.cmdline": f"{comm} -c ...", "container.id": "host"}
    (tmp_path / "events.jsonl").write_text(json.dumps(ev) + "\nnot json\n")
    base = ["respond", "run", str(tmp_path / "events.jsonl"), "--policy", str(tmp_path / "policy.yaml"),
            "--rules", str(tmp_path / "rules.yaml"), "--evidence-dir", str(tmp_path / "ev"),
            "--output", f"file:{tmp_path}/alerts.jsonl"]
    code, _out, err = run([*base, "--dry-run"], capsys)
    assert code == 0 and "DRY-RUN kill dry-run: would send SIGKILL" in err and "1 alerts, 2 actions (dry run)" in err
    assert sleeper.poll() is None and not any(p.is_dir() for p in (tmp_path / "ev").iterdir())
    code, _out, err = run(base, capsys)
    assert code == 0 and sleeper.wait(timeout=10) == -9
    audit = [json.loads(x) for x in (tmp_path / "ev" / "audit.jsonl").read_text().splitlines()]
    assert [(a["action"], a["status"], a["dry_run"]) for a in audit] == [
        ("capture", "dry-run", True), ("kill", "dry-run", True), ("capture", "done", False), ("kill", "done", False)]
    alerts = [json.loads(x) for x in (tmp_path / "alerts.jsonl").read_text().splitlines()]
    assert [a["rule"] for a in alerts] == ["Test sleeper", "Test sleeper"]


def test_respond_validate(tmp_path, capsys) -> None:
    (tmp_path / "p.yaml").write_text("bindings:\n  - {name: b1, tags: [x], actions: [notify, stop]}\n")
    code, out, _err = run(["respond", "validate", str(tmp_path / "p.yaml")], capsys)
    assert code == 0 and out == "b1: tags=['x']: notify -> capture -> stop\n"
    with pytest.raises(HullguardError, match="cannot read response policy"):
        run(["respond", "validate", str(tmp_path / "nope.yaml")], capsys)


def test_outputs_test_command(tmp_path, capsys) -> None:
    code, out, err = run(["outputs", "test", "json", f"file:{tmp_path}/a.jsonl"], capsys)
    assert code == 0 and json.loads(out)["rule"] == "hullguard test alert"
    assert json.loads((tmp_path / "a.jsonl").read_text())["source"] == "internal"
    assert "json: sent=1 failed=0" in err
    # Nothing listens on this port: delivery fails and the command says so with exit 1.
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    (tmp_path / "o.yaml").write_text(f"outputs: ['webhook:http://127.0.0.1:{port}/']\nretries: 1\nbackoff: 0.01\n")
    code, _out, err = run(["outputs", "test", "--config", str(tmp_path / "o.yaml")], capsys)
    assert code == 1 and "failed=1" in err and "retries=1" in err
