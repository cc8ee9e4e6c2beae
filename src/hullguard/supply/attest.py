"""In-toto attestations in DSSE envelopes, stored where cosign stores them (``sha256-<hex>.att``)."""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import re
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

from hullguard.model import HullguardError
from hullguard.supply import oci
from hullguard.supply.keys import load_private_key, sign_bytes
from hullguard.supply.verify import IN_TOTO_PAYLOAD_TYPE, pae

STATEMENT_V1 = "https://in-toto.io/Statement/v1"
# cosign's short names for predicate types (cosign attest --type).
PREDICATE_TYPES = {
    "cyclonedx": "https://cyclonedx.org/bom",
    "vuln": "https://cosign.sigstore.dev/attestation/vuln/v1",
    "custom": "https://cosign.sigstore.dev/attestation/v1",
    "spdx": "https://spdx.dev/Document",
    "spdxjson": "https://spdx.dev/Document",
    "slsaprovenance": "https://slsa.dev/provenance/v0.2",
    "slsaprovenance1": "https://slsa.dev/provenance/v1",
    "openvex": "https://openvex.dev/ns",
}
MAX_PREDICATE = 64 << 20
_URI = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://\S+$")


@dataclass
class AttestResult:
    reference: str
    digest: str
    repository: str
    predicate_type: str
    attestation_tag: str
    envelope_digest: str
    manifest_digest: str


def predicate_type_uri(name: str) -> str:
    if name.lower() in PREDICATE_TYPES:
        return PREDICATE_TYPES[name.lower()]
    if _URI.match(name) and len(name) <= 1024:
        return name
    raise HullguardError(f"unknown predicate type {name[:80]!r}: use {', '.join(PREDICATE_TYPES)} or a URI")


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def load_predicate(path: str, type_name: str) -> Any:
    """The predicate from a file: JSON for every type but ``custom``, whose file cosign wraps as text."""
    try:
        size = os.path.getsize(path)
        if size > MAX_PREDICATE:
            raise HullguardError(f"predicate {path} is larger than {MAX_PREDICATE} bytes")
        with open(path, "rb") as f:
            data = f.read(MAX_PREDICATE + 1)
    except OSError as exc:
        raise HullguardError(f"cannot read predicate {path}: {exc.strerror or exc}") from None
    if type_name.lower() == "custom":
        return {"Data": data.decode("utf-8", "replace"), "Timestamp": _now()}
    try:
        return json.loads(data)
    except ValueError as exc:
        raise HullguardError(f"predicate {path} is not JSON ({exc})") from None


def make_statement(subject_name: str, digest: str, predicate_type: str, predicate: Any) -> dict[str, Any]:
    algo, _, hexdigest = digest.partition(":")
    return {
        "_type": STATEMENT_V1,
        "subject": [{"name": subject_name, "digest": {algo: hexdigest}}],
        "predicateType": predicate_type,
        "predicate": predicate,
    }


def dsse_envelope(payload: bytes, key: ec.EllipticCurvePrivateKey, payload_type: str = IN_TOTO_PAYLOAD_TYPE) -> bytes:
    sig = sign_bytes(key, pae(payload_type, payload))
    env = {
        "payloadType": payload_type,
        "payload": base64.b64encode(payload).decode(),
        "signatures": [{"keyid": "", "sig": base64.b64encode(sig).decode()}],
    }
    return json.dumps(env, separators=(",", ":")).encode()


def attest_image(reference: str, key: ec.EllipticCurvePrivateKey, predicate: Any, predicate_type: str, *,
                 replace: bool = False, insecure: bool = False, timeout: float = 30.0,
                 username: str | None = None, password: str | None = None) -> AttestResult:
    """Sign an in-toto statement about the image's digest and add it to ``sha256-<hex>.att``.

    ``replace`` drops earlier attestations of the same predicate type (by their annotation) first.
    """
    ptype = predicate_type_uri(predicate_type)
    target = oci.open_target(reference, insecure=insecure, timeout=timeout, username=username, password=password)
    try:
        statement = make_statement(target.repo, target.digest, ptype, predicate)
        envelope = dsse_envelope(json.dumps(statement, separators=(",", ":")).encode(), key)
        env_digest = target.client.push_blob(envelope)
        layers = oci.layer_descriptors(oci.existing_manifest(target, "att"))
        if replace:
            layers = [x for x in layers if (x.get("annotations") or {}).get("predicateType") != ptype]
        layers = [x for x in layers if x.get("digest") != env_digest]
        layers.append(oci.descriptor(oci.DSSE, envelope, env_digest,
                                     {oci.SIGNATURE_ANNOTATION: "", "predicateType": ptype}))
        manifest_digest = oci.push_layers(target, "att", layers)
        return AttestResult(reference, target.digest, target.repo, ptype, target.tag("att"), env_digest,
                            manifest_digest)
    finally:
        target.close()


def vuln_predicate(scan_doc: dict[str, Any], started: str = "", finished: str = "") -> dict[str, Any]:
    """cosign's vulnerability predicate (COSIGN_VULN_ATTESTATION_SPEC) around a hullguard scan result."""
    from hullguard import __version__

    return {
        "invocation": {"parameters": None, "uri": "", "event_id": "", "builder.id": ""},
        "scanner": {
            "uri": f"pkg:pypi/hullguard@{__version__}",
            "version": __version__,
            "db": {"uri": "", "version": ""},
            "result": scan_doc,
        },
        "metadata": {"scanStartedOn": started or _now(), "scanFinishedOn": finished or _now()},
    }


def attach_scan_attestations(reference: str, sbom_doc: dict[str, Any], scan_doc: dict[str, Any], key_path: str, *,
                             insecure: bool = False) -> list[str]:
    """For ``hullguard image --attest``: attach the CycloneDX SBOM and the scan result it just produced.

    Each replaces an earlier attestation of its type. Returns one line per attestation pushed
    (``<predicateType> -> <repo>:<tag>``). The key password comes from COSIGN_PASSWORD /
    HULLGUARD_KEY_PASSWORD or a prompt.
    """
    key = load_private_key(key_path)
    done = []
    for name, predicate in (("cyclonedx", sbom_doc), ("vuln", vuln_predicate(scan_doc))):
        if predicate is None:
            continue
        res = attest_image(reference, key, predicate, name, replace=True, insecure=insecure)
        done.append(f"{res.predicate_type} -> {res.repository}:{res.attestation_tag}")
    return done
