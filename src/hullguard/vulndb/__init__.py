"""The advisory database: OSV records stored for indexed lookups, updated atomically.

>>> from hullguard.vulndb import open_for_scan
>>> store = open_for_scan()          # the user's database, or the bundled snapshot on first use
>>> rows = store.lookup("PyPI", ["requests"])
"""

from __future__ import annotations

import contextlib
import os
import sys

from hullguard.vulndb.importer import SNAPSHOT_SOURCE, ArchiveError, import_path, snapshot_dir, snapshot_fingerprint
from hullguard.vulndb.osv import Advisory, OSVError, normalize_name, parse, split_ecosystem
from hullguard.vulndb.store import (
    SCHEMA_VERSION,
    ImportStats,
    SchemaMismatch,
    SQLiteStore,
    Store,
    StoreError,
    default_db_path,
    is_postgres,
    open_store,
    resolve_url,
)

__all__ = [
    "SNAPSHOT_SOURCE",
    "Advisory",
    "ArchiveError",
    "ImportStats",
    "OSVError",
    "SchemaMismatch",
    "Store",
    "StoreError",
    "default_db_path",
    "import_path",
    "normalize_name",
    "open_for_scan",
    "open_store",
    "parse",
    "resolve_url",
    "snapshot_dir",
    "snapshot_fingerprint",
    "split_ecosystem",
]


def open_for_scan(db: str = "", *, quiet: bool = True) -> Store:
    """The store a scan should read.

    An explicit ``--db``/``HULLGUARD_DB`` must exist. Without one, the default file under the
    cache directory is used, and on first use it is created from the bundled snapshot so that
    the quick start works offline; if the cache directory is not writable the snapshot is
    loaded into memory instead.
    """
    explicit = db or os.environ.get("HULLGUARD_DB", "")
    url = resolve_url(db)
    if is_postgres(url):
        return open_store(url)
    if explicit:
        return open_store(url, create=False)
    path = default_db_path()
    store: Store | None = None
    if os.path.exists(path):
        try:
            store = open_store(path, create=False)
        except SchemaMismatch as exc:
            # The cache database of another hullguard version: this one cannot read it, and a
            # scan should not stop over a cache, so it is rebuilt from the bundled snapshot.
            print(f"hullguard: {path} has advisory database schema version {exc.found}, this version reads "
                  f"{SCHEMA_VERSION}; rebuilding it from the bundled snapshot (run 'hullguard db update' "
                  "for current data)", file=sys.stderr)
            quiet = True
            for suffix in ("", "-wal", "-shm"):
                with contextlib.suppress(OSError):
                    os.unlink(path + suffix)
    if store is not None:
        if not store.is_empty():
            _refresh_snapshot(store, quiet)
            return store
    else:
        try:
            store = open_store(path)
        except (StoreError, OSError):
            store = SQLiteStore(":memory:")
    if not quiet:
        print(f"hullguard: no advisory database yet; loading the bundled snapshot into {store.url} "
              "(run 'hullguard db update' for current data)", file=sys.stderr)
    fingerprint = snapshot_fingerprint()
    try:
        import_path(store, snapshot_dir(), SNAPSHOT_SOURCE, etag=fingerprint)
    except (OSError, StoreError):
        with contextlib.suppress(Exception):
            store.close()
        store = SQLiteStore(":memory:")
        import_path(store, snapshot_dir(), SNAPSHOT_SOURCE, etag=fingerprint)
    return store


def _refresh_snapshot(store: Store, quiet: bool) -> None:
    """Re-import the bundled snapshot into a cache database that holds nothing else, when the
    snapshot shipped with this version differs from the one the cache was built from. Databases
    with downloaded or imported data are never touched."""
    if store.source_names() != [SNAPSHOT_SOURCE]:
        return
    state = store.source_state(SNAPSHOT_SOURCE)
    fingerprint = snapshot_fingerprint()
    if state is None or state.etag == fingerprint:
        return
    if not quiet:
        print("hullguard: refreshing the bundled advisory snapshot in the cache database", file=sys.stderr)
    with contextlib.suppress(OSError, StoreError):
        import_path(store, snapshot_dir(), SNAPSHOT_SOURCE, etag=fingerprint)
