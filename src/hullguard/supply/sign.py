"""Sign an image the way cosign does: a simple-signing payload naming the manifest digest, signed with
ECDSA-P256-SHA256 and stored as a layer of the ``sha256-<hex>.sig`` manifest next to the image."""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

from hullguard.supply import oci
from hullguard.supply.keys import PublicKey, sign_bytes

SIGNATURE_TYPE = "cosign container image signature"


@dataclass
class SignResult:
    reference: str
    digest: str
    docker_reference: str
    signature_tag: str
    payload_digest: str
    signature: str  # base64, as stored in the annotation
    manifest_digest: str
    appended: bool  # False when the identical signature was already there


def simple_signing_payload(docker_reference: str, digest: str, optional: dict[str, Any] | None = None) -> bytes:
    """cosign's payload, byte for byte as Go's encoding/json writes it (compact, this key order)."""
    payload = {
        "critical": {
            "identity": {"docker-reference": docker_reference},
            "image": {"docker-manifest-digest": digest},
            "type": SIGNATURE_TYPE,
        },
        "optional": optional or None,
    }
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


def sign_image(reference: str, key: ec.EllipticCurvePrivateKey, *, annotations: dict[str, str] | None = None,
               insecure: bool = False, timeout: float = 30.0, username: str | None = None,
               password: str | None = None) -> SignResult:
    target = oci.open_target(reference, insecure=insecure, timeout=timeout, username=username, password=password)
    try:
        payload = simple_signing_payload(target.repo, target.digest, annotations)
        signature = base64.b64encode(sign_bytes(key, payload)).decode()
        payload_digest = "sha256:" + hashlib.sha256(payload).hexdigest()
        layers = oci.layer_descriptors(oci.existing_manifest(target, "sig"))
        # ECDSA signatures are randomised, so "same signature" means same payload signed by the same key;
        # re-signing an identical payload would only grow the manifest.
        checker = PublicKey(key.public_key(), "")
        for layer in layers:
            sig_b64 = (layer.get("annotations") or {}).get(oci.SIGNATURE_ANNOTATION, "")
            if layer.get("digest") == payload_digest and isinstance(sig_b64, str):
                try:
                    if checker.verify(base64.b64decode(sig_b64, validate=True), payload):
                        return SignResult(reference, target.digest, target.repo, target.tag("sig"), payload_digest,
                                          sig_b64, "", appended=False)
                except ValueError:
                    pass
        target.client.push_blob(payload)
        layers.append(oci.descriptor(oci.SIMPLESIGNING, payload, payload_digest,
                                     {oci.SIGNATURE_ANNOTATION: signature}))
        manifest_digest = oci.push_layers(target, "sig", layers)
        return SignResult(reference, target.digest, target.repo, target.tag("sig"), payload_digest, signature,
                          manifest_digest, appended=True)
    finally:
        target.close()
