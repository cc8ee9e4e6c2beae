"""The HTTPS surface: bad input, certificate reload, health, metrics and the decision log."""

from __future__ import annotations

import base64
import json
import os
import re
import socket
import ssl
import time

import httpx
import pytest
import yaml
from tests.admission.conftest import make_tls, pod, review

from hullguard.admission.config import parse_config
from hullguard.cli.main import main
from hullguard.model import HullguardError


@pytest.mark.parametrize(("body", "needle"), [
    (b"{not json", "not JSON"),
    (b"[]", "body is not a JSON object"),
    (json.dumps({"apiVersion": "admission.k8s.io/v1beta1", "kind": "AdmissionReview", "request": {}}).encode(),
     "expected admission.k8s.io/v1"),
    (json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "Pod"}).encode(), "expected AdmissionReview"),
    (json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}).encode(), "no request object"),
    (json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                 "request": {"kind": {"kind": "Pod"}, "operation": "CREATE", "object": {}}}).encode(),
     "request.uid is missing"),
    (json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                 "request": {"uid": "u", "kind": {"kind": "Pod"}, "operation": "PATCH", "object": {}}}).encode(),
     "request.operation 'PATCH'"),
    (json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                 "request": {"uid": "u", "kind": {"kind": "Pod"}, "operation": "CREATE", "object": [1]}}).encode(),
     "request.object is not an object"),
    (json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                 "request": {"uid": "u", "kind": {"kind": "Pod"}, "operation": "CREATE"}}).encode(),
     "request.object is missing for CREATE"),
])
def test_malformed_review_is_400_with_a_clear_message(start_webhook, body: bytes, needle: str) -> None:
    hook = start_webhook("policies: [{name: no-latest, type: disallowLatest}]")
    for endpoint in ("validate", "mutate"):
        r = hook.client.post(f"{hook.url}/{endpoint}", content=body, headers={"Content-Type": "application/json"})
        assert r.status_code == 400
        assert r.json()["error"].startswith("malformed AdmissionReview")
        assert needle in r.json()["error"]
    # The connection and the server survive: a good review still works.
    assert hook.post(review(pod("nginx:1")))["allowed"] is True
    assert any(rec.get("event") == "bad request" for rec in hook.records())


def test_hostile_pod_content_is_judged_not_crashed_on(start_webhook) -> None:
    hook = start_webhook("policies: [{name: no-latest, type: disallowLatest}, {name: pss, type: podSecurity}]")
    p = pod("nginx:1")
    p["spec"]["containers"] = [{"name": "a", "image": "UPPER/Case:x"}, {"name": "b"}, "junk",
                               {"name": "c", "image": 7}, {"name": "d", "image": "a" * 5000}]
    p["spec"]["initContainers"] = {"not": "a list"}
    resp = hook.post(review(p))
    assert resp["allowed"] is False
    msg = resp["status"]["message"]
    assert "image 'UPPER/Case:x' is not a valid reference" in msg
    assert "container b has no image" in msg


def test_size_limits(start_webhook) -> None:
    hook = start_webhook()
    hook.server.max_body = 1000
    r = hook.client.post(f"{hook.url}/validate", content=b"x" * 2000)
    assert r.status_code == 413
    # No Content-Length (chunked): refused, not read without bound.
    r = hook.client.post(f"{hook.url}/validate", content=iter([b"{}"]))
    assert r.status_code == 411


def test_unknown_paths(start_webhook) -> None:
    hook = start_webhook()
    assert hook.client.post(f"{hook.url}/admit", json={}).status_code == 404
    assert hook.client.get(f"{hook.url}/nope").status_code == 404


def _connect_with(ca: str, port: int) -> None:
    ctx = ssl.create_default_context(cafile=ca)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, \
            ctx.wrap_socket(raw, server_hostname="127.0.0.1"):
        pass


