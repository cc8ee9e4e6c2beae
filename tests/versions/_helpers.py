"""Assertions shared by the per-ecosystem vector tables."""

from __future__ import annotations

from collections.abc import Sequence

from hullguard.versions import Comparator

_OPS = {"<": -1, "=": 0, ">": 1}


def assert_relation(comp: Comparator, a: str, op: str, b: str) -> None:
    expected = _OPS[op]
    got = comp.compare(a, b)
    assert got == expected, f"{comp.name}: expected {a!r} {op} {b!r}, got {got}"
    assert comp.compare(b, a) == -expected, f"{comp.name}: {b!r} vs {a!r} is not antisymmetric"
    ka, kb = comp.key(a), comp.key(b)
    assert ((ka > kb) - (ka < kb)) == expected, f"{comp.name}: key order disagrees for {a!r} {op} {b!r}"


def assert_ascending(comp: Comparator, versions: Sequence[str]) -> None:
    """Every earlier version sorts strictly before every later one."""
    for i, low in enumerate(versions):
        for high in versions[i + 1 :]:
            assert_relation(comp, low, "<", high)
    assert comp_sorted(comp, list(reversed(versions))) == list(versions)


def comp_sorted(comp: Comparator, versions: list[str]) -> list[str]:
    return sorted(versions, key=comp.key)


def assert_all_equal(comp: Comparator, versions: Sequence[str]) -> None:
    for a in versions:
        for b in versions:
            assert_relation(comp, a, "=", b)


def parse_table(text: str) -> list[tuple[str, str, str]]:
    """Rows of ``a OP b`` separated by whitespace; ``#`` starts a comment."""
    rows = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            a, op, b = line.split()
            rows.append((a, op, b))
    return rows
