"""Rust executables built with cargo-auditable.

cargo-auditable links a ``.dep-v0`` section holding zlib-compressed JSON:
``{"format": N, "packages": [{"name", "version", "source", "kind", "dependencies": [index...],
"root"}]}``, where dependencies refer to other entries by their position in the array.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from typing import Any, ClassVar

import msgspec

from hullguard import purl
from hullguard.inventory._elf import ElfFile, is_elf, may_be_native_executable
from hullguard.inventory.base import Analyzer, AnalyzerError, FileInfo
from hullguard.model import Fact, Package

SECTION = ".dep-v0"
_SECTION_BYTES = SECTION.encode()
# cargo-auditable's own reader refuses more than 8 MiB; real data is a few KiB even for 400 crates.
MAX_DECOMPRESSED = 8 * 1024 * 1024
_MIN_BINARY_SIZE = 4096


class _AuditPackage(msgspec.Struct):
    name: str
    version: str
    source: str | dict[str, str] = ""
    kind: str = "runtime"
    dependencies: list[int] = []
    root: bool = False


class _VersionInfo(msgspec.Struct):
    packages: list[_AuditPackage]
    format: int = 0


_decoder = msgspec.json.Decoder(_VersionInfo)


def decompress_bounded(blob: bytes, limit: int = MAX_DECOMPRESSED) -> bytes:
    d = zlib.decompressobj()
    try:
        out = d.decompress(blob, limit)
    except zlib.error as exc:
        raise AnalyzerError(f"{SECTION}: bad zlib data: {exc}") from exc
    if d.unconsumed_tail:
        raise AnalyzerError(f"{SECTION}: audit data larger than {limit} bytes")
    return out


def parse_audit_json(raw: bytes) -> _VersionInfo:
    try:
        return _decoder.decode(raw)
    except msgspec.DecodeError as exc:
        raise AnalyzerError(f"{SECTION}: bad audit JSON: {exc}") from exc


def _source(src: str | dict[str, str]) -> str:
    if isinstance(src, dict):
        return next(iter(src.values()), "") if src else ""
    return src


def audit_packages(info: _VersionInfo, found_by: str) -> list[Package]:
    names = [p.name for p in info.packages]
    out: list[Package] = []
    for p in info.packages:
        requires = sorted({names[i] for i in p.dependencies if 0 <= i < len(names)})
        meta: dict[str, Any] = {"source": _source(p.source), "kind": p.kind}
        if requires:
            meta["requires"] = requires
        if p.root:
            meta["main"] = True
        if info.format:
            meta["audit_format"] = info.format
        out.append(
            Package(
                name=p.name,
                version=p.version,
                ecosystem="cargo",
                purl=purl.build("cargo", p.name, p.version),
                found_by=found_by,
                metadata=meta,
            )
        )
    return out


class RustAuditableAnalyzer(Analyzer):
    name: ClassVar[str] = "rust-binary"
    version: ClassVar[int] = 1
    max_size: ClassVar[int] = 512 * 1024 * 1024

    def wants(self, info: FileInfo) -> bool:
        return may_be_native_executable(info.path, info.mode, info.size, _MIN_BINARY_SIZE)

    def analyze(self, info: FileInfo, data: bytes) -> Iterable[Fact]:
        # The section name sits in the string table, so its absence rules the file out without
        # parsing any headers.
        if not is_elf(data) or _SECTION_BYTES not in data:
            return []
        elf = ElfFile(data)
        sec = elf.section(SECTION)
        if sec is None:
            return []
        raw = decompress_bounded(elf.section_data(sec))
        return audit_packages(parse_audit_json(raw), self.name)
