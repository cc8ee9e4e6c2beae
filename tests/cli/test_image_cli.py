"""The quick-start path as a user runs it: the demo image, the bundled snapshot, gates and filters."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hullguard.cli.main import main

DEMO = Path(__file__).resolve().parents[2] / "demo" / "hullguard-demo.tar"


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("HULLGUARD_DB", raising=False)
    monkeypatch.delenv("HULLGUARD_CACHE_DIR", raising=False)


def run_json(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, dict]:
    code = main(["image", str(DEMO), "-q", "-f", "json", *args])
    return code, json.loads(capsys.readouterr().out)


def test_demo_is_reproducible(tmp_path: Path) -> None:
    out = tmp_path / "demo.tar"
    subprocess.run([sys.executable, str(DEMO.parent / "build.py"), str(out)], check=True, capture_output=True)
    assert out.read_bytes() == DEMO.read_bytes()


def test_demo_scan_finds_real_advisories_from_the_snapshot(capsys: pytest.CaptureFixture[str]) -> None:
    code, doc = run_json([], capsys)
    assert code == 0
    ids = {f["rule_id"] for f in doc["findings"]}
    assert {"GHSA-xvch-5gv4-984h", "GHSA-35jh-r3h4-6jhm", "GHSA-m2qf-hxjv-5gpq"} <= ids
    minimist = next(f for f in doc["findings"] if f["rule_id"] == "GHSA-xvch-5gv4-984h")
    assert minimist["fix"] == "1.2.6"
    assert minimist["location"]["path"] == "srv/app/node_modules/minimist/package.json"
    # Layer 3 (the npm install) introduced it, not the base image.
    assert minimist["location"]["layer"] == doc["layers"][2]["digest"]
    # chardet was uninstalled by the last layer: a whiteout, so it is gone from the inventory.
    names = {p["name"] for p in doc["packages"]}
    assert "chardet" not in names and "requests" in names
    # The application's own package.json is inventoried but never matched.
    app = next(p for p in doc["packages"] if p["name"] == "demo-app")
    assert app["metadata"]["local"] is True


def test_severity_filter_and_exit_code_gate(capsys: pytest.CaptureFixture[str]) -> None:
    code, doc = run_json(["--severity", "CRITICAL", "--exit-code", "5"], capsys)
    assert code == 5
    assert {f["severity"] for f in doc["findings"]} == {4}  # Severity.CRITICAL
    # A severity the demo has no finding of (derived, since the bundled snapshot grows): nothing to gate on.
    _, everything = run_json([], capsys)
    present = {f["severity"] for f in everything["findings"]}
    absent = next(name for name, value in (("UNKNOWN", 0), ("LOW", 1), ("MEDIUM", 2), ("HIGH", 3))
                  if value not in present)
    code, doc = run_json(["--severity", absent, "--exit-code", "5"], capsys)
    assert code == 0 and doc.get("findings", []) == []


def test_inventory_only(capsys: pytest.CaptureFixture[str]) -> None:
    code, doc = run_json(["--scanners", "none"], capsys)
    assert code == 0 and not doc.get("findings") and len(doc["packages"]) > 90


@pytest.mark.parametrize("args", [["--severity", "SEVERE"], ["--scanners", "magic"], ["--format", "xml"]])
def test_bad_options_exit_2(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["image", str(DEMO), "-q", *args])
    if isinstance(info.value.code, int):
        assert info.value.code == 2
    err = capsys.readouterr().err
    assert "error" in err and "Traceback" not in err


def test_table_output_names_the_fix(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["image", str(DEMO), "-q"]) == 0
    out = capsys.readouterr().out
    assert "upgrade requests 2.25.1 to 2.32.2: fixes 2" in out
    assert "CVE-2021-44906" in out


def test_console_script_runs() -> None:
    exe = Path(sys.executable).parent / "hullguard"
    if not exe.exists():
        pytest.skip("console script not installed in this environment")
    proc = subprocess.run([str(exe), "image", str(DEMO), "-q", "--scanners", "none", "-f", "json"],
                          capture_output=True, env={**os.environ}, check=False)
    assert proc.returncode == 0 and json.loads(proc.stdout)["os"]["family"] == "debian"


@pytest.mark.parametrize(("fmt", "marker"), [("sarif", b'"version": "2.1.0"'), ("markdown", b"### Fix first"),
                                             ("html", b"<!DOCTYPE html>")])
def test_report_formats(fmt: str, marker: bytes, tmp_path: Path) -> None:
    out = tmp_path / f"report.{fmt}"
    assert main(["image", str(DEMO), "-q", "-f", fmt, "-o", str(out)]) == 0
    data = out.read_bytes()
    assert marker.lower() in data.lower() and b"minimist" in data
