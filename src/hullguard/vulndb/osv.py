"""OSV records (https://ossf.github.io/osv-schema/) parsed into compact, typed structs.

Only what matching and reporting need is kept; the shape follows the schema's names so that
reading the spec explains the code. A record that breaks the schema's hard rules raises
:class:`OSVError`; importers count those and go on with the next record.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec

# Real OSV records are a few KiB; the largest (Linux kernel CVEs with long version lists) stay
# well under a few MiB. The cap bounds the work a hostile archive member can cause.
MAX_RECORD_BYTES = 16 * 1024 * 1024

EVENT_KINDS = ("introduced", "fixed", "last_affected", "limit")
RANGE_TYPES = ("ECOSYSTEM", "SEMVER", "GIT")


class OSVError(ValueError):
    """A record that is not valid OSV (bad JSON, missing id, malformed events...)."""


# --- the raw wire shape, decoded by msgspec in one pass ---------------------------------------


class _RawEvent(msgspec.Struct, omit_defaults=True):
    introduced: str | None = None
    fixed: str | None = None
    last_affected: str | None = None
    limit: str | None = None


class _RawRange(msgspec.Struct, omit_defaults=True):
    type: str = ""
    repo: str = ""
    events: list[_RawEvent] = []


class _RawPackage(msgspec.Struct, omit_defaults=True):
    ecosystem: str = ""
    name: str = ""
    purl: str = ""


class _RawSeverity(msgspec.Struct, omit_defaults=True):
    type: str = ""
    score: str = ""


class _RawAffected(msgspec.Struct, omit_defaults=True):
    package: _RawPackage | None = None
    severity: list[_RawSeverity] = []
    ranges: list[_RawRange] = []
    versions: list[str] = []
    ecosystem_specific: dict[str, Any] | None = None
    database_specific: dict[str, Any] | None = None


class _RawReference(msgspec.Struct, omit_defaults=True):
    type: str = ""
    url: str = ""


class _RawRecord(msgspec.Struct, omit_defaults=True):
    id: str = ""
    schema_version: str = ""
    modified: str = ""
    published: str = ""
    withdrawn: str = ""
    aliases: list[str] | None = None
    related: list[str] | None = None
    upstream: list[str] | None = None
    summary: str = ""
    details: str = ""
    severity: list[_RawSeverity] | None = None
    affected: list[_RawAffected] | None = None
    references: list[_RawReference] | None = None
    database_specific: dict[str, Any] | None = None


_DECODER = msgspec.json.Decoder(_RawRecord)


# --- what the rest of hullguard uses -----------------------------------------------------------


class Range(msgspec.Struct, frozen=True, array_like=True):
    """One range: its type and its events as (kind, version) pairs in the record's order."""

    type: str
    events: tuple[tuple[str, str], ...]


class Affected(msgspec.Struct, frozen=True, kw_only=True):
    ecosystem: str  # as written, e.g. "Debian:12"
    name: str  # as written
    purl: str = ""
    ranges: tuple[Range, ...] = ()
    versions: tuple[str, ...] = ()
    severity: tuple[tuple[str, str], ...] = ()
    ecosystem_specific: dict[str, Any] = {}
    database_specific: dict[str, Any] = {}

    @property
    def base(self) -> str:
        return split_ecosystem(self.ecosystem)[0]

    @property
    def release(self) -> str:
        return split_ecosystem(self.ecosystem)[1]

    @property
    def name_norm(self) -> str:
        return normalize_name(self.ecosystem, self.name)


class Advisory(msgspec.Struct, kw_only=True):
    id: str
    modified: str = ""
    published: str = ""
    withdrawn: str = ""
    aliases: tuple[str, ...] = ()
    related: tuple[str, ...] = ()
    upstream: tuple[str, ...] = ()
    summary: str = ""
    details: str = ""
    severity: tuple[tuple[str, str], ...] = ()  # (type, score): CVSS_V3 vectors, "Ubuntu" priorities...
    affected: tuple[Affected, ...] = ()
    references: tuple[tuple[str, str], ...] = ()  # (type, url)
    database_specific: dict[str, Any] = {}

    def cves(self) -> list[str]:
        """CVE ids this advisory is about: its own id, aliases, upstream ids, and the CVE inside
        distro ids such as DEBIAN-CVE-2023-1234 or UBUNTU-CVE-2023-1234."""
        out: list[str] = []
        for ident in (self.id, *self.aliases, *self.upstream):
            m = _CVE_IN.search(ident)
            if m and m.group(0) not in out:
                out.append(m.group(0))
        return out


