"""`hullguard runtime`: replay captured events through Falco-syntax rules, validate rules files."""

from __future__ import annotations

import argparse
import json
import sys

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
    p.set_defaults(func=lambda args: (p.print_help(sys.stderr), 2)[1])


def _replay(args: argparse.Namespace) -> int:
    from hullguard.runtime.engine import PRIORITY_RANK, Engine
    from hullguard.runtime.replay import replay
    from hullguard.runtime.rules import default_rules_path, load_rules

    if args.events is None:
        # `--rules A B EVENTS.jsonl`: argparse lets --rules swallow the positional; the last word
        # after --rules is the events file, as the documented usage reads.
        if len(args.rules) < 2:
            raise HullguardError("replay needs an events file (EVENTS.jsonl)")
        args.events = args.rules.pop()
    if args.min_priority.lower() not in PRIORITY_RANK:
        raise HullguardError(f"unknown priority {args.min_priority!r}")
    ruleset = load_rules(args.rules or [default_rules_path()])
    for w in ruleset.warnings:
        print(f"hullguard: warning: {w}", file=sys.stderr)
    for st in ruleset.statuses:
        if st.status in ("skipped", "error"):
            print(f"hullguard: warning: rule {st.name!r} {st.status}: {st.reason}", file=sys.stderr)
    engine = Engine(ruleset, rule_matching=args.rule_matching, min_priority=args.min_priority.lower())
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
