"""Pack root filesystems into real container images: OCI layout, oci-archive, docker-archive.

The writers here are our own code on purpose: the scanner's readers must not be
tested only against images produced by the same library they use. Real peers
(skopeo, umoci) cross-check the output in tests/integration/test_builders.py.

Two users:
- ``build_image(rootfs_parts, out_dir)`` packs the debootstrap tree into a
  three-layer image (base, language packages, whiteouts) and caches it;
- ``tests.builders.synth`` feeds small in-memory layers through the same writers.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from tests.builders import rootfs as rootfs_mod

IMAGE_BUILDER_VERSION = "1"

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"

LAYER_MEDIA_TYPES = {"none": OCI_LAYER, "gzip": OCI_LAYER + "+gzip", "zstd": OCI_LAYER + "+zstd"}

# Fixed so that rebuilding the same inputs yields the same digests.
EPOCH_ISO = "2024-01-01T00:00:00Z"


# --------------------------------------------------------------------------- blobs


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def sha256_bytes(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class _HashSink(io.RawIOBase):
    """Write-only stream that hashes and counts what passes through to an optional target."""

    def __init__(self, target: BinaryIO | None = None) -> None:
        self.target = target
        self.hash = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:
        mv = memoryview(b)
        self.hash.update(mv)
        self.size += mv.nbytes
        if self.target is not None:
            self.target.write(mv)
        return mv.nbytes

    @property
    def digest(self) -> str:
        return "sha256:" + self.hash.hexdigest()


@contextlib.contextmanager
def _compressor(sink: BinaryIO, compress: str) -> Iterator[BinaryIO]:
    if compress == "none":
        yield sink
    elif compress == "gzip":
        # mtime=0 and no file name keep the blob digest a function of the content only.
        with gzip.GzipFile(filename="", fileobj=sink, mode="wb", compresslevel=6, mtime=0) as gz:
            yield gz  # type: ignore[misc]
    elif compress == "zstd":
        import zstandard

        with zstandard.ZstdCompressor(level=3).stream_writer(sink, closefd=False) as zw:
            yield zw  # type: ignore[misc]
    else:
        raise ValueError(f"unknown compression {compress!r}")


@dataclass(frozen=True)
class LayerBlob:
    """One layer as stored: ``blob`` is what the manifest digest covers, ``tar`` the diff."""

    blob: Path
    tar: Path
    digest: str
    diff_id: str
    size: int
    media_type: str
    compression: str


def write_layer(
    fill: Callable[[tarfile.TarFile], None],
    work_dir: Path,
    compress: str = "gzip",
    tar_format: int = tarfile.PAX_FORMAT,
) -> LayerBlob:
    """Stream a tar built by ``fill`` into an uncompressed tar and a compressed blob."""
    work_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp_tar = tempfile.mkstemp(dir=work_dir, suffix=".tar")
    os.close(fd)
    with open(tmp_tar, "wb") as raw:
        diff_sink = _HashSink(raw)
        with tarfile.open(fileobj=diff_sink, mode="w|", format=tar_format) as tf:  # type: ignore[call-overload]
            fill(tf)
    diff_id = diff_sink.digest
    tar_path = work_dir / (diff_id.split(":")[1] + ".tar")
    os.replace(tmp_tar, tar_path)
    if compress == "none":
        return LayerBlob(tar_path, tar_path, diff_id, diff_id, diff_sink.size, LAYER_MEDIA_TYPES["none"], "none")
    fd, tmp_blob = tempfile.mkstemp(dir=work_dir, suffix=".blob")
    os.close(fd)
    with open(tmp_blob, "wb") as out, open(tar_path, "rb") as src:
        blob_sink = _HashSink(out)
        with _compressor(blob_sink, compress) as zw:  # type: ignore[arg-type]
            shutil.copyfileobj(src, zw, 1 << 20)
    blob_path = work_dir / (blob_sink.digest.split(":")[1] + "." + compress)
    os.replace(tmp_blob, blob_path)
    return LayerBlob(
        blob_path, tar_path, blob_sink.digest, diff_id, blob_sink.size, LAYER_MEDIA_TYPES[compress], compress
    )


# --------------------------------------------------------------------------- config / manifest


@dataclass(frozen=True)
class History:
    created_by: str
    empty_layer: bool = False
    comment: str | None = None

    def as_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"created": EPOCH_ISO, "created_by": self.created_by}
        if self.comment:
            d["comment"] = self.comment
        if self.empty_layer:
            d["empty_layer"] = True
        return d


@dataclass
class ImageSpec:
    """Everything needed to write one platform image."""

    layers: list[LayerBlob]
    history: list[History] = field(default_factory=list)
    os: str = "linux"
    architecture: str = "amd64"
    variant: str | None = None
    config: dict[str, Any] = field(default_factory=dict)  # the runtime "config" section
    manifest_media_type: str = OCI_MANIFEST
    config_media_type: str = OCI_CONFIG
    annotations: dict[str, str] | None = None
    # Last-moment edits of the JSON documents: how deliberately broken images are made.
    config_hook: Callable[[dict[str, Any]], None] | None = None
    manifest_hook: Callable[[dict[str, Any]], None] | None = None

    def config_json(self, diff_ids: Sequence[str] | None = None) -> bytes:
        hist = self.history or [
            History(f"/bin/sh -c #(nop) ADD file:{ly.diff_id.split(':')[1]} in / ") for ly in self.layers
        ]
        cfg: dict[str, Any] = {
            "architecture": self.architecture,
            "os": self.os,
            "created": EPOCH_ISO,
            "config": self.config or {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]},
            "rootfs": {"type": "layers", "diff_ids": list(diff_ids or [ly.diff_id for ly in self.layers])},
            "history": [h.as_json() for h in hist],
        }
        if self.variant:
            cfg["variant"] = self.variant
        if self.config_hook:
            self.config_hook(cfg)
        return _canon(cfg)

    def platform(self) -> dict[str, str]:
        p = {"architecture": self.architecture, "os": self.os}
        if self.variant:
            p["variant"] = self.variant
        return p


def _canon(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


@dataclass(frozen=True)
class WrittenImage:
    manifest: bytes
    manifest_digest: str
    config: bytes
    config_digest: str
    spec: ImageSpec

    @property
    def media_type(self) -> str:
        # Read back from the document so a hook's edit shows in the index descriptor too.
        return str(json.loads(self.manifest).get("mediaType", self.spec.manifest_media_type))


class BlobStore:
    """``blobs/sha256/`` of an OCI layout; also the source of docker-archive contents."""

    def __init__(self, layout_dir: Path) -> None:
        self.dir = layout_dir / "blobs" / "sha256"
        self.dir.mkdir(parents=True, exist_ok=True)

    def path(self, digest: str) -> Path:
        return self.dir / digest.split(":", 1)[1]

    def put_bytes(self, data: bytes) -> str:
        d = sha256_bytes(data)
        self.path(d).write_bytes(data)
        return d

    def put_file(self, src: Path, digest: str) -> None:
        dst = self.path(digest)
        if not dst.exists():
            try:
                os.link(src, dst)
            except OSError:
                shutil.copyfile(src, dst)


def write_image_blobs(store: BlobStore, spec: ImageSpec) -> WrittenImage:
    for ly in spec.layers:
        store.put_file(ly.blob, ly.digest)
    config = spec.config_json()
    config_digest = store.put_bytes(config)
    media = [ly.media_type for ly in spec.layers]
    if spec.manifest_media_type == DOCKER_MANIFEST:
        media = [DOCKER_LAYER_GZIP if m.endswith("+gzip") else m for m in media]
    manifest: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": spec.manifest_media_type,
        "config": {"mediaType": spec.config_media_type, "digest": config_digest, "size": len(config)},
        "layers": [
            {"mediaType": m, "digest": ly.digest, "size": ly.size} for m, ly in zip(media, spec.layers, strict=True)
        ],
    }
    if spec.annotations:
        manifest["annotations"] = spec.annotations
    if spec.manifest_hook:
        spec.manifest_hook(manifest)
    mbytes = _canon(manifest)
    return WrittenImage(mbytes, store.put_bytes(mbytes), config, config_digest, spec)


def _descriptor(media_type: str, data: bytes, **extra: Any) -> dict[str, Any]:
    d: dict[str, Any] = {"mediaType": media_type, "digest": sha256_bytes(data), "size": len(data)}
    d.update({k: v for k, v in extra.items() if v is not None})
    return d


def write_oci_layout(out_dir: Path, specs: Sequence[ImageSpec], ref: str = "latest") -> list[WrittenImage]:
    """One spec -> index.json points at its manifest; several -> index.json -> image index -> manifests.

    The nested form is what ``docker save``/containerd export for multi-platform
    images, and lets ``oci:DIR:ref`` pick a platform.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    store = BlobStore(out_dir)
    written = [write_image_blobs(store, s) for s in specs]
    ann = {"org.opencontainers.image.ref.name": ref}
    if len(written) == 1:
        w = written[0]
        top = [_descriptor(w.media_type, w.manifest, annotations=ann)]
    else:
        nested = _canon(
            {
                "schemaVersion": 2,
                "mediaType": OCI_INDEX,
                "manifests": [_descriptor(w.media_type, w.manifest, platform=w.spec.platform()) for w in written],
            }
        )
        store.put_bytes(nested)
        top = [_descriptor(OCI_INDEX, nested, annotations=ann)]
    (out_dir / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
    (out_dir / "index.json").write_bytes(_canon({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": top}))
    return written


def tar_directory(src: Path, dest: Path) -> Path:
    """A plain tar of a directory's contents (how oci-archive wraps a layout)."""
    with tarfile.open(dest, "w", format=tarfile.PAX_FORMAT) as tf:
        for p in sorted(src.rglob("*")):
            tf.add(p, arcname=p.relative_to(src).as_posix(), recursive=False)
    return dest


def _add_bytes(tf: tarfile.TarFile, name: str, data: bytes) -> None:
    ti = tarfile.TarInfo(name)
    ti.size = len(data)
    ti.mode = 0o644
    tf.addfile(ti, io.BytesIO(data))


def _add_file(tf: tarfile.TarFile, name: str, path: Path) -> None:
    ti = tarfile.TarInfo(name)
    ti.size = path.stat().st_size
    ti.mode = 0o644
    with open(path, "rb") as fh:
        tf.addfile(ti, fh)


def write_docker_archive(
    dest: Path,
    spec: ImageSpec,
    repo_tag: str | None = "hullguard/test:latest",
    legacy: bool = False,
    skip_layers: Sequence[int] = (),
    compressed_layers: bool = False,
) -> Path:
    """Write what ``docker save`` writes. Layers go in as uncompressed tars, like Docker does.

    ``legacy``: the pre-25 layout (``<id>/layer.tar``, ``<config-hex>.json``);
    otherwise Docker 25+'s, where the archive is also an OCI layout (``blobs/sha256``).
    ``skip_layers`` leaves listed layers out of the tar (a missing-blob archive).
    ``compressed_layers`` stores the compressed blobs instead, which ``docker load``
    and skopeo accept and some other tools write.
    """
    files = [ly.blob if compressed_layers else ly.tar for ly in spec.layers]
    file_digests = [ly.digest if compressed_layers else ly.diff_id for ly in spec.layers]
    file_media = [ly.media_type if compressed_layers else OCI_LAYER for ly in spec.layers]
    diff_ids = [ly.diff_id for ly in spec.layers]
    config = spec.config_json(diff_ids)
    config_hex = hashlib.sha256(config).hexdigest()
    tags = [repo_tag] if repo_tag else []
    with tarfile.open(dest, "w", format=tarfile.PAX_FORMAT) as tf:
        layer_names: list[str] = []
        if legacy:
            parent = ""
            for i, ly in enumerate(spec.layers):
                # Legacy layer ids are a chain hash; any stable unique value works for readers.
                lid = hashlib.sha256((parent + "\n" + ly.diff_id).encode()).hexdigest()
                name = f"{lid}/layer.tar"
                layer_names.append(name)
                tf.addfile(_dir_info(lid))
                _add_bytes(tf, f"{lid}/VERSION", b"1.0")
                v1: dict[str, Any] = {"id": lid, "created": EPOCH_ISO, "os": spec.os}
                if parent:
                    v1["parent"] = parent
                _add_bytes(tf, f"{lid}/json", _canon(v1))
                if i not in skip_layers:
                    _add_file(tf, name, files[i])
                parent = lid
            _add_bytes(tf, f"{config_hex}.json", config)
            config_name = f"{config_hex}.json"
            if repo_tag:
                repo, tag = repo_tag.rsplit(":", 1)
                _add_bytes(tf, "repositories", _canon({repo: {tag: parent}}))
        else:
            tf.addfile(_dir_info("blobs"))
            tf.addfile(_dir_info("blobs/sha256"))
            stored: set[str] = set()
            for i in range(len(spec.layers)):
                name = "blobs/sha256/" + file_digests[i].split(":")[1]
                layer_names.append(name)
                if i not in skip_layers and name not in stored:
                    stored.add(name)
                    _add_file(tf, name, files[i])
            config_name = "blobs/sha256/" + config_hex
            _add_bytes(tf, config_name, config)
            manifest = _canon(
                {
                    "schemaVersion": 2,
                    "mediaType": OCI_MANIFEST,
                    "config": {
                        "mediaType": OCI_CONFIG,
                        "digest": "sha256:" + config_hex,
                        "size": len(config),
                    },
                    "layers": [
                        {"mediaType": m, "digest": d, "size": f.stat().st_size}
                        for m, d, f in zip(file_media, file_digests, files, strict=True)
                    ],
                }
            )
            _add_bytes(tf, "blobs/sha256/" + hashlib.sha256(manifest).hexdigest(), manifest)
            ann: dict[str, str] = {}
            if repo_tag:
                ann = {
                    "io.containerd.image.name": "docker.io/" + repo_tag,
                    "org.opencontainers.image.ref.name": repo_tag.rsplit(":", 1)[1],
                }
            _add_bytes(
                tf,
                "index.json",
                _canon(
                    {
                        "schemaVersion": 2,
                        "mediaType": OCI_INDEX,
                        "manifests": [_descriptor(OCI_MANIFEST, manifest, annotations=ann or None)],
                    }
                ),
            )
            _add_bytes(tf, "oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
            if repo_tag:
                repo, tag = repo_tag.rsplit(":", 1)
                _add_bytes(tf, "repositories", _canon({repo: {tag: config_hex}}))
        _add_bytes(tf, "manifest.json", _canon([{"Config": config_name, "RepoTags": tags, "Layers": layer_names}]))
    return dest


def _dir_info(name: str) -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name)
    ti.type = tarfile.DIRTYPE
    ti.mode = 0o755
    return ti


# --------------------------------------------------------------------------- the real Debian image

# What layer 3 removes, so tests can assert the merged view honours it.
WHITEOUT_FILE = "etc/issue.net"
WHITEOUT_DIR = "usr/share/doc/openssl"
OPAQUE_DIR = "var/cache/debconf"
OPAQUE_NEW_FILE = "var/cache/debconf/hullguard-note.txt"


@dataclass(frozen=True)
class ImagePaths:
    oci_dir: Path
    oci_archive: Path
    docker_archive: Path  # Docker 25+ layout (blobs/sha256 + manifest.json)
    docker_archive_legacy: Path  # <id>/layer.tar layout
    multiarch_oci_dir: Path  # index -> linux/amd64 + linux/arm64
    repo_tag: str
    manifest_digest: str
    config_digest: str
    layer_digests: tuple[str, ...]
    diff_ids: tuple[str, ...]
    history: tuple[str, ...]
    key: str


def _tar_tree(src: Path) -> Callable[[tarfile.TarFile], None]:
    def fill(tf: tarfile.TarFile) -> None:
        for child in sorted(src.iterdir()):
            tf.add(child, arcname=child.name, recursive=True)

    return fill


def _whiteout_layer(tf: tarfile.TarFile) -> None:
    def wh(path: str) -> None:
        d, _, base = path.rpartition("/")
        ti = tarfile.TarInfo(f"{d}/.wh.{base}" if d else f".wh.{base}")
        ti.mode = 0o644
        tf.addfile(ti, io.BytesIO(b""))

    wh(WHITEOUT_FILE)
    wh(WHITEOUT_DIR)
    tf.addfile(_dir_info(OPAQUE_DIR))
    opq = tarfile.TarInfo(OPAQUE_DIR + "/.wh..wh..opq")
    opq.mode = 0o644
    tf.addfile(opq, io.BytesIO(b""))
    _add_bytes(tf, OPAQUE_NEW_FILE, b"debconf cache reset by a later layer\n")


def _debian_specs(parts: rootfs_mod.BuiltRootfs, work: Path) -> tuple[ImageSpec, ImageSpec]:
    base = write_layer(_tar_tree(parts.base), work / "layers")
    lang = write_layer(_tar_tree(parts.lang), work / "layers")
    wipe = write_layer(_whiteout_layer, work / "layers")
    pip = " ".join(rootfs_mod.PIP_PACKAGES)
    npm = " ".join(rootfs_mod.NPM_PACKAGES)
    history = [
        History(f"/bin/sh -c #(nop) ADD file:{base.diff_id.split(':')[1]} in / "),
        History('/bin/sh -c #(nop)  CMD ["bash"]', empty_layer=True),
        History(
            f"RUN /bin/sh -c pip install --no-deps --target /{rootfs_mod.PY_TARGET} {pip}"
            f" && cd /{rootfs_mod.NPM_APP} && npm install {npm}"
            f" && cp /build/*.jar /{rootfs_mod.JAR_DIR}/ # buildkit",
            comment="buildkit.dockerfile.v0",
        ),
        History("ENV APP_HOME=/srv/app", empty_layer=True, comment="buildkit.dockerfile.v0"),
        History(
            f"RUN /bin/sh -c rm -rf /{WHITEOUT_FILE} /{WHITEOUT_DIR} && rm -rf /{OPAQUE_DIR}"
            f" && mkdir /{OPAQUE_DIR} && echo reset > /{OPAQUE_NEW_FILE} # buildkit",
            comment="buildkit.dockerfile.v0",
        ),
        History("WORKDIR /srv/app", empty_layer=True, comment="buildkit.dockerfile.v0"),
        History('CMD ["python3"]', empty_layer=True, comment="buildkit.dockerfile.v0"),
    ]
    runtime = {
        "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "APP_HOME=/srv/app"],
        "Cmd": ["python3"],
        "WorkingDir": "/srv/app",
    }
    amd64 = ImageSpec([base, lang, wipe], history, config=runtime)
    # The arm64 member only has to be a valid, different image: reuse the small layers.
    arm_hist = [h for h in history if h.empty_layer or "pip install" in h.created_by or "rm -rf" in h.created_by]
    arm64 = ImageSpec([lang, wipe], arm_hist, architecture="arm64", variant="v8", config=runtime)
    return amd64, arm64


def image_key(parts: rootfs_mod.BuiltRootfs) -> str:
    return hashlib.sha256(f"{parts.key}/{IMAGE_BUILDER_VERSION}".encode()).hexdigest()[:16]


REPO_TAG = "hullguard/debian-fixture:1"


def build_image(parts: rootfs_mod.BuiltRootfs | None = None, out_dir: Path | None = None) -> ImagePaths:
    """Build (or reuse from cache) every format of the Debian fixture image."""
    parts = parts or rootfs_mod.build_rootfs_parts()
    key = image_key(parts)
    final = out_dir or rootfs_mod.cache_root() / f"image-{key}"
    if not (final / "paths.json").is_file():
        final.parent.mkdir(parents=True, exist_ok=True)
        with rootfs_mod.cache_lock(final.name):
            if not (final / "paths.json").is_file():
                if out_dir is None:
                    rootfs_mod.remove_stale_temps(final.name)
                tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
                try:
                    _build_image_into(parts, tmp, key)
                    os.chmod(tmp, 0o755)  # mkdtemp makes it private; the cache is shared
                    if final.exists():
                        shutil.rmtree(final)
                    os.rename(tmp, final)
                except BaseException:
                    shutil.rmtree(tmp, ignore_errors=True)
                    raise
    return _load_paths(final)


def _build_image_into(parts: rootfs_mod.BuiltRootfs, tmp: Path, key: str) -> None:
    amd64, arm64 = _debian_specs(parts, tmp / "work")
    [w] = write_oci_layout(tmp / "oci", [amd64], ref="1")
    write_oci_layout(tmp / "oci-multiarch", [amd64, arm64], ref="1")
    tar_directory(tmp / "oci", tmp / "image.oci.tar")
    write_docker_archive(tmp / "image.docker.tar", amd64, REPO_TAG)
    write_docker_archive(tmp / "image.docker-legacy.tar", amd64, REPO_TAG, legacy=True)
    # Layer tars are only an intermediate; the layouts and archives hold their own copies.
    shutil.rmtree(tmp / "work")
    meta = {
        "repo_tag": REPO_TAG,
        "manifest_digest": w.manifest_digest,
        "config_digest": w.config_digest,
        "layer_digests": [ly.digest for ly in amd64.layers],
        "diff_ids": [ly.diff_id for ly in amd64.layers],
        "history": [h.created_by for h in amd64.history],
        "key": key,
    }
    (tmp / "paths.json").write_text(json.dumps(meta, indent=2) + "\n")


def _load_paths(d: Path) -> ImagePaths:
    m = json.loads((d / "paths.json").read_text())
    return ImagePaths(
        oci_dir=d / "oci",
        oci_archive=d / "image.oci.tar",
        docker_archive=d / "image.docker.tar",
        docker_archive_legacy=d / "image.docker-legacy.tar",
        multiarch_oci_dir=d / "oci-multiarch",
        repo_tag=m["repo_tag"],
        manifest_digest=m["manifest_digest"],
        config_digest=m["config_digest"],
        layer_digests=tuple(m["layer_digests"]),
        diff_ids=tuple(m["diff_ids"]),
        history=tuple(m["history"]),
        key=m["key"],
    )


# --------------------------------------------------------------------------- umoci-written layouts


def umoci_layout(src_root: Path, out_dir: Path, tag: str = "latest", rootless: bool | None = None) -> Path:
    """An OCI layout written by umoci from a directory tree: a second, independent writer."""
    if shutil.which("umoci") is None:
        raise rootfs_mod.BuildToolMissing("umoci is not installed")
    rootless = os.geteuid() != 0 if rootless is None else rootless
    ro = ["--rootless"] if rootless else []
    ref = f"{out_dir}:{tag}"
    with tempfile.TemporaryDirectory(prefix="hg-umoci-") as tmp:
        bundle = Path(tmp) / "bundle"
        _check(["umoci", "init", "--layout", str(out_dir)])
        _check(["umoci", "new", "--image", ref])
        _check(["umoci", "unpack", *ro, "--image", ref, str(bundle)])
        _check(["cp", "-a", f"{src_root}/.", str(bundle / "rootfs")])
        _check(["umoci", "repack", "--image", ref, str(bundle)])
        _check(["umoci", "config", "--image", ref, "--config.cmd", "/bin/sh", "--author", "hullguard-tests"])
        _check(["umoci", "gc", "--layout", str(out_dir)])
    return out_dir


def _check(cmd: list[str]) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {proc.stderr.strip()[-2000:]}")


def umoci_debian_layout(parts: rootfs_mod.BuiltRootfs | None = None) -> Path:
    """umoci's packing of the merged Debian root, cached like the other images."""
    parts = parts or rootfs_mod.build_rootfs_parts()
    final = rootfs_mod.cache_root() / f"umoci-{image_key(parts)}"
    if not (final / "index.json").is_file():
        with rootfs_mod.cache_lock(final.name):
            if not (final / "index.json").is_file():
                rootfs_mod.remove_stale_temps(final.name)
                tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
                try:
                    umoci_layout(parts.root, tmp / "layout", tag="1")
                    os.chmod(tmp / "layout", 0o755)
                    os.rename(tmp / "layout", final)
                finally:
                    shutil.rmtree(tmp, ignore_errors=True)
    return final


if __name__ == "__main__":
    import sys

    p = build_image()
    for k, v in p.__dict__.items():
        print(f"{k}: {v}", file=sys.stdout)
