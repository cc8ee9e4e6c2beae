from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hullguard.inventory.base import AnalyzerError, FileInfo
from hullguard.inventory.ruby import RubyAnalyzer
from hullguard.model import Package
from tests.inventory._fuzz import check_spliced_seed

FIXTURES = Path(__file__).parent / "fixtures" / "ruby"
GEMS = "usr/local/lib/ruby/gems/3.2.0/specifications"


def run(path: str, data: bytes) -> list[Package]:
    facts = list(RubyAnalyzer().analyze(FileInfo(path), data))
    assert all(isinstance(f, Package) for f in facts)
    return facts  # type: ignore[return-value]


def spec(filename: str, directory: str = GEMS) -> Package:
    pkgs = run(f"{directory}/{filename}", (FIXTURES / filename).read_bytes())
    assert len(pkgs) == 1
    return pkgs[0]


def gemspec(body: str) -> list[Package]:
    return run(f"{GEMS}/x.gemspec", body.encode())


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (f"{GEMS}/rack-3.0.8.gemspec", True),
        (f"{GEMS}/default/openssl-3.1.0.gemspec", True),
        ("specifications/rack-3.0.8.gemspec", True),
        ("var/lib/gems/3.0.0/specifications/rack-3.0.8.gemspec", True),
        # A gem's own source tree carries a hand-written gemspec, not an installed one.
        ("usr/local/lib/ruby/gems/3.2.0/gems/rack-3.0.8/rack.gemspec", False),
        ("srv/app/myspecifications/x.gemspec", False),
        (f"{GEMS}/rack-3.0.8.gemspec.bak", False),
        ("srv/app/Gemfile.lock", True),
        ("Gemfile.lock", True),
        ("srv/app/Gemfile", False),
        ("srv/app/MyGemfile.lock", False),
    ],
)
def test_wants(path: str, expected: bool) -> None:
    assert RubyAnalyzer().wants(FileInfo(path)) is expected


def test_modern_generated_gemspec() -> None:
    rack = spec("rack-3.0.8.gemspec")
    assert (rack.name, rack.version, rack.ecosystem) == ("rack", "3.0.8", "gem")
    assert rack.purl == "pkg:gem/rack@3.0.8"
    assert rack.licenses == ["MIT"]
    assert rack.found_by == "ruby"
    assert rack.metadata["homepage"] == "https://github.com/rack/rack"
    assert rack.metadata["authors"] == ["Leah Neukirchen"]
    assert rack.metadata["summary"] == "A modular Ruby webserver interface."
    # Development dependencies are not part of what the installed gem needs.
    assert "requires" not in rack.metadata
    assert "platform" not in rack.metadata


def test_native_gem_platform_and_runtime_dependencies() -> None:
    noko = spec("nokogiri-1.15.4-x86_64-linux.gemspec")
    assert noko.version == "1.15.4"
    assert noko.metadata["platform"] == "x86_64-linux"
    assert noko.purl == "pkg:gem/nokogiri@1.15.4?platform=x86_64-linux"
    assert noko.metadata["requires"] == ["racc"]
    assert noko.metadata["authors"] == ["Mike Dalessio", "Aaron Patterson", "Yoko Harada"]
    assert noko.metadata["summary"].startswith("Nokogiri (\u92f8) makes")


def test_old_style_gemspec() -> None:
    js = spec("json-1.8.6.gemspec")
    assert (js.name, js.version) == ("json", "1.8.6")
    assert js.licenses == ["Ruby"]
    assert js.metadata["homepage"] == "http://flori.github.com/json"
    assert js.metadata["requires"] == ["fast_blank", "multi_json"]


def test_default_gem_with_version_object_and_word_list() -> None:
    ssl = spec("openssl-3.1.0.gemspec", f"{GEMS}/default")
    assert (ssl.name, ssl.version) == ("openssl", "3.1.0")
    assert ssl.licenses == ["Ruby", "BSD-2-Clause"]
    assert ssl.metadata["default_gem"] is True


@pytest.mark.parametrize(
    ("rhs", "expected"),
    [
        ('"1.0"', "1.0"),
        ("'1.0'", "1.0"),
        ('"1.0".freeze', "1.0"),
        ("'1.0' .freeze", "1.0"),
        ("%q{1.0}", "1.0"),
        ("%q<1.0>", "1.0"),
        ("%Q(1.0)", "1.0"),
        ("%(1.0)", "1.0"),
        ('Gem::Version.new("1.0")', "1.0"),
        ("Gem::Version.new( '1.0'.freeze )", "1.0"),
    ],
)
def test_string_literal_spellings(rhs: str, expected: str) -> None:
    pkgs = gemspec(f'Gem::Specification.new do |spec|\n  spec.name = "g"\n  spec.version = {rhs}\nend\n')
    assert [(p.name, p.version) for p in pkgs] == [("g", expected)]


