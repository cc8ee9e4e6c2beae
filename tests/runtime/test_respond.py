"""Response actions on real processes the test starts, a loopback fake Kubernetes API (no cluster can
run here) and a fake Docker API on a unix socket (no daemon here)."""

from __future__ import annotations

import hashlib
import io
import json
import os
import socketserver
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import yaml

from hullguard.model import HullguardError
from hullguard.runtime.engine import Alert
from hullguard.runtime.respond import Responder, load_policy, order_actions, parse_policy
from hullguard.runtime.respond_evidence import mask_env_value, stat_of

AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEZ"
GH_TOKEN = "ghp_" + "Zq3xR7vN1mK8pL2wT5yB9cD4fG6hJ0sA1eU3"
DB_PW = "s3cr3t-Pa55word"


def alert(rule: str = "Test shell", priority: str = "Critical", tags=("shell",), **fields) -> Alert:
    return Alert(time="2026-11-23T10:00:00.000000000Z", rule=rule, priority=priority, source="syscall",
                 output=f"10:00:00.000000000: {priority} {rule}", output_fields=dict(fields), tags=list(tags),
                 hostname="n1")


@pytest.fixture
def child():
    env = {"PATH": os.environ.get("PATH", "/usr/bin"), "AWS_SECRET_ACCESS_KEY": AWS_SECRET, "HELPER": GH_TOKEN,
           "DATABASE_URL": f"postgres://app:{DB_PW}@db:5432/app", "PLAIN": "hello-world"}
    code = ("import socket, sys, time\ns = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen()\n"
            "print(s.getsockname()[1], flush=True)\ntime.sleep(60)\n")
    p = subprocess.Popen([sys.executable, "-c", code, f"--db-password={DB_PW}"], env=env, stdout=subprocess.PIPE,
                         text=True)
    port = int(p.stdout.readline())
    yield p, port
    if p.poll() is None:
        p.kill()
    p.wait()
    p.stdout.close()


def policy(tmp_path, text: str) -> str:
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    return str(path)


def responder(tmp_path, text: str, **kw) -> Responder:
    return Responder.from_file(policy(tmp_path, text), evidence_dir=str(tmp_path / "ev"),
                               audit_log=str(tmp_path / "audit.jsonl"), **{"dry_run": False, **kw})


def load(d: str, name: str):
    with open(os.path.join(d, name), encoding="utf-8") as fh:
        return json.load(fh)


def audit(tmp_path) -> list[dict]:
    return [json.loads(x) for x in (tmp_path / "audit.jsonl").read_text().splitlines()]


KILL_POLICY = "bindings:\n  - rules: ['Test *']\n    actions: [kill, capture]\n"


def test_capture_before_kill_with_masked_environment(tmp_path, child) -> None:
    proc, port = child
    comm = stat_of(proc.pid)["comm"]
    r = responder(tmp_path, KILL_POLICY)
    recs = r.handle(alert(), {"proc.pid": proc.pid, "proc.name": comm, "container.id": "host"})
    assert [(x.action, x.status) for x in recs] == [("capture", "done"), ("kill", "done")]
    assert proc.wait(timeout=10) == -9
    d = recs[0].data["dir"]
    assert os.path.dirname(d) == str(tmp_path / "ev") and "test-shell-pid" in os.path.basename(d)
    index = load(d, "index.json")
    names = {a["name"] for a in index["artefacts"]}
    assert {"alert.json", "process.json", "process_tree.json", "open_files.json", "sockets.json",
            "environ.json"} <= names
    for a in index["artefacts"]:
        with open(os.path.join(d, a["name"]), "rb") as fh:
            data = fh.read()
        assert hashlib.sha256(data).hexdigest() == a["sha256"] and len(data) == a["bytes"]
        for secret in (AWS_SECRET, GH_TOKEN, DB_PW):
            assert secret.encode() not in data, (a["name"], secret)
    with open(os.path.join(d, "index.json"), "rb") as fh:
        assert hashlib.sha256(fh.read()).hexdigest() == recs[0].data["index_sha256"]
    env = load(d, "environ.json")
    assert env["PLAIN"] == "hello-world" and env["AWS_SECRET_ACCESS_KEY"].startswith("wJal*")
    assert env["HELPER"].startswith("ghp_") and "*" in env["HELPER"]
    assert env["DATABASE_URL"].startswith("postgres://app:") and env["DATABASE_URL"].endswith("@db:5432/app")
    info = load(d, "process.json")
    assert info["pid"] == proc.pid and info["cmdline"][0] == sys.executable and info["exe"]
    assert info["cmdline"][-1].startswith("--db-password=s")
    tree = load(d, "process_tree.json")
    assert tree["ancestors"][0]["pid"] == os.getpid()
    socks = load(d, "sockets.json")
    assert {"proto": "tcp", "local": f"127.0.0.1:{port}", "state": "LISTEN"}.items() <= socks[0].items()
    lines = audit(tmp_path)
    assert [(x["action"], x["status"], x["incident"]) for x in lines] == \
        [("capture", "done", recs[0].incident), ("kill", "done", recs[0].incident)]
    assert lines[0]["data"]["index_sha256"] == recs[0].data["index_sha256"]


