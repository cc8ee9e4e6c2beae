"""Behaviour baselines: learning windows on event time, deviations, storage, and the CLI."""

from __future__ import annotations

import argparse
import json
import os

import pytest

from hullguard.model import HullguardError
from hullguard.runtime.baseline import RULES, BaselineStore, facts, file_name, parse_connect, workload_key

T0 = 1_795_428_000_000_000_000  # 2026-11-23T10:00:00Z in ns
S = 1_000_000_000


def ex(exe: str, t: float, *, parent: str = "sh", repo: str = "docker.io/library/nginx", **extra) -> dict:
    return {"_source": "syscall", "evt.type": "execve", "evt.dir": "<", "evt.time": T0 + int(t * S),
            "proc.exe": exe, "proc.name": exe.rsplit("/", 1)[-1], "proc.pname": parent, "proc.cmdline": exe,
            "proc.pid": 4242, "container.id": "3ad7b26ded6d", "container.image.repository": repo, **extra}


def conn(ip: str, port: int, t: float, repo: str = "docker.io/library/nginx") -> dict:
    return {"_source": "syscall", "evt.type": "connect", "evt.dir": "<", "evt.time": T0 + int(t * S),
            "proc.name": "nginx", "fd.typechar": "4", "fd.dip": ip, "fd.dport": port, "container.id": "3ad7b26ded6d",
            "container.image.repository": repo}


def write(path: str, t: float, flags: str = "O_WRONLY|O_CREAT") -> dict:
    return {"_source": "syscall", "evt.type": "openat", "evt.time": T0 + int(t * S), "proc.name": "nginx",
            "fd.name": path, "evt.arg.flags": flags, "container.id": "3ad7b26ded6d",
            "container.image.repository": "docker.io/library/nginx"}


def test_workload_keys() -> None:
    assert workload_key({"k8s.ns.name": "shop", "k8s.deployment.name": "web",
                         "container.image.repository": "nginx"}) == "k8s:shop/web"
    assert workload_key({"container.image.repository": "nginx", "container.id": "abc"}) == "image:nginx"
    assert workload_key({"container.id": "abc"}) == "container:abc"
    assert workload_key({"container.id": "host"}) == "host"
    assert file_name("k8s:a/b") != file_name("k8s:a_b") and file_name("../../x").startswith(".._.._x-")


def test_facts_by_event_kind() -> None:
    assert facts(ex("/bin/sh", 0, parent="nginx")) == {"processes": "/bin/sh", "exec_pairs": "nginx->sh"}
    assert facts(conn("10.0.0.5", 5432, 0)) == {"connections": "10.0.0.5:5432"}
    assert facts(conn("fd00::1", 443, 0)) == {"connections": "[fd00::1]:443"}
    assert facts(write("/etc/passwd", 0)) == {"files_written": "/etc/passwd"}
    assert facts(write("/etc/passwd", 0, flags="O_RDONLY")) == {}
    assert facts(write("/tmp/x", 0)) == {}


def test_learn_then_alert_after_window(tmp_path) -> None:
    store = BaselineStore(str(tmp_path), learn_seconds=60)
    for ev in (ex("/usr/sbin/nginx", 0, parent="runc"), conn("10.0.0.5", 5432, 5), ex("/bin/sh", 10, parent="nginx")):
        assert store.observe(ev) == []
    # Still inside the window: new things are learned, not alerted.
    assert store.observe(ex("/usr/bin/curl", 59, parent="sh")) == []
    # After the window: known behaviour is quiet, everything else alerts.
    assert store.observe(ex("/usr/sbin/nginx", 120, parent="runc")) == []
    assert store.observe(conn("10.0.0.5", 5432, 121)) == []
    got = store.observe(ex("/usr/bin/wget", 122, parent="sh"))
    assert [a.rule for a in got] == [RULES["processes"], RULES["exec_pairs"]]
    a = got[0].to_dict()
    assert a["source"] == "syscall" and a["priority"] == "Warning" and "baseline" in a["tags"]
    assert a["output_fields"]["hullguard.workload"] == "image:docker.io/library/nginx"
    assert a["output_fields"]["proc.exe"] == "/usr/bin/wget"
    assert a["time"].startswith("2026-11-23T10:02:02") and a["output"].startswith("10:02:02.000000000: Warning ")
    # A known executable spawned by a new parent is a spawn deviation only.
    got = store.observe(ex("/bin/sh", 123, parent="curl"))
    assert [a.rule for a in got] == [RULES["exec_pairs"]]
    assert [a.rule for a in store.observe(conn("203.0.113.9", 4444, 124))] == [RULES["connections"]]
    assert [a.rule for a in store.observe(write("/etc/cron.d/x", 125))] == [RULES["files_written"]]


