"""The audit log tailer: new lines, partial lines, rename rotation, copytruncate, oversize lines."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from hullguard.runtime.sources.k8s_audit import AuditLogTailer

from .test_k8s_webhook import SCENARIOS


def line(ev: dict[str, Any], marker: str) -> bytes:
    ev = dict(ev, auditID=marker)
    return json.dumps(ev).encode() + b"\n"


def ids(events: list[dict[str, Any]]) -> list[str]:
    return [ev["_k8s"]["auditID"] for ev in events]


def tailer(path: Path, **kw: Any) -> tuple[AuditLogTailer, list[dict[str, Any]]]:
    got: list[dict[str, Any]] = []
    t = AuditLogTailer(str(path), **kw)
    t.emit = lambda ev: got.append(ev) is None
    t.open()
    return t, got


SECRET = SCENARIOS["Read secret"]


def test_starts_at_end_by_default_and_from_start_when_asked(tmp_path: Path) -> None:
    log = tmp_path / "audit.log"
    log.write_bytes(line(SECRET, "old-1") + line(SECRET, "old-2"))
    t, got = tailer(log)
    t.poll()
    assert got == []
    with open(log, "ab") as f:
        f.write(line(SECRET, "new-1"))
    t.poll()
    assert ids(got) == ["new-1"]
    t2, got2 = tailer(log, from_start=True)
    t2.poll()
    assert ids(got2) == ["old-1", "old-2", "new-1"]
    assert got2[0]["_source"] == "k8s_audit"


def test_partial_line_waits_for_newline(tmp_path: Path) -> None:
    log = tmp_path / "audit.log"
    log.write_bytes(b"")
    t, got = tailer(log)
    data = line(SECRET, "split")
    with open(log, "ab") as f:
        f.write(data[:50])
        f.flush()
        t.poll()
        assert got == []
        f.write(data[50:-1])
        f.flush()
        t.poll()
        assert got == []
        f.write(b"\n")
    t.poll()
    assert ids(got) == ["split"]
    assert t.counts["malformed"] == 0


def test_rename_rotation_drains_old_file_then_reads_new_from_start(tmp_path: Path) -> None:
    log = tmp_path / "audit.log"
    log.write_bytes(b"")
    t, got = tailer(log)
    with open(log, "ab") as f:
        f.write(line(SECRET, "a"))
    t.poll()
    # The writer appends one more line, then logrotate renames and a new file appears.
    with open(log, "ab") as f:
        f.write(line(SECRET, "b"))
        f.write(line(SECRET, "c-no-newline").rstrip(b"\n"))
    os.rename(log, tmp_path / "audit.log.1")
    log.write_bytes(line(SECRET, "d") + line(SECRET, "e"))
    t.poll()
    assert ids(got) == ["a", "b", "c-no-newline", "d", "e"]
    assert t.counts["rotations"] == 1
    with open(log, "ab") as f:
        f.write(line(SECRET, "f"))
    t.poll()
    assert ids(got)[-1] == "f"


def test_rotated_away_then_recreated_later(tmp_path: Path) -> None:
    log = tmp_path / "audit.log"
    log.write_bytes(b"")
    t, got = tailer(log)
    os.rename(log, tmp_path / "audit.log.1")
    t.poll()  # no file at the path for a while: nothing breaks
    log.write_bytes(line(SECRET, "fresh"))
    t.poll()
    assert ids(got) == ["fresh"]


def test_copytruncate_restarts_from_beginning(tmp_path: Path) -> None:
    log = tmp_path / "audit.log"
    log.write_bytes(b"")
    t, got = tailer(log)
    with open(log, "ab") as f:
        f.write(line(SECRET, "one") + line(SECRET, "two"))
    t.poll()
    # copytruncate: contents copied elsewhere, the same inode truncated to zero, then written again.
    with open(log, "r+b") as f:
        f.truncate(0)
    with open(log, "ab") as f:
        f.write(line(SECRET, "three"))
    t.poll()
    assert ids(got) == ["one", "two", "three"]
    assert t.counts["truncations"] == 1 and t.counts["rotations"] == 0


def test_file_created_after_start_is_read_whole(tmp_path: Path) -> None:
    log = tmp_path / "later.log"
    t, got = tailer(log)
    t.poll()
    log.write_bytes(line(SECRET, "x"))
    t.poll()
    assert ids(got) == ["x"]


def test_malformed_and_oversized_lines_counted_and_skipped(tmp_path: Path) -> None:
    log = tmp_path / "audit.log"
    log.write_bytes(b"")
    t, got = tailer(log, max_line=2048)
    with open(log, "ab") as f:
        f.write(b"not json\n")
        f.write(b'{"kind":"Pod"}\n')
        f.write(b"\n")
        # An oversized line arriving in pieces is dropped without being buffered whole.
        f.write(b"x" * 3000)
        f.flush()
        t.poll()
        assert len(t._buf) <= 2048
        f.write(b"y" * 3000 + b"\n")
        f.write(line(SECRET, "after"))
    t.poll()
    assert ids(got) == ["after"]
    assert t.counts["malformed"] == 3 and t.counts["events"] == 1


def test_event_list_lines_expand(tmp_path: Path) -> None:
    log = tmp_path / "audit.log"
    items = [dict(SECRET, auditID="l1"), dict(SECRET, auditID="l2")]
    log.write_bytes(json.dumps({"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "items": items}).encode()
                    + b"\n")
    t, got = tailer(log, from_start=True)
    t.poll()
    assert ids(got) == ["l1", "l2"]


def test_non_regular_files_refused(tmp_path: Path) -> None:
    import pytest

    from hullguard.model import HullguardError

    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(HullguardError, match="not a regular file"):
        AuditLogTailer(str(fifo)).open()
    with pytest.raises(HullguardError, match="not a regular file"):
        AuditLogTailer("/dev/zero").open()


def test_large_backlog_read_in_bounded_steps(tmp_path: Path) -> None:
    log = tmp_path / "audit.log"
    one = line(SECRET, "bulk")
    n = 50
    log.write_bytes(one * n)
    count = [0]
    t = AuditLogTailer(str(log), from_start=True, max_read=len(one) * 7 + 3)
    t.emit = lambda ev: count.__setitem__(0, count[0] + 1) is None
    t.open()
    assert t.poll() is True  # stopped at the cap, more to read
    assert count[0] == 7
    polls = 2
    while t.poll():
        polls += 1
    # Every poll but the last read a full budget.
    assert count[0] == n and polls == -(-len(one) * n // t.max_read)
    assert t.counts["malformed"] == 0
