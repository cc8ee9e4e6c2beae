"""Replay of audit logs, Falco JSON and Tetragon export lines; the `hullguard runtime` CLI."""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path
from typing import Any

import pytest

from hullguard.model import HullguardError
from hullguard.runtime.engine import Engine
from hullguard.runtime.fields import extract
from hullguard.runtime.replay import ReplayStats, normalise, replay
from hullguard.runtime.rules import default_rules_path, load_rules

FIX = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="module")
def engine_all() -> Engine:
    return Engine(load_rules([default_rules_path()]), rule_matching="all", hostname="test")


def run_file(engine: Engine, name: str) -> tuple[list[dict[str, Any]], ReplayStats]:
    out = io.StringIO()
    with open(FIX / name, "rb") as f:
        _kept, stats = replay(engine, f, out)
    return [json.loads(line) for line in out.getvalue().splitlines()], stats


def test_audit_log_produces_expected_alerts(engine_all: Engine) -> None:
    alerts, stats = run_file(engine_all, "audit_events.jsonl")
    assert stats.malformed == 2 and stats.events == 9
    by_id = {}
    for a in alerts:
        by_id.setdefault(a["time"], []).append(a["rule"])
    rules = [a["rule"] for a in alerts]
    assert "Attach or exec into pod" in rules
    assert rules.count("Read secret") == 1  # argocd-server and backup-operator in velero are exceptions
    assert {"Create privileged pod", "Create hostnetwork pod", "Create sensitive mount pod"} <= set(rules)
    assert "ClusterRoleBinding to cluster-admin" in rules
    assert rules.count("Anonymous request allowed") == 1  # /healthz is excluded
    for a in alerts:
        assert set(a) == {"time", "rule", "priority", "source", "output", "output_fields", "tags", "hostname"}
        assert a["source"] == "k8s_audit"
    exec_alert = next(a for a in alerts if a["rule"] == "Attach or exec into pod")
    assert exec_alert["output_fields"]["ka.user.name"] == "alice@example.com"
    assert exec_alert["output_fields"]["ka.uri.param[command]"] == "sh"
    assert exec_alert["time"] == "2026-11-23T10:00:01.250000000Z"
    assert exec_alert["output"].startswith("10:00:01.250000000: Notice Attach/exec to pod (user=alice@example.com")
    crb = next(a for a in alerts if a["rule"] == "ClusterRoleBinding to cluster-admin")
    assert crb["output_fields"]["ka.req.binding.subjects"] == ["carol"]
    priv = next(a for a in alerts if a["rule"] == "Create privileged pod")
    assert priv["output_fields"]["ka.req.pod.containers.image"] == ["quay.io/evil/toolbox:1.0",
                                                                  "registry.k8s.io/pause:3.9"]


