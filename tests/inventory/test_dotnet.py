from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hullguard.inventory.base import AnalyzerError, FileInfo
from hullguard.inventory.dotnet import DotnetAnalyzer
from hullguard.model import Package
from tests.inventory._fuzz import check_spliced_seed

FIXTURES = Path(__file__).parent / "fixtures" / "dotnet"
APP = "app"


def run(path: str, data: bytes) -> list[Package]:
    facts = list(DotnetAnalyzer().analyze(FileInfo(path), data))
    assert all(isinstance(f, Package) for f in facts)
    return facts  # type: ignore[return-value]


def fixture(name: str, path: str | None = None) -> dict[str, Package]:
    pkgs = run(path or f"{APP}/{name}", (FIXTURES / name).read_bytes())
    assert len({p.name for p in pkgs}) == len(pkgs)
    return {p.name: p for p in pkgs}


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("app/WebApp.deps.json", True),
        ("WebApp.deps.json", True),
        ("usr/share/dotnet/shared/Microsoft.NETCore.App/8.0.1/Microsoft.NETCore.App.deps.json", True),
        ("app/WebApp.runtimeconfig.json", False),
        ("app/WebApp.deps.json.bak", False),
        ("src/proj/packages.lock.json", True),
        ("packages.lock.json", True),
        ("src/proj/mypackages.lock.json", False),
        ("src/proj/packages.config", True),
        ("src/proj/nuget.packages.config", False),
        ("src/proj/App.csproj", False),
    ],
)
def test_wants(path: str, expected: bool) -> None:
    assert DotnetAnalyzer().wants(FileInfo(path)) is expected


def test_deps_json_packages_projects_and_skips() -> None:
    pkgs = fixture("WebApp.deps.json")
    # The bare assembly reference and the compile-only package are not deployed NuGet packages.
    assert set(pkgs) == {
        "WebApp",
        "WebApp.Core",
        "Newtonsoft.Json",
        "Serilog.AspNetCore",
        "Serilog",
        "Serilog.Sinks.Console",
    }
    nj = pkgs["Newtonsoft.Json"]
    assert (nj.version, nj.ecosystem, nj.found_by) == ("13.0.1", "nuget", "dotnet")
    assert nj.purl == "pkg:nuget/Newtonsoft.Json@13.0.1"
    assert nj.metadata["sha512"].startswith("sha512-ppPFpBcv")
    assert nj.metadata["path"] == "newtonsoft.json/13.0.1"
    assert nj.metadata["runtime_target"] == ".NETCoreApp,Version=v8.0"
    assert "local" not in nj.metadata

    assert pkgs["Serilog.AspNetCore"].metadata["requires"] == ["Serilog", "Serilog.Sinks.Console"]
    app = pkgs["WebApp"]
    assert app.metadata["local"] is True
    assert app.metadata["requires"] == ["Newtonsoft.Json", "Serilog.AspNetCore", "WebApp.Core", "Analyzers.Only"]
    assert "sha512" not in app.metadata
    assert pkgs["WebApp.Core"].metadata["local"] is True


def test_deps_json_self_contained_runtime_pack() -> None:
    pkgs = fixture("Worker.deps.json")
    assert set(pkgs) == {"Worker", "Microsoft.NETCore.App.Runtime.linux-x64", "System.Text.Json"}
    rt = pkgs["Microsoft.NETCore.App.Runtime.linux-x64"]
    assert rt.version == "8.0.1"
    assert rt.metadata["type"] == "runtimepack"
    assert rt.purl == "pkg:nuget/Microsoft.NETCore.App.Runtime.linux-x64@8.0.1"
    assert pkgs["Worker"].metadata["requires"] == ["System.Text.Json"]
    assert pkgs["System.Text.Json"].metadata["runtime_target"] == ".NETCoreApp,Version=v8.0/linux-x64"


