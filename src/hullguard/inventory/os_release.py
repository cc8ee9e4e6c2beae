"""Which operating system an image is built on.

Reads os-release(5) files and the older per-distro release files. Each file yields its own
OSInfo; the merge step calls ``pick_os`` to choose among them, because an image usually carries
several (os-release plus debian_version, or a redhat-release symlinked to rocky-release) that
disagree in detail.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from hullguard.inventory.base import Analyzer, AnalyzerError, FileInfo
from hullguard.model import Fact, OSInfo

OS_RELEASE_PATHS = ("etc/os-release", "usr/lib/os-release")

# Release files whose first line reads like "<Distro> release <version> (<codename>)". The family
# given here is only a fallback: redhat-release and system-release are copies of (or links to) the
# real distro's file, so the text decides whenever it names a known distro, and an unknown
# rebuild's redhat-release must not pass for RHEL.
_RELEASE_FILES: dict[str, str] = {
    "etc/redhat-release": "",
    "etc/centos-release": "centos",
    "etc/rocky-release": "rocky",
    "etc/almalinux-release": "almalinux",
    "etc/fedora-release": "fedora",
    "etc/oracle-release": "ol",
    "etc/enterprise-release": "ol",
    "etc/system-release": "",
    "etc/photon-release": "photon",
    "etc/mariner-release": "mariner",
    "etc/azurelinux-release": "azurelinux",
    "etc/openEuler-release": "openEuler",
    "etc/SuSE-release": "sles",
    "etc/gentoo-release": "gentoo",
    "etc/arch-release": "arch",
}
_SIMPLE_FILES = ("etc/alpine-release", "etc/debian_version", "etc/lsb-release")

WANTED_PATHS: frozenset[str] = frozenset(OS_RELEASE_PATHS + tuple(_RELEASE_FILES) + _SIMPLE_FILES)

# Longest prefix first: "Red Hat Enterprise Linux" must not be caught by a shorter rule, and
# "CentOS Stream" is still CentOS for matching purposes.
_TEXT_FAMILIES: tuple[tuple[str, str], ...] = (
    ("red hat enterprise linux", "rhel"),
    ("centos", "centos"),
    ("rocky linux", "rocky"),
    ("almalinux", "almalinux"),
    ("fedora", "fedora"),
    ("amazon linux", "amzn"),
    ("oracle linux", "ol"),
    ("enterprise linux enterprise linux", "ol"),
    ("scientific linux", "scientific"),
    ("cloudlinux", "cloudlinux"),
    ("vmware photon", "photon"),
    ("cbl-mariner", "mariner"),
    ("microsoft azure linux", "azurelinux"),
    ("opensuse", "opensuse"),
    ("suse linux enterprise", "sles"),
    ("openeuler", "openEuler"),
)

# Paths closer to the top win when two files disagree on the family.
_PRIORITY_OS_RELEASE = 0
_PRIORITY_USR_OS_RELEASE = 1
_PRIORITY_RELEASE_FILE = 2
_PRIORITY_LSB = 3
_PRIORITY_DEBIAN_VERSION = 4

_MAX_OS_RELEASE = 256 * 1024
_MAX_CONTINUATION = 32
_KEY_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_RELEASE_VERSION_RE = re.compile(r"\brelease\s+v?(\d[\w.\-]*)", re.IGNORECASE)
_ANY_VERSION_RE = re.compile(r"(?<![\w.])(\d+(?:\.\d+)*)(?![\w])")
_PAREN_RE = re.compile(r"\(([^()]*)\)")
_DEBIAN_LIKE = frozenset({"debian", "ubuntu"})
_DISTROLESS_URL = "googlecontainertools/distroless"


def parse_os_release(text: str) -> dict[str, str]:
    """Parse os-release(5) assignments.

    The format is a restricted shell: ``KEY=value`` per line, values optionally in single or
    double quotes, shell escapes inside double quotes and unquoted values, ``#`` comments and
    blank lines. Invalid lines are skipped, as systemd does, rather than failing the whole file.
    """
    out: dict[str, str] = {}
    lines = text.replace("\r\n", "\n").split("\n")
    i = 0
    n = len(lines)
    while i < n:
        line = lines[i].strip()
        i += 1
        if not line or line[0] == "#":
            continue
        key, eq, raw = line.partition("=")
        key = key.rstrip()
        if not eq or not _KEY_RE.match(key):
            continue
        raw = raw.lstrip()
        if not any(c in raw for c in "\"'\\"):
            out[key] = raw.rstrip()
            continue
        # A quoted value may span lines, and a trailing backslash continues the line. An
        # unterminated quote is given a few lines, not the rest of the file, so that a broken
        # line costs one assignment and hostile input cannot make this quadratic.
        value, done = _shell_value(raw)
        j = i
        while not done and j < n and j - i < _MAX_CONTINUATION:
            raw = raw + "\n" + lines[j]
            j += 1
            value, done = _shell_value(raw)
        if done:
            out[key] = value
            i = j
    return out


def _shell_value(raw: str) -> tuple[str, bool]:
    """Decode one shell-quoted value; the bool is False while a quote or escape is unfinished."""
    buf: list[str] = []
    # Trailing unquoted whitespace is dropped, but whitespace inside quotes is kept.
    keep = 0
    quote = ""
    i = 0
    n = len(raw)
    while i < n:
        c = raw[i]
        if quote == "'":
            if c == "'":
                quote = ""
                keep = len(buf)
            else:
                buf.append(c)
        elif quote == '"':
            if c == '"':
                quote = ""
                keep = len(buf)
            elif c == "\\":
                if i + 1 >= n:
                    return "".join(buf), False
                nxt = raw[i + 1]
                i += 1
                if nxt == "\n":
                    pass
                elif nxt in '"\\`$':
                    buf.append(nxt)
                else:
                    # Shell keeps the backslash before characters it does not escape.
                    buf.append("\\")
                    buf.append(nxt)
            else:
                buf.append(c)
        elif c in "'\"":
            quote = c
        elif c == "\\":
            if i + 1 >= n:
                return "".join(buf), False
            nxt = raw[i + 1]
            i += 1
            if nxt != "\n":
                buf.append(nxt)
                keep = len(buf)
        else:
            buf.append(c)
            if not c.isspace():
                keep = len(buf)
        i += 1
    if quote:
        return "".join(buf), False
    return "".join(buf[:keep]), True


def os_info_from_os_release(fields: dict[str, str]) -> OSInfo:
    family = fields.get("ID", "").strip().lower() or "linux"
    id_like = fields.get("ID_LIKE", "").lower().split()
    version = fields.get("VERSION", "")
    codename = fields.get("VERSION_CODENAME", "") or fields.get("UBUNTU_CODENAME", "")
    if not codename and (family in _DEBIAN_LIKE or _DEBIAN_LIKE.intersection(id_like)):
        codename = _codename_from_version(version)
    name = fields.get("PRETTY_NAME", "") or " ".join(x for x in (fields.get("NAME", ""), version) if x)
    distroless = (
        fields.get("PRETTY_NAME", "").strip().lower() == "distroless"
        or _DISTROLESS_URL in fields.get("HOME_URL", "").lower()
    )
    return OSInfo(
        family=family,
        release=fields.get("VERSION_ID", "").strip(),
        codename=codename.strip().lower(),
        name=name.strip(),
        id_like=id_like,
        distroless=distroless,
        cpe=fields.get("CPE_NAME", "").strip(),
    )


def _codename_from_version(version: str) -> str:
    # Debian writes "12 (bookworm)", Ubuntu "20.04.6 LTS (Focal Fossa)" and, before 16.04,
    # "14.04.6 LTS, Trusty Tahr": the codename is the first word of the adjective-animal pair.
    m = _PAREN_RE.search(version)
    text = m.group(1) if m else version.partition(",")[2]
    words = text.split()
    return words[0].lower() if words else ""


def parse_release_file(path: str, text: str) -> OSInfo | None:
    """Parse a one-line "<Distro> release <version> (<codename>)" file."""
    first = ""
    for line in text.replace("\r\n", "\n").split("\n"):
        if line.strip():
            first = line.strip()
            break
    if not first:
        return None
    lowered = first.lower()
    family = _RELEASE_FILES.get(path, "")
    for prefix, fam in _TEXT_FAMILIES:
        if lowered.startswith(prefix):
            family = fam
            break
    if not family:
        return None
    m = _RELEASE_VERSION_RE.search(first) or _ANY_VERSION_RE.search(first)
    release = m.group(1).rstrip(".-") if m else ""
    if family == "sles" and path == "etc/SuSE-release":
        release = _suse_legacy_version(text) or release
    codename = ""
    paren = _PAREN_RE.search(first[m.end() :] if m else first)
    # "(x86_64)" in old SuSE-release and "(Core)" in CentOS 7 name an arch or an edition, not a
    # release codename, but Rocky/Alma/RHEL really do name releases that way.
    if paren and family not in {"sles", "opensuse", "centos", "amzn"}:
        codename = paren.group(1).strip().lower()
    return OSInfo(family=family, release=release, codename=codename, name=first)


def _suse_legacy_version(text: str) -> str:
    # SLES 11/12 kept the version in "VERSION = 12" and "PATCHLEVEL = 5" lines below the title.
    fields: dict[str, str] = {}
    for line in text.splitlines()[1:]:
        key, eq, value = line.partition("=")
        if eq:
            fields[key.strip().upper()] = value.strip()
    version = fields.get("VERSION", "")
    patch = fields.get("PATCHLEVEL", "")
    if version and patch and patch != "0":
        return f"{version}.{patch}"
    return version


def parse_debian_version(text: str) -> OSInfo | None:
    value = text.strip().split("\n", 1)[0].strip()
    if not value:
        return None
    if value[0].isdigit():
        return OSInfo(family="debian", release=value)
    # Testing and unstable say "trixie/sid": a codename, no number yet.
    codename = value.split("/", 1)[0].strip().lower()
    if not codename or not codename.replace("-", "").isalnum():
        return None
    return OSInfo(family="debian", codename=codename)


def parse_lsb_release(text: str) -> OSInfo | None:
    fields = parse_os_release(text)
    family = fields.get("DISTRIB_ID", "").strip().lower()
    if not family:
        return None
    return OSInfo(
        family=family,
        release=fields.get("DISTRIB_RELEASE", "").strip(),
        codename=fields.get("DISTRIB_CODENAME", "").strip().lower(),
        name=fields.get("DISTRIB_DESCRIPTION", "").strip(),
    )


def parse_alpine_release(text: str) -> OSInfo | None:
    value = text.strip().split("\n", 1)[0].strip()
    if not value or not value[0].isdigit() or " " in value:
        return None
    return OSInfo(family="alpine", release=value)


class OSReleaseAnalyzer(Analyzer):
    name = "os-release"
    version = 1
    max_size = _MAX_OS_RELEASE

    def wants(self, info: FileInfo) -> bool:
        return info.path in WANTED_PATHS

    def analyze(self, info: FileInfo, data: bytes) -> Iterable[Fact]:
        if b"\x00" in data:
            raise AnalyzerError(f"{info.path}: binary data in a text file")
        text = data.decode("utf-8", errors="replace")
        path = info.path
        result: OSInfo | None
        if path in OS_RELEASE_PATHS:
            fields = parse_os_release(text)
            if not fields.get("ID") and not fields.get("NAME"):
                if text.strip():
                    raise AnalyzerError(f"{path}: no ID or NAME assignment")
                return []
            result = os_info_from_os_release(fields)
        elif path == "etc/alpine-release":
            result = parse_alpine_release(text)
        elif path == "etc/debian_version":
            result = parse_debian_version(text)
        elif path == "etc/lsb-release":
            result = parse_lsb_release(text)
        else:
            result = parse_release_file(path, text)
        return [result] if result is not None else []


def _priority(path: str) -> int:
    if path == "etc/os-release":
        return _PRIORITY_OS_RELEASE
    if path == "usr/lib/os-release":
        return _PRIORITY_USR_OS_RELEASE
    if path == "etc/debian_version":
        return _PRIORITY_DEBIAN_VERSION
    if path == "etc/lsb-release":
        return _PRIORITY_LSB
    return _PRIORITY_RELEASE_FILE


def _same_family(a: OSInfo, b: OSInfo) -> bool:
    return a.family == b.family


def pick_os(candidates: list[tuple[str, OSInfo]]) -> OSInfo | None:
    """Choose the image's OS among the facts of several release files, by (path, OSInfo).

    The most authoritative file decides the family; files that agree on the family fill fields
    it leaves empty. Files of another family are ignored: Ubuntu ships a debian_version
    ("bookworm/sid") that must not leak into an Ubuntu result.
    """
    if not candidates:
        return None
    ranked = sorted(candidates, key=lambda c: _priority(c[0]))
    best = ranked[0][1]
    out = OSInfo(
        family=best.family,
        release=best.release,
        codename=best.codename,
        name=best.name,
        id_like=list(best.id_like),
        distroless=best.distroless,
        cpe=best.cpe,
    )
    for _path, other in ranked[1:]:
        if not _same_family(out, other):
            continue
        if not out.release:
            out.release = other.release
        elif out.family == "alpine" and other.release.startswith(out.release + "."):
            # os-release on some Alpine builds shortens VERSION_ID; alpine-release is exact.
            out.release = other.release
        out.codename = out.codename or other.codename
        out.name = out.name or other.name
        out.cpe = out.cpe or other.cpe
        out.id_like = out.id_like or list(other.id_like)
        out.distroless = out.distroless or other.distroless
    return out
