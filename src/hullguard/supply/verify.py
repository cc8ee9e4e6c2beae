"""Verify cosign signatures and attestations of an image against public keys.

The reference is always resolved to the manifest digest the registry serves, and a signature only
counts when its signed payload names that same digest: a tag moved to another image fails.
A damaged or hostile signature layer is a failed check with a reason, never an exception; registry
trouble (unreachable, auth, 5xx) raises HullguardError so callers can apply their fail-open/closed mode.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from typing import Any

from hullguard.supply import oci
from hullguard.supply.keyless import CERT_ANNOTATION, TrustRoot, verify_keyless
from hullguard.supply.keys import PublicKey, load_public_keys, raw_signature_ok

MAX_PAYLOAD = 1 << 20  # simple-signing payloads are a few hundred bytes
MAX_ENVELOPE = 64 << 20  # attestations carry whole SBOMs
IN_TOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"
STATEMENT_TYPES = ("https://in-toto.io/Statement/v1", "https://in-toto.io/Statement/v0.1")


@dataclass
class SignatureCheck:
    key: str
    ok: bool
    reason: str
    docker_reference: str = ""
    digest: str = ""


@dataclass
class VerifyResult:
    reference: str
    digest: str
    verified: bool
    checks: list[SignatureCheck]
    reason: str
    # verify_attestation: the verified in-toto statements (predicateType, subject, predicate).
    statements: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "reference": self.reference, "digest": self.digest, "verified": self.verified, "reason": self.reason,
            "checks": [vars(c) for c in self.checks],
            **({"statements": self.statements} if self.statements else {}),
        }


def _decode_sig(value: object) -> tuple[bytes | None, str]:
    if not isinstance(value, str) or not value:
        return None, "no signature"
    try:
        sig = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None, "signature is not valid base64"
    if not raw_signature_ok(sig):
        return None, "signature is not a DER ECDSA signature (truncated or corrupt)"
    return sig, ""


def _find_key(keys: list[PublicKey], sig: bytes, data: bytes) -> PublicKey | None:
    return next((k for k in keys if k.verify(sig, data)), None)


def _lower_keys(d: object) -> dict[str, Any]:
    # Go's encoding/json (cosign) matches object keys case-insensitively; do the same on read.
    return {str(k).lower(): v for k, v in d.items()} if isinstance(d, dict) else {}


def _check_payload(payload: bytes, digest: str) -> tuple[str, str, str]:
    """(docker-reference, signed digest, problem) of a simple-signing payload."""
    try:
        doc = json.loads(payload)
    except ValueError:
        return "", "", "payload is not JSON"
    critical = _lower_keys(_lower_keys(doc).get("critical"))
    if critical.get("type") != "cosign container image signature":
        return "", "", "payload is not a cosign container image signature"
    ident = _lower_keys(critical.get("identity")).get("docker-reference", "")
    signed = _lower_keys(critical.get("image")).get("docker-manifest-digest", "")
    ident = ident if isinstance(ident, str) else ""
    if not isinstance(signed, str) or not signed:
        return ident, "", "payload names no docker-manifest-digest"
    if signed != digest:
        return ident, signed, f"signature is for {signed}, not {digest}"
    return ident, signed, ""


def _decide(checks: list[SignatureCheck], keys: list[PublicKey], require_all: bool, what: str) -> tuple[bool, str]:
    good = [c for c in checks if c.ok]
    if require_all:
        missing = [k.label for k in keys if not any(c.key == k.label for c in good)]
        if missing:
            return False, f"no valid {what} by {', '.join(missing)}"
        return True, f"valid {what} by every given key"
    if good:
        return True, f"{len(good)} valid {what}{'s' if len(good) > 1 else ''}"
    if not checks:
        return False, f"no {what}s found"
    return False, f"no valid {what}: " + "; ".join(dict.fromkeys(c.reason for c in checks))


def verify_image(reference: str, public_keys: list[str | bytes], *, insecure: bool = False, timeout: float = 30.0,
                 username: str | None = None, password: str | None = None,
                 require_all: bool = False, trust_root: TrustRoot | None = None,
                 identity: str | None = None, oidc_issuer: str | None = None) -> VerifyResult:
    """``trust_root`` (see keyless.load_trust_root) also accepts keyless signatures: Fulcio certificate
    chaining to its roots plus a Rekor bundle signed by its Rekor key, optionally for ``identity`` /
    ``oidc_issuer`` only. With a trust root, ``public_keys`` may be empty."""
    keys = load_public_keys(public_keys) if (public_keys or trust_root is None) else []
    keyless_policy = (trust_root, identity, oidc_issuer) if trust_root is not None else None
    target = oci.open_target(reference, insecure=insecure, timeout=timeout, username=username, password=password)
    try:
        layers, problem = _stored_layers(target, "sig", "signatures")
        if layers is None:
            return VerifyResult(reference, target.digest, False, [], problem)
        checks = [_check_signature_layer(target, layer, i, keys, keyless_policy) for i, layer in enumerate(layers)]
        ok, reason = _decide(checks, keys, require_all, "signature")
        return VerifyResult(reference, target.digest, ok, checks, reason)
    finally:
        target.close()


def _stored_layers(target: oci.Target, suffix: str, what: str) -> tuple[list[dict[str, Any]] | None, str]:
    """The layers of the ``.sig``/``.att`` manifest, or (None, why). A manifest that is present but
    unusable is the image's problem (a failed verification), not the registry's."""
    try:
        manifest = oci.existing_manifest(target, suffix)
        if manifest is None:
            return None, f"no {what} found ({target.repo}:{target.tag(suffix)} does not exist)"
        return oci.layer_descriptors(manifest), ""
    except oci.SourceError as exc:
        if any(s in str(exc) for s in ("not JSON", "not an image manifest", "layers (limit", "larger than")):
            return None, f"{target.tag(suffix)}: {exc}"
        raise


def _check_signature_layer(target: oci.Target, layer: dict[str, Any], i: int, keys: list[PublicKey],
                           keyless_policy: tuple[TrustRoot, str | None, str | None] | None = None) -> SignatureCheck:
    where = f"signature {i + 1}"
    if layer.get("mediaType") != oci.SIMPLESIGNING:
        return SignatureCheck("", False, f"{where}: unexpected media type {str(layer.get('mediaType'))[:80]!r}")
    annotations = layer.get("annotations") if isinstance(layer.get("annotations"), dict) else {}
    sig, problem = _decode_sig(annotations.get(oci.SIGNATURE_ANNOTATION))
    if sig is None:
        return SignatureCheck("", False, f"{where}: {problem}")
    payload, problem = oci.fetch_layer(target, layer, MAX_PAYLOAD)
    if payload is None:
        return SignatureCheck("", False, f"{where}: {problem}")
    key = _find_key(keys, sig, payload)
    if key is not None:
        signer = key.label
    elif keyless_policy is not None and CERT_ANNOTATION in annotations:
        trust, identity, issuer = keyless_policy
        who, problem = verify_keyless(payload, sig, annotations, trust, identity=identity, issuer=issuer)
        if not who:
            return SignatureCheck("", False, f"{where}: keyless: {problem}")
        signer = f"keyless:{who}"
    else:
        return SignatureCheck("", False, f"{where}: signature does not verify with the given key(s)")
    ident, signed, problem = _check_payload(payload, target.digest)
    if problem:
        return SignatureCheck(signer, False, f"{where}: {problem}", ident, signed)
    return SignatureCheck(signer, True, "signature verified", ident, signed)


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE pre-authentication encoding: what the signature actually covers."""
    t = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(payload), payload)


