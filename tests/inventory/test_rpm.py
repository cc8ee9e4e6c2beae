from __future__ import annotations

import random
import struct
from collections.abc import Callable

import pytest

from hullguard.inventory.base import AnalyzerError, FileInfo
from hullguard.inventory.rpm import RpmAnalyzer, format_version, split_sourcerpm
from hullguard.inventory.rpmdb import RpmdbError, bdb, ndb, sqlite
from hullguard.inventory.rpmdb import header as h
from hullguard.model import Package, PackageHint
from tests.builders.rpmdb import (
    PkgSpec,
    bdb_hash,
    header_blob,
    ndb_packages,
    package_blob,
    rpm_bdb_items,
    sqlite_rpmdb,
)

SPECS = [
    PkgSpec(
        "bash",
        "5.1.8",
        "6.el9",
        license="GPLv3+",
        vendor="Rocky Enterprise Software Foundation",
        files=["/usr/bin/bash", "/usr/bin/sh", "/usr/share/doc/bash/README"],
    ),
    PkgSpec("openssl-libs", "3.0.7", "27.el9", epoch=1, sourcerpm="openssl-3.0.7-27.el9.src.rpm"),
    PkgSpec("zero-epoch", "2.0", "3", epoch=0, arch="noarch"),
    PkgSpec(
        "nodejs",
        "18.19.0",
        "1.module+el9.3.0+1234+abcd",
        epoch=1,
        modularity_label="nodejs:18:9030020231120:abcd",
        files=["/usr/bin/node"],
        old_filenames=True,
    ),
    PkgSpec("gpg-pubkey", "fd431d51", "4ae0493b", arch="", sourcerpm=""),
]
EXPECTED_NAMES = ["bash", "openssl-libs", "zero-epoch", "nodejs"]


def packages(facts: list) -> dict[str, Package]:
    return {f.name: f for f in facts if isinstance(f, Package)}


def hints(facts: list) -> dict[str, PackageHint]:
    return {f.package: f for f in facts if isinstance(f, PackageHint)}


def analyze(data: bytes, path: str = "var/lib/rpm/rpmdb.sqlite") -> list:
    return list(RpmAnalyzer().analyze(FileInfo(path=path, size=len(data)), data))


def check_specs(facts: list, path: str) -> None:
    pkgs = packages(facts)
    assert list(pkgs) == EXPECTED_NAMES
    assert len(hints(facts)) == len(EXPECTED_NAMES)

    bash = pkgs["bash"]
    assert bash.ecosystem == "rpm"
    assert bash.version == "5.1.8-6.el9"
    assert bash.arch == "x86_64"
    assert (bash.source_name, bash.source_version) == ("bash", "5.1.8-6.el9")
    assert bash.licenses == ["GPLv3+"]
    assert bash.found_by == "rpm"
    assert bash.purl == ""
    assert bash.locations[0].path == path
    assert bash.metadata == {
        "epoch": None,
        "version": "5.1.8",
        "release": "6.el9",
        "vendor": "Rocky Enterprise Software Foundation",
        "modularity_label": "",
        "sourcerpm": "bash-5.1.8-6.el9.src.rpm",
        "size": 1234,
    }
    assert hints(facts)["bash"].files == ["usr/bin/bash", "usr/bin/sh", "usr/share/doc/bash/README"]

    ssl = pkgs["openssl-libs"]
    assert ssl.version == "1:3.0.7-27.el9"
    assert (ssl.source_name, ssl.source_version) == ("openssl", "1:3.0.7-27.el9")
    assert ssl.metadata["epoch"] == 1

    zero = pkgs["zero-epoch"]
    assert zero.version == "2.0-3"
    assert zero.metadata["epoch"] == 0
    assert zero.arch == "noarch"

    node = pkgs["nodejs"]
    assert node.version == "1:18.19.0-1.module+el9.3.0+1234+abcd"
    assert node.metadata["modularity_label"] == "nodejs:18:9030020231120:abcd"
    assert hints(facts)["nodejs"].files == ["usr/bin/node"]


