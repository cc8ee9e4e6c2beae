"""`--scanners misconfig` on `hullguard image` and `hullguard fs`, end to end through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hullguard.cli.main import main
from tests.builders.synth import Dir, File, build_synth

ELF = b"\x7fELF\x02\x01\x01" + b"\0" * 57


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("misconfig-cli")
    return build_synth(
        [[Dir("srv/drop", mode=0o777), File("usr/local/bin/helper", ELF, mode=0o4755)],
         [File("var/lib/apt/lists/x_InRelease", b"x" * 64)]],
        fmt="oci", out=tmp / "img",
        history=["ADD rootfs /", "RUN /bin/sh -c apt-get update # buildkit"],
        config={"Env": ["PATH=/usr/bin"], "Volumes": {"/var/run/docker.sock": {}}},
    )


def _run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


def _image_args(image, tmp_path: Path, *extra: str) -> list[str]:
    return ["image", str(image.path), "-q", "--scanners", "misconfig", "--no-cache", *extra]


def test_image_json_findings_name_path_layer_and_step(image, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(_image_args(image, tmp_path, "-f", "json"), capsys)
    assert code == 0
    findings = [f for f in json.loads(out)["findings"] if f["kind"] == "misconfiguration"]
    by_rule = {f["rule_id"]: f for f in findings}
    assert {"HG-IMG-001", "HG-IMG-002", "HG-IMG-005", "HG-IMG-007", "HG-IMG-008", "HG-IMG-010"} <= set(by_rule)
    cache = by_rule["HG-IMG-008"]
    assert cache["location"] == {"path": "var/lib/apt/lists", "layer": image.layer_digests[1]}
    assert cache["details"]["layer_created_by"] == "RUN /bin/sh -c apt-get update # buildkit"


def test_exit_code_severity_and_ignore_file(image, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(_image_args(image, tmp_path, "-f", "json", "--severity", "CRITICAL", "--exit-code", "5"),
                        capsys)
    assert code == 5
    assert [f["rule_id"] for f in json.loads(out)["findings"]] == ["HG-IMG-010"]

    ignore = tmp_path / "ignore.yaml"
    ignore.write_text("ignore:\n  - id: HG-IMG-010\n    path: image-config:*\n    reason: test fixture\n")
    code, out, err = _run(_image_args(image, tmp_path, "-f", "json", "--severity", "CRITICAL", "--exit-code", "5",
                                      "--ignorefile", str(ignore)), capsys)
    assert code == 0 and json.loads(out).get("findings", []) == []
    assert "1 finding(s) suppressed" in err or "suppressed" in json.loads(out).get("warnings", [""])[0]


@pytest.mark.parametrize("fmt", ["table", "sarif", "markdown", "html"])
def test_every_format_shows_misconfigurations(fmt: str, image, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(_image_args(image, tmp_path, "-f", fmt), capsys)
    assert code == 0
    assert "HG-IMG-002" in out and "usr/local/bin/helper" in out
    if fmt == "sarif":
        run = json.loads(out)["runs"][0]
        assert "HG-IMG-010" in {r["id"] for r in run["tool"]["driver"]["rules"]}


def test_unknown_scanner_lists_the_valid_ones(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["fs", str(tmp_path), "--scanners", "misconf"])
    assert exc.value.code == 2 and "available: vuln, secret, misconfig" in capsys.readouterr().err


DEPLOY = """apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: nginx:1.25
        securityContext: {privileged: true}
"""
DENY = """apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: default-deny, namespace: shop}
spec:
  podSelector: {}
  policyTypes: [Ingress, Egress]
"""


def _project(root: Path) -> Path:
    (root / "deploy").mkdir(parents=True)
    (root / "deploy" / "web.yaml").write_text(DEPLOY)
    (root / "deploy" / "netpol.yaml").write_text(DENY)
    (root / "Dockerfile").write_text("FROM python\nRUN pip install flask\n")
    (root / "node_modules" / "pkg").mkdir(parents=True)
    (root / "node_modules" / "pkg" / "Dockerfile").write_text("FROM alpine\n")
    (root / ".github" / "workflows").mkdir(parents=True)
    (root / ".github" / "workflows" / "ci.yaml").write_text(DEPLOY)
    (root / "values.yaml").write_text("replicas: 3\nimage: {tag: latest}\n")
    (root / "chart.yaml").write_text("apiVersion: v2\nkind: {{ .Values.kind }\n  bad: [\n")
    (root / "package.json").write_text('{"name": "x", "version": "1.0.0"}')
    return root


def test_fs_checks_dockerfiles_and_manifests_as_one_set(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = _project(tmp_path / "proj")
    code, out, _ = _run(["fs", str(root), "--scanners", "misconfig", "-f", "json", "--exit-code", "3"], capsys)
    assert code == 3
    doc = json.loads(out)
    findings = doc["findings"]
    paths = {f["location"]["path"] for f in findings}
    assert paths == {"Dockerfile", "deploy/web.yaml"}  # vendored and hidden trees skipped
    rules = {f["rule_id"] for f in findings}
    assert {"HG-DF-004", "HG-DF-029", "HG-PSS-003"} <= rules
    # The default-deny policy lives in another file and still counts.
    assert not rules & {"HG-K8S-030", "HG-K8S-031"}
    assert any("chart.yaml" in w for w in doc.get("warnings", []))


def test_fs_without_misconfig_checks_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = _project(tmp_path / "proj")
    code, out, _ = _run(["fs", str(root), "--scanners", "none", "-f", "json", "--exit-code", "3"], capsys)
    assert code == 0 and json.loads(out).get("findings", []) == []


def test_env_secret_is_masked_everywhere(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    value = "pr0d-db-pa55word-9f8e"
    img = build_synth(
        [[File("app/run", ELF, mode=0o755)]], fmt="oci", out=tmp_path / "img",
        history=[f"RUN /bin/sh -c echo DB_PASSWORD={value} > /dev/null # buildkit"],
        config={"Env": ["PATH=/usr/bin", f"DB_PASSWORD={value}"], "User": "app"},
    )
    for fmt in ("json", "table"):
        code, out, _ = _run(["image", str(img.path), "-q", "--no-cache", "--scanners", "misconfig", "-f", fmt], capsys)
        assert code == 0
        assert "HG-IMG-006" in out and value not in out
        assert "pr*" in out
