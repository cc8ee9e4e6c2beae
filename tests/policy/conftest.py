"""Findings shaped like the ones detect.vulns and the secret scanner emit."""

from __future__ import annotations

import pytest

from hullguard.model import Finding, Location, Severity


def vuln(
    rule_id: str = "GHSA-aaaa-bbbb-cccc",
    aliases: tuple[str, ...] = ("CVE-2024-0001",),
    name: str = "openssl",
    version: str = "3.0.11-1~deb12u2",
    purl: str = "pkg:deb/debian/openssl@3.0.11-1~deb12u2?arch=amd64&distro=debian-12",
    path: str = "var/lib/dpkg/status",
) -> Finding:
    return Finding(
        kind="vulnerability",
        rule_id=rule_id,
        severity=Severity.HIGH,
        target=f"deb:{name}@{version}#{path}",
        location=Location(path=path, layer="sha256:abc"),
        details={
            "aliases": list(aliases),
            "package": {"name": name, "version": version, "ecosystem": "deb", "purl": purl},
        },
    )


def secret(rule_id: str = "HG-aws-access-key", path: str = "app/config/settings.py") -> Finding:
    return Finding(kind="secret", rule_id=rule_id, severity=Severity.CRITICAL, target=path,
                   location=Location(path=path))


@pytest.fixture
def write(tmp_path):
    def _write(name: str, text: str):
        p = tmp_path / name
        p.write_text(text)
        return p

    return _write