# --- the analyzer contract ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "wanted"),
    [
        ("var/lib/rpm/rpmdb.sqlite", True),
        ("var/lib/rpm/Packages", True),
        ("var/lib/rpm/Packages.db", True),
        ("usr/lib/sysimage/rpm/rpmdb.sqlite", True),
        ("usr/lib/sysimage/rpm/Packages.db", True),
        ("var/lib/rpm/Name", False),
        ("var/lib/rpm/rpmdb.sqlite-wal", False),
        ("opt/var/lib/rpm/Packages", False),
        ("var/lib/rpm/sub/Packages", False),
        ("Packages", False),
    ],
)
def test_wants(path: str, wanted: bool) -> None:
    assert RpmAnalyzer().wants(FileInfo(path=path)) is wanted


def test_analyzer_attributes() -> None:
    assert RpmAnalyzer.name == "rpm"
    assert RpmAnalyzer.max_size >= 200 * 1024 * 1024


def test_unknown_format_is_an_analyzer_error() -> None:
    with pytest.raises(AnalyzerError):
        analyze(b"not a database at all" * 100, "var/lib/rpm/Packages")
    with pytest.raises(AnalyzerError):
        analyze(b"", "var/lib/rpm/Packages")


# --- version strings ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("epoch", "version", "release", "expected"),
    [
        (None, "1.0", "1", "1.0-1"),
        (0, "1.0", "1", "1.0-1"),
        (2, "1.0", "1.el8", "2:1.0-1.el8"),
        (None, "1.0", "", "1.0"),
    ],
)
def test_format_version(epoch: int | None, version: str, release: str, expected: str) -> None:
    assert format_version(epoch, version, release) == expected


@pytest.mark.parametrize(
    ("sourcerpm", "expected"),
    [
        ("bash-5.1.8-6.el9.src.rpm", ("bash", "5.1.8", "6.el9")),
        ("python3-pip-wheel-21.2.3-7.el9.src.rpm", ("python3-pip-wheel", "21.2.3", "7.el9")),
        ("kernel-firmware-1-2.nosrc.rpm", ("kernel-firmware", "1", "2")),
        ("", None),
        ("bash-5.1.8.src.rpm", None),
        ("bash-5.1.8-6.el9.rpm", None),
        ("-1-2.src.rpm", None),
    ],
)
def test_split_sourcerpm(sourcerpm: str, expected: tuple[str, str, str] | None) -> None:
    assert split_sourcerpm(sourcerpm) == expected


def test_unparseable_sourcerpm_leaves_source_empty() -> None:
    data = sqlite_rpmdb([package_blob(PkgSpec("odd", sourcerpm="weird"))])
    pkg = packages(analyze(data))["odd"]
    assert (pkg.source_name, pkg.source_version) == ("", "")
    assert pkg.metadata["sourcerpm"] == "weird"


# --- header blobs ---------------------------------------------------------------------------


@pytest.mark.parametrize("region", [True, False])
def test_header_round_trip(region: bool) -> None:
    blob = header_blob(
        [
            (h.TAG_NAME, h.TYPE_STRING, "tiny"),
            (1100, h.TYPE_INT8, [1, 2, 255]),
            (1101, h.TYPE_INT16, [65535, 7]),
            (h.TAG_SIZE, h.TYPE_INT32, [4000000000]),
            (1102, h.TYPE_INT64, [2**63 + 5]),
            (1103, h.TYPE_STRING_ARRAY, ["a", "", "ünïcode"]),
            (1104, h.TYPE_I18NSTRING, ["C text", "de Text"]),
            (1105, h.TYPE_BIN, b"\x00\x01\x02"),
        ],
        region=region,
    )
    hdr = h.parse_header(blob, tags=None)
    assert hdr.string(h.TAG_NAME) == "tiny"
    assert hdr.ints(1100) == [1, 2, 255]
    assert hdr.ints(1101) == [65535, 7]
    assert hdr.int(h.TAG_SIZE) == 4000000000
    assert hdr.ints(1102) == [2**63 + 5]
    assert hdr.strings(1103) == ["a", "", "ünïcode"]
    assert hdr.string(1104) == "C text"
    assert hdr.strings(h.TAG_NAME) == ["tiny"]
    assert hdr.string(9999) is None and hdr.ints(9999) == [] and hdr.strings(9999) == []
    assert (h.TAG_HEADERIMMUTABLE in hdr.entries) is region


