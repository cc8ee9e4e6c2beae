"""Runtime engine benchmark: replay generated syscall-shaped and audit events through the rules.

Prints events/s on one core and per-event latency (mean, p50, p99) for:
  * syscall events against hullguard's bundled rules (50+),
  * the same events against the bundled rules plus 450 generated rules (500+), to show that
    indexing by event type keeps throughput from falling with the rule count,
  * Kubernetes audit events against the bundled rules,
  * the full replay path (JSON decode + normalise + engine) for syscall lines.

Run: /work/venv/bin/python bench/runtime.py [--events N]
"""

from __future__ import annotations

import argparse
import json
import random
import time
from typing import Any

from hullguard.runtime.engine import Engine
from hullguard.runtime.replay import ReplayStats, iter_events, normalise
from hullguard.runtime.rules import default_rules_path, load_rules

SYSCALLS = ["execve", "openat", "connect", "accept", "close", "read", "write", "unlinkat", "renameat2", "chmod",
            "fchmodat", "ptrace", "symlinkat", "mount", "setuid", "clone", "socket", "bind", "listen", "sendto",
            "recvfrom", "mmap", "mprotect", "dup2", "fcntl", "ioctl", "kill", "mkdirat", "rmdir", "linkat",
            "chown", "fchown", "setns", "unshare", "bpf", "init_module", "finit_module", "memfd_create",
            "pivot_root", "chroot", "capset", "prctl", "setgid", "setresuid", "userfaultfd", "process_vm_writev",
            "open_by_handle_at", "splice", "sendmsg", "recvmsg"]
PROCS = ["nginx", "bash", "sh", "python3", "java", "node", "curl", "apt-get", "nc", "ls", "cat", "sshd", "xmrig"]
FILES = ["/etc/passwd", "/etc/shadow", "/var/log/app.log", "/usr/bin/ls", "/tmp/x", "/proc/self/status",
         "/etc/nginx/nginx.conf", "/home/app/.ssh/authorized_keys"]


BENIGN_PROCS = ["nginx", "java", "node", "postgres", "redis-server", "envoy", "python3", "ls", "cat"]
BENIGN_FILES = ["/var/lib/app/data.db", "/proc/self/status", "/usr/lib/x86_64-linux-gnu/libc.so.6", "/srv/www/a.html"]


def syscall_events(n: int, seed: int = 7, benign: bool = False) -> list[dict[str, Any]]:
    """Generated events; ``benign`` draws from processes/files/ports no rule cares about, the
    common case on a real host where almost every event matches nothing."""
    rnd = random.Random(seed)
    procs, files = (BENIGN_PROCS, BENIGN_FILES) if benign else (PROCS, FILES)
    ports = [443, 80, 53] if benign else [443, 80, 3333, 6379, 22]
    out = []
    for i in range(n):
        r = rnd.random()
        etype = "execve" if r < 0.3 else "openat" if r < 0.6 else "connect" if r < 0.75 else rnd.choice(SYSCALLS)
        name = rnd.choice(procs)
        ev: dict[str, Any] = {
            "_source": "syscall", "evt.type": etype, "evt.dir": "<", "evt.time": 1_700_000_000_000_000_000 + i,
            "evt.num": i + 2, "proc.name": name, "proc.exe": f"/usr/bin/{name}", "proc.cmdline": f"{name} -x {i % 97}",
            "proc.pname": rnd.choice(procs), "proc.pid": 1000 + i % 5000, "proc.ppid": 999,
            "proc.tty": rnd.choice([0, 0, 34816]),
            "user.name": "root", "user.uid": 0, "container.id": rnd.choice(["host", "3ad7b26ded6d", "8f1e2c3b4a5d"]),
            "container.name": "web", "container.image.repository": "docker.io/library/nginx",
            "container.image.tag": "1.25", "container.privileged": "false", "_anc": ["containerd-shim", "systemd"],
        }
        if etype == "openat":
            ev["fd.name"] = rnd.choice(files)
            ev["fd.typechar"] = "f"
            ev["evt.arg.flags"] = rnd.choice(["O_RDONLY", "O_WRONLY|O_CREAT", "O_RDWR"])
        elif etype == "connect":
            ev.update({"fd.typechar": "4", "fd.sip": "10.0.0.5", "fd.sport": 40000 + i % 1000,
                       "fd.dip": rnd.choice(["10.0.0.9", "93.184.216.34", "127.0.0.1"]),
                       "fd.dport": rnd.choice(ports), "fd.l4proto": "tcp"})
        out.append(ev)
    return out


