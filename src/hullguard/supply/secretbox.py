"""NaCl secretbox (XSalsa20-Poly1305), the cipher inside cosign's encrypted private keys.

`cryptography` ships Poly1305 and scrypt but no (X)Salsa20, and PyNaCl is not a dependency, so the
stream cipher is written here from the Salsa20 specification (Bernstein, "Salsa20 specification";
"Extending the Salsa20 nonce" for HSalsa20/XSalsa20). It only ever encrypts a ~140-byte key file,
so a pure-Python core is fast enough (well under a millisecond per block).
"""

from __future__ import annotations

import hmac
import struct

from cryptography.hazmat.primitives.poly1305 import Poly1305

KEY_SIZE = 32
NONCE_SIZE = 24
TAG_SIZE = 16

_M = 0xFFFFFFFF
# "expand 32-byte k" as four little-endian words.
_SIGMA = struct.unpack("<4I", b"expand 32-byte k")


class SecretboxError(ValueError):
    pass


def _rotl(v: int, n: int) -> int:
    return ((v << n) | (v >> (32 - n))) & _M


def _rounds(x: list[int]) -> list[int]:
    x = list(x)

    def qr(a: int, b: int, c: int, d: int) -> None:
        x[b] ^= _rotl((x[a] + x[d]) & _M, 7)
        x[c] ^= _rotl((x[b] + x[a]) & _M, 9)
        x[d] ^= _rotl((x[c] + x[b]) & _M, 13)
        x[a] ^= _rotl((x[d] + x[c]) & _M, 18)

    for _ in range(10):  # 10 double rounds = Salsa20/20
        qr(0, 4, 8, 12)
        qr(5, 9, 13, 1)
        qr(10, 14, 2, 6)
        qr(15, 3, 7, 11)
        qr(0, 1, 2, 3)
        qr(5, 6, 7, 4)
        qr(10, 11, 8, 9)
        qr(15, 12, 13, 14)
    return x


def _state(key: bytes, sixteen: bytes) -> list[int]:
    k = struct.unpack("<8I", key)
    n = struct.unpack("<4I", sixteen)
    return [_SIGMA[0], k[0], k[1], k[2], k[3], _SIGMA[1], n[0], n[1], n[2], n[3],
            _SIGMA[2], k[4], k[5], k[6], k[7], _SIGMA[3]]


def hsalsa20(key: bytes, nonce16: bytes) -> bytes:
    z = _rounds(_state(key, nonce16))
    return struct.pack("<8I", z[0], z[5], z[10], z[15], z[6], z[7], z[8], z[9])


def _salsa20_stream(key: bytes, nonce8: bytes, length: int) -> bytes:
    out = bytearray()
    counter = 0
    while len(out) < length:
        start = _state(key, nonce8 + struct.pack("<Q", counter))
        mixed = _rounds(start)
        out += struct.pack("<16I", *((a + b) & _M for a, b in zip(mixed, start, strict=True)))
        counter += 1
    return bytes(out[:length])


def xsalsa20_stream(key: bytes, nonce: bytes, length: int) -> bytes:
    if len(key) != KEY_SIZE or len(nonce) != NONCE_SIZE:
        raise SecretboxError("xsalsa20 needs a 32-byte key and a 24-byte nonce")
    return _salsa20_stream(hsalsa20(key, nonce[:16]), nonce[16:], length)


def _xor(a: bytes, b: bytes) -> bytes:
    return (int.from_bytes(a, "little") ^ int.from_bytes(b[: len(a)], "little")).to_bytes(len(a), "little")


def seal(plaintext: bytes, nonce: bytes, key: bytes) -> bytes:
    """tag || ciphertext, the layout of NaCl's crypto_secretbox_easy and Go's secretbox.Seal."""
    stream = xsalsa20_stream(key, nonce, 32 + len(plaintext))
    ciphertext = _xor(plaintext, stream[32:]) if plaintext else b""
    return Poly1305.generate_tag(stream[:32], ciphertext) + ciphertext


def open_box(box: bytes, nonce: bytes, key: bytes) -> bytes:
    if len(box) < TAG_SIZE:
        raise SecretboxError("secretbox ciphertext is too short")
    tag, ciphertext = box[:TAG_SIZE], box[TAG_SIZE:]
    stream = xsalsa20_stream(key, nonce, 32 + len(ciphertext))
    if not hmac.compare_digest(Poly1305.generate_tag(stream[:32], ciphertext), tag):
        raise SecretboxError("decryption failed (wrong password or damaged key)")
    return _xor(ciphertext, stream[32:]) if ciphertext else b""