def test_header_wrong_type_is_an_error() -> None:
    hdr = h.parse_header(header_blob([(h.TAG_NAME, h.TYPE_INT32, 5)]), tags=None)
    with pytest.raises(RpmdbError):
        hdr.string(h.TAG_NAME)
    with pytest.raises(RpmdbError):
        h.parse_header(header_blob([(h.TAG_EPOCH, h.TYPE_STRING, "1")]), tags=None).int(h.TAG_EPOCH)


def test_later_entries_override_earlier_ones() -> None:
    # Tags rpm appends after the immutable region on install win over the region's copies.
    blob = header_blob([(h.TAG_NAME, h.TYPE_STRING, "old"), (h.TAG_NAME, h.TYPE_STRING, "new")])
    assert h.read_package(blob).name == "new"


def test_read_package_fields() -> None:
    spec = PkgSpec("x", "1", "2", epoch=3, files=["/a/b", "/a/c", "/d"], modularity_label="m:1")
    pkg = h.read_package(package_blob(spec))
    assert (pkg.name, pkg.version, pkg.release, pkg.epoch) == ("x", "1", "2", 3)
    assert pkg.files == ["/a/b", "/a/c", "/d"]
    assert pkg.modularity_label == "m:1"
    assert pkg.size == 1234


def _intro_and_entries(entries: list[tuple[int, int, int, int]], data: bytes, il: int | None = None) -> bytes:
    out = struct.pack(">II", len(entries) if il is None else il, len(data))
    for e in entries:
        out += struct.pack(">IIiI", *e)
    return out + data


HOSTILE_BLOBS = {
    "empty": b"",
    "short intro": b"\x00\x00\x00",
    "zero entries": struct.pack(">II", 0, 0),
    "index past end": struct.pack(">II", 5, 0) + b"\x00" * 16,
    "data past end": struct.pack(">II", 1, 100) + struct.pack(">IIiI", 1000, 6, 0, 1) + b"abc\0",
    "huge il": struct.pack(">II", 0xFFFFFFFF, 0xFFFFFFFF),
    "huge dl": struct.pack(">II", 1, 0x7FFFFFFF) + b"\x00" * 16,
    "offset past end": _intro_and_entries([(1000, 6, 50, 1)], b"name\0"),
    "negative offset": _intro_and_entries([(1000, 6, -4, 1)], b"name\0"),
    "int32 count 2^31": _intro_and_entries([(1009, 4, 0, 2**31)], b"\0\0\0\0"),
    "int64 count 2^32-1": _intro_and_entries([(1009, 5, 0, 2**32 - 1)], b"\0" * 8),
    "string array count 2^31": _intro_and_entries([(1117, 8, 0, 2**31)], b"a\0b\0"),
    "unknown type": _intro_and_entries([(1000, 42, 0, 1)], b"name\0"),
    "unterminated name": _intro_and_entries([(1000, 6, 0, 1)], b"name"),
    "unterminated array": _intro_and_entries([(1000, 6, 0, 1), (1117, 8, 5, 3)], b"name\0a\0b\0c"),
    "no name": header_blob([(h.TAG_VERSION, h.TYPE_STRING, "1")]),
    "empty name": header_blob([(h.TAG_NAME, h.TYPE_STRING, "")]),
    "dirindex out of range": header_blob(
        [
            (h.TAG_NAME, h.TYPE_STRING, "p"),
            (h.TAG_BASENAMES, h.TYPE_STRING_ARRAY, ["a", "b"]),
            (h.TAG_DIRNAMES, h.TYPE_STRING_ARRAY, ["/x/"]),
            (h.TAG_DIRINDEXES, h.TYPE_INT32, [0, 7]),
        ]
    ),
    "dirindexes shorter than basenames": header_blob(
        [
            (h.TAG_NAME, h.TYPE_STRING, "p"),
            (h.TAG_BASENAMES, h.TYPE_STRING_ARRAY, ["a", "b"]),
            (h.TAG_DIRNAMES, h.TYPE_STRING_ARRAY, ["/x/"]),
            (h.TAG_DIRINDEXES, h.TYPE_INT32, [0]),
        ]
    ),
}


