"""The human summary: what the image is, where its packages came from, and what was found."""

from __future__ import annotations

from collections import Counter

from hullguard.detect.vulns import ROLE_TITLES, base_image_name, layer_roles, not_checked, summary, upgrade_label
from hullguard.model import Finding, ScanResult


def _short(digest: str) -> str:
    return digest.split(":", 1)[-1][:12] if digest else ""


def _table(rows: list[list[str]], headers: list[str]) -> list[str]:
    widths = [len(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = min(max(widths[i], len(cell)), 60)

    def line(cells: list[str]) -> str:
        out = []
        for i, cell in enumerate(cells):
            text = cell if len(cell) <= widths[i] else cell[: widths[i] - 1] + "…"
            out.append(text.ljust(widths[i]))
        return "  ".join(out).rstrip()

    return [line(headers), line(["-" * w for w in widths]), *(line(r) for r in rows)]


def _where(f: Finding) -> str:
    loc = f.location
    if loc and loc.path:
        where = f"{loc.path}:{loc.line}" if loc.line else loc.path
        return where if where.startswith("/") or f.kind == "misconfiguration" else "/" + where
    return f.target


def _vulnerabilities(vulns: list[Finding], layer_index: dict[str, int], roles: dict[str, str],
                     base: str) -> list[str]:
    out = [""]
    by_sev = Counter(f.severity.name for f in vulns)
    fixable = sum(1 for f in vulns if f.fix)
    exploited = sum(1 for f in vulns if f.details.get("known_exploited"))
    counts = ", ".join(f"{name} {by_sev[name]}" for name in ("CRITICAL", "HIGH", "MEDIUM", "LOW", "UNKNOWN")
                       if by_sev.get(name))
    out.append(f"Vulnerabilities: {len(vulns)} ({counts}); {fixable} fixable; {exploited} known exploited")
    s = summary(vulns, roles)
    groups = [(g, [u for u in s["upgrades"] if u.get("layer", "") == g["layer"]]) for g in s.get("by_layer", [])]
    for group, ups in groups or [({}, s["upgrades"])]:
        if group:
            name = ROLE_TITLES[group["layer"]] + (f" ({base})" if base and group["layer"] == "base" else "")
            out.append(f"  {name}: {group['total']} vulnerabilities, {group['fixable']} fixable")
        indent = "    " if group else "  "
        for up in ups[:10]:
            out.append(f"{indent}upgrade {upgrade_label(up)} {up['installed']} to {up['to']}: fixes {up['fixes']}")
        if len(ups) > 10:
            out.append(f"{indent}... and {len(ups) - 10} more packages with fixes")
    out.append("")
    rows = []
    for f in vulns:
        pkg = f.details.get("package", {})
        aliases = f.details.get("aliases") or []
        shown_id = next((a for a in aliases if str(a).startswith("CVE-")), f.rule_id)
        loc = f.location
        layer = str(layer_index[loc.layer] + 1) if loc and loc.layer in layer_index else "-"
        status = f.fix or f.details.get("status", "") or "no fix"
        flag = " KEV" if f.details.get("known_exploited") else ""
        rows.append([f.severity.name + flag, shown_id, pkg.get("name", f.target), pkg.get("version", ""), status,
                     layer, f.title])
    out.extend(_table(rows, ["SEVERITY", "ID", "PACKAGE", "INSTALLED", "FIXED IN", "LAYER", "TITLE"]))
    return out


def _why(f: Finding) -> list[str]:
    if f.details.get("suppressed") == "vex":
        vex = f.details.get("vex") or {}
        return [f"VEX {vex.get('status', '')}", str(vex.get("justification") or vex.get("detail") or "")]
    ignore = f.details.get("ignore") or {}
    return [str(ignore.get("source") or "ignore file"), str(ignore.get("reason", ""))]


def render(result: ScanResult) -> bytes:
    a = result.artifact
    out = [f"{a.name} ({a.type})"]
    if a.manifest_digest:
        out.append(f"  manifest digest: {a.manifest_digest}")
    if a.config_digest:
        out.append(f"  image id:        {a.config_digest}")
    if a.os or a.architecture:
        out.append(f"  platform:        {'/'.join(p for p in (a.os, a.architecture, a.variant) if p)}")
    if result.os:
        o = result.os
        codename = f" {o.codename}" if o.codename else ""
        distroless = " distroless" if o.distroless else ""
        out.append(f"  OS:              {o.name or o.family} ({o.family} {o.release}{codename}){distroless}")
    counts = Counter(p.ecosystem for p in result.packages)
    if a.type != "config":
        out.append(
            f"  packages:        {len(result.packages)}"
            + (f" ({', '.join(f'{k} {v}' for k, v in sorted(counts.items()))})" if counts else "")
        )
    layer_index = {layer.digest: i for i, layer in enumerate(result.layers)}
    if result.layers:
        per_layer = Counter(p.locations[0].layer for p in result.packages if p.locations)
        roles = layer_roles(result)
        out.append("")
        out.append("Layers")
        rows = [
            [
                str(i + 1),
                _short(layer.digest),
                roles.get(layer.digest, "-"),
                str(per_layer.get(layer.digest, 0)),
                " ".join(layer.created_by.split()) or "-",
            ]
            for i, layer in enumerate(result.layers)
        ]
        out.extend(_table(rows, ["#", "DIGEST", "ROLE", "PACKAGES", "CREATED BY"]))
    hidden = [f for f in result.findings if f.details.get("suppressed")]
    shown = [f for f in result.findings if not f.details.get("suppressed")]
    vulns = [f for f in shown if f.kind == "vulnerability"]
    if vulns:
        out.extend(_vulnerabilities(vulns, layer_index, layer_roles(result), base_image_name(result)))
    others = [f for f in shown if f.kind != "vulnerability"]
    if others:
        out.append("")
        out.append("Findings")
        rows = [[f.severity.name, f.rule_id, f.kind, _where(f), f.title] for f in others]
        out.extend(_table(rows, ["SEVERITY", "ID", "KIND", "TARGET", "TITLE"]))
    if hidden:
        out.append("")
        out.append(f"Suppressed ({len(hidden)})")
        out.extend(_table([[f.severity.name, f.rule_id, f.target, *_why(f)] for f in hidden],
                          ["SEVERITY", "ID", "TARGET", "BY", "WHY"]))
    if result.packages:
        out.append("")
        out.append("Packages")
        rows = []
        for p in sorted(result.packages, key=lambda p: (p.ecosystem, p.name.lower(), p.version)):
            loc = p.locations[0] if p.locations else None
            layer = str(layer_index[loc.layer] + 1) if loc and loc.layer in layer_index else "-"
            rows.append([p.name, p.version, p.ecosystem, layer, "/" + loc.path if loc else ""])
        out.extend(_table(rows, ["NAME", "VERSION", "TYPE", "LAYER", "PATH"]))
    skipped = not_checked(result)
    if skipped:
        out.append("")
        out.append(f"Not checked for vulnerabilities ({len(skipped)})")
        out.extend(_table([[x["package"], x["version"], x["ecosystem"], x["reason"]] for x in skipped],
                          ["NAME", "VERSION", "TYPE", "REASON"]))
    if result.warnings:
        out.append("")
        out.append(f"{len(result.warnings)} warning(s); see --format json for all of them.")
    return ("\n".join(out) + "\n").encode()
