"""A Markdown summary sized for a pull-request comment.

The reader decides in seconds whether the change is safe, so the counts and the upgrades that fix
most come first, the riskiest findings follow in a table, and the long tail is folded away.
Everything taken from the scan is escaped: image names, titles and paths come from untrusted
images and must not break the table or inject markup into the comment.
"""

from __future__ import annotations

from hullguard.detect.vulns import (
    ROLE_TITLES,
    base_image_name,
    layer_roles,
    not_checked,
    sort_by_risk,
    summary,
    upgrade_label,
)
from hullguard.model import Finding, ScanResult

TOP = 15
# GitHub rejects comments over 65 536 characters; rows beyond this are counted, not shown.
MAX_ROWS = 300
_CREATED_BY_WIDTH = 40

# Markdown punctuation that could start emphasis, strikethrough (Debian versions carry "~"),
# code, links or tables, plus the HTML
# metacharacters (GitHub renders inline HTML). Backslash goes first so that it is not doubled.
_ESCAPES = [("\\", "\\\\"), ("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"), ("|", "\\|"), ("`", "\\`"),
            ("*", "\\*"), ("_", "\\_"), ("~", "\\~"), ("[", "\\["), ("]", "\\]")]


def escape(text: object) -> str:
    """Inline-safe text: one line, no live Markdown or HTML."""
    out = " ".join(str(text).split())
    for raw, safe in _ESCAPES:
        out = out.replace(raw, safe)
    return out


def _shorten(text: str, width: int) -> str:
    text = " ".join(text.split())
    # Docker's classic builder prefixes every step; it says nothing to the reader.
    text = text.removeprefix("/bin/sh -c ").removeprefix("#(nop) ").strip()
    return text if len(text) <= width else text[: width - 1] + "…"


def _shown_id(f: Finding) -> str:
    aliases = f.details.get("aliases") or []
    return next((str(a) for a in aliases if str(a).startswith("CVE-")), f.rule_id)


def package_of(f: Finding) -> tuple[str, str]:
    """(name, installed version) of a vulnerability finding: from the matcher's details or,
    failing those, from the package id in ``target`` ("ecosystem:name@version#path")."""
    pkg = f.details.get("package") or {}
    name, version = str(pkg.get("name") or ""), str(pkg.get("version") or f.details.get("installed_version") or "")
    if not name and ":" in f.target:
        ident = f.target.split(":", 1)[1].rsplit("#", 1)[0]
        name, _, parsed = ident.rpartition("@")
        name, version = (name, version or parsed) if name else (ident, version)
    return name or f.target, version


def _vuln_row(f: Finding, result: ScanResult) -> str:
    name, installed = package_of(f)
    fixed = f.fix or f.details.get("status") or "no fix"
    layer = ""
    if f.location and f.location.layer:
        found = result.layer_by_digest().get(f.location.layer)
        layer = _shorten(found.created_by, _CREATED_BY_WIDTH) if found and found.created_by else \
            f.location.layer.split(":", 1)[-1][:12]
    sev = f.severity.name + (" (known exploited)" if f.details.get("known_exploited") else "")
    cells = [sev, _shown_id(f), name, installed, fixed, layer or "-"]
    return "| " + " | ".join(escape(c) for c in cells) + " |"


_VULN_HEAD = ["| Severity | ID | Package | Installed | Fixed | Layer |", "| --- | --- | --- | --- | --- | --- |"]


def _where(f: Finding) -> str:
    loc = f.location
    if loc and loc.path:
        return f"{loc.path}:{loc.line}" if loc.line else loc.path
    return f.target


def _other_section(title: str, findings: list[Finding]) -> list[str]:
    out = ["", f"### {title} ({len(findings)})", "", "| Severity | Rule | Where | Title | Evidence / fix |",
           "| --- | --- | --- | --- | --- |"]
    for f in sorted(findings, key=lambda f: -int(f.severity))[:MAX_ROWS]:
        extra = f.evidence or f.fix
        out.append("| " + " | ".join(escape(c) for c in (f.severity.name, f.rule_id, _where(f), f.title, extra))
                   + " |")
    if len(findings) > MAX_ROWS:
        out.append(f"\n{len(findings) - MAX_ROWS} more not shown; see the JSON report.")
    return out


