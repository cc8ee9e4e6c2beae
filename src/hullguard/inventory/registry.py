"""The analyzers a scan runs. Adding an ecosystem: one module, one line here."""

from __future__ import annotations

import importlib

from hullguard.inventory.base import Analyzer

ANALYZERS: list[str] = [
    "hullguard.inventory.os_release:OSReleaseAnalyzer",
    "hullguard.inventory.dpkg:DpkgAnalyzer",
    "hullguard.inventory.apk:ApkAnalyzer",
    "hullguard.inventory.rpm:RpmAnalyzer",
    "hullguard.inventory.python:PythonAnalyzer",
    "hullguard.inventory.npm:NpmAnalyzer",
    "hullguard.inventory.java:JavaAnalyzer",
    "hullguard.inventory.golang:GoAnalyzer",
    "hullguard.inventory.rust:CargoLockAnalyzer",
    "hullguard.inventory.rust_binary:RustAuditableAnalyzer",
    "hullguard.inventory.ruby:RubyAnalyzer",
    "hullguard.inventory.php:PhpAnalyzer",
    "hullguard.inventory.dotnet:DotnetAnalyzer",
]


def all_analyzers() -> list[Analyzer]:
    out = []
    for spec in ANALYZERS:
        module, _, cls = spec.partition(":")
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            # Only while the analyzer set is being built up; a missing module in a release is a bug.
            if exc.name != module:
                raise
            continue
        out.append(getattr(mod, cls)())
    return out
