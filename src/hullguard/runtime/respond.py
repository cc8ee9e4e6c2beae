"""Response actions bound to alerts by a YAML policy: capture, quarantine, kill, pause, stop, notify.

    responder = Responder.from_file("response.yaml", dry_run=False, evidence_dir="/var/lib/hullguard/evidence",
                                    audit_log="/var/log/hullguard/audit.jsonl")
    for alert in engine.process(ev):
        responder.handle(alert, ev)

Policy (see examples/runtime/response-policy.yaml)::

    version: 1
    notify: ["webhook:https://hooks.example/alerts"]   # default outputs of the notify action
    bindings:
      - name: shells-in-prod
        rules: ["Terminal shell in container", "Unexpected process*"]   # names or globs
        tags: [mitre_execution]                                          # any of these tags
        min_priority: warning
        actions: [capture, quarantine, kill, notify]

A binding matches when every criterion it gives matches. Actions of all matching bindings run in
order, each once, with ``capture`` moved (or added) in front of any destructive action so evidence
is taken before anything changes. Every action — done, refused, failed, unavailable or dry-run —
is one JSON line in the audit log.
"""

from __future__ import annotations

import contextlib
import fnmatch
import hashlib
import json
import os
import re
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TextIO

from hullguard.model import HullguardError
from hullguard.runtime.engine import PRIORITY_RANK, Alert

ACTIONS = ("capture", "quarantine", "kill", "pause", "stop", "notify")
DESTRUCTIVE = frozenset({"quarantine", "kill", "pause", "stop"})
DEFAULT_DOCKER_SOCKET = "/var/run/docker.sock"
_CONTAINER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_SLUG = re.compile(r"[^a-z0-9]+")


@dataclass
class ActionRecord:
    time: str
    incident: str
    rule: str
    action: str
    status: str  # done | dry-run | refused | failed | unavailable | printed | skipped
    target: dict[str, Any]
    detail: str
    dry_run: bool = False
    data: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"time": self.time, "incident": self.incident, "rule": self.rule, "action": self.action,
                "status": self.status, "target": self.target, "detail": self.detail, "dry_run": self.dry_run,
                "data": self.data}


@dataclass
class Binding:
    name: str
    rules: tuple[str, ...]
    tags: frozenset[str]
    min_priority: str | None
    actions: tuple[tuple[str, dict[str, Any]], ...]

    def matches(self, rule: str, tags: set[str], priority: str) -> bool:
        if self.rules and not any(fnmatch.fnmatchcase(rule, g) for g in self.rules):
            return False
        if self.tags and not (self.tags & tags):
            return False
        if self.min_priority is not None:
            rank = PRIORITY_RANK.get(priority.lower(), len(PRIORITY_RANK))
            if rank > PRIORITY_RANK[self.min_priority]:
                return False
        return True


@dataclass
class Policy:
    bindings: list[Binding]
    notify: tuple[str, ...] = ()
    max_incidents_per_minute: int = 30
    dedupe_seconds: float = 60.0


