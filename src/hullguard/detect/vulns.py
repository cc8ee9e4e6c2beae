"""Vulnerability matching: the inventory of a ScanResult against the advisory store.

Rules that decide what is reported:

* Distro packages are matched with their distribution's own data only, never with upstream
  ranges: Debian/Ubuntu through the *source* package name and the installed binary version,
  Alpine/Wolfi through the origin, RPM distributions through the binary and the source RPM
  name (AlmaLinux and Red Hat publish binary names, Rocky Linux source names) and the EVR, an
  advisory version without an epoch taking the installed one. The OS release picks the advisory
  ecosystem (Debian 12 -> ``Debian:12``, Alpine 3.19.1 -> ``Alpine:v3.19``, Ubuntu 22.04 ->
  ``Ubuntu:22.04:LTS`` and ``Ubuntu:Pro:22.04:LTS``).
* Language packages are matched by ecosystem and normalised name (PEP 503, lower-case npm,
  Maven ``group:artifact``, exact Go module paths).
* A language package that a distro package installed (``metadata["os_owned_by"]``, e.g. the
  PyYAML dist-info shipped by python3-yaml) is *not* matched against the language advisories:
  the distro backports fixes without changing the upstream version number, so upstream ranges
  would report fixed code as vulnerable, and the same flaw is already reported once through the
  distro package. ``MatchOptions(skip_os_owned=False)`` turns this off.
* Withdrawn advisories are skipped. A package whose version (or ecosystem) cannot be compared
  is not dropped: it is listed as "not checked", with one warning per cause.

Lookups are batched per ecosystem and go through the (ecosystem, name) index.
"""

from __future__ import annotations

import functools
import gc
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any

import msgspec

from hullguard.model import Finding, Location, OSInfo, Package, ScanResult, Severity
from hullguard.versions import Comparator, InvalidVersion, UnknownEcosystem, comparator_for
from hullguard.vulndb.osv import normalize_name
from hullguard.vulndb.ranges import Compiled, RangeResult
from hullguard.vulndb.store import CARD_DECODER, Store

OSV_URL = "https://osv.dev/vulnerability/"

LANGUAGE_ECOSYSTEMS = {
    "pypi": "PyPI", "npm": "npm", "maven": "Maven", "golang": "Go", "cargo": "crates.io", "gem": "RubyGems",
    "composer": "Packagist", "nuget": "NuGet", "hex": "Hex", "pub": "Pub",
}
OS_PACKAGE_ECOSYSTEMS = ("deb", "apk", "rpm")

# The words distributions rate issues with, mapped onto hullguard's scale: Debian's tracker
# urgency (ecosystem_specific.urgency: unimportant, low, medium, high; "not yet assigned" is no
# rating), Ubuntu's priority (severity type "Ubuntu", or ecosystem_specific.ubuntu_priority in
# older records: negligible, low, medium, high, critical) and Red Hat's impact, which RHSA/ALSA/
# RLSA records carry as the first word of their summary ("Important: openssl security update").
_DISTRO_SEVERITY = {
    "unimportant": Severity.LOW, "negligible": Severity.LOW, "low": Severity.LOW,
    "medium": Severity.MEDIUM, "moderate": Severity.MEDIUM, "important": Severity.HIGH,
    "high": Severity.HIGH, "critical": Severity.CRITICAL,
}
_RED_HAT_IMPACT = re.compile(r"(Low|Moderate|Important|Critical):\s")
_RPM_ADVISORY_BASES = frozenset({"Red Hat", "AlmaLinux", "Rocky Linux"})


@dataclass
class MatchOptions:
    skip_os_owned: bool = True
    include_withdrawn: bool = False


@dataclass
class MatchReport:
    findings: list[Finding] = field(default_factory=list)
    not_checked: list[tuple[str, str]] = field(default_factory=list)  # (package id, reason)
    warnings: list[str] = field(default_factory=list)
    checked: int = 0


# --- which advisory ecosystem a package belongs to ---------------------------------------------


@dataclass
class _Target:
    """One package, resolved to the advisory ecosystem, the names to look up and its version."""

    pkg: Package
    base: str
    names: list[str]
    version: str
    comp: Comparator
    key: Any
    release_ok: Callable[[str], bool]
    is_os: bool
    # The installed epoch, for RPM advisories that leave it out of their versions ("" otherwise).
    fill: str = ""


def _major_minor(release: str) -> tuple[str, str]:
    parts = re.findall(r"\d+", release)
    return (parts[0] if parts else "", parts[1] if len(parts) > 1 else "")


_DEBIAN_NUMBERS = {"stretch": "9", "buster": "10", "bullseye": "11", "bookworm": "12", "trixie": "13",
                   "forky": "14"}


