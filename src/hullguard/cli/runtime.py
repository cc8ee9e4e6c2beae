"""`hullguard runtime`: run the agent on live sources, replay captured events, validate rules files."""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import sys
import threading
from typing import Any

from hullguard.cli import runtime_response
from hullguard.model import HullguardError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("runtime", help="runtime detection with Falco-syntax rules")
    rsub = p.add_subparsers(dest="runtime_command", metavar="ACTION", parser_class=type(p))

    rp = rsub.add_parser("replay", help="evaluate captured events (k8s audit, Falco JSON, Tetragon) against rules")
    rp.add_argument("events", metavar="EVENTS.jsonl", nargs="?", default=None,
                    help="JSON-lines events file ('-' for stdin)")
    rp.add_argument("--rules", nargs="+", metavar="FILE", action="extend", default=[],
                    help="rules files in load order (default: hullguard's bundled rules)")
    rp.add_argument("--format", choices=("json", "text"), default="text")
    rp.add_argument("--rule-matching", choices=("first", "all"), default="first",
                    help="stop at the first matching rule per event (Falco's default) or report all")
    rp.add_argument("--min-priority", default="debug", help="drop alerts below this priority")
    rp.add_argument("--output", default="", help="write alerts here instead of stdout")
    rp.set_defaults(func=_replay)

    rules = rsub.add_parser("rules", help="work with rules files")
    rrsub = rules.add_subparsers(dest="rules_command", metavar="ACTION", parser_class=type(p))
    val = rrsub.add_parser("validate", help="load rules files and report every rule as loaded or skipped")
    val.add_argument("files", nargs="+", metavar="FILE")
    val.add_argument("--format", choices=("json", "text"), default="text")
    val.set_defaults(func=_validate)
    rules.set_defaults(func=lambda args: (rules.print_help(sys.stderr), 2)[1])
    _register_run(rsub)
    srcp = rsub.add_parser("sources", help="which event sources can run here, and why not")
    srcp.add_argument("--format", choices=("json", "text"), default="text")
    srcp.add_argument("--mount-tracefs", action="store_true",
                      help="mount tracefs at /sys/kernel/tracing first when it is missing (root)")
    srcp.set_defaults(func=_sources)
    runtime_response.register(rsub)  # runtime baseline|respond|outputs
    p.set_defaults(func=lambda args: (p.print_help(sys.stderr), 2)[1])


def _engine(args: argparse.Namespace) -> Any:
    """The engine for --rules (default: bundled rules), with skipped rules warned about once."""
    from hullguard.runtime.engine import Engine
    from hullguard.runtime.rules import default_rules_path, load_rules

    ruleset = load_rules(args.rules or [default_rules_path()])
    for w in ruleset.warnings:
        print(f"hullguard: warning: {w}", file=sys.stderr)
    for st in ruleset.statuses:
        if st.status in ("skipped", "error"):
            print(f"hullguard: warning: rule {st.name!r} {st.status}: {st.reason}", file=sys.stderr)
    return Engine(ruleset, rule_matching=args.rule_matching, min_priority=args.min_priority.lower())


def _replay(args: argparse.Namespace) -> int:
    from hullguard.runtime.engine import PRIORITY_RANK
    from hullguard.runtime.replay import replay

    if args.events is None:
        # `--rules A B EVENTS.jsonl`: argparse lets --rules swallow the positional; the last word
        # after --rules is the events file, as the documented usage reads.
        if len(args.rules) < 2:
            raise HullguardError("replay needs an events file (EVENTS.jsonl)")
        args.events = args.rules.pop()
    if args.min_priority.lower() not in PRIORITY_RANK:
        raise HullguardError(f"unknown priority {args.min_priority!r}")
    engine = _engine(args)
    try:
        src = sys.stdin.buffer if args.events == "-" else open(args.events, "rb")  # noqa: SIM115
    except OSError as exc:
        raise HullguardError(f"cannot read {args.events}: {exc.strerror or exc}") from exc
    out = open(args.output, "w", encoding="utf-8") if args.output else sys.stdout  # noqa: SIM115
    try:
        if args.format == "json":
            _alerts, stats = replay(engine, src, out)
        else:
            alerts, stats = replay(engine, src)
            for a in alerts:
                out.write(f"{a.output}\n")
    finally:
        if src is not sys.stdin.buffer:
            src.close()
        if out is not sys.stdout:
            out.close()
    print(f"hullguard: {stats.events} events, {stats.alerts} alerts, {stats.malformed} malformed lines skipped",
          file=sys.stderr)
    return 0


