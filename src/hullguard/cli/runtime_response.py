"""`hullguard runtime baseline|respond|outputs`: behaviour baselines, response policies, alert outputs.

``register(rsub)`` is called by cli/runtime.py with the ``runtime`` subparsers.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from hullguard.model import HullguardError


def default_baseline_dir() -> str:
    env = os.environ.get("HULLGUARD_BASELINE_DIR")
    if env:
        return env
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return os.path.join(base, "hullguard", "baselines")


def register(rsub: argparse._SubParsersAction) -> None:
    _register_baseline(rsub)
    _register_respond(rsub)
    _register_outputs(rsub)


def _help_of(p: argparse.ArgumentParser) -> Any:
    return lambda args: (p.print_help(sys.stderr), 2)[1]


def _register_baseline(rsub: argparse._SubParsersAction) -> None:
    b = rsub.add_parser("baseline", help="per-workload behaviour baselines: learn, list, edit, lock, check")
    bsub = b.add_subparsers(dest="baseline_command", metavar="ACTION", parser_class=type(b))
    b.set_defaults(func=_help_of(b))

    def sub(name: str, help_: str, func: Any) -> argparse.ArgumentParser:
        p = bsub.add_parser(name, help=help_)
        p.add_argument("--dir", default="", help="baseline directory (default: $HULLGUARD_BASELINE_DIR or "
                       "$XDG_STATE_HOME/hullguard/baselines)")
        p.set_defaults(func=func)
        return p

    p = sub("list", "every workload with its mode and entry counts", _bl_list)
    p.add_argument("--format", choices=("text", "json"), default="text")
    p = sub("show", "one workload's baseline as JSON", _bl_show)
    p.add_argument("workload")
    p = sub("allow", "add entries to a workload's allow list", _bl_allow)
    p.add_argument("workload")
    p.add_argument("--process", action="append", default=[], metavar="EXE", help="an executable path or name")
    p.add_argument("--connect", action="append", default=[], metavar="HOST:PORT",
                   help="destination; HOST may be a CIDR or *, PORT may be *")
    p.add_argument("--spawn", action="append", default=[], metavar="PARENT->CHILD", help="a parent→child exec pair")
    p.add_argument("--file", action="append", default=[], metavar="PATH", help="a file written below a sensitive dir")
    p = sub("lock", "stop learning: alert on anything outside the baseline from now on", _bl_lock)
    p.add_argument("workload")
    p = sub("unlock", "unlock and learn again for a new window starting at the next event", _bl_unlock)
    p.add_argument("workload")
    p.add_argument("--learn-seconds", type=float, default=None, help="length of the new learning window")
    p = sub("learn", "learn baselines from a JSON-lines events file (Falco, Tetragon or flat events)", _bl_learn)
    p.add_argument("events", metavar="EVENTS.jsonl")
    p.add_argument("--learn-seconds", type=float, default=3600.0,
                   help="learning window recorded for new workloads (default 3600)")
    p.add_argument("--lock", action="store_true", help="lock every workload learned from the file")
    p = sub("check", "print events that deviate from the stored baselines", _bl_check)
    p.add_argument("events", metavar="EVENTS.jsonl")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.add_argument("--priority", default="warning", help="priority of deviation alerts (default warning)")
    p.add_argument("--exit-code", type=int, default=0, help="exit with this code when a deviation is found")


def _store(args: argparse.Namespace, *, learn_seconds: float = 3600.0, create: bool = False,
           priority: str = "warning") -> Any:
    from hullguard.runtime.baseline import BaselineStore

    path = args.dir or default_baseline_dir()
    if not create and not os.path.isdir(path):
        raise HullguardError(f"no baseline directory {path} (learn one with `hullguard runtime baseline learn`)")
    return BaselineStore(path, learn_seconds=learn_seconds, create=create, priority=priority)


def _bl_list(args: argparse.Namespace) -> int:
    from hullguard.runtime.baseline import KINDS

    store = _store(args)
    rows = [store.workloads[n].to_dict() for n in sorted(store.workloads)]
    if args.format == "json":
        print(json.dumps([{k: r[k] for k in ("workload", "mode", "events", "truncated")}
                          | {k: len(r[k]) for k in KINDS} for r in rows], indent=2))
        return 0
    if not rows:
        print("no baselines", file=sys.stderr)
    for r in rows:
        counts = " ".join(f"{k}={len(r[k])}" for k in KINDS)
        print(f"{r['workload']}\t{r['mode']}\t{counts}{'  (truncated)' if r['truncated'] else ''}")
    return 0


def _bl_show(args: argparse.Namespace) -> int:
    print(json.dumps(_store(args).get(args.workload).to_dict(), indent=2))
    return 0


def _bl_allow(args: argparse.Namespace) -> int:
    from hullguard.runtime.baseline import parse_connect

    items = [("processes", p) for p in args.process] + [("connections", parse_connect(c)) for c in args.connect]
    for s in args.spawn:
        if "->" not in s:
            raise HullguardError(f"--spawn wants PARENT->CHILD, got {s!r}")
        items.append(("exec_pairs", s))
    items += [("files_written", f) for f in args.file]
    if not items:
        raise HullguardError("nothing to allow: give --process, --connect, --spawn or --file")
    store = _store(args)
    for kind, value in items:
        store.allow(args.workload, kind, value)
    store.save()
    print(f"{args.workload}: allowed {', '.join(v for _k, v in items)}", file=sys.stderr)
    return 0


def _bl_lock(args: argparse.Namespace) -> int:
    store = _store(args)
    store.set_locked(args.workload, True)
    store.save()
    print(f"{args.workload}: locked", file=sys.stderr)
    return 0


def _bl_unlock(args: argparse.Namespace) -> int:
    store = _store(args)
    store.set_locked(args.workload, False, learn_seconds=args.learn_seconds)
    store.save()
    print(f"{args.workload}: learning again", file=sys.stderr)
    return 0


def _open_events(path: str) -> Any:
    if path == "-":
        return sys.stdin.buffer
    try:
        return open(path, "rb")
    except OSError as exc:
        raise HullguardError(f"cannot read {path}: {exc.strerror or exc}") from None


def _bl_learn(args: argparse.Namespace) -> int:
    from hullguard.runtime.replay import ReplayStats, iter_events

    store = _store(args, learn_seconds=args.learn_seconds, create=True)
    stats = ReplayStats()
    src = _open_events(args.events)
    try:
        touched: set[str] = set()
        from hullguard.runtime.baseline import facts, workload_key

        for ev in iter_events(src, stats):
            if facts(ev):
                touched.add(workload_key(ev))
            store.observe(ev, force_learn=True)
    finally:
        if src is not sys.stdin.buffer:
            src.close()
    if args.lock:
        for name in touched:
            if name in store.workloads:
                store.set_locked(name, True)
    written = store.save()
    print(f"hullguard: {stats.events} events, {len(touched)} workloads learned, {len(written)} baselines written "
          f"to {store.path}, {stats.malformed} malformed lines skipped", file=sys.stderr)
    return 0


def _bl_check(args: argparse.Namespace) -> int:
    from hullguard.runtime.replay import ReplayStats, iter_events

    store = _store(args, priority=args.priority)
    stats = ReplayStats()
    found = 0
    src = _open_events(args.events)
    try:
        for ev in iter_events(src, stats):
            for a in store.check(ev):
                found += 1
                print(json.dumps(a.to_dict(), separators=(",", ":")) if args.format == "json" else a.output)
    finally:
        if src is not sys.stdin.buffer:
            src.close()
    print(f"hullguard: {stats.events} events, {found} deviations, {stats.malformed} malformed lines skipped",
          file=sys.stderr)
    return args.exit_code if found else 0


def default_state_dir(name: str) -> str:
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return os.path.join(base, "hullguard", name)


def _register_respond(rsub: argparse._SubParsersAction) -> None:
    r = rsub.add_parser("respond", help="response policies: validate one, or run one over captured events")
    r.set_defaults(func=_help_of(r))
    xsub = r.add_subparsers(dest="respond_command", metavar="ACTION", parser_class=type(r))
    v = xsub.add_parser("validate", help="check a response policy file")
    v.add_argument("policy", metavar="POLICY.yaml")
    v.set_defaults(func=_respond_validate)
    run = xsub.add_parser("run", help="replay events through the rules and answer alerts with the policy's actions")
    run.add_argument("events", metavar="EVENTS.jsonl", help="JSON-lines events ('-' for stdin)")
    run.add_argument("--policy", required=True, metavar="POLICY.yaml")
    run.add_argument("--rules", nargs="+", metavar="FILE", action="extend", default=[],
                     help="rules files (default: hullguard's bundled rules)")
    run.add_argument("--baseline-dir", default="", help="also alert on deviations from these stored baselines")
    run.add_argument("--dry-run", action="store_true", help="print what would be done; change nothing")
    run.add_argument("--evidence-dir", default="", help="default: $XDG_STATE_HOME/hullguard/evidence")
    run.add_argument("--audit-log", default="", help="default: EVIDENCE_DIR/audit.jsonl")
    run.add_argument("--kubeconfig", default=None, help="cluster credentials for quarantine (default: "
                     "$KUBECONFIG, in-cluster service account, ~/.kube/config)")
    run.add_argument("--docker-socket", default=None, help="Docker API socket (default: /var/run/docker.sock)")
    run.add_argument("--output", action="append", default=[], metavar="SPEC",
                     help="also send alerts to this output (stdout, json, file:PATH, webhook:URL, ...)")
    run.add_argument("--min-priority", default="debug", help="ignore alerts below this priority")
    run.set_defaults(func=_respond_run)


def _respond_validate(args: argparse.Namespace) -> int:
    from hullguard.runtime.respond import load_policy, order_actions

    pol = load_policy(args.policy)
    for b in pol.bindings:
        crit = [f"rules={list(b.rules)}" if b.rules else "", f"tags={sorted(b.tags)}" if b.tags else "",
                f"min_priority={b.min_priority}" if b.min_priority else ""]
        acts = " -> ".join(n for n, _o in order_actions(list(b.actions)))
        print(f"{b.name}: {' '.join(c for c in crit if c)}: {acts}")
    print(f"hullguard: {args.policy}: {len(pol.bindings)} bindings OK", file=sys.stderr)
    return 0


def _respond_run(args: argparse.Namespace) -> int:
    from hullguard.runtime.engine import PRIORITY_RANK, Engine
    from hullguard.runtime.outputs import OutputSet, parse_output_spec
    from hullguard.runtime.replay import ReplayStats, iter_events
    from hullguard.runtime.respond import Responder
    from hullguard.runtime.rules import default_rules_path, load_rules

    if args.min_priority.lower() not in PRIORITY_RANK:
        raise HullguardError(f"unknown priority {args.min_priority!r}")
    evidence = args.evidence_dir or default_state_dir("evidence")
    responder = Responder.from_file(args.policy, dry_run=args.dry_run, evidence_dir=evidence,
                                    audit_log=args.audit_log or None, kubeconfig=args.kubeconfig,
                                    docker_socket=args.docker_socket, log=sys.stderr, out=sys.stdout)
    ruleset = load_rules(args.rules or [default_rules_path()])
    engine = Engine(ruleset, rule_matching="all", min_priority=args.min_priority.lower())
    baselines = None
    if args.baseline_dir:
        from hullguard.runtime.baseline import BaselineStore

        if not os.path.isdir(args.baseline_dir):
            raise HullguardError(f"no baseline directory {args.baseline_dir}")
        baselines = BaselineStore(args.baseline_dir, learn_seconds=0, create=False)
    outputs = OutputSet([parse_output_spec(s) for s in args.output])
    stats = ReplayStats()
    alerts = actions = 0
    src = _open_events(args.events)
    try:
        for ev in iter_events(src, stats):
            found = engine.process(ev) + (baselines.check(ev) if baselines is not None else [])
            for a in found:
                alerts += 1
                outputs.emit(a)
                actions += len(responder.handle(a, ev))
    finally:
        if src is not sys.stdin.buffer:
            src.close()
        outputs.close()
        responder.close()
    print(f"hullguard: {stats.events} events, {alerts} alerts, {actions} actions{' (dry run)' if args.dry_run else ''}"
          f", audit log {responder.audit_log}, {stats.malformed} malformed lines skipped", file=sys.stderr)
    return 0


def _register_outputs(rsub: argparse._SubParsersAction) -> None:
    o = rsub.add_parser("outputs", help="alert outputs: send a test alert")
    o.set_defaults(func=_help_of(o))
    osub = o.add_subparsers(dest="outputs_command", metavar="ACTION", parser_class=type(o))
    t = osub.add_parser("test", help="send one test alert to each output and report delivery")
    t.add_argument("specs", nargs="*", metavar="SPEC", help="stdout, json, file:PATH, webhook:URL, slack:URL, "
                   "syslog[:HOST[:PORT]], syslog:unix:PATH")
    t.add_argument("--config", default="", help="an outputs YAML file (outputs, dedupe_seconds, rate_per_rule)")
    t.set_defaults(func=_outputs_test)


def _outputs_test(args: argparse.Namespace) -> int:
    import socket
    import time

    from hullguard.runtime.engine import Alert, format_time
    from hullguard.runtime.outputs import OutputSet, parse_output_spec

    if not args.specs and not args.config:
        raise HullguardError("give output specs or --config FILE")
    outputs = OutputSet.from_config(args.config) if args.config else OutputSet([])
    outputs.sinks += [parse_output_spec(s) for s in args.specs]
    iso = format_time(time.time_ns())
    outputs.emit(Alert(time=iso, rule="hullguard test alert", priority="Notice", source="internal",
                       output=f"{iso[11:29]}: Notice hullguard test alert (outputs test)",
                       output_fields={"hullguard.test": True}, tags=["hullguard", "test"],
                       hostname=socket.gethostname()))
    outputs.close()
    failed = 0
    for name, c in outputs.sink_counters().items():
        failed += c["failed"] + c["dropped"]
        print(f"{name}: sent={c['sent']} failed={c['failed']} dropped={c['dropped']} retries={c['retries']}",
              file=sys.stderr)
    return 1 if failed else 0
