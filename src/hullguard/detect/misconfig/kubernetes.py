"""Kubernetes manifest checks: Pod Security Standards, least privilege (HG-K8S-0xx), RBAC and
NetworkPolicy coverage.

Loading is bounded (alias bombs, depth, size, binary files are refused per file with a message)
and remembers the line each object starts on, so findings point into the file. One bad file or
document never stops the others.
"""

from __future__ import annotations

import contextlib
import gc
import os
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import yaml

from hullguard.inventory import _yaml as bounded
from hullguard.model import Finding, Location, Severity

from . import pss
from .rules import Rule, register

__all__ = [
    "RULES",
    "K8sObject",
    "ManifestResult",
    "check_manifests",
    "check_paths",
    "check_text",
    "load_manifests",
    "pod_template",
]

MAX_FILE_BYTES = 32 * 1024 * 1024
MAX_NODES = 2_000_000
YAML_SUFFIXES = (".yaml", ".yml", ".json")


@dataclass
class K8sObject:
    doc: dict[str, Any]
    path: str = ""
    line: int = 0
    node: Any = field(default=None, repr=False, compare=False)  # the YAML node, for line_of

    def line_of(self, *keys: str | int) -> int:
        """Line of the value at ``keys`` below this object (map keys and list indexes), or of the
        deepest part of that path that exists; the object's own line without a YAML node."""
        node, line = self.node, self.line
        for key in keys:
            if isinstance(node, yaml.MappingNode) and isinstance(key, str):
                node = next((v for k, v in node.value if isinstance(k, yaml.ScalarNode) and k.value == key), None)
            elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and 0 <= key < len(node.value):
                node = node.value[key]
            else:
                node = None
            if node is None:
                break
            line = node.start_mark.line + 1
        return line

    @property
    def kind(self) -> str:
        return str(self.doc.get("kind", ""))

    @property
    def name(self) -> str:
        return str(_d(self.doc.get("metadata")).get("name", ""))

    @property
    def namespace(self) -> str:
        return str(_d(self.doc.get("metadata")).get("namespace") or "")

    @property
    def ref(self) -> str:
        ns = f"{self.namespace}/" if self.namespace else ""
        return f"{self.kind}/{ns}{self.name}"


@dataclass
class ManifestResult:
    findings: list[Finding] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # input that could not be read at all
    notices: list[str] = field(default_factory=list)  # objects skipped (unknown kinds and the like)
    objects: int = 0  # Kubernetes objects checked
    # The objects read, kept so that a later pass over the same input (CEL policies in
    # `hullguard config --policy`) does not read and parse every manifest a second time.
    loaded: list[K8sObject] = field(default_factory=list, repr=False, compare=False)


def _d(x: Any) -> dict[str, Any]:
    return x if isinstance(x, dict) else {}


def _l(x: Any) -> list[Any]:
    return x if isinstance(x, list) else []


# --------------------------------------------------------------------------------------------------
# loading

def _items_nodes(node: yaml.Node) -> list[yaml.Node]:
    """The entries of a List object's ``items`` sequence."""
    if not isinstance(node, yaml.MappingNode):
        return []
    for key, value in node.value:
        if isinstance(key, yaml.ScalarNode) and key.value == "items" and isinstance(value, yaml.SequenceNode):
            return list(value.value)
    return []


def _flatten(doc: Any, node: yaml.Node | None, path: str, line: int, result: ManifestResult,
             docno: int) -> Iterator[K8sObject]:
    if doc is None:
        return
    if not isinstance(doc, dict):
        result.notices.append(f"{path}:{line}: document {docno} is not a mapping; skipped")
        return
    kind = doc.get("kind")
    if not isinstance(kind, str) or not kind:
        result.notices.append(f"{path}:{line}: document {docno} has no kind; not a Kubernetes object, skipped")
        return
    if kind.endswith("List") and isinstance(doc.get("items"), list):
        nodes = _items_nodes(node) if node is not None else []
        for i, item in enumerate(doc["items"]):
            item_node = nodes[i] if i < len(nodes) else None
            item_line = item_node.start_mark.line + 1 if item_node is not None else line
            yield from _flatten(item, item_node, path, item_line, result, docno)
        return
    yield K8sObject(doc=doc, path=path, line=line, node=node)


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector. Parsing and checking a large manifest set allocates
    millions of small objects (YAML nodes, marks, dicts) that form no cycles to collect; the
    collector's full passes over them cost about 40% of the time (0.5 s of 1.2 s for 1,000
    manifests). Reference counting still frees everything; the collector runs again afterwards."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def load_manifests(data: bytes | str, path: str = "-", result: ManifestResult | None = None) -> list[K8sObject]:
    with _gc_paused():
        return _load_manifests(data, path, result)


