"""The rule engine: route each event to the rules that can match it and build Falco-shaped alerts.

Rules are indexed by source and then by event type (read from ``evt.type = x`` / ``evt.type in
(...)`` at the top level of the expanded condition), so an ``openat`` never meets the dozens of
exec rules. The per-type candidate list — typed rules merged with the type-less ones, kept in
load order — is built once per type and cached, making routing a single dict lookup.
"""

from __future__ import annotations

import functools
import socket
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from hullguard.runtime.rules import CompiledRule, Ruleset

PRIORITY_LABEL = {"emergency": "Emergency", "alert": "Alert", "critical": "Critical", "error": "Error",
                  "warning": "Warning", "notice": "Notice", "informational": "Informational", "debug": "Debug"}
PRIORITY_RANK = {p: i for i, p in enumerate(PRIORITY_LABEL)}
_MAX_CACHED_KEYS = 65536


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


def parse_time(text: str) -> int | None:
    """Epoch nanoseconds of an RFC 3339 timestamp, keeping all nine fractional digits."""
    try:
        head, _, rest = text.partition(".")
        frac, tz = rest, ""
        for i, ch in enumerate(rest):
            if not ch.isdigit():
                frac, tz = rest[:i], rest[i:]
                break
        if not rest:
            head, tz = (text[:-1], "Z") if text.endswith("Z") else (text[:19], text[19:])
        dt = datetime.fromisoformat(head + (tz.replace("Z", "+00:00") or "+00:00"))
        return int(dt.timestamp()) * 1_000_000_000 + int((frac + "000000000")[:9])
    except ValueError:
        return None


@functools.lru_cache(maxsize=1024)
def _second(secs: int) -> str:
    # Alerts cluster in time; strftime per alert showed up in profiles.
    return datetime.fromtimestamp(secs, UTC).strftime("%Y-%m-%dT%H:%M:%S")


def format_time(ns: int) -> str:
    secs, frac = divmod(ns, 1_000_000_000)
    return f"{_second(secs)}.{frac:09d}Z"


def _time_of(ev: dict[str, Any]) -> tuple[str, int]:
    """(ISO-8601 UTC with nanoseconds, epoch ns) of an event, or of now when it carries no time."""
    ns = ev.get("evt.time")
    if isinstance(ns, str):
        ns = parse_time(ns)
    if not isinstance(ns, int):
        ns = int(datetime.now(UTC).timestamp() * 1e9)
    return format_time(ns), ns


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
        # Routing tables per source: (evt.type or None, proc.name or None) -> rules, where None
        # means "no constraint"; an event meets the union of its four cells, in load order.
        self._cells: dict[str, dict[tuple[Any, Any], list[CompiledRule]]] = {}
        for r in self.rules:
            cells = self._cells.setdefault(r.source, {})
            for t in r.evttypes if r.evttypes is not None else (None,):
                for n in r.procnames if r.procnames is not None else (None,):
                    cells.setdefault((t, n), []).append(r)
        self._cache: dict[str, dict[tuple[Any, Any], tuple[tuple[Any, CompiledRule], ...]]] = {}
        self.events = 0
        self.alerts = 0
        self.eval_errors = 0

    def candidates(self, source: str, evttype: Any, procname: Any = None) -> tuple[CompiledRule, ...]:
        return tuple(r for _fn, r in self._candidates(source, evttype, procname))

    def _candidates(self, source: str, evttype: Any, procname: Any) -> tuple[tuple[Any, CompiledRule], ...]:
        per_source = self._cache.get(source)
        if per_source is None:
            per_source = self._cache[source] = {}
        key = (evttype, procname)
        got = per_source.get(key)
        if got is not None:
            return got
        cells = self._cells.get(source, {})
        found: dict[int, CompiledRule] = {}
        for t in (evttype, None) if isinstance(evttype, str) else (None,):
            for n in (procname, None) if isinstance(procname, str) else (None,):
                for r in cells.get((t, n), ()):
                    found[r.index] = r
        merged = tuple((found[i].routed_match or found[i].match, found[i]) for i in sorted(found))
        if len(per_source) >= _MAX_CACHED_KEYS:
            per_source.clear()  # bounded memory under a flood of distinct process names
        per_source[key] = merged
        return merged

    def process(self, ev: dict[str, Any]) -> list[Alert]:
        """Alerts raised by one normalised event (see replay.normalise for the shapes)."""
        self.events += 1
        source = ev.get("_source", "syscall")
        out: list[Alert] = []
        etype = ev.get("evt.type")
        pname = ev.get("proc.name")
        # Route on string keys only: anything else (hostile input) meets the untyped rules.
        key_t = etype if type(etype) is str else None
        key_p = pname if type(pname) is str else None
        for match, rule in self._candidates(source if type(source) is str else "", key_t, key_p):
            try:
                hit = match(ev)
            except (TypeError, ValueError, AttributeError, KeyError, IndexError):
                # A value of an unexpected type in a hand-made or hostile event: the rule cannot
                # match it; count it rather than abort the whole stream.
                self.eval_errors += 1
                continue
            if hit:
                out.append(self._alert(rule, ev))
                if self.first_only:
                    break
        self.alerts += len(out)
        return out

    def _alert(self, rule: CompiledRule, ev: dict[str, Any]) -> Alert:
        iso, ns = _time_of(ev)
        text, values = rule.output.format(ev)
        if "evt.time" in values:
            values["evt.time"] = ns
        # Falco prefixes the rendered output with the event time and the priority.
        clock = iso[11:29]
        label = PRIORITY_LABEL[rule.priority]
        return Alert(time=iso, rule=rule.name, priority=label, source=rule.source,
                     output=f"{clock}: {label} {text}", output_fields=values, tags=list(rule.tags),
                     hostname=str(ev.get("_hostname") or self.hostname))
