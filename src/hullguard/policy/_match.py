"""Matching helpers shared by the ignore file and VEX: finding ids and package URLs."""

from __future__ import annotations

from typing import Any

from hullguard import purl as _purl
from hullguard.model import Finding


def finding_ids(finding: Finding) -> set[str]:
    """The rule id and every alias, upper-cased: users and VEX authors write ids in any case."""
    ids = {finding.rule_id.upper()}
    aliases = finding.details.get("aliases")
    if isinstance(aliases, list):
        ids.update(a.upper() for a in aliases if isinstance(a, str))
    return ids


def finding_package(finding: Finding) -> dict[str, Any]:
    pkg = finding.details.get("package")
    return pkg if isinstance(pkg, dict) else {}


def purl_key(text: str) -> tuple[str, str, str, str] | None:
    """(type, namespace, name, version) with qualifiers and subpath dropped; None when unparsable.

    Qualifiers (arch, distro, repository_url) are left out on purpose: a VEX author states facts
    about a package version and rarely repeats the exact qualifiers a scanner happens to emit.
    """
    try:
        parts = _purl.parse(text.strip())
    except _purl.PurlError:
        return None
    ptype = str(parts["type"])
    # Rebuild and re-parse to apply the per-type case and name rules in one place (purl.build),
    # so "pkg:pypi/Django_Rest" and "pkg:pypi/django-rest" compare equal.
    canon = _purl.parse(_purl.build(ptype, str(parts["name"]), namespace=str(parts["namespace"])))
    return ptype, str(canon["namespace"]), str(canon["name"]), str(parts["version"])


def purl_matches(pattern: tuple[str, str, str, str], package_purl: str) -> bool:
    """A pattern purl covers a package purl when type, namespace and name are equal and the
    pattern's version is equal or absent (absent means every version)."""
    target = purl_key(package_purl) if package_purl else None
    if target is None:
        return False
    if pattern[:3] != target[:3]:
        return False
    return not pattern[3] or pattern[3] == target[3]
