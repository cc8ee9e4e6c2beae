"""Debian packages: the dpkg database and the per-package files around it.

Four kinds of file feed this analyzer, each on its own (the merge step joins them by package
name):

- ``var/lib/dpkg/status``: one deb822 paragraph per package dpkg knows about;
- ``var/lib/dpkg/status.d/NAME``: distroless images write one paragraph per file instead;
- ``var/lib/dpkg/info/NAME[:ARCH].list``: the files a package owns;
- ``usr/share/doc/NAME/copyright``: the package's licences, machine-readable (DEP-5) or not.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from hullguard.inventory.base import Analyzer, AnalyzerError, FileInfo
from hullguard.model import Fact, Location, Package, PackageHint

STATUS_PATH = "var/lib/dpkg/status"
_STATUS_D = "var/lib/dpkg/status.d/"
_INFO = "var/lib/dpkg/info/"
_DOC = "usr/share/doc/"
_COPYRIGHT = "/copyright"

# One match per field (its name, and its value with continuation lines: those starting with a
# space or tab) or per blank line, which ends a paragraph. Policy lets parsers treat
# whitespace-only lines as blank too. Names are case-insensitive and may hold any printable
# ASCII but ':', not starting with '#' or '-'. The patterns work on bytes, where IGNORECASE folds
# ASCII only, and each match starts at the newline before its line rather than at "^": a literal
# first character lets the engine jump from line to line instead of trying every offset, which
# makes the status file about three times faster.
_ANY_FIELD = re.compile(
    rb"\n(?:([!\"$-,.-9;-~][!-9;-~]*):[ \t]*([^\n]*(?:\n[ \t]+[^ \t\n][^\n]*)*)|[ \t]*(?=\n|\Z))", re.IGNORECASE
)
# The status file is the hot path: naming only the fields we use lets the regex engine skip the
# long Description and Conffiles values instead of capturing them.
_STATUS_FIELDS = (
    "package",
    "version",
    "status",
    "architecture",
    "source",
    "maintainer",
    "installed-size",
    "pre-depends",
    "depends",
    "provides",
)
_STATUS_FIELD = re.compile(
    rb"\n(?:(" + "|".join(_STATUS_FIELDS).encode() + rb"):[ \t]*([^\n]*(?:\n[ \t]+[^ \t\n][^\n]*)*)|[ \t]*(?=\n|\Z))",
    re.IGNORECASE,
)
_FIELD_NAMES = {name.encode(): name for name in _STATUS_FIELDS}
# A relation's name ends where its ":arch" qualifier, "(version)", "[arch list]" or
# "<build profile>" begins; each alternative starts the field or follows ',' or '|'.
_RELATION_NAME = re.compile(r"(?:^|[,|])\s*([^\s,|(\[<:]+)")
_VERSION_IN_PARENS = re.compile(r"\(([^)]*)\)")
_COMMON_LICENSES = re.compile(r"/usr/share/common-licenses/([A-Za-z0-9][A-Za-z0-9.+_\-]*)")
_LICENSE_SPLIT = re.compile(r"(?:\s*,)?\s+(?:or|and)\s+|\s*,\s*", re.IGNORECASE)

# Third word of Status. These states leave the package's files on disk, which is what a
# scanner cares about: "triggers-*" packages are fully configured and only await a trigger run,
# "unpacked"/"half-configured" have every file in place but postinst has not finished. Packages
# that are "not-installed", "config-files" (only conffiles left) or "half-installed" (an
# interrupted unpack or removal, file set unknown) are not reported.
PRESENT_STATES = frozenset({"installed", "triggers-pending", "triggers-awaited", "half-configured", "unpacked"})


def parse_paragraphs(text: str | bytes, _pattern: re.Pattern[bytes] = _ANY_FIELD) -> list[dict[str, str]]:
    """Split deb822 text into paragraphs of {lower-cased field name: raw value}.

    Values keep their continuation lines (joined by newlines, leading whitespace kept) so that
    callers can treat a field as folded or multiline as Policy says for that field. The first
    occurrence of a duplicated field wins: Policy forbids duplicates and dpkg refuses them.
    """
    data = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
    # The leading newline lets the first line match like every other line.
    data = b"\n" + data.replace(b"\r\n", b"\n")
    names = _FIELD_NAMES
    out: list[dict[str, str]] = []
    fields: dict[str, str] = {}
    for raw_name, value in _pattern.findall(data):
        if not raw_name:
            if fields:
                out.append(fields)
                fields = {}
            continue
        raw_name = raw_name.lower()
        name = names.get(raw_name) or raw_name.decode("ascii")
        if name not in fields:
            fields[name] = value.decode("utf-8", "replace")
    if fields:
        out.append(fields)
    return out


def first_line(value: str) -> str:
    return value.split("\n", 1)[0].strip()


def fold(value: str) -> str:
    return " ".join(value.split())


def relation_names(value: str) -> list[str]:
    """Bare package names of a Depends-style field, all alternatives included, in order.

    ``a (>= 1) | b:any [amd64] <!nocheck>, c`` gives ``["a", "b", "c"]``.
    """
    return list(dict.fromkeys(_RELATION_NAME.findall(value)))


def _source(fields: dict[str, str], name: str, version: str) -> tuple[str, str]:
    raw = fold(fields.get("source", ""))
    if not raw:
        return name, version
    m = _VERSION_IN_PARENS.search(raw)
    src_name = raw[: m.start()].strip() if m else raw.split(" ", 1)[0]
    src_version = m.group(1).strip() if m else ""
    return src_name or name, src_version or version


def _installed_size(value: str) -> int | None:
    value = value.strip()
    return int(value) if value.isdigit() and len(value) < 19 else None


def package_from_paragraph(fields: dict[str, str], path: str) -> Package | None:
    name = first_line(fields.get("package", ""))
    version = first_line(fields.get("version", ""))
    if not name or not version:
        return None
    status = fields.get("status")
    if status is not None:
        words = status.split()
        if len(words) < 3 or words[2] not in PRESENT_STATES:
            return None
        state = words[2]
    else:
        # status.d entries and some hand-built images have no Status line: the paragraph
        # exists only because the package was installed.
        state = "installed"
    source_name, source_version = _source(fields, name, version)
    metadata: dict[str, object] = {}
    maintainer = first_line(fields.get("maintainer", ""))
    if maintainer:
        metadata["maintainer"] = maintainer
    size = _installed_size(fields.get("installed-size", ""))
    if size is not None:
        metadata["installed_size"] = size
    # Pre-Depends is a stronger Depends: both are needed for the package to work.
    depends = relation_names(fields.get("pre-depends", "") + "," + fields.get("depends", ""))
    if depends:
        metadata["depends"] = depends
    provides = relation_names(fields.get("provides", ""))
    if provides:
        metadata["provides"] = provides
    if state != "installed":
        metadata["status"] = state
    return Package(
        name=name,
        version=version,
        ecosystem="deb",
        arch=first_line(fields.get("architecture", "")),
        source_name=source_name,
        source_version=source_version,
        locations=[Location(path=path)],
        found_by="dpkg",
        metadata=metadata,
    )


def parse_status(data: bytes, path: str) -> list[Package]:
    """Packages present according to a dpkg status file (or one status.d entry)."""
    paragraphs = parse_paragraphs(data, _STATUS_FIELD)
    if not paragraphs:
        if data.strip():
            raise AnalyzerError(f"{path}: not a deb822 control file")
        return []
    packages: list[Package] = []
    named = 0
    for fields in paragraphs:
        if "package" in fields:
            named += 1
        pkg = package_from_paragraph(fields, path)
        if pkg is not None:
            packages.append(pkg)
    if not named:
        raise AnalyzerError(f"{path}: no Package field in any paragraph")
    return packages


def parse_list(text: str) -> list[str]:
    """Paths from an info/NAME.list file, relative to the image root like every Location."""
    files: list[str] = []
    for line in text.split("\n"):
        line = line.rstrip("\r")
        if not line.startswith("/"):
            continue
        rel = line.lstrip("/")
        if rel and rel != ".":
            files.append(rel)
    return files


def split_license(expr: str) -> list[str]:
    """Short names out of a DEP-5 License expression ("GPL-2+ or Artistic")."""
    return [part.strip() for part in _LICENSE_SPLIT.split(expr) if part.strip()]


def parse_copyright(text: str) -> list[str]:
    """Licence short names from a copyright file, de-duplicated in order of appearance."""
    found: list[str] = []
    text = text.replace("\r\n", "\n")
    head = text.lstrip()[:200].lower()
    if head.startswith(("format:", "format-specification:")):
        paragraphs = parse_paragraphs(text)
        for i, fields in enumerate(paragraphs):
            # Stand-alone "License:" paragraphs only hold the text of licences that a header or
            # Files paragraph already names; counting them would add licences nothing uses.
            if i and "files" not in fields:
                continue
            lic = first_line(fields.get("license", ""))
            if lic:
                found.extend(split_license(lic))
    if not found:
        found.extend(m.rstrip(".") for m in _COMMON_LICENSES.findall(text))
    return list(dict.fromkeys(x for x in found if x))


def _strip_arch(name: str) -> str:
    return name.split(":", 1)[0]


class DpkgAnalyzer(Analyzer):
    name = "dpkg"
    version = 1

    def wants(self, info: FileInfo) -> bool:
        path = info.path
        if path == STATUS_PATH:
            return True
        if path.startswith(_STATUS_D):
            rest = path[len(_STATUS_D) :]
            return bool(rest) and "/" not in rest and not rest.endswith(".md5sums")
        if path.startswith(_INFO):
            rest = path[len(_INFO) :]
            return rest.endswith(".list") and len(rest) > 5 and "/" not in rest
        if path.startswith(_DOC) and path.endswith(_COPYRIGHT):
            middle = path[len(_DOC) : -len(_COPYRIGHT)]
            return bool(middle) and "/" not in middle
        return False

    def analyze(self, info: FileInfo, data: bytes) -> Iterable[Fact]:
        path = info.path
        if path == STATUS_PATH or path.startswith(_STATUS_D):
            if b"\x00" in data:
                raise AnalyzerError(f"{path}: binary data in a dpkg database file")
            return parse_status(data, path)
        text = data.decode("utf-8", errors="replace")
        if path.startswith(_INFO):
            name = _strip_arch(path[len(_INFO) : -len(".list")])
            files = parse_list(text)
            if not files:
                return []
            return [PackageHint(ecosystem="deb", package=name, files=files)]
        if path.startswith(_DOC):
            name = path[len(_DOC) : -len(_COPYRIGHT)]
            licenses = parse_copyright(text)
            if not licenses:
                return []
            return [PackageHint(ecosystem="deb", package=name, licenses=licenses)]
        return []
