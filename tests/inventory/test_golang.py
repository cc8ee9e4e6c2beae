from __future__ import annotations

import os
import shutil
import struct
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hullguard.inventory.base import AnalyzerError, FileInfo
from hullguard.inventory.golang import (
    BUILDINFO_MAGIC,
    GoAnalyzer,
    parse_gomod,
    parse_modinfo,
    read_build_info,
    stdlib_version,
)
from hullguard.model import Package
from tests.builders.elf import SHF_ALLOC, SHF_EXECINSTR, SHF_WRITE, Sec, build_elf

# Any 16 bytes frame the module info; the reader only checks for the newline before the end one.
START = bytes(range(0x30, 0x40))
END = bytes(range(0x40, 0x50))

MODINFO = (
    "path\texample.com/cmd/tool\n"
    "mod\texample.com\t(devel)\t\n"
    "dep\tgithub.com/pkg/errors\tv0.9.1\th1:FEBLx1zS214owpjy7qsBeixbURkuhQAwrK5UwLGTwt4=\n"
    "dep\tgolang.org/x/net\tv0.0.0-20200202094626-16171245cfb2\th1:aaa=\n"
    "=>\tgithub.com/fork/net\tv0.1.0\th1:bbb=\n"
    "dep\texample.com/local\tv0.0.0-00010101000000-000000000000\t\n"
    "=>\t../local\t(devel)\t\n"
    "build\t-compiler=gc\n"
    'build\t-ldflags="-s -w -X main.version=1.2.3"\n'
    "build\tCGO_ENABLED=0\n"
    "build\tGOARCH=arm64\n"
    "build\tGOOS=linux\n"
    "build\tvcs=git\n"
    "build\tvcs.revision=0123456789abcdef0123456789abcdef01234567\n"
    "build\tvcs.modified=false\n"
)


def _uvarint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def inline_blob(vers: str, mod: str, *, ptr_size: int = 8, big: bool = False) -> bytes:
    framed = START + mod.encode() + END if mod else b""
    header = BUILDINFO_MAGIC + bytes([ptr_size, 2 | int(big)]) + b"\0" * 16
    return header + _uvarint(len(vers)) + vers.encode() + _uvarint(len(framed)) + framed


def inline_elf(vers: str = "go1.21.5", mod: str = MODINFO, **kw: object) -> bytes:
    blob = inline_blob(vers, mod)
    return build_elf(
        [
            Sec(".text", b"\xc3" * 64, addr=0x401000, flags=SHF_ALLOC | SHF_EXECINSTR),
            Sec(".go.buildinfo", blob, addr=0x500000, flags=SHF_ALLOC | SHF_WRITE),
        ],
        **kw,  # type: ignore[arg-type]
    ).data


def pointer_elf(vers: str, mod: str, *, bits: int = 64, little: bool = True) -> bytes:
    """The pre-Go 1.18 layout: the header points to Go string headers in the data segment."""
    ps = bits // 8
    bo = "<" if little else ">"
    p = "Q" if ps == 8 else "I"
    data_addr = 0x600000
    framed = START + mod.encode() + END if mod else b""
    strings_at = data_addr + 4 * ps
    data = struct.pack(bo + p * 4, strings_at, len(vers), strings_at + len(vers), len(framed)) + vers.encode() + framed
    header = BUILDINFO_MAGIC + bytes([ps, 0 if little else 1])
    header += struct.pack(bo + p * 2, data_addr, data_addr + 2 * ps).ljust(16, b"\0")
    return build_elf(
        [
            Sec(".text", b"\xc3" * 64, addr=0x401000, flags=SHF_ALLOC | SHF_EXECINSTR),
            Sec(".go.buildinfo", header, addr=0x500000, flags=SHF_ALLOC | SHF_WRITE),
            Sec(".data", data, addr=data_addr, flags=SHF_ALLOC | SHF_WRITE),
        ],
        bits=bits,
        little=little,
    ).data


def analyze(data: bytes, path: str = "usr/local/bin/tool") -> list[Package]:
    return list(GoAnalyzer().analyze(FileInfo(path, 0o755, len(data)), data))  # type: ignore[arg-type]


