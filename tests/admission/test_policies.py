"""Every policy type and mode, posted as real AdmissionReview JSON to the webhook over HTTPS."""

from __future__ import annotations

import copy
import time

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from tests.admission.conftest import FakeBackend, apply_patch, pod, review, workload

from hullguard.model import Artifact, Finding, ScanResult, Severity

D1 = "sha256:" + "1" * 64
D2 = "sha256:" + "2" * 64
D3 = "sha256:" + "3" * 64


def test_no_policies_admits_and_echoes_uid(start_webhook) -> None:
    hook = start_webhook()
    rev = review(pod("nginx:1.27"))
    resp = hook.post(rev)
    assert resp["uid"] == rev["request"]["uid"]
    assert resp["allowed"] is True
    assert resp["status"]["code"] == 200
    assert "patch" not in resp and "warnings" not in resp


REGISTRY_POLICY = """
policies:
  - name: trusted
    type: allowedRegistries
    registries: ["registry.example", "ghcr.io/acme/*"]
"""


def test_allowed_registries_lists_every_offending_container(start_webhook) -> None:
    hook = start_webhook(REGISTRY_POLICY)
    ok = hook.post(review(pod("registry.example/team/app:1", "ghcr.io/acme/tool:2")))
    assert ok["allowed"] is True
    bad = hook.post(review(pod("registry.example/app:1", "nginx:1.27", init=("quay.io/x/init:1",),
                               ephemeral=("busybox:1.36",))))
    assert bad["allowed"] is False
    assert bad["status"]["code"] == 403
    msg = bad["status"]["message"]
    assert "3 policy violations" in msg
    assert "image nginx:1.27 (containers[c1]) is not from an allowed registry" in msg
    assert "quay.io/x/init:1 (initContainers[init0])" in msg
    assert "busybox:1.36 (ephemeralContainers[debug0])" in msg
    assert "registry.example/app:1" not in msg
    # "ghcr.io/acme/*" must not admit a look-alike organisation.
    assert hook.post(review(pod("ghcr.io/acmeevil/tool:1")))["allowed"] is False


def test_disallow_latest(start_webhook) -> None:
    hook = start_webhook("policies: [{name: no-latest, type: disallowLatest}]")
    for image in ("nginx", "nginx:latest", "registry.example:5000/app", "registry.example:5000/app:latest"):
        resp = hook.post(review(pod(image)))
        assert resp["allowed"] is False, image
        what = 'uses the mutable tag "latest"' if image.endswith(":latest") else 'has no tag, which means "latest"'
        assert f"image {image} (containers[c0]) {what}; use a versioned tag" in resp["status"]["message"]
    for image in ("nginx:1.27", f"nginx:latest@{D1}", f"nginx@{D1}", "registry.example:5000/app:v2"):
        assert hook.post(review(pod(image)))["allowed"] is True, image


def test_require_digest_message_is_actionable(start_webhook) -> None:
    backend = FakeBackend(digests={"registry.example/app:1": D1})
    hook = start_webhook("""
policies:
  - {name: pin, type: mutateDigest}
  - {name: digests, type: requireDigest}
""", backend)
    resp = hook.post(review(pod("registry.example/app:latest")))
    assert resp["allowed"] is False
    assert ("image registry.example/app:latest (containers[c0]) is not pinned by digest; "
            "use registry.example/app@sha256:...") in resp["status"]["message"]
    # Once the digest is known (the mutating webhook resolved it), the message names it.
    assert hook.post(review(pod("registry.example/app:1")), "mutate")["allowed"] is True
    resp = hook.post(review(pod("registry.example/app:1")))
    assert f"use registry.example/app:1@{D1}" in resp["status"]["message"]
    assert hook.post(review(pod(f"registry.example/app:1@{D1}")))["allowed"] is True


