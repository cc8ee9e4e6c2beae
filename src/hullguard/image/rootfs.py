"""A root filesystem or project directory on disk, scanned as a single layer."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable

from hullguard.image.layers import LayerResult, run_analyzers
from hullguard.image.source import SourceError
from hullguard.inventory.base import Analyzer, FileInfo

# Pseudo filesystems of a live host root would never end (and tell nothing about packages).
SKIP_DIRS = {"proc", "sys", "dev", "run"}


def analyze_tree(root: str, analyzers: list[Analyzer], max_files: int = 5_000_000,
                 on_progress: Callable[[int], None] | None = None) -> LayerResult:
    if not os.path.isdir(root):
        raise SourceError(f"{root} is not a directory")
    result = LayerResult(digest="", files={}, whiteouts=[], opaque=[], symlinks={}, hardlinks={}, warnings=[])
    count = 0
    top = os.path.abspath(root)

    def onerror(exc: OSError) -> None:
        result.warnings.append(f"cannot read {exc.filename}: {exc.strerror}")

    # os.walk never follows symlinks to directories here, so the walk stays inside the root.
    for dirpath, dirnames, filenames in os.walk(top, onerror=onerror):
        rel_dir = os.path.relpath(dirpath, top)
        rel_dir = "" if rel_dir == "." else rel_dir.replace(os.sep, "/")
        if not rel_dir:
            dirnames[:] = [d for d in dirnames if d not in SKIP_DIRS or not _is_host_root(top)]
        for name in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
            count += 1
            if count > max_files:
                raise SourceError(f"{root} has more than {max_files} files")
            full = os.path.join(dirpath, name)
            rel = f"{rel_dir}/{name}" if rel_dir else name
            try:
                st = os.lstat(full)
            except OSError:
                continue
            if stat.S_ISLNK(st.st_mode):
                try:
                    result.symlinks[rel] = os.readlink(full)
                except OSError:
                    pass
                continue
            if not stat.S_ISREG(st.st_mode):
                continue
            info = FileInfo(rel, stat.S_IMODE(st.st_mode), st.st_size)
            wanting = [a for a in analyzers if a.wants(info)]
            if not wanting:
                continue
            limit = max(a.max_size for a in wanting) + 1
            try:
                # O_NOFOLLOW: the file may have been swapped for a symlink since lstat.
                fd = os.open(full, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
                with os.fdopen(fd, "rb") as f:
                    data = f.read(limit)
            except OSError as exc:
                result.warnings.append(f"cannot read /{rel}: {exc.strerror}")
                continue
            result.files[rel] = run_analyzers(wanting, info, data, result.warnings)
            if on_progress is not None:
                on_progress(len(data))
    result.entries = count
    return result


def _is_host_root(path: str) -> bool:
    return os.path.realpath(path) == "/"
