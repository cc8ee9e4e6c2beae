"""Property tests: hostile conditions and events never crash the loader or the engine."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from hullguard.runtime.condition import ConditionError, compile_condition, expand, parse
from hullguard.runtime.engine import Engine
from hullguard.runtime.replay import normalise
from hullguard.runtime.rules import default_rules_path, load_rules

TOKENS = ["proc.name", "fd.name", "evt.type", "ka.verb", "proc.aname[2]", "and", "or", "not", "(", ")", "=", "!=",
          "in", "contains", "startswith", "pmatch", "exists", "glob", "<", ">=", "bash", "'x y'", '"q"', ",",
          "(a, b)", "tolower(", "val(", "macro_x", "/etc", "<", "42"]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(TOKENS), min_size=1, max_size=12))
def test_parser_raises_only_condition_errors(tokens: list[str]) -> None:
    text = " ".join(tokens)
    try:
        node = expand(parse(text), {"macro_x": parse("proc.name = x")}, {})
        fn = compile_condition(node)
    except ConditionError:
        return
    fn({"proc.name": "bash", "evt.type": "execve", "fd.name": "/etc/x"})


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=80))
def test_parser_on_arbitrary_text(text: str) -> None:
    try:
        parse(text)
    except ConditionError:
        pass


VALUES = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=10),
                   st.lists(st.text(max_size=5), max_size=3), st.dictionaries(st.text(max_size=3), st.integers()))
ENGINE = Engine(load_rules([default_rules_path()]), rule_matching="all", hostname="h")


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(["evt.type", "evt.dir", "proc.name", "proc.pname", "fd.name", "fd.dport",
                                        "proc.tty", "container.id", "evt.arg.flags", "_anc", "fd.dip", "proc.cmdline",
                                        "container.privileged", "user.uid"]), VALUES))
def test_engine_survives_odd_value_types(fields: dict[str, Any]) -> None:
    ev = {**fields, "_source": "syscall"}
    if not isinstance(ev.get("evt.type"), str):
        ev["evt.type"] = "execve"
    ENGINE.process(ev)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(["verb", "user", "objectRef", "requestObject", "responseStatus", "sourceIPs",
                                        "requestURI", "annotations", "stage", "impersonatedUser"]), VALUES))
def test_engine_survives_odd_audit_events(fields: dict[str, Any]) -> None:
    evs = normalise({"apiVersion": "audit.k8s.io/v1", "kind": "Event", **fields})
    assert evs is not None
    for ev in evs:
        ENGINE.process(ev)
