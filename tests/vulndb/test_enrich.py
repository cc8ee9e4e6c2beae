from __future__ import annotations

import gzip
import json

import pytest

from hullguard.vulndb.enrich import EnrichError, enrich_epss, enrich_kev, parse_epss, parse_kev
from hullguard.vulndb.store import SQLiteStore

EPSS = (b"#model_version:v2023.03.01,score_date:2024-05-01T00:00:00+0000\n"
        b"cve,epss,percentile\n"
        b"CVE-2023-32681,0.00123,0.4721\n"
        b"CVE-2021-44228,0.97565,0.99995\n"
        b"not-a-cve,0.1,0.1\n"
        b"CVE-2020-1,abc,0.1\n\n")

KEV = {"title": "CISA Catalog of Known Exploited Vulnerabilities", "catalogVersion": "2024.05.01",
       "dateReleased": "2024-05-01T15:00:00.0000Z", "count": 2,
       "vulnerabilities": [
           {"cveID": "CVE-2021-44228", "vendorProject": "Apache", "product": "Log4j2",
            "vulnerabilityName": "Apache Log4j2 Remote Code Execution Vulnerability", "dateAdded": "2021-12-10",
            "shortDescription": "...", "requiredAction": "...", "dueDate": "2021-12-24",
            "knownRansomwareCampaignUse": "Known", "notes": "", "cwes": ["CWE-20"]},
           {"cveID": 7}]}


def test_parse_epss() -> None:
    date, model, rows, skipped = parse_epss(EPSS)
    assert (date, model) == ("2024-05-01", "v2023.03.01")
    assert list(rows) == [("CVE-2023-32681", 0.00123, 0.4721), ("CVE-2021-44228", 0.97565, 0.99995)]
    assert skipped[0] == 2


def test_epss_without_comment_line_and_bad_header() -> None:
    _, _, rows, _ = parse_epss(b"cve,epss,percentile\nCVE-2024-1234,0.5,0.5\n")
    assert len(list(rows)) == 1
    with pytest.raises(EnrichError):
        parse_epss(b"#model_version:x\nfoo,bar\n")


def test_epss_gzip_file_into_store(tmp_path) -> None:
    f = tmp_path / "epss.csv.gz"
    f.write_bytes(gzip.compress(EPSS))
    store = SQLiteStore(str(tmp_path / "db"))
    res = enrich_epss(store, str(f))
    assert (res.count, res.date, res.skipped) == (2, "2024-05-01", 2)
    assert store.epss(["CVE-2021-44228"])["CVE-2021-44228"][0] == pytest.approx(0.97565)


def test_kev(tmp_path) -> None:
    date, version, rows, skipped = parse_kev(json.dumps(KEV).encode())
    assert (date, version, skipped) == ("2024-05-01", "2024.05.01", 1)
    assert rows[0]["ransomware"] == "Known" and rows[0]["due_date"] == "2021-12-24"
    f = tmp_path / "kev.json"
    f.write_text(json.dumps(KEV))
    store = SQLiteStore(str(tmp_path / "db"))
    assert enrich_kev(store, str(f)).count == 1
    assert store.kev(["CVE-2021-44228"])["CVE-2021-44228"]["vendor"] == "Apache"


@pytest.mark.parametrize("data", [b"not json", b"{}", b'{"vulnerabilities": 3}'])
def test_bad_kev(data: bytes) -> None:
    with pytest.raises(EnrichError):
        parse_kev(data)


def test_missing_file(tmp_path) -> None:
    with pytest.raises(EnrichError, match="cannot read"):
        enrich_kev(SQLiteStore(str(tmp_path / "db")), str(tmp_path / "nope.json"))
