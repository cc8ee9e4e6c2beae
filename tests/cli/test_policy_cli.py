"""--ignorefile and --vex on a real scan of the demo image."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hullguard.cli.main import main

DEMO = Path(__file__).resolve().parents[2] / "demo" / "hullguard-demo.tar"


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)


def scan(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, dict, str]:
    code = main(["image", str(DEMO), "-f", "json", "--exit-code", "1", *args])
    captured = capsys.readouterr()
    return code, json.loads(captured.out), captured.err


def test_ignore_file_suppresses_until_it_expires(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / ".hullguardignore").write_text(
        "ignore:\n"
        "  - id: CVE-2021-44906\n    reason: minimist is only used by a build script\n    expires: 2999-01-01\n"
        "  - id: GHSA-35jh-r3h4-6jhm\n    package: lodash\n    reason: accepted until upgrade\n"
        "    expires: 2001-01-01\n")
    _, doc, err = scan([], capsys)
    ids = {f["rule_id"] for f in doc["findings"]}
    assert "GHSA-xvch-5gv4-984h" not in ids  # minimist: suppressed by its CVE alias
    assert "GHSA-35jh-r3h4-6jhm" in ids  # lodash: the entry expired, so it counts again
    assert "expired" in err


def test_bad_ignore_file_is_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("ignore:\n  - id: CVE-1\n")  # no reason
    assert main(["image", str(DEMO), "-q", "--ignorefile", str(bad)]) == 2
    assert "reason" in capsys.readouterr().err


def test_openvex_not_affected_suppresses(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    vex = {
        "@context": "https://openvex.dev/ns/v0.2.0", "@id": "https://example.com/vex/1",
        "author": "app team", "timestamp": "2026-11-01T00:00:00Z", "version": 1,
        "statements": [{
            "vulnerability": {"name": "CVE-2021-23337"},
            "products": [{"@id": "pkg:npm/lodash@4.17.15"}],
            "status": "not_affected", "justification": "vulnerable_code_not_in_execute_path",
        }],
    }
    path = tmp_path / "app.openvex.json"
    path.write_text(json.dumps(vex))
    _, doc, _ = scan(["--vex", str(path)], capsys)
    assert "GHSA-35jh-r3h4-6jhm" not in {f["rule_id"] for f in doc["findings"]}
    assert any("VEX" in w for w in doc["warnings"])
