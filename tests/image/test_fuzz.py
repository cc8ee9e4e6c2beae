"""Mutated archives through the real CLI entry point: every outcome is a clean result (exit 0)
or a one-line error (exit 2); never an internal error, a traceback, or a file outside --output."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from hullguard.cli.main import main
from tests.builders.synth import Dir, File, Opaque, Symlink, Whiteout, build_synth

LAYERS = [
    [Dir("etc"), File("etc/os-release", "ID=debian\nVERSION_ID=12\n"),
     File("var/lib/dpkg/status", "Package: a\nStatus: install ok installed\nVersion: 1\n"),
     Symlink("lib", "usr/lib"), File("usr/lib/python3/dist-packages/x-1.dist-info/METADATA", "Name: x\nVersion: 1\n")],
    [Whiteout("etc/os-release"), Opaque("usr"), File("app/package.json", '{"name":"a","version":"1"}')],
]


def mutate(data: bytearray, rng: random.Random) -> bytearray:
    out = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        op = rng.random()
        pos = rng.randrange(len(out)) if out else 0
        if op < 0.5 and out:
            out[pos] = rng.randrange(256)
        elif op < 0.7:
            del out[pos : pos + rng.randint(1, 600)]
        elif op < 0.85:
            out[pos:pos] = rng.randbytes(rng.randint(1, 64))
        else:
            out = out[: rng.randrange(len(out) + 1)]
    return out


def files_under(path: Path) -> set[str]:
    return {str(p) for p in path.rglob("*")}


@pytest.mark.parametrize("fmt", ["docker", "oci-archive"])
@pytest.mark.parametrize("compress", ["none", "gzip"])
def test_mutated_archives(tmp_path: Path, capsys: pytest.CaptureFixture[str], fmt: str, compress: str) -> None:
    img = build_synth(LAYERS, fmt=fmt, compress=compress, out=tmp_path / "src" / "image.tar")
    original = bytearray(img.path.read_bytes())
    rng = random.Random(f"{fmt}-{compress}")
    work = tmp_path / "work"
    work.mkdir()
    outcomes = {0: 0, 2: 0}
    for i in range(60):
        target = work / f"m{i}.tar"
        target.write_bytes(mutate(original, rng))
        before = files_under(tmp_path)
        out = work / f"m{i}.json"
        code = main(["image", str(target), "--no-cache", "-q", "-f", "json", "-o", str(out)])
        err = capsys.readouterr().err
        assert code in (0, 2), f"mutation {i}: exit {code}: {err}"
        outcomes[code] += 1
        assert "Traceback" not in err
        if code == 2:
            errors = [line for line in err.splitlines() if line.startswith("hullguard: error:")]
            assert len(errors) == 1, err
            assert not out.exists()
        after = files_under(tmp_path) - before - {str(out)}
        assert after == set(), f"mutation {i} left files behind: {after}"
    assert outcomes[2] > 0  # the mutations really do break things


def test_output_is_not_created_when_the_scan_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.tar"
    bad.write_bytes(b"not an archive" * 100)
    out = tmp_path / "result.json"
    assert main(["image", str(bad), "-o", str(out), "-q"]) == 2
    assert not out.exists()
    assert os.listdir(tmp_path) == ["bad.tar"]
