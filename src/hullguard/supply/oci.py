"""Where cosign keeps signatures and attestations: an OCI image manifest tagged ``sha256-<hex>.sig``
(or ``.att``) in the image's own repository, one layer per signature, next to the image it signs."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from hullguard.image.registry import DOCKER_HUB, Credentials, Reference, RegistryClient, read_bounded
from hullguard.image.source import SourceError, check_digest
from hullguard.model import HullguardError

SIMPLESIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"
DSSE = "application/vnd.dsse.envelope.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
# Early cosign releases wrote signature manifests with go-containerregistry's Docker schema 2 default.
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
MAX_LAYERS = 256  # signatures/attestations per image we are willing to read or write
ZERO_TIME = "0001-01-01T00:00:00Z"


@dataclass
class Target:
    """An image resolved to the manifest digest the registry serves; never trusted by tag alone."""

    client: RegistryClient
    ref: Reference
    digest: str

    @property
    def repo(self) -> str:
        """The repository as cosign writes it in ``docker-reference`` and in-toto subjects."""
        registry = "index.docker.io" if self.ref.registry == DOCKER_HUB else self.ref.registry
        return f"{registry}/{self.ref.repository}"

    def tag(self, suffix: str) -> str:
        algo, _, hexdigest = self.digest.partition(":")
        return f"{algo}-{hexdigest}.{suffix}"

    def close(self) -> None:
        self.client.close()


def open_target(reference: str, *, insecure: bool = False, timeout: float = 30.0,
                username: str | None = None, password: str | None = None) -> Target:
    ref = Reference.parse(reference)
    creds = Credentials(username or "", password or "") if (username or password) else None
    client = RegistryClient(ref, insecure=insecure, credentials=creds, timeout=timeout)
    try:
        _, _, digest = client.manifest(ref.reference)
    except BaseException:
        client.close()
        raise
    return Target(client, ref, digest)


def existing_manifest(target: Target, suffix: str) -> dict[str, Any] | None:
    """The current ``.sig``/``.att`` manifest, or None. Raises SourceError when it is not a manifest."""
    found = target.client.manifest_if_exists(target.tag(suffix), accept=f"{OCI_MANIFEST}, {DOCKER_MANIFEST}")
    if found is None:
        return None
    try:
        manifest = json.loads(found[0])
    except ValueError:
        raise SourceError(f"{target.tag(suffix)} is not JSON") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("layers", []), list):
        raise SourceError(f"{target.tag(suffix)} is not an image manifest")
    return manifest


def layer_descriptors(manifest: dict[str, Any] | None) -> list[dict[str, Any]]:
    if not manifest:
        return []
    layers = [x for x in manifest.get("layers") or [] if isinstance(x, dict)]
    if len(layers) > MAX_LAYERS:
        raise SourceError(f"signature manifest has {len(layers)} layers (limit {MAX_LAYERS})")
    return layers


def descriptor(media_type: str, data: bytes, digest: str, annotations: dict[str, str]) -> dict[str, Any]:
    return {"mediaType": media_type, "size": len(data), "digest": digest, "annotations": annotations}


def push_layers(target: Target, suffix: str, layers: list[dict[str, Any]]) -> str:
    """Write the manifest holding ``layers`` (their blobs already pushed) under the ``.sig``/``.att`` tag."""
    if len(layers) > MAX_LAYERS:
        raise HullguardError(f"refusing to store more than {MAX_LAYERS} layers in {target.tag(suffix)}")
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    # The config go-containerregistry writes for cosign's empty-image-plus-layers manifests.
    config = {
        "architecture": "",
        "created": now,
        "history": [{"created": ZERO_TIME} for _ in layers],
        "os": "",
        "rootfs": {"type": "layers", "diff_ids": [x["digest"] for x in layers]},
        "config": {},
    }
    config_bytes = json.dumps(config, separators=(",", ":")).encode()
    config_digest = target.client.push_blob(config_bytes)
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "size": len(config_bytes), "digest": config_digest},
        "layers": layers,
    }
    return target.client.push_manifest(target.tag(suffix), json.dumps(manifest, separators=(",", ":")).encode(),
                                       OCI_MANIFEST)


def fetch_layer(target: Target, layer: dict[str, Any], limit: int) -> tuple[bytes | None, str]:
    """(blob, "") or (None, why-not). Registry trouble other than a missing blob raises SourceError."""
    digest = layer.get("digest")
    size = layer.get("size")
    if not isinstance(digest, str):
        return None, "layer has no digest"
    try:
        check_digest(digest, "layer")
    except HullguardError:
        return None, f"layer digest {digest[:80]!r} is malformed"
    if not isinstance(size, int) or size < 0 or size > limit:
        return None, f"layer size {size!r} is missing or over the {limit}-byte limit"
    response = target.client.request("GET", f"blobs/{digest}", ok=(200, 404), stream=True)
    try:
        if response.status_code == 404:
            return None, f"blob {digest} is missing from the registry"
        data = read_bounded(response, limit, f"blob {digest}")
    except SourceError as exc:
        if "larger than" in str(exc):
            return None, str(exc)
        raise
    finally:
        response.close()
    algo, _, want = digest.partition(":")
    if algo != "sha256" or hashlib.sha256(data).hexdigest() != want:
        return None, f"blob {digest} does not match its digest (tampered or truncated)"
    if len(data) != size:
        return None, f"blob {digest} is {len(data)} bytes, descriptor says {size}"
    return data, ""
