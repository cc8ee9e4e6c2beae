"""Byte streams for layer blobs: digest verification, decompression by content sniffing, and a
budget on uncompressed bytes that turns decompression bombs into a clear error.

Media types are advisory (registries and hand-made archives get them wrong), so the codec is
chosen from the first bytes of the blob, as containerd does.
"""

from __future__ import annotations

import hashlib
import io
from typing import BinaryIO

from hullguard.model import HullguardError

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
BZIP2_MAGIC = b"BZh"
XZ_MAGIC = b"\xfd7zXZ\x00"


class BadBlob(HullguardError):
    """A blob is corrupt, truncated, oversized or does not match its digest."""


class Budget:
    """Uncompressed bytes and entries an image may expand to. Shared by all its layers."""

    def __init__(self, max_bytes: int, max_entries: int) -> None:
        self.max_bytes = max_bytes
        self.max_entries = max_entries
        self.bytes = 0
        self.entries = 0

    def charge(self, n: int) -> None:
        self.bytes += n
        if self.bytes > self.max_bytes:
            raise BadBlob(
                f"image expands to more than {self.max_bytes} bytes uncompressed "
                "(a decompression bomb? raise --max-uncompressed if it is genuine)"
            )

    def count_entry(self) -> None:
        self.entries += 1
        if self.entries > self.max_entries:
            raise BadBlob(f"image has more than {self.max_entries} entries (raise --max-entries if genuine)")


class HashingReader(io.RawIOBase):
    """Hashes what passes through and, at EOF, checks it against the expected digest."""

    def __init__(self, raw: BinaryIO, expected: str = "", what: str = "blob", size: int = -1) -> None:
        self._raw = raw
        self.expected = expected
        self.what = what
        self.size = size
        algo = expected.split(":", 1)[0] if expected else "sha256"
        if algo not in ("sha256", "sha512"):
            raise BadBlob(f"{what}: unsupported digest algorithm {algo!r}")
        self._hash = hashlib.new(algo)
        self._algo = algo
        self.count = 0
        self.verified = False

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:  # type: ignore[override]
        n = self._raw.readinto(b) if hasattr(self._raw, "readinto") else self._readinto_fallback(b)
        if n:
            self._hash.update(memoryview(b)[:n])
            self.count += n
        else:
            self.finish()
        return n or 0

    def _readinto_fallback(self, b) -> int:
        data = self._raw.read(len(b))
        b[: len(data)] = data
        return len(data)

    @property
    def digest(self) -> str:
        return f"{self._algo}:{self._hash.hexdigest()}"

    def finish(self) -> None:
        if self.verified:
            return
        self.verified = True
        if self.size >= 0 and self.count != self.size:
            raise BadBlob(f"{self.what}: size mismatch: expected {self.size} bytes, got {self.count}")
        if self.expected and self.digest != self.expected:
            raise BadBlob(f"{self.what}: digest mismatch: expected {self.expected}, got {self.digest}")

    def drain(self) -> None:
        """Read to EOF so the digest can be checked even when the tar ended early."""
        buf = bytearray(1 << 20)
        while self.readinto(buf):
            pass


class BudgetReader(io.RawIOBase):
    """Charges every decompressed byte to the image's budget; turns codec errors into BadBlob."""

    def __init__(self, inner: BinaryIO, budget: Budget, what: str) -> None:
        self._inner = inner
        self._budget = budget
        self._what = what

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        try:
            data = self._inner.read(n)
        except HullguardError:
            raise
        except Exception as exc:  # isal, zstandard, bz2 and lzma each raise their own types
            raise BadBlob(f"{self._what}: corrupt or truncated compressed data ({_one_line(exc)})") from None
        self._budget.charge(len(data))
        return data

    def readinto(self, b) -> int:  # type: ignore[override]
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)


def _one_line(exc: Exception) -> str:
    text = " ".join(str(exc).split())
    return text[:120] or type(exc).__name__


