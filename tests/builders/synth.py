"""Small synthetic images from an in-memory description, for fast tests of layer semantics.

    from tests.builders.synth import File, Dir, Symlink, Whiteout, Opaque, synth_image

    path = synth_image(
        [
            [Dir("etc"), File("etc/os-release", "ID=debian\\n"), File("tmp/junk", b"x")],
            [Whiteout("tmp/junk"), Opaque("etc"), File("etc/hostname", "box\\n")],
        ],
        fmt="oci",
        out=tmp_path / "img",
    )

Entry names are written exactly as given (no normalisation), which is what makes
hostile archives possible: ``File("../escape")``, ``Symlink("x", "/etc")``...
Image-level damage (truncated gzip, wrong digests, missing blobs, bombs, unknown
media types) is asked for with ``tamper=[...]``; see ``TAMPERS``.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import struct
import tarfile
import tempfile
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from tests.builders.image import (
    DOCKER_CONFIG,
    DOCKER_MANIFEST,
    OCI_MANIFEST,
    History,
    ImageSpec,
    LayerBlob,
    WrittenImage,
    sha256_file,
    tar_directory,
    write_docker_archive,
    write_layer,
    write_oci_layout,
)

# --------------------------------------------------------------------------- entries


@dataclass(frozen=True)
class File:
    path: str
    content: bytes | str = b""
    mode: int = 0o644
    uid: int = 0
    gid: int = 0
    mtime: int = 0
    uname: str = ""
    gname: str = ""
    # A header size different from the data written: a lying or truncated member.
    declared_size: int | None = None

    @property
    def data(self) -> bytes:
        return self.content.encode() if isinstance(self.content, str) else self.content


@dataclass(frozen=True)
class Dir:
    path: str
    mode: int = 0o755
    uid: int = 0
    gid: int = 0
    mtime: int = 0


@dataclass(frozen=True)
class Symlink:
    path: str
    target: str
    uid: int = 0
    gid: int = 0


@dataclass(frozen=True)
class Hardlink:
    path: str
    target: str  # a name of an earlier member of the same layer, as tar stores it


@dataclass(frozen=True)
class Whiteout:
    """Deletes ``path`` (from lower layers) by writing ``dir/.wh.name``."""

    path: str


@dataclass(frozen=True)
class Opaque:
    """Hides everything lower layers put under the directory ``path``."""

    path: str


@dataclass(frozen=True)
class Device:
    path: str
    kind: str = "char"  # "char" | "block" | "fifo"
    major: int = 0
    minor: int = 0
    mode: int = 0o666


@dataclass(frozen=True)
class Raw:
    """A hand-made tar member for cases the other entries cannot express."""

    info: tarfile.TarInfo
    data: bytes | None = None


Entry = File | Dir | Symlink | Hardlink | Whiteout | Opaque | Device | Raw

_DEV_TYPES = {"char": tarfile.CHRTYPE, "block": tarfile.BLKTYPE, "fifo": tarfile.FIFOTYPE}


def _whiteout_name(path: str) -> str:
    d, _, base = path.rstrip("/").rpartition("/")
    return f"{d}/.wh.{base}" if d else f".wh.{base}"


def add_entry(tf: tarfile.TarFile, e: Entry) -> None:
    """Append one entry to an open tar stream."""
    if isinstance(e, Raw):
        tf.addfile(e.info, io.BytesIO(e.data) if e.data is not None else None)
        return
    if isinstance(e, Whiteout | Opaque):
        name = _whiteout_name(e.path) if isinstance(e, Whiteout) else e.path.rstrip("/") + "/.wh..wh..opq"
        ti = tarfile.TarInfo(name)
        ti.mode = 0o644
        tf.addfile(ti, io.BytesIO(b""))
        return
    ti = tarfile.TarInfo(e.path)
    if isinstance(e, File):
        data = e.data
        ti.size = len(data) if e.declared_size is None else e.declared_size
        ti.mode, ti.uid, ti.gid, ti.mtime, ti.uname, ti.gname = (
            e.mode,
            e.uid,
            e.gid,
            e.mtime,
            e.uname,
            e.gname,
        )
        if e.declared_size is not None and e.declared_size != len(data):
            _add_lying_file(tf, ti, data)
            return
        tf.addfile(ti, io.BytesIO(data))
        return
    if isinstance(e, Dir):
        ti.type = tarfile.DIRTYPE
        ti.mode, ti.uid, ti.gid, ti.mtime = e.mode, e.uid, e.gid, e.mtime
    elif isinstance(e, Symlink):
        ti.type, ti.linkname, ti.mode, ti.uid, ti.gid = tarfile.SYMTYPE, e.target, 0o777, e.uid, e.gid
    elif isinstance(e, Hardlink):
        ti.type, ti.linkname, ti.mode = tarfile.LNKTYPE, e.target, 0o644
    elif isinstance(e, Device):
        ti.type, ti.devmajor, ti.devminor, ti.mode = _DEV_TYPES[e.kind], e.major, e.minor, e.mode
    tf.addfile(ti)


def _add_lying_file(tf: tarfile.TarFile, ti: tarfile.TarInfo, data: bytes) -> None:
    # tarfile refuses to write a header whose size disagrees with the data, so write the
    # header and the (padded) data ourselves; offsets stay on 512-byte blocks.
    buf = ti.tobuf(tf.format, tf.encoding, tf.errors)
    tf.fileobj.write(buf)  # type: ignore[union-attr]
    pad = (-len(data)) % tarfile.BLOCKSIZE
    tf.fileobj.write(data + b"\0" * pad)  # type: ignore[union-attr]
    tf.offset += len(buf) + len(data) + pad


def layer_tar_bytes(entries: Sequence[Entry], tar_format: int = tarfile.PAX_FORMAT) -> bytes:
    """One uncompressed layer tar in memory, for tests that only need a layer."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tar_format) as tf:
        for e in entries:
            add_entry(tf, e)
    return buf.getvalue()


