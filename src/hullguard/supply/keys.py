"""ECDSA P-256 key pairs in cosign's formats.

Private key: PEM ``ENCRYPTED SIGSTORE PRIVATE KEY`` (older cosign: ``ENCRYPTED COSIGN PRIVATE KEY``)
whose body is a JSON envelope: scrypt parameters and salt, a nacl/secretbox nonce, and the secretbox
of the PKCS#8 DER key. Standard encrypted PKCS#8 (``ENCRYPTED PRIVATE KEY``) and plain PKCS#8/SEC1
keys are read too. Public key: PKIX ``PUBLIC KEY`` PEM.
"""

from __future__ import annotations

import base64
import binascii
import functools
import getpass
import hashlib
import json
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils

from hullguard.fileio import read_bounded
from hullguard.model import HullguardError
from hullguard.supply import secretbox

COSIGN_PEM = "ENCRYPTED SIGSTORE PRIVATE KEY"
LEGACY_COSIGN_PEM = "ENCRYPTED COSIGN PRIVATE KEY"
PASSWORD_ENV = ("COSIGN_PASSWORD", "HULLGUARD_KEY_PASSWORD")
MAX_KEY_FILE = 64 * 1024
# cosign's current defaults (go-securesystemslib "standard" scrypt parameters).
SCRYPT_N, SCRYPT_R, SCRYPT_P = 65536, 8, 1
# Refuse key files that would make scrypt allocate absurd memory (128 * r * N bytes).
MAX_SCRYPT_MEMORY = 1 << 30

_PEM = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----\r?\n(.*?)-----END \1-----", re.S)


class KeyFileError(HullguardError):
    pass


@dataclass(frozen=True)
class PublicKey:
    key: ec.EllipticCurvePublicKey
    label: str  # the file it came from, or its fingerprint

    @property
    def der(self) -> bytes:
        return self.key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)

    @property
    def fingerprint(self) -> str:
        return "sha256:" + hashlib.sha256(self.der).hexdigest()

    def verify(self, signature: bytes, data: bytes) -> bool:
        try:
            self.key.verify(signature, data, ec.ECDSA(hashes.SHA256()))
            return True
        except (InvalidSignature, ValueError):
            return False


def _pem_blocks(data: bytes) -> list[tuple[str, bytes]]:
    return [(m.group(1).decode(), m.group(0)) for m in _PEM.finditer(data)]


def _pem_body(block: bytes) -> bytes:
    lines = block.strip().splitlines()[1:-1]
    try:
        return base64.b64decode(b"".join(line.strip() for line in lines if b":" not in line), validate=True)
    except (binascii.Error, ValueError):
        raise KeyFileError("key file has a PEM block with invalid base64") from None


def _read_source(source: str | bytes | os.PathLike[str], what: str) -> tuple[bytes, str]:
    if isinstance(source, bytes):
        return source[: MAX_KEY_FILE + 1], ""
    path = Path(source)
    return read_bounded(path, MAX_KEY_FILE, what, error=KeyFileError), str(path)


def _check_p256(key: object, where: str) -> None:
    if not isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey) or not isinstance(
            key.curve, ec.SECP256R1):
        raise KeyFileError(f"{where}: only ECDSA P-256 keys are supported (cosign's default)")


def load_public_key(source: str | bytes | os.PathLike[str]) -> PublicKey:
    """A ``PUBLIC KEY`` PEM (file path or bytes); a private key file yields its public half."""
    data, path = _read_source(source, "public key")
    where = path or "public key"
    blocks = _pem_blocks(data)
    if not blocks:
        raise KeyFileError(f"{where}: no PEM block found (expected -----BEGIN PUBLIC KEY-----)")
    kind, block = blocks[0]
    if kind != "PUBLIC KEY":
        if "PRIVATE KEY" in kind:
            raise KeyFileError(f"{where} is a private key; give the public key (.pub)")
        raise KeyFileError(f"{where}: unsupported PEM type {kind!r} (expected PUBLIC KEY)")
    try:
        key = serialization.load_der_public_key(_pem_body(block))
    except ValueError:
        raise KeyFileError(f"{where}: not a valid PKIX public key") from None
    _check_p256(key, where)
    pub = PublicKey(key, "")  # type: ignore[arg-type]
    return PublicKey(pub.key, path or pub.fingerprint)


def password_from_env() -> bytes | None:
    for name in PASSWORD_ENV:
        if name in os.environ:
            return os.environ[name].encode()
    return None


def read_password(prompt: str = "Enter password for private key: ", confirm: bool = False) -> bytes:
    """From COSIGN_PASSWORD / HULLGUARD_KEY_PASSWORD, else a prompt on a terminal."""
    env = password_from_env()
    if env is not None:
        return env
    if not sys.stdin.isatty():
        raise KeyFileError("no password: set COSIGN_PASSWORD (or HULLGUARD_KEY_PASSWORD) or run on a terminal")
    first = getpass.getpass(prompt)
    if confirm and getpass.getpass("Enter password for private key again: ") != first:
        raise KeyFileError("passwords do not match")
    return first.encode()


def _b64(value: object, what: str) -> bytes:
    if not isinstance(value, str):
        raise KeyFileError(f"cosign key: {what} is missing")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise KeyFileError(f"cosign key: {what} is not valid base64") from None


