"""Keyless (Fulcio + Rekor) signatures, verified offline against a supplied trust root."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from hullguard.cli.main import main
from hullguard.model import HullguardError
from hullguard.supply import keyless, keys, oci
from hullguard.supply.sign import simple_signing_payload
from hullguard.supply.verify import verify_image
from tests.supply.conftest import raw_put_manifest, raw_sig_manifest, repo_of

DATA = Path(__file__).parent / "data"
# containers/image's published keyless vector (see data/README.md).
PUBLISHED_PAYLOAD = (
    b'{"critical":{"identity":{"docker-reference":"192.168.64.2:5000/test-repo-2100826901021538654/alpine"},'
    b'"image":{"docker-manifest-digest":"sha256:fa93b01658e3a5a1686dc3ae55f170d8de487006fb53a28efcd12ab0710a2e5f"}'
    b',"type":"cosign container image signature"},"optional":null}')
PUBLISHED_SIG = base64.b64decode(
    "MEQCIEJc96e041VAhKA03SvfCYbWodIMIQPyAtWyDP4FnPqpAiAaIS60EjhRDhSanoFsoIy8fKqqKeW5ps/tLXSGpayi2g==")


def _published() -> tuple[keyless.TrustRoot, dict[str, object]]:
    trust = keyless.load_trust_root([str(DATA / "sigstore-fulcio-chain.pem")], [str(DATA / "sigstore-rekor.pub")])
    annotations = {keyless.CERT_ANNOTATION: (DATA / "containers-image-fulcio-cert.pem").read_text(),
                   keyless.BUNDLE_ANNOTATION: (DATA / "containers-image-keyless-bundle.json").read_text()}
    return trust, annotations


def test_published_cosign_keyless_signature_verifies_offline() -> None:
    trust, annotations = _published()
    who, problem = keyless.verify_keyless(PUBLISHED_PAYLOAD, PUBLISHED_SIG, annotations, trust,
                                          identity="mitr@redhat.com", issuer="https://github.com/login/oauth")
    assert problem == "" and who == "mitr@redhat.com (https://github.com/login/oauth)"


def _edit_bundle(annotations: dict[str, object], fn) -> dict[str, object]:  # type: ignore[no-untyped-def]
    bundle = json.loads(str(annotations[keyless.BUNDLE_ANNOTATION]))
    fn(bundle)
    return {**annotations, keyless.BUNDLE_ANNOTATION: json.dumps(bundle)}


def test_published_vector_rejects_every_mismatch() -> None:
    trust, annotations = _published()
    cases = [
        (PUBLISHED_PAYLOAD + b" ", PUBLISHED_SIG, annotations, {}, "different payload"),
        (PUBLISHED_PAYLOAD, PUBLISHED_SIG, annotations, {"identity": "someone@else"}, "is not someone@else"),
        (PUBLISHED_PAYLOAD, PUBLISHED_SIG, annotations, {"issuer": "https://accounts.google.com"},
         "is not https://accounts.google.com"),
        (PUBLISHED_PAYLOAD, PUBLISHED_SIG,
         _edit_bundle(annotations, lambda b: b["Payload"].update(integratedTime=b["Payload"]["integratedTime"] + 1)),
         {}, "Signed Entry Timestamp does not verify"),
        (PUBLISHED_PAYLOAD, PUBLISHED_SIG, _edit_bundle(annotations, lambda b: b["Payload"].update(logID="00" * 32)),
         {}, "not a trusted Rekor key"),
        (PUBLISHED_PAYLOAD, PUBLISHED_SIG, {keyless.CERT_ANNOTATION: annotations[keyless.CERT_ANNOTATION]}, {},
         "no Rekor bundle"),
        (PUBLISHED_PAYLOAD, PUBLISHED_SIG, {**annotations, keyless.BUNDLE_ANNOTATION: "{"}, {}, "malformed"),
        (PUBLISHED_PAYLOAD, PUBLISHED_SIG, {**annotations, keyless.CERT_ANNOTATION: "junk"}, {}, "not a PEM"),
    ]
    for payload, sig, ann, policy, reason in cases:
        who, problem = keyless.verify_keyless(payload, sig, ann, trust, **policy)
        assert not who and reason in problem, (reason, problem)
    # Trusting another CA: the published certificate no longer chains.
    ca, _ = _ca()
    other = keyless.load_trust_root([_pem(ca)], [str(DATA / "sigstore-rekor.pub")])
    who, problem = keyless.verify_keyless(PUBLISHED_PAYLOAD, PUBLISHED_SIG, annotations, other)
    assert not who and "does not chain to a trusted root" in problem


def test_trust_root_input_errors(tmp_path: Path) -> None:
    with pytest.raises(HullguardError, match="no certificates"):
        keyless.load_trust_root([b"nothing"], [str(DATA / "sigstore-rekor.pub")])
    leaf_only = (DATA / "containers-image-fulcio-cert.pem").read_bytes()
    with pytest.raises(HullguardError, match="no self-signed root"):
        keyless.load_trust_root([leaf_only], [str(DATA / "sigstore-rekor.pub")])
    with pytest.raises(HullguardError, match="Rekor public key"):
        keyless.load_trust_root([str(DATA / "sigstore-fulcio-chain.pem")], [])


# ------------------------------------------------------------------ a private Fulcio/Rekor of our own, end to end

def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _ca() -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP384R1())
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(_name("test-fulcio-root")).issuer_name(_name("test-fulcio-root"))
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=1), critical=True)
            .sign(key, hashes.SHA384()))
    return cert, key


def _leaf(ca: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey, email: str, issuer: str,
          eku: x509.ObjectIdentifier = ExtendedKeyUsageOID.CODE_SIGNING,
          ) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    utf8 = issuer.encode()
    cert = (x509.CertificateBuilder().subject_name(x509.Name([])).issuer_name(ca.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=1)).not_valid_after(now + dt.timedelta(minutes=10))
            .add_extension(x509.SubjectAlternativeName([x509.RFC822Name(email)]), critical=True)
            .add_extension(x509.ExtendedKeyUsage([eku]), critical=False)
            .add_extension(x509.UnrecognizedExtension(keyless.ISSUER_V2, bytes([0x0C, len(utf8)]) + utf8),
                           critical=False)
            .sign(ca_key, hashes.SHA384()))
    return cert, key


def _bundle(rekor: ec.EllipticCurvePrivateKey, payload: bytes, sig: bytes, cert: x509.Certificate,
            logged: dt.datetime | None = None) -> str:
    body = {"apiVersion": "0.0.1", "kind": "hashedrekord", "spec": {
        "data": {"hash": {"algorithm": "sha256", "value": hashlib.sha256(payload).hexdigest()}},
        "signature": {"content": base64.b64encode(sig).decode(),
                      "publicKey": {"content": base64.b64encode(_pem(cert)).decode()}}}}
    rekor_der = rekor.public_key().public_bytes(serialization.Encoding.DER,
                                               serialization.PublicFormat.SubjectPublicKeyInfo)
    entry = {"body": base64.b64encode(json.dumps(body).encode()).decode(),
             "integratedTime": int((logged or dt.datetime.now(dt.UTC)).timestamp()), "logIndex": 7,
             "logID": hashlib.sha256(rekor_der).hexdigest()}
    canonical = json.dumps(entry, sort_keys=True, separators=(",", ":")).encode()
    return json.dumps({"SignedEntryTimestamp": base64.b64encode(keys.sign_bytes(rekor, canonical)).decode(),
                       "Payload": entry})


def test_keyless_signature_in_a_registry(registry, pushed, keypair, tmp_path) -> None:  # type: ignore[no-untyped-def]
    ref, digest = pushed()
    repo = repo_of(ref)
    ca, ca_key = _ca()
    rekor = ec.generate_private_key(ec.SECP256R1())
    (tmp_path / "root.pem").write_bytes(_pem(ca))
    (tmp_path / "rekor.pub").write_bytes(keys.public_pem(rekor.public_key()))
    trust = keyless.load_trust_root([str(tmp_path / "root.pem")], [str(tmp_path / "rekor.pub")])

    payload = simple_signing_payload(f"{registry.host}/{repo}", digest)
    layers = []
    for email, eku in (("dev@example.com", ExtendedKeyUsageOID.CODE_SIGNING),
                       ("tls@example.com", ExtendedKeyUsageOID.SERVER_AUTH)):
        cert, key = _leaf(ca, ca_key, email, "https://issuer.example", eku)
        sig = keys.sign_bytes(key, payload)
        layers.append((payload, oci.SIMPLESIGNING, {
            oci.SIGNATURE_ANNOTATION: base64.b64encode(sig).decode(),
            keyless.CERT_ANNOTATION: _pem(cert).decode(),
            keyless.CHAIN_ANNOTATION: _pem(ca).decode(),
            keyless.BUNDLE_ANNOTATION: _bundle(rekor, payload, sig, cert)}))
    raw_put_manifest(registry, repo, digest.replace(":", "-") + ".sig", raw_sig_manifest(registry, repo, layers))

    out = verify_image(ref, [], trust_root=trust, identity="dev@example.com", oidc_issuer="https://issuer.example")
    assert out.verified, out.reason
    assert out.checks[0].key == "keyless:dev@example.com (https://issuer.example)"
    assert "not for code signing" in out.checks[1].reason
    assert not verify_image(ref, [], trust_root=trust, identity="ops@example.com").verified
    # Without the trust root, a keyless signature is just a signature by an unknown key.
    _, pub = keypair("alice")
    assert not verify_image(ref, [str(pub)]).verified

    assert main(["verify", ref, "--trust-root", str(tmp_path / "root.pem"), "--rekor-key",
                 str(tmp_path / "rekor.pub"), "--certificate-identity", "dev@example.com"]) == 0
    assert main(["verify", ref, "--trust-root", str(tmp_path / "root.pem"), "--rekor-key",
                 str(tmp_path / "rekor.pub"), "--certificate-oidc-issuer", "https://other.example"]) == 1
    assert main(["verify", ref]) == 2
    assert main(["verify", ref, "--key", str(pub), "--certificate-identity", "dev@example.com"]) == 2


def test_certificate_must_be_valid_when_logged() -> None:
    ca, ca_key = _ca()
    rekor = ec.generate_private_key(ec.SECP256R1())
    trust = keyless.TrustRoot([ca], [], {hashlib.sha256(keys.PublicKey(rekor.public_key(), "").der).hexdigest():
                                         keys.PublicKey(rekor.public_key(), "rekor")})
    cert, key = _leaf(ca, ca_key, "dev@example.com", "https://issuer.example")
    sig = keys.sign_bytes(key, b"payload")
    for logged, ok in ((dt.datetime.now(dt.UTC), True), (dt.datetime.now(dt.UTC) + dt.timedelta(hours=1), False)):
        ann = {keyless.CERT_ANNOTATION: _pem(cert).decode(),
               keyless.BUNDLE_ANNOTATION: _bundle(rekor, b"payload", sig, cert, logged)}
        who, problem = keyless.verify_keyless(b"payload", sig, ann, trust)
        assert bool(who) is ok and (ok or "not valid when the signature was logged" in problem)
