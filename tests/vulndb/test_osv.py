from __future__ import annotations

import json

import pytest

from hullguard.vulndb.osv import OSVError, normalize_name, parse, split_ecosystem

from .records import V3_CRITICAL, fixed, record


def test_full_record_fields() -> None:
    doc = {
        "schema_version": "1.6.0",
        "id": "DSA-0001-1",
        "modified": "2024-02-01T00:00:00Z",
        "published": "2024-01-01T00:00:00Z",
        "aliases": ["CVE-2024-0001"],
        "related": ["DEBIAN-CVE-2024-0001"],
        "upstream": ["CVE-2024-0002"],
        "summary": "s",
        "details": "d",
        "severity": [{"type": "CVSS_V3", "score": V3_CRITICAL}, {"type": "Ubuntu", "score": "medium"}],
        "affected": [{
            "package": {"ecosystem": "Debian:12", "name": "openssl", "purl": "pkg:deb/debian/openssl"},
            "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "3.0.11-1~deb12u1"}]},
                       {"type": "GIT", "repo": "https://example.invalid/r", "events": [{"introduced": "abc"}]}],
            "versions": ["3.0.9-1"],
            "ecosystem_specific": {"urgency": "high", "imports": [{"path": "x"}]},
            "database_specific": {"source": "https://example.invalid"},
        }],
        "references": [{"type": "ADVISORY", "url": "https://example.invalid/a"}, {"type": "WEB"}],
        "database_specific": {"severity": "HIGH"},
    }
    adv = parse(json.dumps(doc))
    assert adv.id == "DSA-0001-1" and adv.published.startswith("2024-01-01")
    assert adv.aliases == ("CVE-2024-0001",) and adv.related == ("DEBIAN-CVE-2024-0001",)
    assert adv.severity == (("CVSS_V3", V3_CRITICAL), ("Ubuntu", "medium"))
    a = adv.affected[0]
    assert (a.base, a.release, a.name_norm) == ("Debian", "12", "openssl")
    assert a.ranges[0].events == (("introduced", "0"), ("fixed", "3.0.11-1~deb12u1"))
    assert a.ranges[1].type == "GIT"
    assert a.versions == ("3.0.9-1",)
    assert a.ecosystem_specific["urgency"] == "high"
    assert adv.references == (("ADVISORY", "https://example.invalid/a"),)
    assert adv.database_specific["severity"] == "HIGH"
    assert adv.cves() == ["CVE-2024-0001", "CVE-2024-0002"]


def test_cve_from_distro_id() -> None:
    adv = parse(json.dumps(record("DEBIAN-CVE-2023-12345", "Debian:12", "curl", fixed("1"))))
    assert adv.cves() == ["CVE-2023-12345"]


def test_unknown_fields_are_ignored() -> None:
    doc = record("X-1", "PyPI", "a", fixed("1.0"))
    doc["credits"] = [{"name": "someone"}]
    doc["affected"][0]["new_field"] = {"x": 1}
    assert parse(json.dumps(doc)).id == "X-1"


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d.pop("id"), "no id"),
    (lambda d: d.pop("modified"), "modified"),
    (lambda d: d.update(id=5), "not an OSV record"),
    (lambda d: d["affected"][0].pop("package"), "without package"),
    (lambda d: d["affected"][0]["package"].pop("name"), "without package"),
    (lambda d: d["affected"][0]["ranges"][0].update(type="DATE"), "unknown range type"),
    (lambda d: d["affected"][0]["ranges"][0].update(events=[{"fixed": "1"}]), "at least one introduced"),
    (lambda d: d["affected"][0]["ranges"][0].update(events=[{"introduced": "0", "fixed": "1"}]), "exactly one"),
    (lambda d: d["affected"][0]["ranges"][0].update(events=[{"introduced": "0"}, {}]), "exactly one"),
    (lambda d: d["affected"][0]["ranges"][0].update(events=[{"introduced": ""}]), "empty"),
    (lambda d: d.update(aliases="CVE-1"), "not an OSV record"),
    (lambda d: d["affected"][0].update(versions=[1, 2]), "not an OSV record"),
])
def test_malformed_records_raise(mutate, message: str) -> None:
    doc = record("GHSA-aaaa-bbbb-cccc", "PyPI", "x", fixed("1.0"))
    mutate(doc)
    with pytest.raises(OSVError, match=message):
        parse(json.dumps(doc))


@pytest.mark.parametrize("data", [b"", b"not json", b"[]", b"null", b"{", "\u00ff".encode("latin-1")])
def test_garbage_raises_osverror(data: bytes) -> None:
    with pytest.raises(OSVError):
        parse(data)


def test_oversized_record() -> None:
    with pytest.raises(OSVError, match="limit"):
        parse(b" " * (16 * 1024 * 1024 + 1))


@pytest.mark.parametrize("eco, name, norm", [
    ("PyPI", "Flask_SQLAlchemy", "flask-sqlalchemy"),
    ("PyPI", "zope.interface", "zope-interface"),
    ("PyPI", "Jinja2", "jinja2"),
    ("npm", "@Babel/Core", "@babel/core"),
    ("Maven", "org.apache.logging.log4j:log4j-core", "org.apache.logging.log4j:log4j-core"),
    ("Go", "github.com/BurntSushi/toml", "github.com/BurntSushi/toml"),
    ("NuGet", "Newtonsoft.Json", "newtonsoft.json"),
    ("Packagist", "Symfony/HTTP-Kernel", "symfony/http-kernel"),
    ("Debian:12", "openssl", "openssl"),
    ("Alpine:v3.19", "busybox", "busybox"),
])
def test_normalize_name(eco: str, name: str, norm: str) -> None:
    assert normalize_name(eco, name) == norm


@pytest.mark.parametrize("eco, parts", [
    ("Debian:12", ("Debian", "12")),
    ("Ubuntu:22.04:LTS", ("Ubuntu", "22.04:LTS")),
    ("Alpine:v3.19", ("Alpine", "v3.19")),
    ("Red Hat:enterprise_linux:9::appstream", ("Red Hat", "enterprise_linux:9::appstream")),
    ("PyPI", ("PyPI", "")),
])
def test_split_ecosystem(eco: str, parts: tuple[str, str]) -> None:
    assert split_ecosystem(eco) == parts
