"""The advisory store: one schema, two backends (SQLite by default, PostgreSQL by URL).

Rows are kept compact because a full OSV mirror holds several hundred thousand advisories:
ranges, version lists and severities are msgspec-encoded JSON, what a finding shows of an
advisory is one msgpack :class:`Card`, long ``details`` text is zlib-compressed, and only the
scalar parts of ``ecosystem_specific``/``database_specific`` survive (Debian urgency, Ubuntu
priority, GHSA severity, fix states); the Go symbol tables and similar lists are of no use to
matching.

Matching reads ``affected`` through the (ecosystem, name) index only, in batches.

Updates go through :meth:`Store.staged`: on SQLite the new database is built in a temporary
copy next to the old file and swapped in with ``os.replace`` once every source is written, so
a crash or a failed download leaves the previous database as it was; on PostgreSQL each source
is replaced inside its own transaction.
"""

from __future__ import annotations

import contextlib
import os
import re
import sqlite3
import time
import uuid
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec

from hullguard.model import HullguardError
from hullguard.vulndb.osv import Advisory, normalize_name, split_ecosystem

# 2: the advisory's shown fields moved into one pre-built msgpack ``card`` (see Card).
SCHEMA_VERSION = 2
BATCH = 2000
_IN_CHUNK = 500

_ENC = msgspec.json.Encoder()
_DEC = msgspec.json.Decoder()

_TABLES = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sources (
  name TEXT PRIMARY KEY, url TEXT, etag TEXT, last_modified TEXT, updated_at TEXT,
  records INTEGER, skipped INTEGER);
CREATE TABLE IF NOT EXISTS advisories (
  id TEXT PRIMARY KEY, source TEXT NOT NULL, withdrawn TEXT, severity TEXT, card {blob} NOT NULL, details {blob});
CREATE TABLE IF NOT EXISTS affected (
  advisory_id TEXT NOT NULL, source TEXT NOT NULL, ecosystem TEXT NOT NULL, release TEXT NOT NULL,
  name TEXT NOT NULL, ranges TEXT, versions TEXT, specific TEXT, severity TEXT);
CREATE INDEX IF NOT EXISTS affected_pkg ON affected (ecosystem, name);
CREATE INDEX IF NOT EXISTS affected_source ON affected (source);
CREATE TABLE IF NOT EXISTS aliases (
  alias TEXT NOT NULL, advisory_id TEXT NOT NULL, PRIMARY KEY (alias, advisory_id));
CREATE TABLE IF NOT EXISTS epss (
  cve TEXT PRIMARY KEY, score DOUBLE PRECISION, percentile DOUBLE PRECISION, date TEXT);
CREATE TABLE IF NOT EXISTS kev (
  cve TEXT PRIMARY KEY, date_added TEXT, due_date TEXT, ransomware TEXT, vendor TEXT,
  product TEXT, name TEXT);
