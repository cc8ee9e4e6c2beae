"""``hullguard db update``: OSV's per-ecosystem bulk archives, fetched only when they changed.

Each archive is ``<base>/<Ecosystem>/all.zip``. A conditional GET (``If-None-Match`` with the
stored ETag, ``If-Modified-Since`` with the stored ``Last-Modified``) lets an unchanged archive
cost one request. Downloads stream into temporary files first; only when every download has
finished is the database touched, through :meth:`Store.staged`, so a dropped connection or a
corrupt archive leaves the previous data of that ecosystem (and, on SQLite, the whole previous
file until the final swap) as it was.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from urllib.parse import quote

from hullguard.model import HullguardError
from hullguard.vulndb.importer import ArchiveError, Limits, iter_zip, parse_docs
from hullguard.vulndb.store import ImportStats, Store

DEFAULT_BASE_URL = "https://osv-vulnerabilities.storage.googleapis.com"

# Everything the inventory can produce packages for.
DEFAULT_ECOSYSTEMS = (
    "Debian", "Ubuntu", "Alpine", "Rocky Linux", "AlmaLinux", "Red Hat", "SUSE", "openSUSE", "Wolfi",
    "Chainguard", "PyPI", "npm", "Maven", "Go", "crates.io", "RubyGems", "Packagist", "NuGet",
)

MAX_ARCHIVE_BYTES = 4 * 1024**3

Progress = Callable[[str, int, int], None]  # (description, done, total)


@dataclass
class SourceResult:
    ecosystem: str
    status: str  # updated | unchanged | failed
    url: str = ""
    error: str = ""
    downloaded: int = 0
    stats: ImportStats = field(default_factory=ImportStats)


def base_url(explicit: str = "") -> str:
    return (explicit or os.environ.get("HULLGUARD_OSV_URL", "") or DEFAULT_BASE_URL).rstrip("/")


def archive_url(base: str, ecosystem: str) -> str:
    return f"{base.rstrip('/')}/{quote(ecosystem, safe=':')}/all.zip"


@dataclass
class _Download:
    ecosystem: str
    url: str
    path: str = ""
    etag: str = ""
    last_modified: str = ""
    size: int = 0


def _fetch(client: object, dl: _Download, store: Store, workdir: str, progress: Progress | None,
           max_bytes: int) -> bool:
    """True when a new archive was saved to ``dl.path``; False on 304 Not Modified."""
    import httpx

    assert isinstance(client, httpx.Client)
    headers = {}
    state = store.source_state(dl.ecosystem)
    if state is not None:
        if state.etag:
            headers["If-None-Match"] = state.etag
        if state.last_modified:
            headers["If-Modified-Since"] = state.last_modified
    with client.stream("GET", dl.url, headers=headers) as resp:
        if resp.status_code == 304:
            return False
        if resp.status_code != 200:
            raise HullguardError(f"{dl.url}: HTTP {resp.status_code}")
        total = int(resp.headers.get("content-length", "0") or 0)
        if total > max_bytes:
            raise HullguardError(f"{dl.url}: {total} bytes (limit {max_bytes})")
        fd, dl.path = tempfile.mkstemp(prefix="osv-", suffix=".zip", dir=workdir)
        with os.fdopen(fd, "wb") as out:
            for chunk in resp.iter_bytes(1 << 20):
                dl.size += len(chunk)
                if dl.size > max_bytes:
                    raise HullguardError(f"{dl.url}: more than {max_bytes} bytes (limit)")
                out.write(chunk)
                if progress:
                    progress(f"download {dl.ecosystem}", dl.size, total)
        # httpx raises on a body shorter than Content-Length; without one, a dropped
        # connection shows up as a truncated zip, which the importer rejects.
        dl.etag = resp.headers.get("etag", "")
        dl.last_modified = resp.headers.get("last-modified", "")
    return True


def update(
    store: Store,
    ecosystems: Iterable[str] | None = None,
    *,
    base: str = "",
    timeout: float = 60.0,
    progress: Progress | None = None,
    max_bytes: int = MAX_ARCHIVE_BYTES,
    limits: Limits | None = None,
    transport: object | None = None,
) -> list[SourceResult]:
    """Bring the selected ecosystems up to date; one :class:`SourceResult` per ecosystem.

    A failure of one ecosystem (network, HTTP status, corrupt archive) is reported in its
    result and leaves that ecosystem's previous data in place; the others still update.
    """
    import httpx

    root = base_url(base)
    selected = list(dict.fromkeys(ecosystems or DEFAULT_ECOSYSTEMS))
    results = {eco: SourceResult(eco, "unchanged", url=archive_url(root, eco)) for eco in selected}
    workdir = _workdir(store)
    downloads: list[_Download] = []
    try:
        kwargs: dict[str, object] = {"timeout": timeout, "follow_redirects": True,
                                     "headers": {"User-Agent": "hullguard"}}
        if transport is not None:
            kwargs["transport"] = transport
        with httpx.Client(**kwargs) as client:  # type: ignore[arg-type]
            for eco in selected:
                res = results[eco]
                dl = _Download(eco, res.url)
                try:
                    if _fetch(client, dl, store, workdir, progress, max_bytes):
                        downloads.append(dl)
                        res.downloaded = dl.size
                except (httpx.HTTPError, HullguardError, OSError) as exc:
                    res.status = "failed"
                    res.error = _short(exc)
                    _unlink(dl.path)
        if downloads:
            with store.staged() as target:
                for dl in downloads:
                    res = results[dl.ecosystem]
                    res.stats = ImportStats(source=dl.ecosystem)
                    try:
                        docs = iter_zip(dl.path, limits)
                        target.replace_source(
                            dl.ecosystem, _counted(parse_docs(docs, res.stats), progress, dl.ecosystem),
                            res.stats, only_ecosystem=dl.ecosystem, url=dl.url, etag=dl.etag,
                            last_modified=dl.last_modified)
                        res.status = "updated"
                    except ArchiveError as exc:
                        res.status = "failed"
                        res.error = str(exc)
    finally:
        for dl in downloads:
            _unlink(dl.path)
    return [results[eco] for eco in selected]


def _counted(items: Iterable[object], progress: Progress | None, eco: str) -> Iterable[object]:
    for n, item in enumerate(items, 1):
        if progress and n % 1000 == 0:
            progress(f"import {eco}", n, 0)
        yield item


def _workdir(store: Store) -> str:
    # Next to the SQLite file when there is one, so the temporary archives live on the same,
    # presumably roomy, file system as the database.
    path = getattr(store, "path", "")
    if path and path != ":memory:":
        d = os.path.dirname(os.path.abspath(path))
        if os.access(d, os.W_OK):
            return d
    return tempfile.gettempdir()


def _unlink(path: str) -> None:
    if path:
        with contextlib.suppress(OSError):
            os.unlink(path)


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:300]
