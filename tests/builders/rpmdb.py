"""Builders for rpm databases, written from the format descriptions rather than with librpm.

- :func:`header_blob` / :func:`package_blob`: a db-stored rpm header (no lead magic), optionally
  wrapped in an immutable region like the ones rpm writes on install.
- :func:`sqlite_rpmdb`: an ``rpmdb.sqlite`` image with rpm's Packages table.
- :func:`bdb_hash`: a Berkeley DB hash file in either byte order, with overflow chains for values
  that do not fit on a page.
- :func:`ndb_packages`: rpm's ndb ``Packages.db``.
"""

from __future__ import annotations

import sqlite3
import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field

from hullguard.inventory.rpmdb import header as h

Value = str | bytes | int | list[str] | list[int]


def _align(buf: bytearray, n: int) -> None:
    while len(buf) % n:
        buf.append(0)


_INT_FMT = {h.TYPE_INT8: ("B", 1), h.TYPE_INT16: ("H", 2), h.TYPE_INT32: ("I", 4), h.TYPE_INT64: ("Q", 8)}


def header_blob(entries: Sequence[tuple[int, int, Value]], region: bool = True) -> bytes:
    """Serialise (tag, type, value) entries the way rpm stores a header in its database.

    With ``region`` the first index entry is HEADERIMMUTABLE pointing at a 16-byte trailer at the
    end of the data, as installed headers have.
    """
    index: list[tuple[int, int, int, int]] = []
    data = bytearray()
    for tag, typ, value in entries:
        if typ in _INT_FMT:
            fmt, width = _INT_FMT[typ]
            values = value if isinstance(value, list) else [value]
            _align(data, width)
            offset = len(data)
            data += struct.pack(f">{len(values)}{fmt}", *values)
            count = len(values)
        elif typ == h.TYPE_STRING:
            assert isinstance(value, str)
            offset = len(data)
            data += value.encode() + b"\0"
            count = 1
        elif typ in (h.TYPE_STRING_ARRAY, h.TYPE_I18NSTRING):
            values = value if isinstance(value, list) else [value]
            offset = len(data)
            for s in values:
                assert isinstance(s, str)
                data += s.encode() + b"\0"
            count = len(values)
        elif typ in (h.TYPE_BIN, h.TYPE_CHAR):
            assert isinstance(value, bytes)
            offset = len(data)
            data += value
            count = len(value)
        else:
            raise ValueError(f"type {typ} not supported by the builder")
        index.append((tag, typ, offset, count))
    if region:
        il = len(index) + 1
        trailer_offset = len(data)
        data += struct.pack(">IIiI", h.TAG_HEADERIMMUTABLE, h.TYPE_BIN, -il * 16, 16)
        index.insert(0, (h.TAG_HEADERIMMUTABLE, h.TYPE_BIN, trailer_offset, 16))
    out = bytearray(struct.pack(">II", len(index), len(data)))
    for entry in index:
        out += struct.pack(">IIiI", *entry)
    return bytes(out + data)


# A tag number rpm does not define, so rpm's per-tag type checks leave the padding alone.
_PADDING_TAG = 20000


@dataclass
class PkgSpec:
    name: str
    version: str = "1.0"
    release: str = "1.el9"
    epoch: int | None = None
    arch: str = "x86_64"
    sourcerpm: str | None = None
    license: str = "MIT"
    vendor: str = "Hullguard Test"
    size: int = 1234
    modularity_label: str | None = None
    files: list[str] = field(default_factory=list)
    old_filenames: bool = False
    padding: int = 0  # extra BIN bytes, to make a blob that needs overflow pages

    @property
    def default_sourcerpm(self) -> str:
        return f"{self.name}-{self.version}-{self.release}.src.rpm"


