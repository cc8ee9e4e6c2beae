"""Advisory database speed: import throughput, size, and matching 10,000 packages against a large
advisory set.

    python bench/vulndb.py [--advisories N] [--packages N] [--archive PATH]

Without --archive, the bundled snapshot (real OSV records) is replicated to N advisories: each
copy gets its own id and a package name shared by a handful of copies, so lookups fan out the way
they do over real data. With --archive, a real OSV zip (e.g. a `db update` download) is imported
instead. Targets (issue 3): import >= 5,000 records/s on one core; matching 10,000 packages
against >= 300,000 advisories in <= 1 s.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from hullguard.detect.vulns import match  # noqa: E402
from hullguard.model import Artifact, Location, OSInfo, Package, ScanResult  # noqa: E402
from hullguard.vulndb import snapshot_dir  # noqa: E402
from hullguard.vulndb.importer import import_path  # noqa: E402
from hullguard.vulndb.store import SQLiteStore  # noqa: E402

NAMES_PER_SEED = 5  # copies of a seed record that share one package name


def seeds() -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(Path(snapshot_dir()).rglob("*.json"))]


def replicate(count: int, out: Path | None) -> list[tuple[str, str, str]]:
    """Write ``count`` records to a zip (unless ``out`` is None); return (ecosystem, name, a
    vulnerable version) per name."""
    base = seeds()
    targets: dict[tuple[str, str], str] = {}
    zf = zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) if out is not None else None
    for i in range(count):
        seed = base[i % len(base)]
        group = i // (len(base) * NAMES_PER_SEED)
        rec = json.loads(json.dumps(seed)) if zf else seed
        for aff in rec.get("affected", []):
            pkg = aff.get("package", {})
            name = f"{pkg.get('name', 'x')}-b{group}"
            introduced = next((e["introduced"] for r in aff.get("ranges", []) for e in r.get("events", [])
                               if "introduced" in e and e["introduced"] != "0"), "0.0.1")
            targets.setdefault((pkg.get("ecosystem", ""), name), introduced)
            if zf:
                pkg["name"] = name
                pkg.pop("purl", None)
        if zf:
            rec["id"] = f"{rec['id']}-{i}"
            zf.writestr(f"{rec['id']}.json", json.dumps(rec))
    if zf:
        zf.close()
    return [(eco, name, version) for (eco, name), version in targets.items()]


def scan_result(targets: list[tuple[str, str, str]], packages: int) -> ScanResult:
    eco_map = {"PyPI": "pypi", "npm": "npm"}
    pkgs = []
    for i in range(packages):
        if i % 2 == 0 and targets:
            eco, name, version = targets[(i // 2) % len(targets)]
            ecosystem = eco_map.get(eco, "pypi")
        else:
            ecosystem, name, version = ("pypi" if i % 4 == 1 else "npm"), f"clean-package-{i}", "1.0.0"
        pkgs.append(Package(name=name, version=version, ecosystem=ecosystem, locations=[Location(path=f"p/{i}")]))
    return ScanResult(artifact=Artifact(name="bench", type="sbom"), os=OSInfo(family="debian", release="12"),
                      packages=pkgs)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--advisories", type=int, default=300_000)
    parser.add_argument("--packages", type=int, default=10_000)
    parser.add_argument("--archive", type=Path, help="a real OSV zip to import instead of the replicated snapshot")
    parser.add_argument("--db", type=Path, help="keep the built database here; when it exists already, skip the "
                        "import and measure matching only (for profiling runs)")
    parser.add_argument("--profile", action="store_true", help="print the top cProfile entries of one matching run")
    parser.add_argument("--compare-rev", metavar="REV", help="also time the matcher of this git revision (e.g. the "
                        "commit before a change) on the same database and packages, in a child process, and print "
                        "the ratio and whether both found the same findings")
    parser.add_argument("--compare-db", type=Path, help="the database --compare-rev reads, when that revision "
                        "has another schema version (build it with that revision's bench); default: --db")
    parser.add_argument("--matcher-src", type=Path, help=argparse.SUPPRESS)  # the child side of --compare-rev
    args = parser.parse_args()
    if args.matcher_src:
        return peer(args)
    with tempfile.TemporaryDirectory(prefix="hg-vulndb-") as work:
        db = args.db or Path(work) / "bench.db"
        reuse = db.exists()
        targets: list[tuple[str, str, str]] = []
        if reuse:
            store = SQLiteStore(str(db), create=False)
            records = store.status()["advisories"]
            if args.archive is None:
                targets = replicate(args.advisories, None)
            print(f"reusing {db}: {records} advisories (import not measured)")
        else:
            archive = args.archive
            if archive is None:
                archive = Path(work) / "advisories.zip"
                t0 = time.perf_counter()
                targets = replicate(args.advisories, archive)
                print(f"generated {args.advisories} records in {time.perf_counter() - t0:.1f}s")
            store = SQLiteStore(str(db))
            t0 = time.perf_counter()
            stats = import_path(store, str(archive), "bench")
            seconds = time.perf_counter() - t0
            records = stats.records
            rate = stats.records / seconds if seconds else 0.0
            size = os.path.getsize(db)
            print(f"import: {stats.records} records ({stats.skipped} skipped) in {seconds:.1f}s = {rate:,.0f} "
                  f"records/s (target >= 5,000) {'ok' if rate >= 5000 else 'MISSED'}")
            per_100k = size / max(stats.records, 1) * 100_000 / 1e6
            print(f"database: {size / 1e6:.1f} MB = {per_100k:.1f} MB per 100k advisories")
        result = scan_result(targets, args.packages)
        match(result, store)  # warm the page cache and the comparator caches once
        runs, cpu = [], []
        for _ in range(3):
            t0, c0 = time.perf_counter(), time.process_time()
            report = match(result, store)
            runs.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
        seconds = statistics.median(runs)
        print(f"matching: {len(result.packages)} packages against {records} advisories in {seconds:.3f}s "
              f"(median of 3; min {min(runs):.3f}s, max {max(runs):.3f}s; CPU {statistics.median(cpu):.3f}s), "
              f"{len(report.findings)} findings (target <= 1 s) {'ok' if seconds <= 1 else 'MISSED'}")
        print(f"load average while matching: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs "
              "(other processes inflate wall time)")
        print(f"matching rate: {len(result.packages) / seconds:,.0f} packages/s, "
              f"{len(report.findings) / seconds:,.0f} findings/s")
        if args.compare_rev:
            compare(args, db, seconds, report.findings)
        if args.profile:
            import cProfile
            import pstats

            prof = cProfile.Profile()
            prof.runcall(match, result, store)
            pstats.Stats(prof).sort_stats("cumulative").print_stats(25)
        store.close()
    return 0


def fingerprint(findings: list) -> str:
    import hashlib

    rows = sorted(json.dumps([f.target, f.rule_id, f.fix, int(f.severity), f.title, f.details], sort_keys=True)
                  for f in findings)
    return hashlib.sha256("\n".join(rows).encode()).hexdigest()[:16]


def peer(args: argparse.Namespace) -> int:
    """Time the matcher found under --matcher-src (another revision's src/) on the same packages."""
    result = scan_result(replicate(args.advisories, None) if args.archive is None else [], args.packages)
    for name in [m for m in sys.modules if m == "hullguard" or m.startswith("hullguard.")]:
        del sys.modules[name]
    sys.path.insert(0, str(args.matcher_src))
    from hullguard.detect.vulns import match as peer_match
    from hullguard.vulndb.store import SQLiteStore as PeerStore

    store = PeerStore(str(args.db), create=False)
    peer_match(result, store)
    runs = []
    for _ in range(3):
        t0 = time.perf_counter()
        report = peer_match(result, store)
        runs.append(time.perf_counter() - t0)
    print(f"PEER {statistics.median(runs):.6f} {len(report.findings)} {fingerprint(report.findings)}")
    return 0


def compare(args: argparse.Namespace, db: Path, seconds: float, findings: list) -> None:
    import subprocess

    with tempfile.TemporaryDirectory(prefix="hg-peer-") as tmp:
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", args.compare_rev, "src"], capture_output=True,
                                 check=True).stdout
        subprocess.run(["tar", "-x", "-C", tmp], input=archive, check=True)
        cmd = [sys.executable, __file__, "--db", str(args.compare_db or db), "--advisories", str(args.advisories),
               "--packages", str(args.packages), "--matcher-src", str(Path(tmp) / "src")]
        if args.archive:
            cmd += ["--archive", str(args.archive)]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    line = next(x for x in out.splitlines() if x.startswith("PEER "))
    _, peer_seconds, peer_count, peer_print = line.split()
    same = peer_print == fingerprint(findings)
    print(f"peer {args.compare_rev}: matching in {float(peer_seconds):.3f}s (median of 3), {peer_count} findings; "
          f"this tree is {float(peer_seconds) / seconds:.1f}x faster; findings "
          f"{'identical' if same else 'DIFFER'}")


if __name__ == "__main__":
    sys.exit(main())
