from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from hullguard import purl
from hullguard.model import Artifact, Finding, Layer, Location, OSInfo, Package, ScanResult, Severity

HERE = Path(__file__).parent
CDX_RES = Path(__import__("cyclonedx").__file__).parent / "schema" / "_res"

BASE = "sha256:" + "a1" * 32
BASE_DIFF = "sha256:" + "b1" * 32
APP = "sha256:" + "a2" * 32
APP_DIFF = "sha256:" + "b2" * 32
MANIFEST = "sha256:" + "c3" * 32
CONFIG = "sha256:" + "d4" * 32


def _deb(name: str, version: str, source: str = "", source_version: str = "", **kw: Any) -> Package:
    qualifiers = {"arch": "amd64", "distro": "debian-12"}
    if source:
        qualifiers["upstream"] = source if not source_version else f"{source}@{source_version}"
    return Package(
        name=name,
        version=version,
        ecosystem="deb",
        purl=purl.build("deb", name, version, "debian", qualifiers),
        source_name=source,
        source_version=source_version,
        arch="amd64",
        locations=[Location(path="var/lib/dpkg/status", layer=BASE)],
        found_by="dpkg",
        **kw,
    )


def _lang(eco: str, name: str, version: str, path: str, namespace: str = "", **kw: Any) -> Package:
    ptype = eco
    pname = name
    if eco == "maven":
        namespace, pname = name.split(":", 1)
    elif eco in ("npm", "golang", "composer") and "/" in name:
        namespace, pname = name.rsplit("/", 1)
    return Package(
        name=name,
        version=version,
        ecosystem=eco,
        purl=purl.build(ptype, pname, version, namespace),
        locations=[Location(path=path, layer=APP)],
        found_by=f"{eco}-analyzer",
        **kw,
    )