def _load_manifests(data: bytes | str, path: str, result: ManifestResult | None) -> list[K8sObject]:
    """Every Kubernetes object in a multi-document YAML (or JSON) stream, Lists flattened.
    Problems go to ``result.errors``; documents before a syntax error are still returned."""
    result = result if result is not None else ManifestResult()
    if isinstance(data, bytes):
        if len(data) > MAX_FILE_BYTES:
            result.errors.append(f"{path}: larger than {MAX_FILE_BYTES} bytes; skipped")
            return []
        if b"\x00" in data[:8192]:
            result.errors.append(f"{path}: binary file, not YAML; skipped")
            return []
        text = data.decode("utf-8", errors="replace")
    else:
        if len(data) > MAX_FILE_BYTES:
            result.errors.append(f"{path}: larger than {MAX_FILE_BYTES} characters; skipped")
            return []
        text = data
    loader_cls = bounded._loader_class(True)
    try:
        bounded._check_bounds(text, loader_cls, MAX_NODES, bounded.DEFAULT_MAX_DEPTH)
    except bounded.YamlError as exc:
        result.errors.append(f"{path}: {exc}; skipped")
        return []
    except yaml.YAMLError:
        pass  # a syntax error: the documents before it were within bounds; read those below
    objects: list[K8sObject] = []
    loader = loader_cls(text)
    docno = 0
    try:
        while loader.check_node():
            docno += 1
            node = loader.get_node()
            if node is None:
                continue
            doc = loader.construct_document(node)
            objects.extend(_flatten(doc, node, path, node.start_mark.line + 1, result, docno))
    except (yaml.YAMLError, ValueError, TypeError, RecursionError) as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        result.errors.append(f"{path}{where}: invalid YAML in document {docno}: {msg}")
    finally:
        loader.dispose()
    return objects


# --------------------------------------------------------------------------------------------------
# workloads

_TEMPLATE_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "ReplicationController", "Job"}
WORKLOAD_KINDS = _TEMPLATE_KINDS | {"Pod", "CronJob", "PodTemplate"}


def pod_template(obj: dict[str, Any]) -> dict[str, Any] | None:
    """The pod (``{"metadata", "spec"}``) a workload object runs, or None for other kinds."""
    kind = obj.get("kind")
    if kind == "Pod":
        return {"metadata": _d(obj.get("metadata")), "spec": _d(obj.get("spec"))}
    if kind in _TEMPLATE_KINDS:
        tpl = _d(_d(obj.get("spec")).get("template"))
    elif kind == "CronJob":
        tpl = _d(_d(_d(_d(obj.get("spec")).get("jobTemplate")).get("spec")).get("template"))
    elif kind == "PodTemplate":
        tpl = _d(obj.get("template"))
    else:
        return None
    return {"metadata": _d(tpl.get("metadata")), "spec": _d(tpl.get("spec"))}


def _indexed_containers(spec: dict[str, Any]) -> Iterator[tuple[str, int, dict[str, Any]]]:
    for key in ("initContainers", "containers", "ephemeralContainers"):
        for i, c in enumerate(_l(spec.get(key))):
            if isinstance(c, dict):
                yield key, i, c