def _validate(args: argparse.Namespace) -> int:
    from hullguard.runtime.rules import load_rules

    ruleset = load_rules(args.files)
    errors = sum(1 for s in ruleset.statuses if s.status == "error")
    if args.format == "json":
        doc = {"files": args.files, "rules": [s.to_dict() for s in ruleset.statuses],
               "warnings": ruleset.warnings,
               "summary": {k: sum(1 for s in ruleset.statuses if s.status == k)
                           for k in ("loaded", "disabled", "skipped", "error")}}
        print(json.dumps(doc, indent=2))
    else:
        for s in ruleset.statuses:
            extra = f" — {s.reason}" if s.reason else ""
            print(f"{s.status:8} {s.name} ({s.where}){extra}")
        for w in ruleset.warnings:
            print(f"warning  {w}")
    return 1 if errors else 0


def _register_run(rsub: argparse._SubParsersAction) -> None:
    run = rsub.add_parser("run", help="watch live event sources (/proc, eBPF, Kubernetes audit) and alert")
    run.add_argument("--rules", nargs="+", metavar="FILE", action="extend", default=[],
                     help="rules files in load order (default: hullguard's bundled rules)")
    run.add_argument("--rule-matching", choices=("first", "all"), default="first")
    run.add_argument("--min-priority", default="debug", help="drop alerts below this priority")
    g = run.add_argument_group("/proc source")
    g.add_argument("--proc", action="store_true", help="poll /proc for new processes, file writes, connections")
    g.add_argument("--proc-interval", type=float, default=0.1, metavar="S", help="seconds between polls (0.1)")
    g.add_argument("--proc-existing", action="store_true", help="also report processes already running")
    g.add_argument("--no-proc-fds", action="store_true", help="report execs only, no open files or connections")
    g.add_argument("--docker-socket", default="/var/run/docker.sock", metavar="PATH")
    g = run.add_argument_group("eBPF source (bpftrace)")
    g.add_argument("--ebpf", action="store_true",
                   help="trace exec, file writes/sensitive reads and connects with bpftrace (root); "
                        "mounts tracefs when missing")
    g.add_argument("--ebpf-read-prefix", action="append", default=[], metavar="PATH",
                   help="report reads under this path prefix (repeatable; replaces the default sensitive list)")
    g.add_argument("--ebpf-max-rate", type=float, default=20000.0, metavar="N",
                   help="most events per second the eBPF source passes on (20000); the rest are counted")
    g.add_argument("--bpftrace", default=None, metavar="PATH", help="the bpftrace binary (default: from PATH)")
    g = run.add_argument_group("Kubernetes audit sources")
    g.add_argument("--audit-log", metavar="PATH", action="append", default=[],
                   help="follow a JSON-lines audit log (repeatable); rotation is handled")
    g.add_argument("--from-start", action="store_true", help="read audit logs from the beginning, not the end")
    g.add_argument("--audit-webhook", metavar="HOST:PORT", help="HTTPS receiver for the audit webhook backend")
    g.add_argument("--tls-cert", metavar="FILE")
    g.add_argument("--tls-key", metavar="FILE")
    g.add_argument("--client-ca", metavar="FILE", help="require client certificates signed by this CA")
    g.add_argument("--token-file", metavar="FILE",
                   help="require 'Authorization: Bearer <token>' (token read from FILE; or HULLGUARD_AUDIT_TOKEN)")
    g.add_argument("--webhook-path", default="", metavar="PATH", help="only accept POSTs to this path")
    g.add_argument("--max-body", type=int, default=16 * 1024 * 1024, metavar="BYTES")
    g = run.add_argument_group("alerts")
    g.add_argument("--output", action="append", default=[], metavar="SPEC",
                   help="stdout, json, file:PATH, webhook:URL, slack:URL, syslog[:HOST[:PORT]] (repeatable)")
    g.add_argument("--outputs-config", metavar="FILE", help="YAML: outputs list, dedupe_seconds, rate_per_rule")
    g.add_argument("--format", choices=("json", "text"), default="json", help="format of the default output")
    g.add_argument("--dedupe", type=float, default=0.0, metavar="S", help="suppress repeats within S seconds")
    g.add_argument("--rate-per-rule", type=float, default=0.0, metavar="N", help="alerts per second per rule")
    g = run.add_argument_group("baseline and response")
    g.add_argument("--baseline", metavar="DIR", help="behaviour baselines directory")
    g.add_argument("--learn", default="0", metavar="DURATION", help="learning window, e.g. 10m (default 0)")
    g.add_argument("--respond", metavar="POLICY.yaml", help="response policy")
    g.add_argument("--dry-run", action="store_true", help="print response actions instead of taking them")
    g.add_argument("--evidence-dir", default="hullguard-evidence", metavar="DIR")
    g.add_argument("--response-log", default="hullguard-actions.jsonl", metavar="FILE")
    g = run.add_argument_group("agent")
    g.add_argument("--duration", default=None, metavar="DURATION", help="stop after this long (e.g. 30s, 5m)")
    g.add_argument("--queue-size", type=int, default=10000, metavar="N", help="bounded event queue (10000)")
    g.add_argument("--drop-policy", choices=("newest", "oldest"), default="newest",
                   help="which events to drop when the queue is full")
    g.add_argument("--drop-alert-interval", type=float, default=10.0, metavar="S")
    g.add_argument("--stats", choices=("text", "json"), default="text", help="format of the final stats on stderr")
    run.set_defaults(func=_run)


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")


