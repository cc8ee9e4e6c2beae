"""OCI image layout, as a directory (oci-dir:) or a tar of one (oci-archive:)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any, BinaryIO

from hullguard.image.source import (
    ImageSource,
    Platform,
    SourceError,
    TarContainer,
    artifact_from_config,
    check_config_descriptor,
    check_digest,
    layers_from,
    parse_json,
    resolve_manifest,
    verified,
    verify_bytes,
)
from hullguard.model import Layer

REF_ANNOTATION = "org.opencontainers.image.ref.name"


class _DirBlobs:
    def __init__(self, root: str) -> None:
        self.root = root

    def path(self, digest: str) -> str:
        algo, _, hexpart = check_digest(digest, "blob").partition(":")
        return os.path.join(self.root, "blobs", algo, hexpart)

    def has(self, name: str) -> bool:
        return os.path.isfile(os.path.join(self.root, name))

    def read(self, name: str, what: str) -> bytes:
        path = os.path.join(self.root, name)
        try:
            # Layouts are untrusted: a blob may be a symlink pointing anywhere on the host.
            if os.path.islink(path):
                raise SourceError(f"{what}: {name} is a symlink; refusing to follow it")
            with open(path, "rb") as f:
                return f.read(16 * 1024 * 1024 + 1)
        except FileNotFoundError:
            raise SourceError(f"{what}: missing blob {name}") from None
        except OSError as exc:
            raise SourceError(f"{what}: cannot read {name}: {exc.strerror}") from None

    def open_many(self, names: list[str]) -> Iterator[tuple[str, BinaryIO]]:
        for name in names:
            path = os.path.join(self.root, name)
            if os.path.islink(path):
                raise SourceError(f"blob {name} is a symlink; refusing to follow it")
            try:
                f = open(path, "rb")  # noqa: SIM115 - closed below after the consumer is done
            except FileNotFoundError:
                raise SourceError(f"missing blob {name} in {self.root}") from None
            with f:
                yield name, f

    def close(self) -> None:
        pass


class OCILayoutSource(ImageSource):
    def __init__(self, path: str, *, archive: bool, ref: str = "", platform: Platform | None = None,
                 name: str = "") -> None:
        self.kind = "oci-archive" if archive else "oci-dir"
        self.store: Any = TarContainer(path) if archive else _DirBlobs(path)
        try:
            self._load(path, ref, platform, name or path)
        except BaseException:
            self.store.close()
            raise

    def _blob_name(self, digest: str) -> str:
        algo, _, hexpart = check_digest(digest, "blob").partition(":")
        return f"blobs/{algo}/{hexpart}"

    def _load(self, path: str, ref: str, platform: Platform | None, name: str) -> None:
        if not self.store.has("oci-layout"):
            raise SourceError(f"{path} is not an OCI image layout (no oci-layout file)")
        layout = parse_json(self.store.read("oci-layout", "oci-layout"), "oci-layout")
        version = layout.get("imageLayoutVersion") if isinstance(layout, dict) else None
        if not isinstance(version, str) or not version.startswith("1."):
            raise SourceError(f"{path}: unsupported imageLayoutVersion {version!r}")
        index = parse_json(self.store.read("index.json", "index.json"), "index.json")
        if not isinstance(index, dict) or not isinstance(index.get("manifests"), list):
            raise SourceError(f"{path}: index.json has no manifests")
        manifests = [m for m in index["manifests"] if isinstance(m, dict)]
        if ref:
            manifests = [m for m in manifests if (m.get("annotations") or {}).get(REF_ANNOTATION) == ref]
            if not manifests:
                refs = sorted({(m.get("annotations") or {}).get(REF_ANNOTATION, "") for m in index["manifests"]
                               if isinstance(m, dict)} - {""})
                raise SourceError(f"{path}: no image tagged {ref!r} (available: {', '.join(refs) or 'none'})")
        if not manifests:
            raise SourceError(f"{path}: index.json lists no images")
        if len(manifests) > 1 and not any(isinstance(m.get("platform"), dict) for m in manifests):
            refs = [(m.get("annotations") or {}).get(REF_ANNOTATION, m.get("digest", "?")) for m in manifests]
            raise SourceError(f"{path} holds {len(manifests)} images; choose one with {path}:REF "
                              f"(available: {', '.join(map(str, refs))})")

        def fetch(desc: dict[str, Any]) -> tuple[bytes, str]:
            digest = check_digest(desc["digest"], "descriptor")
            data = self.store.read(self._blob_name(digest), f"manifest {digest}")
            return verify_bytes(data, digest, f"manifest {digest}"), desc.get("mediaType", "")

        top = {"mediaType": "application/vnd.oci.image.index.v1+json", "manifests": manifests}
        import json

        manifest, digest = resolve_manifest(json.dumps(top).encode(), "", fetch, platform, f"{path} index.json")
        cfg_desc = check_config_descriptor(manifest, f"manifest {digest}")
        config_bytes = verify_bytes(
            self.store.read(self._blob_name(cfg_desc["digest"]), "image config"), cfg_desc["digest"], "image config"
        )
        config = parse_json(config_bytes, "image config")
        if not isinstance(config, dict):
            raise SourceError("image config is not a JSON object")
        tags = [m["annotations"][REF_ANNOTATION] for m in manifests
                if isinstance(m.get("annotations"), dict) and REF_ANNOTATION in m["annotations"]]
        self.artifact = artifact_from_config(
            name, self.kind, config, manifest_digest=digest, config_digest=cfg_desc["digest"],
            repo_tags=[str(t) for t in tags[:1]],
        )
        self.layers = layers_from(manifest, config, f"manifest {digest}")

    def blobs(self, layers: list[Layer]) -> Iterator[tuple[Layer, BinaryIO]]:
        names = {self._blob_name(layer.digest): layer for layer in layers}
        for name, stream in self.store.open_many(list(names)):
            layer = names[name]
            yield layer, verified(stream, layer, f"layer {layer.digest}")  # type: ignore[misc]

    def close(self) -> None:
        self.store.close()
