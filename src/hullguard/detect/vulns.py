"""Vulnerability matching: the inventory of a ScanResult against the advisory store.

Rules that decide what is reported:

* Distro packages are matched with their distribution's own data only, never with upstream
  ranges: Debian/Ubuntu through the *source* package name and the installed binary version,
  Alpine/Wolfi through the origin, RPM distributions through the source RPM name and the EVR.
  The OS release picks the advisory ecosystem (Debian 12 -> ``Debian:12``, Alpine 3.19.1 ->
  ``Alpine:v3.19``, Ubuntu 22.04 -> ``Ubuntu:22.04:LTS``).
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
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import msgspec

from hullguard.model import Finding, Location, OSInfo, Package, ScanResult, Severity
from hullguard.versions import Comparator, InvalidVersion, UnknownEcosystem, comparator_for
from hullguard.vulndb.osv import normalize_name
from hullguard.vulndb.ranges import evaluate
from hullguard.vulndb.store import AdvisoryRow, AffectedRow, Store

OSV_URL = "https://osv.dev/vulnerability/"

LANGUAGE_ECOSYSTEMS = {
    "pypi": "PyPI", "npm": "npm", "maven": "Maven", "golang": "Go", "cargo": "crates.io", "gem": "RubyGems",
    "composer": "Packagist", "nuget": "NuGet", "hex": "Hex", "pub": "Pub",
}
OS_PACKAGE_ECOSYSTEMS = ("deb", "apk", "rpm")

# Distro priority words, mapped onto hullguard's scale.
_DISTRO_SEVERITY = {
    "unimportant": Severity.LOW, "negligible": Severity.LOW, "low": Severity.LOW,
    "medium": Severity.MEDIUM, "moderate": Severity.MEDIUM, "important": Severity.HIGH,
    "high": Severity.HIGH, "critical": Severity.CRITICAL,
}
_WONT_FIX = {"will not fix", "wont-fix", "won't fix", "ignored", "end-of-life", "out of support scope",
             "no-dsa", "deferred", "postponed"}
_NOT_AFFECTED = {"not affected", "not-affected", "not_affected"}


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


def _major_minor(release: str) -> tuple[str, str]:
    parts = re.findall(r"\d+", release)
    return (parts[0] if parts else "", parts[1] if len(parts) > 1 else "")


def distro_ecosystem(os_info: OSInfo | None, pkg_ecosystem: str) -> tuple[str, Callable[[str], bool]] | None:
    """(OSV base ecosystem, predicate on the advisory's release part) for a distro package."""
    if os_info is None:
        return None
    family = os_info.family.lower()
    major, minor = _major_minor(os_info.release)
    if pkg_ecosystem == "deb":
        # Derivatives (Raspbian, Kali...) reuse Debian's version scheme but not its fixes, so
        # only Debian itself is matched against Debian data.
        if family == "debian" and major:
            return "Debian", lambda r, m=major: r in (m, "")
        if family == "ubuntu":
            want = f"{major}.{minor}" if minor else major
            return "Ubuntu", lambda r, w=want: r.removesuffix(":LTS") == w
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
            pattern = re.compile(rf"^enterprise_linux:{major}(::|$|:)")
            return "Red Hat", lambda r, p=pattern: bool(p.match(r))
        if family.startswith("opensuse") or family in ("sles", "sled", "sles_sap"):
            base = "openSUSE" if family.startswith("opensuse") else "SUSE"
            want = os_info.name.strip()
            return base, lambda r, w=want: r == w
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
            names = [pkg.source_name or pkg.name]
            if base == "Red Hat" and pkg.name not in names:
                names.append(pkg.name)  # Red Hat records name binary RPMs as often as source RPMs
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
        try:
            key = comp.key(version)
        except InvalidVersion as exc:
            causes.add(pkg, f"unparsable {base} version", str(exc))
            continue
        out.append(_Target(pkg, base, names, version, comp, key, release_ok, is_os))
    return out


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


def _distro_priority(specific: dict[str, Any], severities: Iterable[tuple[str, str]]) -> str:
    for kind, score in severities:
        if kind.lower() in ("ubuntu", "debian", "alpine") and score.lower() in _DISTRO_SEVERITY:
            return score.lower()
    for k in ("urgency", "priority", "severity"):
        v = specific.get(k)
        if isinstance(v, str):
            word = v.lower().split()[0].rstrip("*") if v.strip() else ""
            if word in _DISTRO_SEVERITY:
                return word
    return ""


def _state(specific: dict[str, Any], fix: str) -> str:
    for k in ("status", "fix_state", "state"):
        v = specific.get(k)
        if isinstance(v, str):
            word = v.strip().lower()
            if word in _NOT_AFFECTED:
                return "not affected"
            if word in _WONT_FIX:
                return "will not fix"
    if fix:
        return "fixed"
    if specific.get("urgency") == "end-of-life":
        return "will not fix"
    return "not yet fixed"


# --- matching ----------------------------------------------------------------------------------


def _cves_first(adv_id: str, aliases: Iterable[str]) -> list[str]:
    names = list(dict.fromkeys(a for a in aliases if a != adv_id))
    return sorted(names, key=lambda a: (not a.startswith("CVE-"), a))


def _cves(adv_id: str, aliases: Iterable[str]) -> list[str]:
    out = []
    for a in (adv_id, *aliases):
        m = re.search(r"CVE-\d{4}-\d{4,}", a)
        if m and m.group(0) not in out:
            out.append(m.group(0))
    return out


def match(result: ScanResult, store: Store, options: MatchOptions | None = None) -> MatchReport:
    """Findings for every package of ``result`` that an advisory in ``store`` covers."""
    options = options or MatchOptions()
    causes = _Causes()
    report = MatchReport()
    targets = _targets(result, options, causes)
    report.checked = len(targets)

    by_base: dict[str, list[_Target]] = {}
    for t in targets:
        by_base.setdefault(t.base, []).append(t)

    hits: list[tuple[_Target, AffectedRow, str]] = []
    data_errors: dict[str, str] = {}
    for base, group in by_base.items():
        rows = store.lookup(base, [n for t in group for n in t.names])
        index: dict[str, list[AffectedRow]] = {}
        for row in rows:
            index.setdefault(row.name, []).append(row)
        for t in group:
            seen: set[str] = set()
            for name in t.names:
                for row in index.get(normalize_name(base, name), ()):
                    if row.advisory_id in seen or not t.release_ok(row.release):
                        continue
                    errors: list[str] = []
                    res = evaluate(t.comp, t.version, t.key, row.ranges, row.versions, errors)
                    for err in errors:
                        data_errors.setdefault(row.advisory_id, err)
                    if res.affected:
                        seen.add(row.advisory_id)
                        hits.append((t, row, res.fix))

    for adv_id, err in list(data_errors.items())[:20]:
        report.warnings.append(f"advisory {adv_id}: a range was skipped: {err}")

    advisories = store.advisories({row.advisory_id for _, row, _ in hits})
    cves = {c for adv in advisories.values() for c in _cves(adv.id, adv.aliases)}
    epss = store.epss(cves) if cves else {}
    kev = store.kev(cves) if cves else {}
    layers = result.layer_by_digest()

    for t, row, fix in hits:
        adv = advisories.get(row.advisory_id)
        if adv is None:
            continue
        if adv.withdrawn and not options.include_withdrawn:
            continue
        state = _state(row.specific, fix)
        if state == "not affected":
            continue
        report.findings.append(_finding(t, row, adv, fix, state, epss, kev, layers))
    report.findings = sort_by_risk(report.findings)
    report.not_checked = causes.items
    report.warnings = causes.warnings() + report.warnings
    return report


def _finding(t: _Target, row: AffectedRow, adv: AdvisoryRow, fix: str, state: str,
             epss: dict[str, tuple[float, float, str]], kev: dict[str, dict[str, str]],
             layers: dict[str, Any]) -> Finding:
    pkg = t.pkg
    cvss = _best_cvss([*row.severity, *adv.severity])
    distro = _distro_priority(row.specific, [*row.severity, *adv.severity]) if t.is_os else ""
    if distro:
        severity, source = _DISTRO_SEVERITY[distro], "distro"
    elif cvss:
        severity, source = severity_from_score(cvss["score"]), "cvss"
    elif adv.db_severity:
        severity, source = Severity.parse("MEDIUM" if adv.db_severity.upper() == "MODERATE" else adv.db_severity), \
            "database"
    else:
        severity, source = Severity.UNKNOWN, ""
    cves = _cves(adv.id, adv.aliases)
    e = next((epss[c] for c in cves if c in epss), None)
    k_cve = next((c for c in cves if c in kev), "")
    loc = pkg.locations[0] if pkg.locations else None
    layer = layers.get(loc.layer) if loc and loc.layer else None
    release = f"{row.ecosystem}:{row.release}" if row.release else row.ecosystem
    details: dict[str, Any] = {
        "aliases": _cves_first(adv.id, adv.aliases),
        "package": {"name": pkg.name, "version": pkg.version, "ecosystem": pkg.ecosystem, "purl": pkg.purl},
        "installed_version": t.version,
        "matched_name": row.name,
        "advisory_ecosystem": release,
        "fixed_version": fix,
        "status": state,
        "severity_source": source,
        "url": OSV_URL + adv.id,
        "known_exploited": bool(k_cve),
    }
    if pkg.source_name and pkg.source_name != pkg.name:
        details["package"]["source_name"] = pkg.source_name
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
    if loc:
        details["path"] = loc.path
        if loc.layer:
            details["layer"] = loc.layer
        if layer is not None and layer.created_by:
            details["created_by"] = layer.created_by
    if adv.published:
        details["published"] = adv.published
    if adv.modified:
        details["modified"] = adv.modified
    refs = [url for _, url in adv.references][:10]
    if refs:
        details["references"] = refs
    title = adv.summary or (details["aliases"][0] if details["aliases"] else adv.id)
    return Finding(kind="vulnerability", rule_id=adv.id, severity=severity, title=title, target=pkg.id,
                   location=Location(path=loc.path, layer=loc.layer) if loc else None, fix=fix, details=details)


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


def summary(findings: Iterable[Finding]) -> dict[str, Any]:
    """Counts a busy reader wants first: total, fixable, known-exploited, by severity, and the
    upgrades that fix the most (per package)."""
    fs = [f for f in findings if f.kind == "vulnerability"]
    by_sev = {s.name: 0 for s in sorted(Severity, reverse=True)}
    upgrades: dict[tuple[str, str], dict[str, Any]] = {}
    for f in fs:
        by_sev[f.severity.name] += 1
        if f.fix:
            pkg = f.details.get("package", {})
            key = (pkg.get("ecosystem", ""), pkg.get("name", ""))
            entry = upgrades.setdefault(key, {"package": pkg.get("name", ""), "ecosystem": key[0],
                                              "installed": pkg.get("version", ""), "to": f.fix, "fixes": 0})
            entry["fixes"] += 1
            entry["to"] = _max_fix(key[0], entry["to"], f.fix)
    return {
        "total": len(fs),
        "fixable": sum(1 for f in fs if f.fix),
        "known_exploited": sum(1 for f in fs if f.details.get("known_exploited")),
        "by_severity": by_sev,
        "upgrades": sorted(upgrades.values(), key=lambda u: (-u["fixes"], u["package"])),
    }


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