def parse_duration(text: str) -> float:
    m = _DURATION.match(text or "")
    if not m:
        raise HullguardError(f"bad duration {text!r} (use e.g. 30s, 10m, 2h)")
    mult = {"ms": 0.001, "s": 1, None: 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]
    return float(m.group(1)) * mult


def build_sink(specs: list[str], fmt: str, dedupe: float = 0.0, rate: float = 0.0) -> Any:
    from hullguard.runtime import outputs

    specs = specs or ["json" if fmt == "json" else "stdout"]
    return outputs.OutputSet([outputs.parse_output_spec(s) for s in specs], dedupe_seconds=dedupe,
                             rate_per_rule=rate)


def _build_sources(args: argparse.Namespace, hostname: str) -> list[Any]:
    sources: list[Any] = []
    if args.audit_webhook:
        from hullguard.runtime.sources.k8s_audit import AuditWebhook, parse_hostport

        if not (args.tls_cert and args.tls_key):
            raise HullguardError("--audit-webhook needs --tls-cert and --tls-key (the API server posts over HTTPS)")
        token = os.environ.get("HULLGUARD_AUDIT_TOKEN") or None
        if args.token_file:
            try:
                with open(args.token_file, encoding="utf-8") as f:
                    token = f.read(4096).strip()
            except OSError as exc:
                raise HullguardError(f"cannot read {args.token_file}: {exc.strerror or exc}") from exc
            if not token:
                raise HullguardError(f"{args.token_file} is empty")
        if args.max_body < 1024:
            raise HullguardError("--max-body must be at least 1024 bytes")
        host, port = parse_hostport(args.audit_webhook)
        hook = AuditWebhook(host, port, certfile=args.tls_cert, keyfile=args.tls_key, token=token,
                            client_ca=args.client_ca, path=args.webhook_path, max_body=args.max_body)
        hook.bind()
        sources.append(hook)
    for path in args.audit_log:
        from hullguard.runtime.sources.k8s_audit import AuditLogTailer

        if os.path.isdir(path):
            raise HullguardError(f"--audit-log {path} is a directory")
        tail = AuditLogTailer(path, from_start=args.from_start)
        tail.name = f"audit_log:{path}" if len(args.audit_log) > 1 else "audit_log"
        tail.open()
        sources.append(tail)
    if args.proc:
        from hullguard.runtime.sources.containers import DockerMetadata
        from hullguard.runtime.sources.proc import ProcSource

        if not 0.01 <= args.proc_interval <= 60:
            raise HullguardError("--proc-interval must be between 0.01 and 60 seconds")
        if not os.path.isdir("/proc/self"):
            raise HullguardError("/proc is not mounted: the proc source cannot run")
        src = ProcSource(interval=args.proc_interval, report_existing=args.proc_existing,
                         watch_fds=not args.no_proc_fds, docker=DockerMetadata(args.docker_socket))
        src.prime()
        sources.append(src)
    if args.ebpf:
        sources.append(_ebpf_source(args, hostname))
    if not sources:
        raise HullguardError("no event source: give --proc, --ebpf, --audit-log PATH and/or --audit-webhook HOST:PORT")
    return sources


