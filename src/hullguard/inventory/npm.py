"""npm packages: installed ``node_modules`` trees and the lockfiles of npm, yarn and pnpm.

An installed package is the ``package.json`` directly inside a ``node_modules/<name>/`` or
``node_modules/@scope/<name>/`` folder, at any depth (nested trees, pnpm's ``.pnpm`` store, global
installs). package.json files deeper inside a package (``dist/esm/package.json``) are not
packages. A project's own ``package.json`` (outside ``node_modules``) is reported, as syft and
trivy report it, but flagged ``metadata["local"]``: it is the application itself, so its name must
not be matched against registry advisories.
A ``"private": true`` package inside ``node_modules`` is still installed code, so it is kept,
flagged ``metadata["private"]`` because its name need not refer to anything in the registry.

Lockfiles inside ``node_modules`` (npm's hidden ``.package-lock.json``, lockfiles that packages
ship) are skipped: they describe trees that the installed packages already report, or trees
that were never installed. Local sources (workspaces, ``link:``, ``file:`` folders, the root
project) are skipped too; they are the project's own code, not registry releases.

Dependency edges are names in ``metadata["requires"]``; the lead resolves them to packages.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import unquote

import msgspec

from hullguard import purl
from hullguard.inventory._yaml import YamlError, load_yaml
from hullguard.inventory.base import Analyzer, AnalyzerError, FileInfo
from hullguard.model import Fact, Package

ECOSYSTEM = "npm"

_NODE_MODULES = "node_modules/"
_LOCKFILES = frozenset({"package-lock.json", "npm-shrinkwrap.json", "yarn.lock", "pnpm-lock.yaml"})
_WANTED_SUFFIXES = ("package.json", "package-lock.json", "npm-shrinkwrap.json", "yarn.lock", "pnpm-lock.yaml")
_BOM = b"\xef\xbb\xbf"
# Berry protocols whose packages live in the project itself.
_LOCAL_PROTOCOLS = frozenset({"workspace", "link", "portal", "file", "exec"})
# A yarn v1 token: a double-quoted string with JSON-style escapes, or a bare word.
_YARN_TOKEN = re.compile(r'"((?:[^"\\]|\\.)*)"|([^\s"]+)')
_YARN_ESCAPE = re.compile(r"\\(.)")


class _Manifest(msgspec.Struct):
    """The fields of package.json that matter; msgspec skips the rest (readme...) unparsed.
    Typed ``Any`` so that a wrong type is checked by hand instead of failing the whole file."""

    name: Any = None
    version: Any = None
    license: Any = None
    licenses: Any = None
    private: Any = None
    dependencies: Any = None
    optionalDependencies: Any = None


class _Collector:
    """De-duplicates packages of one file by (name, version): a lockfile lists the same release
    once per place it is installed. A package is dev-only when every occurrence is."""

    def __init__(self) -> None:
        self._by_key: dict[tuple[str, str], Package] = {}

    def add(
        self,
        name: Any,
        version: Any,
        *,
        requires: Iterable[str] = (),
        dev: bool = False,
        licenses: list[str] | None = None,
        private: bool = False,
    ) -> None:
        if not isinstance(name, str) or not isinstance(version, str):
            return
        name = name.strip()
        version = version.strip()
        if not _plausible_name(name) or not _plausible_version(version):
            return
        reqs = _unique(requires)
        key = (name, version)
        pkg = self._by_key.get(key)
        if pkg is None:
            metadata: dict[str, Any] = {}
            if reqs:
                metadata["requires"] = reqs
            if dev:
                metadata["dev"] = True
            if private:
                metadata["private"] = True
            self._by_key[key] = Package(
                name=name,
                version=version,
                ecosystem=ECOSYSTEM,
                purl=package_url(name, version),
                licenses=licenses or [],
                found_by=NpmAnalyzer.name,
                metadata=metadata,
            )
            return
        if reqs:
            pkg.metadata["requires"] = _unique([*pkg.metadata.get("requires", []), *reqs])
        if not dev:
            pkg.metadata.pop("dev", None)

    def packages(self) -> list[Fact]:
        return list(self._by_key.values())


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(i for i in items if isinstance(i, str) and i))


def _plausible_name(name: str) -> bool:
    return bool(name) and not any(c.isspace() for c in name) and not name.startswith((".", "/"))


def _plausible_version(version: str) -> bool:
    # Git URLs, tarball URLs and paths stand where a version should be in some lockfiles; they
    # name no release that an advisory could be matched against.
    return bool(version) and ":" not in version and "/" not in version and " " not in version


def package_url(name: str, version: str) -> str:
    """``pkg:npm/%40scope/name@version``: the scope is the purl namespace."""
    if name.startswith("@") and "/" in name:
        scope, _, bare = name.partition("/")
        return purl.build(ECOSYSTEM, bare, version, namespace=scope)
    return purl.build(ECOSYSTEM, name, version)


def _dependency_names(value: Any) -> list[str]:
    """Names in a name -> range mapping, seeing through aliases (``"old": "npm:real@^1"``, or
    pnpm's resolved ``"old": "real@1.0.0"``) so that they name the package that is installed."""
    if not isinstance(value, dict):
        return []
    names: list[str] = []
    for name, spec in value.items():
        if not isinstance(name, str):
            continue
        if isinstance(spec, str):
            spec = spec.split("(", 1)[0].removeprefix("/").removeprefix("npm:")
            real, version = _split_spec(spec)
            if version and real and not real.startswith(".") and ":" not in real:
                name = real
        names.append(name)
    return names


def _requires(entry: dict[str, Any], *fields: str) -> list[str]:
    names: list[str] = []
    for field in fields:
        names.extend(_dependency_names(entry.get(field)))
    return names


def _split_spec(spec: str) -> tuple[str, str]:
    """``@scope/name@range`` -> (``@scope/name``, ``range``); the first '@' may start a scope."""
    at = spec.find("@", 1)
    if at < 0:
        return spec, ""
    return spec[:at], spec[at + 1 :]


def _decode_json(data: bytes) -> Any:
    if data.startswith(_BOM):
        data = data[len(_BOM) :]
    try:
        return msgspec.json.decode(data)
    except msgspec.DecodeError as exc:
        raise AnalyzerError(f"invalid JSON: {exc}") from exc


# --- installed package.json --------------------------------------------------------------------


def _manifest_licenses(manifest: _Manifest) -> list[str]:
    found: list[str] = []
    for value in (manifest.license, manifest.licenses):
        # "MIT", {"type": "MIT", "url": ...}, or the legacy [{"type": ...}, "MIT", ...].
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, dict):
                item = item.get("type")
            if isinstance(item, str) and item.strip():
                found.append(item.strip())
    return _unique(found)