def _ubuntu_release_ok(want: str) -> Callable[[str], bool]:
    # Canonical publishes "Ubuntu:22.04:LTS", "Ubuntu:25.04" and, for releases in Expanded
    # Security Maintenance, "Ubuntu:Pro:20.04:LTS" (osv.dev folds Pro into the plain release).
    # "Pro:FIPS:..." and "...:LTS:Realtime:Kernel" describe other package builds and never match.
    def ok(release: str) -> bool:
        parts = release.split(":")
        if parts and parts[0] == "Pro":
            parts = parts[1:]
        if parts[-1:] == ["LTS"]:
            parts = parts[:-1]
        return parts == [want]
    return ok


def _suse_release_ok(os_info: OSInfo, major: str, minor: str) -> tuple[str, Callable[[str], bool]] | None:
    family = os_info.family.lower()
    if family == "opensuse-tumbleweed":
        return "openSUSE", lambda r: r == "Tumbleweed"
    if family.startswith("opensuse"):
        # "openSUSE:Leap 15.6" (and "Leap 15.6 NonFree"), "openSUSE:Leap Micro 5.5": the product
        # name without its vendor word, then the VERSION_ID.
        product = os_info.name.strip()
        product = re.sub(r"^openSUSE\s+", "", product, flags=re.IGNORECASE)
        product = re.sub(r"\s+\d[\w.]*.*$", "", product) or "Leap"
        want = f"{product} {major}.{minor}" if minor else f"{product} {major}"
        return "openSUSE", lambda r, w=want: r == w or r == f"{w} NonFree"
    # SUSE describes SLES per product and module ("SUSE:Linux Enterprise Server 15 SP5",
    # "SUSE:Linux Enterprise Module for Basesystem 15 SP5"); every one of them built for this
    # service pack applies to the image.
    suffix = f" {major} SP{minor}" if minor and minor != "0" else f" {major}"
    return "SUSE", lambda r, s=suffix: r.endswith(s)


def distro_ecosystem(os_info: OSInfo | None, pkg_ecosystem: str) -> tuple[str, Callable[[str], bool]] | None:
    """(OSV base ecosystem, predicate on the advisory's release part) for a distro package.

    The release spellings are the publishers' own: Debian ``Debian:12``; Ubuntu ``Ubuntu:22.04:LTS``,
    ``Ubuntu:25.04`` and ``Ubuntu:Pro:20.04:LTS``; Alpine ``Alpine:v3.19``; Rocky ``Rocky Linux:9``;
    Alma ``AlmaLinux:9``; Red Hat ``Red Hat:enterprise_linux:9::appstream``; Wolfi and Chainguard
    have no release; openSUSE ``openSUSE:Leap 15.6``; SUSE ``SUSE:Linux Enterprise Server 15 SP5``.
    """
    if os_info is None:
        return None
    family = os_info.family.lower()
    major, minor = _major_minor(os_info.release)
    if pkg_ecosystem == "deb":
        # Derivatives (Raspbian, Kali...) reuse Debian's version scheme but not its fixes, so
        # only Debian itself is matched against Debian data.
        if family == "debian":
            # Testing images carry only a codename; the tracker files them under the number
            # the release will have (Debian:13 for trixie while it was testing).
            major = major or _DEBIAN_NUMBERS.get(os_info.codename.lower(), "")
            if major:
                return "Debian", lambda r, m=major: r in (m, "")
            return None
        if family == "ubuntu" and major:
            return "Ubuntu", _ubuntu_release_ok(f"{major}.{minor}" if minor else major)
        return None
    if pkg_ecosystem == "apk":
        if family == "wolfi":
            return "Wolfi", lambda r: True
        if family == "chainguard":
            return "Chainguard", lambda r: True
        if family == "alpine" and major:
            if os_info.release.endswith("_alpha") or "edge" in os_info.release:
                return "Alpine", lambda r: r == "edge"
            return "Alpine", lambda r, w=f"v{major}.{minor}": r == w
        return None
    if pkg_ecosystem == "rpm":
        if not major:
            return None
        if family == "rocky":
            return "Rocky Linux", lambda r, m=major: r.split(".")[0] == m
        if family == "almalinux":
            return "AlmaLinux", lambda r, m=major: r.split(".")[0] == m
        if family == "rhel":
            # "Red Hat:enterprise_linux:9::appstream" (and ::baseos, ::crb); the EUS/E4S/AUS
            # streams ("rhel_eus:9.2::appstream") need a subscription an image does not show.
            pattern = re.compile(rf"^enterprise_linux:{major}(::|$|:)")
            return "Red Hat", lambda r, p=pattern: bool(p.match(r))
        if family.startswith("opensuse") or family in ("sles", "sled", "sles_sap", "sle-micro"):
            return _suse_release_ok(os_info, major, minor)
        return None
    return None


def _maven_name(pkg: Package) -> str:
    if ":" in pkg.name:
        return pkg.name
    group = pkg.metadata.get("group_id") or pkg.metadata.get("groupId") or ""
    if not group and pkg.purl.startswith("pkg:maven/"):
        from hullguard import purl as purls

        try:
            group = str(purls.parse(pkg.purl)["namespace"]).replace("/", ".")
        except purls.PurlError:
            group = ""
    return f"{group}:{pkg.name}" if group else pkg.name


