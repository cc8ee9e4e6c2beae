"""Image checks on a real Debian base: the debootstrapped bookworm layer of the integration fixture,
with layers on top that add offenders and then delete one, written as an OCI layout."""

from __future__ import annotations

import os
import tarfile
from pathlib import Path

import pytest

from hullguard.model import Finding, Severity
from hullguard.scan import ScanOptions, scan_image
from tests.builders import image as image_mod
from tests.builders import rootfs as rootfs_mod
from tests.builders.synth import Dir, File, Whiteout, add_entry

ELF = b"\x7fELF\x02\x01\x01" + b"\0" * 57


@pytest.fixture(scope="module")
def debian_base() -> image_mod.LayerBlob:
    cached = (rootfs_mod.cache_root() / f"rootfs-{rootfs_mod.recipe_key()}" / "recipe.json").is_file()
    if not cached and (rootfs_mod.missing_tools() or os.geteuid() != 0):
        reason = "the Debian root filesystem is not cached and cannot be built here (needs debootstrap and root)"
        if os.environ.get("HULLGUARD_REQUIRE_INTEGRATION", "").strip().lower() not in ("", "0", "false", "no"):
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    paths = image_mod.build_image()
    digest, diff_id = paths.layer_digests[0], paths.diff_ids[0]
    blob = paths.oci_dir / "blobs" / "sha256" / digest.split(":", 1)[1]
    return image_mod.LayerBlob(blob, blob, digest, diff_id, blob.stat().st_size,
                               "application/vnd.oci.image.layer.v1.tar+gzip", "gzip")


def _layer(entries: list, work: Path) -> image_mod.LayerBlob:
    def fill(tf: tarfile.TarFile) -> None:
        for e in entries:
            add_entry(tf, e)

    return image_mod.write_layer(fill, work)


def test_debian_image_with_offenders(tmp_path: Path, debian_base: image_mod.LayerBlob) -> None:
    added = _layer([
        Dir("srv/drop", mode=0o777),
        File("usr/local/bin/rootshell", ELF, mode=0o4755),
        File("usr/local/bin/also-gone", ELF, mode=0o4755),
        File("var/lib/apt/lists/deb.debian.org_debian_dists_bookworm_InRelease", b"x" * 4096),
        File("usr/sbin/sshd", ELF, mode=0o755),
    ], tmp_path / "work")
    removed = _layer([Whiteout("usr/local/bin/also-gone")], tmp_path / "work")
    history = [image_mod.History("/bin/sh -c #(nop) ADD file:base in / "),
               image_mod.History("RUN /bin/sh -c apt-get update && apt-get install -y openssh-server # buildkit"),
               image_mod.History("RUN /bin/sh -c rm /usr/local/bin/also-gone # buildkit"),
               image_mod.History("VOLUME [/var/run/docker.sock]", empty_layer=True)]
    spec = image_mod.ImageSpec([debian_base, added, removed], history,
                               config={"Env": ["PATH=/usr/bin"], "Volumes": {"/var/run/docker.sock": {}}})
    image_mod.write_oci_layout(tmp_path / "oci", [spec], ref="1")

    result = scan_image(f"oci-dir:{tmp_path / 'oci'}:1", ScanOptions(misconfig=True, use_cache=False))
    found: dict[str, list[Finding]] = {}
    for f in result.findings:
        if f.kind == "misconfiguration":
            found.setdefault(f.rule_id, []).append(f)
    layers = [layer.digest for layer in result.layers]

    # The real base: Debian's own setuid tools, low severity, with the dpkg package that owns them
    # (dpkg lists /bin/su, the file is at usr/bin/su on a merged-/usr system).
    distro = {f.location.path: f for f in found["HG-IMG-003"]}
    assert {"usr/bin/passwd", "usr/bin/su", "usr/bin/mount"} <= set(distro)
    assert distro["usr/bin/passwd"].details["package"] == "passwd"
    assert distro["usr/bin/su"].details.get("package") == "util-linux"
    assert all(f.location.layer == layers[0] and f.severity == Severity.LOW for f in distro.values())
    # /tmp in the base is 1777: not world-writable-without-sticky.
    assert [f.location.path for f in found["HG-IMG-005"]] == ["srv/drop"]

    assert [(f.location.path, f.location.layer) for f in found["HG-IMG-002"]] == [
        ("usr/local/bin/rootshell", layers[1])]  # also-gone was deleted by the third layer
    assert [f.location.path for f in found["HG-IMG-008"]] == ["var/lib/apt/lists"]
    assert [f.location.path for f in found["HG-IMG-009"]] == ["usr/sbin/sshd"]
    assert [f.severity for f in found["HG-IMG-010"]] == [Severity.CRITICAL]
    assert [f.location.path for f in found["HG-IMG-001"]] == ["image-config:User"]
