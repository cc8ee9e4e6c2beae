"""The bundled snapshot: real records that import cleanly and find the demo's vulnerabilities."""

from __future__ import annotations

import os
import sqlite3

import pytest

from hullguard.detect.vulns import match
from hullguard.model import Artifact, Package, ScanResult
from hullguard.vulndb import open_for_scan
from hullguard.vulndb.importer import import_path, snapshot_dir, snapshot_fingerprint
from hullguard.vulndb.store import SCHEMA_VERSION, SchemaMismatch, SQLiteStore


def test_snapshot_imports_without_skips(tmp_path) -> None:
    store = SQLiteStore(str(tmp_path / "hg.db"))
    stats = import_path(store, snapshot_dir(), "snapshot")
    assert stats.skipped == 0 and stats.records >= 8


def test_first_use_bootstraps_from_snapshot(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv("HULLGUARD_CACHE_DIR", raising=False)
    monkeypatch.delenv("HULLGUARD_DB", raising=False)
    store = open_for_scan()
    assert os.path.exists(tmp_path / "hullguard" / "db" / "hullguard.db")
    demo = [Package(name="requests", version="2.25.1", ecosystem="pypi"),
            Package(name="urllib3", version="1.26.4", ecosystem="pypi"),
            Package(name="Jinja2", version="2.11.2", ecosystem="pypi"),
            Package(name="Flask", version="1.1.2", ecosystem="pypi"),
            Package(name="lodash", version="4.17.15", ecosystem="npm"),
            Package(name="minimist", version="1.2.0", ecosystem="npm"),
            Package(name="express", version="4.17.1", ecosystem="npm"),
            Package(name="Werkzeug", version="1.0.1", ecosystem="pypi"),
            Package(name="idna", version="2.10", ecosystem="pypi"),
            Package(name="certifi", version="2020.12.5", ecosystem="pypi"),
            Package(name="qs", version="6.7.0", ecosystem="npm"),
            Package(name="body-parser", version="1.19.0", ecosystem="npm"),
            Package(name="send", version="0.17.1", ecosystem="npm"),
            Package(name="serve-static", version="1.14.1", ecosystem="npm"),
            Package(name="path-to-regexp", version="0.1.7", ecosystem="npm"),
            Package(name="cookie", version="0.4.0", ecosystem="npm"),
            # Outside every range of its advisory (qs 6.7.x is fixed from 6.7.3 on).
            Package(name="qs", version="6.7.3", ecosystem="npm", found_by="fixed one"),
            Package(name="requests", version="2.32.3", ecosystem="pypi", found_by="fixed one")]
    rep = match(ScanResult(artifact=Artifact(name="demo", type="sbom"), packages=demo), store)
    got = {(f.details["package"]["name"], f.rule_id, f.fix) for f in rep.findings}
    assert got == {
        ("requests", "GHSA-j8r2-6x86-q33q", "2.31.0"),
        ("requests", "GHSA-9wx4-h78v-vm56", "2.32.2"),
        ("urllib3", "GHSA-v845-jxx5-vc9f", "1.26.17"),
        ("Jinja2", "GHSA-h5c8-rqwp-cp95", "3.1.3"),
        ("Flask", "GHSA-m2qf-hxjv-5gpq", "2.2.5"),
        ("lodash", "GHSA-35jh-r3h4-6jhm", "4.17.21"),
        ("minimist", "GHSA-xvch-5gv4-984h", "1.2.6"),
        ("express", "GHSA-rv95-896h-c2vc", "4.19.2"),
        ("Werkzeug", "GHSA-px8h-6qxv-m22q", "2.2.3"),
        ("Werkzeug", "GHSA-2g68-c3qc-8985", "3.0.3"),
        ("idna", "GHSA-jjg7-2v4v-x38h", "3.7"),
        ("certifi", "GHSA-xqr8-7jwr-rhp7", "2023.07.22"),
        ("qs", "GHSA-hrpp-h998-j3pp", "6.7.3"),
        ("body-parser", "GHSA-qwcr-r2fm-qrc7", "1.20.3"),
        ("send", "GHSA-m6fv-jmcg-4jfg", "0.19.0"),
        ("serve-static", "GHSA-cm22-4g7w-348p", "1.16.0"),
        ("path-to-regexp", "GHSA-9wv6-86v2-598j", "0.1.10"),
        ("cookie", "GHSA-pxg6-pf52-xh8x", "0.7.0"),
    }
    # cookie's record carries no vector, only GitHub's word (LOW): that is the severity shown.
    assert all(f.details["cvss"]["score"] > 0 for f in rep.findings if f.rule_id != "GHSA-pxg6-pf52-xh8x")
    cookie = next(f for f in rep.findings if f.rule_id == "GHSA-pxg6-pf52-xh8x")
    assert cookie.severity.name == "LOW" and cookie.details["severity_source"] == "database"
    # Second use reads the existing file instead of importing again.
    assert open_for_scan().status()["sources"][0]["name"] == "snapshot"


def _old_cache(tmp_path, monkeypatch) -> str:
    """A cache database built by an earlier release, whose snapshot held one record only."""
    import shutil

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv("HULLGUARD_CACHE_DIR", raising=False)
    monkeypatch.delenv("HULLGUARD_DB", raising=False)
    old = tmp_path / "old-snapshot"
    old.mkdir()
    shutil.copy(os.path.join(snapshot_dir(), "github", "npm", "GHSA-xvch-5gv4-984h.json"), old)
    path = tmp_path / "hullguard" / "db" / "hullguard.db"
    store = SQLiteStore(str(path))
    import_path(store, str(old), "snapshot", etag=snapshot_fingerprint(str(old)))
    store.close()
    return str(path)


def test_cache_built_from_an_older_snapshot_is_refreshed(tmp_path, monkeypatch) -> None:
    _old_cache(tmp_path, monkeypatch)
    bundled = import_path(SQLiteStore(":memory:"), snapshot_dir(), "snapshot").records
    store = open_for_scan()
    assert store.status()["advisories"] == bundled > 1
    assert store.source_state("snapshot").etag == snapshot_fingerprint()


def test_cache_with_real_data_is_never_refreshed(tmp_path, monkeypatch) -> None:
    path = _old_cache(tmp_path, monkeypatch)
    store = SQLiteStore(path)
    import_path(store, os.path.join(snapshot_dir(), "github", "PyPI"), "local:mirror")
    before = store.status()["advisories"]
    store.close()
    assert open_for_scan().status()["advisories"] == before


def test_cache_of_another_schema_version_is_rebuilt(tmp_path, monkeypatch, capsys) -> None:
    path = _old_cache(tmp_path, monkeypatch)
    conn = sqlite3.connect(path)
    conn.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    conn.commit()
    conn.close()
    store = open_for_scan()
    assert store.status()["schema_version"] == SCHEMA_VERSION
    assert store.source_state("snapshot").etag == snapshot_fingerprint()
    assert "schema version 1" in capsys.readouterr().err


def test_explicit_database_of_another_schema_version_is_refused(tmp_path, monkeypatch) -> None:
    path = _old_cache(tmp_path, monkeypatch)
    conn = sqlite3.connect(path)
    conn.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    conn.commit()
    conn.close()
    with pytest.raises(SchemaMismatch, match="delete it and run 'hullguard db update'"):
        open_for_scan(path)
    assert os.path.exists(path)  # a database named on purpose is never deleted
