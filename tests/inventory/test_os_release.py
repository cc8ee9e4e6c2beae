from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hullguard.inventory.base import AnalyzerError, FileInfo
from hullguard.inventory.os_release import (
    WANTED_PATHS,
    OSReleaseAnalyzer,
    parse_os_release,
    pick_os,
)
from hullguard.model import OSInfo

FIXTURES = Path(__file__).parent / "fixtures" / "os"


def analyze(path: str, text: str | bytes) -> list[OSInfo]:
    data = text.encode() if isinstance(text, str) else text
    facts = list(OSReleaseAnalyzer().analyze(FileInfo(path), data))
    assert all(isinstance(f, OSInfo) for f in facts)
    return facts  # type: ignore[return-value]


def one(path: str, text: str | bytes) -> OSInfo:
    facts = analyze(path, text)
    assert len(facts) == 1, facts
    return facts[0]


# --- wants -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "etc/os-release",
        "usr/lib/os-release",
        "etc/alpine-release",
        "etc/redhat-release",
        "etc/centos-release",
        "etc/rocky-release",
        "etc/almalinux-release",
        "etc/fedora-release",
        "etc/system-release",
        "etc/oracle-release",
        "etc/photon-release",
        "etc/debian_version",
        "etc/lsb-release",
        "etc/SuSE-release",
    ],
)
def test_wants_release_files(path: str) -> None:
    assert OSReleaseAnalyzer().wants(FileInfo(path))


@pytest.mark.parametrize(
    "path",
    [
        "os-release",
        "/etc/os-release",
        "etc/os-release.bak",
        "usr/etc/os-release",
        "opt/app/etc/os-release",
        "etc/os-release/x",
        "etc/redhat-release.rpmnew",
        "etc/debian_version.dpkg-old",
        "etc/system-release-cpe",
    ],
)
def test_does_not_want_lookalikes(path: str) -> None:
    assert not OSReleaseAnalyzer().wants(FileInfo(path))


# --- os-release(5) syntax -----------------------------------------------------------------------


def test_quoting_rules_from_the_spec() -> None:
    text = (
        "# a comment line\n"
        "\n"
        "   \n"
        "PLAIN=debian\n"
        'DOUBLE="Debian GNU/Linux"\n'
        "SINGLE='it is $HOME'\n"
        'ESCAPED="say \\"hi\\" for \\$5 \\\\ and \\`date\\`"\n'
        'KEEP_BACKSLASH="a\\qb"\n'
        "UNQUOTED_ESCAPE=a\\ b\n"
        'EMPTY=""\n'
        "NOTHING=\n"
        '  INDENTED="x"\n'
        "TRAILING=value   \n"
        'QUOTED_SPACE="  padded  "\n'
    )
    fields = parse_os_release(text)
    assert fields == {
        "PLAIN": "debian",
        "DOUBLE": "Debian GNU/Linux",
        "SINGLE": "it is $HOME",
        "ESCAPED": 'say "hi" for $5 \\ and `date`',
        "KEEP_BACKSLASH": "a\\qb",
        "UNQUOTED_ESCAPE": "a b",
        "EMPTY": "",
        "NOTHING": "",
        "INDENTED": "x",
        "TRAILING": "value",
        "QUOTED_SPACE": "  padded  ",
    }


def test_single_quotes_take_backslashes_literally() -> None:
    assert parse_os_release("A='C:\\path\\n'\n") == {"A": "C:\\path\\n"}


def test_quoted_value_may_span_lines_and_backslash_newline_continues() -> None:
    fields = parse_os_release('A="one\ntwo"\nB=x\\\ny\nC=3\n')
    assert fields == {"A": "one\ntwo", "B": "xy", "C": "3"}


def test_invalid_lines_are_skipped_not_fatal() -> None:
    text = "this is not an assignment\n1BAD=x\nBAD-KEY=y\n=novalue\nID=alpine\n"
    assert parse_os_release(text) == {"ID": "alpine"}


def test_unterminated_quote_loses_only_that_assignment() -> None:
    fields = parse_os_release('ID=fedora\nNAME="Fedora\nVERSION_ID=39\n')
    assert fields == {"ID": "fedora", "VERSION_ID": "39"}


def test_later_assignment_wins_like_in_a_shell() -> None:
    assert parse_os_release("ID=a\nID=b\n") == {"ID": "b"}


def test_crlf_line_endings() -> None:
    text = (FIXTURES / "debian12.os-release").read_text().replace("\n", "\r\n")
    info = one("etc/os-release", text)
    assert (info.family, info.release, info.codename) == ("debian", "12", "bookworm")
    assert info.name == "Debian GNU/Linux 12 (bookworm)"