def by_name(pkgs: list[Package]) -> dict[str, Package]:
    return {p.name: p for p in pkgs}


def test_inline_build_info_packages() -> None:
    pkgs = by_name(analyze(inline_elf()))
    assert set(pkgs) == {"example.com", "github.com/pkg/errors", "github.com/fork/net", "example.com/local", "stdlib"}

    main = pkgs["example.com"]
    assert main.version == "(devel)"
    assert main.metadata["main"] is True
    assert main.purl == "pkg:golang/example.com"
    assert main.metadata["main_package"] == "example.com/cmd/tool"
    settings_ = main.metadata["build_settings"]
    assert settings_["GOOS"] == "linux"
    assert settings_["vcs.revision"] == "0123456789abcdef0123456789abcdef01234567"
    assert settings_["-ldflags"] == "-s -w -X main.version=1.2.3"

    errors = pkgs["github.com/pkg/errors"]
    assert errors.version == "v0.9.1"
    assert errors.purl == "pkg:golang/github.com/pkg/errors@v0.9.1"
    assert errors.ecosystem == "golang"
    assert errors.metadata["h1_digest"].startswith("h1:FEBL")
    assert errors.metadata["go_version"] == "go1.21.5"
    assert errors.metadata["goarch"] == "arm64"
    assert "main" not in errors.metadata

    fork = pkgs["github.com/fork/net"]
    assert fork.version == "v0.1.0"
    assert fork.metadata["replaced"] == "golang.org/x/net@v0.0.0-20200202094626-16171245cfb2"
    assert fork.metadata["h1_digest"] == "h1:bbb="

    local = pkgs["example.com/local"]
    assert local.version == "v0.0.0-00010101000000-000000000000"
    assert local.metadata["replaced_by_dir"] == "../local"

    std = pkgs["stdlib"]
    assert std.version == "v1.21.5"
    assert std.purl == "pkg:golang/stdlib@v1.21.5"


@pytest.mark.parametrize(("bits", "little"), [(64, True), (64, False), (32, True), (32, False)])
def test_pointer_format_through_segments(bits: int, little: bool) -> None:
    data = pointer_elf("go1.17.13", MODINFO, bits=bits, little=little)
    vers, mod = read_build_info(data)
    assert vers == "go1.17.13"
    assert mod == MODINFO
    pkgs = by_name(analyze(data))
    assert pkgs["stdlib"].version == "v1.17.13"
    assert pkgs["github.com/pkg/errors"].version == "v0.9.1"


def test_big_endian_inline_and_32_bit() -> None:
    data = inline_elf(bits=32, little=False)
    assert read_build_info(data)[0] == "go1.21.5"


def test_blob_found_in_first_writable_segment_without_section_name() -> None:
    blob = inline_blob("go1.20.1", MODINFO)
    data = build_elf(
        [
            Sec(".text", b"\xc3" * 64, addr=0x401000, flags=SHF_ALLOC | SHF_EXECINSTR),
            Sec(".noptrdata", b"\0" * 48 + blob, addr=0x500000, flags=SHF_ALLOC | SHF_WRITE),
        ]
    ).data
    assert read_build_info(data)[0] == "go1.20.1"


def test_unaligned_magic_is_ignored() -> None:
    blob = inline_blob("go1.20.1", MODINFO)
    data = build_elf([Sec(".go.buildinfo", b"\0" * 5 + blob, addr=0x500000, flags=SHF_ALLOC | SHF_WRITE)]).data
    assert analyze(data) == []


def test_non_elf_binaries_are_scanned_for_inline_blob() -> None:
    # A PE-shaped file: only the "MZ" magic and an aligned blob matter for the inline format.
    pe = b"MZ" + b"\0" * 126 + inline_blob("go1.22.3 X:boringcrypto", MODINFO)
    pkgs = by_name(analyze(pe, "app.exe"))
    assert pkgs["stdlib"].version == "v1.22.3"
    assert pkgs["stdlib"].metadata["go_version"] == "go1.22.3 X:boringcrypto"


