"""PHP packages from Composer: ``composer.lock`` and ``vendor/composer/installed.json``.

``composer.lock`` splits packages into ``packages`` and ``packages-dev``. ``installed.json`` is
what Composer actually put into ``vendor/``: Composer 1 wrote a bare list, Composer 2 writes
``{"packages": [...], "dev": bool, "dev-package-names": [...]}``. Both carry the same per-package
objects (``name``, ``version``, ``license``, ``require``, ``source``/``dist``...).

Versions: a release tagged ``v5.4.31`` appears as ``"version": "v5.4.31"`` (Composer keeps the
tag as written), whereas the Packagist advisories in OSV (GitHub's and FriendsOfPHP's) give their
ranges without the prefix (``5.4.31``), and Composer itself treats both spellings as one release
(its ``version_normalized`` is ``5.4.31.0`` either way). So a single ``v``/``V`` before a digit is
stripped from ``Package.version`` and the purl, and the tag as written is kept in
``metadata["raw_version"]``. Branch installs (``dev-main``, ``2.x-dev``) are not releases and are
reported as written, with the commit in ``metadata["reference"]``.

``require`` keys without a ``/`` are platform requirements (``php``, ``ext-json``,
``composer-plugin-api``), not packages, and are left out of ``metadata["requires"]``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar

from hullguard import purl
from hullguard.inventory.base import Analyzer, AnalyzerError, FileInfo, load_json
from hullguard.model import Fact, Package


def normalize_version(version: str) -> str:
    """``v1.2.3`` -> ``1.2.3``; anything else unchanged."""
    if len(version) > 1 and version[0] in "vV" and version[1].isdigit():
        return version[1:]
    return version


def _licenses(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value] if value else []
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str) and v]
    return []


def _reference(entry: dict[str, Any]) -> str:
    for key in ("source", "dist"):
        block = entry.get(key)
        if isinstance(block, dict) and isinstance(block.get("reference"), str) and block["reference"]:
            return str(block["reference"])
    return ""


class PhpAnalyzer(Analyzer):
    name: ClassVar[str] = "php"
    version: ClassVar[int] = 1
    # Lock files carry descriptions and autoload maps; big projects reach a few MiB.
    max_size: ClassVar[int] = 32 * 1024 * 1024

    def wants(self, info: FileInfo) -> bool:
        path = info.path
        if path.endswith("composer.lock"):
            return path == "composer.lock" or path.endswith("/composer.lock")
        if path.endswith("/installed.json"):
            return path == "vendor/composer/installed.json" or path.endswith("/vendor/composer/installed.json")
        return False

    def analyze(self, info: FileInfo, data: bytes) -> Iterable[Fact]:
        if not data.strip():
            return []
        doc = load_json(info, data)
        entries: list[tuple[Any, bool]] = []
        if info.path.endswith("composer.lock"):
            if not isinstance(doc, dict):
                raise AnalyzerError(f"{info.path}: top level is not an object")
            for key, dev in (("packages", False), ("packages-dev", True)):
                listed = doc.get(key)
                if isinstance(listed, list):
                    entries.extend((e, dev) for e in listed)
                elif listed is not None:
                    raise AnalyzerError(f"{info.path}: {key!r} is not a list")
        elif isinstance(doc, list):
            # Composer 1: no record of which packages were dev-only.
            entries = [(e, False) for e in doc]
        elif isinstance(doc, dict):
            listed = doc.get("packages", [])
            if not isinstance(listed, list):
                raise AnalyzerError(f"{info.path}: 'packages' is not a list")
            dev_names = doc.get("dev-package-names")
            dev_set = {n for n in dev_names if isinstance(n, str)} if isinstance(dev_names, list) else set()
            entries = [(e, isinstance(e, dict) and e.get("name") in dev_set) for e in listed]
        else:
            raise AnalyzerError(f"{info.path}: neither a list nor an object of packages")
        return self._packages(entries)

    def _packages(self, entries: list[tuple[Any, bool]]) -> list[Fact]:
        found: dict[tuple[str, str], Package] = {}
        for entry, dev in entries:
            if not isinstance(entry, dict):
                continue
            full_name, raw_version = entry.get("name"), entry.get("version")
            if not (isinstance(full_name, str) and isinstance(raw_version, str) and raw_version):
                continue
            vendor, _, short = full_name.partition("/")
            if not vendor or not short or "/" in short:
                continue
            version = normalize_version(raw_version)
            key = (full_name.lower(), version)
            if key in found:
                # Listed twice (say in packages and packages-dev): it is dev only if both say so.
                if not dev:
                    found[key].metadata.pop("dev", None)
                continue
            found[key] = self._package(entry, full_name, vendor, short, version, raw_version, dev)
        return list(found.values())

    def _package(
        self,
        entry: dict[str, Any],
        full_name: str,
        vendor: str,
        short: str,
        version: str,
        raw: str,
        dev: bool,
    ) -> Package:
        metadata: dict[str, Any] = {}
        if raw != version:
            metadata["raw_version"] = raw
        if dev:
            metadata["dev"] = True
        ptype = entry.get("type")
        if isinstance(ptype, str) and ptype:
            metadata["type"] = ptype
        reference = _reference(entry)
        if reference:
            metadata["reference"] = reference
        require = entry.get("require")
        if isinstance(require, dict):
            requires = [n for n in require if isinstance(n, str) and "/" in n]
            if requires:
                metadata["requires"] = requires
        for key in ("homepage", "description"):
            value = entry.get(key)
            if isinstance(value, str) and value:
                metadata[key] = value
        return Package(
            name=full_name,
            version=version,
            ecosystem="composer",
            purl=purl.build("composer", short, version, namespace=vendor),
            licenses=_licenses(entry.get("license")),
            found_by=self.name,
            metadata=metadata,
        )
