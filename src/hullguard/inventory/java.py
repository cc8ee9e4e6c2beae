"""Java archives: jar, war, ear and friends, including archives nested inside them.

What an archive is comes from, in order of trust: ``META-INF/maven/**/pom.properties`` (written
by Maven and Gradle's maven-publish), ``META-INF/MANIFEST.MF``, and the file name. Shaded and
uber jars carry the pom.properties of every artifact folded into them; one of those (if any) is
the jar itself and the rest are reported as embedded artifacts.

Archives are hostile input: the number of entries, the bytes decompressed, the compression ratio
of what is read, the nesting depth and the number of nested archives are all bounded, and only
``AnalyzerError`` leaves ``analyze``.
"""

from __future__ import annotations

import hashlib
import io
import lzma
import re
import struct
import zipfile
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar
from xml.parsers import expat

from hullguard import purl
from hullguard.inventory.base import Analyzer, AnalyzerError, FileInfo
from hullguard.model import Fact, Package

ARCHIVE_EXTENSIONS = frozenset({".jar", ".war", ".ear", ".jpi", ".hpi", ".par", ".sar", ".nar", ".kar", ".rar"})

MAX_DEPTH = 4  # the outermost archive is depth 0
MAX_ARCHIVES = 2000  # nested archives opened per analyzed file
MAX_ENTRIES_PER_ARCHIVE = 200_000
MAX_TOTAL_ENTRIES = 1_000_000
MAX_TOTAL_BYTES = 256 * 1024 * 1024  # decompressed, across everything read from one file
MAX_NESTED_SIZE = 128 * 1024 * 1024
MAX_METADATA_SIZE = 1024 * 1024  # one manifest, pom.properties or pom.xml
# Real entries rarely compress better than 20:1 (text) and nested jars barely compress at all;
# far beyond that on a sizeable entry is a bomb.
MAX_RATIO = 200
RATIO_MIN_SIZE = 1024 * 1024

# Everything zipfile and the decompressors raise on corrupt input (bz2 raises OSError/ValueError).
_ZIP_ERRORS: tuple[type[BaseException], ...] = (
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    NotImplementedError,
    RuntimeError,
    zlib.error,
    lzma.LZMAError,
    EOFError,
    OSError,
    ValueError,
    struct.error,
    KeyError,
    IndexError,
    OverflowError,
    UnicodeDecodeError,
)

_VERSION_IN_NAME = re.compile(r"^(?P<name>.+?)-(?P<version>\d[^-]*(?:-.+)?)$")
_GROUP_LIKE = re.compile(r"^[A-Za-z_][\w-]*(?:\.[\w-]+)+$")


@dataclass
class Budget:
    """What is left to spend on one analyzed file, shared by every nested archive in it."""

    bytes_left: int
    entries_left: int
    archives_left: int
    skipped: list[str] = field(default_factory=list)

    def note(self, reason: str) -> None:
        if len(self.skipped) < 100:
            self.skipped.append(reason)


@dataclass
class PomProperties:
    path: str
    group_id: str
    artifact_id: str
    version: str


# ---------------------------------------------------------------------------------------------
# Small parsers


def parse_properties(text: str) -> dict[str, str]:
    """Java .properties: ``key=value``, ``key: value`` or ``key value``; # and ! comments;
    backslash continuation lines; \\uXXXX escapes."""
    out: dict[str, str] = {}
    logical: list[str] = []
    for raw in text.splitlines():
        line = raw.lstrip()
        if not logical and (not line or line[0] in "#!"):
            continue
        if line.endswith("\\") and not line.endswith("\\\\"):
            logical.append(line[:-1])
            continue
        logical.append(line)
        full = "".join(logical)
        logical = []
        m = re.match(r"((?:[^\\:=\s]|\\.)+)\s*[:=\s]\s*(.*)$", full)
        if m is None:
            out[_unescape_properties(full.strip())] = ""
            continue
        out[_unescape_properties(m.group(1))] = _unescape_properties(m.group(2).strip())
    return out


