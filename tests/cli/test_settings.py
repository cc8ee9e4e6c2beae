"""hullguard.yaml and HULLGUARD_* variables: precedence, validation, and the secret allow-list."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hullguard.cli.main import build_parser, main
from hullguard.detect.secrets.analyzer import SecretAnalyzer
from hullguard.detect.secrets.engine import DefaultSettings, configure_defaults, default_engine
from hullguard.settings import apply_settings, load_settings
from tests.builders.synth import File, build_synth

AWS = "AKIA" + "Q3EGRTLW5XN7PZ4B"
GITHUB = "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"

LATEST_POD = """apiVersion: v1
kind: Pod
metadata: {name: web, namespace: shop}
spec:
  containers:
  - {name: c, image: "nginx:latest"}
"""


@pytest.fixture(autouse=True)
def clean(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    for var in ("HULLGUARD_CONFIG", "HULLGUARD_EXIT_CODE", "HULLGUARD_FORMAT", "HULLGUARD_SCANNERS",
                "HULLGUARD_SEVERITY", "HULLGUARD_POLICY", "HULLGUARD_QUIET", "HULLGUARD_DB"):
        monkeypatch.delenv(var, raising=False)
    (tmp_path / "pod.yaml").write_text(LATEST_POD)
    yield
    configure_defaults(None)


def config_exit(*flags: str) -> int:
    return main(["config", "pod.yaml", "-q", "-f", "json", *flags])


# --- precedence ---------------------------------------------------------------------------------

def test_flag_beats_env_beats_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    assert config_exit() == 0
    (tmp_path / "hullguard.yaml").write_text("config:\n  exit-code: 3\n")
    assert config_exit() == 3
    monkeypatch.setenv("HULLGUARD_EXIT_CODE", "4")
    assert config_exit() == 4
    assert config_exit("--exit-code", "5") == 5
    capsys.readouterr()


def test_config_option_and_env_choose_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "hullguard.yaml").write_text("config: {exit-code: 3}\n")
    (tmp_path / "ci.yaml").write_text("config: {exit-code: 6}\n")
    (tmp_path / "env.yaml").write_text("config: {exit-code: 7}\n")
    assert main(["--config", "ci.yaml", "config", "pod.yaml", "-q", "-f", "json"]) == 6
    assert main(["--config=ci.yaml", "config", "pod.yaml", "-q", "-f", "json"]) == 6
    monkeypatch.setenv("HULLGUARD_CONFIG", "env.yaml")
    assert config_exit() == 7
    assert main(["--config", "ci.yaml", "config", "pod.yaml", "-q", "-f", "json"]) == 6
    capsys.readouterr()
    assert main(["--config", "missing.yaml", "config", "pod.yaml"]) == 2
    assert "--config missing.yaml: no such file" in capsys.readouterr().err


def test_list_values_severity_and_policy_from_the_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    policies = Path(__file__).resolve().parents[2] / "examples" / "policies"
    (tmp_path / "hullguard.yaml").write_text(
        f"config:\n  severity: [HIGH, CRITICAL]\n  policy: [{policies / 'disallow-latest-tag.yaml'}]\n")
    assert config_exit() == 0
    found = json.loads(capsys.readouterr().out)["findings"]
    assert {f["rule_id"] for f in found} == {"CEL:disallow-latest-tag"}
    # A --policy flag replaces the file's list rather than adding to it.
    assert config_exit("--policy", str(policies / "require-labels.yaml")) == 0
    assert json.loads(capsys.readouterr().out).get("findings", []) == []


def test_scan_section_applies_to_image_fs_sbom_and_their_own_sections_win(tmp_path: Path) -> None:
    from hullguard.settings import Settings

    settings = Settings(path="hullguard.yaml", sections={
        "scan": {"scanners": ["secret"], "ignore-unfixed": True, "exit-code": 2, "platform": "linux/arm64"},
        "fs": {"exit-code": 9},
    })
    parser = build_parser()
    _, warnings = apply_settings(parser, ["fs", "."], env={}, settings=settings)
    assert warnings == []  # platform is an image option: known to one scan command is enough
    fs = parser.parse_args(["fs", "."])
    assert (fs.scanners, fs.ignore_unfixed, fs.exit_code) == ({"secret"}, True, 9)
    image = parser.parse_args(["image", "x"])
    assert (image.exit_code, image.platform) == (2, "linux/arm64")
    assert parser.parse_args(["image", "x", "--exit-code", "0"]).exit_code == 0


def test_env_values_are_typed_and_only_bind_the_running_command(capsys: pytest.CaptureFixture[str]) -> None:
    parser = build_parser()
    env = {"HULLGUARD_QUIET": "yes", "HULLGUARD_POLICY": "a.yaml,b.yaml", "HULLGUARD_FORMAT": "cyclonedx"}
    _, warnings = apply_settings(parser, ["config", "x"], env=env, settings=load_settings(None))
    args = parser.parse_args(["config", "x"])
    assert args.quiet is True and args.policy == ["a.yaml", "b.yaml"] and args.format == "table"
    # cyclonedx suits `image` but not `config`: skipped with a warning, not fatal.
    assert any("HULLGUARD_FORMAT" in w and "cyclonedx" in w for w in warnings)
    with pytest.raises(Exception, match="HULLGUARD_EXIT_CODE: expected an integer"):
        apply_settings(build_parser(), ["config", "x"], env={"HULLGUARD_EXIT_CODE": "lots"},
                       settings=load_settings(None))


def test_nested_command_sections(tmp_path: Path) -> None:
    from hullguard.settings import Settings

    parser = build_parser()
    apply_settings(parser, ["rules", "list"], env={},
                   settings=Settings(sections={"rules": {"list": {"policy": ["p.yaml"]}}}))
    assert parser.parse_args(["rules", "list"]).policy == ["p.yaml"]


# --- bad files ----------------------------------------------------------------------------------

def test_unknown_keys_warn_and_name_the_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "hullguard.yaml").write_text(
        "config: {exit-code: 3, colour: red}\nscans: {}\nsecrets: {allow: [], whitelist: []}\n")
    assert config_exit() == 3
    err = capsys.readouterr().err
    assert "config: unknown key 'colour'" in err and "unknown key 'scans'" in err
    assert "secrets: unknown key 'whitelist'" in err


@pytest.mark.parametrize(("text", "needle"), [
    ("config: {exit-code: lots}\n", "config.exit-code: expected an integer"),
    ("config: {exit-code: 1.5}\n", "config.exit-code: expected an integer"),
    ("config: {exit-code: true}\n", "config.exit-code: expected a number"),
    ("config: {quiet: 'yes'}\n", "config.quiet: expected true or false"),
    ("config: {pss-level: extreme}\n", "config.pss-level: 'extreme' is not one of baseline, restricted"),
    ("config: {format: {a: 1}}\n", "config.format: expected a single value"),
    ("config: [exit-code]\n", "config: must be a mapping"),
    ("scan: {scanners: [vuln, bogus]}\n", "unknown scanner 'bogus'"),
    ("- just\n- a list\n", "must be a mapping of command names"),
    ("config: {exit-code: [unclosed\n", "invalid YAML"),
    ("secrets: {allow: [{rule: A, path: b}]}\n", "secrets.allow[0] needs exactly one of"),
    ("secrets: {allow: [{regex: '(unclosed'}]}\n", "secrets.allow[0].regex '(unclosed' is not a valid"),
    ("secrets: {allow: {rule: X}}\n", "secrets.allow must be a list"),
    ("secrets: {disable-rules: [HG-SECRET-999]}\n", "unknown rule 'HG-SECRET-999'"),
    ("secrets: {max-file-size: huge}\n", "secrets.max-file-size: not a size"),
])
def test_bad_values_are_one_line_errors_exit_two(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                 text: str, needle: str) -> None:
    (tmp_path / "hullguard.yaml").write_text(text)
    assert config_exit() == 2
    err = capsys.readouterr().err
    assert needle in err and "hullguard.yaml" in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_help_still_works_with_a_broken_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "hullguard.yaml").write_text("config: {exit-code: lots}\n")
    with pytest.raises(SystemExit) as info:
        main(["config", "--help"])
    assert info.value.code == 0
    out, err = capsys.readouterr()
    assert "--policy" in out and "warning" in err and "config.exit-code" in err


def test_unknown_allow_rule_is_a_warning(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "hullguard.yaml").write_text("secrets: {allow: [{rule: HG-SECRET-9999}]}\n")
    assert config_exit() == 0
    assert "secrets.allow: no secret rule 'HG-SECRET-9999'" in capsys.readouterr().err


def test_empty_file_is_fine(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "hullguard.yaml").write_text("# nothing yet\n")
    assert config_exit("--exit-code", "1") == 1
    assert "warning" not in capsys.readouterr().err


# --- the secret allow-list ----------------------------------------------------------------------

def secret_tree(root: Path) -> None:
    (root / "app").mkdir(parents=True)
    (root / "app" / "settings.env").write_text(f"AWS_ACCESS_KEY_ID={AWS}\n")
    (root / "fixtures").mkdir()
    (root / "fixtures" / "token.txt").write_text(f"{GITHUB}  # test fixture\n")


def fs_secrets(capsys: pytest.CaptureFixture[str], *flags: str) -> list[dict]:
    code = main(["fs", "tree", "-q", "-f", "json", "--scanners", "secret", "--exit-code", "1", *flags])
    found = [f for f in json.loads(capsys.readouterr().out).get("findings", []) if f["kind"] == "secret"]
    assert code == (1 if found else 0)
    return found


def test_allow_list_by_rule_path_regex_and_fingerprint(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    secret_tree(tmp_path / "tree")
    found = fs_secrets(capsys)
    by_path = {f["location"]["path"]: f for f in found}
    assert set(by_path) == {"app/settings.env", "fixtures/token.txt"}
    aws_rule = by_path["app/settings.env"]["rule_id"]
    github_fp = by_path["fixtures/token.txt"]["details"]["match_fingerprint"]
    cases = {
        f"- rule: {aws_rule}": {"fixtures/token.txt"},
        "- path: 'fixtures/*'": {"app/settings.env"},
        "- regex: 'test fixture'": {"app/settings.env"},  # matches the line around the secret
        f"- regex: '^{AWS}$'": {"fixtures/token.txt"},  # matches the clear secret itself
        f"- fingerprint: '{github_fp}'": {"app/settings.env"},
        "- path: 'nothing/*'": {"app/settings.env", "fixtures/token.txt"},
    }
    for entry, left in cases.items():
        (tmp_path / "hullguard.yaml").write_text(f"secrets:\n  allow:\n  {entry}\n")
        assert {f["location"]["path"] for f in fs_secrets(capsys)} == left, entry


def test_disable_rules_and_max_file_size(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    secret_tree(tmp_path / "tree")
    github_rule = next(f["rule_id"] for f in fs_secrets(capsys) if f["location"]["path"] == "fixtures/token.txt")
    (tmp_path / "hullguard.yaml").write_text(f"secrets: {{disable-rules: [{github_rule.lower()}]}}\n")
    assert {f["location"]["path"] for f in fs_secrets(capsys)} == {"app/settings.env"}
    (tmp_path / "tree" / "app" / "settings.env").write_text("# padding\n" * 200 + f"AWS_ACCESS_KEY_ID={AWS}\n")
    (tmp_path / "hullguard.yaml").write_text("secrets: {max-file-size: 1K}\n")
    assert {f["location"]["path"] for f in fs_secrets(capsys)} == {"fixtures/token.txt"}


def test_allow_list_covers_image_config_and_is_not_defeated_by_the_layer_cache(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    img = build_synth([[File("app/.env", f"AWS_ACCESS_KEY_ID={AWS}\n")]], fmt="oci", out=tmp_path / "img",
                      config={"Env": [f"GITHUB_TOKEN={GITHUB}"]})
    cmd = ["image", str(img.path), "-q", "-f", "json", "--scanners", "secret", "--cache-dir", str(tmp_path / "c")]

    def paths() -> set[str]:
        assert main(cmd) == 0
        return {f["location"]["path"] for f in json.loads(capsys.readouterr().out).get("findings", [])}

    assert paths() == {"app/.env", "image-config:Env"}  # fills the layer cache
    (tmp_path / "hullguard.yaml").write_text("secrets:\n  allow:\n  - path: /app/.env\n  - regex: GITHUB_TOKEN\n")
    assert paths() == set()
    # Allowed means not reported, never printed in clear: the config in the report stays masked.
    assert main(cmd) == 0
    assert GITHUB not in capsys.readouterr().out
    (tmp_path / "hullguard.yaml").unlink()
    assert paths() == {"app/.env", "image-config:Env"}


def test_analyzer_cache_version_follows_the_settings() -> None:
    configure_defaults(None)
    plain = SecretAnalyzer().version
    assert plain == SecretAnalyzer.version
    from hullguard.detect.secrets.engine import AllowList

    configure_defaults(DefaultSettings(allow=AllowList(paths=("x/*",))))
    one = SecretAnalyzer().version
    configure_defaults(DefaultSettings(allow=AllowList(paths=("y/*",))))
    other = SecretAnalyzer().version
    assert len({plain, one, other}) == 3
    assert default_engine().allow.paths == ("y/*",)