class _Causes:
    """Collects 'not checked' reasons so each cause becomes one warning, not one per package."""

    def __init__(self) -> None:
        self.by_cause: dict[str, list[str]] = {}
        self.items: list[tuple[str, str]] = []

    def add(self, pkg: Package, cause: str, detail: str = "") -> None:
        self.items.append((pkg.id, f"{cause}: {detail}" if detail else cause))
        self.by_cause.setdefault(cause, []).append(f"{pkg.name}@{pkg.version}")

    def warnings(self) -> list[str]:
        out = []
        for cause, pkgs in self.by_cause.items():
            shown = ", ".join(pkgs[:3]) + (f" and {len(pkgs) - 3} more" if len(pkgs) > 3 else "")
            noun = "package" if len(pkgs) == 1 else "packages"
            out.append(f"vulnerabilities not checked for {len(pkgs)} {noun} ({cause}): {shown}")
        return out


def _targets(result: ScanResult, options: MatchOptions, causes: _Causes) -> list[_Target]:
    out: list[_Target] = []
    for pkg in result.packages:
        if pkg.ecosystem in OS_PACKAGE_ECOSYSTEMS:
            eco = distro_ecosystem(result.os, pkg.ecosystem)
            if eco is None:
                family = result.os.family if result.os else "unknown"
                release = result.os.release if result.os else ""
                causes.add(pkg, f"no advisory data for distribution {family} {release}".rstrip())
                continue
            base, release_ok = eco
            if pkg.ecosystem == "rpm":
                # AlmaLinux and Red Hat records name binary RPMs (openssl-libs), Rocky Linux's
                # (apollo) the source RPM (openssl): both names are looked up, the binary first.
                names = [pkg.name]
                if pkg.source_name and pkg.source_name != pkg.name:
                    names.append(pkg.source_name)
            else:
                # Debian and Ubuntu publish per source package, Alpine per origin.
                names = [pkg.source_name or pkg.name]
            is_os = True
        elif pkg.ecosystem in LANGUAGE_ECOSYSTEMS:
            if options.skip_os_owned and pkg.metadata.get("os_owned_by"):
                continue
            if pkg.metadata.get("local"):
                # The project's own code (a workspace crate, an app's package.json): its name is not
                # a registry release, so registry advisories for that name would be false positives.
                continue
            base = LANGUAGE_ECOSYSTEMS[pkg.ecosystem]
            names = [_maven_name(pkg) if base == "Maven" else pkg.name]
            release_ok = _any_release
            is_os = False
        else:
            causes.add(pkg, f"no advisory source for ecosystem {pkg.ecosystem!r}")
            continue
        try:
            comp = comparator_for(base)
        except UnknownEcosystem:
            causes.add(pkg, f"no version rules for {base}")
            continue
        version = pkg.version
        sv = pkg.source_version
        if pkg.ecosystem == "deb" and sv and sv != version and not version.startswith(sv + "+b"):
            # Debian and Ubuntu version their records by source package. A binary usually has
            # the source's version (plus "+bN" for a rebuild, which compares the same way), but
            # some sources build binaries with versions of their own: gcc-defaults 1.203 builds
            # cpp 4:12.2.0-3, and 4:12.2.0-3 read against gcc-defaults fixes would be wrong.
            version = sv
        try:
            key = comp.key(version)
        except InvalidVersion as exc:
            causes.add(pkg, f"unparsable {base} version", str(exc))
            continue
        fill = ""
        if pkg.ecosystem == "rpm":
            m = _RPM_EPOCH.match(version)
            if m and int(m.group(1)):
                fill = str(int(m.group(1)))
                comp = _EpochFilled(comp, fill)
        out.append(_Target(pkg, base, names, version, comp, key, release_ok, is_os, fill))
    return out


_RPM_EPOCH = re.compile(r"(\d+):")


class _EpochFilled:
    """An RPM comparator that reads an advisory version without an epoch as having the
    installed package's epoch.

    Rocky Linux's errata service has published fixed versions as "version-release" with the
    epoch only in the purl (``?epoch=1``); read with rpm's own rule (no epoch = 0), every fix
    for an epoch-1 package such as openssl-libs 1:3.0.7 would sort below the installed version
    and the package would never be reported. Grype compares such versions the same way.
    """

    def __init__(self, comp: Comparator, epoch: str) -> None:
        self._comp = comp
        self._epoch = epoch
        self.name = getattr(comp, "name", "rpm")

    def _full(self, version: str) -> str:
        return version if _RPM_EPOCH.match(version) else f"{self._epoch}:{version}"

    def key(self, version: str) -> Any:
        return self._comp.key(self._full(version))

    def compare(self, a: str, b: str) -> int:
        return self._comp.compare(self._full(a), self._full(b))

    def valid(self, version: str) -> bool:
        return self._comp.valid(self._full(version))