"""


class StoreError(HullguardError):
    """The database cannot be opened or has an incompatible schema."""


class SchemaMismatch(StoreError):
    """The database was written by a hullguard version with another schema."""

    def __init__(self, url: str, found: str) -> None:
        super().__init__(f"{url}: advisory database schema version {found}, this hullguard reads version "
                         f"{SCHEMA_VERSION}; delete it and run 'hullguard db update' (or 'db import') again")
        self.found = found


@dataclass
class ImportStats:
    source: str = ""
    records: int = 0
    skipped: int = 0
    errors: list[str] = field(default_factory=list)  # first few reasons, for the report
    seconds: float = 0.0

    def skip(self, reason: str) -> None:
        self.skipped += 1
        if len(self.errors) < 20:
            self.errors.append(reason)


class AffectedRow(msgspec.Struct, frozen=True):
    advisory_id: str
    ecosystem: str  # base name: "Debian", "PyPI"
    release: str  # "12", "22.04:LTS", ""
    name: str  # normalised
    ranges: list[tuple[str, list[tuple[str, str]]]]
    versions: list[str]
    specific: dict[str, Any]
    severity: list[tuple[str, str]]


class AdvisoryRow(msgspec.Struct, frozen=True):
    id: str
    modified: str
    published: str
    withdrawn: str
    summary: str  # the card's title
    aliases: list[str]  # CVEs first
    severity: list[tuple[str, str]]
    db_severity: str
    references: list[tuple[str, str]]
    details: str = ""


class Card(msgspec.Struct, array_like=True, frozen=True):
    """An advisory's shown fields, built once at import: matching decodes one msgpack value per
    advisory instead of several JSON columns, and the alias order and CVE ids are not worked out
    again on every scan. Severity stays a column of its own (its CVSS score is memoised by text)."""

    title: str  # the summary, else the first sentence of details, else the first alias, else the id
    aliases: list[str]  # shown aliases, CVEs first
    cves: list[str]  # CVE ids named by the id or the aliases, in that order
    db_severity: str
    published: str
    modified: str
    withdrawn: str
    references: list[str]  # URLs
    reference_types: list[str]  # the OSV type of each URL, in step with references


_CARD_ENC = msgspec.msgpack.Encoder()
CARD_DECODER = msgspec.msgpack.Decoder(Card)


def cves_first(adv_id: str, aliases: Iterable[str]) -> list[str]:
    if isinstance(aliases, list) and len(aliases) < 2:  # most records: one alias or none
        return [a for a in aliases if a != adv_id]
    names = list(dict.fromkeys(a for a in aliases if a != adv_id))
    return sorted(names, key=lambda a: (not a.startswith("CVE-"), a))


_CVE = re.compile(r"CVE-\d{4}-\d{4,}")


def cve_ids(adv_id: str, aliases: Iterable[str]) -> list[str]:
    out = []
    for a in (adv_id, *aliases):
        if "CVE-" not in a:
            continue
        m = _CVE.search(a)
        if m and m.group(0) not in out:
            out.append(m.group(0))
    return out


def _card(adv: Advisory) -> bytes:
    aliases = _shown_aliases(adv)
    shown = cves_first(adv.id, aliases)
    return _CARD_ENC.encode(Card(
        adv.summary or _headline(adv.details) or (shown[0] if shown else adv.id), shown, cve_ids(adv.id, aliases),
        _db_severity(adv), adv.published or "", adv.modified or "", adv.withdrawn or "",
        [url for _, url in adv.references], [kind for kind, _ in adv.references]))


@dataclass
class SourceState:
    name: str
    url: str = ""
    etag: str = ""
    last_modified: str = ""
    updated_at: str = ""
    records: int = 0
    skipped: int = 0


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _scalars(*dicts: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for d in dicts:
        for k, v in d.items():
            if isinstance(v, str | int | float | bool) and (not isinstance(v, str) or len(v) <= 200):
                out[k] = v
    return out


_UBUNTU_ORDER = ("negligible", "low", "medium", "high", "critical")


def _usn_priority(database_specific: dict[str, Any]) -> str:
    """The highest Ubuntu priority among the CVEs a USN fixes.

    USN records carry no top-level severity; each affected entry lists its CVEs with their
    priorities under ``database_specific.cves_map.cves[].severity[]`` (type "Ubuntu"), a nested
    shape the scalar-only ``specific`` column would otherwise drop.
    """
    cves_map = database_specific.get("cves_map")
    cves = cves_map.get("cves") if isinstance(cves_map, dict) else None
    best = -1
    for cve in cves if isinstance(cves, list) else ():
        sev = cve.get("severity") if isinstance(cve, dict) else None
        for item in sev if isinstance(sev, list) else ():
            if isinstance(item, dict) and item.get("type") == "Ubuntu" and item.get("score") in _UBUNTU_ORDER:
                best = max(best, _UBUNTU_ORDER.index(item["score"]))
    return _UBUNTU_ORDER[best] if best >= 0 else ""


def _specific(a: Any) -> dict[str, Any]:
    out = _scalars(a.ecosystem_specific, a.database_specific)
    if "ubuntu_priority" not in out and (priority := _usn_priority(a.database_specific)):
        out["ubuntu_priority"] = priority
    return out


def _shown_aliases(adv: Advisory) -> list[str]:
    # Distro feeds name the CVE in "upstream" (Debian, Ubuntu, Alpine) or "related" (newer
    # AlmaLinux records) rather than in "aliases"; findings show all of them, CVE first.
    names = (*adv.aliases, *adv.upstream, *(r for r in adv.related if r.startswith("CVE-")))
    return [a for a in dict.fromkeys(names) if a != adv.id]


def _headline(details: str, limit: int = 100) -> str:
    """A title for records that have only ``details`` (Alpine, Debian and Ubuntu CVE records):
    its first sentence, cut at a word boundary."""
    text = " ".join(details.split())
    if not text:
        return ""
    end = text.find(". ")
    text = text[:end] if end > 0 else text.rstrip(".")
    if len(text) <= limit:
        return text
    return text[:limit].rsplit(" ", 1)[0].rstrip(",;:") + "…"


def _db_severity(adv: Advisory) -> str:
    sev = adv.database_specific.get("severity")
    return sev if isinstance(sev, str) and len(sev) <= 40 else ""


def _rows(adv: Advisory, source: str, only: str | None) -> tuple[tuple[Any, ...], list[tuple[Any, ...]]]:
    affected = []
    for a in adv.affected:
        base, release = split_ecosystem(a.ecosystem)
        # "Debian" keeps every Debian release; "Debian:12" only that one.
        if only is not None and (a.ecosystem if ":" in only else base) != only:
            continue
        ranges = [(r.type, r.events) for r in a.ranges if r.type != "GIT"]
        affected.append((
            adv.id, source, base, release, normalize_name(base, a.name),
            _ENC.encode(ranges).decode() if ranges else None,
            _ENC.encode(a.versions).decode() if a.versions else None,
            _ENC.encode(sp).decode() if (sp := _specific(a)) else None,
            _ENC.encode(a.severity).decode() if a.severity else None,
        ))
    details = zlib.compress(adv.details.encode(), 6) if adv.details else None
    row = (adv.id, source, adv.withdrawn, _ENC.encode(adv.severity).decode() if adv.severity else None, _card(adv),
           details)
    return row, affected


def _aliases(adv: Advisory) -> list[tuple[str, str]]:
    names = dict.fromkeys((*_shown_aliases(adv), *adv.cves()))
    return [(a, adv.id) for a in names if a != adv.id]


def _json(text: str | None, default: Any) -> Any:
    return _DEC.decode(text) if text else default


class Store:
    """Shared SQL for both backends; subclasses supply the connection and dialect details."""

    url: str
    placeholder = "?"
    blob = "BLOB"

    # --- plumbing -------------------------------------------------------------------------

    def _sql(self, sql: str) -> str:
        return sql if self.placeholder == "?" else sql.replace("?", self.placeholder)

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    def _execmany(self, sql: str, rows: list[tuple[Any, ...]]) -> None:
        raise NotImplementedError

    def _exec(self, sql: str, params: Sequence[Any] = ()) -> None:
        raise NotImplementedError

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        raise NotImplementedError
        yield

    def _in(self, sql: str, values: Sequence[Any], prefix: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run ``sql`` (which holds one ``IN ({})``) for each chunk of ``values``."""
        out: list[tuple[Any, ...]] = []
        for i in range(0, len(values), _IN_CHUNK):
            chunk = list(values[i : i + _IN_CHUNK])
            out.extend(self._query(sql.format(",".join("?" * len(chunk))), [*prefix, *chunk]))
        return out

    def _create(self) -> None:
        for stmt in _TABLES.format(blob=self.blob).split(";"):
            if stmt.strip():
                self._exec(stmt)
        rows = self._query("SELECT value FROM meta WHERE key = 'schema_version'")
        if not rows:
            self._exec("INSERT INTO meta (key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
        elif rows[0][0] != str(SCHEMA_VERSION):
            raise SchemaMismatch(self.url, str(rows[0][0]))

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def staged(self) -> Iterator[Store]:
        """A store to write a whole update into; the default writes in place, per source."""
        yield self

    # --- writing --------------------------------------------------------------------------

    def replace_source(
        self,
        source: str,
        advisories: Iterable[Advisory],
        stats: ImportStats | None = None,
        *,
        only_ecosystem: str | None = None,
        url: str = "",
        etag: str = "",
        last_modified: str = "",
        replace: bool = True,
    ) -> ImportStats:
        """Replace everything ``source`` had with ``advisories``, in one transaction.

        ``only_ecosystem`` keeps only the affected entries of that base ecosystem (a GHSA
        record in PyPI's archive may also list npm packages, which npm's archive carries too).
        With ``replace=False`` the records are added to what the source already holds.
        """
        stats = stats or ImportStats(source=source)
        start = time.perf_counter()
        with self._transaction():
            old: list[str] = []
            if replace:
                old = [r[0] for r in self._query(
                    "SELECT DISTINCT advisory_id FROM affected WHERE source = ? "
                    "UNION SELECT id FROM advisories WHERE source = ?", (source, source))]
                self._exec("DELETE FROM affected WHERE source = ?", (source,))
            adv_rows: list[tuple[Any, ...]] = []
            aff_rows: list[tuple[Any, ...]] = []
            alias_rows: list[tuple[str, str]] = []
            for adv in advisories:
                row, aff = _rows(adv, source, only_ecosystem)
                adv_rows.append(row)
                aff_rows.extend(aff)
                alias_rows.extend(_aliases(adv))
                stats.records += 1
                if len(adv_rows) >= BATCH:
                    self._flush(adv_rows, aff_rows, alias_rows)
                    adv_rows, aff_rows, alias_rows = [], [], []
            self._flush(adv_rows, aff_rows, alias_rows)
            if old:
                self._drop_orphans(old, source)
            self._exec(self._upsert_source(), (source, url, etag, last_modified, _now(), stats.records,
                                               stats.skipped))
        stats.seconds = time.perf_counter() - start
        return stats

    def _upsert_source(self) -> str:
        return ("INSERT INTO sources (name, url, etag, last_modified, updated_at, records, skipped) "
                "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET url = excluded.url, "
                "etag = excluded.etag, last_modified = excluded.last_modified, "
                "updated_at = excluded.updated_at, records = excluded.records, skipped = excluded.skipped")

    def _flush(self, adv: list[tuple[Any, ...]], aff: list[tuple[Any, ...]], aliases: list[tuple[str, str]]) -> None:
        if adv:
            self._execmany(
                "INSERT INTO advisories (id, source, withdrawn, severity, card, details) VALUES (?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (id) DO UPDATE SET source = excluded.source, withdrawn = excluded.withdrawn, "
                "severity = excluded.severity, card = excluded.card, details = excluded.details", adv)
        if aff:
            self._insert_affected(aff)
        if aliases:
            self._execmany("INSERT INTO aliases (alias, advisory_id) VALUES (?, ?) ON CONFLICT DO NOTHING", aliases)

    def _insert_affected(self, rows: list[tuple[Any, ...]]) -> None:
        self._execmany("INSERT INTO affected (advisory_id, source, ecosystem, release, name, ranges, versions, "
                       "specific, severity) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)

    def _drop_orphans(self, ids: list[str], source: str) -> None:
        # An advisory row goes when no source lists it any more; one still carried by another
        # archive (a GHSA record naming PyPI and npm packages) stays.
        dead = [r[0] for r in self._in(
            "SELECT id FROM advisories WHERE id IN ({}) AND NOT EXISTS "
            "(SELECT 1 FROM affected WHERE affected.advisory_id = advisories.id)", ids)]
        seen = {r[0] for r in self._in("SELECT id FROM advisories WHERE source = ? AND id IN ({})", ids, (source,))}
        for i in range(0, len(dead), _IN_CHUNK):
            chunk = [d for d in dead[i : i + _IN_CHUNK] if d in seen]
            if chunk:
                marks = ",".join("?" * len(chunk))
                self._exec(f"DELETE FROM advisories WHERE id IN ({marks})", chunk)
                self._exec(f"DELETE FROM aliases WHERE advisory_id IN ({marks})", chunk)

    def set_epss(self, rows: Iterable[tuple[str, float, float]], date: str, model: str = "") -> int:
        n = 0
        with self._transaction():
            self._exec("DELETE FROM epss")
            batch: list[tuple[Any, ...]] = []
            for cve, score, pct in rows:
                batch.append((cve, score, pct, date))
                n += 1
                if len(batch) >= 10_000:
                    self._execmany("INSERT INTO epss (cve, score, percentile, date) VALUES (?, ?, ?, ?) "
                                   "ON CONFLICT DO NOTHING", batch)
                    batch = []
            if batch:
                self._execmany("INSERT INTO epss (cve, score, percentile, date) VALUES (?, ?, ?, ?) "
                               "ON CONFLICT DO NOTHING", batch)
            self._set_meta("epss_date", date)
            self._set_meta("epss_model", model)
            self._set_meta("epss_count", str(n))
        return n

    def set_kev(self, rows: Iterable[dict[str, str]], version: str = "", released: str = "") -> int:
        batch = [(r["cve"], r.get("date_added", ""), r.get("due_date", ""), r.get("ransomware", ""),
                  r.get("vendor", ""), r.get("product", ""), r.get("name", "")) for r in rows]
        with self._transaction():
            self._exec("DELETE FROM kev")
            if batch:
                self._execmany("INSERT INTO kev (cve, date_added, due_date, ransomware, vendor, product, name) "
                               "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING", batch)
            self._set_meta("kev_date", released or _now())
            self._set_meta("kev_version", version)
            self._set_meta("kev_count", str(len(batch)))
        return len(batch)

    def _set_meta(self, key: str, value: str) -> None:
        self._exec("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                   (key, value))

    # --- reading --------------------------------------------------------------------------

    def lookup(self, ecosystem: str, names: Iterable[str]) -> list[AffectedRow]:
        """Affected entries for these package names in one base ecosystem ("Debian", "PyPI").

        Names are normalised here, so callers may pass them as the inventory spelled them.
        """
        base = split_ecosystem(ecosystem)[0]
        wanted = sorted({normalize_name(base, n) for n in names if n})
        rows = self._in("SELECT advisory_id, ecosystem, release, name, ranges, versions, specific, severity "
                        "FROM affected WHERE ecosystem = ? AND name IN ({})", wanted, (base,))
        return [AffectedRow(r[0], r[1], r[2], r[3], _json(r[4], []), _json(r[5], []), _json(r[6], {}),
                            _json(r[7], [])) for r in rows]

    def lookup_raw(self, ecosystem: str, names: Iterable[str]) -> list[tuple[Any, ...]]:
        """:meth:`lookup` without decoding: (advisory_id, release, name, ranges, versions, specific,
        severity) with the last four as stored JSON text (or None). Matching decodes each distinct
        text once per scan instead of once per row."""
        base = split_ecosystem(ecosystem)[0]
        return self.lookup_normalized(base, {normalize_name(base, n) for n in names if n})

    def lookup_normalized(self, base: str, names: Iterable[str]) -> list[tuple[Any, ...]]:
        """:meth:`lookup_raw` for a base ecosystem and names the caller has normalised already."""
        return self._in("SELECT advisory_id, release, name, ranges, versions, specific, severity "
                        "FROM affected WHERE ecosystem = ? AND name IN ({})", sorted(set(names)), (base,))

    def advisory_cards(self, ids: Iterable[str]) -> list[tuple[Any, ...]]:
        """(id, severity, card) for matching: the severity as stored JSON text (its CVSS score is
        memoised by that text), the card as msgpack (decode with ``CARD_DECODER``)."""
        return self._in("SELECT id, severity, card FROM advisories WHERE id IN ({})", sorted(set(ids)))

    def advisories(self, ids: Iterable[str], details: bool = False) -> dict[str, AdvisoryRow]:
        cols = "id, severity, card" + (", details" if details else "")
        out = {}
        for r in self._in(f"SELECT {cols} FROM advisories WHERE id IN ({{}})", sorted(set(ids))):
            text = zlib.decompress(bytes(r[3])).decode() if details and r[3] else ""
            c = CARD_DECODER.decode(r[2])
            out[r[0]] = AdvisoryRow(r[0], c.modified, c.published, c.withdrawn, c.title, c.aliases, _json(r[1], []),
                                    c.db_severity, list(zip(c.reference_types, c.references, strict=True)), text)
        return out

    def by_alias(self, aliases: Iterable[str]) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for alias, adv in self._in("SELECT alias, advisory_id FROM aliases WHERE alias IN ({})",
                                   sorted(set(aliases))):
            out.setdefault(alias, []).append(adv)
        return out

    def epss(self, cves: Iterable[str]) -> dict[str, tuple[float, float, str]]:
        return {r[0]: (float(r[1]), float(r[2]), r[3] or "") for r in self._in(
            "SELECT cve, score, percentile, date FROM epss WHERE cve IN ({})", sorted(set(cves)))}

    def kev(self, cves: Iterable[str]) -> dict[str, dict[str, str]]:
        keys = ("date_added", "due_date", "ransomware", "vendor", "product", "name")
        return {r[0]: dict(zip(keys, (x or "" for x in r[1:]), strict=True)) for r in self._in(
            "SELECT cve, date_added, due_date, ransomware, vendor, product, name FROM kev WHERE cve IN ({})",
            sorted(set(cves)))}

    def source_state(self, source: str) -> SourceState | None:
        rows = self._query("SELECT name, url, etag, last_modified, updated_at, records, skipped FROM sources "
                           "WHERE name = ?", (source,))
        if not rows:
            return None
        r = rows[0]
        return SourceState(r[0], r[1] or "", r[2] or "", r[3] or "", r[4] or "", r[5] or 0, r[6] or 0)

    def source_names(self) -> list[str]:
        return [r[0] for r in self._query("SELECT name FROM sources ORDER BY name")]

    def meta(self) -> dict[str, str]:
        return {k: v for k, v in self._query("SELECT key, value FROM meta")}

    def is_empty(self) -> bool:
        return not self._query("SELECT 1 FROM advisories LIMIT 1")

    def status(self) -> dict[str, Any]:
        meta = self.meta()
        per = self._query("SELECT ecosystem, release, COUNT(DISTINCT advisory_id) FROM affected "
                          "GROUP BY ecosystem, release ORDER BY ecosystem, release")
        sources = self._query("SELECT name, url, etag, last_modified, updated_at, records, skipped FROM sources "
                              "ORDER BY name")
        return {
            "database": self.url,
            "schema_version": int(meta.get("schema_version", "0")),
            "advisories": self._query("SELECT COUNT(*) FROM advisories")[0][0],
            "withdrawn": self._query("SELECT COUNT(*) FROM advisories WHERE withdrawn <> ''")[0][0],
            "ecosystems": [{"ecosystem": f"{e}:{r}" if r else e, "advisories": n} for e, r, n in per],
            "sources": [{"name": s[0], "url": s[1] or "", "etag": s[2] or "", "last_modified": s[3] or "",
                         "updated_at": s[4] or "", "records": s[5] or 0, "skipped": s[6] or 0} for s in sources],
            "epss": {"date": meta.get("epss_date", ""), "model": meta.get("epss_model", ""),
                     "count": int(meta.get("epss_count", "0") or 0)},
            "kev": {"date": meta.get("kev_date", ""), "version": meta.get("kev_version", ""),
                    "count": int(meta.get("kev_count", "0") or 0)},
        }


class SQLiteStore(Store):
    placeholder = "?"
    blob = "BLOB"

    def __init__(self, path: str, *, building: bool = False, create: bool = True) -> None:
        self.path = path
        self.url = path
        self._building = building
        if path == ":memory:":
            pass
        elif create:
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        elif not os.path.exists(path):
            raise StoreError(f"no advisory database at {path} (run 'hullguard db update' or 'hullguard db import')")
        try:
            self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            if building:
                # The file being built is thrown away on any failure, so durability while
                # writing buys nothing; it is fsynced once before the swap.
                self.conn.execute("PRAGMA journal_mode = MEMORY")
                self.conn.execute("PRAGMA synchronous = OFF")
            else:
                self.conn.execute("PRAGMA journal_mode = WAL")
                self.conn.execute("PRAGMA synchronous = NORMAL")
            self.conn.execute("PRAGMA cache_size = -65536")
            self._create()
        except sqlite3.DatabaseError as exc:
            self.close()
            raise StoreError(f"{path}: not a usable advisory database: {exc}") from None
        except StoreError:
            self.close()
            raise

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self.conn.execute(sql, params).fetchall()

    def _exec(self, sql: str, params: Sequence[Any] = ()) -> None:
        self.conn.execute(sql, params)

    def _execmany(self, sql: str, rows: list[tuple[Any, ...]]) -> None:
        self.conn.executemany(sql, rows)

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        if self.conn.in_transaction:
            # Nested (set_epss inside an update): a savepoint keeps the inner part undoable.
            name = f"sp_{uuid.uuid4().hex[:8]}"
            self.conn.execute(f"SAVEPOINT {name}")
            try:
                yield
            except BaseException:
                self.conn.execute(f"ROLLBACK TO {name}")
                self.conn.execute(f"RELEASE {name}")
                raise
            self.conn.execute(f"RELEASE {name}")
            return
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    def close(self) -> None:
        with contextlib.suppress(sqlite3.Error, AttributeError):  # AttributeError: never connected
            self.conn.close()

    @contextlib.contextmanager
    def staged(self) -> Iterator[Store]:
        """Build the next database in ``<path>.tmp-*`` from a copy of this one; swap on success."""
        if self.path == ":memory:":
            yield self
            return
        tmp = f"{self.path}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        try:
            dst = sqlite3.connect(tmp)
            try:
                self.conn.backup(dst)
            finally:
                dst.close()
            new = SQLiteStore(tmp, building=True)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        try:
            yield new
            new.conn.execute("PRAGMA journal_mode = WAL")
            new.close()
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        except BaseException:
            new.close()
            for suffix in ("", "-wal", "-shm", "-journal"):
                with contextlib.suppress(OSError):
                    os.unlink(tmp + suffix)
            raise
        # Closing the last connection checkpoints and removes the old -wal file, so the new
        # main file is never paired with a stale log.
        self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self.conn.close()
        os.replace(tmp, self.path)
        for suffix in ("-wal", "-shm"):
            with contextlib.suppress(OSError):
                os.unlink(tmp + suffix)
        self.conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self.conn.execute("PRAGMA journal_mode = WAL")


class PostgresStore(Store):
    placeholder = "%s"
    blob = "BYTEA"

    def __init__(self, url: str) -> None:
        try:
            import psycopg
        except ImportError:  # pragma: no cover
            raise StoreError("PostgreSQL support needs the 'psycopg' package") from None
        self.url = _redact(url)
        try:
            self.conn = psycopg.connect(url, autocommit=True)
        except psycopg.Error as exc:
            raise StoreError(f"cannot connect to {self.url}: {' '.join(str(exc).split())}") from None
        try:
            self._create()
        except BaseException:
            self.close()
            raise

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self.conn.cursor() as cur:
            cur.execute(self._sql(sql), params)  # type: ignore[arg-type]
            return cur.fetchall() if cur.description else []

    def _exec(self, sql: str, params: Sequence[Any] = ()) -> None:
        with self.conn.cursor() as cur:
            cur.execute(self._sql(sql), params)  # type: ignore[arg-type]

    def _execmany(self, sql: str, rows: list[tuple[Any, ...]]) -> None:
        with self.conn.cursor() as cur:
            cur.executemany(self._sql(sql), rows)  # type: ignore[arg-type]

    def _insert_affected(self, rows: list[tuple[Any, ...]]) -> None:
        # COPY is several times faster than row-by-row INSERTs for the biggest table.
        with self.conn.cursor() as cur, cur.copy(
            "COPY affected (advisory_id, source, ecosystem, release, name, ranges, versions, specific, severity) "
            "FROM STDIN"
        ) as copy:
            for row in rows:
                copy.write_row(row)

    def _in(self, sql: str, values: Sequence[Any], prefix: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        # One round trip with an array parameter instead of chunked IN lists.
        if not values:
            return []
        return self._query(sql.replace("IN ({})", "= ANY(?)"), [*prefix, list(values)])

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        with self.conn.transaction():
            yield

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.conn.close()


def _redact(url: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urlunsplit(parts._replace(netloc=netloc))
    return url


def default_db_path() -> str:
    base = os.environ.get("HULLGUARD_CACHE_DIR")
    if not base:
        xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        base = os.path.join(xdg, "hullguard")
    return os.path.join(base, "db", "hullguard.db")


def resolve_url(db: str = "") -> str:
    """``--db`` > ``HULLGUARD_DB`` > the file under the cache directory."""
    return db or os.environ.get("HULLGUARD_DB", "") or default_db_path()


def is_postgres(url: str) -> bool:
    return url.startswith(("postgresql://", "postgres://"))


def open_store(db: str = "", *, create: bool = True) -> Store:
    url = resolve_url(db)
    if is_postgres(url):
        return PostgresStore(url)
    path = url[len("sqlite://"):] if url.startswith("sqlite://") else url
    return SQLiteStore(os.path.expanduser(path), create=create)
