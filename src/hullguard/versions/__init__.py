"""Version ordering, one comparator per ecosystem, with each ecosystem's own rules.

>>> from hullguard.versions import comparator_for
>>> deb = comparator_for("Debian:12")
>>> deb.compare("1.0~rc1-1", "1.0-1")
-1
>>> sorted(["1.10", "1.9", "1.10rc1"], key=comparator_for("PyPI").key)
['1.9', '1.10rc1', '1.10']

Ecosystem names are OSV's (``Debian``, ``Alpine:v3.19``, ``PyPI``, ...; the
part after the first ``:`` is a release qualifier and does not change the
ordering) or hullguard's internal ones (``deb``, ``apk``, ``pypi``, ...).
"""

from __future__ import annotations

from ._base import MAX_VERSION_LENGTH, BaseComparator, Comparator, InvalidVersion, UnknownEcosystem
from .apk import COMPARATOR as APK
from .composer import COMPARATOR as COMPOSER
from .dpkg import COMPARATOR as DPKG
from .generic import COMPARATOR as GENERIC
from .golang import COMPARATOR as GO
from .maven import COMPARATOR as MAVEN
from .nuget import COMPARATOR as NUGET
from .pep440 import COMPARATOR as PEP440
from .rpm import COMPARATOR as RPM
from .rubygems import COMPARATOR as RUBYGEMS
from .semver import CARGO, HEX, NPM, PUB

__all__ = [
    "MAX_VERSION_LENGTH",
    "BaseComparator",
    "Comparator",
    "InvalidVersion",
    "UnknownEcosystem",
    "comparator_for",
    "ecosystems",
    "register",
]

_REGISTRY: dict[str, Comparator] = {}


def register(comparator: Comparator, *names: str) -> None:
    """Map ecosystem names (OSV or internal) to ``comparator``."""
    for name in names:
        _REGISTRY[name] = comparator


register(DPKG, "Debian", "Ubuntu", "deb", "dpkg")
register(APK, "Alpine", "Wolfi", "Chainguard", "Alpaquita", "BellSoft Hardened Containers", "apk")
register(
    RPM,
    "Rocky Linux",
    "AlmaLinux",
    "Red Hat",
    "openSUSE",
    "SUSE",
    "Mageia",
    "openEuler",
    "Photon OS",
    "Azure Linux",
    "Oracle Linux",
    "rpm",
)
register(PEP440, "PyPI", "pypi", "python")
register(NPM, "npm")
register(CARGO, "crates.io", "cargo", "rust")
register(GO, "Go", "golang")
register(MAVEN, "Maven", "maven")
register(RUBYGEMS, "RubyGems", "gem", "rubygems")
register(NUGET, "NuGet", "nuget")
register(COMPOSER, "Packagist", "composer")
register(HEX, "Hex", "hex")
register(PUB, "Pub", "pub")
# OSV ecosystems whose version rules have no dedicated comparator yet.
register(
    GENERIC,
    "Hackage",
    "CRAN",
    "Bioconductor",
    "ConanCenter",
    "SwiftURL",
    "GitHub Actions",
    "Linux",
    "Android",
    "OSS-Fuzz",
    "GHC",
    "opam",
    "generic",
)

_FOLDED = {name.casefold(): comp for name, comp in _REGISTRY.items()}


def comparator_for(ecosystem: str) -> Comparator:
    """The comparator for an OSV or internal ecosystem name.

    Raises :class:`UnknownEcosystem` for names without one; callers decide
    whether to fall back to the approximate ``comparator_for("generic")``.
    """
    base = ecosystem.split(":", 1)[0].strip()
    comp = _REGISTRY.get(base) or _FOLDED.get(base.casefold())
    if comp is None:
        raise UnknownEcosystem(f"no version comparator for ecosystem {ecosystem!r}")
    return comp


def ecosystems() -> list[str]:
    """Every registered ecosystem name."""
    return sorted(_REGISTRY)