# --------------------------------------------------------------------------- hostile content

HOSTILE_KINDS = (
    "dotdot",
    "absolute",
    "symlink-escape",
    "symlink-absolute",
    "symlink-loop",
    "hardlink-escape",
    "whiteout-escape",
    "long-names",
    "devices",
    "lying-size",
)


def hostile_entries(kind: str) -> list[Entry]:
    """A layer whose entries try to escape or confuse an extractor. ``kind`` in HOSTILE_KINDS."""
    if kind == "dotdot":
        return [
            File("../../escape-dotdot.txt", "out"),
            File("etc/../../escape-mid.txt", "out"),
            File("ok/../../../escape-deep.txt", "out"),
        ]
    if kind == "absolute":
        return [
            File("/etc/hullguard-absolute", "abs"),
            Dir("/tmp/hullguard-absdir"),
            File("//double-slash", "abs"),
        ]
    if kind == "symlink-escape":
        # The classic two-step: a link leading outside, then a file written "through" it.
        return [
            Symlink("escape", "../../../../../../tmp"),
            File("escape/hullguard-through-link", "pwn"),
            Dir("app"),
            Symlink("app/up", "../../.."),
        ]
    if kind == "symlink-absolute":
        return [Dir("etc"), Symlink("etc/shadow-link", "/etc/shadow"), Symlink("root-link", "/")]
    if kind == "symlink-loop":
        return [
            Symlink("loop-a", "loop-b"),
            Symlink("loop-b", "loop-a"),
            Symlink("self", "self"),
            Dir("d"),
            Symlink("d/up", "../d/up"),
        ]
    if kind == "hardlink-escape":
        return [
            Hardlink("passwd-link", "../../../../etc/passwd"),
            Hardlink("abs-link", "/etc/passwd"),
            Hardlink("missing-link", "does/not/exist"),
        ]
    if kind == "whiteout-escape":
        return [Whiteout("../../etc/passwd"), Opaque("../outside"), Whiteout("/etc/shadow")]
    if kind == "long-names":
        deep = "/".join(["d" * 60] * 6)
        return [File(deep + "/file.txt", "deep"), Symlink("l" * 200, "t" * 300)]
    if kind == "devices":
        return [
            Device("dev/null", "char", 1, 3),
            Device("dev/sda", "block", 8, 0),
            Device("run/fifo", "fifo"),
        ]
    if kind == "lying-size":
        return [File("etc/big-claim", b"tiny", declared_size=1 << 20), File("etc/after", "after")]
    raise ValueError(f"unknown hostile kind {kind!r}; known: {', '.join(HOSTILE_KINDS)}")


