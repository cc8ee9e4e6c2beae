"""Berkeley DB hash files (``Packages`` on RHEL/CentOS 7 and 8), read without libdb.

Only what rpm's Packages database needs is supported: a hash database (no encryption) whose
values are header blobs, stored either inline on the hash pages (H_KEYDATA) or in chains of
overflow pages (H_OFFPAGE). The file is in the byte order of the machine that wrote it, so the
metadata magic decides the order for the whole file.

Rather than following bucket chains, every page up to the last page number is looked at once and
the hash pages are read in file order: that finds every live item exactly once, and a corrupted
chain can make us miss items but never loop.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass

from hullguard.inventory.rpmdb import RpmdbError

HASH_MAGIC = 0x061561

# Page types (dbinc/db_page.h).
P_HASH_UNSORTED = 2
P_OVERFLOW = 7
P_HASHMETA = 8
P_HASH = 13

# Hash item types.
H_KEYDATA = 1
H_DUPLICATE = 2
H_OFFPAGE = 3
H_OFFDUP = 4

PAGE_HEADER_SIZE = 26
# With checksums on (metadata flag DBMETA_CHKSUM), each page header grows by this much before
# the item index: a 2-byte pad plus a 4-byte checksum.
CHKSUM_EXTRA = 6
DBMETA_CHKSUM = 0x01
MIN_PAGE_SIZE = 512
MAX_PAGE_SIZE = 65536

# rpm keeps its next package number under key 0; it is not a header.
_RPM_COUNTER_KEY = b"\x00\x00\x00\x00"


@dataclass(frozen=True, slots=True)
class _Layout:
    order: str  # "<" or ">"
    page_size: int
    last_pgno: int
    inp_offset: int  # where the item index (or overflow data) starts on a page


def is_bdb_hash(data: bytes) -> bool:
    if len(data) < 16:
        return False
    magic = data[12:16]
    return magic in (HASH_MAGIC.to_bytes(4, "little"), HASH_MAGIC.to_bytes(4, "big"))


def _layout(data: bytes) -> _Layout:
    if len(data) < MIN_PAGE_SIZE:
        raise RpmdbError("Packages: shorter than a Berkeley DB metadata page")
    if data[12:16] == HASH_MAGIC.to_bytes(4, "little"):
        order = "<"
    elif data[12:16] == HASH_MAGIC.to_bytes(4, "big"):
        order = ">"
    else:
        raise RpmdbError("Packages: not a Berkeley DB hash database")
    page_size, encrypt_alg, page_type, metaflags = struct.unpack_from(f"{order}IBBB", data, 20)
    (last_pgno,) = struct.unpack_from(f"{order}I", data, 32)
    if page_type != P_HASHMETA:
        raise RpmdbError(f"Packages: metadata page has type {page_type}, not hash metadata")
    if page_size < MIN_PAGE_SIZE or page_size > MAX_PAGE_SIZE or page_size & (page_size - 1):
        raise RpmdbError(f"Packages: invalid page size {page_size}")
    if encrypt_alg:
        raise RpmdbError("Packages: encrypted Berkeley DB files are not supported")
    inp = PAGE_HEADER_SIZE + (CHKSUM_EXTRA if metaflags & DBMETA_CHKSUM else 0)
    # A truncated file (or a lying last_pgno) just ends the walk at the last complete page.
    last = min(last_pgno, len(data) // page_size - 1)
    return _Layout(order, page_size, last, inp)


class _Reader:
    def __init__(self, data: bytes, layout: _Layout) -> None:
        self.data = data
        self.layout = layout
        self.page_hdr = struct.Struct(f"{layout.order}16xIHHxB")  # next_pgno, entries, hf_offset, type
        self.u16 = struct.Struct(f"{layout.order}H")
        self.offpage = struct.Struct(f"{layout.order}4xII")  # pgno, total length
        # Overflow chains are never shared, so a page reused by a second item means a crafted
        # file; refusing it keeps the total work linear in the file size.
        self.consumed: set[int] = set()

    def page(self, pgno: int) -> int:
        if pgno < 1 or pgno > self.layout.last_pgno:
            raise RpmdbError(f"Packages: page number {pgno} out of range")
        return pgno * self.layout.page_size

    def overflow(self, pgno: int, total: int) -> bytes:
        chunks: list[bytes] = []
        have = 0
        inp = self.layout.inp_offset
        room = self.layout.page_size - inp
        while pgno:
            if pgno in self.consumed:
                raise RpmdbError(f"Packages: overflow page {pgno} reached twice (cycle or shared chain)")
            self.consumed.add(pgno)
            base = self.page(pgno)
            next_pgno, _entries, length, page_type = self.page_hdr.unpack_from(self.data, base)
            if page_type != P_OVERFLOW:
                raise RpmdbError(f"Packages: page {pgno} in an overflow chain has type {page_type}")
            if length > room or have + length > total:
                raise RpmdbError(f"Packages: overflow page {pgno} claims {length} bytes")
            chunks.append(self.data[base + inp : base + inp + length])
            have += length
            pgno = next_pgno
        if have != total:
            raise RpmdbError(f"Packages: overflow chain holds {have} of {total} bytes")
        return b"".join(chunks)

    def item(self, base: int, start: int, end: int) -> bytes | None:
        """The value of one item spanning [start, end) of the page at ``base``; None to skip."""
        kind = self.data[base + start]
        if kind == H_KEYDATA:
            return self.data[base + start + 1 : base + end]
        if kind == H_OFFPAGE:
            if end - start < self.offpage.size:
                raise RpmdbError("Packages: truncated off-page item")
            pgno, total = self.offpage.unpack_from(self.data, base + start)
            return self.overflow(pgno, total)
        if kind in (H_DUPLICATE, H_OFFDUP):
            return None  # rpm never stores duplicates in Packages
        raise RpmdbError(f"Packages: unknown hash item type {kind}")

    def hash_items(self, pgno: int) -> Iterator[tuple[bytes | None, bytes | None]]:
        base = pgno * self.layout.page_size
        page_size = self.layout.page_size
        _next, entries, _hf, _type = self.page_hdr.unpack_from(self.data, base)
        inp = self.layout.inp_offset
        if inp + entries * 2 > page_size or entries % 2:
            raise RpmdbError(f"Packages: hash page {pgno} has a bad entry count {entries}")
        index_end = inp + entries * 2
        offsets = [self.u16.unpack_from(self.data, base + inp + 2 * i)[0] for i in range(entries)]
        # Items are packed from the end of the page downwards, so each ends where the previous
        # one (or the page) begins.
        prev = page_size
        spans: list[tuple[int, int]] = []
        for off in offsets:
            if off < index_end or off >= prev:
                raise RpmdbError(f"Packages: hash page {pgno} has an item at bad offset {off}")
            spans.append((off, prev))
            prev = off
        for i in range(0, entries, 2):
            key = self.item(base, *spans[i])
            value = self.item(base, *spans[i + 1])
            yield key, value


def iter_blobs(data: bytes) -> Iterator[bytes]:
    """Yield every value (header blob) of a Berkeley DB hash ``Packages`` file."""
    layout = _layout(data)
    reader = _Reader(data, layout)
    for pgno in range(1, layout.last_pgno + 1):
        page_type = data[pgno * layout.page_size + 25]
        if page_type not in (P_HASH, P_HASH_UNSORTED):
            continue
        for key, value in reader.hash_items(pgno):
            if value is None or key == _RPM_COUNTER_KEY:
                continue
            yield value