def _unescape_properties(text: str) -> str:
    if "\\" not in text:
        return text

    def sub(m: re.Match[str]) -> str:
        esc = m.group(1)
        if esc.startswith("u"):
            try:
                return chr(int(esc[1:], 16))
            except ValueError:
                return esc
        return {"t": "\t", "n": "\n", "r": "\r", "f": "\f"}.get(esc, esc)

    return re.sub(r"\\(u[0-9a-fA-F]{4}|.)", sub, text)


def parse_manifest(text: str) -> dict[str, str]:
    """The main section of a JAR manifest. Lines are wrapped at 72 bytes; a continuation line
    starts with exactly one space that is not part of the value. Keys are case-insensitive."""
    out: dict[str, str] = {}
    key = ""
    for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        if not line:
            if out:
                break  # end of the main section; per-entry sections follow
            continue
        if line.startswith(" "):
            if key:
                out[key] += line[1:]
            continue
        name, sep, value = line.partition(":")
        if not sep:
            key = ""
            continue
        key = name.strip().lower()
        out[key] = value[1:] if value.startswith(" ") else value
    return {k: v.strip() for k, v in out.items()}


class _PomLicenseReader:
    """Reads ``/project/licenses/license/{name,url}`` with expat, refusing DTDs: entity
    expansion (billion laughs) and external entities are only reachable through a DOCTYPE."""

    def __init__(self) -> None:
        self.stack: list[str] = []
        self.text: list[str] = []
        self.current: dict[str, str] = {}
        self.licenses: list[dict[str, str]] = []

    def parse(self, data: bytes) -> list[dict[str, str]]:
        parser = expat.ParserCreate()
        parser.StartDoctypeDeclHandler = self._refuse
        parser.EntityDeclHandler = self._refuse
        parser.ExternalEntityRefHandler = self._refuse
        parser.StartElementHandler = self._start
        parser.EndElementHandler = self._end
        parser.CharacterDataHandler = self._chars
        parser.Parse(data, True)
        return self.licenses

    @staticmethod
    def _refuse(*_args: object) -> None:
        raise ValueError("pom.xml with a DTD")

    def _start(self, name: str, _attrs: dict[str, str]) -> None:
        self.stack.append(name.rpartition(":")[2])
        self.text = []
        if self.stack == ["project", "licenses", "license"]:
            self.current = {}

    def _chars(self, data: str) -> None:
        if len(self.stack) == 4 and self.stack[1] == "licenses" and len(self.text) < 256:
            self.text.append(data)

    def _end(self, _name: str) -> None:
        path = self.stack
        if len(path) == 4 and path[:3] == ["project", "licenses", "license"] and path[3] in ("name", "url"):
            self.current[path[3]] = "".join(self.text).strip()
        elif path == ["project", "licenses", "license"] and self.current and len(self.licenses) < 50:
            self.licenses.append(self.current)
        self.stack.pop()


def pom_licenses(data: bytes) -> list[str]:
    """License names (or URLs when unnamed) declared in a pom.xml; [] if it cannot be read."""
    try:
        found = _PomLicenseReader().parse(data)
    except (expat.ExpatError, ValueError, RecursionError):
        return []
    out: list[str] = []
    for lic in found:
        value = lic.get("name") or lic.get("url") or ""
        if value and "${" not in value and value not in out:
            out.append(value)
    return out


def split_file_name(file_name: str) -> tuple[str, str]:
    """``commons-lang3-3.12.0.jar`` -> (``commons-lang3``, ``3.12.0``)."""
    base = file_name.rsplit("/", 1)[-1]
    stem = base.rsplit(".", 1)[0] if "." in base else base
    m = _VERSION_IN_NAME.match(stem)
    if m is None:
        return stem, ""
    return m.group("name"), m.group("version")


