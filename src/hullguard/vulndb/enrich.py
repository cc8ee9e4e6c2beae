"""Enrichment joined to advisories by CVE: FIRST EPSS scores and the CISA KEV catalog.

EPSS (https://www.first.org/epss/data_stats) is a CSV, usually gzipped, whose first line is a
comment such as ``#model_version:v2023.03.01,score_date:2024-05-01T00:00:00+0000`` followed by
the header ``cve,epss,percentile``. KEV is JSON with a ``vulnerabilities`` array of objects
carrying ``cveID``, ``dateAdded``, ``dueDate``, ``knownRansomwareCampaignUse`` and names.
Both can come from a local file or an http(s) URL.
"""

from __future__ import annotations

import gzip
import io
import json
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass

from hullguard.fileio import read_bounded
from hullguard.model import HullguardError
from hullguard.vulndb.store import Store

MAX_DOWNLOAD = 256 * 1024 * 1024
MAX_UNCOMPRESSED = 1024 * 1024 * 1024

_CVE = re.compile(r"^CVE-\d{4}-\d{4,}$")


class EnrichError(HullguardError):
    pass


@dataclass
class EnrichResult:
    kind: str
    count: int
    date: str
    skipped: int = 0


def read_source(source: str, timeout: float = 60.0, max_bytes: int = MAX_DOWNLOAD) -> bytes:
    """Bytes of a local file or an http(s) URL, bounded, gunzipped when gzip."""
    if source.startswith(("http://", "https://")):
        import httpx

        try:
            with httpx.Client(timeout=timeout, follow_redirects=True) as client, \
                    client.stream("GET", source) as resp:
                if resp.status_code != 200:
                    raise EnrichError(f"{source}: HTTP {resp.status_code}")
                buf = bytearray()
                for chunk in resp.iter_bytes(1 << 20):
                    buf += chunk
                    if len(buf) > max_bytes:
                        raise EnrichError(f"{source}: more than {max_bytes} bytes (limit)")
                data = bytes(buf)
        except httpx.HTTPError as exc:
            raise EnrichError(f"{source}: {' '.join(str(exc).split()) or type(exc).__name__}") from None
    else:
        data = read_bounded(source, max_bytes, error=EnrichError)
    if data[:2] == b"\x1f\x8b":
        try:
            with gzip.GzipFile(fileobj=io.BytesIO(data)) as g:
                data = g.read(MAX_UNCOMPRESSED + 1)
        except (OSError, EOFError, zlib.error) as exc:
            raise EnrichError(f"{source}: bad gzip data: {exc}") from None
        if len(data) > MAX_UNCOMPRESSED:
            raise EnrichError(f"{source}: expands beyond {MAX_UNCOMPRESSED} bytes (limit)")
    return data


def parse_epss(data: bytes) -> tuple[str, str, Iterator[tuple[str, float, float]], list[int]]:
    """(score_date, model_version, rows, skipped-counter) from an EPSS CSV."""
    text = data.decode("utf-8", errors="replace")
    lines = text.splitlines()
    date = model = ""
    i = 0
    while i < len(lines) and lines[i].startswith("#"):
        for part in lines[i].lstrip("#").split(","):
            key, _, value = part.partition(":")
            if key.strip() == "score_date":
                date = value.strip()
            elif key.strip() == "model_version":
                model = value.strip()
        i += 1
    if i >= len(lines):
        raise EnrichError("EPSS file has no header line")
    header = [h.strip().lower() for h in lines[i].split(",")]
    try:
        c_cve, c_score, c_pct = header.index("cve"), header.index("epss"), header.index("percentile")
    except ValueError:
        raise EnrichError(f"EPSS header is not 'cve,epss,percentile': {lines[i][:80]!r}") from None
    skipped = [0]

    def rows() -> Iterator[tuple[str, float, float]]:
        for line in lines[i + 1 :]:
            if not line.strip():
                continue
            cols = line.split(",")
            try:
                cve = cols[c_cve].strip()
                score, pct = float(cols[c_score]), float(cols[c_pct])
            except (IndexError, ValueError):
                skipped[0] += 1
                continue
            if not _CVE.match(cve) or not (0.0 <= score <= 1.0) or not (0.0 <= pct <= 1.0):
                skipped[0] += 1
                continue
            yield cve, score, pct

    return date[:10] if date else "", model, rows(), skipped


def parse_kev(data: bytes) -> tuple[str, str, list[dict[str, str]], int]:
    """(date_released, catalog_version, rows, skipped) from the KEV JSON catalog."""
    try:
        doc = json.loads(data)
    except ValueError as exc:
        raise EnrichError(f"KEV catalog is not JSON: {exc}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("vulnerabilities"), list):
        raise EnrichError("KEV catalog has no 'vulnerabilities' list")
    rows = []
    skipped = 0
    for v in doc["vulnerabilities"]:
        cve = v.get("cveID", "") if isinstance(v, dict) else ""
        if not isinstance(cve, str) or not _CVE.match(cve):
            skipped += 1
            continue

        def s(key: str, v: dict = v) -> str:  # type: ignore[type-arg]
            val = v.get(key, "")
            return val[:500] if isinstance(val, str) else ""

        rows.append({"cve": cve, "date_added": s("dateAdded"), "due_date": s("dueDate"),
                     "ransomware": s("knownRansomwareCampaignUse"), "vendor": s("vendorProject"),
                     "product": s("product"), "name": s("vulnerabilityName")})
    released = doc.get("dateReleased", "")
    version = doc.get("catalogVersion", "")
    return (released[:10] if isinstance(released, str) else "", version if isinstance(version, str) else "",
            rows, skipped)


def enrich_epss(store: Store, source: str, timeout: float = 60.0) -> EnrichResult:
    date, model, rows, skipped = parse_epss(read_source(source, timeout))
    n = store.set_epss(rows, date, model)
    return EnrichResult("epss", n, date, skipped[0])


def enrich_kev(store: Store, source: str, timeout: float = 60.0) -> EnrichResult:
    date, version, rows, skipped = parse_kev(read_source(source, timeout))
    n = store.set_kev(rows, version, date)
    return EnrichResult("kev", n, date, skipped)
