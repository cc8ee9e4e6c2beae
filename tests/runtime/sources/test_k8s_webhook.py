"""The audit webhook receiver over real HTTPS: audit.k8s.io/v1 events in, Falco-shaped alerts out."""

from __future__ import annotations

import json
import ssl
import uuid
from typing import Any

import httpx
import pytest

from hullguard.model import HullguardError
from hullguard.runtime.agent import Agent
from hullguard.runtime.engine import Engine
from hullguard.runtime.rules import default_rules_path, load_rules
from hullguard.runtime.sources.k8s_audit import AuditWebhook, parse_hostport

from .conftest import ListSink, TLSFiles, wait_for

TOKEN = "s3cret-token-for-tests"


def event(verb: str, resource: str, *, user: str = "alice@example.com", groups: list[str] | None = None,
          namespace: str | None = "shop", name: str | None = None, subresource: str | None = None,
          uri: str | None = None, code: int = 200, request: dict[str, Any] | None = None,
          decision: str = "allow", api_group: str = "") -> dict[str, Any]:
    """One audit.k8s.io/v1 Event at stage ResponseComplete, as the API server writes it."""
    ref: dict[str, Any] = {"resource": resource, "apiVersion": "v1" if not api_group else f"{api_group}/v1"}
    if api_group:
        ref["apiGroup"] = api_group
    for k, v in (("namespace", namespace), ("name", name), ("subresource", subresource)):
        if v is not None:
            ref[k] = v
    ev: dict[str, Any] = {
        "kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "RequestResponse" if request else "Metadata",
        "auditID": str(uuid.uuid4()), "stage": "ResponseComplete",
        "requestURI": uri or f"/api/v1/namespaces/{namespace}/{resource}" + (f"/{name}" if name else ""),
        "verb": verb, "user": {"username": user, "groups": groups or ["system:authenticated"]},
        "sourceIPs": ["10.1.2.3"], "userAgent": "kubectl/v1.31.0 (linux/amd64) kubernetes/abc1234",
        "objectRef": ref, "responseStatus": {"metadata": {}, "code": code},
        "requestReceivedTimestamp": "2026-11-23T11:00:00.000000Z", "stageTimestamp": "2026-11-23T11:00:00.020000Z",
        "annotations": {"authorization.k8s.io/decision": decision, "authorization.k8s.io/reason": "RBAC: allowed"},
    }
    if request is not None:
        ev["requestObject"] = request
    return ev


SCENARIOS: dict[str, dict[str, Any]] = {
    "Attach or exec into pod": event(
        "create", "pods", name="web-0", subresource="exec", code=101,
        uri="/api/v1/namespaces/shop/pods/web-0/exec?command=sh&container=web&stdin=true&tty=true"),
    "Read secret": event("get", "secrets", user="mallory", name="db-password"),
    "Create privileged pod": event("create", "pods", request={
        "kind": "Pod", "apiVersion": "v1", "metadata": {"name": "evil", "namespace": "shop"},
        "spec": {"containers": [{"name": "x", "image": "quay.io/evil/tool:1.0",
                                 "securityContext": {"privileged": True}}]}}),
    "ClusterRoleBinding to cluster-admin": event(
        "create", "clusterrolebindings", namespace=None, name="take-over", api_group="rbac.authorization.k8s.io",
        uri="/apis/rbac.authorization.k8s.io/v1/clusterrolebindings", code=201, request={
            "kind": "ClusterRoleBinding", "apiVersion": "rbac.authorization.k8s.io/v1",
            "metadata": {"name": "take-over"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
            "subjects": [{"kind": "User", "name": "mallory", "apiGroup": "rbac.authorization.k8s.io"}]}),
    "Anonymous request allowed": event("list", "configmaps", user="system:anonymous",
                                       groups=["system:unauthenticated"], namespace="kube-system"),
}


def event_list(items: list[dict[str, Any]]) -> bytes:
    return json.dumps({"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "metadata": {},
                       "items": items}).encode()


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine(load_rules([default_rules_path()]), rule_matching="all", hostname="test")


def start_hook(run_agent: Any, engine: Engine, tls: TLSFiles, **kw: Any) -> tuple[AuditWebhook, ListSink, Agent]:
    hook = AuditWebhook("127.0.0.1", 0, certfile=str(tls.cert), keyfile=str(tls.key), **kw)
    hook.bind()
    sink = ListSink()
    agent = Agent(engine, [hook], sink, queue_size=1000)
    run_agent(agent)
    return hook, sink, agent


def ca_ctx(tls: TLSFiles) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(tls.ca))