def _any_release(release: str) -> bool:
    # Language ecosystems qualify only by repository URL (Maven:https://maven.google.com); the
    # default repositories carry no qualifier and are what the inventory describes.
    return release == ""


# --- severity ------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=65536)  # the same few vectors recur across thousands of findings
def cvss_score(kind: str, vector: str) -> float | None:
    """Base score of a CVSS v2/v3.x/v4.0 vector, None when it does not parse."""
    try:
        import cvss
    except ImportError:  # pragma: no cover - declared dependency; degrade to textual severities
        return None
    try:
        if kind == "CVSS_V4" or vector.startswith("CVSS:4"):
            return float(cvss.CVSS4(vector).base_score)
        if kind == "CVSS_V3" or vector.startswith("CVSS:3"):
            return float(cvss.CVSS3(vector).base_score)
        if kind == "CVSS_V2":
            return float(cvss.CVSS2(vector).base_score)
    except Exception:  # the library raises its own family of errors for malformed vectors
        return None
    return None


def severity_from_score(score: float) -> Severity:
    if score >= 9.0:
        return Severity.CRITICAL
    if score >= 7.0:
        return Severity.HIGH
    if score >= 4.0:
        return Severity.MEDIUM
    if score > 0.0:
        return Severity.LOW
    return Severity.UNKNOWN


_PREFERENCE = {"CVSS_V4": 0, "CVSS_V3": 1, "CVSS_V2": 2}


def _best_cvss(vectors: Iterable[tuple[str, str]]) -> dict[str, Any] | None:
    for kind, vector in sorted((v for v in vectors if v[0] in _PREFERENCE), key=lambda v: _PREFERENCE[v[0]]):
        score = cvss_score(kind, vector)
        if score is not None:
            version = {"CVSS_V4": "4.0", "CVSS_V2": "2.0"}.get(kind) or vector[5:8]
            return {"version": version, "vector": vector, "score": score}
    return None


def _distro_priority(specific: dict[str, Any], severities: Iterable[tuple[str, str]], base: str = "",
                     summary: str = "") -> str:
    for kind, score in severities:
        if kind.lower() in ("ubuntu", "debian", "alpine") and score.lower() in _DISTRO_SEVERITY:
            return score.lower()
    for k in ("urgency", "ubuntu_priority", "priority"):
        v = specific.get(k)
        if isinstance(v, str):
            # Debian marks urgencies it has not checked with a trailing "*" ("low*").
            word = v.lower().split()[0].rstrip("*") if v.strip() else ""
            if word in _DISTRO_SEVERITY:
                return word
    if base in _RPM_ADVISORY_BASES:
        m = _RED_HAT_IMPACT.match(summary)
        if m:
            return m.group(1).lower()
    return ""


def _state(specific: dict[str, Any], fix: str) -> str:
    """What the distribution says about a matched advisory.

    None of the distro feeds lists a package that is not affected (Debian, Ubuntu and Alpine
    leave such release/package pairs out of ``affected``), and an unfixed entry is one without a
    ``fixed`` event. The one "will not fix" they spell out is Debian's urgency ``end-of-life``:
    the package is no longer supported in that release. Ubuntu's "ignored"/"deferred" and
    Debian's "no-dsa" exist in their trackers but not in their OSV data.
    """
    if fix:
        return "fixed"
    if specific.get("urgency") == "end-of-life":
        return "will not fix"
    return "not yet fixed"


# --- matching ----------------------------------------------------------------------------------


_JSON = msgspec.json.Decoder()


class _Texts:
    """Decodes each distinct stored JSON text once per scan: the same severity vectors, aliases
    and fix states recur across thousands of rows."""

    def __init__(self) -> None:
        self.cache: dict[str, Any] = {}

    def __call__(self, text: str | None, default: Any) -> Any:
        if not text:
            return default
        value = self.cache.get(text)
        if value is None:
            value = self.cache[text] = _JSON.decode(text)
        return value


class _Adv(msgspec.Struct):
    """What every finding of one advisory shares, prepared once per scan."""

    id: str
    withdrawn: str
    title: str
    aliases: list[str]
    cves: list[str]
    severity_text: str
    cvss: dict[str, Any] | None
    db_severity: str
    published: str
    modified: str
    references: list[str]


def _prepare(adv_id: str, severity_t: str | None, card_blob: bytes, texts: _Texts) -> _Adv:
    card = CARD_DECODER.decode(card_blob)
    return _Adv(adv_id, card.withdrawn, card.title, card.aliases, card.cves, severity_t or "",
                _cvss_of(severity_t or "", "", texts, copy=False), card.db_severity, card.published, card.modified,
                card.references[:10])


_CVSS_MEMO: dict[tuple[str, str], dict[str, Any] | None] = {}


def _cvss_of(adv_text: str, row_text: str, texts: _Texts, copy: bool = True) -> dict[str, Any] | None:
    key = (adv_text, row_text)
    if key in _CVSS_MEMO:
        found = _CVSS_MEMO[key]
        return (dict(found) if copy else found) if found else None
    found = _best_cvss([(str(k), str(v)) for k, v in (*texts(row_text, []), *texts(adv_text, []))
                        if isinstance(k, str) and isinstance(v, str)])
    if len(_CVSS_MEMO) < 65536:
        _CVSS_MEMO[key] = found
    return (dict(found) if copy else found) if found else None