def _containers(spec: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for key in ("initContainers", "containers", "ephemeralContainers"):
        for c in _l(spec.get(key)):
            if isinstance(c, dict):
                yield key, c


# --------------------------------------------------------------------------------------------------
# rules

def _r(num: int, title: str, sev: Severity, desc: str, fix: str) -> Rule:
    return Rule(id=f"HG-K8S-{num:03d}", title=title, severity=sev, description=desc, remediation=fix)


L, M, H, C = Severity.LOW, Severity.MEDIUM, Severity.HIGH, Severity.CRITICAL
RULES: dict[str, Rule] = {r.id: r for r in [
    _r(1, "Root filesystem is writable", M,
       "Without readOnlyRootFilesystem an attacker can modify binaries and drop tools in the container.",
       "Set securityContext.readOnlyRootFilesystem: true and mount emptyDir volumes where writes are needed."),
    _r(2, "No CPU or memory requests", L,
       "Without requests the scheduler cannot place the pod sensibly and it is first to be evicted.",
       "Set resources.requests.cpu and resources.requests.memory."),
    _r(3, "No memory limit", L,
       "Without a memory limit one container can exhaust the node's memory (denial of service).",
       "Set resources.limits.memory."),
    _r(4, "No CPU limit", L,
       "Without a CPU limit one container can starve its neighbours.", "Set resources.limits.cpu."),
    _r(5, "Service account token mounted automatically", L,
       "The API token is mounted into every container; most workloads never call the API, and a "
       "compromised container can use the token.",
       "Set automountServiceAccountToken: false on the pod (or its ServiceAccount) unless the API is needed."),
    _r(6, "Image not pinned by digest", L,
       "A tag can be moved to different content; only a digest pins what runs.",
       "Reference images as name:tag@sha256:..."),
    _r(7, "Image uses 'latest' or no tag", M,
       "The image that runs changes without a manifest change, and rollbacks are unreliable.",
       "Use a version tag, ideally with a digest."),
    _r(8, "Object in the default namespace", L,
       "The default namespace mixes unrelated workloads and usually has no policies of its own.",
       "Deploy into a dedicated namespace."),
    _r(9, "Service of type NodePort", M,
       "NodePort opens the port on every node, bypassing ingress controls.",
       "Use ClusterIP behind an Ingress or Gateway."),
    _r(10, "Service of type LoadBalancer", M,
       "The service is exposed outside the cluster; make sure that is intended and restricted.",
       "Use ClusterIP behind an Ingress, or set loadBalancerSourceRanges."),
    _r(11, "Dashboard or admin UI exposed", H,
       "A cluster dashboard or admin UI is reachable from outside the cluster or allows skipping login.",
       "Keep dashboards on ClusterIP, behind authentication; never use --enable-skip-login."),
    _r(12, "Container runtime socket mounted", C,
       "Mounting docker.sock/containerd.sock gives full control of the node.",
       "Do not mount the container runtime socket into workloads."),
    _r(13, "Default service account used", L,
       "Workloads sharing the default service account share its permissions.",
       "Create a dedicated ServiceAccount per workload."),
    _r(14, "Secret value in container environment", H,
       "A literal credential in env is stored in the manifest and visible to anyone who can read it.",
       "Use valueFrom.secretKeyRef."),
    _r(20, "RBAC: wildcard permissions", H,
       "A rule grants '*' verbs, resources or API groups, which includes everything added in the future.",
       "List the verbs and resources needed explicitly."),
    _r(21, "RBAC: can read secrets", H,
       "get/list/watch on secrets exposes every credential in scope, including service account tokens.",
       "Grant access to named secrets only (resourceNames) or not at all."),
    _r(22, "RBAC: can exec or attach into pods", H,
       "pods/exec and pods/attach give a shell in any pod in scope.", "Remove pods/exec and pods/attach."),
    _r(23, "RBAC: can escalate, bind or impersonate", C,
       "escalate/bind allow granting permissions one does not have; impersonate lets the subject act "
       "as any user, group or service account.", "Remove escalate, bind and impersonate."),
    _r(24, "RBAC: can create workloads", M,
       "Creating pods or pod controllers lets the subject run any image with any service account in scope.",
       "Limit workload creation to deployment pipelines."),
    _r(25, "RBAC: cluster-admin granted to a broad or automated subject", C,
       "cluster-admin (or an equivalent all-wildcard role) is bound to a service account or to "
       "system:authenticated/system:unauthenticated.",
       "Bind narrowly scoped roles instead; never bind cluster-admin to groups of all users."),
    _r(30, "Namespace without default-deny NetworkPolicy", M,
       "Workloads run in a namespace where no NetworkPolicy denies ingress by default, so every pod "
       "accepts traffic from anywhere in the cluster.",
       "Add a NetworkPolicy with podSelector: {} and policyTypes: [Ingress] (and Egress) and no rules."),
    _r(31, "Pods selected by no NetworkPolicy", L,
       "The namespace has NetworkPolicies but none selects these pods, so they are unrestricted.",
       "Add a NetworkPolicy whose podSelector matches these pods, or a default-deny policy."),
]}
register(*RULES.values())


def _finding(rule_id: str, obj: K8sObject, message: str = "", *, at: tuple[str | int, ...] = (),
             **details: Any) -> Finding:
    rule = RULES.get(rule_id) or pss.RULES[rule_id]
    d: dict[str, Any] = {"resource": obj.ref}
    if message:
        d["message"] = message
    d.update(details)
    return Finding(kind="misconfiguration", rule_id=rule.id, severity=rule.severity, title=rule.title,
                   target=obj.ref, location=Location(path=obj.path, line=obj.line_of(*at) if at else obj.line),
                   fix=rule.remediation,
                   details=d)


# --------------------------------------------------------------------------------------------------
# least privilege beyond PSS

_SECRET_ENV = ("PASSWORD", "PASSWD", "SECRET", "TOKEN", "API_KEY", "APIKEY", "ACCESS_KEY", "PRIVATE_KEY")
_DASHBOARD_IMAGES = ("kubernetes-dashboard", "kubernetesui/dashboard", "weave-scope", "kube-ops-view",
                     "portainer", "grafana", "kibana", "rancher/rancher", "argocd-server", "headlamp")
_RUNTIME_SOCKETS = ("docker.sock", "containerd.sock", "crio.sock", "cri-dockerd.sock", "/var/run/docker",
                    "/run/containerd")


def _image_tag(image: str) -> tuple[str, str]:
    ref, _, digest = image.partition("@")
    last = ref.rsplit("/", 1)[-1]
    return (last.rsplit(":", 1)[1] if ":" in last else ""), digest


_SPEC_PATH: dict[str, tuple[str, ...]] = {
    "Pod": ("spec",),
    "CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
    "PodTemplate": ("template", "spec"),
    **{k: ("spec", "template", "spec") for k in _TEMPLATE_KINDS},
}


def _check_workload(obj: K8sObject, pod: dict[str, Any], sa_no_automount: set[tuple[str, str]]) -> list[Finding]:
    out: list[Finding] = []
    spec = pod["spec"]
    spec_path = _SPEC_PATH.get(obj.kind, ())
    for key, index, c in _indexed_containers(spec):
        name = str(c.get("name", "?"))
        sc = _d(c.get("securityContext"))
        where: dict[str, Any] = {"container": name, "at": (*spec_path, key, index)}
        ephemeral = key == "ephemeralContainers"
        if sc.get("readOnlyRootFilesystem") is not True and not ephemeral:
            out.append(_finding("HG-K8S-001", obj, f'container "{name}"', **where))
        res = _d(c.get("resources"))
        if not ephemeral:
            req, lim = _d(res.get("requests")), _d(res.get("limits"))
            if "cpu" not in req or "memory" not in req:
                out.append(_finding("HG-K8S-002", obj, f'container "{name}"', **where))
            if "memory" not in lim:
                out.append(_finding("HG-K8S-003", obj, f'container "{name}"', **where))
            if "cpu" not in lim:
                out.append(_finding("HG-K8S-004", obj, f'container "{name}"', **where))
        image = str(c.get("image", ""))
        if image:
            tag, digest = _image_tag(image)
            if not digest:
                if tag in {"", "latest"}:
                    out.append(_finding("HG-K8S-007", obj, f'container "{name}" image {image}', **where))
                else:
                    out.append(_finding("HG-K8S-006", obj, f'container "{name}" image {image}', **where))
        for env in _l(c.get("env")):
            env = _d(env)
            ename, value = str(env.get("name", "")), env.get("value")
            if value and isinstance(value, str) and any(s in ename.upper() for s in _SECRET_ENV) \
                    and not value.startswith("$("):
                out.append(_finding("HG-K8S-014", obj, f'container "{name}" env {ename}', **where))
        args = " ".join(str(a) for a in _l(c.get("args")) + _l(c.get("command")))
        if "--enable-skip-login" in args or "--enable-insecure-login" in args:
            out.append(_finding("HG-K8S-011", obj, f'container "{name}" allows skipping login', **where))
    for i, vol in enumerate(_l(spec.get("volumes"))):
        hp = _d(_d(vol).get("hostPath")).get("path", "")
        if isinstance(hp, str) and any(s in hp for s in _RUNTIME_SOCKETS):
            out.append(_finding("HG-K8S-012", obj, f"hostPath {hp}", at=(*spec_path, "volumes", i)))
    sa = str(spec.get("serviceAccountName") or spec.get("serviceAccount") or "default")
    # The pod's own setting wins; without one, the ServiceAccount's setting applies.
    automount = spec.get("automountServiceAccountToken")
    if automount is None:
        automount = (obj.namespace or "default", sa) not in sa_no_automount
    if automount is not False:
        out.append(_finding("HG-K8S-005", obj, f"service account {sa}"))
    if spec.get("serviceAccountName") in (None, "", "default") and spec.get("serviceAccount") in (None, "", "default"):
        out.append(_finding("HG-K8S-013", obj))
    return out


def _check_service(obj: K8sObject, dashboards: set[tuple[str, str]]) -> list[Finding]:
    spec = _d(obj.doc.get("spec"))
    stype = spec.get("type", "ClusterIP")
    out = []
    if stype == "NodePort":
        out.append(_finding("HG-K8S-009", obj))
    elif stype == "LoadBalancer":
        out.append(_finding("HG-K8S-010", obj))
    if stype in {"NodePort", "LoadBalancer"} or spec.get("externalIPs"):
        selector = _d(spec.get("selector"))
        target = (obj.namespace or "default", obj.name.lower())
        if any(s in obj.name.lower() for s in ("dashboard", "kibana", "grafana", "portainer")) or any(
                ns == target[0] and _labels_match_simple(selector, labels) for ns, labels in _dash_labels(dashboards)):
            out.append(_finding("HG-K8S-011", obj, f"{stype} service exposes a dashboard"))
    return out


def _dash_labels(dashboards: set[tuple[str, str]]) -> Iterator[tuple[str, dict[str, str]]]:
    for ns, encoded in dashboards:
        yield ns, dict(kv.split("=", 1) for kv in encoded.split(",") if "=" in kv)


def _labels_match_simple(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(str(k)) == str(v) for k, v in selector.items())


# --------------------------------------------------------------------------------------------------
# selectors (NetworkPolicy podSelector is a LabelSelector)

def selector_matches(selector: Any, labels: dict[str, Any]) -> bool:
    """LabelSelector semantics: an empty selector matches everything; a null one nothing."""
    if selector is None:
        return False
    sel = _d(selector)
    labels = {str(k): str(v) for k, v in labels.items()}
    for k, v in _d(sel.get("matchLabels")).items():
        if labels.get(str(k)) != str(v):
            return False
    for expr in _l(sel.get("matchExpressions")):
        expr = _d(expr)
        key, op = str(expr.get("key")), str(expr.get("operator"))
        values = {str(v) for v in _l(expr.get("values"))}
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and key in labels and labels[key] in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def _netpol_findings(workloads: list[tuple[K8sObject, dict[str, Any]]], policies: list[K8sObject]) -> list[Finding]:
    by_ns: dict[str, list[K8sObject]] = {}
    for p in policies:
        by_ns.setdefault(p.namespace or "default", []).append(p)
    out: list[Finding] = []
    reported_ns: set[str] = set()
    for obj, pod in workloads:
        ns = obj.namespace or "default"
        pols = by_ns.get(ns, [])
        default_deny = False
        for p in pols:
            spec = _d(p.doc.get("spec"))
            types = [str(t) for t in _l(spec.get("policyTypes"))] or ["Ingress"]
            if _d(spec.get("podSelector")) == {} and "podSelector" in spec and "Ingress" in types \
                    and not _l(spec.get("ingress")):
                default_deny = True
        if not default_deny and ns not in reported_ns:
            reported_ns.add(ns)
            out.append(_finding("HG-K8S-030", obj, f'namespace "{ns}" has workloads and no default-deny '
                                                   f"ingress NetworkPolicy", namespace=ns))
        if pols:
            labels = _d(pod["metadata"].get("labels"))
            if obj.kind == "Pod":
                labels = _d(_d(obj.doc.get("metadata")).get("labels"))
            if not any(selector_matches(_d(p.doc.get("spec")).get("podSelector", {}), labels) for p in pols):
                out.append(_finding("HG-K8S-031", obj, f'pods of {obj.ref} are selected by no NetworkPolicy',
                                    namespace=ns))
    return out


# --------------------------------------------------------------------------------------------------
# RBAC

_WORKLOAD_RESOURCES = {"pods", "deployments", "statefulsets", "daemonsets", "replicasets", "jobs", "cronjobs",
                       "replicationcontrollers"}
_READ = {"get", "list", "watch"}
_WRITE_WORKLOAD = {"create", "update", "patch"}

# Built-in cluster roles that matter, as rules, for bindings that reference them without the
# role being in the input.
_BUILTIN_ROLES: dict[str, list[dict[str, Any]]] = {
    "cluster-admin": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}, {"nonResourceURLs": ["*"],
                                                                               "verbs": ["*"]}],
    "admin": [{"apiGroups": [""], "resources": ["secrets", "pods", "pods/exec", "pods/attach"],
               "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"]},
              {"apiGroups": ["apps"], "resources": ["deployments", "statefulsets", "daemonsets", "replicasets"],
               "verbs": ["create", "update", "patch", "delete"]},
              {"apiGroups": [""], "resources": ["serviceaccounts"], "verbs": ["impersonate"]}],
    "edit": [{"apiGroups": [""], "resources": ["secrets", "pods", "pods/exec", "pods/attach"],
              "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"]},
             {"apiGroups": ["apps"], "resources": ["deployments", "statefulsets", "daemonsets", "replicasets"],
              "verbs": ["create", "update", "patch", "delete"]},
             {"apiGroups": [""], "resources": ["serviceaccounts"], "verbs": ["impersonate"]}],
    "view": [],
}
_BROAD_GROUPS = {"system:authenticated", "system:unauthenticated", "system:anonymous", "system:serviceaccounts"}


