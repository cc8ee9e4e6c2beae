"""`hullguard db update|import|status|enrich`: manage the advisory database."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable

from hullguard.model import HullguardError


def _db_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--db", default="", help="database: a SQLite file or a postgresql:// URL "
                   "(default: $HULLGUARD_DB, else $XDG_CACHE_HOME/hullguard/db/hullguard.db)")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("db", help="manage the vulnerability database",
                       description="Download, import and inspect OSV advisories and EPSS/KEV enrichment.")
    dsub = p.add_subparsers(dest="db_command", metavar="ACTION", parser_class=type(p))

    up = dsub.add_parser("update", help="download OSV archives for the selected ecosystems (incremental)")
    _db_option(up)
    up.add_argument("-e", "--ecosystem", action="append", default=[], metavar="NAME",
                    help="OSV ecosystem to fetch, repeatable (e.g. Debian, 'Debian:12', PyPI); "
                    "default: every ecosystem the inventory supports")
    up.add_argument("--base-url", default="", help="OSV bucket or mirror (default: $HULLGUARD_OSV_URL, "
                    "else the public OSV bucket)")
    up.add_argument("--timeout", type=float, default=60.0, help="network timeout in seconds (default: 60)")
    up.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    up.set_defaults(func=_update)

    imp = dsub.add_parser("import", help="import OSV records from a directory, zip or tar (air-gapped use)")
    _db_option(imp)
    imp.add_argument("path", metavar="PATH")
    imp.add_argument("--source", default="", help="name to file the records under (default: local:PATH); "
                     "importing the same source again replaces its records")
    imp.add_argument("-q", "--quiet", action="store_true", help="print nothing on success")
    imp.set_defaults(func=_import)

    st = dsub.add_parser("status", help="advisory counts per ecosystem, last updates, enrichment dates")
    _db_option(st)
    st.add_argument("-f", "--format", choices=("table", "json"), default="table")
    st.set_defaults(func=_status)

    en = dsub.add_parser("enrich", help="load FIRST EPSS scores and/or the CISA KEV catalog")
    _db_option(en)
    en.add_argument("--epss", default="", metavar="FILE|URL", help="EPSS CSV (optionally gzipped)")
    en.add_argument("--kev", default="", metavar="FILE|URL", help="KEV catalog JSON")
    en.add_argument("--timeout", type=float, default=60.0, help="network timeout in seconds (default: 60)")
    en.set_defaults(func=_enrich)

    p.set_defaults(func=lambda args: (p.print_help(sys.stderr), 2)[1])


def _progress(quiet: bool) -> tuple[Callable[[str, int, int], None] | None, Callable[[], None]]:
    if quiet or not sys.stderr.isatty():
        return None, lambda: None
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeElapsedColumn

    bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(), DownloadColumn(), TimeElapsedColumn(),
                   console=Console(stderr=True), transient=True)
    bar.start()
    tasks: dict[str, object] = {}

    def update(desc: str, done: int, total: int) -> None:
        if desc not in tasks:
            tasks[desc] = bar.add_task(desc, total=total or None)
        bar.update(tasks[desc], completed=done, total=total or None)  # type: ignore[arg-type]

    return update, bar.stop


def _open(args: argparse.Namespace):
    from hullguard.vulndb import open_store

    return open_store(args.db)


def _update(args: argparse.Namespace) -> int:
    from hullguard.vulndb.update import update

    for eco in args.ecosystem:
        if not eco.strip() or "/" in eco or ".." in eco:
            raise HullguardError(f"not an OSV ecosystem name: {eco!r}")
    if args.base_url and not args.base_url.startswith(("http://", "https://")):
        raise HullguardError(f"--base-url must be an http(s) URL: {args.base_url!r}")
    store = _open(args)
    progress, stop = _progress(args.quiet)
    try:
        results = update(store, args.ecosystem or None, base=args.base_url, timeout=args.timeout,
                         progress=progress)
    finally:
        stop()
        store.close()
    failed = 0
    for r in results:
        if r.status == "failed":
            failed += 1
            print(f"{r.ecosystem}: failed: {r.error} (previous data kept)", file=sys.stderr)
        elif not args.quiet:
            extra = ""
            if r.status == "updated":
                extra = f": {r.stats.records} advisories"
                if r.stats.skipped:
                    extra += f", {r.stats.skipped} malformed records skipped"
            print(f"{r.ecosystem}: {r.status}{extra}", file=sys.stderr)
        for err in r.stats.errors[:3]:
            print(f"  skipped {err}", file=sys.stderr)
    if failed == len(results):
        raise HullguardError("no ecosystem could be updated")
    return 3 if failed else 0


def _import(args: argparse.Namespace) -> int:
    from hullguard.vulndb import import_path

    if not os.path.exists(args.path):
        raise HullguardError(f"{args.path}: no such file or directory")
    store = _open(args)
    try:
        stats = import_path(store, args.path, args.source)
    finally:
        store.close()
    if not args.quiet or stats.skipped:
        msg = f"imported {stats.records} advisories from {args.path} in {stats.seconds:.1f}s"
        if stats.skipped:
            msg += f"; skipped {stats.skipped} malformed records"
        print(msg, file=sys.stderr)
        for err in stats.errors[:5]:
            print(f"  skipped {err}", file=sys.stderr)
    return 0


def _status(args: argparse.Namespace) -> int:
    from hullguard.vulndb import open_store

    store = open_store(args.db, create=False)
    try:
        st = store.status()
    finally:
        store.close()
    if args.format == "json":
        sys.stdout.write(json.dumps(st, indent=2) + "\n")
        return 0
    out = [f"database:       {st['database']}", f"schema version: {st['schema_version']}",
           f"advisories:     {st['advisories']} ({st['withdrawn']} withdrawn)", "", "ECOSYSTEM  ADVISORIES"]
    width = max([len(e["ecosystem"]) for e in st["ecosystems"]] + [9])
    out[-1] = f"{'ECOSYSTEM':<{width}}  ADVISORIES"
    out += [f"{e['ecosystem']:<{width}}  {e['advisories']}" for e in st["ecosystems"]]
    out += ["", "SOURCE / UPDATED / RECORDS / SKIPPED"]
    out += [f"{s['name']}  {s['updated_at']}  {s['records']}  {s['skipped']}" for s in st["sources"]]
    epss, kev = st["epss"], st["kev"]
    out += ["", f"EPSS: {epss['count']} scores, {epss['date'] or 'never loaded'}",
            f"KEV:  {kev['count']} entries, {kev['date'] or 'never loaded'}"]
    sys.stdout.write("\n".join(out) + "\n")
    return 0


def _enrich(args: argparse.Namespace) -> int:
    from hullguard.vulndb.enrich import enrich_epss, enrich_kev

    if not args.epss and not args.kev:
        raise HullguardError("give --epss FILE|URL and/or --kev FILE|URL")
    store = _open(args)
    try:
        for kind, source, fn in (("EPSS", args.epss, enrich_epss), ("KEV", args.kev, enrich_kev)):
            if source:
                res = fn(store, source, args.timeout)
                note = f", {res.skipped} malformed rows skipped" if res.skipped else ""
                print(f"{kind}: {res.count} entries ({res.date or 'undated'}){note}", file=sys.stderr)
    finally:
        store.close()
    return 0