def test_deps_json_compile_only_in_one_target_but_runtime_in_another_is_kept() -> None:
    doc = {
        "targets": {
            "a": {"X/1.0.0": {"compileOnly": True}},
            "a/linux-x64": {"X/1.0.0": {"runtime": {"X.dll": {}}}},
        },
        "libraries": {"X/1.0.0": {"type": "package"}},
    }
    assert [p.name for p in run("a.deps.json", json.dumps(doc).encode())] == ["X"]


def test_deps_json_bad_entries_skipped() -> None:
    doc = {
        "runtimeTarget": "not an object",
        "targets": {"t": ["not", "an", "object"], "u": {"A/1.0": "x", "B/2.0": {"dependencies": ["C"]}}},
        "libraries": {
            "A/1.0": {"type": "package"},
            "B/2.0": {"type": "package"},
            "NoVersion": {"type": "package"},
            "/1.0": {"type": "package"},
            "A/1.0/extra": {"type": "package"},
            "C/1.0": "not an object",
            "D/1.0": {"type": 7},
            "E/1.0": {"type": "msbuildproject"},
            "runtimepack./1.0": {"type": "runtimepack"},
            "a/1.0": {"type": "package"},
        },
    }
    pkgs = run("x.deps.json", json.dumps(doc).encode())
    # "a/1.0" repeats "A/1.0" (NuGet ids are case-insensitive); a runtime pack with nothing
    # after the prefix keeps its name as written.
    assert [(p.name, p.version) for p in pkgs] == [("A", "1.0"), ("B", "2.0"), ("runtimepack.", "1.0")]
    assert all("requires" not in p.metadata and "runtime_target" not in p.metadata for p in pkgs)


def test_packages_lock_json() -> None:
    pkgs = fixture("packages.lock.json")
    assert {(p.name, p.version) for p in pkgs.values()} == {
        ("Newtonsoft.Json", "13.0.3"),
        ("Microsoft.Extensions.Logging", "6.0.0"),
        ("Microsoft.Extensions.DependencyInjection", "6.0.0"),
        ("Microsoft.Extensions.Logging.Abstractions", "6.0.4"),
        ("System.Text.Encodings.Web", "8.0.0"),
    }
    nj = pkgs["Newtonsoft.Json"]
    assert nj.metadata["direct"] is True
    assert nj.metadata["requested"] == "[13.0.3, )"
    assert nj.metadata["frameworks"] == ["net6.0", "net8.0"]
    assert nj.metadata["content_hash"].startswith("HrC5BXdl")
    assert nj.purl == "pkg:nuget/Newtonsoft.Json@13.0.3"

    logging = pkgs["Microsoft.Extensions.Logging"]
    assert logging.metadata["requires"] == [
        "Microsoft.Extensions.DependencyInjection",
        "Microsoft.Extensions.Logging.Abstractions",
    ]
    assert pkgs["Microsoft.Extensions.Logging.Abstractions"].metadata["direct"] is False
    web = pkgs["System.Text.Encodings.Web"]
    assert web.metadata["frameworks"] == ["net8.0", "net8.0/linux-x64"]
    assert web.metadata["direct"] is False
    assert "requested" not in web.metadata


def test_packages_lock_json_odd_entries() -> None:
    doc = {
        "version": 2,
        "dependencies": {
            "net8.0": {
                "A": {"type": "Transitive", "resolved": "1.0.0"},
                "B": {"type": "Transitive"},
                "C": {"type": "Project", "resolved": "1.0.0"},
                "D": {"type": ["Direct"], "resolved": "1.0.0"},
                "E": "1.0.0",
                "F": {"type": "Direct", "resolved": 1},
            },
            "net9.0": ["A"],
        },
    }
    pkgs = run("packages.lock.json", json.dumps(doc).encode())
    assert [(p.name, p.version) for p in pkgs] == [("A", "1.0.0")]