def _analyze_manifest(data: bytes) -> list[Fact]:
    if data.startswith(_BOM):
        data = data[len(_BOM) :]
    try:
        manifest = msgspec.json.decode(data, type=_Manifest)
    except msgspec.DecodeError as exc:
        raise AnalyzerError(f"invalid package.json: {exc}") from exc
    out = _Collector()
    out.add(
        manifest.name,
        manifest.version,
        requires=[*_dependency_names(manifest.dependencies), *_dependency_names(manifest.optionalDependencies)],
        licenses=_manifest_licenses(manifest),
        private=manifest.private is True,
    )
    return out.packages()


# --- package-lock.json / npm-shrinkwrap.json ---------------------------------------------------


def _lock_v1(dependencies: dict[str, Any], out: _Collector) -> None:
    stack = [dependencies]
    while stack:
        level = stack.pop()
        for name, entry in level.items():
            if not isinstance(name, str) or not isinstance(entry, dict):
                continue
            version = entry.get("version")
            if isinstance(version, str) and version.startswith("npm:"):
                # An alias: the entry is installed under `name` but is the release named here.
                name, version = _split_spec(version[4:])
            out.add(name, version, requires=_requires(entry, "requires"), dev=entry.get("dev") is True)
            nested = entry.get("dependencies")
            if isinstance(nested, dict):
                stack.append(nested)


def _lock_packages(packages: dict[str, Any], out: _Collector) -> None:
    for path, entry in packages.items():
        if not isinstance(path, str) or not isinstance(entry, dict):
            continue
        # "" is the root project and paths outside node_modules are workspace folders; link
        # entries point at one of those.
        at = path.rfind(_NODE_MODULES)
        if at < 0 or entry.get("link") is True:
            continue
        name = entry.get("name")  # present for aliases, where the folder is the alias
        if not isinstance(name, str):
            name = path[at + len(_NODE_MODULES) :]
        out.add(
            name,
            entry.get("version"),
            requires=_requires(entry, "dependencies", "optionalDependencies"),
            dev=entry.get("dev") is True,
        )