@pytest.mark.parametrize("name", sorted(HOSTILE_BLOBS))
def test_hostile_header_blobs(name: str) -> None:
    with pytest.raises(RpmdbError):
        h.read_package(HOSTILE_BLOBS[name])
    # And through the analyzer, whichever backend carries the blob.
    with pytest.raises(AnalyzerError):
        analyze(sqlite_rpmdb([HOSTILE_BLOBS[name]]))


def test_truncated_blobs_never_crash() -> None:
    blob = package_blob(SPECS[0])
    for cut in range(len(blob)):
        with pytest.raises(RpmdbError):
            h.read_package(blob[:cut])


def test_trailing_padding_is_allowed() -> None:
    assert h.read_package(package_blob(SPECS[0]) + b"\0" * 13).name == "bash"


# --- sqlite -----------------------------------------------------------------------------------


@pytest.mark.parametrize("wal", [True, False])
def test_sqlite_round_trip(wal: bool) -> None:
    data = sqlite_rpmdb([package_blob(s) for s in SPECS], wal=wal)
    check_specs(analyze(data, "usr/lib/sysimage/rpm/rpmdb.sqlite"), "usr/lib/sysimage/rpm/rpmdb.sqlite")


def test_sqlite_empty_database() -> None:
    assert analyze(sqlite_rpmdb([])) == []


def test_sqlite_without_packages_table() -> None:
    import sqlite3 as sq

    conn = sq.connect(":memory:")
    conn.execute("CREATE TABLE other (x)")
    conn.commit()
    with pytest.raises(AnalyzerError):
        analyze(conn.serialize())


def test_sqlite_packages_view_is_refused() -> None:
    import sqlite3 as sq

    conn = sq.connect(":memory:")
    conn.execute(
        "CREATE VIEW Packages AS WITH RECURSIVE r(hnum, blob) AS "
        "(SELECT 1, x'00' UNION ALL SELECT hnum + 1, blob FROM r) SELECT * FROM r"
    )
    conn.commit()
    with pytest.raises(AnalyzerError):
        analyze(conn.serialize())


def test_sqlite_non_blob_value() -> None:
    import sqlite3 as sq

    conn = sq.connect(":memory:")
    conn.execute("CREATE TABLE Packages (hnum INTEGER PRIMARY KEY, blob)")
    conn.execute("INSERT INTO Packages VALUES (1, 'text')")
    conn.commit()
    with pytest.raises(AnalyzerError):
        analyze(conn.serialize())