def _ebpf_source(args: argparse.Namespace, hostname: str) -> Any:
    from hullguard.runtime.sources.containers import DockerMetadata
    from hullguard.runtime.sources.ebpf import DEFAULT_READ_PREFIXES, EbpfSource, check_ebpf, mount_tracefs, tracefs_dir

    if not 1 <= args.ebpf_max_rate <= 10_000_000:
        raise HullguardError("--ebpf-max-rate must be between 1 and 10000000")
    if tracefs_dir() is None and os.geteuid() == 0:
        where = mount_tracefs()
        print(f"hullguard: tracefs was not mounted; mounted it at {where}", file=sys.stderr)
    # The attach test is skipped: starting the source is the same test, and fails as clearly.
    avail = check_ebpf(bpftrace=args.bpftrace, probe=False)
    if not avail.available:
        raise HullguardError("the eBPF source cannot run here: " + "; ".join(avail.reasons))
    prefixes = tuple(args.ebpf_read_prefix) or DEFAULT_READ_PREFIXES
    return EbpfSource(bpftrace=args.bpftrace, read_prefixes=prefixes, max_rate=args.ebpf_max_rate,
                      docker=DockerMetadata(args.docker_socket), hostname=hostname,
                      log=lambda msg: print(f"hullguard: {msg}", file=sys.stderr, flush=True))