@pytest.mark.parametrize("kind", ["Pod", "Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob"])
def test_mutate_pins_digests_at_the_right_path_for_each_kind(start_webhook, kind: str) -> None:
    backend = FakeBackend(digests={"registry.example/app:1": D1, "registry.example/init:2": D2,
                                   "registry.example/debug:3": D3})
    hook = start_webhook("policies: [{name: pin, type: mutateDigest}]", backend)
    p = pod("registry.example/app:1", f"registry.example/side@{D2}", init=("registry.example/init:2",),
            ephemeral=("registry.example/debug:3",))
    obj = p if kind == "Pod" else workload(kind, p)
    resp = hook.post(review(obj), "mutate")
    assert resp["allowed"] is True
    assert resp["patchType"] == "JSONPatch"
    patched = apply_patch(obj, resp["patch"])
    spec = patched["spec"] if kind == "Pod" else (
        patched["spec"]["jobTemplate"]["spec"]["template"]["spec"] if kind == "CronJob"
        else patched["spec"]["template"]["spec"])
    assert spec["containers"][0]["image"] == f"registry.example/app:1@{D1}"
    assert spec["containers"][1]["image"] == f"registry.example/side@{D2}"  # already pinned: untouched
    assert spec["initContainers"][0]["image"] == f"registry.example/init:2@{D2}"
    assert spec["ephemeralContainers"][0]["image"] == f"registry.example/debug:3@{D3}"
    # Mutation never runs on /validate.
    assert "patch" not in hook.post(review(obj))


def test_mutate_registry_error_follows_failure_policy(start_webhook) -> None:
    backend = FakeBackend(errors={"registry.example/app:1": "cannot connect to registry registry.example"})
    hook = start_webhook("""
policies:
  - {name: pin-strict, type: mutateDigest, images: ["registry.example/app*"], failurePolicy: Fail}
  - {name: pin-lenient, type: mutateDigest, images: ["registry.example/other*"], failurePolicy: Ignore}
""", backend)
    resp = hook.post(review(pod("registry.example/app:1")), "mutate")
    assert resp["allowed"] is False
    assert "cannot connect to registry registry.example (failurePolicy: Fail)" in resp["status"]["message"]
    backend.errors["registry.example/other:1"] = "registry registry.example did not answer in time"
    resp = hook.post(review(pod("registry.example/other:1")), "mutate")
    assert resp["allowed"] is True and "patch" not in resp
    assert any("admitted because failurePolicy is Ignore" in w for w in resp["warnings"])


KEYS_POLICY = """
policies:
  - name: signed
    type: verifySignature
    images: ["registry.example/*"]
    keys: [cosign.pub]
    failurePolicy: {fp}
    timeoutSeconds: 0.5
"""
PUB = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def test_signature_policy(start_webhook, tmp_path) -> None:
    (tmp_path / "cosign.pub").write_bytes(PUB)
    backend = FakeBackend(signed={"registry.example/good:1": True, "registry.example/bad:1": False})
    hook = start_webhook(KEYS_POLICY.format(fp="Fail"), backend)
    assert hook.post(review(pod("registry.example/good:1", "docker.io/library/nginx:1")))["allowed"] is True
    resp = hook.post(review(pod("registry.example/good:1", "registry.example/bad:1")))
    assert resp["allowed"] is False
    assert ("image registry.example/bad:1 is not signed by a trusted key (cosign.pub): no signatures found"
            in resp["status"]["message"])
    # The nginx image is outside the policy's images and was never checked.
    assert not [c for c in backend.calls if "nginx" in c[1]]
    # Decisions are cached: a second identical request asks the backend nothing.
    before = len(backend.calls)
    hook.post(review(pod("registry.example/good:1")))
    assert len(backend.calls) == before


def test_signature_timeout_fail_closed_and_open(start_webhook, tmp_path) -> None:
    (tmp_path / "cosign.pub").write_bytes(PUB)
    slow = FakeBackend(signed={"registry.example/good:1": True}, delay=2.0)
    closed = start_webhook(KEYS_POLICY.format(fp="Fail"), slow)
    t = time.monotonic()
    resp = closed.post(review(pod("registry.example/good:1")))
    assert time.monotonic() - t < 1.9  # the request did not wait for the slow dependency
    assert resp["allowed"] is False
    assert "did not finish within the policy timeout (failurePolicy: Fail)" in resp["status"]["message"]
    opened = start_webhook(KEYS_POLICY.format(fp="Ignore"), FakeBackend(delay=2.0))
    resp = opened.post(review(pod("registry.example/good:1")))
    assert resp["allowed"] is True
    assert "failurePolicy is Ignore" in resp["warnings"][0]
    rec = opened.decisions()[-1]
    assert rec["policies"][0]["result"] == "error"


