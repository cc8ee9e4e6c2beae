"""The per-layer upgrade summary and the not-checked list, as every human format shows them."""

from __future__ import annotations

import json

import pytest

from hullguard.detect.vulns import layer_roles, summary
from hullguard.model import Artifact, Finding, Layer, Location, OSInfo, Package, ScanResult, Severity
from hullguard.report import html, markdown, table
from hullguard.report import json as json_report

BASE = "sha256:" + "b" * 64
APP = "sha256:" + "c" * 64


def _vuln(rule: str, name: str, version: str, eco: str, fix: str, layer: str) -> Finding:
    return Finding(kind="vulnerability", rule_id=rule, severity=Severity.HIGH, fix=fix, title=f"flaw {rule}",
                   target=f"{eco}:{name}@{version}#p", location=Location(path="p", layer=layer),
                   details={"package": {"name": name, "version": version, "ecosystem": eco}, "status": "fixed"})


@pytest.fixture
def result() -> ScanResult:
    history = [{"created_by": "/bin/sh -c #(nop) ADD file:rootfs in / "},
               {"created_by": '/bin/sh -c #(nop)  CMD ["bash"]', "empty_layer": True},
               {"created_by": "RUN npm ci # buildkit"}]
    return ScanResult(
        artifact=Artifact(name="demo<app>", type="docker-archive", history=history,
                          config={"Labels": {"org.opencontainers.image.base.name": "docker.io/library/debian:12"}}),
        os=OSInfo(family="debian", release="12", name="Debian GNU/Linux 12 (bookworm)"),
        layers=[Layer(digest=BASE, created_by=history[0]["created_by"]),
                Layer(digest=APP, created_by=history[2]["created_by"])],
        packages=[Package(name="libssl3", version="3.0.11-1~deb12u1", ecosystem="deb",
                          locations=[Location(path="var/lib/dpkg/status", layer=BASE)]),
                  Package(name="qs", version="6.7.0", ecosystem="npm",
                          locations=[Location(path="srv/node_modules/qs/package.json", layer=APP)]),
                  Package(name="odd|pkg", version="???", ecosystem="pypi",
                          metadata={"vulnerabilities": "not checked: unparsable PyPI version: '???'"},
                          locations=[Location(path="srv/odd.dist-info/METADATA", layer=APP)])],
        findings=[_vuln("DSA-1", "libssl3", "3.0.11-1~deb12u1", "deb", "3.0.11-1~deb12u2", BASE),
                  _vuln("DSA-2", "libssl3", "3.0.11-1~deb12u1", "deb", "3.0.13-1~deb12u1", BASE),
                  _vuln("GHSA-q", "qs", "6.7.0", "npm", "6.7.3", APP)],
    )


def test_roles_of_the_fixture(result: ScanResult) -> None:
    assert layer_roles(result) == {BASE: "base", APP: "application"}


def test_table(result: ScanResult) -> None:
    text = table.render(result).decode()
    s = summary(result.findings, layer_roles(result))
    base, app = s["by_layer"]
    assert f"Base image (docker.io/library/debian:12): {base['total']} vulnerabilities, {base['fixable']} fixable" \
        in text
    assert f"Application: {app['total']} vulnerabilities, {app['fixable']} fixable" in text
    lines = text.splitlines()
    base_at = next(i for i, line in enumerate(lines) if line.strip().startswith("Base image"))
    app_at = next(i for i, line in enumerate(lines) if line.strip().startswith("Application:"))
    # Each upgrade sits under its own layer role, the highest lowest fix of the package's findings.
    assert lines[base_at + 1].strip() == "upgrade libssl3 3.0.11-1~deb12u1 to 3.0.13-1~deb12u1: fixes 2"
    assert lines[app_at + 1].strip() == "upgrade qs 6.7.0 to 6.7.3: fixes 1"
    assert "ROLE" in text and any(line.split()[:3] == ["1", "b" * 12, "base"] for line in lines)
    assert "Not checked for vulnerabilities (1)" in text
    assert any("odd|pkg" in line and "unparsable PyPI version" in line for line in lines)


