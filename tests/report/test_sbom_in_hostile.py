"""Whatever the bytes, read_sbom returns a ScanResult or raises HullguardError, nothing else."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hullguard.inventory import sbom_in
from hullguard.inventory.sbom_in import read_sbom
from hullguard.model import HullguardError, ScanResult
from hullguard.report import cyclonedx, spdx

from .conftest import debian_image_result

FIXTURES = Path(__file__).parent / "fixtures"


def _must_fail(data: bytes, match: str | None = None) -> str:
    with pytest.raises(HullguardError, match=match) as info:
        read_sbom(data, "bad.json")
    message = str(info.value)
    assert "\n" not in message
    assert len(message) < 400
    return message


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"", "not valid JSON"),
        (b"\x00\xff\xfe garbage", "not valid JSON"),
        (b"{", "not valid JSON"),
        (b'{"bomFormat": "CycloneDX",}', "not valid JSON"),
        (b"NaN", "not valid JSON"),
        (b'{"a": 1e999999}', "not valid JSON"),
        (b"[]", "must be a JSON object"),
        (b'"CycloneDX"', "must be a JSON object"),
        (b"42", "must be a JSON object"),
        (b"null", "must be a JSON object"),
        (b"{}", "not a CycloneDX or SPDX"),
        (b'{"hello": "world"}', "not a CycloneDX or SPDX"),
        (b'{"@context": "https://spdx.org/rdf/3.0.1/spdx-context.jsonld", "@graph": []}', "SPDX 3"),
        (b'{"bomFormat": "SWID", "specVersion": "1.6"}', "bomFormat"),
        (b'{"bomFormat": "CycloneDX", "specVersion": "1.7"}', "unsupported CycloneDX spec version"),
        (b'{"bomFormat": "CycloneDX", "specVersion": "1.1"}', "unsupported CycloneDX spec version"),
        (b'{"bomFormat": "CycloneDX", "specVersion": 1.6}', "unsupported CycloneDX spec version"),
        (b'{"bomFormat": "CycloneDX"}', "unsupported CycloneDX spec version"),
        (b'{"spdxVersion": "SPDX-3.0"}', "unsupported SPDX version"),
        (b'{"spdxVersion": "SPDX-2.1"}', "unsupported SPDX version"),
        (b'{"spdxVersion": ["SPDX-2.3"]}', "unsupported SPDX version"),
        (b'{"bomFormat": "CycloneDX", "specVersion": "1.6", "components": {}}', "expected an array"),
        (b'{"bomFormat": "CycloneDX", "specVersion": "1.6", "components": [1]}', "expected an object"),
        (b'{"bomFormat": "CycloneDX", "specVersion": "1.6", "components": [{"name": 5}]}', "expected a string"),
        (b'{"bomFormat": "CycloneDX", "specVersion": "1.6", "metadata": []}', "expected an object"),
        (b'{"spdxVersion": "SPDX-2.3", "packages": [{"name": ["x"]}]}', "expected a string"),
        (b'{"spdxVersion": "SPDX-2.3", "relationships": "none"}', "expected an array"),
    ],
)
def test_rejects(data: bytes, match: str) -> None:
    _must_fail(data, match)


def test_non_bytes_input() -> None:
    with pytest.raises(HullguardError):
        read_sbom("{}", "x")  # type: ignore[arg-type]


def test_deep_json_nesting() -> None:
    _must_fail(b"[" * 200_000 + b"]" * 200_000)
    _must_fail(b'{"bomFormat": "CycloneDX", "specVersion": "1.6", "x": ' + b"{" * 50_000)


def test_deep_component_nesting() -> None:
    comp: dict[str, Any] = {"type": "library", "name": "leaf", "purl": "pkg:npm/leaf@1"}
    for _ in range(sbom_in.MAX_COMPONENT_DEPTH + 5):
        comp = {"type": "library", "name": "n", "purl": "pkg:npm/n@1", "components": [comp]}
    doc = {"bomFormat": "CycloneDX", "specVersion": "1.6", "components": [comp]}
    _must_fail(json.dumps(doc).encode(), "nested")


def test_giant_field_is_refused() -> None:
    doc = {"bomFormat": "CycloneDX", "specVersion": "1.6", "components": [{"type": "library", "name": "x" * 200_000}]}
    _must_fail(json.dumps(doc).encode(), "longer than")


def test_giant_unused_field_is_fine() -> None:
    doc = {
        "bomFormat": "CycloneDX",
        "specVersion": "1.6",
        "components": [
            {"type": "library", "name": "x", "purl": "pkg:npm/x@1", "description": "y" * 5_000_000},
        ],
    }
    assert [p.name for p in read_sbom(json.dumps(doc).encode(), "x").packages] == ["x"]


def test_size_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sbom_in, "MAX_BYTES", 100)
    _must_fail(b" " * 101 + b"{}", "larger than")


def test_byte_order_mark_is_accepted() -> None:
    data = b"\xef\xbb\xbf" + cyclonedx.render(debian_image_result())
    assert read_sbom(data, "x").packages


def test_malformed_purl_is_a_warning_not_a_crash() -> None:
    doc = {
        "bomFormat": "CycloneDX",
        "specVersion": "1.6",
        "components": [
            {"type": "library", "name": "a", "purl": "not-a-purl"},
            {"type": "library", "name": "b", "purl": "pkg:"},
            {"type": "library", "name": "c", "purl": "pkg:npm/c@1"},
        ],
    }
    result = read_sbom(json.dumps(doc).encode(), "x")
    assert [p.name for p in result.packages] == ["c"]
    assert any("malformed package URL" in w for w in result.warnings)


def test_odd_strings_survive() -> None:
    doc = (
        b'{"bomFormat": "CycloneDX", "specVersion": "1.6", "components": [{"type": "library", '
        b'"name": "\\u0000\\u202e", "version": "\\ud83d\\ude00", "purl": "pkg:npm/%ff%00@1"}]}'
    )
    result = read_sbom(doc, "x")
    assert len(result.packages) == 1
    cyclonedx.render(result)
    spdx.render(result)
    # A lone surrogate cannot be valid UTF-8 text.
    _must_fail(doc.replace(b"\\u0000", b"\\udc80"), "not valid JSON")


# ---------------------------------------------------------------- systematic mutation

_VALUES: list[Any] = [None, 0, -1, 1.5, True, "", "x", "pkg:", [], [1], {}, {"a": 1}, "sha256:" + "0" * 64]


def _paths(node: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield path
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, (*path, key))
    elif isinstance(node, list):
        for index, value in enumerate(node[:3]):
            yield from _paths(value, (*path, index))


def _replace(doc: Any, path: tuple[Any, ...], value: Any) -> Any:
    out = copy.deepcopy(doc)
    if not path:
        return value
    node = out
    for step in path[:-1]:
        node = node[step]
    node[path[-1]] = value
    return out


def _documents() -> Iterator[tuple[str, Any]]:
    for path in sorted(FIXTURES.glob("*.json")):
        yield path.name, json.loads(path.read_bytes())
    small = debian_image_result()
    small.packages = small.packages[:3]
    yield "ours.cdx", json.loads(cyclonedx.render(small))
    yield "ours.spdx", json.loads(spdx.render(small))


@pytest.mark.parametrize(("label", "doc"), list(_documents()), ids=lambda v: v if isinstance(v, str) else "")
def test_every_field_with_every_wrong_type(label: str, doc: Any) -> None:
    checked = 0
    for path in _paths(doc):
        for value in _VALUES:
            data = json.dumps(_replace(doc, path, value)).encode()
            try:
                result = read_sbom(data, label)
            except HullguardError as exc:
                assert "\n" not in str(exc), (path, value)
            else:
                assert isinstance(result, ScanResult)
                # Whatever came in, the result still renders.
                cyclonedx.render(result)
                spdx.render(result)
            checked += 1
    assert checked > 100