@pytest.mark.parametrize(
    ("rhs", "expected"),
    [
        ('["MIT", "Apache-2.0"]', ["MIT", "Apache-2.0"]),
        ("['MIT'.freeze , \"GPL-2.0\".freeze]", ["MIT", "GPL-2.0"]),
        ("%w[MIT Apache-2.0]", ["MIT", "Apache-2.0"]),
        ("%w(MIT)", ["MIT"]),
        ("[]", []),
        ('["MIT", SOME_CONSTANT]', []),
        ("license_list()", []),
    ],
)
def test_license_list_spellings(rhs: str, expected: list[str]) -> None:
    body = f'Gem::Specification.new do |s|\n s.name = "g"\n s.version = "1"\n s.licenses = {rhs}\nend\n'
    assert gemspec(body)[0].licenses == expected


def test_escapes_in_double_quoted_strings() -> None:
    body = (
        "Gem::Specification.new do |s|\n"
        '  s.name = "g"\n  s.version = "1"\n'
        '  s.summary = "a \\"b\\" \\\\ \\u00e9 \\u{1F600} \\ud800 \\x41\\n"\n'
        "  s.homepage = 'it\\'s \\n'\n"
        "end\n"
    )
    pkg = gemspec(body)[0]
    assert pkg.metadata["summary"] == 'a "b" \\ \u00e9 \U0001f600 \ufffd A\n'
    assert pkg.metadata["homepage"] == "it's \\n"


def test_hand_written_gemspec_without_literal_version_falls_back_to_stub_or_nothing() -> None:
    body = 'Gem::Specification.new do |spec|\n  spec.name = "mygem"\n  spec.version = MyGem::VERSION\nend\n'
    assert gemspec(body) == []
    with_stub = "# stub: mygem 2.0.1 java lib\n" + body
    pkg = gemspec(with_stub)[0]
    assert (pkg.name, pkg.version, pkg.metadata["platform"]) == ("mygem", "2.0.1", "java")
    assert pkg.purl == "pkg:gem/mygem@2.0.1?platform=java"


def test_only_the_specification_block_variable_counts() -> None:
    body = (
        'other.version = "9.9"\n'
        "Gem::Specification.new do |spec|\n"
        '  spec.name = "real"\n  other.version = "0.0"\n  spec.version = "1.2.3"\nend\n'
    )
    pkg = gemspec(body)[0]
    assert (pkg.name, pkg.version) == ("real", "1.2.3")


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"puts 'hello'\n",
        b'Gem::Specification.new do |s|\n  s.name = "unterminated\n  s.version = "1.0\nend\n',
        b'Gem::Specification.new do |s|\n  s.name = ""\n  s.version = "1"\nend\n',
        b'Gem::Specification.new do |s|\n  s.name = "x"\n  s.version = '
        + b"Gem::Version.new(" * 50000
        + b'"1"'
        + b")" * 50000
        + b"\nend\n",
    ],
)
def test_gemspecs_without_a_package_yield_nothing(body: bytes) -> None:
    assert run(f"{GEMS}/x.gemspec", body) == []


@pytest.mark.parametrize(
    "tail",
    [
        b's.name = "' * 200_000,
        b"\n" * 2_000_000,
        b" \t" * 1_000_000,
        b's.add_dependency("' * 200_000,
        b"\n".join([b's.name = "unterminated'] * 200_000),
    ],
)
def test_huge_hostile_gemspec_stays_linear(tail: bytes) -> None:
    # Each of these took minutes with a reader that rescanned to the end of the file.
    assert run(f"{GEMS}/x.gemspec", b"Gem::Specification.new do |s|\n" + tail + b"\nend\n") == []


@pytest.mark.parametrize("data", [b"\xff\xfe\x00s", b"Gem::Specification.new do |s|\x00"])
def test_undecodable_gemspec_raises(data: bytes) -> None:
    with pytest.raises(AnalyzerError):
        run(f"{GEMS}/x.gemspec", data)


# ---- Gemfile.lock --------------------------------------------------------------------------


def lock() -> dict[str, Package]:
    pkgs = run("srv/app/Gemfile.lock", (FIXTURES / "Gemfile.lock").read_bytes())
    names = [p.name for p in pkgs]
    assert len(names) == len(set(names)), names
    return {p.name: p for p in pkgs}


