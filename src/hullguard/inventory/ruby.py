"""Ruby gems: installed specifications and Bundler lock files.

Installed gems leave a ``specifications/<name>-<version>[-<platform>].gemspec`` under the gem
home (``specifications/default/`` for the gems that ship with Ruby). RubyGems writes these with
``Gem::Specification#to_ruby``, so their shape is regular: one ``s.attr = literal`` per line, with
literals spelled as ``"x"``, ``'x'``, ``%q{x}``, ``"x".freeze``, ``["a".freeze, "b"]``, ``%w[a b]``
or ``Gem::Version.new("x")``. They are read with a small literal reader, never evaluated; an
assignment whose right-hand side is not a literal (``spec.version = Foo::VERSION`` in a
hand-written gemspec) is ignored, and without a literal name and version the file yields nothing.

``Gemfile.lock`` lists resolved gems under ``GEM``, ``GIT`` and ``PATH`` sections: four spaces
of indent for ``name (version[-platform])`` and six for that gem's dependencies. ``PATH`` gems
are the application's own and are flagged ``metadata["local"] = True``. A lock resolved for
several platforms repeats a native gem once per platform; those entries are merged into one
package per name and version, since advisories are about the version, with the platforms listed
in ``metadata["platforms"]`` and the purl ``platform`` qualifier set only when there is one.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, ClassVar

from hullguard import purl
from hullguard.inventory.base import Analyzer, AnalyzerError, FileInfo
from hullguard.model import Fact, Package

# ---------------------------------------------------------------------------------------------
# Ruby literals

_PERCENT_CLOSE = {"(": ")", "[": "]", "{": "}", "<": ">"}
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "0": "\0", "s": " ", "e": "\x1b", "a": "\a", "b": "\b"}
_FREEZE = re.compile(r"\s*\.freeze\b")
_VERSION_NEW = re.compile(r"Gem::Version\.new\(\s*")
_WS = re.compile(r"\s*")


_DOUBLE_ESCAPE = re.compile(r"\\(u\{[0-9a-fA-F ]{1,40}\}|u[0-9a-fA-F]{4}|x[0-9a-fA-F]{1,2}|.)", re.DOTALL)


def _codepoint(hex_digits: str) -> str:
    value = int(hex_digits, 16)
    # A lone surrogate would survive here and then break JSON/msgpack encoding downstream.
    if value > 0x10FFFF or 0xD800 <= value <= 0xDFFF:
        return "\ufffd"
    return chr(value)


def _double_escape(m: re.Match[str]) -> str:
    esc = m.group(1)
    if esc.startswith("u{"):
        return "".join(_codepoint(cp) for cp in esc[2:-1].split())
    if esc.startswith("u") and len(esc) == 5:
        return _codepoint(esc[1:])
    if esc.startswith("x") and len(esc) > 1:
        return _codepoint(esc[1:])
    return _ESCAPES.get(esc, esc)


def _unescape_double(body: str) -> str:
    return _DOUBLE_ESCAPE.sub(_double_escape, body) if "\\" in body else body


def _unescape_single(body: str) -> str:
    # Single-quoted Ruby strings only honour \\ and \'.
    return re.sub(r"\\([\\'])", r"\1", body) if "\\" in body else body


# Possessive quantifiers: a body either matches in one forward pass or fails without backtracking.
_QUOTED = {
    '"': re.compile(r'"([^"\\]*+(?:\\.[^"\\]*+)*+)"', re.DOTALL),
    "'": re.compile(r"'([^'\\]*+(?:\\.[^'\\]*+)*+)'", re.DOTALL),
}


def _read_quoted(text: str, pos: int, quote: str) -> tuple[str, int] | None:
    """Read a string opened by ``quote`` at ``text[pos]``; return (raw body, index after close)."""
    m = _QUOTED[quote].match(text, pos)
    return (m.group(1), m.end()) if m else None


def _read_delimited(text: str, pos: int) -> tuple[str, int] | None:
    """Read a %-literal body whose opening delimiter is ``text[pos]`` (nesting brackets count)."""
    if pos >= len(text):
        return None
    opener = text[pos]
    if opener.isalnum() or opener.isspace():
        return None
    closer = _PERCENT_CLOSE.get(opener, opener)
    depth = 1
    i = pos + 1
    while i < len(text):
        ch = text[i]
        if ch == "\\":
            i += 2
            continue
        if ch == closer:
            depth -= 1
            if depth == 0:
                return text[pos + 1 : i], i + 1
        elif ch == opener and opener != closer:
            depth += 1
        i += 1
    return None


def _read_string(text: str, pos: int, wrapped: bool = True) -> tuple[str, int] | None:
    """One string literal at ``pos`` (after optional blanks), with any ``.freeze``.

    ``wrapped`` allows ``Gem::Version.new(...)`` around it, one level deep only, so that hostile
    nesting cannot recurse."""
    pos = _WS.match(text, pos).end()  # type: ignore[union-attr]
    if pos >= len(text):
        return None
    ch = text[pos]
    got: tuple[str, int] | None
    if ch == '"':
        got = _read_quoted(text, pos, '"')
        if got:
            got = (_unescape_double(got[0]), got[1])
    elif ch == "'":
        got = _read_quoted(text, pos, "'")
        if got:
            got = (_unescape_single(got[0]), got[1])
    elif ch == "%" and text[pos + 1 : pos + 2] in ("q", "Q"):
        got = _read_delimited(text, pos + 2)
        if got and text[pos + 1] == "Q":
            got = (_unescape_double(got[0]), got[1])
    elif ch == "%" and pos + 1 < len(text) and text[pos + 1] in _PERCENT_CLOSE:
        got = _read_delimited(text, pos + 1)
        if got:
            got = (_unescape_double(got[0]), got[1])
    elif wrapped and text.startswith("Gem::Version.new", pos):
        m = _VERSION_NEW.match(text, pos)
        inner = _read_string(text, m.end(), wrapped=False) if m else None
        if inner is None:
            return None
        close = _WS.match(text, inner[1]).end()  # type: ignore[union-attr]
        if not text.startswith(")", close):
            return None
        got = (inner[0], close + 1)
    else:
        return None
    if got is None:
        return None
    m = _FREEZE.match(text, got[1])
    return (got[0], m.end()) if m else got


def _read_list(text: str, pos: int) -> tuple[list[str], int] | None:
    """``[lit, lit, ...]`` (string literals only) or ``%w[...]``/``%W[...]``/``%i[...]``."""
    pos = _WS.match(text, pos).end()  # type: ignore[union-attr]
    if text.startswith(("%w", "%W", "%i", "%I"), pos):
        got = _read_delimited(text, pos + 2)
        if got is None:
            return None
        m = _FREEZE.match(text, got[1])
        return got[0].split(), m.end() if m else got[1]
    if not text.startswith("[", pos):
        return None
    items: list[str] = []
    pos += 1
    while True:
        pos = _WS.match(text, pos).end()  # type: ignore[union-attr]
        if text.startswith("]", pos):
            pos += 1
            break
        item = _read_string(text, pos)
        if item is None:
            return None
        items.append(item[0])
        pos = _WS.match(text, item[1]).end()  # type: ignore[union-attr]
        if text.startswith(",", pos):
            pos += 1
        elif not text.startswith("]", pos):
            return None
    m = _FREEZE.match(text, pos)
    return items, m.end() if m else pos


def _read_value(text: str, pos: int) -> str | list[str] | None:
    """A string or a list of strings at ``pos``; anything else (constants, calls) is None."""
    listed = _read_list(text, pos)
    if listed is not None:
        return listed[0]
    got = _read_string(text, pos)
    return got[0] if got else None


# ---------------------------------------------------------------------------------------------
# Installed gemspecs

_BLOCK_VAR = re.compile(r"Gem::Specification\.new\s*(?:do|\{)\s*\|\s*(\w+)\s*\|")
_STUB = re.compile(r"^# stub: (\S+) (\S+) (\S+)", re.MULTILINE)
_WANTED_ATTRS = ("name", "version", "platform", "license", "licenses", "homepage", "summary", "authors")
_RUNTIME_DEP_CALLS = ("add_runtime_dependency", "add_dependency")
# After "<var>.": an assignment ("name = ") or a call ("add_dependency(" / "add_dependency ").
_STATEMENT = re.compile(r"(\w+)\s*(=(?!=)|[(\s])\s*")


def _parse_gemspec(text: str) -> dict[str, Any]:
    m = _BLOCK_VAR.search(text)
    if m is None:
        return {}
    prefix = m.group(1) + "."
    attrs: dict[str, Any] = {}
    # Dicts as ordered sets: hostile repeats must not make de-duplication quadratic.
    deps: dict[str, None] = {}
    # RubyGems writes one statement per line. Looking at each line once, and reading literals no
    # further than its end, keeps hostile files (unterminated strings, endless repeats) linear.
    for line in text[m.end() :].splitlines():
        line = line.lstrip(" \t")
        if not line.startswith(prefix):
            continue
        sm = _STATEMENT.match(line, len(prefix))
        if sm is None:
            continue
        word = sm.group(1)
        if sm.group(2) == "=":
            if word in _WANTED_ATTRS and word not in attrs:
                value = _read_value(line, sm.end())
                if value is not None:
                    attrs[word] = value
        elif word in _RUNTIME_DEP_CALLS:
            dep = _read_string(line, sm.end())
            if dep and dep[0]:
                deps[dep[0]] = None
    attrs["requires"] = list(deps)
    return attrs


def _as_list(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value] if value else []
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str) and v]
    return []


# ---------------------------------------------------------------------------------------------
# Gemfile.lock

_SPEC_LINE = re.compile(r"^    ([^ ()]+)(?: \(([^)]*)\))?\s*$")
_DEP_LINE = re.compile(r"^      ([^ ()!]+)!?(?: \(.*\))?\s*$")
_SOURCE_SECTIONS = {"GEM", "GIT", "PATH", "PLUGIN SOURCE"}


def _split_locked_version(text: str) -> tuple[str, str]:
    # Gem versions cannot hold "-" (RubyGems rewrites prerelease dashes to ".pre."), so the
    # first dash is where Bundler appended the platform.
    version, _, platform = text.partition("-")
    return version.strip(), platform.strip()


class RubyAnalyzer(Analyzer):
    name: ClassVar[str] = "ruby"
    version: ClassVar[int] = 1
    # Generated gemspecs are a few KiB; big Gemfile.lock files are a few hundred.
    max_size: ClassVar[int] = 16 * 1024 * 1024

    def wants(self, info: FileInfo) -> bool:
        path = info.path
        if path.endswith(".gemspec"):
            return path.startswith("specifications/") or "/specifications/" in path
        return path.endswith("Gemfile.lock") and (path == "Gemfile.lock" or path.endswith("/Gemfile.lock"))

    def analyze(self, info: FileInfo, data: bytes) -> Iterable[Fact]:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise AnalyzerError(f"{info.path}: not UTF-8: {exc}") from None
        if text.startswith("\ufeff"):
            text = text[1:]
        if info.path.endswith(".gemspec"):
            return self._gemspec(info, text)
        return self._gemfile_lock(text)

    # -- gemspec ---------------------------------------------------------------------------

    def _gemspec(self, info: FileInfo, text: str) -> list[Fact]:
        if "\0" in text:
            raise AnalyzerError(f"{info.path}: binary data in a gemspec")
        attrs = _parse_gemspec(text)
        name, version = attrs.get("name"), attrs.get("version")
        if not (isinstance(name, str) and name and isinstance(version, str) and version):
            # RubyGems also writes a "# stub:" header; it is enough when the body is not literal.
            stub = _STUB.search(text)
            if stub is None:
                return []
            name, version = stub.group(1), stub.group(2)
            if stub.group(3) != "ruby" and "platform" not in attrs:
                attrs["platform"] = stub.group(3)
        platform = attrs.get("platform")
        platform = platform if isinstance(platform, str) and platform not in ("", "ruby") else ""

        licenses = _as_list(attrs.get("licenses")) or _as_list(attrs.get("license"))
        metadata: dict[str, Any] = {}
        if platform:
            metadata["platform"] = platform
        if "/specifications/default/" in "/" + info.path:
            metadata["default_gem"] = True
        for key in ("homepage", "summary"):
            if isinstance(attrs.get(key), str) and attrs[key]:
                metadata[key] = attrs[key]
        authors = _as_list(attrs.get("authors"))
        if authors:
            metadata["authors"] = authors
        if attrs.get("requires"):
            metadata["requires"] = attrs["requires"]
        return [
            Package(
                name=name,
                version=version,
                ecosystem="gem",
                purl=purl.build("gem", name, version, qualifiers={"platform": platform}),
                licenses=licenses,
                found_by=self.name,
                metadata=metadata,
            )
        ]

    # -- Gemfile.lock ----------------------------------------------------------------------

    def _gemfile_lock(self, text: str) -> list[Fact]:
        found: dict[tuple[str, str], dict[str, Any]] = {}
        section = ""
        source: dict[str, str] = {}
        in_specs = False
        current: dict[str, Any] | None = None

        for line in text.splitlines():
            if not line.strip():
                continue
            if not line.startswith(" "):
                section = line.strip()
                source = {"type": section.lower()}
                in_specs = False
                current = None
                continue
            if section not in _SOURCE_SECTIONS:
                continue
            if line.startswith("  ") and not line.startswith("   "):
                key, sep, value = line.strip().partition(":")
                if key == "specs" and sep:
                    in_specs = True
                elif sep and key in ("remote", "revision", "branch", "tag", "ref"):
                    source[key] = value.strip()
                current = None
                continue
            if not in_specs:
                continue
            spec = _SPEC_LINE.match(line)
            if spec and spec.group(2) is not None:
                version, platform = _split_locked_version(spec.group(2))
                if not version:
                    current = None
                    continue
                current = found.setdefault(
                    (spec.group(1), version),
                    {"platforms": {}, "requires": {}, "source": dict(source)},
                )
                # A gem without a suffix is the pure-Ruby build ("ruby" platform); knowing it sits
                # beside native builds keeps the purl from claiming one particular platform.
                platform = platform or "ruby"
                current["platforms"][platform] = None
                continue
            dep = _DEP_LINE.match(line) if spec is None else None
            if dep and current is not None:
                current["requires"][dep.group(1)] = None
                continue
            # Whatever else this line is, the dependencies that follow it are not current's.
            current = None

        out: list[Fact] = []
        for (name, version), entry in found.items():
            out.append(self._locked_package(name, version, entry))
        return out

    def _locked_package(self, name: str, version: str, entry: dict[str, Any]) -> Package:
        platforms = list(entry["platforms"])
        if platforms == ["ruby"]:
            platforms = []
        src: dict[str, str] = entry["source"]
        metadata: dict[str, Any] = {}
        if len(platforms) == 1:
            metadata["platform"] = platforms[0]
        elif platforms:
            metadata["platforms"] = platforms
        kind = src.get("type", "gem")
        if kind == "path":
            metadata["local"] = True
        if kind != "gem":
            metadata["source"] = kind
        for key in ("remote", "revision", "branch", "tag", "ref"):
            if src.get(key):
                metadata[key] = src[key]
        if entry["requires"]:
            metadata["requires"] = list(entry["requires"])
        qualifiers = {"platform": platforms[0]} if len(platforms) == 1 else None
        return Package(
            name=name,
            version=version,
            ecosystem="gem",
            purl=purl.build("gem", name, version, qualifiers=qualifiers),
            found_by=self.name,
            metadata=metadata,
        )
