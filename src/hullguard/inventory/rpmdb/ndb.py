"""rpm's own "ndb" package store (``Packages.db``, SUSE).

Layout (all little-endian uint32): a 32-byte file header ("RpmP", format version 0, generation,
number of slot pages, next package index), then ``slot pages`` of 4096 bytes holding 16-byte slots
("Slot", package index, block offset, block count) — the first two slot positions are taken by the
file header. Blobs live in 16-byte blocks after the slot pages: a 16-byte head ("BlbS", package
index, timestamp, blob length), the header blob, zero padding, and a 12-byte tail (adler32 of
everything before it, blob length, "BlbE") ending exactly at the last block.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator

from hullguard.inventory.rpmdb import RpmdbError

FILE_MAGIC = b"RpmP"
SLOT_MAGIC = b"Slot"
BLOB_HEAD_MAGIC = b"BlbS"
BLOB_TAIL_MAGIC = b"BlbE"
FORMAT_VERSION = 0
PAGE_SIZE = 4096
SLOT_SIZE = 16
BLOCK_SIZE = 16
FILE_HEADER_SIZE = 32
BLOB_HEAD_SIZE = 16
BLOB_TAIL_SIZE = 12

_U32x4 = struct.Struct("<4sIII")
_TAIL = struct.Struct("<II4s")


def is_ndb(data: bytes) -> bool:
    return data[:4] == FILE_MAGIC


def _slots(data: bytes, slot_pages: int) -> list[tuple[int, int, int]]:
    """(package index, block offset, block count) of every used slot, in file order."""
    first_data_block = slot_pages * (PAGE_SIZE // BLOCK_SIZE)
    file_blocks = len(data) // BLOCK_SIZE
    used: list[tuple[int, int, int]] = []
    for off in range(FILE_HEADER_SIZE, slot_pages * PAGE_SIZE, SLOT_SIZE):
        magic, pkgidx, blkoff, blkcnt = _U32x4.unpack_from(data, off)
        if magic != SLOT_MAGIC:
            raise RpmdbError(f"Packages.db: bad slot magic at offset {off}")
        if blkoff == 0:
            continue  # free slot
        if pkgidx == 0 or blkcnt == 0 or blkoff < first_data_block or blkoff + blkcnt > file_blocks:
            raise RpmdbError(f"Packages.db: slot at offset {off} points outside the blob area")
        used.append((pkgidx, blkoff, blkcnt))
    return used


def _blob(data: bytes, pkgidx: int, blkoff: int, blkcnt: int) -> bytes:
    start = blkoff * BLOCK_SIZE
    end = start + blkcnt * BLOCK_SIZE
    if blkcnt * BLOCK_SIZE < BLOB_HEAD_SIZE + BLOB_TAIL_SIZE:
        raise RpmdbError(f"Packages.db: blob of package {pkgidx} too small")
    magic, head_idx, _tstamp, bloblen = _U32x4.unpack_from(data, start)
    if magic != BLOB_HEAD_MAGIC or head_idx != pkgidx:
        raise RpmdbError(f"Packages.db: bad blob head for package {pkgidx}")
    if -(-(BLOB_HEAD_SIZE + bloblen + BLOB_TAIL_SIZE) // BLOCK_SIZE) != blkcnt:
        raise RpmdbError(f"Packages.db: blob length of package {pkgidx} disagrees with its slot")
    adler, tail_len, tail_magic = _TAIL.unpack_from(data, end - BLOB_TAIL_SIZE)
    if tail_magic != BLOB_TAIL_MAGIC or tail_len != bloblen:
        raise RpmdbError(f"Packages.db: bad blob tail for package {pkgidx}")
    if zlib.adler32(memoryview(data)[start : end - BLOB_TAIL_SIZE]) != adler:
        raise RpmdbError(f"Packages.db: checksum mismatch in package {pkgidx}")
    return data[start + BLOB_HEAD_SIZE : start + BLOB_HEAD_SIZE + bloblen]


def iter_blobs(data: bytes) -> Iterator[bytes]:
    """Yield the header blob of every package, in block order like rpm's own listing."""
    if len(data) < FILE_HEADER_SIZE:
        raise RpmdbError("Packages.db: shorter than its file header")
    magic, version, _generation, slot_pages = _U32x4.unpack_from(data, 0)
    if magic != FILE_MAGIC:
        raise RpmdbError("Packages.db: not an ndb package database")
    if version != FORMAT_VERSION:
        raise RpmdbError(f"Packages.db: unsupported format version {version}")
    if slot_pages == 0 or slot_pages * PAGE_SIZE > len(data):
        raise RpmdbError(f"Packages.db: {slot_pages} slot pages do not fit in the file")
    for pkgidx, blkoff, blkcnt in sorted(_slots(data, slot_pages), key=lambda s: s[1]):
        yield _blob(data, pkgidx, blkoff, blkcnt)