def test_attestation_required(start_webhook, tmp_path) -> None:
    (tmp_path / "cosign.pub").write_bytes(PUB)
    backend = FakeBackend(signed={"registry.example/a:1": True, "registry.example/b:1": True},
                          attested={("registry.example/a:1", "https://cyclonedx.org/bom"): True})
    hook = start_webhook("""
policies:
  - name: sbom-attested
    type: verifySignature
    keys: [cosign.pub]
    attestations: ["https://cyclonedx.org/bom"]
""", backend)
    assert hook.post(review(pod("registry.example/a:1")))["allowed"] is True
    resp = hook.post(review(pod("registry.example/b:1")))
    assert resp["allowed"] is False
    assert "has no valid https://cyclonedx.org/bom attestation signed by cosign.pub" in resp["status"]["message"]




def _privileged_pod() -> dict:
    p = pod("nginx:1.27")
    p["spec"]["containers"][0]["securityContext"] = {"privileged": True}
    return p


def _baseline_only_pod() -> dict:
    return pod("nginx:1.27")  # passes baseline, fails restricted (runAsNonRoot, capabilities, seccomp...)


def test_pod_security_levels_from_namespace_labels(start_webhook) -> None:
    hook = start_webhook("""
namespaces:
  prod:
    labels:
      pod-security.kubernetes.io/enforce: restricted
      pod-security.kubernetes.io/enforce-version: v1.30
  "team-*":
    labels: {pod-security.kubernetes.io/warn: restricted, pod-security.kubernetes.io/audit: restricted}
  odd:
    labels: {pod-security.kubernetes.io/enforce: superstrict}
policies:
  - {name: pss, type: podSecurity, level: baseline}
""")
    # Default level (baseline) where the namespace has no label.
    resp = hook.post(review(_privileged_pod()))
    assert resp["allowed"] is False
    assert 'violates PodSecurity "baseline:latest": privileged' in resp["status"]["message"]
    assert hook.post(review(_baseline_only_pod()))["allowed"] is True
    # enforce label with version.
    resp = hook.post(review(_baseline_only_pod(), namespace="prod"))
    assert resp["allowed"] is False
    assert 'violates PodSecurity "restricted:v1.30"' in resp["status"]["message"]
    # warn label: admitted with a warning; audit label: only in the decision log.
    resp = hook.post(review(_baseline_only_pod(), namespace="team-a"))
    assert resp["allowed"] is True
    assert any('violates PodSecurity "restricted:latest"' in w for w in resp["warnings"])
    rec = hook.decisions()[-1]
    assert any(r["mode"] == "audit" and r["result"] == "fail" for r in rec["policies"])
    # An invalid level label is evaluated as restricted, as the PodSecurity plugin does.
    resp = hook.post(review(_baseline_only_pod(), namespace="odd"))
    assert resp["allowed"] is False
    assert "evaluated as restricted" in resp["status"]["message"]


def test_pod_security_on_deployment_and_cronjob(start_webhook) -> None:
    hook = start_webhook("policies: [{name: pss, type: podSecurity, level: baseline}]")
    for kind in ("Deployment", "CronJob"):
        resp = hook.post(review(workload(kind, _privileged_pod())))
        assert resp["allowed"] is False, kind
        assert "privileged" in resp["status"]["message"]