def verify_attestation(reference: str, public_keys: list[str | bytes], *, predicate_type: str | None = None,
                       insecure: bool = False, timeout: float = 30.0, username: str | None = None,
                       password: str | None = None, require_all: bool = False) -> VerifyResult:
    from hullguard.supply.attest import predicate_type_uri

    keys = load_public_keys(public_keys)
    wanted = predicate_type_uri(predicate_type) if predicate_type else None
    target = oci.open_target(reference, insecure=insecure, timeout=timeout, username=username, password=password)
    try:
        layers, problem = _stored_layers(target, "att", "attestations")
        if layers is None:
            return VerifyResult(reference, target.digest, False, [], problem)
        checks: list[SignatureCheck] = []
        statements: list[dict[str, Any]] = []
        for i, layer in enumerate(layers):
            check, statement = _check_attestation_layer(target, layer, i, keys, wanted)
            checks.append(check)
            if statement is not None:
                statements.append(statement)
        ok, reason = _decide(checks, keys, require_all, "attestation")
        return VerifyResult(reference, target.digest, ok, checks, reason, statements)
    finally:
        target.close()


def _check_attestation_layer(target: oci.Target, layer: dict[str, Any], i: int, keys: list[PublicKey],
                             wanted: str | None) -> tuple[SignatureCheck, dict[str, Any] | None]:
    where = f"attestation {i + 1}"

    def fail(reason: str, key: str = "") -> tuple[SignatureCheck, None]:
        return SignatureCheck(key, False, f"{where}: {reason}", target.repo, target.digest), None

    if layer.get("mediaType") != oci.DSSE:
        return fail(f"unexpected media type {str(layer.get('mediaType'))[:80]!r}")
    annotations = layer.get("annotations") if isinstance(layer.get("annotations"), dict) else {}
    # The annotation is unsigned: use it only to skip cheaply, judge by the signed statement.
    if wanted and annotations.get("predicateType") not in (None, wanted):
        return fail(f"predicate type {str(annotations.get('predicateType'))[:100]!r} is not {wanted!r}")
    blob, problem = oci.fetch_layer(target, layer, MAX_ENVELOPE)
    if blob is None:
        return fail(problem)
    try:
        env = json.loads(blob)
        payload_type = env["payloadType"]
        payload = base64.b64decode(env["payload"], validate=True)
        sigs = env["signatures"]
        if not isinstance(payload_type, str) or not isinstance(sigs, list):
            raise TypeError
    except (ValueError, KeyError, TypeError, binascii.Error):
        return fail("not a DSSE envelope")
    if payload_type != IN_TOTO_PAYLOAD_TYPE:
        return fail(f"payload type {payload_type[:80]!r} is not {IN_TOTO_PAYLOAD_TYPE}")
    key = None
    problems = []
    for s in sigs[:16]:
        sig, problem = _decode_sig(s.get("sig") if isinstance(s, dict) else None)
        if sig is None:
            problems.append(problem)
            continue
        key = _find_key(keys, sig, pae(payload_type, payload))
        if key is not None:
            break
        problems.append("signature does not verify with the given key(s)")
    if key is None:
        return fail("; ".join(dict.fromkeys(problems)) or "envelope has no signatures")
    try:
        statement = json.loads(payload)
        if not isinstance(statement, dict):
            raise ValueError
    except ValueError:
        return fail("signed payload is not a JSON in-toto statement", key.label)
    if statement.get("_type") not in STATEMENT_TYPES:
        return fail(f"statement type {str(statement.get('_type'))[:80]!r} is not in-toto", key.label)
    hexdigest = target.digest.partition(":")[2]
    subjects = statement.get("subject") if isinstance(statement.get("subject"), list) else []
    if not any(isinstance(s, dict) and isinstance(s.get("digest"), dict) and s["digest"].get("sha256") == hexdigest
               for s in subjects):
        return fail(f"no subject names {target.digest}", key.label)
    ptype = statement.get("predicateType")
    if wanted and ptype != wanted:
        return fail(f"predicate type {str(ptype)[:100]!r} is not {wanted!r}", key.label)
    return SignatureCheck(key.label, True, f"attestation verified ({ptype})", target.repo, target.digest), statement
