"""Pod Security Standards: one table of pods per control, written from the standard's text
(allowed values per field, pod vs container precedence, the version each behaviour starts at)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from hullguard.detect.misconfig.pss import (
    LATEST,
    PSSVersionError,
    evaluate_all,
    evaluate_pss,
    format_violations,
    parse_version,
)


def restricted_pod(**spec_extra: Any) -> dict[str, Any]:
    """A pod that meets restricted at every version; tests change one thing at a time."""
    spec: dict[str, Any] = {
        "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [{
            "name": "app", "image": "app:1",
            "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
        }],
    }
    spec.update(spec_extra)
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": spec}


def with_container_sc(pod: dict[str, Any], **sc: Any) -> dict[str, Any]:
    pod = copy.deepcopy(pod)
    pod["spec"]["containers"][0]["securityContext"].update(sc)
    return pod


def with_pod_sc(pod: dict[str, Any], **sc: Any) -> dict[str, Any]:
    pod = copy.deepcopy(pod)
    pod["spec"]["securityContext"].update(sc)
    return pod


def controls(pod: dict[str, Any], level: str = "restricted", version: str = "latest") -> set[str]:
    return {v.control for v in evaluate_pss(pod, level, version)}


BASE = restricted_pod()


def test_the_reference_pod_is_clean_everywhere():
    for version in ("v1.0", "v1.19", "v1.22", "v1.25", "v1.30", "v1.35", "latest"):
        assert controls(BASE, "restricted", version) == set(), version
        assert controls(BASE, "baseline", version) == set(), version


# (name, pod, control expected at baseline or None, control expected at restricted)
BASELINE_TABLE: list[tuple[str, dict[str, Any], str]] = [
    ("hostNetwork", restricted_pod(hostNetwork=True), "hostNamespaces"),
    ("hostPID", restricted_pod(hostPID=True), "hostNamespaces"),
    ("hostIPC", restricted_pod(hostIPC=True), "hostNamespaces"),
    ("privileged", with_container_sc(BASE, privileged=True), "privileged"),
    ("cap SYS_ADMIN", with_container_sc(BASE, capabilities={"drop": ["ALL"], "add": ["SYS_ADMIN"]}),
     "capabilities_restricted"),
    ("cap NET_RAW", with_container_sc(BASE, capabilities={"drop": ["ALL"], "add": ["NET_RAW"]}),
     "capabilities_restricted"),
    ("hostPath", restricted_pod(volumes=[{"name": "h", "hostPath": {"path": "/"}}]), "restrictedVolumes"),
    ("hostPort", restricted_pod(containers=[{
        "name": "app", "ports": [{"containerPort": 80, "hostPort": 8080}],
        "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}}]), "hostPorts"),
    ("apparmor annotation unconfined", {**BASE, "metadata": {"annotations": {
        "container.apparmor.security.beta.kubernetes.io/app": "unconfined"}}}, "appArmorProfile"),
    ("apparmor field unconfined", with_container_sc(BASE, appArmorProfile={"type": "Unconfined"}),
     "appArmorProfile"),
    ("apparmor pod field unconfined", with_pod_sc(BASE, appArmorProfile={"type": "Unconfined"}),
     "appArmorProfile"),
    ("selinux type", with_container_sc(BASE, seLinuxOptions={"type": "spc_t"}), "seLinuxOptions"),
    ("selinux user", with_pod_sc(BASE, seLinuxOptions={"user": "system_u"}), "seLinuxOptions"),
    ("selinux role", with_container_sc(BASE, seLinuxOptions={"role": "system_r"}), "seLinuxOptions"),
    ("procMount Unmasked", with_container_sc(BASE, procMount="Unmasked"), "procMount_restricted"),
    ("seccomp pod Unconfined", with_pod_sc(BASE, seccompProfile={"type": "Unconfined"}),
     "seccompProfile_restricted"),
    ("seccomp container Unconfined overrides pod RuntimeDefault",
     with_container_sc(BASE, seccompProfile={"type": "Unconfined"}), "seccompProfile_restricted"),
    ("sysctl unsafe", with_pod_sc(BASE, sysctls=[{"name": "kernel.msgmax", "value": "1"}]), "sysctls"),
    ("windows hostProcess", with_container_sc(BASE, windowsOptions={"hostProcess": True}), "hostProcess"),
    ("probe host", restricted_pod(containers=[{
        "name": "app", "livenessProbe": {"httpGet": {"host": "10.0.0.1", "port": 80}},
        "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}}]),
     "hostProbesAndHostLifecycle"),
]


@pytest.mark.parametrize(("name", "pod", "restricted_control"), BASELINE_TABLE, ids=[r[0] for r in BASELINE_TABLE])
def test_baseline_controls_fail_at_both_levels(name: str, pod: dict[str, Any], restricted_control: str):
    assert controls(pod, "baseline"), name
    assert restricted_control in controls(pod, "restricted")
    assert controls(pod, "privileged") == set()


ALLOWED_AT_BASELINE: list[tuple[str, dict[str, Any]]] = [
    ("hostNetwork false", restricted_pod(hostNetwork=False)),
    ("privileged false", with_container_sc(BASE, privileged=False)),
    ("baseline caps", with_container_sc(BASE, capabilities={"add": ["CHOWN", "NET_BIND_SERVICE", "SYS_CHROOT"]})),
    ("hostPort 0", restricted_pod(containers=[{"name": "a", "ports": [{"containerPort": 80, "hostPort": 0}]}])),
    ("apparmor runtime/default", {**BASE, "metadata": {"annotations": {
        "container.apparmor.security.beta.kubernetes.io/app": "runtime/default"}}}),
    ("apparmor localhost", {**BASE, "metadata": {"annotations": {
        "container.apparmor.security.beta.kubernetes.io/app": "localhost/prof"}}}),
    ("apparmor field Localhost", with_container_sc(BASE, appArmorProfile={"type": "Localhost",
                                                                         "localhostProfile": "x"})),
    ("selinux container_t + level", with_container_sc(BASE, seLinuxOptions={"type": "container_t", "level": "s0:c1"})),
    ("selinux container_engine_t", with_container_sc(BASE, seLinuxOptions={"type": "container_engine_t"})),
    ("procMount Default", with_container_sc(BASE, procMount="Default")),
    ("seccomp unset", restricted_pod(securityContext={})),
    ("safe sysctl", with_pod_sc(BASE, sysctls=[{"name": "net.ipv4.tcp_syncookies", "value": "1"}])),
    ("non-hostPath volumes", restricted_pod(volumes=[{"name": "n", "nfs": {"server": "x", "path": "/"}}])),
    ("probe without host", restricted_pod(containers=[{"name": "a", "readinessProbe": {"tcpSocket": {"port": 80}}}])),
]


@pytest.mark.parametrize(("name", "pod"), ALLOWED_AT_BASELINE, ids=[r[0] for r in ALLOWED_AT_BASELINE])
def test_allowed_at_baseline(name: str, pod: dict[str, Any]):
    assert controls(pod, "baseline") == set()


RESTRICTED_TABLE: list[tuple[str, dict[str, Any], str]] = [
    ("nfs volume", restricted_pod(volumes=[{"name": "n", "nfs": {"server": "x", "path": "/"}}]), "restrictedVolumes"),
    ("gitRepo volume", restricted_pod(volumes=[{"name": "g", "gitRepo": {"repository": "x"}}]), "restrictedVolumes"),
    ("ape unset", restricted_pod(containers=[{"name": "app", "securityContext": {"capabilities": {"drop": ["ALL"]}}}]),
     "allowPrivilegeEscalation"),
    ("ape true", with_container_sc(BASE, allowPrivilegeEscalation=True), "allowPrivilegeEscalation"),
    ("runAsNonRoot nowhere", restricted_pod(securityContext={"seccompProfile": {"type": "RuntimeDefault"}}),
     "runAsNonRoot"),
    ("runAsNonRoot pod false", with_pod_sc(BASE, runAsNonRoot=False), "runAsNonRoot"),
    ("runAsNonRoot container false overrides pod true", with_container_sc(BASE, runAsNonRoot=False), "runAsNonRoot"),
    ("runAsUser 0 pod", with_pod_sc(BASE, runAsUser=0), "runAsUser"),
    ("runAsUser 0 container", with_container_sc(BASE, runAsUser=0), "runAsUser"),
    ("seccomp nowhere", restricted_pod(securityContext={"runAsNonRoot": True}), "seccompProfile_restricted"),
    ("no drop ALL", with_container_sc(BASE, capabilities={"drop": ["NET_RAW"]}), "capabilities_restricted"),
    ("add CHOWN", with_container_sc(BASE, capabilities={"drop": ["ALL"], "add": ["CHOWN"]}),
     "capabilities_restricted"),
]


@pytest.mark.parametrize(("name", "pod", "control"), RESTRICTED_TABLE, ids=[r[0] for r in RESTRICTED_TABLE])
def test_restricted_only_controls(name: str, pod: dict[str, Any], control: str):
    assert control in controls(pod, "restricted")
    assert controls(pod, "baseline") == set(), "baseline must admit it"


ALLOWED_AT_RESTRICTED: list[tuple[str, dict[str, Any]]] = [
    ("allowed volume types", restricted_pod(volumes=[
        {"name": "a", "configMap": {"name": "c"}}, {"name": "b", "secret": {"secretName": "s"}},
        {"name": "c", "emptyDir": {}}, {"name": "d", "persistentVolumeClaim": {"claimName": "x"}},
        {"name": "e", "projected": {"sources": []}}, {"name": "f", "downwardAPI": {}},
        {"name": "g", "csi": {"driver": "x"}}, {"name": "h", "ephemeral": {}},
        {"name": "i", "image": {"reference": "x"}},
        {"name": "defaulted-to-emptydir"}])),
    ("runAsNonRoot on every container only", restricted_pod(
        securityContext={"seccompProfile": {"type": "RuntimeDefault"}},
        containers=[{"name": "a", "securityContext": {"runAsNonRoot": True, "allowPrivilegeEscalation": False,
                                                      "capabilities": {"drop": ["ALL"]}}}])),
    ("seccomp only on containers", restricted_pod(
        securityContext={"runAsNonRoot": True},
        containers=[{"name": "a", "securityContext": {"seccompProfile": {"type": "Localhost", "localhostProfile": "p"},
                                                      "allowPrivilegeEscalation": False,
                                                      "capabilities": {"drop": ["ALL"]}}}])),
    ("add NET_BIND_SERVICE", with_container_sc(BASE, capabilities={"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]})),
    ("runAsUser 1000", with_container_sc(BASE, runAsUser=1000)),
]


@pytest.mark.parametrize(("name", "pod"), ALLOWED_AT_RESTRICTED, ids=[r[0] for r in ALLOWED_AT_RESTRICTED])
def test_allowed_at_restricted(name: str, pod: dict[str, Any]):
    assert controls(pod, "restricted") == set()


def test_every_container_kind_is_checked():
    for key in ("initContainers", "ephemeralContainers"):
        pod = copy.deepcopy(BASE)
        pod["spec"][key] = [{"name": "side", "securityContext": {"privileged": True}}]
        found = evaluate_pss(pod, "baseline")
        assert [v.control for v in found] == ["privileged"]
        assert '"side"' in found[0].detail
        # ...and at restricted the sidecar needs the full restricted context of its own.
        assert {"allowPrivilegeEscalation", "capabilities_restricted"} <= controls(pod)


def test_container_without_override_inherits_pod_settings():
    pod = copy.deepcopy(BASE)
    pod["spec"]["containers"].append({"name": "b", "securityContext": {
        "allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}})
    assert controls(pod) == set()
    pod["spec"]["securityContext"] = {}
    assert {"runAsNonRoot", "seccompProfile_restricted"} <= controls(pod)


# --- versions -----------------------------------------------------------------------------------

def test_version_parsing():
    assert parse_version("latest") == LATEST
    assert parse_version("v1.30") == (1, 30)
    assert parse_version("1.22") == (1, 22)
    assert parse_version("v1.99") == LATEST  # newer than the table: behaves as latest, like the plugin
    for bad in ("v2.0", "banana", "1"):
        with pytest.raises(PSSVersionError):
            parse_version(bad)
    with pytest.raises(ValueError):
        evaluate_pss(BASE, "strict")


def test_run_as_user_zero_only_from_1_23():
    pod = with_container_sc(BASE, runAsUser=0)
    assert "runAsUser" not in controls(pod, "restricted", "v1.22")
    assert "runAsUser" in controls(pod, "restricted", "v1.23")


def test_capabilities_restricted_from_1_22():
    pod = with_container_sc(BASE, capabilities={})
    assert "capabilities_restricted" not in controls(pod, "restricted", "v1.21")
    assert "capabilities_restricted" in controls(pod, "restricted", "v1.22")
    # Before 1.22 the baseline capability list still applies at restricted.
    bad = with_container_sc(BASE, capabilities={"add": ["SYS_ADMIN"]})
    assert controls(bad, "restricted", "v1.21") == {"capabilities_baseline"}


def test_seccomp_annotations_before_1_19_fields_after():
    annotations = {"seccomp.security.alpha.kubernetes.io/pod": "unconfined"}
    ann = {**copy.deepcopy(BASE), "metadata": {"annotations": annotations}}
    assert controls(ann, "baseline", "v1.18") == {"seccompProfile_baseline"}
    assert controls(ann, "baseline", "v1.19") == set()
    field = with_pod_sc(BASE, seccompProfile={"type": "Unconfined"})
    assert controls(field, "baseline", "v1.18") == set()
    assert controls(field, "baseline", "v1.19") == {"seccompProfile_baseline"}
    # Restricted seccomp starts at 1.19; before that, no seccomp requirement at restricted.
    none = restricted_pod(securityContext={"runAsNonRoot": True})
    assert "seccompProfile_restricted" not in controls(none, "restricted", "v1.18")


def test_sysctls_safe_set_grows_with_version():
    def pod(name: str) -> dict[str, Any]:
        return with_pod_sc(BASE, sysctls=[{"name": name, "value": "1"}])

    for name, since in (("net.ipv4.ip_local_reserved_ports", 27), ("net.ipv4.tcp_keepalive_time", 29),
                        ("net.ipv4.tcp_fin_timeout", 29), ("net.ipv4.tcp_rmem", 32), ("net.ipv4.tcp_wmem", 32),
                        ("net.ipv4.tcp_slow_start_after_idle", 37)):
        assert "sysctls" in controls(pod(name), "baseline", f"v1.{since - 1}"), name
        assert "sysctls" not in controls(pod(name), "baseline", f"v1.{since}"), name


def test_selinux_container_engine_t_from_1_31():
    pod = with_container_sc(BASE, seLinuxOptions={"type": "container_engine_t"})
    assert controls(pod, "baseline", "v1.30") == {"seLinuxOptions"}
    assert controls(pod, "baseline", "v1.31") == set()


def test_windows_pods_exempt_from_linux_only_controls_from_1_25():
    pod = restricted_pod(os={"name": "windows"}, securityContext={"runAsNonRoot": True},
                         containers=[{"name": "w", "securityContext": {}}])
    assert controls(pod, "restricted", "v1.24") == {"allowPrivilegeEscalation", "seccompProfile_restricted",
                                                    "capabilities_restricted"}
    assert controls(pod, "restricted", "v1.25") == set()
    linux = copy.deepcopy(pod)
    linux["spec"]["os"] = {"name": "linux"}
    assert len(controls(linux, "restricted", "v1.25")) == 3


def test_probe_host_control_from_1_34():
    pod = restricted_pod(containers=[{
        "name": "app", "lifecycle": {"preStop": {"httpGet": {"host": "metadata.internal", "port": 80}}},
        "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}}])
    assert controls(pod, "baseline", "v1.33") == set()
    assert controls(pod, "baseline", "v1.34") == {"hostProbesAndHostLifecycle"}


def test_user_namespace_relaxations_from_1_35():
    sc = {"runAsUser": 0, "seccompProfile": {"type": "RuntimeDefault"}}
    pod = restricted_pod(hostUsers=False, securityContext=sc)
    pod = with_container_sc(pod, procMount="Unmasked")
    assert controls(pod, "restricted", "v1.34") == {"runAsNonRoot", "runAsUser", "procMount"}
    # 1.35: runAsNonRoot/runAsUser skipped for user-namespaced pods; baseline procMount relaxed but
    # restricted keeps forbidding an unmasked /proc.
    assert controls(pod, "baseline", "v1.35") == set()
    assert controls(pod, "restricted", "v1.35") == {"procMount_restricted"}
    host_users = copy.deepcopy(pod)
    host_users["spec"]["hostUsers"] = True
    assert controls(host_users, "baseline", "v1.35") == {"procMount"}


def test_restricted_overrides_replace_baseline_checks():
    pod = restricted_pod(volumes=[{"name": "h", "hostPath": {"path": "/var/run/docker.sock"}}])
    assert controls(pod, "baseline") == {"hostPathVolumes"}
    assert controls(pod, "restricted") == {"restrictedVolumes"}


def test_accepts_template_or_bare_spec():
    assert controls({"metadata": {}, "spec": {"hostPID": True, "containers": []}}, "baseline") == {"hostNamespaces"}
    assert controls({"hostPID": True, "containers": []}, "baseline") == {"hostNamespaces"}


def test_hostile_shapes_do_not_crash():
    for spec in ({"containers": "nope"}, {"containers": [None, 3, {"securityContext": "x"}]},
                 {"securityContext": [], "volumes": [1, None]}, {"containers": [{"ports": [None]}]}):
        evaluate_pss({"spec": spec, "metadata": {"annotations": None}}, "restricted")


def test_denial_message_shape():
    found = evaluate_pss(restricted_pod(hostPID=True), "baseline", "v1.30")
    msg = format_violations("baseline", "v1.30", found)
    assert msg == 'violates PodSecurity "baseline:v1.30": host namespaces (hostPID=true)'


def test_evaluate_all_reports_both_levels_without_overrides():
    pod = with_container_sc(BASE, capabilities={"add": ["SYS_ADMIN"]}, procMount="Unmasked")
    found = {(v.control, v.level) for v in evaluate_all(pod)}
    assert found == {("capabilities_baseline", "baseline"), ("capabilities_restricted", "restricted"),
                     ("procMount", "baseline")}
    userns = copy.deepcopy(pod)
    userns["spec"]["hostUsers"] = False
    assert ("procMount_restricted", "restricted") in {(v.control, v.level) for v in evaluate_all(userns)}