def test_modes_warn_and_audit(start_webhook) -> None:
    hook = start_webhook("""
policies:
  - {name: no-latest, type: disallowLatest, mode: warn}
  - {name: trusted, type: allowedRegistries, registries: [registry.example], mode: audit}
""")
    resp = hook.post(review(pod("nginx:latest")))
    assert resp["allowed"] is True
    assert resp["warnings"] == ['[no-latest] image nginx:latest (containers[c0]) uses the mutable tag "latest"; '
                                "use a versioned tag or pin it by digest"]
    rec = hook.decisions()[-1]
    results = {r["policy"]: r for r in rec["policies"]}
    assert results["trusted"]["result"] == "fail" and results["trusted"]["mode"] == "audit"
    assert "is not from an allowed registry" in results["trusted"]["messages"][0]
    assert rec["allowed"] is True and rec["mode"] == "warn"


def test_exemptions(start_webhook) -> None:
    hook = start_webhook("""
exemptions:
  namespaces: [kube-system]
  serviceAccounts: ["ci:deployer"]
  images: ["registry.k8s.io/*"]
policies:
  - name: trusted
    type: allowedRegistries
    registries: [registry.example]
    exclude:
      namespaces: ["sandbox-*"]
      images: ["docker.io/library/busybox*"]
""")
    assert hook.post(review(pod("evil.example/x:1"), namespace="kube-system"))["allowed"] is True
    assert hook.post(review(pod("evil.example/x:1"), username="system:serviceaccount:ci:deployer"))["allowed"]
    assert not hook.post(review(pod("evil.example/x:1"), username="system:serviceaccount:ci:other"))["allowed"]
    assert hook.post(review(pod("evil.example/x:1"), namespace="sandbox-1"))["allowed"] is True
    assert hook.post(review(pod("registry.k8s.io/pause:3.9", "busybox:1.36")))["allowed"] is True
    resp = hook.post(review(pod("registry.k8s.io/pause:3.9", "evil.example/x:1")))
    assert resp["allowed"] is False and "pause" not in resp["status"]["message"]
    assert hook.decisions()[0]["reason"] == "namespace kube-system is exempt"


def test_update_checks_new_object_and_delete_is_allowed(start_webhook) -> None:
    hook = start_webhook("policies: [{name: no-latest, type: disallowLatest}]")
    old = pod("nginx:1.27")
    new = pod("nginx:latest")
    resp = hook.post(review(new, operation="UPDATE", old=old))
    assert resp["allowed"] is False and "nginx:latest" in resp["status"]["message"]
    assert hook.post(review(old, operation="UPDATE", old=new))["allowed"] is True
    resp = hook.post(review(None, operation="DELETE", old=new))
    assert resp["allowed"] is True
    rec = hook.decisions()[-1]
    assert rec["operation"] == "DELETE" and rec["name"] == "web" and rec["policies"] == []


def test_unknown_kinds_pass_untouched(start_webhook) -> None:
    backend = FakeBackend()
    hook = start_webhook("""
policies:
  - {name: pin, type: mutateDigest}
  - {name: no-latest, type: disallowLatest}
  - {name: pss, type: podSecurity, level: restricted}
""", backend)
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"image": "nginx:latest"}}
    odd = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"},
           "spec": {"containers": [{"name": "x", "image": "nginx:latest"}]}}
    for obj in (cm, odd):
        for endpoint in ("validate", "mutate"):
            resp = hook.post(review(obj), endpoint)
            assert resp["allowed"] is True and "patch" not in resp and "warnings" not in resp
    assert backend.calls == []


def _vuln(rule: str, sev: Severity, fix: str = "", kev: bool = False) -> Finding:
    return Finding(kind="vulnerability", rule_id=rule, severity=sev, target="deb:openssl@3.0.1#", fix=fix,
                   details={"package": {"name": "openssl", "version": "3.0.1"}, "known_exploited": kev})


