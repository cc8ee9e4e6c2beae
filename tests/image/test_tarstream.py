"""The streaming tar reader, checked against archives written by Python's tarfile in every format
and against hand-made headers for the corners tarfile will not write."""

from __future__ import annotations

import io
import tarfile

import pytest

from hullguard.image import tarstream
from hullguard.image.tarstream import TarError, TarReader


def make_tar(members: list[tuple[str, bytes | None, dict]], fmt: int) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tf:
        for name, data, extra in members:
            ti = tarfile.TarInfo(name)
            for k, v in extra.items():
                setattr(ti, k, v)
            if data is not None:
                ti.size = len(data)
                tf.addfile(ti, io.BytesIO(data))
            else:
                tf.addfile(ti)
    return buf.getvalue()


def read_all(data: bytes, chunk: int = 1 << 20) -> list[tuple[tarstream.TarEntry, bytes]]:
    reader = TarReader(io.BytesIO(data), chunk=chunk)
    out = []
    for entry in reader:
        out.append((entry, reader.read_data() if entry.is_file else b""))
    return out


LONG = "a" * 120 + "/" + "b" * 150 + "/file.txt"
MEMBERS = [
    ("etc/", None, {"type": tarfile.DIRTYPE, "mode": 0o755}),
    ("etc/os-release", b"ID=debian\n", {"mode": 0o644}),
    ("usr/bin/su", b"\x7fELF" + b"\0" * 1000, {"mode": 0o4755}),
    ("etc/link", None, {"type": tarfile.SYMTYPE, "linkname": "../usr/lib/os-release"}),
    ("etc/hard", None, {"type": tarfile.LNKTYPE, "linkname": "etc/os-release"}),
    (LONG, b"long", {}),
    ("empty", b"", {}),
    ("exact512", b"x" * 512, {}),
]


@pytest.mark.parametrize("fmt", [tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT])
@pytest.mark.parametrize("chunk", [512, 4096, 1 << 20])
def test_reads_what_tarfile_wrote(fmt: int, chunk: int) -> None:
    members = [m for m in MEMBERS if not (fmt == tarfile.USTAR_FORMAT and m[0] == LONG)]
    entries = read_all(make_tar(members, fmt), chunk)
    assert [e.name.rstrip("/") for e, _ in entries] == [m[0].rstrip("/") for m in members]
    by_name = {e.name.rstrip("/"): (e, d) for e, d in entries}
    assert by_name["etc/os-release"][1] == b"ID=debian\n"
    assert by_name["usr/bin/su"][0].mode == 0o4755
    assert by_name["usr/bin/su"][1].startswith(b"\x7fELF") and len(by_name["usr/bin/su"][1]) == 1004
    assert by_name["etc/link"][0].type == tarstream.SYMLINK
    assert by_name["etc/link"][0].linkname == "../usr/lib/os-release"
    assert by_name["etc/hard"][0].type == tarstream.HARDLINK
    assert by_name["etc/hard"][0].linkname == "etc/os-release"
    assert by_name["etc"][0].type == tarstream.DIRECTORY
    assert by_name["exact512"][1] == b"x" * 512
    assert by_name["empty"][1] == b""
    if fmt != tarfile.USTAR_FORMAT:
        assert by_name[LONG][1] == b"long"


def test_ustar_prefix_field_joins_long_paths() -> None:
    name = "p" * 90 + "/" + "q" * 90
    data = make_tar([(name, b"1", {})], tarfile.USTAR_FORMAT)
    assert data[345:350] == b"p" * 5  # really stored in the prefix field
    assert [e.name for e, _ in read_all(data)] == [name]


def test_pax_overrides_name_size_and_linkpath() -> None:
    data = make_tar(
        [("ünïcödé/" + "n" * 200, b"abc", {"pax_headers": {"comment": "hi"}}),
         ("l", None, {"type": tarfile.SYMTYPE, "linkname": "t" * 300})],
        tarfile.PAX_FORMAT,
    )
    entries = read_all(data)
    assert entries[0][0].name == "ünïcödé/" + "n" * 200 and entries[0][1] == b"abc"
    assert entries[1][0].linkname == "t" * 300


def test_pax_global_header_applies_to_following_entries() -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT, pax_headers={"uid": "4242"}) as tf:
        ti = tarfile.TarInfo("a")
        ti.size = 1
        tf.addfile(ti, io.BytesIO(b"1"))
    (entry, data), = read_all(buf.getvalue())
    assert entry.uid == 4242 and data == b"1"


