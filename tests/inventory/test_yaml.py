"""Bounded YAML loading: ordinary documents load as PyYAML's safe loader would; documents that
are huge once aliases are expanded, deeply nested, recursive or not YAML are refused with
YamlError before anything is built."""

from __future__ import annotations

import datetime
import time

import pytest
import yaml

from hullguard.inventory._yaml import YamlError, load_all_yaml, load_yaml


def alias_bomb(levels: int, width: int = 10) -> str:
    lines = ["a0: &a0 [" + ", ".join(["lol"] * width) + "]"]
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * width) + "]")
    return "\n".join(lines) + "\n"


def test_matches_safe_load_on_ordinary_documents() -> None:
    text = (
        "apiVersion: v1\nkind: Pod\nmetadata: {name: web, labels: {app: web}}\n"
        "spec:\n  containers:\n  - name: c\n    image: nginx:1.25\n    ports: [{containerPort: 80}]\n"
        "  replicas: 3\n  ratio: 1.5\n  on: yes\n  none: ~\n  day: 2024-01-02\n"
    )
    assert load_yaml(text) == yaml.safe_load(text)
    assert load_yaml(text)["spec"]["day"] == datetime.date(2024, 1, 2)
    assert load_yaml(text.encode()) == yaml.safe_load(text)


def test_text_scalars_keep_versions_as_written() -> None:
    doc = load_yaml("a: 1.10\nb: 2\nc: 2024-01-02\nd: 0x1F\ne: true\nf: null\ng: '3.0'\n", typed_scalars=False)
    assert doc == {"a": "1.10", "b": "2", "c": "2024-01-02", "d": "0x1F", "e": True, "f": None, "g": "3.0"}


def test_merge_keys_and_benign_aliases() -> None:
    doc = load_yaml("base: &b {x: 1}\nderived:\n  <<: *b\n  y: 2\nagain: *b\n")
    assert doc["derived"] == {"x": 1, "y": 2}
    assert doc["again"] == {"x": 1}


def test_empty_stream_is_none() -> None:
    assert load_yaml("") is None
    assert load_yaml("# only a comment\n") is None
    assert load_all_yaml("") == []


def test_load_all() -> None:
    assert load_all_yaml("a: 1\n---\nb: 2\n---\n") == [{"a": 1}, {"b": 2}, None]
    with pytest.raises(YamlError, match="single document"):
        load_yaml("a: 1\n---\nb: 2\n")


def test_alias_bomb_is_refused_quickly() -> None:
    start = time.monotonic()
    with pytest.raises(YamlError, match="expands to more than"):
        load_yaml(alias_bomb(9))  # 10**9 nodes once expanded
    assert time.monotonic() - start < 2


def test_node_bound_counts_aliases_expanded() -> None:
    small = alias_bomb(3)  # 1 + 10 + 100 + ... about 1.2k expanded nodes
    assert load_yaml(small, max_nodes=5_000) is not None
    with pytest.raises(YamlError):
        load_yaml(small, max_nodes=500)


def test_node_bound_spans_all_documents() -> None:
    doc = "[" + ", ".join(["x"] * 50) + "]\n"
    assert len(load_all_yaml(doc + "---\n" + doc, max_nodes=200)) == 2
    with pytest.raises(YamlError):
        load_all_yaml(doc + "---\n" + doc + "---\n" + doc + "---\n" + doc, max_nodes=200)


def test_anchors_do_not_leak_across_documents() -> None:
    with pytest.raises(YamlError, match="undefined"):
        load_all_yaml("a: &x 1\n---\nb: *x\n")


@pytest.mark.parametrize(
    "text",
    [
        "a: &a [*a]\n",
        "a: &a {b: *a}\n",
        "a: *nowhere\n",
    ],
)
def test_recursive_and_undefined_aliases(text: str) -> None:
    with pytest.raises(YamlError):
        load_yaml(text)


@pytest.mark.parametrize(
    "text",
    [
        "[" * 100_000 + "]" * 100_000,  # crashes libyaml's composer if it ever reaches it
        "{a: " * 100_000 + "}" * 100_000,
        "- " * 100_000 + "x\n",
    ],
)
def test_deep_nesting_is_refused_quickly(text: str) -> None:
    start = time.monotonic()
    with pytest.raises(YamlError, match="nested deeper"):
        load_yaml(text)
    assert time.monotonic() - start < 2


def test_depth_bound_is_configurable() -> None:
    text = "[" * 30 + "]" * 30
    assert load_yaml(text, max_depth=30) is not None
    with pytest.raises(YamlError):
        load_yaml(text, max_depth=29)


@pytest.mark.parametrize(
    "data",
    [
        "a: !!python/object/apply:os.system ['true']\n",
        "a: !!python/name:os.system\n",
        "a: [unclosed\n",
        "a: b: c\n",
        "d: 2024-13-45\n",
        "n: " + "9" * 10_000 + "\n",
        "? [a, b]\n: unhashable key\n",
        b"\xff\xfe\xfd",
        b"a: \x00\x01\n",
        "a: !!binary 'abc'\n",  # bad padding
    ],
)
def test_invalid_input_raises_yaml_error_only(data: str | bytes) -> None:
    with pytest.raises(YamlError):
        load_yaml(data)


def test_yaml_error_is_a_value_error() -> None:
    assert issubclass(YamlError, ValueError)
