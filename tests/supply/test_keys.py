"""Keys and signatures without a registry: cosign's key format, published vectors, openssl interop."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from hullguard.supply import keys, secretbox
from hullguard.supply.keys import KeyFileError

DATA = Path(__file__).parent / "data"
FAST_N = 1024


def test_hsalsa20_and_secretbox_match_nacl_published_vectors() -> None:
    # NaCl's own tests (tests/core1.c and tests/secretbox.c): HSalsa20 of the shared key with a zero
    # nonce, then crypto_secretbox of the 131-byte message under that first key.
    shared = bytes.fromhex("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742")
    firstkey = secretbox.hsalsa20(shared, bytes(16))
    assert firstkey.hex() == "1b27556473e985d462cd51197a9a46c76009549eac6474f206c4ee0844f68389"
    nonce = bytes.fromhex("69696ee955b62b73cd62bda875fc73d68219e0036b7a0b37")
    message = bytes.fromhex(
        "be075fc53c81f2d5cf141316ebeb0c7b5228c52a4c62cbd44b66849b64244ffce5ecbaaf33bd751a1ac728d45e6c6129"
        "6cdc3c01233561f41db66cce314adb310e3be8250c46f06dceea3a7fa1348057e2f6556ad6b1318a024a838f21af1fde"
        "048977eb48f59ffd4924ca1c60902e52f0a089bc76897040e082f937763848645e0705")
    box = secretbox.seal(message, nonce, firstkey)
    assert box[:16].hex() == "f3ffc7703f9400e52a7dfb4b3d3305d9"
    assert box[16:32].hex() == "8e993b9f48681273c29650ba32fc76ce"
    assert box[-3:].hex() == "e355a5" and len(box) == 16 + len(message)
    assert secretbox.open_box(box, nonce, firstkey) == message
    damaged = bytes([box[0] ^ 1]) + box[1:]
    with pytest.raises(secretbox.SecretboxError):
        secretbox.open_box(damaged, nonce, firstkey)


def test_published_cosign_key_decrypts_with_its_published_password() -> None:
    key = keys.load_private_key(DATA / "cosign-empty-password.key", b"")
    assert isinstance(key.curve, ec.SECP256R1)
    sig = keys.sign_bytes(key, b"payload")
    assert keys.PublicKey(key.public_key(), "").verify(sig, b"payload")
    with pytest.raises(KeyFileError, match="wrong password"):
        keys.load_private_key(DATA / "cosign-empty-password.key", b"not-it")


def test_published_cosign_signatures_verify() -> None:
    # Signatures made with cosign's key in containers/image's fixtures, over the payloads "&" and "{}".
    pub = keys.load_public_key(DATA / "containers-image-cosign.pub")
    vectors = {
        b"&": "MEUCIARnnxZQPALBfqkB4aNAYXad79Qs6VehcrgIeZ8p7I2FAiEAzq2HXwXlz1iJeh+ucUR3L0zpjynQk6Rk0+/gXYp49RU=",
        b"{}": "MEUCIQDkySOBGxastVP0+koTA33NH5hXjwosFau4rxTPN6g48QIgb7eWKkGqfEpHMM3aT4xiqyP/170jEkdFuciuwN4mux4=",
    }
    for payload, sig in vectors.items():
        assert pub.verify(base64.b64decode(sig), payload)
        assert not pub.verify(base64.b64decode(sig), payload + b" ")
    assert pub.label.endswith("containers-image-cosign.pub")


def test_generated_cosign_key_has_cosigns_envelope() -> None:
    private, public = keys.generate_keypair(b"pw", scrypt_n=FAST_N)
    text = private.decode()
    assert text.startswith("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n")
    assert text.endswith("-----END ENCRYPTED SIGSTORE PRIVATE KEY-----\n")
    body = base64.b64decode("".join(text.splitlines()[1:-1]))
    env = json.loads(body)
    assert env["kdf"]["name"] == "scrypt" and env["kdf"]["params"] == {"N": FAST_N, "r": 8, "p": 1}
    assert len(base64.b64decode(env["kdf"]["salt"])) == 32
    assert env["cipher"]["name"] == "nacl/secretbox" and len(base64.b64decode(env["cipher"]["nonce"])) == 24
    # secretbox of the PKCS#8 DER: 16-byte tag plus the key.
    der = keys.decrypt_cosign_key(body, b"pw")
    assert len(base64.b64decode(env["ciphertext"])) == len(der) + 16
    loaded = serialization.load_der_private_key(der, None)
    assert keys.public_pem(loaded.public_key()) == public  # type: ignore[arg-type]
    assert public.startswith(b"-----BEGIN PUBLIC KEY-----\n")


def test_default_scrypt_cost_is_cosigns() -> None:
    private, _ = keys.generate_keypair(b"x")
    env = json.loads(base64.b64decode("".join(private.decode().splitlines()[1:-1])))
    assert env["kdf"]["params"] == {"N": 65536, "r": 8, "p": 1}


def test_pkcs8_keys_read_encrypted_and_plain(tmp_path: Path) -> None:
    private, public = keys.generate_keypair(b"secret", fmt="pkcs8")
    assert private.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    key = keys.load_private_key(private, b"secret")
    assert keys.public_pem(key.public_key()) == public
    with pytest.raises(KeyFileError, match="wrong password"):
        keys.load_private_key(private, b"nope")
    plain, _ = keys.generate_keypair(b"", fmt="pkcs8")
    assert plain.startswith(b"-----BEGIN PRIVATE KEY-----")
    assert keys.load_private_key(plain, b"ignored").curve.name == "secp256r1"


def test_password_comes_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    private, _ = keys.generate_keypair(b"from-env", scrypt_n=FAST_N)
    monkeypatch.delenv("HULLGUARD_KEY_PASSWORD", raising=False)
    monkeypatch.setenv("COSIGN_PASSWORD", "from-env")
    assert keys.load_private_key(private).curve.name == "secp256r1"
    monkeypatch.delenv("COSIGN_PASSWORD")
    monkeypatch.setenv("HULLGUARD_KEY_PASSWORD", "from-env")
    assert keys.load_private_key(private).curve.name == "secp256r1"
    monkeypatch.delenv("HULLGUARD_KEY_PASSWORD")
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    with pytest.raises(KeyFileError, match="COSIGN_PASSWORD"):
        keys.load_private_key(private)


def _cosign_pem(env: dict) -> bytes:
    return keys._pem(keys.COSIGN_PEM, json.dumps(env).encode())


@pytest.mark.parametrize("mutate, message", [
    (lambda e: e["kdf"]["params"].update(N=1 << 30), "unreasonable scrypt"),
    (lambda e: e["kdf"]["params"].update(N=1000), "unreasonable scrypt"),
    (lambda e: e["kdf"].update(name="argon2"), "unsupported kdf"),
    (lambda e: e["cipher"].update(nonce="AAAA"), "nonce must be 24 bytes"),
    (lambda e: e.update(ciphertext="%%%"), "not valid base64"),
    (lambda e: e.update(ciphertext=base64.b64encode(b"short").decode()), "wrong password"),
    (lambda e: e.pop("kdf"), "not a cosign encrypted key"),
])
def test_hostile_cosign_envelopes_are_clear_errors(mutate, message) -> None:  # type: ignore[no-untyped-def]
    private, _ = keys.generate_keypair(b"pw", scrypt_n=FAST_N)
    env = json.loads(base64.b64decode("".join(private.decode().splitlines()[1:-1])))
    mutate(env)
    with pytest.raises(KeyFileError, match=message):
        keys.load_private_key(_cosign_pem(env), b"pw")


def test_bad_key_files_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="no PEM block"):
        keys.load_public_key(b"hello")
    with pytest.raises(KeyFileError, match="cannot read public key"):
        keys.load_public_key(str(tmp_path / "missing.pub"))
    big = tmp_path / "big.pub"
    big.write_bytes(b"x" * (keys.MAX_KEY_FILE + 10))
    with pytest.raises(KeyFileError, match="larger than"):
        keys.load_public_key(str(big))
    private, public = keys.generate_keypair(b"pw", scrypt_n=FAST_N)
    with pytest.raises(KeyFileError, match="is a private key"):
        keys.load_public_key(private)
    with pytest.raises(KeyFileError, match="is a public key"):
        keys.load_private_key(public, b"pw")
    with pytest.raises(KeyFileError, match=r"invalid base64|not a valid PKIX"):
        keys.load_public_key(b"-----BEGIN PUBLIC KEY-----\n!!!!\n-----END PUBLIC KEY-----\n")
    rsa_pub = rsa.generate_private_key(public_exponent=65537, key_size=1024).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    with pytest.raises(KeyFileError, match="P-256"):
        keys.load_public_key(rsa_pub)
    p384 = ec.generate_private_key(ec.SECP384R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    with pytest.raises(KeyFileError, match="P-256"):
        keys.load_private_key(p384)


openssl = pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl not installed")


@openssl
def test_openssl_verifies_our_signature_and_reads_our_keys(tmp_path: Path) -> None:
    private, public = keys.generate_keypair(b"pw", fmt="pkcs8")
    key = keys.load_private_key(private, b"pw")
    payload = b'{"critical":{"identity":{"docker-reference":"r/x"},"image":{"docker-manifest-digest":"sha256:00"}}}'
    (tmp_path / "payload").write_bytes(payload)
    (tmp_path / "sig.der").write_bytes(keys.sign_bytes(key, payload))
    (tmp_path / "pub.pem").write_bytes(public)
    (tmp_path / "key.pem").write_bytes(private)
    ok = subprocess.run(["openssl", "dgst", "-sha256", "-verify", "pub.pem", "-signature", "sig.der", "payload"],
                        cwd=tmp_path, capture_output=True, text=True)
    assert ok.returncode == 0 and "Verified OK" in ok.stdout
    (tmp_path / "payload").write_bytes(payload + b"x")
    bad = subprocess.run(["openssl", "dgst", "-sha256", "-verify", "pub.pem", "-signature", "sig.der", "payload"],
                         cwd=tmp_path, capture_output=True, text=True)
    assert bad.returncode != 0
    derived = subprocess.run(["openssl", "pkey", "-in", "key.pem", "-passin", "pass:pw", "-pubout"],
                             cwd=tmp_path, capture_output=True, check=True).stdout
    assert derived == public


@openssl
def test_we_verify_openssl_signatures(tmp_path: Path) -> None:
    subprocess.run(["openssl", "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "k.pem"],
                   cwd=tmp_path, check=True, capture_output=True)
    subprocess.run(["openssl", "pkey", "-in", "k.pem", "-pubout", "-out", "p.pem"], cwd=tmp_path, check=True)
    (tmp_path / "m").write_bytes(b"signed by openssl")
    subprocess.run(["openssl", "dgst", "-sha256", "-sign", "k.pem", "-out", "s.der", "m"], cwd=tmp_path, check=True)
    pub = keys.load_public_key(str(tmp_path / "p.pem"))
    assert pub.verify((tmp_path / "s.der").read_bytes(), b"signed by openssl")
    assert not pub.verify((tmp_path / "s.der").read_bytes(), b"signed by someone else")
    # openssl's SEC1 "EC PRIVATE KEY" output is a key we can sign with too.
    key = keys.load_private_key(str(tmp_path / "k.pem"))
    assert pub.verify(keys.sign_bytes(key, b"m"), b"m")


def test_public_keys_given_as_bytes_are_parsed_once_and_files_every_time(tmp_path: Path) -> None:
    private_a, public_a = keys.generate_keypair(b"", fmt="pkcs8")
    _, public_b = keys.generate_keypair(b"", fmt="pkcs8")
    key_a = keys.load_private_key(private_a, password=b"")
    sig = keys.sign_bytes(key_a, b"payload")
    first, other = keys.load_public_keys([public_a, public_b])
    again = keys.load_public_keys([public_a])[0]
    assert again is first  # the webhook asks for the same policy keys on every verification
    assert first.verify(sig, b"payload") and not other.verify(sig, b"payload")
    assert first.label.startswith("sha256:") and first.label != other.label
    # A broken PEM is refused every time, never remembered as a key.
    for _ in range(2):
        with pytest.raises(KeyFileError):
            keys.load_public_keys([public_a.replace(b"PUBLIC KEY", b"PRIVATE KEY")])
    # A key file replaced on disk is read again.
    path = tmp_path / "cosign.pub"
    path.write_bytes(public_a)
    assert keys.load_public_keys([str(path)])[0].verify(sig, b"payload")
    path.write_bytes(public_b)
    assert not keys.load_public_keys([str(path)])[0].verify(sig, b"payload")