def _scrypt(password: bytes, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(password, salt=salt, n=n, r=r, p=p, maxmem=128 * r * n + (1 << 20), dklen=32)


def decrypt_cosign_key(body: bytes, password: bytes, where: str = "cosign key") -> bytes:
    """The PKCS#8 DER inside a cosign encrypted-key envelope."""
    try:
        env = json.loads(body)
        kdf, cipher = env["kdf"], env["cipher"]
        params = kdf["params"]
        n, r, p = int(params["N"]), int(params["r"]), int(params["p"])
    except (ValueError, KeyError, TypeError):
        raise KeyFileError(f"{where}: not a cosign encrypted key envelope") from None
    if kdf.get("name") != "scrypt" or cipher.get("name") != "nacl/secretbox":
        raise KeyFileError(f"{where}: unsupported kdf/cipher {kdf.get('name')!r}/{cipher.get('name')!r}")
    if n < 2 or n & (n - 1) or not (0 < r <= 32 and 0 < p <= 16) or 128 * r * n > MAX_SCRYPT_MEMORY:
        raise KeyFileError(f"{where}: unreasonable scrypt parameters N={n} r={r} p={p}")
    nonce = _b64(cipher.get("nonce"), "nonce")
    if len(nonce) != secretbox.NONCE_SIZE:
        raise KeyFileError(f"{where}: nonce must be {secretbox.NONCE_SIZE} bytes")
    key = _scrypt(password, _b64(kdf.get("salt"), "salt"), n, r, p)
    try:
        return secretbox.open_box(_b64(env.get("ciphertext"), "ciphertext"), nonce, key)
    except secretbox.SecretboxError:
        raise KeyFileError(f"{where}: wrong password (or damaged key file)") from None


def encrypt_cosign_key(der: bytes, password: bytes, *, n: int = SCRYPT_N) -> bytes:
    salt, nonce = os.urandom(32), os.urandom(secretbox.NONCE_SIZE)
    box = secretbox.seal(der, nonce, _scrypt(password, salt, n, SCRYPT_R, SCRYPT_P))
    env = {
        "kdf": {"name": "scrypt", "params": {"N": n, "r": SCRYPT_R, "p": SCRYPT_P},
                "salt": base64.b64encode(salt).decode()},
        "cipher": {"name": "nacl/secretbox", "nonce": base64.b64encode(nonce).decode()},
        "ciphertext": base64.b64encode(box).decode(),
    }
    return _pem(COSIGN_PEM, json.dumps(env, separators=(",", ":")).encode())


def _pem(kind: str, body: bytes) -> bytes:
    b64 = base64.b64encode(body).decode()
    lines = [b64[i:i + 64] for i in range(0, len(b64), 64)]
    return (f"-----BEGIN {kind}-----\n" + "\n".join(lines) + f"\n-----END {kind}-----\n").encode()


def load_private_key(source: str | bytes | os.PathLike[str],
                     password: bytes | None = None) -> ec.EllipticCurvePrivateKey:
    """Read a cosign, encrypted PKCS#8, PKCS#8 or SEC1 private key; asks for the password when needed."""
    data, path = _read_source(source, "private key")
    where = path or "private key"
    blocks = _pem_blocks(data)
    if not blocks:
        raise KeyFileError(f"{where}: no PEM block found")
    kind, block = blocks[0]
    try:
        if kind in (COSIGN_PEM, LEGACY_COSIGN_PEM):
            pw = read_password() if password is None else password
            key = serialization.load_der_private_key(decrypt_cosign_key(_pem_body(block), pw, where), None)
        elif kind == "ENCRYPTED PRIVATE KEY":
            pw = read_password() if password is None else password
            try:
                key = serialization.load_pem_private_key(block, pw or None)
            except (ValueError, TypeError):
                raise KeyFileError(f"{where}: wrong password (or damaged key file)") from None
        elif kind in ("PRIVATE KEY", "EC PRIVATE KEY"):
            key = serialization.load_pem_private_key(block, None)
        elif kind == "PUBLIC KEY":
            raise KeyFileError(f"{where} is a public key; signing needs the private key")
        else:
            raise KeyFileError(f"{where}: unsupported PEM type {kind!r}")
    except (ValueError, TypeError) as exc:
        raise KeyFileError(f"{where}: cannot load the private key ({str(exc).splitlines()[0][:80]})") from None
    _check_p256(key, where)
    return key  # type: ignore[return-value]


def generate_keypair(password: bytes, *, fmt: str = "cosign", scrypt_n: int = SCRYPT_N) -> tuple[bytes, bytes]:
    """(private PEM, public PEM). ``fmt`` is ``cosign`` (cosign.key format) or ``pkcs8``."""
    key = ec.generate_private_key(ec.SECP256R1())
    der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    if fmt == "cosign":
        private = encrypt_cosign_key(der, password, n=scrypt_n)
    elif fmt == "pkcs8":
        enc = (serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption())
        private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, enc)
    else:
        raise KeyFileError(f"unknown key format {fmt!r} (cosign or pkcs8)")
    return private, public_pem(key.public_key())


def public_pem(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def sign_bytes(key: ec.EllipticCurvePrivateKey, data: bytes) -> bytes:
    """ASN.1 DER ECDSA-P256-SHA256 signature, as cosign stores it (base64 of these bytes)."""
    return key.sign(data, ec.ECDSA(hashes.SHA256()))


def load_public_keys(sources: list[str | bytes]) -> list[PublicKey]:
    if not sources:
        raise KeyFileError("give at least one public key (--key)")
    return [_public_key_from_bytes(s) if isinstance(s, bytes) else load_public_key(s) for s in sources]


@functools.lru_cache(maxsize=256)
def _public_key_from_bytes(data: bytes) -> PublicKey:
    # The webhook verifies every image against the same few policy keys: parse each PEM once.
    # Paths are not cached, so a key file replaced on disk is read again.
    return load_public_key(data)


def raw_signature_ok(sig: bytes) -> bool:
    """Cheap structural check of a DER ECDSA signature, so a reason can say 'malformed' vs 'mismatch'."""
    try:
        utils.decode_dss_signature(sig)
        return True
    except ValueError:
        return False
