"""The agent loop: bounded queue under a flood, drop counters and drop alerts, hooks, stopping."""

from __future__ import annotations

import threading
import tracemalloc
from collections.abc import Callable
from typing import Any

import pytest

from hullguard.runtime.agent import DROP_RULE, Agent, EventQueue
from hullguard.runtime.engine import Alert, Engine
from hullguard.runtime.rules import load_rules

RULES = """
- rule: Marked exec
  desc: an exec whose command line carries the marker
  condition: evt.type = execve and proc.cmdline contains MARK
  output: marked %proc.cmdline
  priority: WARNING
"""


def engine() -> Engine:
    return Engine(load_rules(texts=[("t.yaml", RULES)]), hostname="t")


def ev(i: int, mark: bool = False) -> dict[str, Any]:
    return {"_source": "syscall", "evt.type": "execve", "evt.dir": "<", "proc.name": "x",
            "proc.cmdline": f"x {i}" + (" MARK" if mark else "")}


class FloodSource:
    """Pushes ``burst`` events synchronously in start() (so the queue overflows before the agent
    reads anything), then ``more`` from a thread as fast as it can, then reports itself finished."""

    def __init__(self, name: str, burst: int, more: int, mark_every: int = 0) -> None:
        self.name, self.burst, self.more, self.mark_every = name, burst, more, mark_every
        self.finished = False
        self.sent = 0
        self._thread: threading.Thread | None = None

    def _push(self, emit: Callable[[dict[str, Any]], bool], n: int) -> None:
        for _ in range(n):
            i = self.sent
            emit(ev(i, bool(self.mark_every) and i % self.mark_every == 0))
            self.sent += 1

    def start(self, emit: Callable[[dict[str, Any]], bool]) -> None:
        self._push(emit, self.burst)

        def rest() -> None:
            self._push(emit, self.more)
            self.finished = True

        self._thread = threading.Thread(target=rest, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._thread.join()

    def stats(self) -> dict[str, int]:
        return {"sent": self.sent}


class Sink:
    def __init__(self, fail: bool = False) -> None:
        self.alerts: list[Alert] = []
        self.fail = fail

    def emit(self, alert: Alert) -> None:
        self.alerts.append(alert)
        if self.fail:
            raise OSError("disk full")


def test_flood_is_bounded_counted_and_reported() -> None:
    a, b = FloodSource("a", burst=5000, more=20000, mark_every=1000), FloodSource("b", burst=3000, more=0)
    sink = Sink()
    agent = Agent(engine(), [a, b], sink, queue_size=64, drop_alert_interval=0.05, log=lambda m: None)
    stats = agent.run(duration=60)
    assert agent.queue.high_water <= 64
    assert stats.dropped["a"] > 0 and stats.dropped["b"] > 0
    for src in (a, b):
        assert stats.enqueued.get(src.name, 0) + stats.dropped[src.name] == src.sent
    assert stats.events == sum(stats.enqueued.values())
    drops = [x for x in sink.alerts if x.rule == DROP_RULE]
    assert drops and drops[0].source == "internal" and drops[0].priority == "Critical"
    # The drop alerts together account for every dropped event, per source.
    for name in ("a", "b"):
        assert sum(x.output_fields.get(f"n_drops_{name}", 0) for x in drops) == stats.dropped[name]
    assert sum(x.output_fields["n_drops"] for x in drops) == sum(stats.dropped.values())
    marked = [x for x in sink.alerts if x.rule == "Marked exec"]
    assert 0 < len(marked) <= 25
    assert stats.alerts == len(sink.alerts)


def test_queue_policies() -> None:
    newest = EventQueue(3, "newest")
    oldest = EventQueue(3, "oldest")
    for i in range(5):
        newest.put("s", {"i": i})
        oldest.put("s" if i < 4 else "t", {"i": i})
    assert [newest.get(0)[1]["i"] for _ in range(3)] == [0, 1, 2]
    assert [oldest.get(0)[1]["i"] for _ in range(3)] == [2, 3, 4]
    assert newest.dropped == {"s": 2} and oldest.dropped == {"s": 2}
    assert newest.get(0) is None
    with pytest.raises(ValueError):
        EventQueue(0)
    with pytest.raises(ValueError):
        EventQueue(3, "random")


def test_queue_memory_stays_bounded_under_flood() -> None:
    q = EventQueue(100, "oldest")
    tracemalloc.start()
    try:
        for i in range(1000):
            q.put("s", ev(i))
        base = tracemalloc.get_traced_memory()[0]
        for i in range(50000):
            q.put("s", ev(i))
        grown = tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()
    assert len(q) == 100 and q.total_dropped() == 50900
    # 50,000 more events went through a full queue: what is held did not grow with them.
    assert grown < 64 * 1024


class Hooks:
    def __init__(self) -> None:
        self.observed: list[dict[str, Any]] = []
        self.handled: list[tuple[str, dict[str, Any]]] = []

    def observe(self, e: dict[str, Any]) -> list[Alert]:
        self.observed.append(e)
        if "new-binary" in e.get("proc.cmdline", ""):
            return [Alert(time="2026-11-23T00:00:00.000000000Z", rule="Unexpected process in workload",
                          priority="Notice", source="syscall", output="unexpected", output_fields={}, tags=[],
                          hostname="t")]
        return []

    def handle(self, alert: Alert, e: dict[str, Any]) -> list[str]:
        self.handled.append((alert.rule, e))
        return ["capture"]


class ListSource:
    def __init__(self, events: list[dict[str, Any]]) -> None:
        self.name = "list"
        self.events = events
        self.finished = False

    def start(self, emit: Callable[[dict[str, Any]], bool]) -> None:
        for e in self.events:
            emit(e)
        self.finished = True

    def stop(self) -> None:
        pass

    def stats(self) -> dict[str, int]:
        return {"malformed": 2}


def test_baseline_and_responder_hooks_and_failing_sink() -> None:
    hooks = Hooks()
    events = [ev(1, mark=True), ev(2), {**ev(3), "proc.cmdline": "new-binary --x"}]
    logs: list[str] = []
    sink = Sink(fail=True)
    agent = Agent(engine(), [ListSource(events)], sink, baseline=hooks, responder=hooks, log=logs.append)
    stats = agent.run(duration=30)
    assert len(hooks.observed) == 3
    assert [r for r, _ in hooks.handled] == ["Marked exec", "Unexpected process in workload"]
    assert hooks.handled[1][1]["proc.cmdline"] == "new-binary --x"
    assert stats.responses == 2 and stats.alerts == 2 and stats.sink_errors == 2
    assert len(logs) == 1 and "disk full" in logs[0]  # logged once, not per alert
    assert stats.malformed == 2 and stats.to_dict()["sources"] == {"list": {"malformed": 2}}


def test_stop_from_another_thread_drains_queue() -> None:
    class Idle:
        name = "idle"

        def start(self, emit: Callable[[dict[str, Any]], bool]) -> None:
            for i in range(50):
                emit(ev(i, mark=True))

        def stop(self) -> None:
            pass

        def stats(self) -> dict[str, int]:
            return {}

    sink = Sink()
    agent = Agent(engine(), [Idle()], sink)
    agent.stop()  # stop requested before the loop even looks: queued events still get evaluated
    stats = agent.run()
    assert stats.events == 50 and len(sink.alerts) == 50


def test_a_source_failing_to_start_stops_the_others() -> None:
    stopped: list[str] = []

    class Ok:
        name = "ok"

        def start(self, emit: Callable[[dict[str, Any]], bool]) -> None:
            emit(ev(1, mark=True))

        def stop(self) -> None:
            stopped.append(self.name)

        def stats(self) -> dict[str, int]:
            return {}

    class Broken(Ok):
        name = "broken"

        def start(self, emit: Callable[[dict[str, Any]], bool]) -> None:
            raise OSError("address in use")

    sink = Sink()
    agent = Agent(engine(), [Ok(), Broken()], sink)
    with pytest.raises(OSError):
        agent.run(duration=5)
    assert "ok" in stopped
    assert [a.rule for a in sink.alerts] == ["Marked exec"]  # what was queued still got evaluated


def test_webhook_stop_without_start_returns(tmp_path: Any) -> None:
    from hullguard.runtime.sources.k8s_audit import AuditWebhook

    from .sources.conftest import make_tls

    tls = make_tls(tmp_path)
    hook = AuditWebhook("127.0.0.1", 0, certfile=str(tls.cert), keyfile=str(tls.key))
    hook.bind()
    hook.stop()  # bound but never served: must not wait for a serve loop that never ran
    assert hook._server is None
