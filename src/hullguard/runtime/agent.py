"""The runtime agent: event sources → one bounded queue → engine (+ baseline) → responders → sinks.

Sources run on their own threads and only ever call ``EventQueue.put``; everything downstream
runs on the agent's thread, so the engine, the baseline store and the sinks need no locking.
The queue is bounded: when detection falls behind, events are dropped (the newest by default,
as Falco's ring buffer does, or the oldest) and counted per source, and a periodic internal
alert reports the counts, like Falco's "syscall event drop" alerts.
"""

from __future__ import annotations

import collections
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from hullguard.runtime.engine import Alert, Engine

DROP_RULE = "hullguard internal: events dropped"


class Source(Protocol):
    """An event source: ``start`` spawns its threads, which call ``emit(ev)`` for every event."""

    name: str

    def start(self, emit: Callable[[dict[str, Any]], bool]) -> None: ...

    def stop(self) -> None: ...

    def stats(self) -> dict[str, int]: ...


class EventQueue:
    """A bounded multi-producer, single-consumer queue that drops rather than blocks producers.

    ``policy="newest"`` refuses the incoming event when full; ``"oldest"`` evicts the head to make
    room (fresher events win). Either way the drop is counted against the source that lost it.
    """

    def __init__(self, maxsize: int, policy: str = "newest") -> None:
        if maxsize < 1:
            raise ValueError("queue size must be at least 1")
        if policy not in ("newest", "oldest"):
            raise ValueError("drop policy must be 'newest' or 'oldest'")
        self.maxsize = maxsize
        self.policy = policy
        self._items: collections.deque[tuple[str, dict[str, Any]]] = collections.deque()
        self._cond = threading.Condition()
        self.enqueued: dict[str, int] = collections.Counter()
        self.dropped: dict[str, int] = collections.Counter()
        self.high_water = 0
        self._waiting = False

    def put(self, source: str, ev: dict[str, Any]) -> bool:
        with self._cond:
            items = self._items
            if len(items) >= self.maxsize:
                if self.policy == "newest":
                    self.dropped[source] += 1
                    return False
                old_src, _old = items.popleft()
                self.dropped[old_src] += 1
            items.append((source, ev))
            self.enqueued[source] += 1
            if len(items) > self.high_water:
                self.high_water = len(items)
            if self._waiting:  # notify() costs; only a consumer asleep on an empty queue needs it
                self._cond.notify()
            return True

    def get(self, timeout: float) -> tuple[str, dict[str, Any]] | None:
        got = self.get_batch(1, timeout)
        return got[0] if got else None

    def get_batch(self, max_items: int, timeout: float) -> list[tuple[str, dict[str, Any]]]:
        """Up to max_items events, waiting up to timeout for the first; one lock round trip per
        batch keeps the queue from costing more than the engine under load."""
        with self._cond:
            items = self._items
            if not items and timeout > 0:
                self._waiting = True
                try:
                    self._cond.wait(timeout)
                finally:
                    self._waiting = False
            n = min(max_items, len(items))
            return [items.popleft() for _ in range(n)]

    def __len__(self) -> int:
        return len(self._items)

    def total_dropped(self) -> int:
        with self._cond:
            return sum(self.dropped.values())


@dataclass
class AgentStats:
    events: int = 0
    alerts: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    enqueued: dict[str, int] = field(default_factory=dict)
    sources: dict[str, dict[str, int]] = field(default_factory=dict)
    responses: int = 0
    sink_errors: int = 0
    seconds: float = 0.0

    @property
    def malformed(self) -> int:
        return sum(s.get("malformed", 0) for s in self.sources.values())

    def to_dict(self) -> dict[str, Any]:
        return {"events": self.events, "alerts": self.alerts, "dropped": dict(self.dropped),
                "dropped_total": sum(self.dropped.values()), "enqueued": dict(self.enqueued),
                "malformed": self.malformed, "responses": self.responses, "sink_errors": self.sink_errors,
                "sources": self.sources, "seconds": round(self.seconds, 3)}


