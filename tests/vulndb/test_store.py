"""The same assertions against SQLite and a real PostgreSQL (see conftest.store)."""

from __future__ import annotations

import json
import sqlite3

import pytest

from hullguard.vulndb.osv import parse
from hullguard.vulndb.store import CARD_DECODER, SCHEMA_VERSION, ImportStats, SQLiteStore, Store, StoreError

from .records import V3_CRITICAL, fixed, record


def _advs(*recs: dict) -> list:
    return [parse(json.dumps(r)) for r in recs]


def test_import_and_indexed_lookup(store: Store) -> None:
    recs = _advs(
        record("GHSA-1", "PyPI", "Flask_Login", fixed("0.6.3"), aliases=["CVE-2024-1"],
               severity=[{"type": "CVSS_V3", "score": V3_CRITICAL}], database_specific={"severity": "HIGH"}),
        record("GHSA-2", "npm", "@Scope/Pkg", fixed("1.0.0")),
        record("DSA-1", "Debian:12", "openssl", fixed("3.0.11-1~deb12u1"),
               ecosystem_specific={"urgency": "high", "imports": [{"x": 1}]}),
    )
    stats = store.replace_source("test", recs)
    assert stats.records == 3
    rows = store.lookup("PyPI", ["flask-login", "FLASK.LOGIN"])
    assert [r.advisory_id for r in rows] == ["GHSA-1"]
    assert rows[0].ranges == [["ECOSYSTEM", [["introduced", "0"], ["fixed", "0.6.3"]]]]
    assert [r.advisory_id for r in store.lookup("npm", ["@scope/pkg"])] == ["GHSA-2"]
    deb = store.lookup("Debian", ["openssl"])
    assert deb[0].release == "12"
    assert deb[0].specific == {"urgency": "high"}  # lists of symbols are not kept
    assert store.lookup("PyPI", ["openssl"]) == []
    adv = store.advisories(["GHSA-1", "missing"], details=True)
    assert list(adv) == ["GHSA-1"]
    assert adv["GHSA-1"].aliases == ["CVE-2024-1"]
    assert adv["GHSA-1"].db_severity == "HIGH"
    assert adv["GHSA-1"].severity == [["CVSS_V3", V3_CRITICAL]]
    assert store.by_alias(["CVE-2024-1"]) == {"CVE-2024-1": ["GHSA-1"]}


def test_large_batched_lookup(store: Store) -> None:
    recs = _advs(*(record(f"X-{i}", "npm", f"pkg{i}", fixed("1.0.0")) for i in range(1500)))
    store.replace_source("npm", recs)
    rows = store.lookup("npm", [f"pkg{i}" for i in range(0, 1500, 2)] + ["absent"])
    assert len(rows) == 750


def test_replace_source_drops_old_rows_and_orphans(store: Store) -> None:
    store.replace_source("PyPI", _advs(record("A", "PyPI", "a", fixed("1")), record("B", "PyPI", "b", fixed("1"),
                                                                                   aliases=["CVE-2020-1"])))
    store.replace_source("PyPI", _advs(record("A", "PyPI", "a", fixed("2"))))
    assert store.lookup("PyPI", ["a"])[0].ranges[0][1][1] == ["fixed", "2"]
    assert store.lookup("PyPI", ["b"]) == []
    assert store.advisories(["B"]) == {}
    assert store.by_alias(["CVE-2020-1"]) == {}


