from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hullguard.inventory.base import AnalyzerError, FileInfo
from hullguard.inventory.rust import CargoLockAnalyzer
from hullguard.model import Package
from tests.inventory._fuzz import check_spliced_seed

FIXTURES = Path(__file__).parent / "fixtures" / "rust"


def run(data: bytes, path: str = "app/Cargo.lock") -> list[Package]:
    facts = list(CargoLockAnalyzer().analyze(FileInfo(path), data))
    assert all(isinstance(f, Package) for f in facts)
    return facts  # type: ignore[return-value]


def by_key(pkgs: list[Package]) -> dict[tuple[str, str], Package]:
    return {(p.name, p.version): p for p in pkgs}


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("Cargo.lock", True),
        ("usr/src/app/Cargo.lock", True),
        ("usr/src/app/NotCargo.lock", False),
        ("usr/src/app/Cargo.lock.orig", False),
        ("usr/src/app/Cargo.toml", False),
        ("usr/src/app/cargo.lock", False),
    ],
)
def test_wants(path: str, expected: bool) -> None:
    assert CargoLockAnalyzer().wants(FileInfo(path)) is expected


def test_v1_lock_with_metadata_checksums() -> None:
    pkgs = by_key(run((FIXTURES / "v1.Cargo.lock").read_bytes()))
    assert set(pkgs) == {("demo", "0.1.0"), ("libc", "0.2.40"), ("rand", "0.4.2")}

    libc = pkgs["libc", "0.2.40"]
    assert libc.ecosystem == "cargo"
    assert libc.purl == "pkg:cargo/libc@0.2.40"
    assert libc.found_by == "cargo-lock"
    assert libc.metadata["checksum"].startswith("6fd41f33")
    assert libc.metadata["source"] == "registry+https://github.com/rust-lang/crates.io-index"
    assert "local" not in libc.metadata
    assert libc.locations == []

    assert pkgs["rand", "0.4.2"].metadata["requires"] == ["libc"]
    demo = pkgs["demo", "0.1.0"]
    assert demo.metadata["local"] is True
    assert demo.metadata["requires"] == ["libc", "rand"]
    assert "checksum" not in demo.metadata


def test_v3_lock_versions_sources_and_short_dependencies() -> None:
    pkgs = run((FIXTURES / "v3.Cargo.lock").read_bytes())
    keyed = by_key(pkgs)
    # Two versions of the same crate are both real and both reported.
    assert ("bitflags", "1.3.2") in keyed and ("bitflags", "2.4.1") in keyed
    assert len(pkgs) == 5

    server = keyed["server", "0.3.0"]
    assert server.metadata == {
        "local": True,
        "requires": ["bitflags", "tokio", "vendored-thing"],
    }
    assert keyed["tokio", "1.35.0"].metadata["source"] == "sparse+https://index.crates.io/"
    git = keyed["vendored-thing", "0.9.0"]
    assert git.metadata["source"].startswith("git+https://github.com/example/vendored-thing")
    assert "checksum" not in git.metadata
    assert keyed["bitflags", "2.4.1"].metadata["checksum"].startswith("327762f6")


def test_empty_and_package_less_files_yield_nothing() -> None:
    assert run(b"") == []
    assert run(b"version = 4\n") == []


@pytest.mark.parametrize(
    "data",
    [
        b"\xff\xfe not utf-8",
        b"[[package]\nname = ",
        b"package = 3\n",
        b"package = " + b"[" * 5000 + b"]" * 5000 + b"\n",
    ],
)
def test_malformed_input_raises_analyzer_error(data: bytes) -> None:
    with pytest.raises(AnalyzerError):
        run(data)


def test_wrong_types_are_skipped_entry_by_entry() -> None:
    data = b"""
package = [
  { name = "ok", version = "1.0.0", source = "registry+https://github.com/rust-lang/crates.io-index", \
dependencies = ["a", 3, "", "b 1.0 (x)"], checksum = 7 },
  { name = 5, version = "1.0.0" },
  { name = "noversion" },
  { name = "emptyversion", version = "" },
  { name = "badsource", version = "1.0.0", source = ["x"] },
  "not a table",
]
metadata = "not a table"
"""
    pkgs = run(data)
    assert [(p.name, p.version) for p in pkgs] == [("ok", "1.0.0"), ("badsource", "1.0.0")]
    assert pkgs[0].metadata["requires"] == ["a", "b"]
    assert "checksum" not in pkgs[0].metadata
    # A source of the wrong type says nothing about where the crate came from.
    assert pkgs[1].metadata == {"local": True}


def test_exact_duplicates_are_reported_once() -> None:
    entry = b'[[package]]\nname = "x"\nversion = "1.0.0"\nsource = "registry+https://github.com/rust-lang/crates.io-index"\n'
    assert len(run(entry + b"\n" + entry)) == 1


def test_many_packages() -> None:
    entry = '[[package]]\nname = "crate{0}"\nversion = "1.{0}.0"\nsource = "{1}"\n\n'
    data = "".join(entry.format(i, "registry+https://github.com/rust-lang/crates.io-index") for i in range(20000))
    pkgs = run(data.encode())
    assert len(pkgs) == 20000
    assert pkgs[-1].purl == "pkg:cargo/crate19999@1.19999.0"


@pytest.mark.skipif(shutil.which("cargo") is None, reason="cargo not installed")
def test_real_lock_from_cargo(tmp_path: Path) -> None:
    """A workspace of path crates resolves offline, so cargo writes a real, current-format lock."""
    (tmp_path / "Cargo.toml").write_text('[workspace]\nmembers = ["app", "util"]\nresolver = "2"\n')
    for crate, deps in (("util", ""), ("app", 'util = { path = "../util" }\n')):
        (tmp_path / crate / "src").mkdir(parents=True)
        (tmp_path / crate / "src" / "lib.rs").write_text("")
        (tmp_path / crate / "Cargo.toml").write_text(
            f'[package]\nname = "{crate}"\nversion = "0.2.1"\nedition = "2021"\n\n[dependencies]\n{deps}'
        )
    proc = subprocess.run(
        ["cargo", "generate-lockfile", "--offline"], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    if proc.returncode != 0:
        pytest.skip(f"cargo could not generate a lock file here: {proc.stderr.strip()[:200]}")
    pkgs = by_key(run((tmp_path / "Cargo.lock").read_bytes()))
    assert set(pkgs) == {("app", "0.2.1"), ("util", "0.2.1")}
    assert pkgs["app", "0.2.1"].metadata == {"local": True, "requires": ["util"]}
    assert pkgs["util", "0.2.1"].metadata == {"local": True}


SEEDS = [("a/Cargo.lock", (FIXTURES / n).read_bytes()) for n in ("v1.Cargo.lock", "v3.Cargo.lock")]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_hostile_bytes_only_raise_analyzer_error(data: st.DataObject) -> None:
    check_spliced_seed(CargoLockAnalyzer(), SEEDS, data)


def test_hostile_dependency_repeats_stay_linear() -> None:
    deps = ", ".join(f'"d{i % 50000}"' for i in range(200_000))
    data = f'[[package]]\nname = "x"\nversion = "1.0.0"\ndependencies = [{deps}]\n'.encode()
    (pkg,) = run(data)
    assert len(pkg.metadata["requires"]) == 50000
    assert pkg.metadata["requires"][:2] == ["d0", "d1"]