def match(result: ScanResult, store: Store, options: MatchOptions | None = None) -> MatchReport:
    """Findings for every package of ``result`` that an advisory in ``store`` covers.

    Rows come from the store undecoded; each distinct range text is parsed once per scan
    (:class:`~hullguard.vulndb.ranges.Compiled`) and each (range text, version) pair evaluated
    once, so a 10,000-package image costs dictionary lookups rather than version parsing.
    """
    # Tens of thousands of small dicts and structs are allocated here and none of them form
    # cycles; left on, the cyclic collector re-walks the whole growing heap many times over and
    # costs more than the matching itself.
    paused = gc.isenabled()
    gc.disable()
    try:
        return _match(result, store, options)
    finally:
        if paused:
            gc.enable()


def _match(result: ScanResult, store: Store, options: MatchOptions | None) -> MatchReport:
    options = options or MatchOptions()
    causes = _Causes()
    report = MatchReport()
    targets = _targets(result, options, causes)
    report.checked = len(targets)

    by_base: dict[str, list[_Target]] = {}
    for t in targets:
        by_base.setdefault(t.base, []).append(t)

    texts = _Texts()
    hits: list[tuple[_Target, tuple[Any, ...], str]] = []
    data_errors: dict[str, dict[str, str]] = {}  # base ecosystem -> advisory id -> first error
    for base, group in by_base.items():
        # Each spelling is normalised once, for the query and for reading its rows back.
        norm: dict[str, str] = {}
        for t in group:
            for n in t.names:
                if n not in norm:
                    norm[n] = normalize_name(base, n)
        rows = store.lookup_normalized(base, {v for n, v in norm.items() if n})
        index: dict[str, list[tuple[Any, ...]]] = {}
        for row in rows:
            index.setdefault(row[2], []).append(row)
        if base == "Ubuntu":
            # An advisory can list a package for both a release and its Pro (ESM) archive; the
            # release's own entry decides, the Pro entry only speaks where the release has none.
            for listed in index.values():
                listed.sort(key=lambda r: str(r[1]).startswith("Pro:"))
        compiled: dict[tuple[str | None, str | None, str], Compiled] = {}
        bad: dict[tuple[str | None, str | None, str], str] = {}  # range texts with unparsable versions
        verdicts: dict[tuple[str | None, str | None, str], RangeResult] = {}
        for t in group:
            seen: set[str] = set()
            decided: set[str] = set()  # Ubuntu advisories a non-Pro entry answered for this package
            release_ok = t.release_ok if t.is_os else None  # language data: only the unqualified release
            version = t.version
            for name in t.names:
                for row in index.get(norm[name], ()):
                    adv_id = row[0]
                    if adv_id in seen or (row[1] if release_ok is None else not release_ok(row[1])):
                        continue
                    if base == "Ubuntu":
                        if not row[1].startswith("Pro:"):
                            decided.add(adv_id)
                        elif adv_id in decided:
                            continue
                    vk = (row[3], row[4], version)
                    res = verdicts.get(vk)
                    if res is None:
                        ck = (row[3], row[4], t.fill)
                        c = compiled.get(ck)
                        if c is None:
                            c = compiled[ck] = Compiled(t.comp, texts(row[3], ()), texts(row[4], ()))
                            if c.errors:
                                bad[ck] = c.errors[0]
                        res = verdicts[vk] = c.check(version, t.key)
                    if bad and (ck := (row[3], row[4], t.fill)) in bad:
                        data_errors.setdefault(base, {}).setdefault(adv_id, bad[ck])
                    if res.affected:
                        seen.add(adv_id)
                        fix = res.fix
                        if t.fill and fix and not _RPM_EPOCH.match(fix):
                            # Shown as compared (and as dnf takes it), so that fixes of one
                            # package from records with and without epochs order correctly.
                            fix = f"{t.fill}:{fix}"
                        hits.append((t, row, fix))

    for base, errors in data_errors.items():
        # One warning per cause (unparsable versions in one ecosystem's data), naming a few examples.
        shown = "; ".join(f"{adv_id}: {err}" for adv_id, err in list(errors.items())[:3])
        more = f" and {len(errors) - 3} more" if len(errors) > 3 else ""
        noun = "advisory" if len(errors) == 1 else "advisories"
        report.warnings.append(f"{len(errors)} {base} {noun} with unparsable versions in a range "
                               f"(those ranges were skipped): {shown}{more}")

    advisories = {adv_id: _prepare(adv_id, sev, card, texts)
                   for adv_id, sev, card in store.advisory_cards({row[0] for _, row, _ in hits})}
    cves = {c for adv in advisories.values() for c in adv.cves}
    epss = store.epss(cves) if cves else {}
    kev = store.kev(cves) if cves else {}
    layers = result.layer_by_digest()
    per_target: dict[int, tuple[dict[str, Any], dict[str, Any], Location | None, str]] = {}
    keyed: list[tuple[tuple[Any, ...], Finding]] = []

    for t, row, fix in hits:
        adv = advisories.get(row[0])
        if adv is None:
            continue
        if adv.withdrawn and not options.include_withdrawn:
            continue
        specific = texts(row[5], {})
        state = _state(specific, fix)
        shared = per_target.get(id(t))
        if shared is None:
            shared = per_target[id(t)] = _target_details(t, layers)
        keyed.append(_finding(t, row, adv, specific, fix, state, epss, kev, shared, texts))
    keyed.sort(key=itemgetter(0))
    report.findings = [f for _, f in keyed]
    report.not_checked = causes.items
    report.warnings = causes.warnings() + report.warnings
    return report


