"""PythonAnalyzer: installed core metadata and requirements/poetry/Pipfile/uv lockfiles.

fixtures/python/generated/ was produced by real tools from one project (Jinja2, six,
typing_extensions, dev group iniconfig): uv.lock by ``uv lock``, requirements.txt by
``uv export`` (hash-pinned, with continuation lines), Pipfile.lock by ``pipenv lock``, and the
dist-info folders by ``pip install --target`` (their METADATA cut after the headers).
fixtures/python/handwritten/ covers what those runs did not, written from the formats' docs.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hullguard.inventory.base import AnalyzerError, FileInfo
from hullguard.inventory.python import PythonAnalyzer, normalize, parse_core_metadata, parse_requirements
from hullguard.model import Package
from tests.inventory._fuzz import by_key, check_spliced_seed, packages_of

FIXTURES = Path(__file__).parent / "fixtures" / "python"
GENERATED = FIXTURES / "generated"
HANDWRITTEN = FIXTURES / "handwritten"

analyzer = PythonAnalyzer()


def run(path: str, data: bytes | str) -> list[Package]:
    return packages_of(analyzer, path, data)


def metadata(text: str) -> Package:
    [pkg] = run("usr/lib/python3/site-packages/x-1.dist-info/METADATA", text)
    return pkg


# --- wants -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "wanted"),
    [
        ("usr/lib/python3.11/site-packages/Jinja2-3.1.2.dist-info/METADATA", True),
        ("usr/lib/python3/dist-packages/six-1.16.0.egg-info/PKG-INFO", True),
        ("usr/lib/python3/dist-packages/distro_info-1.0.egg-info", True),
        ("opt/app/lib/foo-1.0-py3.11.egg/EGG-INFO/PKG-INFO", True),
        ("app/src/myproj.egg-info/PKG-INFO", True),
        ("usr/lib/python3/site-packages/x.dist-info/RECORD", False),
        ("usr/lib/python3/site-packages/x/METADATA", False),
        ("app/PKG-INFO", False),  # an sdist's root PKG-INFO is not an installed package
        ("app/requirements.txt", True),
        ("app/requirements-dev.txt", True),
        ("app/requirements/prod.txt", False),
        ("app/dev-requirements.txt", True),
        ("app/requirements.in", False),
        ("app/poetry.lock", True),
        ("app/Pipfile.lock", True),
        ("app/uv.lock", True),
        ("app/Pipfile", False),
        ("usr/lib/python3.11/site-packages/pkg/requirements.txt", False),
        ("usr/lib/python3/dist-packages/pkg/poetry.lock", False),
        ("venv/lib/python3.12/site-packages/x/uv.lock", False),
        ("app/x.egg-info/requires.txt", False),
    ],
)
def test_wants(path: str, wanted: bool) -> None:
    assert analyzer.wants(FileInfo(path)) is wanted


def test_normalize() -> None:
    assert normalize("Zope.Interface") == "zope-interface"
    assert normalize("typing__extensions") == "typing-extensions"
    assert normalize("a-_.b") == "a-b"


# --- installed core metadata -------------------------------------------------------------------

SITE = GENERATED / "site-packages"


def installed(folder: str) -> Package:
    path = f"usr/lib/python3.11/site-packages/{folder}/METADATA"
    assert analyzer.wants(FileInfo(path))
    [pkg] = run(path, (SITE / folder / "METADATA").read_bytes())
    return pkg


def test_installed_jinja2() -> None:
    pkg = installed("Jinja2-3.1.2.dist-info")
    assert (pkg.name, pkg.version, pkg.ecosystem) == ("Jinja2", "3.1.2", "pypi")
    assert pkg.purl == "pkg:pypi/jinja2@3.1.2"
    assert pkg.licenses == ["BSD-3-Clause"]
    # Babel is behind the i18n extra, so it is not a dependency of a plain install
    assert pkg.metadata == {"requires": ["markupsafe"]}
    assert pkg.found_by == "python" and not pkg.locations and not pkg.dependencies


@pytest.mark.parametrize(
    ("folder", "name", "version", "purl", "licenses"),
    [
        ("markupsafe-3.0.4.dist-info", "MarkupSafe", "3.0.4", "pkg:pypi/markupsafe@3.0.4", ["BSD-3-Clause"]),
        ("six-1.16.0.dist-info", "six", "1.16.0", "pkg:pypi/six@1.16.0", ["MIT"]),
        ("iniconfig-2.0.0.dist-info", "iniconfig", "2.0.0", "pkg:pypi/iniconfig@2.0.0", ["MIT"]),
        (
            "typing_extensions-4.9.0.dist-info",
            "typing_extensions",
            "4.9.0",
            "pkg:pypi/typing-extensions@4.9.0",
            ["PSF-2.0"],  # from the trove classifier: the file has no License field
        ),
    ],
)
def test_installed_generated(folder: str, name: str, version: str, purl: str, licenses: list[str]) -> None:
    pkg = installed(folder)
    assert (pkg.name, pkg.version, pkg.purl, pkg.licenses) == (name, version, purl, licenses)


def test_license_expression_wins_over_license_and_classifiers() -> None:
    pkg = metadata(
        "Metadata-Version: 2.4\nName: a\nVersion: 1\nLicense: BSD\nLicense-Expression: MIT OR Apache-2.0\n"
        "Classifier: License :: OSI Approved :: BSD License\n"
    )
    assert pkg.licenses == ["MIT OR Apache-2.0"]


def test_license_text_falls_back_to_classifiers() -> None:
    pkg = metadata(
        "Metadata-Version: 2.1\nName: a\nVersion: 1\n"
        "License: Copyright (c) 2020 Someone\n        Permission is hereby granted, free of charge...\n"
        "Classifier: License :: OSI Approved :: GNU General Public License v2 or later (GPLv2+)\n"
        "Classifier: License :: OSI Approved\n"
        "Classifier: License :: Free For Home Use\n"
        "Classifier: Programming Language :: Python\n"
    )
    assert pkg.licenses == ["GPL-2.0-or-later", "Free For Home Use"]


@pytest.mark.parametrize("value", ["UNKNOWN", "", "x" * 500])
def test_license_placeholders_and_pasted_text_are_not_names(value: str) -> None:
    pkg = metadata(f"Name: a\nVersion: 1\nLicense: {value}\n")
    assert pkg.licenses == []


def test_requires_dist_forms() -> None:
    pkg = metadata(
        "Metadata-Version: 2.1\nName: a\nVersion: 1\n"
        "Requires-Dist: requests[socks] (>=2.0)\n"
        "Requires-Dist: Zope.Interface>=5; python_version >= '3.8'\n"
        "Requires-Dist: pytest ; extra == 'test'\n"
        'Requires-Dist: colorama; sys_platform == "win32" and extra=="cli"\n'
        "Requires-Dist: importlib_metadata; python_version<'3.8'\n"
        "Requires-Dist: requests>=2.1\n"
        "Requires-Dist: @@@ not a requirement\n"
    )
    assert pkg.metadata["requires"] == ["requests", "zope-interface", "importlib-metadata"]


def test_headers_stop_at_body_and_fold_continuations() -> None:
    headers = parse_core_metadata(
        b"Name: a\r\nVersion: 1.0\r\nSummary: first\r\n  second\r\nnot a header line\r\n"
        b"Classifier: A\r\nclassifier: B\r\n\r\nName: body-is-not-headers\r\n"
    )
    assert headers["name"] == ["a"]
    assert headers["summary"] == ["first\nsecond"]
    assert headers["classifier"] == ["A", "B"]


def test_egg_info_forms() -> None:
    text = "Metadata-Version: 1.1\nName: distro-info\nVersion: 1.0+deb12u1\nLicense: ISC\n"
    for path in (
        "usr/lib/python3/dist-packages/distro_info-1.0.egg-info",
        "usr/lib/python3/dist-packages/distro_info-1.0.egg-info/PKG-INFO",
        "usr/lib/python3/site-packages/distro_info-1.0-py3.11.egg/EGG-INFO/PKG-INFO",
    ):
        [pkg] = run(path, text)
        assert (pkg.name, pkg.version, pkg.licenses) == ("distro-info", "1.0+deb12u1", ["ISC"])
        assert pkg.purl == "pkg:pypi/distro-info@1.0%2Bdeb12u1"


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"Name: only-a-name\n",
        b"Version: 1.0\n",
        b"\n\nName: a\nVersion: 1\n",  # headers end at the first blank line
        b"Name: has space\nVersion: 1\n",
        b"\x00\x01\x02\xff",
    ],
)
def test_metadata_malformed(data: bytes) -> None:
    with pytest.raises(AnalyzerError):
        run("site-packages/x.dist-info/METADATA", data)


def test_metadata_invalid_utf8_is_tolerated_in_values() -> None:
    [pkg] = run("site-packages/x.dist-info/METADATA", b"Name: a\nVersion: 1\nAuthor: \xff\xfe\n")
    assert (pkg.name, pkg.version) == ("a", "1")


# --- requirements files ------------------------------------------------------------------------


def test_generated_requirements_with_hashes() -> None:
    packages = by_key(run("app/requirements.txt", (GENERATED / "requirements.txt").read_bytes()))
    assert set(packages) == {
        ("iniconfig", "2.0.0"),
        ("jinja2", "3.1.2"),
        ("markupsafe", "3.0.4"),
        ("six", "1.16.0"),
        ("typing-extensions", "4.9.0"),
    }
    assert all(p.metadata == {} for p in packages.values())


REQUIREMENTS = r"""
# a comment line
-r base.txt
--requirement other.txt
-c constraints.txt
-i https://example.invalid/simple
--extra-index-url https://example.invalid/extra
-e git+https://example.invalid/owner/repo.git#egg=editable
-e .
./vendor/local-1.0.tar.gz
https://example.invalid/pkg-1.0.tar.gz
pkg-at-url @ https://example.invalid/pkg-at-url-2.0.whl

