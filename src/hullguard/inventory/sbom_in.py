"""Read CycloneDX (1.2-1.6) and SPDX (2.2, 2.3) JSON documents into a ScanResult.

Besides our own output this understands the shapes syft and trivy write: package facts that the
standards have no field for travel in tool-specific properties (CycloneDX) or annotations and
free text (SPDX), and each tool names them differently, so each is mapped here:

  facts             hullguard                  syft                         trivy
  ecosystem         hullguard:package:ecosystem syft:package:type           aquasecurity:trivy:PkgType
  source package    hullguard:package:source_*  purl upstream= qualifier    aquasecurity:trivy:Src*
  file path         hullguard:location:N:path   syft:location:N:path        aquasecurity:trivy:FilePath
  layer             hullguard:location:N:layer  syft:location:N:layerID     aquasecurity:trivy:LayerDigest

In SPDX, trivy writes its properties as "Key: value" annotations and we write "name=value";
syft names files through "evident-by" relationships and the sourceInfo sentence.

Package URL types outside our ecosystem list (github, generic, hex, conan, ...) are kept with the
purl type as ecosystem: the inventory stays complete and detectors skip ecosystems they do not
know. ``pkg:github`` in particular names a repository (syft uses it for GitHub Actions), not an
ecosystem with its own advisories database keyed that way, so it is not folded into golang.

The input is untrusted: every failure is a HullguardError with a one-line message.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import msgspec

from hullguard import purl as purls
from hullguard.model import Artifact, HullguardError, Layer, Location, OSInfo, Package, ScanResult

MAX_BYTES = 512 * 1024 * 1024
# Nesting of CycloneDX components inside components; real SBOMs use two or three levels.
MAX_COMPONENT_DEPTH = 64
# Longest string kept from a field we use (names, versions, purls, paths, licences).
MAX_FIELD = 64 * 1024

CYCLONEDX_VERSIONS = frozenset({"1.2", "1.3", "1.4", "1.5", "1.6"})
SPDX_VERSIONS = frozenset({"SPDX-2.2", "SPDX-2.3"})

OURS = "hullguard:"
SYFT = "syft:"
TRIVY = "aquasecurity:trivy:"

_PURL_ECOSYSTEM = {
    "deb": "deb",
    "apk": "apk",
    "alpine": "apk",
    "rpm": "rpm",
    "pypi": "pypi",
    "npm": "npm",
    "maven": "maven",
    "golang": "golang",
    "go": "golang",
    "cargo": "cargo",
    "gem": "gem",
    "composer": "composer",
    "nuget": "nuget",
}
# Purl types that identify the scanned image itself, never a package in it.
_IMAGE_PURL_TYPES = frozenset({"oci", "docker"})
_SYFT_TYPES = {
    "deb": "deb",
    "apk": "apk",
    "rpm": "rpm",
    "python": "pypi",
    "npm": "npm",
    "java-archive": "maven",
    "jenkins-plugin": "maven",
    "go-module": "golang",
    "rust-crate": "cargo",
    "gem": "gem",
    "php-composer": "composer",
    "dotnet": "nuget",
}
_TRIVY_TYPES = {
    **dict.fromkeys(("debian", "ubuntu", "distroless"), "deb"),
    **dict.fromkeys(("alpine", "wolfi", "chainguard"), "apk"),
    **dict.fromkeys(
        (
            "redhat",
            "centos",
            "rocky",
            "alma",
            "fedora",
            "amazon",
            "oracle",
            "photon",
            "cbl-mariner",
            "azurelinux",
            "suse linux enterprise server",
            "opensuse.leap",
            "opensuse.tumbleweed",
        ),
        "rpm",
    ),
    **dict.fromkeys(("python-pkg", "pip", "pipenv", "poetry", "uv", "conda-pkg"), "pypi"),
    **dict.fromkeys(("node-pkg", "npm", "yarn", "pnpm", "bun"), "npm"),
    **dict.fromkeys(("jar", "pom", "gradle", "sbt"), "maven"),
    **dict.fromkeys(("gobinary", "gomod"), "golang"),
    **dict.fromkeys(("cargo", "rustbinary"), "cargo"),
    **dict.fromkeys(("gemspec", "bundler"), "gem"),
    **dict.fromkeys(("composer", "composer-vendor"), "composer"),
    **dict.fromkeys(("nuget", "dotnet-core", "packages-props"), "nuget"),
}
# os-release IDs for the distro names other tools use.
_OS_FAMILY = {"redhat": "rhel", "amazon": "amzn", "oracle": "ol", "alma": "almalinux"}
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
_DISTRO = re.compile(r"(.+?)-(\d[\w.~+-]*)")


def _fail(fmt: str, where: str, message: str) -> HullguardError:
    if len(where) > 120:
        # Deeply nested paths would swamp the one-line message; the tail locates the problem.
        where = "..." + where[-100:]
    return HullguardError(f"invalid {fmt} document: {where}: {message}")


def _type_name(value: object) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}.get(
        type(value), "number"
    )


class _Doc:
    """Typed access into decoded JSON that turns every surprise into a HullguardError."""

    def __init__(self, fmt: str) -> None:
        self.fmt = fmt

    def obj(self, parent: dict[str, Any], key: str, where: str) -> dict[str, Any]:
        value = parent.get(key)
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise _fail(self.fmt, f"{where}.{key}", f"expected an object, got {_type_name(value)}")
        return value

    def arr(self, parent: dict[str, Any], key: str, where: str) -> list[Any]:
        value = parent.get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            raise _fail(self.fmt, f"{where}.{key}", f"expected an array, got {_type_name(value)}")
        return value

    def objs(self, parent: dict[str, Any], key: str, where: str) -> Iterator[tuple[str, dict[str, Any]]]:
        for index, item in enumerate(self.arr(parent, key, where)):
            here = f"{where}.{key}[{index}]"
            if not isinstance(item, dict):
                raise _fail(self.fmt, here, f"expected an object, got {_type_name(item)}")
            yield here, item

    def str(self, parent: dict[str, Any], key: str, where: str) -> str:
        value = parent.get(key)
        if value is None:
            return ""
        if not isinstance(value, str):
            raise _fail(self.fmt, f"{where}.{key}", f"expected a string, got {_type_name(value)}")
        if len(value) > MAX_FIELD:
            raise _fail(self.fmt, f"{where}.{key}", f"string longer than {MAX_FIELD} characters")
        return value

    def strs(self, parent: dict[str, Any], key: str, where: str) -> list[str]:
        out: list[str] = []
        for index, item in enumerate(self.arr(parent, key, where)):
            if not isinstance(item, str):
                raise _fail(self.fmt, f"{where}.{key}[{index}]", f"expected a string, got {_type_name(item)}")
            out.append(item)
        return out


def read_sbom(data: bytes, name: str) -> ScanResult:
    """Parse a CycloneDX or SPDX JSON document; ``name`` becomes the artifact name."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise HullguardError("SBOM input must be bytes")
    if len(data) > MAX_BYTES:
        raise HullguardError(f"SBOM is larger than {MAX_BYTES // (1024 * 1024)} MiB")
    if bytes(data[:3]) == b"\xef\xbb\xbf":
        # Some Windows tools write a UTF-8 byte order mark, which JSON parsers reject.
        data = data[3:]
    try:
        doc = msgspec.json.decode(data)
    except msgspec.DecodeError as exc:
        raise HullguardError(f"SBOM is not valid JSON: {str(exc).splitlines()[0][:200]}") from None
    except RecursionError:
        raise HullguardError("SBOM is nested too deeply") from None
    if not isinstance(doc, dict):
        raise HullguardError(f"SBOM must be a JSON object, got {_type_name(doc)}")
    try:
        if "bomFormat" in doc or ("specVersion" in doc and "spdxVersion" not in doc):
            return _CycloneDX(doc, name).read()
        if "spdxVersion" in doc:
            return _Spdx(doc, name).read()
    except RecursionError:
        raise HullguardError("SBOM is nested too deeply") from None
    if "@context" in doc or "@graph" in doc:
        raise HullguardError("SPDX 3 (JSON-LD) documents are not supported; use SPDX 2.2/2.3 JSON")
    raise HullguardError("not a CycloneDX or SPDX JSON document")