# --- os-release contents of real distros --------------------------------------------------------


def test_debian_fixture() -> None:
    info = one("etc/os-release", (FIXTURES / "debian12.os-release").read_text())
    assert info == OSInfo(family="debian", release="12", codename="bookworm", name="Debian GNU/Linux 12 (bookworm)")


def test_ubuntu_fixture() -> None:
    info = one("usr/lib/os-release", (FIXTURES / "ubuntu2204.os-release").read_text())
    assert info.family == "ubuntu"
    assert info.release == "22.04"
    assert info.codename == "jammy"
    assert info.id_like == ["debian"]
    assert info.name == "Ubuntu 22.04.3 LTS"


def test_rocky_fixture() -> None:
    info = one("etc/os-release", (FIXTURES / "rocky93.os-release").read_text())
    assert info.family == "rocky"
    assert info.release == "9.3"
    assert info.id_like == ["rhel", "centos", "fedora"]
    assert info.cpe == "cpe:/o:rocky:rocky:9::baseos"
    # Only Debian-like distros get a codename derived from VERSION.
    assert info.codename == ""


def test_distroless_is_recognised() -> None:
    info = one("etc/os-release", (FIXTURES / "distroless.os-release").read_text())
    assert info.distroless is True
    assert (info.family, info.release, info.codename) == ("debian", "12", "bookworm")
    assert info.name == "Distroless"


def test_plain_debian_is_not_distroless() -> None:
    assert one("etc/os-release", (FIXTURES / "debian12.os-release").read_text()).distroless is False


OS_RELEASES: list[tuple[str, str, tuple[str, str, str]]] = [
    (
        "ubuntu-trusty",
        'NAME="Ubuntu"\nVERSION="14.04.6 LTS, Trusty Tahr"\nID=ubuntu\nID_LIKE=debian\n'
        'PRETTY_NAME="Ubuntu 14.04.6 LTS"\nVERSION_ID="14.04"\n',
        ("ubuntu", "14.04", "trusty"),
    ),
    (
        "ubuntu-focal-no-version-codename",
        'NAME="Ubuntu"\nVERSION="20.04.6 LTS (Focal Fossa)"\nID=ubuntu\nID_LIKE=debian\nVERSION_ID="20.04"\n',
        ("ubuntu", "20.04", "focal"),
    ),
    (
        "debian-testing",
        'PRETTY_NAME="Debian GNU/Linux trixie/sid"\nNAME="Debian GNU/Linux"\nVERSION_CODENAME=trixie\nID=debian\n',
        ("debian", "", "trixie"),
    ),
    (
        "alpine",
        'NAME="Alpine Linux"\nID=alpine\nVERSION_ID=3.19.1\nPRETTY_NAME="Alpine Linux v3.19"\n'
        'HOME_URL="https://alpinelinux.org/"\n',
        ("alpine", "3.19.1", ""),
    ),
    (
        "ubi9",
        'NAME="Red Hat Enterprise Linux"\nVERSION="9.3 (Plow)"\nID="rhel"\nID_LIKE="fedora"\n'
        'VERSION_ID="9.3"\nPLATFORM_ID="platform:el9"\nPRETTY_NAME="Red Hat Enterprise Linux 9.3 (Plow)"\n'
        'CPE_NAME="cpe:/o:redhat:enterprise_linux:9::baseos"\n',
        ("rhel", "9.3", ""),
    ),
    (
        "centos7",
        'NAME="CentOS Linux"\nVERSION="7 (Core)"\nID="centos"\nID_LIKE="rhel fedora"\nVERSION_ID="7"\n'
        'PRETTY_NAME="CentOS Linux 7 (Core)"\nCPE_NAME="cpe:/o:centos:centos:7"\n',
        ("centos", "7", ""),
    ),
    (
        "almalinux",
        'NAME="AlmaLinux"\nVERSION="9.3 (Shamrock Pampas Cat)"\nID="almalinux"\nID_LIKE="rhel centos fedora"\n'
        'VERSION_ID="9.3"\nPRETTY_NAME="AlmaLinux 9.3 (Shamrock Pampas Cat)"\n',
        ("almalinux", "9.3", ""),
    ),
    (
        "fedora-container",
        'NAME="Fedora Linux"\nVERSION="39 (Container Image)"\nID=fedora\nVERSION_ID=39\nVERSION_CODENAME=""\n'
        'PRETTY_NAME="Fedora Linux 39 (Container Image)"\nVARIANT_ID=container\n',
        ("fedora", "39", ""),
    ),
    (
        "amazonlinux2",
        'NAME="Amazon Linux"\nVERSION="2"\nID="amzn"\nID_LIKE="centos rhel fedora"\nVERSION_ID="2"\n'
        'PRETTY_NAME="Amazon Linux 2"\nCPE_NAME="cpe:2.3:o:amazon:amazon_linux:2"\n',
        ("amzn", "2", ""),
    ),
    (
        "oraclelinux8",
        'NAME="Oracle Linux Server"\nVERSION="8.9"\nID="ol"\nID_LIKE="fedora"\nVERSION_ID="8.9"\n'
        'PRETTY_NAME="Oracle Linux Server 8.9"\n',
        ("ol", "8.9", ""),
    ),
    (
        "sles15",
        'NAME="SLES"\nVERSION="15-SP5"\nVERSION_ID="15.5"\nPRETTY_NAME="SUSE Linux Enterprise Server 15 SP5"\n'
        'ID="sles"\nID_LIKE="suse"\nCPE_NAME="cpe:/o:suse:sles:15:sp5"\n',
        ("sles", "15.5", ""),
    ),
    (
        "opensuse-leap",
        'NAME="openSUSE Leap"\nVERSION="15.5"\nID="opensuse-leap"\nID_LIKE="suse opensuse"\n'
        'VERSION_ID="15.5"\nPRETTY_NAME="openSUSE Leap 15.5"\n',
        ("opensuse-leap", "15.5", ""),
    ),
    (
        "photon",
        'NAME="VMware Photon OS"\nVERSION="5.0"\nID=photon\nVERSION_ID=5.0\nPRETTY_NAME="VMware Photon OS/Linux"\n',
        ("photon", "5.0", ""),
    ),
    (
        "wolfi",
        'ID=wolfi\nNAME="Wolfi"\nPRETTY_NAME="Wolfi"\nVERSION_ID="20230201"\nHOME_URL="https://wolfi.dev"\n',
        ("wolfi", "20230201", ""),
    ),
]


