"""`--scanners secret` end to end: every layer (deleted files too), the image config, masking, gate."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hullguard.cli.main import main
from tests.builders.synth import File, Whiteout, build_synth

# Fake credentials in real formats (not the documented EXAMPLE key: placeholders are filtered).
AWS = "AKIA" + "Q3EGRTLW5XN7PZ4B"
GITHUB = "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"


def test_secrets_in_deleted_layers_and_image_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    img = build_synth(
        [[File("app/.env", f"AWS_ACCESS_KEY_ID={AWS}\n")], [Whiteout("app/.env")]],
        fmt="oci", out=tmp_path / "img",
        config={"Env": ["PATH=/usr/bin", f"GITHUB_TOKEN={GITHUB}"]},
        history=["ADD app /app", f"RUN /bin/sh -c git clone https://x:{GITHUB}@github.com/o/r # buildkit"],
    )
    code = main(["image", str(img.path), "-q", "-f", "json", "--scanners", "secret", "--exit-code", "4",
                 "--cache-dir", str(tmp_path / "cache")])
    out = capsys.readouterr().out
    assert code == 4
    doc = json.loads(out)
    secrets = [f for f in doc["findings"] if f["kind"] == "secret"]
    paths = {f["location"]["path"] for f in secrets}
    assert "app/.env" in paths and {"image-config:Env", "image-config:history"} <= paths
    deleted = next(f for f in secrets if f["location"]["path"] == "app/.env")
    assert deleted["details"].get("deleted_in_later_layer") is True
    assert deleted["location"]["layer"] == img.layer_digests[0]
    # The raw secrets never reach any output: not the findings, the config, the history or the layers.
    assert AWS not in out and GITHUB not in out


def test_no_secret_scan_unless_asked(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    img = build_synth([[File("app/.env", f"AWS_ACCESS_KEY_ID={AWS}\n")]], fmt="oci", out=tmp_path / "img")
    assert main(["image", str(img.path), "-q", "-f", "json", "--scanners", "none", "--no-cache"]) == 0
    assert not json.loads(capsys.readouterr().out).get("findings")
