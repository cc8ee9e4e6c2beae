"""Installed rpm packages, read from the rpm database in pure Python.

The backend is chosen by the file's content, not its name, because distributions have moved the
database (``var/lib/rpm`` -> ``usr/lib/sysimage/rpm``) and renamed files between releases.

Version form: ``[epoch:]version-release``, with the epoch only when the header carries a non-zero
one. rpm (and yum/dnf) treat a missing epoch as 0, so ``0:1.2-3`` and ``1.2-3`` are the same
version to any rpmvercmp-style comparator; leaving out a zero epoch keeps the string equal to
what ``rpm -q`` prints and to the unprefixed "fixed" versions most OSV feeds use (AlmaLinux,
Rocky), while a non-zero epoch has to stay because it dominates the comparison. Syft prints the
epoch whenever the tag exists (even 0) and Trivy keeps it in a separate field; the raw epoch is in
``metadata["epoch"]`` (None when absent) for anyone who needs the distinction.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import ClassVar

from hullguard.inventory.base import Analyzer, FileInfo
from hullguard.inventory.rpmdb import RpmdbError, bdb, ndb, sqlite
from hullguard.inventory.rpmdb.header import RpmPackage, read_package
from hullguard.model import Fact, Location, Package, PackageHint

DB_DIRS = ("var/lib/rpm/", "usr/lib/sysimage/rpm/")
DB_FILES = frozenset({"rpmdb.sqlite", "Packages", "Packages.db"})

# Pseudo-packages rpm creates for imported signing keys; they are not software.
_PSEUDO_PACKAGES = frozenset({"gpg-pubkey", "gpg-pubkey-release"})


def _backend(data: bytes) -> Callable[[bytes], Iterator[bytes]]:
    if data.startswith(sqlite.SQLITE_MAGIC):
        return sqlite.iter_blobs
    if ndb.is_ndb(data):
        return ndb.iter_blobs
    if bdb.is_bdb_hash(data):
        return bdb.iter_blobs
    raise RpmdbError("rpm database: neither sqlite, ndb nor Berkeley DB hash")


def format_version(epoch: int | None, version: str, release: str) -> str:
    evr = f"{version}-{release}" if release else version
    return f"{epoch}:{evr}" if epoch else evr


def split_sourcerpm(sourcerpm: str) -> tuple[str, str, str] | None:
    """``name-version-release.src.rpm`` -> (name, version, release); None if it is not that shape.

    Split from the right because names contain dashes and versions/releases cannot.
    """
    for suffix in (".src.rpm", ".nosrc.rpm"):
        if sourcerpm.endswith(suffix):
            stem = sourcerpm[: -len(suffix)]
            break
    else:
        return None
    parts = stem.rsplit("-", 2)
    if len(parts) != 3 or not all(parts):
        return None
    return parts[0], parts[1], parts[2]


def to_facts(pkg: RpmPackage, path: str) -> list[Fact]:
    source_name = source_version = ""
    source = split_sourcerpm(pkg.sourcerpm)
    if source is not None:
        source_name = source[0]
        # The .src.rpm file name has no epoch; the binary's epoch is the source's in practice
        # (both come from the same spec), and advisories keyed on the source compare full EVRs.
        source_version = format_version(pkg.epoch, source[1], source[2])
    package = Package(
        ecosystem="rpm",
        name=pkg.name,
        version=format_version(pkg.epoch, pkg.version, pkg.release),
        arch=pkg.arch,
        source_name=source_name,
        source_version=source_version,
        licenses=[pkg.license] if pkg.license else [],
        locations=[Location(path=path)],
        found_by="rpm",
        purl="",
        metadata={
            "epoch": pkg.epoch,
            "version": pkg.version,
            "release": pkg.release,
            "vendor": pkg.vendor,
            "modularity_label": pkg.modularity_label,
            "sourcerpm": pkg.sourcerpm,
            "size": pkg.size,
        },
    )
    # Paths follow the artifact's convention (relative to the image root, no leading slash) so
    # the merge step can compare them with the files the layers hold.
    files = [f.lstrip("/") for f in pkg.files]
    return [package, PackageHint(ecosystem="rpm", package=pkg.name, files=files)]


class RpmAnalyzer(Analyzer):
    name: ClassVar[str] = "rpm"
    version: ClassVar[int] = 1
    # RHEL 8 Berkeley DB Packages files reach 50-100 MB on big installs.
    max_size: ClassVar[int] = 512 * 1024 * 1024

    def wants(self, info: FileInfo) -> bool:
        head, sep, base = info.path.rpartition("/")
        return bool(sep) and base in DB_FILES and head + "/" in DB_DIRS

    def analyze(self, info: FileInfo, data: bytes) -> Iterable[Fact]:
        facts: list[Fact] = []
        for blob in _backend(data)(data):
            pkg = read_package(blob)
            if pkg.name in _PSEUDO_PACKAGES:
                continue
            facts.extend(to_facts(pkg, info.path))
        return facts
