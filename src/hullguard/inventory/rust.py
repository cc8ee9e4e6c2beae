"""Rust crates from ``Cargo.lock``.

All lock-file versions share the ``[[package]]`` array; they differ in how dependencies and
checksums are spelled:

* v1 writes every dependency as ``"name version (source)"`` and keeps checksums apart, in a
  ``[metadata]`` table keyed ``"checksum name version (source)"``;
* v2 and later put ``checksum`` on the package and shorten a dependency to ``"name"``, adding
  the version (and source) only when the name alone would be ambiguous;
* v3/v4 add a top-level ``version = N`` and change nothing this reader looks at.

Packages without ``source`` are the workspace's own crates. They are reported (so an SBOM shows
what the image was built from) but flagged ``metadata["local"] = True``: they never came from a
registry, so a crates.io advisory about a crate that happens to share the name does not apply.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Iterator
from typing import Any, ClassVar

from hullguard import purl
from hullguard.inventory.base import Analyzer, AnalyzerError, FileInfo
from hullguard.model import Fact, Package

CRATES_IO = "registry+https://github.com/rust-lang/crates.io-index"
CRATES_IO_SPARSE = "sparse+https://index.crates.io/"


def _split_dependency(spec: str) -> tuple[str, str, str]:
    """``"name [version [(source)]]"`` -> (name, version, source)."""
    source = ""
    if spec.endswith(")") and " (" in spec:
        spec, source = spec[:-1].split(" (", 1)
    parts = spec.split()
    if not parts:
        return "", "", source
    return parts[0], parts[1] if len(parts) > 1 else "", source


def _v1_checksums(metadata: Any) -> dict[tuple[str, str, str], str]:
    if not isinstance(metadata, dict):
        return {}
    out: dict[tuple[str, str, str], str] = {}
    for key, value in metadata.items():
        if isinstance(key, str) and key.startswith("checksum ") and isinstance(value, str):
            out[_split_dependency(key[len("checksum ") :])] = value
    return out


class CargoLockAnalyzer(Analyzer):
    name: ClassVar[str] = "cargo-lock"
    version: ClassVar[int] = 1
    # Large workspaces produce lock files of a few hundred KiB; anything near this is not one.
    max_size: ClassVar[int] = 32 * 1024 * 1024

    def wants(self, info: FileInfo) -> bool:
        path = info.path
        return path.endswith("Cargo.lock") and (path == "Cargo.lock" or path.endswith("/Cargo.lock"))

    def analyze(self, info: FileInfo, data: bytes) -> Iterable[Fact]:
        try:
            doc = tomllib.loads(data.decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise AnalyzerError(f"{info.path}: not UTF-8: {exc}") from None
        except tomllib.TOMLDecodeError as exc:
            raise AnalyzerError(f"{info.path}: invalid TOML: {exc}") from None
        except RecursionError:
            raise AnalyzerError(f"{info.path}: TOML nested too deeply") from None
        packages = doc.get("package", [])
        if not isinstance(packages, list):
            raise AnalyzerError(f"{info.path}: 'package' is not an array of tables")
        return list(self._packages(packages, _v1_checksums(doc.get("metadata"))))

    def _packages(self, entries: list[Any], v1_checksums: dict[tuple[str, str, str], str]) -> Iterator[Package]:
        seen: set[tuple[str, str, str]] = set()
        for entry in entries:
            if not isinstance(entry, dict):
                continue
            name, version, source = entry.get("name"), entry.get("version"), entry.get("source", "")
            if not (isinstance(name, str) and name and isinstance(version, str) and version):
                continue
            if not isinstance(source, str):
                source = ""
            key = (name, version, source)
            # Cargo itself refuses a lock with the same crate twice; a hand-edited or merged one
            # may still have it, and one package per crate is what downstream expects.
            if key in seen:
                continue
            seen.add(key)

            metadata: dict[str, Any] = {}
            if source:
                metadata["source"] = source
            else:
                metadata["local"] = True
            checksum = entry.get("checksum")
            if not isinstance(checksum, str):
                checksum = v1_checksums.get(key, "")
            if checksum and checksum != "<none>":
                metadata["checksum"] = checksum
            requires = self._requires(entry.get("dependencies"))
            if requires:
                metadata["requires"] = requires

            yield Package(
                name=name,
                version=version,
                ecosystem="cargo",
                purl=purl.build("cargo", name, version),
                found_by=self.name,
                metadata=metadata,
            )

    @staticmethod
    def _requires(deps: Any) -> list[str]:
        if not isinstance(deps, list):
            return []
        # A dict keeps first-seen order and makes hostile repeats cost O(1) each.
        names: dict[str, None] = {}
        for dep in deps:
            if isinstance(dep, str):
                dep_name = _split_dependency(dep)[0]
                if dep_name:
                    names[dep_name] = None
        return list(names)