# ---------------------------------------------------------------- shared mapping


def _parse_purl(text: str) -> dict[str, Any] | None:
    if not text:
        return None
    try:
        return purls.parse(text)
    except ValueError:
        return None


def _qualifier(parsed: dict[str, Any], key: str) -> str:
    qualifiers = parsed["qualifiers"]
    return str(qualifiers.get(key, "")) if isinstance(qualifiers, dict) else ""


def _ecosystem(parsed: dict[str, Any] | None, props: dict[str, str]) -> str:
    ours = props.get(OURS + "package:ecosystem", "")
    if ours:
        return ours
    if parsed is not None:
        ptype = str(parsed["type"])
        if ptype in _IMAGE_PURL_TYPES:
            return ""
        return _PURL_ECOSYSTEM.get(ptype, ptype)
    syft = _SYFT_TYPES.get(props.get(SYFT + "package:type", ""))
    if syft:
        return syft
    return _TRIVY_TYPES.get(props.get(TRIVY + "PkgType", "").lower(), "")


def _name(parsed: dict[str, Any] | None, declared: str, group: str, ecosystem: str) -> str:
    """Names as the advisory databases spell them: maven group:artifact, npm @scope/name, full Go
    module and Composer vendor/name paths."""
    if parsed is not None and ecosystem in ("maven", "npm", "golang", "composer"):
        namespace, pname = str(parsed["namespace"]), str(parsed["name"])
        if namespace:
            return f"{namespace}:{pname}" if ecosystem == "maven" else f"{namespace}/{pname}"
        return pname
    if ecosystem == "maven" and group and ":" not in declared:
        return f"{group}:{declared}"
    if declared:
        return declared
    return str(parsed["name"]) if parsed is not None else ""