def test_vulnerability_gate_from_cached_results(start_webhook, tmp_path) -> None:
    import msgspec

    results = tmp_path / "scans"
    results.mkdir()

    def save(digest: str, findings: list[Finding]) -> None:
        res = ScanResult(artifact=Artifact(name="x", type="registry", manifest_digest=digest), findings=findings)
        (results / f"sha256-{digest.split(':')[1]}.json").write_bytes(msgspec.json.encode(res))

    save(D1, [_vuln("CVE-2024-0001", Severity.CRITICAL, fix="3.0.2")])
    save(D2, [_vuln("CVE-2024-0002", Severity.HIGH, kev=True)])
    save(D3, [_vuln("CVE-2024-0003", Severity.CRITICAL), _vuln("CVE-2024-0004", Severity.HIGH, fix="1")])
    backend = FakeBackend(digests={"registry.example/a:1": D1, "registry.example/b:1": D2,
                                   "registry.example/c:1": D3})
    hook = start_webhook(f"""
policies:
  - name: vulns
    type: vulnerabilities
    resultsDir: {results}
""", backend)
    resp = hook.post(review(pod("registry.example/a:1")))
    assert resp["allowed"] is False
    assert ("image registry.example/a:1 has 1 critical fixable vulnerability: CVE-2024-0001 in openssl 3.0.1 "
            "(fixed in 3.0.2)") in resp["status"]["message"]
    resp = hook.post(review(pod("registry.example/b:1")))
    assert resp["allowed"] is False
    assert "1 known-exploited vulnerability: CVE-2024-0002" in resp["status"]["message"]
    # An unfixed critical and a fixable high do not trip the default gate.
    assert hook.post(review(pod("registry.example/c:1")))["allowed"] is True
    assert not any(c[0] == "scan" for c in backend.calls)


def test_vulnerability_scan_on_demand_within_deadline(start_webhook, tmp_path) -> None:
    res = ScanResult(artifact=Artifact(name="x", type="registry"),
                     findings=[_vuln("CVE-2024-0009", Severity.CRITICAL, fix="2")])
    backend = FakeBackend(digests={"registry.example/a:1": D1}, scans={"registry.example/a:1": res}, delay=0.4)
    hook = start_webhook(f"""
policies:
  - name: vulns
    type: vulnerabilities
    severity: HIGH
    timeoutSeconds: 0.5
    failurePolicy: Ignore
    resultsDir: {tmp_path / "scans"}
""", backend)
    # resolve (0.4 s) + scan (0.4 s) exceed the 0.5 s deadline: admitted (Ignore) with a warning ...
    resp = hook.post(review(pod("registry.example/a:1")))
    assert resp["allowed"] is True and "did not finish" in resp["warnings"][0]
    # ... while the scan finishes in the background and lands in the results dir for next time.
    deadline = time.monotonic() + 5
    while not (tmp_path / "scans" / f"sha256-{'1' * 64}.json").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    resp = hook.post(review(pod("registry.example/a:1")))
    assert resp["allowed"] is False
    assert "1 high-or-higher fixable vulnerability: CVE-2024-0009" in resp["status"]["message"]


def test_signature_verdict_is_cached_by_digest(start_webhook, tmp_path) -> None:
    (tmp_path / "cosign.pub").write_bytes(PUB)
    backend = FakeBackend(digests={"registry.example/app:1": D1, "registry.example/app:stable": D1},
                          signed={"registry.example/app:1": True})
    hook = start_webhook(KEYS_POLICY.format(fp="Fail") + "  - {name: pin, type: mutateDigest}\n", backend)
    assert hook.post(review(pod("registry.example/app:1")))["allowed"] is True
    # The same digest by reference, or by another tag once its digest is known (here from the
    # mutating webhook), reuses the verdict without asking the registry for signatures again.
    assert hook.post(review(pod(f"registry.example/app@{D1}")))["allowed"] is True
    assert hook.post(review(pod("registry.example/app:stable")), "mutate")["allowed"] is True
    assert hook.post(review(pod("registry.example/app:stable")))["allowed"] is True
    assert [c for c in backend.calls if c[0] == "verify"] == [("verify", "registry.example/app:1")]


def test_registry_calls_in_flight_are_bounded(start_webhook, tmp_path) -> None:
    (tmp_path / "cosign.pub").write_bytes(PUB)
    backend = FakeBackend(delay=1.0)
    hook = start_webhook(KEYS_POLICY.format(fp="Fail"), backend)
    hook.server.engine.deps.max_inflight = 2
    resp = hook.post(review(pod(*[f"registry.example/app{i}:1" for i in range(5)])))
    assert resp["allowed"] is False
    assert "registry calls already in flight" in resp["status"]["message"]
    assert len(backend.calls) <= 2  # never more calls started than the bound


