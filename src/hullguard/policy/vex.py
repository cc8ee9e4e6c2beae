"""VEX input: OpenVEX and CycloneDX VEX documents that say a finding does not apply.

Only statements that assert the product is safe suppress a finding: OpenVEX ``not_affected`` and
``fixed``, CycloneDX ``not_affected``, ``false_positive`` and ``resolved``. Everything else
(affected, exploitable, under investigation, in triage) leaves the finding visible, because a
scanner must never hide a vulnerability on the strength of "we are still looking".

Products are matched by package URL against the finding's package purl: type, namespace and name
must be equal, and the statement's version must be equal or absent; qualifiers are ignored.
"""

from __future__ import annotations

import datetime as _dt
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from hullguard.model import Finding, HullguardError
from hullguard.policy._match import finding_ids, finding_package, purl_key, purl_matches

__all__ = ["VexIndex", "VexResult", "VexStatement", "apply_vex", "load_vex", "parse_vex"]

# A VEX document is metadata about a product; a file this big is a mistake (or an attack).
_MAX_BYTES = 64 * 1024 * 1024

OPENVEX_SUPPRESS = frozenset({"not_affected", "fixed"})
OPENVEX_STATUSES = frozenset({"not_affected", "affected", "fixed", "under_investigation"})
CYCLONEDX_SUPPRESS = frozenset({"not_affected", "false_positive", "resolved"})
CYCLONEDX_STATES = frozenset(
    {"resolved", "resolved_with_pedigree", "exploitable", "in_triage", "false_positive", "not_affected"}
)

_EPOCH = _dt.datetime.min.replace(tzinfo=_dt.UTC)

PurlKey = tuple[str, str, str, str]


@dataclass(frozen=True)
class VexStatement:
    """One statement about one vulnerability, reduced to what matching and reporting need."""

    format: str  # openvex | cyclonedx
    vulnerability: str  # the id as the document names it
    status: str  # the document's own word: not_affected, fixed, false_positive, resolved, ...
    justification: str = ""
    # OpenVEX impact_statement or CycloneDX analysis.detail: the human explanation.
    detail: str = ""
    source: str = ""  # the file it came from
    ids: frozenset[str] = frozenset()  # upper-cased id and aliases
    products: tuple[str, ...] = ()  # the purls as written, for display
    timestamp: _dt.datetime = _EPOCH
    order: int = 0  # position across all loaded documents: later wins on equal timestamps
    _keys: tuple[PurlKey, ...] = field(default=(), repr=False, compare=False)

    @property
    def suppresses(self) -> bool:
        allowed = OPENVEX_SUPPRESS if self.format == "openvex" else CYCLONEDX_SUPPRESS
        return self.status in allowed

    def covers(self, package_purl: str) -> bool:
        return any(purl_matches(key, package_purl) for key in self._keys)

    def summary(self) -> dict[str, str]:
        """What a report shows next to a suppressed finding."""
        out = {"format": self.format, "vulnerability": self.vulnerability, "status": self.status}
        if self.justification:
            out["justification"] = self.justification
        if self.detail:
            out["detail"] = self.detail
        if self.source:
            out["source"] = self.source
        return out


@dataclass
class VexIndex:
    by_id: dict[str, list[VexStatement]] = field(default_factory=dict)
    documents: list[str] = field(default_factory=list)

    def add(self, statement: VexStatement) -> None:
        for vid in statement.ids:
            self.by_id.setdefault(vid, []).append(statement)

    def __len__(self) -> int:
        return len({id(s) for group in self.by_id.values() for s in group})

    def decide(self, finding: Finding) -> VexStatement | None:
        """The statement that governs this finding, or None when no statement covers it.

        VEX is a stream of statements where later ones override earlier ones (OpenVEX spec), so
        the latest covering statement decides even if an earlier one said not_affected.
        """
        package_purl = str(finding_package(finding).get("purl") or "")
        if not package_purl:
            return None
        seen: set[int] = set()
        candidates: list[VexStatement] = []
        for vid in finding_ids(finding):
            for st in self.by_id.get(vid, ()):
                if id(st) not in seen and st.covers(package_purl):
                    seen.add(id(st))
                    candidates.append(st)
        if not candidates:
            return None
        return max(candidates, key=lambda s: (s.timestamp, s.order))


@dataclass
class VexResult:
    kept: list[Finding]
    # The governing statement; VexStatement.summary() gives status, justification and detail.
    suppressed: list[tuple[Finding, VexStatement]]