def test_certificate_reloaded_when_files_change(start_webhook, tmp_path) -> None:
    hook = start_webhook()
    _connect_with(str(hook.ca), hook.server.port)
    new_ca, new_cert, new_key = make_tls(tmp_path / "rotated", cn="rotated CA")
    # Swap the files in place the way a mounted Secret changes (key first, then the certificate).
    hook.key.write_bytes(new_key.read_bytes())
    hook.cert.write_bytes(new_cert.read_bytes())
    _connect_with(str(new_ca), hook.server.port)
    with pytest.raises(ssl.SSLCertVerificationError):
        _connect_with(str(hook.ca), hook.server.port)
    assert hook.server.tls.reloads >= 1
    # A broken replacement keeps the working certificate and says why in the log.
    hook.cert.write_text("garbage")
    _connect_with(str(new_ca), hook.server.port)
    assert any("keeping the previous certificate" in r.get("event", "") for r in hook.records())


def test_health_ready_and_metrics(start_webhook) -> None:
    hook = start_webhook("policies: [{name: no-latest, type: disallowLatest}, {name: pss, type: podSecurity}]")
    assert hook.client.get(f"{hook.url}/healthz").text == "ok\n"
    assert hook.client.get(f"{hook.url}/readyz").status_code == 200
    hook.post(review(pod("nginx:1")))
    hook.post(review(pod("nginx:latest")))
    hook.post(review(pod("nginx:latest")))
    hook.client.post(f"{hook.url}/validate", content=b"nope")
    r = hook.client.get(f"{hook.url}/metrics")
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    text = r.text
    assert 'hullguard_admission_decisions_total{policy="no-latest",result="pass"} 1' in text
    assert 'hullguard_admission_decisions_total{policy="no-latest",result="deny"} 2' in text
    assert 'hullguard_admission_decisions_total{policy="pss",result="pass"} 3' in text
    assert 'hullguard_admission_requests_total{endpoint="validate",outcome="allowed"} 1' in text
    assert 'hullguard_admission_requests_total{endpoint="validate",outcome="denied"} 2' in text
    assert 'hullguard_admission_requests_total{endpoint="validate",outcome="bad_request"} 1' in text
    buckets = [(m.group(1), int(m.group(2))) for m in re.finditer(
        r'hullguard_admission_request_duration_seconds_bucket\{endpoint="validate",le="([^"]+)"\} (\d+)', text)]
    assert buckets[-1] == ("+Inf", 4)
    counts = [n for _, n in buckets]
    assert counts == sorted(counts)  # cumulative
    assert 'hullguard_admission_request_duration_seconds_count{endpoint="validate"} 4' in text
    assert "hullguard_admission_in_flight_requests 0" in text
    assert 'hullguard_admission_cache_lookups_total{outcome="hit"} 0' in text
    assert "hullguard_admission_dependency_calls_in_flight 0" in text
    hook.server.ready = False
    assert hook.client.get(f"{hook.url}/readyz").status_code == 503


def test_decision_log_record(start_webhook) -> None:
    hook = start_webhook("policies: [{name: no-latest, type: disallowLatest}]")
    rev = review(pod("nginx:latest", "redis:7"), namespace="shop", username="system:serviceaccount:shop:ci",
                 groups=("system:serviceaccounts", "system:authenticated"))
    hook.post(rev)
    rec = hook.decisions()[-1]
    assert rec["uid"] == rev["request"]["uid"]
    assert rec["user"] == "system:serviceaccount:shop:ci"
    assert rec["groups"] == ["system:serviceaccounts", "system:authenticated"]
    assert (rec["operation"], rec["kind"], rec["namespace"], rec["name"]) == ("CREATE", "Pod", "shop", "web")
    assert rec["images"] == ["nginx:latest", "redis:7"]
    assert rec["allowed"] is False and rec["mode"] == "enforce" and rec["reason"] == "no-latest"
    assert rec["policies"][0]["result"] == "fail" and "nginx:latest" in rec["policies"][0]["messages"][0]
    assert rec["latency_ms"] >= 0 and rec["time"].endswith("Z")


def test_keep_alive_connection_serves_many_requests(start_webhook) -> None:
    hook = start_webhook()
    for _ in range(20):
        hook.post(review(pod("nginx:1")))
    # One TLS connection was reused for all of them (HTTP/1.1 keep-alive).
    pool = hook.client._transport._pool  # type: ignore[attr-defined]
    assert len(pool.connections) == 1


# -- configuration ------------------------------------------------------------------------------------