class _Prefixed(io.RawIOBase):
    """A stream with some already-read bytes put back in front of it."""

    def __init__(self, head: bytes, rest: BinaryIO) -> None:
        self._head = head
        self._rest = rest

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:  # type: ignore[override]
        if self._head:
            n = min(len(b), len(self._head))
            b[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        data = self._rest.read(len(b))
        b[: len(data)] = data
        return len(data)


def sniff(head: bytes) -> str:
    if head.startswith(GZIP_MAGIC):
        return "gzip"
    if head.startswith(ZSTD_MAGIC):
        return "zstd"
    if head.startswith(BZIP2_MAGIC):
        return "bzip2"
    if head.startswith(XZ_MAGIC):
        return "xz"
    return "none"


def decompressed(raw: BinaryIO, budget: Budget, what: str) -> BinaryIO:
    """Return a reader of the uncompressed bytes of ``raw``, whatever codec it uses."""
    head = raw.read(8)
    stream: BinaryIO = _Prefixed(head, raw)  # type: ignore[assignment]
    codec = sniff(head)
    if codec == "gzip":
        try:
            from isal.igzip import IGzipFile
        except ImportError:  # pragma: no cover - isal is a dependency; keep working without it
            from gzip import GzipFile as IGzipFile  # type: ignore[assignment]
        inner: BinaryIO = IGzipFile(fileobj=io.BufferedReader(stream, 1 << 20), mode="rb")  # type: ignore[assignment]
    elif codec == "zstd":
        import zstandard

        inner = zstandard.ZstdDecompressor().stream_reader(stream, read_across_frames=True)  # type: ignore[assignment]
    elif codec == "bzip2":
        import bz2

        inner = bz2.BZ2File(stream)  # type: ignore[assignment]
    elif codec == "xz":
        import lzma

        inner = lzma.LZMAFile(stream)  # type: ignore[assignment]  # noqa: SIM115
    else:
        inner = stream
    return BudgetReader(inner, budget, what)  # type: ignore[return-value]


class ReadAhead(io.RawIOBase):
    """Reads ``inner`` on a background thread, a bounded number of chunks ahead.

    Decompression (isal, zstandard), hashing and file reads release the GIL, so on a second core
    they overlap with the tar parsing and analyzers on the first. Errors raised by the pipeline
    (a digest mismatch, corrupt data) are re-raised in the reader, in order.
    """

    _END = object()

    def __init__(self, inner: BinaryIO, chunk: int = 1 << 20, depth: int = 8) -> None:
        import queue
        import threading

        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._buf = memoryview(b"")
        self._done = False
        self._thread = threading.Thread(target=self._pump, args=(inner, chunk), daemon=True)
        self._thread.start()

    def _pump(self, inner: BinaryIO, chunk: int) -> None:
        try:
            while not self._stop.is_set():
                data = inner.read(chunk)
                if not data:
                    break
                self._put(data)
            self._put(self._END)
        except BaseException as exc:  # handed to the reader, which raises it
            self._put(exc)

    def _put(self, item: object) -> None:
        import queue

        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:  # type: ignore[override]
        if not self._buf:
            if self._done:
                return 0
            item = self._queue.get()
            if item is self._END:
                self._done = True
                return 0
            if isinstance(item, BaseException):
                self._done = True
                raise item
            self._buf = memoryview(item)  # type: ignore[arg-type]
        n = min(len(b), len(self._buf))
        b[:n] = self._buf[:n]
        self._buf = self._buf[n:]
        return n

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            chunks = []
            while True:
                data = self.read(1 << 20)
                if not data:
                    return b"".join(chunks)
                chunks.append(data)
        if not self._buf and not self._done:
            item = self._queue.get()
            if item is self._END:
                self._done = True
            elif isinstance(item, BaseException):
                self._done = True
                raise item
            else:
                self._buf = memoryview(item)  # type: ignore[arg-type]
        if not self._buf:
            return b""
        if n >= len(self._buf):
            out = self._buf.tobytes()
            self._buf = memoryview(b"")
            return out
        out = self._buf[:n].tobytes()
        self._buf = self._buf[n:]
        return out

    def close(self) -> None:
        """Stop the pump (the reader may give up early, on a bad layer)."""
        import queue

        self._stop.set()
        try:
            while True:
                self._queue.get_nowait()
        except queue.Empty:
            pass
        self._thread.join(timeout=5)
        super().close()
