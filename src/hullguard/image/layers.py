"""Layer semantics: safe paths, one pass of analyzers over a layer, and the OCI squash.

A layer is analysed on its own (so results can be cached by layer digest and shared between
images); the squash then applies layers in order with OCI whiteout semantics and works out, for
every package, which layer introduced it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import BinaryIO

import msgspec

from hullguard.image import tarstream
from hullguard.image.streams import BadBlob, Budget
from hullguard.inventory.base import Analyzer, AnalyzerError, FileInfo
from hullguard.model import FileFacts, Finding, Package

WHITEOUT = ".wh."
OPAQUE = ".wh..wh..opq"
MAX_SYMLINK_HOPS = 40  # the Linux limit (ELOOP)


class UnsafePath(BadBlob):
    """An entry tries to leave the image root."""


def normalize(name: str, what: str = "entry") -> str:
    """Turn an archive member name into a clean path relative to the image root.

    Leading "/" and "./" are dropped (an absolute name means "from the image root"); ".."
    components are folded, and one that would climb above the root is rejected: no legitimate
    layer contains one, and it is the classic path-traversal attack on extractors.
    """
    if "\0" in name:
        raise UnsafePath(f"{what} name contains a NUL byte: {name!r}")
    parts: list[str] = []
    for part in name.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                raise UnsafePath(f"path traversal: {what} {name!r} escapes the image root")
            parts.pop()
        else:
            parts.append(part)
    return "/".join(parts)


def resolve(path: str, readlink: Callable[[str], str | None], max_hops: int = MAX_SYMLINK_HOPS) -> str:
    """Resolve symlinks in ``path`` inside the image root, as a chroot would.

    ``readlink(p)`` returns the raw target of the symlink at p, as stored, or None. Absolute
    targets are taken from the image root and ".." at the root stays at the root, so a link can
    never lead outside the image. Loops end in UnsafePath after ``max_hops`` links.
    """
    pending = [p for p in path.split("/") if p not in ("", ".")]
    pending.reverse()
    done: list[str] = []
    hops = 0
    while pending:
        part = pending.pop()
        if part in ("", "."):
            continue
        if part == "..":
            if done:
                done.pop()
            continue
        candidate = "/".join([*done, part])
        target = readlink(candidate)
        if target is None:
            done.append(part)
            continue
        hops += 1
        if hops > max_hops:
            raise UnsafePath(f"too many levels of symbolic links (a loop?) resolving /{path}")
        if target.startswith("/"):
            done = []
        parts = [p for p in target.split("/") if p not in ("", ".")]
        pending.extend(reversed(parts))
    return "/".join(done)


class EntryMeta(msgspec.Struct, array_like=True):
    """Header facts of one tar entry an observer flagged (see ``analyze_layer``): the type flag,
    the permission bits (with setuid/setgid/sticky), the size and the owner (-1: not recorded)."""

    type: str
    mode: int
    size: int = 0
    uid: int = -1
    gid: int = -1


class LayerResult(msgspec.Struct, omit_defaults=True):
    """What one layer contributes, independent of other layers (so it can be cached)."""

    digest: str
    files: dict[str, FileFacts] = {}  # every wanted path, even when it yielded no facts
    whiteouts: list[str] = []
    opaque: list[str] = []
    symlinks: dict[str, str] = {}
    hardlinks: dict[str, str] = {}
    warnings: list[str] = []
    entries: int = 0
    size: int = 0  # uncompressed bytes
    # Filled only when an analyzer observes entries (see analyze_layer): the flagged entries, and
    # every path this layer writes, since a later layer rewriting a flagged path (chmod u-s) clears it.
    notable: dict[str, EntryMeta] = {}
    seen: list[str] = []


def analyze_layer(
    stream: BinaryIO,
    digest: str,
    analyzers: list[Analyzer],
    budget: Budget,
    on_progress: Callable[[int], None] | None = None,
) -> LayerResult:
    """Read one uncompressed layer tar once, feeding each file to the analyzers that want it.

    An analyzer with a ``notes_entry(path, type, mode) -> bool`` method also sees every entry's
    header (directories and links included, no data read); entries it flags land in
    ``result.notable``. Setuid bits and world-writable directories live only in headers.
    """
    result = LayerResult(digest=digest, files={}, whiteouts=[], opaque=[], symlinks={}, hardlinks={}, warnings=[])
    reader = tarstream.TarReader(stream)
    read_limit = max((a.max_size for a in analyzers), default=0) + 1
    observers = [a.notes_entry for a in analyzers if callable(getattr(a, "notes_entry", None))]
    if observers:
        result.notable, result.seen = {}, []
    # One observer is the usual case; calling it directly skips a generator per entry.
    note_one = observers[0] if len(observers) == 1 else None
    last_reported = 0
    try:
        for entry in reader:
            budget.count_entry()
            path = normalize(entry.name)
            if on_progress is not None and reader.bytes_read - last_reported >= 1 << 22:
                on_progress(reader.bytes_read - last_reported)
                last_reported = reader.bytes_read
            if not path:
                continue
            slash = path.rfind("/")
            base = path[slash + 1 :]
            if base.startswith(WHITEOUT):
                parent = path[:slash] if slash >= 0 else ""
                if base == OPAQUE:
                    result.opaque.append(parent)
                elif not base.startswith(WHITEOUT + WHITEOUT):  # .wh..wh.* are aufs metadata
                    result.whiteouts.append(f"{parent}/{base[4:]}" if parent else base[4:])
                continue
            kind = entry.type
            if observers:
                result.seen.append(path)
                if (note_one(path, kind, entry.mode) if note_one is not None
                        else any(note(path, kind, entry.mode) for note in observers)):
                    result.notable[path] = EntryMeta(kind, entry.mode & 0o7777, entry.size, entry.uid, entry.gid)
            if kind == tarstream.SYMLINK:
                result.symlinks[path] = entry.linkname
                continue
            if kind == tarstream.HARDLINK:
                result.hardlinks[path] = normalize(entry.linkname, "hardlink target")
                continue
            if not entry.is_file:
                continue
            info = FileInfo(path, entry.mode & 0o7777, entry.size)
            wanting = [a for a in analyzers if a.wants(info)]
            if not wanting:
                continue
            data = reader.read_data(limit=read_limit)
            result.files[path] = run_analyzers(wanting, info, data, result.warnings)
    except tarstream.TarError as exc:
        raise BadBlob(f"layer {digest}: {exc}") from None
    if on_progress is not None:
        on_progress(reader.bytes_read - last_reported)
    result.entries = reader.entries
    result.size = reader.bytes_read
    return result


def run_analyzers(wanting: Iterable[Analyzer], info: FileInfo, data: bytes, warnings: list[str]) -> FileFacts:
    facts = []
    for analyzer in wanting:
        if info.size > analyzer.max_size:
            warnings.append(f"/{info.path}: skipped by {analyzer.name}: {info.size} bytes is over its limit")
            continue
        try:
            produced = list(analyzer.analyze(info, data))
        except AnalyzerError as exc:
            warnings.append(f"/{info.path}: {analyzer.name}: {exc}")
            continue
        except (RecursionError, MemoryError) as exc:
            warnings.append(f"/{info.path}: {analyzer.name}: input too complex ({type(exc).__name__})")
            continue
        except Exception as exc:  # an analyzer bug must not hide the rest of the image
            warnings.append(f"/{info.path}: {analyzer.name} failed: {type(exc).__name__}: {exc}")
            continue
        for fact in produced:
            if isinstance(fact, Package) and not fact.found_by:
                fact.found_by = analyzer.name
        facts.extend(produced)
    return FileFacts.of(facts)


@dataclass(slots=True)
class Squashed:
    """The merged view of all layers: for each surviving wanted path, its facts, the layer
    index that last wrote it, and for each package the layer index that introduced it."""

    files: dict[str, FileFacts] = field(default_factory=dict)
    layer_of: dict[str, int] = field(default_factory=dict)
    origin: dict[str, dict[tuple[str, str, str], int]] = field(default_factory=dict)
    symlinks: dict[str, str] = field(default_factory=dict)
    # Findings from every layer, including files a later layer deleted (secrets stay in the image).
    findings: list[tuple[int, str, Finding]] = field(default_factory=list)
    deleted: set[str] = field(default_factory=set)
    # Flagged entries that survive in the final image, with the index of the layer that wrote them.
    notable: dict[str, tuple[int, EntryMeta]] = field(default_factory=dict)



def _drop_under(mapping: dict, prefix: str) -> list[str]:
    """Remove ``prefix`` and everything below it from a path-keyed dict."""
    if not prefix:
        gone = list(mapping)
    else:
        below = prefix + "/"
        gone = [p for p in mapping if p == prefix or p.startswith(below)]
    for p in gone:
        del mapping[p]
    return gone


def _drop_children(mapping: dict, directory: str) -> list[str]:
    below = directory + "/" if directory else ""
    gone = [p for p in mapping if p.startswith(below) and p != directory]
    for p in gone:
        del mapping[p]
    return gone


def squash(layers: list[LayerResult]) -> Squashed:
    out = Squashed()
    for index, layer in enumerate(layers):
        removed: list[str] = []
        # Whiteouts and opaque markers hide what lower layers put there, never the layer's own
        # entries, so they are applied before this layer's files.
        for directory in layer.opaque:
            removed += _drop_children(out.files, directory)
            _drop_children(out.symlinks, directory)
            if out.notable:
                _drop_children(out.notable, directory)
        for path in layer.whiteouts:
            removed += _drop_under(out.files, path)
            _drop_under(out.symlinks, path)
            if out.notable:
                _drop_under(out.notable, path)
        if out.notable and layer.seen:
            for path in out.notable.keys() & set(layer.seen):
                if path not in layer.notable:
                    del out.notable[path]
        for path, meta in layer.notable.items():
            out.notable[path] = (index, meta)
        for path in removed:
            out.layer_of.pop(path, None)
            out.origin.pop(path, None)
            out.deleted.add(path)
        for path, target in layer.symlinks.items():
            # A symlink replaces whatever file stood at its path.
            if out.files.pop(path, None) is not None:
                out.layer_of.pop(path, None)
                out.origin.pop(path, None)
            out.symlinks[path] = target
        for path, facts in layer.files.items():
            previous = out.origin.get(path, {})
            origin: dict[tuple[str, str, str], int] = {}
            for pkg in facts.packages:
                key = (pkg.ecosystem, pkg.name, pkg.version)
                origin[key] = previous.get(key, index)
            out.symlinks.pop(path, None)
            out.files[path] = facts
            out.layer_of[path] = index
            out.origin[path] = origin
            out.deleted.discard(path)
            for finding in facts.findings:
                out.findings.append((index, path, finding))
        for path, target in layer.hardlinks.items():
            if target in out.files:
                out.files[path] = out.files[target]
                out.layer_of[path] = index
                out.origin[path] = {key: index for key in out.origin.get(target, {})}
    return out