_CVE_IN = re.compile(r"CVE-\d{4}-\d{4,}")


def split_ecosystem(ecosystem: str) -> tuple[str, str]:
    """("Debian", "12") for "Debian:12"; ("Ubuntu", "22.04:LTS"); ("PyPI", "")."""
    base, _, release = ecosystem.partition(":")
    return base.strip(), release.strip()


_PEP503 = re.compile(r"[-_.]+")
_LOWERCASE = {"npm", "NuGet", "Packagist", "crates.io", "Pub", "Hex"}


def normalize_name(ecosystem: str, name: str) -> str:
    """The form under which two spellings of one package name compare equal.

    PyPI: PEP 503. npm, NuGet, Packagist, crates.io: case-insensitive registries. Maven:
    ``group:artifact`` as given (Maven coordinates are case-sensitive). Go module paths and
    distro source packages are exact.
    """
    base = ecosystem.partition(":")[0].strip()
    name = name.strip()
    if base in ("PyPI", "pypi"):
        return _PEP503.sub("-", name).lower()
    if base in _LOWERCASE or base in ("nuget", "composer", "cargo"):
        return name.lower()
    return name


def _strings(items: list[str] | None, what: str, ident: str) -> tuple[str, ...]:
    if not items:
        return ()
    for item in items:
        if not isinstance(item, str):
            raise OSVError(f"{ident}: {what} must be strings")
    return tuple(items)


def _event(ev: _RawEvent, ident: str) -> tuple[str, str]:
    found = [(k, v) for k in EVENT_KINDS if (v := getattr(ev, k)) is not None]
    # The schema allows exactly one kind per event object; two would make the timeline ambiguous.
    if len(found) != 1:
        raise OSVError(f"{ident}: an event must hold exactly one of {', '.join(EVENT_KINDS)}")
    kind, value = found[0]
    if not value:
        raise OSVError(f"{ident}: empty {kind} version")
    return kind, value


def _affected(raw: _RawAffected, ident: str) -> Affected:
    if raw.package is None or not raw.package.ecosystem or not raw.package.name:
        raise OSVError(f"{ident}: affected[] entry without package ecosystem and name")
    ranges = []
    for r in raw.ranges:
        if r.type not in RANGE_TYPES:
            raise OSVError(f"{ident}: unknown range type {r.type!r}")
        events = tuple(_event(e, ident) for e in r.events)
        if not any(kind == "introduced" for kind, _ in events):
            raise OSVError(f"{ident}: a range needs at least one introduced event")
        ranges.append(Range(r.type, events))
    return Affected(
        ecosystem=raw.package.ecosystem,
        name=raw.package.name,
        purl=raw.package.purl,
        ranges=tuple(ranges),
        versions=_strings(raw.versions, "versions", ident),
        severity=tuple((s.type, s.score) for s in raw.severity if s.type and s.score),
        ecosystem_specific=raw.ecosystem_specific or {},
        database_specific=raw.database_specific or {},
    )


def parse(data: bytes | str) -> Advisory:
    """One OSV JSON document into an :class:`Advisory`, or :class:`OSVError`."""
    if len(data) > MAX_RECORD_BYTES:
        raise OSVError(f"record is {len(data)} bytes (limit {MAX_RECORD_BYTES})")
    try:
        raw = _DECODER.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise OSVError(f"not an OSV record: {exc}") from None
    if not raw.id or len(raw.id) > 256:
        raise OSVError("record has no id")
    ident = raw.id
    if not raw.modified:
        raise OSVError(f"{ident}: missing 'modified'")
    return Advisory(
        id=ident,
        modified=raw.modified,
        published=raw.published,
        withdrawn=raw.withdrawn,
        aliases=_strings(raw.aliases, "aliases", ident),
        related=_strings(raw.related, "related", ident),
        upstream=_strings(raw.upstream, "upstream", ident),
        summary=raw.summary,
        details=raw.details,
        severity=tuple((s.type, s.score) for s in raw.severity or () if s.type and s.score),
        affected=tuple(_affected(a, ident) for a in raw.affected or ()),
        references=tuple((r.type, r.url) for r in raw.references or () if r.url),
        database_specific=raw.database_specific or {},
    )