def write_gzip_bomb(dest: Path, expanded_size: int, name: str = "bomb.bin") -> LayerBlob:
    """A gzip layer that inflates to ``expanded_size`` bytes of tar, written without holding it.

    A single member of zeros; deflate compresses identical zero chunks to identical
    bytes once the compressor state is reset with a full flush, so one compressed
    chunk is repeated instead of compressing gigabytes each time.
    """
    info = tarfile.TarInfo(name)
    info.size = expanded_size
    info.mode = 0o644
    header = info.tobuf(tarfile.GNU_FORMAT)  # GNU base-256 sizes allow > 8 GiB members
    zeros_total = expanded_size + (-expanded_size) % tarfile.BLOCKSIZE + 2 * tarfile.BLOCKSIZE
    chunk = bytes(1 << 20)
    n_chunks, rest = divmod(zeros_total, len(chunk))

    comp = zlib.compressobj(9, zlib.DEFLATED, -15)
    head = comp.compress(header) + comp.flush(zlib.Z_FULL_FLUSH)
    piece = comp.compress(chunk) + comp.flush(zlib.Z_FULL_FLUSH)
    again = comp.compress(chunk) + comp.flush(zlib.Z_FULL_FLUSH)
    repeatable = piece == again

    diff = hashlib.sha256(header)
    crc = zlib.crc32(header)
    blob_hash = hashlib.sha256()
    size = 0
    dest.parent.mkdir(parents=True, exist_ok=True)
    with open(dest, "wb") as out:

        def emit(b: bytes) -> None:
            nonlocal size
            out.write(b)
            blob_hash.update(b)
            size += len(b)

        emit(b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\x03")  # gzip, deflate, mtime 0, max compression, unix
        emit(head)
        for _ in range(n_chunks):
            diff.update(chunk)
            crc = zlib.crc32(chunk, crc)
            if repeatable:
                emit(piece)
            else:
                emit(comp.compress(chunk) + comp.flush(zlib.Z_FULL_FLUSH))
        tail = bytes(rest)
        diff.update(tail)
        crc = zlib.crc32(tail, crc)
        emit(comp.compress(tail) + comp.flush(zlib.Z_FINISH))
        emit(struct.pack("<II", crc & 0xFFFFFFFF, (len(header) + zeros_total) & 0xFFFFFFFF))
    return LayerBlob(
        dest,
        dest,
        "sha256:" + blob_hash.hexdigest(),
        "sha256:" + diff.hexdigest(),
        size,
        "application/vnd.oci.image.layer.v1.tar+gzip",
        "gzip",
    )


# --------------------------------------------------------------------------- images

TAMPERS = {
    "truncated-gzip": "the layer blob is cut in half; manifest digest and size match the cut blob",
    "gzip-bomb": "the layer is replaced by a gzip bomb inflating to bomb_size bytes (digests valid)",
    "wrong-layer-digest": "the stored layer blob no longer hashes to its name/manifest digest",
    "wrong-diff-id": "config rootfs.diff_ids names a diff id that is not the layer's",
    "wrong-size": "the manifest gives the layer a size one byte too large",
    "missing-blob": "the layer blob is absent from blobs/ (or from the docker tar)",
    "missing-config": "the config blob is absent",
    "missing-manifest": "the manifest blob is absent (OCI only)",
    "unknown-manifest-media-type": "manifest mediaType (and its index descriptor) is unknown (OCI only)",
    "unknown-layer-media-type": "the layer's mediaType is unknown (OCI only)",
}
UNKNOWN_MANIFEST_TYPE = "application/vnd.example.unknown.manifest.v1+json"
UNKNOWN_LAYER_TYPE = "application/vnd.example.layer.v1.tar+lz4"


@dataclass
class SynthImage:
    path: Path  # layout directory (oci) or tar file (everything else)
    fmt: str
    layer_digests: list[str]  # of the stored blobs (compressed, possibly tampered)
    diff_ids: list[str]  # true digests of the uncompressed layer tars
    layer_sizes: list[int]
    manifest_digest: str | None  # first platform's; None for docker formats, which have none
    config_digest: str
    tamper: tuple[str, ...] = ()
    manifest_digests: list[str] = field(default_factory=list)  # one per platform (OCI formats)
    index_digest: str | None = None  # the nested image index, when several platforms

    def blob_path(self, digest: str) -> Path:
        """Where an OCI layout keeps a blob (the ``oci`` format only)."""
        return self.path / "blobs" / "sha256" / digest.split(":", 1)[1]


def _as_history(history: Sequence[str | History] | None, n_layers: int) -> list[History]:
    if history is None:
        return [History(f"/bin/sh -c #(nop) ADD file:synthetic-{i} in / ") for i in range(n_layers)]
    out = [h if isinstance(h, History) else History(h) for h in history]
    if sum(not h.empty_layer for h in out) != n_layers:
        raise ValueError("history must have one non-empty entry per layer")
    return out


def _truncate(ly: LayerBlob, work: Path) -> LayerBlob:
    data = ly.blob.read_bytes()
    cut = data[: max(1, len(data) // 2)]
    p = work / ("truncated-" + ly.blob.name)
    p.write_bytes(cut)
    digest = "sha256:" + hashlib.sha256(cut).hexdigest()
    # For uncompressed layers the "tar" is the cut blob too, so docker archives see it.
    tar = p if ly.compression == "none" else ly.tar
    return replace(ly, blob=p, tar=tar, digest=digest, size=len(cut))


def build_synth(
    layers: Sequence[Sequence[Entry]],
    fmt: str = "oci",
    compress: str = "gzip",
    history: Sequence[str | History] | None = None,
    out: Path | None = None,
    *,
    tamper: Iterable[str] = (),
    tamper_layer: int = -1,
    config: dict[str, Any] | None = None,
    platform: str = "linux/amd64",
    platforms: Sequence[str] | None = None,
    repo_tag: str | None = "synth/test:latest",
    bomb_size: int = 1 << 30,
    manifest_media_type: str | None = None,
    tar_format: int = tarfile.PAX_FORMAT,
) -> SynthImage:
    """Build a synthetic image and report its digests. ``fmt``: oci, oci-archive, docker, docker-legacy.

    ``compress`` applies to OCI blobs and, for docker formats, to the stored layer
    files (``none`` is what ``docker save`` writes). ``platforms`` (OCI formats only),
    e.g. ``["linux/amd64", "linux/arm64/v8"]``, writes an image index with one manifest
    per platform over the same layers; tampering then hits the first one. ``out``
    defaults to a fresh temp dir the caller owns (prefer passing ``tmp_path / ...``).
    """
    if fmt not in ("oci", "oci-archive", "docker", "docker-legacy"):
        raise ValueError(f"unknown fmt {fmt!r}")
    tampers = tuple(tamper)
    for t in tampers:
        if t not in TAMPERS:
            raise ValueError(f"unknown tamper {t!r}; known: {', '.join(TAMPERS)}")
    if tampers and not layers:
        raise ValueError("tampering needs at least one layer")
    plats = list(platforms or [platform])
    if len(plats) > 1 and fmt.startswith("docker"):
        raise ValueError("docker archives hold one platform; use fmt='oci' for an index")
    if out is None:
        out = Path(tempfile.mkdtemp(prefix="hg-synth-")) / ("image" if fmt == "oci" else "image.tar")
    out.parent.mkdir(parents=True, exist_ok=True)
    # Beside the output so blobs can be hard-linked into the layout instead of copied.
    work = Path(tempfile.mkdtemp(prefix=".synth-work-", dir=out.parent))
    try:
        blobs = [_entries_layer(entries, work, compress, tar_format) for entries in layers]
        ti = tamper_layer % len(blobs) if blobs else 0
        if "gzip-bomb" in tampers:
            blobs[ti] = write_gzip_bomb(work / "bomb.gz", bomb_size)
        if "truncated-gzip" in tampers:
            blobs[ti] = _truncate(blobs[ti], work)
        true_diff_ids = [b.diff_id for b in blobs]
        hist = _as_history(history, len(blobs))
        specs = [
            _spec(blobs, hist, p, config, manifest_media_type, tampers if i == 0 else (), ti)
            for i, p in enumerate(plats)
        ]
        common = {
            "fmt": fmt,
            "layer_digests": [b.digest for b in blobs],
            "diff_ids": true_diff_ids,
            "layer_sizes": [b.size for b in blobs],
            "tamper": tampers,
        }
        if fmt.startswith("docker"):
            config_digest = _docker(out, specs[0], work, compress, repo_tag, fmt, tampers, ti)
            return SynthImage(out, manifest_digest=None, config_digest=config_digest, **common)
        layout = out if fmt == "oci" else work / "layout"
        written = write_oci_layout(layout, specs, ref=(repo_tag or "latest").rsplit(":", 1)[-1])
        _post_tamper(layout, written[0], tampers, ti)
        index_digest = None
        if len(written) > 1:
            index_digest = json.loads((layout / "index.json").read_bytes())["manifests"][0]["digest"]
        if fmt == "oci-archive":
            tar_directory(layout, out)
        return SynthImage(
            out,
            manifest_digest=written[0].manifest_digest,
            config_digest=written[0].config_digest,
            manifest_digests=[w.manifest_digest for w in written],
            index_digest=index_digest,
            **common,
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _entries_layer(entries: Sequence[Entry], work: Path, compress: str, tar_format: int) -> LayerBlob:
    def fill(tf: tarfile.TarFile) -> None:
        for e in entries:
            add_entry(tf, e)

    return write_layer(fill, work, compress, tar_format)


def _spec(
    blobs: list[LayerBlob],
    history: list[History],
    platform: str,
    config: dict[str, Any] | None,
    manifest_media_type: str | None,
    tampers: tuple[str, ...],
    ti: int,
) -> ImageSpec:
    os_, _, rest = platform.partition("/")
    arch, _, variant = rest.partition("/")

    def config_hook(cfg: dict[str, Any]) -> None:
        if "wrong-diff-id" in tampers:
            cfg["rootfs"]["diff_ids"][ti] = "sha256:" + "0" * 64

    def manifest_hook(m: dict[str, Any]) -> None:
        if "wrong-size" in tampers:
            m["layers"][ti]["size"] += 1
        if "unknown-layer-media-type" in tampers:
            m["layers"][ti]["mediaType"] = UNKNOWN_LAYER_TYPE
        if "unknown-manifest-media-type" in tampers:
            m["mediaType"] = UNKNOWN_MANIFEST_TYPE

    spec = ImageSpec(
        list(blobs),
        history,
        os=os_ or "linux",
        architecture=arch or "amd64",
        variant=variant or None,
        config=config or {},
        manifest_media_type=manifest_media_type or OCI_MANIFEST,
        config_hook=config_hook,
        manifest_hook=manifest_hook,
    )
    if manifest_media_type == DOCKER_MANIFEST:
        spec.config_media_type = DOCKER_CONFIG
    return spec


def _docker(
    out: Path,
    spec: ImageSpec,
    work: Path,
    compress: str,
    repo_tag: str | None,
    fmt: str,
    tampers: tuple[str, ...],
    ti: int,
) -> str:
    skip = [ti] if "missing-blob" in tampers else []
    if "wrong-layer-digest" in tampers:
        # Docker archives have no per-blob digest to contradict (except the 25+ layout's
        # names), so damage the data: it then disagrees with the config's diff id.
        ly = spec.layers[ti]
        src = ly.blob if compress != "none" else ly.tar
        data = bytearray(src.read_bytes())
        data[len(data) // 2] ^= 0xFF
        p = work / "damaged.tar"
        p.write_bytes(bytes(data))
        spec.layers[ti] = replace(ly, blob=p, tar=p)
    write_docker_archive(
        out,
        spec,
        repo_tag,
        legacy=fmt == "docker-legacy",
        skip_layers=skip,
        compressed_layers=compress != "none",
    )
    return "sha256:" + hashlib.sha256(spec.config_json()).hexdigest()


def _post_tamper(layout: Path, w: WrittenImage, tampers: tuple[str, ...], ti: int) -> None:
    blobdir = layout / "blobs" / "sha256"

    def blob(digest: str) -> Path:
        return blobdir / digest.split(":", 1)[1]

    layer_digest = w.spec.layers[ti].digest if w.spec.layers else None
    if "wrong-layer-digest" in tampers and layer_digest:
        p = blob(layer_digest)
        data = bytearray(p.read_bytes())
        data[len(data) // 2] ^= 0xFF
        p.unlink()  # may be a hard link to a work file; do not damage that
        p.write_bytes(bytes(data))
    if "missing-blob" in tampers and layer_digest:
        blob(layer_digest).unlink()
    if "missing-config" in tampers:
        blob(w.config_digest).unlink()
    if "missing-manifest" in tampers:
        blob(w.manifest_digest).unlink()


def synth_image(
    layers: Sequence[Sequence[Entry]],
    fmt: str = "oci",
    compress: str = "gzip",
    history: Sequence[str | History] | None = None,
    out: Path | None = None,
    **kw: Any,
) -> Path:
    """Like ``build_synth`` but returns only the path (layout dir or tar file)."""
    return build_synth(layers, fmt, compress, history, out, **kw).path


def verify_oci_layout(layout: Path) -> list[str]:
    """Problems found by re-hashing every blob a layout references (empty list: consistent)."""
    problems: list[str] = []
    blobdir = layout / "blobs" / "sha256"

    def check(desc: dict[str, Any]) -> bytes | None:
        p = blobdir / desc["digest"].split(":", 1)[1]
        if not p.is_file():
            problems.append(f"missing {desc['digest']}")
            return None
        if sha256_file(p) != desc["digest"]:
            problems.append(f"digest mismatch {desc['digest']}")
        if p.stat().st_size != desc["size"]:
            problems.append(f"size mismatch {desc['digest']}")
        return p.read_bytes() if "json" in desc.get("mediaType", "") else None

    def walk(desc: dict[str, Any]) -> None:
        data = check(desc)
        if data is None:
            return
        doc = json.loads(data)
        for sub in doc.get("manifests", []):
            walk(sub)
        if "config" in doc:
            check(doc["config"])
        for ly in doc.get("layers", []):
            check(ly)

    index = json.loads((layout / "index.json").read_text())
    for d in index.get("manifests", []):
        walk(d)
    return problems


__all__ = [
    "HOSTILE_KINDS",
    "TAMPERS",
    "Device",
    "Dir",
    "Entry",
    "File",
    "Hardlink",
    "History",
    "Opaque",
    "Raw",
    "Symlink",
    "SynthImage",
    "Whiteout",
    "add_entry",
    "build_synth",
    "hostile_entries",
    "layer_tar_bytes",
    "synth_image",
    "verify_oci_layout",
    "write_gzip_bomb",
]
