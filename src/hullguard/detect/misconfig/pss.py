"""Pod Security Standards (baseline and restricted), version aware.

Written from the Kubernetes "Pod Security Standards" page and the semantics of the PodSecurity
admission plugin, so that ``evaluate_pss`` gives the same allow/deny answer the plugin gives for a
level and version:

- every control applies to containers, initContainers and ephemeralContainers;
- a container-level setting overrides the pod-level one where the API says it inherits
  (runAsNonRoot, runAsUser, seccompProfile, seLinuxOptions, appArmorProfile);
- each control has a minimum version; where a control changed the requested version picks the
  behaviour: seccomp annotations -> fields (v1.19), restricted capabilities (v1.22), runAsUser
  (v1.23), Windows exemptions (v1.25), safe sysctls (v1.27, v1.29, v1.32, v1.37), SELinux
  container_engine_t (v1.31), probe/lifecycle hosts (v1.34), user-namespace relaxations and the
  restricted procMount control (v1.35);
- two upstream amendments were made in place in the v1.0 checks and so apply at every version:
  the appArmorProfile field and the "image" volume type;
- restricted includes baseline, minus the baseline controls a restricted one overrides
  (hostPathVolumes, seccompProfile_baseline, capabilities_baseline, procMount);
- a version newer than the table behaves as the newest the table knows, as the plugin clamps to
  its newest policy version.

Input is the plain dict form (as loaded from YAML or JSON): either a Pod-like object
``{"metadata": {...}, "spec": {...}}`` or a bare pod spec.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from hullguard.model import Severity

from .rules import Rule, register

__all__ = ["LATEST", "LEVELS", "Violation", "evaluate_all", "evaluate_pss", "format_violations", "parse_version"]

LEVELS = ("privileged", "baseline", "restricted")
# The newest Kubernetes minor this table was written against; "latest" means this.
LATEST = (1, 37)


@dataclass(frozen=True)
class Violation:
    control: str  # PSS control id, e.g. "hostNamespaces"
    level: str  # "baseline" or "restricted"
    reason: str  # short, like the admission plugin's "host namespaces"
    detail: str  # which fields / containers
    rule_id: str  # HG-PSS-xxx


class PSSVersionError(ValueError):
    pass


def parse_version(version: str | tuple[int, int] | None) -> tuple[int, int]:
    """'latest', 'v1.30' or '1.30' -> (1, 30). Versions newer than the table behave as latest."""
    if version is None or (isinstance(version, str) and version.strip().lower() in {"", "latest"}):
        return LATEST
    if isinstance(version, tuple):
        return version
    m = re.fullmatch(r"v?(\d+)\.(\d+)", version.strip())
    if not m or int(m.group(1)) != 1:
        raise PSSVersionError(f"invalid Pod Security Standards version {version!r}; use latest or v1.N")
    return min((1, int(m.group(2))), LATEST)


# --------------------------------------------------------------------------------------------------
# helpers over plain dicts

def _d(x: Any) -> dict[str, Any]:
    return x if isinstance(x, dict) else {}


def _l(x: Any) -> list[Any]:
    return x if isinstance(x, list) else []


def _containers(spec: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for key in ("initContainers", "containers", "ephemeralContainers"):
        for c in _l(spec.get(key)):
            if isinstance(c, dict):
                yield f"{key}[{c.get('name', '?')}]", c


def _cname(where: str) -> str:
    return where.split("[", 1)[1].rstrip("]")


def _is_windows(spec: dict[str, Any]) -> bool:
    return str(_d(spec.get("os")).get("name", "")).lower() == "windows"


def _fmt(names: list[str]) -> str:
    return ", ".join(f'"{n}"' for n in names)


# --------------------------------------------------------------------------------------------------
# controls: each returns a detail string when violated, None when allowed

Check = Callable[[dict[str, Any], dict[str, Any], tuple[int, int]], str | None]


def _host_namespaces(meta: dict[str, Any], spec: dict[str, Any], v: tuple[int, int]) -> str | None:
    bad = [f"{k}=true" for k in ("hostNetwork", "hostPID", "hostIPC") if spec.get(k) is True]
    return ", ".join(bad) or None


def _privileged(meta: dict[str, Any], spec: dict[str, Any], v: tuple[int, int]) -> str | None:
    bad = [_cname(w) for w, c in _containers(spec) if _d(c.get("securityContext")).get("privileged") is True]
    return f"containers {_fmt(bad)} must not set securityContext.privileged=true" if bad else None


_BASELINE_CAPS = {"AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD", "NET_BIND_SERVICE",
                  "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT"}


def _caps_baseline(meta: dict[str, Any], spec: dict[str, Any], v: tuple[int, int]) -> str | None:
    bad: set[str] = set()
    names = []
    for w, c in _containers(spec):
        added = [str(x) for x in _l(_d(_d(c.get("securityContext")).get("capabilities")).get("add"))]
        extra = [a for a in added if a not in _BASELINE_CAPS]
        if extra:
            names.append(_cname(w))
            bad.update(extra)
    return f"containers {_fmt(names)} must not include {_fmt(sorted(bad))} in securityContext.capabilities.add" \
        if names else None


def _host_path(meta: dict[str, Any], spec: dict[str, Any], v: tuple[int, int]) -> str | None:
    bad = [str(vol.get("name")) for vol in _l(spec.get("volumes")) if isinstance(vol, dict) and "hostPath" in vol
           and vol.get("hostPath") is not None]
    return f"hostPath volumes {_fmt(bad)}" if bad else None


def _host_ports(meta: dict[str, Any], spec: dict[str, Any], v: tuple[int, int]) -> str | None:
    names, ports = [], []
    for w, c in _containers(spec):
        found = [p.get("hostPort") for p in _l(c.get("ports")) if isinstance(p, dict) and p.get("hostPort")]
        if found:
            names.append(_cname(w))
            ports.extend(str(p) for p in found)
    return f"containers {_fmt(names)} use hostPorts {', '.join(ports)}" if names else None


_AA_PREFIX = "container.apparmor.security.beta.kubernetes.io/"


def _apparmor(meta: dict[str, Any], spec: dict[str, Any], v: tuple[int, int]) -> str | None:
    bad = []
    for key, value in _d(meta.get("annotations")).items():
        if str(key).startswith(_AA_PREFIX):
            val = str(value)
            if not (val in {"", "runtime/default"} or val.startswith("localhost/")):
                bad.append(f'{key}="{val}"')
    # The securityContext.appArmorProfile field (API since 1.30). Upstream amended its 1.0 check
    # in place, so the field is judged at every policy version.
    ok = {"RuntimeDefault", "Localhost"}
    pod_type = _d(_d(spec.get("securityContext")).get("appArmorProfile")).get("type")
    if pod_type is not None and pod_type not in ok:
        bad.append(f'pod securityContext.appArmorProfile.type="{pod_type}"')
    for w, c in _containers(spec):
        ctype = _d(_d(c.get("securityContext")).get("appArmorProfile")).get("type")
        if ctype is not None and ctype not in ok:
            bad.append(f'container "{_cname(w)}" securityContext.appArmorProfile.type="{ctype}"')
    return ", ".join(bad) or None


def _selinux(meta: dict[str, Any], spec: dict[str, Any], v: tuple[int, int]) -> str | None:
    allowed = {"", "container_t", "container_init_t", "container_kvm_t"}
    if v >= (1, 31):
        allowed.add("container_engine_t")
    problems: list[str] = []

    def judge(where: str, opts: Any) -> None:
        o = _d(opts)
        if str(o.get("type") or "") not in allowed:
            problems.append(f'{where} seLinuxOptions.type="{o.get("type")}"')
        if o.get("user"):
            problems.append(f"{where} seLinuxOptions.user")
        if o.get("role"):
            problems.append(f"{where} seLinuxOptions.role")

    judge("pod", _d(spec.get("securityContext")).get("seLinuxOptions"))
    for w, c in _containers(spec):
        judge(f'container "{_cname(w)}"', _d(c.get("securityContext")).get("seLinuxOptions"))
    return ", ".join(problems) or None


def _user_namespaced(spec: dict[str, Any], v: tuple[int, int]) -> bool:
    # From policy v1.35 a pod in its own user namespace (hostUsers: false) is exempt from the
    # controls whose risk the user namespace removes (root in the pod is not root on the node).
    return v >= (1, 35) and spec.get("hostUsers") is False


def _proc_mount_baseline(meta: dict[str, Any], spec: dict[str, Any], v: tuple[int, int]) -> str | None:
    if _user_namespaced(spec, v):
        return None
    return _proc_mount(meta, spec, v)


def _proc_mount(meta: dict[str, Any], spec: dict[str, Any], v: tuple[int, int]) -> str | None:
    bad = [_cname(w) for w, c in _containers(spec)
           if _d(c.get("securityContext")).get("procMount") not in (None, "", "Default")]
    return f"containers {_fmt(bad)} must not set securityContext.procMount" if bad else None


_SECCOMP_POD_ANN = "seccomp.security.alpha.kubernetes.io/pod"
_SECCOMP_CTR_ANN = "container.seccomp.security.alpha.kubernetes.io/"


def _seccomp_baseline(meta: dict[str, Any], spec: dict[str, Any], v: tuple[int, int]) -> str | None:
    bad = []
    if v < (1, 19):
        # Before the fields existed, seccomp was set by annotations.
        for key, value in _d(meta.get("annotations")).items():
            if (key == _SECCOMP_POD_ANN or str(key).startswith(_SECCOMP_CTR_ANN)) and str(value) == "unconfined":
                bad.append(f'{key}="unconfined"')
        return ", ".join(bad) or None
    ok = {"RuntimeDefault", "Localhost"}
    pod_type = _d(_d(spec.get("securityContext")).get("seccompProfile")).get("type")
    if pod_type is not None and pod_type not in ok:
        bad.append(f'pod securityContext.seccompProfile.type="{pod_type}"')
    for w, c in _containers(spec):
        ctype = _d(_d(c.get("securityContext")).get("seccompProfile")).get("type")
        if ctype is not None and ctype not in ok:
            bad.append(f'container "{_cname(w)}" securityContext.seccompProfile.type="{ctype}"')
    return ", ".join(bad) or None


def _safe_sysctls(v: tuple[int, int]) -> set[str]:
    safe = {"kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.tcp_syncookies",
            "net.ipv4.ping_group_range", "net.ipv4.ip_unprivileged_port_start"}
    if v >= (1, 27):
        safe.add("net.ipv4.ip_local_reserved_ports")
    if v >= (1, 29):
        safe.update({"net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_keepalive_intvl",
                     "net.ipv4.tcp_keepalive_probes"})
    if v >= (1, 32):
        safe.update({"net.ipv4.tcp_rmem", "net.ipv4.tcp_wmem"})
    if v >= (1, 37):
        safe.update({"net.ipv4.tcp_slow_start_after_idle", "net.ipv4.tcp_notsent_lowat"})
    return safe


def _sysctls(meta: dict[str, Any], spec: dict[str, Any], v: tuple[int, int]) -> str | None:
    safe = _safe_sysctls(v)
    bad = [str(s.get("name")) for s in _l(_d(spec.get("securityContext")).get("sysctls"))
           if isinstance(s, dict) and s.get("name") not in safe]
    return f"forbidden sysctls {', '.join(bad)}" if bad else None


def _host_process(meta: dict[str, Any], spec: dict[str, Any], v: tuple[int, int]) -> str | None:
    bad = []
    if _d(_d(spec.get("securityContext")).get("windowsOptions")).get("hostProcess") is True:
        bad.append("pod")
    for w, c in _containers(spec):
        if _d(_d(c.get("securityContext")).get("windowsOptions")).get("hostProcess") is True:
            bad.append(f'container "{_cname(w)}"')
    return f"{', '.join(bad)} must not set securityContext.windowsOptions.hostProcess=true" if bad else None


def _probe_hosts(meta: dict[str, Any], spec: dict[str, Any], v: tuple[int, int]) -> str | None:
    # A probe or hook with a host can reach services on the node (or anywhere) with the kubelet's
    # network identity.
    names, hosts = [], []
    for w, c in _containers(spec):
        handlers = [_d(c.get(p)) for p in ("livenessProbe", "readinessProbe", "startupProbe")]
        handlers += [_d(_d(c.get("lifecycle")).get(h)) for h in ("postStart", "preStop")]
        found = [str(_d(h.get(k)).get("host")) for h in handlers for k in ("httpGet", "tcpSocket")
                 if _d(h.get(k)).get("host")]
        if found:
            names.append(_cname(w))
            hosts.extend(found)
    return f"containers {_fmt(names)} use probe or lifecycle hosts {_fmt(sorted(set(hosts)))}" if names else None


# Restricted -------------------------------------------------------------------------------------

# "image" was allowed upstream by amending the 1.0 check, so it is allowed at every version.
_ALLOWED_VOLUMES = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "image", "persistentVolumeClaim",
                    "projected", "secret"}


def _volume_types(meta: dict[str, Any], spec: dict[str, Any], v: tuple[int, int]) -> str | None:
    bad = []
    for vol in _l(spec.get("volumes")):
        if not isinstance(vol, dict):
            continue
        # A volume with only a name is defaulted to emptyDir by the API server before admission.
        sources = [k for k, val in vol.items() if k != "name" and val is not None]
        bad_sources = [s for s in sources if s not in _ALLOWED_VOLUMES]
        if bad_sources:
            bad.append(f'"{vol.get("name")}" ({", ".join(bad_sources)})')
    return f"restricted volume types {', '.join(bad)}" if bad else None


def _priv_escalation(meta: dict[str, Any], spec: dict[str, Any], v: tuple[int, int]) -> str | None:
    if v >= (1, 25) and _is_windows(spec):
        return None
    bad = [_cname(w) for w, c in _containers(spec)
           if _d(c.get("securityContext")).get("allowPrivilegeEscalation") is not False]
    return f"containers {_fmt(bad)} must set securityContext.allowPrivilegeEscalation=false" if bad else None


def _run_as_non_root(meta: dict[str, Any], spec: dict[str, Any], v: tuple[int, int]) -> str | None:
    if _user_namespaced(spec, v):
        return None
    pod_value = _d(spec.get("securityContext")).get("runAsNonRoot")
    problems = []
    if pod_value is False:
        problems.append("pod must not set securityContext.runAsNonRoot=false")
    explicit, implicit = [], []
    for w, c in _containers(spec):
        value = _d(c.get("securityContext")).get("runAsNonRoot")
        if value is False:
            explicit.append(_cname(w))
        elif value is None and pod_value is not True:
            implicit.append(_cname(w))
    if explicit:
        problems.append(f"containers {_fmt(explicit)} must not set securityContext.runAsNonRoot=false")
    if implicit:
        problems.append(f"pod or containers {_fmt(implicit)} must set securityContext.runAsNonRoot=true")
    return "; ".join(problems) or None


def _run_as_user(meta: dict[str, Any], spec: dict[str, Any], v: tuple[int, int]) -> str | None:
    if _user_namespaced(spec, v):
        return None
    bad = []
    if _d(spec.get("securityContext")).get("runAsUser") == 0:
        bad.append("pod")
    bad += [f'container "{_cname(w)}"' for w, c in _containers(spec)
            if _d(c.get("securityContext")).get("runAsUser") == 0]
    return f"{', '.join(bad)} must not set runAsUser=0" if bad else None


def _seccomp_restricted(meta: dict[str, Any], spec: dict[str, Any], v: tuple[int, int]) -> str | None:
    if v >= (1, 25) and _is_windows(spec):
        return None
    ok = {"RuntimeDefault", "Localhost"}
    pod_type = _d(_d(spec.get("securityContext")).get("seccompProfile")).get("type")
    problems = []
    if pod_type is not None and pod_type not in ok:
        problems.append(f'pod must not set securityContext.seccompProfile.type="{pod_type}"')
    explicit, implicit = [], []
    for w, c in _containers(spec):
        ctype = _d(_d(c.get("securityContext")).get("seccompProfile")).get("type")
        if ctype is None:
            if pod_type is None:
                implicit.append(_cname(w))
        elif ctype not in ok:
            explicit.append(_cname(w))
    if explicit:
        problems.append(f"containers {_fmt(explicit)} must not set an unrestricted securityContext.seccompProfile.type")
    if implicit:
        problems.append(f'pod or containers {_fmt(implicit)} must set securityContext.seccompProfile.type to '
                        f'"RuntimeDefault" or "Localhost"')
    return "; ".join(problems) or None


def _caps_restricted(meta: dict[str, Any], spec: dict[str, Any], v: tuple[int, int]) -> str | None:
    if v >= (1, 25) and _is_windows(spec):
        return None
    no_drop, bad_add = [], []
    added: set[str] = set()
    for w, c in _containers(spec):
        caps = _d(_d(c.get("securityContext")).get("capabilities"))
        if "ALL" not in [str(x) for x in _l(caps.get("drop"))]:
            no_drop.append(_cname(w))
        extra = [str(a) for a in _l(caps.get("add")) if str(a) != "NET_BIND_SERVICE"]
        if extra:
            bad_add.append(_cname(w))
            added.update(extra)
    problems = []
    if no_drop:
        problems.append(f'containers {_fmt(no_drop)} must set securityContext.capabilities.drop=["ALL"]')
    if bad_add:
        problems.append(f'containers {_fmt(bad_add)} must not include {_fmt(sorted(added))} in '
                        f'securityContext.capabilities.add')
    return "; ".join(problems) or None


@dataclass(frozen=True)
class _Control:
    id: str
    level: str
    since: tuple[int, int]
    reason: str
    check: Check
    rule_num: int
    severity: Severity
    overrides: str = ""  # a baseline control this one replaces at restricted level


_CONTROLS: list[_Control] = [
    _Control("hostProcess", "baseline", (1, 0), "hostProcess", _host_process, 1, Severity.HIGH),
    _Control("hostNamespaces", "baseline", (1, 0), "host namespaces", _host_namespaces, 2, Severity.HIGH),
    _Control("privileged", "baseline", (1, 0), "privileged", _privileged, 3, Severity.CRITICAL),
    _Control("capabilities_baseline", "baseline", (1, 0), "non-default capabilities", _caps_baseline, 4,
             Severity.HIGH),
    _Control("hostPathVolumes", "baseline", (1, 0), "hostPath volumes", _host_path, 5, Severity.HIGH),
    _Control("hostPorts", "baseline", (1, 0), "hostPort", _host_ports, 6, Severity.MEDIUM),
    _Control("appArmorProfile", "baseline", (1, 0), "forbidden AppArmor profile", _apparmor, 7, Severity.MEDIUM),
    _Control("seLinuxOptions", "baseline", (1, 0), "seLinuxOptions", _selinux, 8, Severity.MEDIUM),
    _Control("procMount", "baseline", (1, 0), "procMount", _proc_mount_baseline, 9, Severity.MEDIUM),
    _Control("seccompProfile_baseline", "baseline", (1, 0), "seccompProfile", _seccomp_baseline, 10,
             Severity.MEDIUM),
    _Control("sysctls", "baseline", (1, 0), "forbidden sysctls", _sysctls, 11, Severity.MEDIUM),
    _Control("hostProbesAndHostLifecycle", "baseline", (1, 34), "probe or lifecycle host", _probe_hosts, 18,
             Severity.MEDIUM),
    _Control("restrictedVolumes", "restricted", (1, 0), "restricted volume types", _volume_types, 12,
             Severity.MEDIUM, overrides="hostPathVolumes"),
    _Control("allowPrivilegeEscalation", "restricted", (1, 8), "allowPrivilegeEscalation != false",
             _priv_escalation, 13, Severity.MEDIUM),
    _Control("runAsNonRoot", "restricted", (1, 0), "runAsNonRoot != true", _run_as_non_root, 14, Severity.MEDIUM),
    _Control("runAsUser", "restricted", (1, 23), "runAsUser=0", _run_as_user, 15, Severity.MEDIUM),
    _Control("seccompProfile_restricted", "restricted", (1, 19), "seccompProfile", _seccomp_restricted, 16,
             Severity.MEDIUM, overrides="seccompProfile_baseline"),
    _Control("capabilities_restricted", "restricted", (1, 22), "unrestricted capabilities", _caps_restricted, 17,
             Severity.MEDIUM, overrides="capabilities_baseline"),
    _Control("procMount_restricted", "restricted", (1, 35), "procMount", _proc_mount, 19, Severity.MEDIUM,
             overrides="procMount"),
]

_DOCS = "https://kubernetes.io/docs/concepts/security/pod-security-standards/"
RULES: dict[str, Rule] = {}
for _c in _CONTROLS:
    _rule = Rule(
        id=f"HG-PSS-{_c.rule_num:03d}", title=f"Pod Security Standards ({_c.level}): {_c.reason}",
        severity=_c.severity,
        description=f"Violates the {_c.level} Pod Security Standard control '{_c.id}' (since v{_c.since[0]}."
                    f"{_c.since[1]}); the PodSecurity admission plugin rejects such pods in namespaces enforcing "
                    f"the {_c.level} level.",
        remediation=f"Change the pod spec so that it meets the {_c.level} level; see the Pod Security Standards.",
        pss=f"{_c.level}/{_c.id}", references=(_DOCS,))
    RULES[_rule.id] = _rule
register(*RULES.values())
CONTROL_RULE = {c.id: f"HG-PSS-{c.rule_num:03d}" for c in _CONTROLS}


def _pod_parts(obj: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    if "spec" in obj and isinstance(obj.get("spec"), dict) and ("containers" in obj["spec"]
                                                                or "metadata" in obj or "kind" in obj):
        return _d(obj.get("metadata")), _d(obj.get("spec"))
    return _d(obj.get("metadata")), obj


def evaluate_pss(pod_spec_with_metadata: dict[str, Any], level: str = "restricted",
                 version: str | tuple[int, int] | None = "latest") -> list[Violation]:
    """Every Pod Security Standards violation of one pod at ``level`` ("privileged", "baseline" or
    "restricted") and ``version`` ("latest", "v1.30", ...). Empty means the PodSecurity admission
    plugin would admit it. Accepts a Pod object, a pod template ({metadata, spec}) or a bare spec."""
    level = level.lower()
    if level not in LEVELS:
        raise ValueError(f"unknown Pod Security Standards level {level!r}; use one of {', '.join(LEVELS)}")
    if level == "privileged":
        return []
    v = parse_version(version)
    meta, spec = _pod_parts(pod_spec_with_metadata)
    active = [c for c in _CONTROLS if v >= c.since and (level == "restricted" or c.level == "baseline")]
    overridden = {c.overrides for c in active if c.overrides}
    out = []
    for c in active:
        if c.id in overridden:
            continue
        detail = c.check(meta, spec, v)
        if detail:
            out.append(Violation(control=c.id, level=c.level, reason=c.reason, detail=detail,
                                 rule_id=CONTROL_RULE[c.id]))
    return out


def format_violations(level: str, version: str, violations: list[Violation]) -> str:
    """The denial message in the PodSecurity plugin's shape, for the admission webhook:
    ``violates PodSecurity "restricted:latest": reason (detail), reason (detail)``."""
    version = version if version.startswith("v") or version == "latest" else f"v{version}"
    parts = [f"{v.reason} ({v.detail})" for v in violations]
    return f'violates PodSecurity "{level}:{version}": ' + ", ".join(parts)


def evaluate_all(pod_spec_with_metadata: dict[str, Any], version: str | tuple[int, int] | None = "latest"
                 ) -> list[Violation]:
    """Violations of every control of both levels at ``version``, without the restricted
    overrides: what a report wants (a baseline problem is not hidden behind the restricted control
    that replaces it), and in one pass. ``Violation.level`` tells the levels apart."""
    v = parse_version(version)
    meta, spec = _pod_parts(pod_spec_with_metadata)
    out = []
    for c in _CONTROLS:
        if v >= c.since:
            detail = c.check(meta, spec, v)
            if detail:
                out.append(Violation(control=c.id, level=c.level, reason=c.reason, detail=detail,
                                     rule_id=CONTROL_RULE[c.id]))
    # procMount_restricted is the baseline check without the user-namespace relaxation: when both
    # fire they say the same thing, so keep the baseline one.
    if any(x.control == "procMount" for x in out):
        out = [x for x in out if x.control != "procMount_restricted"]
    return out