class Agent:
    """Runs sources into the engine until stopped, a duration passes, or every source is finished.

    ``sink`` needs ``emit(alert)``; ``baseline`` (optional) ``observe(ev) -> list[Alert]``;
    ``responder`` (optional) ``handle(alert, ev) -> list``. A failing sink or responder is counted
    and logged once, never allowed to stop detection.
    """

    def __init__(self, engine: Engine, sources: Iterable[Source], sink: Any, *, queue_size: int = 10000,
                 drop_policy: str = "newest", baseline: Any = None, responder: Any = None,
                 drop_alert_interval: float = 10.0, log: Callable[[str], None] | None = None) -> None:
        self.engine = engine
        self.sources = list(sources)
        self.sink = sink
        self.queue = EventQueue(queue_size, drop_policy)
        self.baseline = baseline
        self.responder = responder
        self.drop_alert_interval = drop_alert_interval
        self.log = log or (lambda msg: print(f"hullguard: {msg}", file=sys.stderr))
        self._stop = threading.Event()
        self.stats = AgentStats()
        self._reported_drops: dict[str, int] = {}
        self._warned: set[str] = set()

    def stop(self) -> None:
        self._stop.set()

    def _emitter(self, name: str) -> Callable[[dict[str, Any]], bool]:
        put = self.queue.put
        return lambda ev: put(name, ev)

    def run(self, duration: float | None = None) -> AgentStats:
        started = time.monotonic()
        deadline = started + duration if duration is not None else None
        next_drop_check = started + self.drop_alert_interval
        try:
            # Inside the try: when one source fails to start, those already running are stopped.
            for src in self.sources:
                src.start(self._emitter(src.name))
            while not self._stop.is_set():
                now = time.monotonic()
                if deadline is not None and now >= deadline:
                    break
                if now >= next_drop_check:
                    self._report_drops()
                    next_drop_check = now + self.drop_alert_interval
                wait = 0.2 if deadline is None else max(0.0, min(0.2, deadline - now))
                batch = self.queue.get_batch(256, wait)
                if not batch:
                    if self.sources and all(getattr(s, "finished", False) for s in self.sources) \
                            and not len(self.queue):
                        break
                    continue
                for _src, ev in batch:
                    self._handle(ev)
        finally:
            for src in self.sources:
                try:
                    src.stop()
                except Exception as exc:
                    self.log(f"source {src.name} did not stop cleanly: {exc}")
            # Events already queued when the stop came are still evaluated: a burst that arrived
            # just before SIGTERM is usually the interesting part.
            while (item := self.queue.get(0)) is not None:
                self._handle(item[1])
            self._report_drops()
            self.stats.seconds = time.monotonic() - started
            self.stats.dropped = dict(self.queue.dropped)
            self.stats.enqueued = dict(self.queue.enqueued)
            self.stats.sources = {s.name: s.stats() for s in self.sources}
        return self.stats

    def _handle(self, ev: dict[str, Any]) -> None:
        self.stats.events += 1
        alerts = self.engine.process(ev)
        if self.baseline is not None:
            try:
                alerts = alerts + list(self.baseline.observe(ev))
            except Exception as exc:
                self._warn_once("baseline", f"baseline failed: {type(exc).__name__}: {exc}")
        for alert in alerts:
            if self.responder is not None:
                try:
                    self.stats.responses += len(self.responder.handle(alert, ev) or ())
                except Exception as exc:
                    self._warn_once("responder", f"responder failed: {type(exc).__name__}: {exc}")
            self._emit(alert)

    def _emit(self, alert: Alert) -> None:
        self.stats.alerts += 1
        try:
            self.sink.emit(alert)
        except Exception as exc:
            self.stats.sink_errors += 1
            self._warn_once("sink", f"output failed: {type(exc).__name__}: {exc}")

    def _warn_once(self, key: str, msg: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            self.log(msg)

    def _report_drops(self) -> None:
        with self.queue._cond:
            current = dict(self.queue.dropped)
        delta = {k: v - self._reported_drops.get(k, 0) for k, v in current.items()
                 if v - self._reported_drops.get(k, 0) > 0}
        if not delta:
            return
        self._reported_drops = current
        self._emit(drop_alert(delta, self.queue.maxsize, self.engine.hostname))


def drop_alert(delta: dict[str, int], queue_size: int, hostname: str | None = None) -> Alert:
    now = datetime.now(UTC)
    iso = now.strftime("%Y-%m-%dT%H:%M:%S.%f") + "000Z"
    total = sum(delta.values())
    detail = ", ".join(f"{k}={v}" for k, v in sorted(delta.items()))
    fields: dict[str, Any] = {"n_drops": total, "queue_size": queue_size}
    fields.update({f"n_drops_{k}": v for k, v in delta.items()})
    return Alert(time=iso, rule=DROP_RULE, priority="Critical", source="internal",
                 output=f"{iso[11:29]}: Critical hullguard: events dropped. {total} events dropped since the last "
                        f"report ({detail}); the event queue ({queue_size}) was full",
                 output_fields=fields, tags=["hullguard", "internal"], hostname=hostname or socket.gethostname())
