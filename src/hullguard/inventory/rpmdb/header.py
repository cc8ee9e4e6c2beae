"""The rpm header blob, as the package databases store it.

A db-stored header has no lead magic: it starts with the index count and the data length (both
big-endian uint32), then that many 16-byte index entries (tag, type, offset, count), then the data
store. Offsets are relative to the data store. Everything is attacker-controlled in an image, so
every entry is checked against the data length before anything is decoded, and the decoded sizes
can never exceed the blob itself.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Final

from hullguard.inventory.rpmdb import RpmdbError

# Value types.
TYPE_NULL: Final = 0
TYPE_CHAR: Final = 1
TYPE_INT8: Final = 2
TYPE_INT16: Final = 3
TYPE_INT32: Final = 4
TYPE_INT64: Final = 5
TYPE_STRING: Final = 6
TYPE_BIN: Final = 7
TYPE_STRING_ARRAY: Final = 8
TYPE_I18NSTRING: Final = 9

_FIXED_WIDTH: Final = {
    TYPE_NULL: 0,
    TYPE_CHAR: 1,
    TYPE_INT8: 1,
    TYPE_INT16: 2,
    TYPE_INT32: 4,
    TYPE_INT64: 8,
    TYPE_BIN: 1,
}
_STRING_TYPES: Final = frozenset({TYPE_STRING, TYPE_STRING_ARRAY, TYPE_I18NSTRING})
_INT_FORMATS: Final = {TYPE_INT8: "B", TYPE_INT16: "H", TYPE_INT32: "I", TYPE_INT64: "Q"}

# Region tags mark the signed/immutable part of a header; their value is a trailer, not package
# data, so they are validated like any BIN entry and otherwise ignored.
TAG_HEADERIMAGE: Final = 61
TAG_HEADERSIGNATURES: Final = 62
TAG_HEADERIMMUTABLE: Final = 63
TAG_HEADERREGIONS: Final = 64

TAG_NAME: Final = 1000
TAG_VERSION: Final = 1001
TAG_RELEASE: Final = 1002
TAG_EPOCH: Final = 1003
TAG_SIZE: Final = 1009
TAG_VENDOR: Final = 1011
TAG_LICENSE: Final = 1014
TAG_ARCH: Final = 1022
TAG_OLDFILENAMES: Final = 1027
TAG_SOURCERPM: Final = 1044
TAG_DIRINDEXES: Final = 1116
TAG_BASENAMES: Final = 1117
TAG_DIRNAMES: Final = 1118
TAG_MODULARITYLABEL: Final = 5096

WANTED_TAGS: Final = frozenset(
    {
        TAG_NAME,
        TAG_VERSION,
        TAG_RELEASE,
        TAG_EPOCH,
        TAG_SIZE,
        TAG_VENDOR,
        TAG_LICENSE,
        TAG_ARCH,
        TAG_OLDFILENAMES,
        TAG_SOURCERPM,
        TAG_DIRINDEXES,
        TAG_BASENAMES,
        TAG_DIRNAMES,
        TAG_MODULARITYLABEL,
    }
)

# rpm itself refuses headers beyond these (hdrchkTags / hdrchkData); so do we, which also caps the
# work a hostile blob can cause before the length check below catches it.
MAX_INDEX_ENTRIES: Final = 0x00FFFFFF
MAX_DATA_LENGTH: Final = 0x0FFFFFFF

_INTRO = struct.Struct(">II")
_ENTRY = struct.Struct(">IIiI")


@dataclass(frozen=True, slots=True)
class Entry:
    type: int
    offset: int
    count: int


@dataclass(frozen=True, slots=True)
class Header:
    """The index of one header plus its data store; values are decoded on demand."""

    entries: dict[int, Entry]
    data: bytes

    def _entry(self, tag: int, types: frozenset[int] | set[int]) -> Entry | None:
        entry = self.entries.get(tag)
        if entry is None:
            return None
        if entry.type not in types:
            raise RpmdbError(f"rpm header: tag {tag} has unexpected type {entry.type}")
        return entry

    def _cstrings(self, entry: Entry) -> list[str]:
        if entry.count == 0:
            return []
        parts = self.data[entry.offset :].split(b"\0", entry.count)
        if len(parts) <= entry.count:
            raise RpmdbError("rpm header: unterminated string")
        parts.pop()
        # One decode for the whole array: NUL never occurs inside a UTF-8 sequence, nor in what
        # errors="replace" substitutes, so splitting after decoding gives the same strings.
        return b"\0".join(parts).decode("utf-8", errors="replace").split("\0")

    def string(self, tag: int) -> str | None:
        """A STRING, or the first (untranslated) value of an I18NSTRING/STRING_ARRAY."""
        entry = self._entry(tag, _STRING_TYPES)
        if entry is None or entry.count == 0:
            return None
        return self._cstrings(Entry(entry.type, entry.offset, 1))[0]

    def strings(self, tag: int) -> list[str]:
        entry = self._entry(tag, _STRING_TYPES)
        if entry is None:
            return []
        if entry.type == TYPE_STRING:
            return self._cstrings(Entry(entry.type, entry.offset, 1))
        return self._cstrings(entry)

    def ints(self, tag: int) -> list[int]:
        entry = self._entry(tag, set(_INT_FORMATS))
        if entry is None:
            return []
        fmt = _INT_FORMATS[entry.type]
        return list(struct.unpack_from(f">{entry.count}{fmt}", self.data, entry.offset))

    def int(self, tag: int) -> int | None:
        values = self.ints(tag)
        return values[0] if values else None


def parse_header(blob: bytes, tags: frozenset[int] | None = WANTED_TAGS) -> Header:
    """Check every index entry of ``blob`` and keep those for ``tags`` (all when None).

    Raises RpmdbError for anything out of bounds; never reads past the blob.
    """
    if len(blob) < _INTRO.size:
        raise RpmdbError("rpm header: blob shorter than its intro")
    il, dl = _INTRO.unpack_from(blob, 0)
    if il == 0 or il > MAX_INDEX_ENTRIES or dl > MAX_DATA_LENGTH:
        raise RpmdbError(f"rpm header: implausible index count {il} or data length {dl}")
    data_start = _INTRO.size + il * _ENTRY.size
    # Some backends pad the blob, so trailing bytes are allowed; missing bytes are not.
    if data_start + dl > len(blob):
        raise RpmdbError(f"rpm header: {il} entries and {dl} data bytes do not fit in {len(blob)} bytes")
    data = bytes(blob[data_start : data_start + dl])
    entries: dict[int, Entry] = {}
    for tag, typ, offset, count in _ENTRY.iter_unpack(blob[_INTRO.size : data_start]):
        if offset < 0 or offset > dl:
            raise RpmdbError(f"rpm header: tag {tag} offset {offset} outside data of {dl} bytes")
        width = _FIXED_WIDTH.get(typ)
        if width is not None:
            if offset + count * width > dl:
                raise RpmdbError(f"rpm header: tag {tag} runs past the data ({count} x {width} bytes)")
        elif typ in _STRING_TYPES:
            # Each string takes at least its terminator, which bounds count by the bytes left.
            if count > dl - offset:
                raise RpmdbError(f"rpm header: tag {tag} claims {count} strings in {dl - offset} bytes")
        else:
            raise RpmdbError(f"rpm header: tag {tag} has unknown type {typ}")
        if tags is None or tag in tags:
            # Entries appended after the immutable region ("dribble") override earlier ones.
            entries[tag] = Entry(typ, offset, count)
    return Header(entries, data)


@dataclass(slots=True)
class RpmPackage:
    """The fields hullguard needs from one installed package's header."""

    name: str
    version: str
    release: str
    epoch: int | None = None
    arch: str = ""
    sourcerpm: str = ""
    license: str = ""
    vendor: str = ""
    size: int | None = None
    modularity_label: str = ""
    files: list[str] = field(default_factory=list)


