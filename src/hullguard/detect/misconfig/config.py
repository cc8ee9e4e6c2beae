"""One call for ``hullguard config PATH...``: Dockerfiles and Kubernetes manifests together.

Files are dispatched by name (Dockerfile/Containerfile variants are Dockerfiles; .yaml/.yml/.json
are manifests). All manifests are checked as one set so that bindings meet their roles and
NetworkPolicies their pods across files. One unreadable input never stops the others.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

from .dockerfile import DockerfileError, check_dockerfile_path, is_dockerfile_name
from .kubernetes import YAML_SUFFIXES, ManifestResult, check_paths

__all__ = ["check_config_paths"]


def _walk(path: str) -> tuple[list[str], list[str]]:
    dockerfiles: list[str] = []
    manifests: list[str] = []
    if os.path.isdir(path):
        for root, dirs, files in os.walk(path):
            dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in {"node_modules", "vendor"})
            for f in sorted(files):
                full = os.path.join(root, f)
                if is_dockerfile_name(f):
                    dockerfiles.append(full)
                elif f.lower().endswith(YAML_SUFFIXES):
                    manifests.append(full)
    elif is_dockerfile_name(path):
        dockerfiles.append(path)
    else:
        manifests.append(path)  # an explicit file is read as YAML whatever its name
    return dockerfiles, manifests


def check_config_paths(paths: Iterable[str], *, pss_level: str | None = None, pss_version: str = "latest",
                       stdin: Any = None) -> ManifestResult:
    """Check every Dockerfile and Kubernetes manifest under ``paths`` (``-`` reads manifests from
    stdin). With ``pss_level`` only Pod Security Standards findings are returned and Dockerfiles
    are skipped. The CLI should exit 2 only when ``objects == 0`` and ``errors`` is non-empty."""
    dockerfiles: list[str] = []
    manifests: list[str] = []
    missing: list[str] = []
    for p in paths:
        if p == "-":
            manifests.append(p)
        elif not os.path.exists(p):
            missing.append(p)
        else:
            d, m = _walk(p)
            dockerfiles += d
            manifests += m
    result = check_paths(manifests, pss_level=pss_level, pss_version=pss_version, stdin=stdin) if manifests \
        else ManifestResult()
    result.errors[:0] = [f"{p}: no such file or directory" for p in missing]
    if pss_level is None:
        for path in dockerfiles:
            try:
                result.findings.extend(check_dockerfile_path(path))
                result.objects += 1
            except (OSError, DockerfileError) as exc:
                result.errors.append(f"{path}: {getattr(exc, 'strerror', None) or exc}")
    return result
