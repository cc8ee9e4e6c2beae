"""Go modules: the build information the Go linker embeds in binaries, and go.mod files.

Binary layout (Go's ``debug/buildinfo``): a 32-byte header, 16-byte aligned, starting with
``\\xff Go buildinf:``, then the pointer size and a flags byte. With flag bit 2 set (Go 1.18+)
the toolchain version and the module info follow the header as uvarint-length-prefixed strings;
otherwise the header holds two pointers to Go string headers (pointer, length) that must be
followed through the executable's virtual address space. The module info text is framed by two
16-byte sentinels and lists ``path``, ``mod``, ``dep``, ``=>`` and ``build`` lines.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, ClassVar

from hullguard import purl
from hullguard.inventory._elf import ElfError, ElfFile, is_elf, may_be_native_executable
from hullguard.inventory.base import Analyzer, AnalyzerError, FileInfo
from hullguard.model import Fact, Package

BUILDINFO_MAGIC = b"\xff Go buildinf:"
_HEADER_SIZE = 32
_ALIGN = 16
# The linker puts the blob at the start of its section or data segment; Go itself only looks at
# the first 64 KiB there.
_SEARCH_WINDOW = 64 * 1024
# Module info of very large programs runs to a few hundred KiB; anything above this is hostile.
_MAX_STRING = 8 * 1024 * 1024
# Go binaries are at least ~1 MiB; TinyGo ones can be far smaller. Below this, not worth reading.
_MIN_BINARY_SIZE = 4096

_EXEC_MAGICS = (
    b"\x7fELF",
    b"MZ",
    b"\xfe\xed\xfa\xce",
    b"\xfe\xed\xfa\xcf",
    b"\xce\xfa\xed\xfe",
    b"\xcf\xfa\xed\xfe",
)


_GO_VERSION_RE = re.compile(r"go(\d+(?:\.\d+)*(?:(?:rc|beta)\d+)?)")


def _is_gomod_path(path: str) -> bool:
    if not (path == "go.mod" or path.endswith("/go.mod")):
        return False
    # Files inside the module cache describe downloaded dependencies, not what is built here.
    return not (path.startswith("pkg/mod/") or "/pkg/mod/" in path)


def _is_dir_path(path: str) -> bool:
    # Go's rule for a replacement that names a directory instead of a module.
    return (
        path in (".", "..")
        or path.startswith(("./", "../", "/", ".\\", "..\\", "\\"))
        or (len(path) > 1 and path[1] == ":")
    )


def _golang_purl(path: str, version: str) -> str:
    namespace, _, name = path.rpartition("/")
    return purl.build("golang", name, "" if version == "(devel)" else version, namespace)


# ---------------------------------------------------------------------------------------------
# Build info extraction


def _uvarint(data: bytes, pos: int) -> tuple[int, int]:
    """Decode a uvarint at ``pos``; returns (value, new position)."""
    value = 0
    shift = 0
    for i in range(10):
        if pos + i >= len(data):
            raise AnalyzerError("truncated varint in Go build info")
        b = data[pos + i]
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, pos + i + 1
        shift += 7
    raise AnalyzerError("varint too long in Go build info")


def _inline_strings(blob: bytes) -> tuple[str, str]:
    pos = _HEADER_SIZE
    out: list[str] = []
    for _ in range(2):
        n, pos = _uvarint(blob, pos)
        if n > _MAX_STRING or pos + n > len(blob):
            raise AnalyzerError("Go build info string runs past the end of the file")
        out.append(blob[pos : pos + n].decode("utf-8", "replace"))
        pos += n
    return out[0], out[1]


def _pointer_strings(blob: bytes, elf: ElfFile) -> tuple[str, str]:
    ptr_size = blob[14]
    if ptr_size not in (4, 8):
        raise AnalyzerError(f"bad pointer size {ptr_size} in Go build info")
    order = "big" if blob[15] & 1 else "little"

    def ptr(b: bytes, at: int) -> int:
        return int.from_bytes(b[at : at + ptr_size], order)

    def go_string(addr: int) -> str:
        hdr = elf.read_vaddr(addr, 2 * ptr_size)
        if len(hdr) < 2 * ptr_size:
            raise AnalyzerError("truncated Go string header")
        data_addr, length = ptr(hdr, 0), ptr(hdr, ptr_size)
        if length == 0:
            return ""
        if length > _MAX_STRING:
            raise AnalyzerError("Go build info string too long")
        data = elf.read_vaddr(data_addr, length)
        if len(data) < length:
            raise AnalyzerError("truncated Go build info string")
        return data.decode("utf-8", "replace")

    return go_string(ptr(blob, 16)), go_string(ptr(blob, 16 + ptr_size))


def _find_header(window: bytes) -> int:
    """Offset of the first 16-byte-aligned build info header in ``window``, or -1."""
    i = window.find(BUILDINFO_MAGIC)
    while i >= 0:
        if i % _ALIGN == 0 and len(window) - i >= _HEADER_SIZE:
            return i
        i = window.find(BUILDINFO_MAGIC, i + 1)
    return -1


def read_build_info(data: bytes) -> tuple[str, str]:
    """Return (toolchain version, module info text without sentinels) from a Go executable.

    ``("", "")`` means the file is not a Go binary. Raises AnalyzerError for a blob that is
    there but broken."""
    if is_elf(data):
        elf = ElfFile(data)
        blob = _elf_blob(elf)
        if blob is None:
            return "", ""
        if blob[15] & 2:
            vers, mod = _inline_strings(blob)
        else:
            vers, mod = _pointer_strings(blob, elf)
    else:
        # PE and Mach-O headers are not parsed: since Go 1.18 the strings follow the header, and
        # section file offsets keep their 16-byte alignment, so a scan of the file finds them.
        vers, mod = _scan_inline(data)
    return vers, _strip_sentinels(mod) if vers else ""


def _elf_blob(elf: ElfFile) -> bytes | None:
    sec = elf.section(".go.buildinfo")
    if sec is not None and sec.addr:
        start = sec.addr
    else:
        seg = elf.first_writable_data_segment()
        if seg is None:
            return None
        start = seg.vaddr
    try:
        window = elf.read_vaddr(start, _MAX_STRING)
    except ElfError:
        return None
    i = _find_header(window[: _SEARCH_WINDOW + _HEADER_SIZE])
    if i < 0:
        return None
    return window[i:]


def _scan_inline(data: bytes) -> tuple[str, str]:
    i = data.find(BUILDINFO_MAGIC)
    while i >= 0:
        if i % _ALIGN == 0 and len(data) - i >= _HEADER_SIZE:
            flags = data[i + 15]
            if flags & 2 and data[i + 14] in (4, 8):
                try:
                    vers, mod = _inline_strings(data[i : i + _HEADER_SIZE + 2 * (_MAX_STRING + 10)])
                except AnalyzerError:
                    vers, mod = "", ""
                # The magic also occurs as plain data in programs that import debug/buildinfo.
                if vers.startswith(("go", "devel")):
                    return vers, mod
            elif not flags & 2:
                raise AnalyzerError("pre-Go 1.18 build info is only supported in ELF binaries")
        i = data.find(BUILDINFO_MAGIC, i + 1)
    return "", ""


def _strip_sentinels(mod: str) -> str:
    if len(mod) >= 33 and mod[-17] == "\n":
        return mod[16:-16]
    return ""


# ---------------------------------------------------------------------------------------------
# Module info text


class Module:
    __slots__ = ("path", "replace", "sum", "version")

    def __init__(self, path: str, version: str = "", sum: str = "") -> None:
        self.path = path
        self.version = version
        self.sum = sum
        self.replace: Module | None = None


class BuildInfo:
    __slots__ = ("deps", "go_version", "main", "path", "settings")

    def __init__(self) -> None:
        self.go_version = ""
        self.path = ""
        self.main: Module | None = None
        self.deps: list[Module] = []
        self.settings: dict[str, str] = {}


_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v", "\\": "\\"}


def _go_quoted_prefix(text: str) -> tuple[str, int]:
    """Unquote the Go string literal at the start of ``text``; returns (value, chars used)."""
    if text.startswith("`"):
        end = text.find("`", 1)
        if end < 0:
            raise AnalyzerError("unterminated raw string in Go build info")
        return text[1:end], end + 1
    out: list[str] = []
    i = 1
    while i < len(text):
        c = text[i]
        if c == '"':
            return "".join(out), i + 1
        if c != "\\":
            out.append(c)
            i += 1
            continue
        nxt = text[i + 1 : i + 2]
        if nxt in _ESCAPES or nxt in ('"', "'"):
            out.append(_ESCAPES.get(nxt, nxt))
            i += 2
        elif nxt in ("x", "u", "U"):
            width = {"x": 2, "u": 4, "U": 8}[nxt]
            digits = text[i + 2 : i + 2 + width]
            try:
                out.append(chr(int(digits, 16)))
            except ValueError as exc:
                raise AnalyzerError("bad escape in Go build info") from exc
            i += 2 + width
        elif nxt.isdigit():
            try:
                out.append(chr(int(text[i + 1 : i + 4], 8)))
            except ValueError as exc:
                raise AnalyzerError("bad escape in Go build info") from exc
            i += 4
        else:
            raise AnalyzerError("bad escape in Go build info")
    raise AnalyzerError("unterminated string in Go build info")


def _build_setting(kv: str) -> tuple[str, str]:
    if kv[:1] in ('"', "`"):
        key, used = _go_quoted_prefix(kv)
        rest = kv[used:]
        if not rest.startswith("="):
            raise AnalyzerError("build setting without '='")
        raw = rest[1:]
    else:
        key, eq, raw = kv.partition("=")
        if not eq:
            raise AnalyzerError("build setting without '='")
    if not key:
        raise AnalyzerError("build setting without a key")
    value = _go_quoted_prefix(raw)[0] if raw[:1] in ('"', "`") else raw
    return key, value


def parse_modinfo(text: str) -> BuildInfo:
    """Parse the module info text (sentinels already removed)."""
    info = BuildInfo()
    last: Module | None = None
    for line in text.split("\n"):
        if not line:
            continue
        kind, _, rest = line.partition("\t")
        if kind == "go":
            info.go_version = rest
        elif kind == "path":
            info.path = rest
        elif kind in ("mod", "dep", "=>"):
            elem = rest.split("\t")
            mod = Module(elem[0], elem[1] if len(elem) > 1 else "", elem[2] if len(elem) > 2 else "")
            if kind == "mod":
                info.main = last = mod
            elif kind == "dep":
                info.deps.append(mod)
                last = mod
            else:
                if last is None or last.replace is not None:
                    raise AnalyzerError("replacement with nothing to replace in Go build info")
                last.replace = mod
        elif kind == "build":
            key, value = _build_setting(rest)
            info.settings[key] = value
        # Unknown line kinds come from newer toolchains; skipping them keeps old scanners useful.
    return info


def stdlib_version(go_version: str) -> str:
    """``go1.21.5`` (optionally followed by experiments like `` X:boringcrypto``) -> ``v1.21.5``."""
    m = _GO_VERSION_RE.match(go_version.split(" ", 1)[0])
    return "v" + m.group(1) if m else ""


def _module_package(mod: Module, meta: dict[str, Any], found_by: str) -> Package:
    path, version = mod.path, mod.version
    meta = dict(meta)
    if mod.sum:
        meta["h1_digest"] = mod.sum
    rep = mod.replace
    if rep is not None:
        if not _is_dir_path(rep.path):
            meta["replaced"] = f"{mod.path}@{mod.version}" if mod.version else mod.path
            path, version = rep.path, rep.version
            if rep.sum:
                meta["h1_digest"] = rep.sum
            else:
                meta.pop("h1_digest", None)
        else:
            # A directory replacement: the code is local and has no version of its own, so the
            # module keeps the identity it is required under.
            meta["replaced_by_dir"] = rep.path
    return Package(
        name=path,
        version=version,
        ecosystem="golang",
        purl=_golang_purl(path, version),
        found_by=found_by,
        metadata=meta,
    )


def binary_packages(vers: str, info: BuildInfo, found_by: str) -> list[Package]:
    common: dict[str, Any] = {"go_version": vers}
    for key in ("GOOS", "GOARCH"):
        if key in info.settings:
            common[key.lower()] = info.settings[key]
    out: list[Package] = []
    if info.main is not None and info.main.path:
        meta = {**common, "main": True, "build_settings": dict(info.settings)}
        if info.path:
            meta["main_package"] = info.path
        out.append(_module_package(info.main, meta, found_by))
    for dep in info.deps:
        # Old toolchains sometimes listed the main module again as a dep with an empty path.
        if dep.path:
            out.append(_module_package(dep, common, found_by))
    std = stdlib_version(vers)
    if std:
        meta = dict(common)
        if info.main is None:
            meta["build_settings"] = dict(info.settings)
        out.append(
            Package(
                name="stdlib",
                version=std,
                ecosystem="golang",
                purl=purl.build("golang", "stdlib", std),
                found_by=found_by,
                metadata=meta,
            )
        )
    return out


# ---------------------------------------------------------------------------------------------
# go.mod


def _strip_comment(line: str) -> tuple[str, str]:
    quote = ""
    for i, c in enumerate(line):
        if quote:
            if c == quote and (quote == "`" or line[i - 1] != "\\"):
                quote = ""
        elif c in ('"', "`"):
            quote = c
        elif c == "/" and line.startswith("//", i):
            return line[:i], line[i + 2 :]
    return line, ""


def _tokens(text: str) -> list[str]:
    out: list[str] = []
    i = 0
    while i < len(text):
        c = text[i]
        if c.isspace():
            i += 1
        elif c in ('"', "`"):
            value, used = _go_quoted_prefix(text[i:])
            out.append(value)
            i += used
        else:
            j = i
            while j < len(text) and not text[j].isspace():
                j += 1
            out.append(text[i:j])
            i = j
    return out


def parse_gomod(text: str) -> tuple[str, list[tuple[str, str, bool]], list[tuple[str, str, str, str]]]:
    """Return (module path, requires as (path, version, indirect), replaces as
    (old path, old version or "", new path, new version or ""))."""
    module = ""
    requires: list[tuple[str, str, bool]] = []
    replaces: list[tuple[str, str, str, str]] = []
    block = ""
    for lineno, raw in enumerate(text.splitlines(), 1):
        code, comment = _strip_comment(raw)
        try:
            toks = _tokens(code)
        except AnalyzerError as exc:
            raise AnalyzerError(f"go.mod line {lineno}: {exc}") from exc
        if not toks:
            continue
        if block:
            if toks == [")"]:
                block = ""
                continue
            verb, args = block, toks
        else:
            verb, args = toks[0], toks[1:]
            if args == ["("]:
                block = verb
                continue
        if verb == "module" and args:
            module = args[0]
        elif verb == "require" and len(args) >= 2:
            indirect = comment.strip().startswith("indirect")
            requires.append((args[0], args[1], indirect))
        elif verb == "replace" and "=>" in args:
            arrow = args.index("=>")
            old, new = args[:arrow], args[arrow + 1 :]
            if old and new:
                replaces.append((old[0], old[1] if len(old) > 1 else "", new[0], new[1] if len(new) > 1 else ""))
    return module, requires, replaces


def gomod_packages(text: str, found_by: str) -> list[Package]:
    module, requires, replaces = parse_gomod(text)
    exact = {(o, ov): (n, nv) for o, ov, n, nv in replaces if ov}
    anyver = {o: (n, nv) for o, ov, n, nv in replaces if not ov}
    out: list[Package] = []
    for path, version, indirect in requires:
        mod = Module(path, version)
        rep = exact.get((path, version)) or anyver.get(path)
        if rep is not None:
            mod.replace = Module(rep[0], rep[1])
        meta: dict[str, Any] = {"indirect": indirect}
        if module:
            meta["required_by"] = module
        out.append(_module_package(mod, meta, found_by))
    return out


# ---------------------------------------------------------------------------------------------


class GoAnalyzer(Analyzer):
    name: ClassVar[str] = "golang"
    version: ClassVar[int] = 1
    max_size: ClassVar[int] = 512 * 1024 * 1024

    def wants(self, info: FileInfo) -> bool:
        path = info.path
        if path.endswith("go.mod"):
            return _is_gomod_path(path)
        return may_be_native_executable(path, info.mode, info.size, _MIN_BINARY_SIZE)

    def analyze(self, info: FileInfo, data: bytes) -> Iterable[Fact]:
        if _is_gomod_path(info.path):
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise AnalyzerError("go.mod is not UTF-8") from exc
            return gomod_packages(text, self.name)
        if not data.startswith(_EXEC_MAGICS) or BUILDINFO_MAGIC not in data:
            return []
        vers, mod = read_build_info(data)
        if not vers:
            return []
        return binary_packages(vers, parse_modinfo(mod), self.name)