def parse_policy(doc: Any, where: str) -> Policy:
    def bad(msg: str) -> HullguardError:
        return HullguardError(f"{where}: {msg}")

    if not isinstance(doc, dict):
        raise bad("a response policy is a mapping with 'bindings'")
    if doc.get("version", 1) != 1:
        raise bad(f"unsupported policy version {doc.get('version')!r} (expected 1)")
    unknown = set(doc) - {"version", "bindings", "notify", "max_incidents_per_minute", "dedupe_seconds"}
    if unknown:
        raise bad(f"unknown keys {sorted(unknown)}")
    raw = doc.get("bindings")
    if not isinstance(raw, list) or not raw:
        raise bad("'bindings' must be a non-empty list")
    notify = doc.get("notify") or []
    if isinstance(notify, str):
        notify = [notify]
    if not isinstance(notify, list) or not all(isinstance(n, str) for n in notify):
        raise bad("'notify' must be a list of output specs")
    bindings = []
    for i, b in enumerate(raw):
        label = f"binding {i + 1}"
        if not isinstance(b, dict):
            raise bad(f"{label} must be a mapping")
        label = f"binding {b.get('name') or i + 1!s}"
        extra = set(b) - {"name", "rules", "tags", "min_priority", "actions"}
        if extra:
            raise bad(f"{label}: unknown keys {sorted(extra)}")
        rules = b.get("rules") or []
        tags = b.get("tags") or []
        rules = [rules] if isinstance(rules, str) else rules
        tags = [tags] if isinstance(tags, str) else tags
        if not isinstance(rules, list) or not all(isinstance(r, str) for r in rules):
            raise bad(f"{label}: 'rules' must be a list of rule names or globs")
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            raise bad(f"{label}: 'tags' must be a list of strings")
        mp = b.get("min_priority")
        if mp is not None:
            mp = str(mp).lower()
            if mp not in PRIORITY_RANK:
                raise bad(f"{label}: unknown min_priority {b['min_priority']!r}")
        if not rules and not tags and mp is None:
            raise bad(f"{label}: give at least one of rules, tags, min_priority")
        acts = b.get("actions")
        if not isinstance(acts, list) or not acts:
            raise bad(f"{label}: 'actions' must be a non-empty list")
        parsed = []
        for a in acts:
            if isinstance(a, str):
                name, opts = a, {}
            elif isinstance(a, dict) and len(a) == 1:
                name, opts = next(iter(a.items()))
                opts = opts or {}
            else:
                raise bad(f"{label}: each action is a name or a one-key mapping, got {a!r}")
            if name not in ACTIONS:
                raise bad(f"{label}: unknown action {name!r} (one of {', '.join(ACTIONS)})")
            if not isinstance(opts, dict):
                raise bad(f"{label}: options of {name!r} must be a mapping")
            parsed.append((name, opts))
        bindings.append(Binding(str(b.get("name") or f"binding-{i + 1}"), tuple(rules), frozenset(tags), mp,
                                tuple(parsed)))
    try:
        rate = int(doc.get("max_incidents_per_minute", 30))
        dedupe = float(doc.get("dedupe_seconds", 60))
    except (TypeError, ValueError):
        raise bad("max_incidents_per_minute and dedupe_seconds must be numbers") from None
    return Policy(bindings, tuple(notify), rate, dedupe)


