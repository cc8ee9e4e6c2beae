"""Where image bytes come from. Every source yields the same thing: an Artifact, its layers in
order, and a way to stream each layer's blob (digest-verified)."""

from __future__ import annotations

import io
import json
import platform as _platform
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

from hullguard.image import tarstream
from hullguard.image.layers import normalize
from hullguard.image.streams import BadBlob, HashingReader, sniff
from hullguard.model import Artifact, HullguardError, Layer

# Manifests and configs are small; a bigger one is an attack on our memory.
MAX_JSON = 16 * 1024 * 1024

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
INDEX_TYPES = {OCI_INDEX, DOCKER_LIST}
MANIFEST_TYPES = {OCI_MANIFEST, DOCKER_MANIFEST}
LAYER_TYPES = {
    "application/vnd.oci.image.layer.v1.tar",
    "application/vnd.oci.image.layer.v1.tar+gzip",
    "application/vnd.oci.image.layer.v1.tar+zstd",
    "application/vnd.oci.image.layer.nondistributable.v1.tar",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
    "application/vnd.docker.image.rootfs.diff.tar.gzip",
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
    "application/vnd.docker.image.rootfs.diff.tar",
}


class SourceError(HullguardError):
    pass


def parse_json(data: bytes, what: str) -> Any:
    if len(data) > MAX_JSON:
        raise SourceError(f"{what} is {len(data)} bytes, larger than any real one")
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise SourceError(f"{what} is not valid JSON ({str(exc)[:80]})") from None


def expect(obj: Any, key: str, kind: type, what: str) -> Any:
    value = obj.get(key) if isinstance(obj, dict) else None
    if not isinstance(value, kind):
        raise SourceError(f"{what}: missing or malformed {key!r}")
    return value


@dataclass(frozen=True)
class Platform:
    os: str
    architecture: str
    variant: str = ""

    @classmethod
    def parse(cls, text: str) -> Platform:
        parts = text.strip("/").split("/")
        if len(parts) not in (2, 3) or not all(parts):
            raise HullguardError(f"--platform must look like os/arch[/variant], not {text!r}")
        return cls(parts[0], parts[1], parts[2] if len(parts) == 3 else "")

    @classmethod
    def host(cls) -> Platform:
        machine = _platform.machine().lower()
        arch = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(machine, machine)
        variant = "v8" if arch == "arm64" else ""
        if machine.startswith("armv7"):
            arch, variant = "arm", "v7"
        return cls("linux", arch, variant)

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)

    def matches(self, desc: dict[str, Any], strict_variant: bool) -> bool:
        if desc.get("os") != self.os or desc.get("architecture") != self.architecture:
            return False
        if not self.variant:
            return True
        have = desc.get("variant", "")
        # arm64 images usually omit the v8 variant; an explicit request still matches them.
        return have == self.variant or (not strict_variant and not have)


def choose_manifest(index: dict[str, Any], wanted: Platform | None, what: str) -> dict[str, Any]:
    """Pick a manifest descriptor from an image index by platform."""
    manifests = expect(index, "manifests", list, what)
    candidates = [m for m in manifests if isinstance(m, dict) and isinstance(m.get("digest"), str)]
    with_platform = [m for m in candidates if isinstance(m.get("platform"), dict)]
    # Attestation manifests (buildkit) carry platform unknown/unknown; never pick them.
    with_platform = [m for m in with_platform if m["platform"].get("os") != "unknown"]
    if not with_platform:
        if len(candidates) == 1 or (candidates and wanted is None):
            return candidates[0]
        if not candidates:
            raise SourceError(f"{what}: the index lists no manifests")
    target = wanted or Platform.host()
    for strict in (True, False):
        for m in with_platform:
            if target.matches(m["platform"], strict):
                return m
    available = ", ".join(
        sorted({str(Platform(m["platform"].get("os", "?"), m["platform"].get("architecture", "?"),
                             m["platform"].get("variant", ""))) for m in with_platform})
    )
    raise SourceError(f"no image for platform {target} in {what}; available: {available} (use --platform)")