def _zip_entry_count(data: bytes) -> int:
    """Entry count from the end-of-central-directory record, read before zipfile builds an
    object per entry. -1 when there is no such record."""
    tail_start = max(0, len(data) - (0xFFFF + 22))
    eocd = data.rfind(b"PK\x05\x06", tail_start)
    if eocd < 0 or eocd + 22 > len(data):
        return -1
    count = struct.unpack_from("<H", data, eocd + 10)[0]
    if count == 0xFFFF and eocd >= 20 and data[eocd - 20 : eocd - 16] == b"PK\x06\x07":
        z64_off = struct.unpack_from("<Q", data, eocd - 12)[0]
        if z64_off + 40 <= len(data) and data[z64_off : z64_off + 4] == b"PK\x06\x06":
            count = struct.unpack_from("<Q", data, z64_off + 32)[0]
    return count


def _is_archive_name(name: str) -> bool:
    return name[-4:].lower() in ARCHIVE_EXTENSIONS


# ---------------------------------------------------------------------------------------------


def _maven_package(
    group_id: str,
    artifact_id: str,
    version: str,
    meta: dict[str, Any],
    licenses: list[str],
    found_by: str,
) -> Package:
    meta = (
        {"group_id": group_id, "artifact_id": artifact_id, **meta}
        if group_id
        else {
            "artifact_id": artifact_id,
            **meta,
        }
    )
    return Package(
        name=f"{group_id}:{artifact_id}" if group_id else artifact_id,
        version=version,
        ecosystem="maven",
        purl=purl.build("maven", artifact_id, version, group_id),
        licenses=licenses,
        found_by=found_by,
        metadata=meta,
    )


def _artifact_matches_name(artifact_id: str, name: str) -> bool:
    # A renamed or suffixed jar (app-core-all.jar for app-core) still counts as the artifact.
    if not artifact_id or not name:
        return False
    return artifact_id == name or name.startswith(artifact_id) or artifact_id.startswith(name)


_MANIFEST_NAME_KEYS = (
    "implementation-title",
    "bundle-symbolicname",
    "bundle-name",
    "automatic-module-name",
    "specification-title",
)
_MANIFEST_VERSION_KEYS = ("implementation-version", "bundle-version", "specification-version")


