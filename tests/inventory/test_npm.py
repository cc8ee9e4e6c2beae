"""NpmAnalyzer: installed package.json files and npm/yarn/pnpm lockfiles.

fixtures/npm/generated/ holds lockfiles that npm 11 (lockfile v2 and v3), yarn 1.22, yarn 4,
pnpm 7 (5.4), pnpm 8 (6.0) and pnpm 9 (9.0) wrote for one and the same package.json, so every
format must yield the same releases. fixtures/npm/handwritten/ holds the corners those runs did
not reach, written from the formats' documentation.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hullguard.inventory.base import AnalyzerError, FileInfo
from hullguard.inventory.npm import NpmAnalyzer, package_url, parse_pnpm_key, parse_yarn_v1
from hullguard.model import Package
from tests.inventory._fuzz import by_key, check_spliced_seed, packages_of

FIXTURES = Path(__file__).parent / "fixtures" / "npm"
GENERATED = FIXTURES / "generated"
HANDWRITTEN = FIXTURES / "handwritten"

analyzer = NpmAnalyzer()


def run(path: str, data: bytes | str) -> list[Package]:
    return packages_of(analyzer, path, data)


def manifest(doc: object) -> list[Package]:
    return run("app/node_modules/pkg/package.json", json.dumps(doc))


# --- wants -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "wanted"),
    [
        ("app/node_modules/lodash/package.json", True),
        ("node_modules/lodash/package.json", True),
        ("app/node_modules/@babel/core/package.json", True),
        ("app/node_modules/a/node_modules/b/package.json", True),
        ("app/node_modules/a/node_modules/@s/b/package.json", True),
        ("app/node_modules/.pnpm/ms@2.1.3/node_modules/ms/package.json", True),
        ("usr/lib/node_modules/npm/package.json", True),
        # a package's own inner manifests are not packages; the project itself is (flagged local)
        ("app/node_modules/lodash/fp/package.json", False),
        ("app/node_modules/@babel/core/lib/package.json", False),
        ("app/node_modules/@babel/package.json", True),  # a scope folder with a manifest: odd, kept
        ("app/package.json", True),
        ("package.json", True),
        ("app/my_node_modules/x/package.json", False),
        ("app/node_modules/x/notpackage.json", False),
        ("app/package-lock.json", True),
        ("npm-shrinkwrap.json", True),
        ("app/yarn.lock", True),
        ("app/pnpm-lock.yaml", True),
        ("app/node_modules/.package-lock.json", False),
        ("app/node_modules/dep/package-lock.json", False),
        ("app/node_modules/dep/yarn.lock", False),
        ("app/node_modules/.pnpm/lock.yaml", False),
        ("app/pnpm-lock.yml", False),
        ("app/index.js", False),
    ],
)
def test_wants(path: str, wanted: bool) -> None:
    assert analyzer.wants(FileInfo(path)) is wanted


def test_project_manifest_is_reported_as_local() -> None:
    data = b'{"name": "shop-frontend", "version": "2.3.0", "dependencies": {"lodash": "^4.17.15"}}'
    (project,) = analyzer.analyze(FileInfo("srv/app/package.json"), data)
    assert (project.name, project.version, project.metadata.get("local")) == ("shop-frontend", "2.3.0", True)
    (installed,) = analyzer.analyze(FileInfo("srv/app/node_modules/lodash/package.json"),
                                    b'{"name": "lodash", "version": "4.17.15"}')
    assert "local" not in installed.metadata


# --- the same project in every lockfile format -------------------------------------------------

EXPECTED = {
    ("@babel/code-frame", "7.0.0"),
    ("@babel/helper-validator-identifier", "7.29.7"),
    ("@babel/highlight", "7.25.9"),
    ("@types/node", "20.11.0"),
    ("ansi-styles", "3.2.1"),
    ("chalk", "2.4.2"),
    ("color-convert", "1.9.3"),
    ("color-name", "1.1.3"),
    ("debug", "2.6.9"),
    ("escape-string-regexp", "1.0.5"),
    ("has-flag", "3.0.0"),
    ("is-number", "7.0.0"),
    ("js-tokens", "4.0.0"),
    ("loose-envify", "1.4.0"),
    ("ms", "0.7.1"),  # installed under the alias "old-ms"
    ("ms", "2.0.0"),  # nested under debug
    ("ms", "2.1.3"),
    ("picocolors", "1.1.1"),
    ("react", "18.2.0"),
    ("react-dom", "18.2.0"),
    ("scheduler", "0.23.2"),
    ("supports-color", "5.5.0"),
    ("undici-types", "5.26.5"),
}

GENERATED_LOCKS = [
    ("package-lock.v3.json", "package-lock.json"),
    ("package-lock.v2.json", "npm-shrinkwrap.json"),
    ("yarn.v1.lock", "yarn.lock"),
    ("yarn.berry.lock", "yarn.lock"),
    ("pnpm-lock.v5.yaml", "pnpm-lock.yaml"),
    ("pnpm-lock.v6.yaml", "pnpm-lock.yaml"),
    ("pnpm-lock.v9.yaml", "pnpm-lock.yaml"),
]


@pytest.mark.parametrize(("fixture", "name"), GENERATED_LOCKS)
def test_generated_lockfiles_agree(fixture: str, name: str) -> None:
    packages = by_key(run(f"srv/app/{name}", (GENERATED / fixture).read_bytes()))
    # Neither the root project nor the linked local folder is a registry release.
    assert set(packages) == EXPECTED
    debug = packages[("debug", "2.6.9")]
    assert debug.metadata["requires"] == ["ms"]
    assert debug.ecosystem == "npm" and debug.found_by == "npm"
    assert debug.purl == "pkg:npm/debug@2.6.9"
    assert packages[("@babel/code-frame", "7.0.0")].purl == "pkg:npm/%40babel/code-frame@7.0.0"
    assert set(packages[("chalk", "2.4.2")].metadata["requires"]) == {
        "ansi-styles",
        "escape-string-regexp",
        "supports-color",
    }
    assert "requires" not in packages[("ms", "2.1.3")].metadata
    assert all(not p.locations and not p.dependencies for p in packages.values())


@pytest.mark.parametrize(
    "fixture",
    ["package-lock.v3.json", "package-lock.v2.json", "pnpm-lock.v5.yaml", "pnpm-lock.v6.yaml", "pnpm-lock.v9.yaml"],
)
def test_dev_flag_where_the_format_records_it(fixture: str) -> None:
    name = "pnpm-lock.yaml" if fixture.startswith("pnpm") else "package-lock.json"
    packages = by_key(run(name, (GENERATED / fixture).read_bytes()))
    assert packages[("is-number", "7.0.0")].metadata.get("dev") is True
    assert [k for k, p in packages.items() if p.metadata.get("dev")] == [("is-number", "7.0.0")]


def test_pnpm_snapshot_dependencies_include_peers_without_suffix() -> None:
    packages = by_key(run("pnpm-lock.yaml", (GENERATED / "pnpm-lock.v9.yaml").read_bytes()))
    assert set(packages[("react-dom", "18.2.0")].metadata["requires"]) == {"loose-envify", "react", "scheduler"}


# --- installed package.json --------------------------------------------------------------------


def test_manifest_basic() -> None:
    [pkg] = manifest(
        {
            "name": "@scope/Widget",
            "version": "1.2.3",
            "license": "MIT",
            "dependencies": {"left-pad": "^1.0.0", "alias": "npm:real-pkg@^2.0.0"},
            "optionalDependencies": {"fsevents": "*"},
            "devDependencies": {"jest": "*"},
            "readme": "x" * 10000,
        }
    )
    assert pkg.name == "@scope/Widget"
    assert pkg.version == "1.2.3"
    assert pkg.purl == "pkg:npm/%40scope/widget@1.2.3"
    assert pkg.licenses == ["MIT"]
    # dev dependencies of an installed package are never installed with it
    assert pkg.metadata["requires"] == ["left-pad", "real-pkg", "fsevents"]
    assert "private" not in pkg.metadata


@pytest.mark.parametrize(
    ("fields", "licenses"),
    [
        ({"license": {"type": "ISC", "url": "https://example.invalid"}}, ["ISC"]),
        ({"licenses": [{"type": "MIT"}, {"type": "Apache-2.0"}]}, ["MIT", "Apache-2.0"]),
        ({"licenses": ["BSD-2-Clause", "BSD-2-Clause"]}, ["BSD-2-Clause"]),
        ({"license": "(MIT OR Apache-2.0)"}, ["(MIT OR Apache-2.0)"]),
        ({"license": "   "}, []),
        ({"license": 42, "licenses": {"type": 5}}, []),
        ({"license": ["GPL-3.0", None, {"nope": 1}]}, ["GPL-3.0"]),
    ],
)
def test_manifest_license_shapes(fields: dict[str, object], licenses: list[str]) -> None:
    [pkg] = manifest({"name": "x", "version": "1.0.0", **fields})
    assert pkg.licenses == licenses


def test_private_package_inside_node_modules_is_kept_and_flagged() -> None:
    [pkg] = manifest({"name": "internal-utils", "version": "0.0.1", "private": True})
    assert pkg.metadata["private"] is True


@pytest.mark.parametrize(
    "doc",
    [
        {"name": "x", "version": 1},
        {"name": "x", "version": {"major": 1}},
        {"name": "x", "version": None},
        {"name": "x"},
        {"version": "1.0.0"},
        {"name": ["x"], "version": "1.0.0"},
        {"name": "", "version": "1.0.0"},
        {"name": "x", "version": ""},
        {"name": "x", "version": "git+https://example.invalid/x.git"},
        {"name": "has space", "version": "1.0.0"},
    ],
)
def test_manifest_wrong_types_are_skipped(doc: dict[str, object]) -> None:
    assert manifest(doc) == []


def test_manifest_wrong_types_in_optional_fields_do_not_drop_the_package() -> None:
    [pkg] = manifest({"name": "x", "version": "1.0.0", "dependencies": ["a", "b"], "private": "yes"})
    assert pkg.metadata == {}


def test_manifest_with_bom() -> None:
    [pkg] = run("node_modules/x/package.json", b'\xef\xbb\xbf{"name": "x", "version": "1.0.0"}')
    assert pkg.version == "1.0.0"


@pytest.mark.parametrize(
    "data",
    [b"", b"{", b'{"name": "x", "version": "1.0', b"[1, 2]", b'"just a string"', b"\xff\xfe{}", b"null"],
)
def test_manifest_malformed_raises_analyzer_error(data: bytes) -> None:
    with pytest.raises(AnalyzerError):
        run("node_modules/x/package.json", data)


# --- package-lock.json -------------------------------------------------------------------------


def test_package_lock_v1_nested_and_aliases() -> None:
    packages = by_key(run("package-lock.json", (HANDWRITTEN / "package-lock.v1.json").read_bytes()))
    assert set(packages) == {
        ("accepts", "1.3.7"),
        ("mime-types", "2.1.24"),
        ("mime-db", "1.40.0"),
        ("mime-types", "2.1.35"),
        ("negotiator", "0.6.2"),
        ("@scope/tool", "0.2.0"),
        ("left-pad", "1.3.0"),
    }
    assert packages[("accepts", "1.3.7")].metadata["requires"] == ["mime-types", "negotiator"]
    assert packages[("mime-types", "2.1.24")].metadata == {"requires": ["mime-db"]}
    assert packages[("mime-types", "2.1.35")].metadata == {"dev": True}
    assert packages[("@scope/tool", "0.2.0")].purl == "pkg:npm/%40scope/tool@0.2.0"


def test_package_lock_workspaces_and_links_are_local() -> None:
    packages = by_key(run("package-lock.json", (HANDWRITTEN / "workspaces.package-lock.json").read_bytes()))
    assert set(packages) == {("once", "1.4.0"), ("wrappy", "1.0.2")}
    assert packages[("once", "1.4.0")].metadata["requires"] == ["wrappy"]


def test_package_lock_v3_dedupes_and_merges_dev() -> None:
    doc = {
        "lockfileVersion": 3,
        "packages": {
            "": {"name": "root", "version": "1.0.0"},
            "node_modules/a": {"version": "1.0.0", "dev": True, "dependencies": {"b": "^1"}},
            "node_modules/x/node_modules/a": {"version": "1.0.0", "dependencies": {"c": "^1"}},
            "node_modules/y/node_modules/a": {"version": "1.0.0", "dev": True},
            "node_modules/d": {"version": "2.0.0", "dev": True},
            "node_modules/d2": {"version": "2.0.0", "dev": True, "name": "d"},
            "node_modules/e": {"resolved": "../e", "link": True},
            "node_modules/f": {"version": ["1"]},
            "node_modules/g": "not an object",
            "packages/ws/node_modules/h": {"version": "3.0.0"},
        },
    }
    packages = by_key(run("package-lock.json", json.dumps(doc)))
    assert set(packages) == {("a", "1.0.0"), ("d", "2.0.0"), ("h", "3.0.0")}
    # one of the copies of "a" is a production dependency, so "a" is not dev-only
    assert packages[("a", "1.0.0")].metadata == {"requires": ["b", "c"]}
    assert packages[("d", "2.0.0")].metadata == {"dev": True}


def test_package_lock_v2_prefers_packages_over_legacy_dependencies() -> None:
    doc = {
        "lockfileVersion": 2,
        "packages": {"node_modules/a": {"version": "2.0.0"}},
        "dependencies": {"a": {"version": "1.0.0"}},
    }
    assert [(p.name, p.version) for p in run("package-lock.json", json.dumps(doc))] == [("a", "2.0.0")]


@pytest.mark.parametrize(
    "data",
    [b"[]", b"{", b'{"packages": {"node_modules/a": {"version": "1.0.0"}', b"\x00\x01"],
)
def test_package_lock_malformed(data: bytes) -> None:
    with pytest.raises(AnalyzerError):
        run("package-lock.json", data)


def test_package_lock_wrong_section_types_yield_nothing() -> None:
    assert run("package-lock.json", '{"packages": [1, 2], "dependencies": "x"}') == []


# --- yarn.lock ---------------------------------------------------------------------------------


def test_yarn_v1_edge_cases() -> None:
    packages = by_key(run("yarn.lock", (HANDWRITTEN / "yarn.v1.edge.lock").read_bytes()))
    assert set(packages) == {
        ("@babel/parser", "7.20.15"),
        ("chokidar", "3.5.3"),
        ("fsevents", "2.3.2"),
        ("wrap-ansi", "7.0.0"),
    }
    # Skipped: a name with a space (not an npm name), a link: folder, an entry without a version.
    assert packages[("chokidar", "3.5.3")].metadata["requires"] == ["anymatch", "glob-parent", "fsevents"]


def test_yarn_v1_parser_tokens() -> None:
    entries = parse_yarn_v1(
        '"@a/b@^1.0.0", "@a/b@~1.2.0", c@1:\n  version "1.2.3"\n  dependencies:\n    "d e" "1 || 2"\n'
    )
    assert entries == [(["@a/b@^1.0.0", "@a/b@~1.2.0", "c@1"], {"version": "1.2.3", "dependencies": {"d e": "1 || 2"}})]


def test_yarn_berry_edge_cases() -> None:
    packages = by_key(run("yarn.lock", (HANDWRITTEN / "yarn.berry.edge.lock").read_bytes()))
    assert set(packages) == {
        ("resolve", "1.22.1"),  # the patched copy folds into the release it patches
        ("typescript", "5.0.4"),
        ("is-core-module", "2.10"),
        ("lodash", "4.17.21"),
        ("left-pad", "1.3.0"),
        ("no-resolution", "2.10"),  # text scalars: not the float 2.1
    }
    assert packages[("resolve", "1.22.1")].metadata["requires"] == ["is-core-module"]


def test_yarn_berry_is_told_apart_by_its_metadata_key() -> None:
    text = '__metadata:\n  version: 8\n\n"a@npm:^1.0.0":\n  version: 1.0.0\n  resolution: "a@npm:1.0.0"\n'
    assert [(p.name, p.version) for p in run("yarn.lock", text)] == [("a", "1.0.0")]


@pytest.mark.parametrize(
    "text",
    [
        "__metadata:\n  version: 6\nx: &a [*a]\n",
        "__metadata:\n  version: 6\n" + "a: " + "[" * 500 + "]" * 500 + "\n",
        "__metadata: [unclosed\n",
        "__metadata:\n- list\n---\nsecond: doc\n",
    ],
)
def test_yarn_berry_hostile(text: str) -> None:
    with pytest.raises(AnalyzerError):
        run("yarn.lock", text)


def test_yarn_v1_garbage_is_empty_not_an_error() -> None:
    # yarn v1 has no grammar to violate beyond lines we skip; garbage yields no packages
    assert run("yarn.lock", b"\xff\xfe garbage \x00\n  version\n:::\n") == []


# --- pnpm-lock.yaml ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "major", "expected"),
    [
        ("/lodash/4.17.21", 5, ("lodash", "4.17.21")),
        ("/@babel/core/7.0.0_eslint@8.0.0+react@18.2.0", 5, ("@babel/core", "7.0.0")),
        ("/lodash@4.17.21", 6, ("lodash", "4.17.21")),
        ("/@tanstack/react-query@5.0.0(react@18.2.0)(react-dom@18.2.0)", 6, ("@tanstack/react-query", "5.0.0")),
        ("@scope/pkg@1.0.0-beta.1(typescript@5.0.0)", 9, ("@scope/pkg", "1.0.0-beta.1")),
        ("plain@2.0.0", 9, ("plain", "2.0.0")),
    ],
)
def test_parse_pnpm_key(key: str, major: int, expected: tuple[str, str]) -> None:
    assert parse_pnpm_key(key, major) == expected


def test_pnpm_v5_edge_cases() -> None:
    packages = by_key(run("pnpm-lock.yaml", (HANDWRITTEN / "pnpm-lock.v5.edge.yaml").read_bytes()))
    assert set(packages) == {
        ("@emotion/is-prop-valid", "1.2.0"),
        ("styled", "5.3.6"),
        ("jest", "29.0.0"),
        ("from-github", "2.1.0"),
    }
    styled = packages[("styled", "5.3.6")]
    # two peer variants: one is a production dependency, so the release is not dev-only
    assert "dev" not in styled.metadata
    assert styled.metadata["requires"] == ["@emotion/is-prop-valid", "react", "hoist"]
    assert packages[("jest", "29.0.0")].metadata == {"dev": True}


def test_pnpm_v9_edge_cases() -> None:
    packages = by_key(run("pnpm-lock.yaml", (HANDWRITTEN / "pnpm-lock.v9.edge.yaml").read_bytes()))
    assert set(packages) == {
        ("@tanstack/query-core", "5.0.0"),
        ("@tanstack/react-query", "5.0.0"),
        ("from-tarball", "1.2.3"),
        ("react", "18.2.0"),
        ("react", "17.0.2"),
    }
    query = packages[("@tanstack/react-query", "5.0.0")]
    assert query.metadata["requires"] == ["@tanstack/query-core", "react", "string-width"]
    assert query.purl == "pkg:npm/%40tanstack/react-query@5.0.0"
    # 9.x has no dev flag: reachable only from devDependencies, through the react 17 variant
    dev = {key for key, p in packages.items() if p.metadata.get("dev")}
    assert dev == {("@tanstack/react-query", "5.0.0"), ("@tanstack/query-core", "5.0.0"), ("react", "17.0.2")}


@pytest.mark.parametrize(
    "text",
    [
        "lockfileVersion: '9.0'\npackages:\n  a: &x [x, x, x, x, x, x, x, x, x, x]\n"
        + "".join(f"  b{i}: &x{i} [" + ", ".join([f"*x{i - 1}" if i else "*x"] * 10) + "]\n" for i in range(8)),
        "- not\n- a mapping\n",
        "lockfileVersion: '9.0'\npackages: {a: [}\n",
        "lockfileVersion: '9.0'\npackages:\n  !!python/object:os.system x: 1\n",
    ],
)
def test_pnpm_hostile(text: str) -> None:
    with pytest.raises(AnalyzerError):
        run("pnpm-lock.yaml", text)


def test_pnpm_odd_types_are_skipped() -> None:
    text = (
        "lockfileVersion: {weird: 1}\n"
        "packages:\n"
        "  /a@1.0.0: ~\n"
        "  /b@2.0.0: {dependencies: [x], dev: 'yes'}\n"
        "  ? [not, a, string]\n"
        "  : {}\n"
        "snapshots: [1, 2]\n"
    )
    with pytest.raises(AnalyzerError):  # a list as a mapping key is unhashable: refused by the loader
        run("pnpm-lock.yaml", text)
    text = text.replace("  ? [not, a, string]\n  : {}\n", "  123: {}\n")
    packages = by_key(run("pnpm-lock.yaml", text))
    assert set(packages) == {("a", "1.0.0"), ("b", "2.0.0")}
    assert packages[("b", "2.0.0")].metadata == {}


# --- purls -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "version", "expected"),
    [
        ("lodash", "4.17.21", "pkg:npm/lodash@4.17.21"),
        ("@angular/core", "17.0.0", "pkg:npm/%40angular/core@17.0.0"),
        ("JSONStream", "1.3.5", "pkg:npm/jsonstream@1.3.5"),
        ("pkg", "1.0.0+build.5", "pkg:npm/pkg@1.0.0%2Bbuild.5"),
    ],
)
def test_package_url(name: str, version: str, expected: str) -> None:
    assert package_url(name, version) == expected


# --- hostile bytes never escape as anything but AnalyzerError ----------------------------------

_PATHS = ["node_modules/x/package.json", "package-lock.json", "yarn.lock", "pnpm-lock.yaml"]


def _seeds() -> list[bytes]:
    return [p.read_bytes()[:3000] for p in sorted(FIXTURES.rglob("*")) if p.is_file()]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_fuzz_only_analyzer_error(data: st.DataObject) -> None:
    check_spliced_seed(analyzer, [("", seed) for seed in _seeds()], data, paths=_PATHS)


@settings(max_examples=200, deadline=None)
@given(
    doc=st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
        lambda children: (
            st.lists(children, max_size=4)
            | st.dictionaries(
                st.sampled_from(
                    ["name", "version", "license", "licenses", "dependencies", "packages", "lockfileVersion", "x"]
                )
                | st.text(max_size=6),
                children,
                max_size=5,
            )
        ),
        max_leaves=20,
    ),
    path=st.sampled_from(["node_modules/x/package.json", "package-lock.json"]),
)
def test_fuzz_json_shapes(doc: object, path: str) -> None:
    try:
        facts = list(analyzer.analyze(FileInfo(path), json.dumps(doc).encode()))
    except AnalyzerError:
        return
    assert all(isinstance(f, Package) and isinstance(f.version, str) for f in facts)