def layers_from(manifest: dict[str, Any], config: dict[str, Any], what: str) -> list[Layer]:
    """Layers of a manifest, with diff ids and history commands from the config."""
    descs = expect(manifest, "layers", list, what)
    rootfs = config.get("rootfs") if isinstance(config.get("rootfs"), dict) else {}
    diff_ids = rootfs.get("diff_ids") if isinstance(rootfs.get("diff_ids"), list) else []
    history = [h for h in config.get("history", []) if isinstance(h, dict)] if isinstance(
        config.get("history"), list) else []
    real_history = [h for h in history if not h.get("empty_layer")]
    layers = []
    for i, desc in enumerate(descs):
        if not isinstance(desc, dict) or not isinstance(desc.get("digest"), str):
            raise SourceError(f"{what}: layer {i} has no digest")
        media_type = desc.get("mediaType", "")
        if media_type and media_type not in LAYER_TYPES:
            raise SourceError(f"{what}: layer {i} has unsupported media type {media_type!r}")
        size = desc.get("size", -1)
        layers.append(
            Layer(
                digest=check_digest(desc["digest"], what),
                diff_id=diff_ids[i] if i < len(diff_ids) and isinstance(diff_ids[i], str) else "",
                media_type=media_type,
                size=size if isinstance(size, int) else -1,
                created_by=str(real_history[i].get("created_by", "")) if i < len(real_history) else "",
            )
        )
    return layers


def check_digest(digest: str, what: str) -> str:
    algo, _, hexpart = digest.partition(":")
    lengths = {"sha256": 64, "sha512": 128}
    if algo not in lengths or len(hexpart) != lengths[algo] or any(c not in "0123456789abcdef" for c in hexpart):
        raise SourceError(f"{what}: malformed digest {digest[:90]!r}")
    return digest


def artifact_from_config(name: str, kind: str, config: dict[str, Any], **extra: Any) -> Artifact:
    cfg = config.get("config") if isinstance(config.get("config"), dict) else {}
    history = config.get("history") if isinstance(config.get("history"), list) else []
    return Artifact(
        name=name,
        type=kind,
        os=str(config.get("os", "")),
        architecture=str(config.get("architecture", "")),
        variant=str(config.get("variant", "")),
        created=str(config.get("created", "")),
        config=cfg,
        history=[h for h in history if isinstance(h, dict)],
        **extra,
    )