def _version(parsed: dict[str, Any] | None, declared: str) -> str:
    if declared:
        return declared
    if parsed is None:
        return ""
    version = str(parsed["version"])
    epoch = _qualifier(parsed, "epoch")
    if parsed["type"] == "rpm" and epoch and epoch != "0" and version:
        return f"{epoch}:{version}"
    return version


def _upstream(parsed: dict[str, Any] | None) -> tuple[str, str]:
    """Source package from the purl ``upstream`` qualifier: "openssl", "openssl@1.2" (deb), or an
    SRPM file name "openssl-3.0.7-24.el9.src.rpm" (rpm)."""
    if parsed is None:
        return "", ""
    upstream = _qualifier(parsed, "upstream")
    if not upstream:
        return "", ""
    if upstream.endswith(".src.rpm"):
        parts = upstream[: -len(".src.rpm")].rsplit("-", 2)
        if len(parts) == 3:
            return parts[0], f"{parts[1]}-{parts[2]}"
        return upstream, ""
    if "@" in upstream:
        src, _, ver = upstream.partition("@")
        return src, ver
    return upstream, ""


def _source(parsed: dict[str, Any] | None, props: dict[str, str]) -> tuple[str, str]:
    if OURS + "package:source_name" in props or OURS + "package:ecosystem" in props:
        return props.get(OURS + "package:source_name", ""), props.get(OURS + "package:source_version", "")
    src = props.get(TRIVY + "SrcName", "")
    if src:
        version = props.get(TRIVY + "SrcVersion", "")
        release = props.get(TRIVY + "SrcRelease", "")
        epoch = props.get(TRIVY + "SrcEpoch", "")
        if release:
            version = f"{version}-{release}"
        if epoch and epoch != "0":
            version = f"{epoch}:{version}"
        return src, version
    src = props.get(SYFT + "metadata:source", "")
    if src:
        return src, props.get(SYFT + "metadata:sourceVersion", "")
    return _upstream(parsed)


def _locations(props: dict[str, str]) -> list[Location]:
    out: list[Location] = []
    for prefix, layer_key in ((OURS + "location:", "layer"), (SYFT + "location:", "layerID")):
        n = 0
        while f"{prefix}{n}:path" in props:
            path = props[f"{prefix}{n}:path"].lstrip("/")
            layer = props.get(f"{prefix}{n}:{layer_key}", "")
            if path:
                out.append(Location(path=path, layer=layer))
            n += 1
        if out:
            return out
    path = props.get(TRIVY + "FilePath", "").lstrip("/")
    if path:
        layer = props.get(TRIVY + "LayerDigest", "") or props.get(TRIVY + "LayerDiffID", "")
        out.append(Location(path=path, layer=layer))
    return out