def test_markdown(result: ScanResult) -> None:
    md = markdown.render(result).decode()
    assert "**Base image (docker.io/library/debian:12):** 2 vulnerabilities, 2 fixable" in md
    assert "- upgrade libssl3 3.0.11-1\\~deb12u1 → **3.0.13-1\\~deb12u1** (fixes 2 vulnerabilities)" in md
    assert "**Application:** 1 vulnerabilities, 1 fixable" in md
    assert md.index("**Base image") < md.index("upgrade libssl3") < md.index("**Application:**") \
        < md.index("upgrade qs")
    assert "**Not checked:** 1 package" in md
    # The pipe in the package name must not split the table row.
    assert "| odd\\|pkg | ??? | pypi |" in md


def test_html(result: ScanResult) -> None:
    page = html.render(result).decode()
    assert '<h3 class="layer">Base image (docker.io/library/debian:12): 2 vulnerabilities, 2 fixable</h3>' in page
    assert "<li>upgrade qs 6.7.0 &rarr; <b>6.7.3</b> (fixes 1)</li>" in page
    assert "<h2>Not checked (1)</h2>" in page and "<td>odd|pkg</td>" in page
    assert "demo&lt;app&gt;" in page and "demo<app>" not in page


def test_json(result: ScanResult) -> None:
    doc = json.loads(json_report.render(result))
    s = doc["summary"]
    assert s == json.loads(json.dumps({**summary(result.findings, layer_roles(result)),
                                       "base_image": "docker.io/library/debian:12",
                                       "not_checked": s["not_checked"]}))
    assert [g["layer"] for g in s["by_layer"]] == ["base", "application"]
    assert s["not_checked"] == [{"package": "odd|pkg", "version": "???", "ecosystem": "pypi",
                                 "reason": "unparsable PyPI version: '???'"}]
    # The rest of the document is still the ScanResult as it was.
    assert doc["packages"][2]["metadata"]["vulnerabilities"].startswith("not checked")
    assert [f["rule_id"] for f in doc["findings"]] == ["DSA-1", "DSA-2", "GHSA-q"]


def test_json_without_packages_or_vulnerabilities_has_no_summary() -> None:
    doc = json.loads(json_report.render(ScanResult(artifact=Artifact(name="k8s.yaml", type="config"))))
    assert "summary" not in doc


def test_demo_image_summary_end_to_end(tmp_path, monkeypatch, capsys) -> None:
    from pathlib import Path

    from hullguard.cli.main import main

    demo = Path(__file__).resolve().parents[2] / "demo"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv("HULLGUARD_DB", raising=False)
    monkeypatch.delenv("HULLGUARD_CACHE_DIR", raising=False)
    assert main(["image", str(demo / "hullguard-demo.tar"), "-q", "-f", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    spec = json.loads((demo / "layers.json").read_text())
    # demo/build.py: the first layer imports the Debian root filesystem, the rest is the application.
    assert spec["layers"][0]["created_by"].strip().endswith("in /")
    digests = [layer["digest"] for layer in doc["layers"]]
    groups = {g["layer"]: g for g in doc["summary"]["by_layer"]}
    assert groups["base"]["layers"] == digests[:1] and groups["application"]["layers"] == digests[1:]
    for role, layers in (("base", digests[:1]), ("application", digests[1:])):
        mine = [f for f in doc["findings"] if f["kind"] == "vulnerability" and f["location"]["layer"] in layers]
        assert groups[role]["total"] == len(mine)
        assert groups[role]["fixable"] == sum(1 for f in mine if f.get("fix"))
        fixable = {(f["details"]["package"]["name"], f["details"]["package"]["version"], f["rule_id"])
                   for f in mine if f.get("fix")}
        assert sum(u["fixes"] for u in groups[role]["upgrades"]) == len(fixable)
    assert groups["application"]["total"] > 0
    assert doc["summary"]["total"] == len([f for f in doc["findings"] if f["kind"] == "vulnerability"])