def test_magic_as_plain_data_before_the_real_blob_is_skipped() -> None:
    decoy = (BUILDINFO_MAGIC + b"\x08\x02" + b"\xff" * 16).ljust(48, b"\0")
    macho = b"\xcf\xfa\xed\xfe" + b"\0" * 12 + decoy + inline_blob("go1.21.0", MODINFO)
    assert read_build_info(macho)[0] == "go1.21.0"


def test_binary_without_modules_gives_only_stdlib() -> None:
    pkgs = analyze(inline_elf("go1.21.5", ""))
    assert [(p.name, p.version) for p in pkgs] == [("stdlib", "v1.21.5")]


def test_files_that_are_not_go_binaries_give_nothing() -> None:
    assert analyze(b"#!/bin/sh\n" + BUILDINFO_MAGIC) == []
    assert analyze(build_elf([Sec(".text", b"\xc3" * 64, addr=0x401000)]).data) == []
    assert analyze(b"\x7fELF" + b"\0" * 100) == []  # no magic: rejected before parsing


@pytest.mark.parametrize(
    ("vers", "want"),
    [
        ("go1.21.5", "v1.21.5"),
        ("go1.22.3 X:boringcrypto", "v1.22.3"),
        ("go1.21rc2", "v1.21rc2"),
        ("go1.20", "v1.20"),
        ("devel go1.23-abcdef", ""),
    ],
)
def test_stdlib_version(vers: str, want: str) -> None:
    assert stdlib_version(vers) == want


def test_modinfo_quoted_build_keys_and_values() -> None:
    info = parse_modinfo('build\t"we\\tird"="a\\x41\\u00e9\\n"\nbuild\tCGO_CFLAGS=`-O2 -g`\n')
    assert info.settings == {"we\tird": "aA\u00e9\n", "CGO_CFLAGS": "-O2 -g"}


@pytest.mark.parametrize(
    "text",
    [
        "build\tnoequals\n",
        "build\t=value\n",
        'build\tk="unterminated\n',
        'build\tk="bad \\q escape"\n',
        "=>\tgithub.com/x/y\tv1.0.0\t\n",
        "mod\ta\tv1\t\n=>\tb\tv2\t\n=>\tc\tv3\t\n",
    ],
)
def test_modinfo_errors(text: str) -> None:
    with pytest.raises(AnalyzerError):
        parse_modinfo(text)


# -- hostile inputs ---------------------------------------------------------------------------


def _inline_elf_raw(blob: bytes) -> bytes:
    return build_elf([Sec(".go.buildinfo", blob, addr=0x500000, flags=SHF_ALLOC | SHF_WRITE)]).data


def test_huge_varint_length() -> None:
    blob = BUILDINFO_MAGIC + b"\x08\x02" + b"\0" * 16 + b"\xff" * 9 + b"\x01" + b"go1.21"
    with pytest.raises(AnalyzerError):
        analyze(_inline_elf_raw(blob))


def test_overlong_varint() -> None:
    blob = BUILDINFO_MAGIC + b"\x08\x02" + b"\0" * 16 + b"\x80" * 40
    with pytest.raises(AnalyzerError):
        analyze(_inline_elf_raw(blob))


def test_string_longer_than_file() -> None:
    blob = BUILDINFO_MAGIC + b"\x08\x02" + b"\0" * 16 + _uvarint(1 << 20) + b"go1.21"
    with pytest.raises(AnalyzerError):
        analyze(_inline_elf_raw(blob))


def test_pointer_to_unmapped_address() -> None:
    header = BUILDINFO_MAGIC + b"\x08\x00" + struct.pack("<QQ", 0xDEAD0000, 0xBEEF0000)
    with pytest.raises(AnalyzerError):
        analyze(_inline_elf_raw(header))


def test_pointer_string_length_too_large() -> None:
    data_addr = 0x600000
    strings = struct.pack("<QQQQ", data_addr + 32, 1 << 62, data_addr + 32, 4) + b"go1."
    header = BUILDINFO_MAGIC + b"\x08\x00" + struct.pack("<QQ", data_addr, data_addr + 16)
    data = build_elf(
        [
            Sec(".go.buildinfo", header, addr=0x500000, flags=SHF_ALLOC | SHF_WRITE),
            Sec(".data", strings, addr=data_addr, flags=SHF_ALLOC | SHF_WRITE),
        ]
    ).data
    with pytest.raises(AnalyzerError):
        analyze(data)


