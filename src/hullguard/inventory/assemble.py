"""Turn the squashed per-path facts of an image into its inventory: packages with locations and
the layer that introduced them, distro purls, licences and file lists joined from hint files,
dependency ids, and which language packages an OS package manager installed."""

from __future__ import annotations

import re
from collections import defaultdict

from hullguard import purl as purls
from hullguard.image.layers import Squashed
from hullguard.model import Finding, Layer, Location, OSInfo, Package

OS_ECOSYSTEMS = {"deb", "apk", "rpm"}


def _norm(ecosystem: str, name: str) -> str:
    if ecosystem == "pypi":
        return re.sub(r"[-_.]+", "-", name).lower()
    return name.lower() if ecosystem in ("deb", "apk", "npm", "composer") else name


def pick_os(squashed: Squashed) -> OSInfo | None:
    candidates = [(path, info) for path, facts in squashed.files.items() for info in facts.os]
    if not candidates:
        return None
    from hullguard.inventory.os_release import pick_os as choose

    chosen = choose(candidates)
    # Distroless images keep one dpkg control file per package in status.d and no status file;
    # some of them ship a plain Debian os-release that does not say so.
    if chosen and not chosen.distroless and "var/lib/dpkg/status" not in squashed.files and any(
            p.startswith("var/lib/dpkg/status.d/") for p in squashed.files):
        chosen = OSInfo(**{f: getattr(chosen, f) for f in chosen.__struct_fields__})
        chosen.distroless = True
    return chosen


def assemble(squashed: Squashed, layers: list[Layer], os_info: OSInfo | None) -> tuple[list[Package], list[Finding]]:
    hints_files: dict[tuple[str, str], list[str]] = defaultdict(list)
    hints_licenses: dict[tuple[str, str], list[str]] = defaultdict(list)
    for facts in squashed.files.values():
        for hint in facts.hints:
            key = (hint.ecosystem, hint.package)
            hints_files[key].extend(hint.files)
            for lic in hint.licenses:
                if lic not in hints_licenses[key]:
                    hints_licenses[key].append(lic)

    def digest_of(index: int) -> str:
        return layers[index].digest if 0 <= index < len(layers) else ""

    packages: list[Package] = []
    seen: set[tuple[str, str, str, str, str]] = set()
    for path in sorted(squashed.files):
        facts = squashed.files[path]
        origin = squashed.origin.get(path, {})
        default_layer = squashed.layer_of.get(path, -1)
        for pkg in facts.packages:
            key = (pkg.ecosystem, pkg.name, pkg.version, pkg.arch, path)
            if key in seen:
                continue
            seen.add(key)
            layer_index = origin.get((pkg.ecosystem, pkg.name, pkg.version), default_layer)
            out = Package(**{f: getattr(pkg, f) for f in pkg.__struct_fields__})
            out.metadata = dict(pkg.metadata)
            out.locations = [Location(path=path, layer=digest_of(layer_index)),
                             *(loc for loc in pkg.locations if loc.path != path)]
            hint_key = (pkg.ecosystem, pkg.name)
            if not out.licenses and hints_licenses.get(hint_key):
                out.licenses = list(hints_licenses[hint_key])
            if hints_files.get(hint_key):
                out.metadata["files"] = sorted(set(hints_files[hint_key]))
            if not out.purl:
                out.purl = _purl(out, os_info)
            packages.append(out)

    packages = _fold_lockfiles(packages)
    _mark_os_owned(packages)
    _link_dependencies(packages)
    findings = []
    for index, path, finding in squashed.findings:
        loc = finding.location or Location(path=path)
        findings.append(Finding(**{f: getattr(finding, f) for f in finding.__struct_fields__}))
        findings[-1].location = Location(path=loc.path or path, layer=digest_of(index), line=loc.line)
        if path in squashed.deleted:
            findings[-1].details = {**finding.details, "deleted_in_later_layer": True}
    return packages, findings


def _purl(pkg: Package, os_info: OSInfo | None) -> str:
    if pkg.ecosystem in OS_ECOSYSTEMS:
        from hullguard.inventory.ospurl import os_package_purl

        return os_package_purl(pkg, os_info)
    ptype = {"golang": "golang", "cargo": "cargo", "gem": "gem", "nuget": "nuget", "composer": "composer",
             "maven": "maven", "npm": "npm", "pypi": "pypi"}.get(pkg.ecosystem, pkg.ecosystem)
    return purls.build(ptype, pkg.name, pkg.version)


LOCKFILES = {
    "package-lock.json", "npm-shrinkwrap.json", "yarn.lock", "pnpm-lock.yaml", "poetry.lock", "Pipfile.lock",
    "uv.lock", "Cargo.lock", "Gemfile.lock", "composer.lock", "packages.lock.json", "go.mod",
}


def _is_lockfile(path: str) -> bool:
    base = path.rsplit("/", 1)[-1]
    return base in LOCKFILES or (base.startswith("requirements") and base.endswith(".txt"))


def _fold_lockfiles(packages: list[Package]) -> list[Package]:
    """A lockfile entry for a package that is also installed is the same package seen twice: keep
    the installed one (it is what runs) and record the lockfile as a further location. Entries
    with nothing installed stay, so a project shipped without node_modules is still inventoried."""
    installed: dict[tuple[str, str, str], Package] = {}
    for pkg in packages:
        if pkg.locations and not _is_lockfile(pkg.locations[0].path):
            installed.setdefault((pkg.ecosystem, _norm(pkg.ecosystem, pkg.name), pkg.version), pkg)
    out = []
    for pkg in packages:
        if pkg.locations and _is_lockfile(pkg.locations[0].path):
            twin = installed.get((pkg.ecosystem, _norm(pkg.ecosystem, pkg.name), pkg.version))
            if twin is not None:
                if all(loc.path != pkg.locations[0].path for loc in twin.locations):
                    twin.locations.append(pkg.locations[0])
                continue
        out.append(pkg)
    return out


def _mark_os_owned(packages: list[Package]) -> None:
    """Language packages that a distro package installed (python3-yaml ships PyYAML's dist-info)
    are kept in the inventory but marked, so matching can use the distro's advisories for them."""
    owner: dict[str, str] = {}
    for pkg in packages:
        if pkg.ecosystem in OS_ECOSYSTEMS:
            for f in pkg.metadata.get("files", ()):
                owner[f.lstrip("/")] = pkg.name
    if not owner:
        return
    for pkg in packages:
        if pkg.ecosystem in OS_ECOSYSTEMS or not pkg.locations:
            continue
        by = owner.get(pkg.locations[0].path)
        if by:
            pkg.metadata["os_owned_by"] = by


def _link_dependencies(packages: list[Package]) -> None:
    index: dict[tuple[str, str], str] = {}
    for pkg in packages:
        index.setdefault((pkg.ecosystem, _norm(pkg.ecosystem, pkg.name)), pkg.id)
    for pkg in packages:
        names = pkg.metadata.get("requires") or pkg.metadata.get("depends") or []
        deps = []
        for name in names:
            if not isinstance(name, str):
                continue
            dep = index.get((pkg.ecosystem, _norm(pkg.ecosystem, name)))
            if dep and dep != pkg.id and dep not in deps:
                deps.append(dep)
        if deps:
            pkg.dependencies = deps


__all__ = ["assemble", "pick_os"]
