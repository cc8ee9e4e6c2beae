from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hullguard.inventory.base import AnalyzerError, FileInfo
from hullguard.inventory.php import PhpAnalyzer, normalize_version
from hullguard.model import Package
from tests.inventory._fuzz import check_spliced_seed

FIXTURES = Path(__file__).parent / "fixtures" / "php"
LOCK = "srv/app/composer.lock"
INSTALLED = "srv/app/vendor/composer/installed.json"


def run(path: str, data: bytes) -> list[Package]:
    facts = list(PhpAnalyzer().analyze(FileInfo(path), data))
    assert all(isinstance(f, Package) for f in facts)
    return facts  # type: ignore[return-value]


def by_name(path: str, fixture: str) -> dict[str, Package]:
    return {p.name: p for p in run(path, (FIXTURES / fixture).read_bytes())}


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("composer.lock", True),
        (LOCK, True),
        (INSTALLED, True),
        ("vendor/composer/installed.json", True),
        ("srv/app/composer.json", False),
        ("srv/app/mycomposer.lock", False),
        ("srv/app/vendor/composer/installed.php", False),
        ("srv/app/othervendor/composer/installed.json", False),
        ("srv/app/node_modules/x/installed.json", False),
    ],
)
def test_wants(path: str, expected: bool) -> None:
    assert PhpAnalyzer().wants(FileInfo(path)) is expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("v5.4.31", "5.4.31"),
        ("V2.0", "2.0"),
        ("5.4.31", "5.4.31"),
        ("v", "v"),
        ("very-1", "very-1"),
        ("dev-main", "dev-main"),
        ("vv1.0", "vv1.0"),
    ],
)
def test_normalize_version(raw: str, expected: str) -> None:
    assert normalize_version(raw) == expected


def test_composer_lock() -> None:
    pkgs = by_name(LOCK, "composer.lock")
    assert set(pkgs) == {"guzzlehttp/guzzle", "symfony/console", "acme/Internal-Tools", "phpunit/phpunit"}

    guzzle = pkgs["guzzlehttp/guzzle"]
    assert (guzzle.version, guzzle.ecosystem) == ("7.8.0", "composer")
    assert guzzle.purl == "pkg:composer/guzzlehttp/guzzle@7.8.0"
    assert guzzle.licenses == ["MIT"]
    assert guzzle.found_by == "php"
    # Platform requirements (php, ext-*) are not packages; require-dev is not a runtime need.
    assert guzzle.metadata["requires"] == ["guzzlehttp/promises", "guzzlehttp/psr7", "psr/http-client"]
    assert guzzle.metadata["reference"] == "1110f66a6530a40fe7aea0378fe608ee2b2248f9"
    assert guzzle.metadata["type"] == "library"
    assert "dev" not in guzzle.metadata
    assert "raw_version" not in guzzle.metadata

    console = pkgs["symfony/console"]
    assert console.version == "5.4.31"
    assert console.metadata["raw_version"] == "v5.4.31"
    assert console.purl == "pkg:composer/symfony/console@5.4.31"

    branch = pkgs["acme/Internal-Tools"]
    assert branch.version == "dev-main"
    assert branch.licenses == ["proprietary"]
    assert branch.metadata["reference"].startswith("9b2f7c1e")
    # purl-spec: composer namespace and name are case-insensitive and lowercased.
    assert branch.purl == "pkg:composer/acme/internal-tools@dev-main"

    phpunit = pkgs["phpunit/phpunit"]
    assert phpunit.metadata["dev"] is True
    assert phpunit.licenses == ["BSD-3-Clause"]


def test_installed_json_composer2_marks_dev_packages() -> None:
    pkgs = by_name(INSTALLED, "installed-v2.json")
    assert set(pkgs) == {"monolog/monolog", "psr/log", "mockery/mockery"}
    assert pkgs["mockery/mockery"].metadata["dev"] is True
    assert "dev" not in pkgs["monolog/monolog"].metadata
    assert pkgs["monolog/monolog"].metadata["requires"] == ["psr/log"]
    assert pkgs["psr/log"].purl == "pkg:composer/psr/log@3.0.0"