def test_pre_118_format_outside_elf_is_an_error_not_a_crash() -> None:
    pe = b"MZ" + b"\0" * 14 + BUILDINFO_MAGIC + b"\x08\x00" + b"\0" * 16
    with pytest.raises(AnalyzerError):
        analyze(pe)


def test_truncated_go_elf() -> None:
    data = inline_elf()
    for cut in (20, 64, 200, len(data) // 2):
        piece = data[:cut] + BUILDINFO_MAGIC
        try:
            out = analyze(piece)
        except AnalyzerError:
            continue
        assert out == []


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_random_corruption_never_escapes(data: st.DataObject) -> None:
    raw = bytearray(data.draw(st.sampled_from([inline_elf(), pointer_elf("go1.16", MODINFO)])))
    for _ in range(data.draw(st.integers(1, 10))):
        raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    try:
        analyze(bytes(raw[: data.draw(st.integers(4, len(raw)))]))
    except AnalyzerError:
        pass


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.sampled_from(list('\tabc="`\\=>\nmodepbuilgx0u')), max_size=200))
def test_random_modinfo_never_escapes(text: str) -> None:
    try:
        parse_modinfo(text)
    except AnalyzerError:
        pass


# -- wants ------------------------------------------------------------------------------------


def test_wants() -> None:
    a = GoAnalyzer()
    assert a.wants(FileInfo("usr/local/bin/kubectl", 0o755, 40_000_000))
    assert not a.wants(FileInfo("usr/local/bin/kubectl", 0o644, 40_000_000))
    assert not a.wants(FileInfo("usr/local/bin/tiny", 0o755, 100))
    assert not a.wants(FileInfo("usr/local/bin/entrypoint.sh", 0o755, 40_000))
    assert a.wants(FileInfo("src/app/go.mod", 0o644, 300))
    assert a.wants(FileInfo("go.mod", 0o644, 300))
    assert not a.wants(FileInfo("root/go/pkg/mod/github.com/x/y@v1.0.0/go.mod", 0o644, 300))
    assert not a.wants(FileInfo("src/app/notgo.mod", 0o644, 300))


# -- go.mod -----------------------------------------------------------------------------------

GOMOD = """// A module with every directive form.
module github.com/acme/app

go 1.21

toolchain go1.21.5

require github.com/single/line v1.0.0

require (
\tgithub.com/pkg/errors v0.9.1
\tgolang.org/x/sys v0.15.0 // indirect
\t"github.com/quoted/path" v2.0.0+incompatible
\texample.com/replaced/any v1.1.0
\texample.com/replaced/exact v1.2.0
\texample.com/local v0.0.0
)

exclude github.com/pkg/errors v0.8.0

replace example.com/replaced/any => example.com/fork/any v1.1.1

replace (
\texample.com/replaced/exact v1.2.0 => example.com/fork/exact v1.2.1
\texample.com/replaced/exact v9.9.9 => example.com/never v0.0.1
\texample.com/local => ./local // a directory
)

retract [v1.0.0, v1.0.5] // broken
"""


def test_gomod_parse() -> None:
    module, requires, replaces = parse_gomod(GOMOD)
    assert module == "github.com/acme/app"
    assert ("golang.org/x/sys", "v0.15.0", True) in requires
    assert ("github.com/pkg/errors", "v0.9.1", False) in requires
    assert ("github.com/quoted/path", "v2.0.0+incompatible", False) in requires
    assert len(requires) == 7
    assert ("example.com/local", "", "./local", "") in replaces


