from __future__ import annotations

import io
import json
import tarfile
import zipfile

import pytest

from hullguard.model import HullguardError
from hullguard.vulndb.importer import ArchiveError, Limits, import_path, iter_path
from hullguard.vulndb.store import SQLiteStore

from .records import fixed, make_zip, record

GOOD = [record("GHSA-a", "PyPI", "requests", fixed("2.31.0")), record("GHSA-b", "npm", "lodash", fixed("4.17.21"))]


@pytest.fixture
def db(tmp_path) -> SQLiteStore:
    return SQLiteStore(str(tmp_path / "hg.db"))


def test_directory_with_malformed_records(tmp_path, db) -> None:
    d = tmp_path / "recs"
    (d / "sub").mkdir(parents=True)
    (d / "a.json").write_text(json.dumps(GOOD[0]))
    (d / "sub" / "b.json").write_text(json.dumps(GOOD[1]))
    (d / "bad.json").write_text("{not json")
    (d / "noid.json").write_text(json.dumps({"modified": "2024-01-01T00:00:00Z"}))
    (d / "README.md").write_text("ignored")
    stats = import_path(db, str(d))
    assert (stats.records, stats.skipped) == (2, 2)
    assert any("bad.json" in e for e in stats.errors)
    assert db.lookup("npm", ["lodash"])[0].advisory_id == "GHSA-b"
    # Importing the same path again replaces, it does not duplicate.
    import_path(db, str(d))
    assert len(db.lookup("npm", ["lodash"])) == 1


def test_zip_and_tar_gz(tmp_path, db) -> None:
    z = tmp_path / "all.zip"
    z.write_bytes(make_zip(GOOD, {"broken.json": b"[]"}))
    stats = import_path(db, str(z), "zip")
    assert (stats.records, stats.skipped) == (2, 1)
    t = tmp_path / "recs.tar.gz"
    with tarfile.open(t, "w:gz") as tf:
        for rec in GOOD:
            data = json.dumps(rec).encode()
            info = tarfile.TarInfo(f"osv/{rec['id']}.json")
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("osv/link.json")
        link.type = tarfile.SYMTYPE
        link.linkname = "/etc/passwd"
        tf.addfile(link)
    stats = import_path(db, str(t), "tar")
    assert (stats.records, stats.skipped) == (2, 0)


def test_single_json_file(tmp_path, db) -> None:
    f = tmp_path / "one.json"
    f.write_text(json.dumps(GOOD[0]))
    assert import_path(db, str(f)).records == 1


def test_zip_bomb_member_is_refused(tmp_path, db) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("bomb.json", b"{" + b" " * (2 * 1024 * 1024) + b"}")
        zf.writestr("ok.json", json.dumps(GOOD[0]))
    z = tmp_path / "bomb.zip"
    z.write_bytes(buf.getvalue())
    stats = import_path(db, str(z), limits=Limits(record_bytes=1024 * 1024))
    assert (stats.records, stats.skipped) == (1, 1)


def test_total_budget(tmp_path, db) -> None:
    z = tmp_path / "all.zip"
    z.write_bytes(make_zip([record(f"X-{i}", "npm", "p", fixed("1.0.0")) for i in range(50)]))
    with pytest.raises(ArchiveError, match="limit"):
        import_path(db, str(z), limits=Limits(total_bytes=2000))
    assert db.lookup("npm", ["p"]) == []


def test_truncated_zip_is_an_archive_error_and_keeps_data(tmp_path, db) -> None:
    import_path(db, str(_write(tmp_path / "a.zip", make_zip(GOOD))), "src")
    data = make_zip([record("GHSA-c", "PyPI", "flask", fixed("2.2.5"))] * 1)
    bad = _write(tmp_path / "bad.zip", data[: len(data) // 2])
    with pytest.raises(HullguardError):
        import_path(db, str(bad), "src")
    assert db.lookup("PyPI", ["requests"])[0].advisory_id == "GHSA-a"


def test_corrupt_member_crc(tmp_path, db) -> None:
    data = bytearray(make_zip(GOOD))
    # Flip a byte inside the first member's compressed data: the CRC check must catch it.
    data[40] ^= 0xFF
    with pytest.raises(ArchiveError):
        import_path(db, str(_write(tmp_path / "crc.zip", bytes(data))), "src")


def test_unknown_input(tmp_path) -> None:
    f = _write(tmp_path / "x.bin", b"\x00\x01garbage")
    with pytest.raises(HullguardError, match="neither"):
        iter_path(str(f))
    with pytest.raises(HullguardError, match="no such"):
        iter_path(str(tmp_path / "missing"))


def _write(path, data: bytes):
    path.write_bytes(data)
    return path
