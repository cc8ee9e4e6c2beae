"""Field extraction for the two event shapes the engine understands.

Events reach the engine as flat dicts keyed by Falco field names (``{"evt.type": "execve",
"proc.name": "bash", ...}``), the shape of Falco's JSON ``output_fields``. Most syscall fields are
therefore a plain ``dict.get``; only fields derived from others (``fd.directory`` from ``fd.name``,
``proc.aname[n]`` from the ancestry) need a function. Kubernetes audit events keep the raw
``audit.k8s.io/v1`` Event under ``_k8s`` and every ``ka.*`` field is computed from it on demand,
so an event pays only for the fields its candidate rules read.

The table below is the single list of supported fields: a rule naming anything else is skipped
at load time (see rules.py) rather than silently never matching.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

Extractor = Callable[[dict[str, Any]], Any]


@dataclass(frozen=True, slots=True)
class FieldSpec:
    name: str
    kind: str = "str"  # str | num | bool
    # "list" fields yield several values; "any" fields (proc.aname without index) match when any
    # ancestor matches, whatever the operator, as Falco's ancestor fields do.
    multi: str = ""
    needs_arg: bool = False
    arg_ok: bool = False


_SYSCALL_STR = """
evt.type evt.dir evt.category evt.args evt.info evt.source evt.hostname evt.time.iso8601 evt.datetime
proc.name proc.exe proc.exepath proc.cmdline proc.args proc.pname proc.pexe proc.pexepath proc.pcmdline
proc.tty_name proc.cwd proc.sname proc.env proc.aexe proc.aexepath proc.acmdline
thread.cap_permitted thread.cap_effective thread.cap_inheritable
user.name user.homedir user.shell user.loginname group.name
fd.name fd.directory fd.filename fd.typechar fd.type fd.sip fd.cip fd.dip fd.rip fd.lip fd.sip.name
fd.dip.name fd.l4proto fd.sockfamily fd.nameraw evt.res
container.id container.name container.image container.image.repository container.image.tag
container.image.id container.type container.image.digest container.healthcheck
k8s.ns.name k8s.pod.name k8s.pod.uid k8s.pod.labels k8s.deployment.name
"""
_SYSCALL_NUM = """
evt.time evt.num evt.rawres evt.count evt.latency evt.cpu
proc.pid proc.ppid proc.vpid proc.pvpid proc.sid proc.vpgid proc.tty proc.loginshellid
proc.exe_ino proc.exe_ino.ctime
proc.duration user.uid user.loginuid group.gid fd.num fd.sport fd.cport fd.dport fd.rport fd.lport fd.ino
"""
_SYSCALL_BOOL = """
evt.failed evt.is_open_read evt.is_open_write evt.is_open_exec evt.is_open_create
proc.is_exe_writable proc.is_exe_upper_layer proc.is_exe_from_memfd proc.is_sid_leader
proc.is_vpgid_leader container.privileged fd.connected fd.name_changed
"""

FIELDS: dict[str, FieldSpec] = {}
for _kind, _block in (("str", _SYSCALL_STR), ("num", _SYSCALL_NUM), ("bool", _SYSCALL_BOOL)):
    for _n in _block.split():
        FIELDS[_n] = FieldSpec(_n, _kind)
for _n in ("proc.aname", "proc.apid"):
    FIELDS[_n] = FieldSpec(_n, "num" if _n == "proc.apid" else "str", multi="any", arg_ok=True)
# Network fields compare addresses against CIDR blocks ("net" kind); fd.ip/fd.net match either end.
for _n in ("fd.net", "fd.ip"):
    FIELDS[_n] = FieldSpec(_n, "net" if _n == "fd.net" else "str", multi="list")
for _n in ("fd.snet", "fd.cnet"):
    FIELDS[_n] = FieldSpec(_n, "net")
for _n in ("evt.arg", "evt.rawarg", "proc.env", "k8s.pod.label", "container.label", "evt.abspath"):
    FIELDS[_n] = FieldSpec(_n, "str", needs_arg=_n != "proc.env", arg_ok=True)


def normalise_value(value: Any) -> Any:
    """Booleans compare as Falco prints them ("true"/"false"); everything else passes through."""
    if value is True:
        return "true"
    if value is False:
        return "false"
    return value


def _num(value: Any) -> Any:
    if value is None or isinstance(value, int):
        return value
    try:
        return int(value)
    except (TypeError, ValueError):
        try:
            return float(value)
        except (TypeError, ValueError):
            return None


# ---- derived syscall fields -------------------------------------------------------------------

_TYPECHAR = {"file": "f", "directory": "d", "ipv4": "4", "ipv6": "6", "unix": "u", "pipe": "p", "event": "e",
             "signalfd": "s", "eventpoll": "l", "inotify": "i", "timerfd": "t", "netlink": "n", "memfd": "m"}
_TYPENAME = {v: k for k, v in _TYPECHAR.items()}


def _fd_directory(ev: dict[str, Any]) -> Any:
    v = ev.get("fd.directory")
    if v is not None:
        return v
    name = ev.get("fd.name")
    if not isinstance(name, str) or not name.startswith("/"):
        return None
    head = name.rsplit("/", 1)[0]
    return head or "/"


def _fd_filename(ev: dict[str, Any]) -> Any:
    v = ev.get("fd.filename")
    if v is not None:
        return v
    name = ev.get("fd.name")
    if not isinstance(name, str) or not name.startswith("/"):
        return None
    return name.rsplit("/", 1)[1]


def _fd_typechar(ev: dict[str, Any]) -> Any:
    v = ev.get("fd.typechar")
    if v is not None:
        return v
    t = ev.get("fd.type")
    if t is not None:
        return _TYPECHAR.get(t)
    name = ev.get("fd.name")
    return "f" if isinstance(name, str) and name.startswith("/") else None


def _fd_type(ev: dict[str, Any]) -> Any:
    v = ev.get("fd.type")
    if v is not None:
        return v
    c = ev.get("fd.typechar")
    return _TYPENAME.get(c) if c is not None else None


def _fd_name(ev: dict[str, Any]) -> Any:
    v = ev.get("fd.name")
    if v is not None or ev.get("fd.dip") is None:
        return v
    # A connect without an explicit name: render it the way Falco names socket fds.
    return f"{ev.get('fd.sip', '')}:{ev.get('fd.sport', '')}->{ev.get('fd.dip')}:{ev.get('fd.dport', '')}"


def _container_image(ev: dict[str, Any]) -> Any:
    v = ev.get("container.image")
    if v is not None:
        return v
    repo = ev.get("container.image.repository")
    if repo is None:
        return None
    tag = ev.get("container.image.tag")
    return f"{repo}:{tag}" if tag else repo


def _proc_args(ev: dict[str, Any]) -> Any:
    v = ev.get("proc.args")
    if v is not None:
        return v
    cmd = ev.get("proc.cmdline")
    if not isinstance(cmd, str):
        return None
    parts = cmd.split(" ", 1)
    return parts[1] if len(parts) > 1 else ""


def _proc_cmdline(ev: dict[str, Any]) -> Any:
    v = ev.get("proc.cmdline")
    if v is not None:
        return v
    name = ev.get("proc.name")
    if name is None:
        return None
    args = ev.get("proc.args")
    return f"{name} {args}" if args else name


def _proc_exepath(ev: dict[str, Any]) -> Any:
    v = ev.get("proc.exepath")
    return v if v is not None else ev.get("proc.exe")


def _ancestors(ev: dict[str, Any], key: str, parent_key: str, self_key: str) -> list[Any]:
    # ``_anc``/``_apid`` hold the chain from the parent upwards when the source knows it;
    # otherwise the parent fields are the whole chain we have.
    chain = ev.get(key)
    if chain is None:
        p = ev.get(parent_key)
        chain = [p] if p is not None else []
    return chain


def _proc_pname(ev: dict[str, Any]) -> Any:
    v = ev.get("proc.pname")
    if v is not None:
        return v
    chain = ev.get("_anc")
    return chain[0] if chain else None


def _evt_is_open(name: str, flag_a: str, flag_b: str) -> Extractor:
    def get(ev: dict[str, Any]) -> Any:
        v = ev.get(name)
        if v is not None:
            return v
        flags = ev.get("evt.arg.flags")
        if not isinstance(flags, str):
            return None
        return "true" if flag_a in flags or flag_b in flags else "false"

    return get


def _both_ips(ev: dict[str, Any]) -> Any:
    ips = [ip for ip in (ev.get("fd.cip") or ev.get("fd.sip"), ev.get("fd.sip") if ev.get("fd.cip") else
                         ev.get("fd.dip")) if ip is not None]
    return ips or None


def _server_ip(ev: dict[str, Any]) -> Any:
    # Falco's "server" is the remote end of a connect, the local end of an accept.
    v = ev.get("fd.sip") if ev.get("fd.cip") is not None else ev.get("fd.dip")
    return v if v is not None else ev.get("fd.sip")


def _client_ip(ev: dict[str, Any]) -> Any:
    v = ev.get("fd.cip")
    return v if v is not None else (ev.get("fd.sip") if ev.get("fd.dip") is not None else None)


_DERIVED: dict[str, Extractor] = {
    "fd.net": _both_ips,
    "fd.ip": _both_ips,
    "fd.snet": _server_ip,
    "fd.cnet": _client_ip,
    "fd.directory": _fd_directory,
    "fd.filename": _fd_filename,
    "fd.typechar": _fd_typechar,
    "fd.type": _fd_type,
    "fd.name": _fd_name,
    "container.image": _container_image,
    "proc.args": _proc_args,
    "proc.cmdline": _proc_cmdline,
    "proc.exepath": _proc_exepath,
    "proc.pname": _proc_pname,
    "evt.is_open_write": _evt_is_open("evt.is_open_write", "O_WRONLY", "O_RDWR"),
    "evt.is_open_read": _evt_is_open("evt.is_open_read", "O_RDONLY", "O_RDWR"),
    "evt.is_open_create": _evt_is_open("evt.is_open_create", "O_CREAT", "O_TMPFILE"),
}


def _indexed_syscall(name: str, arg: str) -> Extractor | None:
    key = f"{name}[{arg}]"
    if name in ("proc.aname", "proc.apid"):
        try:
            n = int(arg)
        except ValueError:
            return None
        chain_key, parent, own = ("_anc", "proc.pname", "proc.name") if name == "proc.aname" else \
            ("_apid", "proc.ppid", "proc.pid")

        def anc(ev: dict[str, Any]) -> Any:
            v = ev.get(key)
            if v is not None:
                return v
            if n == 0:
                return ev.get(own)
            chain = _ancestors(ev, chain_key, parent, own)
            return chain[n - 1] if n - 1 < len(chain) else None

        return anc
    if name in ("evt.arg", "evt.rawarg"):
        alt = f"evt.arg.{arg}"

        def arg_get(ev: dict[str, Any]) -> Any:
            v = ev.get(key)
            return v if v is not None else ev.get(alt)

        return arg_get
    return lambda ev: ev.get(key)


def _any_ancestor(name: str) -> Extractor:
    chain_key, parent = ("_anc", "proc.pname") if name == "proc.aname" else ("_apid", "proc.ppid")

    def get(ev: dict[str, Any]) -> Any:
        chain = ev.get(chain_key)
        if chain is None:
            p = ev.get(parent)
            return [p] if p is not None else None
        return chain

    return get


# ---- Kubernetes audit fields ------------------------------------------------------------------


def _k(ev: dict[str, Any]) -> dict[str, Any]:
    return ev.get("_k8s") or {}


def _path(*keys: str) -> Extractor:
    def get(ev: dict[str, Any]) -> Any:
        cur: Any = _k(ev)
        for k in keys:
            if not isinstance(cur, dict):
                return None
            cur = cur.get(k)
        return normalise_value(cur)

    return get


def _str_or_none(v: Any) -> Any:
    return None if v is None else str(v)


def _pod_spec(ev: dict[str, Any]) -> dict[str, Any]:
    # Several rules read the pod spec of the same event: find it once and keep it on the event.
    spec = ev.get("_podspec")
    if spec is None:
        spec = ev["_podspec"] = _find_pod_spec(ev)
    return spec


def _find_pod_spec(ev: dict[str, Any]) -> dict[str, Any]:
    obj = _k(ev).get("requestObject")
    if not isinstance(obj, dict):
        return {}
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return {}
    # Workload controllers carry the pod spec one level down; rules about pods should see both.
    tmpl = spec.get("template")
    if isinstance(tmpl, dict) and isinstance(tmpl.get("spec"), dict):
        return tmpl["spec"]
    jt = spec.get("jobTemplate")
    if isinstance(jt, dict):
        inner = ((jt.get("spec") or {}).get("template") or {}).get("spec")
        if isinstance(inner, dict):
            return inner
    return spec


def _containers(ev: dict[str, Any]) -> list[dict[str, Any]]:
    spec = _pod_spec(ev)
    out = [c for c in spec.get("containers") or [] if isinstance(c, dict)]
    out += [c for c in spec.get("initContainers") or [] if isinstance(c, dict)]
    return out


def _per_container(fn: Callable[[dict[str, Any]], Any]) -> Extractor:
    def get(ev: dict[str, Any]) -> Any:
        if not _pod_spec(ev):
            return None
        return [normalise_value(fn(c)) for c in _containers(ev)]

    return get


def _image_repo(image: str) -> str:
    # Strip a digest, then a tag (a colon after the last slash; a colon before it is a registry port).
    image = image.split("@", 1)[0]
    slash = image.rfind("/")
    colon = image.rfind(":")
    return image[:colon] if colon > slash else image


def _sc(c: dict[str, Any]) -> dict[str, Any]:
    return c.get("securityContext") or {}


def _pod_flag(key: str) -> Extractor:
    def get(ev: dict[str, Any]) -> Any:
        spec = _pod_spec(ev)
        if not spec:
            return None
        return normalise_value(bool(spec.get(key, False)))

    return get


def _hostpaths(ev: dict[str, Any]) -> Any:
    spec = _pod_spec(ev)
    if not spec:
        return None
    return [v["hostPath"].get("path") for v in spec.get("volumes") or []
            if isinstance(v, dict) and isinstance(v.get("hostPath"), dict)]


def _host_ports(ev: dict[str, Any]) -> Any:
    if not _pod_spec(ev):
        return None
    return [p.get("hostPort") for c in _containers(ev) for p in c.get("ports") or []
            if isinstance(p, dict) and p.get("hostPort") is not None]


def _add_caps(ev: dict[str, Any]) -> Any:
    if not _pod_spec(ev):
        return None
    return [cap for c in _containers(ev) for cap in ((_sc(c).get("capabilities") or {}).get("add") or [])]


def _binding_subjects(ev: dict[str, Any]) -> Any:
    obj = _k(ev).get("requestObject")
    if not isinstance(obj, dict) or "subjects" not in obj:
        return None
    return [s.get("name") for s in obj.get("subjects") or [] if isinstance(s, dict)]


def _role_rules(part: str) -> Extractor:
    def get(ev: dict[str, Any]) -> Any:
        obj = _k(ev).get("requestObject")
        if not isinstance(obj, dict) or "rules" not in obj:
            return None
        return [x for r in obj.get("rules") or [] if isinstance(r, dict) for x in r.get(part) or []]

    return get


def _json_of(*keys: str) -> Extractor:
    inner = _path(*keys)

    def get(ev: dict[str, Any]) -> Any:
        v = inner(ev)
        return None if v is None else json.dumps(v, sort_keys=True, separators=(",", ":"))

    return get


def _uri_param(arg: str) -> Extractor:
    def get(ev: dict[str, Any]) -> Any:
        uri = _k(ev).get("requestURI")
        if not isinstance(uri, str):
            return None
        vals = parse_qs(urlsplit(uri).query).get(arg)
        return vals[0] if vals else None

    return get


_KA: dict[str, tuple[str, str, Extractor]] = {
    "ka.auditid": ("str", "", _path("auditID")),
    "ka.stage": ("str", "", _path("stage")),
    "ka.auth.decision": ("str", "", _path("annotations", "authorization.k8s.io/decision")),
    "ka.auth.reason": ("str", "", _path("annotations", "authorization.k8s.io/reason")),
    "ka.user.name": ("str", "", _path("user", "username")),
    "ka.user.groups": ("str", "list", _path("user", "groups")),
    "ka.impuser.name": ("str", "", _path("impersonatedUser", "username")),
    "ka.impersonateduser.name": ("str", "", _path("impersonatedUser", "username")),
    "ka.verb": ("str", "", _path("verb")),
    "ka.uri": ("str", "", _path("requestURI")),
    "ka.target.name": ("str", "", _path("objectRef", "name")),
    "ka.target.namespace": ("str", "", _path("objectRef", "namespace")),
    "ka.target.resource": ("str", "", _path("objectRef", "resource")),
    "ka.target.subresource": ("str", "", _path("objectRef", "subresource")),
    "ka.target.apigroup": ("str", "", _path("objectRef", "apiGroup")),
    "ka.req.binding.subjects": ("str", "list", _binding_subjects),
    "ka.req.binding.role": ("str", "", _path("requestObject", "roleRef", "name")),
    "ka.req.binding.role.kind": ("str", "", _path("requestObject", "roleRef", "kind")),
    "ka.req.configmap.name": ("str", "", _path("requestObject", "metadata", "name")),
    "ka.req.configmap.obj": ("str", "", _json_of("requestObject", "data")),
    "ka.req.pod.containers.image": ("str", "list", _per_container(lambda c: c.get("image"))),
    "ka.req.container.image": ("str", "list", _per_container(lambda c: c.get("image"))),
    "ka.req.pod.containers.image.repository": (
        "str", "list", _per_container(lambda c: _image_repo(str(c.get("image", ""))))),
    "ka.req.container.image.repository": (
        "str", "list", _per_container(lambda c: _image_repo(str(c.get("image", ""))))),
    "ka.req.pod.containers.privileged": (
        "bool", "list", _per_container(lambda c: bool(_sc(c).get("privileged", False)))),
    "ka.req.container.privileged": (
        "bool", "list", _per_container(lambda c: bool(_sc(c).get("privileged", False)))),
    "ka.req.pod.containers.allow_privilege_escalation": (
        "bool", "list", _per_container(lambda c: bool(_sc(c).get("allowPrivilegeEscalation", False)))),
    "ka.req.pod.containers.read_only_fs": (
        "bool", "list", _per_container(lambda c: bool(_sc(c).get("readOnlyRootFilesystem", False)))),
    "ka.req.pod.containers.eff_run_as_user": ("num", "list", _per_container(lambda c: _sc(c).get("runAsUser"))),
    "ka.req.pod.containers.host_port": ("num", "list", _host_ports),
    "ka.req.pod.containers.add_capabilities": ("str", "list", _add_caps),
    "ka.req.pod.host_network": ("bool", "", _pod_flag("hostNetwork")),
    "ka.req.pod.host_pid": ("bool", "", _pod_flag("hostPID")),
    "ka.req.pod.host_ipc": ("bool", "", _pod_flag("hostIPC")),
    "ka.req.pod.volumes.hostpath": ("str", "list", _hostpaths),
    "ka.req.volume.hostpath": ("str", "list", _hostpaths),
    "ka.req.pod.run_as_user": ("num", "", lambda ev: (_pod_spec(ev).get("securityContext") or {}).get("runAsUser")),
    "ka.req.service.type": ("str", "", _path("requestObject", "spec", "type")),
    "ka.req.service.ports": ("str", "list", lambda ev: [
        p.get("port") for p in (_path("requestObject", "spec", "ports")(ev) or []) if isinstance(p, dict)]),
    "ka.req.role.rules": ("str", "", _json_of("requestObject", "rules")),
    "ka.req.role.rules.verbs": ("str", "list", _role_rules("verbs")),
    "ka.req.role.rules.resources": ("str", "list", _role_rules("resources")),
    "ka.req.role.rules.apiGroups": ("str", "list", _role_rules("apiGroups")),
    "ka.resp.name": ("str", "", _path("responseObject", "metadata", "name")),
    # A string in Falco's k8saudit plugin, so rules write `ka.response.code startswith 2`.
    "ka.response.code": ("str", "", lambda ev: _str_or_none(_path("responseStatus", "code")(ev))),
    "ka.response.reason": ("str", "", _path("responseStatus", "reason")),
    "ka.useragent": ("str", "", _path("userAgent")),
    "ka.sourceips": ("str", "list", _path("sourceIPs")),
}
for _n, (_kind, _multi, _fn) in _KA.items():
    FIELDS[_n] = FieldSpec(_n, _kind, multi=_multi)
FIELDS["ka.uri.param"] = FieldSpec("ka.uri.param", "str", needs_arg=True, arg_ok=True)


class UnknownField(Exception):
    """A field (or an argument to it) this engine cannot extract."""


def lookup(name: str, arg: str | None) -> tuple[FieldSpec, Extractor | None]:
    """The spec of ``name[arg]`` and its extractor; ``None`` as extractor means "plain dict key".

    Raises UnknownField for anything not in the table, so rules can be skipped at load time.
    """
    if name.startswith("evt.arg.") and arg is None:
        return FieldSpec(name), None
    spec = FIELDS.get(name)
    if spec is None:
        raise UnknownField(name if arg is None else f"{name}[{arg}]")
    if arg is None:
        if spec.needs_arg:
            raise UnknownField(f"{name} (needs an argument)")
        if name in _KA:
            return spec, _KA[name][2]
        if spec.multi == "any":
            return spec, _any_ancestor(name)
        return spec, _DERIVED.get(name)
    # Indexed access: a single element of a list field, or an argument-taking field.
    if name in _KA:
        base = _KA[name][2]
        try:
            idx = int(arg)
        except ValueError as exc:
            raise UnknownField(f"{name}[{arg}]") from exc

        def element(ev: dict[str, Any]) -> Any:
            vals = base(ev)
            return vals[idx] if isinstance(vals, list) and -len(vals) <= idx < len(vals) else None

        return FieldSpec(name, spec.kind), element
    if name == "ka.uri.param":
        return FieldSpec(name), _uri_param(arg)
    if not spec.arg_ok:
        raise UnknownField(f"{name}[{arg}]")
    ex = _indexed_syscall(name, arg)
    if ex is None:
        raise UnknownField(f"{name}[{arg}]")
    return FieldSpec(name, spec.kind), ex


def extract(ev: dict[str, Any], name: str, arg: str | None = None) -> Any:
    """Convenience for outputs and tests: one field's value, or None when the event lacks it."""
    try:
        _spec, ex = lookup(name, arg)
    except UnknownField:
        return None
    key = name if arg is None else f"{name}[{arg}]"
    return ex(ev) if ex is not None else ev.get(key)


__all__ = ["FIELDS", "FieldSpec", "UnknownField", "_num", "extract", "lookup", "normalise_value"]