def test_dry_run_changes_nothing(tmp_path, child) -> None:
    proc, _port = child
    log = io.StringIO()
    r = responder(tmp_path, "bindings:\n  - min_priority: error\n    actions: [capture, kill, quarantine, pause]\n",
                  dry_run=True, log=log, docker_socket=str(tmp_path / "no.sock"))
    recs = r.handle(alert(), {"proc.pid": proc.pid, "k8s.ns.name": "shop", "k8s.pod.name": "web-1",
                              "container.id": "3ad7b26ded6d"})
    assert [(x.action, x.status) for x in recs] == [("capture", "dry-run"), ("kill", "refused"),
                                                    ("quarantine", "dry-run"), ("pause", "unavailable")]
    # The pid is not in that container: even a dry run says the kill would be refused.
    assert "not in container" in recs[1].detail
    assert proc.poll() is None and not (tmp_path / "ev").exists()
    assert all(x["dry_run"] for x in audit(tmp_path)) and log.getvalue().count("DRY-RUN") == 4
    labels = recs[2].data["manifest"]["spec"]["podSelector"]["matchLabels"]
    assert labels == {"hullguard.io/quarantine": recs[2].incident}


def test_kill_refusals(tmp_path, child) -> None:
    proc, _port = child
    r = responder(tmp_path, "dedupe_seconds: 0\nbindings:\n  - tags: [shell]\n    actions: [kill]\n")
    cases = [({"proc.pid": 1}, "never killed"), ({"proc.pid": 0}, "never killed"), ({"proc.pid": -5}, "never"),
             ({"proc.pid": os.getpid()}, "hullguard itself"), ({"proc.pid": os.getppid()}, "ancestor of hullguard"),
             ({"proc.pid": proc.pid, "proc.name": "sshd"}, "pid reused"), ({}, "no pid"),
             ({"proc.pid": "12abc"}, "no pid")]
    for ev, why in cases:
        recs = r.handle(alert(), ev)
        kill = next(x for x in recs if x.action == "kill")
        assert kill.status == "refused" and why in kill.detail, (ev, kill)
    assert proc.poll() is None
    # Falco output_fields carry the pid when the event itself does not.
    recs = r.handle(alert(**{"proc.pid": proc.pid}), {})
    assert recs[-1].status == "done" and proc.wait(timeout=10) == -9


