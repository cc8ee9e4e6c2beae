"""Dockerfiles and Kubernetes manifests found in a directory tree (``hullguard fs --scanners misconfig``).

Unlike ``hullguard config DIR``, the tree is a whole project or root filesystem: YAML and JSON
files are many and mostly not Kubernetes, so each is read once up to a size cap and parsed only
when it mentions both ``apiVersion`` and ``kind``; vendored trees are skipped. All manifests are
checked as one set, so bindings meet their roles and policies their pods across files. Paths in
findings are relative to the root, as for every other finding of a filesystem scan.
"""

from __future__ import annotations

import os

from .dockerfile import MAX_DOCKERFILE_BYTES, DockerfileError, check_dockerfile, is_dockerfile_name
from .kubernetes import YAML_SUFFIXES, K8sObject, ManifestResult, check_manifests, load_manifests

__all__ = ["MAX_MANIFEST_BYTES", "check_tree"]

MAX_MANIFEST_BYTES = 8 * 1024 * 1024
MAX_CONFIG_FILES = 50_000
SKIP_DIRS = frozenset({"node_modules", "vendor", "site-packages", "dist-packages", "__pycache__", ".git",
                       ".tox", ".venv", "venv", ".mypy_cache"})
_HOST_DIRS = frozenset({"proc", "sys", "dev", "run"})


def _read(full: str, limit: int) -> bytes:
    # O_NOFOLLOW: the walk does not follow links, and neither should the read.
    fd = os.open(full, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    with os.fdopen(fd, "rb") as fh:
        return fh.read(limit + 1)


def check_tree(root: str) -> ManifestResult:
    result = ManifestResult()
    top = os.path.abspath(root)
    host_root = os.path.realpath(top) == "/"
    objs: list[K8sObject] = []
    seen = 0
    for dirpath, dirnames, filenames in os.walk(top, onerror=lambda e: result.errors.append(
            f"cannot read {e.filename}: {e.strerror}")):
        rel_dir = os.path.relpath(dirpath, top).replace(os.sep, "/")
        rel_dir = "" if rel_dir == "." else rel_dir
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS and not (d.startswith(".") and d != ".")
                             and not (host_root and not rel_dir and d in _HOST_DIRS))
        for name in sorted(filenames):
            docker = is_dockerfile_name(name)
            if not docker and not name.lower().endswith(YAML_SUFFIXES):
                continue
            full = os.path.join(dirpath, name)
            rel = f"{rel_dir}/{name}" if rel_dir else name
            if os.path.islink(full) or not os.path.isfile(full):
                continue
            seen += 1
            if seen > MAX_CONFIG_FILES:
                result.errors.append(f"more than {MAX_CONFIG_FILES} candidate files; the rest were not checked")
                return _finish(result, objs)
            limit = MAX_DOCKERFILE_BYTES if docker else MAX_MANIFEST_BYTES
            try:
                data = _read(full, limit)
            except OSError as exc:
                result.errors.append(f"{rel}: {exc.strerror or exc}")
                continue
            if len(data) > limit:
                result.errors.append(f"{rel}: larger than {limit} bytes; skipped")
                continue
            if docker:
                try:
                    result.findings.extend(check_dockerfile(data, rel, dirpath))
                    result.objects += 1
                except DockerfileError as exc:
                    result.errors.append(f"{rel}: {exc}")
                continue
            if b"apiVersion" not in data or b"kind" not in data:
                continue
            objs.extend(load_manifests(data, rel, result))
    return _finish(result, objs)


def _finish(result: ManifestResult, objs: list[K8sObject]) -> ManifestResult:
    result.objects += len(objs)
    result.findings.extend(check_manifests(objs))
    return result
