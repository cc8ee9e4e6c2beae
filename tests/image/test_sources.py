"""Every image source on synthetic images: the formats, codecs, platform selection, the layer
cache, and every kind of damage ending in a one-line error (HullguardError, exit code 2)."""

from __future__ import annotations

import gzip
import shutil
import tarfile
from collections.abc import Iterable
from pathlib import Path

import pytest

from hullguard.image.source import Platform
from hullguard.inventory.base import Analyzer, FileInfo
from hullguard.model import Fact, HullguardError, Package
from hullguard.scan import ScanOptions, scan_image
from tests.builders.image import ImageSpec, write_layer, write_oci_layout
from tests.builders.synth import TAMPERS, File, Opaque, Symlink, Whiteout, add_entry, build_synth


class LinesAnalyzer(Analyzer):
    name = "lines"

    def wants(self, info: FileInfo) -> bool:
        return info.path.endswith(".pkgs")

    def analyze(self, info: FileInfo, data: bytes) -> Iterable[Fact]:
        for line in data.decode().splitlines():
            name, version = line.split()
            yield Package(name=name, version=version, ecosystem="test")


LAYERS = [
    [File("var/db.pkgs", "base 1\n"), File("tmp/t.pkgs", "temp 1\n"), File("opt/x/o.pkgs", "old 1\n"),
     Symlink("etc/alias.pkgs", "../var/db.pkgs")],
    [File("var/db.pkgs", "base 1\napp 2\n"), Whiteout("tmp/t.pkgs")],
    [Opaque("opt"), File("opt/y/n.pkgs", "new 1\n")],
]
HISTORY = ["ADD rootfs.tar /", "RUN install app", "RUN replace opt"]


def opts(tmp_path: Path, **kw) -> ScanOptions:
    return ScanOptions(cache_dir=str(tmp_path / "cache"), analyzers=[LinesAnalyzer()], **kw)


def summary(result) -> list[tuple[str, str, str, str]]:
    layers = {layer.digest: i for i, layer in enumerate(result.layers)}
    return sorted((p.name, p.version, p.locations[0].path, str(layers.get(p.locations[0].layer, "-")))
                  for p in result.packages)


EXPECTED = [("app", "2", "var/db.pkgs", "1"), ("base", "1", "var/db.pkgs", "0"), ("new", "1", "opt/y/n.pkgs", "2")]


@pytest.mark.parametrize("fmt", ["oci", "oci-archive", "docker", "docker-legacy"])
@pytest.mark.parametrize("compress", ["gzip", "none", "zstd"])
def test_formats_and_codecs(tmp_path: Path, fmt: str, compress: str) -> None:
    img = build_synth(LAYERS, fmt=fmt, compress=compress, history=HISTORY, out=tmp_path / "img" / "image")
    prefix = {"oci": "oci-dir", "oci-archive": "oci-archive"}.get(fmt, "docker-archive")
    for target in (f"{prefix}:{img.path}", str(img.path)):
        result = scan_image(target, opts(tmp_path, use_cache=False))
        assert summary(result) == EXPECTED
        assert [layer.created_by for layer in result.layers] == HISTORY
        assert result.artifact.config_digest == img.config_digest
        if fmt.startswith("oci"):
            assert result.artifact.manifest_digest == img.manifest_digest
            assert [layer.digest for layer in result.layers] == img.layer_digests
        else:
            assert [layer.digest for layer in result.layers] == img.diff_ids


def test_gzip_compressed_docker_archive(tmp_path: Path) -> None:
    img = build_synth(LAYERS, fmt="docker", compress="none", history=HISTORY, out=tmp_path / "image.tar")
    gz = tmp_path / "image.tar.gz"
    with open(img.path, "rb") as src, gzip.open(gz, "wb") as dst:
        shutil.copyfileobj(src, dst)
    result = scan_image(f"docker-archive:{gz}", opts(tmp_path, use_cache=False))
    assert summary(result) == EXPECTED


def test_layer_cache_hits_on_second_scan_and_shared_base(tmp_path: Path) -> None:
    img = build_synth(LAYERS, fmt="oci", history=HISTORY, out=tmp_path / "a" / "image")
    first = scan_image(str(img.path), opts(tmp_path))
    assert first.timings["cache_hits"] == 0
    second = scan_image(str(img.path), opts(tmp_path))
    assert second.timings["cache_hits"] == 3
    assert summary(second) == summary(first)
    # A different image on the same base layer reads only its own new layer.
    other = build_synth([LAYERS[0], [File("srv/s.pkgs", "svc 9\n")]], fmt="oci", out=tmp_path / "b" / "image")
    third = scan_image(str(other.path), opts(tmp_path))
    assert third.timings["cache_hits"] == 1
    assert ("svc", "9", "srv/s.pkgs", "1") in summary(third)


