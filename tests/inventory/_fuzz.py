"""One hostile-bytes property for every analyzer: splice random bytes into a real fixture and
require that only AnalyzerError escapes, and that whatever comes out survives the layer cache."""

from __future__ import annotations

import msgspec
from hypothesis import strategies as st

from hullguard.inventory.base import Analyzer, AnalyzerError, FileInfo
from hullguard.model import FileFacts


def check_spliced_seed(analyzer: Analyzer, seeds: list[tuple[str, bytes]], data: st.DataObject) -> None:
    path, seed = data.draw(st.sampled_from(seeds))
    cut = data.draw(st.integers(0, len(seed)))
    junk = data.draw(st.binary(max_size=64))
    blob = seed[:cut] + junk + seed[cut + data.draw(st.integers(0, 64)) :]
    try:
        facts = list(analyzer.analyze(FileInfo(path), blob))
    except AnalyzerError:
        return
    msgspec.msgpack.encode(FileFacts.of(facts))
    msgspec.json.encode(FileFacts.of(facts))
