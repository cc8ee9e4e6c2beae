"""Offline verification of cosign keyless signatures (Fulcio certificate + Rekor bundle).

A keyless signature layer carries, besides the signature, the short-lived signing certificate
(``dev.sigstore.cosign/certificate``), its chain (``dev.sigstore.cosign/chain``) and the Rekor bundle
(``dev.sigstore.cosign/bundle``: the Signed Entry Timestamp and the log entry). Without network access
we check: the SET against a supplied Rekor key; that the log entry records this signature, this
certificate and the payload's hash; that the certificate chains to a supplied root and was valid when
the entry was logged; code-signing usage; and, when asked, the identity and OIDC issuer in the certificate.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import json
import os
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from hullguard.fileio import read_bounded
from hullguard.model import HullguardError
from hullguard.supply.keys import PublicKey, load_public_key

CERT_ANNOTATION = "dev.sigstore.cosign/certificate"
CHAIN_ANNOTATION = "dev.sigstore.cosign/chain"
BUNDLE_ANNOTATION = "dev.sigstore.cosign/bundle"
# Fulcio's OIDC issuer extensions: v1 holds the raw string, v2 a DER UTF8String.
ISSUER_V1 = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.1")
ISSUER_V2 = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.8")
MAX_PEM = 64 * 1024
MAX_CHAIN = 8


@dataclass
class TrustRoot:
    roots: list[x509.Certificate]
    intermediates: list[x509.Certificate] = field(default_factory=list)
    rekor_keys: dict[str, PublicKey] = field(default_factory=dict)  # logID (hex SHA-256 of the key) -> key


def _read(source: str | bytes | os.PathLike[str], what: str) -> bytes:
    if isinstance(source, bytes):
        return source
    return read_bounded(source, MAX_PEM, what)


def _certs(data: bytes) -> list[x509.Certificate]:
    try:
        return x509.load_pem_x509_certificates(data)
    except ValueError:
        return []


def load_trust_root(certificates: list[str | bytes], rekor_keys: list[str | bytes]) -> TrustRoot:
    """Fulcio roots and intermediates (PEM files; self-signed ones are roots) and Rekor public keys."""
    certs = [c for src in certificates for c in _certs(_read(src, "certificate file"))]
    if not certs:
        raise HullguardError("no certificates found in the given trust-root file(s)")
    roots = [c for c in certs if c.issuer == c.subject and _issued_by(c, c)]
    if not roots:
        raise HullguardError("the trust-root certificates include no self-signed root")
    if not rekor_keys:
        raise HullguardError("keyless verification needs the Rekor public key (--rekor-key)")
    keys = {}
    for src in rekor_keys:
        key = load_public_key(src)
        keys[hashlib.sha256(key.der).hexdigest()] = key
    return TrustRoot(roots, [c for c in certs if c not in roots], keys)


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
        return True
    except (ValueError, TypeError, InvalidSignature):
        return False


def _valid_at(cert: x509.Certificate, when: dt.datetime) -> bool:
    return cert.not_valid_before_utc <= when <= cert.not_valid_after_utc


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def _chains(cert: x509.Certificate, candidates: list[x509.Certificate], roots: list[x509.Certificate],
            when: dt.datetime) -> bool:
    current = cert
    for _ in range(MAX_CHAIN):
        if any(_valid_at(r, when) and _issued_by(current, r) for r in roots):
            return True
        parent = next((c for c in candidates if c is not current and _is_ca(c) and _valid_at(c, when)
                       and _issued_by(current, c)), None)
        if parent is None:
            return False
        current = parent
    return False


def identities(cert: x509.Certificate) -> tuple[list[str], str]:
    """(SAN emails/URIs, OIDC issuer) of a Fulcio certificate."""
    names: list[str] = []
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = [str(v) for v in san.get_values_for_type(x509.RFC822Name)]
        names += [str(v) for v in san.get_values_for_type(x509.UniformResourceIdentifier)]
    except x509.ExtensionNotFound:
        pass
    issuer = ""
    for ext in cert.extensions:
        if ext.oid == ISSUER_V2 and isinstance(ext.value, x509.UnrecognizedExtension):
            raw = ext.value.value
            # DER UTF8String: tag 0x0c, then a short or long length.
            if len(raw) > 2 and raw[0] == 0x0C:
                start = 2 if raw[1] < 0x80 else 2 + (raw[1] & 0x7F)
                issuer = raw[start:].decode("utf-8", "replace")
        elif ext.oid == ISSUER_V1 and isinstance(ext.value, x509.UnrecognizedExtension) and not issuer:
            issuer = ext.value.value.decode("utf-8", "replace")
    return names, issuer


def _b64(value: object) -> bytes | None:
    if not isinstance(value, str):
        return None
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None


def check_bundle(bundle_text: str, trust: TrustRoot, payload: bytes, sig: bytes,
                 cert: x509.Certificate) -> tuple[dt.datetime | None, str]:
    """(time the entry was logged, "") when the Rekor bundle vouches for this signature, else (None, why)."""
    try:
        bundle = json.loads(bundle_text)
        entry = bundle["Payload"]
        set_sig = _b64(bundle["SignedEntryTimestamp"])
        log_id, integrated = entry["logID"], entry["integratedTime"]
        body = json.loads(base64.b64decode(entry["body"], validate=True))
        if not isinstance(integrated, int) or not isinstance(entry.get("logIndex"), int) or set_sig is None:
            raise TypeError
    except (ValueError, KeyError, TypeError, binascii.Error):
        return None, "Rekor bundle is malformed"
    key = trust.rekor_keys.get(str(log_id))
    if key is None:
        return None, f"Rekor bundle is from log {str(log_id)[:16]}..., not a trusted Rekor key"
    # The SET signs the entry in RFC 8785 canonical form; for these flat ASCII fields that is sorted
    # keys and no whitespace.
    canonical = json.dumps({k: entry[k] for k in ("body", "integratedTime", "logID", "logIndex")},
                           sort_keys=True, separators=(",", ":")).encode()
    if not key.verify(set_sig, canonical):
        return None, "Rekor Signed Entry Timestamp does not verify"
    spec = body.get("spec") if isinstance(body, dict) else None
    if not isinstance(body, dict) or body.get("kind") != "hashedrekord" or not isinstance(spec, dict):
        return None, f"Rekor entry kind {str(body.get('kind') if isinstance(body, dict) else '')[:40]!r} " \
                     "is not hashedrekord"
    try:
        data_hash = spec["data"]["hash"]
        logged_sig = _b64(spec["signature"]["content"])
        logged_cert = _b64(spec["signature"]["publicKey"]["content"])
    except (KeyError, TypeError):
        return None, "Rekor entry is missing its hash, signature or certificate"
    if data_hash.get("algorithm") != "sha256" or data_hash.get("value") != hashlib.sha256(payload).hexdigest():
        return None, "Rekor entry records a different payload"
    if logged_sig != sig:
        return None, "Rekor entry records a different signature"
    logged = _certs(logged_cert or b"")
    der = serialization.Encoding.DER
    if not logged or logged[0].public_bytes(der) != cert.public_bytes(der):
        return None, "Rekor entry records a different certificate"
    return dt.datetime.fromtimestamp(integrated, dt.UTC), ""


def verify_keyless(payload: bytes, sig: bytes, annotations: dict[str, object], trust: TrustRoot, *,
                   identity: str | None = None, issuer: str | None = None) -> tuple[str, str]:
    """("<identity> (<issuer>)", "") when the keyless signature holds, else ("", why not)."""
    cert_pem = annotations.get(CERT_ANNOTATION)
    if not isinstance(cert_pem, str) or len(cert_pem) > MAX_PEM:
        return "", "no signing certificate"
    certs = _certs(cert_pem.encode())
    if not certs:
        return "", "signing certificate is not a PEM certificate"
    cert = certs[0]
    chain_pem = annotations.get(CHAIN_ANNOTATION)
    chain = _certs(chain_pem.encode()) if isinstance(chain_pem, str) and len(chain_pem) <= MAX_PEM else []
    bundle = annotations.get(BUNDLE_ANNOTATION)
    if not isinstance(bundle, str) or len(bundle) > MAX_PEM:
        return "", "no Rekor bundle (offline verification of a short-lived certificate needs one)"
    when, problem = check_bundle(bundle, trust, payload, sig, cert)
    if when is None:
        return "", problem
    if not _valid_at(cert, when):
        return "", f"certificate was not valid when the signature was logged ({when:%Y-%m-%dT%H:%M:%SZ})"
    if not _chains(cert, chain[:MAX_CHAIN] + trust.intermediates, trust.roots, when):
        return "", "certificate does not chain to a trusted root"
    try:
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        if ExtendedKeyUsageOID.CODE_SIGNING not in eku:
            return "", "certificate is not for code signing"
    except x509.ExtensionNotFound:
        return "", "certificate has no extended key usage"
    pub = cert.public_key()
    if not isinstance(pub, ec.EllipticCurvePublicKey):
        return "", "certificate key is not ECDSA"
    try:
        pub.verify(sig, payload, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return "", "signature does not verify with the certificate's key"
    names, cert_issuer = identities(cert)
    if identity is not None and identity not in names:
        return "", f"certificate identity {', '.join(names) or '(none)'} is not {identity}"
    if issuer is not None and cert_issuer != issuer:
        return "", f"certificate OIDC issuer {cert_issuer or '(none)'} is not {issuer}"
    return f"{', '.join(names) or '(no identity)'} ({cert_issuer or 'unknown issuer'})", ""