def _analyze_package_lock(data: bytes) -> list[Fact]:
    doc = _decode_json(data)
    if not isinstance(doc, dict):
        raise AnalyzerError("package-lock is not a JSON object")
    out = _Collector()
    packages = doc.get("packages")
    dependencies = doc.get("dependencies")
    # Version 2 carries both sections; "packages" is the complete one.
    if isinstance(packages, dict):
        _lock_packages(packages, out)
    elif isinstance(dependencies, dict):
        _lock_v1(dependencies, out)
    return out.packages()


# --- yarn.lock ---------------------------------------------------------------------------------


def _yarn_tokens(text: str) -> list[str]:
    tokens: list[str] = []
    for match in _YARN_TOKEN.finditer(text):
        quoted, bare = match.groups()
        tokens.append(_YARN_ESCAPE.sub(r"\1", quoted) if quoted is not None else bare)
    return tokens


def parse_yarn_v1(text: str) -> list[tuple[list[str], dict[str, Any]]]:
    """Entries of a yarn v1 lockfile: (specifiers, fields), where a field is a string or, for
    ``dependencies:`` style sections, a dict of name -> range.

    The format is yarn's own: an unindented line lists comma-separated specifiers and ends
    with ':', two-space lines are ``key value`` fields or open a section, four-space lines
    are that section's ``name range`` pairs.
    """
    entries: list[tuple[list[str], dict[str, Any]]] = []
    fields: dict[str, Any] | None = None
    section: dict[str, str] | None = None
    for raw in text.splitlines():
        line = raw.rstrip()
        stripped = line.lstrip(" ")
        if not stripped or stripped.startswith("#"):
            continue
        indent = len(line) - len(stripped)
        if indent == 0:
            section = None
            if not stripped.endswith(":"):
                fields = None
                continue
            specs = [spec for part in stripped[:-1].split(",") for spec in _yarn_tokens(part.strip())[:1]]
            fields = {}
            entries.append((specs, fields))
        elif fields is None:
            continue
        elif indent <= 2:
            if stripped.endswith(":"):
                section = {}
                key = _yarn_tokens(stripped[:-1])
                if key:
                    fields[key[0]] = section
                continue
            section = None
            tokens = _yarn_tokens(stripped)
            if len(tokens) >= 2:
                fields[tokens[0]] = tokens[1]
        elif section is not None:
            tokens = _yarn_tokens(stripped)
            if len(tokens) >= 2:
                section[tokens[0]] = tokens[1]
    return entries


def _yarn_real_name(spec: str) -> tuple[str, str]:
    """(package name, range) of a specifier, seeing through ``alias@npm:real@range``."""
    name, rng = _split_spec(spec)
    if rng.startswith("npm:") and "@" in rng[5:]:
        return _split_spec(rng[4:])
    return name, rng


def _analyze_yarn_v1(text: str) -> list[Fact]:
    out = _Collector()
    for specs, fields in parse_yarn_v1(text):
        if not specs:
            continue
        resolved = [_yarn_real_name(spec) for spec in specs]
        if all(rng.startswith(("link:", "file:", "portal:")) for _, rng in resolved):
            continue
        section_names = [k for k in ("dependencies", "optionalDependencies") if isinstance(fields.get(k), dict)]
        out.add(resolved[0][0], fields.get("version"), requires=_requires(fields, *section_names))
    return out.packages()


def _berry_resolution(resolution: str, entry_version: Any) -> tuple[str, Any] | None:
    """(name, version) of a berry ``resolution``, or None for the project's own packages."""
    name, reference = _split_spec(resolution)
    protocol, sep, rest = reference.partition(":")
    if not sep:
        return name, entry_version
    if protocol == "npm":
        # "1.2.3", or "1.2.3::__archiveUrl=..." when the tarball came from elsewhere.
        return name, rest.split("::", 1)[0]
    if protocol == "patch":
        # patch:name@npm%3A1.2.3#./patches/x.patch::... : the release being patched.
        inner = unquote(rest.split("#", 1)[0].split("::", 1)[0])
        return _berry_resolution(inner, entry_version) if inner != resolution else None
    if protocol in _LOCAL_PROTOCOLS:
        return None
    return name, entry_version


