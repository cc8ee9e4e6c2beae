""".NET / NuGet packages: ``*.deps.json``, ``packages.lock.json`` and ``packages.config``.

``<app>.deps.json`` sits next to every built .NET (Core) application and is what the host reads
to load it, so it describes what actually ships. ``libraries`` maps ``"Name/Version"`` to a
``type``:

* ``package`` — a NuGet package: reported;
* ``project`` — the application and the class libraries of its own solution: reported with
  ``metadata["local"] = True`` (as for Cargo workspace members), because they are part of the
  image but no NuGet advisory is about them even when a name collides;
* ``runtimepack`` — the runtime a self-contained app carries
  (``runtimepack.Microsoft.NETCore.App.Runtime.linux-x64/8.0.0``): reported under the NuGet id
  without the ``runtimepack.`` prefix, since advisories for the .NET runtime are filed against
  exactly those ids;
* ``reference`` and anything else — plain assembly references, not packages: skipped.

Libraries whose every appearance under ``targets`` is ``compileOnly`` are not deployed and are
skipped. Dependency names come from the ``targets`` entries (union over all targets).

``packages.lock.json`` (NuGet lock file) lists, per target framework, ``Direct``,
``Transitive`` and ``CentralTransitive`` packages with a ``resolved`` version; ``Project``
entries carry no version and are skipped. Entries repeated across frameworks are merged.

``packages.config`` (classic .NET Framework) lists exact ``<package id version>`` pins.
``*.csproj`` ``PackageReference`` items give requested ranges, not what was restored, so project
files are not read.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from typing import Any, ClassVar

from hullguard import purl
from hullguard.inventory.base import Analyzer, AnalyzerError, FileInfo, load_json
from hullguard.model import Fact, Package

_RUNTIMEPACK = "runtimepack."
_LOCK_TYPES = {"direct", "transitive", "centraltransitive"}
# Entity declarations are the door to expansion attacks; real NuGet files never have them.
_DTD = re.compile(r"<!(?:DOCTYPE|ENTITY)", re.IGNORECASE)


def _nuget(name: str, version: str, found_by: str, metadata: dict[str, Any]) -> Package:
    return Package(
        name=name,
        version=version,
        ecosystem="nuget",
        purl=purl.build("nuget", name, version),
        found_by=found_by,
        metadata=metadata,
    )


def _dep_names(value: Any) -> list[str]:
    if not isinstance(value, dict):
        return []
    return [k for k in value if isinstance(k, str) and k]


def _merge_names(into: dict[str, None], names: Iterable[str]) -> None:
    # Dicts as ordered sets: hostile repeats must not make de-duplication quadratic.
    for name in names:
        into[name] = None


class DotnetAnalyzer(Analyzer):
    name: ClassVar[str] = "dotnet"
    version: ClassVar[int] = 1
    # deps.json of large ASP.NET apps reach a few MiB.
    max_size: ClassVar[int] = 32 * 1024 * 1024

    def wants(self, info: FileInfo) -> bool:
        path = info.path
        if path.endswith(".deps.json"):
            return True
        if path.endswith("packages.lock.json"):
            return path == "packages.lock.json" or path.endswith("/packages.lock.json")
        if path.endswith("packages.config"):
            return path == "packages.config" or path.endswith("/packages.config")
        return False

    def analyze(self, info: FileInfo, data: bytes) -> Iterable[Fact]:
        if not data.strip():
            return []
        if info.path.endswith(".deps.json"):
            return self._deps_json(info, load_json(info, data))
        if info.path.endswith("packages.lock.json"):
            return self._packages_lock(info, load_json(info, data))
        return self._packages_config(info, data)

    # -- deps.json -------------------------------------------------------------------------

    def _deps_json(self, info: FileInfo, doc: Any) -> list[Fact]:
        if not isinstance(doc, dict):
            raise AnalyzerError(f"{info.path}: top level is not an object")
        libraries = doc.get("libraries", {})
        targets = doc.get("targets", {})
        if not isinstance(libraries, dict):
            raise AnalyzerError(f"{info.path}: 'libraries' is not an object")
        if not isinstance(targets, dict):
            targets = {}

        requires: dict[str, dict[str, None]] = {}
        runtime: set[str] = set()
        compile_only: set[str] = set()
        for target in targets.values():
            if not isinstance(target, dict):
                continue
            for key, entry in target.items():
                if not isinstance(entry, dict):
                    continue
                _merge_names(requires.setdefault(key, {}), _dep_names(entry.get("dependencies")))
                (compile_only if entry.get("compileOnly") is True else runtime).add(key)

        runtime_target = doc.get("runtimeTarget")
        framework = runtime_target.get("name") if isinstance(runtime_target, dict) else None

        out: list[Fact] = []
        seen: set[tuple[str, str]] = set()
        for key, lib in libraries.items():
            if not isinstance(key, str) or not isinstance(lib, dict):
                continue
            name, _, version = key.partition("/")
            kind = lib.get("type")
            if not name or not version or "/" in version or kind not in ("package", "project", "runtimepack"):
                continue
            if key in compile_only and key not in runtime:
                continue
            metadata: dict[str, Any] = {}
            if kind == "project":
                metadata["local"] = True
            elif kind == "runtimepack":
                metadata["type"] = "runtimepack"
                if name.startswith(_RUNTIMEPACK) and len(name) > len(_RUNTIMEPACK):
                    name = name[len(_RUNTIMEPACK) :]
            if (name.lower(), version) in seen:
                continue
            seen.add((name.lower(), version))
            for field, meta_key in (("sha512", "sha512"), ("path", "path")):
                value = lib.get(field)
                if isinstance(value, str) and value:
                    metadata[meta_key] = value
            if isinstance(framework, str) and framework:
                metadata["runtime_target"] = framework
            if requires.get(key):
                metadata["requires"] = list(requires[key])
            out.append(_nuget(name, version, self.name, metadata))
        return out

    # -- packages.lock.json ----------------------------------------------------------------

    def _packages_lock(self, info: FileInfo, doc: Any) -> list[Fact]:
        if not isinstance(doc, dict):
            raise AnalyzerError(f"{info.path}: top level is not an object")
        frameworks = doc.get("dependencies", {})
        if not isinstance(frameworks, dict):
            raise AnalyzerError(f"{info.path}: 'dependencies' is not an object")

        found: dict[tuple[str, str], Package] = {}
        seen_in: dict[tuple[str, str], dict[str, None]] = {}
        requires: dict[tuple[str, str], dict[str, None]] = {}
        for framework, deps in frameworks.items():
            if not isinstance(deps, dict):
                continue
            for name, entry in deps.items():
                if not (isinstance(name, str) and name and isinstance(entry, dict)):
                    continue
                kind, version = entry.get("type"), entry.get("resolved")
                if not (isinstance(kind, str) and kind.lower() in _LOCK_TYPES):
                    continue
                if not (isinstance(version, str) and version):
                    continue
                key = (name.lower(), version)
                pkg = found.get(key)
                if pkg is None:
                    metadata: dict[str, Any] = {"direct": False}
                    content_hash = entry.get("contentHash")
                    if isinstance(content_hash, str) and content_hash:
                        metadata["content_hash"] = content_hash
                    pkg = found[key] = _nuget(name, version, self.name, metadata)
                    seen_in[key], requires[key] = {}, {}
                meta = pkg.metadata
                if kind.lower() == "direct":
                    meta["direct"] = True
                    requested = entry.get("requested")
                    if isinstance(requested, str) and requested:
                        meta["requested"] = requested
                if isinstance(framework, str):
                    seen_in[key][framework] = None
                _merge_names(requires[key], _dep_names(entry.get("dependencies")))
        for key, pkg in found.items():
            pkg.metadata["frameworks"] = list(seen_in[key])
            if requires[key]:
                pkg.metadata["requires"] = list(requires[key])
        return list(found.values())

    # -- packages.config -------------------------------------------------------------------

    def _packages_config(self, info: FileInfo, data: bytes) -> list[Fact]:
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise AnalyzerError(f"{info.path}: not UTF-8: {exc}") from None
        if _DTD.search(text):
            raise AnalyzerError(f"{info.path}: DTDs are not accepted in packages.config")
        # Parsing a str, the XML declaration's encoding has no say; drop it so that a
        # declared non-UTF-8 encoding cannot make expat reject text already decoded.
        text = re.sub(r"^\s*<\?xml[^>]*\?>", "", text, count=1)
        try:
            root = ET.fromstring(text)
        except ET.ParseError as exc:
            raise AnalyzerError(f"{info.path}: invalid XML: {exc}") from None
        except RecursionError:
            raise AnalyzerError(f"{info.path}: XML nested too deeply") from None
        if root.tag != "packages":
            return []
        out: list[Fact] = []
        seen: set[tuple[str, str]] = set()
        for element in root.findall("package"):
            name, version = element.get("id", "").strip(), element.get("version", "").strip()
            if not name or not version or (name.lower(), version) in seen:
                continue
            seen.add((name.lower(), version))
            metadata: dict[str, Any] = {}
            framework = element.get("targetFramework", "").strip()
            if framework:
                metadata["frameworks"] = [framework]
            if element.get("developmentDependency", "").strip().lower() == "true":
                metadata["dev"] = True
            out.append(_nuget(name, version, self.name, metadata))
        return out