def _powers(rules: list[Any]) -> dict[str, str]:
    """rule id -> why, for one role's rules."""
    found: dict[str, str] = {}
    for rule in rules:
        rule = _d(rule)
        verbs = {str(v).lower() for v in _l(rule.get("verbs"))}
        resources = {str(r).lower() for r in _l(rule.get("resources"))}
        groups = {str(g) for g in _l(rule.get("apiGroups"))}
        named = bool(_l(rule.get("resourceNames")))
        allv = "*" in verbs
        allr = "*" in resources
        if allv or allr or "*" in groups:
            what = ",".join(sorted(x for x, on in (("verbs", allv), ("resources", allr), ("apiGroups", "*" in groups))
                                   if on))
            found.setdefault("HG-K8S-020", f"wildcard {what}")
        if (allr or "secrets" in resources) and (allv or verbs & _READ) and not named:
            found.setdefault("HG-K8S-021", "get/list/watch secrets")
        if (allr or {"pods/exec", "pods/attach"} & resources) and (allv or verbs & {"create", "get"}):
            found.setdefault("HG-K8S-022", "pods/exec")
        special = verbs & {"escalate", "bind", "impersonate"}
        if special or (allv and (allr or resources & {"roles", "clusterroles", "users", "groups",
                                                      "serviceaccounts"})):
            found.setdefault("HG-K8S-023", ", ".join(sorted(special)) or "* on RBAC or identity resources")
        if (allr or resources & _WORKLOAD_RESOURCES) and (allv or verbs & _WRITE_WORKLOAD):
            found.setdefault("HG-K8S-024", "create workloads")
        if allv and allr and ("*" in groups):
            found["full"] = "all verbs on all resources"
    return found