def _analyze_yarn_berry(data: bytes) -> list[Fact]:
    doc = _load_lock_yaml(data)
    out = _Collector()
    for key, entry in doc.items():
        if key == "__metadata" or not isinstance(key, str) or not isinstance(entry, dict):
            continue
        if entry.get("linkType") == "soft":
            continue
        resolution = entry.get("resolution")
        if isinstance(resolution, str):
            found = _berry_resolution(resolution, entry.get("version"))
        else:
            # Without a resolution the key's first descriptor still names the package, but its
            # reference is a range, so only the entry's own version can be trusted.
            name, reference = _split_spec(key.split(",", 1)[0].strip())
            local = reference.partition(":")[0] in _LOCAL_PROTOCOLS
            found = None if local else (name, entry.get("version"))
        if found is None:
            continue
        out.add(*found, requires=_requires(entry, "dependencies", "optionalDependencies"))
    return out.packages()


def _analyze_yarn(data: bytes) -> list[Fact]:
    if data.startswith(_BOM):
        data = data[len(_BOM) :]
    if data.startswith(b"__metadata:") or b"\n__metadata:" in data:
        return _analyze_yarn_berry(data)
    return _analyze_yarn_v1(data.decode("utf-8", errors="replace"))


# --- pnpm-lock.yaml ----------------------------------------------------------------------------


def _load_lock_yaml(data: bytes) -> dict[str, Any]:
    try:
        doc = load_yaml(data, typed_scalars=False)
    except YamlError as exc:
        raise AnalyzerError(str(exc)) from exc
    if not isinstance(doc, dict):
        raise AnalyzerError("lockfile is not a YAML mapping")
    return doc


def _lockfile_major(value: Any) -> int:
    text = str(value) if isinstance(value, str | int | float) else ""
    head = text.strip().strip("'\"").split(".", 1)[0]
    return int(head) if head.isdigit() and len(head) < 4 else 0


def parse_pnpm_key(key: str, major: int) -> tuple[str, str]:
    """(name, version) of a pnpm ``packages``/``snapshots`` key, peer suffixes dropped.

    5.x: ``/name/1.2.3`` or ``/@scope/name/1.2.3_peer@1.0.0``; 6.x: ``/name@1.2.3(peer@1.0.0)``;
    9.x: the same without the leading slash.
    """
    key = key.split("(", 1)[0]
    if key.startswith("/"):
        key = key[1:]
    if major and major < 6:
        name, _, version = key.rpartition("/")
        return name, version.split("_", 1)[0]
    return _split_spec(key)


def _snapshot_key(name: str, version: str) -> str:
    # "18.2.0(react@18.2.0)" is a version of `name`; "ms@0.7.1" names an alias's target.
    head = version.split("(", 1)[0]
    return version if "@" in head[1:] else f"{name}@{version}"


def _snapshot_reach(roots: list[str], snapshots: dict[str, Any]) -> set[str]:
    seen: set[str] = set()
    stack = list(roots)
    while stack:
        key = stack.pop()
        if key in seen:
            continue
        seen.add(key)
        entry = snapshots.get(key)
        if not isinstance(entry, dict):
            continue
        for field in ("dependencies", "optionalDependencies"):
            deps = entry.get(field)
            if isinstance(deps, dict):
                stack.extend(_snapshot_key(n, v) for n, v in deps.items() if isinstance(n, str) and isinstance(v, str))
    return seen


def _pnpm_dev_only(doc: dict[str, Any], snapshots: dict[str, Any], major: int) -> set[tuple[str, str]]:
    """Releases that 9.x lockfiles reach only through some importer's devDependencies.

    9.x dropped the per-package ``dev`` flag, so it is recomputed from the importers. A release
    is dev-only when none of its peer variants is reachable from production dependencies.
    """
    importers = doc.get("importers")
    if not isinstance(importers, dict):
        return set()
    roots: dict[bool, list[str]] = {False: [], True: []}
    for importer in importers.values():
        if not isinstance(importer, dict):
            continue
        for field, dev in (("dependencies", False), ("optionalDependencies", False), ("devDependencies", True)):
            deps = importer.get(field)
            if not isinstance(deps, dict):
                continue
            for name, spec in deps.items():
                version = spec.get("version") if isinstance(spec, dict) else spec
                if isinstance(name, str) and isinstance(version, str):
                    roots[dev].append(_snapshot_key(name, version))
    prod = {parse_pnpm_key(k, major) for k in _snapshot_reach(roots[False], snapshots)}
    dev = {parse_pnpm_key(k, major) for k in _snapshot_reach(roots[True], snapshots)}
    return dev - prod