def test_only_ecosystem_filters_affected_and_shared_advisory_survives(store: Store) -> None:
    both = record("GHSA-X", "PyPI", "a", fixed("1"))
    both["affected"].append({"package": {"ecosystem": "npm", "name": "a"},
                             "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}]}]})
    store.replace_source("PyPI", _advs(both), only_ecosystem="PyPI")
    store.replace_source("npm", _advs(both), only_ecosystem="npm")
    assert len(store.lookup("PyPI", ["a"])) == 1 and len(store.lookup("npm", ["a"])) == 1
    store.replace_source("npm", [], only_ecosystem="npm")
    assert store.lookup("npm", ["a"]) == []
    assert "GHSA-X" in store.advisories(["GHSA-X"])  # still listed by the PyPI archive


def test_release_qualified_source(store: Store) -> None:
    rec = record("DSA-2", "Debian:11", "curl", fixed("7.74.0-1.3+deb11u9"))
    rec["affected"].append({"package": {"ecosystem": "Debian:12", "name": "curl"},
                            "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "7.88.1-10"}]}]})
    store.replace_source("Debian:12", _advs(rec), only_ecosystem="Debian:12")
    assert [r.release for r in store.lookup("Debian", ["curl"])] == ["12"]


def test_failed_source_rolls_back(store: Store) -> None:
    store.replace_source("PyPI", _advs(record("A", "PyPI", "a", fixed("1"))))

    def broken():
        yield parse(json.dumps(record("B", "PyPI", "b", fixed("1"))))
        raise RuntimeError("archive died")

    try:
        store.replace_source("PyPI", broken())
    except RuntimeError:
        pass
    assert [r.advisory_id for r in store.lookup("PyPI", ["a", "b"])] == ["A"]


def test_source_state_and_status(store: Store) -> None:
    stats = ImportStats(source="Alpine")
    stats.skip("bad.json: broken")
    store.replace_source("Alpine", _advs(record("ALPINE-1", "Alpine:v3.19", "busybox", fixed("1.36.1-r16")),
                                         record("ALPINE-2", "Alpine:v3.18", "busybox", fixed("1.36.1-r6"),
                                                withdrawn="2024-01-01T00:00:00Z")),
                         stats, url="http://127.0.0.1/x", etag='"abc"', last_modified="Mon, 01 Jan 2024 00:00:00 GMT")
    st = store.source_state("Alpine")
    assert st is not None and st.etag == '"abc"' and st.records == 2 and st.skipped == 1
    assert store.source_state("nothing") is None
    status = store.status()
    assert status["schema_version"] == SCHEMA_VERSION
    assert status["advisories"] == 2 and status["withdrawn"] == 1
    assert {e["ecosystem"] for e in status["ecosystems"]} == {"Alpine:v3.18", "Alpine:v3.19"}
    assert status["sources"][0]["name"] == "Alpine"


def test_epss_and_kev(store: Store) -> None:
    assert store.set_epss([("CVE-2024-1", 0.5, 0.9), ("CVE-2024-2", 0.01, 0.2)], "2024-05-01", "v2023.03.01") == 2
    assert store.epss(["CVE-2024-1", "CVE-2099-9"]) == {"CVE-2024-1": (0.5, 0.9, "2024-05-01")}
    store.set_kev([{"cve": "CVE-2024-2", "date_added": "2024-02-01", "due_date": "2024-02-22",
                    "ransomware": "Known"}], "2024.05.01", "2024-05-01")
    kev = store.kev(["CVE-2024-2", "CVE-2024-1"])
    assert kev["CVE-2024-2"]["ransomware"] == "Known" and "CVE-2024-1" not in kev
    # A second load replaces the first.
    store.set_epss([("CVE-2024-3", 0.2, 0.5)], "2024-05-02")
    assert store.epss(["CVE-2024-1", "CVE-2024-3"]) == {"CVE-2024-3": (0.2, 0.5, "2024-05-02")}
    st = store.status()
    assert st["epss"]["date"] == "2024-05-02" and st["kev"]["count"] == 1


def test_staged_swap_keeps_data(store: Store) -> None:
    store.replace_source("A", _advs(record("A-1", "PyPI", "a", fixed("1"))))
    with store.staged() as target:
        target.replace_source("B", _advs(record("B-1", "PyPI", "b", fixed("1"))))
    assert {r.advisory_id for r in store.lookup("PyPI", ["a", "b"])} == {"A-1", "B-1"}


def test_staged_failure_discards_everything(store: Store, tmp_path) -> None:
    store.replace_source("A", _advs(record("A-1", "PyPI", "a", fixed("1"))))
    try:
        with store.staged() as target:
            target.replace_source("A", _advs(record("A-2", "PyPI", "a", fixed("2"))))
            raise KeyboardInterrupt
    except KeyboardInterrupt:
        pass
    if store.url.startswith("postgresql"):
        # PostgreSQL commits per source: the finished source stays, nothing half-written does.
        assert {r.advisory_id for r in store.lookup("PyPI", ["a"])} == {"A-2"}
    else:
        assert {r.advisory_id for r in store.lookup("PyPI", ["a"])} == {"A-1"}
        leftovers = [p.name for p in (tmp_path / "db").iterdir() if ".tmp-" in p.name]
        assert leftovers == []


def test_card_holds_what_findings_show(store: Store) -> None:
    refs = [{"type": "WEB", "url": f"https://example.test/{i}"} for i in range(12)]
    full = record("GHSA-C", "PyPI", "a", fixed("1"), aliases=["PYSEC-1", "CVE-2024-9999", "CVE-2023-1234"],
                  severity=[{"type": "CVSS_V3", "score": V3_CRITICAL}], database_specific={"severity": "MODERATE"},
                  withdrawn="2024-02-02T00:00:00Z")
    full["references"] = refs
    terse = record("DLA-9", "Debian:12", "b", fixed("1"))
    terse["summary"], terse["details"] = "", "First sentence here. Second one."
    bare = record("GHSA-N", "npm", "c", fixed("1"))
    del bare["summary"]
    recs = _advs(full, terse, bare)
    store.replace_source("test", recs)
    rows = {r[0]: (r[1], CARD_DECODER.decode(r[2])) for r in store.advisory_cards(["GHSA-C", "DLA-9", "GHSA-N", "Z"])}
    assert set(rows) == {"GHSA-C", "DLA-9", "GHSA-N"}
    sev, card = rows["GHSA-C"]
    assert json.loads(sev) == [["CVSS_V3", V3_CRITICAL]]
    assert card.aliases == ["CVE-2023-1234", "CVE-2024-9999", "PYSEC-1"]  # CVEs first
    assert card.cves == ["CVE-2024-9999", "CVE-2023-1234"]  # in the record's order
    assert card.references == [f"https://example.test/{i}" for i in range(12)]
    assert card.reference_types == ["WEB"] * 12
    row = store.advisories(["GHSA-C"])["GHSA-C"]
    assert row.references[11] == ("WEB", "https://example.test/11") and row.summary == "test advisory GHSA-C"
    assert card.db_severity == "MODERATE" and card.withdrawn == "2024-02-02T00:00:00Z"
    assert rows["DLA-9"][0] is None and rows["DLA-9"][1].title == "First sentence here"
    assert rows["GHSA-N"][1].title == "GHSA-N"  # no summary, details or alias: the id


def test_older_schema_is_refused_with_a_clear_error(tmp_path) -> None:
    path = tmp_path / "old.db"
    SQLiteStore(str(path)).close()
    conn = sqlite3.connect(path)
    conn.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match=f"schema version 1, this hullguard reads version {SCHEMA_VERSION}"):
        SQLiteStore(str(path), create=False)