def test_gomod_packages() -> None:
    pkgs = by_name(analyze(GOMOD.encode(), "src/app/go.mod"))
    assert set(pkgs) == {
        "github.com/single/line",
        "github.com/pkg/errors",
        "golang.org/x/sys",
        "github.com/quoted/path",
        "example.com/fork/any",
        "example.com/fork/exact",
        "example.com/local",
    }
    assert pkgs["golang.org/x/sys"].metadata["indirect"] is True
    assert pkgs["github.com/pkg/errors"].metadata["indirect"] is False
    assert pkgs["github.com/pkg/errors"].purl == "pkg:golang/github.com/pkg/errors@v0.9.1"
    assert pkgs["example.com/fork/any"].version == "v1.1.1"
    assert pkgs["example.com/fork/exact"].version == "v1.2.1"
    assert pkgs["example.com/local"].metadata["replaced_by_dir"] == "./local"
    assert all(p.metadata["required_by"] == "github.com/acme/app" for p in pkgs.values())
    assert "stdlib" not in pkgs


def test_gomod_not_utf8() -> None:
    with pytest.raises(AnalyzerError):
        analyze(b"module \xff\xfe\n", "go.mod")


def test_gomod_unterminated_quote() -> None:
    with pytest.raises(AnalyzerError):
        analyze(b'require "github.com/x v1.0.0\n', "go.mod")


# -- real toolchain -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def go_build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("go") is None:
        pytest.skip("go toolchain not installed")
    root = tmp_path_factory.mktemp("gobuild")
    (root / "lib").mkdir()
    (root / "app").mkdir()
    (root / "lib" / "go.mod").write_text("module example.com/lib\n\ngo 1.18\n")
    (root / "lib" / "lib.go").write_text('package lib\n\nfunc Hello() string { return "hi" }\n')
    (root / "app" / "go.mod").write_text(
        "module example.com/app\n\ngo 1.18\n\nrequire example.com/lib v1.2.3\n\n"
        "replace example.com/lib v1.2.3 => ../lib\n"
    )
    (root / "app" / "main.go").write_text(
        'package main\n\nimport (\n\t"fmt"\n\n\t"example.com/lib"\n)\n\nfunc main() { fmt.Println(lib.Hello()) }\n'
    )
    return root


def _build(root: Path, goos: str, goarch: str) -> bytes:
    env = {
        **os.environ,
        "GOOS": goos,
        "GOARCH": goarch,
        "CGO_ENABLED": "0",
        "GOFLAGS": "-mod=mod",
        "GOPROXY": "off",
    }
    out = root / f"app-{goos}-{goarch}"
    run = subprocess.run(
        ["go", "build", "-ldflags=-s -w", "-o", str(out), "."],
        cwd=root / "app",
        env=env,
        capture_output=True,
        text=True,
    )
    if run.returncode != 0:
        pytest.skip(f"go build failed: {run.stderr[-400:]}")
    return out.read_bytes()


def _go_version() -> str:
    return subprocess.run(["go", "env", "GOVERSION"], capture_output=True, text=True, check=True).stdout.strip()


@pytest.mark.parametrize(
    ("goos", "goarch"),
    # 32-bit ELF, Mach-O and PE besides the native build; the first run compiles the standard
    # library for each target into the user's Go build cache, later runs reuse it.
    [("linux", "amd64"), ("linux", "386"), ("darwin", "arm64"), ("windows", "amd64")],
)
def test_real_go_binary(go_build: Path, goos: str, goarch: str) -> None:
    data = _build(go_build, goos, goarch)
    pkgs = by_name(analyze(data))
    toolchain = _go_version()
    assert pkgs["stdlib"].version == stdlib_version(toolchain) != ""
    assert pkgs["example.com/app"].metadata["main"] is True
    assert pkgs["example.com/app"].version == "(devel)"
    assert pkgs["example.com/lib"].version == "v1.2.3"
    assert pkgs["example.com/lib"].metadata["replaced_by_dir"] == "../lib"
    assert pkgs["example.com/app"].metadata["build_settings"]["GOOS"] == goos
    assert pkgs["example.com/app"].metadata["build_settings"]["GOARCH"] == goarch
    # Cross-check against the toolchain's own reader.
    shown = subprocess.run(
        ["go", "version", "-m", str(go_build / f"app-{goos}-{goarch}")], capture_output=True, text=True
    ).stdout
    assert f"GOARCH={goarch}" in shown
    assert "dep\texample.com/lib\tv1.2.3" in shown
