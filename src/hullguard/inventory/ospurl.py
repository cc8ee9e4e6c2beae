"""Package URLs for distro packages.

The dpkg, apk and rpm analyzers see one file each and cannot know which distro they are on, so
they leave ``purl`` empty; the merge step calls ``os_package_purl`` once the OS is known. The
shapes follow the purl-spec type definitions for deb, apk and rpm: the namespace is the
distro vendor, ``distro`` names the release, and ``upstream`` (as syft writes it) names the source
package so that a purl alone is enough to match advisories published per source package.
"""

from __future__ import annotations

from hullguard import purl
from hullguard.model import OSInfo, Package

# os-release ID -> purl namespace where the vendor's own name differs from the ID.
_RPM_VENDOR = {
    "rhel": "redhat",
    "ol": "oracle",
    "opensuse-leap": "opensuse",
    "opensuse-tumbleweed": "opensuse",
    "opensuse-microos": "opensuse",
    "opensuse-leap-micro": "opensuse",
    "sles": "suse",
    "sled": "suse",
    "sle-micro": "suse",
    "sles_sap": "suse",
}
_DEFAULT_VENDOR = {"deb": "debian", "apk": "alpine", "rpm": ""}


def _distro(os: OSInfo | None) -> str:
    if os is None or not os.family:
        return ""
    tail = os.release or os.codename
    return f"{os.family}-{tail}" if tail else os.family


def _vendor(ecosystem: str, os: OSInfo | None) -> str:
    if os is None or not os.family:
        return _DEFAULT_VENDOR[ecosystem]
    family = os.family.lower()
    if ecosystem == "rpm":
        return _RPM_VENDOR.get(family, family)
    return family


def _upstream(pkg: Package) -> str:
    source = pkg.source_name
    if not source:
        return ""
    differs = pkg.source_version and pkg.source_version != pkg.version
    if source == pkg.name and not differs:
        return ""
    return f"{source}@{pkg.source_version}" if differs else source


def _rpm_version_epoch(pkg: Package) -> tuple[str, str]:
    """The purl version ("version-release") and epoch of an rpm Package.

    Accepts both shapes an rpm Package may have: ``version`` already "[epoch:]version-release",
    or ``version`` bare with ``release``/``epoch`` in metadata.
    """
    meta = pkg.metadata
    version = pkg.version
    epoch = ""
    head, colon, rest = version.partition(":")
    if colon and head.isdigit():
        epoch, version = head, rest
    meta_epoch = meta.get("epoch")
    if meta_epoch not in (None, ""):
        epoch = str(meta_epoch)
    release = str(meta.get("release") or "")
    if release and not version.endswith("-" + release):
        version = f"{version}-{release}"
    # Epoch 0 is the default and rpm itself omits it; writing it would make two purls for one package.
    if epoch == "0":
        epoch = ""
    return version, epoch


def _rpm_upstream(pkg: Package) -> str:
    meta = pkg.metadata
    for key in ("source_rpm", "sourcerpm", "source_rpm_name"):
        value = meta.get(key)
        if isinstance(value, str) and value and value != "(none)":
            return value
    if pkg.source_name and pkg.source_version:
        return f"{pkg.source_name}-{pkg.source_version}.src.rpm"
    return ""


def os_package_purl(pkg: Package, os: OSInfo | None) -> str:
    """The purl of a deb, apk or rpm package on ``os``; other ecosystems keep their own purl."""
    eco = pkg.ecosystem
    if eco not in _DEFAULT_VENDOR:
        return pkg.purl
    qualifiers: dict[str, str] = {"arch": pkg.arch, "distro": _distro(os)}
    version = pkg.version
    if eco == "rpm":
        version, epoch = _rpm_version_epoch(pkg)
        qualifiers["epoch"] = epoch
        upstream = _rpm_upstream(pkg)
    else:
        upstream = _upstream(pkg)
    qualifiers["upstream"] = upstream
    return purl.build(eco, pkg.name, version, namespace=_vendor(eco, os), qualifiers=qualifiers)
