"""Package URLs (https://github.com/package-url/purl-spec), built and parsed per the spec.

Kept in-house rather than using packageurl-python: it is small, on the hot path of every scan,
and we need the per-type normalisation rules in one place.
"""

from __future__ import annotations

import re
from urllib.parse import quote, unquote

# Types whose namespace and name are case-insensitive and must be lowercased.
_LOWER_NAMESPACE = {"bitbucket", "github", "composer", "deb", "apk", "alpm", "pypi", "hex"}
_LOWER_NAME = {"bitbucket", "github", "composer", "deb", "apk", "alpm", "pypi", "hex", "npm"}


def _enc(text: str) -> str:
    # The spec leaves ':' unencoded everywhere; everything outside the unreserved set is encoded.
    return quote(text, safe="").replace("%3A", ":")


def normalize_name(ptype: str, name: str) -> str:
    if ptype == "pypi":
        return re.sub(r"[-_.]+", "-", name).lower()
    if ptype in _LOWER_NAME:
        return name.lower()
    return name


def build(
    ptype: str,
    name: str,
    version: str = "",
    namespace: str = "",
    qualifiers: dict[str, str] | None = None,
    subpath: str = "",
) -> str:
    ptype = ptype.lower()
    if ptype in _LOWER_NAMESPACE:
        namespace = namespace.lower()
    name = normalize_name(ptype, name)
    out = ["pkg:", ptype, "/"]
    if namespace:
        out.append("/".join(_enc(seg) for seg in namespace.strip("/").split("/") if seg))
        out.append("/")
    out.append(_enc(name))
    if version:
        out.append("@" + _enc(version))
    if qualifiers:
        items = sorted((k.lower(), v) for k, v in qualifiers.items() if v)
        if items:
            out.append("?" + "&".join(f"{k}={_enc(v)}" for k, v in items))
    if subpath:
        segs = [s for s in subpath.strip("/").split("/") if s not in ("", ".", "..")]
        if segs:
            out.append("#" + "/".join(_enc(s) for s in segs))
    return "".join(out)


class PurlError(ValueError):
    pass


def parse(purl: str) -> dict[str, object]:
    """Split a purl into type, namespace, name, version, qualifiers and subpath (decoded)."""
    if not purl.startswith("pkg:"):
        raise PurlError(f"not a package URL: {purl!r}")
    rest = purl[4:].lstrip("/")
    subpath = ""
    if "#" in rest:
        rest, subpath = rest.split("#", 1)
    qualifiers: dict[str, str] = {}
    if "?" in rest:
        rest, q = rest.split("?", 1)
        for pair in q.split("&"):
            if "=" in pair:
                k, v = pair.split("=", 1)
                qualifiers[k.lower()] = unquote(v)
    version = ""
    # The version separator is the last '@' that comes after the last '/'.
    slash = rest.rfind("/")
    at = rest.rfind("@")
    if at > slash:
        rest, version = rest[:at], unquote(rest[at + 1 :])
    if "/" not in rest:
        raise PurlError(f"package URL has no type: {purl!r}")
    ptype, rest = rest.split("/", 1)
    parts = [p for p in rest.split("/") if p]
    if not parts:
        raise PurlError(f"package URL has no name: {purl!r}")
    name = unquote(parts[-1])
    namespace = "/".join(unquote(p) for p in parts[:-1])
    return {
        "type": ptype.lower(),
        "namespace": namespace,
        "name": name,
        "version": version,
        "qualifiers": qualifiers,
        "subpath": unquote(subpath),
    }