def _target_details(t: _Target, layers: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any], Location | None,
                                                                   str]:
    """The parts of a finding that depend on the package only: its description, location and id."""
    pkg = t.pkg
    package: dict[str, Any] = {"name": pkg.name, "version": pkg.version, "ecosystem": pkg.ecosystem, "purl": pkg.purl}
    if pkg.source_name and pkg.source_name != pkg.name:
        package["source_name"] = pkg.source_name
    where: dict[str, Any] = {}
    loc = pkg.locations[0] if pkg.locations else None
    if loc:
        where["path"] = loc.path
        if loc.layer:
            where["layer"] = loc.layer
            layer = layers.get(loc.layer)
            if layer is not None and layer.created_by:
                where["created_by"] = layer.created_by
    return package, where, (Location(path=loc.path, layer=loc.layer) if loc else None), pkg.id


def _finding(t: _Target, row: tuple[Any, ...], adv: _Adv, specific: dict[str, Any], fix: str, state: str,
             epss: dict[str, tuple[float, float, str]], kev: dict[str, dict[str, str]],
             shared: tuple[dict[str, Any], dict[str, Any], Location | None, str],
             texts: _Texts) -> tuple[tuple[Any, ...], Finding]:
    package, where, location, target = shared
    row_sev = row[6]
    cvss = _cvss_of(adv.severity_text, row_sev, texts) if row_sev else (dict(adv.cvss) if adv.cvss else None)
    distro = ""
    if t.is_os:
        distro = _distro_priority(specific, [*texts(row_sev, []), *texts(adv.severity_text, [])], t.base, adv.title)
    if distro:
        severity, source = _DISTRO_SEVERITY[distro], "distro"
    elif cvss:
        severity, source = severity_from_score(cvss["score"]), "cvss"
    elif adv.db_severity:
        severity, source = Severity.parse("MEDIUM" if adv.db_severity.upper() == "MODERATE" else adv.db_severity), \
            "database"
    else:
        severity, source = Severity.UNKNOWN, ""
    cves = adv.cves
    e = next((epss[c] for c in cves if c in epss), None) if epss else None
    k_cve = next((c for c in cves if c in kev), "") if kev else ""
    release = f"{t.base}:{row[1]}" if row[1] else t.base
    details: dict[str, Any] = {
        "aliases": list(adv.aliases),
        "package": dict(package),
        "installed_version": t.pkg.version,
        "matched_name": row[2],
        "advisory_ecosystem": release,
        "fixed_version": fix,
        "status": state,
        "severity_source": source,
        "url": OSV_URL + adv.id,
        "known_exploited": bool(k_cve),
    }
    if t.version != t.pkg.version:
        details["compared_version"] = t.version  # the source package's, see _targets
    if cves:
        details["cve"] = cves[0]
    if cvss:
        details["cvss"] = cvss
    if distro:
        details["distro_severity"] = distro
    if adv.db_severity:
        details["database_severity"] = adv.db_severity
    if e:
        details["epss"] = {"score": e[0], "percentile": e[1], "date": e[2]}
    if k_cve:
        details["kev"] = {"cve": k_cve, **kev[k_cve]}
    if where:
        details.update(where)
    if adv.published:
        details["published"] = adv.published
    if adv.modified:
        details["modified"] = adv.modified
    if adv.references:
        details["references"] = list(adv.references)
    availability = specific.get("availability") if t.is_os else None
    if isinstance(availability, str) and "Pro" in availability:
        # Ubuntu ships this fix (or the release's only fixes, once it is in ESM) to Pro subscribers.
        details["fix_availability"] = availability
    finding = Finding(kind="vulnerability", rule_id=adv.id, severity=severity, title=adv.title, target=target,
                      location=location, fix=fix, details=details)
    # The same order as risk_key(), from the values at hand rather than read back from details.
    key = (not k_cve, -(e[0] if e else 0.0), -int(severity), -(cvss["score"] if cvss else 0.0), adv.id, finding.target)
    return key, finding


# --- what the CLI needs to gate and order --------------------------------------------------------


