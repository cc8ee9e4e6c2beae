"""Alpine-family packages (Alpine, Wolfi, Chainguard, postmarketOS) from apk's installed database.

``lib/apk/db/installed`` is a text file of records separated by blank lines; every line is a
one-letter key, a colon and a value. Package metadata comes first, then the package's files as
``F:`` (a directory) followed by its ``R:`` entries (files in that directory), each optionally
followed by ``a:``/``M:`` (owner and mode) and ``Z:`` (checksum) lines.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from hullguard.inventory.base import Analyzer, AnalyzerError, FileInfo
from hullguard.model import Fact, Location, Package, PackageHint

# apk-tools 3 on usr-merged systems keeps the database under /usr.
INSTALLED_PATHS = frozenset({"lib/apk/db/installed", "usr/lib/apk/db/installed"})

# Dependency atoms look like "name", "name>=1.2", "name~1.2", "so:libc.musl-x86_64.so.1",
# "cmd:sh=1.36.1-r15", "!conflicting" or "name><Q1checksum"; the name ends at the operator.
_CONSTRAINT_START = re.compile(r"[<>=~]")
_SPDX_TOKENS = re.compile(r"[()]|[^\s()]+")
_OPERATORS = frozenset({"AND", "OR"})


def _atom_name(atom: str) -> str:
    m = _CONSTRAINT_START.search(atom)
    return atom[: m.start()] if m else atom


def split_license(expr: str) -> list[str]:
    """Licence ids out of an apk ``L:`` value.

    Newer packages use SPDX expressions ("MIT AND (GPL-2.0-only OR BSD-2-Clause)"); older
    ones list ids separated by spaces ("MIT BSD GPL2+"). Both come apart at whitespace,
    parentheses and AND/OR; "X WITH exception" stays one licence.
    """
    tokens = [t.strip(",;") for t in _SPDX_TOKENS.findall(expr)]
    out: list[str] = []
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        i += 1
        if not tok or tok in "()" or tok.upper() in _OPERATORS:
            continue
        if i + 1 < len(tokens) and tokens[i].upper() == "WITH":
            tok = f"{tok} WITH {tokens[i + 1]}"
            i += 2
        out.append(tok)
    return list(dict.fromkeys(out))


class _Record:
    __slots__ = ("dirname", "fields", "files")

    def __init__(self) -> None:
        self.fields: dict[str, str] = {}
        self.files: list[str] = []
        self.dirname = ""


def parse_installed(text: str) -> list[_Record]:
    records: list[_Record] = []
    rec = _Record()
    saw_any = False
    for line in text.split("\n"):
        line = line.rstrip("\r")
        if not line:
            if rec.fields or rec.files:
                records.append(rec)
                rec = _Record()
            continue
        if len(line) < 2 or line[1] != ":":
            # Not the key:value shape; a database apk wrote never has these, so a file made of
            # nothing else is not an apk database (checked by the caller).
            continue
        saw_any = True
        key = line[0]
        value = line[2:]
        if key == "F":
            rec.dirname = value.strip("/")
        elif key == "R":
            name = value.strip("/")
            if name:
                rec.files.append(f"{rec.dirname}/{name}" if rec.dirname else name)
        elif key not in rec.fields:
            # Per-file keys (a, M, Z) repeat; the package-level keys appear once.
            rec.fields[key] = value
    if rec.fields or rec.files:
        records.append(rec)
    if not saw_any and text.strip():
        raise AnalyzerError("not an apk installed database: no key:value lines")
    return records


def _int(value: str) -> int | None:
    value = value.strip()
    return int(value) if value.isdigit() and len(value) < 19 else None


def package_from_record(rec: _Record, path: str) -> Package | None:
    f = rec.fields
    name = f.get("P", "").strip()
    version = f.get("V", "").strip()
    if not name or not version:
        return None
    metadata: dict[str, object] = {}
    for key, meta in (("m", "maintainer"), ("U", "url"), ("T", "description"), ("c", "commit")):
        value = f.get(key, "").strip()
        if value:
            metadata[meta] = value
    for key, meta in (("I", "installed_size"), ("S", "size"), ("t", "build_time")):
        number = _int(f.get(key, ""))
        if number is not None:
            metadata[meta] = number
    checksum = f.get("C", "").strip()
    if checksum:
        metadata["checksum"] = checksum
    depends: list[str] = []
    conflicts: list[str] = []
    for atom in f.get("D", "").split():
        if atom.startswith("!"):
            conflicts.append(_atom_name(atom[1:]))
        else:
            depends.append(_atom_name(atom))
    if depends:
        metadata["depends"] = list(dict.fromkeys(x for x in depends if x))
    if conflicts:
        metadata["conflicts"] = list(dict.fromkeys(x for x in conflicts if x))
    provides = [_atom_name(atom) for atom in f.get("p", "").split()]
    if provides:
        metadata["provides"] = list(dict.fromkeys(x for x in provides if x))
    license_expr = f.get("L", "").strip()
    if license_expr:
        metadata["license_expression"] = license_expr
    origin = f.get("o", "").strip()
    return Package(
        name=name,
        version=version,
        ecosystem="apk",
        arch=f.get("A", "").strip(),
        source_name=origin or name,
        source_version=version,
        licenses=split_license(license_expr) if license_expr else [],
        locations=[Location(path=path)],
        found_by="apk",
        metadata=metadata,
    )


class ApkAnalyzer(Analyzer):
    name = "apk"
    version = 1

    def wants(self, info: FileInfo) -> bool:
        return info.path in INSTALLED_PATHS

    def analyze(self, info: FileInfo, data: bytes) -> Iterable[Fact]:
        if b"\x00" in data:
            raise AnalyzerError(f"{info.path}: binary data in the apk database")
        text = data.decode("utf-8", errors="replace")
        try:
            records = parse_installed(text)
        except AnalyzerError as exc:
            raise AnalyzerError(f"{info.path}: {exc}") from None
        facts: list[Fact] = []
        for rec in records:
            pkg = package_from_record(rec, info.path)
            if pkg is None:
                continue
            facts.append(pkg)
            if rec.files:
                facts.append(PackageHint(ecosystem="apk", package=pkg.name, files=rec.files))
        if records and not facts:
            raise AnalyzerError(f"{info.path}: no record has both P: and V:")
        return facts
