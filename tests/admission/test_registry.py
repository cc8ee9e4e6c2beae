"""The webhook against real parts: Debian's docker-registry on loopback, images pushed by skopeo,
signatures and attestations made by `hullguard sign`/`hullguard attest`, and a real on-demand scan."""

from __future__ import annotations

import itertools
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from tests.admission.conftest import apply_patch, pod, review, workload
from tests.builders import registry as registry_mod
from tests.builders.synth import File, synth_image
from tests.integration.conftest import require_tools

from hullguard.admission.deps import RealBackend
from hullguard.cli.main import main

pytestmark = pytest.mark.integration
_n = itertools.count()
FLASK_METADATA = "Metadata-Version: 2.1\nName: Flask\nVersion: 2.3.0\n"


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[registry_mod.Registry]:
    require_tools("docker-registry", "skopeo")
    reg = registry_mod.start_registry(tmp_path_factory.mktemp("admission-registry"), auth="none")
    try:
        yield reg
    finally:
        reg.stop()


@pytest.fixture(scope="module")
def layouts(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    root = tmp_path_factory.mktemp("admission-images")
    plain = [synth_image([[File("etc/hostname", f"img-{i}\n")]], fmt="oci", out=root / f"img{i}") for i in (0, 1)]
    vulnerable = synth_image([[File("usr/lib/python3/dist-packages/Flask-2.3.0.dist-info/METADATA",
                                    FLASK_METADATA)]], fmt="oci", out=root / "flask")
    return [*plain, vulnerable]


@pytest.fixture
def push(registry: registry_mod.Registry, layouts: list[Path]) -> Callable[..., tuple[str, str]]:
    def do(which: int = 0, repo: str = "", tag: str = "v1") -> tuple[str, str]:
        repo = repo or f"team/app{next(_n)}"
        digest = registry_mod.push_image(registry, f"{layouts[which]}:latest", f"{repo}:{tag}")
        return registry.ref(f"{repo}:{tag}"), digest

    return do


@pytest.fixture(scope="module")
def keypair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    from hullguard.supply import keys

    root = tmp_path_factory.mktemp("admission-keys")
    private, public = keys.generate_keypair(b"pw", scrypt_n=1024)
    (root / "cosign.key").write_bytes(private)
    (root / "cosign.pub").write_bytes(public)
    return root / "cosign.key", root / "cosign.pub"


def test_mutation_pins_the_digest_the_registry_serves(start_webhook, push) -> None:
    ref, digest = push()
    side, side_digest = push(1)
    hook = start_webhook("policies: [{name: pin, type: mutateDigest}]", RealBackend())
    obj = workload("Deployment", pod(ref, init=(side,)))
    resp = hook.post(review(obj), "mutate")
    assert resp["allowed"] is True
    spec = apply_patch(obj, resp["patch"])["spec"]["template"]["spec"]
    assert spec["containers"][0]["image"] == f"{ref}@{digest}"
    assert spec["initContainers"][0]["image"] == f"{side}@{side_digest}"
    # A tag that does not exist is a dependency error: failurePolicy Fail denies and says why.
    missing = ref.replace(":v1", ":nope")
    resp = hook.post(review(pod(missing)), "mutate")
    assert resp["allowed"] is False
    assert "not found" in resp["status"]["message"] and "(failurePolicy: Fail)" in resp["status"]["message"]


def test_signature_policy_with_hullguard_sign(start_webhook, push, keypair, monkeypatch, tmp_path,
                                              registry, layouts) -> None:
    key, pub = keypair
    monkeypatch.setenv("COSIGN_PASSWORD", "pw")
    signed, signed_digest = push(repo="prod/signed")
    unsigned, _ = push(repo="prod/unsigned")
    assert main(["sign", signed, "--key", str(key), "--insecure"]) == 0
    (tmp_path / "cosign.pub").write_bytes(pub.read_bytes())
    policy = f"""
policies:
  - name: signed
    type: verifySignature
    images: ["{registry.host}/prod/*"]
    keys: [cosign.pub]
    timeoutSeconds: 20
"""
    hook = start_webhook(policy, RealBackend())
    assert hook.post(review(pod(signed)))["allowed"] is True
    assert hook.post(review(pod(f"{signed.rsplit(':', 1)[0]}@{signed_digest}")))["allowed"] is True
    resp = hook.post(review(pod(signed, unsigned)))
    assert resp["allowed"] is False
    msg = resp["status"]["message"]
    assert f"image {unsigned} is not signed by a trusted key (cosign.pub): no signatures found" in msg
    assert f"image {signed} " not in msg
    # Re-point the signed tag at other content: the signature (on the old digest) no longer covers it.
    # A fresh webhook is used because decisions are cached by reference for cache.ttlSeconds.
    registry_mod.push_image(registry, f"{layouts[1]}:latest", "prod/signed:v1")
    fresh = start_webhook(policy, RealBackend())
    resp = fresh.post(review(pod(signed)))
    assert resp["allowed"] is False and "is not signed by a trusted key" in resp["status"]["message"]
    # The old digest is still signed.
    assert fresh.post(review(pod(f"{signed.rsplit(':', 1)[0]}@{signed_digest}")))["allowed"] is True


def test_attestation_policy_with_hullguard_attest(start_webhook, push, keypair, monkeypatch, tmp_path) -> None:
    key, pub = keypair
    monkeypatch.setenv("COSIGN_PASSWORD", "pw")
    ref, _ = push()
    bare, _ = push()
    predicate = tmp_path / "sbom.json"
    predicate.write_text('{"bomFormat": "CycloneDX", "specVersion": "1.5", "components": []}')
    for image in (ref, bare):
        assert main(["sign", image, "--key", str(key), "--insecure"]) == 0
    assert main(["attest", ref, "--key", str(key), "--type", "cyclonedx", "--predicate", str(predicate),
                 "--insecure"]) == 0
    (tmp_path / "cosign.pub").write_bytes(pub.read_bytes())
    hook = start_webhook("""
policies:
  - name: sbom
    type: verifySignature
    keys: [cosign.pub]
    attestations: ["https://cyclonedx.org/bom"]
    timeoutSeconds: 20
""", RealBackend())
    assert hook.post(review(pod(ref)))["allowed"] is True
    resp = hook.post(review(pod(bare)))
    assert resp["allowed"] is False
    assert f"image {bare} has no valid https://cyclonedx.org/bom attestation" in resp["status"]["message"]


def test_registry_down_follows_failure_policy(start_webhook, tmp_path, keypair) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens here
    image = f"127.0.0.1:{port}/team/app:v1"
    (tmp_path / "cosign.pub").write_bytes(keypair[1].read_bytes())
    for fp, allowed in (("Fail", False), ("Ignore", True)):
        hook = start_webhook(f"""
policies:
  - {{name: signed, type: verifySignature, keys: [cosign.pub], failurePolicy: {fp}}}
  - {{name: pin, type: mutateDigest, failurePolicy: {fp}}}
""", RealBackend())
        for endpoint in ("validate", "mutate"):
            resp = hook.post(review(pod(image)), endpoint)
            assert resp["allowed"] is allowed, (fp, endpoint)
            text = resp["status"]["message"] if not allowed else " ".join(resp["warnings"])
            assert f"cannot connect to registry 127.0.0.1:{port}" in text


def test_vulnerability_gate_scans_on_demand(start_webhook, push, tmp_path) -> None:
    from hullguard.vulndb import SNAPSHOT_SOURCE, import_path, open_store, snapshot_dir

    db = tmp_path / "advisories.db"
    store = open_store(str(db))
    import_path(store, snapshot_dir(), SNAPSHOT_SOURCE)
    store.close()
    vulnerable, digest = push(2)
    clean, _ = push(0)
    results = tmp_path / "results"
    hook = start_webhook(f"""
policies:
  - name: vulns
    type: vulnerabilities
    severity: HIGH
    db: {db}
    resultsDir: {results}
    timeoutSeconds: 60
""", RealBackend())
    assert hook.post(review(pod(clean)))["allowed"] is True
    resp = hook.post(review(pod(vulnerable)))
    assert resp["allowed"] is False
    msg = resp["status"]["message"]
    assert f"image {vulnerable} has 1 high-or-higher fixable vulnerability" in msg
    assert "flask 2.3.0 (fixed in 2.3.2)" in msg.lower()
    # The result was kept by digest for the next pod and for the next webhook replica.
    assert (results / f"sha256-{digest.split(':')[1]}.json").is_file()