def risk_key(f: Finding) -> tuple[Any, ...]:
    """Known exploited first, then EPSS (highest first), then severity, then CVSS score."""
    d = f.details
    epss = d.get("epss", {}).get("score", 0.0) if isinstance(d.get("epss"), dict) else 0.0
    score = d.get("cvss", {}).get("score", 0.0) if isinstance(d.get("cvss"), dict) else 0.0
    return (not d.get("known_exploited", False), -epss, -int(f.severity), -score, f.rule_id, f.target)


def sort_by_risk(findings: Iterable[Finding]) -> list[Finding]:
    return sorted(findings, key=risk_key)


def filter_findings(findings: Iterable[Finding], *, severities: Iterable[Severity] | None = None,
                    min_severity: Severity | None = None, ignore_unfixed: bool = False) -> list[Finding]:
    """``--severity`` (a set, or a floor) and ``--ignore-unfixed`` for vulnerability findings;
    findings of other kinds pass through untouched."""
    allowed = set(severities) if severities is not None else None
    out = []
    for f in findings:
        if f.kind == "vulnerability":
            if allowed is not None and f.severity not in allowed:
                continue
            if min_severity is not None and f.severity < min_severity:
                continue
            if ignore_unfixed and not f.fix:
                continue
        out.append(f)
    return out


def parse_severities(text: str) -> set[Severity]:
    """``"HIGH,CRITICAL"`` as given to ``--severity``; raises ValueError on an unknown word."""
    out = set()
    for word in text.split(","):
        word = word.strip().upper()
        if not word:
            continue
        if word not in Severity.__members__:
            raise ValueError(f"unknown severity {word!r} (choose from {', '.join(Severity.__members__)})")
        out.add(Severity[word])
    return out


BASE, APPLICATION = "base", "application"
ROLE_TITLES = {BASE: "Base image", APPLICATION: "Application", "": "Layer not known"}

# A history entry that only sets the image's command: every base image ends with one (CMD
# ["bash"], ENTRYPOINT [...]), so the last of them that is followed by real layers marks where the
# image built FROM it begins.
_COMMAND_ENTRY = re.compile(r"(^|#\(nop\)\s+|\s)(CMD|ENTRYPOINT)\s", re.IGNORECASE)
# A root filesystem imported from a tarball, the first layer of every distribution image.
_ROOTFS_ENTRY = re.compile(r"\bADD\s+(--\S+\s+)*file:\S+\s+in\s+/\s*$", re.IGNORECASE)
BASE_NAME_LABEL = "org.opencontainers.image.base.name"


def layer_roles(result: ScanResult) -> dict[str, str]:
    """Which layers (by digest) came with the base image and which the application added.

    Heuristic, from the image history only (the base image itself is never fetched):

    1. The base image's own history ends with a command-only entry (``CMD``/``ENTRYPOINT``,
       no layer). The last such entry that is followed by at least one real layer is the seam:
       every layer before it is the base image's, every layer after it the application's.
    2. Without such a seam (flattened or hand-built images), the leading layers that import a
       root filesystem (``ADD file:... in /``) are the base image, the rest the application.
    3. Without history there are no roles (filesystem and SBOM scans).
    """
    layers = [layer for layer in result.layers if not layer.empty]
    if not layers:
        return {}
    history = [h for h in result.artifact.history if isinstance(h, dict)]
    base_count = -1
    real = 0
    seams: list[int] = []  # real layers before each command-only entry
    for h in history:
        if h.get("empty_layer"):
            if _COMMAND_ENTRY.search(str(h.get("created_by", ""))):
                seams.append(real)
            continue
        real += 1
    followed = [n for n in seams if 0 < n < real]
    if followed:
        base_count = followed[-1]
    if base_count < 0:
        base_count = 0
        for layer in layers:
            if not _ROOTFS_ENTRY.search(layer.created_by.strip()):
                break
            base_count += 1
    return {layer.digest: BASE if i < base_count else APPLICATION for i, layer in enumerate(layers)}


def base_image_name(result: ScanResult) -> str:
    """The base image's name when the build recorded it (OCI ``base.name`` label), else ''."""
    labels = result.artifact.config.get("Labels") if isinstance(result.artifact.config, dict) else None
    name = labels.get(BASE_NAME_LABEL) if isinstance(labels, dict) else None
    return name if isinstance(name, str) else ""


