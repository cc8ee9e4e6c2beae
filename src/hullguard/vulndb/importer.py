"""Reading OSV records out of directories, zip archives (OSV's ``all.zip``) and tar files.

Every container format is read with hard bounds (per record, per archive, number of members),
so a zip bomb or a tar of a million empty files costs a bounded amount of work. A record that
does not parse is counted and skipped; an archive that is itself broken (truncated, bad CRC)
raises :class:`ArchiveError`, and the caller keeps the source's previous data.
"""

from __future__ import annotations

import os
import tarfile
import zipfile
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from hullguard.model import HullguardError
from hullguard.vulndb.osv import MAX_RECORD_BYTES, Advisory, OSVError, parse
from hullguard.vulndb.store import ImportStats, Store


class ArchiveError(HullguardError):
    """The archive itself is unreadable: nothing from it is imported."""


@dataclass
class Limits:
    record_bytes: int = MAX_RECORD_BYTES
    total_bytes: int = 16 * 1024**3  # all of OSV uncompressed is a few GiB
    members: int = 2_000_000


Doc = tuple[str, bytes | None, str]  # (name, data, error); data is None when the member was refused


def _take(total: list[int], n: int, limits: Limits, where: str) -> None:
    total[0] += n
    if total[0] > limits.total_bytes:
        raise ArchiveError(f"{where}: more than {limits.total_bytes} bytes of records (limit)")


def iter_zip(path: str, limits: Limits | None = None) -> Iterator[Doc]:
    limits = limits or Limits()
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise ArchiveError(f"{path}: not a readable zip archive: {exc}") from None
    total = [0]
    with zf:
        infos = zf.infolist()
        if len(infos) > limits.members:
            raise ArchiveError(f"{path}: {len(infos)} members (limit {limits.members})")
        for info in infos:
            if info.is_dir() or not info.filename.endswith(".json"):
                continue
            if info.file_size > limits.record_bytes:
                yield info.filename, None, f"{info.filename}: {info.file_size} bytes (limit {limits.record_bytes})"
                continue
            try:
                with zf.open(info) as f:
                    # Read one byte past the limit: the header's size field is not to be trusted.
                    data = f.read(limits.record_bytes + 1)
            except (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError) as exc:
                raise ArchiveError(f"{path}: corrupt member {info.filename}: {exc}") from None
            if len(data) > limits.record_bytes:
                yield info.filename, None, f"{info.filename}: larger than {limits.record_bytes} bytes"
                continue
            _take(total, len(data), limits, path)
            yield info.filename, data, ""


def iter_tar(path: str, limits: Limits | None = None) -> Iterator[Doc]:
    limits = limits or Limits()
    total = [0]
    count = 0
    try:
        with tarfile.open(path, "r:*") as tf:
            for member in tf:
                count += 1
                if count > limits.members:
                    raise ArchiveError(f"{path}: more than {limits.members} members (limit)")
                if not member.isfile() or not member.name.endswith(".json"):
                    continue
                if member.size > limits.record_bytes:
                    yield member.name, None, f"{member.name}: {member.size} bytes (limit {limits.record_bytes})"
                    continue
                f = tf.extractfile(member)
                if f is None:
                    continue
                data = f.read(limits.record_bytes + 1)
                _take(total, len(data), limits, path)
                yield member.name, data, ""
    except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
        raise ArchiveError(f"{path}: not a readable tar archive: {exc}") from None


def iter_dir(path: str, limits: Limits | None = None) -> Iterator[Doc]:
    limits = limits or Limits()
    total = [0]
    count = 0
    for root, dirs, files in os.walk(path):
        dirs.sort()
        for name in sorted(files):
            if not name.endswith(".json"):
                continue
            count += 1
            if count > limits.members:
                raise ArchiveError(f"{path}: more than {limits.members} files (limit)")
            full = os.path.join(root, name)
            rel = os.path.relpath(full, path)
            try:
                with open(full, "rb") as f:
                    data = f.read(limits.record_bytes + 1)
            except OSError as exc:
                yield rel, None, f"{rel}: {exc.strerror}"
                continue
            if len(data) > limits.record_bytes:
                yield rel, None, f"{rel}: larger than {limits.record_bytes} bytes"
                continue
            _take(total, len(data), limits, path)
            yield rel, data, ""


def iter_path(path: str, limits: Limits | None = None) -> Iterator[Doc]:
    """A directory, an OSV zip, a tar (optionally compressed) or a single JSON record."""
    if os.path.isdir(path):
        return iter_dir(path, limits)
    if not os.path.isfile(path):
        raise HullguardError(f"{path}: no such file or directory")
    with open(path, "rb") as f:
        head = f.read(512)
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        return iter_zip(path, limits)
    if head.lstrip()[:1] == b"{":
        return _single(path, limits or Limits())
    if tarfile.is_tarfile(path) or head[:2] == b"\x1f\x8b" or head[:3] == b"BZh" or head[:6] == b"\xfd7zXZ\x00":
        return iter_tar(path, limits)
    raise HullguardError(f"{path}: neither a directory, a zip, a tar nor a JSON record")


def _single(path: str, limits: Limits) -> Iterator[Doc]:
    with open(path, "rb") as f:
        data = f.read(limits.record_bytes + 1)
    if len(data) > limits.record_bytes:
        yield os.path.basename(path), None, f"{path}: larger than {limits.record_bytes} bytes"
    else:
        yield os.path.basename(path), data, ""


def parse_docs(docs: Iterable[Doc], stats: ImportStats) -> Iterator[Advisory]:
    """Advisories from raw documents; what does not parse is counted in ``stats`` and skipped."""
    for name, data, error in docs:
        if data is None:
            stats.skip(error)
            continue
        try:
            yield parse(data)
        except OSVError as exc:
            stats.skip(f"{name}: {exc}")


def import_path(store: Store, path: str, source: str = "", *, replace: bool = True,
                limits: Limits | None = None, etag: str = "") -> ImportStats:
    """Import every record under ``path`` as ``source`` (default ``local:<absolute path>``).

    Importing the same path again replaces what it brought the first time. ``etag`` is kept
    with the source so that a later run can tell whether ``path`` changed.
    """
    source = source or f"local:{os.path.abspath(path)}"
    stats = ImportStats(source=source)
    docs = iter_path(path, limits)
    with store.staged() as target:
        target.replace_source(source, parse_docs(docs, stats), stats, url=os.path.abspath(path), replace=replace,
                              etag=etag)
    return stats


def snapshot_fingerprint(path: str | None = None) -> str:
    """A digest of the bundled snapshot's file names and contents: it changes when a release
    adds or updates records, which is when a cache built from an older snapshot is refreshed."""
    import hashlib

    root = path or snapshot_dir()
    h = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            if name.endswith(".json"):
                full = os.path.join(dirpath, name)
                h.update(os.path.relpath(full, root).encode() + b"\0")
                with open(full, "rb") as fh:
                    h.update(hashlib.sha256(fh.read()).digest())
    return "sha256:" + h.hexdigest()


SNAPSHOT_SOURCE = "snapshot"


def snapshot_dir() -> str:
    """The advisory snapshot shipped with hullguard (real OSV records for the demo image)."""
    return os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data", "advisories")