def load_policy(path: str) -> Policy:
    import yaml

    try:
        with open(path, "rb") as fh:
            data = fh.read(1 << 20)
    except OSError as exc:
        raise HullguardError(f"cannot read response policy {path}: {exc.strerror or exc}") from None
    try:
        doc = yaml.load(data, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError as exc:
        raise HullguardError(f"{path}: not valid YAML: {' '.join(str(exc).split())}") from None
    return parse_policy(doc, path)


def order_actions(actions: list[tuple[str, dict[str, Any]]]) -> list[tuple[str, dict[str, Any]]]:
    """Each action once, first options win; capture before the first destructive action."""
    seen: dict[str, dict[str, Any]] = {}
    for name, opts in actions:
        seen.setdefault(name, opts)
    ordered = list(seen.items())
    rest = [a for a in ordered if a[0] != "capture"]
    first_destructive = next((i for i, (n, _o) in enumerate(rest) if n in DESTRUCTIVE), None)
    if first_destructive is None:
        return ordered
    capture_at = next((i for i, (n, _o) in enumerate(ordered) if n == "capture"), len(ordered))
    rest.insert(min(first_destructive, capture_at), ("capture", seen.get("capture", {})))
    return rest


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _int_pid(v: Any) -> int | None:
    if isinstance(v, bool):
        return None
    try:
        pid = int(v)
    except (TypeError, ValueError, OverflowError):
        return None
    # Linux caps pid_max at 2^22; anything larger is not a pid (negatives are kept so kill can refuse them).
    return pid if pid <= 1 << 22 else None


class DockerAPI:
    """The few Docker Engine API calls responders need, over the daemon's unix socket."""

    def __init__(self, socket_path: str) -> None:
        self.socket_path = socket_path

    def available(self) -> bool:
        import stat

        try:
            return stat.S_ISSOCK(os.stat(self.socket_path).st_mode)
        except OSError:
            return False

    def _request(self, method: str, path: str, timeout: float = 15.0) -> Any:
        import httpx

        transport = httpx.HTTPTransport(uds=self.socket_path)
        with httpx.Client(transport=transport, base_url="http://docker", timeout=timeout) as c:
            r = c.request(method, path)
        if r.status_code >= 300 and r.status_code != 304:
            msg = ""
            with contextlib.suppress(ValueError, AttributeError):
                msg = str(r.json().get("message", ""))[:200]
            raise OSError(f"docker {method} {path}: HTTP {r.status_code} {msg}".rstrip())
        return r

    def changes(self, cid: str) -> Any:
        return self._request("GET", f"/containers/{cid}/changes").json()

    def pause(self, cid: str) -> None:
        self._request("POST", f"/containers/{cid}/pause")

    def stop(self, cid: str, timeout: int = 10) -> None:
        self._request("POST", f"/containers/{cid}/stop?t={int(timeout)}", timeout=timeout + 15.0)


class Responder:
    def __init__(self, policy: Policy, *, dry_run: bool, evidence_dir: str, audit_log: str | None = None,
                 kubeconfig: str | None = None, docker_socket: str | None = None, log: TextIO | None = None,
                 out: TextIO | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.policy = policy
        self.dry_run = dry_run
        self.evidence_dir = evidence_dir
        self.audit_log = audit_log or os.path.join(evidence_dir, "audit.jsonl")
        self.kubeconfig = kubeconfig
        host = os.environ.get("DOCKER_HOST", "")
        self.docker = DockerAPI(docker_socket or (host[7:] if host.startswith("unix://") else DEFAULT_DOCKER_SOCKET))
        self.log = log
        self.out = out
        self.clock = clock
        self.incidents = 0
        self.suppressed = 0
        self._recent: dict[tuple[Any, ...], float] = {}
        self._acted: dict[tuple[Any, ...], tuple[float, str]] = {}
        self._window: list[float] = []
        self._lock = threading.Lock()
        self._outputs: dict[tuple[str, ...], Any] = {}

    @classmethod
    def from_file(cls, path: str, *, dry_run: bool, evidence_dir: str, audit_log: str | None = None,
                  **kw: Any) -> Responder:
        return cls(load_policy(path), dry_run=dry_run, evidence_dir=evidence_dir, audit_log=audit_log, **kw)

    # ---- entry point ---------------------------------------------------------------------------

    def handle(self, alert: Alert | dict[str, Any], ev: dict[str, Any] | None = None) -> list[ActionRecord]:
        a = alert.to_dict() if isinstance(alert, Alert) else dict(alert)
        rule = str(a.get("rule", ""))
        tags = {str(t) for t in a.get("tags") or []}
        actions: list[tuple[str, dict[str, Any]]] = []
        for b in self.policy.bindings:
            if b.matches(rule, tags, str(a.get("priority", ""))):
                actions.extend(b.actions)
        if not actions:
            return []
        target = self._target(a, ev or {})
        with self._lock:
            now = self.clock()
            key = (rule, target.get("pid"), target.get("container_id"), target.get("pod"))
            last = self._recent.get(key)
            if last is not None and now - last < self.policy.dedupe_seconds:
                self.suppressed += 1
                return []
            if len(self._recent) > 10_000:
                self._recent = {k: t for k, t in self._recent.items() if now - t < self.policy.dedupe_seconds}
            self._recent[key] = now
            self._window = [t for t in self._window if now - t < 60.0]
            over = len(self._window) >= self.policy.max_incidents_per_minute
            if not over:
                self._window.append(now)
            self.incidents += 1
        incident = self._incident_id(rule, target)
        if over:
            rec = self._record(incident, rule, "respond", "refused", target,
                               f"incident rate limit ({self.policy.max_incidents_per_minute}/min) reached")
            return [rec]
        records: list[ActionRecord] = []
        ctx: dict[str, Any] = {"dir": None}
        for name, opts in order_actions(actions):
            subject = self._subject(name, target)
            prior = self._acted.get(subject) if subject else None
            if prior is not None and self.clock() - prior[0] < self.policy.dedupe_seconds:
                # Several rules often fire on one event: isolate a pod or kill a pid once, not per rule.
                records.append(self._record(incident, rule, name, "skipped", target,
                                            f"already handled by incident {prior[1]}"))
                continue
            try:
                status, detail, data = getattr(self, f"_do_{name}")(incident, rule, target, opts, a, ctx, records)
            except HullguardError as exc:
                status, detail, data = "failed", str(exc), {}
            if subject and status in ("done", "printed", "dry-run"):
                with self._lock:
                    if len(self._acted) > 10_000:
                        self._acted.clear()
                    self._acted[subject] = (self.clock(), incident)
            records.append(self._record(incident, rule, name, status, target, detail, data))
        return records

    @staticmethod
    def _subject(action: str, target: dict[str, Any]) -> tuple[Any, ...] | None:
        if action == "quarantine" and target.get("pod"):
            return (action, target.get("namespace"), target["pod"])
        if action == "kill" and "pid" in target:
            return (action, target["pid"])
        if action in ("pause", "stop") and target.get("container_id"):
            return (action, target["container_id"])
        return None

    def close(self) -> None:
        for o in self._outputs.values():
            o.close()
        self._outputs.clear()

    # ---- helpers -------------------------------------------------------------------------------

    @staticmethod
    def _target(a: dict[str, Any], ev: dict[str, Any]) -> dict[str, Any]:
        of = a.get("output_fields") or {}

        def pick(k: str) -> Any:
            v = ev.get(k)
            return v if v not in (None, "", "<NA>") else of.get(k)

        t: dict[str, Any] = {}
        pid = _int_pid(pick("proc.pid"))
        if pid is not None:
            t["pid"] = pid
        for k, name in (("proc.name", "proc_name"), ("container.id", "container_id"), ("k8s.ns.name", "namespace"),
                        ("k8s.pod.name", "pod"), ("container.name", "container_name")):
            v = pick(k)
            if isinstance(v, str) and v and v != "<NA>" and len(v) <= 253:
                if name == "container_id" and not _CONTAINER_ID.match(v):
                    continue  # not an id we could ever act on; keep it out of paths and API calls
                t[name] = v
        return t

    @staticmethod
    def _incident_id(rule: str, target: dict[str, Any]) -> str:
        stamp = datetime.now(UTC).strftime("%Y%m%dt%H%M%Sz")
        seed = f"{rule}\0{json.dumps(target, sort_keys=True)}\0{time.time_ns()}\0{os.getpid()}"
        return f"{stamp}-{hashlib.sha256(seed.encode()).hexdigest()[:8]}"

    def _record(self, incident: str, rule: str, action: str, status: str, target: dict[str, Any], detail: str,
                data: dict[str, Any] | None = None) -> ActionRecord:
        rec = ActionRecord(time=_now(), incident=incident, rule=rule, action=action, status=status,
                           target=dict(target), detail=detail, dry_run=self.dry_run, data=data or {})
        line = (json.dumps(rec.to_dict(), separators=(",", ":"), default=str) + "\n").encode()
        try:
            parent = os.path.dirname(self.audit_log)
            if parent:
                os.makedirs(parent, mode=0o700, exist_ok=True)
            fd = os.open(self.audit_log, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                os.write(fd, line)
            finally:
                os.close(fd)
        except OSError as exc:
            # The audit trail is not optional: an action that cannot be logged is reported loudly.
            print(f"hullguard: error: cannot write audit log {self.audit_log}: {exc.strerror or exc}", file=sys.stderr)
        if self.log is not None:
            self.log.write(f"{'DRY-RUN ' if self.dry_run else ''}{action} {status}: {detail} "
                           f"[incident {incident}, rule {rule!r}]\n")
            self.log.flush()
        return rec

    def _incident_dir(self, incident: str, rule: str, target: dict[str, Any]) -> str:
        slug = _SLUG.sub("-", rule.lower()).strip("-")[:48] or "alert"
        cid = target.get("container_id") if target.get("container_id") != "host" else None
        ident = cid or (f"pid{target['pid']}" if "pid" in target else "none")
        ident = _SLUG.sub("-", str(ident).lower()).strip("-")[:64]
        return os.path.join(self.evidence_dir, f"{incident[:16]}-{slug}-{ident}-{incident[17:]}")

    # ---- actions: each returns (status, detail, data) ------------------------------------------

    def _do_capture(self, incident: str, rule: str, target: dict[str, Any], opts: dict[str, Any],
                    alert: dict[str, Any], ctx: dict[str, Any], records: list[ActionRecord]) -> tuple[str, str, dict]:
        from hullguard.runtime.respond_evidence import EvidenceWriter, capture_process

        pid, cid = target.get("pid"), target.get("container_id")
        container = cid if cid and cid != "host" else None
        directory = self._incident_dir(incident, rule, target)
        what = ([f"pid {pid}"] if pid else []) + ([f"container {container}"] if container else [])
        if not what:
            return "refused", "the alert names no process or container to capture", {}
        if self.dry_run:
            from hullguard.runtime.respond_evidence import stat_of

            if pid and not container and (pid <= 0 or stat_of(pid) is None):
                return "failed", f"process {pid} is not running: nothing to capture", {}
            return "dry-run", f"would capture evidence of {' and '.join(what)} into {directory}", {"dir": directory}
        try:
            w = EvidenceWriter(directory)
        except OSError as exc:
            raise HullguardError(f"cannot create evidence directory {directory}: {exc.strerror or exc}") from None
        ctx["dir"] = directory
        w.add("alert.json", alert)
        summary: dict[str, Any] = {}
        if pid and pid > 0:
            summary = capture_process(w, pid)
        if container:
            if self.docker.available() and _CONTAINER_ID.match(container):
                try:
                    w.add("container_changes.json", self.docker.changes(container) or [])
                except (OSError, ValueError) as exc:
                    w.errors.append(f"container_changes.json: {exc}")
            else:
                w.errors.append(f"container_changes.json: docker API not reachable at {self.docker.socket_path}")
        index, digest = w.finish({"incident": incident, "rule": rule, "target": target})
        status = "done" if len(w.artefacts) > 1 else "failed"
        detail = f"{len(w.artefacts)} artefacts in {directory}, index sha256 {digest}"
        if w.errors:
            detail += f" ({len(w.errors)} not captured)"
        return status, detail, {"dir": directory, "index": index, "index_sha256": digest,
                                 "artefacts": [x["name"] for x in w.artefacts], "errors": w.errors, **summary}

    def _do_kill(self, incident: str, rule: str, target: dict[str, Any], opts: dict[str, Any],
                 alert: dict[str, Any], ctx: dict[str, Any], records: list[ActionRecord]) -> tuple[str, str, dict]:
        from hullguard.runtime.respond_evidence import ancestors, stat_of

        pid = target.get("pid")
        if pid is None:
            return "refused", "the alert names no pid", {}
        if pid <= 1:
            return "refused", f"pid {pid} is never killed (init or a process group)", {}
        if pid == os.getpid():
            return "refused", f"pid {pid} is hullguard itself", {}
        if pid in ancestors(os.getpid()):
            return "refused", f"pid {pid} is an ancestor of hullguard", {}
        st = stat_of(pid)
        if st is None:
            return "failed", f"no process {pid} (already gone?)", {}
        name = target.get("proc_name")
        if name and st["comm"] != name[:15]:
            return "refused", f"pid {pid} is now {st['comm']!r}, not {name!r} (pid reused?)", {}
        cid = target.get("container_id")
        if cid and cid != "host":
            try:
                with open(f"/proc/{pid}/cgroup", "rb") as fh:
                    cg = fh.read(16384).decode("utf-8", "replace")
            except OSError:
                cg = ""
            if cid not in cg:
                return "refused", f"pid {pid} is not in container {cid}", {}
        if self.dry_run:
            return "dry-run", f"would send SIGKILL to pid {pid} ({st['comm']})", {}
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            return "failed", f"no process {pid} (already gone?)", {}
        except PermissionError:
            return "failed", f"not permitted to kill pid {pid}", {}
        return "done", f"SIGKILL sent to pid {pid} ({st['comm']})", {}

    def _docker_action(self, verb: str, target: dict[str, Any], opts: dict[str, Any]) -> tuple[str, str, dict]:
        cid = target.get("container_id")
        if not cid or cid == "host":
            return "refused", "the alert names no container", {}
        if not _CONTAINER_ID.match(cid):
            return "refused", f"{cid!r} is not a container id", {}
        if not self.docker.available():
            return "unavailable", (f"{verb} not available: no Docker API socket at {self.docker.socket_path} "
                                   "(containerd is not supported)"), {}
        if self.dry_run:
            return "dry-run", f"would {verb} container {cid} through the Docker API", {}
        try:
            if verb == "pause":
                self.docker.pause(cid)
            else:
                self.docker.stop(cid, int(opts.get("timeout", 10)))
        except (OSError, ValueError) as exc:
            return "failed", str(exc), {}
        return "done", f"container {cid} {'paused' if verb == 'pause' else 'stopped'}", {}

    def _do_pause(self, incident: str, rule: str, target: dict[str, Any], opts: dict[str, Any],
                  alert: dict[str, Any], ctx: dict[str, Any], records: list[ActionRecord]) -> tuple[str, str, dict]:
        return self._docker_action("pause", target, opts)

    def _do_stop(self, incident: str, rule: str, target: dict[str, Any], opts: dict[str, Any],
                 alert: dict[str, Any], ctx: dict[str, Any], records: list[ActionRecord]) -> tuple[str, str, dict]:
        return self._docker_action("stop", target, opts)

    def _do_quarantine(self, incident: str, rule: str, target: dict[str, Any], opts: dict[str, Any],
                       alert: dict[str, Any], ctx: dict[str, Any],
                       records: list[ActionRecord]) -> tuple[str, str, dict]:
        import yaml

        from hullguard.runtime.respond_k8s import (
            QUARANTINE_LABEL,
            KubeClient,
            KubeError,
            apply_command,
            label_command,
            network_policy,
            valid_name,
        )

        ns, pod = target.get("namespace"), target.get("pod")
        if not ns or not pod:
            return "refused", "the alert names no Kubernetes pod and namespace", {}
        if not valid_name(ns) or not valid_name(pod):
            return "refused", f"{ns}/{pod} is not a valid namespace/pod name", {}
        manifest = network_policy(ns, incident)
        text = yaml.safe_dump(manifest, sort_keys=False)
        cmd = label_command(ns, pod, incident)
        data: dict[str, Any] = {"manifest": manifest, "label_command": cmd}
        if ctx.get("dir"):
            path = os.path.join(ctx["dir"], "quarantine-networkpolicy.yaml")
            with contextlib.suppress(OSError):
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "w", encoding="utf-8") as fh:
                    fh.write(text)
                # Written after index.json was sealed: its hash goes into the audit record instead.
                data["manifest_path"] = path
                data["manifest_sha256"] = hashlib.sha256(text.encode()).hexdigest()
        if self.dry_run:
            return "dry-run", f"would isolate pod {ns}/{pod} with NetworkPolicy {manifest['metadata']['name']}", data
        client, why = KubeClient.discover(self.kubeconfig)
        if client is None:
            out = self.out or sys.stdout
            where = data.get("manifest_path", "-")
            out.write(f"# hullguard quarantine for {ns}/{pod} ({why}); apply with:\n#   {apply_command(where)}\n"
                      f"#   {cmd}\n---\n{text}")
            out.flush()
            return "printed", f"{why}: NetworkPolicy and label command printed for {ns}/{pod}", data
        try:
            client.create_network_policy(manifest)
            client.label_pod(ns, pod, {QUARANTINE_LABEL: incident})
        except KubeError as exc:
            return "failed", f"{exc} ({client.source})", data
        return "done", f"pod {ns}/{pod} isolated by NetworkPolicy {manifest['metadata']['name']} ({client.source})", \
            data

    def _do_notify(self, incident: str, rule: str, target: dict[str, Any], opts: dict[str, Any],
                   alert: dict[str, Any], ctx: dict[str, Any], records: list[ActionRecord]) -> tuple[str, str, dict]:
        from hullguard.runtime.outputs import OutputSet, parse_output_spec

        specs = opts.get("outputs") or self.policy.notify
        specs = tuple([specs] if isinstance(specs, str) else specs)
        if not specs:
            return "refused", "no notify outputs configured (policy 'notify' or the action's 'outputs')", {}
        if self.dry_run:
            return "dry-run", f"would notify {', '.join(s.split(':', 1)[0] for s in specs)}", {}
        outputs = self._outputs.get(specs)
        if outputs is None:
            outputs = self._outputs[specs] = OutputSet([parse_output_spec(s) for s in specs])
        msg = dict(alert)
        msg["output_fields"] = {**(alert.get("output_fields") or {}), "hullguard.incident": incident,
                                "hullguard.actions": ", ".join(f"{r.action}:{r.status}" for r in records)}
        if ctx.get("dir"):
            msg["output_fields"]["hullguard.evidence"] = ctx["dir"]
        outputs.emit(msg)
        return "done", f"sent to {len(specs)} output(s)", {}
