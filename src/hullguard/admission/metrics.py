"""Prometheus text exposition (format 0.0.4), written by hand: three metric families do not
justify a client library in a process the API server waits on."""

from __future__ import annotations

import bisect
import threading

BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _num(x: float) -> str:
    return repr(float(x)) if x != int(x) else f"{int(x)}"


class Metrics:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.decisions: dict[tuple[str, str], int] = {}  # (policy, result) -> count
        self.requests: dict[tuple[str, str], int] = {}  # (endpoint, outcome) -> count
        self.buckets: dict[str, list[int]] = {}  # endpoint -> per-bucket counts (not cumulative)
        self.sums: dict[str, float] = {}
        self.counts: dict[str, int] = {}
        self.in_flight = 0

    def enter(self) -> None:
        with self._lock:
            self.in_flight += 1

    def leave(self) -> None:
        with self._lock:
            self.in_flight -= 1

    def observe(self, endpoint: str, outcome: str, seconds: float, results: list[tuple[str, str]]) -> None:
        with self._lock:
            key = (endpoint, outcome)
            self.requests[key] = self.requests.get(key, 0) + 1
            b = self.buckets.get(endpoint)
            if b is None:
                b = self.buckets[endpoint] = [0] * (len(BUCKETS) + 1)
            b[bisect.bisect_left(BUCKETS, seconds)] += 1
            self.sums[endpoint] = self.sums.get(endpoint, 0.0) + seconds
            self.counts[endpoint] = self.counts.get(endpoint, 0) + 1
            for r in results:
                self.decisions[r] = self.decisions.get(r, 0) + 1

    def render(self) -> bytes:
        with self._lock:
            lines = [
                "# HELP hullguard_admission_decisions_total Policy results by policy and result.",
                "# TYPE hullguard_admission_decisions_total counter",
            ]
            for (policy, result), n in sorted(self.decisions.items()):
                lines.append(f'hullguard_admission_decisions_total{{policy="{_label(policy)}",'
                             f'result="{_label(result)}"}} {n}')
            lines += ["# HELP hullguard_admission_requests_total AdmissionReview requests by endpoint and outcome.",
                      "# TYPE hullguard_admission_requests_total counter"]
            for (endpoint, outcome), n in sorted(self.requests.items()):
                lines.append(f'hullguard_admission_requests_total{{endpoint="{_label(endpoint)}",'
                             f'outcome="{_label(outcome)}"}} {n}')
            lines += ["# HELP hullguard_admission_request_duration_seconds Time to answer an AdmissionReview.",
                      "# TYPE hullguard_admission_request_duration_seconds histogram"]
            for endpoint in sorted(self.buckets):
                cumulative = 0
                ep = _label(endpoint)
                for bound, n in zip((*BUCKETS, float("inf")), self.buckets[endpoint], strict=True):
                    cumulative += n
                    le = "+Inf" if bound == float("inf") else _num(bound)
                    lines.append(f'hullguard_admission_request_duration_seconds_bucket{{endpoint="{ep}",'
                                 f'le="{le}"}} {cumulative}')
                lines.append(f'hullguard_admission_request_duration_seconds_sum{{endpoint="{ep}"}} '
                             f"{self.sums[endpoint]!r}")
                lines.append(f'hullguard_admission_request_duration_seconds_count{{endpoint="{ep}"}} '
                             f"{self.counts[endpoint]}")
            lines += ["# HELP hullguard_admission_in_flight_requests Requests being answered now.",
                      "# TYPE hullguard_admission_in_flight_requests gauge",
                      f"hullguard_admission_in_flight_requests {self.in_flight}"]
        return ("\n".join(lines) + "\n").encode()
