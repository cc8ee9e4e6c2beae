"""Sign and verify against Debian's docker-registry on loopback, with images pushed by skopeo."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from hullguard.cli.main import main
from hullguard.model import HullguardError
from hullguard.supply import keys, oci
from hullguard.supply.sign import sign_image, simple_signing_payload
from hullguard.supply.verify import verify_image
from tests.supply.conftest import (
    raw_get_blob,
    raw_get_manifest,
    raw_put_manifest,
    raw_sig_manifest,
    repo_of,
)

DATA = Path(__file__).parent / "data"


def _key(keypair, name: str = "alice"):  # type: ignore[no-untyped-def]
    priv, pub = keypair(name)
    return keys.load_private_key(priv, b"test-pass"), str(pub)


def _sig_tag(digest: str) -> str:
    return digest.replace(":", "-") + ".sig"


def test_sign_then_verify(registry, pushed, keypair) -> None:  # type: ignore[no-untyped-def]
    ref, digest = pushed()
    key, pub = _key(keypair)
    res = sign_image(ref, key, annotations={"build": "42"})
    assert res.digest == digest and res.appended
    assert res.signature_tag == _sig_tag(digest)
    out = verify_image(ref, [pub])
    assert out.verified, out.reason
    assert out.digest == digest
    [check] = out.checks
    assert check.ok and check.key == pub and check.digest == digest
    assert check.docker_reference == f"{registry.host}/{repo_of(ref)}"
    # The same image by digest verifies too; and the key may be given as PEM bytes.
    by_digest = f"{registry.host}/{repo_of(ref)}@{digest}"
    assert verify_image(by_digest, [Path(pub).read_bytes()]).verified


def test_stored_signature_follows_the_cosign_spec(registry, pushed, keypair) -> None:  # type: ignore[no-untyped-def]
    ref, digest = pushed()
    key, pub = _key(keypair)
    sign_image(ref, key)
    repo = repo_of(ref)
    manifest = json.loads(raw_get_manifest(registry, repo, _sig_tag(digest)))
    assert manifest["schemaVersion"] == 2
    assert manifest["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert manifest["config"]["mediaType"] == "application/vnd.oci.image.config.v1+json"
    [layer] = manifest["layers"]
    assert layer["mediaType"] == "application/vnd.dev.cosign.simplesigning.v1+json"
    payload = raw_get_blob(registry, repo, layer["digest"])
    assert layer["size"] == len(payload)
    doc = json.loads(payload)
    assert doc == {"critical": {"identity": {"docker-reference": f"{registry.host}/{repo}"},
                                "image": {"docker-manifest-digest": digest},
                                "type": "cosign container image signature"},
                   "optional": None}
    # Compact JSON in Go's key order, as cosign writes it.
    assert payload == simple_signing_payload(f"{registry.host}/{repo}", digest)
    config = json.loads(raw_get_blob(registry, repo, manifest["config"]["digest"]))
    assert config["rootfs"] == {"type": "layers", "diff_ids": [layer["digest"]]}
    sig = base64.b64decode(layer["annotations"]["dev.cosignproject.cosign/signature"])
    assert keys.load_public_key(pub).verify(sig, payload)


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl not installed")
def test_openssl_verifies_the_signature_in_the_registry(registry, pushed, keypair, tmp_path) -> None:  # type: ignore[no-untyped-def]
    ref, digest = pushed()
    key, pub = _key(keypair)
    sign_image(ref, key)
    repo = repo_of(ref)
    [layer] = json.loads(raw_get_manifest(registry, repo, _sig_tag(digest)))["layers"]
    (tmp_path / "payload").write_bytes(raw_get_blob(registry, repo, layer["digest"]))
    (tmp_path / "sig.der").write_bytes(base64.b64decode(layer["annotations"]["dev.cosignproject.cosign/signature"]))
    proc = subprocess.run(["openssl", "dgst", "-sha256", "-verify", pub, "-signature", "sig.der", "payload"],
                          cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "Verified OK" in proc.stdout


@pytest.mark.parametrize("docker_schema2", [False, True])
def test_hand_written_signature_manifest_verifies(registry, pushed, keypair,
                                                  docker_schema2) -> None:  # type: ignore[no-untyped-def]
    """Reading does not depend on our writer: a manifest built from the spec alone verifies, in OCI
    form and in the Docker schema 2 form early cosign releases wrote."""
    ref, digest = pushed()
    key, pub = _key(keypair)
    repo = repo_of(ref)
    payload = json.dumps({"critical": {"identity": {"docker-reference": "elsewhere/x"},
                                       "image": {"Docker-manifest-digest": digest},
                                       "type": "cosign container image signature"},
                          "optional": {"creator": "someone"}}).encode()
    sig = base64.b64encode(keys.sign_bytes(key, payload)).decode()
    manifest = raw_sig_manifest(registry, repo, [(payload, oci.SIMPLESIGNING, {oci.SIGNATURE_ANNOTATION: sig})])
    media_type = "application/vnd.oci.image.manifest.v1+json"
    if docker_schema2:
        doc = json.loads(manifest)
        media_type = doc["mediaType"] = "application/vnd.docker.distribution.manifest.v2+json"
        doc["config"]["mediaType"] = "application/vnd.docker.container.image.v1+json"
        manifest = json.dumps(doc).encode()
    raw_put_manifest(registry, repo, _sig_tag(digest), manifest, media_type)
    out = verify_image(ref, [pub])
    assert out.verified, out.reason
    assert out.checks[0].docker_reference == "elsewhere/x"


def test_retagged_image_fails(registry, pushed, keypair) -> None:  # type: ignore[no-untyped-def]
    ref, digest = pushed(0, repo="supply/retag")
    key, pub = _key(keypair)
    sign_image(ref, key)
    assert verify_image(ref, [pub]).verified
    # Point the signed tag at another image: the tag is not what was signed.
    _, other = pushed(1, repo="supply/retag")
    raw_put_manifest(registry, "supply/retag", "v1", raw_get_manifest(registry, "supply/retag", other))
    out = verify_image(ref, [pub])
    assert not out.verified
    assert out.digest == other and "no signatures found" in out.reason
    # Copying the old signature manifest to the new digest's .sig tag does not help the attacker.
    raw_put_manifest(registry, "supply/retag", _sig_tag(other),
                     raw_get_manifest(registry, "supply/retag", _sig_tag(digest)))
    out = verify_image(ref, [pub])
    assert not out.verified
    assert f"signature is for {digest}, not {other}" in out.reason
    assert out.checks[0].key == pub  # the signature itself is genuine, the claim is not


def test_altered_payload_fails(registry, pushed, keypair) -> None:  # type: ignore[no-untyped-def]
    ref, digest = pushed()
    key, pub = _key(keypair)
    res = sign_image(ref, key)
    repo = repo_of(ref)
    original = simple_signing_payload(f"{registry.host}/{repo}", digest)
    altered = original.replace(b'"optional":null', b'"optional":{"approved":"yes"}')
    assert altered != original
    manifest = raw_sig_manifest(registry, repo, [(altered, oci.SIMPLESIGNING,
                                                  {oci.SIGNATURE_ANNOTATION: res.signature})])
    raw_put_manifest(registry, repo, _sig_tag(digest), manifest)
    out = verify_image(ref, [pub])
    assert not out.verified
    assert "does not verify" in out.checks[0].reason


def test_wrong_key_fails(pushed, keypair) -> None:  # type: ignore[no-untyped-def]
    ref, _ = pushed()
    key, _ = _key(keypair, "alice")
    _, mallory_pub = _key(keypair, "mallory")
    sign_image(ref, key)
    out = verify_image(ref, [mallory_pub])
    assert not out.verified
    assert "does not verify with the given key" in out.reason


@pytest.mark.parametrize("bad_sig, reason", [
    ("!!!not base64!!!", "not valid base64"),
    ("TRUNCATE", "not a DER ECDSA signature"),
    ("", "no signature"),
])
def test_broken_signature_annotation_is_a_failure_with_reason(registry, pushed, keypair, bad_sig,
                                                             reason) -> None:  # type: ignore[no-untyped-def]
    ref, digest = pushed()
    key, pub = _key(keypair)
    res = sign_image(ref, key)
    if bad_sig == "TRUNCATE":
        bad_sig = base64.b64encode(base64.b64decode(res.signature)[:20]).decode()
    repo = repo_of(ref)
    payload = simple_signing_payload(f"{registry.host}/{repo}", digest)
    manifest = raw_sig_manifest(registry, repo, [(payload, oci.SIMPLESIGNING, {oci.SIGNATURE_ANNOTATION: bad_sig})])
    raw_put_manifest(registry, repo, _sig_tag(digest), manifest)
    out = verify_image(ref, [pub])
    assert not out.verified
    assert reason in out.checks[0].reason


def test_unexpected_layers_and_payloads_fail_with_reason(registry, pushed, keypair) -> None:  # type: ignore[no-untyped-def]
    ref, digest = pushed()
    key, pub = _key(keypair)
    repo = repo_of(ref)
    not_json = b"\x00\xffgarbage"
    wrong_type = json.dumps({"critical": {"type": "something else",
                                          "image": {"docker-manifest-digest": digest}}}).encode()
    layers = [
        (b"{}", "application/octet-stream", {oci.SIGNATURE_ANNOTATION: "MEUCIQ=="}),
        (not_json, oci.SIMPLESIGNING, {oci.SIGNATURE_ANNOTATION: base64.b64encode(keys.sign_bytes(key, not_json))
                                       .decode()}),
        (wrong_type, oci.SIMPLESIGNING, {oci.SIGNATURE_ANNOTATION: base64.b64encode(keys.sign_bytes(key, wrong_type))
                                         .decode()}),
    ]
    raw_put_manifest(registry, repo, _sig_tag(digest), raw_sig_manifest(registry, repo, layers))
    out = verify_image(ref, [pub])
    assert not out.verified
    reasons = [c.reason for c in out.checks]
    assert "unexpected media type" in reasons[0]
    assert "payload is not JSON" in reasons[1]
    assert "not a cosign container image signature" in reasons[2]


def test_cosign_made_signature_bytes_are_accepted(registry, pushed) -> None:  # type: ignore[no-untyped-def]
    """containers/image publishes a cosign signature over the payload ``{}``: its signature verifies with
    the published key, and hullguard then rejects it only because ``{}`` names no image."""
    ref, digest = pushed()
    repo = repo_of(ref)
    sig = "MEUCIQDkySOBGxastVP0+koTA33NH5hXjwosFau4rxTPN6g48QIgb7eWKkGqfEpHMM3aT4xiqyP/170jEkdFuciuwN4mux4="
    manifest = raw_sig_manifest(registry, repo, [(b"{}", oci.SIMPLESIGNING, {oci.SIGNATURE_ANNOTATION: sig})])
    raw_put_manifest(registry, repo, _sig_tag(digest), manifest)
    out = verify_image(ref, [str(DATA / "containers-image-cosign.pub")])
    assert not out.verified
    assert out.checks[0].key.endswith("containers-image-cosign.pub")  # signature verified with cosign's key
    assert "not a cosign container image signature" in out.checks[0].reason


def test_two_signatures_by_two_keys(registry, pushed, keypair) -> None:  # type: ignore[no-untyped-def]
    ref, digest = pushed()
    alice, alice_pub = _key(keypair, "alice")
    bob, bob_pub = _key(keypair, "bob")
    _, carol_pub = _key(keypair, "carol")
    sign_image(ref, alice)
    sign_image(ref, bob)
    again = sign_image(ref, alice)  # same payload, same key: nothing new to store
    assert not again.appended
    manifest = json.loads(raw_get_manifest(registry, repo_of(ref), _sig_tag(digest)))
    assert len(manifest["layers"]) == 2
    assert verify_image(ref, [bob_pub]).verified
    both = verify_image(ref, [alice_pub, bob_pub], require_all=True)
    assert both.verified and {c.key for c in both.checks if c.ok} == {alice_pub, bob_pub}
    missing = verify_image(ref, [alice_pub, carol_pub], require_all=True)
    assert not missing.verified and carol_pub in missing.reason
    assert verify_image(ref, [alice_pub, carol_pub]).verified  # any one given key is enough by default


def test_unsigned_image_and_registry_errors(registry, pushed, keypair) -> None:  # type: ignore[no-untyped-def]
    ref, _ = pushed()
    _, pub = _key(keypair)
    out = verify_image(ref, [pub])
    assert not out.verified and "no signatures found" in out.reason and not out.checks
    with pytest.raises(HullguardError, match="not found"):
        verify_image(f"{registry.host}/supply/nothing-here:v1", [pub])
    from tests.builders.registry import free_port

    with pytest.raises(HullguardError, match="cannot connect"):
        verify_image(f"127.0.0.1:{free_port()}/x/y:1", [pub], timeout=2)
    with pytest.raises(HullguardError, match="at least one public key"):
        verify_image(ref, [])


def test_cli_sign_verify_exit_codes(registry, pushed, keypair, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    ref, digest = pushed()
    priv, pub = keypair("alice")
    _, other_pub = keypair("mallory")
    monkeypatch.setenv("COSIGN_PASSWORD", "test-pass")
    assert main(["sign", ref, "--key", str(priv)]) == 0
    assert f"@{digest}" in capsys.readouterr().out
    assert main(["verify", ref, "--key", str(pub), "--output", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["verified"] and doc["digest"] == digest and doc["checks"][0]["key"] == str(pub)
    assert main(["verify", ref, "--key", str(other_pub)]) == 1
    text = capsys.readouterr().out
    assert "NOT verified" in text and digest in text
    assert main(["verify", ref, "--key", "/nonexistent.pub"]) == 2
    assert "cannot read public key" in capsys.readouterr().err
    monkeypatch.setenv("COSIGN_PASSWORD", "wrong")
    assert main(["sign", ref, "--key", str(priv)]) == 2
    assert "wrong password" in capsys.readouterr().err
    assert main(["verify", "not a reference!", "--key", str(pub)]) == 2


def test_cli_keys_generate(tmp_path, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("COSIGN_PASSWORD", "pw")
    prefix = str(tmp_path / "release")
    assert main(["keys", "generate", "--output-key-prefix", prefix]) == 0
    key_file, pub_file = Path(prefix + ".key"), Path(prefix + ".pub")
    assert key_file.read_bytes().startswith(b"-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----")
    assert key_file.stat().st_mode & 0o777 == 0o600
    loaded = keys.load_private_key(str(key_file), b"pw")
    assert keys.public_pem(loaded.public_key()) == pub_file.read_bytes()
    assert main(["keys", "generate", "--output-key-prefix", prefix]) == 2
    assert "exists" in capsys.readouterr().err
    assert main(["keys", "generate", "--output-key-prefix", str(tmp_path / "no/such/dir/k")]) == 2


def test_sign_and_verify_with_registry_login(auth_registry, images, keypair) -> None:  # type: ignore[no-untyped-def]
    """Pushing needs a push-scoped token: the pull token from resolving the image must be traded up."""
    from tests.builders.registry import push_image

    digest = push_image(auth_registry, f"{images[0]}:latest", "private/app:v1")
    ref = auth_registry.ref("private/app:v1")
    key, pub = _key(keypair)
    login = {"username": auth_registry.username, "password": auth_registry.password}
    assert sign_image(ref, key, **login).digest == digest
    out = verify_image(ref, [pub], **login)
    assert out.verified, out.reason
    with pytest.raises(HullguardError, match=r"authentication failed|login refused|requires a login"):
        verify_image(ref, [pub], username=auth_registry.username, password="wrong")


def test_oversized_signature_manifest_is_a_failure_not_a_crash(registry, pushed, keypair) -> None:  # type: ignore[no-untyped-def]
    ref, digest = pushed()
    key, pub = _key(keypair)
    repo = repo_of(ref)
    one = json.loads(raw_sig_manifest(registry, repo, [(b"{}", oci.SIMPLESIGNING, {oci.SIGNATURE_ANNOTATION: ""})]))
    one["layers"] = one["layers"] * (oci.MAX_LAYERS + 1)
    raw_put_manifest(registry, repo, _sig_tag(digest), json.dumps(one).encode())
    out = verify_image(ref, [pub])
    assert not out.verified and "limit" in out.reason
    with pytest.raises(HullguardError, match="limit"):
        sign_image(ref, key)
