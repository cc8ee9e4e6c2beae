"""hullguard's own JSON: the ScanResult as it is, so that nothing is lost between tools, plus a
``summary`` object (computed from the result, never read back) for readers that want the
figures without recomputing them: totals, the upgrades that fix the most per package and per
layer role (base image vs application), and the packages that were not checked."""

from __future__ import annotations

import msgspec

from hullguard.model import ScanResult


def render(result: ScanResult) -> bytes:
    doc = msgspec.to_builtins(result)
    if result.packages or any(f.kind == "vulnerability" for f in result.findings):
        from hullguard.detect.vulns import result_summary

        doc["summary"] = result_summary(result)
    return msgspec.json.format(msgspec.json.encode(doc), indent=2) + b"\n"