def test_quarantine_prints_a_valid_manifest_without_credentials(tmp_path, monkeypatch) -> None:
    for k in ("KUBECONFIG", "KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    out = io.StringIO()
    r = responder(tmp_path, "bindings:\n  - rules: ['*']\n    actions: [quarantine]\n", out=out)
    recs = r.handle(alert(), {"k8s.ns.name": "shop", "k8s.pod.name": "web-1", "container.id": "3ad7b26ded6d"})
    q = recs[-1]
    assert q.action == "quarantine" and q.status == "printed" and "no cluster credentials" in q.detail
    text = out.getvalue()
    assert f"kubectl label pod --namespace shop web-1 hullguard.io/quarantine={q.incident} --overwrite" in text
    docs = [d for d in yaml.safe_load_all(text) if d]
    assert len(docs) == 1
    np = docs[0]
    assert np["kind"] == "NetworkPolicy" and np["metadata"]["namespace"] == "shop"
    assert np["spec"] == {"podSelector": {"matchLabels": {"hullguard.io/quarantine": q.incident}},
                          "policyTypes": ["Ingress", "Egress"]}
    # The evidence captured first holds the manifest too, and hullguard's own checker accepts it.
    path = q.data["manifest_path"]
    from hullguard.detect.misconfig.config import check_config_paths

    res = check_config_paths([path])
    assert res.objects == 1 and res.errors == []
    from hullguard.cli.main import main

    assert main(["config", "--quiet", "--exit-code", "1", path]) == 0  # no findings on the policy either
    with open(path, "rb") as fh:
        assert hashlib.sha256(fh.read()).hexdigest() == q.data["manifest_sha256"]


class FakeAPI:
    def __init__(self, status: int = 201) -> None:
        self.calls: list[tuple[str, str, dict, dict]] = []
        outer = self

        class H(BaseHTTPRequestHandler):
            def _do(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                outer.calls.append((self.command, self.path, dict(self.headers), json.loads(body or b"{}")))
                payload = json.dumps({"kind": "Status", "message": "nope"} if status >= 300 else {}).encode()
                self.send_response(status if self.command == "POST" else 200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_POST = do_PATCH = do_GET = _do

            def log_message(self, *a: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def kubeconfig(tmp_path, port: int) -> str:
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "test",
        "clusters": [{"name": "c", "cluster": {"server": f"http://127.0.0.1:{port}"}}],
        "users": [{"name": "u", "user": {"token": "t0ken"}}],
        "contexts": [{"name": "test", "context": {"cluster": "c", "user": "u"}}]}))
    return str(path)


def test_quarantine_applies_through_the_api(tmp_path, monkeypatch) -> None:
    api = FakeAPI()
    try:
        monkeypatch.setenv("KUBECONFIG", kubeconfig(tmp_path, api.server.server_port))
        r = responder(tmp_path, "bindings:\n  - rules: ['*']\n    actions: [quarantine]\n")
        recs = r.handle(alert(), {"k8s.ns.name": "shop", "k8s.pod.name": "web-1"})
    finally:
        api.close()
    q = recs[-1]
    assert q.status == "done", q.detail
    (m1, p1, h1, b1), (m2, p2, h2, b2) = api.calls
    assert (m1, p1) == ("POST", "/apis/networking.k8s.io/v1/namespaces/shop/networkpolicies")
    assert h1["Authorization"] == "Bearer t0ken" and b1 == q.data["manifest"]
    assert (m2, p2) == ("PATCH", "/api/v1/namespaces/shop/pods/web-1")
    assert h2["Content-Type"] == "application/merge-patch+json"
    assert b2 == {"metadata": {"labels": {"hullguard.io/quarantine": q.incident}}}


def test_quarantine_api_error_is_failed(tmp_path) -> None:
    api = FakeAPI(status=403)
    try:
        r = responder(tmp_path, "bindings:\n  - rules: ['*']\n    actions: [quarantine]\n",
                      kubeconfig=kubeconfig(tmp_path, api.server.server_port))
        recs = r.handle(alert(), {"k8s.ns.name": "shop", "k8s.pod.name": "web-1"})
    finally:
        api.close()
    assert recs[-1].status == "failed" and "HTTP 403 nope" in recs[-1].detail
    bad = r.handle(alert(rule="other"), {"k8s.ns.name": "Shop!", "k8s.pod.name": "x"})
    assert bad[-1].status == "refused"


class _UnixHTTP(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


def test_docker_pause_stop_and_changes_over_unix_socket(tmp_path, child) -> None:
    proc, _port = child
    calls: list[tuple[str, str]] = []

    class H(BaseHTTPRequestHandler):
        def _do(self) -> None:
            calls.append((self.command, self.path))
            body = json.dumps([{"Path": "/etc/passwd", "Kind": 0}, {"Path": "/tmp/x", "Kind": 1}]).encode() \
                if self.path.endswith("/changes") else b""
            self.send_response(200 if body else 204)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = _do

        def log_message(self, *a: object) -> None:
            pass

        def address_string(self) -> str:
            return "unix"

    sock = str(tmp_path / "docker.sock")
    srv = _UnixHTTP(sock, H)
    threading.Thread(target=srv.serve_forever, args=(0.05,), daemon=True).start()
    try:
        r = responder(tmp_path, "bindings:\n  - rules: ['*']\n    actions: [pause, {stop: {timeout: 3}}]\n",
                      docker_socket=sock)
        recs = r.handle(alert(), {"container.id": "3ad7b26ded6d", "proc.pid": proc.pid})
    finally:
        srv.shutdown()
        srv.server_close()
    assert [(x.action, x.status) for x in recs] == [("capture", "done"), ("pause", "done"), ("stop", "done")]
    assert calls == [("GET", "/containers/3ad7b26ded6d/changes"), ("POST", "/containers/3ad7b26ded6d/pause"),
                     ("POST", "/containers/3ad7b26ded6d/stop?t=3")]
    with open(os.path.join(recs[0].data["dir"], "container_changes.json")) as fh:
        assert json.load(fh)[0]["Path"] == "/etc/passwd"


def test_pause_unavailable_and_host_refused(tmp_path) -> None:
    r = responder(tmp_path, "dedupe_seconds: 0\nbindings:\n  - rules: ['*']\n    actions: [stop]\n",
                  docker_socket=str(tmp_path / "missing.sock"))
    recs = r.handle(alert(), {"container.id": "abc123"})
    assert recs[-1].status == "unavailable" and "no Docker API socket" in recs[-1].detail
    recs = r.handle(alert(), {"container.id": "host"})
    assert [(x.action, x.status) for x in recs] == [("capture", "refused"), ("stop", "refused")]


def test_notify_posts_to_webhook(tmp_path) -> None:
    got: list[dict] = []

    class H(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            got.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *a: object) -> None:
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=srv.serve_forever, args=(0.05,), daemon=True).start()
    try:
        r = responder(tmp_path, f"notify: ['webhook:http://127.0.0.1:{srv.server_port}/']\n"
                      "bindings:\n  - rules: ['*']\n    actions: [notify]\n")
        recs = r.handle(alert(), {"proc.pid": 123456789})
        r.close()
    finally:
        srv.shutdown()
        srv.server_close()
    assert recs[-1].status == "done" and got[0]["rule"] == "Test shell"
    assert got[0]["output_fields"]["hullguard.incident"] == recs[-1].incident


def test_bindings_match_and_limits(tmp_path) -> None:
    r = responder(tmp_path, "max_incidents_per_minute: 2\ndedupe_seconds: 60\nbindings:\n"
                  "  - {rules: ['Write below *'], tags: [filesystem], min_priority: warning, actions: [notify]}\n",
                  dry_run=True)
    assert r.handle(alert(rule="Write below etc", tags=["filesystem"], priority="Notice")) == []
    assert r.handle(alert(rule="Write below etc", tags=["other"], priority="Error")) == []
    assert r.handle(alert(rule="Read etc", tags=["filesystem"], priority="Error")) == []
    first = r.handle(alert(rule="Write below etc", tags=["filesystem"], priority="Error"), {"proc.pid": 10})
    assert first[0].status == "refused"  # notify without outputs
    assert r.handle(alert(rule="Write below etc", tags=["filesystem"], priority="Error"), {"proc.pid": 10}) == []
    r.handle(alert(rule="Write below etc", tags=["filesystem"], priority="Error"), {"proc.pid": 11})
    over = r.handle(alert(rule="Write below etc", tags=["filesystem"], priority="Error"), {"proc.pid": 12})
    assert over[0].action == "respond" and "rate limit" in over[0].detail
    assert r.suppressed == 1


def test_order_actions() -> None:
    assert [n for n, _ in order_actions([("notify", {}), ("kill", {}), ("capture", {"x": 1}), ("kill", {})])] == \
        ["notify", "capture", "kill"]
    assert [n for n, _ in order_actions([("stop", {})])] == ["capture", "stop"]
    assert [n for n, _ in order_actions([("notify", {})])] == ["notify"]


@pytest.mark.parametrize("text,msg", [
    ("[]", "mapping"), ("bindings: []", "non-empty"), ("version: 2\nbindings: [x]", "version"),
    ("bindings: [{actions: [kill]}]", "at least one"),
    ("bindings: [{rules: [a], actions: [explode]}]", "unknown action"),
    ("bindings: [{rules: [a], actions: []}]", "non-empty"),
    ("bindings: [{min_priority: loud, actions: [kill]}]", "min_priority"),
    ("bogus: 1\nbindings: [{rules: [a], actions: [kill]}]", "unknown keys"), ("bindings: [{rules: [a]", "YAML"),
])
def test_bad_policies(tmp_path, text: str, msg: str) -> None:
    with pytest.raises(HullguardError, match=msg) as e:
        load_policy(policy(tmp_path, text))
    assert "\n" not in str(e.value)


def test_example_policy_loads() -> None:
    root = os.path.join(os.path.dirname(__file__), "..", "..", "examples", "runtime")
    p = load_policy(os.path.join(root, "response-policy.yaml"))
    assert p.bindings and parse_policy({"bindings": [{"tags": ["x"], "actions": ["capture"]}]}, "x").bindings


def test_mask_env_value() -> None:
    assert mask_env_value("PLAIN", "hello") == ("hello", False)
    v, hid = mask_env_value("MYSQL_PASSWORD", "hunter2hunter2")
    assert hid and "hunter2hunter2" not in v
    from hullguard.runtime.respond_evidence import mask_arg

    assert mask_arg("--db-password=hunter2hunter2").startswith("--db-password=h") and "hunter2h" not in \
        mask_arg("--db-password=hunter2hunter2")
    assert mask_arg(GH_TOKEN) != GH_TOKEN and mask_arg("-v") == "-v"
    v, hid = mask_env_value("UPSTREAM", "https://bob:pa55w0rdXY@example.com/x")
    assert hid and "pa55w0rdXY" not in v and v.endswith("@example.com/x")


def test_one_quarantine_per_pod_and_vanished_process(tmp_path) -> None:
    r = responder(tmp_path, "bindings:\n  - rules: ['*']\n    actions: [quarantine]\n", dry_run=True)
    ev = {"k8s.ns.name": "shop", "k8s.pod.name": "web-1"}
    first = r.handle(alert(rule="Rule A"), ev)
    second = r.handle(alert(rule="Rule B"), ev)
    assert first[-1].status == "dry-run"
    assert second[-1].status == "skipped" and first[-1].incident in second[-1].detail
    # A pid that no longer exists: capture says so instead of claiming evidence.
    r2 = responder(tmp_path, "bindings:\n  - rules: ['*']\n    actions: [capture]\n")
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    rec = r2.handle(alert(), {"proc.pid": p.pid})[-1]
    assert rec.status == "failed" and "not running" in rec.data["errors"][0]


def test_kube_credential_discovery(tmp_path, monkeypatch) -> None:
    from hullguard.runtime.respond_k8s import KubeClient

    for k in ("KUBECONFIG", "KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    client, why = KubeClient.discover(str(tmp_path / "missing"))
    assert client is None and "not found" in why
    sa = tmp_path / "sa"
    sa.mkdir()
    (sa / "token").write_text("sa-token\n")
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    client, _ = KubeClient.discover(sa_dir=str(sa))
    assert client.server == "https://10.96.0.1:443" and client.token == "sa-token"
    assert client.source == "in-cluster service account"
    cfg = tmp_path / "kc"
    cfg.write_text(yaml.safe_dump({"current-context": "x", "contexts": [{"name": "x", "context": {"cluster": "c",
                                   "user": "u"}}], "clusters": [{"name": "c", "cluster": {"server": "https://k:6443",
                                   "insecure-skip-tls-verify": True}}],
                                   "users": [{"name": "u", "user": {"exec": {"command": "aws"}}}]}))
    client, why = KubeClient.discover(str(cfg))
    assert client is None and "exec" in why
    cfg.write_text("just a string")
    assert KubeClient.discover(str(cfg))[0] is None


def test_hostile_events_do_not_break_the_responder(tmp_path) -> None:
    r = responder(tmp_path, "dedupe_seconds: 0\nbindings:\n  - rules: ['*']\n    actions: [kill, quarantine, stop]\n",
                  docker_socket=str(tmp_path / "none"), dry_run=True)
    for ev in ({"proc.pid": [1, 2]}, {"proc.pid": True}, {"proc.pid": 10**30}, {"container.id": "../../etc"},
               {"k8s.ns.name": "a/b", "k8s.pod.name": "../x"}, {"k8s.ns.name": ["x"], "k8s.pod.name": {"y": 1}},
               {"proc.name": 5, "proc.pid": "-1"}):
        recs = r.handle(alert(), ev)
        assert recs and all(x.status in ("refused", "failed", "unavailable") for x in recs), (ev, recs)
    assert not (tmp_path / "ev").exists() or not any((tmp_path / "ev").iterdir())


def test_quarantine_over_tls_with_kubeconfig_ca_and_client_cert(tmp_path) -> None:
    import base64
    import ssl

    from hullguard.admission.certs import generate

    paths = generate(str(tmp_path / "pki"), ["127.0.0.1", "localhost"])
    api = FakeAPI()
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(paths.cert, paths.key)
    api.server.socket = ctx.wrap_socket(api.server.socket, server_side=True)

    def b64(p: str) -> str:
        with open(p, "rb") as fh:
            return base64.b64encode(fh.read()).decode()

    cfg = tmp_path / "kc"
    cfg.write_text(yaml.safe_dump({
        "current-context": "x", "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
        "clusters": [{"name": "c", "cluster": {"server": f"https://127.0.0.1:{api.server.server_port}",
                                               "certificate-authority-data": b64(paths.ca)}}],
        # Any certificate/key pair exercises the client-certificate path; this server does not ask for one.
        "users": [{"name": "u", "user": {"token": "tls-token", "client-certificate-data": b64(paths.cert),
                                         "client-key-data": b64(paths.key)}}]}))
    try:
        r = responder(tmp_path, "bindings:\n  - rules: ['*']\n    actions: [quarantine]\n", kubeconfig=str(cfg))
        recs = r.handle(alert(), {"k8s.ns.name": "prod", "k8s.pod.name": "api-0"})
    finally:
        api.close()
    assert recs[-1].status == "done", recs[-1].detail
    assert [c[2]["Authorization"] for c in api.calls] == ["Bearer tls-token"] * 2
    # The same server under a CA the kubeconfig does not trust: nothing is applied.
    other = generate(str(tmp_path / "pki2"), ["127.0.0.1"], ca_name="another CA")
    api2 = FakeAPI()
    ctx2 = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx2.load_cert_chain(other.cert, other.key)
    api2.server.socket = ctx2.wrap_socket(api2.server.socket, server_side=True)
    cfg.write_text(cfg.read_text().replace(str(api.server.server_port), str(api2.server.server_port)))
    try:
        recs = r.handle(alert(rule="again"), {"k8s.ns.name": "prod", "k8s.pod.name": "api-1"})
    finally:
        api2.close()
    assert recs[-1].status == "failed" and api2.calls == []
