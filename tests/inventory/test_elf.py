from __future__ import annotations

import shutil
import struct
import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hullguard.inventory._elf import ElfError, ElfFile, may_be_native_executable
from tests.builders.elf import SHF_ALLOC, SHF_EXECINSTR, SHF_WRITE, Sec, build_elf

LAYOUTS = [(64, True), (64, False), (32, True), (32, False)]


def _sample(bits: int, little: bool) -> bytes:
    return build_elf(
        [
            Sec(".text", b"\x90" * 32, addr=0x401000, flags=SHF_ALLOC | SHF_EXECINSTR),
            Sec(".data", b"0123456789abcdef", addr=0x600000, flags=SHF_ALLOC | SHF_WRITE),
            Sec(".comment", b"not loaded"),
        ],
        bits=bits,
        little=little,
    ).data


@pytest.mark.parametrize(("bits", "little"), LAYOUTS)
def test_sections_and_segments_in_every_layout(bits: int, little: bool) -> None:
    elf = ElfFile(_sample(bits, little))
    assert elf.is_64 == (bits == 64)
    assert elf.little_endian == little
    assert elf.pointer_size == bits // 8
    assert [s.name for s in elf.sections] == ["", ".text", ".data", ".comment", ".shstrtab"]
    comment = elf.section(".comment")
    assert comment is not None
    assert elf.section_data(comment) == b"not loaded"
    assert elf.section(".missing") is None
    assert len(elf.segments) == 2
    seg = elf.first_writable_data_segment()
    assert seg is not None and seg.vaddr == 0x600000


@pytest.mark.parametrize(("bits", "little"), LAYOUTS)
def test_virtual_address_reads_stop_at_segment_end(bits: int, little: bool) -> None:
    elf = ElfFile(_sample(bits, little))
    assert elf.read_vaddr(0x600004, 4) == b"4567"
    assert elf.read_vaddr(0x60000C, 100) == b"cdef"
    data_sec = elf.section(".data")
    assert data_sec is not None
    assert elf.vaddr_to_offset(0x600000) == data_sec.offset
    assert elf.vaddr_to_offset(0x600010) is None
    with pytest.raises(ElfError):
        elf.read_vaddr(0x700000, 4)


@pytest.mark.skipif(shutil.which("readelf") is None, reason="binutils readelf not installed")
@pytest.mark.parametrize(("bits", "little"), LAYOUTS)
def test_builder_output_is_accepted_by_readelf(tmp_path, bits: int, little: bool) -> None:
    path = tmp_path / "x.elf"
    path.write_bytes(_sample(bits, little))
    out = subprocess.run(["readelf", "-W", "-S", "-l", str(path)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "Warning" not in out.stderr
    assert ".data" in out.stdout and ".comment" in out.stdout
    assert out.stdout.count("LOAD") == 2


def test_rejects_non_elf_and_bad_idents() -> None:
    with pytest.raises(ElfError):
        ElfFile(b"MZ" + b"\0" * 100)
    good = bytearray(_sample(64, True))
    for index, value in ((4, 3), (5, 0)):
        bad = bytearray(good)
        bad[index] = value
        with pytest.raises(ElfError):
            ElfFile(bytes(bad))


def test_truncated_file_raises_elf_error() -> None:
    data = _sample(64, True)
    for cut in (16, 40, 63, 100, len(data) - 10):
        with pytest.raises(ElfError):
            ElfFile(data[:cut])


def test_section_offset_past_end_is_reported_on_read() -> None:
    img = build_elf([Sec(".dep-v0", b"payload")])
    elf = ElfFile(img.data)
    sec = elf.section(".dep-v0")
    assert sec is not None
    # Point the section far past the end of the file.
    shoff = struct.unpack_from("<Q", img.data, 0x28)[0]
    patched = bytearray(img.data)
    struct.pack_into("<Q", patched, shoff + 64 * 1 + 24, len(img.data) + 4096)
    elf2 = ElfFile(bytes(patched))
    sec2 = elf2.section(".dep-v0")
    assert sec2 is not None
    with pytest.raises(ElfError):
        elf2.section_data(sec2)


def test_huge_section_count_is_refused() -> None:
    patched = bytearray(_sample(64, True))
    struct.pack_into("<H", patched, 0x3C, 0xFF00)  # e_shnum
    with pytest.raises(ElfError):
        ElfFile(bytes(patched))


def test_string_table_index_out_of_range() -> None:
    patched = bytearray(_sample(64, True))
    struct.pack_into("<H", patched, 0x3E, 99)  # e_shstrndx
    with pytest.raises(ElfError):
        ElfFile(bytes(patched))


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_random_corruption_only_raises_elf_error(data: st.DataObject) -> None:
    raw = bytearray(_sample(data.draw(st.sampled_from([32, 64])), data.draw(st.booleans())))
    for _ in range(data.draw(st.integers(1, 8))):
        pos = data.draw(st.integers(0, len(raw) - 1))
        raw[pos] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(16, len(raw)))
    try:
        elf = ElfFile(bytes(raw[:cut]))
        for sec in elf.sections:
            try:
                elf.section_data(sec)
            except ElfError:
                pass
        for seg in elf.segments:
            try:
                elf.read_vaddr(seg.vaddr, 64)
            except ElfError:
                pass
    except ElfError:
        pass


def test_executable_prefilter() -> None:
    assert may_be_native_executable("usr/bin/app", 0o755, 2_000_000, 4096)
    assert may_be_native_executable("usr/lib/libx.so.1", 0o755, 2_000_000, 4096)
    assert not may_be_native_executable("usr/bin/app", 0o644, 2_000_000, 4096)
    assert not may_be_native_executable("usr/bin/app", 0o755, 100, 4096)
    assert not may_be_native_executable("usr/bin/run.SH", 0o755, 2_000_000, 4096)
    assert not may_be_native_executable("opt/tool.py", 0o755, 2_000_000, 4096)
    assert may_be_native_executable("usr/bin/.hidden", 0o755, 2_000_000, 4096)