class ImageSource:
    """Base class: subclasses fill ``artifact`` and ``layers`` in __init__ and implement blobs()."""

    artifact: Artifact
    layers: list[Layer]

    def blobs(self, layers: list[Layer]) -> Iterator[tuple[Layer, BinaryIO]]:
        """Yield (layer, raw blob stream) for the given layers, in whatever order is cheapest.
        Each stream verifies the blob's digest when read to the end."""
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __enter__(self) -> ImageSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class TarContainer:
    """Members of an outer tar (docker save output, an oci-archive), plain or compressed.

    A plain tar is indexed once by reading headers and seeking past data, so members can be
    opened in any order. A compressed one cannot seek: small members are collected in one pass
    and big ones are streamed in archive order in a second pass.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        try:
            self._file = open(path, "rb")  # noqa: SIM115 - closed in close()
        except OSError as exc:
            raise SourceError(f"cannot open {path}: {exc.strerror}") from None
        head = self._file.read(8)
        self._file.seek(0)
        self.compressed = sniff(head) != "none"
        self.members: dict[str, tuple[int, int]] = {}  # name -> (data offset, size)
        self.links: dict[str, str] = {}
        self.small: dict[str, bytes] = {}
        if self.compressed:
            self._collect_small()
        else:
            self._index()

    def close(self) -> None:
        self._file.close()

    def _stream(self) -> BinaryIO:
        from hullguard.image.streams import Budget, decompressed

        self._file.seek(0)
        return decompressed(self._file, Budget(1 << 62, 1 << 62), self.path)

    def _index(self) -> None:
        """Read headers only, seeking past member data, so indexing costs the same for a 10 MB
        and a 10 GB archive. pax and GNU long-name headers are small and read in place."""
        f = self._file
        size = f.seek(0, 2)
        offset = 0
        pending: dict[str, str] = {}
        try:
            while True:
                f.seek(offset)
                header = f.read(512)
                if len(header) < 512:
                    if header.strip(b"\0"):
                        raise tarstream.TarError("truncated header")
                    break
                if header.count(0) == 512:
                    break
                if not tarstream._checksum_ok(header):
                    raise tarstream.TarError("bad tar header checksum")
                typeflag = chr(header[156]) if header[156] else "0"
                length = tarstream._octal(header[124:136])
                offset += 512
                if typeflag in "xgLK":
                    if length > tarstream.MAX_META:
                        raise tarstream.TarError("extended header is implausibly large")
                    data = f.read(length)
                    if typeflag == "x":
                        pending.update(tarstream._parse_pax(data))
                    elif typeflag == "L":
                        pending["path"] = tarstream._cstr(data)
                    elif typeflag == "K":
                        pending["linkpath"] = tarstream._cstr(data)
                    offset += (length + 511) // 512 * 512
                    continue
                name = pending.get("path") or tarstream._cstr(header[0:100])
                if "path" not in pending and header[257:262] == b"ustar" and header[263:265] == b"00":
                    prefix = tarstream._cstr(header[345:500])
                    if prefix:
                        name = prefix + "/" + name
                linkname = pending.get("linkpath") or tarstream._cstr(header[157:257])
                if "size" in pending and typeflag in "07":
                    length = int(pending["size"])
                pending = {}
                name = normalize(name, "archive member")
                if typeflag == tarstream.SYMLINK:
                    self.links[name] = linkname
                    length = 0
                elif typeflag == tarstream.HARDLINK:
                    self.links[name] = "/" + normalize(linkname, "archive link")
                    length = 0
                elif typeflag in "07":
                    self.members[name] = (offset, length)
                else:
                    length = 0
                offset += (length + 511) // 512 * 512
        except (tarstream.TarError, ValueError) as exc:
            raise SourceError(f"{self.path}: not a valid tar archive ({exc})") from None
        for name, (off, length) in self.members.items():
            if off + length > size:
                raise SourceError(f"{self.path}: archive is truncated (member {name} runs past the end)")

    def _collect_small(self) -> None:
        reader = tarstream.TarReader(self._stream())
        try:
            for entry in reader:
                name = normalize(entry.name, "archive member")
                if entry.type == tarstream.SYMLINK:
                    self.links[name] = entry.linkname
                elif entry.type == tarstream.HARDLINK:
                    self.links[name] = "/" + normalize(entry.linkname, "archive link")
                elif entry.is_file:
                    self.members[name] = (-1, entry.size)
                    if entry.size <= MAX_JSON:
                        data = reader.read_data()
                        if data[:1] in (b"{", b"["):
                            self.small[name] = data
        except (tarstream.TarError, BadBlob) as exc:
            raise SourceError(f"{self.path}: not a valid archive ({exc})") from None

    def resolve(self, name: str) -> str:
        name = normalize(name, "archive member")
        for _ in range(16):
            if name in self.members:
                return name
            link = self.links.get(name)
            if link is None:
                break
            if link.startswith("/"):
                name = normalize(link, "archive link")
            else:
                parent = name.rsplit("/", 1)[0] if "/" in name else ""
                name = normalize(f"{parent}/{link}", "archive link")
        raise SourceError(f"{self.path}: missing member {name!r}")

    def has(self, name: str) -> bool:
        try:
            self.resolve(name)
            return True
        except (SourceError, BadBlob):
            return False

    def read(self, name: str, what: str) -> bytes:
        real = self.resolve(name)
        if real in self.small:
            return self.small[real]
        offset, size = self.members[real]
        if size > MAX_JSON or offset < 0:
            raise SourceError(f"{what} ({name}) is too large")
        self._file.seek(offset)
        return self._file.read(size)

    def open_many(self, names: list[str]) -> Iterator[tuple[str, BinaryIO]]:
        """Yield (requested name, stream) for each name, in archive order."""
        real = {name: self.resolve(name) for name in names}
        if not self.compressed:
            for name in sorted(names, key=lambda n: self.members[real[n]][0]):
                offset, size = self.members[real[name]]
                yield name, _Window(self._file, offset, size)
            return
        by_real: dict[str, list[str]] = {}
        for name, r in real.items():
            by_real.setdefault(r, []).append(name)
        reader = tarstream.TarReader(self._stream())
        remaining = set(by_real)
        try:
            for entry in reader:
                if not remaining:
                    return
                name = normalize(entry.name, "archive member")
                if name in remaining and entry.is_file:
                    remaining.discard(name)
                    # A member used by two layers (duplicate digests) is read once per pass.
                    data_stream = _EntryStream(reader)
                    for requested in by_real[name]:
                        yield requested, data_stream
                        break
                    data_stream.consume()
        except tarstream.TarError as exc:
            raise SourceError(f"{self.path}: {exc}") from None


class _Window(io.RawIOBase):
    """A read-only view of [offset, offset+size) of a shared file."""

    def __init__(self, f: BinaryIO, offset: int, size: int) -> None:
        self._f = f
        self._pos = offset
        self._end = offset + size

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        left = self._end - self._pos
        if left <= 0:
            return b""
        n = left if n is None or n < 0 else min(n, left)
        self._f.seek(self._pos)
        data = self._f.read(n)
        if not data:
            raise SourceError("archive member is truncated")
        self._pos += len(data)
        return data

    def readinto(self, b) -> int:  # type: ignore[override]
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)


class _EntryStream(io.RawIOBase):
    """The data of the current entry of a streaming TarReader, readable in chunks."""

    def __init__(self, reader: tarstream.TarReader) -> None:
        self._reader = reader
        self._left = reader._pending_data

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        if self._left <= 0:
            return b""
        n = self._left if n is None or n < 0 else min(n, self._left, 1 << 20)
        data = self._reader._take(n)
        self._left -= len(data)
        self._reader._pending -= len(data)
        self._reader._pending_data -= len(data)
        return data

    def readinto(self, b) -> int:  # type: ignore[override]
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)

    def consume(self) -> None:
        while self.read(1 << 20):
            pass


def verified(raw: BinaryIO, layer: Layer, what: str) -> HashingReader:
    return HashingReader(raw, layer.digest, what, layer.size if layer.size >= 0 else -1)


CONFIG_TYPES = {
    "application/vnd.oci.image.config.v1+json",
    "application/vnd.docker.container.image.v1+json",
}
SCHEMA1_TYPES = {
    "application/vnd.docker.distribution.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
}


def manifest_kind(doc: Any, media_type: str, what: str) -> str:
    """'index' or 'manifest', from the document's own mediaType or the transport's."""
    if not isinstance(doc, dict):
        raise SourceError(f"{what}: not a JSON object")
    declared = doc.get("mediaType") or media_type or ""
    if declared in SCHEMA1_TYPES or doc.get("schemaVersion") == 1:
        raise SourceError(f"{what}: Docker schema 1 manifests are deprecated and not supported")
    if declared in INDEX_TYPES:
        return "index"
    if declared in MANIFEST_TYPES:
        return "manifest"
    if not declared:
        # The OCI spec lets mediaType be absent; tell them apart by shape.
        if isinstance(doc.get("manifests"), list):
            return "index"
        if isinstance(doc.get("layers"), list) and isinstance(doc.get("config"), dict):
            return "manifest"
    raise SourceError(f"{what}: manifest of unknown media type {declared!r}")


def resolve_manifest(
    data: bytes,
    media_type: str,
    fetch: Any,
    platform: Platform | None,
    what: str,
    digest: str = "",
) -> tuple[dict[str, Any], str]:
    """Follow image indexes down to one image manifest. ``fetch(descriptor) -> (bytes, media
    type)`` returns the digest-verified bytes of a referenced manifest."""
    for _ in range(4):
        doc = parse_json(data, what)
        if manifest_kind(doc, media_type, what) == "manifest":
            return doc, digest
        desc = choose_manifest(doc, platform, what)
        digest = check_digest(desc["digest"], what)
        data, media_type = fetch(desc)
        media_type = media_type or desc.get("mediaType", "")
        what = f"manifest {digest}"
    raise SourceError(f"{what}: image indexes nested too deeply")


def check_config_descriptor(manifest: dict[str, Any], what: str) -> dict[str, Any]:
    desc = expect(manifest, "config", dict, what)
    if not isinstance(desc.get("digest"), str):
        raise SourceError(f"{what}: config has no digest")
    check_digest(desc["digest"], what)
    media_type = desc.get("mediaType", "")
    if media_type and media_type not in CONFIG_TYPES:
        raise SourceError(f"{what}: not a container image (config media type {media_type!r})")
    return desc


def verify_bytes(data: bytes, digest: str, what: str) -> bytes:
    import hashlib

    algo, _, hexpart = digest.partition(":")
    if hashlib.new(algo, data).hexdigest() != hexpart:
        raise BadBlob(f"{what}: digest mismatch (expected {digest})")
    return data
