"""The merge step: layer attribution, distro purls, hints, lockfile folding, OS ownership."""

from __future__ import annotations

from hullguard.image.layers import LayerResult, squash
from hullguard.inventory.assemble import assemble, pick_os
from hullguard.model import FileFacts, Layer, OSInfo, Package, PackageHint


def layer(digest: str, files: dict[str, list]) -> LayerResult:
    return LayerResult(digest=digest, files={p: FileFacts.of(f) for p, f in files.items()})


def pkg(name: str, version: str, eco: str = "npm", **kw) -> Package:
    return Package(name=name, version=version, ecosystem=eco, **kw)


LAYERS = [Layer(digest="sha256:a"), Layer(digest="sha256:b")]


def test_lockfile_entries_fold_into_installed_packages() -> None:
    s = squash([layer("sha256:a", {
        "app/node_modules/lodash/package.json": [pkg("lodash", "4.17.15")],
        "app/package-lock.json": [pkg("lodash", "4.17.15"), pkg("left-pad", "1.0.0")],
        "app/requirements.txt": [pkg("Flask", "1.1.2", "pypi")],
        "site/Flask-1.1.2.dist-info/METADATA": [pkg("flask", "1.1.2", "pypi")],
    })])
    packages, _ = assemble(s, LAYERS, None)
    found = sorted((p.ecosystem, p.name, [loc.path for loc in p.locations]) for p in packages)
    assert found == [
        ("npm", "left-pad", ["app/package-lock.json"]),
        ("npm", "lodash", ["app/node_modules/lodash/package.json", "app/package-lock.json"]),
        ("pypi", "flask", ["site/Flask-1.1.2.dist-info/METADATA", "app/requirements.txt"]),
    ]


def test_different_versions_are_not_folded() -> None:
    s = squash([layer("sha256:a", {
        "app/node_modules/qs/package.json": [pkg("qs", "6.7.0")],
        "app/package-lock.json": [pkg("qs", "6.5.2")],
    })])
    packages, _ = assemble(s, LAYERS, None)
    assert sorted(p.version for p in packages) == ["6.5.2", "6.7.0"]


METADATA = "usr/lib/python3/dist-packages/PyYAML-6.0.dist-info/METADATA"


def test_os_purls_hints_and_ownership() -> None:
    debian = OSInfo(family="debian", release="12", codename="bookworm")
    s = squash([
        layer("sha256:a", {
            "var/lib/dpkg/status": [pkg("python3-yaml", "6.0-3", "deb", arch="amd64"),
                                    pkg("libc6", "2.36-9", "deb", arch="amd64"),
                                    pkg("libc6", "2.36-9", "deb", arch="i386")],
            "var/lib/dpkg/info/python3-yaml.list": [PackageHint(ecosystem="deb", package="python3-yaml",
                                                                files=[f"/{METADATA}"])],
            "usr/share/doc/python3-yaml/copyright": [PackageHint(ecosystem="deb", package="python3-yaml",
                                                                 licenses=["MIT"])],
        }),
        layer("sha256:b", {METADATA: [pkg("PyYAML", "6.0", "pypi")]}),
    ])
    packages, _ = assemble(s, LAYERS, debian)
    by = {(p.name, p.arch): p for p in packages}
    yaml_deb = by[("python3-yaml", "amd64")]
    assert yaml_deb.licenses == ["MIT"]
    assert yaml_deb.purl.startswith("pkg:deb/debian/python3-yaml@6.0-3") and "distro=debian-12" in yaml_deb.purl
    assert yaml_deb.locations[0].layer == "sha256:a"
    assert ("libc6", "i386") in by and ("libc6", "amd64") in by
    pyyaml = by[("PyYAML", "")]
    assert pyyaml.metadata["os_owned_by"] == "python3-yaml"
    assert pyyaml.locations[0].layer == "sha256:b"
    assert pyyaml.purl == "pkg:pypi/pyyaml@6.0"


def test_distroless_is_recognised_from_status_d() -> None:
    os_file = OSInfo(family="debian", release="12")
    s = squash([layer("sha256:a", {
        "etc/os-release": [os_file],
        "var/lib/dpkg/status.d/base": [pkg("base-files", "12.4", "deb")],
    })])
    chosen = pick_os(s)
    assert chosen is not None and chosen.distroless and chosen.family == "debian"
    assert not os_file.distroless  # the cached fact is not changed in place
