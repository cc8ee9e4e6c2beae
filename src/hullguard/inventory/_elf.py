"""A small, bounds-checked ELF reader for analyzers that look inside executables.

Only what the Go and Rust analyzers need: section headers by name, program headers, and
virtual-address reads through PT_LOAD segments. Every offset and size comes from untrusted bytes,
so each one is checked against the buffer before it is used; anything inconsistent raises
``ElfError`` (an ``AnalyzerError``) rather than an IndexError or struct.error.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from hullguard.inventory.base import AnalyzerError

ELF_MAGIC = b"\x7fELF"

PT_LOAD = 1
PF_X = 1
PF_W = 2
PF_R = 4
SHT_NOBITS = 8

# Real binaries have at most a few hundred sections and a dozen segments; the caps keep a hostile
# header from making us build millions of objects.
_MAX_SECTIONS = 4096
_MAX_SEGMENTS = 1024
_SHN_XINDEX = 0xFFFF
_SHN_UNDEF = 0


class ElfError(AnalyzerError):
    """Not an ELF file, or one whose headers point outside the file."""


@dataclass(frozen=True, slots=True)
class Section:
    name: str
    type: int
    flags: int
    addr: int
    offset: int
    size: int


@dataclass(frozen=True, slots=True)
class Segment:
    type: int
    flags: int
    offset: int
    vaddr: int
    filesz: int
    memsz: int


# Executable files that cannot be native binaries: scripts, sources and data that happen to be +x.
_NOT_BINARY_EXT_TEXT = (
    "sh bash zsh ksh csh fish py pyc pl pm rb js mjs cjs ts php lua awk sed tcl jar class txt md "
    "json yaml yml xml html htm conf cfg ini properties bat cmd ps1 go rs toml lock c h cc cpp hpp "
    "java png jpg gif svg css map"
)
NOT_BINARY_EXT = frozenset(_NOT_BINARY_EXT_TEXT.split())


def may_be_native_executable(path: str, mode: int, size: int, min_size: int) -> bool:
    """Cheap pre-filter for analyzers that look inside executables: called for every file of
    every layer, so it only looks at the mode bits, the size and the file extension."""
    if not mode & 0o111 or size < min_size:
        return False
    base = path[path.rfind("/") + 1 :]
    dot = base.rfind(".")
    return dot <= 0 or base[dot + 1 :].lower() not in NOT_BINARY_EXT


def is_elf(data: bytes) -> bool:
    return data[:4] == ELF_MAGIC


class ElfFile:
    """Parsed headers of one ELF image held in memory."""

    def __init__(self, data: bytes) -> None:
        if len(data) < 16 or not is_elf(data):
            raise ElfError("not an ELF file")
        ei_class, ei_data = data[4], data[5]
        if ei_class not in (1, 2):
            raise ElfError(f"bad ELF class {ei_class}")
        if ei_data not in (1, 2):
            raise ElfError(f"bad ELF data encoding {ei_data}")
        self.data = data
        self.is_64 = ei_class == 2
        self.little_endian = ei_data == 1
        self._bo = "<" if self.little_endian else ">"
        hdr = self._unpack("HHIQQQIHHHHHH", 16) if self.is_64 else self._unpack("HHIIIIIHHHHHH", 16)
        (
            self.type,
            self.machine,
            _version,
            self.entry,
            phoff,
            shoff,
            _flags,
            _ehsize,
            phentsize,
            phnum,
            shentsize,
            shnum,
            shstrndx,
        ) = hdr
        self.segments = self._read_segments(phoff, phentsize, phnum)
        self.sections = self._read_sections(shoff, shentsize, shnum, shstrndx)

    @property
    def pointer_size(self) -> int:
        return 8 if self.is_64 else 4

    def _unpack(self, fmt: str, offset: int) -> tuple[int, ...]:
        st = struct.Struct(self._bo + fmt)
        if offset < 0 or offset + st.size > len(self.data):
            raise ElfError("ELF header field past end of file")
        return st.unpack_from(self.data, offset)

    def _table(self, offset: int, entsize: int, count: int, minsize: int, what: str) -> None:
        if count == 0:
            return
        if entsize < minsize:
            raise ElfError(f"{what} entry size {entsize} too small")
        if offset <= 0 or offset + entsize * count > len(self.data):
            raise ElfError(f"{what} table past end of file")

    def _read_segments(self, phoff: int, phentsize: int, phnum: int) -> list[Segment]:
        if phnum > _MAX_SEGMENTS:
            raise ElfError(f"too many program headers ({phnum})")
        if self.is_64:
            fmt, minsize = "IIQQQQQQ", 56
        else:
            fmt, minsize = "IIIIIIII", 32
        self._table(phoff, phentsize, phnum, minsize, "program header")
        out: list[Segment] = []
        for i in range(phnum):
            f = self._unpack(fmt, phoff + i * phentsize)
            if self.is_64:
                p_type, p_flags, p_offset, p_vaddr, _paddr, p_filesz, p_memsz, _align = f
            else:
                p_type, p_offset, p_vaddr, _paddr, p_filesz, p_memsz, p_flags, _align = f
            out.append(Segment(p_type, p_flags, p_offset, p_vaddr, p_filesz, p_memsz))
        return out

    def _section_header(self, offset: int) -> tuple[int, ...]:
        if self.is_64:
            # name, type, flags, addr, offset, size, link, info, addralign, entsize
            return self._unpack("IIQQQQIIQQ", offset)
        return self._unpack("IIIIIIIIII", offset)

    def _read_sections(self, shoff: int, shentsize: int, shnum: int, shstrndx: int) -> list[Section]:
        if shoff == 0:
            return []
        minsize = 64 if self.is_64 else 40
        if shentsize < minsize:
            raise ElfError(f"section header size {shentsize} too small")
        # Extended numbering: with >= 0xff00 sections the real count and string-table index live
        # in section 0's size and link fields.
        if shnum == 0 or shstrndx == _SHN_XINDEX:
            first = self._section_header(shoff)
            if shnum == 0:
                shnum = first[5]
            if shstrndx == _SHN_XINDEX:
                shstrndx = first[6]
        if shnum > _MAX_SECTIONS:
            raise ElfError(f"too many sections ({shnum})")
        self._table(shoff, shentsize, shnum, minsize, "section header")
        raw = [self._section_header(shoff + i * shentsize) for i in range(shnum)]
        names = b""
        if shstrndx != _SHN_UNDEF:
            if shstrndx >= shnum:
                raise ElfError("section name table index out of range")
            strtab = raw[shstrndx]
            names = self._slice(strtab[4], strtab[5], "section name table")
        out: list[Section] = []
        for sh in raw:
            name_off, sh_type, flags, addr, offset, size = sh[:6]
            out.append(Section(_cstring(names, name_off), sh_type, flags, addr, offset, size))
        return out

    def _slice(self, offset: int, size: int, what: str) -> bytes:
        if offset < 0 or size < 0 or offset + size > len(self.data):
            raise ElfError(f"{what} past end of file")
        return self.data[offset : offset + size]

    def section(self, name: str) -> Section | None:
        for sec in self.sections:
            if sec.name == name:
                return sec
        return None

    def section_data(self, section: Section) -> bytes:
        if section.type == SHT_NOBITS:
            return b""
        return self._slice(section.offset, section.size, f"section {section.name!r}")

    def vaddr_to_offset(self, addr: int) -> int | None:
        """File offset of virtual address ``addr``, or None when no loaded bytes back it."""
        seg = self._segment_for(addr)
        if seg is None:
            return None
        return seg.offset + (addr - seg.vaddr)

    def _segment_for(self, addr: int) -> Segment | None:
        for seg in self.segments:
            if seg.type == PT_LOAD and seg.filesz > 0 and seg.vaddr <= addr < seg.vaddr + seg.filesz:
                return seg
        return None

    def read_vaddr(self, addr: int, size: int) -> bytes:
        """Up to ``size`` bytes at virtual address ``addr``, cut short at the end of its segment
        (as the Go toolchain's own reader does); ElfError when the address is unmapped."""
        seg = self._segment_for(addr)
        if seg is None:
            raise ElfError(f"virtual address {addr:#x} is not in a loaded segment")
        n = min(size, seg.vaddr + seg.filesz - addr)
        start = seg.offset + (addr - seg.vaddr)
        # A segment may claim more file bytes than exist; return only what is there.
        if start >= len(self.data):
            raise ElfError(f"segment for {addr:#x} starts past end of file")
        return self.data[start : min(start + n, len(self.data))]

    def first_writable_data_segment(self) -> Segment | None:
        for seg in self.segments:
            if seg.type == PT_LOAD and seg.flags & (PF_X | PF_W) == PF_W:
                return seg
        return None


def _cstring(table: bytes, offset: int) -> str:
    if offset >= len(table):
        return ""
    end = table.find(b"\0", offset)
    if end < 0:
        end = len(table)
    return table[offset:end].decode("latin-1")
