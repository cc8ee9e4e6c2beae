"""OSV records written for the tests from the schema's field definitions (not real advisories)."""

from __future__ import annotations

import io
import json
import zipfile
from typing import Any


def record(ident: str, ecosystem: str, name: str, events: list[dict[str, str]] | None = None, *,
           versions: list[str] | None = None, aliases: list[str] | None = None, withdrawn: str = "",
           modified: str = "2024-01-01T00:00:00Z", severity: list[dict[str, str]] | None = None,
           ecosystem_specific: dict[str, Any] | None = None, database_specific: dict[str, Any] | None = None,
           range_type: str = "ECOSYSTEM", summary: str = "") -> dict[str, Any]:
    affected: dict[str, Any] = {"package": {"ecosystem": ecosystem, "name": name}}
    if events is not None:
        affected["ranges"] = [{"type": range_type, "events": events}]
    if versions is not None:
        affected["versions"] = versions
    if ecosystem_specific:
        affected["ecosystem_specific"] = ecosystem_specific
    rec: dict[str, Any] = {"schema_version": "1.6.0", "id": ident, "modified": modified,
                           "summary": summary or f"test advisory {ident}", "affected": [affected]}
    if aliases:
        rec["aliases"] = aliases
    if withdrawn:
        rec["withdrawn"] = withdrawn
    if severity:
        rec["severity"] = severity
    if database_specific:
        rec["database_specific"] = database_specific
    return rec


def fixed(fix: str, introduced: str = "0") -> list[dict[str, str]]:
    return [{"introduced": introduced}, {"fixed": fix}]


def make_zip(records: list[dict[str, Any]], extra: dict[str, bytes] | None = None) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for rec in records:
            zf.writestr(f"{rec['id']}.json", json.dumps(rec))
        for name, data in (extra or {}).items():
            zf.writestr(name, data)
    return buf.getvalue()


V3_CRITICAL = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"  # 9.8
V3_MEDIUM = "CVSS:3.1/AV:N/AC:H/PR:N/UI:R/S:C/C:H/I:N/A:N"  # 6.1