Django==4.2.7  # trailing comment
requests[socks,security] == 2.31.0
urllib3==1.26.18 ; python_version < "3.10"
idna==3.6; python_version >= "3"  --hash=sha256:aaaa
PyYAML===6.0.1
flask>=2.0
numpy~=1.26
click==8.*
bad name==1.0
zope.interface==6.1 \
    --hash=sha256:bbbb \
    --hash=sha256:cccc
charset_normalizer==3.3.2\
    --hash=sha256:dddd
attrs==23.1.0 # attrs is pinned
pinned-twice==1.0
Pinned_Twice==1.0
fragment-url @ https://example.invalid/x.tgz#sha256=1 # not a pin
"""


def test_requirements_edge_cases() -> None:
    assert parse_requirements(REQUIREMENTS) == [
        ("Django", "4.2.7"),
        ("requests", "2.31.0"),
        ("urllib3", "1.26.18"),
        ("idna", "3.6"),
        ("PyYAML", "6.0.1"),
        ("zope.interface", "6.1"),
        ("charset_normalizer", "3.3.2"),
        ("attrs", "23.1.0"),
        ("pinned-twice", "1.0"),
        ("Pinned_Twice", "1.0"),
    ]
    packages = run("app/requirements.txt", REQUIREMENTS)
    # the two spellings of one project are one package, under the first declared name
    assert [p.name for p in packages if normalize(p.name) == "pinned-twice"] == ["pinned-twice"]
    purls = {p.purl for p in packages}
    assert "pkg:pypi/zope-interface@6.1" in purls
    assert "pkg:pypi/charset-normalizer@3.3.2" in purls


def test_requirements_garbage_is_empty() -> None:
    assert run("requirements.txt", b"\xff\xfe\x00garbage==\n==1.0\n\\\n") == []


# --- lockfiles ---------------------------------------------------------------------------------

PROJECT = {
    ("iniconfig", "2.0.0"),
    ("jinja2", "3.1.2"),
    ("markupsafe", "3.0.4"),
    ("six", "1.16.0"),
    ("typing-extensions", "4.9.0"),
}


def test_generated_uv_lock() -> None:
    packages = by_key(run("app/uv.lock", (GENERATED / "uv.lock").read_bytes()))
    assert set(packages) == PROJECT  # the virtual project root is not a release
    assert packages[("jinja2", "3.1.2")].metadata == {"requires": ["markupsafe"]}
    assert packages[("jinja2", "3.1.2")].purl == "pkg:pypi/jinja2@3.1.2"


def test_generated_pipfile_lock() -> None:
    packages = by_key(run("app/Pipfile.lock", (GENERATED / "Pipfile.lock").read_bytes()))
    assert set(packages) == PROJECT
    assert packages[("iniconfig", "2.0.0")].metadata == {"dev": True}
    assert packages[("six", "1.16.0")].metadata == {}


def test_pipfile_lock_skips_unpinned_and_odd_entries() -> None:
    doc = {
        "default": {
            "ok": {"version": "==1.0"},
            "vcs": {"git": "https://example.invalid/x.git", "ref": "abc"},
            "editable": {"editable": True, "path": "."},
            "numeric": {"version": 1.0},
            "listy": ["==1.0"],
            "ranged": {"version": ">=1.0"},
        },
        "develop": {"ok": {"version": "==1.0"}, "tool": {"version": "===2.0"}},
    }
    packages = by_key(run("Pipfile.lock", json.dumps(doc)))
    assert set(packages) == {("ok", "1.0"), ("tool", "2.0")}
    # listed in both sections, so it is not dev-only
    assert packages[("ok", "1.0")].metadata == {}
    assert packages[("tool", "2.0")].metadata == {"dev": True}


def test_poetry_lock() -> None:
    packages = by_key(run("app/poetry.lock", (HANDWRITTEN / "poetry.lock").read_bytes()))
    assert set(packages) == {
        ("Jinja2", "3.1.2"),
        ("markupsafe", "3.0.4"),
        ("pytest", "8.0.0"),
        ("iniconfig", "2.0.0"),
        ("zope.interface", "6.1"),
        ("from-git", "1.4.0"),
    }
    assert packages[("Jinja2", "3.1.2")].metadata == {"requires": ["markupsafe"]}
    assert packages[("Jinja2", "3.1.2")].purl == "pkg:pypi/jinja2@3.1.2"
    assert packages[("pytest", "8.0.0")].metadata == {"requires": ["colorama", "iniconfig", "pluggy"], "dev": True}
    assert packages[("iniconfig", "2.0.0")].metadata == {"dev": True}
    assert packages[("zope.interface", "6.1")].purl == "pkg:pypi/zope-interface@6.1"
    assert packages[("zope.interface", "6.1")].metadata == {"requires": ["setuptools"]}


def test_uv_lock_edge_cases() -> None:
    packages = by_key(run("uv.lock", (HANDWRITTEN / "uv.edge.lock").read_bytes()))
    assert set(packages) == {
        ("attrs", "23.2.0"),
        ("numpy", "1.26.4"),
        ("numpy", "2.0.0"),
        ("from-git", "0.5.0"),
        ("local-wheel", "1.0.0"),
    }
    assert packages[("from-git", "0.5.0")].metadata == {"requires": ["attrs", "typing-extensions"]}


@pytest.mark.parametrize("name", ["poetry.lock", "uv.lock"])
@pytest.mark.parametrize(
    "data",
    [
        b"[[package]\nname = 'x'",
        b"\xff\xfe",
        b"a = " + b"[" * 5000 + b"]" * 5000,
        b"package = 'not a list'\n",
        b"[[package]]\nname = 1\nversion = 2\n[[package]]\nname = 'ok'\nversion = '1'\ndependencies = 'x'\n",
    ],
)
def test_toml_lockfiles_hostile(name: str, data: bytes) -> None:
    try:
        packages = run(name, data)
    except AnalyzerError:
        return
    assert [(p.name, p.version) for p in packages] in ([], [("ok", "1")])


@pytest.mark.parametrize("data", [b"{", b"[]", b'"x"', b"\xff"])
def test_pipfile_lock_malformed(data: bytes) -> None:
    with pytest.raises(AnalyzerError):
        run("Pipfile.lock", data)


# --- hostile bytes never escape as anything but AnalyzerError ----------------------------------

_PATHS = [
    "site-packages/x.dist-info/METADATA",
    "x.egg-info",
    "requirements.txt",
    "poetry.lock",
    "uv.lock",
    "Pipfile.lock",
]


def _seeds() -> list[bytes]:
    return [p.read_bytes()[:3000] for p in sorted(FIXTURES.rglob("*")) if p.is_file()]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_fuzz_only_analyzer_error(data: st.DataObject) -> None:
    facts = check_spliced_seed(analyzer, [("", seed) for seed in _seeds()], data, paths=_PATHS)
    for fact in facts:
        assert fact.purl.startswith("pkg:pypi/")
