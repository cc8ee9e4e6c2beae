"""Analysis results cached on disk per layer digest, so images sharing base layers only read
their new layers. Entries are keyed by the layer digest and a signature of the analyzer set (names
and versions), so a new analyzer or a changed one never reuses stale results."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile

import msgspec

from hullguard.image.layers import LayerResult
from hullguard.inventory.base import Analyzer

FORMAT = 2  # bump when LayerResult's shape changes


def default_dir() -> str:
    env = os.environ.get("HULLGUARD_CACHE_DIR")
    if env:
        return env
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "hullguard")


def signature(analyzers: list[Analyzer]) -> str:
    text = f"{FORMAT};" + ";".join(sorted(f"{a.name}:{a.version}" for a in analyzers))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class LayerCache:
    def __init__(self, root: str, analyzers: list[Analyzer]) -> None:
        self.root = os.path.join(root, "layers")
        self.sig = signature(analyzers)
        self._decoder = msgspec.msgpack.Decoder(LayerResult)
        self._encoder = msgspec.msgpack.Encoder()

    def _path(self, digest: str) -> str:
        algo, _, hexpart = digest.partition(":")
        safe = "".join(c for c in hexpart if c in "0123456789abcdef")
        return os.path.join(self.root, algo or "unknown", safe[:2], f"{safe}-{self.sig}.msgpack")

    def get(self, digest: str) -> LayerResult | None:
        try:
            with open(self._path(digest), "rb") as f:
                return self._decoder.decode(f.read())
        except (OSError, msgspec.DecodeError, msgspec.ValidationError):
            return None

    def put(self, result: LayerResult) -> None:
        path = self._path(result.digest)
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), suffix=".tmp")
            with os.fdopen(fd, "wb") as f:
                f.write(self._encoder.encode(result))
            os.replace(tmp, path)  # readers see the old entry or the new one, never half of one
        except OSError:
            pass  # a read-only or full cache must not fail the scan


def clean(root: str) -> int:
    """Remove every cached entry; returns the number of bytes freed."""
    freed = 0
    target = os.path.join(root, "layers")
    for dirpath, _, files in os.walk(target):
        for name in files:
            try:
                freed += os.lstat(os.path.join(dirpath, name)).st_size
            except OSError:
                pass
    shutil.rmtree(target, ignore_errors=True)
    return freed