@pytest.mark.parametrize(("text", "expected"), [(t, e) for _, t, e in OS_RELEASES], ids=[i for i, _, _ in OS_RELEASES])
def test_distro_os_release(text: str, expected: tuple[str, str, str]) -> None:
    info = one("etc/os-release", text)
    assert (info.family, info.release, info.codename) == expected
    assert info.distroless is False


def test_id_is_lowercased_and_missing_pretty_name_is_composed() -> None:
    info = one("etc/os-release", 'ID=Debian\nNAME="Debian GNU/Linux"\nVERSION="12 (bookworm)"\n')
    assert info.family == "debian"
    assert info.name == "Debian GNU/Linux 12 (bookworm)"
    assert info.codename == "bookworm"


# --- legacy release files ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "text", "expected"),
    [
        ("etc/rocky-release", "Rocky Linux release 9.3 (Blue Onyx)\n", ("rocky", "9.3", "blue onyx")),
        ("etc/redhat-release", "Rocky Linux release 9.3 (Blue Onyx)\n", ("rocky", "9.3", "blue onyx")),
        (
            "etc/redhat-release",
            "Red Hat Enterprise Linux release 8.9 (Ootpa)\n",
            ("rhel", "8.9", "ootpa"),
        ),
        ("etc/centos-release", "CentOS Linux release 7.9.2009 (Core)\n", ("centos", "7.9.2009", "")),
        ("etc/centos-release", "CentOS Stream release 9\n", ("centos", "9", "")),
        (
            "etc/almalinux-release",
            "AlmaLinux release 9.3 (Shamrock Pampas Cat)\n",
            ("almalinux", "9.3", "shamrock pampas cat"),
        ),
        ("etc/fedora-release", "Fedora release 39 (Thirty Nine)\n", ("fedora", "39", "thirty nine")),
        ("etc/system-release", "Amazon Linux release 2 (Karoo)\n", ("amzn", "2", "")),
        (
            "etc/system-release",
            "Amazon Linux release 2023.3.20240131 (Amazon Linux)\n",
            ("amzn", "2023.3.20240131", ""),
        ),
        ("etc/system-release", "Amazon Linux AMI release 2018.03\n", ("amzn", "2018.03", "")),
        ("etc/oracle-release", "Oracle Linux Server release 8.9\n", ("ol", "8.9", "")),
        ("etc/photon-release", "VMware Photon OS 4.0\nPHOTON_BUILD_NUMBER=1526e30ba\n", ("photon", "4.0", "")),
        (
            "etc/SuSE-release",
            "SUSE Linux Enterprise Server 12 (x86_64)\nVERSION = 12\nPATCHLEVEL = 5\n",
            ("sles", "12.5", ""),
        ),
        ("etc/redhat-release", "\n\nRed Hat Enterprise Linux Server release 7.9 (Maipo)\r\n", ("rhel", "7.9", "maipo")),
    ],
)
def test_release_files(path: str, text: str, expected: tuple[str, str, str]) -> None:
    info = one(path, text)
    assert (info.family, info.release, info.codename) == expected
    assert info.name == text.strip().splitlines()[0].strip()


