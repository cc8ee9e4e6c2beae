"""Writing results: to stdout, or atomically to --output (nothing is left behind on failure)."""

from __future__ import annotations

import os
import sys
import tempfile

from hullguard.model import HullguardError

FORMATS = ("table", "json", "cyclonedx", "spdx", "sarif", "markdown", "html")


def render(result, fmt: str) -> bytes:
    if fmt == "json":
        from hullguard.report import json as reporter
    elif fmt == "table":
        from hullguard.report import table as reporter  # type: ignore[no-redef]
    elif fmt == "cyclonedx":
        from hullguard.report import cyclonedx as reporter  # type: ignore[no-redef]
    elif fmt == "spdx":
        from hullguard.report import spdx as reporter  # type: ignore[no-redef]
    elif fmt == "sarif":
        from hullguard.report import sarif as reporter  # type: ignore[no-redef]
    elif fmt == "markdown":
        from hullguard.report import markdown as reporter  # type: ignore[no-redef]
    elif fmt == "html":
        from hullguard.report import html as reporter  # type: ignore[no-redef]
    else:
        raise HullguardError(f"unknown format {fmt!r} (choose from {', '.join(FORMATS)})")
    if fmt in ("markdown", "html", "spdx") and any(f.details.get("suppressed") for f in result.findings):
        # These formats have no way to mark a finding as suppressed: they show only what stands.
        import msgspec

        result = msgspec.structs.replace(result, findings=[f for f in result.findings
                                                           if not f.details.get("suppressed")])
    return reporter.render(result)


def check_output_path(path: str | None) -> None:
    """Fail before the (possibly long) scan when the output cannot be written."""
    if not path or path == "-":
        return
    if os.path.isdir(path):
        raise HullguardError(f"--output {path} is a directory")
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise HullguardError(f"--output {path}: directory {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise HullguardError(f"--output {path}: directory {parent} is not writable")


def write(data: bytes, path: str | None) -> None:
    if not path or path == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return
    parent = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(dir=parent, prefix=".hullguard-", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise
    except OSError as exc:
        raise HullguardError(f"cannot write {path}: {exc.strerror}") from None