@pytest.mark.parametrize(("doc", "needle"), [
    ({"policies": [{"name": "x", "type": "nope"}]}, "policy 'x'.type: 'nope' is not one of"),
    ({"policies": [{"name": "x", "type": "disallowLatest", "mode": "block"}]}, "policy 'x'.mode"),
    ({"policies": [{"name": "x", "type": "disallowLatest", "colour": 1}]}, "unknown field 'colour'"),
    ({"policies": [{"name": "x", "type": "verifySignature"}]}, "needs at least one key"),
    ({"policies": [{"name": "x", "type": "verifySignature", "keys": ["missing.pub"]}]}, "cannot read public key"),
    ({"policies": [{"name": "x", "type": "verifySignature",
                    "keys": ["-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"]}]},
     "inline key is not a usable public key"),
    ({"policies": [{"name": "x", "type": "allowedRegistries"}]}, "non-empty 'registries'"),
    ({"policies": [{"name": "x", "type": "podSecurity", "level": "strict"}]}, "level: 'strict'"),
    ({"policies": [{"name": "x", "type": "podSecurity", "version": "2.1"}]}, "invalid Pod Security"),
    ({"policies": [{"name": "x", "type": "disallowLatest"}, {"name": "x", "type": "requireDigest"}]},
     "two policies are named 'x'"),
    ({"policies": [{"type": "requireDigest"}]}, "every policy needs a name"),
    ({"defaults": {"failurePolicy": "fail"}}, "failurePolicy: 'fail' is not one of Fail, Ignore"),
    ({"policies": [{"name": "x", "type": "disallowLatest", "timeoutSeconds": -1}]}, "timeoutSeconds"),
    ({"policies": [{"name": "x", "type": "disallowLatest",
                    "namespaceSelector": {"matchExpressions": [{"key": "a", "operator": "In"}]}}]}, "needs values"),
    ({"namespaces": ["prod"]}, "namespaces: expected a mapping"),
    ([1, 2], "expected a mapping"),
])
def test_config_errors_name_the_place(tmp_path, doc, needle) -> None:
    with pytest.raises(HullguardError) as exc:
        parse_config(doc, str(tmp_path), "policy.yaml")
    assert needle in str(exc.value)


def test_namespace_selector_on_labels(start_webhook) -> None:
    hook = start_webhook("""
namespaces:
  prod: {labels: {tier: prod}}
policies:
  - name: no-latest
    type: disallowLatest
    namespaceSelector:
      matchExpressions: [{key: tier, operator: In, values: [prod]}]
""")
    assert hook.post(review(pod("nginx:latest"), namespace="prod"))["allowed"] is False
    assert hook.post(review(pod("nginx:latest"), namespace="dev"))["allowed"] is True


def test_cli_serve_refuses_bad_policy_file(tmp_path, capsys) -> None:
    bad = tmp_path / "p.yaml"
    bad.write_text("policies:\n  - name: x\n    type: [unclosed\n")
    _ca, cert, key = make_tls(tmp_path / "tls")
    code = main(["admission", "serve", "--policy", str(bad), "--cert", str(cert), "--key", str(key), "--port", "0"])
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("hullguard: error: policy file") and "is not valid YAML at line" in err
    code = main(["admission", "serve", "--cert", str(tmp_path / "none.pem"), "--key", str(key), "--port", "1"])
    assert code == 2
    assert "cannot load TLS certificate" in capsys.readouterr().err


# -- manifests -----------------------------------------------------------------------------------------

