"""One hostile-bytes property for every analyzer: splice random bytes into a real fixture and
require that only AnalyzerError escapes, and that whatever comes out survives the layer cache."""

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
