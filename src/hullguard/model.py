"""The plain data that flows through hullguard's pipeline.

Every stage (sources, analyzers, detectors, reporters) speaks in these structs and nothing else,
so a reporter is a pure function of a ScanResult and the layer cache can store analyzer output
as msgpack without custom encoders.
"""

from __future__ import annotations

import enum
from typing import Any

import msgspec


class Severity(enum.IntEnum):
    UNKNOWN = 0
    LOW = 1
    MEDIUM = 2
    HIGH = 3
    CRITICAL = 4

    @classmethod
    def parse(cls, text: str) -> Severity:
        try:
            return cls[text.strip().upper()]
        except KeyError:
            return cls.UNKNOWN


class Location(msgspec.Struct, frozen=True, omit_defaults=True):
    """Where a fact was found: a path inside the artifact (no leading slash) and the layer
    (by digest) that introduced it. ``layer`` is empty for filesystem and SBOM sources."""

    path: str
    layer: str = ""
    line: int = 0


class Package(msgspec.Struct, omit_defaults=True, kw_only=True):
    name: str
    version: str
    ecosystem: str  # deb, apk, rpm, pypi, npm, maven, golang, cargo, gem, composer, nuget
    purl: str = ""
    # Distro packages are matched through their source package (Debian "Source:", apk origin, SRPM).
    source_name: str = ""
    source_version: str = ""
    arch: str = ""
    licenses: list[str] = []
    locations: list[Location] = []
    # Ids (see package_id) of packages this one depends on, where the format says so.
    dependencies: list[str] = []
    found_by: str = ""
    # Format-specific extras (rpm epoch/release/modularity label, dpkg maintainer, jar digests...).
    metadata: dict[str, Any] = {}

    @property
    def id(self) -> str:
        loc = self.locations[0].path if self.locations else ""
        return f"{self.ecosystem}:{self.name}@{self.version}#{loc}"


class OSInfo(msgspec.Struct, omit_defaults=True, kw_only=True):
    family: str  # os-release ID: debian, ubuntu, alpine, rhel, centos, rocky, almalinux, fedora, ...
    release: str = ""  # VERSION_ID, or the version read from a *-release file
    codename: str = ""
    name: str = ""  # PRETTY_NAME
    id_like: list[str] = []
    distroless: bool = False
    cpe: str = ""


class Finding(msgspec.Struct, omit_defaults=True, kw_only=True):
    kind: str  # vulnerability | secret | misconfiguration
    rule_id: str
    severity: Severity = Severity.UNKNOWN
    title: str = ""
    target: str = ""  # package id, file path or resource name
    location: Location | None = None
    fix: str = ""
    evidence: str = ""  # always masked for secrets
    details: dict[str, Any] = {}


class PackageHint(msgspec.Struct, omit_defaults=True, kw_only=True):
    """Facts about a package that live in a file of their own (dpkg info/NAME.list,
    usr/share/doc/NAME/copyright, apk/rpm file lists). The merge step joins them onto the package
    with the same ecosystem and name (the binary package name for distro packages)."""

    ecosystem: str
    package: str
    files: list[str] = []
    licenses: list[str] = []


# What an analyzer may emit for one file.
Fact = Package | OSInfo | Finding | PackageHint


class FileFacts(msgspec.Struct, omit_defaults=True):
    """Facts from one file, grouped by kind so that msgpack/JSON round-trips need no type tags."""

    packages: list[Package] = []
    os: list[OSInfo] = []
    findings: list[Finding] = []
    hints: list[PackageHint] = []

    @classmethod
    def of(cls, facts: list[Fact]) -> FileFacts:
        out = cls(packages=[], os=[], findings=[], hints=[])
        for fact in facts:
            if isinstance(fact, Package):
                out.packages.append(fact)
            elif isinstance(fact, OSInfo):
                out.os.append(fact)
            elif isinstance(fact, Finding):
                out.findings.append(fact)
            elif isinstance(fact, PackageHint):
                out.hints.append(fact)
        return out

    def __bool__(self) -> bool:
        return bool(self.packages or self.os or self.findings or self.hints)


class Layer(msgspec.Struct, omit_defaults=True, kw_only=True):
    digest: str  # digest of the blob as stored (compressed for registries and OCI layouts)
    diff_id: str = ""  # digest of the uncompressed tar, from the image config
    media_type: str = ""
    size: int = 0
    created_by: str = ""  # the history entry that produced this layer
    empty: bool = False


class Artifact(msgspec.Struct, omit_defaults=True, kw_only=True):
    name: str  # what the user typed
    type: str  # docker-archive, oci-dir, oci-archive, registry, filesystem, sbom
    manifest_digest: str = ""
    config_digest: str = ""  # the image id
    repo_tags: list[str] = []
    repo_digests: list[str] = []
    os: str = ""
    architecture: str = ""
    variant: str = ""
    created: str = ""
    config: dict[str, Any] = {}  # the image config's "config" object (Env, User, Labels, ...)
    history: list[dict[str, Any]] = []


class ScanResult(msgspec.Struct, omit_defaults=True, kw_only=True):
    schema_version: int = 1
    artifact: Artifact
    os: OSInfo | None = None
    layers: list[Layer] = []
    packages: list[Package] = []
    findings: list[Finding] = []
    warnings: list[str] = []
    timings: dict[str, float] = {}
    generated_at: str = ""

    def layer_by_digest(self) -> dict[str, Layer]:
        return {layer.digest: layer for layer in self.layers}


class HullguardError(Exception):
    """Bad input or bad usage: reported as one line on stderr, exit code 2."""

    exit_code = 2


class InternalError(HullguardError):
    exit_code = 3