def _fail(source: str, message: str) -> HullguardError:
    return HullguardError(" ".join(f"{source}: {message}".split()))


def _timestamp(value: Any, fallback: _dt.datetime) -> _dt.datetime:
    if not isinstance(value, str) or not value:
        return fallback
    try:
        ts = _dt.datetime.fromisoformat(value.strip())
    except ValueError:
        return fallback  # a bad timestamp should not reject a whole document
    return ts if ts.tzinfo else ts.replace(tzinfo=_dt.UTC)


def _purl_keys(purls: Iterable[str]) -> tuple[PurlKey, ...]:
    keys = []
    for text in purls:
        key = purl_key(text) if text.startswith("pkg:") else None
        if key is not None:
            keys.append(key)
    return tuple(keys)


# --- OpenVEX -------------------------------------------------------------------------------------


def _openvex_component_ids(component: Any) -> list[str]:
    # v0.0.1 wrote products as bare strings; v0.2.0 uses objects with @id and identifiers.purl.
    if isinstance(component, str):
        return [component]
    if not isinstance(component, dict):
        return []
    out = []
    if isinstance(component.get("@id"), str):
        out.append(component["@id"])
    identifiers = component.get("identifiers")
    if isinstance(identifiers, dict) and isinstance(identifiers.get("purl"), str):
        out.append(identifiers["purl"])
    return out


def _openvex(doc: dict[str, Any], source: str, start: int) -> list[VexStatement]:
    statements = doc.get("statements")
    if not isinstance(statements, list):
        raise _fail(source, "OpenVEX document has no 'statements' list")
    doc_time = _timestamp(doc.get("timestamp"), _EPOCH)
    out = []
    for n, st in enumerate(statements, 1):
        if not isinstance(st, dict):
            raise _fail(source, f"OpenVEX statement {n} is not an object")
        vuln = st.get("vulnerability")
        ids: list[str] = []
        if isinstance(vuln, str):  # v0.0.1
            ids.append(vuln)
        elif isinstance(vuln, dict):
            for key in ("name", "@id"):
                if isinstance(vuln.get(key), str):
                    ids.append(vuln[key])
            aliases = vuln.get("aliases")
            if isinstance(aliases, list):
                ids.extend(a for a in aliases if isinstance(a, str))
        ids = [i.strip() for i in ids if i.strip()]
        if not ids:
            raise _fail(source, f"OpenVEX statement {n} names no vulnerability")
        status = st.get("status")
        if status not in OPENVEX_STATUSES:
            raise _fail(source, f"OpenVEX statement {n} has unknown status {status!r}")
        products = st.get("products")
        purls: list[str] = []
        if isinstance(products, list):
            for product in products:
                purls.extend(_openvex_component_ids(product))
                # Subcomponents are the packages inside the product (an image): the finding's
                # package is one of those, so they match the same way the product does.
                subs = product.get("subcomponents") if isinstance(product, dict) else None
                if isinstance(subs, list):
                    for sub in subs:
                        purls.extend(_openvex_component_ids(sub))
        out.append(
            VexStatement(
                format="openvex",
                vulnerability=ids[0],
                status=status,
                justification=str(st.get("justification") or ""),
                detail=str(st.get("impact_statement") or st.get("status_notes") or ""),
                source=source,
                ids=frozenset(i.upper() for i in ids),
                products=tuple(purls),
                timestamp=_timestamp(st.get("timestamp"), doc_time),
                order=start + n,
                _keys=_purl_keys(purls),
            )
        )
    return out


# --- CycloneDX -----------------------------------------------------------------------------------


def _bom_refs(components: Any, out: dict[str, str]) -> dict[str, str]:
    """bom-ref -> purl for every component, nested ones included."""
    if isinstance(components, list):
        for comp in components:
            if isinstance(comp, dict):
                ref, purl = comp.get("bom-ref"), comp.get("purl")
                if isinstance(ref, str) and isinstance(purl, str):
                    out[ref] = purl
                _bom_refs(comp.get("components"), out)
    return out


def _resolve_ref(ref: str, refs: dict[str, str]) -> str:
    if ref.startswith("pkg:"):
        return ref
    if ref in refs:
        return refs[ref]
    # A BOM-Link (urn:cdx:serial/version#bom-ref) points into another BOM; standalone VEX files
    # commonly use the purl as the bom-ref, so the fragment is often a purl we can use directly.
    if ref.startswith("urn:cdx:") and "#" in ref:
        frag = unquote(ref.split("#", 1)[1])
        return refs.get(frag, frag if frag.startswith("pkg:") else "")
    return ""