def _subject_name(s: dict[str, Any], binding_ns: str) -> str:
    kind = str(s.get("kind", ""))
    if kind == "ServiceAccount":
        return f"ServiceAccount {s.get('namespace') or binding_ns or 'default'}/{s.get('name')}"
    return f"{kind} {s.get('name')}"


def _rbac_findings(objs: list[K8sObject]) -> list[Finding]:
    roles: dict[tuple[str, str, str], K8sObject] = {}
    for o in objs:
        if o.kind == "ClusterRole":
            roles[("ClusterRole", "", o.name)] = o
        elif o.kind == "Role":
            roles[("Role", o.namespace or "default", o.name)] = o
    # Aggregated ClusterRoles get the rules of every ClusterRole their selectors match (as the
    # controller fills them in a cluster), so a binding to "monitoring" sees what it really grants.
    aggregated: dict[str, list[Any]] = {}
    for key, r in roles.items():
        selectors = _l(_d(r.doc.get("aggregationRule")).get("clusterRoleSelectors"))
        if key[0] != "ClusterRole" or not selectors:
            continue
        rules = list(_l(r.doc.get("rules")))
        for other_key, other in roles.items():
            labels = _d(_d(other.doc.get("metadata")).get("labels"))
            if other_key[0] == "ClusterRole" and other is not r and any(selector_matches(sel, labels)
                                                                         for sel in selectors if sel is not None):
                rules.extend(_l(other.doc.get("rules")))
        aggregated[r.name] = rules

    def rules_of(key: tuple[str, str, str], role: K8sObject) -> list[Any]:
        return aggregated.get(role.name, []) if key[0] == "ClusterRole" and role.name in aggregated \
            else _l(role.doc.get("rules"))

    out: list[Finding] = []
    bound: set[tuple[str, str, str]] = set()
    for b in objs:
        if b.kind not in {"RoleBinding", "ClusterRoleBinding"}:
            continue
        ref = _d(b.doc.get("roleRef"))
        rkind, rname = str(ref.get("kind", "")), str(ref.get("name", ""))
        bns = b.namespace or "default"
        key = (rkind, "" if rkind == "ClusterRole" else bns, rname)
        bound.add(key)
        role = roles.get(key)
        if role is not None:
            rules = rules_of(key, role)
        elif rkind == "ClusterRole" and rname in _BUILTIN_ROLES:
            rules = _BUILTIN_ROLES[rname]
        else:
            continue
        powers = _powers(rules)
        scope = "cluster-wide" if b.kind == "ClusterRoleBinding" else f'in namespace "{bns}"'
        for s in _l(b.doc.get("subjects")):
            s = _d(s)
            who = _subject_name(s, bns)
            for rule_id, why in powers.items():
                if rule_id == "full":
                    continue
                out.append(_finding(rule_id, b, f"{who} can {why} {scope} via {rkind} {rname}",
                                    subject=who, role=f"{rkind}/{rname}", scope=scope))
            broad = s.get("kind") == "ServiceAccount" or (s.get("kind") == "Group" and s.get("name") in _BROAD_GROUPS) \
                or (s.get("kind") == "User" and s.get("name") == "system:anonymous")
            if "full" in powers and broad:
                out.append(_finding("HG-K8S-025", b, f"{who} is granted {rkind} {rname} (all verbs on all "
                                                    f"resources) {scope}", subject=who, role=f"{rkind}/{rname}",
                                    scope=scope))
    # Roles no binding in the input uses: report the power on the role, without a subject.
    for key, role in roles.items():
        if key in bound:
            continue
        for rule_id, why in _powers(rules_of(key, role)).items():
            if rule_id != "full":
                out.append(_finding(rule_id, role, f"{role.kind} {role.name} grants {why} (no binding in the input)",
                                    role=f"{role.kind}/{role.name}"))
    return out


