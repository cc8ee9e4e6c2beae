from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator

import pytest

from hullguard.vulndb.store import PostgresStore, SQLiteStore, Store

PG_BIN = "/usr/lib/postgresql/15/bin"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _missing(reason: str) -> None:
    if os.environ.get("HULLGUARD_REQUIRE_INTEGRATION"):
        pytest.fail(reason)
    pytest.skip(reason)


def _as_postgres(cmd: str) -> list[str]:
    # initdb refuses to run as root; the Debian package creates the postgres user.
    return ["su", "postgres", "-c", cmd] if os.geteuid() == 0 else ["sh", "-c", cmd]


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    if not os.path.exists(f"{PG_BIN}/initdb"):
        _missing(f"PostgreSQL binaries not found in {PG_BIN} (apt-get install postgresql)")
    try:
        import psycopg
    except ImportError:
        _missing("psycopg is not installed")
    if os.geteuid() == 0 and shutil.which("su") is None:
        _missing("need 'su' to run PostgreSQL as the postgres user")
    d = tempfile.mkdtemp(prefix="hg-pg-")
    os.chmod(d, 0o777)
    if os.geteuid() == 0:
        shutil.chown(d, "postgres")
    port = _free_port()
    subprocess.run(_as_postgres(f"{PG_BIN}/initdb -D {d}/data -A trust -U postgres"), check=True,
                   capture_output=True)
    subprocess.run(_as_postgres(f"{PG_BIN}/pg_ctl -D {d}/data -o '-k {d} -h 127.0.0.1 -p {port}' "
                                f"-l {d}/log -w start"), check=True, capture_output=True)
    try:
        url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
        deadline = time.time() + 30
        import psycopg

        while True:
            try:
                psycopg.connect(url).close()
                break
            except psycopg.OperationalError:
                if time.time() > deadline:
                    raise
                time.sleep(0.2)
        yield url
    finally:
        subprocess.run(_as_postgres(f"{PG_BIN}/pg_ctl -D {d}/data -m fast -w stop"), capture_output=True)
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path) -> Iterator[Store]:
    if request.param == "sqlite":
        s: Store = SQLiteStore(str(tmp_path / "db" / "hullguard.db"))
    else:
        url = request.getfixturevalue("postgres_url")
        import psycopg

        # Each test gets its own database so tests stay independent.
        name = f"t{os.getpid()}_{time.monotonic_ns()}"
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        s = PostgresStore(url.rsplit("/", 1)[0] + "/" + name)
    try:
        yield s
    finally:
        s.close()
