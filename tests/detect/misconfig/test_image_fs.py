"""Hostile input for the image checks and the folder walk behind `fs --scanners misconfig`."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hullguard.detect.misconfig import tree
from hullguard.detect.misconfig.image import check_image
from hullguard.model import Artifact


@pytest.mark.parametrize("config", [
    {"User": 0, "Env": "PASSWORD=x", "Volumes": ["/etc"], "ExposedPorts": [22], "Labels": "x", "Healthcheck": "x"},
    {"User": None, "Env": [None, 3, "NOEQUALS", "=", "TOKEN="], "Volumes": {"": {}, "///": {}},
     "ExposedPorts": {"": {}}, "Healthcheck": {"Test": "CMD"}, "Labels": {"org.opencontainers.image.base.name": 7}},
    {"Env": {"A": "B"}, "Volumes": None, "Healthcheck": {"Test": []}},
])
def test_config_of_the_wrong_shape_gives_findings_not_errors(config: dict) -> None:
    history = [{"created_by": 42}, {"empty_layer": "yes"}, {"created_by": "ADD " + "x" * 100_000}]
    findings, _ = check_image(Artifact(name="x", type="oci-dir", config=config, history=history), [], None, [])
    rules = {f.rule_id for f in findings}
    assert "HG-IMG-007" in rules  # no usable healthcheck in any of them
    assert "HG-IMG-001" in rules  # nor a non-root user


def test_root_volume_in_any_spelling() -> None:
    config = {"User": "1", "Healthcheck": {"Test": ["CMD", "true"]}, "Volumes": {"///": {}, "/proc/../etc/": {}}}
    findings, _ = check_image(Artifact(name="x", type="oci-dir", config=config), [], None, [])
    assert sorted(f.details["volume"] for f in findings if f.rule_id == "HG-IMG-010") == ["///", "/proc/../etc/"]


def test_walk_skips_links_big_and_binary_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "Dockerfile").write_text("FROM evil\n")
    root = tmp_path / "root"
    (root / "a").mkdir(parents=True)
    os.symlink(outside / "Dockerfile", root / "a" / "Dockerfile")
    os.symlink(outside, root / "linked-dir")
    (root / "b").mkdir()
    (root / "b" / "Dockerfile").write_bytes(b"FROM x\n\x00\x01\x02")
    monkeypatch.setattr(tree, "MAX_MANIFEST_BYTES", 64)
    (root / "big.yaml").write_text("apiVersion: v1\nkind: Pod\n" + "# pad\n" * 40)
    (root / "ok.yaml").write_text("apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: x}\n")
    result = tree.check_tree(str(root))
    assert {f.location.path for f in result.findings} == {"ok.yaml"}
    assert any(e.startswith("b/Dockerfile: binary file") for e in result.errors)
    assert any(e.startswith("big.yaml: larger than 64 bytes") for e in result.errors)
    assert result.objects == 1


def test_walk_stops_at_the_file_bound(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tree, "MAX_CONFIG_FILES", 3)
    for i in range(5):
        text = f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: c{i}, namespace: x}}\n"
        (tmp_path / f"m{i}.yaml").write_text(text)
    result = tree.check_tree(str(tmp_path))
    assert result.objects == 3
    assert any("more than 3 candidate files" in e for e in result.errors)