def _file_list(header: Header) -> list[str]:
    basenames = header.strings(TAG_BASENAMES)
    if basenames:
        dirnames = header.strings(TAG_DIRNAMES)
        dirindexes = header.ints(TAG_DIRINDEXES)
        if len(dirindexes) != len(basenames):
            raise RpmdbError(f"rpm header: {len(basenames)} basenames but {len(dirindexes)} directory indexes")
        try:
            return [dirnames[i] + base for i, base in zip(dirindexes, basenames, strict=True)]
        except IndexError:
            raise RpmdbError("rpm header: directory index out of range") from None
    return header.strings(TAG_OLDFILENAMES)


def read_package(blob: bytes) -> RpmPackage:
    """Decode the fields of one header blob; RpmdbError if it is malformed or has no name."""
    header = parse_header(blob)
    name = header.string(TAG_NAME)
    if not name:
        raise RpmdbError("rpm header: no package name")
    return RpmPackage(
        name=name,
        version=header.string(TAG_VERSION) or "",
        release=header.string(TAG_RELEASE) or "",
        epoch=header.int(TAG_EPOCH),
        arch=header.string(TAG_ARCH) or "",
        sourcerpm=header.string(TAG_SOURCERPM) or "",
        license=header.string(TAG_LICENSE) or "",
        vendor=header.string(TAG_VENDOR) or "",
        size=header.int(TAG_SIZE),
        modularity_label=header.string(TAG_MODULARITYLABEL) or "",
        files=_file_list(header),
    )
