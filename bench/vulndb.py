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


def replicate(count: int, out: Path) -> list[tuple[str, str, str]]:
    """Write ``count`` records to a zip; return (ecosystem, name, a vulnerable version) per name."""
    base = seeds()
    targets: dict[tuple[str, str], str] = {}
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as zf:
        for i in range(count):
            rec = json.loads(json.dumps(base[i % len(base)]))
            group = i // (len(base) * NAMES_PER_SEED)
            rec["id"] = f"{rec['id']}-{i}"
            for aff in rec.get("affected", []):
                pkg = aff.get("package", {})
                pkg["name"] = f"{pkg.get('name', 'x')}-b{group}"
                pkg.pop("purl", None)
                introduced = next((e["introduced"] for r in aff.get("ranges", []) for e in r.get("events", [])
                                   if "introduced" in e and e["introduced"] != "0"), "0.0.1")
                targets.setdefault((pkg.get("ecosystem", ""), pkg["name"]), introduced)
            zf.writestr(f"{rec['id']}.json", json.dumps(rec))
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
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="hg-vulndb-") as work:
        archive = args.archive
        targets: list[tuple[str, str, str]] = []
        if archive is None:
            archive = Path(work) / "advisories.zip"
            t0 = time.perf_counter()
            targets = replicate(args.advisories, archive)
            print(f"generated {args.advisories} records in {time.perf_counter() - t0:.1f}s")
        db = Path(work) / "bench.db"
        store = SQLiteStore(str(db))
        t0 = time.perf_counter()
        stats = import_path(store, str(archive), "bench")
        seconds = time.perf_counter() - t0
        rate = stats.records / seconds if seconds else 0.0
        size = os.path.getsize(db)
        print(f"import: {stats.records} records ({stats.skipped} skipped) in {seconds:.1f}s = {rate:,.0f} records/s "
              f"(target >= 5,000) {'ok' if rate >= 5000 else 'MISSED'}")
        per_100k = size / max(stats.records, 1) * 100_000 / 1e6
        print(f"database: {size / 1e6:.1f} MB = {per_100k:.1f} MB per 100k advisories")
        result = scan_result(targets, args.packages)
        match(result, store)  # warm the page cache and the comparator caches once
        t0 = time.perf_counter()
        report = match(result, store)
        seconds = time.perf_counter() - t0
        print(f"matching: {len(result.packages)} packages against {stats.records} advisories in {seconds:.3f}s, "
              f"{len(report.findings)} findings (target <= 1 s) {'ok' if seconds <= 1 else 'MISSED'}")
        store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