def test_installed_json_composer1_list() -> None:
    pkgs = by_name(INSTALLED, "installed-v1.json")
    assert {(p.name, p.version) for p in pkgs.values()} == {
        ("twig/twig", "1.42.5"),
        ("symfony/polyfill-ctype", "1.17.0"),
    }
    assert pkgs["twig/twig"].metadata["requires"] == ["symfony/polyfill-ctype"]
    assert all("dev" not in p.metadata for p in pkgs.values())


def test_duplicates_merge_and_stay_runtime_if_either_copy_is() -> None:
    entry = {"name": "a/b", "version": "1.0.0"}
    doc = {
        "packages": [entry, dict(entry, version="v1.0.0")],
        "packages-dev": [entry, {"name": "c/d", "version": "2"}],
    }
    pkgs = run(LOCK, json.dumps(doc).encode())
    assert [(p.name, p.version, p.metadata.get("dev", False)) for p in pkgs] == [
        ("a/b", "1.0.0", False),
        ("c/d", "2", True),
    ]
    doc = {"packages-dev": [entry], "packages": []}
    assert run(LOCK, json.dumps(doc).encode())[0].metadata["dev"] is True


def test_bad_entries_are_skipped() -> None:
    doc = {
        "packages": [
            "string",
            None,
            {"name": "no-slash", "version": "1.0"},
            {"name": "too/many/slashes", "version": "1.0"},
            {"name": "/empty-vendor", "version": "1.0"},
            {"name": "a/b"},
            {"name": "a/b", "version": ""},
            {"name": ["a/b"], "version": "1.0"},
            {"name": "a/b", "version": 1.0},
            {
                "name": "ok/pkg",
                "version": "1.0",
                "license": [1, "MIT", None],
                "require": ["x/y"],
                "source": "git",
                "type": 3,
            },
        ],
        "packages-dev": None,
    }
    pkgs = run(LOCK, json.dumps(doc).encode())
    assert len(pkgs) == 1
    assert pkgs[0].name == "ok/pkg"
    assert pkgs[0].licenses == ["MIT"]
    assert pkgs[0].metadata == {}


@pytest.mark.parametrize("data", [b"", b"  \n", b"{}", b'{"packages": []}'])
def test_empty_inputs_yield_nothing(data: bytes) -> None:
    assert run(LOCK, data) == []
    assert run(INSTALLED, data) == []


def test_empty_composer1_list_yields_nothing() -> None:
    assert run(INSTALLED, b"[]") == []


def test_byte_order_mark_is_accepted() -> None:
    data = b"\xef\xbb\xbf" + json.dumps({"packages": [{"name": "a/b", "version": "1"}]}).encode()
    assert [p.name for p in run(LOCK, data)] == ["a/b"]


@pytest.mark.parametrize(
    ("path", "data"),
    [
        (LOCK, b"\xff\xfe{}"),
        (LOCK, b"{not json"),
        (LOCK, b"[1, 2]"),
        (LOCK, b'{"packages": {"a/b": "1.0"}}'),
        (LOCK, b'{"packages-dev": "x"}'),
        (INSTALLED, b'"a string"'),
        (INSTALLED, b'{"packages": 5}'),
        (INSTALLED, b"[" * 100000 + b"]" * 100000),
        (LOCK, b'{"n": ' + b"9" * 5000 + b"}"),
    ],
)
def test_malformed_input_raises_analyzer_error(path: str, data: bytes) -> None:
    with pytest.raises(AnalyzerError):
        run(path, data)


def test_many_packages() -> None:
    doc = {"packages": [{"name": f"v{i}/p{i}", "version": f"v1.{i}"} for i in range(20000)]}
    pkgs = run(INSTALLED, json.dumps(doc).encode())
    assert len(pkgs) == 20000
    assert pkgs[-1].purl == "pkg:composer/v19999/p19999@1.19999"


SEEDS = [(LOCK, (FIXTURES / "composer.lock").read_bytes())] + [
    (INSTALLED, (FIXTURES / n).read_bytes()) for n in ("installed-v1.json", "installed-v2.json")
]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_hostile_bytes_only_raise_analyzer_error(data: st.DataObject) -> None:
    check_spliced_seed(PhpAnalyzer(), SEEDS, data)
