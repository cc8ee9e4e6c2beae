"""In-toto attestations in DSSE envelopes, stored as ``sha256-<hex>.att`` in a real registry."""

from __future__ import annotations

import base64
import json

import pytest

from hullguard.cli.main import main
from hullguard.model import HullguardError
from hullguard.supply import keys, oci
from hullguard.supply.attest import (
    attach_scan_attestations,
    attest_image,
    dsse_envelope,
    make_statement,
    predicate_type_uri,
)
from hullguard.supply.verify import pae, verify_attestation
from tests.supply.conftest import (
    raw_get_blob,
    raw_get_manifest,
    raw_put_manifest,
    raw_sig_manifest,
    repo_of,
)

SBOM = {"bomFormat": "CycloneDX", "specVersion": "1.5", "components": [{"name": "openssl", "version": "3.0.11"}]}


def _key(keypair, name: str = "alice"):  # type: ignore[no-untyped-def]
    priv, pub = keypair(name)
    return keys.load_private_key(priv, b"test-pass"), str(pub)


def _att_tag(digest: str) -> str:
    return digest.replace(":", "-") + ".att"


def test_pae_matches_the_dsse_spec_example() -> None:
    # DSSE protocol.md test vector.
    assert pae("http://example.com/HelloWorld", b"hello world") == \
        b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"


def test_predicate_type_names() -> None:
    assert predicate_type_uri("cyclonedx") == "https://cyclonedx.org/bom"
    assert predicate_type_uri("vuln") == "https://cosign.sigstore.dev/attestation/vuln/v1"
    assert predicate_type_uri("custom") == "https://cosign.sigstore.dev/attestation/v1"
    assert predicate_type_uri("https://example.com/mine/v1") == "https://example.com/mine/v1"
    with pytest.raises(HullguardError, match="unknown predicate type"):
        predicate_type_uri("not a type")


def test_attestation_round_trip_and_stored_format(registry, pushed, keypair) -> None:  # type: ignore[no-untyped-def]
    ref, digest = pushed()
    key, pub = _key(keypair)
    res = attest_image(ref, key, SBOM, "cyclonedx")
    assert res.digest == digest and res.attestation_tag == _att_tag(digest)
    repo = repo_of(ref)
    manifest = json.loads(raw_get_manifest(registry, repo, _att_tag(digest)))
    [layer] = manifest["layers"]
    assert layer["mediaType"] == "application/vnd.dsse.envelope.v1+json"
    assert layer["annotations"]["predicateType"] == "https://cyclonedx.org/bom"
    env = json.loads(raw_get_blob(registry, repo, layer["digest"]))
    assert env["payloadType"] == "application/vnd.in-toto+json"
    payload = base64.b64decode(env["payload"])
    statement = json.loads(payload)
    assert statement["_type"] == "https://in-toto.io/Statement/v1"
    assert statement["subject"] == [{"name": f"{registry.host}/{repo}", "digest": {"sha256": digest[7:]}}]
    assert statement["predicateType"] == "https://cyclonedx.org/bom" and statement["predicate"] == SBOM
    sig = base64.b64decode(env["signatures"][0]["sig"])
    expected_pae = b"DSSEv1 28 application/vnd.in-toto+json %d " % len(payload) + payload
    assert keys.load_public_key(pub).verify(sig, expected_pae)

    out = verify_attestation(ref, [pub], predicate_type="cyclonedx")
    assert out.verified, out.reason
    assert out.digest == digest and out.statements[0]["predicate"] == SBOM


def test_wrong_predicate_type_and_wrong_key_fail(pushed, keypair) -> None:  # type: ignore[no-untyped-def]
    ref, _ = pushed()
    key, pub = _key(keypair)
    _, other = _key(keypair, "mallory")
    attest_image(ref, key, SBOM, "cyclonedx")
    out = verify_attestation(ref, [pub], predicate_type="vuln")
    assert not out.verified and "is not 'https://cosign.sigstore.dev/attestation/vuln/v1'" in out.reason
    out = verify_attestation(ref, [other])
    assert not out.verified and "does not verify" in out.reason
    assert verify_attestation(ref, [pub]).verified  # any type when none is asked for


