"""Precision and recall on the labelled corpus, and hyperscan == re."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from hullguard.detect.secrets.engine import Engine
from tests.detect.secrets.corpus import FILES, expected


def _found(engine: Engine) -> set[tuple[str, int, str]]:
    return {(f.path, m.line, m.rule.id) for f in FILES for m in engine.scan(f.text.encode(), f.path)}


def _pr(found: set[tuple[str, int, str]]) -> tuple[float, float]:
    want = {(p, line) for p, line, _ in expected()}
    got = {(p, line) for p, line, _ in found}
    tp = len(want & got)
    return tp / max(len(got), 1), tp / max(len(want), 1)


def test_precision_and_recall(engine: Engine) -> None:
    precision, recall = _pr(_found(engine))
    assert precision >= 0.95, precision
    assert recall >= 0.95, recall


def test_every_labelled_line_gets_its_rule(engine: Engine) -> None:
    missing = expected() - _found(engine)
    assert not missing


def _full(engine: Engine, data: bytes, path: str) -> list[tuple]:
    return [(m.rule.id, m.start, m.secret_start, m.secret_end, m.line, m.fingerprint)
            for m in engine.scan(data, path)]


def test_hyperscan_and_re_identical_on_corpus(hs_engine: Engine, re_engine: Engine) -> None:
    for f in FILES:
        data = f.text.encode()
        assert _full(hs_engine, data, f.path) == _full(re_engine, data, f.path), f.path


def test_hyperscan_and_re_identical_on_shuffled_corpus(hs_engine: Engine, re_engine: Engine) -> None:
    # Lines from every file mixed into one, so that rules meet each other's keywords.
    lines = [line for f in FILES for line, _ in f.lines]
    rng = random.Random(7)
    for n in range(20):
        rng.shuffle(lines)
        data = "\n".join(lines).encode()
        for path in ("mixed.txt", "home/u/.npmrc", "root/.netrc", "etc/shadow", ".pypirc"):
            assert _full(hs_engine, data, path) == _full(re_engine, data, path), (n, path)


_pieces = st.sampled_from(
    [line for f in FILES for line, _ in f.lines]
    + ["password=", "token: ", "\n", " ", "\"", "'", "=", "ghp_", "AKIA", "-----BEGIN ", "://",
       "@", ":", "\\n", "\r\n", "kind: Config", "auths", "\x00"]
)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.one_of(_pieces, st.text(max_size=40)), max_size=30))
def test_hyperscan_and_re_identical_on_random_mixes(hs_engine: Engine, re_engine: Engine,
                                                    parts: list[str]) -> None:
    data = "".join(parts).encode("utf-8", "surrogatepass")
    assert _full(hs_engine, data, "x/.env") == _full(re_engine, data, "x/.env")