def package_blob(spec: PkgSpec, region: bool = True) -> bytes:
    entries: list[tuple[int, int, Value]] = [
        (h.TAG_NAME, h.TYPE_STRING, spec.name),
        (h.TAG_VERSION, h.TYPE_STRING, spec.version),
        (h.TAG_RELEASE, h.TYPE_STRING, spec.release),
    ]
    if spec.epoch is not None:
        entries.append((h.TAG_EPOCH, h.TYPE_INT32, spec.epoch))
    entries += [
        (h.TAG_SIZE, h.TYPE_INT32, spec.size),
        (h.TAG_VENDOR, h.TYPE_STRING, spec.vendor),
        (h.TAG_LICENSE, h.TYPE_STRING, spec.license),
        (h.TAG_ARCH, h.TYPE_STRING, spec.arch),
        (h.TAG_SOURCERPM, h.TYPE_STRING, spec.default_sourcerpm if spec.sourcerpm is None else spec.sourcerpm),
        (1004, h.TYPE_I18NSTRING, ["A summary", "Une description"]),
    ]
    if spec.modularity_label is not None:
        entries.append((h.TAG_MODULARITYLABEL, h.TYPE_STRING, spec.modularity_label))
    if spec.files and spec.old_filenames:
        entries.append((h.TAG_OLDFILENAMES, h.TYPE_STRING_ARRAY, list(spec.files)))
    elif spec.files:
        dirs: list[str] = []
        bases: list[str] = []
        idx: list[int] = []
        for path in spec.files:
            d, _, b = path.rpartition("/")
            d += "/"
            if d not in dirs:
                dirs.append(d)
            idx.append(dirs.index(d))
            bases.append(b)
        entries += [
            (h.TAG_DIRINDEXES, h.TYPE_INT32, idx),
            (h.TAG_BASENAMES, h.TYPE_STRING_ARRAY, bases),
            (h.TAG_DIRNAMES, h.TYPE_STRING_ARRAY, dirs),
        ]
    if spec.padding:
        entries.append((_PADDING_TAG, h.TYPE_BIN, bytes(i % 251 for i in range(spec.padding))))
    return header_blob(entries, region=region)


# --- sqlite -----------------------------------------------------------------------------------

_SQLITE_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS 'Packages' (hnum INTEGER PRIMARY KEY AUTOINCREMENT, blob BLOB NOT NULL)",
    "CREATE TABLE IF NOT EXISTS 'Name' (key 'TEXT' NOT NULL, hnum INTEGER NOT NULL, idx INTEGER NOT NULL)",
)


def sqlite_rpmdb(blobs: Sequence[bytes], wal: bool = True) -> bytes:
    """An rpmdb.sqlite image; ``wal`` marks it WAL-mode in the file header as rpm leaves it."""
    conn = sqlite3.connect(":memory:")
    for stmt in _SQLITE_SCHEMA:
        conn.execute(stmt)
    conn.executemany("INSERT INTO Packages (blob) VALUES (?)", [(b,) for b in blobs])
    conn.commit()
    image = bytearray(conn.serialize())
    conn.close()
    if wal:
        image[18:20] = b"\x02\x02"
    return bytes(image)


# --- Berkeley DB hash -------------------------------------------------------------------------

BDB_HASH_MAGIC = 0x061561
_P_HASH = 13
_P_OVERFLOW = 7
_P_HASHMETA = 8
_H_KEYDATA = 1
_H_OFFPAGE = 3


