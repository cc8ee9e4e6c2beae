"""SecretAnalyzer through the real layer pipeline, and image-config scanning."""

from __future__ import annotations

import io

import msgspec

from hullguard.detect.secrets.analyzer import SecretAnalyzer, scan_image_config
from hullguard.image.layers import analyze_layer, squash
from hullguard.image.streams import Budget
from hullguard.inventory.assemble import assemble
from hullguard.inventory.base import FileInfo
from hullguard.model import FileFacts, Finding, Layer, Severity
from tests.builders.synth import File, Whiteout, layer_tar_bytes
from tests.detect.secrets.corpus import ALNUM, URLSAFE, fake, rand

GHP = "ghp_" + fake(ALNUM, 36)
NPM = "npm_" + fake(ALNUM, 36)
AWS_ID = "AKIAFAKEQ2W3E4R5T6Y7"
AWS_SECRET = fake(ALNUM + "/+", 40)


def test_wants_is_cheap_and_skips_vendor_trees() -> None:
    a = SecretAnalyzer()
    assert a.wants(FileInfo("app/.env", size=10))
    assert not a.wants(FileInfo("app/node_modules/x/.env", size=10))
    assert not a.wants(FileInfo("app/.env", size=0))
    assert not a.wants(FileInfo("app/big.txt", size=a.max_size + 1))
    assert a._engine is None  # wants() must not compile the database


def test_analyze_emits_masked_findings() -> None:
    data = f"# fake\nAWS_ACCESS_KEY_ID={AWS_ID}\nAWS_SECRET_ACCESS_KEY={AWS_SECRET}\n".encode()
    out = list(SecretAnalyzer().analyze(FileInfo("app/.env", size=len(data)), data))
    assert [(f.rule_id, f.location.line) for f in out] == [("HG-SECRET-001", 2), ("HG-SECRET-002", 3)]
    for f in out:
        assert isinstance(f, Finding) and f.kind == "secret" and f.target == "app/.env"
        assert f.location.path == "app/.env"
        assert AWS_ID not in f.evidence and AWS_SECRET not in f.evidence and "*" in f.evidence
        assert f.details["match_fingerprint"].startswith("sha256:")
        assert f.details["category"] == "cloud" and f.details["paired_with_aws_key"] is True
        # No output format can leak what the Finding does not hold.
        encoded = msgspec.json.encode(f).decode()
        assert AWS_ID not in encoded and AWS_SECRET not in encoded
    assert out[1].severity == Severity.CRITICAL


def test_secret_deleted_in_a_later_layer_is_still_reported() -> None:
    analyzers = [SecretAnalyzer()]
    budget = Budget(1 << 40, 1 << 40)
    l1 = analyze_layer(io.BytesIO(layer_tar_bytes([
        File("root/.ssh/id_rsa", "-----BEGIN RSA PRIVATE KEY-----\n" + rand(ALNUM, 64) + "\n"),
        File("app/.env", f"TOKEN={GHP}\n"),
    ])), "sha256:" + "1" * 64, analyzers, budget)
    l2 = analyze_layer(io.BytesIO(layer_tar_bytes([Whiteout("root/.ssh/id_rsa")])),
                       "sha256:" + "2" * 64, analyzers, budget)
    # Findings survive the layer cache's msgpack round trip.
    l1.files = {p: msgspec.msgpack.decode(msgspec.msgpack.encode(f), type=FileFacts)
                for p, f in l1.files.items()}
    squashed = squash([l1, l2])
    layers = [Layer(digest="sha256:" + "1" * 64), Layer(digest="sha256:" + "2" * 64)]
    _, findings = assemble(squashed, layers, None)
    by_path = {f.location.path: f for f in findings}
    assert set(by_path) == {"root/.ssh/id_rsa", "app/.env"}
    key = by_path["root/.ssh/id_rsa"]
    assert key.rule_id == "HG-SECRET-076" and key.location.layer == layers[0].digest
    assert key.details.get("deleted_in_later_layer") is True
    assert "deleted_in_later_layer" not in by_path["app/.env"].details
    assert by_path["app/.env"].location.line == 1


def test_image_config_env_labels_and_history() -> None:
    config = {
        "Env": ["PATH=/usr/local/bin:/usr/bin", f"GITHUB_TOKEN={GHP}", "DB_PASSWORD=Zq8vT2mKp9wLx4"],
        "Labels": {"maintainer": "fake@fake.internal", "ci.token": "glpat-" + fake(URLSAFE, 20)},
        "Cmd": ["python", "app.py"],
    }
    history = [
        {"created_by": "/bin/sh -c #(nop) ADD file:abc in / "},
        {"created_by": f"RUN |1 NPM_TOKEN={NPM} /bin/sh -c npm ci # buildkit"},
        {"created_by": "/bin/sh -c #(nop)  ENV AWS_SECRET_ACCESS_KEY=" + AWS_SECRET},
        {"empty_layer": True},
    ]
    found = scan_image_config(config, history)
    got = sorted((f.location.path, f.location.line, f.rule_id) for f in found)
    assert got == [
        ("image-config:Env", 2, "HG-SECRET-014"),
        ("image-config:Env", 3, "HG-SECRET-101"),
        ("image-config:Labels", 1, "HG-SECRET-020"),
        ("image-config:history", 2, "HG-SECRET-060"),
        ("image-config:history", 3, "HG-SECRET-002"),
    ]
    for f in found:
        assert f.kind == "secret" and f.target == "image config"
        for secret in (GHP, NPM, AWS_SECRET, "Zq8vT2mKp9wLx4"):
            assert secret not in f.evidence


def test_image_config_tolerates_odd_shapes() -> None:
    assert scan_image_config({}, []) == []
    assert scan_image_config({"Env": None, "Labels": ["x"], "Cmd": "sh"}, [{"created_by": None}, "x"]) == []
