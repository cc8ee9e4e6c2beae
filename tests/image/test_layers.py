"""Layer semantics: safe paths, symlink resolution inside the root, OCI whiteouts and opaque
directories, and which layer introduced each package."""

from __future__ import annotations

import io
from collections.abc import Iterable

import pytest

from hullguard.image.layers import (
    LayerResult,
    UnsafePath,
    analyze_layer,
    normalize,
    resolve,
    squash,
)
from hullguard.image.streams import Budget
from hullguard.inventory.base import Analyzer, AnalyzerError, FileInfo
from hullguard.model import Fact, FileFacts, Package
from tests.builders.synth import Dir, File, Hardlink, Opaque, Symlink, Whiteout, layer_tar_bytes


class LinesAnalyzer(Analyzer):
    """Each line "name version" of a *.pkgs file is a package: enough to watch facts move."""

    name = "lines"

    def wants(self, info: FileInfo) -> bool:
        return info.path.endswith(".pkgs")

    def analyze(self, info: FileInfo, data: bytes) -> Iterable[Fact]:
        if data.startswith(b"BAD"):
            raise AnalyzerError("unparsable")
        for line in data.decode().splitlines():
            name, version = line.split()
            yield Package(name=name, version=version, ecosystem="test")


def layer(entries, digest: str, analyzers=None) -> LayerResult:
    data = layer_tar_bytes(entries)
    return analyze_layer(io.BytesIO(data), digest, analyzers or [LinesAnalyzer()], Budget(1 << 40, 1 << 40))


@pytest.mark.parametrize(
    ("name", "expected"),
    [("etc/passwd", "etc/passwd"), ("./etc/passwd", "etc/passwd"), ("/etc/passwd", "etc/passwd"),
     ("a/b/../c", "a/c"), ("a//b/./c/", "a/b/c"), (".", ""), ("a/..", "")],
)
def test_normalize(name: str, expected: str) -> None:
    assert normalize(name) == expected


@pytest.mark.parametrize("name", ["../etc/passwd", "a/../../x", "/../x", "./../../../../tmp/evil", "a\0b"])
def test_normalize_refuses_escapes(name: str) -> None:
    with pytest.raises(UnsafePath):
        normalize(name)


def links(mapping: dict[str, str]):
    return mapping.get


def test_resolve_relative_and_absolute_links() -> None:
    fs = links({"etc/os-release": "../usr/lib/os-release", "lib": "usr/lib", "bin": "/usr/bin"})
    assert resolve("etc/os-release", fs) == "usr/lib/os-release"
    assert resolve("lib/apk/db/installed", fs) == "usr/lib/apk/db/installed"
    assert resolve("bin/sh", fs) == "usr/bin/sh"


def test_resolve_never_leaves_the_root() -> None:
    fs = links({"evil": "../../../../../etc/shadow", "abs": "/../../root", "dir/up": "../../.."})
    assert resolve("evil", fs) == "etc/shadow"
    assert resolve("abs/x", fs) == "root/x"
    assert resolve("dir/up/etc", fs) == "etc"


def test_resolve_detects_loops() -> None:
    with pytest.raises(UnsafePath, match="loop"):
        resolve("a", links({"a": "b", "b": "a"}))
    with pytest.raises(UnsafePath, match="loop"):
        resolve("x/y", links({"x": "x"}))


def test_analyze_layer_records_files_links_and_whiteouts() -> None:
    result = layer(
        [Dir("var"), File("var/a.pkgs", "foo 1\nbar 2\n"), Symlink("etc/os-release", "../usr/lib/os-release"),
         Hardlink("var/copy.pkgs", "var/a.pkgs"), Whiteout("tmp/gone"), Opaque("opt"), File("other.txt", "x")],
        "sha256:l1",
    )
    assert set(result.files) == {"var/a.pkgs"}
    assert [p.name for p in result.files["var/a.pkgs"].packages] == ["foo", "bar"]
    assert all(p.found_by == "lines" for p in result.files["var/a.pkgs"].packages)
    assert result.symlinks == {"etc/os-release": "../usr/lib/os-release"}
    assert result.hardlinks == {"var/copy.pkgs": "var/a.pkgs"}
    assert result.whiteouts == ["tmp/gone"] and result.opaque == ["opt"]


