"""Builds minimal, valid ELF images with chosen sections, for analyzer tests.

Each section with an address also gets a PT_LOAD segment that maps exactly its bytes, so that
virtual-address reads (Go's pre-1.18 build info) can be exercised. The output is accepted by
binutils' readelf, which the tests use as a cross-check where it is installed.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

SHT_PROGBITS = 1
SHT_STRTAB = 3
SHF_WRITE = 1
SHF_ALLOC = 2
SHF_EXECINSTR = 4
PT_LOAD = 1
PF_X, PF_W, PF_R = 1, 2, 4


@dataclass
class Sec:
    name: str
    data: bytes
    addr: int = 0  # 0: not loaded (no segment)
    flags: int = SHF_ALLOC
    type: int = SHT_PROGBITS


@dataclass
class ElfImage:
    data: bytes
    offsets: dict[str, int] = field(default_factory=dict)  # section name -> file offset


def _align(n: int, a: int = 16) -> int:
    return (n + a - 1) // a * a


def build_elf(sections: list[Sec], *, bits: int = 64, little: bool = True, machine: int = 62) -> ElfImage:
    bo = "<" if little else ">"
    is64 = bits == 64
    ehsize = 64 if is64 else 52
    phentsize = 56 if is64 else 32
    shentsize = 64 if is64 else 40
    loaded = [s for s in sections if s.addr]
    phoff = ehsize if loaded else 0
    pos = _align(ehsize + phentsize * len(loaded))

    shstr = bytearray(b"\0")
    name_off: dict[str, int] = {}
    for s in [*sections, Sec(".shstrtab", b"")]:
        name_off[s.name] = len(shstr)
        shstr += s.name.encode() + b"\0"

    body = bytearray()
    offsets: dict[str, int] = {}
    for s in sections:
        pos = _align(pos)
        body += b"\0" * (pos - ehsize - phentsize * len(loaded) - len(body))
        offsets[s.name] = pos
        body += s.data
        pos += len(s.data)
    pos = _align(pos)
    body += b"\0" * (pos - ehsize - phentsize * len(loaded) - len(body))
    shstr_off = pos
    body += shstr
    pos += len(shstr)
    pos = _align(pos, 8)
    body += b"\0" * (pos - ehsize - phentsize * len(loaded) - len(body))
    shoff = pos
    shnum = len(sections) + 2  # null section + ours + .shstrtab

    if is64:
        ehdr = struct.pack(
            bo + "16sHHIQQQIHHHHHH",
            b"\x7fELF" + bytes([2, 1 if little else 2, 1]) + b"\0" * 9,
            2,
            machine,
            1,
            0,
            phoff,
            shoff,
            0,
            ehsize,
            phentsize,
            len(loaded),
            shentsize,
            shnum,
            shnum - 1,
        )
    else:
        ehdr = struct.pack(
            bo + "16sHHIIIIIHHHHHH",
            b"\x7fELF" + bytes([1, 1 if little else 2, 1]) + b"\0" * 9,
            2,
            machine,
            1,
            0,
            phoff,
            shoff,
            0,
            ehsize,
            phentsize,
            len(loaded),
            shentsize,
            shnum,
            shnum - 1,
        )

    phdrs = bytearray()
    for s in loaded:
        pflags = PF_R | (PF_W if s.flags & SHF_WRITE else 0) | (PF_X if s.flags & SHF_EXECINSTR else 0)
        off, size = offsets[s.name], len(s.data)
        if is64:
            phdrs += struct.pack(bo + "IIQQQQQQ", PT_LOAD, pflags, off, s.addr, s.addr, size, size, 16)
        else:
            phdrs += struct.pack(bo + "IIIIIIII", PT_LOAD, off, s.addr, s.addr, size, size, pflags, 16)

    def shdr(name: int, typ: int, flags: int, addr: int, off: int, size: int) -> bytes:
        if is64:
            return struct.pack(bo + "IIQQQQIIQQ", name, typ, flags, addr, off, size, 0, 0, 1, 0)
        return struct.pack(bo + "IIIIIIIIII", name, typ, flags, addr, off, size, 0, 0, 1, 0)

    shdrs = bytearray(shdr(0, 0, 0, 0, 0, 0))
    for s in sections:
        shdrs += shdr(name_off[s.name], s.type, s.flags, s.addr, offsets[s.name], len(s.data))
    shdrs += shdr(name_off[".shstrtab"], SHT_STRTAB, 0, 0, shstr_off, len(shstr))

    out = bytes(ehdr) + bytes(phdrs) + bytes(body) + bytes(shdrs)
    return ElfImage(out, offsets)