def render(result: ScanResult) -> bytes:
    a = result.artifact
    out = [f"## hullguard: {escape(a.name)}", ""]
    facts = [f"**Type:** {escape(a.type)}"]
    if result.os:
        o = result.os
        facts.append(f"**OS:** {escape(o.name or ' '.join(p for p in (o.family, o.release) if p))}")
    if a.config_digest:
        facts.append(f"**Image ID:** {escape(a.config_digest.split(':', 1)[-1][:12])}")
    out.append(" · ".join(facts))

    vulns = sort_by_risk(f for f in result.findings if f.kind == "vulnerability")
    s = summary(vulns, layer_roles(result))
    by_sev = ", ".join(f"{n} {c}" for n, c in s["by_severity"].items() if c) or "none"
    out.extend(["", f"**Vulnerabilities: {s['total']}** ({by_sev}) · fixable {s['fixable']} · "
                    f"known exploited {s['known_exploited']}"])

    # Findings without package details group under an empty name in summary(); an upgrade
    # without a package to name is no advice, so it is left out here.
    upgrades = [up for up in s["upgrades"] if up["package"]]
    if upgrades:
        out.extend(["", "### Fix first"])
        groups = [(g, [u for u in upgrades if u.get("layer", "") == g["layer"]]) for g in s.get("by_layer", [])]
        if not groups:
            groups = [({}, upgrades)]
        base = base_image_name(result)
        for group, ups in groups:
            if group:
                name = ROLE_TITLES[group["layer"]] + (f" ({escape(base)})" if base and group["layer"] == "base" else "")
                out.extend(["", f"**{name}:** {group['total']} vulnerabilities, {group['fixable']} fixable"])
            if ups or not group:
                out.append("")
            for up in ups[:10]:
                n = up["fixes"]
                out.append(f"- upgrade {escape(upgrade_label(up))} {escape(up['installed'])} → **{escape(up['to'])}** "
                           f"(fixes {n} vulnerabilit{'y' if n == 1 else 'ies'})")
            if len(ups) > 10:
                out.append(f"- … and {len(ups) - 10} more packages with fixes")
            if group and group["total"] and not ups:
                out.extend(["", "- no fixed versions published yet"])

    skipped = not_checked(result)
    if skipped:
        out.extend(["", f"**Not checked:** {len(skipped)} package{'s' if len(skipped) != 1 else ''} "
                        "(vulnerabilities could not be looked up)", "",
                    "| Package | Version | Type | Reason |", "| --- | --- | --- | --- |"])
        out.extend(f"| {escape(x['package'])} | {escape(x['version'])} | {escape(x['ecosystem'])} | "
                   f"{escape(x['reason'])} |" for x in skipped[:MAX_ROWS])

    if vulns:
        out.extend(["", "### Top vulnerabilities", "", *_VULN_HEAD])
        out.extend(_vuln_row(f, result) for f in vulns[:TOP])
        rest = vulns[TOP:]
        if rest:
            shown = rest[:MAX_ROWS]
            # A blank line after <summary> is what makes GitHub render the table inside <details>.
            out.extend(["", f"<details><summary>{len(rest)} more vulnerabilities</summary>", "", *_VULN_HEAD])
            out.extend(_vuln_row(f, result) for f in shown)
            if len(rest) > len(shown):
                out.append(f"\n{len(rest) - len(shown)} more not shown; see the JSON report.")
            out.extend(["", "</details>"])

    secrets = [f for f in result.findings if f.kind == "secret"]
    if secrets:
        out.extend(_other_section("Secrets", secrets))
    misconf = [f for f in result.findings if f.kind == "misconfiguration"]
    if misconf:
        out.extend(_other_section("Misconfigurations", misconf))
    if not result.findings:
        out.extend(["", "No findings."])
    return ("\n".join(out) + "\n").encode()