def test_analyzer_errors_become_warnings() -> None:
    result = layer([File("x.pkgs", "BAD"), File("y.pkgs", "ok 1")], "sha256:l1")
    assert result.files["x.pkgs"].packages == []
    assert [p.name for p in result.files["y.pkgs"].packages] == ["ok"]
    assert any("x.pkgs" in w and "unparsable" in w for w in result.warnings)


def test_traversal_entry_is_an_error() -> None:
    with pytest.raises(UnsafePath, match="escapes"):
        layer([File("../../etc/evil.pkgs", "x 1")], "sha256:l1")


def test_hardlink_outside_the_root_is_an_error() -> None:
    with pytest.raises(UnsafePath):
        layer([Hardlink("x", "../../etc/shadow")], "sha256:l1")


def test_budget_stops_bombs() -> None:
    data = layer_tar_bytes([File(f"f{i}", "x") for i in range(50)])
    with pytest.raises(Exception, match="more than 10 entries"):
        analyze_layer(io.BytesIO(data), "sha256:x", [LinesAnalyzer()], Budget(1 << 40, 10))


def pk(result, path):
    return sorted((p.name, p.version) for p in result.files[path].packages)


def test_squash_whiteout_and_origin_of_packages() -> None:
    l1 = layer([File("var/db.pkgs", "base 1\nlibc 2\n"), File("tmp/x.pkgs", "tmp 1"), File("opt/o.pkgs", "o 1")],
               "sha256:l1")
    l2 = layer([File("var/db.pkgs", "base 1\nlibc 3\napp 1\n"), Whiteout("tmp")], "sha256:l2")
    l3 = layer([Opaque("opt"), File("opt/n.pkgs", "n 1")], "sha256:l3")
    s = squash([l1, l2, l3])
    assert set(s.files) == {"var/db.pkgs", "opt/n.pkgs"}
    origin = s.origin["var/db.pkgs"]
    # base was already there in layer 1; the upgraded libc and the new app came with layer 2.
    assert origin[("test", "base", "1")] == 0
    assert origin[("test", "libc", "3")] == 1
    assert origin[("test", "app", "1")] == 1
    assert s.layer_of["opt/n.pkgs"] == 2
    assert {"tmp/x.pkgs", "opt/o.pkgs"} <= s.deleted


def test_opaque_does_not_hide_the_same_layers_entries() -> None:
    l1 = layer([File("opt/a.pkgs", "a 1")], "sha256:l1")
    l2 = layer([File("opt/b.pkgs", "b 1"), Opaque("opt")], "sha256:l2")
    assert set(squash([l1, l2]).files) == {"opt/b.pkgs"}


def test_whiteout_then_readd_in_a_later_layer_is_new() -> None:
    l1 = layer([File("d/p.pkgs", "x 1")], "sha256:l1")
    l2 = layer([Whiteout("d")], "sha256:l2")
    l3 = layer([File("d/p.pkgs", "x 1")], "sha256:l3")
    s = squash([l1, l2, l3])
    assert s.origin["d/p.pkgs"][("test", "x", "1")] == 2


def test_whiteout_of_a_prefix_sibling_is_not_a_parent() -> None:
    l1 = layer([File("app/a.pkgs", "a 1"), File("app2/b.pkgs", "b 1")], "sha256:l1")
    l2 = layer([Whiteout("app")], "sha256:l2")
    assert set(squash([l1, l2]).files) == {"app2/b.pkgs"}


def test_symlink_replaces_a_file_from_a_lower_layer() -> None:
    l1 = layer([File("etc/x.pkgs", "a 1")], "sha256:l1")
    l2 = layer([Symlink("etc/x.pkgs", "/dev/null")], "sha256:l2")
    s = squash([l1, l2])
    assert "etc/x.pkgs" not in s.files and s.symlinks["etc/x.pkgs"] == "/dev/null"


def test_hardlink_to_a_lower_layer_file_gets_its_facts() -> None:
    l1 = layer([File("a.pkgs", "a 1")], "sha256:l1")
    l2 = layer([Hardlink("b.pkgs", "a.pkgs")], "sha256:l2")
    s = squash([l1, l2])
    assert pk(type("R", (), {"files": s.files}), "b.pkgs") == [("a", "1")]


def test_cached_layer_round_trip() -> None:
    import msgspec

    l1 = layer([File("var/db.pkgs", "base 1\n"), Whiteout("x"), Symlink("s", "t")], "sha256:l1")
    again = msgspec.msgpack.decode(msgspec.msgpack.encode(l1), type=LayerResult)
    assert again == l1
    assert isinstance(again.files["var/db.pkgs"], FileFacts)