def test_manifests_install_everything_and_pass_hullguard_config(tmp_path, capsys) -> None:
    assert main(["admission", "certs", "--out-dir", str(tmp_path / "c"), "--namespace", "guard"]) == 0
    capsys.readouterr()
    c = tmp_path / "c"
    policy = tmp_path / "policy.yaml"
    policy.write_text("policies: [{name: no-latest, type: disallowLatest}]\n")
    out = tmp_path / "install.yaml"
    digest = "sha256:" + "ab" * 32
    assert main(["admission", "manifests", "--namespace", "guard", "--image", f"ghcr.io/acme/hullguard@{digest}",
                 "--cert", str(c / "tls.crt"), "--key", str(c / "tls.key"), "--ca", str(c / "ca.crt"),
                 "--policy", str(policy), "--timeout-seconds", "5", "-o", str(out)]) == 0
    docs = list(yaml.safe_load_all(out.read_text()))
    kinds = {d["kind"] for d in docs}
    assert {"Deployment", "Service", "ServiceAccount", "Role", "RoleBinding", "Secret", "ConfigMap",
            "ValidatingWebhookConfiguration", "MutatingWebhookConfiguration"} <= kinds
    ca_b64 = base64.b64encode((c / "ca.crt").read_bytes()).decode()
    for kind, path in (("ValidatingWebhookConfiguration", "/validate"), ("MutatingWebhookConfiguration", "/mutate")):
        (hook,) = next(d for d in docs if d["kind"] == kind)["webhooks"]
        assert hook["clientConfig"]["caBundle"] == ca_b64
        assert hook["clientConfig"]["service"] == {"name": "hullguard-admission", "namespace": "guard",
                                                   "path": path, "port": 443}
        assert hook["sideEffects"] == "None" and hook["admissionReviewVersions"] == ["v1"]
        assert hook["timeoutSeconds"] == 5 and hook["failurePolicy"] == "Fail"
        assert hook["namespaceSelector"]["matchExpressions"] == [
            {"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": ["guard"]}]
        resources = {r for rule in hook["rules"] for r in rule["resources"]}
        assert {"pods", "deployments", "cronjobs", "jobs", "statefulsets", "daemonsets"} <= resources
    cm = next(d for d in docs if d["kind"] == "ConfigMap")
    assert cm["data"]["policy.yaml"] == policy.read_text()
    secret = next(d for d in docs if d["kind"] == "Secret")
    assert base64.b64decode(secret["data"]["tls.crt"]) == (c / "tls.crt").read_bytes()
    # The serving certificate from `admission certs` names the Service.
    from cryptography import x509

    cert = x509.load_pem_x509_certificate((c / "tls.crt").read_bytes())
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
        x509.DNSName)
    assert "hullguard-admission.guard.svc" in sans
    # hullguard's own checker accepts the install and finds nothing to report.
    assert main(["config", str(out), "--exit-code", "1", "-q"]) == 0


def test_manifests_bad_input(tmp_path, capsys) -> None:
    ca, cert, key = make_tls(tmp_path / "tls")
    args = ["admission", "manifests", "--image", "x", "--cert", str(cert), "--key", str(key)]
    assert main([*args, "--ca", str(key)]) == 2
    assert "--ca is not a PEM certificate" in capsys.readouterr().err
    assert main([*args, "--ca", str(tmp_path / "missing")]) == 2
    assert "cannot read CA certificate" in capsys.readouterr().err
    assert main([*args, "--ca", str(ca), "--timeout-seconds", "60"]) == 2
    assert main([*args, "--ca", str(ca), "--operations", "CREATE,PATCH"]) == 2


def test_serve_command_end_to_end(tmp_path) -> None:
    """The real CLI process: starts, answers over TLS, logs to the file, stops on SIGTERM."""
    import signal
    import subprocess
    import sys

    ca, cert, key = make_tls(tmp_path / "tls")
    policy = tmp_path / "p.yaml"
    policy.write_text("policies: [{name: no-latest, type: disallowLatest}]\n")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = tmp_path / "decisions.log"
    proc = subprocess.Popen([sys.executable, "-m", "hullguard.cli.main", "admission", "serve", "--host", "127.0.0.1",
                             "--port", str(port), "--cert", str(cert), "--key", str(key), "--policy", str(policy),
                             "--log-file", str(log)], env={**os.environ, "PYTHONPATH": os.getcwd()})
    try:
        ctx = ssl.create_default_context(cafile=str(ca))
        with httpx.Client(verify=ctx, trust_env=False) as client:
            deadline = time.monotonic() + 20
            while True:
                try:
                    client.get(f"https://127.0.0.1:{port}/healthz")
                    break
                except httpx.TransportError:
                    if time.monotonic() > deadline or proc.poll() is not None:
                        raise
                    time.sleep(0.1)
            r = client.post(f"https://127.0.0.1:{port}/validate", json=review(pod("nginx:latest")))
            assert r.json()["response"]["allowed"] is False
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    events = [json.loads(line) for line in log.read_text().splitlines()]
    assert events[0]["event"] == "listening" and events[0]["policies"] == ["no-latest"]
    assert events[1]["event"] == "admission" and events[1]["allowed"] is False


