"""Engine behaviour: masking, allow-lists, skips, line numbers and hostile input."""

from __future__ import annotations

import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hullguard.detect.secrets.engine import (
    AllowList,
    Engine,
    evidence,
    is_binary,
    mask,
    should_skip_path,
)
from hullguard.model import Finding, Location
from tests.detect.secrets.corpus import ALNUM, FILES, fake

GHP = "ghp_" + fake(ALNUM, 36)
AWS_ID = "AKIAFAKEQ2W3E4R5T6Y7"


@given(st.text(min_size=0, max_size=200))
def test_mask_never_reveals_more_than_a_quarter(secret: str) -> None:
    masked = mask(secret)
    keep = min(4, len(secret) // 4)
    assert masked[:keep] == secret[:keep]
    assert set(masked[keep:]) <= {"*"}
    assert len(masked) - keep == min(len(secret) - keep, 64)


def test_evidence_never_contains_a_secret(engine: Engine) -> None:
    for f in FILES:
        data = f.text.encode()
        matches = engine.scan(data, f.path)
        for m in matches:
            ev = evidence(m, data, matches)
            for other in matches:
                assert other.secret.decode() not in ev, (f.path, m.rule.id)
            assert "*" in ev or m.line_start + len(ev) <= m.secret_start


def test_two_secrets_on_one_line_are_both_masked(engine: Engine) -> None:
    data = f"export A={AWS_ID} B={GHP}\n".encode()
    matches = engine.scan(data, "run.sh")
    assert {m.rule.id for m in matches} == {"HG-SECRET-001", "HG-SECRET-014"}
    for m in matches:
        ev = evidence(m, data, matches)
        assert AWS_ID not in ev and GHP not in ev


def test_long_line_evidence_is_trimmed(engine: Engine) -> None:
    data = ("x" * 5000 + " token " + GHP + " " + "y" * 5000).encode()
    [m] = engine.scan(data, "a.txt")
    ev = evidence(m, data, [m])
    assert len(ev) <= 170 and "ghp_" in ev and GHP not in ev


def test_line_numbers_lf_and_crlf(engine: Engine) -> None:
    for sep in ("\n", "\r\n"):
        data = sep.join(["a", "b", GHP, "c", "", AWS_ID]).encode()
        assert [(m.rule.id, m.line) for m in engine.scan(data, "f")] == [
            ("HG-SECRET-014", 3), ("HG-SECRET-001", 6)]


def test_allow_list_by_rule_path_regex_and_fingerprint(re_engine: Engine) -> None:
    data = f"{GHP}\n{AWS_ID}\n".encode()
    fps = {m.rule.id: m.fingerprint for m in re_engine.scan(data, "app/a.env")}
    assert set(fps) == {"HG-SECRET-001", "HG-SECRET-014"}

    def ids(allow: AllowList, path: str = "app/a.env") -> set[str]:
        return {m.rule.id for m in Engine(use_hyperscan=False, allow=allow).scan(data, path)}

    assert ids(AllowList(rules=frozenset({"HG-SECRET-014"}))) == {"HG-SECRET-001"}
    assert ids(AllowList(paths=("app/*.env",))) == set()
    assert ids(AllowList(paths=("other/*",))) == {"HG-SECRET-001", "HG-SECRET-014"}
    assert ids(AllowList(regexes=(r"^AKIAFAKE",))) == {"HG-SECRET-014"}
    assert ids(AllowList(fingerprints=frozenset({fps["HG-SECRET-014"]}))) == {"HG-SECRET-001"}
    cfg = AllowList.from_config({"rules": ["HG-SECRET-001"], "fingerprints": [fps["HG-SECRET-014"]]})
    assert ids(cfg) == set()


def test_fingerprint_is_stable_across_line_moves_but_not_paths(re_engine: Engine) -> None:
    [a] = re_engine.scan(f"{GHP}\n".encode(), "a")
    [b] = re_engine.scan(f"\n\n\n{GHP}\n".encode(), "a")
    [c] = re_engine.scan(f"{GHP}\n".encode(), "b")
    assert a.fingerprint == b.fingerprint != c.fingerprint
    assert GHP not in a.fingerprint


def test_allow_list_filters_findings_after_the_scan() -> None:
    f1 = Finding(kind="secret", rule_id="HG-SECRET-014", location=Location(path="a/b"),
                 details={"match_fingerprint": "sha256:1"})
    f2 = Finding(kind="secret", rule_id="HG-SECRET-001", location=Location(path="c/d"))
    vuln = Finding(kind="vulnerability", rule_id="CVE-1", target="a/b")
    allow = AllowList(paths=("a/*",), fingerprints=frozenset({"sha256:9"}))
    assert allow.filter_findings([f1, f2, vuln]) == [f2, vuln]
    assert AllowList(fingerprints=frozenset({"sha256:1"})).filter_findings([f1, f2]) == [f2]


def test_binary_files_are_skipped(engine: Engine) -> None:
    data = b"\x7fELF\x02\x01\x01\x00" + GHP.encode() + b"\x00" * 100
    assert is_binary(data)
    assert engine.skip_reason(data, "usr/bin/app") == "binary"
    assert engine.scan(data, "usr/bin/app") == []
    control = bytes(range(1, 9)) * 500 + GHP.encode()
    assert is_binary(control) and engine.scan(control, "x") == []
    assert not is_binary("naïve café — ünïcode text".encode() * 100)


@pytest.mark.parametrize("path", [
    "app/node_modules/pkg/test/key.pem", "usr/lib/python3.12/site-packages/x/tests/k.py",
    "usr/lib/python3.11/test/keycert.pem", "usr/local/go/src/crypto/tls/testdata/x",
    "usr/share/doc/openssl/README", "app/package-lock.json", "app/yarn.lock", "srv/go.sum",
    "srv/vendor/github.com/x/y.go", "app/static/app.min.js", "img/logo.png", "app/.git/config",
])
def test_default_skips(path: str) -> None:
    assert should_skip_path(path)


@pytest.mark.parametrize("path", [
    "app/.env", "root/.ssh/id_rsa", "etc/ssl/private/server.key", "srv/app/settings.py",
    "home/u/.docker/config.json", "app/config/vendor.yaml", "opt/app/lib/python_helpers.py",
])
def test_application_paths_are_scanned(path: str) -> None:
    assert not should_skip_path(path)


def test_skip_default_paths_can_be_turned_off() -> None:
    data = GHP.encode()
    assert Engine(use_hyperscan=False).scan(data, "node_modules/a/b") == []
    assert len(Engine(use_hyperscan=False, skip_default_paths=False).scan(data, "node_modules/a/b")) == 1


def test_size_cap() -> None:
    small = Engine(use_hyperscan=False, max_size=1000)
    assert small.scan(b"x" * 1001 + GHP.encode(), "f") == []
    assert small.skip_reason(b"x" * 1001, "f") is not None


def test_placeholders_and_templates_are_not_secrets(engine: Engine) -> None:
    for text in ("glpat-xxxxxxxxxxxxxxxxxxxx", "AKIAIOSFODNN7EXAMPLE", "password=${DB_PASSWORD}",
                 "password = 'changeme123'", "token: {{ .Values.token }}",
                 "postgres://u:<password>@h/db", "api_key = os.environ.get('API_KEY')"):
        assert engine.scan(text.encode(), "f") == [], text


def test_invalid_utf8_is_scanned_and_rendered(engine: Engine) -> None:
    data = b"\xff\xfe\xc3\x28 broken " + GHP.encode() + b" \xe2\x82\n"
    [m] = engine.scan(data, "f")
    ev = evidence(m, data, [m])
    assert "ghp_" in ev and GHP not in ev


def test_huge_line_without_separators_does_not_hang(engine: Engine) -> None:
    # Five megabytes of one token-ish run: bounded quantifiers keep re linear.
    for filler in (b"a", b"A1", b"x:", b"@", b"=", b"-"):
        data = filler * (5_000_000 // len(filler))
        engine.scan(data + b"\npassword=" + data[:1000], "f")


def test_huge_file_is_skipped_by_the_cap_and_found_when_allowed(engine: Engine) -> None:
    body = (b"lorem ipsum dolor sit amet, consectetur adipiscing elit\n" * 920_000)[:50 * 2**20]
    data = body + GHP.encode() + b"\n"
    assert engine.scan(data, "big.log") == []
    assert engine.skip_reason(data, "big.log")
    if engine.backend == "hyperscan":  # the re path over 50 MB is correct but slow; keep CI short
        roomy = Engine(use_hyperscan=True, max_size=64 * 2**20)
        [m] = roomy.scan(data, "big.log")
        assert m.rule.id == "HG-SECRET-014" and m.line == body.count(b"\n") + 1


def test_many_matches_are_capped(engine: Engine) -> None:
    data = (GHP + "\n").encode() * 5000
    assert len(engine.scan(data, "f")) == 500


def test_scan_time_is_not_quadratic_in_matches(re_engine: Engine) -> None:
    # Not a wall-time assert on speed; just that a pathological case finishes at all.
    start = time.monotonic()
    re_engine.scan(("password=" + "Zq8#vT2!mKp9wL " * 20 + "\n").encode() * 2000, "f")
    assert time.monotonic() - start < 600


def test_engine_and_analyzer_survive_pickling(hs_engine: Engine) -> None:
    import pickle

    from hullguard.detect.secrets.analyzer import SecretAnalyzer

    allow = AllowList(rules=frozenset({"HG-SECRET-001"}), regexes=("^x",))
    eng = Engine(use_hyperscan=hs_engine.backend == "hyperscan", allow=allow, max_size=1234)
    copy = pickle.loads(pickle.dumps(eng))
    assert (copy.backend, copy.max_size, copy.allow) == (eng.backend, 1234, allow)
    data = f"{AWS_ID} {GHP}\n".encode()
    assert [m.rule.id for m in copy.scan(data, "f")] == ["HG-SECRET-014"]
    analyzer = pickle.loads(pickle.dumps(SecretAnalyzer(eng)))
    assert analyzer.engine.max_size == 1234


def test_compiled_database_is_cached_and_a_bad_cache_is_ignored(
    hs_engine: Engine, tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv("HULLGUARD_NO_SECRET_DB_CACHE", raising=False)
    data = f"{GHP}\n".encode()
    first = Engine(use_hyperscan=True)
    [cached] = list((tmp_path / "hullguard" / "secrets").glob("*.hsdb"))
    second = Engine(use_hyperscan=True)
    cached.write_bytes(b"not a database")
    third = Engine(use_hyperscan=True)
    for eng in (first, second, third):
        assert [m.rule.id for m in eng.scan(data, "f")] == ["HG-SECRET-014"]
    assert cached.stat().st_size > 1000  # rewritten after the bad read