def test_packages_config() -> None:
    pkgs = fixture("packages.config")
    assert {(p.name, p.version) for p in pkgs.values()} == {
        ("Newtonsoft.Json", "12.0.3"),
        ("log4net", "2.0.8"),
        ("StyleCop.Analyzers", "1.1.118"),
    }
    assert pkgs["log4net"].metadata == {"frameworks": ["net472"]}
    assert pkgs["StyleCop.Analyzers"].metadata["dev"] is True
    assert pkgs["Newtonsoft.Json"].purl == "pkg:nuget/Newtonsoft.Json@12.0.3"


def test_packages_config_with_other_root_yields_nothing() -> None:
    assert run("packages.config", b"<configuration><package id='A' version='1'/></configuration>") == []


def test_packages_config_rejects_entity_declarations() -> None:
    bomb = (
        b'<?xml version="1.0"?><!DOCTYPE p [<!ENTITY a "aaaaaaaaaa">'
        b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>'
        b'<packages><package id="&b;" version="1"/></packages>'
    )
    with pytest.raises(AnalyzerError):
        run("packages.config", bomb)


def test_packages_config_declared_utf16_but_utf8_bytes() -> None:
    data = b'<?xml version="1.0" encoding="utf-16"?><packages><package id="A" version="1.0"/></packages>'
    assert [(p.name, p.version) for p in run("packages.config", data)] == [("A", "1.0")]


@pytest.mark.parametrize("name", ["x.deps.json", "packages.lock.json", "packages.config"])
@pytest.mark.parametrize("data", [b"", b" \r\n"])
def test_empty_files_yield_nothing(name: str, data: bytes) -> None:
    assert run(name, data) == []


@pytest.mark.parametrize(
    ("path", "data"),
    [
        ("x.deps.json", b"\xff\xfe{}"),
        ("x.deps.json", b"{"),
        ("x.deps.json", b"[]"),
        ("x.deps.json", b'{"libraries": []}'),
        ("x.deps.json", b"[" * 100000 + b"]" * 100000),
        ("packages.lock.json", b"null"),
        ("packages.lock.json", b'{"dependencies": []}'),
        ("packages.lock.json", b'{"dependencies": {"net8.0": {"A": {"resolved": "1' + b"\xc3\x28" + b'"}}}}'),
        ("packages.config", b"<packages><package id='A' version='1'>"),
        ("packages.config", b"\xff\xfe<\x00p\x00"),
    ],
)
def test_malformed_input_raises_analyzer_error(path: str, data: bytes) -> None:
    with pytest.raises(AnalyzerError):
        run(path, data)


def test_deeply_nested_xml_is_not_a_crash() -> None:
    data = b"<packages>" + b"<x>" * 50000 + b"</x>" * 50000 + b"<package id='A' version='1'/></packages>"
    assert [p.name for p in run("packages.config", data)] == ["A"]


def test_large_deps_json() -> None:
    n = 20000
    doc = {
        "targets": {"t": {f"P{i}/1.0.{i}": {"dependencies": {f"P{i + 1}": "x"}} for i in range(n)}},
        "libraries": {f"P{i}/1.0.{i}": {"type": "package"} for i in range(n)},
    }
    pkgs = run("big.deps.json", json.dumps(doc).encode())
    assert len(pkgs) == n
    assert pkgs[-1].metadata["requires"] == [f"P{n}"]


SEEDS = [(f"app/{f.name}", f.read_bytes()) for f in sorted(FIXTURES.iterdir())]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_hostile_bytes_only_raise_analyzer_error(data: st.DataObject) -> None:
    check_spliced_seed(DotnetAnalyzer(), SEEDS, data)


def test_packages_lock_many_frameworks_stay_linear() -> None:
    entry = {"type": "Transitive", "resolved": "1.0.0", "dependencies": {f"D{i}": "1" for i in range(20)}}
    doc = {"dependencies": {f"net{i}.0": {"A": entry} for i in range(50000)}}
    (pkg,) = run("packages.lock.json", json.dumps(doc).encode())
    assert len(pkg.metadata["frameworks"]) == 50000
    assert pkg.metadata["requires"] == [f"D{i}" for i in range(20)]
