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
    parser.add_argument("--config", metavar="FILE",
                        help="settings file (default: $HULLGUARD_CONFIG, else ./hullguard.yaml when present); "
                        "flags beat HULLGUARD_* environment variables, which beat the file")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in COMMANDS:
        importlib.import_module(name).register(sub)
    return parser


def _load_settings(parser: argparse.ArgumentParser, argv: list[str]) -> None:
    """hullguard.yaml and HULLGUARD_* variables become the parser's defaults, so flags still win."""
    from hullguard.detect.secrets.engine import configure_defaults
    from hullguard.settings import apply_settings

    settings, warnings = apply_settings(parser, argv)
    for w in warnings:
        print(f"hullguard: warning: {w}", file=sys.stderr)
    try:
        # Always called, so a previous in-process run's settings never leak into this one.
        configure_defaults(settings.secrets)
    except ValueError as exc:
        raise HullguardError(f"{settings.path}: {exc}") from None


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        _load_settings(parser, argv)
    except HullguardError as exc:
        if not {"-h", "--help", "--version"} & set(argv):
            print(f"hullguard: error: {_one_line(str(exc))}", file=sys.stderr)
            return exc.exit_code
        # A broken settings file must not hide the help that explains how to fix it.
        print(f"hullguard: warning: {_one_line(str(exc))}", file=sys.stderr)
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