def test_gemfile_lock_packages() -> None:
    pkgs = lock()
    assert set(pkgs) == {
        "tiny_auth", "billing", "actionpack", "actionview", "activesupport", "concurrent-ruby",
        "mini_portile2", "nokogiri", "racc", "rack", "rails", "sqlite3",
    }  # fmt: skip
    rack = pkgs["rack"]
    assert (rack.version, rack.ecosystem, rack.purl) == ("2.2.8", "gem", "pkg:gem/rack@2.2.8")
    assert rack.metadata == {"remote": "https://rubygems.org/"}
    assert pkgs["actionpack"].metadata["requires"] == ["actionview", "activesupport", "rack"]
    assert pkgs["actionview"].found_by == "ruby"


def test_gemfile_lock_platforms() -> None:
    pkgs = lock()
    sqlite = pkgs["sqlite3"]
    assert sqlite.version == "1.6.6"
    assert sqlite.metadata["platform"] == "x86_64-linux"
    assert sqlite.purl == "pkg:gem/sqlite3@1.6.6?platform=x86_64-linux"
    # Three builds of one release merge into one package; no single platform can be claimed.
    noko = pkgs["nokogiri"]
    assert noko.version == "1.15.4"
    assert noko.metadata["platforms"] == ["ruby", "arm64-darwin", "x86_64-linux"]
    assert noko.purl == "pkg:gem/nokogiri@1.15.4"
    assert noko.metadata["requires"] == ["mini_portile2", "racc"]


def test_gemfile_lock_git_and_path_sources() -> None:
    pkgs = lock()
    git = pkgs["tiny_auth"]
    assert git.version == "0.4.0.pre"
    assert git.metadata["source"] == "git"
    assert git.metadata["revision"] == "5f1c0a9d2c7e4b1f9a8e3d6c5b4a39281706f5e4"
    assert git.metadata["branch"] == "main"
    assert "local" not in git.metadata
    billing = pkgs["billing"]
    assert billing.metadata["local"] is True
    assert billing.metadata["source"] == "path"
    assert billing.metadata["remote"] == "engines/billing"
    assert billing.metadata["requires"] == ["rails", "tiny_auth"]


def test_gemfile_lock_ignores_non_source_sections() -> None:
    data = (
        b"DEPENDENCIES\n  rails (~> 7.0)\n    fake (1.0)\n\n"
        b"CHECKSUMS\n    fake2 (1.0) sha256=00\n\nBUNDLED WITH\n   2.4.19\n"
    )
    assert run("Gemfile.lock", data) == []


def test_gemfile_lock_oddities() -> None:
    data = (
        "\ufeffGEM\r\n  remote: https://rubygems.org/\r\n  specs:\r\n"
        "    ok (1.0)\r\n"
        "    noversion\r\n"
        "      orphan (>= 1)\r\n"
        "    empty ()\r\n"
        "    weird name (1.0)\r\n"
        "    ok (1.0)\r\n"
        "      dup-dep\r\n"
        "\tgarbage\r\n"
    ).encode()
    pkgs = run("Gemfile.lock", data)
    assert [(p.name, p.version) for p in pkgs] == [("ok", "1.0")]
    assert pkgs[0].metadata["requires"] == ["dup-dep"]


def test_gemfile_lock_invalid_utf8_raises() -> None:
    with pytest.raises(AnalyzerError):
        run("Gemfile.lock", b"GEM\n  specs:\n    \xff (1.0)\n")


def test_gemfile_lock_many_gems() -> None:
    lines = ["GEM", "  remote: https://rubygems.org/", "  specs:"]
    lines += [f"    gem{i} (1.{i})\n      gem{i + 1} (>= 0)" for i in range(30000)]
    pkgs = run("Gemfile.lock", "\n".join(lines).encode())
    assert len(pkgs) == 30000
    assert pkgs[-1].metadata["requires"] == ["gem30000"]


SEEDS = [(f"{GEMS}/{f.name}", f.read_bytes()) for f in sorted(FIXTURES.glob("*.gemspec"))] + [
    ("a/Gemfile.lock", (FIXTURES / "Gemfile.lock").read_bytes())
]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_hostile_bytes_only_raise_analyzer_error(data: st.DataObject) -> None:
    check_spliced_seed(RubyAnalyzer(), SEEDS, data)


def test_stub_header_alone_is_enough() -> None:
    pkgs = gemspec("# stub: lonely 0.1.0 ruby lib\n")
    assert [(p.name, p.version, p.purl) for p in pkgs] == [("lonely", "0.1.0", "pkg:gem/lonely@0.1.0")]
    assert pkgs[0].metadata == {}


def test_gemfile_lock_hostile_repeats_stay_linear() -> None:
    deps = "".join(f"      d{i % 40000} (>= 0)\n" for i in range(200_000))
    data = f"GEM\n  specs:\n    x (1.0)\n{deps}".encode()
    (pkg,) = run("Gemfile.lock", data)
    assert len(pkg.metadata["requires"]) == 40000
