"""A single self-contained HTML page: one file to attach to a ticket or a CI artifact.

No external stylesheet, font, script or image is referenced, so the page renders offline and
leaks nothing when opened. Every string that came from the scanned artifact is escaped with
html.escape (quotes included, since some land in attributes): image names, titles, paths and
build commands are attacker-controlled.
"""

from __future__ import annotations

import html

from hullguard.detect.vulns import (
    ROLE_TITLES,
    base_image_name,
    layer_roles,
    not_checked,
    sort_by_risk,
    summary,
    upgrade_label,
)
from hullguard.model import Finding, ScanResult, Severity
from hullguard.report.markdown import package_of

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,sans-serif;margin:2em;color:#1f2328;background:#fff}
h1{font-size:1.5em;margin:0 0 .3em}h2{font-size:1.2em;margin-top:1.6em;border-bottom:1px solid #d0d7de}
.meta{color:#57606a}.counts span{display:inline-block;margin:0 .8em .4em 0}
table{border-collapse:collapse;width:100%;margin-top:.5em}
th,td{border:1px solid #d0d7de;padding:.3em .5em;text-align:left;vertical-align:top;word-break:break-word}
th{background:#f6f8fa}code{font-family:ui-monospace,monospace;font-size:.92em}
.sev{font-weight:600;white-space:nowrap}
.CRITICAL{color:#fff;background:#a40e26}.HIGH{color:#fff;background:#d1242f}
.MEDIUM{background:#f2cc60}.LOW{background:#ddf4ff}.UNKNOWN{background:#eaeef2}
.kev{color:#a40e26;font-weight:600}.filters label{margin-right:1em}
"""

# Hides rows whose severity box is unticked; rows carry their severity in data-sev.
_JS = """
document.querySelectorAll('.filters input').forEach(function (box) {
  box.addEventListener('change', function () {
    var on = {};
    document.querySelectorAll('.filters input').forEach(function (b) { on[b.value] = b.checked; });
    document.querySelectorAll('tr[data-sev]').forEach(function (row) {
      row.style.display = on[row.getAttribute('data-sev')] ? '' : 'none';
    });
  });
});
"""


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _shown_id(f: Finding) -> str:
    aliases = f.details.get("aliases") or []
    return next((str(a) for a in aliases if str(a).startswith("CVE-")), f.rule_id)


def _sev_cell(f: Finding) -> str:
    # The class comes from the enum, never from input, so it needs no escaping beyond _e.
    return f'<td class="sev {_e(f.severity.name)}">{_e(f.severity.name)}</td>'


def _link(text: str, url: object) -> str:
    # Only http(s) links are made clickable; a javascript: or data: URL stays plain text.
    if isinstance(url, str) and url.startswith(("https://", "http://")):
        return f'<a href="{_e(url)}" rel="noopener noreferrer">{_e(text)}</a>'
    return _e(text)


def _layer(f: Finding, result: ScanResult) -> str:
    if not f.location or not f.location.layer:
        return ""
    found = result.layer_by_digest().get(f.location.layer)
    created_by = " ".join(found.created_by.split()) if found and found.created_by else ""
    short = f.location.layer.split(":", 1)[-1][:12]
    return f'<code title="{_e(created_by)}">{_e(short)}</code> {_e(created_by[:80])}'


def _vuln_rows(vulns: list[Finding], result: ScanResult) -> list[str]:
    rows = []
    for f in vulns:
        name, installed = package_of(f)
        kev = ' <span class="kev">known exploited</span>' if f.details.get("known_exploited") else ""
        fixed = f.fix or f.details.get("status") or "no fix"
        loc = f.location.path if f.location else ""
        rows.append(
            f'<tr data-sev="{_e(f.severity.name)}">{_sev_cell(f)}'
            f"<td>{_link(_shown_id(f), f.details.get('url'))}{kev}</td>"
            f"<td>{_e(name)}</td><td>{_e(installed)}</td>"
            f"<td>{_e(fixed)}</td><td>{_e(f.title)}</td><td><code>{_e(loc)}</code></td>"
            f"<td>{_layer(f, result)}</td></tr>"
        )
    return rows


def _other_rows(findings: list[Finding]) -> list[str]:
    rows = []
    for f in sorted(findings, key=lambda f: -int(f.severity)):
        loc = f.location
        where = (f"{loc.path}:{loc.line}" if loc.line else loc.path) if loc and loc.path else f.target
        rows.append(
            f'<tr data-sev="{_e(f.severity.name)}">{_sev_cell(f)}<td>{_e(f.rule_id)}</td>'
            f"<td><code>{_e(where)}</code></td><td>{_e(f.title)}</td>"
            f"<td><code>{_e(f.evidence)}</code></td><td>{_e(f.fix)}</td></tr>"
        )
    return rows


def render(result: ScanResult) -> bytes:
    a = result.artifact
    vulns = sort_by_risk(f for f in result.findings if f.kind == "vulnerability")
    s = summary(vulns, layer_roles(result))
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        # Defence in depth: the page may load nothing from anywhere (no tracking, no remote
        # script). Escaping stays the real protection, since inline script must run for the filter.
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
        "style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:\">",
        f"<title>hullguard: {_e(a.name)}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>hullguard report: {_e(a.name)}</h1>",
    ]
    meta = [f"type {_e(a.type)}"]
    if result.os:
        o = result.os
        meta.append(f"OS {_e(o.name or ' '.join(p for p in (o.family, o.release) if p))}")
    if a.config_digest:
        meta.append(f"image id <code>{_e(a.config_digest)}</code>")
    if result.generated_at:
        meta.append(f"generated {_e(result.generated_at)}")
    out.append(f'<p class="meta">{" · ".join(meta)}</p>')

    counts = [f"<span><b>{s['total']}</b> vulnerabilities</span>", f"<span><b>{s['fixable']}</b> fixable</span>",
              f"<span><b>{s['known_exploited']}</b> known exploited</span>"]
    counts += [f'<span class="sev {name}">&nbsp;{name} {n}&nbsp;</span>' for name, n in s["by_severity"].items()]
    out.append(f'<p class="counts">{"".join(counts)}</p>')

    if result.findings:
        boxes = "".join(f'<label><input type="checkbox" value="{sev.name}" checked> {sev.name}</label>'
                        for sev in sorted(Severity, reverse=True))
        out.append(f'<p class="filters">Show: {boxes}</p>')

    upgrades = [up for up in s["upgrades"] if up["package"]]
    if upgrades:
        out.append("<h2>Fix first</h2>")
        groups = [(g, [u for u in upgrades if u.get("layer", "") == g["layer"]]) for g in s.get("by_layer", [])]
        base = base_image_name(result)
        for group, ups in groups or [({}, upgrades)]:
            if group:
                name = ROLE_TITLES[group["layer"]] + (f" ({base})" if base and group["layer"] == "base" else "")
                out.append(f'<h3 class="layer">{_e(name)}: {group["total"]} vulnerabilities, '
                           f'{group["fixable"]} fixable</h3>')
            out.append("<ul>")
            out.extend(f"<li>upgrade {_e(upgrade_label(up))} {_e(up['installed'])} &rarr; <b>{_e(up['to'])}</b> "
                       f"(fixes {up['fixes']})</li>" for up in ups)
            if group and group["total"] and not ups:
                out.append("<li>no fixed versions published yet</li>")
            out.append("</ul>")

    skipped = not_checked(result)
    if skipped:
        out.append(f"<h2>Not checked ({len(skipped)})</h2><p>Vulnerabilities of these packages could not be "
                   "looked up.</p><table><thead><tr><th>Package</th><th>Version</th><th>Type</th><th>Reason</th>"
                   "</tr></thead><tbody>")
        out.extend(f"<tr><td>{_e(x['package'])}</td><td>{_e(x['version'])}</td><td>{_e(x['ecosystem'])}</td>"
                   f"<td>{_e(x['reason'])}</td></tr>" for x in skipped)
        out.append("</tbody></table>")

    if vulns:
        out.append(f"<h2>Vulnerabilities ({len(vulns)})</h2><table><thead><tr><th>Severity</th><th>ID</th>"
                   "<th>Package</th><th>Installed</th><th>Fixed</th><th>Title</th><th>Path</th><th>Layer</th>"
                   "</tr></thead><tbody>")
        out.extend(_vuln_rows(vulns, result))
        out.append("</tbody></table>")
    for kind, title in (("secret", "Secrets"), ("misconfiguration", "Misconfigurations")):
        found = [f for f in result.findings if f.kind == kind]
        if found:
            out.append(f"<h2>{title} ({len(found)})</h2><table><thead><tr><th>Severity</th><th>Rule</th>"
                       "<th>Where</th><th>Title</th><th>Evidence</th><th>Fix</th></tr></thead><tbody>")
            out.extend(_other_rows(found))
            out.append("</tbody></table>")
    if not result.findings:
        out.append("<p>No findings.</p>")
    if result.warnings:
        out.append(f"<h2>Warnings ({len(result.warnings)})</h2><ul>")
        out.extend(f"<li>{_e(w)}</li>" for w in result.warnings)
        out.append("</ul>")
    out.append(f"<script>{_JS}</script></body></html>")
    return ("\n".join(out) + "\n").encode()
