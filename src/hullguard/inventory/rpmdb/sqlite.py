"""rpm's sqlite backend (``rpmdb.sqlite``, Fedora 33+, RHEL 9): table ``Packages(hnum, blob)``.

The database arrives as bytes, so it is loaded into an in-memory connection with
``Connection.deserialize``: nothing touches the disk and the image's file can never be modified.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator

from hullguard.inventory.rpmdb import RpmdbError

SQLITE_MAGIC = b"SQLite format 3\x00"

# Offsets 18/19 of the sqlite file header are the write/read format versions; 2 means WAL. An
# in-memory database cannot have a WAL, and sqlite refuses to open a deserialized WAL-mode image,
# so the copy is relabelled as a rollback-journal database. Content in a -wal file we never see
# is lost either way: rpm checkpoints when it closes the database, so that is rarely anything.
_FORMAT_VERSION_OFFSET = 18


def _rollback_journal_copy(data: bytes) -> bytes:
    if data[_FORMAT_VERSION_OFFSET : _FORMAT_VERSION_OFFSET + 2] == b"\x02\x02":
        buf = bytearray(data)
        buf[_FORMAT_VERSION_OFFSET : _FORMAT_VERSION_OFFSET + 2] = b"\x01\x01"
        return bytes(buf)
    return data


def iter_blobs(data: bytes) -> Iterator[bytes]:
    """Yield every header blob of an rpmdb.sqlite image, in hnum order."""
    if not data.startswith(SQLITE_MAGIC):
        raise RpmdbError("rpmdb.sqlite: not an sqlite database")
    conn = sqlite3.connect(":memory:")
    # Names in a hostile schema need not be UTF-8; compare raw bytes instead of decoding.
    conn.text_factory = bytes
    try:
        conn.deserialize(_rollback_journal_copy(data))
        # A hostile file could make "Packages" a view over a recursive query that never ends;
        # a real table scan is bounded by the file size.
        row = conn.execute("SELECT type FROM sqlite_master WHERE name = 'Packages' COLLATE NOCASE").fetchone()
        if row is None or row[0] != b"table":
            raise RpmdbError("rpmdb.sqlite: no Packages table")
        for (blob,) in conn.execute("SELECT blob FROM Packages ORDER BY hnum"):
            if not isinstance(blob, bytes):
                raise RpmdbError("rpmdb.sqlite: Packages.blob is not a blob")
            yield blob
    except (sqlite3.Error, ValueError, OverflowError) as exc:
        raise RpmdbError(f"rpmdb.sqlite: {exc}") from None
    finally:
        conn.close()
