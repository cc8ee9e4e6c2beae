"""Bounded YAML loading for untrusted input (lockfiles, manifests found inside images).

PyYAML's safe loaders refuse arbitrary Python objects, but they are not safe against documents
that are merely *big when expanded*: an alias bomb ("billion laughs") builds a small node graph
that any consumer walking the result expands exponentially, and deep flow nesting makes libyaml
slow (quadratic) and crashes its recursive C composer outright. So every document is first
streamed as parser events, which costs little and stops early, to measure its nesting depth and
its size with every alias expanded. Only documents within both bounds are composed and
constructed, by the C loader when PyYAML has it.
"""

from __future__ import annotations

from typing import Any

import yaml

__all__ = ["DEFAULT_MAX_DEPTH", "DEFAULT_MAX_NODES", "YamlError", "load_all_yaml", "load_yaml"]

# Generous for real files: a 40k-package pnpm lockfile is around a million nodes. Bounded because
# alias expansion, not file size, is what the count defends against.
DEFAULT_MAX_NODES = 5_000_000
# Real lockfiles and manifests nest fewer than 30 levels. libyaml's C composer recurses without a
# limit and crashes the interpreter near 10k levels; the Python constructor recurses about three
# frames per level, so this also keeps construction well under the interpreter's recursion limit.
DEFAULT_MAX_DEPTH = 200

_SafeBase: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

# Tags that survive in text mode: plain scalars that are versions ("1.10", "2", "1e3") must stay
# strings in lockfiles, while booleans, nulls and merge keys keep their usual meaning.
_TEXT_TAGS = {"tag:yaml.org,2002:bool", "tag:yaml.org,2002:null", "tag:yaml.org,2002:merge"}


class YamlError(ValueError):
    """The document is not valid YAML, or exceeds the node or depth bound."""


class _TypedLoader(_SafeBase):  # type: ignore[misc, valid-type]
    pass


class _TextLoader(_SafeBase):  # type: ignore[misc, valid-type]
    yaml_implicit_resolvers = {
        first: [(tag, regexp) for tag, regexp in resolvers if tag in _TEXT_TAGS]
        for first, resolvers in yaml.resolver.Resolver.yaml_implicit_resolvers.items()
    }


def _loader_class(typed_scalars: bool) -> type:
    return _TypedLoader if typed_scalars else _TextLoader


def _check_bounds(data: bytes | str, loader_cls: type, max_nodes: int, max_depth: int) -> None:
    """Stream the events once and raise YamlError past either bound, before anything is built."""
    count = 0
    depth = 0
    # Expanded size of each anchored node of the current document; an alias to an anchor that is
    # still open (a recursive structure) has no entry yet and is refused.
    sizes: dict[str, int] = {}
    # (anchor, count before the collection started) for each open collection.
    open_nodes: list[tuple[str | None, int]] = []
    for event in yaml.parse(data, Loader=loader_cls):
        if isinstance(event, yaml.ScalarEvent):
            count += 1
            if event.anchor is not None:
                sizes[event.anchor] = 1
        elif isinstance(event, yaml.AliasEvent):
            size = sizes.get(event.anchor)
            if size is None:
                raise YamlError(f"undefined or recursive alias *{event.anchor}")
            count += size
        elif isinstance(event, yaml.CollectionStartEvent):
            open_nodes.append((event.anchor, count))
            count += 1
            depth += 1
            if depth > max_depth:
                raise YamlError(f"YAML nested deeper than {max_depth} levels")
        elif isinstance(event, yaml.CollectionEndEvent):
            if not open_nodes:  # the parser guarantees balance; never trust it blindly
                raise YamlError("unbalanced YAML collections")
            anchor, start = open_nodes.pop()
            depth -= 1
            if anchor is not None:
                sizes[anchor] = count - start
        elif isinstance(event, yaml.DocumentStartEvent):
            sizes.clear()
        if count > max_nodes:
            raise YamlError(f"YAML document expands to more than {max_nodes} nodes")


def _load(data: bytes | str, max_nodes: int, max_depth: int, typed_scalars: bool, single: bool) -> Any:
    loader_cls = _loader_class(typed_scalars)
    try:
        _check_bounds(data, loader_cls, max_nodes, max_depth)
        loader = loader_cls(data)
        try:
            if single:
                node = loader.get_single_node()
                return None if node is None else loader.construct_document(node)
            docs: list[Any] = []
            while loader.check_node():
                docs.append(loader.construct_document(loader.get_node()))
            return docs
        finally:
            loader.dispose()
    except YamlError:
        raise
    # ValueError: out-of-range timestamps and over-long integers; TypeError: odd keys that slip
    # past the constructor's hashability check; RecursionError: a caller already deep in its stack.
    except (yaml.YAMLError, ValueError, TypeError, RecursionError) as exc:
        raise YamlError(f"invalid YAML: {exc}") from exc


def load_yaml(
    data: bytes | str,
    max_nodes: int = DEFAULT_MAX_NODES,
    *,
    max_depth: int = DEFAULT_MAX_DEPTH,
    typed_scalars: bool = True,
) -> Any:
    """Load a single YAML document safely; None for an empty stream.

    With ``typed_scalars=False`` plain scalars other than booleans and nulls stay strings, which
    is what lockfiles want (``version: 1.10`` is not the float 1.1).
    Raises YamlError for invalid YAML, several documents, or a document past either bound.
    """
    return _load(data, max_nodes, max_depth, typed_scalars, single=True)


def load_all_yaml(
    data: bytes | str,
    max_nodes: int = DEFAULT_MAX_NODES,
    *,
    max_depth: int = DEFAULT_MAX_DEPTH,
    typed_scalars: bool = True,
) -> list[Any]:
    """Load every document of a YAML stream safely; ``max_nodes`` bounds the whole stream."""
    return _load(data, max_nodes, max_depth, typed_scalars, single=False)
