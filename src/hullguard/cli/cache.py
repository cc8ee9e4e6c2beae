from __future__ import annotations

import argparse
import sys


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("cache", help="manage the layer cache")
    csub = p.add_subparsers(dest="cache_command", metavar="ACTION", parser_class=type(p))
    clean = csub.add_parser("clean", help="delete every cached layer analysis")
    clean.add_argument("--cache-dir", default="", help="cache directory (default: $XDG_CACHE_HOME/hullguard)")
    clean.set_defaults(func=_clean)
    p.set_defaults(func=lambda args: (p.print_help(sys.stderr), 2)[1])


def _clean(args: argparse.Namespace) -> int:
    from hullguard.image.cache import clean, default_dir

    root = args.cache_dir or default_dir()
    freed = clean(root)
    print(f"removed cached layer results from {root} ({freed / 1e6:.1f} MB)", file=sys.stderr)
    return 0
