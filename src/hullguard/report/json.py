"""hullguard's own JSON: the ScanResult as it is, so that nothing is lost between tools."""

from __future__ import annotations

import msgspec

from hullguard.model import ScanResult


def render(result: ScanResult) -> bytes:
    return msgspec.json.format(msgspec.json.encode(result), indent=2) + b"\n"
