"""Blob streams: digest checks, codec sniffing, the byte budget and the read-ahead thread."""

from __future__ import annotations

import gzip
import hashlib
import io
import threading

import pytest

from hullguard.image.streams import BadBlob, Budget, HashingReader, ReadAhead, decompressed, sniff


def test_hashing_reader_checks_digest_and_size() -> None:
    data = b"x" * 5000
    good = "sha256:" + hashlib.sha256(data).hexdigest()
    r = HashingReader(io.BytesIO(data), good, "blob", 5000)
    assert r.read() == data
    r.finish()
    bad = HashingReader(io.BytesIO(data), "sha256:" + "0" * 64, "blob")
    with pytest.raises(BadBlob, match="digest mismatch"):
        bad.read()
    short = HashingReader(io.BytesIO(data), good, "blob", 6000)
    with pytest.raises(BadBlob, match="size mismatch"):
        short.read()


@pytest.mark.parametrize(("head", "codec"), [(b"\x1f\x8b\x08", "gzip"), (b"\x28\xb5\x2f\xfd", "zstd"),
                                              (b"BZh9", "bzip2"), (b"\xfd7zXZ\x00", "xz"), (b"usr/", "none")])
def test_sniff(head: bytes, codec: str) -> None:
    assert sniff(head) == codec


def test_budget_stops_a_bomb() -> None:
    bomb = gzip.compress(b"\0" * (4 << 20))
    stream = decompressed(io.BytesIO(bomb), Budget(1 << 20, 10), "layer x")
    with pytest.raises(BadBlob, match="decompression bomb"):
        while stream.read(1 << 16):
            pass


def test_corrupt_gzip_is_a_clear_error() -> None:
    data = bytearray(gzip.compress(b"hello world" * 1000))
    data[20:40] = b"\xff" * 20
    with pytest.raises(BadBlob, match="corrupt"):
        decompressed(io.BytesIO(bytes(data)), Budget(1 << 30, 10), "layer y").read()


def test_read_ahead_delivers_everything_in_order() -> None:
    data = bytes(range(256)) * 20000
    ahead = ReadAhead(io.BytesIO(data), chunk=4096, depth=2)
    out = bytearray()
    for size in (1, 7, 4096, 100000, 3):
        out += ahead.read(size)
    out += ahead.read()
    assert bytes(out) == data
    assert ahead.read(10) == b""
    ahead.close()


def test_read_ahead_raises_pipeline_errors_in_the_reader() -> None:
    data = b"y" * 100000
    ahead = ReadAhead(HashingReader(io.BytesIO(data), "sha256:" + "1" * 64, "layer z"), chunk=4096)
    with pytest.raises(BadBlob, match="digest mismatch"):
        while ahead.read(65536):
            pass
    ahead.close()


def test_read_ahead_close_stops_the_thread_early() -> None:
    class Endless(io.RawIOBase):
        def readable(self) -> bool:
            return True

        def read(self, n: int = -1) -> bytes:
            return b"z" * 1024

    before = threading.active_count()
    ahead = ReadAhead(Endless(), chunk=1024, depth=2)  # type: ignore[arg-type]
    assert ahead.read(10) == b"z" * 10
    ahead.close()
    assert threading.active_count() == before