def test_unread_data_is_skipped_and_read_limit_keeps_alignment() -> None:
    data = make_tar([("big", b"A" * 5000, {}), ("next", b"B" * 10, {})], tarfile.PAX_FORMAT)
    reader = TarReader(io.BytesIO(data), chunk=700)
    it = iter(reader)
    first = next(it)
    assert reader.read_data(limit=100) == b"A" * 100
    second = next(it)
    assert second.name == "next" and reader.read_data() == b"B" * 10
    assert list(it) == []
    assert first.size == 5000


def test_base256_size_field() -> None:
    header = bytearray(make_tar([("f", b"xyz", {})], tarfile.USTAR_FORMAT)[:512])
    header[124:136] = b"\x80" + b"\0" * 10 + b"\x03"
    header[148:156] = b" " * 8
    header[148:156] = f"{sum(header):06o}\0 ".encode()
    archive = bytes(header) + b"xyz".ljust(512, b"\0") + b"\0" * 1024
    (entry, data), = read_all(archive)
    assert entry.size == 3 and data == b"xyz"


def test_bad_checksum_is_an_error() -> None:
    data = bytearray(make_tar([("f", b"1", {})], tarfile.USTAR_FORMAT))
    data[10] ^= 0xFF
    with pytest.raises(TarError, match="checksum"):
        read_all(bytes(data))


def test_truncated_data_is_an_error() -> None:
    data = make_tar([("f", b"x" * 2000, {})], tarfile.USTAR_FORMAT)
    with pytest.raises(TarError, match="truncated"):
        read_all(data[:1200])


def test_truncated_header_is_an_error() -> None:
    data = make_tar([("f", b"x", {}), ("g", b"y", {})], tarfile.USTAR_FORMAT)
    with pytest.raises(TarError, match="truncated"):
        read_all(data[:1024 + 100])


def test_eof_without_end_markers_is_accepted() -> None:
    data = make_tar([("f", b"x", {})], tarfile.USTAR_FORMAT)
    assert [e.name for e, _ in read_all(data[:1024])] == ["f"]


def test_not_a_tar_is_an_error() -> None:
    with pytest.raises(TarError):
        read_all(b"this is not a tar archive at all".ljust(600, b"!"))


@pytest.mark.parametrize("payload", [b"999999999999 path=x\n", b"5 a\n", b"nonsense", b"10 path\n\n\n\n\n\n"])
def test_malformed_pax_records(payload: bytes) -> None:
    ti = tarfile.TarInfo("././@PaxHeader")
    ti.type = tarfile.XHDTYPE
    ti.size = len(payload)
    header = ti.tobuf(tarfile.USTAR_FORMAT)
    archive = header + payload.ljust((len(payload) + 511) // 512 * 512, b"\0") + make_tar([("f", b"1", {})], 0)
    with pytest.raises(TarError, match="pax"):
        read_all(archive)


def test_huge_long_name_header_is_refused_without_buffering() -> None:
    ti = tarfile.TarInfo("././@LongLink")
    ti.type = tarfile.GNUTYPE_LONGNAME
    ti.size = 1 << 40
    header = ti.tobuf(tarfile.GNU_FORMAT)
    with pytest.raises(TarError, match="implausibly large"):
        read_all(header + b"\0" * 512)


def test_entry_count_is_bounded() -> None:
    data = make_tar([(f"f{i}", b"", {}) for i in range(20)], tarfile.USTAR_FORMAT)
    reader = TarReader(io.BytesIO(data), max_entries=10)
    with pytest.raises(TarError, match="more than 10 entries"):
        list(reader)


def test_hardlink_with_bogus_size_does_not_misalign() -> None:
    # Hardlinks carry no data; a writer that sets a size must not make us swallow the next header.
    ti = tarfile.TarInfo("link")
    ti.type = tarfile.LNKTYPE
    ti.linkname = "target"
    ti.size = 0
    header = bytearray(ti.tobuf(tarfile.USTAR_FORMAT))
    header[124:136] = b"00000001000\0"
    header[148:156] = b" " * 8
    header[148:156] = f"{sum(header):06o}\0 ".encode()
    archive = bytes(header) + make_tar([("after", b"ok", {})], tarfile.USTAR_FORMAT)
    names = [(e.name, d) for e, d in read_all(archive)]
    assert names == [("link", b""), ("after", b"ok")]