def _metadata(props: dict[str, str]) -> dict[str, Any]:
    prefix = OURS + "metadata:"
    return {k[len(prefix) :]: v for k, v in props.items() if k.startswith(prefix)}


def _make_package(
    parsed: dict[str, Any] | None,
    purl_text: str,
    declared_name: str,
    declared_version: str,
    group: str,
    props: dict[str, str],
    licenses: list[str],
    extra_locations: list[Location],
) -> Package | None:
    ecosystem = _ecosystem(parsed, props)
    if not ecosystem:
        return None
    ours = OURS + "package:ecosystem" in props
    name = declared_name if ours else _name(parsed, declared_name, group, ecosystem)
    if not name:
        return None
    source_name, source_version = _source(parsed, props)
    arch = props.get(OURS + "package:arch", "")
    if not arch and parsed is not None:
        arch = _qualifier(parsed, "arch")
    return Package(
        name=name,
        version=_version(parsed, declared_version),
        ecosystem=ecosystem,
        purl=purl_text if parsed is not None else "",
        source_name=source_name,
        source_version=source_version,
        arch=arch,
        licenses=licenses,
        locations=_locations(props) or extra_locations,
        found_by=props.get(OURS + "package:found_by", "")
        if ours
        else props.get(SYFT + "package:foundBy", "") or "sbom",
        metadata=_metadata(props),
    )


def _os_from_distro(packages: list[Package]) -> OSInfo | None:
    """syft and trivy put the distro in every OS package's purl (distro=debian-12)."""
    for pkg in packages:
        parsed = _parse_purl(pkg.purl)
        if parsed is None:
            continue
        distro = _qualifier(parsed, "distro")
        if not distro:
            continue
        m = _DISTRO.fullmatch(distro)
        family, release = (m.group(1), m.group(2)) if m else (distro, "")
        if parsed["type"] == "apk" and not m and distro[:1].isdigit():
            # trivy writes only the Alpine release: distro=3.19.1
            family, release = str(parsed["namespace"]) or "alpine", distro
        return OSInfo(family=_OS_FAMILY.get(family.lower(), family.lower()), release=release)
    return None


def _os_info(name: str, version: str, description: str, props: dict[str, str]) -> OSInfo | None:
    family = name.strip().lower()
    if not family:
        return None
    id_like: list[str] = []
    for prefix in (OURS + "os:id_like:", SYFT + "distro:idLike:"):
        n = 0
        while f"{prefix}{n}" in props:
            id_like.append(props[f"{prefix}{n}"])
            n += 1
    return OSInfo(
        family=_OS_FAMILY.get(family, family),
        release=version or props.get(SYFT + "distro:versionID", ""),
        codename=props.get(OURS + "os:codename", "") or props.get(SYFT + "distro:versionCodename", ""),
        name=description or props.get(SYFT + "distro:prettyName", ""),
        id_like=id_like,
        distroless=props.get(OURS + "os:distroless", "") == "true",
    )


def _artifact(name: str, root_purl: str, root_version: str, props: dict[str, str]) -> tuple[Artifact, list[Layer]]:
    parsed = _parse_purl(root_purl)
    manifest = props.get(OURS + "image:manifest_digest", "")
    arch = props.get(OURS + "image:architecture", "")
    if parsed is not None and parsed["type"] in _IMAGE_PURL_TYPES:
        if not manifest and _DIGEST.fullmatch(str(parsed["version"])):
            manifest = str(parsed["version"])
        arch = arch or _qualifier(parsed, "arch")
    if not manifest and _DIGEST.fullmatch(root_version):
        manifest = root_version

    repo_tags = _indexed(props, OURS + "image:repo_tag:") or _multi(props, TRIVY + "RepoTag")
    repo_digests = _indexed(props, OURS + "image:repo_digest:") or _multi(props, TRIVY + "RepoDigest")
    layers: list[Layer] = []
    n = 0
    while f"{OURS}layer:{n}:digest" in props:
        layers.append(
            Layer(
                digest=props[f"{OURS}layer:{n}:digest"],
                diff_id=props.get(f"{OURS}layer:{n}:diff_id", ""),
                created_by=props.get(f"{OURS}layer:{n}:created_by", ""),
            )
        )
        n += 1
    if not layers:
        layers = [Layer(digest=d, diff_id=d) for d in _multi(props, TRIVY + "DiffID")]
    artifact = Artifact(
        name=name,
        type="sbom",
        manifest_digest=manifest,
        config_digest=props.get(OURS + "image:config_digest", "") or props.get(TRIVY + "ImageID", ""),
        repo_tags=repo_tags,
        repo_digests=repo_digests,
        os=props.get(OURS + "image:os", ""),
        architecture=arch,
        variant=props.get(OURS + "image:variant", ""),
        created=props.get(OURS + "image:created", ""),
    )
    return artifact, layers