def test_workloads_are_separate(tmp_path) -> None:
    store = BaselineStore(str(tmp_path), learn_seconds=10)
    store.observe(ex("/usr/sbin/nginx", 0))
    store.observe(ex("/usr/bin/redis-server", 0, repo="redis"))
    assert store.observe(ex("/usr/bin/redis-server", 20)) != []  # nginx never ran redis
    assert store.observe(ex("/usr/bin/redis-server", 20, repo="redis")) == []


def test_save_reload_lock_allow(tmp_path) -> None:
    store = BaselineStore(str(tmp_path), learn_seconds=3600)
    store.observe(ex("/usr/sbin/nginx", 0, parent="runc"))
    written = store.save()
    assert len(written) == 1 and not [n for n in os.listdir(tmp_path) if n.startswith(".tmp")]
    with open(written[0]) as fh:
        doc = json.load(fh)
    assert doc["schema"] == 1 and doc["processes"] == ["/usr/sbin/nginx"] and doc["exec_pairs"] == ["runc->nginx"]
    again = BaselineStore(str(tmp_path), learn_seconds=3600)
    name = "image:docker.io/library/nginx"
    assert again.observe(ex("/bin/sh", 1)) == []  # still learning
    again.set_locked(name, True)
    assert [a.rule for a in again.observe(ex("/bin/bash", 2, parent="nginx"))] == list(RULES.values())[:2]
    again.allow(name, "processes", "/bin/bash")
    again.allow(name, "exec_pairs", "nginx->bash")
    again.allow(name, "connections", parse_connect("10.0.0.0/8:*"))
    assert again.observe(ex("/bin/bash", 3, parent="nginx")) == []
    assert again.observe(conn("10.1.2.3", 6379, 4)) == []
    assert again.observe(conn("11.1.2.3", 6379, 4)) != []
    again.save()
    third = BaselineStore(str(tmp_path), learn_seconds=0)
    assert third.get(name).locked and third.check(ex("/bin/bash", 5, parent="nginx")) == []
    third.set_locked(name, False, learn_seconds=5)
    assert third.observe(ex("/bin/zsh", 100)) == []  # the window restarts at the next event
    assert third.observe(ex("/bin/ksh", 106)) != []


def test_bad_baseline_files_are_clear_errors(tmp_path) -> None:
    (tmp_path / "x.json").write_text("{not json")
    with pytest.raises(HullguardError, match="not valid JSON"):
        BaselineStore(str(tmp_path), learn_seconds=1)
    (tmp_path / "x.json").write_text('{"schema": 99, "workload": "a"}')
    with pytest.raises(HullguardError, match="not a hullguard baseline"):
        BaselineStore(str(tmp_path), learn_seconds=1)
    (tmp_path / "x.json").write_text('{"schema": 1, "workload": "a", "processes": 5}')
    with pytest.raises(HullguardError, match="malformed"):
        BaselineStore(str(tmp_path), learn_seconds=1)


@pytest.mark.parametrize("bad", ["nohostport", "1.2.3.4:0", "1.2.3.4:70000", "bogus:80", ":80"])
def test_parse_connect_rejects(bad: str) -> None:
    with pytest.raises(HullguardError):
        parse_connect(bad)


def test_entries_are_bounded(tmp_path, monkeypatch) -> None:
    import hullguard.runtime.baseline as bl

    monkeypatch.setattr(bl, "MAX_ENTRIES", 3)
    store = BaselineStore(str(tmp_path), learn_seconds=100)
    for i in range(10):
        store.observe(ex(f"/bin/p{i}", i))
    w = store.get("image:docker.io/library/nginx")
    assert len(w.entries["processes"]) == 3 and w.truncated


