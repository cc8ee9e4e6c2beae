from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import pytest

from hullguard.inventory.base import AnalyzerError, FileInfo
from hullguard.inventory.rust_binary import MAX_DECOMPRESSED, RustAuditableAnalyzer
from hullguard.model import Package
from tests.builders.elf import SHF_ALLOC, SHF_EXECINSTR, Sec, build_elf

AUDIT = {
    "format": 1,
    "packages": [
        {"name": "adler", "version": "1.0.2", "source": "crates.io"},
        {"name": "hello", "version": "0.1.0", "source": "local", "dependencies": [0, 2], "root": True},
        {"name": "miniz_oxide", "version": "0.7.1", "source": "crates.io", "dependencies": [0]},
        {"name": "cc", "version": "1.0.83", "source": "crates.io", "kind": "build"},
        {"name": "private", "version": "2.0.0", "source": {"Other": "my-registry"}},
    ],
}


def _binary(payload: bytes, *, bits: int = 64, little: bool = True) -> bytes:
    return build_elf(
        [
            Sec(".text", b"\xc3" * 64, addr=0x401000, flags=SHF_ALLOC | SHF_EXECINSTR),
            Sec(".dep-v0", payload),
        ],
        bits=bits,
        little=little,
    ).data


def _analyze(data: bytes, path: str = "usr/local/bin/hello") -> list[Package]:
    info = FileInfo(path, 0o755, len(data))
    return list(RustAuditableAnalyzer().analyze(info, data))  # type: ignore[arg-type]


@pytest.mark.parametrize(("bits", "little"), [(64, True), (32, False)])
def test_reads_cargo_auditable_section(bits: int, little: bool) -> None:
    data = _binary(zlib.compress(json.dumps(AUDIT).encode()), bits=bits, little=little)
    pkgs = {p.name: p for p in _analyze(data)}
    assert set(pkgs) == {"adler", "hello", "miniz_oxide", "cc", "private"}
    hello = pkgs["hello"]
    assert hello.ecosystem == "cargo"
    assert hello.version == "0.1.0"
    assert hello.purl == "pkg:cargo/hello@0.1.0"
    assert hello.metadata["main"] is True
    assert hello.metadata["source"] == "local"
    assert hello.metadata["requires"] == ["adler", "miniz_oxide"]
    assert pkgs["miniz_oxide"].metadata["requires"] == ["adler"]
    assert "requires" not in pkgs["adler"].metadata
    assert pkgs["cc"].metadata["kind"] == "build"
    assert pkgs["adler"].metadata["kind"] == "runtime"
    assert pkgs["private"].metadata["source"] == "my-registry"
    assert all(p.found_by == "rust-binary" and not p.locations for p in pkgs.values())


def test_out_of_range_dependency_indices_are_ignored() -> None:
    doc = {"packages": [{"name": "a", "version": "1.0.0", "source": "local", "dependencies": [7, -1, 0]}]}
    [pkg] = _analyze(_binary(zlib.compress(json.dumps(doc).encode())))
    assert pkg.metadata["requires"] == ["a"]


def test_binary_without_section_yields_nothing() -> None:
    data = build_elf([Sec(".text", b"\xc3" * 64, addr=0x401000)]).data
    assert _analyze(data) == []
    assert _analyze(b"#!/bin/sh\necho .dep-v0\n") == []


def test_decompression_bomb_is_refused() -> None:
    bomb = zlib.compress(b" " * (MAX_DECOMPRESSED + 1024), 9)
    assert len(bomb) < 64 * 1024
    with pytest.raises(AnalyzerError, match="larger than"):
        _analyze(_binary(bomb))


@pytest.mark.parametrize(
    "payload",
    [
        b"not zlib at all",
        zlib.compress(b"{not json"),
        zlib.compress(b'{"packages": [{"name": 1}]}'),
        zlib.compress(b"[" * 100_000),
        zlib.compress(json.dumps(AUDIT).encode())[:20],
    ],
)
def test_malformed_payloads_raise_analyzer_error(payload: bytes) -> None:
    with pytest.raises(AnalyzerError):
        _analyze(_binary(payload))


def test_truncated_binary_raises_analyzer_error() -> None:
    img = build_elf([Sec(".dep-v0", zlib.compress(json.dumps(AUDIT).encode()))])
    # The cut drops the section header table, which the ELF header still points to.
    truncated = img.data[: img.offsets[".dep-v0"] + 4] + b".dep-v0"
    with pytest.raises(AnalyzerError):
        _analyze(truncated)


def test_section_offset_past_end_raises_analyzer_error() -> None:
    img = build_elf([Sec(".dep-v0", zlib.compress(json.dumps(AUDIT).encode()))])
    data = bytearray(img.data)
    shoff = struct.unpack_from("<Q", data, 0x28)[0]
    struct.pack_into("<Q", data, shoff + 64 + 24, 1 << 40)  # section 1's sh_offset
    with pytest.raises(AnalyzerError):
        _analyze(bytes(data))


def test_wants_only_executables_of_some_size() -> None:
    a = RustAuditableAnalyzer()
    assert a.wants(FileInfo("usr/bin/rg", 0o755, 5_000_000))
    assert not a.wants(FileInfo("usr/bin/rg", 0o644, 5_000_000))
    assert not a.wants(FileInfo("usr/bin/rg", 0o755, 10))
    assert not a.wants(FileInfo("usr/bin/build.sh", 0o755, 5_000_000))


@pytest.mark.skipif(shutil.which("cargo") is None, reason="cargo not installed")
def test_plain_cargo_binary_has_no_audit_data(tmp_path: Path) -> None:
    # Without cargo-auditable a real Rust binary carries no .dep-v0: the analyzer must stay quiet
    # rather than guess.
    (tmp_path / "src").mkdir()
    (tmp_path / "Cargo.toml").write_text('[package]\nname = "hello"\nversion = "0.1.0"\nedition = "2021"\n')
    (tmp_path / "src" / "main.rs").write_text('fn main() { println!("hi"); }\n')
    run = subprocess.run(
        ["cargo", "build", "--offline", "--quiet"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={**os.environ, "CARGO_TARGET_DIR": str(tmp_path / "target")},
    )
    if run.returncode != 0:
        pytest.skip(f"cargo build failed here: {run.stderr[-300:]}")
    data = (tmp_path / "target" / "debug" / "hello").read_bytes()
    assert data[:4] == b"\x7fELF"
    assert _analyze(data) == []
