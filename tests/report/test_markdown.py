"""The pull-request Markdown summary: counts, upgrades, tables, and nothing hostile leaking out."""

from __future__ import annotations

from hullguard.model import Artifact, Finding, Layer, Location, ScanResult, Severity
from hullguard.report import markdown

from .conftest import APP

HOSTILE = "<script>alert(1)</script> | `rm -rf` \n| --- |"


def _md(result: ScanResult) -> str:
    return markdown.render(result).decode()


def _vuln(i: int, sev: Severity = Severity.LOW, **kw: object) -> Finding:
    return Finding(kind="vulnerability", rule_id=f"GHSA-{i:04d}", severity=sev, target=f"npm:p{i}@1#x",
                   location=Location(path="app/package.json", layer=APP), fix=kw.pop("fix", "1.1"),  # type: ignore[arg-type]
                   details={"aliases": [f"CVE-2024-{i:04d}"], "package": {"name": f"p{i}", "version": "1.0",
                                                                          "ecosystem": "npm"}, **kw})


def test_debian(debian_result: ScanResult) -> None:
    # The fixture's findings predate details["package"]; give them what the matcher records.
    pairs = (("log4j-core", "2.14.1"), ("libssl3", "3.0.11-1~deb12u2"))
    for f, (name, version) in zip(debian_result.findings[:2], pairs, strict=True):
        f.details = {**f.details, "package": {"name": name, "version": version, "ecosystem": "x"}}
    md = _md(debian_result)
    assert md.startswith("## hullguard: docker.io/library/debian:12\n")
    assert "**OS:** Debian GNU/Linux 12 (bookworm)" in md
    assert "**Vulnerabilities: 2** (CRITICAL 1, MEDIUM 1) · fixable 2 · known exploited 0" in md
    assert "### Fix first" in md
    assert "log4j-core 2.14.1 → **2.15.0** (fixes 1 vulnerability)" in md
    # Two Debian versions on one line would otherwise render as ~~strikethrough~~ on GitHub.
    assert "libssl3 3.0.11-1\\~deb12u2 → **3.0.13-1\\~deb12u1**" in md
    assert "| CRITICAL | CVE-2021-44228 |" in md
    assert "COPY app /app # buildkit" in md
    assert "### Secrets (1)" in md and "HG-SEC-001" in md
    assert "<details>" not in md


def test_cve_first_and_details_fold() -> None:
    findings = [_vuln(i, Severity.HIGH if i == 30 else Severity.LOW, known_exploited=i == 30) for i in range(40)]
    layers = [Layer(digest=APP, created_by="/bin/sh -c " + "apt-get install -y " * 10)]
    md = _md(ScanResult(artifact=Artifact(name="img", type="registry"), layers=layers, findings=findings))
    top = md.split("<details>")[0]
    # Risk order: the known-exploited HIGH leads, shown by its CVE id.
    first_row = next(line for line in top.splitlines() if line.startswith("| HIGH"))
    assert "CVE-2024-0030" in first_row and "known exploited" in first_row
    assert "<details><summary>25 more vulnerabilities</summary>" in md
    assert md.count("| LOW |") == 39
    # created_by loses the shell prefix and is cut to a readable width.
    assert "| apt-get install -y" in md and "/bin/sh -c" not in md and "…" in md


def test_without_package_details(debian_result: ScanResult) -> None:
    md = _md(debian_result)
    assert "Fix first" not in md
    assert "| CRITICAL | CVE-2021-44228 | org.apache.logging.log4j:log4j-core |" in md


def test_misconfig_section() -> None:
    f = Finding(kind="misconfiguration", rule_id="HG-DF-002", severity=Severity.MEDIUM, title="Runs as root",
                target="Dockerfile", location=Location(path="Dockerfile", line=3), fix="Add USER")
    md = _md(ScanResult(artifact=Artifact(name=".", type="filesystem"), findings=[f]))
    assert "### Misconfigurations (1)" in md
    assert "| MEDIUM | HG-DF-002 | Dockerfile:3 | Runs as root | Add USER |" in md
    assert "**Vulnerabilities: 0** (none)" in md


def test_hostile_strings_escaped() -> None:
    layers = [Layer(digest=APP, created_by=HOSTILE)]
    vuln = Finding(kind="vulnerability", rule_id="X-1", severity=Severity.HIGH, target=HOSTILE,
                   location=Location(path="a", layer=APP), fix=HOSTILE,
                   details={"package": {"name": HOSTILE, "version": "1`2|3", "ecosystem": "npm"}})
    secret = Finding(kind="secret", rule_id="HG-SEC-1", severity=Severity.HIGH, title=HOSTILE, target=HOSTILE,
                     evidence="ab****|`")
    md = _md(ScanResult(artifact=Artifact(name=HOSTILE, type="registry"), layers=layers, findings=[vuln, secret]))
    assert "<script>" not in md
    assert "&lt;script&gt;" in md
    for line in md.splitlines():
        if line.startswith("| HIGH"):
            # Escaped pipes do not split cells: a row keeps exactly its column count.
            unescaped = line.replace("\\|", "")
            assert unescaped.count("|") in (7, 6), line
            assert "`" not in line.replace("\\`", "")
    # Newlines in input never start a new table row or heading.
    assert "\n| --- |" not in md.replace("| --- | --- |", "").replace("\n| --- | ---", "")
    assert "1\\`2\\|3" in md


def test_empty() -> None:
    md = _md(ScanResult(artifact=Artifact(name="scratch", type="registry")))
    assert "**Vulnerabilities: 0** (none) · fixable 0 · known exploited 0" in md
    assert "No findings." in md
    assert "Fix first" not in md and "| Severity |" not in md
