"""Python packages: installed distributions and the lockfiles projects ship in images.

Installed packages come from core metadata (``*.dist-info/METADATA``, ``*.egg-info/PKG-INFO``,
a single-file ``*.egg-info``, ``EGG-INFO/PKG-INFO`` inside eggs). Declared packages come from
``requirements*.txt`` (exact pins only), ``poetry.lock``, ``Pipfile.lock`` and ``uv.lock``.

Dependency edges cannot be package ids here (ids need locations, which the merge step sets), so
each package carries the PEP 503 names it requires in ``metadata["requires"]`` for the lead to
resolve against the rest of the inventory.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable
from typing import Any

import msgspec

from hullguard import purl
from hullguard.inventory.base import Analyzer, AnalyzerError, FileInfo
from hullguard.model import Fact, Package

ECOSYSTEM = "pypi"

_LOCKFILES = frozenset({"poetry.lock", "Pipfile.lock", "uv.lock"})
_WANTED_SUFFIXES = ("/METADATA", "/PKG-INFO", ".egg-info", ".lock", ".txt")

# PEP 508 distribution name, as the leading token of a requirement.
_REQ_NAME = re.compile(r"\s*([A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)")
_VALID_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?\Z")
# An exactly pinned requirement once markers, options and comments are gone: name, extras, ==/===.
_PIN = re.compile(r"([A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)\s*(?:\[[^\]]*\])?\s*(===?)\s*([^\s,;]+)\Z")
# pip strips a comment that starts the line or follows whitespace; '#' inside a URL fragment stays.
_COMMENT = re.compile(r"(?:^|\s+)#.*$")
# Per-requirement options (--hash=..., --config-settings ...) follow the requirement itself.
_OPTION = re.compile(r"\s-{1,2}[A-Za-z]")
_EXTRA_MARKER = re.compile(r"\bextra\b")
_NORMALISE = re.compile(r"[-_.]+")

# Trove classifiers (the last segment) that have an SPDX identifier; others are kept verbatim.
_CLASSIFIER_SPDX = {
    "MIT License": "MIT",
    "MIT No Attribution License (MIT-0)": "MIT-0",
    "Apache Software License": "Apache-2.0",
    "BSD License": "BSD-3-Clause",
    "ISC License (ISCL)": "ISC",
    "Mozilla Public License 2.0 (MPL 2.0)": "MPL-2.0",
    "Python Software Foundation License": "PSF-2.0",
    "The Unlicense (Unlicense)": "Unlicense",
    "Zope Public License": "ZPL-2.1",
    "GNU General Public License v2 (GPLv2)": "GPL-2.0-only",
    "GNU General Public License v2 or later (GPLv2+)": "GPL-2.0-or-later",
    "GNU General Public License v3 (GPLv3)": "GPL-3.0-only",
    "GNU General Public License v3 or later (GPLv3+)": "GPL-3.0-or-later",
    "GNU Lesser General Public License v2 (LGPLv2)": "LGPL-2.0-only",
    "GNU Lesser General Public License v2 or later (LGPLv2+)": "LGPL-2.0-or-later",
    "GNU Lesser General Public License v3 (LGPLv3)": "LGPL-3.0-only",
    "GNU Lesser General Public License v3 or later (LGPLv3+)": "LGPL-3.0-or-later",
    "GNU Affero General Public License v3": "AGPL-3.0-only",
    "GNU Affero General Public License v3 or later (AGPLv3+)": "AGPL-3.0-or-later",
    "Eclipse Public License 2.0 (EPL-2.0)": "EPL-2.0",
    "Boost Software License 1.0 (BSL-1.0)": "BSL-1.0",
}
# Classifier segments that say something about a licence without naming one.
_CLASSIFIER_VAGUE = frozenset({"OSI Approved", "DFSG approved", "Other/Proprietary License"})
# A License field longer than this is the licence text pasted in, not a name.
_MAX_LICENSE_NAME = 120


def normalize(name: str) -> str:
    """PEP 503 normalised project name."""
    return _NORMALISE.sub("-", name).lower()


class _Collector:
    """De-duplicates packages of one file by (normalised name, version).

    A package is dev-only when every occurrence is; its requirements are the union.
    """

    def __init__(self) -> None:
        self._by_key: dict[tuple[str, str], Package] = {}

    def add(
        self,
        name: str,
        version: str,
        *,
        licenses: list[str] | None = None,
        requires: Iterable[str] = (),
        dev: bool = False,
    ) -> None:
        name = name.strip()
        version = version.strip()
        if not _VALID_NAME.match(name) or not version or any(c.isspace() for c in version):
            return
        key = (normalize(name), version)
        reqs = _unique(normalize(r) for r in requires)
        pkg = self._by_key.get(key)
        if pkg is None:
            metadata: dict[str, Any] = {}
            if reqs:
                metadata["requires"] = reqs
            if dev:
                metadata["dev"] = True
            self._by_key[key] = Package(
                name=name,
                version=version,
                ecosystem=ECOSYSTEM,
                purl=purl.build(ECOSYSTEM, name, version),
                licenses=licenses or [],
                found_by=PythonAnalyzer.name,
                metadata=metadata,
            )
            return
        if reqs:
            pkg.metadata["requires"] = _unique([*pkg.metadata.get("requires", []), *reqs])
        if not dev:
            pkg.metadata.pop("dev", None)
        if licenses and not pkg.licenses:
            pkg.licenses = licenses

    def packages(self) -> list[Fact]:
        return list(self._by_key.values())


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(i for i in items if i))


# --- core metadata -------------------------------------------------------------------------------


def _header_block(data: bytes) -> str:
    # The body (the long description since metadata 2.1) can be megabytes; only headers matter.
    ends = [i for i in (data.find(b"\n\n"), data.find(b"\n\r\n")) if i >= 0]
    if ends:
        data = data[: min(ends)]
    return data.decode("utf-8", errors="replace")


def parse_core_metadata(data: bytes) -> dict[str, list[str]]:
    """Headers of a core-metadata file (lower-cased names, values in order of appearance).

    RFC 822 style: a line starting with whitespace continues the previous value. Lines that are
    neither are ignored, as real-world PKG-INFO files written by old tools contain a few.
    """
    headers: dict[str, list[str]] = {}
    last: list[str] | None = None
    for raw in _header_block(data).split("\n"):
        line = raw.rstrip("\r")
        if line[:1] in (" ", "\t"):
            if last:
                last[-1] += "\n" + line.strip()
            continue
        field, sep, value = line.partition(":")
        if not sep or not field or " " in field:
            last = None
            continue
        last = headers.setdefault(field.strip().lower(), [])
        last.append(value.strip())
    return headers


def _first(headers: dict[str, list[str]], field: str) -> str:
    values = headers.get(field)
    return values[0].strip() if values else ""


def _metadata_licenses(headers: dict[str, list[str]]) -> list[str]:
    expression = _first(headers, "license-expression")
    if expression:
        return [expression]
    declared = _first(headers, "license")
    if (
        declared
        and declared.upper() not in ("UNKNOWN", "NONE")
        and "\n" not in declared
        and len(declared) <= _MAX_LICENSE_NAME
    ):
        return [declared]
    found: list[str] = []
    for classifier in headers.get("classifier", []):
        parts = [p.strip() for p in classifier.split("::")]
        if len(parts) < 2 or parts[0] != "License" or parts[-1] in _CLASSIFIER_VAGUE:
            continue
        found.append(_CLASSIFIER_SPDX.get(parts[-1], parts[-1]))
    return _unique(found)


def _requires_dist(headers: dict[str, list[str]]) -> list[str]:
    names: list[str] = []
    for requirement in headers.get("requires-dist", []):
        spec, _, marker = requirement.partition(";")
        # Requirements behind an extra are installed only when someone asked for that extra.
        if _EXTRA_MARKER.search(marker):
            continue
        match = _REQ_NAME.match(spec)
        if match:
            names.append(match.group(1))
    return names


def _analyze_metadata(data: bytes) -> list[Fact]:
    headers = parse_core_metadata(data)
    name = _first(headers, "name")
    version = _first(headers, "version")
    if not name or not version:
        raise AnalyzerError("core metadata without Name or Version")
    if not _VALID_NAME.match(name):
        raise AnalyzerError(f"core metadata with an invalid Name {name[:80]!r}")
    out = _Collector()
    out.add(name, version, licenses=_metadata_licenses(headers), requires=_requires_dist(headers))
    return out.packages()


# --- requirements files ------------------------------------------------------------------------


def _logical_lines(text: str) -> Iterable[str]:
    """Comment-free lines with backslash continuations joined, as pip reads them."""
    pending = ""
    for raw in text.splitlines():
        line = _COMMENT.sub("", raw)
        if line.endswith("\\"):
            pending += line[:-1]
            continue
        yield pending + line
        pending = ""
    if pending:
        yield pending


def parse_requirements(text: str) -> list[tuple[str, str]]:
    """(name, version) of every exactly pinned requirement in a pip requirements file.

    Options (-r, -c, -e, --index-url...), URLs, paths and ranges name no single version and are
    skipped; nested ``-r`` files are analysed on their own when the image contains them.
    """
    pins: list[tuple[str, str]] = []
    for logical in _logical_lines(text):
        line = logical.strip()
        if not line or line.startswith("-"):
            continue
        option = _OPTION.search(line)
        if option:
            line = line[: option.start()]
        line = line.split(";", 1)[0].strip()
        match = _PIN.match(line)
        if match is None:
            continue
        name, operator, version = match.groups()
        if operator == "==" and "*" in version:  # a prefix match, not a pin
            continue
        pins.append((name, version))
    return pins


def _analyze_requirements(data: bytes) -> list[Fact]:
    out = _Collector()
    for name, version in parse_requirements(data.decode("utf-8", errors="replace")):
        out.add(name, version)
    return out.packages()


# --- lockfiles ---------------------------------------------------------------------------------


def _load_toml(data: bytes) -> dict[str, Any]:
    try:
        return tomllib.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError, RecursionError) as exc:
        raise AnalyzerError(f"invalid TOML: {exc}") from exc


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _dict_keys(value: Any) -> list[str]:
    return [k for k in value if isinstance(k, str)] if isinstance(value, dict) else []


def _analyze_poetry(data: bytes) -> list[Fact]:
    doc = _load_toml(data)
    out = _Collector()
    for entry in _list(doc.get("package")):
        if not isinstance(entry, dict):
            continue
        source = entry.get("source")
        # Path dependencies are the project's own source trees, not published releases.
        if isinstance(source, dict) and source.get("type") == "directory":
            continue
        groups = entry.get("groups")
        dev = entry.get("category") == "dev" or (isinstance(groups, list) and bool(groups) and "main" not in groups)
        out.add(
            _str(entry.get("name")),
            _str(entry.get("version")),
            requires=_dict_keys(entry.get("dependencies")),
            dev=dev,
        )
    return out.packages()


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


# uv sources that point at the project's own trees rather than at a release.
_UV_LOCAL_SOURCES = frozenset({"editable", "virtual", "directory"})


def _analyze_uv(data: bytes) -> list[Fact]:
    doc = _load_toml(data)
    out = _Collector()
    for entry in _list(doc.get("package")):
        if not isinstance(entry, dict):
            continue
        source = entry.get("source")
        if isinstance(source, dict) and _UV_LOCAL_SOURCES.intersection(source):
            continue
        requires = [_str(d.get("name")) for d in _list(entry.get("dependencies")) if isinstance(d, dict)]
        out.add(_str(entry.get("name")), _str(entry.get("version")), requires=requires)
    return out.packages()


def _analyze_pipfile_lock(data: bytes) -> list[Fact]:
    try:
        doc = msgspec.json.decode(data)
    except msgspec.DecodeError as exc:
        raise AnalyzerError(f"invalid JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise AnalyzerError("Pipfile.lock is not a JSON object")
    out = _Collector()
    for section, dev in (("default", False), ("develop", True)):
        entries = doc.get(section)
        if not isinstance(entries, dict):
            continue
        for name, entry in entries.items():
            if not isinstance(name, str) or not isinstance(entry, dict):
                continue
            # VCS and path entries carry no "version"; a pin is "==X" (or "===X").
            version = _str(entry.get("version"))
            if not version.startswith("=="):
                continue
            out.add(name, version.lstrip("="), dev=dev)
    return out.packages()


# --- the analyzer ------------------------------------------------------------------------------


def _basename(path: str) -> str:
    return path[path.rfind("/") + 1 :]


def _in_site_packages(path: str) -> bool:
    return "site-packages/" in path or "dist-packages/" in path


class PythonAnalyzer(Analyzer):
    name = "python"
    version = 1

    def wants(self, info: FileInfo) -> bool:
        path = info.path
        # One suffix test turns away nearly every file of an image.
        if not path.endswith(_WANTED_SUFFIXES):
            return False
        if path.endswith(("/METADATA", "/PKG-INFO")):
            return path.endswith((".dist-info/METADATA", ".egg-info/PKG-INFO", "EGG-INFO/PKG-INFO"))
        if path.endswith(".egg-info"):
            return True
        base = _basename(path)
        if base in _LOCKFILES or (base.endswith(".txt") and "requirements" in base):
            # Lockfiles shipped inside installed distributions describe someone else's build.
            return not _in_site_packages(path)
        return False

    def analyze(self, info: FileInfo, data: bytes) -> Iterable[Fact]:
        path = info.path
        base = _basename(path)
        try:
            if base in ("METADATA", "PKG-INFO") or path.endswith(".egg-info"):
                return _analyze_metadata(data)
            if base == "poetry.lock":
                return _analyze_poetry(data)
            if base == "uv.lock":
                return _analyze_uv(data)
            if base == "Pipfile.lock":
                return _analyze_pipfile_lock(data)
            return _analyze_requirements(data)
        except AnalyzerError:
            raise
        # Every field is type-checked before use; this only keeps the contract (AnalyzerError
        # and nothing else on hostile input) should a check have been missed.
        except (ValueError, TypeError, KeyError, AttributeError, IndexError, RecursionError) as exc:
            raise AnalyzerError(f"{path}: malformed {base}: {exc}") from exc
