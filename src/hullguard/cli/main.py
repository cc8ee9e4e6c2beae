"""hullguard's command line: parse arguments, call the library, pick a reporter.

argparse rather than typer/click: start-up time matters for a tool run on every CI job and the
per-command modules import their heavy dependencies only when they run.
"""

from __future__ import annotations

import argparse
import os
import sys

from hullguard import __version__
from hullguard.model import HullguardError

EXIT_OK, EXIT_FINDINGS, EXIT_BAD_INPUT, EXIT_INTERNAL = 0, 1, 2, 3

COMMANDS = [
    "hullguard.cli.scan",
    "hullguard.cli.config",
    "hullguard.cli.db",
    "hullguard.cli.runtime",
    "hullguard.cli.cache",
    "hullguard.cli.supply",
    "hullguard.cli.admission",
]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_BAD_INPUT, f"hullguard: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    import importlib

    parser = _Parser(prog="hullguard", description="Container security: inventory, SBOMs, vulnerabilities, "
                     "secrets, misconfiguration, admission and runtime detection.")
    parser.add_argument("--version", action="version", version=f"hullguard {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in COMMANDS:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return EXIT_BAD_INPUT
    try:
        return int(args.func(args) or 0)
    except HullguardError as exc:
        print(f"hullguard: error: {_one_line(str(exc))}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("hullguard: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return EXIT_OK
    except Exception as exc:
        if os.environ.get("HULLGUARD_DEBUG"):
            raise
        print(f"hullguard: internal error: {type(exc).__name__}: {_one_line(str(exc))} "
              "(set HULLGUARD_DEBUG=1 for a traceback)", file=sys.stderr)
        return EXIT_INTERNAL


def _one_line(text: str) -> str:
    return " ".join(text.split())[:500]


if __name__ == "__main__":
    sys.exit(main())
