"""Misconfiguration detectors: Dockerfiles, Kubernetes manifests (Pod Security Standards,
least privilege, RBAC, NetworkPolicy coverage).

Entry points for the CLI and the admission webhook:

- ``dockerfile.check_dockerfile_path(path)`` / ``dockerfile.check_dockerfile(text, path, context_dir)``
- ``kubernetes.check_paths(paths, pss_level=None, pss_version="latest")`` for files, folders and ``-``
- ``kubernetes.check_manifests(docs)`` on already loaded documents
- ``pss.evaluate_pss(pod, level, version)`` on one pod (or pod template with metadata)
"""

from __future__ import annotations

from .rules import Rule, all_rules, get_rule

__all__ = ["Rule", "all_rules", "get_rule"]