def test_audit_eventlist_is_expanded() -> None:
    item = json.loads((FIX / "audit_events.jsonl").read_text().splitlines()[0])
    evs = normalise({"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "items": [item, item]})
    assert evs is not None and len(evs) == 2 and evs[0]["_source"] == "k8s_audit"


def test_k8s_fields_from_raw_event() -> None:
    lines = (FIX / "audit_events.jsonl").read_text().splitlines()
    pod = normalise(json.loads(lines[2]))[0]  # type: ignore[index]
    assert extract(pod, "ka.req.pod.containers.privileged") == ["true", "false"]
    assert extract(pod, "ka.req.pod.containers.image.repository") == ["quay.io/evil/toolbox", "registry.k8s.io/pause"]
    assert extract(pod, "ka.req.pod.host_network") == "true"
    assert extract(pod, "ka.req.pod.volumes.hostpath") == ["/"]
    assert extract(pod, "ka.response.code") == "201"
    assert extract(pod, "ka.verb") == "create"
    assert extract(pod, "ka.target.subresource") is None
    anon = normalise(json.loads(lines[4]))[0]  # type: ignore[index]
    assert extract(anon, "ka.user.groups") == ["system:unauthenticated"]
    assert extract(anon, "ka.sourceips") == ["198.51.100.7"]
    assert extract(anon, "ka.auth.decision") == "allow"


def test_tetragon_export(engine_all: Engine) -> None:
    alerts, stats = run_file(engine_all, "tetragon.jsonl")
    assert stats.events == 3 and stats.malformed == 0
    rules = [a["rule"] for a in alerts]
    assert "Shell spawned by non-shell in container" in rules
    assert "Outbound connection to miner pool port" in rules
    shell = next(a for a in alerts if a["rule"] == "Shell spawned by non-shell in container")
    assert shell["hostname"] == "worker-1"
    assert shell["output_fields"]["proc.pname"] == "node"
    assert shell["output_fields"]["container.name"] == "web"
    ev = normalise(json.loads((FIX / "tetragon.jsonl").read_text().splitlines()[0]))[0]  # type: ignore[index]
    assert ev["container.id"] == "55936e548de6" and ev["k8s.ns.name"] == "shop"
    assert ev["container.image.repository"] == "docker.io/library/node" and ev["container.image.tag"] == "20"


def test_falco_json_and_flat_events(engine_all: Engine) -> None:
    alerts, stats = run_file(engine_all, "falco_output.jsonl")
    assert stats.events == 2 and stats.malformed == 2
    rules = [a["rule"] for a in alerts]
    assert "Terminal shell in container" in rules and "Write below etc" in rules
    term = next(a for a in alerts if a["rule"] == "Terminal shell in container")
    assert term["hostname"] == "falco-node-2"
    assert term["time"] == "2026-11-23T10:00:00.123456789Z"


def test_malformed_lines_counted(engine_all: Engine) -> None:
    lines = [b"{", b"", b"42", b'{"evt.type": "execve"}', b"\xff\xfe", b'{"kind": "Event"}']
    _alerts, stats = replay(engine_all, lines)
    assert stats.events == 1 and stats.malformed == 4


def _cli(argv: list[str]) -> argparse.ArgumentParser:
    from hullguard.cli import runtime

    parser = argparse.ArgumentParser(prog="hullguard")
    sub = parser.add_subparsers(dest="command")
    runtime.register(sub)
    return parser


def run_cli(argv: list[str]) -> int:
    args = _cli(argv).parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except HullguardError as exc:
        return exc.exit_code


def test_cli_replay_json(capsys: pytest.CaptureFixture[str]) -> None:
    rc = run_cli(["runtime", "replay", "--rules", default_rules_path(), str(FIX / "audit_events.jsonl"),
                  "--format", "json", "--rule-matching", "all"])
    assert rc == 0
    cap = capsys.readouterr()
    lines = [json.loads(x) for x in cap.out.splitlines()]
    assert lines and all("rule" in x and "output_fields" in x for x in lines)
    assert "2 malformed" in cap.err


def test_cli_replay_text_to_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "alerts.txt"
    rc = run_cli(["runtime", "replay", str(FIX / "tetragon.jsonl"), "--output", str(out)])
    text = out.read_text()
    assert rc == 0
    assert "Shell spawned by node in container" in text  # first-match mode: one line per event
    assert "Outbound connection to uncommon port" in text  # listed before the miner-port rule


def test_cli_validate_json(capsys: pytest.CaptureFixture[str]) -> None:
    rc = run_cli(["runtime", "rules", "validate", default_rules_path(), "--format", "json"])
    doc = json.loads(capsys.readouterr().out)
    assert rc == 0
    assert doc["summary"]["loaded"] >= 50 and doc["summary"]["skipped"] == 2
    skipped = [r for r in doc["rules"] if r["status"] == "skipped"]
    assert all(r["reason"] and r["line"] > 0 for r in skipped)


def test_cli_validate_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("- rule: R\n  desc: d\n  condition: nosuch_macro\n  output: o\n  priority: INFO\n")
    assert run_cli(["runtime", "rules", "validate", str(bad)]) == 1
    assert "undefined macro 'nosuch_macro'" in capsys.readouterr().out
    bad.write_text("- rule: [\n")
    assert run_cli(["runtime", "rules", "validate", str(bad)]) == 2
    assert run_cli(["runtime", "replay", "--rules", default_rules_path(), str(tmp_path / "none.jsonl")]) == 2