def test_unsigned_annotation_cannot_fake_the_type(registry, pushed, keypair) -> None:  # type: ignore[no-untyped-def]
    """The predicateType annotation is unsigned; the signed statement decides."""
    ref, digest = pushed()
    key, pub = _key(keypair)
    repo = repo_of(ref)
    statement = make_statement(f"{registry.host}/{repo}", digest, "https://cyclonedx.org/bom", SBOM)
    env = dsse_envelope(json.dumps(statement).encode(), key)
    fake = {oci.SIGNATURE_ANNOTATION: "", "predicateType": "https://cosign.sigstore.dev/attestation/vuln/v1"}
    raw_put_manifest(registry, repo, _att_tag(digest), raw_sig_manifest(registry, repo, [(env, oci.DSSE, fake)]))
    out = verify_attestation(ref, [pub], predicate_type="vuln")
    assert not out.verified and "is not 'https://cosign.sigstore.dev/attestation/vuln/v1'" in out.reason


def test_tampered_envelope_and_copied_attestation_fail(registry, pushed, keypair) -> None:  # type: ignore[no-untyped-def]
    ref, digest = pushed(0, repo="supply/att-tamper")
    key, pub = _key(keypair)
    attest_image(ref, key, SBOM, "cyclonedx")
    repo = "supply/att-tamper"
    [layer] = json.loads(raw_get_manifest(registry, repo, _att_tag(digest)))["layers"]
    env = json.loads(raw_get_blob(registry, repo, layer["digest"]))
    statement = json.loads(base64.b64decode(env["payload"]))
    statement["predicate"]["components"] = []  # hide a component, keep the signature
    env["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
    raw_put_manifest(registry, repo, _att_tag(digest),
                     raw_sig_manifest(registry, repo, [(json.dumps(env).encode(), oci.DSSE, layer["annotations"])]))
    out = verify_attestation(ref, [pub])
    assert not out.verified and "does not verify" in out.reason

    # A genuine attestation of image 0 copied to image 1's .att tag names the wrong subject.
    attest_image(ref, key, SBOM, "cyclonedx", replace=True)
    other_ref, other = pushed(1, repo=repo, tag="v2")
    raw_put_manifest(registry, repo, _att_tag(other), raw_get_manifest(registry, repo, _att_tag(digest)))
    out = verify_attestation(other_ref, [pub])
    assert not out.verified and f"no subject names {other}" in out.reason


def test_hostile_envelopes_fail_with_reason(registry, pushed, keypair) -> None:  # type: ignore[no-untyped-def]
    ref, digest = pushed()
    key, pub = _key(keypair)
    repo = repo_of(ref)
    note = {oci.SIGNATURE_ANNOTATION: ""}
    other_type = dsse_envelope(b"{}", key, payload_type="text/plain")
    not_statement = dsse_envelope(b"[1, 2]", key)
    layers = [(b"not json", oci.DSSE, note), (other_type, oci.DSSE, note), (not_statement, oci.DSSE, note),
              (json.dumps({"payloadType": "application/vnd.in-toto+json", "payload": "e30=",
                           "signatures": [{"sig": "%%"}]}).encode(), oci.DSSE, note)]
    raw_put_manifest(registry, repo, _att_tag(digest), raw_sig_manifest(registry, repo, layers))
    out = verify_attestation(ref, [pub])
    assert not out.verified
    reasons = [c.reason for c in out.checks]
    assert "not a DSSE envelope" in reasons[0]
    assert "payload type 'text/plain'" in reasons[1]
    assert "not a JSON in-toto statement" in reasons[2]
    assert "not valid base64" in reasons[3]


def test_replace_and_scan_attestations(registry, pushed, keypair, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    ref, digest = pushed()
    priv, pub = keypair("alice")
    key, _ = _key(keypair)
    attest_image(ref, key, {"old": True}, "cyclonedx")
    monkeypatch.setenv("COSIGN_PASSWORD", "test-pass")
    scan = {"ArtifactName": ref, "Results": [{"Vulnerabilities": [{"VulnerabilityID": "CVE-2024-0001"}]}]}
    lines = attach_scan_attestations(ref, SBOM, scan, str(priv))
    assert len(lines) == 2 and "https://cyclonedx.org/bom" in lines[0]
    manifest = json.loads(raw_get_manifest(registry, repo_of(ref), _att_tag(digest)))
    types = [x["annotations"]["predicateType"] for x in manifest["layers"]]
    assert sorted(types) == ["https://cosign.sigstore.dev/attestation/vuln/v1", "https://cyclonedx.org/bom"]
    sbom = verify_attestation(ref, [pub], predicate_type="cyclonedx")
    assert sbom.verified and [s["predicate"] for s in sbom.statements] == [SBOM]  # the old one was replaced
    vuln = verify_attestation(ref, [pub], predicate_type="vuln")
    assert vuln.verified
    predicate = next(s["predicate"] for s in vuln.statements
                     if s["predicateType"] == "https://cosign.sigstore.dev/attestation/vuln/v1")
    assert predicate["scanner"]["result"] == scan
    assert predicate["metadata"]["scanStartedOn"].endswith("Z")


def test_cli_attest_and_verify_attestation(pushed, keypair, tmp_path, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    ref, digest = pushed()
    priv, pub = keypair("alice")
    monkeypatch.setenv("COSIGN_PASSWORD", "test-pass")
    note = tmp_path / "note.txt"
    note.write_text("reviewed by QA\n")
    assert main(["attest", ref, "--key", str(priv), "--type", "custom", "--predicate", str(note)]) == 0
    assert digest in capsys.readouterr().out
    assert main(["verify-attestation", ref, "--key", str(pub), "--type", "custom", "--print-predicate"]) == 0
    captured = capsys.readouterr()
    [predicate] = json.loads(captured.out)
    assert predicate["Data"] == "reviewed by QA\n" and "Timestamp" in predicate
    assert "Verified" in captured.err
    assert main(["verify-attestation", ref, "--key", str(pub), "--type", "cyclonedx"]) == 1
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert main(["attest", ref, "--key", str(priv), "--type", "cyclonedx", "--predicate", str(bad)]) == 2
    assert "not JSON" in capsys.readouterr().err
    assert main(["attest", ref, "--key", str(priv), "--type", "nope", "--predicate", str(note)]) == 2


def test_image_attest_attaches_what_the_scan_saw(pushed, keypair, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    ref, digest = pushed()
    priv, pub = keypair("alice")
    monkeypatch.setenv("COSIGN_PASSWORD", "test-pass")
    rc = main(["image", ref, "--insecure", "--scanners", "none", "-f", "json", "--attest", str(priv)])
    assert rc == 0
    captured = capsys.readouterr()
    scanned = json.loads(captured.out)
    assert "attested https://cyclonedx.org/bom" in captured.err
    sbom = verify_attestation(ref, [pub], predicate_type="cyclonedx")
    assert sbom.verified and sbom.digest == digest
    [statement] = sbom.statements
    assert statement["predicate"]["bomFormat"] == "CycloneDX"
    vuln = verify_attestation(ref, [pub], predicate_type="vuln")
    predicate = next(s["predicate"] for s in vuln.statements
                     if s["predicateType"] == "https://cosign.sigstore.dev/attestation/vuln/v1")
    assert predicate["scanner"]["result"]["artifact"]["manifest_digest"] == scanned["artifact"]["manifest_digest"]


def test_image_attest_refuses_a_local_archive(tmp_path, keypair, images) -> None:  # type: ignore[no-untyped-def]
    priv, _ = keypair("alice")
    assert main(["image", f"oci-dir:{images[0]}", "--scanners", "none", "--attest", str(priv)]) == 2