def _analyze_pnpm(data: bytes) -> list[Fact]:
    doc = _load_lock_yaml(data)
    major = _lockfile_major(doc.get("lockfileVersion"))
    out = _Collector()
    packages = doc.get("packages")
    if not isinstance(packages, dict):
        return []
    # 9.x moved the dependency graph to "snapshots", one entry per peer-dependency variant.
    snapshots = doc.get("snapshots")
    snapshots = snapshots if isinstance(snapshots, dict) else {}
    dev_only = _pnpm_dev_only(doc, snapshots, major) if snapshots else set()

    def add(key: str, entry: dict[str, Any], requires: list[str], dev: bool) -> None:
        name, version = parse_pnpm_key(key, major)
        # Tarball and git dependencies spell the release out; their keys hold a URL.
        if isinstance(entry.get("name"), str):
            name = entry["name"]
        if isinstance(entry.get("version"), str):
            version = entry["version"]
        out.add(name, version, requires=requires, dev=dev)

    known: dict[tuple[str, str], tuple[str, dict[str, Any]]] = {}
    for key, entry in packages.items():
        if not isinstance(key, str):
            continue
        entry = entry if isinstance(entry, dict) else {}
        # Before 9.x registry keys start with '/'; other keys are URLs or paths and only the
        # entry's own name/version fields identify the package.
        if 0 < major < 9 and not key.startswith("/") and not isinstance(entry.get("name"), str):
            continue
        parsed = parse_pnpm_key(key, major)
        known[parsed] = (key, entry)
        dev = entry.get("dev") is True or parsed in dev_only
        add(key, entry, _requires(entry, "dependencies", "optionalDependencies"), dev)
    for key, snapshot in snapshots.items():
        if not isinstance(key, str) or not isinstance(snapshot, dict):
            continue
        parsed = parse_pnpm_key(key, major)
        if parsed in known:
            package_key, entry = known[parsed]
            add(package_key, entry, _requires(snapshot, "dependencies", "optionalDependencies"), parsed in dev_only)
    return out.packages()


# --- the analyzer ------------------------------------------------------------------------------


def _is_installed_manifest(path: str) -> bool:
    """``.../node_modules/<name>/package.json`` or ``.../node_modules/@scope/<name>/package.json``."""
    at = path.rfind(_NODE_MODULES)
    if at < 0 or (at and path[at - 1] != "/"):
        return False
    rest = path[at + len(_NODE_MODULES) :]
    slashes = rest.count("/")
    return slashes == 1 or (slashes == 2 and rest.startswith("@"))


class NpmAnalyzer(Analyzer):
    name = "npm"
    version = 2

    def wants(self, info: FileInfo) -> bool:
        path = info.path
        # One suffix test turns away nearly every file of an image.
        if not path.endswith(_WANTED_SUFFIXES):
            return False
        if path.endswith("package.json") and (len(path) == 12 or path[-13] == "/"):
            return _NODE_MODULES not in path or _is_installed_manifest(path)
        base = path[path.rfind("/") + 1 :]
        return base in _LOCKFILES and _NODE_MODULES not in path

    def analyze(self, info: FileInfo, data: bytes) -> Iterable[Fact]:
        path = info.path
        base = path[path.rfind("/") + 1 :]
        try:
            if base == "package.json":
                facts = _analyze_manifest(data)
                if _NODE_MODULES not in path:
                    for fact in facts:
                        fact.metadata["local"] = True  # type: ignore[union-attr]
                return facts
            if base == "yarn.lock":
                return _analyze_yarn(data)
            if base == "pnpm-lock.yaml":
                return _analyze_pnpm(data)
            return _analyze_package_lock(data)
        except AnalyzerError:
            raise
        # Every field is type-checked before use; this only keeps the contract (AnalyzerError
        # and nothing else on hostile input) should a check have been missed.
        except (ValueError, TypeError, KeyError, AttributeError, IndexError, RecursionError) as exc:
            raise AnalyzerError(f"{path}: malformed {base}: {exc}") from exc
