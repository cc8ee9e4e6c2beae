"""Build a real Debian bookworm root filesystem with real language packages in it.

The result is cached on disk because debootstrap takes minutes: the cache key is
a hash of the recipe (package lists, pinned versions, builder version), so changing
any of those builds a fresh tree while repeated test runs reuse the old one.

Layout of one cache entry (``<cache>/rootfs-<key>/``)::

    base/    the debootstrap output only (becomes image layer 1)
    lang/    only the files the language installs added (image layer 2)
    root/    base + lang merged with hard links: the filesystem a scanner sees
    recipe.json

Usable as a script: ``python -m tests.builders.rootfs --out DIR``.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

# Bump when the way the tree is built changes, so stale caches are not reused.
BUILDER_VERSION = "2"

SUITE = "bookworm"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
DEB_INCLUDE = ("openssl", "curl", "python3", "ca-certificates")

# Old, pure-python releases with published advisories, so vulnerability tests have
# something to find: requests CVE-2023-32681, urllib3 CVE-2021-33503,
# jinja2 CVE-2020-28493, flask CVE-2023-30861, werkzeug CVE-2023-25577,
# markupsafe is a binary wheel on purpose: scanners must cope with a real .so too.
PIP_PACKAGES = (
    "requests==2.25.1",
    "urllib3==1.26.4",
    "jinja2==2.11.2",
    "markupsafe==2.1.2",
    "flask==1.1.2",
    "werkzeug==0.16.0",
)
PY_TARGET = "usr/lib/python3/dist-packages"

# lodash CVE-2020-8203, minimist CVE-2020-7598, express 4.17.1 pulls qs/path-to-regexp
# versions with later advisories.
NPM_PACKAGES = ("lodash@4.17.15", "minimist@1.2.0", "express@4.17.1")
NPM_APP = "srv/app"

# Maven Central is not reachable from the build machines, but Debian ships real
# upstream jars. snakeyaml 1.33 (CVE-2022-1471) carries pom.properties; log4j 1.2.17
# (CVE-2019-17571) carries only a MANIFEST, which exercises the fallback path.
JAR_DEBS = {
    "libyaml-snake-java=1.33-2": ("usr/share/java/snakeyaml.jar", "snakeyaml-1.33.jar"),
    "liblog4j1.2-java=1.2.17-11": ("usr/share/java/log4j-1.2-1.2.17.jar", "log4j-1.2.17.jar"),
    "libcommons-lang3-java": ("usr/share/java/commons-lang3.jar", "commons-lang3-3.12.0.jar"),
}
JAR_DIR = "opt/app/lib"


class BuildToolMissing(RuntimeError):
    """A host tool the builder needs is not installed."""


@dataclass(frozen=True)
class BuiltRootfs:
    root: Path
    base: Path
    lang: Path
    key: str
    recipe: dict[str, object]


def recipe() -> dict[str, object]:
    return {
        "builder": BUILDER_VERSION,
        "suite": SUITE,
        "variant": "minbase",
        "include": list(DEB_INCLUDE),
        "pip": list(PIP_PACKAGES),
        "npm": list(NPM_PACKAGES),
        "jars": {k: list(v) for k, v in JAR_DEBS.items()},
    }


def recipe_key(r: dict[str, object] | None = None) -> str:
    blob = json.dumps(r if r is not None else recipe(), sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def cache_root() -> Path:
    env = os.environ.get("HULLGUARD_TEST_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "hullguard-tests"


def missing_tools() -> list[str]:
    need = ["debootstrap", "npm", "apt-get", "dpkg-deb"]
    return [t for t in need if shutil.which(t) is None]


@contextlib.contextmanager
def cache_lock(name: str) -> Iterator[None]:
    """Serialise builders of one cache entry across processes (pytest-xdist workers)."""
    locks = cache_root() / ".locks"
    locks.mkdir(parents=True, exist_ok=True)
    with open(locks / f"{name}.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def remove_stale_temps(prefix: str) -> None:
    """Drop leftovers of interrupted builds. Call only while holding the entry's lock,
    which guarantees no live builder owns them."""
    for p in cache_root().glob(f".{prefix}.*"):
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)


def _run(cmd: list[str], cwd: Path | None = None, log: Path | None = None) -> None:
    out = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115 - closed below
    try:
        proc = subprocess.run(cmd, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, check=False)
    finally:
        if log:
            out.close()  # type: ignore[union-attr]
    if proc.returncode != 0:
        tail = log.read_text(errors="replace")[-3000:] if log else ""
        raise RuntimeError(f"{cmd[0]} failed ({proc.returncode}): {' '.join(cmd)}\n{tail}")


def _debootstrap(target: Path, mirror: str, log: Path) -> None:
    _run(
        [
            "debootstrap",
            "--variant=minbase",
            "--include=" + ",".join(DEB_INCLUDE),
            SUITE,
            str(target),
            mirror,
        ],
        log=log,
    )
    # The apt lists and .deb cache are host-specific noise and tens of MiB.
    for sub in ("var/cache/apt/archives", "var/lib/apt/lists"):
        d = target / sub
        if d.is_dir():
            for p in d.iterdir():
                if p.is_file():
                    p.unlink()


def _pip_install(lang: Path, log: Path) -> None:
    target = lang / PY_TARGET
    target.mkdir(parents=True, exist_ok=True)
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-compile",
            "--disable-pip-version-check",
            "--only-binary=:all:",
            "--python-version",
            "3.11",
            "--platform",
            "manylinux2014_x86_64",
            "--target",
            str(target),
            *PIP_PACKAGES,
        ],
        log=log,
    )
    # pip --target drops console scripts beside the packages; an image would have them on PATH.
    scripts = target / "bin"
    if scripts.is_dir():
        (lang / "usr/local").mkdir(parents=True, exist_ok=True)
        shutil.move(scripts, lang / "usr/local/bin")


def _npm_install(lang: Path, log: Path) -> None:
    app = lang / NPM_APP
    app.mkdir(parents=True, exist_ok=True)
    deps = {spec.rsplit("@", 1)[0]: spec.rsplit("@", 1)[1] for spec in NPM_PACKAGES}
    (app / "package.json").write_text(
        json.dumps(
            {"name": "hullguard-fixture-app", "version": "1.0.0", "private": True, "dependencies": deps},
            indent=2,
        )
        + "\n"
    )
    # --ignore-scripts: fixture packages must never run code on the build host.
    _run(
        ["npm", "install", "--no-audit", "--no-fund", "--ignore-scripts", "--save-exact", "--loglevel=error"],
        cwd=app,
        log=log,
    )


def _jars(lang: Path, log: Path) -> None:
    dest = lang / JAR_DIR
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="hg-jars-") as tmp:
        t = Path(tmp)
        os.chmod(t, 0o755)  # apt drops to _apt and must be able to write here
        _run(["apt-get", "download", "-q", *JAR_DEBS], cwd=t, log=log)
        x = t / "x"
        for deb in sorted(t.glob("*.deb")):
            _run(["dpkg-deb", "-x", str(deb), str(x)], log=log)
        for src, name in JAR_DEBS.values():
            shutil.copyfile(x / src, dest / name)


def _merge(base: Path, lang: Path, root: Path) -> None:
    # Hard links make the merged view nearly free on disk; tests must treat it as read-only.
    _run(["cp", "-a", "--link", f"{base}/.", str(root)])
    _run(["cp", "-a", "--link", "--remove-destination", f"{lang}/.", str(root)])


def _build(dest_tmp: Path, mirror: str) -> None:
    log = dest_tmp / "build.log"
    base, lang, root = dest_tmp / "base", dest_tmp / "lang", dest_tmp / "root"
    base.mkdir()
    lang.mkdir()
    root.mkdir()
    _debootstrap(base, mirror, log)
    _pip_install(lang, log)
    _npm_install(lang, log)
    _jars(lang, log)
    _merge(base, lang, root)


def build_rootfs_parts(mirror: str | None = None, *, quiet: bool = True) -> BuiltRootfs:
    """Return the cached tree for the current recipe, building it first if needed."""
    r = recipe()
    key = recipe_key(r)
    final = cache_root() / f"rootfs-{key}"
    if not (final / "recipe.json").is_file():
        bad = missing_tools()
        if bad:
            raise BuildToolMissing("missing host tools: " + ", ".join(bad))
        if os.geteuid() != 0:
            raise BuildToolMissing("debootstrap needs root")
        with cache_lock(f"rootfs-{key}"):
            if not (final / "recipe.json").is_file():
                remove_stale_temps(f"rootfs-{key}")
                mirror = mirror or os.environ.get("HULLGUARD_DEBIAN_MIRROR") or DEFAULT_MIRROR
                tmp = Path(tempfile.mkdtemp(prefix=f".rootfs-{key}.", dir=cache_root()))
                started = time.monotonic()
                try:
                    _build(tmp, mirror)
                    meta = dict(r, key=key, mirror=mirror, seconds=round(time.monotonic() - started, 1))
                    # recipe.json is written last: its presence is what marks an entry complete.
                    (tmp / "recipe.json").write_text(json.dumps(meta, indent=2) + "\n")
                    os.chmod(tmp, 0o755)
                    os.rename(tmp, final)
                except BaseException:
                    shutil.rmtree(tmp, ignore_errors=True)
                    raise
                if not quiet:
                    print(f"built {final} in {meta['seconds']}s", file=sys.stderr)
    meta = json.loads((final / "recipe.json").read_text())
    return BuiltRootfs(root=final / "root", base=final / "base", lang=final / "lang", key=key, recipe=meta)


def build_rootfs(mirror: str | None = None) -> Path:
    """Path of the merged root filesystem (Debian base plus language packages)."""
    return build_rootfs_parts(mirror).root


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, help="also copy the merged root here")
    ap.add_argument("--mirror", help="Debian mirror (default $HULLGUARD_DEBIAN_MIRROR or deb.debian.org)")
    ap.add_argument("--print-key", action="store_true", help="print the cache key and exit")
    args = ap.parse_args(argv)
    if args.print_key:
        print(recipe_key())
        return 0
    built = build_rootfs_parts(args.mirror, quiet=False)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        _run(["cp", "-a", f"{built.root}/.", str(args.out)])
        print(args.out)
    else:
        print(built.root)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
