"""The test-image builders are only useful if real tools agree with what they produce.

Synthetic images are checked by re-hashing and by skopeo/umoci; hostile variants must
really be hostile; the Debian image must be accepted by skopeo and umoci with its
whiteouts honoured; the registry must serve pushed tags with each auth mode.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import subprocess
import tarfile
import zlib
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.builders import image as image_mod
from tests.builders import rootfs as rootfs_mod
from tests.builders.registry import Registry
from tests.builders.synth import (
    HOSTILE_KINDS,
    TAMPERS,
    UNKNOWN_LAYER_TYPE,
    UNKNOWN_MANIFEST_TYPE,
    Device,
    Dir,
    File,
    Hardlink,
    Opaque,
    Symlink,
    Whiteout,
    build_synth,
    hostile_entries,
    verify_oci_layout,
)
from tests.integration.conftest import PushFn, require_tools

LAYERS = [
    [
        Dir("etc"),
        File("etc/os-release", "ID=debian\nVERSION_ID=12\n"),
        File("etc/keep-me", "hidden by opaque\n"),
        Dir("tmp"),
        File("tmp/junk", b"x" * 100),
        Dir("var/lib/gone"),
        File("var/lib/gone/data", "bye"),
        Symlink("os-release", "etc/os-release"),
        Hardlink("etc/os-release.hl", "etc/os-release"),
    ],
    [
        Whiteout("tmp/junk"),
        Whiteout("var/lib/gone"),
        Opaque("etc"),
        File("etc/hostname", "box\n"),
        File("usr/bin/tool", b"\x7fELF", mode=0o755),
        Device("dev/null", "char", 1, 3),
    ],
]


def run(cmd: list[str], check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} -> {proc.returncode}\n{proc.stderr}")
    return proc


def blob(layout: Path, digest: str) -> Path:
    return layout / "blobs" / "sha256" / digest.split(":", 1)[1]


def read_json(p: Path) -> Any:
    return json.loads(p.read_bytes())


def oci_manifest(layout: Path) -> dict[str, Any]:
    [desc] = read_json(layout / "index.json")["manifests"]
    return read_json(blob(layout, desc["digest"]))


def decompress(data: bytes, compression: str) -> bytes:
    if compression == "gzip":
        return gzip.decompress(data)
    if compression == "zstd":
        import zstandard

        return zstandard.ZstdDecompressor().decompressobj().decompress(data)
    return data


def tar_names(data: bytes) -> list[str]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tf:
        return tf.getnames()


# --------------------------------------------------------------------------- synthetic: self-consistency


@pytest.mark.parametrize("compress", ["gzip", "none", "zstd"])
def test_synth_oci_digests_match_content(tmp_path: Path, compress: str) -> None:
    img = build_synth(LAYERS, "oci", compress, out=tmp_path / "img")
    assert verify_oci_layout(img.path) == []
    manifest = oci_manifest(img.path)
    config = read_json(blob(img.path, manifest["config"]["digest"]))
    assert config["rootfs"]["diff_ids"] == img.diff_ids
    assert len(config["history"]) == 2
    for desc, diff_id in zip(manifest["layers"], img.diff_ids, strict=True):
        assert desc["mediaType"] == image_mod.LAYER_MEDIA_TYPES[compress]
        raw = decompress(blob(img.path, desc["digest"]).read_bytes(), compress)
        assert "sha256:" + hashlib.sha256(raw).hexdigest() == diff_id


def test_synth_layers_hold_whiteouts_and_entry_kinds(tmp_path: Path) -> None:
    img = build_synth(LAYERS, "oci", "none", out=tmp_path / "img")
    first, second = (tar_names(blob(img.path, d).read_bytes()) for d in img.layer_digests)
    assert "os-release" in first and "etc/os-release.hl" in first
    assert {"tmp/.wh.junk", "var/lib/.wh.gone", "etc/.wh..wh..opq"} <= set(second)
    with tarfile.open(blob(img.path, img.layer_digests[0])) as tf:
        assert tf.getmember("os-release").issym()
        assert tf.getmember("etc/os-release.hl").islnk()
    with tarfile.open(blob(img.path, img.layer_digests[1])) as tf:
        assert tf.getmember("dev/null").ischr()
        assert tf.getmember("usr/bin/tool").mode == 0o755


@pytest.mark.parametrize("fmt", ["docker", "docker-legacy"])
def test_synth_docker_archive_structure(tmp_path: Path, fmt: str) -> None:
    img = build_synth(LAYERS, fmt, "none", out=tmp_path / "img.tar", repo_tag="synth/app:7")
    with tarfile.open(img.path) as tf:
        [entry] = json.load(tf.extractfile("manifest.json"))  # type: ignore[arg-type]
        assert entry["RepoTags"] == ["synth/app:7"]
        config = json.load(tf.extractfile(entry["Config"]))  # type: ignore[arg-type]
        assert config["rootfs"]["diff_ids"] == img.diff_ids
        for name, diff_id in zip(entry["Layers"], img.diff_ids, strict=True):
            data = tf.extractfile(name).read()  # type: ignore[union-attr]
            assert "sha256:" + hashlib.sha256(data).hexdigest() == diff_id
        if fmt == "docker-legacy":
            assert all(n.endswith("/layer.tar") for n in entry["Layers"])
        else:
            assert all(n.startswith("blobs/sha256/") for n in entry["Layers"])
            assert "index.json" in tf.getnames() and "oci-layout" in tf.getnames()


def test_synth_multi_platform_index(tmp_path: Path) -> None:
    img = build_synth(LAYERS, "oci", out=tmp_path / "img", platforms=["linux/amd64", "linux/arm64/v8"])
    assert verify_oci_layout(img.path) == []
    [top] = read_json(img.path / "index.json")["manifests"]
    assert top["mediaType"] == image_mod.OCI_INDEX and top["digest"] == img.index_digest
    nested = read_json(blob(img.path, top["digest"]))
    assert [m["digest"] for m in nested["manifests"]] == img.manifest_digests
    assert nested["manifests"][1]["platform"] == {"architecture": "arm64", "os": "linux", "variant": "v8"}
    require_tools("skopeo")
    arm = json.loads(run(["skopeo", "inspect", "--override-arch", "arm64", f"oci:{img.path}:latest"]).stdout)
    assert arm["Architecture"] == "arm64" and arm["Layers"] == img.layer_digests


# --------------------------------------------------------------------------- synthetic: hostile


def test_hostile_entries_are_hostile(tmp_path: Path) -> None:
    def members(kind: str) -> dict[str, tarfile.TarInfo]:
        img = build_synth([hostile_entries(kind)], "oci", "none", out=tmp_path / kind)
        with tarfile.open(blob(img.path, img.layer_digests[0])) as tf:
            return {m.name: m for m in tf.getmembers()}

    assert all(n.startswith("../") or "/../" in n for n in members("dotdot"))
    assert all(n.startswith("/") for n in members("absolute"))
    esc = members("symlink-escape")
    assert esc["escape"].issym() and esc["escape"].linkname.startswith("../")
    assert "escape/hullguard-through-link" in esc
    assert members("symlink-absolute")["etc/shadow-link"].linkname == "/etc/shadow"
    loop = members("symlink-loop")
    assert loop["loop-a"].linkname == "loop-b" and loop["loop-b"].linkname == "loop-a"
    assert loop["self"].linkname == "self"
    hl = members("hardlink-escape")
    assert hl["passwd-link"].islnk() and hl["passwd-link"].linkname.startswith("../")
    assert hl["abs-link"].linkname == "/etc/passwd"
    assert any(n.startswith("../") and ".wh." in n for n in members("whiteout-escape"))
    assert max(len(n) for n in members("long-names")) > 255
    for kind in set(HOSTILE_KINDS) - {"lying-size"}:
        members(kind)  # every kind builds and reads back


def test_lying_size_really_lies(tmp_path: Path) -> None:
    img = build_synth([hostile_entries("lying-size")], "oci", "none", out=tmp_path / "img")
    with tarfile.open(blob(img.path, img.layer_digests[0])) as tf:
        big = tf.next()
        assert big is not None and big.name == "etc/big-claim" and big.size == 1 << 20
        # The header claims more data than the archive holds, so a reader runs off the end.
        with pytest.raises(tarfile.ReadError):
            tf.getmembers()


@pytest.mark.parametrize("tamper", sorted(set(TAMPERS) - {"gzip-bomb"}))
def test_tampered_images_are_damaged_as_described(tmp_path: Path, tamper: str) -> None:
    img = build_synth(LAYERS, "oci", "gzip", out=tmp_path / "img", tamper=[tamper])
    problems = verify_oci_layout(img.path)
    if tamper in ("wrong-layer-digest", "wrong-size", "missing-blob", "missing-config", "missing-manifest"):
        assert problems, tamper
        return
    assert problems == []
    manifest = oci_manifest(img.path)
    if tamper == "truncated-gzip":
        data = blob(img.path, manifest["layers"][-1]["digest"]).read_bytes()
        with pytest.raises((EOFError, zlib.error, OSError)):
            gzip.decompress(data)
    elif tamper == "wrong-diff-id":
        config = read_json(blob(img.path, manifest["config"]["digest"]))
        assert config["rootfs"]["diff_ids"][-1] != img.diff_ids[-1]
    elif tamper == "unknown-manifest-media-type":
        assert manifest["mediaType"] == UNKNOWN_MANIFEST_TYPE
        assert read_json(img.path / "index.json")["manifests"][0]["mediaType"] == UNKNOWN_MANIFEST_TYPE
    elif tamper == "unknown-layer-media-type":
        assert manifest["layers"][-1]["mediaType"] == UNKNOWN_LAYER_TYPE


def test_gzip_bomb_has_huge_ratio_and_valid_digests(tmp_path: Path) -> None:
    size = 64 << 20
    img = build_synth(LAYERS, "oci", "gzip", out=tmp_path / "img", tamper=["gzip-bomb"], bomb_size=size)
    assert verify_oci_layout(img.path) == []
    path = img.blob_path(img.layer_digests[-1])
    assert size / path.stat().st_size > 500
    d = zlib.decompressobj(31)
    h = hashlib.sha256()
    total = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 16):
            out = d.decompress(chunk)
            total += len(out)
            h.update(out)
    assert d.eof and total > size
    assert "sha256:" + h.hexdigest() == img.diff_ids[-1]


# --------------------------------------------------------------------------- synthetic: real peers


@pytest.mark.parametrize("compress", ["gzip", "none", "zstd"])
def test_skopeo_accepts_synthetic_oci(tmp_path: Path, compress: str) -> None:
    require_tools("skopeo")
    img = build_synth(LAYERS, "oci", compress, out=tmp_path / "img", repo_tag="synth/x:latest")
    info = json.loads(run(["skopeo", "inspect", f"oci:{img.path}:latest"]).stdout)
    assert info["Digest"] == img.manifest_digest
    assert info["Layers"] == img.layer_digests
    # Docker's formats have no zstd layer type, so zstd images are copied to another layout.
    dest = f"oci:{tmp_path / 'copy'}:c" if compress == "zstd" else f"docker-archive:{tmp_path / 'copy.tar'}:t/x:1"
    run(["skopeo", "--insecure-policy", "copy", "-q", f"oci:{img.path}:latest", dest])


@pytest.mark.parametrize("fmt", ["docker", "docker-legacy", "oci-archive"])
def test_skopeo_accepts_synthetic_archives(tmp_path: Path, fmt: str) -> None:
    require_tools("skopeo")
    img = build_synth(LAYERS, fmt, "none", out=tmp_path / "img.tar")
    transport = "oci-archive" if fmt == "oci-archive" else "docker-archive"
    info = json.loads(run(["skopeo", "inspect", "--config", f"{transport}:{img.path}"]).stdout)
    assert info["rootfs"]["diff_ids"] == img.diff_ids


@pytest.mark.parametrize("tamper", ["wrong-layer-digest", "missing-blob", "truncated-gzip"])
def test_skopeo_rejects_tampered_images(tmp_path: Path, tamper: str) -> None:
    require_tools("skopeo")
    img = build_synth(LAYERS, "oci", "gzip", out=tmp_path / "img", tamper=[tamper])
    # Copy to a docker-archive forces decompression, so a cut gzip stream is noticed too.
    proc = run(
        [
            "skopeo",
            "--insecure-policy",
            "copy",
            "-q",
            f"oci:{img.path}:latest",
            f"docker-archive:{tmp_path / 'out.tar'}:t/x:1",
        ],
        check=False,
    )
    assert proc.returncode != 0, proc.stdout


def test_umoci_applies_synthetic_whiteouts_like_we_mean_them(tmp_path: Path) -> None:
    require_tools("umoci")
    img = build_synth(LAYERS, "oci", "gzip", out=tmp_path / "img")
    bundle = tmp_path / "bundle"
    run(["umoci", "unpack", "--rootless", "--image", f"{img.path}:latest", str(bundle)])
    root = bundle / "rootfs"
    assert not (root / "tmp/junk").exists()
    assert not (root / "var/lib/gone").exists()
    assert sorted(p.name for p in (root / "etc").iterdir()) == ["hostname"]
    assert (root / "usr/bin/tool").read_bytes() == b"\x7fELF"


# --------------------------------------------------------------------------- the Debian fixtures


def test_debian_rootfs_has_real_packages(debian_rootfs: Path) -> None:
    assert (debian_rootfs / "etc/debian_version").read_text().startswith("12")
    status = (debian_rootfs / "var/lib/dpkg/status").read_text()
    for pkg in ("openssl", "curl", "python3", "ca-certificates", "libc6"):
        assert f"Package: {pkg}\n" in status
    site = debian_rootfs / rootfs_mod.PY_TARGET
    for spec in rootfs_mod.PIP_PACKAGES:
        name, version = spec.split("==")
        assert any(site.glob(f"{name}-{version}.dist-info")) or any(
            p.name.lower() == f"{name}-{version}.dist-info" for p in site.iterdir()
        ), spec
    app = debian_rootfs / rootfs_mod.NPM_APP
    lock = read_json(app / "package-lock.json")
    assert lock["packages"]["node_modules/lodash"]["version"] == "4.17.15"
    assert read_json(app / "node_modules/minimist/package.json")["version"] == "1.2.0"
    jars = {p.name for p in (debian_rootfs / rootfs_mod.JAR_DIR).glob("*.jar")}
    assert {"snakeyaml-1.33.jar", "log4j-1.2.17.jar"} <= jars
    import zipfile

    with zipfile.ZipFile(debian_rootfs / rootfs_mod.JAR_DIR / "snakeyaml-1.33.jar") as z:
        props = z.read("META-INF/maven/org.yaml/snakeyaml/pom.properties").decode()
    assert "version=1.33" in props


def test_debian_cache_entry_is_complete(debian_rootfs_parts: rootfs_mod.BuiltRootfs) -> None:
    assert debian_rootfs_parts.key == rootfs_mod.recipe_key()
    assert debian_rootfs_parts.recipe["key"] == debian_rootfs_parts.key
    assert not list(rootfs_mod.cache_root().glob(f".rootfs-{debian_rootfs_parts.key}.*")), "half-built entry left"


def test_debian_image_is_valid_for_skopeo(debian_image: image_mod.ImagePaths, tmp_path: Path) -> None:
    require_tools("skopeo")
    info = json.loads(run(["skopeo", "inspect", f"oci:{debian_image.oci_dir}:1"]).stdout)
    assert info["Digest"] == debian_image.manifest_digest
    assert info["Layers"] == list(debian_image.layer_digests)
    assert info["Architecture"] == "amd64"
    out = tmp_path / "x.tar"
    run(
        [
            "skopeo",
            "--insecure-policy",
            "copy",
            "-q",
            f"oci:{debian_image.oci_dir}:1",
            f"docker-archive:{out}:test/img:1",
        ]
    )
    for ref in (
        f"docker-archive:{debian_image.docker_archive}",
        f"docker-archive:{debian_image.docker_archive_legacy}",
        f"oci-archive:{debian_image.oci_archive}:1",
        f"docker-archive:{out}",
    ):
        cfg = json.loads(run(["skopeo", "inspect", "--config", ref]).stdout)
        assert cfg["rootfs"]["diff_ids"] == list(debian_image.diff_ids), ref
        created_by = [h.get("created_by", "") for h in cfg["history"]]
        assert any("pip install" in c for c in created_by)


def test_debian_multiarch_index(debian_image: image_mod.ImagePaths) -> None:
    require_tools("skopeo")
    ref = f"oci:{debian_image.multiarch_oci_dir}:1"
    raw = json.loads(run(["skopeo", "inspect", "--raw", ref]).stdout)
    assert raw["mediaType"] == image_mod.OCI_INDEX
    assert {m["platform"]["architecture"] for m in raw["manifests"]} == {"amd64", "arm64"}
    arm = json.loads(run(["skopeo", "inspect", "--override-arch", "arm64", ref]).stdout)
    assert arm["Architecture"] == "arm64"
    amd = json.loads(run(["skopeo", "inspect", "--override-arch", "amd64", ref]).stdout)
    assert amd["Layers"] == list(debian_image.layer_digests)


def test_umoci_unpacks_debian_image_with_whiteouts(debian_image: image_mod.ImagePaths, tmp_path: Path) -> None:
    require_tools("umoci")
    bundle = tmp_path / "bundle"
    # --rootless is several times slower on a 200 MB tree; only use it when we must.
    rootless = ["--rootless"] if os.geteuid() != 0 else []
    run(["umoci", "unpack", *rootless, "--image", f"{debian_image.oci_dir}:1", str(bundle)])
    root = bundle / "rootfs"
    assert (root / "etc/debian_version").is_file()
    assert not (root / image_mod.WHITEOUT_FILE).exists()
    assert not (root / image_mod.WHITEOUT_DIR).exists()
    assert [p.name for p in (root / image_mod.OPAQUE_DIR).iterdir()] == [Path(image_mod.OPAQUE_NEW_FILE).name]
    assert (root / rootfs_mod.NPM_APP / "package-lock.json").is_file()


def test_umoci_written_layout_is_readable(debian_umoci_layout: Path) -> None:
    require_tools("skopeo")
    info = json.loads(run(["skopeo", "inspect", f"oci:{debian_umoci_layout}:1"]).stdout)
    assert info["Layers"], info
    assert verify_oci_layout(debian_umoci_layout) == []


# --------------------------------------------------------------------------- registry smoke


def small_image(tmp_path: Path) -> Path:
    return build_synth(LAYERS, "oci", "gzip", out=tmp_path / "img").path


def tags(reg: Registry, repo: str, **kw: Any) -> httpx.Response:
    with httpx.Client(trust_env=False, timeout=10) as c:
        return c.get(f"{reg.url}/v2/{repo}/tags/list", **kw)


def test_registry_anonymous_push_and_list(
    registry: Registry, push_image: PushFn, debian_image: image_mod.ImagePaths
) -> None:
    digest = push_image(registry, f"{debian_image.oci_dir}:1", "fixtures/debian:1")
    assert digest == debian_image.manifest_digest
    r = tags(registry, "fixtures/debian")
    assert r.status_code == 200 and r.json()["tags"] == ["1"]
    with httpx.Client(trust_env=False, timeout=10) as c:
        m = c.get(f"{registry.url}/v2/fixtures/debian/manifests/1", headers={"Accept": image_mod.OCI_MANIFEST})
    assert m.status_code == 200
    assert m.headers["Docker-Content-Digest"] == debian_image.manifest_digest


def test_registry_basic_auth(registry_basic_auth: Registry, push_image: PushFn, tmp_path: Path) -> None:
    reg = registry_basic_auth
    push_image(reg, f"{small_image(tmp_path)}:latest", "basic/app:2")
    assert tags(reg, "basic/app").status_code == 401
    assert tags(reg, "basic/app", auth=(reg.username, "wrong")).status_code == 401
    r = tags(reg, "basic/app", auth=reg.basic_auth)
    assert r.status_code == 200 and r.json()["tags"] == ["2"]
    with pytest.raises(RuntimeError):
        push_image(reg, f"{small_image(tmp_path / 'b')}:latest", "basic/app:3", creds="nobody:nothing")


def test_registry_token_auth(registry_token_auth: Registry, push_image: PushFn, tmp_path: Path) -> None:
    reg = registry_token_auth
    ts = reg.token_server
    assert ts is not None
    push_image(reg, f"{small_image(tmp_path)}:latest", "token/app:3")
    r = tags(reg, "token/app")
    assert r.status_code == 401
    challenge = r.headers["WWW-Authenticate"]
    assert challenge.startswith("Bearer ") and ts.realm in challenge
    params = {"service": ts.service, "scope": "repository:token/app:pull"}
    with httpx.Client(trust_env=False, timeout=10) as c:
        assert c.get(ts.realm, params=params, auth=(reg.username or "", "wrong")).status_code == 401
        token = c.get(ts.realm, params=params, auth=reg.basic_auth).json()["token"]
    header = json.loads(_b64d(token.split(".")[0]))
    assert header["alg"] == "ES256" and "kid" in header
    r = tags(reg, "token/app", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200 and r.json()["tags"] == ["3"]
    # A token for another repository must not open this one: the registry checks access claims.
    with httpx.Client(trust_env=False, timeout=10) as c:
        other = c.get(ts.realm, params={**params, "scope": "repository:elsewhere:pull"}, auth=reg.basic_auth)
    r = tags(reg, "token/app", headers={"Authorization": f"Bearer {other.json()['token']}"})
    assert r.status_code == 401
    assert any(a["actions"] == ["pull", "push"] or "push" in a["actions"] for c in ts.issued for a in c["access"])


def _b64d(s: str) -> bytes:
    import base64

    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


# --------------------------------------------------------------------------- cache atomicity


def test_interrupted_rootfs_build_leaves_no_cache_entry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HULLGUARD_TEST_CACHE", str(tmp_path))
    monkeypatch.setattr(rootfs_mod, "missing_tools", lambda: [])
    monkeypatch.setattr(rootfs_mod.os, "geteuid", lambda: 0)

    def half_build(dest: Path, mirror: str) -> None:
        (dest / "base" / "etc").mkdir(parents=True)
        raise KeyboardInterrupt  # as if the run was stopped mid-debootstrap

    monkeypatch.setattr(rootfs_mod, "_build", half_build)
    with pytest.raises(KeyboardInterrupt):
        rootfs_mod.build_rootfs_parts(mirror="http://127.0.0.1:9/unused")
    assert [p.name for p in tmp_path.iterdir() if not p.name.startswith(".locks")] == []
    # A stale temp dir from a killed process is swept by the next builder holding the lock.
    (tmp_path / f".rootfs-{rootfs_mod.recipe_key()}.stale").mkdir()

    def good_build(dest: Path, mirror: str) -> None:
        (dest / "root").mkdir()

    monkeypatch.setattr(rootfs_mod, "_build", good_build)
    built = rootfs_mod.build_rootfs_parts(mirror="http://127.0.0.1:9/unused")
    assert built.root.is_dir() and (built.root.parent / "recipe.json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == [".locks", f"rootfs-{built.key}"]