def test_release_file_of_unknown_distro_gives_nothing() -> None:
    assert analyze("etc/system-release", "Some Home-made OS 1.0\n") == []
    # A RHEL rebuild we do not know is not RHEL, whatever the file is called.
    assert analyze("etc/redhat-release", "EuroLinux release 9.3 (Minsk)\n") == []
    # Files named after one distro still say which one when the text is unfamiliar.
    assert one("etc/rocky-release", "Rocky release 9.4\n").family == "rocky"


def test_empty_release_file_gives_nothing() -> None:
    assert analyze("etc/redhat-release", "") == []
    assert analyze("etc/alpine-release", "\n") == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("12.11\n", ("12.11", "")),
        ("trixie/sid\n", ("", "trixie")),
        ("bookworm/sid", ("", "bookworm")),
        ("11.0", ("11.0", "")),
    ],
)
def test_debian_version(text: str, expected: tuple[str, str]) -> None:
    info = one("etc/debian_version", text)
    assert info.family == "debian"
    assert (info.release, info.codename) == expected


def test_alpine_release() -> None:
    info = one("etc/alpine-release", "3.19.1\n")
    assert (info.family, info.release) == ("alpine", "3.19.1")
    assert analyze("etc/alpine-release", "not a version\n") == []


def test_lsb_release() -> None:
    text = (
        'DISTRIB_ID=Ubuntu\nDISTRIB_RELEASE=22.04\nDISTRIB_CODENAME=jammy\nDISTRIB_DESCRIPTION="Ubuntu 22.04.3 LTS"\n'
    )
    info = one("etc/lsb-release", text)
    assert info == OSInfo(family="ubuntu", release="22.04", codename="jammy", name="Ubuntu 22.04.3 LTS")


# --- hostile input ------------------------------------------------------------------------------


def test_binary_data_is_an_analyzer_error() -> None:
    with pytest.raises(AnalyzerError):
        analyze("etc/os-release", b"\x7fELF\x02\x01\x01\x00\x00\x00garbage")


def test_text_without_id_or_name_is_an_analyzer_error() -> None:
    with pytest.raises(AnalyzerError):
        analyze("etc/os-release", "hello world\nthis is not os-release\n")


def test_empty_os_release_gives_nothing() -> None:
    assert analyze("etc/os-release", b"") == []


def test_invalid_utf8_is_replaced_not_fatal() -> None:
    info = one("etc/os-release", b'ID=debian\nPRETTY_NAME="Deb\xff\xfeian"\n')
    assert info.family == "debian"
    assert info.name == "Deb\ufffd\ufffdian"


def test_huge_line_is_handled() -> None:
    text = "ID=alpine\nJUNK=" + "x" * 200_000 + "\nVERSION_ID=3.19.1\n"
    assert one("etc/os-release", text).release == "3.19.1"


def test_many_unterminated_quotes_stay_fast() -> None:

    text = 'X="\n' * 20_000 + "ID=alpine\n"
    info = one("etc/os-release", text)
    assert info.family == "alpine"


@settings(max_examples=200, deadline=None)
@given(path=st.sampled_from(sorted(WANTED_PATHS)), data=st.binary(max_size=2000))
def test_random_bytes_raise_only_analyzer_error(path: str, data: bytes) -> None:
    try:
        facts = list(OSReleaseAnalyzer().analyze(FileInfo(path), data))
    except AnalyzerError:
        return
    assert all(isinstance(f, OSInfo) and f.family for f in facts)


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.sampled_from("AB=\"'\\ \n#x$`\t"), max_size=300))
def test_shell_like_text_never_crashes(text: str) -> None:
    fields = parse_os_release(text)
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in fields.items())


# --- pick_os -------------------------------------------------------------------------------------