def debian_image_result() -> ScanResult:
    libssl = _deb(
        "libssl3",
        "3.0.11-1~deb12u2",
        "openssl",
        licenses=["Apache-2.0"],
        dependencies=["deb:libc6@2.36-9+deb12u4#var/lib/dpkg/status"],
        metadata={"maintainer": "Debian OpenSSL Team", "installed_size": 6200},
    )
    libc = _deb(
        "libc6",
        "2.36-9+deb12u4",
        "glibc",
        licenses=["GPL-2.0-or-later", "LGPL-2.1-or-later", "GFDL-NIV-1.3", "public-domain"],
    )
    perl = _deb(
        "perl-base",
        "5.36.0-7+deb12u1",
        "perl",
        "5.36.0-7+deb12u1",
        licenses=["GPL-1.0-or-later OR Artistic-1.0-Perl"],
        dependencies=["deb:libc6@2.36-9+deb12u4#var/lib/dpkg/status", "deb:missing@1#nowhere"],
    )
    tzdata = _deb("tzdata", "2024a-0+deb12u1", licenses=["mit", "BSD-3-Clause AND (MIT OR Apache-2.0)"])
    packages = [
        libssl,
        libc,
        perl,
        tzdata,
        _lang(
            "pypi",
            "PyYAML",
            "6.0.1",
            "usr/lib/python3/dist-packages/PyYAML-6.0.1.dist-info/METADATA",
            licenses=["MIT License"],
        ),
        _lang(
            "pypi",
            "zope.interface",
            "6.1",
            "usr/lib/python3/dist-packages/zope.interface-6.1.dist-info/METADATA",
            licenses=["ZPL 2.1"],
        ),
        _lang(
            "npm",
            "@babel/core",
            "7.23.9",
            "app/node_modules/@babel/core/package.json",
            licenses=["MIT"],
            dependencies=["npm:left-pad@1.3.0#app/node_modules/left-pad/package.json"],
        ),
        _lang("npm", "left-pad", "1.3.0", "app/node_modules/left-pad/package.json", licenses=["WTFPL"]),
        _lang(
            "maven",
            "org.apache.logging.log4j:log4j-core",
            "2.14.1",
            "app/lib/log4j-core-2.14.1.jar",
            licenses=["Apache License, Version 2.0"],
        ),
        _lang("golang", "github.com/spf13/cobra", "v1.8.0", "usr/local/bin/app", licenses=[]),
        _lang("golang", "stdlib", "go1.21.6", "usr/local/bin/app"),
        _lang(
            "npm",
            "weird name/with spaces&ampersand?#",
            "1.0.0+build.1",
            "app/node_modules/weird/package.json",
            licenses=["(MIT OR GPL-3.0-only) WITH Classpath-exception-2.0", "Custom: see LICENSE ünïcödé"],
        ),
        _lang("cargo", "serde", "1.0.197", "usr/local/bin/app", licenses=["MIT OR Apache-2.0"]),
    ]
    findings = [
        Finding(
            kind="vulnerability",
            rule_id="CVE-2021-44228",
            severity=Severity.CRITICAL,
            title="Log4Shell",
            target=packages[8].id,
            location=packages[8].locations[0],
            fix="2.15.0",
            details={
                "source": "osv",
                "source_url": "https://osv.dev/vulnerability/GHSA-jfh8-c2jp-5v3q",
                "aliases": ["GHSA-jfh8-c2jp-5v3q"],
                "cvss": [{"vector": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H", "score": 10.0, "source": "nvd"}],
                "cwes": ["CWE-502", "CWE-917"],
                "references": ["https://logging.apache.org/log4j/2.x/security.html"],
                "installed_version": "2.14.1",
            },
        ),
        Finding(
            kind="vulnerability",
            rule_id="CVE-2023-5678",
            severity=Severity.MEDIUM,
            target=libssl.id,
            fix="3.0.13-1~deb12u1",
        ),
        Finding(kind="secret", rule_id="HG-SEC-001", severity=Severity.HIGH, target="app/.env"),
    ]
    return ScanResult(
        artifact=Artifact(
            name="docker.io/library/debian:12",
            type="registry",
            manifest_digest=MANIFEST,
            config_digest=CONFIG,
            repo_tags=["debian:12"],
            repo_digests=[f"debian@{MANIFEST}"],
            os="linux",
            architecture="amd64",
        ),
        os=OSInfo(family="debian", release="12", codename="bookworm", name="Debian GNU/Linux 12 (bookworm)"),
        layers=[
            Layer(digest=BASE, diff_id=BASE_DIFF, created_by="/bin/sh -c #(nop) ADD file:abc in / "),
            Layer(digest=APP, diff_id=APP_DIFF, created_by="COPY app /app # buildkit"),
        ],
        packages=packages,
        findings=findings,
        generated_at="2024-03-01T12:34:56.789123+00:00",
    )


def filesystem_result() -> ScanResult:
    return ScanResult(
        artifact=Artifact(name="./project", type="filesystem"),
        packages=[
            _lang("pypi", "requests", "2.31.0", "requirements.txt"),
            Package(name="nover", version="", ecosystem="npm", locations=[Location(path="package.json")]),
        ],
    )


@pytest.fixture
def debian_result() -> ScanResult:
    return debian_image_result()


@pytest.fixture
def fs_result() -> ScanResult:
    return filesystem_result()


@pytest.fixture(scope="session")
def cdx_validator() -> Any:
    from jsonschema import Draft7Validator
    from referencing import Registry, Resource

    def load(name: str) -> Resource:
        return Resource.from_contents(json.loads((CDX_RES / name).read_text()))

    bom = json.loads((CDX_RES / "bom-1.6.SNAPSHOT.schema.json").read_text())
    # The bom schema refers to its siblings by relative file name; serve them under the URIs
    # those names resolve to, so nothing is fetched from the network.
    base = "http://cyclonedx.org/schema/"
    names = ("spdx.SNAPSHOT.schema.json", "jsf-0.82.SNAPSHOT.schema.json")
    registry = Registry().with_resources([(base + name, load(name)) for name in names])
    return Draft7Validator(bom, registry=registry)


@pytest.fixture(scope="session")
def spdx_validator() -> Any:
    from jsonschema import Draft201909Validator

    schema = json.loads((HERE / "schemas" / "spdx-schema-2.3.json").read_text())
    return Draft201909Validator(schema)