def url(hook: AuditWebhook, path: str = "/") -> str:
    return f"https://127.0.0.1:{hook.address[1]}{path}"


def test_event_list_over_https_raises_expected_alerts(run_agent: Any, engine: Engine, tls_files: TLSFiles) -> None:
    hook, sink, _agent = start_hook(run_agent, engine, tls_files, token=TOKEN)
    benign = event("get", "pods", user="system:kube-scheduler", name="web-0")
    with httpx.Client(verify=ca_ctx(tls_files)) as c:
        r = c.post(url(hook), content=event_list([*SCENARIOS.values(), benign]),
                   headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})
    assert r.status_code == 200
    assert wait_for(lambda: hook.stats()["events"] == 6 and len(sink.rules()) >= len(SCENARIOS))
    got = sink.rules()
    for rule in SCENARIOS:
        assert rule in got, (rule, got)
    exec_alert = next(a for a in sink.alerts if a.rule == "Attach or exec into pod")
    assert exec_alert.source == "k8s_audit" and exec_alert.priority == "Notice"
    assert exec_alert.output_fields["ka.uri.param[command]"] == "sh"
    assert exec_alert.output_fields["ka.target.name"] == "web-0"
    crb = next(a for a in sink.alerts if a.rule == "ClusterRoleBinding to cluster-admin")
    assert "mallory" in crb.output
    # The privileged pod's image is also from an untrusted registry; the scheduler's read of a
    # pod raised nothing.
    assert sorted(got) == sorted([*SCENARIOS, "Pod from untrusted registry"])
    assert not any("system:kube-scheduler" in a.output for a in sink.alerts)


def test_single_event_and_keepalive(run_agent: Any, engine: Engine, tls_files: TLSFiles) -> None:
    hook, sink, _agent = start_hook(run_agent, engine, tls_files)
    with httpx.Client(verify=ca_ctx(tls_files)) as c:
        for _ in range(3):
            r = c.post(url(hook), content=json.dumps(SCENARIOS["Read secret"]).encode())
            assert r.status_code == 200
        assert c.get(url(hook, "/healthz")).text.strip() == "ok"
    assert wait_for(lambda: sink.rules().count("Read secret") == 3)
    assert hook.stats()["requests"] == 3


def test_auth_size_and_malformed_bodies_rejected_and_counted(run_agent: Any, engine: Engine,
                                                              tls_files: TLSFiles) -> None:
    hook, sink, _agent = start_hook(run_agent, engine, tls_files, token=TOKEN, max_body=4096, path="/audit")
    ok = {"Authorization": f"Bearer {TOKEN}"}
    body = event_list([SCENARIOS["Read secret"]])
    with httpx.Client(verify=ca_ctx(tls_files)) as c:
        assert c.post(url(hook, "/audit"), content=body).status_code == 401
        assert c.post(url(hook, "/audit"), content=body, headers={"Authorization": "Bearer nope"}).status_code == 401
        assert c.post(url(hook, "/other"), content=body, headers=ok).status_code == 404
        assert c.post(url(hook, "/audit"), content=b"{not json", headers=ok).status_code == 400
        # Valid JSON, wrong kind of document: not an audit event.
        assert c.post(url(hook, "/audit"), content=b'{"kind":"Pod","apiVersion":"v1"}', headers=ok).status_code == 400
        assert c.post(url(hook, "/audit"), content=b"[1,2,3]", headers=ok).status_code == 400
        big = event_list([SCENARIOS["Read secret"]] * 40)
        assert len(big) > 4096
        assert c.post(url(hook, "/audit"), content=big, headers=ok).status_code == 413
        assert c.post(url(hook, "/audit"), content=body, headers=ok).status_code == 200
    assert wait_for(lambda: "Read secret" in sink.rules())
    st = hook.stats()
    assert st["unauthorized"] == 2 and st["malformed"] == 3 and st["too_large"] == 1 and st["not_found"] == 1
    assert st["events"] == 1 and sink.rules() == ["Read secret"]


