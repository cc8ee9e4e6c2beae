"""The rule engine: route each event to the rules that can match it and build Falco-shaped alerts.

Rules are indexed by source and then by event type (read from ``evt.type = x`` / ``evt.type in
(...)`` at the top level of the expanded condition), so an ``openat`` never meets the dozens of
exec rules. The per-type candidate list — typed rules merged with the type-less ones, kept in
load order — is built once per type and cached, making routing a single dict lookup.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from hullguard.runtime.rules import CompiledRule, Ruleset

PRIORITY_LABEL = {"emergency": "Emergency", "alert": "Alert", "critical": "Critical", "error": "Error",
                  "warning": "Warning", "notice": "Notice", "informational": "Informational", "debug": "Debug"}
PRIORITY_RANK = {p: i for i, p in enumerate(PRIORITY_LABEL)}
_MAX_CACHED_TYPES = 4096


@dataclass(slots=True)
class Alert:
    time: str
    rule: str
    priority: str
    source: str
    output: str
    output_fields: dict[str, Any]
    tags: list[str]
    hostname: str

    def to_dict(self) -> dict[str, Any]:
        return {"hostname": self.hostname, "output": self.output, "output_fields": self.output_fields,
                "priority": self.priority, "rule": self.rule, "source": self.source, "tags": self.tags,
                "time": self.time}


def _time_of(ev: dict[str, Any]) -> tuple[str, int | None]:
    """(ISO-8601 UTC with nanoseconds, epoch ns) of an event, or the current time."""
    ns = ev.get("evt.time")
    if isinstance(ns, str):
        iso = ns
        try:
            dt = datetime.fromisoformat(ns.replace("Z", "+00:00"))
            ns = int(dt.timestamp()) * 1_000_000_000 + dt.microsecond * 1000
        except ValueError:
            ns = None
        return iso, ns
    if not isinstance(ns, int):
        ns = int(datetime.now(UTC).timestamp() * 1e9)
    secs, frac = divmod(ns, 1_000_000_000)
    return datetime.fromtimestamp(secs, UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{frac:09d}Z", ns


class Engine:
    """Evaluates events against a Ruleset.

    ``rule_matching="first"`` stops at the first matching rule in load order, as Falco does by
    default; ``"all"`` reports every matching rule.
    """

    def __init__(self, ruleset: Ruleset, *, rule_matching: str = "first", min_priority: str = "debug",
                 hostname: str | None = None) -> None:
        if rule_matching not in ("first", "all"):
            raise ValueError("rule_matching must be 'first' or 'all'")
        self.ruleset = ruleset
        self.first_only = rule_matching == "first"
        self.hostname = hostname if hostname is not None else socket.gethostname()
        floor = PRIORITY_RANK.get(min_priority, len(PRIORITY_RANK))
        self.rules = [r for r in ruleset.rules if PRIORITY_RANK[r.priority] <= floor]
        self._typed: dict[str, dict[str, list[CompiledRule]]] = {}
        self._untyped: dict[str, list[CompiledRule]] = {}
        for r in self.rules:
            if r.evttypes is None:
                self._untyped.setdefault(r.source, []).append(r)
            else:
                by_type = self._typed.setdefault(r.source, {})
                for t in r.evttypes:
                    by_type.setdefault(t, []).append(r)
        self._cache: dict[str, dict[Any, tuple[CompiledRule, ...]]] = {}
        self.events = 0
        self.alerts = 0

    def candidates(self, source: str, evttype: Any) -> tuple[CompiledRule, ...]:
        per_source = self._cache.get(source)
        if per_source is None:
            per_source = self._cache[source] = {}
        got = per_source.get(evttype)
        if got is not None:
            return got
        typed = self._typed.get(source, {}).get(evttype, []) if isinstance(evttype, str) else []
        merged = tuple(sorted(typed + self._untyped.get(source, []), key=lambda r: r.index))
        if len(per_source) < _MAX_CACHED_TYPES:
            per_source[evttype] = merged
        return merged

    def process(self, ev: dict[str, Any]) -> list[Alert]:
        """Alerts raised by one normalised event (see replay.normalise for the shapes)."""
        self.events += 1
        source = ev.get("_source", "syscall")
        out: list[Alert] = []
        for rule in self.candidates(source, ev.get("evt.type")):
            if rule.match(ev):
                out.append(self._alert(rule, ev))
                if self.first_only:
                    break
        self.alerts += len(out)
        return out

    def _alert(self, rule: CompiledRule, ev: dict[str, Any]) -> Alert:
        iso, ns = _time_of(ev)
        text, values = rule.output.format(ev)
        if "evt.time" in values and ns is not None:
            values["evt.time"] = ns
        # Falco prefixes the rendered output with the event time and the priority.
        clock = iso[11:29] if len(iso) >= 29 else iso
        label = PRIORITY_LABEL[rule.priority]
        return Alert(time=iso, rule=rule.name, priority=label, source=rule.source,
                     output=f"{clock}: {label} {text}", output_fields=values, tags=list(rule.tags),
                     hostname=str(ev.get("_hostname") or self.hostname))