def _raw_exchange(hook, payload: bytes) -> bytes:
    ctx = ssl.create_default_context(cafile=str(hook.ca))
    with socket.create_connection(("127.0.0.1", hook.server.port), timeout=10) as raw, \
            ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
        s.sendall(payload)
        out = b""
        while chunk := s.recv(65536):
            out += chunk
        return out


@pytest.mark.parametrize(("payload", "status"), [
    (b"GARBAGE\r\n\r\n", b"400"),
    (b"GET /healthz HTTP/2.0\r\n\r\n", b"505"),
    (b"GET /healthz HTTP/1.1\r\nno-colon-here\r\n\r\n", b"400"),
    (b"GET /healthz HTTP/1.1\r\n" + b"".join(b"X-%d: y\r\n" % i for i in range(150)) + b"\r\n", b"431"),
    (b"GET /healthz HTTP/1.1\r\nX-Long: " + b"a" * 10000 + b"\r\n\r\n", b"431"),
])
def test_malformed_http_is_refused_and_the_connection_closed(start_webhook, payload: bytes, status: bytes) -> None:
    hook = start_webhook()
    answer = _raw_exchange(hook, payload)
    assert answer.split(b" ", 2)[1] == status
    assert hook.client.get(f"{hook.url}/healthz").status_code == 200


def test_http10_and_header_case(start_webhook) -> None:
    hook = start_webhook()
    body = json.dumps(review(pod("nginx:1"))).encode()
    answer = _raw_exchange(hook, b"POST /validate HTTP/1.0\r\ncontent-LENGTH: %d\r\n\r\n" % len(body) + body)
    assert answer.split(b" ", 2)[1] == b"200" and b'"allowed":true' in answer


def test_deeply_nested_json_is_400(start_webhook) -> None:
    hook = start_webhook("policies: [{name: pss, type: podSecurity}]")
    deep = b"[" * 200_000 + b"]" * 200_000
    r = hook.client.post(f"{hook.url}/validate", content=deep)
    assert r.status_code == 400 and "nested too deeply" in r.json()["error"]
    # Deep but parseable nesting inside a container: judged or refused, never a dropped connection.
    nested = '{"x":' * 900 + "1" + "}" * 900
    text = json.dumps(review(pod("nginx:1"))).replace('"image": "nginx:1"', f'"image": "nginx:1", "deep": {nested}')
    r = hook.client.post(f"{hook.url}/validate", content=text.encode())
    assert r.status_code == 200 and r.json()["response"]["allowed"] is True
    assert hook.client.get(f"{hook.url}/healthz").status_code == 200


def test_warnings_are_single_printable_lines(start_webhook) -> None:
    hook = start_webhook("policies: [{name: trusted, type: allowedRegistries, registries: [a.example], mode: warn}]")
    resp = hook.post(review(pod("evil.example/x:1\u0007\nsecond-line")))
    assert resp["allowed"] is True
    for w in resp["warnings"]:
        assert "\n" not in w and w.isprintable() and len(w) <= 480


def test_policy_file_reloaded_when_it_changes(start_webhook, tmp_path) -> None:
    from hullguard.admission.server import PolicyReloader

    hook = start_webhook("policies: [{name: no-latest, type: disallowLatest}]")
    path = tmp_path / "live.yaml"
    path.write_text("policies: [{name: no-latest, type: disallowLatest}]\n")
    reloader = PolicyReloader(str(path), hook.server)
    assert reloader.check() is False  # unchanged
    assert hook.post(review(pod("nginx:latest")))["allowed"] is False
    path.write_text("policies: [{name: no-latest, type: disallowLatest, mode: warn}]\n# edited\n")
    assert reloader.check() is True
    resp = hook.post(review(pod("nginx:latest")))
    assert resp["allowed"] is True and resp["warnings"]
    # A broken edit keeps the policies in force and says why.
    path.write_text("policies: [{name: x, type: nonsense}]\n")
    assert reloader.check() is False
    assert hook.post(review(pod("nginx:latest")))["allowed"] is True
    events = [r for r in hook.records() if r.get("event") == "keeping the previous policies"]
    assert events and "nonsense" in events[0]["error"]