def _run(args: argparse.Namespace) -> int:
    from hullguard.runtime.agent import Agent
    from hullguard.runtime.engine import PRIORITY_RANK

    duration = parse_duration(args.duration) if args.duration is not None else None
    learn = parse_duration(args.learn)
    if args.min_priority.lower() not in PRIORITY_RANK:
        raise HullguardError(f"unknown priority {args.min_priority!r}")
    if not 1 <= args.queue_size <= 10_000_000:
        raise HullguardError("--queue-size must be between 1 and 10000000")
    if args.drop_alert_interval <= 0:
        raise HullguardError("--drop-alert-interval must be positive")
    engine = _engine(args)

    from hullguard.runtime import baseline as baseline_mod
    from hullguard.runtime import outputs as outputs_mod
    from hullguard.runtime import respond as respond_mod

    baseline = responder = None
    if args.baseline:
        baseline = baseline_mod.BaselineStore(args.baseline, learn_seconds=learn)
    if args.outputs_config:
        if args.output:
            raise HullguardError("give either --output or --outputs-config, not both")
        sink = outputs_mod.OutputSet.from_config(args.outputs_config)
    else:
        sink = build_sink(args.output, args.format, args.dedupe, args.rate_per_rule)
    if args.respond:
        # Responder messages (dry-run plans, printed quarantine manifests) go to stderr: stdout may
        # be carrying JSON alerts for a pipeline.
        responder = respond_mod.Responder.from_file(args.respond, dry_run=args.dry_run,
                                                    evidence_dir=args.evidence_dir, audit_log=args.response_log,
                                                    log=sys.stderr, out=sys.stderr)
    sink.install_sighup()
    try:
        sources = _build_sources(args, engine.hostname)
    except BaseException:
        sink.close()
        raise
    agent = Agent(engine, sources, sink, queue_size=args.queue_size, drop_policy=args.drop_policy,
                  baseline=baseline, responder=responder, drop_alert_interval=args.drop_alert_interval)
    for src in sources:
        if hasattr(src, "address") and callable(getattr(src, "stats", None)) and src.name == "k8s_audit_webhook":
            host, port = src.address
            print(f"hullguard: audit webhook listening on https://{host}:{port}{args.webhook_path or '/'}",
                  file=sys.stderr)
    previous = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, lambda _s, _f: agent.stop())
    try:
        stats = agent.run(duration)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if baseline is not None:
            baseline.save()
        if responder is not None:
            responder.close()  # flushes queued notify webhooks
        sink.close()
    out_stats = getattr(sink, "stats", None)
    suppressed = {k: v for k, v in vars(out_stats).items() if isinstance(v, int)} if out_stats is not None else {}
    if args.stats == "json":
        doc = stats.to_dict()
        if suppressed:
            doc["outputs"] = suppressed
        print(json.dumps(doc, sort_keys=True), file=sys.stderr)
    else:
        dropped = ", ".join(f"{k}={v}" for k, v in sorted(stats.dropped.items())) or "none"
        print(f"hullguard: {stats.events} events, {stats.alerts} alerts, {sum(stats.dropped.values())} dropped "
              f"({dropped}), {stats.malformed} malformed, {stats.seconds:.1f}s", file=sys.stderr)
    return 0


def _sources(args: argparse.Namespace) -> int:
    from hullguard.runtime.sources.containers import BundleMetadata, DockerMetadata
    from hullguard.runtime.sources.ebpf import Availability, check_ebpf

    rows: list[Availability] = []
    proc = Availability("proc", os.path.isdir("/proc/self") and os.access("/proc/self/stat", os.R_OK))
    if not proc.available:
        proc.reasons.append("/proc is not mounted or not readable")
    else:
        if os.geteuid() != 0:
            proc.notes.append("not root: other users' exe, cwd and fds are unreadable, so their files and "
                              "connections are not reported")
        docker = DockerMetadata()
        for label, meta in (("docker", docker), ("podman", DockerMetadata("/run/podman/podman.sock"))):
            where = f"socket {meta.socket_path}" if meta.available() else f"no socket at {meta.socket_path}"
            proc.notes.append(f"{label} metadata: {where}")
        proc.notes.append("containerd/CRI-O metadata: "
                          + ("OCI bundle annotations" if BundleMetadata().available() else "no bundle directories")
                          + " (the containerd gRPC API is not used)")
        proc.notes.append("polling: processes shorter than --proc-interval can be missed")
    rows.append(proc)
    rows.append(Availability("k8s_audit_webhook", True, notes=["needs --tls-cert/--tls-key; the API server "
                                                               "posts with --audit-webhook-config-file"]))
    rows.append(Availability("audit_log", True, notes=["follows a JSON-lines audit log (--audit-log PATH)"]))
    if getattr(args, "mount_tracefs", False):
        from hullguard.runtime.sources.ebpf import mount_tracefs, tracefs_dir

        if tracefs_dir() is None:
            print(f"hullguard: mounted tracefs at {mount_tracefs()}", file=sys.stderr)
    rows.append(check_ebpf())
    if args.format == "json":
        print(json.dumps({"sources": [r.to_dict() for r in rows]}, indent=2))
    else:
        for r in rows:
            print(f"{r.name:18} {'available' if r.available else 'unavailable'}")
            for why in r.reasons:
                print(f"{'':18}   - {why}")
            for note in r.notes:
                print(f"{'':18}   note: {note}")
    return 0