def _indexed(props: dict[str, str], prefix: str) -> list[str]:
    out: list[str] = []
    while f"{prefix}{len(out)}" in props:
        out.append(props[f"{prefix}{len(out)}"])
    return out


def _multi(props: dict[str, str], key: str) -> list[str]:
    # Repeated property names are folded into "\x00"-joined values by the collectors below.
    value = props.get(key, "")
    return [v for v in value.split("\x00") if v] if value else []


def _add_prop(props: dict[str, str], key: str, value: str) -> None:
    if key in props:
        if key.startswith(TRIVY):
            props[key] += "\x00" + value
        return
    props[key] = value


def _resolve_dependencies(packages: list[Package], edges: dict[int, set[int]]) -> None:
    ids = [pkg.id for pkg in packages]
    for index, targets in edges.items():
        packages[index].dependencies = sorted({ids[t] for t in targets if t != index})


# ---------------------------------------------------------------- CycloneDX


class _CycloneDX:
    def __init__(self, doc: dict[str, Any], name: str) -> None:
        self.doc = doc
        self.name = name
        self.d = _Doc("CycloneDX")
        self.warnings: list[str] = []

    def props(self, comp: dict[str, Any], where: str) -> dict[str, str]:
        out: dict[str, str] = {}
        for here, prop in self.d.objs(comp, "properties", where):
            key = self.d.str(prop, "name", here)
            if key:
                _add_prop(out, key, self.d.str(prop, "value", here))
        return out

    def licenses(self, comp: dict[str, Any], where: str) -> list[str]:
        out: list[str] = []
        for here, choice in self.d.objs(comp, "licenses", where):
            expr = self.d.str(choice, "expression", here)
            if expr:
                out.append(expr)
                continue
            lic = self.d.obj(choice, "license", here)
            text = self.d.str(lic, "id", here + ".license") or self.d.str(lic, "name", here + ".license")
            if text:
                out.append(text)
        return out

    def walk(self, parent: dict[str, Any], where: str, depth: int) -> Iterator[tuple[str, dict[str, Any]]]:
        if depth > MAX_COMPONENT_DEPTH:
            raise _fail("CycloneDX", where, f"components nested more than {MAX_COMPONENT_DEPTH} levels")
        for here, comp in self.d.objs(parent, "components", where):
            yield here, comp
            yield from self.walk(comp, here, depth + 1)

    def read(self) -> ScanResult:
        d, doc = self.d, self.doc
        if doc.get("bomFormat") != "CycloneDX":
            raise HullguardError('not a CycloneDX document: bomFormat is not "CycloneDX"')
        spec = doc.get("specVersion")
        if not isinstance(spec, str) or spec not in CYCLONEDX_VERSIONS:
            raise HullguardError(f"unsupported CycloneDX spec version {str(spec)[:20]!r} (1.2 to 1.6 are)")
        metadata = d.obj(doc, "metadata", "$")
        root = d.obj(metadata, "component", "$.metadata")
        root_props = self.props(root, "$.metadata.component")
        artifact, layers = _artifact(
            self.name,
            d.str(root, "purl", "$.metadata.component"),
            d.str(root, "version", "$.metadata.component"),
            root_props,
        )
        root_name = d.str(root, "name", "$.metadata.component")
        if d.str(root, "type", "$.metadata.component") == "container" and not artifact.repo_tags:
            # syft names the image by what the user typed ("alpine:3.19"): keep it when it is a tag.
            last = root_name.rsplit("/", 1)[-1]
            if ":" in last and "@" not in root_name and " " not in root_name:
                artifact.repo_tags = [root_name]

        packages: list[Package] = []
        index_by_ref: dict[str, int] = {}
        os_info: OSInfo | None = None
        for here, comp in self.walk(doc, "$", 0):
            ctype = d.str(comp, "type", here)
            props = self.props(comp, here)
            cname = d.str(comp, "name", here)
            version = d.str(comp, "version", here)
            ref = d.str(comp, "bom-ref", here)
            purl_text = d.str(comp, "purl", here)
            licenses = self.licenses(comp, here)
            if ctype == "operating-system":
                if os_info is None:
                    os_info = _os_info(cname, version, d.str(comp, "description", here), props)
                continue
            parsed = _parse_purl(purl_text)
            if purl_text and parsed is None:
                self.warnings.append(f"{here}: ignoring malformed package URL {purl_text[:200]!r}")
            if parsed is None and ctype in ("container", "file", "operating-system", "device", "firmware"):
                continue
            pkg = _make_package(parsed, purl_text, cname, version, d.str(comp, "group", here), props, licenses, [])
            if pkg is None:
                if parsed is None or parsed["type"] not in _IMAGE_PURL_TYPES:
                    self.warnings.append(f"{here}: skipped {cname[:100]!r}: no package URL or known type")
                continue
            if ref:
                index_by_ref.setdefault(ref, len(packages))
            packages.append(pkg)

        edges: dict[int, set[int]] = {}
        for here, dep in d.objs(doc, "dependencies", "$"):
            source = index_by_ref.get(d.str(dep, "ref", here))
            targets = d.strs(dep, "dependsOn", here)
            if source is None:
                continue
            for target in targets:
                if target in index_by_ref:
                    edges.setdefault(source, set()).add(index_by_ref[target])
        _resolve_dependencies(packages, edges)

        return ScanResult(
            artifact=artifact,
            os=os_info or _os_from_distro(packages),
            layers=layers,
            packages=packages,
            warnings=self.warnings,
            generated_at=d.str(metadata, "timestamp", "$.metadata"),
        )


