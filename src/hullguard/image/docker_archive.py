"""`docker save` tarballs (plain or compressed), legacy and Docker 25+ (OCI-in-docker) layouts."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import BinaryIO

from hullguard.image.source import (
    ImageSource,
    SourceError,
    TarContainer,
    artifact_from_config,
    check_digest,
    parse_json,
)
from hullguard.model import Layer


class DockerArchiveSource(ImageSource):
    # Layers are named by path, not digest: the diff id from the config is the identity, checked
    # against the uncompressed bytes as they are read.
    verify_diff_ids = True

    def __init__(self, path: str, *, tag: str = "", name: str = "") -> None:
        self.container = TarContainer(path)
        try:
            self._load(path, tag, name or path)
        except BaseException:
            self.container.close()
            raise

    def _load(self, path: str, tag: str, name: str) -> None:
        if not self.container.has("manifest.json"):
            raise SourceError(f"{path} is not a docker-archive (no manifest.json)")
        manifest = parse_json(self.container.read("manifest.json", "manifest.json"), "manifest.json")
        if not isinstance(manifest, list) or not manifest or not all(isinstance(m, dict) for m in manifest):
            raise SourceError(f"{path}: manifest.json is not a list of images")
        entry = manifest[0]
        if tag:
            found = [m for m in manifest if tag in (m.get("RepoTags") or [])]
            if not found:
                raise SourceError(f"{path}: no image tagged {tag!r}")
            entry = found[0]
        config_name = entry.get("Config")
        layer_names = entry.get("Layers")
        if not isinstance(config_name, str) or not isinstance(layer_names, list) or not all(
                isinstance(n, str) for n in layer_names):
            raise SourceError(f"{path}: manifest.json entry lacks Config or Layers")
        config_bytes = self.container.read(config_name, "image config")
        config_digest = "sha256:" + hashlib.sha256(config_bytes).hexdigest()
        # In both layouts the config file is named after its digest; a mismatch means tampering.
        stem = config_name.rsplit("/", 1)[-1].removesuffix(".json")
        if len(stem) == 64 and stem != config_digest[7:]:
            raise SourceError(f"{path}: image config digest mismatch ({config_name} hashes to {config_digest})")
        config = parse_json(config_bytes, "image config")
        if not isinstance(config, dict):
            raise SourceError(f"{path}: image config is not a JSON object")
        rootfs = config.get("rootfs") if isinstance(config.get("rootfs"), dict) else {}
        diff_ids = rootfs.get("diff_ids") if isinstance(rootfs.get("diff_ids"), list) else None
        if diff_ids is None or len(diff_ids) != len(layer_names):
            raise SourceError(f"{path}: image config lists {len(diff_ids or [])} diff ids for "
                              f"{len(layer_names)} layers")
        history = config.get("history") if isinstance(config.get("history"), list) else []
        real_history = [h for h in history if isinstance(h, dict) and not h.get("empty_layer")]
        self.member_of: dict[str, str] = {}
        self.layers = []
        for i, (member, diff_id) in enumerate(zip(layer_names, diff_ids, strict=True)):
            digest = check_digest(str(diff_id), f"{path} diff id {i}")
            if not self.container.has(member):
                raise SourceError(f"{path}: missing layer {member}")
            self.member_of[digest] = member
            self.layers.append(Layer(
                digest=digest, diff_id=digest,
                size=-1,
                created_by=str(real_history[i].get("created_by", "")) if i < len(real_history) else "",
            ))
        tags = entry.get("RepoTags") if isinstance(entry.get("RepoTags"), list) else []
        self.artifact = artifact_from_config(
            name, "docker-archive", config, config_digest=config_digest, repo_tags=[str(t) for t in tags],
        )

    def blobs(self, layers: list[Layer]) -> Iterator[tuple[Layer, BinaryIO]]:
        by_member: dict[str, Layer] = {}
        for layer in layers:
            by_member.setdefault(self.member_of[layer.digest], layer)
        for member, stream in self.container.open_many(list(by_member)):
            yield by_member[member], stream

    def close(self) -> None:
        self.container.close()
