"""Real parts for supply-chain tests: Debian's docker-registry on loopback, images pushed by skopeo."""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
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


# ---------------------------------------------------------------- an independent registry writer for tampering
# Plain httpx against the distribution API, so tampering does not depend on the code under test.

def raw_get_manifest(reg: registry_mod.Registry, repo: str, reference: str) -> bytes:
    r = httpx.get(f"{reg.url}/v2/{repo}/manifests/{reference}", trust_env=False,
                  headers={"Accept": "application/vnd.oci.image.manifest.v1+json, "
                                     "application/vnd.docker.distribution.manifest.v2+json"})
    r.raise_for_status()
    return r.content


def raw_get_blob(reg: registry_mod.Registry, repo: str, digest: str) -> bytes:
    r = httpx.get(f"{reg.url}/v2/{repo}/blobs/{digest}", trust_env=False, follow_redirects=True)
    r.raise_for_status()
    return r.content


def raw_put_blob(reg: registry_mod.Registry, repo: str, data: bytes) -> str:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    with httpx.Client(trust_env=False) as c:
        start = c.post(f"{reg.url}/v2/{repo}/blobs/uploads/")
        assert start.status_code == 202, start.text
        loc = start.headers["location"]
        url = loc if loc.startswith("http") else f"{reg.url}{loc}"
        # Keep the upload's own query (its _state token); httpx's params= would replace it.
        url += ("&" if "?" in url else "?") + "digest=" + digest
        done = c.put(url, content=data,
                     headers={"Content-Type": "application/octet-stream"})
        assert done.status_code == 201, done.text
    return digest


def raw_put_manifest(reg: registry_mod.Registry, repo: str, reference: str, data: bytes,
                     media_type: str = "application/vnd.oci.image.manifest.v1+json") -> str:
    r = httpx.put(f"{reg.url}/v2/{repo}/manifests/{reference}", content=data, trust_env=False,
                  headers={"Content-Type": media_type})
    assert r.status_code == 201, r.text
    return r.headers["docker-content-digest"]


def raw_sig_manifest(reg: registry_mod.Registry, repo: str, layers: list[tuple[bytes, str, dict[str, str]]]) -> bytes:
    """A signature manifest written from the cosign spec by hand: ``layers`` are (blob, mediaType, annotations)."""
    descs = []
    for blob, media_type, notes in layers:
        digest = raw_put_blob(reg, repo, blob)
        descs.append({"mediaType": media_type, "size": len(blob), "digest": digest, "annotations": notes})
    config = json.dumps({"architecture": "", "os": "", "config": {},
                         "rootfs": {"type": "layers", "diff_ids": [d["digest"] for d in descs]}}).encode()
    config_digest = raw_put_blob(reg, repo, config)
    return json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "size": len(config),
                   "digest": config_digest},
        "layers": descs,
    }).encode()


def repo_of(reference: str) -> str:
    """``127.0.0.1:PORT/a/b:tag`` -> ``a/b``."""
    return reference.split("/", 1)[1].rsplit(":", 1)[0]


@pytest.fixture(scope="session", params=["basic", "token"])
def auth_registry(request: pytest.FixtureRequest,
                  tmp_path_factory: pytest.TempPathFactory) -> Iterator[registry_mod.Registry]:
    """A registry that wants a login: htpasswd basic auth, or bearer tokens from our token server."""
    require_tools("docker-registry", "skopeo")
    reg = registry_mod.start_registry(tmp_path_factory.mktemp(f"supply-{request.param}"), auth=request.param)
    try:
        yield reg
    finally:
        reg.stop()