def _norm(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", text.lower())


def _manifest_says(pom: PomProperties, manifest: dict[str, str]) -> bool | None:
    """Whether the manifest describes the same artifact as ``pom``; None if it names nothing."""
    names = [manifest.get(k, "").split(";", 1)[0].strip() for k in _MANIFEST_NAME_KEYS]
    names = [_norm(n) for n in names if n]
    if not names:
        return None
    artifact = _norm(pom.artifact_id)
    if artifact and any(artifact in n or n.endswith(artifact) for n in names):
        return True
    versions = {_clean(manifest.get(k, "")) for k in _MANIFEST_VERSION_KEYS} - {""}
    return bool(pom.version) and pom.version in versions


def _choose_main(poms: list[PomProperties], name: str, manifest: dict[str, str]) -> PomProperties | None:
    """Which pom.properties describes the archive itself (None: it only embeds others)."""
    if not poms:
        return None
    exact = [p for p in poms if p.artifact_id == name]
    if exact:
        return exact[0]
    loose = [p for p in poms if _artifact_matches_name(p.artifact_id, name)]
    if len(loose) == 1:
        return loose[0]
    if len(poms) == 1:
        # A renamed jar (app.jar) is usually still its one artifact, unless the manifest names
        # something else, as in a jar that shades one library and has no pom of its own.
        return poms[0] if _manifest_says(poms[0], manifest) is not False else None
    agreed = [p for p in poms if _manifest_says(p, manifest)]
    return agreed[0] if len(agreed) == 1 else None


_DOMAIN_PREFIXES = ("com.", "org.", "net.", "io.", "javax.", "jakarta.", "dev.", "edu.", "ch.", "de.")


def _guess_group(manifest: dict[str, str], artifact: str) -> str:
    """A groupId from the OSGi or JPMS name, which by convention starts with the group
    (com.google.inject for guice). Only reverse-domain names are trusted."""
    for key in ("bundle-symbolicname", "automatic-module-name"):
        value = manifest.get(key, "").split(";", 1)[0].strip()
        if value.startswith(_DOMAIN_PREFIXES) and _GROUP_LIKE.match(value):
            head, _, last = value.rpartition(".")
            # org.slf4j.slf4j-api names the artifact in its last segment; drop it.
            return head if _norm(last) == _norm(artifact) else value
    return ""


def _clean(value: str) -> str:
    # Unfiltered Maven placeholders say nothing about the version.
    return "" if "${" in value else value


class JavaAnalyzer(Analyzer):
    name: ClassVar[str] = "java"
    version: ClassVar[int] = 1
    max_size: ClassVar[int] = 512 * 1024 * 1024

    def wants(self, info: FileInfo) -> bool:
        return info.path[-4:].lower() in ARCHIVE_EXTENSIONS

    def analyze(self, info: FileInfo, data: bytes) -> Iterable[Fact]:
        budget = Budget(MAX_TOTAL_BYTES, MAX_TOTAL_ENTRIES, MAX_ARCHIVES)
        try:
            zf = self._open(data, budget)
        except AnalyzerError:
            raise
        except _ZIP_ERRORS as exc:
            raise AnalyzerError(f"{info.path}: not a readable zip archive: {exc}") from exc
        out = list(self._archive(zf, data, info.path, [info.path], 0, budget))
        if not out and budget.skipped:
            # Nothing found and something refused (a bomb, a broken entry): say why.
            raise AnalyzerError(f"{info.path}: {budget.skipped[0]}")
        return out

    @staticmethod
    def _open(data: bytes, budget: Budget) -> zipfile.ZipFile:
        count = _zip_entry_count(data)
        if count < 0:
            raise AnalyzerError("no zip end-of-central-directory record")
        if count > MAX_ENTRIES_PER_ARCHIVE or count > budget.entries_left:
            raise AnalyzerError(f"archive has too many entries ({count})")
        budget.entries_left -= count
        return zipfile.ZipFile(io.BytesIO(data))

    @staticmethod
    def _read(zf: zipfile.ZipFile, entry: zipfile.ZipInfo, cap: int, budget: Budget) -> bytes | None:
        size = entry.file_size
        if size > cap or size > budget.bytes_left:
            budget.note(f"{entry.filename}: {size} bytes over the budget")
            return None
        if size > RATIO_MIN_SIZE and size > MAX_RATIO * max(entry.compress_size, 1):
            budget.note(f"{entry.filename}: compression ratio over {MAX_RATIO}")
            return None
        try:
            with zf.open(entry) as fh:
                # zipfile stops at the declared size, so this read cannot balloon.
                out = fh.read(size + 1)
        except _ZIP_ERRORS as exc:
            budget.note(f"{entry.filename}: {exc}")
            return None
        budget.bytes_left -= len(out)
        return out

    def _archive(
        self,
        zf: zipfile.ZipFile,
        data: bytes,
        file_name: str,
        chain: list[str],
        depth: int,
        budget: Budget,
    ) -> Iterator[Package]:
        manifest_entry: zipfile.ZipInfo | None = None
        pom_entries: list[zipfile.ZipInfo] = []
        pom_xml: dict[str, zipfile.ZipInfo] = {}
        nested: list[zipfile.ZipInfo] = []
        for entry in zf.infolist():
            name = entry.filename
            if name.endswith("/"):
                continue
            upper = name.upper()
            if upper == "META-INF/MANIFEST.MF":
                manifest_entry = entry
            elif "META-INF/MAVEN/" in upper:
                if name.endswith("/pom.properties"):
                    pom_entries.append(entry)
                elif name.endswith("/pom.xml"):
                    pom_xml[name[: -len("pom.xml")]] = entry
            elif _is_archive_name(name):
                nested.append(entry)

        manifest: dict[str, str] = {}
        if manifest_entry is not None:
            raw = self._read(zf, manifest_entry, MAX_METADATA_SIZE, budget)
            if raw is not None:
                manifest = parse_manifest(raw.decode("utf-8", "replace"))

        poms: list[PomProperties] = []
        seen: set[tuple[str, str, str]] = set()
        for entry in pom_entries[:1000]:
            raw = self._read(zf, entry, MAX_METADATA_SIZE, budget)
            if raw is None:
                continue
            props = parse_properties(raw.decode("latin-1"))
            # META-INF/maven/<groupId>/<artifactId>/pom.properties names both when the file
            # itself leaves them out.
            parts = entry.filename.split("/")
            group = props.get("groupId") or (parts[-3] if len(parts) >= 4 else "")
            artifact = props.get("artifactId") or (parts[-2] if len(parts) >= 3 else "")
            version = _clean(props.get("version", ""))
            if not artifact or (group, artifact, version) in seen:
                continue
            seen.add((group, artifact, version))
            poms.append(PomProperties(entry.filename, group, artifact, version))

        base_name, name_version = split_file_name(file_name)
        main = _choose_main(poms, base_name, manifest)
        nested_meta: dict[str, Any] = {"path_in_archive": ":".join(chain)} if len(chain) > 1 else {}
        manifest_license = manifest.get("bundle-license", "")
        manifest_licenses = [manifest_license] if manifest_license and "${" not in manifest_license else []
        sha1 = hashlib.sha1(data).hexdigest()

        for pom in poms:
            licenses = self._licenses(zf, pom, pom_xml, budget)
            meta = dict(nested_meta)
            meta["pom_properties"] = pom.path
            if pom is main:
                meta["sha1"] = sha1
                licenses = licenses or manifest_licenses
            else:
                meta["embedded"] = True
            yield _maven_package(pom.group_id, pom.artifact_id, pom.version, meta, licenses, self.name)

        if main is None:
            pkg = self._from_manifest(manifest, base_name, name_version, nested_meta, manifest_licenses)
            if pkg is not None:
                pkg.metadata["sha1"] = sha1
                yield pkg

        if depth + 1 > MAX_DEPTH:
            if nested:
                budget.note(f"{file_name}: nested archives deeper than {MAX_DEPTH} not read")
            return
        for entry in nested:
            if budget.archives_left <= 0:
                budget.note("too many nested archives")
                return
            budget.archives_left -= 1
            inner = self._read(zf, entry, MAX_NESTED_SIZE, budget)
            if inner is None:
                continue
            try:
                inner_zf = self._open(inner, budget)
                yield from self._archive(inner_zf, inner, entry.filename, [*chain, entry.filename], depth + 1, budget)
            except (AnalyzerError, *_ZIP_ERRORS) as exc:
                # One broken library inside a war should not hide the others.
                budget.note(f"{entry.filename}: {exc}")

    def _licenses(
        self, zf: zipfile.ZipFile, pom: PomProperties, pom_xml: dict[str, zipfile.ZipInfo], budget: Budget
    ) -> list[str]:
        entry = pom_xml.get(pom.path[: -len("pom.properties")])
        if entry is None:
            return []
        # Most poms declare no licences; skip the XML parse for them. (A UTF-16 pom would be
        # missed here, which costs a licence, never a package.)
        raw = self._read(zf, entry, MAX_METADATA_SIZE, budget)
        return pom_licenses(raw) if raw is not None and b"licenses" in raw else []

    def _from_manifest(
        self,
        manifest: dict[str, str],
        base_name: str,
        name_version: str,
        meta: dict[str, Any],
        licenses: list[str],
    ) -> Package | None:
        bsn = manifest.get("bundle-symbolicname", "").split(";", 1)[0].strip()
        artifact = (
            base_name or manifest.get("implementation-title", "") or bsn or manifest.get("specification-title", "")
        )
        version = ""
        for key in ("implementation-version", "bundle-version", "specification-version"):
            version = _clean(manifest.get(key, ""))
            if version:
                break
        version = version or name_version
        if not artifact or not version:
            return None
        meta = {**meta, "source": "manifest" if manifest else "file name"}
        group = manifest.get("implementation-vendor-id", "")
        if not _GROUP_LIKE.match(group):
            group = _guess_group(manifest, artifact)
            if group:
                # Kept apart so matching can weigh a guessed namespace less than a declared one.
                meta["group_id_guessed"] = True
        return _maven_package(group, artifact, version, meta, licenses, self.name)