# --------------------------------------------------------------------------------------------------
# entry points

def _as_objects(docs: Iterable[K8sObject | dict[str, Any]]) -> list[K8sObject]:
    out = []
    for d in docs:
        if isinstance(d, K8sObject):
            out.append(d)
        elif isinstance(d, dict):
            out.extend(_flatten(d, None, "", 0, ManifestResult(), 0))
    return out


def pss_findings(obj: K8sObject, level: str | None, version: str) -> list[Finding]:
    """PSS findings of one object at ``level``; with None, every violated control of both levels."""
    pod = pod_template(obj.doc)
    if pod is None:
        return []
    found = pss.evaluate_all(pod, version) if level is None else pss.evaluate_pss(pod, level, version)
    return [_finding(v.rule_id, obj, v.detail, pss_level=v.level, pss_control=v.control, pss_version=version)
            for v in found]


def check_manifests(docs: Iterable[K8sObject | dict[str, Any]], *, pss_level: str | None = None,
                    pss_version: str = "latest") -> list[Finding]:
    """Findings for loaded objects. With ``pss_level`` only Pod Security Standards violations at
    that level are returned (the answer the PodSecurity admission plugin gives); without it, all
    checks run, with PSS violations of both levels (``details["pss_level"]`` says which)."""
    with _gc_paused():
        return _check_manifests(docs, pss_level=pss_level, pss_version=pss_version)