# ---- CLI -------------------------------------------------------------------------------------------

def run(argv: list[str], capsys) -> tuple[int, str, str]:
    from hullguard.cli.runtime_response import register

    p = argparse.ArgumentParser()
    register(p.add_subparsers())
    args = p.parse_args(argv)
    code = args.func(args)
    out, err = capsys.readouterr()
    return code, out, err


def falco_line(ev: dict) -> str:
    # Falco's JSON output shape, as a sensor would have exported it.
    return json.dumps({"time": "2026-11-23T10:00:00Z", "rule": "x", "priority": "Notice", "source": "syscall",
                       "output": "x", "output_fields": {k: v for k, v in ev.items() if not k.startswith("_")}})


def test_cli_learn_list_check_allow_lock(tmp_path, capsys) -> None:
    d = str(tmp_path / "bl")
    learn = tmp_path / "learn.jsonl"
    learn.write_text("\n".join([falco_line(ex("/usr/sbin/nginx", 0, parent="runc")),
                                json.dumps({k: v for k, v in conn("10.0.0.5", 5432, 1).items() if k != "_source"}),
                                "garbage"]) + "\n")
    code, _out, err = run(["baseline", "learn", str(learn), "--dir", d], capsys)
    assert code == 0 and "1 workloads learned" in err and "1 malformed" in err
    code, out, _ = run(["baseline", "list", "--dir", d, "--format", "json"], capsys)
    rows = json.loads(out)
    assert rows == [{"workload": "image:docker.io/library/nginx", "mode": "enforcing", "events": 2, "truncated": False,
                     "processes": 1, "exec_pairs": 1, "connections": 1, "files_written": 0}]
    check = tmp_path / "check.jsonl"
    evs = [ex("/usr/sbin/nginx", 9, parent="runc"), ex("/bin/sh", 9, parent="nginx"), conn("10.0.0.5", 5432, 9),
           conn("1.2.3.4", 80, 9)]
    check.write_text("\n".join(json.dumps(e) for e in evs) + "\n")
    code, out, err = run(["baseline", "check", str(check), "--dir", d, "--format", "json", "--exit-code", "1"], capsys)
    alerts = [json.loads(x) for x in out.splitlines()]
    assert code == 1 and [a["rule"] for a in alerts] == [RULES["processes"], RULES["exec_pairs"], RULES["connections"]]
    name = "image:docker.io/library/nginx"
    run(["baseline", "allow", name, "--dir", d, "--process", "/bin/sh", "--spawn", "nginx->sh",
         "--connect", "1.2.3.0/24:80"], capsys)
    code, out, _ = run(["baseline", "check", str(check), "--dir", d, "--exit-code", "1"], capsys)
    assert code == 0 and out == ""
    run(["baseline", "lock", name, "--dir", d], capsys)
    code, out, _ = run(["baseline", "show", name, "--dir", d], capsys)
    assert json.loads(out)["mode"] == "locked"
    with pytest.raises(HullguardError, match="no baseline for workload"):
        run(["baseline", "lock", "image:nope", "--dir", d], capsys)
    with pytest.raises(HullguardError, match="no baseline directory"):
        run(["baseline", "list", "--dir", str(tmp_path / "missing")], capsys)
    with pytest.raises(HullguardError, match="cannot read"):
        run(["baseline", "learn", str(tmp_path / "missing.jsonl"), "--dir", d], capsys)


def test_hostile_events_are_ignored_not_fatal(tmp_path) -> None:
    store = BaselineStore(str(tmp_path), learn_seconds=0)
    odd = [{"evt.type": "execve", "proc.exe": ["x"]}, {"evt.type": "execve", "proc.exe": "/x" * 5000},
           {"evt.type": "connect", "fd.dip": None, "fd.dport": 1}, {"evt.type": 5}, {"evt.type": "connect",
           "fd.dip": "1.2.3.4", "fd.dport": {"a": 1}, "evt.time": "yesterday"}, {"k8s.deployment.name": 7}]
    for ev in odd:
        store.observe(ev)
        store.check(ev)
    store.save()
    assert all(len(w.entries["processes"]) == 0 for w in store.workloads.values())
