"""`db update` against an OSV-bucket look-alike served by http.server on 127.0.0.1."""

from __future__ import annotations

import hashlib
import http.server
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from hullguard.vulndb.store import SQLiteStore, Store
from hullguard.vulndb.update import archive_url, update

from .records import fixed, make_zip, record


@dataclass
class Bucket:
    files: dict[str, bytes] = field(default_factory=dict)
    requests: list[tuple[str, str, str]] = field(default_factory=list)  # (path, if-none-match, status)
    truncate: set[str] = field(default_factory=set)  # send half the body, then drop the connection
    url: str = ""


@pytest.fixture
def bucket() -> Iterator[Bucket]:
    state = Bucket()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            data = state.files.get(self.path)
            inm = self.headers.get("If-None-Match", "")
            if data is None:
                state.requests.append((self.path, inm, "404"))
                self.send_error(404)
                return
            etag = '"' + hashlib.sha256(data).hexdigest()[:16] + '"'
            if inm == etag:
                state.requests.append((self.path, inm, "304"))
                self.send_response(304)
                self.send_header("ETag", etag)
                self.end_headers()
                return
            state.requests.append((self.path, inm, "200"))
            self.send_response(200)
            self.send_header("Content-Type", "application/zip")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("ETag", etag)
            self.send_header("Last-Modified", "Mon, 01 Jan 2024 00:00:00 GMT")
            self.end_headers()
            if self.path in state.truncate:
                self.wfile.write(data[: len(data) // 2])
                self.wfile.flush()
                self.close_connection = True
                return
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


PYPI_V1 = [record("GHSA-req", "PyPI", "requests", fixed("2.31.0", "2.3.0")),
           record("GHSA-url", "PyPI", "urllib3", fixed("1.26.5"))]
PYPI_V2 = [record("GHSA-req", "PyPI", "requests", fixed("2.32.0", "2.3.0"), modified="2024-06-01T00:00:00Z")]
DEB = [record("DSA-5000-1", "Debian:12", "openssl", fixed("3.0.11-1~deb12u2"))]


def _serve(bucket: Bucket, eco: str, records: list[dict], extra: dict[str, bytes] | None = None) -> None:
    path = archive_url("", eco)
    bucket.files[path] = make_zip(records, extra)


def _ids(store: Store, eco: str, *names: str) -> set[str]:
    return {r.advisory_id for r in store.lookup(eco, names)}


def test_first_download_then_304_then_changed(bucket: Bucket, tmp_path) -> None:
    store = SQLiteStore(str(tmp_path / "db" / "hullguard.db"))
    _serve(bucket, "PyPI", PYPI_V1, {"bad.json": b"{oops"})
    _serve(bucket, "Debian", DEB)

    res = update(store, ["PyPI", "Debian"], base=bucket.url)
    assert [(r.ecosystem, r.status) for r in res] == [("PyPI", "updated"), ("Debian", "updated")]
    assert res[0].stats.records == 2 and res[0].stats.skipped == 1
    assert _ids(store, "PyPI", "requests", "urllib3") == {"GHSA-req", "GHSA-url"}
    assert _ids(store, "Debian", "openssl") == {"DSA-5000-1"}

    res = update(store, ["PyPI", "Debian"], base=bucket.url)
    assert [r.status for r in res] == ["unchanged", "unchanged"]
    assert [s for _, inm, s in bucket.requests[-2:]] == ["304", "304"]
    assert all(inm for _, inm, _ in bucket.requests[-2:])

    _serve(bucket, "PyPI", PYPI_V2)
    res = update(store, ["PyPI", "Debian"], base=bucket.url)
    assert [r.status for r in res] == ["updated", "unchanged"]
    assert _ids(store, "PyPI", "requests", "urllib3") == {"GHSA-req"}
    assert store.lookup("PyPI", ["requests"])[0].ranges[0][1][1] == ["fixed", "2.32.0"]
    assert _ids(store, "Debian", "openssl") == {"DSA-5000-1"}
    st = store.status()
    assert {s["name"] for s in st["sources"]} == {"PyPI", "Debian"}


def test_ecosystem_names_with_spaces_are_quoted(bucket: Bucket, tmp_path) -> None:
    store = SQLiteStore(str(tmp_path / "hg.db"))
    _serve(bucket, "Rocky Linux", [record("RLSA-2024:1", "Rocky Linux:9", "openssl", fixed("1:3.0.7-25.el9_3"))])
    assert "/Rocky%20Linux/all.zip" in bucket.files
    res = update(store, ["Rocky Linux"], base=bucket.url)
    assert res[0].status == "updated"
    assert _ids(store, "Rocky Linux", "openssl") == {"RLSA-2024:1"}


def _snapshot(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def test_dropped_connection_keeps_previous_database(bucket: Bucket, tmp_path) -> None:
    path = str(tmp_path / "hullguard.db")
    store = SQLiteStore(path)
    _serve(bucket, "PyPI", PYPI_V1)
    update(store, ["PyPI"], base=bucket.url)
    _serve(bucket, "PyPI", PYPI_V2)
    bucket.truncate.add("/PyPI/all.zip")
    res = update(store, ["PyPI"], base=bucket.url)
    assert res[0].status == "failed" and res[0].error
    assert _ids(store, "PyPI", "requests", "urllib3") == {"GHSA-req", "GHSA-url"}
    # A fresh reader sees the old data too, and no temporary files are left behind.
    other = SQLiteStore(path, create=False)
    assert _ids(other, "PyPI", "urllib3") == {"GHSA-url"}
    assert sorted(p.name for p in tmp_path.iterdir() if ".tmp-" in p.name or p.suffix == ".zip") == []


def test_corrupt_zip_keeps_previous_data_and_others_update(bucket: Bucket, tmp_path) -> None:
    store = SQLiteStore(str(tmp_path / "hullguard.db"))
    _serve(bucket, "PyPI", PYPI_V1)
    _serve(bucket, "Debian", DEB)
    update(store, ["PyPI", "Debian"], base=bucket.url)
    good = make_zip(PYPI_V2)
    bucket.files["/PyPI/all.zip"] = good[:-30] + b"\x00" * 30  # central directory destroyed
    _serve(bucket, "Debian", [*DEB, record("DSA-5001-1", "Debian:12", "curl", fixed("7.88.1-10+deb12u5"))])
    res = update(store, ["PyPI", "Debian"], base=bucket.url)
    assert [r.status for r in res] == ["failed", "updated"]
    assert _ids(store, "PyPI", "urllib3") == {"GHSA-url"}
    assert _ids(store, "Debian", "curl") == {"DSA-5001-1"}
    # The failed archive's ETag was not recorded, so the next run fetches it again.
    bucket.files["/PyPI/all.zip"] = good
    res = update(store, ["PyPI"], base=bucket.url)
    assert res[0].status == "updated"
    assert _ids(store, "PyPI", "urllib3") == set()


def test_http_errors_are_reported_per_ecosystem(bucket: Bucket, tmp_path) -> None:
    store = SQLiteStore(str(tmp_path / "hullguard.db"))
    _serve(bucket, "npm", [record("GHSA-npm", "npm", "lodash", fixed("4.17.21"))])
    res = update(store, ["Nope", "npm"], base=bucket.url)
    assert res[0].status == "failed" and "404" in res[0].error
    assert res[1].status == "updated"


def test_interrupted_import_leaves_file_untouched(bucket: Bucket, tmp_path, monkeypatch) -> None:
    path = str(tmp_path / "hullguard.db")
    store = SQLiteStore(path)
    _serve(bucket, "PyPI", PYPI_V1)
    update(store, ["PyPI"], base=bucket.url)
    _serve(bucket, "PyPI", PYPI_V2)

    import hullguard.vulndb.update as upd

    def boom(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(upd, "iter_zip", boom)
    with pytest.raises(KeyboardInterrupt):
        update(store, ["PyPI"], base=bucket.url)
    assert _ids(SQLiteStore(path, create=False), "PyPI", "urllib3") == {"GHSA-url"}
    assert [p.name for p in tmp_path.iterdir() if ".tmp-" in p.name] == []


def test_postgres_update(bucket: Bucket, postgres_url: str) -> None:
    import psycopg

    from hullguard.vulndb.store import PostgresStore

    name = "upd_test"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name}")
        conn.execute(f"CREATE DATABASE {name}")
    store = PostgresStore(postgres_url.rsplit("/", 1)[0] + "/" + name)
    try:
        _serve(bucket, "PyPI", PYPI_V1)
        assert update(store, ["PyPI"], base=bucket.url)[0].status == "updated"
        assert update(store, ["PyPI"], base=bucket.url)[0].status == "unchanged"
        bucket.files["/PyPI/all.zip"] = make_zip(PYPI_V2)[:100]
        assert update(store, ["PyPI"], base=bucket.url)[0].status == "failed"
        assert _ids(store, "PyPI", "urllib3") == {"GHSA-url"}
    finally:
        store.close()
