"""Helpers shared by analyzer tests, among them one hostile-bytes property for every analyzer:
splice random bytes into a real fixture and require that only AnalyzerError escapes, and that
whatever comes out survives the layer cache."""

from __future__ import annotations

import msgspec
from hypothesis import strategies as st

from hullguard.inventory.base import Analyzer, AnalyzerError, FileInfo
from hullguard.model import FileFacts, Package


def check_spliced_seed(analyzer: Analyzer, seeds: list[tuple[str, bytes]], data: st.DataObject,
                       paths: list[str] | None = None) -> list:
    """``paths``, when given, are drawn independently of the seeds: any content under any name."""
    path, seed = data.draw(st.sampled_from(seeds))
    if paths:
        path = data.draw(st.sampled_from(paths))
    cut = data.draw(st.integers(0, len(seed)))
    junk = data.draw(st.binary(max_size=64))
    blob = seed[:cut] + junk + seed[cut + data.draw(st.integers(0, 64)) :]
    try:
        facts = list(analyzer.analyze(FileInfo(path), blob))
    except AnalyzerError:
        return []
    for fact in facts:
        if isinstance(fact, Package):
            assert isinstance(fact.name, str) and fact.name
            assert isinstance(fact.version, str) and fact.version
    msgspec.msgpack.encode(FileFacts.of(facts))
    msgspec.json.encode(FileFacts.of(facts))
    return facts


def packages_of(analyzer: Analyzer, path: str, data: bytes | str) -> list[Package]:
    """What the analyzer reports for one file; every fact must be a Package."""
    facts = list(analyzer.analyze(FileInfo(path), data.encode() if isinstance(data, str) else data))
    assert all(isinstance(f, Package) for f in facts)
    return facts  # type: ignore[return-value]


def by_key(packages: list[Package]) -> dict[tuple[str, str], Package]:
    out = {(p.name, p.version): p for p in packages}
    assert len(out) == len(packages), "a release was reported twice"
    return out
