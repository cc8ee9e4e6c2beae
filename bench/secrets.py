"""Secret scanning: throughput of both engine backends and precision/recall beside detect-secrets.

    python bench/secrets.py [--mb 64] [--peer-mb 4]

Throughput is measured on one core over real text: the ``.py``, ``.json``, ``.yaml``, ``.md``
and ``.txt`` files of the installed virtualenv (read into memory first, scanned file by file as
the analyzer would, default path skips off so every byte is scanned). Precision and recall are
per (file, line) on the labelled corpus in tests/detect/secrets/corpus, for hullguard's two
backends and for ``detect-secrets`` (PyPI) run with its default plugins over the same files.
"""

from __future__ import annotations

import sys

# This file is named like the stdlib module `secrets`; keep its folder off the import path so
# that a library importing `secrets` gets the real one.
sys.path[:] = [p for p in sys.path if p not in ("", __file__.rsplit("/", 1)[0])]

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sysconfig  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.detect.secrets import corpus  # noqa: E402

from hullguard.detect.secrets.engine import Engine  # noqa: E402

TEXT_EXT = {".py", ".json", ".yaml", ".yml", ".md", ".txt", ".cfg", ".toml", ".rst", ".ini"}


def load_text(limit: int) -> list[tuple[str, bytes]]:
    """Real source and config files, up to ``limit`` bytes, in a stable order."""
    base = Path(sysconfig.get_paths()["purelib"])
    out: list[tuple[str, bytes]] = []
    total = 0
    for path in sorted(base.rglob("*")):
        if path.suffix not in TEXT_EXT or not path.is_file():
            continue
        data = path.read_bytes()
        if not data or len(data) > 4 << 20:
            continue
        out.append((str(path.relative_to(base)), data))
        total += len(data)
        if total >= limit:
            break
    return out


def pin_one_core() -> None:
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})


def throughput(engine: Engine, files: list[tuple[str, bytes]], rounds: int = 3) -> tuple[float, int]:
    size = sum(len(d) for _, d in files)
    best = float("inf")
    found = 0
    for _ in range(rounds):
        t = time.perf_counter()
        found = sum(len(engine.scan(d, p)) for p, d in files)
        best = min(best, time.perf_counter() - t)
    return size / best / 1e6, found


def pr(found: set[tuple[str, int]]) -> tuple[float, float, int, int]:
    want = {(p, line) for p, line, _ in corpus.expected()}
    tp = len(found & want)
    return tp / max(len(found), 1), tp / max(len(want), 1), len(found - want), len(want - found)


def ours(engine: Engine) -> set[tuple[str, int]]:
    return {(f.path, m.line) for f in corpus.FILES for m in engine.scan(f.text.encode(), f.path)}


def detect_secrets_bin() -> str | None:
    here = Path(sys.executable).parent / "detect-secrets"
    return str(here) if here.exists() else shutil.which("detect-secrets")


def detect_secrets_corpus(tool: str) -> set[tuple[str, int]]:
    with tempfile.TemporaryDirectory() as tmp:
        corpus.write(Path(tmp))
        out = subprocess.run([tool, "scan", "--all-files", "."], cwd=tmp, check=True,
                             capture_output=True, text=True).stdout
    results = json.loads(out)["results"]
    return {(path, item["line_number"]) for path, items in results.items() for item in items}


def detect_secrets_throughput(tool: str, files: list[tuple[str, bytes]]) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        for i, (_, data) in enumerate(files):
            (Path(tmp) / f"{i:06d}.txt").write_bytes(data)
        size = sum(len(d) for _, d in files)
        t = time.perf_counter()
        subprocess.run(["taskset", "-c", str(sorted(os.sched_getaffinity(0))[0]), tool, "scan",
                        "--all-files", "."] if shutil.which("taskset") else
                       [tool, "scan", "--all-files", "."],
                       cwd=tmp, check=True, capture_output=True)
        return size / (time.perf_counter() - t) / 1e6


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=int, default=64, help="text to scan for throughput")
    ap.add_argument("--peer-mb", type=int, default=4, help="text for detect-secrets' throughput")
    args = ap.parse_args()
    pin_one_core()

    t = time.perf_counter()
    hs = Engine(use_hyperscan=True, skip_default_paths=False)
    compile_s = time.perf_counter() - t
    rx = Engine(use_hyperscan=False, skip_default_paths=False)
    files = load_text(args.mb << 20)
    size_mb = sum(len(d) for _, d in files) / 1e6
    print(f"text corpus: {len(files)} files, {size_mb:.1f} MB from {sysconfig.get_paths()['purelib']}")
    print(f"hyperscan database: {len(hs.rules)} rules + {len(hs.keywords)} keywords, ready "
          f"in {compile_s:.2f} s (compiled, or loaded from the cache)")
    hs_mbs, hs_found = throughput(hs, files)
    re_mbs, re_found = throughput(rx, files, rounds=1)
    print(f"throughput, one core: hyperscan {hs_mbs:8.1f} MB/s   re {re_mbs:8.1f} MB/s   "
          f"ratio hyperscan/re {hs_mbs / re_mbs:.1f}x   (findings {hs_found} vs {re_found})")

    one = b"\n".join(d for _, d in files)[: 256 << 20]
    big = Engine(use_hyperscan=True, skip_default_paths=False, max_size=len(one) + 1)
    t = time.perf_counter()
    big.scan(one, "all.txt")
    print(f"throughput, one {len(one) / 1e6:.0f} MB blob, hyperscan: "
          f"{len(one) / (time.perf_counter() - t) / 1e6:.1f} MB/s")

    print()
    print(f"labelled corpus: {len(corpus.FILES)} files, {len(corpus.expected())} secret lines")
    print(f"{'scanner':<22}{'precision':>10}{'recall':>8}{'FP':>5}{'FN':>5}")
    rows = {"hullguard hyperscan": pr(ours(hs)), "hullguard re": pr(ours(rx))}
    tool = detect_secrets_bin()
    if tool:
        rows["detect-secrets"] = pr(detect_secrets_corpus(tool))
    for name, (p, r, fp, fn) in rows.items():
        print(f"{name:<22}{p:>10.3f}{r:>8.3f}{fp:>5}{fn:>5}")
    if tool:
        p0, r0, *_ = rows["hullguard hyperscan"]
        p1, r1, *_ = rows["detect-secrets"]
        print(f"ratio hullguard/detect-secrets: precision {p0 / max(p1, 1e-9):.2f}x, "
              f"recall {r0 / max(r1, 1e-9):.2f}x")
        sub: list[tuple[str, bytes]] = []
        for item in files:
            if sum(len(d) for _, d in sub) >= args.peer_mb << 20:
                break
            sub.append(item)
        ds_mbs = detect_secrets_throughput(tool, sub)
        print(f"detect-secrets throughput on {sum(len(d) for _, d in sub) / 1e6:.1f} MB: "
              f"{ds_mbs:.2f} MB/s; ratio hullguard hyperscan/detect-secrets {hs_mbs / ds_mbs:.0f}x, "
              f"re/detect-secrets {re_mbs / ds_mbs:.1f}x")
    else:
        print("detect-secrets not installed: pip install detect-secrets")


if __name__ == "__main__":
    main()