def _upgrades(fs: list[Finding], roles: dict[str, str]) -> list[dict[str, Any]]:
    # Distro binaries built from one source (libssl3 and openssl, libc6 and libc-bin) are upgraded
    # together, so they form one line that counts each advisory once.
    upgrades: dict[tuple[str, str, str, str], dict[str, Any]] = {}
    for f in fs:
        if not f.fix:
            continue
        pkg = f.details.get("package")
        pkg = pkg if isinstance(pkg, dict) else {}  # findings read back from foreign JSON may lack it
        layer = f.location.layer if f.location else ""
        role = roles.get(layer, "")
        name = str(pkg.get("name", ""))
        source = str(pkg.get("source_name", "") or name)
        key = (role, str(pkg.get("ecosystem", "")), source, str(pkg.get("version", "")))
        entry = upgrades.get(key)
        if entry is None:
            entry = upgrades[key] = {"package": source, "ecosystem": key[1], "installed": key[3], "to": f.fix,
                                     "fixes": 0, "ids": []}
            if role:
                entry["layer"] = role
        if source != name or "packages" in entry:
            binaries = entry.setdefault("packages", [])
            if name not in binaries:
                binaries.append(name)
                binaries.sort()
        if f.rule_id not in entry["ids"]:
            entry["ids"].append(f.rule_id)
            entry["fixes"] += 1
        entry["to"] = _max_fix(key[1], entry["to"], f.fix)
    return sorted(upgrades.values(), key=lambda u: (-u["fixes"], u["package"], u["installed"]))


def upgrade_label(upgrade: dict[str, Any]) -> str:
    """``openssl (libssl3, openssl)`` for a source package, else the package name."""
    binaries = upgrade.get("packages") or []
    if binaries and binaries != [upgrade.get("package")]:
        return f"{upgrade.get('package', '')} ({', '.join(str(b) for b in binaries)})"
    return str(upgrade.get("package", ""))


def _counts(fs: list[Finding]) -> dict[str, Any]:
    by_sev = {s.name: 0 for s in sorted(Severity, reverse=True)}
    for f in fs:
        by_sev[f.severity.name] += 1
    return {
        "total": len(fs),
        "fixable": sum(1 for f in fs if f.fix),
        "known_exploited": sum(1 for f in fs if f.details.get("known_exploited")),
        "by_severity": by_sev,
    }


def summary(findings: Iterable[Finding], roles: dict[str, str] | None = None) -> dict[str, Any]:
    """Counts a busy reader wants first: total, fixable, known-exploited, by severity, and the
    upgrades that fix the most, per package. With ``roles`` (see :func:`layer_roles`) every
    upgrade names its layer role and ``by_layer`` splits the same figures into base image and
    application, so the reader knows whether to rebuild on a newer base or bump a dependency."""
    # Findings kept only for --show-suppressed are listed, never counted.
    fs = [f for f in findings if f.kind == "vulnerability" and not f.details.get("suppressed")]
    roles = roles or {}
    out = {**_counts(fs), "upgrades": _upgrades(fs, roles)}
    if roles:
        groups = []
        for role in (BASE, APPLICATION, ""):
            part = [f for f in fs if roles.get(f.location.layer if f.location else "", "") == role]
            if role or part:  # "": findings whose layer is not known (no location, or a layer not listed)
                groups.append({"layer": role, "layers": [d for d, r in roles.items() if r == role],
                               **_counts(part), "upgrades": [u for u in out["upgrades"] if u.get("layer", "") == role]})
        out["by_layer"] = groups
    return out


def result_summary(result: ScanResult) -> dict[str, Any]:
    """:func:`summary` of a whole scan, with layer roles and the packages that were not checked."""
    out = summary(result.findings, layer_roles(result))
    base = base_image_name(result)
    if base:
        out["base_image"] = base
    out["not_checked"] = not_checked(result)
    return out


def not_checked(result: ScanResult) -> list[dict[str, str]]:
    """Packages whose vulnerabilities could not be looked up, with the reason (set by :func:`apply`)."""
    out = []
    for p in result.packages:
        note = p.metadata.get("vulnerabilities") if isinstance(p.metadata, dict) else None
        if isinstance(note, str) and note.startswith("not checked"):
            out.append({"package": p.name, "version": p.version, "ecosystem": p.ecosystem,
                        "reason": note.removeprefix("not checked: ")})
    return out


_PKG_TO_BASE = {**LANGUAGE_ECOSYSTEMS, "deb": "Debian", "apk": "Alpine", "rpm": "Rocky Linux"}


def _max_fix(ecosystem: str, a: str, b: str) -> str:
    # The upgrade that fixes every finding of a package is the highest of the lowest fixes.
    try:
        comp = comparator_for(_PKG_TO_BASE.get(ecosystem, ecosystem))
        return a if comp.key(a) >= comp.key(b) else b
    except (UnknownEcosystem, InvalidVersion):
        return max(a, b)


def apply(result: ScanResult, store: Store, options: MatchOptions | None = None) -> ScanResult:
    """``result`` with vulnerability findings and matching warnings added; packages that could
    not be checked get ``metadata["vulnerabilities"] = "not checked: <reason>"``."""
    report = match(result, store, options)
    reasons = dict(report.not_checked)
    packages = []
    for pkg in result.packages:
        reason = reasons.get(pkg.id)
        if reason:
            pkg = msgspec.structs.replace(pkg, metadata={**pkg.metadata, "vulnerabilities": f"not checked: {reason}"})
        packages.append(pkg)
    return msgspec.structs.replace(result, packages=packages, findings=[*result.findings, *report.findings],
                                   warnings=[*result.warnings, *report.warnings])