def audit_events(n: int, seed: int = 11) -> list[dict[str, Any]]:
    rnd = random.Random(seed)
    out = []
    for i in range(n):
        kind = rnd.random()
        base: dict[str, Any] = {
            "kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "Metadata", "auditID": f"id-{i}",
            "stage": "ResponseComplete", "verb": "get", "user": {"username": rnd.choice(["alice", "system:node:n1",
                                                                                          "system:anonymous"])},
            "sourceIPs": ["10.0.0.1"], "userAgent": "kubectl/v1.30", "requestURI": "/api/v1/namespaces/a/pods",
            "objectRef": {"resource": "pods", "namespace": "a", "name": f"p{i}"},
            "responseStatus": {"code": 200}, "stageTimestamp": "2026-11-23T10:00:00.000000Z",
            "annotations": {"authorization.k8s.io/decision": "allow"},
        }
        if kind < 0.2:
            base["verb"] = "create"
            base["requestObject"] = {"spec": {"containers": [{"image": "quay.io/x/y:1",
                                                              "securityContext": {"privileged": rnd.random() < 0.5}}]}}
        elif kind < 0.3:
            base["objectRef"] = {"resource": "secrets", "namespace": "a", "name": "s"}
        out.append(normalise(base)[0])  # type: ignore[index]
    return out


def extra_rules(n: int) -> str:
    """n generated rules spread over the syscall list, like a large site-specific rule set."""
    items = []
    for i in range(n):
        etype = SYSCALLS[i % len(SYSCALLS)]
        items.append({"rule": f"Generated rule {i}", "desc": "generated", "priority": "NOTICE",
                      "condition": f"evt.type = {etype} and proc.name = tool{i} and "
                                   f"(fd.name startswith /opt/app{i}/ or proc.cmdline contains \"--flag{i}\")",
                      "output": f"generated {i} (proc=%proc.name file=%fd.name)"})
    return json.dumps(items)  # JSON is YAML


def measure(engine: Engine, events: list[dict[str, Any]], rounds: int = 5, chunks: int = 20) -> dict[str, float]:
    """Per-core throughput as timeit does it: each chunk of events is timed ``rounds`` times and
    the fastest run counts, which filters out time stolen by other processes on a shared host."""
    size = max(len(events) // chunks, 1)
    total = 0.0
    for start in range(0, len(events), size):
        part = events[start:start + size]
        best = float("inf")
        for _ in range(rounds):
            t0 = time.perf_counter()
            for ev in part:
                engine.process(ev)
            best = min(best, time.perf_counter() - t0)
        total += best
    lat = []
    sample = events[: min(len(events), 20000)]
    for ev in sample:
        t = time.perf_counter_ns()
        engine.process(ev)
        lat.append(time.perf_counter_ns() - t)
    lat.sort()
    return {"events_per_s": len(events) / total, "mean_us": total / len(events) * 1e6,
            "p50_us": lat[len(lat) // 2] / 1000, "p99_us": lat[int(len(lat) * 0.99)] / 1000}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=200_000)
    args = ap.parse_args()
    base = load_rules([default_rules_path()])
    big = load_rules([default_rules_path()], texts=[("generated", extra_rules(450))])
    sys_events = syscall_events(args.events)
    quiet_events = syscall_events(args.events, benign=True)
    k8s_events = audit_events(max(args.events // 4, 1000))
    rows = []
    for label, rs, evs in (("syscall", base, sys_events), ("syscall", big, sys_events),
                           ("quiet", base, quiet_events), ("quiet", big, quiet_events),
                           ("k8s_audit", base, k8s_events)):
        for matching in ("first", "all"):
            eng = Engine(rs, rule_matching=matching, hostname="bench")
            m = measure(eng, evs)
            rows.append((label, len(rs.rules), matching, m))
            print(f"{label:9} rules={len(rs.rules):4} matching={matching:5} {m['events_per_s']:>10,.0f} events/s/core"
                  f"  mean={m['mean_us']:.2f}us p50={m['p50_us']:.2f}us p99={m['p99_us']:.2f}us", flush=True)
    small = next(r[3]["events_per_s"] for r in rows if r[0] == "syscall" and r[2] == "all")
    large = [r[3]["events_per_s"] for r in rows if r[0] == "syscall" and r[2] == "all"][1]
    print(f"ratio 500-rule/50-rule throughput (syscall, matching=all): {large / small:.2f} "
          f"(linear scaling would be ~{len(base.rules) / len(big.rules):.2f})")
    lines = [json.dumps({"output_fields": {k: v for k, v in ev.items() if not k.startswith("_")},
                         "source": "syscall"}) for ev in sys_events[:50000]]
    eng = Engine(base, hostname="bench")
    t0 = time.perf_counter()
    stats = ReplayStats()
    for ev in iter_events(lines, stats):
        eng.process(ev)
    dt = time.perf_counter() - t0
    print(f"full replay path (decode+normalise+engine, Falco JSON lines): {stats.events / dt:,.0f} events/s/core")


if __name__ == "__main__":
    main()