def test_pick_os_prefers_etc_os_release() -> None:
    chosen = pick_os(
        [
            ("etc/redhat-release", OSInfo(family="centos", release="7.9.2009")),
            ("usr/lib/os-release", OSInfo(family="rocky", release="9.2")),
            ("etc/os-release", OSInfo(family="rocky", release="9.3")),
        ]
    )
    assert chosen is not None
    assert (chosen.family, chosen.release) == ("rocky", "9.3")


def test_pick_os_falls_back_through_the_priorities() -> None:
    chosen = pick_os(
        [
            ("etc/debian_version", OSInfo(family="debian", release="12.4")),
            ("etc/rocky-release", OSInfo(family="rocky", release="9.3", codename="blue onyx")),
        ]
    )
    assert chosen is not None and chosen.family == "rocky"
    assert pick_os([("etc/debian_version", OSInfo(family="debian", release="12.4"))]) == OSInfo(
        family="debian", release="12.4"
    )
    assert pick_os([]) is None


def test_pick_os_debian_testing_gets_codename_and_release_from_debian_version() -> None:
    testing = one(
        "etc/os-release",
        'PRETTY_NAME="Debian GNU/Linux trixie/sid"\nNAME="Debian GNU/Linux"\nID=debian\n',
    )
    assert testing.release == "" and testing.codename == ""
    chosen = pick_os([("etc/os-release", testing), ("etc/debian_version", one("etc/debian_version", "trixie/sid"))])
    assert chosen is not None
    assert (chosen.family, chosen.codename, chosen.name) == ("debian", "trixie", "Debian GNU/Linux trixie/sid")
    numbered = pick_os([("etc/debian_version", OSInfo(family="debian", release="13.0")), ("etc/os-release", testing)])
    assert numbered is not None and numbered.release == "13.0"


def test_pick_os_keeps_os_release_version_for_debian() -> None:
    # VERSION_ID "12" names the release advisories are tracked against; the point release in
    # debian_version must not replace it.
    chosen = pick_os(
        [
            ("etc/debian_version", one("etc/debian_version", "12.11\n")),
            ("etc/os-release", one("etc/os-release", (FIXTURES / "debian12.os-release").read_text())),
        ]
    )
    assert chosen is not None and chosen.release == "12"


def test_pick_os_alpine_release_refines_short_version_id() -> None:
    chosen = pick_os(
        [
            ("etc/os-release", OSInfo(family="alpine", release="3.19", name="Alpine Linux v3.19")),
            ("etc/alpine-release", OSInfo(family="alpine", release="3.19.1")),
        ]
    )
    assert chosen == OSInfo(family="alpine", release="3.19.1", name="Alpine Linux v3.19")


def test_pick_os_alpine_release_does_not_override_a_different_version() -> None:
    chosen = pick_os(
        [
            ("etc/os-release", OSInfo(family="alpine", release="3.19.1")),
            ("etc/alpine-release", OSInfo(family="alpine", release="3.18.4")),
        ]
    )
    assert chosen is not None and chosen.release == "3.19.1"


def test_pick_os_ignores_other_families_when_filling_gaps() -> None:
    ubuntu = one("etc/os-release", (FIXTURES / "ubuntu2204.os-release").read_text())
    chosen = pick_os(
        [
            ("etc/debian_version", one("etc/debian_version", "bookworm/sid\n")),
            ("etc/os-release", ubuntu),
            ("etc/lsb-release", OSInfo(family="ubuntu", release="22.04", codename="jammy")),
        ]
    )
    assert chosen == ubuntu


def test_pick_os_does_not_mutate_its_input() -> None:
    first = OSInfo(family="alpine", release="3.19")
    pick_os([("etc/os-release", first), ("etc/alpine-release", OSInfo(family="alpine", release="3.19.1"))])
    assert first.release == "3.19"


def test_pick_os_fills_cpe_and_distroless_from_lower_priority_copy() -> None:
    chosen = pick_os(
        [
            ("etc/os-release", OSInfo(family="debian", release="12")),
            ("usr/lib/os-release", OSInfo(family="debian", release="12", cpe="cpe:/o:debian", distroless=True)),
        ]
    )
    assert chosen is not None
    assert chosen.cpe == "cpe:/o:debian" and chosen.distroless is True


def test_this_machine() -> None:
    path = Path("/etc/os-release")
    if not path.exists():
        pytest.skip("no /etc/os-release here")
    info = one("etc/os-release", path.read_bytes())
    fields = parse_os_release(path.read_text())
    assert info.family == fields.get("ID", "linux").lower()
    assert info.release == fields.get("VERSION_ID", "")