def bdb_hash(
    items: Sequence[tuple[bytes, bytes]],
    *,
    order: str = "<",
    page_size: int = 4096,
    big_item: int | None = None,
) -> bytes:
    """A Berkeley DB hash file holding ``items``, all in bucket 0 (max_bucket 0, masks 0).

    Values longer than ``big_item`` (default a quarter page, like libdb) go to overflow chains.
    Every page number used is real, so any reader that follows bucket chains or walks pages finds
    the same items.
    """
    big = big_item if big_item is not None else page_size // 4
    hdr_size = 26
    pages: list[bytearray] = [bytearray(page_size)]  # page 0: metadata, filled in last

    def new_page(ptype: int) -> int:
        page = bytearray(page_size)
        pgno = len(pages)
        struct.pack_into(f"{order}I", page, 8, pgno)
        page[25] = ptype
        pages.append(page)
        return pgno

    def write_overflow(value: bytes) -> int:
        room = page_size - hdr_size
        first = prev = 0
        for start in range(0, len(value), room):
            chunk = value[start : start + room]
            pgno = new_page(_P_OVERFLOW)
            page = pages[pgno]
            page[hdr_size : hdr_size + len(chunk)] = chunk
            struct.pack_into(f"{order}IIHH", page, 12, prev, 0, 1, len(chunk))
            if prev:
                struct.pack_into(f"{order}I", pages[prev], 16, pgno)
            else:
                first = pgno
            prev = pgno
        return first

    def encode(item: bytes) -> bytes:
        if len(item) > big:
            pgno = write_overflow(item)
            return struct.pack(f"{order}B3xII", _H_OFFPAGE, pgno, len(item))
        return bytes([_H_KEYDATA]) + item

    encoded: list[tuple[bytes, bytes]] = [(encode(k), encode(v)) for k, v in items]

    # Hash pages are allocated after the overflow pages, which real libdb would interleave; the
    # order of pages in the file does not matter to a reader.
    bucket = current = new_page(_P_HASH)
    entries = 0
    hf = page_size
    for key, value in encoded:
        need = len(key) + len(value) + 4
        if hf - need < hdr_size + (entries + 2) * 2:
            nxt = new_page(_P_HASH)
            struct.pack_into(f"{order}I", pages[current], 16, nxt)
            struct.pack_into(f"{order}I", pages[nxt], 12, current)
            current, entries, hf = nxt, 0, page_size
        page = pages[current]
        for item in (key, value):
            hf -= len(item)
            page[hf : hf + len(item)] = item
            struct.pack_into(f"{order}H", page, hdr_size + entries * 2, hf)
            entries += 1
        struct.pack_into(f"{order}HH", page, 20, entries, hf)

    meta = pages[0]
    struct.pack_into(f"{order}IIIIBBBB", meta, 8, 0, BDB_HASH_MAGIC, 9, page_size, 0, _P_HASHMETA, 0, 0)
    struct.pack_into(f"{order}II", meta, 28, 0, len(pages) - 1)  # free list, last_pgno
    struct.pack_into(f"{order}IIIIII", meta, 72, 0, 0, 0, 0, len(items), 0)
    struct.pack_into(f"{order}I", meta, 96, bucket)  # spares[0]: bucket 0 lives on this page
    return b"".join(bytes(p) for p in pages)


def rpm_bdb_items(blobs: Sequence[bytes], order: str = "<") -> list[tuple[bytes, bytes]]:
    """rpm's Packages content: header number -> blob, plus the counter record under key 0.

    rpm writes its keys in host order, so they follow the file's byte order.
    """
    items = [(struct.pack(f"{order}I", 0), struct.pack(f"{order}I", len(blobs) + 1))]
    items += [(struct.pack(f"{order}I", i + 1), blob) for i, blob in enumerate(blobs)]
    return items


# --- ndb --------------------------------------------------------------------------------------

NDB_PAGE = 4096
NDB_BLOCK = 16


def ndb_packages(blobs: Sequence[bytes], *, slot_pages: int = 1, free_slot_first: bool = False) -> bytes:
    """An ndb Packages.db with one slot per blob (package index i+1), blobs packed after the slots.

    ``slot_pages`` is a minimum: more pages are used when the slots need them.
    """
    slots_needed = 2 + int(free_slot_first) + len(blobs)  # the file header takes two slot places
    slot_pages = max(slot_pages, -(-slots_needed // (NDB_PAGE // 16)))
    data = bytearray(slot_pages * NDB_PAGE)
    struct.pack_into("<4sIIII", data, 0, b"RpmP", 0, 1, slot_pages, len(blobs) + 1)
    for off in range(32, slot_pages * NDB_PAGE, 16):
        struct.pack_into("<4sIII", data, off, b"Slot", 0, 0, 0)
    slot_off = 32 + (16 if free_slot_first else 0)
    for i, blob in enumerate(blobs):
        pkgidx = i + 1
        blkoff = len(data) // NDB_BLOCK
        blkcnt = -(-(16 + len(blob) + 12) // NDB_BLOCK)
        region = bytearray(blkcnt * NDB_BLOCK)
        struct.pack_into("<4sIII", region, 0, b"BlbS", pkgidx, 1700000000, len(blob))
        region[16 : 16 + len(blob)] = blob
        adler = zlib.adler32(bytes(region[:-12]))
        struct.pack_into("<II4s", region, len(region) - 12, adler, len(blob), b"BlbE")
        data += region
        struct.pack_into("<4sIII", data, slot_off, b"Slot", pkgidx, blkoff, blkcnt)
        slot_off += 16
    return bytes(data)
