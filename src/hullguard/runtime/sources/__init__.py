"""Runtime event sources for the agent (see agent.py for the contract).

- ``k8s_audit``: HTTPS receiver for the API server's audit webhook backend, and a tailer for
  audit log files (JSON lines, rotation handled).
- ``proc``: polls /proc for new processes, their files and connections; containers by cgroup.
- ``ebpf``: exec/open/connect through bpftrace, and why it cannot run when it cannot.
"""

from __future__ import annotations

from typing import Any

import msgspec

from hullguard.runtime.replay import MAX_LINE, normalise

_decoder = msgspec.json.Decoder()


def decode_events(data: bytes, limit: int = MAX_LINE) -> list[dict[str, Any]] | None:
    """Engine events in one JSON document (an audit Event/EventList, Falco or Tetragon line), or
    None when it is not valid JSON or no event shape we know."""
    if len(data) > limit:
        return None
    try:
        return normalise(_decoder.decode(data))
    except (msgspec.DecodeError, ValueError, TypeError, AttributeError, RecursionError):
        return None


__all__ = ["decode_events"]
