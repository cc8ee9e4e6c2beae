"""Load Falco rules files unmodified: lists, macros, rules, appends, overrides and exceptions.

Files are read with ``yaml.compose`` first so every item keeps the line it came from; errors in
the files themselves (bad YAML, wrong shapes, appends to nothing) raise RulesError naming file,
line and the offending text. Problems confined to one rule (a field we do not implement, an
undefined macro) do not stop the load: the rule is recorded as skipped with the reason, as
``hullguard runtime rules validate`` reports.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import yaml

from hullguard.model import HullguardError
from hullguard.runtime.condition import (
    ConditionError,
    Node,
    OutputFormat,
    UndefinedMacro,
    Unsupported,
    compile_condition,
    drop_routed,
    event_types,
    expand,
    field_values,
    flatten,
    parse,
)

ENGINE_VERSION = (0, 43, 0)
SUPPORTED_SOURCES = ("syscall", "k8s_audit")
PROVIDED_PLUGINS = {"k8saudit": (0, 12, 0), "json": (0, 7, 0)}
PRIORITIES = ("emergency", "alert", "critical", "error", "warning", "notice", "informational", "debug")
_PRIORITY_ALIASES = {"info": "informational", "warn": "warning", "err": "error", "crit": "critical",
                     "emerg": "emergency"}
# Which keys an ``override:`` may append to or replace (Falco's rules-overriding documentation).
_OVERRIDE = {
    "rule": {"append": {"condition", "output", "desc", "tags", "exceptions"},
             "replace": {"condition", "output", "desc", "priority", "tags", "exceptions", "enabled",
                         "warn_evttypes", "skip-if-unknown-filter", "source"}},
    "macro": {"append": {"condition"}, "replace": {"condition"}},
    "list": {"append": {"items"}, "replace": {"items"}},
}


_BaseLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _RulesYamlLoader(_BaseLoader):  # type: ignore[misc, valid-type]
    """Safe loader where a bare ``=`` is a string: PyYAML resolves it to the YAML 1.1 "value" tag,
    but Falco files write ``comps: [=, startswith]`` and mean the operator."""


_RulesYamlLoader.add_constructor("tag:yaml.org,2002:value", _BaseLoader.construct_yaml_str)


class RulesError(HullguardError):
    """A rules file that cannot be loaded: carries file, line and the offending text."""


@dataclass
class Where:
    file: str
    line: int
    text: str = ""

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass
class RuleDef:
    name: str
    where: Where
    condition: str = ""
    output: str = ""
    desc: str = ""
    priority: str = "debug"
    tags: list[str] = field(default_factory=list)
    enabled: bool = True
    source: str = "syscall"
    exceptions: list[dict[str, Any]] = field(default_factory=list)
    skip_if_unknown_filter: bool = False


@dataclass
class CompiledRule:
    """One rule ready to run: its matcher, output template and the event types it can match."""

    index: int
    name: str
    priority: str
    source: str
    tags: list[str]
    output: OutputFormat
    match: Callable[[dict[str, Any]], bool]
    evttypes: frozenset[str] | None
    where: Where
    desc: str = ""
    # The engine also routes by process name when every match needs one of a few names.
    procnames: frozenset[str] | None = None
    # The condition without the conjuncts routing already guarantees (what the engine runs).
    routed_match: Callable[[dict[str, Any]], bool] | None = None


@dataclass
class RuleStatus:
    name: str
    status: str  # loaded | disabled | skipped | error
    where: Where
    source: str = "syscall"
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        d = {"rule": self.name, "status": self.status, "file": self.where.file, "line": self.where.line,
             "source": self.source}
        if self.reason:
            d["reason"] = self.reason
        return d


@dataclass
class Ruleset:
    rules: list[CompiledRule]
    statuses: list[RuleStatus]
    warnings: list[str]
    required_engine_version: str = ""


def _line_text(text: str, line: int) -> str:
    lines = text.splitlines()
    return lines[line - 1].strip() if 0 < line <= len(lines) else ""


def _version_tuple(v: Any) -> tuple[int, ...]:
    s = str(v).strip()
    if s.isdigit():  # old integer engine versions predate semver: treat N as 0.N.0
        return (0, int(s), 0)
    out = []
    for part in s.split("."):
        digits = "".join(ch for ch in part if ch.isdigit())
        out.append(int(digits or 0))
    return tuple(out)


def _priority(value: Any, where: Where) -> str:
    p = str(value).strip().lower()
    p = _PRIORITY_ALIASES.get(p, p)
    if p not in PRIORITIES:
        raise RulesError(f"{where}: invalid priority {value!r} (expected one of {', '.join(PRIORITIES)}): "
                         f"{where.text}")
    return p


def _as_list(v: Any) -> list[Any]:
    if v is None:
        return []
    return v if isinstance(v, list) else [v]


class Loader:
    """Accumulates items from several files in order, then compiles the rules."""

    def __init__(self) -> None:
        self.lists: dict[str, list[str]] = {}
        self.list_where: dict[str, Where] = {}
        self.macros: dict[str, str] = {}
        self.macro_where: dict[str, Where] = {}
        self.rules: dict[str, RuleDef] = {}
        self.warnings: list[str] = []
        self.required_engine_version = ""

    # -- reading -------------------------------------------------------------------------------

    def load_file(self, path: str) -> None:
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except OSError as exc:
            raise RulesError(f"{path}: cannot read rules file: {exc.strerror or exc}") from exc
        self.load_text(text, path)

    def load_text(self, text: str, name: str = "<rules>") -> None:
        loader = _RulesYamlLoader(text)
        try:
            node = loader.get_single_node()
            data = loader.construct_document(node) if node is not None else None
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line = mark.line + 1 if mark else 0
            raise RulesError(f"{name}:{line}: invalid YAML: {exc.problem or exc.context}: "
                             f"{_line_text(text, line)!r}") from exc
        except yaml.YAMLError as exc:
            raise RulesError(f"{name}: invalid YAML: {exc}") from exc
        finally:
            loader.dispose()
        if data is None:
            return
        if not isinstance(data, list) or not isinstance(node, yaml.SequenceNode):
            raise RulesError(f"{name}:1: a rules file must be a YAML list of items: {_line_text(text, 1)!r}")
        for item, inode in zip(data, node.value, strict=True):
            line = inode.start_mark.line + 1
            where = Where(name, line, _line_text(text, line))
            if not isinstance(item, dict):
                raise RulesError(f"{where}: expected a rule, macro or list item: {where.text!r}")
            self._item(item, where)

    def _item(self, item: dict[str, Any], where: Where) -> None:
        if "required_engine_version" in item:
            req = item["required_engine_version"]
            self.required_engine_version = str(req)
            if _version_tuple(req) > ENGINE_VERSION:
                self.warnings.append(f"{where}: rules require engine version {req}; this engine implements "
                                     f"{'.'.join(map(str, ENGINE_VERSION))}, loading anyway")
            return
        if "required_plugin_versions" in item:
            for plug in _as_list(item["required_plugin_versions"]):
                if not isinstance(plug, dict) or "name" not in plug:
                    raise RulesError(f"{where}: required_plugin_versions entries need a name: {where.text!r}")
                if plug["name"] not in PROVIDED_PLUGINS:
                    self.warnings.append(f"{where}: plugin {plug['name']!r} is not available; rules for its "
                                         "source will be skipped")
            return
        if "list" in item:
            self._list(item, where)
        elif "macro" in item:
            self._macro(item, where)
        elif "rule" in item:
            self._rule(item, where)
        else:
            # Falco only warns about unknown top-level objects so newer files load on older engines.
            self.warnings.append(f"{where}: unknown item {sorted(item)!r} ignored")

    def _override(self, kind: str, item: dict[str, Any], where: Where) -> dict[str, str]:
        ov = item.get("override")
        if ov is None:
            return {}
        if not isinstance(ov, dict):
            raise RulesError(f"{where}: override must be a mapping of key: append|replace: {where.text!r}")
        if item.get("append"):
            raise RulesError(f"{where}: 'append' and 'override' cannot be used together: {where.text!r}")
        for key, how in ov.items():
            if how not in ("append", "replace"):
                raise RulesError(f"{where}: override of {key!r} must be append or replace, not {how!r}")
            if key not in _OVERRIDE[kind][how]:
                raise RulesError(f"{where}: key {key!r} of a {kind} cannot be overridden with {how}")
            if key not in item:
                raise RulesError(f"{where}: override names {key!r} but the item has no {key!r}")
        return ov

    def _list(self, item: dict[str, Any], where: Where) -> None:
        name = item["list"]
        items = item.get("items")
        if items is None or not isinstance(items, list):
            raise RulesError(f"{where}: list {name!r} needs 'items' as a YAML list: {where.text!r}")
        items = [str(i) for i in items]
        ov = self._override("list", item, where)
        mode = ov.get("items") or ("append" if item.get("append") else "")
        if mode:
            if name not in self.lists:
                raise RulesError(f"{where}: list {name!r} has '{mode}' but no list by that name was defined "
                                 f"before: {where.text!r}")
            self.lists[name] = (self.lists[name] + items) if mode == "append" else items
            return
        self.lists[name] = items
        self.list_where[name] = where

    def _macro(self, item: dict[str, Any], where: Where) -> None:
        name = item["macro"]
        cond = item.get("condition")
        if not isinstance(cond, str):
            raise RulesError(f"{where}: macro {name!r} needs a 'condition' string: {where.text!r}")
        ov = self._override("macro", item, where)
        mode = ov.get("condition") or ("append" if item.get("append") else "")
        if mode:
            if name not in self.macros:
                raise RulesError(f"{where}: macro {name!r} has '{mode}' but no macro by that name was defined "
                                 f"before: {where.text!r}")
            self.macros[name] = f"{self.macros[name]} {cond}" if mode == "append" else cond
            return
        self.macros[name] = cond
        self.macro_where[name] = where

    def _rule(self, item: dict[str, Any], where: Where) -> None:
        name = str(item["rule"])
        ov = self._override("rule", item, where)
        if item.get("append"):
            ov = {k: "append" for k in ("condition", "output", "desc", "tags", "exceptions") if k in item}
            if "enabled" in item:
                ov["enabled"] = "replace"
        if ov:
            old = self.rules.get(name)
            if old is None:
                raise RulesError(f"{where}: rule {name!r} is overridden/appended but was not defined before: "
                                 f"{where.text!r}")
            for key, how in ov.items():
                self._apply(old, key, how, item[key], where)
            return
        if set(item) <= {"rule", "enabled"} and name in self.rules:
            # Falco's legacy form: a bare `enabled:` toggles an existing rule.
            self.rules[name].enabled = bool(item.get("enabled", True))
            return
        missing = [k for k in ("condition", "output", "priority") if k not in item]
        if missing:
            raise RulesError(f"{where}: rule {name!r} lacks {', '.join(missing)}: {where.text!r}")
        if not isinstance(item["condition"], str) or not isinstance(item["output"], str):
            raise RulesError(f"{where}: rule {name!r}: condition and output must be strings: {where.text!r}")
        rd = RuleDef(name=name, where=where, condition=item["condition"], output=item["output"],
                     desc=str(item.get("desc", "")), priority=_priority(item["priority"], where),
                     tags=[str(t) for t in _as_list(item.get("tags"))], enabled=bool(item.get("enabled", True)),
                     source=str(item.get("source", "syscall")),
                     exceptions=self._exceptions(item.get("exceptions"), where),
                     skip_if_unknown_filter=bool(item.get("skip-if-unknown-filter", False)))
        self.rules[name] = rd

    def _exceptions(self, value: Any, where: Where) -> list[dict[str, Any]]:
        out = []
        for exc in _as_list(value):
            if not isinstance(exc, dict) or "name" not in exc:
                raise RulesError(f"{where}: every exception needs a name: {where.text!r}")
            out.append(dict(exc))
        return out

    def _apply(self, rd: RuleDef, key: str, how: str, value: Any, where: Where) -> None:
        if key == "condition":
            rd.condition = f"{rd.condition} {value}" if how == "append" else str(value)
        elif key in ("output", "desc"):
            setattr(rd, key, f"{getattr(rd, key)} {value}" if how == "append" else str(value))
        elif key == "tags":
            rd.tags = rd.tags + [str(t) for t in _as_list(value)] if how == "append" else \
                [str(t) for t in _as_list(value)]
        elif key == "exceptions":
            new = self._exceptions(value, where)
            if how == "replace":
                rd.exceptions = new
                return
            by_name = {e["name"]: e for e in rd.exceptions}
            for e in new:
                if e["name"] in by_name and "fields" not in e:
                    # Appending to a named exception adds values to it.
                    old = by_name[e["name"]]
                    old["values"] = list(old.get("values") or []) + list(e.get("values") or [])
                else:
                    rd.exceptions.append(e)
        elif key == "priority":
            rd.priority = _priority(value, where)
        elif key == "enabled":
            rd.enabled = bool(value)
        elif key == "source":
            rd.source = str(value)
        elif key == "skip-if-unknown-filter":
            rd.skip_if_unknown_filter = bool(value)

    # -- compiling -----------------------------------------------------------------------------

    def _expanded_lists(self) -> dict[str, list[str]]:
        done: dict[str, list[str]] = {}

        def resolve(name: str, stack: tuple[str, ...]) -> list[str]:
            if name in done:
                return done[name]
            out: list[str] = []
            for item in self.lists[name]:
                if item in self.lists and item not in stack and item != name:
                    out.extend(resolve(item, (*stack, name)))
                else:
                    out.append(_unquote(item))
            done[name] = out
            return out

        for n in self.lists:
            resolve(n, ())
        return done

    def compile(self) -> Ruleset:
        lists = self._expanded_lists()
        macro_ast: dict[str, Node] = {}
        macro_err: dict[str, str] = {}
        for name, cond in self.macros.items():
            try:
                macro_ast[name] = parse(cond)
            except ConditionError as exc:
                macro_err[name] = f"macro {name!r} ({self.macro_where[name]}): {exc}"
        rules: list[CompiledRule] = []
        statuses: list[RuleStatus] = []
        for rd in self.rules.values():
            st = RuleStatus(rd.name, "loaded", rd.where, rd.source)
            statuses.append(st)
            if not rd.enabled:
                st.status, st.reason = "disabled", "enabled: false"
                continue
            if rd.source not in SUPPORTED_SOURCES:
                st.status, st.reason = "skipped", f"unsupported source {rd.source!r}"
                continue
            try:
                cond_text = rd.condition
                exc_text = exceptions_condition(rd.exceptions, lists)
                if exc_text:
                    cond_text = f"({cond_text}) and not ({exc_text})"
                ast = parse(cond_text)
                expanded = flatten(expand(ast, _MacroView(macro_ast, macro_err), lists))
                fn = compile_condition(expanded, rd.name)
                out = OutputFormat(rd.output)
                evttypes = event_types(expanded)
                procnames = field_values(expanded, "proc.name") if rd.source == "syscall" else None
                routed = expanded
                if evttypes is not None:
                    routed = drop_routed(routed, "evt.type")
                if procnames is not None:
                    routed = drop_routed(routed, "proc.name")
                routed_fn = fn if routed is expanded else compile_condition(routed, rd.name)
            except Unsupported as exc:
                st.status, st.reason = "skipped", f"{exc} ({rd.where})"
                continue
            except (UndefinedMacro, ConditionError) as exc:
                st.status, st.reason = "error", f"{exc} ({rd.where})"
                continue
            rules.append(CompiledRule(index=len(rules), name=rd.name, priority=rd.priority, source=rd.source,
                                      tags=rd.tags, output=out, match=fn, evttypes=evttypes,
                                      where=rd.where, desc=rd.desc, procnames=procnames, routed_match=routed_fn))
        return Ruleset(rules, statuses, self.warnings, self.required_engine_version)


class _MacroView(dict):  # type: ignore[type-arg]
    """Macros by name; a macro that failed to parse surfaces its own error when a rule uses it."""

    def __init__(self, asts: dict[str, Node], errors: dict[str, str]) -> None:
        super().__init__(asts)
        self.errors = errors

    def __contains__(self, key: object) -> bool:
        if isinstance(key, str) and key in self.errors:
            raise ConditionError(self.errors[key])
        return super().__contains__(key)


def _unquote(item: str) -> str:
    """Falco splices list items into conditions as text, so an item written '"10.0.0.0/8"' (quotes
    inside the YAML string, to protect '-' or '/') means the bare value."""
    if len(item) >= 2 and item[0] == item[-1] and item[0] in "\"'":
        return item[1:-1]
    return item


def _quote(v: Any) -> str:
    s = str(v)
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _exc_value(comp: str, value: Any, lists: dict[str, list[str]]) -> str:
    if comp in ("in", "intersects", "pmatch"):
        if isinstance(value, list):
            return "(" + ", ".join(_quote(v) for v in value) + ")"
        if str(value) in lists:
            return f"({value})"
        return f"({_quote(value)})"
    return _quote(value)


def exceptions_condition(exceptions: list[dict[str, Any]], lists: dict[str, list[str]]) -> str:
    """The ``or`` of every exception tuple, to be appended to a rule as ``and not (...)``."""
    alts: list[str] = []
    for exc in exceptions:
        fields = exc.get("fields")
        values = exc.get("values") or []
        if fields is None:
            continue
        if isinstance(fields, str):
            # Single-field form: values is a flat list compared with one operator (default "in").
            comp = str(exc.get("comps") or "in")
            if values:
                alts.append(f"{fields} {comp} {_exc_value(comp, values, lists)}")
            continue
        comps = exc.get("comps") or ["="] * len(fields)
        if isinstance(comps, str):
            comps = [comps] * len(fields)
        if len(comps) != len(fields):
            raise ConditionError(f"exception {exc['name']!r}: fields and comps differ in length")
        for tup in values:
            tup = tup if isinstance(tup, list) else [tup]
            if len(tup) != len(fields):
                raise ConditionError(f"exception {exc['name']!r}: value {tup!r} does not match fields {fields!r}")
            parts = [f"{f} {c} {_exc_value(str(c), v, lists)}" for f, c, v in zip(fields, comps, tup, strict=True)]
            alts.append("(" + " and ".join(parts) + ")")
    return " or ".join(alts)


def load_rules(paths: Iterable[str] | None = None, texts: Iterable[tuple[str, str]] = ()) -> Ruleset:
    """Load files (in order: later files override earlier ones) and/or (name, text) pairs."""
    loader = Loader()
    for p in paths or ():
        loader.load_file(os.fspath(p))
    for name, text in texts:
        loader.load_text(text, name)
    return loader.compile()


def default_rules_path() -> str:
    return os.path.join(os.path.dirname(os.path.dirname(__file__)), "data", "rules", "hullguard_rules.yaml")
