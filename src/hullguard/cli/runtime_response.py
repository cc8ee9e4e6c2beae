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


def _register_respond(rsub: argparse._SubParsersAction) -> None:
    pass


def _register_outputs(rsub: argparse._SubParsersAction) -> None:
    pass