# ---------------------------------------------------------------- SPDX

_TRIVY_ANNOTATION = re.compile(r"([A-Za-z]+): (.*)", re.S)
_SYFT_SOURCE = re.compile(r"acquired package info from [^:]*: (/.*)", re.S)
_NONE = frozenset({"NOASSERTION", "NONE", ""})


class _Spdx:
    def __init__(self, doc: dict[str, Any], name: str) -> None:
        self.doc = doc
        self.name = name
        self.d = _Doc("SPDX")
        self.warnings: list[str] = []

    def annotations(self, pkg: dict[str, Any], where: str) -> dict[str, str]:
        out: dict[str, str] = {}
        for here, note in self.d.objs(pkg, "annotations", where):
            comment = self.d.str(note, "comment", here)
            if comment.startswith(OURS) and "=" in comment:
                key, _, value = comment.partition("=")
                _add_prop(out, key, value)
                continue
            m = _TRIVY_ANNOTATION.fullmatch(comment)
            if m:
                _add_prop(out, TRIVY + m.group(1), m.group(2))
        return out

    def purl(self, pkg: dict[str, Any], where: str) -> str:
        for here, ref in self.d.objs(pkg, "externalRefs", where):
            if self.d.str(ref, "referenceType", here) == "purl":
                return self.d.str(ref, "referenceLocator", here)
        return ""

    def read(self) -> ScanResult:
        d, doc = self.d, self.doc
        version = doc.get("spdxVersion")
        if not isinstance(version, str) or version not in SPDX_VERSIONS:
            raise HullguardError(f"unsupported SPDX version {str(version)[:20]!r} (SPDX-2.2 and SPDX-2.3 are)")
        extracted: dict[str, str] = {}
        for here, info in d.objs(doc, "hasExtractedLicensingInfos", "$"):
            lic_id = d.str(info, "licenseId", here)
            name = d.str(info, "name", here)
            if not name or name == "NOASSERTION":
                # syft leaves out the name and puts the original licence string in extractedText.
                text = d.str(info, "extractedText", here).strip()
                name = text if text and len(text) <= 200 and "\n" not in text else ""
            if lic_id and name:
                extracted[lic_id] = name

        files: dict[str, str] = {}
        for here, entry in d.objs(doc, "files", "$"):
            files[d.str(entry, "SPDXID", here)] = d.str(entry, "fileName", here).lstrip("/")

        relationships: list[tuple[str, str, str, str]] = []
        for here, rel in d.objs(doc, "relationships", "$"):
            relationships.append(
                (
                    d.str(rel, "spdxElementId", here),
                    d.str(rel, "relationshipType", here),
                    d.str(rel, "relatedSpdxElement", here),
                    d.str(rel, "comment", here),
                )
            )
        described = set(d.strs(doc, "documentDescribes", "$"))
        described.update(right for left, kind, right, _ in relationships if kind == "DESCRIBES")
        evidence: dict[str, list[Location]] = {}
        for left, kind, right, comment in relationships:
            if kind == "OTHER" and comment.startswith("evident-by") and right in files and files[right]:
                evidence.setdefault(left, []).append(Location(path=files[right]))

        artifact: Artifact | None = None
        layers: list[Layer] = []
        os_info: OSInfo | None = None
        packages: list[Package] = []
        index_by_id: dict[str, int] = {}
        for here, entry in d.objs(doc, "packages", "$"):
            spdx_id = d.str(entry, "SPDXID", here)
            purpose = d.str(entry, "primaryPackagePurpose", here)
            name = d.str(entry, "name", here)
            version = d.str(entry, "versionInfo", here)
            props = self.annotations(entry, here)
            purl_text = self.purl(entry, here)
            parsed = _parse_purl(purl_text)
            if purl_text and parsed is None:
                self.warnings.append(f"{here}: ignoring malformed package URL {purl_text[:200]!r}")
            is_image = parsed is not None and parsed["type"] in _IMAGE_PURL_TYPES
            root_like = purpose in ("CONTAINER", "FILE") or (not purpose and parsed is None)
            if is_image or (spdx_id in described and root_like):
                if artifact is None:
                    artifact, layers = _artifact(self.name, purl_text, version, props)
                continue
            if purpose == "OPERATING-SYSTEM":
                if os_info is None:
                    os_info = _os_info(name, version, d.str(entry, "description", here), props)
                continue
            licenses = _indexed(props, OURS + "package:license:") or self.licenses(entry, here, extracted)
            locations = evidence.get(spdx_id) or self.source_locations(d.str(entry, "sourceInfo", here))
            pkg = _make_package(parsed, purl_text, name, version, "", props, licenses, locations)
            if pkg is None:
                self.warnings.append(f"{here}: skipped {name[:100]!r}: no package URL or known type")
                continue
            index_by_id.setdefault(spdx_id, len(packages))
            packages.append(pkg)

        edges: dict[int, set[int]] = {}
        for left, kind, right, _ in relationships:
            if kind == "DEPENDS_ON":
                source, target = left, right
            elif kind in ("DEPENDENCY_OF", "RUNTIME_DEPENDENCY_OF"):
                source, target = right, left
            else:
                continue
            if source in index_by_id and target in index_by_id:
                edges.setdefault(index_by_id[source], set()).add(index_by_id[target])
        _resolve_dependencies(packages, edges)

        creation = d.obj(doc, "creationInfo", "$")
        return ScanResult(
            artifact=artifact or Artifact(name=self.name, type="sbom"),
            os=os_info or _os_from_distro(packages),
            layers=layers,
            packages=packages,
            warnings=self.warnings,
            generated_at=d.str(creation, "created", "$.creationInfo"),
        )

    def licenses(self, entry: dict[str, Any], where: str, extracted: dict[str, str]) -> list[str]:
        for key in ("licenseDeclared", "licenseConcluded"):
            text = self.d.str(entry, key, where).strip()
            if text in _NONE:
                continue
            # A lone LicenseRef stands for a licence name we (or another tool) could not map.
            return [extracted.get(text, text)]
        return []

    @staticmethod
    def source_locations(text: str) -> list[Location]:
        """syft: "acquired package info from installed python package manifest file: /a, /b"."""
        m = _SYFT_SOURCE.fullmatch(text)
        if not m:
            return []
        return [Location(path=p.strip().lstrip("/")) for p in m.group(1).split(", ") if p.strip("/ ")]
