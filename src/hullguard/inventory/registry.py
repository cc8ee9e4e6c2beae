"""The analyzers a scan runs. Adding an ecosystem: one module, one line here."""

from __future__ import annotations

import importlib

from hullguard.inventory.base import Analyzer

ANALYZERS: list[str] = [
]


def all_analyzers() -> list[Analyzer]:
    out = []
    for spec in ANALYZERS:
        module, _, cls = spec.partition(":")
        out.append(getattr(importlib.import_module(module), cls)())
    return out
