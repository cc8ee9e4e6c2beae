"""Real parts for supply-chain tests: Debian's docker-registry on loopback, images pushed by skopeo."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from hullguard.supply import keys
from tests.builders import registry as registry_mod
from tests.builders.synth import File, synth_image
from tests.integration.conftest import require_tools

# Fast scrypt for keys the tests generate (the cost parameter is stored in the file and honoured on read).
TEST_SCRYPT_N = 1024


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[registry_mod.Registry]:
    require_tools("docker-registry", "skopeo")
    reg = registry_mod.start_registry(tmp_path_factory.mktemp("supply-registry"), auth="none")
    try:
        yield reg
    finally:
        reg.stop()


@pytest.fixture(scope="session")
def images(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Two distinct small OCI layouts (tag ``latest``)."""
    root = tmp_path_factory.mktemp("supply-images")
    return [synth_image([[File("etc/hostname", f"image-{i}\n")]], fmt="oci", out=root / f"img{i}") for i in (0, 1)]


_counter = itertools.count()


@pytest.fixture
def pushed(registry: registry_mod.Registry, images: list[Path]) -> Callable[..., tuple[str, str]]:
    """``pushed(which=0, repo=None) -> (reference by tag, manifest digest)`` in a fresh repository."""

    def push(which: int = 0, repo: str | None = None, tag: str = "v1") -> tuple[str, str]:
        repo = repo or f"supply/app{next(_counter)}"
        digest = registry_mod.push_image(registry, f"{images[which]}:latest", f"{repo}:{tag}")
        return registry.ref(f"{repo}:{tag}"), digest

    return push


@pytest.fixture(scope="session")
def keypair(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], tuple[Path, Path]]:
    """``keypair(name) -> (cosign.key path, cosign.pub path)``; password ``test-pass``."""
    root = tmp_path_factory.mktemp("supply-keys")
    cache: dict[str, tuple[Path, Path]] = {}

    def make(name: str) -> tuple[Path, Path]:
        if name not in cache:
            private, public = keys.generate_keypair(b"test-pass", scrypt_n=TEST_SCRYPT_N)
            (root / f"{name}.key").write_bytes(private)
            (root / f"{name}.pub").write_bytes(public)
            cache[name] = (root / f"{name}.key", root / f"{name}.pub")
        return cache[name]

    return make