def test_client_certificate_required(run_agent: Any, engine: Engine, tls_files: TLSFiles) -> None:
    hook, sink, _agent = start_hook(run_agent, engine, tls_files, client_ca=str(tls_files.ca))
    body = event_list([SCENARIOS["Anonymous request allowed"]])
    with httpx.Client(verify=ca_ctx(tls_files)) as c, pytest.raises(httpx.HTTPError):
        c.post(url(hook), content=body)
    ctx = ssl.create_default_context(cafile=str(tls_files.ca))
    ctx.load_cert_chain(str(tls_files.client_cert), str(tls_files.client_key))
    with httpx.Client(verify=ctx) as c:
        assert c.post(url(hook), content=body).status_code == 200
    assert wait_for(lambda: sink.rules() == ["Anonymous request allowed"])
    assert wait_for(lambda: hook.stats()["connection_errors"] >= 1)


def test_untrusted_server_ca_refused_by_client(run_agent: Any, engine: Engine, tls_files: TLSFiles) -> None:
    # The receiver really speaks TLS with the configured certificate: a client trusting only an
    # unrelated CA refuses it.
    hook, _sink, _agent = start_hook(run_agent, engine, tls_files)
    other = ssl.create_default_context(cafile=str(tls_files.other_ca))
    with httpx.Client(verify=other) as c, pytest.raises(httpx.ConnectError):
        c.post(url(hook), content=b"{}")


def test_bad_configuration_is_a_clean_error(tls_files: TLSFiles, tmp_path: Any) -> None:
    with pytest.raises(HullguardError, match="TLS"):
        AuditWebhook("127.0.0.1", 0, certfile=str(tmp_path / "missing.pem"), keyfile=str(tls_files.key))
    with pytest.raises(HullguardError, match="TLS"):
        AuditWebhook("127.0.0.1", 0, certfile=str(tls_files.cert), keyfile=str(tls_files.client_key))
    for bad in ("8443", "host:", "host:99999", "host:abc"):
        with pytest.raises(HullguardError):
            parse_hostport(bad)
    assert parse_hostport(":8443") == ("0.0.0.0", 8443)
    assert parse_hostport("[::1]:9443") == ("::1", 9443)


def test_connection_flood_is_bounded(run_agent: Any, engine: Engine, tls_files: TLSFiles) -> None:
    import socket

    from hullguard.runtime.sources.k8s_audit import MAX_CONNECTIONS

    hook, sink, _agent = start_hook(run_agent, engine, tls_files)
    idle = []
    try:
        # Clients that connect and never speak TLS each hold a handler thread; past the cap new
        # connections are closed at once rather than given more threads.
        for _ in range(MAX_CONNECTIONS + 8):
            idle.append(socket.create_connection(("127.0.0.1", hook.address[1])))
        assert wait_for(lambda: hook.stats()["refused_busy"] >= 8)
    finally:
        for s in idle:
            s.close()
    # Once they are gone the receiver serves again.
    def posted() -> bool:
        try:
            with httpx.Client(verify=ca_ctx(tls_files)) as c:
                return c.post(url(hook), content=json.dumps(SCENARIOS["Read secret"]).encode()).status_code == 200
        except httpx.HTTPError:
            return False

    assert wait_for(posted)
    assert wait_for(lambda: "Read secret" in sink.rules())


def test_bodies_in_flight_are_bounded_in_total(run_agent: Any, engine: Engine, tls_files: TLSFiles) -> None:
    import socket

    hook, sink, _agent = start_hook(run_agent, engine, tls_files, max_body=8192)
    hook.max_inflight = 8500  # room for the slow 8000-byte body, not for another beside it
    body = event_list([SCENARIOS["Read secret"]])
    assert len(body) < 8192
    # A client announces a large body and sends it slowly: its bytes are reserved meanwhile.
    raw = ca_ctx(tls_files).wrap_socket(socket.create_connection(("127.0.0.1", hook.address[1])),
                                        server_hostname="localhost")
    try:
        raw.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 8000\r\n\r\n" + b"{" * 10)
        with httpx.Client(verify=ca_ctx(tls_files)) as c:
            assert wait_for(lambda: c.post(url(hook), content=body).status_code == 503)
    finally:
        raw.close()
    with httpx.Client(verify=ca_ctx(tls_files)) as c:
        assert wait_for(lambda: c.post(url(hook), content=body).status_code == 200)
    assert wait_for(lambda: "Read secret" in sink.rules())
    assert hook.stats()["busy"] >= 1