def test_cache_is_keyed_by_analyzer_set(tmp_path: Path) -> None:
    img = build_synth(LAYERS, fmt="oci", out=tmp_path / "a" / "image")
    scan_image(str(img.path), opts(tmp_path))

    class Other(LinesAnalyzer):
        name = "other"

    result = scan_image(str(img.path), ScanOptions(cache_dir=str(tmp_path / "cache"), analyzers=[Other()]))
    assert result.timings["cache_hits"] == 0


def _multi_platform(tmp_path: Path) -> Path:
    def fill(pkgs: str):
        return lambda tf: add_entry(tf, File("arch.pkgs", pkgs))

    work = tmp_path / "work"
    specs = [
        ImageSpec(layers=[write_layer(fill("amd 1"), work)], architecture="amd64"),
        ImageSpec(layers=[write_layer(fill("arm 1"), work)], architecture="arm64", variant="v8"),
        ImageSpec(layers=[write_layer(fill("armv7 1"), work)], architecture="arm", variant="v7"),
    ]
    out = tmp_path / "multi"
    write_oci_layout(out, specs)
    return out


@pytest.mark.parametrize(("platform", "expected"),
                         [("linux/amd64", "amd"), ("linux/arm64", "arm"), ("linux/arm64/v8", "arm"),
                          ("linux/arm/v7", "armv7")])
def test_platform_selection(tmp_path: Path, platform: str, expected: str) -> None:
    layout = _multi_platform(tmp_path)
    result = scan_image(str(layout), opts(tmp_path, platform=Platform.parse(platform)))
    assert [p.name for p in result.packages] == [expected]
    assert result.artifact.architecture == platform.split("/")[1]


def test_missing_platform_lists_what_is_available(tmp_path: Path) -> None:
    layout = _multi_platform(tmp_path)
    with pytest.raises(HullguardError, match=r"no image for platform linux/s390x.*linux/amd64.*linux/arm/v7"):
        scan_image(str(layout), opts(tmp_path, platform=Platform.parse("linux/s390x")))


@pytest.mark.parametrize("bad", ["linux", "linux/", "a/b/c/d", ""])
def test_bad_platform_syntax(bad: str) -> None:
    with pytest.raises(HullguardError):
        Platform.parse(bad)


# OCI sources verify the compressed blob against the manifest digest (what signatures cover); the
# config's diff ids are not used for identity there, so a wrong one is not checked (it would cost a
# hash of every uncompressed byte). The docker builder applies only some tampers.
_NOT_APPLICABLE = {
    "oci": {"wrong-diff-id"},
    "docker": {"missing-manifest", "unknown-manifest-media-type", "unknown-layer-media-type", "wrong-size",
               "missing-config"},
}
TAMPER_CASES = [(fmt, t) for t in TAMPERS for fmt in ("oci", "docker") if t not in _NOT_APPLICABLE[fmt]]


@pytest.mark.parametrize(("fmt", "tamper"), TAMPER_CASES)
def test_damaged_images_are_clear_errors(tmp_path: Path, fmt: str, tamper: str) -> None:
    img = build_synth(LAYERS, fmt=fmt, out=tmp_path / "img" / "image", tamper=[tamper], tamper_layer=0,
                      bomb_size=64 << 20)
    with pytest.raises(HullguardError) as info:
        scan_image(str(img.path), opts(tmp_path, use_cache=False, max_uncompressed=16 << 20))
    message = str(info.value)
    assert "\n" not in message and message


@pytest.mark.parametrize("kind", ["dotdot", "hardlink-escape"])
def test_escaping_entries_are_refused(tmp_path: Path, kind: str) -> None:
    from tests.builders.synth import hostile_entries

    img = build_synth([hostile_entries(kind)], fmt="oci", out=tmp_path / "img" / "image")
    with pytest.raises(HullguardError, match=r"escape|traversal"):
        scan_image(str(img.path), opts(tmp_path, use_cache=False))


@pytest.mark.parametrize("kind", ["absolute", "symlink-escape", "symlink-absolute", "symlink-loop", "long-names",
                                  "devices", "whiteout-escape"])
def test_other_hostile_entries_stay_inside_the_root(tmp_path: Path, kind: str) -> None:
    from tests.builders.synth import hostile_entries

    img = build_synth([hostile_entries(kind)], fmt="oci", out=tmp_path / "img" / "image")
    try:
        result = scan_image(str(img.path), opts(tmp_path, use_cache=False))
    except HullguardError as exc:
        assert "\n" not in str(exc)
        return
    for p in result.packages:
        assert not p.locations[0].path.startswith(("/", "../"))


def test_not_an_image(tmp_path: Path) -> None:
    plain = tmp_path / "x.tar"
    with tarfile.open(plain, "w") as tf:
        tf.add(__file__, "hello.py")
    with pytest.raises(HullguardError, match="neither a docker-archive nor an OCI layout"):
        scan_image(str(plain), opts(tmp_path))
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"\x00garbage" * 100)
    with pytest.raises(HullguardError):
        scan_image(str(junk), opts(tmp_path))
    with pytest.raises(HullguardError, match="no such file"):
        scan_image(str(tmp_path / "missing.tar"), opts(tmp_path))