def _cyclonedx(doc: dict[str, Any], source: str, start: int) -> list[VexStatement]:
    vulns = doc.get("vulnerabilities")
    if not isinstance(vulns, list):
        raise _fail(source, "CycloneDX document has no 'vulnerabilities' list")
    refs = _bom_refs(doc.get("components"), {})
    meta = doc.get("metadata")
    if isinstance(meta, dict):
        _bom_refs([meta.get("component")], refs)
        doc_time = _timestamp(meta.get("timestamp"), _EPOCH)
    else:
        doc_time = _EPOCH
    out = []
    for n, vuln in enumerate(vulns, 1):
        if not isinstance(vuln, dict):
            raise _fail(source, f"CycloneDX vulnerability {n} is not an object")
        ids = [vuln["id"]] if isinstance(vuln.get("id"), str) else []
        references = vuln.get("references")
        if isinstance(references, list):
            ids.extend(r["id"] for r in references if isinstance(r, dict) and isinstance(r.get("id"), str))
        ids = [i.strip() for i in ids if i.strip()]
        if not ids:
            raise _fail(source, f"CycloneDX vulnerability {n} has no 'id'")
        analysis = vuln.get("analysis")
        if not isinstance(analysis, dict) or "state" not in analysis:
            continue  # a plain vulnerability listing (an SBOM with findings) says nothing to suppress
        state = analysis.get("state")
        if state not in CYCLONEDX_STATES:
            raise _fail(source, f"CycloneDX vulnerability {n} has unknown analysis.state {state!r}")
        purls = []
        affects = vuln.get("affects")
        if isinstance(affects, list):
            for a in affects:
                if isinstance(a, dict) and isinstance(a.get("ref"), str):
                    resolved = _resolve_ref(a["ref"], refs)
                    if resolved:
                        purls.append(resolved)
        out.append(
            VexStatement(
                format="cyclonedx",
                vulnerability=ids[0],
                status=state,
                justification=str(analysis.get("justification") or ""),
                detail=str(analysis.get("detail") or ""),
                source=source,
                ids=frozenset(i.upper() for i in ids),
                products=tuple(purls),
                timestamp=_timestamp(analysis.get("lastUpdated") or vuln.get("updated"), doc_time),
                order=start + n,
                _keys=_purl_keys(purls),
            )
        )
    return out


# --- loading -------------------------------------------------------------------------------------


def parse_vex(data: bytes | str, source: str = "<vex>", start: int = 0) -> list[VexStatement]:
    """Statements of one OpenVEX or CycloneDX JSON document; the format is detected from content."""
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise _fail(source, f"not a JSON VEX document: {exc}") from exc
    if not isinstance(doc, dict):
        raise _fail(source, "VEX document must be a JSON object")
    context = doc.get("@context")
    if isinstance(context, str) and context.startswith("https://openvex.dev/ns"):
        return _openvex(doc, source, start)
    if doc.get("bomFormat") == "CycloneDX" or "vulnerabilities" in doc:
        return _cyclonedx(doc, source, start)
    raise _fail(source, "not an OpenVEX (@context https://openvex.dev/ns...) or CycloneDX VEX document")


def load_vex(paths: Iterable[str | Path]) -> VexIndex:
    """Load every document; a later document's statements override earlier ones on equal time."""
    index = VexIndex()
    order = 0
    for path in paths:
        source = str(path)
        try:
            p = Path(path)
            if p.stat().st_size > _MAX_BYTES:
                raise _fail(source, f"VEX document larger than {_MAX_BYTES // (1024 * 1024)} MiB")
            data = p.read_bytes()
        except OSError as exc:
            raise _fail(source, f"cannot read VEX document: {exc.strerror or exc}") from exc
        statements = parse_vex(data, source, order)
        order = max((st.order for st in statements), default=order) + 1
        for st in statements:
            index.add(st)
        index.documents.append(source)
    return index


def apply_vex(findings: list[Finding], index: VexIndex) -> VexResult:
    kept: list[Finding] = []
    suppressed: list[tuple[Finding, VexStatement]] = []
    for finding in findings:
        st = index.decide(finding)
        if st is not None and st.suppresses:
            suppressed.append((finding, st))
        else:
            kept.append(finding)
    return VexResult(kept=kept, suppressed=suppressed)