def _check_manifests(docs: Iterable[K8sObject | dict[str, Any]], *, pss_level: str | None,
                     pss_version: str) -> list[Finding]:
    objs = _as_objects(docs)
    pss.parse_version(pss_version)  # fail early on a bad version
    if pss_level is not None and pss_level.lower() not in pss.LEVELS:
        raise ValueError(f"unknown Pod Security Standards level {pss_level!r}; use one of {', '.join(pss.LEVELS)}")
    if pss_level is not None:
        return [f for o in objs for f in pss_findings(o, pss_level, pss_version)]
    out: list[Finding] = []
    workloads: list[tuple[K8sObject, dict[str, Any]]] = []
    policies: list[K8sObject] = []
    dashboards: set[tuple[str, str]] = set()
    sa_no_automount = {(o.namespace or "default", o.name) for o in objs
                       if o.kind == "ServiceAccount" and o.doc.get("automountServiceAccountToken") is False}
    for o in objs:
        pod = pod_template(o.doc)
        if o.kind == "NetworkPolicy":
            policies.append(o)
        if o.namespace == "default" or (not o.namespace and (pod is not None or o.kind in {
                "Service", "Role", "RoleBinding", "ConfigMap", "Secret", "ServiceAccount", "NetworkPolicy"})):
            out.append(_finding("HG-K8S-008", o, "no namespace set" if not o.namespace else "namespace default"))
        if pod is not None:
            workloads.append((o, pod))
            # Both levels without overrides: evaluating restricted alone would hide a baseline
            # violation behind the restricted control that overrides it (SYS_ADMIN reported only
            # as "must drop ALL").
            out.extend(pss_findings(o, None, pss_version))
            out.extend(_check_workload(o, pod, sa_no_automount))
            images = " ".join(str(c.get("image", "")) for _, c in _containers(pod["spec"]))
            if any(d in images for d in _DASHBOARD_IMAGES):
                labels = _d(pod["metadata"].get("labels"))
                dashboards.add((o.namespace or "default", ",".join(f"{k}={v}" for k, v in labels.items())))
    for o in objs:
        if o.kind == "Service":
            out.extend(_check_service(o, dashboards))
    out.extend(_rbac_findings(objs))
    out.extend(_netpol_findings(workloads, policies))
    return out


