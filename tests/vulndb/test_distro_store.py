"""What the store keeps of the real distro records in tests/vulndb/distro_records."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from hullguard.vulndb.importer import import_path
from hullguard.vulndb.store import SQLiteStore, Store

RECORDS = Path(__file__).resolve().parent / "distro_records"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = SQLiteStore(str(tmp_path / "hullguard.db"))
    import_path(s, RECORDS)
    try:
        yield s
    finally:
        s.close()


def test_every_record_imports(store: Store) -> None:
    st = store.status()
    assert st["advisories"] == len(list(RECORDS.glob("*.json"))) and st["sources"][0]["skipped"] == 0
    ecosystems = {e["ecosystem"] for e in st["ecosystems"]}
    assert {"Debian:9", "Ubuntu:22.04:LTS", "Ubuntu:Pro:20.04:LTS", "Alpine:v3.19", "AlmaLinux:9",
            "Rocky Linux:9"} <= ecosystems


def test_usn_priority_is_lifted_from_the_cves_map(store: Store) -> None:
    (row,) = [r for r in store.lookup("Ubuntu", ["glibc"]) if r.advisory_id == "USN-8611-1"]
    # Nested under database_specific.cves_map (dropped as a non-scalar); the highest priority is kept.
    assert row.specific["ubuntu_priority"] == "medium"
    assert row.specific["availability"] == "No subscription required"
    assert "cves_map" not in row.specific


def test_cves_from_upstream_and_titles_from_details(store: Store) -> None:
    advs = store.advisories(["ALPINE-CVE-2025-26519", "DLA-3008-1", "USN-8611-1", "ALSA-2022:6224"])
    assert advs["ALPINE-CVE-2025-26519"].aliases == ["CVE-2025-26519"]
    assert advs["DLA-3008-1"].aliases == ["CVE-2022-1292", "DEBIAN-CVE-2022-1292"]
    assert advs["USN-8611-1"].aliases[:2] == ["CVE-2026-4046", "CVE-2026-4437"]
    assert len(advs["ALSA-2022:6224"].aliases) == 5
    # Alpine's record has no summary: its first sentence, cut at a word, is the title.
    title = advs["ALPINE-CVE-2025-26519"].summary
    assert title.startswith("musl libc 0.9.13 through 1.2.5") and title.endswith("…") and len(title) <= 101
    # A record's own summary is kept as written.
    assert advs["DLA-3008-1"].summary == "openssl - security update"
    # The CVE ids find the distro advisories through the alias table.
    assert sorted(store.by_alias(["CVE-2022-1292"])["CVE-2022-1292"]) == ["ALSA-2022:6224", "DLA-3008-1"]
