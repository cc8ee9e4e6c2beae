"""The self-contained HTML report: complete, offline, and inert against hostile input."""

from __future__ import annotations

import re
from html.parser import HTMLParser

from hullguard.model import Artifact, Finding, Layer, Location, ScanResult, Severity
from hullguard.report import html as html_report

from .conftest import APP

HOSTILE = "<script>alert(1)</script>\"'><img src=x onerror=alert(2)> | `x`\nline2"


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.scripts: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_script = tag == "script"

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.scripts.append(data)


def _parse(page: str) -> _Tags:
    p = _Tags()
    p.feed(page)
    return p


def _html(result: ScanResult) -> str:
    return html_report.render(result).decode()


def test_debian(debian_result: ScanResult) -> None:
    page = _html(debian_result)
    assert page.startswith("<!DOCTYPE html>")
    assert "<title>hullguard: docker.io/library/debian:12</title>" in page
    assert "Debian GNU/Linux 12 (bookworm)" in page
    assert "<b>2</b> vulnerabilities" in page
    assert "CVE-2021-44228" in page and "2.15.0" in page and "COPY app /app" in page
    assert "<td>libssl3</td><td>3.0.11-1~deb12u2</td>" in page
    assert "<h2>Secrets (1)</h2>" in page
    # One filter box per severity, and every finding row tagged for it.
    assert page.count('type="checkbox"') == 5
    assert page.count('<tr data-sev="') == 3


def test_self_contained(debian_result: ScanResult) -> None:
    parsed = _parse(_html(debian_result))
    for tag, attrs in parsed.tags:
        assert tag not in ("link", "img", "iframe", "object", "embed")
        if tag == "script":
            assert "src" not in attrs
    assert len(parsed.scripts) == 1


def test_hostile_strings_escaped() -> None:
    layers = [Layer(digest=APP, created_by=HOSTILE)]
    vuln = Finding(kind="vulnerability", rule_id=HOSTILE, severity=Severity.HIGH, title=HOSTILE, target=HOSTILE,
                   location=Location(path=HOSTILE, layer=APP), fix=HOSTILE,
                   details={"package": {"name": HOSTILE, "version": HOSTILE, "ecosystem": "npm"},
                            "url": "javascript:alert(3)", "aliases": [HOSTILE]})
    misconf = Finding(kind="misconfiguration", rule_id="HG-1", severity=Severity.LOW, title=HOSTILE,
                      evidence=HOSTILE, fix=HOSTILE, location=Location(path=HOSTILE, line=2))
    page = _html(ScanResult(artifact=Artifact(name=HOSTILE, type="registry"), layers=layers,
                            findings=[vuln, misconf], warnings=[HOSTILE], os=None))
    parsed = _parse(page)
    assert len(parsed.scripts) == 1  # only ours
    assert not [t for t, _ in parsed.tags if t == "img"]
    assert not any(k.startswith("on") for _, attrs in parsed.tags for k in attrs)
    assert "javascript:" not in " ".join(str(v) for _, attrs in parsed.tags for v in attrs.values())
    assert "&lt;script&gt;" in page


def test_http_links_kept() -> None:
    f = Finding(kind="vulnerability", rule_id="GHSA-1", severity=Severity.MEDIUM,
                details={"url": "https://osv.dev/vulnerability/GHSA-1?a=1&b=2"})
    page = _html(ScanResult(artifact=Artifact(name="x", type="registry"), findings=[f]))
    assert '<a href="https://osv.dev/vulnerability/GHSA-1?a=1&amp;b=2" rel="noopener noreferrer">GHSA-1</a>' in page


def test_empty() -> None:
    page = _html(ScanResult(artifact=Artifact(name="scratch", type="registry")))
    assert "<p>No findings.</p>" in page
    assert "<table" not in page and 'type="checkbox"' not in page
    assert re.search(r"<b>0</b> vulnerabilities", page)