def test_mutate_in_warn_and_audit_mode_only_reports(start_webhook) -> None:
    backend = FakeBackend(digests={"registry.example/app:1": D1})
    hook = start_webhook("""
policies:
  - {name: pin-warn, type: mutateDigest, mode: warn, kinds: [Pod]}
  - {name: pin-audit, type: mutateDigest, mode: audit, kinds: [Deployment]}
""", backend)
    resp = hook.post(review(pod("registry.example/app:1")), "mutate")
    assert resp["allowed"] is True and "patch" not in resp
    assert resp["warnings"] == [f"[pin-warn] image registry.example/app:1 (containers[c0]) would be pinned to {D1}"]
    resp = hook.post(review(workload("Deployment", pod("registry.example/app:1"))), "mutate")
    assert resp["allowed"] is True and "patch" not in resp and "warnings" not in resp
    rec = hook.decisions()[-1]
    assert rec["policies"][0]["mode"] == "audit" and "would be pinned" in rec["policies"][0]["messages"][0]


def test_update_judges_only_what_changed(start_webhook, tmp_path) -> None:
    (tmp_path / "cosign.pub").write_bytes(PUB)
    backend = FakeBackend(errors={"registry.example/app:1": "cannot connect to registry registry.example"})
    hook = start_webhook(KEYS_POLICY.format(fp="Fail") + """
  - {name: no-latest, type: disallowLatest}
  - {name: pss, type: podSecurity, level: baseline}
""", backend)
    running = workload("Deployment", _privileged_pod())
    running["spec"]["template"]["spec"]["containers"].append({"name": "app", "image": "registry.example/app:1"})
    relabelled = copy.deepcopy(running)
    relabelled["metadata"]["labels"] = {"team": "shop"}
    # A label change on a workload admitted before these policies existed (or while the registry is
    # down) goes through: no image and no pod spec changed.
    resp = hook.post(review(relabelled, operation="UPDATE", old=running))
    assert resp["allowed"] is True, resp["status"]["message"]
    assert backend.calls == []
    # Changing one image judges that image (and the changed spec) only.
    changed = copy.deepcopy(running)
    changed["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:latest"
    resp = hook.post(review(changed, operation="UPDATE", old=running))
    msg = resp["status"]["message"]
    assert resp["allowed"] is False
    assert "nginx:latest" in msg and "privileged" in msg and "registry.example/app:1" not in msg


def test_a_tag_is_resolved_once_per_request(start_webhook, tmp_path) -> None:
    """Signature and vulnerability policies on one new tag: the signature check resolves the tag
    and reports the digest it checked, so the vulnerability gate does not ask the registry again."""
    import msgspec

    (tmp_path / "cosign.pub").write_bytes(PUB)
    results = tmp_path / "scans"
    results.mkdir()
    clean = ScanResult(artifact=Artifact(name="x", type="registry", manifest_digest=D1))
    (results / f"sha256-{D1.split(':')[1]}.json").write_bytes(msgspec.json.encode(clean))
    backend = FakeBackend(digests={"registry.example/app:1": D1}, signed={"registry.example/app:1": True},
                          delay=0.1)
    policy = KEYS_POLICY.format(fp="Fail").replace("timeoutSeconds: 0.5", "timeoutSeconds: 5") + f"""\
  - name: vulns
    type: vulnerabilities
    resultsDir: {results}
"""
    hook = start_webhook(policy, backend)
    assert hook.post(review(pod("registry.example/app:1")))["allowed"] is True
    assert backend.calls == [("verify", "registry.example/app:1")]
    # When the signature check cannot say which digest it saw, the gate resolves on its own, and
    # registry trouble reaches its failurePolicy as before.
    backend.errors["registry.example/app:2"] = "registry: connection refused"
    resp = hook.post(review(pod("registry.example/app:2")))
    assert resp["allowed"] is False
    assert ("resolve", "registry.example/app:2") in backend.calls
    assert "[vulns] registry: connection refused (failurePolicy: Fail)" in resp["status"]["message"]