def test_sqlite_truncated_file() -> None:
    data = sqlite_rpmdb([package_blob(s) for s in SPECS])
    for cut in (16, 100, 4096, len(data) // 2, len(data) - 1):
        try:
            analyze(data[:cut])
        except AnalyzerError:
            pass


# --- Berkeley DB hash -------------------------------------------------------------------------


@pytest.mark.parametrize("order", ["<", ">"])
@pytest.mark.parametrize("page_size", [512, 4096, 16384])
def test_bdb_round_trip(order: str, page_size: int) -> None:
    data = bdb_hash(rpm_bdb_items([package_blob(s) for s in SPECS], order), order=order, page_size=page_size)
    check_specs(analyze(data, "var/lib/rpm/Packages"), "var/lib/rpm/Packages")


@pytest.mark.parametrize("order", ["<", ">"])
def test_bdb_overflow_chain_for_a_large_blob(order: str) -> None:
    big = PkgSpec("big", files=[f"/usr/share/big/file{i:05d}" for i in range(3000)], padding=70000)
    blobs = [package_blob(big), package_blob(SPECS[0])]
    data = bdb_hash(rpm_bdb_items(blobs, order), order=order, page_size=4096)
    assert len(blobs[0]) > 20 * 4096  # needs a long chain
    facts = analyze(data, "var/lib/rpm/Packages")
    assert list(packages(facts)) == ["big", "bash"]
    assert len(hints(facts)["big"].files) == 3000


def test_bdb_inline_values() -> None:
    # Small values stay on the hash page as H_KEYDATA.
    blobs = [package_blob(s) for s in SPECS]
    data = bdb_hash(rpm_bdb_items(blobs), page_size=65536)
    assert list(packages(analyze(data, "var/lib/rpm/Packages"))) == EXPECTED_NAMES


def _overflow_pages(data: bytes, page_size: int = 4096) -> list[int]:
    return [n for n in range(1, len(data) // page_size) if data[n * page_size + 25] == bdb.P_OVERFLOW]


def _set_next(data: bytearray, pgno: int, nxt: int, page_size: int = 4096) -> None:
    struct.pack_into("<I", data, pgno * page_size + 16, nxt)


def _big_bdb() -> bytearray:
    blob = package_blob(PkgSpec("big", padding=20000))
    return bytearray(bdb_hash(rpm_bdb_items([blob]), page_size=4096))


def test_bdb_overflow_cycle() -> None:
    data = _big_bdb()
    chain = _overflow_pages(data)
    _set_next(data, chain[3], chain[1])
    with pytest.raises(AnalyzerError):
        analyze(bytes(data), "var/lib/rpm/Packages")


def test_bdb_overflow_self_loop() -> None:
    data = _big_bdb()
    chain = _overflow_pages(data)
    _set_next(data, chain[0], chain[0])
    with pytest.raises(AnalyzerError):
        analyze(bytes(data), "var/lib/rpm/Packages")


@pytest.mark.parametrize("target", [0xFFFFFFFF, 10_000, 0])
def test_bdb_overflow_page_out_of_range_or_short(target: int) -> None:
    data = _big_bdb()
    chain = _overflow_pages(data)
    _set_next(data, chain[2], target)
    with pytest.raises(AnalyzerError):
        analyze(bytes(data), "var/lib/rpm/Packages")


def test_bdb_shared_overflow_chain_is_refused() -> None:
    # Two items pointing at one chain would multiply the work; real files never share chains.
    blob = package_blob(PkgSpec("big", padding=20000))
    data = bytearray(bdb_hash(rpm_bdb_items([blob, blob]), page_size=4096))
    hash_page = next(n for n in range(1, len(data) // 4096) if data[n * 4096 + 25] == bdb.P_HASH)
    base = hash_page * 4096
    entries, _ = struct.unpack_from("<HH", data, base + 20)
    offs = [struct.unpack_from("<H", data, base + 26 + 2 * i)[0] for i in range(entries)]
    first_value, last_value = offs[3], offs[5]
    data[base + last_value : base + last_value + 12] = data[base + first_value : base + first_value + 12]
    with pytest.raises(AnalyzerError):
        analyze(bytes(data), "var/lib/rpm/Packages")


def test_bdb_truncated_file_and_lying_last_pgno() -> None:
    data = bytearray(bdb_hash(rpm_bdb_items([package_blob(s) for s in SPECS]), page_size=512))
    struct.pack_into("<I", data, 32, 0xFFFFFFF0)
    assert list(packages(analyze(bytes(data), "var/lib/rpm/Packages"))) == EXPECTED_NAMES
    for cut in range(0, len(data), 97):
        try:
            analyze(bytes(data[:cut]), "var/lib/rpm/Packages")
        except AnalyzerError:
            pass


@pytest.mark.parametrize(
    ("offset", "value", "fmt"),
    [
        (20, 1000, "<I"),  # page size not a power of two
        (20, 1 << 20, "<I"),  # page size too big
        (24, 1, "<B"),  # encrypted
        (25, 9, "<B"),  # not hash metadata
    ],
)
def test_bdb_bad_metadata(offset: int, value: int, fmt: str) -> None:
    data = bytearray(bdb_hash(rpm_bdb_items([package_blob(SPECS[0])])))
    struct.pack_into(fmt, data, offset, value)
    with pytest.raises(AnalyzerError):
        analyze(bytes(data), "var/lib/rpm/Packages")


def test_bdb_bad_hash_page_entries() -> None:
    data = bytearray(bdb_hash(rpm_bdb_items([package_blob(SPECS[0])]), page_size=4096))
    base = next(n for n in range(1, len(data) // 4096) if data[n * 4096 + 25] == bdb.P_HASH) * 4096
    for entries in (3, 5000):
        bad = bytearray(data)
        struct.pack_into("<H", bad, base + 20, entries)
        with pytest.raises(AnalyzerError):
            analyze(bytes(bad), "var/lib/rpm/Packages")
    bad = bytearray(data)
    struct.pack_into("<H", bad, base + 26 + 2, 4095)  # second item would end before it starts
    with pytest.raises(AnalyzerError):
        analyze(bytes(bad), "var/lib/rpm/Packages")
    bad = bytearray(data)
    first = struct.unpack_from("<H", bad, base + 26)[0]
    bad[base + first] = 9  # unknown item type
    with pytest.raises(AnalyzerError):
        analyze(bytes(bad), "var/lib/rpm/Packages")


def test_bdb_magic_detection() -> None:
    assert bdb.is_bdb_hash(bdb_hash([], order="<"))
    assert bdb.is_bdb_hash(bdb_hash([], order=">"))
    assert not bdb.is_bdb_hash(b"\0" * 4096)
    assert list(bdb.iter_blobs(bdb_hash([]))) == []


# --- ndb --------------------------------------------------------------------------------------


def test_ndb_round_trip() -> None:
    data = ndb_packages([package_blob(s) for s in SPECS])
    check_specs(analyze(data, "usr/lib/sysimage/rpm/Packages.db"), "usr/lib/sysimage/rpm/Packages.db")


def test_ndb_free_slots_and_several_slot_pages() -> None:
    data = ndb_packages([package_blob(s) for s in SPECS], slot_pages=2, free_slot_first=True)
    assert list(packages(analyze(data, "var/lib/rpm/Packages.db"))) == EXPECTED_NAMES


def test_ndb_empty() -> None:
    assert analyze(ndb_packages([]), "var/lib/rpm/Packages.db") == []


def _ndb_mutations() -> dict[str, Callable[[bytearray], None]]:
    def slot(field: int, value: int) -> Callable[[bytearray], None]:
        return lambda d: struct.pack_into("<I", d, 32 + 4 * field, value)

    return {
        "bad file magic": lambda d: d.__setitem__(slice(0, 4), b"RpmX"),
        "bad version": lambda d: struct.pack_into("<I", d, 4, 1),
        "zero slot pages": lambda d: struct.pack_into("<I", d, 12, 0),
        "too many slot pages": lambda d: struct.pack_into("<I", d, 12, 0xFFFFFFFF),
        "bad slot magic": slot(0, 0),
        "slot pkgidx 0": slot(1, 0),
        "slot into slot pages": slot(2, 3),
        "slot past end": slot(2, 0xFFFFFFF0),
        "slot blkcnt 0": slot(3, 0),
        "slot blkcnt too big": slot(3, 0x7FFFFFFF),
        "slot blkcnt too small": slot(3, 1),
        "blob head magic": lambda d: d.__setitem__(slice(4096, 4100), b"XXXX"),
        "blob pkgidx mismatch": lambda d: struct.pack_into("<I", d, 4100, 99),
        "blob length": lambda d: struct.pack_into("<I", d, 4108, 2**31),
        "blob content": lambda d: d.__setitem__(4200, d[4200] ^ 0xFF),
        "blob tail magic": lambda d: d.__setitem__(slice(len(d) - 4, len(d)), b"XXXX"),
    }


@pytest.mark.parametrize("name", sorted(_ndb_mutations()))
def test_ndb_hostile(name: str) -> None:
    data = bytearray(ndb_packages([package_blob(SPECS[0])]))
    _ndb_mutations()[name](data)
    with pytest.raises(AnalyzerError):
        analyze(bytes(data), "var/lib/rpm/Packages.db")


def test_ndb_truncated() -> None:
    data = ndb_packages([package_blob(s) for s in SPECS])
    for cut in range(0, len(data), 61):
        with pytest.raises(AnalyzerError):
            analyze(data[:cut], "var/lib/rpm/Packages.db")
    assert ndb.is_ndb(data) and not ndb.is_ndb(data[:3])


# --- fuzzing: only AnalyzerError or success, never another exception -------------------------


def _mutate(rng: random.Random, data: bytes) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        choice = rng.random()
        if not buf:
            break
        pos = rng.randrange(len(buf))
        if choice < 0.5:
            buf[pos] = rng.randrange(256)
        elif choice < 0.7:
            word = rng.choice([0, 1, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, rng.randrange(1 << 32)])
            end = min(len(buf), pos + 4)
            buf[pos:end] = word.to_bytes(4, rng.choice(["little", "big"]))[: end - pos]
        elif choice < 0.85:
            del buf[pos:]
        else:
            buf[pos:pos] = rng.randbytes(rng.randint(1, 16))
    return bytes(buf)


def _fuzz(seed_data: bytes, path: str, rounds: int, seed: int) -> None:
    rng = random.Random(seed)
    analyzer = RpmAnalyzer()
    for _ in range(rounds):
        data = _mutate(rng, seed_data)
        try:
            list(analyzer.analyze(FileInfo(path=path, size=len(data)), data))
        except AnalyzerError:
            pass


def test_fuzz_header_blobs() -> None:
    rng = random.Random(1)
    seed = package_blob(SPECS[0])
    for _ in range(3000):
        try:
            h.read_package(_mutate(rng, seed))
        except RpmdbError:
            pass


@pytest.mark.parametrize("order", ["<", ">"])
def test_fuzz_bdb(order: str) -> None:
    blobs = [package_blob(s) for s in SPECS] + [package_blob(PkgSpec("big", padding=3000))]
    _fuzz(bdb_hash(rpm_bdb_items(blobs, order), order=order, page_size=512), "var/lib/rpm/Packages", 1500, 2)


def test_fuzz_ndb() -> None:
    _fuzz(ndb_packages([package_blob(s) for s in SPECS]), "var/lib/rpm/Packages.db", 1500, 3)


def test_fuzz_sqlite() -> None:
    _fuzz(sqlite_rpmdb([package_blob(s) for s in SPECS]), "var/lib/rpm/rpmdb.sqlite", 300, 4)


def test_random_bytes() -> None:
    rng = random.Random(5)
    analyzer = RpmAnalyzer()
    prefixes = [b"", sqlite.SQLITE_MAGIC, b"RpmP", b"\0" * 12 + (0x061561).to_bytes(4, "little")]
    for i in range(400):
        data = prefixes[i % len(prefixes)] + rng.randbytes(rng.randint(0, 9000))
        try:
            list(analyzer.analyze(FileInfo(path="var/lib/rpm/Packages"), data))
        except AnalyzerError:
            pass


def test_facts_survive_the_layer_cache_encoding() -> None:
    import msgspec

    from hullguard.model import FileFacts

    facts = FileFacts.of(analyze(sqlite_rpmdb([package_blob(s) for s in SPECS])))
    decoded = msgspec.msgpack.decode(msgspec.msgpack.encode(facts), type=FileFacts)
    assert decoded == facts
    assert decoded.packages[0].metadata["epoch"] is None