def check_text(data: bytes | str, path: str = "-", *, pss_level: str | None = None,
               pss_version: str = "latest", result: ManifestResult | None = None) -> ManifestResult:
    result = result if result is not None else ManifestResult()
    objs = load_manifests(data, path, result)
    result.objects += len(objs)
    result.loaded.extend(objs)
    result.findings.extend(check_manifests(objs, pss_level=pss_level, pss_version=pss_version))
    return result


def _known(obj: K8sObject) -> bool:
    return bool(obj.doc.get("apiVersion")) and bool(obj.kind)


def iter_manifest_files(path: str) -> Iterator[str]:
    if os.path.isdir(path):
        for root, dirs, files in os.walk(path):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for f in sorted(files):
                if f.lower().endswith(YAML_SUFFIXES):
                    yield os.path.join(root, f)
    else:
        yield path


def check_paths(paths: Iterable[str], *, pss_level: str | None = None, pss_version: str = "latest",
                stdin: Any = None) -> ManifestResult:
    """Check files, folders (``*.yaml``, ``*.yml``, ``*.json`` below them) and ``-`` (stdin).
    All objects are checked together, so bindings meet their roles and policies their pods across
    files. Unreadable inputs are listed in ``errors``; the CLI should exit 2 only when
    ``objects == 0`` and ``errors`` is not empty."""
    result = ManifestResult()
    objs: list[K8sObject] = []
    for p in paths:
        if p == "-":
            stream = stdin if stdin is not None else sys.stdin.buffer
            data = stream.read(MAX_FILE_BYTES + 1)
            objs.extend(load_manifests(data, "-", result))
            continue
        if not os.path.exists(p):
            result.errors.append(f"{p}: no such file or directory")
            continue
        for f in iter_manifest_files(p):
            try:
                with open(f, "rb") as fh:
                    data = fh.read(MAX_FILE_BYTES + 1)
            except OSError as exc:
                result.errors.append(f"{f}: {exc.strerror or exc}")
                continue
            objs.extend(load_manifests(data, f, result))
    for o in objs:
        if not _known(o):
            result.notices.append(f"{o.path}:{o.line}: {o.kind or 'object'} without apiVersion; checked anyway")
        elif pod_template(o.doc) is None and o.kind not in {
                "Service", "Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding", "NetworkPolicy", "Namespace",
                "ServiceAccount", "ConfigMap", "Secret", "Ingress"}:
            result.notices.append(f"{o.path}:{o.line}: kind {o.kind} has no checks; skipped")
    result.objects = len(objs)
    result.loaded = objs
    result.findings = check_manifests(objs, pss_level=pss_level, pss_version=pss_version)
    return result
