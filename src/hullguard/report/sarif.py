"""SARIF 2.1.0 for code-scanning dashboards (GitHub code scanning first of all).

GitHub groups alerts by rule, ranks them by the rule's ``security-severity`` and keeps an alert's
identity across uploads through ``partialFingerprints``, so those three are what this module
takes most care over. Everything here is derived from the ScanResult alone.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any
from urllib.parse import quote

import hullguard
from hullguard.model import Finding, ScanResult, Severity
from hullguard.report.markdown import escape as md_escape
from hullguard.report.markdown import package_of

SCHEMA_URI = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
INFORMATION_URI = "https://github.com/hullguard/hullguard"

# GitHub maps security-severity onto its own bands (>=9 critical, >=7 high, >=4 medium, >0 low);
# these sit inside the matching band, for findings that carry no CVSS score of their own.
_SECURITY_SEVERITY = {
    Severity.CRITICAL: 9.5,
    Severity.HIGH: 8.0,
    Severity.MEDIUM: 5.5,
    Severity.LOW: 2.0,
}
# UNKNOWN has no entry on purpose: without a score GitHub shows the alert by its level alone,
# which is more honest than inventing a number.

_LEVEL = {
    Severity.CRITICAL: "error",
    Severity.HIGH: "error",
    Severity.MEDIUM: "warning",
    Severity.LOW: "note",
    Severity.UNKNOWN: "note",
}

# Version matching against an advisory is exact and so are the misconfiguration checks; secret
# rules are patterns and do produce false positives now and then.
_PRECISION = {"vulnerability": "very-high", "misconfiguration": "very-high", "secret": "high"}

# Characters kept as they are in artifact URIs: everything a path may hold that is legal in a
# URI reference; the rest (spaces, '#', '?', '%', non-ASCII) is percent-encoded. ':' is encoded
# too, or a fallback such as "debian:12" would read as an absolute URI with scheme "debian".
_URI_SAFE = "/@+!$&'()*,;=~"


def _cvss_score(details: dict[str, Any]) -> float | None:
    # The matcher stores one {"version", "vector", "score"}; other producers (SBOM import)
    # may leave a list of them, in which case the highest score is the honest one.
    cvss = details.get("cvss")
    entries = cvss if isinstance(cvss, list) else [cvss]
    scores = [e["score"] for e in entries if isinstance(e, dict) and isinstance(e.get("score"), (int, float))]
    return float(max(scores)) if scores else None


def _shown_id(f: Finding) -> str:
    # People search for CVE ids; the rule id may be a GHSA or a distro advisory.
    aliases = f.details.get("aliases") or []
    return next((str(a) for a in aliases if str(a).startswith("CVE-")), f.rule_id)


def _path(f: Finding, result: ScanResult) -> str:
    loc = f.location
    path = loc.path if loc and loc.path else ""
    if not path and f.kind != "vulnerability":
        # Secret and misconfiguration targets are file paths already.
        path = f.target
    if not path:
        path = result.artifact.name
    # GitHub resolves a relative uri against the repository root; an absolute "/usr/lib/..."
    # would match nothing there, while "usr/lib/..." still names the file inside the image.
    return path.lstrip("/") or "."


def _layer_text(f: Finding, result: ScanResult) -> str:
    loc = f.location
    if not loc or not loc.layer:
        return ""
    layer = result.layer_by_digest().get(loc.layer)
    created_by = " ".join(layer.created_by.split()) if layer and layer.created_by else ""
    digest = loc.layer.split(":", 1)[-1][:12]
    return f"{digest} ({created_by})" if created_by else digest


def _message(f: Finding, result: ScanResult) -> str:
    lines: list[str] = []
    if f.kind == "vulnerability":
        name, version = package_of(f)
        lines.append(f"Package: {name}")
        lines.append(f"Installed Version: {version}")
        lines.append(f"Vulnerability: {_shown_id(f)}")
        lines.append(f"Severity: {f.severity.name}")
        lines.append(f"Fixed Version: {f.fix or f.details.get('status') or 'none'}")
        if f.details.get("known_exploited"):
            lines.append("Known exploited: yes")
    else:
        lines.append(f.title or f.rule_id)
        lines.append(f"Severity: {f.severity.name}")
        if f.evidence:
            lines.append(f"Evidence: {f.evidence}")
        if f.fix:
            lines.append(f"Fix: {f.fix}")
    layer = _layer_text(f, result)
    if layer:
        lines.append(f"Layer: {layer}")
    return "\n".join(lines)


def _fingerprint(f: Finding, path: str) -> str:
    # The NUL separators stop ("a", "bc") and ("ab", "c") from hashing alike.
    raw = "\0".join((f.rule_id, f.target, path)).encode()
    return hashlib.sha256(raw).hexdigest()


def _rule(f: Finding, severity: Severity, score: float | None) -> dict[str, Any]:
    d = f.details
    short = f.title or _shown_id(f)
    full = str(d.get("description") or f.title or f.rule_id)
    help_lines = [full]
    # GitHub renders help.markdown, so every value from the scan goes through the same escaping
    # as the pull-request summary: a hostile description must not inject markup or links.
    md_lines = [f"**{f.kind.capitalize()} {md_escape(_shown_id(f))}**", "", md_escape(full)]
    if f.kind == "vulnerability":
        name, version = package_of(f)
        table = ["", "| Package | Installed | Fixed in |", "| --- | --- | --- |"]
        cells = [name, version, f.fix or "no fix"]
        table.append("| " + " | ".join(md_escape(c) for c in cells) + " |")
        md_lines.extend(table)
    if f.fix:
        fix = f"Upgrade to {f.fix}." if f.kind == "vulnerability" else f.fix
        help_lines.append(f"Fix: {fix}")
        md_lines.extend(["", f"**Fix:** {md_escape(fix)}"])
    url = d.get("url")
    if isinstance(url, str) and url.startswith(("https://", "http://")) and not any(c in url for c in " ()<>\n"):
        help_lines.append(f"More: {url}")
        md_lines.extend(["", f"<{url}>"])
    else:
        url = None
    tags = ["security", f.kind]
    eco = _ecosystem(f)
    if eco:
        tags.append(str(eco))
    rule: dict[str, Any] = {
        "id": f.rule_id,
        "name": _rule_name(f),
        "shortDescription": {"text": short},
        "fullDescription": {"text": full},
        "defaultConfiguration": {"level": _LEVEL[severity]},
        "help": {"text": "\n".join(help_lines), "markdown": "\n".join(md_lines)},
        "properties": {"tags": tags, "precision": _PRECISION.get(f.kind, "medium")},
    }
    value = score if score is not None else _SECURITY_SEVERITY.get(severity)
    if value is not None:
        # GitHub reads this as a string holding a number, not as a JSON number.
        rule["properties"]["security-severity"] = f"{value:.1f}"
    if url:
        rule["helpUri"] = url
    return rule


def _ecosystem(f: Finding) -> str:
    eco = (f.details.get("package") or {}).get("ecosystem")
    if eco:
        return str(eco)
    # Findings built without package details still name the package by id ("eco:name@ver#path").
    if f.kind == "vulnerability" and ":" in f.target:
        return f.target.split(":", 1)[0]
    return ""


def _rule_name(f: Finding) -> str:
    # SARIF wants an identifier-like name; one per kind (and package family) reads well in the UI.
    if f.kind == "vulnerability":
        eco = _ecosystem(f)
        return "OsPackageVulnerability" if eco in ("deb", "apk", "rpm") else "LanguagePackageVulnerability"
    return {"secret": "Secret", "misconfiguration": "Misconfiguration"}.get(f.kind, "Finding")


def to_sarif(result: ScanResult) -> dict[str, Any]:
    """The SARIF log as plain data (tests and callers that post-process it use this)."""
    # One rule per id; a rule shared by several findings takes the worst severity and score of
    # them, since GitHub shows one severity per rule.
    first: dict[str, Finding] = {}
    worst: dict[str, Severity] = {}
    scores: dict[str, float] = {}
    for f in result.findings:
        first.setdefault(f.rule_id, f)
        worst[f.rule_id] = max(worst.get(f.rule_id, Severity.UNKNOWN), f.severity)
        s = _cvss_score(f.details)
        if s is not None:
            scores[f.rule_id] = max(scores.get(f.rule_id, 0.0), s)
    rule_ids = list(first)
    index = {rid: i for i, rid in enumerate(rule_ids)}
    rules = [_rule(first[rid], worst[rid], scores.get(rid)) for rid in rule_ids]

    results = []
    for f in result.findings:
        path = _path(f, result)
        line = f.location.line if f.location and f.location.line > 0 else 1
        results.append({
            "ruleId": f.rule_id,
            "ruleIndex": index[f.rule_id],
            "level": _LEVEL[f.severity],
            "message": {"text": _message(f, result)},
            "locations": [{
                "physicalLocation": {
                    "artifactLocation": {"uri": quote(path, safe=_URI_SAFE)},
                    "region": {"startLine": line},
                },
            }],
            "partialFingerprints": {"hullguard/v1": _fingerprint(f, path)},
            **_suppressions(f),
        })

    a = result.artifact
    run: dict[str, Any] = {
        "tool": {
            "driver": {
                "name": "hullguard",
                "version": hullguard.__version__,
                "semanticVersion": hullguard.__version__,
                "informationUri": INFORMATION_URI,
                "rules": rules,
            },
        },
        "results": results,
        "columnKind": "utf16CodeUnits",
    }
    props: dict[str, Any] = {"artifactName": a.name, "artifactType": a.type}
    if a.config_digest:
        props["imageId"] = a.config_digest
    if a.manifest_digest:
        props["manifestDigest"] = a.manifest_digest
    if a.repo_tags:
        props["repoTags"] = list(a.repo_tags)
    if result.os:
        props["os"] = f"{result.os.family} {result.os.release}".strip()
    run["properties"] = props
    return {"$schema": SCHEMA_URI, "version": "2.1.0", "runs": [run]}


def _suppressions(f: Finding) -> dict[str, Any]:
    """A finding shown with --show-suppressed: an "external" suppression (VEX or the ignore file)
    that code-scanning UIs display as dismissed, with the justification."""
    how = f.details.get("suppressed")
    if not how:
        return {}
    why = f.details.get("vex" if how == "vex" else "ignore") or {}
    text = (f"VEX {why.get('status', '')}: {why.get('justification') or why.get('detail') or ''}" if how == "vex"
            else f"{why.get('source') or '.hullguardignore'}: {why.get('reason', '')}")
    return {"suppressions": [{"kind": "external", "status": "accepted", "justification": text.strip(" :")}]}


def render(result: ScanResult) -> bytes:
    return (json.dumps(to_sarif(result), indent=2, ensure_ascii=False) + "\n").encode()
