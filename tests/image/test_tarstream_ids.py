"""Owner ids (uid/gid) in the streaming tar reader, from headers built by hand after POSIX ustar
(octal digits ended by NUL or space at offsets 108 and 116), the GNU base-256 extension (first
byte's high bit set, the rest a big-endian number) and pax "uid"/"gid" records, which win."""

from __future__ import annotations

import io
import tarfile

import pytest

from hullguard.image.tarstream import TarError, TarReader


def header(name: str = "usr/bin/tool", *, uid: bytes = b"0000000\0", gid: bytes = b"0000000\0",
           size: int = 0, typeflag: bytes = b"0", mode: int = 0o4755) -> bytes:
    """One ustar header block, field by field (POSIX.1-2017 pax, "ustar Interchange Format")."""
    h = bytearray(512)
    h[0:100] = name.encode().ljust(100, b"\0")
    h[100:108] = f"{mode:07o}\0".encode()
    assert len(uid) == 8 and len(gid) == 8
    h[108:116] = uid
    h[116:124] = gid
    h[124:136] = f"{size:011o}\0".encode()
    h[136:148] = b"14712345670\0"  # mtime
    h[156:157] = typeflag
    h[257:263] = b"ustar\0"
    h[263:265] = b"00"
    h[265:297] = b"root".ljust(32, b"\0")
    h[297:329] = b"root".ljust(32, b"\0")
    # The checksum is computed with its own field taken as eight spaces.
    h[148:156] = b" " * 8
    h[148:156] = f"{sum(h):06o}\0 ".encode()
    return bytes(h)


def pax(records: dict[str, str]) -> bytes:
    body = b""
    for key, value in records.items():
        rec = f" {key}={value}\n".encode()
        n = len(rec) + 1
        while len(str(n)) + len(rec) != n:
            n += 1
        body += str(n).encode() + rec
    return header("PaxHeader/tool", typeflag=b"x", size=len(body), mode=0o644) + body.ljust(
        (len(body) + 511) // 512 * 512, b"\0")


def base256(value: int) -> bytes:
    return bytes([0x80]) + value.to_bytes(7, "big")


def entries(*blocks: bytes) -> list:
    return list(TarReader(io.BytesIO(b"".join(blocks) + b"\0" * 1024)))


def test_octal_ids_ended_by_nul() -> None:
    (entry,) = entries(header(uid=b"0001750\0", gid=b"0000062\0"))
    assert (entry.uid, entry.gid) == (1000, 50)
    assert entry.mode == 0o4755


def test_root_owner_is_zero() -> None:
    (entry,) = entries(header())
    assert (entry.uid, entry.gid) == (0, 0)


@pytest.mark.parametrize("field", [b"   1750 ", b"1750 \0\0\0", b"0001750 ", b"1750\0\0\0\0"])
def test_octal_ids_with_spaces_or_short_digits(field: bytes) -> None:
    # Historic writers pad with leading spaces or end the digits early; POSIX readers accept both.
    (entry,) = entries(header(uid=field, gid=field))
    assert (entry.uid, entry.gid) == (1000, 1000)


def test_gnu_base256_ids_beyond_the_octal_range() -> None:
    big = 8 ** 7 + 5  # one past what seven octal digits can hold, plus four
    (entry,) = entries(header(uid=base256(big), gid=base256(70000)))
    assert (entry.uid, entry.gid) == (big, 70000)


def test_negative_base256_id_is_refused() -> None:
    (entry,) = entries(header(uid=b"\xff" * 8))
    with pytest.raises(TarError):
        _ = entry.uid


def test_bad_octal_digits_are_an_error_only_when_asked_for() -> None:
    (entry,) = entries(header(uid=b"00017x9\0"))
    assert entry.name == "usr/bin/tool" and entry.gid == 0
    with pytest.raises(TarError, match="bad number"):
        _ = entry.uid


def test_pax_records_override_the_header() -> None:
    (entry,) = entries(pax({"uid": "123456789", "gid": "42"}), header(uid=b"0001750\0", gid=b"0001750\0"))
    assert (entry.uid, entry.gid) == (123456789, 42)
    # The override is for that one entry.
    (_, after) = entries(pax({"uid": "5"}), header(), header("usr/bin/other", uid=b"0000007\0"))
    assert after.uid == 7


@pytest.mark.parametrize("value", ["\u00b2", "9" * 5000, "-1", "12a", ""])
def test_hostile_pax_ids_fall_back_to_the_header(value: str) -> None:
    (entry,) = entries(pax({"uid": value, "gid": value}), header(uid=b"0000144\0", gid=b"0000144\0"))
    assert (entry.uid, entry.gid) == (100, 100)


@pytest.mark.parametrize("fmt", [tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT])
def test_ids_written_by_tarfile(fmt: int) -> None:
    # Python's tarfile is an independent writer: octal for small ids, base-256 (GNU) or a pax
    # record (pax) for an id past the octal range.
    buf = io.BytesIO()
    ids = [(0, 0), (1000, 50), (65534, 65534)]
    if fmt != tarfile.USTAR_FORMAT:
        ids.append((8 ** 7 + 1, 3))
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tf:
        for i, (uid, gid) in enumerate(ids):
            ti = tarfile.TarInfo(f"f{i}")
            ti.uid, ti.gid = uid, gid
            tf.addfile(ti, io.BytesIO(b""))
    got = [(e.uid, e.gid) for e in TarReader(io.BytesIO(buf.getvalue()))]
    assert got == ids
