"""Alert outputs against real receivers: a loopback HTTP server, a UDP socket, files being rotated."""

from __future__ import annotations

import io
import json
import os
import re
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from hullguard.model import HullguardError
from hullguard.runtime.engine import Alert
from hullguard.runtime.outputs import (
    FileSink,
    OutputSet,
    StreamSink,
    SyslogSink,
    WebhookSink,
    parse_output_spec,
    slack_payload,
)


def make_alert(rule: str = "Terminal shell in container", priority: str = "Warning", text: str = "A shell",
               clock: str = "10:00:00.000000001") -> Alert:
    return Alert(time=f"2026-11-23T{clock}Z", rule=rule, priority=priority, source="syscall",
                 output=f"{clock}: {priority} {text}", output_fields={"proc.name": "bash", "container.id": "abc"},
                 tags=["shell"], hostname="node-1")


class Receiver:
    def __init__(self) -> None:
        self.posts: list[tuple[str, dict, dict]] = []
        self.fail_first = 0
        self.status = 200
        self.got = threading.Event()
        outer = self

        class H(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if outer.fail_first > 0:
                    outer.fail_first -= 1
                    self.send_response(503)
                else:
                    outer.posts.append((self.path, dict(self.headers), json.loads(body)))
                    self.send_response(outer.status)
                    outer.got.set()
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *a: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook/secret-token"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def wait(self, n: int, timeout: float = 10.0) -> None:
        end = time.monotonic() + timeout
        while len(self.posts) < n and time.monotonic() < end:
            time.sleep(0.01)


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.server.shutdown()
    r.server.server_close()


def test_webhook_posts_falco_json(receiver: Receiver) -> None:
    sink = parse_output_spec(f"webhook:{receiver.url}")
    assert "secret-token" not in sink.name  # the credential in the path is never shown
    out = OutputSet([sink])
    out.emit(make_alert())
    out.close()
    assert len(receiver.posts) == 1
    path, headers, body = receiver.posts[0]
    assert path == "/hook/secret-token"
    assert headers["Content-Type"] == "application/json"
    assert set(body) == {"time", "rule", "priority", "source", "output", "output_fields", "tags", "hostname"}
    assert body["rule"] == "Terminal shell in container" and body["output_fields"]["proc.name"] == "bash"


def test_webhook_retries_with_backoff_then_delivers(receiver: Receiver) -> None:
    receiver.fail_first = 2
    sink = WebhookSink(receiver.url, retries=3, backoff=0.01)
    sink.emit(make_alert().to_dict())
    receiver.wait(1)
    sink.close()
    assert len(receiver.posts) == 1
    assert sink.counters.retries == 2 and sink.counters.sent == 1 and sink.counters.failed == 0


def test_webhook_gives_up_on_client_error(receiver: Receiver) -> None:
    receiver.status = 400
    sink = WebhookSink(receiver.url, retries=3, backoff=0.01)
    sink.emit(make_alert().to_dict())
    receiver.wait(1)
    sink.close()
    assert sink.counters.retries == 0 and sink.counters.failed == 1


def test_webhook_queue_is_bounded_and_emit_never_blocks() -> None:
    # A listening socket that never answers: the sender thread is stuck on the first alert.
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    try:
        sink = WebhookSink(f"http://127.0.0.1:{srv.getsockname()[1]}/", retries=0, timeout=0.5, max_queue=5)
        for _ in range(50):
            sink.emit(make_alert().to_dict())
        assert sink.counters.dropped >= 50 - 5 - 1
        sink.close(timeout=0.2)
        assert not sink._thread.is_alive()
    finally:
        srv.close()


def test_slack_payload_is_posted(receiver: Receiver) -> None:
    out = OutputSet([parse_output_spec(f"slack:{receiver.url}")])
    out.emit(make_alert(priority="Critical", text="Shell in nginx"))
    out.close()
    body = receiver.posts[0][2]
    assert "Shell in nginx" in body["text"] and "Terminal shell in container" in body["text"]
    att = body["attachments"][0]
    titles = {f["title"]: f["value"] for f in att["fields"]}
    assert titles["rule"] == "Terminal shell in container" and titles["priority"] == "Critical"
    assert titles["proc.name"] == "bash"
    assert att["color"] != slack_payload(make_alert(priority="Notice").to_dict())["attachments"][0]["color"]
    assert body["blocks"][0]["type"] == "section"


def test_syslog_rfc5424_over_udp() -> None:
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    rx.settimeout(5)
    try:
        sink = parse_output_spec(f"syslog:127.0.0.1:{rx.getsockname()[1]}")
        out = OutputSet([sink])
        out.emit(make_alert(priority="Critical", rule='Odd "rule"]'))
        out.emit(make_alert(priority="Debug"))
        first, second = rx.recv(9000), rx.recv(9000)
        out.close()
    finally:
        rx.close()
    m = re.match(rb"^<(\d+)>1 (\S+) (\S+) hullguard (\d+) alert (\[.*?[^\\]\]) \xef\xbb\xbf(.*)$", first, re.S)
    assert m, first
    assert int(m.group(1)) == 1 * 8 + 2  # facility user, severity critical
    assert m.group(2) == b"2026-11-23T10:00:00.000000Z"  # at most six fractional digits
    assert m.group(3) == b"node-1"
    assert b'rule="Odd \\"rule\\"\\]"' in m.group(5)
    assert m.group(6) == b"A shell"
    assert second.startswith(b"<15>1 ")  # debug = 7


def test_syslog_unix_datagram(tmp_path) -> None:
    path = str(tmp_path / "log")
    rx = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    rx.bind(path)
    rx.settimeout(5)
    try:
        sink = parse_output_spec(f"syslog:unix:{path}")
        sink.emit(make_alert(priority="Error").to_dict())
        assert rx.recv(9000).startswith(b"<11>1 ")
        sink.close()
    finally:
        rx.close()


def test_file_output_reopens_after_rotation_and_on_request(tmp_path) -> None:
    path = tmp_path / "alerts.jsonl"
    sink = FileSink(str(path))
    out = OutputSet([sink])
    out.emit(make_alert(text="one"))
    os.rename(path, tmp_path / "alerts.jsonl.1")  # logrotate's default: move, then expect a new file
    out.emit(make_alert(text="two"))
    (tmp_path / "alerts.jsonl").unlink()
    out.emit(make_alert(text="three"))
    out.close()
    rotated = [json.loads(x) for x in (tmp_path / "alerts.jsonl.1").read_text().splitlines()]
    current = [json.loads(x) for x in path.read_text().splitlines()]
    assert [a["output"][-3:] for a in rotated] == ["one"]
    assert [a["output"][-5:] for a in current] == ["three"]
    assert (path.stat().st_mode & 0o777) == 0o600


def test_file_reopen_on_sighup_path(tmp_path) -> None:
    path = tmp_path / "a.jsonl"
    out = OutputSet([FileSink(str(path))])
    out.emit(make_alert(text="x1"))
    # copytruncate-style rotation keeps the inode; reopen() is what SIGHUP triggers.
    os.truncate(path, 0)
    out.reopen()
    out.emit(make_alert(text="x2"))
    out.close()
    assert [json.loads(x)["output"][-2:] for x in path.read_text().splitlines()] == ["x2"]


def test_dedupe_and_rate_limit_with_summary() -> None:
    now = [0.0]
    buf = io.StringIO()
    out = OutputSet([StreamSink(buf, fmt="json")], dedupe_seconds=10, clock=lambda: now[0])
    # Same rule and text at different times: the time prefix does not defeat de-duplication.
    assert out.emit(make_alert(clock="10:00:00.000000001"))
    assert not out.emit(make_alert(clock="10:00:01.000000001"))
    assert out.emit(make_alert(text="other"))
    now[0] = 11.0
    assert out.emit(make_alert())
    out.close()
    lines = [json.loads(x) for x in buf.getvalue().splitlines()]
    # The count is reported when the rule next gets through, whatever its text.
    assert [x["rule"] for x in lines] == ["Terminal shell in container", "Alerts suppressed",
                                          "Terminal shell in container", "Terminal shell in container"]
    assert lines[1]["output_fields"]["hullguard.suppressed"] == 1 and lines[2]["output"].endswith("other")
    assert out.stats.duplicates == 1


def test_token_bucket_per_rule_reports_when_lifted() -> None:
    now = [0.0]
    buf = io.StringIO()
    out = OutputSet([StreamSink(buf, fmt="json")], rate_per_rule=2, clock=lambda: now[0])
    sent = [out.emit(make_alert(text=f"n{i}")) for i in range(5)]
    assert sent == [True, True, False, False, False]
    assert out.emit(make_alert(rule="Other rule"))  # buckets are per rule
    now[0] = 0.5  # one token back
    assert out.emit(make_alert(text="later"))
    out.close()
    lines = [json.loads(x) for x in buf.getvalue().splitlines()]
    summary = [x for x in lines if x["rule"] == "Alerts suppressed"]
    assert len(summary) == 1 and summary[0]["output_fields"]["hullguard.rate_limited"] == 3
    assert lines.index(summary[0]) == len(lines) - 2  # reported just before the alert that got through


def test_close_reports_pending_suppressions() -> None:
    buf = io.StringIO()
    out = OutputSet([StreamSink(buf, fmt="json")], rate_per_rule=1, clock=lambda: 0.0)
    for _ in range(4):
        out.emit(make_alert())
    out.close()
    last = json.loads(buf.getvalue().splitlines()[-1])
    assert last["rule"] == "Alerts suppressed" and last["output_fields"]["hullguard.suppressed"] == 3


def test_stdout_human_line() -> None:
    buf = io.StringIO()
    StreamSink(buf).emit(make_alert().to_dict())
    assert buf.getvalue() == "2026-11-23T10:00:00.000000001Z Warning A shell [Terminal shell in container]\n"


@pytest.mark.parametrize("spec", ["", "bogus", "file:", "webhook:ftp://x/", "webhook:nohost", "syslog:h:99999",
                                  "syslog:h:port", "json:extra"])
def test_bad_specs_are_one_line_errors(spec: str) -> None:
    with pytest.raises(HullguardError) as e:
        parse_output_spec(spec)
    assert "\n" not in str(e.value)


def test_syslog_spec_forms() -> None:
    s = parse_output_spec("syslog:[::1]:1514")
    assert isinstance(s, SyslogSink) and s.name == "syslog:::1:1514"
    s.close()
    s = parse_output_spec("syslog:localhost")
    assert s.name == "syslog:localhost:514"
    s.close()


def test_outputs_config_file(tmp_path) -> None:
    cfg = tmp_path / "outputs.yaml"
    cfg.write_text(f"outputs: [json, 'file:{tmp_path}/a.jsonl']\ndedupe_seconds: 30\nrate_per_rule: 5\n")
    out = OutputSet.from_config(str(cfg))
    assert [s.name for s in out.sinks] == ["json", f"file:{tmp_path}/a.jsonl"]
    assert out.dedupe_seconds == 30 and out.rate == 5
    out.close()
    cfg.write_text("outputs: nope\n")
    with pytest.raises(HullguardError):
        OutputSet.from_config(str(cfg))


def test_sighup_reopens_file_outputs(tmp_path) -> None:
    import signal

    path = tmp_path / "a.jsonl"
    sink = FileSink(str(path))
    calls = []
    real = sink.reopen
    sink.reopen = lambda: (calls.append(1), real())[1]
    out = OutputSet([sink])
    previous = signal.getsignal(signal.SIGHUP)
    try:
        out.install_sighup()
        out.emit(make_alert(text="h1"))
        os.kill(os.getpid(), signal.SIGHUP)
        out.emit(make_alert(text="h2"))
    finally:
        signal.signal(signal.SIGHUP, previous)
        out.close()
    assert calls == [1]
    assert [json.loads(x)["output"][-2:] for x in path.read_text().splitlines()] == ["h1", "h2"]
