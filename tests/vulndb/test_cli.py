"""The `db` command group, registered on its own parser (cli/main.py lists it separately)."""

from __future__ import annotations

import argparse
import json

import pytest

from hullguard.cli import db as dbcli
from hullguard.model import HullguardError

from .records import fixed, record


def run(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="hullguard")
    sub = parser.add_subparsers(dest="command")
    dbcli.register(sub)
    args = parser.parse_args(list(argv))
    return int(args.func(args) or 0)


def test_import_status_enrich(tmp_path, capsys) -> None:
    d = tmp_path / "recs"
    d.mkdir()
    (d / "a.json").write_text(json.dumps(record("GHSA-a", "PyPI", "requests", fixed("2.31.0"),
                                                aliases=["CVE-2023-32681"])))
    (d / "b.json").write_text("garbage")
    db = str(tmp_path / "hg.db")
    assert run("db", "import", "--db", db, str(d)) == 0
    assert "skipped 1 malformed" in capsys.readouterr().err
    epss = tmp_path / "epss.csv"
    epss.write_text("#model_version:v2023.03.01,score_date:2024-05-01T00:00:00+0000\ncve,epss,percentile\n"
                    "CVE-2023-32681,0.00123,0.4721\n")
    assert run("db", "enrich", "--db", db, "--epss", str(epss)) == 0
    assert run("db", "status", "--db", db, "--format", "json") == 0
    st = json.loads(capsys.readouterr().out)
    assert st["advisories"] == 1 and st["epss"]["count"] == 1
    assert run("db", "status", "--db", db) == 0
    assert "PyPI" in capsys.readouterr().out


def test_bad_input_is_a_hullguard_error(tmp_path) -> None:
    with pytest.raises(HullguardError):
        run("db", "import", "--db", str(tmp_path / "hg.db"), str(tmp_path / "missing"))
    with pytest.raises(HullguardError):
        run("db", "status", "--db", str(tmp_path / "none.db"))
    with pytest.raises(HullguardError):
        run("db", "enrich", "--db", str(tmp_path / "hg.db"))
    with pytest.raises(HullguardError):
        run("db", "update", "--db", str(tmp_path / "hg.db"), "--base-url", "ftp://x")
