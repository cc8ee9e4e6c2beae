"""AdmissionReview in, decision out: which policies apply, what each found, the response and the
audit record.

A policy yields messages; its mode decides what they do: ``enforce`` denies, ``warn`` turns them
into AdmissionReview warnings, ``audit`` only logs them. A dependency error (registry down, timeout)
follows the policy's failurePolicy: ``Fail`` denies with the reason, ``Ignore`` admits and warns.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from dataclasses import dataclass, field
from typing import Any

from hullguard.admission.config import IMAGE_TYPES, PSS_LABEL, AdmissionConfig, Policy, glob_match
from hullguard.admission.deps import Dependencies, DependencyError
from hullguard.admission.workloads import Container, containers, pod_template
from hullguard.model import Severity

API_VERSION = "admission.k8s.io/v1"
MAX_WARNINGS = 30
MAX_WARNING_LEN = 480
MAX_MESSAGE = 16_000
PSS_CACHE = 4096


class BadReview(ValueError):
    """The request body is not an AdmissionReview we can answer: HTTP 400."""


@dataclass
class PolicyResult:
    policy: str
    type: str
    mode: str
    result: str  # pass | fail | error | exempt
    messages: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"policy": self.policy, "type": self.type, "mode": self.mode, "result": self.result}
        if self.messages:
            out["messages"] = self.messages
        return out


@dataclass
class Decision:
    uid: str
    allowed: bool
    message: str = ""
    warnings: list[str] = field(default_factory=list)
    patch: list[dict[str, Any]] = field(default_factory=list)
    results: list[PolicyResult] = field(default_factory=list)
    reason: str = ""
    images: list[str] = field(default_factory=list)
    request: Request | None = None

    def response(self) -> dict[str, Any]:
        resp: dict[str, Any] = {"uid": self.uid, "allowed": self.allowed}
        if self.allowed:
            resp["status"] = {"code": 200, "message": self.message or "allowed"}
        else:
            resp["status"] = {"code": 403, "reason": "Forbidden", "message": self.message}
        if self.warnings:
            resp["warnings"] = self.warnings
        if self.patch and self.allowed:
            resp["patchType"] = "JSONPatch"
            resp["patch"] = base64.b64encode(json.dumps(self.patch, separators=(",", ":")).encode()).decode()
        return {"apiVersion": API_VERSION, "kind": "AdmissionReview", "response": resp}


@dataclass
class Request:
    uid: str
    kind: str
    operation: str
    namespace: str
    name: str
    username: str
    groups: list[str]
    obj: dict[str, Any] | None
    old: dict[str, Any] | None
    raw: dict[str, Any]
    dry_run: bool = False


def parse_review(body: Any) -> Request:
    if not isinstance(body, dict):
        raise BadReview("body is not a JSON object")
    if body.get("kind") != "AdmissionReview":
        raise BadReview(f"kind is {body.get('kind')!r}, expected AdmissionReview")
    if body.get("apiVersion") != API_VERSION:
        raise BadReview(f"apiVersion is {body.get('apiVersion')!r}, expected {API_VERSION} "
                        "(set admissionReviewVersions: [v1] on the webhook)")
    req = body.get("request")
    if not isinstance(req, dict):
        raise BadReview("AdmissionReview has no request object")
    uid = req.get("uid")
    if not isinstance(uid, str) or not uid or len(uid) > 256:
        raise BadReview("request.uid is missing or not a string")
    kind = req.get("kind")
    if not isinstance(kind, dict) or not isinstance(kind.get("kind"), str):
        raise BadReview("request.kind.kind is missing")
    op = req.get("operation")
    if op not in ("CREATE", "UPDATE", "DELETE", "CONNECT"):
        raise BadReview(f"request.operation {op!r} is not CREATE, UPDATE, DELETE or CONNECT")
    obj, old = req.get("object"), req.get("oldObject")
    if obj is not None and not isinstance(obj, dict):
        raise BadReview("request.object is not an object")
    if old is not None and not isinstance(old, dict):
        raise BadReview("request.oldObject is not an object")
    if op in ("CREATE", "UPDATE") and obj is None:
        raise BadReview(f"request.object is missing for {op}")
    user = req.get("userInfo") if isinstance(req.get("userInfo"), dict) else {}
    groups = user.get("groups") if isinstance(user.get("groups"), list) else []
    meta = (obj or old or {}).get("metadata")
    meta = meta if isinstance(meta, dict) else {}
    return Request(uid=uid, kind=kind["kind"], operation=op, namespace=str(req.get("namespace") or ""),
                   name=str(req.get("name") or meta.get("name") or meta.get("generateName") or ""),
                   username=str(user.get("username", "")), groups=[str(g) for g in groups], obj=obj, old=old,
                   raw=req, dry_run=bool(req.get("dryRun")))


@dataclass
class _Image:
    container: Container
    text: str
    normalized: str  # registry/repository
    tag: str
    digest: str
    error: str = ""


def _image(c: Container) -> _Image:
    from hullguard.image.registry import Reference
    from hullguard.model import HullguardError

    if not c.image:
        return _Image(c, c.image, "", "", "", f"container {c.name} has no image")
    try:
        ref = Reference.parse(c.image)
    except HullguardError as exc:
        return _Image(c, c.image, "", "", "", f"image {c.image!r} is not a valid reference: {exc}")
    # Reference.parse fills in "latest"; remember whether the user wrote a tag at all.
    return _Image(c, c.image, f"{ref.registry}/{ref.repository}", ref.tag, ref.digest)


def _first_line(text: str, limit: int = 400) -> str:
    flat = " ".join(str(text).split())
    return "".join(c if c.isprintable() else "?" for c in flat)[:limit]


class Engine:
    def __init__(self, config: AdmissionConfig, deps: Dependencies | None = None, cel: Any = None) -> None:
        self.config = config
        self.deps = deps or Dependencies(ttl=config.cache_ttl, failure_ttl=config.failure_ttl,
                                         max_entries=config.cache_entries)
        self._cel = cel
        self._pss_cache: dict[tuple[bytes, str, str], str] = {}
        for p in config.policies:
            if p.type == "cel":
                p.cel_policies = self.cel.load_policies(p.cel_files)
        # Import what the first request would otherwise pay for (tens of ms) while the server starts.
        from hullguard.detect.misconfig import pss  # noqa: F401
        from hullguard.image import registry  # noqa: F401

    @property
    def cel(self) -> Any:
        if self._cel is None:
            import importlib

            from hullguard.model import HullguardError

            try:
                self._cel = importlib.import_module("hullguard.policy.cel")
            except ImportError as exc:
                raise HullguardError(f"CEL policies need hullguard.policy.cel, which is not available ({exc})"
                                     ) from None
        return self._cel

    # -- entry point -------------------------------------------------------------------------------

    def review(self, body: Any, endpoint: str = "validate") -> Decision:
        req = parse_review(body)
        start = time.monotonic()
        d = Decision(uid=req.uid, allowed=True, request=req)
        exempt = self.config.exemptions.exempt_request(req.namespace, req.username)
        found = pod_template(req.obj or req.old or {}, req.kind)
        images = [_image(c) for c in containers(req.obj or {}, req.kind)] if req.obj else []
        d.images = [i.text for i in images]
        if exempt:
            d.reason = exempt
            d.message = exempt
            return d
        labels = self.config.namespace_labels(req.namespace)
        denials: list[str] = []
        todo: list[tuple[Policy, list[_Image]]] = []
        # An UPDATE judges what it changes: images already running are not re-checked (a registry
        # outage must not block a label change or a finalizer removal), and a template whose spec
        # did not change is not re-judged for Pod Security, as the PodSecurity plugin does.
        same_spec = False
        if req.operation == "UPDATE" and req.old is not None and found is not None:
            before = {c.pointer: c.image for c in containers(req.old, req.kind)}
            images = [i for i in images if before.get(i.container.pointer) != i.text]
            old_tpl = pod_template(req.old, req.kind)
            same_spec = old_tpl is not None and old_tpl[0].get("spec") == found[0].get("spec")
        for p in self.config.policies:
            if (p.type == "mutateDigest") != (endpoint == "mutate"):
                continue
            if not self._applies(p, req, labels, found is not None):
                continue
            if same_spec and p.type == "podSecurity":
                continue
            why = p.exclude.exempt_request(req.namespace, req.username)
            if why:
                d.results.append(PolicyResult(p.name, p.type, p.mode, "exempt", [why]))
                continue
            skip = self.config.exemptions.images + p.exclude.images
            mine = [i for i in images if not (glob_match(skip, i.text) or glob_match(skip, i.normalized))
                    and p.applies_to_image(i.text, i.normalized)]
            todo.append((p, mine))
            try:
                self._prefetch(p, mine)
            except DependencyError:
                pass  # the policy meets the same error when it asks again, and its failurePolicy decides
        for p, mine in todo:
            res = PolicyResult(p.name, p.type, p.mode, "pass")
            deadline = start + p.timeout
            try:
                messages, warns = self._run(p, req, labels, mine, d, deadline)
            except DependencyError as exc:
                res.result = "error"
                reason = _first_line(str(exc))
                if p.failure_policy == "Fail":
                    messages, warns = [f"{reason} (failurePolicy: Fail)"], []
                else:
                    res.messages = [f"{reason} (failurePolicy: Ignore)"]
                    d.warnings.append(f"[{p.name}] {reason}; admitted because failurePolicy is Ignore")
                    d.results.append(res)
                    continue
            d.warnings.extend(f"[{p.name}] {w}" for w in warns)
            if messages:
                res.result = "error" if res.result == "error" else "fail"
                res.messages = messages
                tagged = [f"[{p.name}] {m}" for m in messages]
                if p.mode == "enforce":
                    denials.extend(tagged)
                elif p.mode == "warn":
                    d.warnings.extend(tagged)
            elif warns:
                res.messages = warns
            d.results.append(res)
        if denials:
            d.allowed = False
            d.patch = []
            head = f"{len(denials)} policy violation{'s' if len(denials) > 1 else ''}"
            d.message = (f"hullguard denied {req.kind} {req.namespace + '/' if req.namespace else ''}{req.name}: "
                         f"{head}:\n- " + "\n- ".join(denials))[:MAX_MESSAGE]
            d.reason = "; ".join(r.policy for r in d.results if r.result in ("fail", "error") and r.mode == "enforce")
        else:
            d.reason = "all policies passed" if not d.warnings else "admitted with warnings"
            d.message = d.reason
        # Warnings travel as HTTP Warning headers to the client: one line each, printable, bounded.
        d.warnings = [_first_line(w, MAX_WARNING_LEN) for w in d.warnings[:MAX_WARNINGS]]
        return d

    def _prefetch(self, p: Policy, images: list[_Image]) -> None:
        """Start every registry call this policy will need now, so that the calls of all policies and
        all containers overlap instead of adding up."""
        good = [i for i in images if not i.error]
        if p.type == "verifySignature":
            for i in good:
                for t in ("", *p.attestations):
                    self.deps.verify(i.text, tuple(p.keys), t, self._insecure(i), p.timeout)
        elif p.type == "vulnerabilities" or (p.type == "mutateDigest" and p.mode != "audit"):
            for i in good:
                if not i.digest:
                    self.deps.resolve(i.text, self._insecure(i), p.timeout)

    def _applies(self, p: Policy, req: Request, labels: dict[str, str], has_template: bool) -> bool:
        if "*" not in p.operations and req.operation not in p.operations:
            return False
        if p.kinds and req.kind not in p.kinds:
            return False
        # DELETE carries no new object; unknown kinds have no containers to judge.
        if (p.type in IMAGE_TYPES or p.type == "podSecurity") and (not has_template or req.obj is None):
            return False
        if p.namespaces and not glob_match(p.namespaces, req.namespace):
            return False
        return not (p.namespace_selector and not p.namespace_selector.matches(labels))

    def _run(self, p: Policy, req: Request, labels: dict[str, str], images: list[_Image], d: Decision,
             deadline: float) -> tuple[list[str], list[str]]:
        bad = [i.error for i in images if i.error]
        good = [i for i in images if not i.error]
        if p.type == "allowedRegistries":
            out = [f"image {i.text} ({i.container.where}) is not from an allowed registry; allowed: "
                   f"{', '.join(p.registries)}" for i in good if not glob_match(p.registries, i.normalized)]
            return bad + out, []
        if p.type == "disallowLatest":
            out = []
            for i in good:
                if not i.digest and i.tag == "latest":
                    what = 'uses the mutable tag "latest"' if ":" in i.text.rsplit("/", 1)[-1] \
                        else 'has no tag, which means "latest"'
                    out.append(f"image {i.text} ({i.container.where}) {what}; use a versioned tag or pin it by digest")
            return bad + out, []
        if p.type == "requireDigest":
            return bad + [self._digest_message(i) for i in good if not i.digest], []
        if p.type == "mutateDigest":
            return self._mutate(p, good, d, deadline)
        if p.type == "verifySignature":
            return self._signatures(p, good, deadline), []
        if p.type == "vulnerabilities":
            return self._vulns(p, good, deadline), []
        if p.type == "podSecurity":
            return self._pss(p, req, labels, d)
        if p.type == "cel":
            return self._cel_run(p, req, labels), []
        return [], []

    def _insecure(self, i: _Image) -> bool:
        return self.config.insecure(i.normalized.split("/", 1)[0])

    def _digest_message(self, i: _Image) -> str:
        known = self.deps.cached(("digest", i.text))
        pinned = f"{i.text}@{known}" if isinstance(known, str) and known else f"{i.normalized}@sha256:..."
        return f"image {i.text} ({i.container.where}) is not pinned by digest; use {pinned}"

    def _mutate(self, p: Policy, images: list[_Image], d: Decision, deadline: float
                ) -> tuple[list[str], list[str]]:
        todo = [i for i in images if not i.digest]
        futs = [(i, self.deps.resolve(i.text, self._insecure(i), p.timeout)) for i in todo]
        notes: list[str] = []
        for i, fut in futs:
            digest = self.deps.wait(fut, deadline, f"resolving {i.text} to a digest")
            if p.mode == "enforce":
                d.patch.append({"op": "replace", "path": i.container.pointer, "value": f"{i.text}@{digest}"})
            else:
                notes.append(f"image {i.text} ({i.container.where}) would be pinned to {digest}")
        # Outside enforce mode nothing is patched: what would have been pinned becomes a warning
        # (warn) or a line in the decision log (audit), through the same path as any finding.
        return notes, []

    def _signatures(self, p: Policy, images: list[_Image], deadline: float) -> list[str]:
        keys = tuple(p.keys)
        wanted = ["", *p.attestations]
        seen: dict[str, _Image] = {}
        for i in images:
            seen.setdefault(i.text, i)
        futs = [(i, t, self.deps.verify(i.text, keys, t, self._insecure(i), p.timeout))
                for i in seen.values() for t in wanted]
        out = []
        who = ", ".join(p.key_names)
        for i, ptype, fut in futs:
            what = f"attestation {ptype}" if ptype else "signature"
            outcome = self.deps.wait(fut, deadline, f"checking the {what} of {i.text}")
            if not outcome.verified:
                reason = _first_line(outcome.reason) or "no valid signature"
                if ptype:
                    out.append(f"image {i.text} has no valid {ptype} attestation signed by {who}: {reason}")
                else:
                    out.append(f"image {i.text} is not signed by a trusted key ({who}): {reason}; "
                               f"sign it with `hullguard sign {i.normalized}@<digest> --key KEY`")
        return out

    def _vulns(self, p: Policy, images: list[_Image], deadline: float) -> list[str]:
        seen: dict[str, _Image] = {}
        for i in images:
            seen.setdefault(i.text, i)
        digests = [(i, self.deps.resolve(i.text, self._insecure(i), p.timeout)) for i in seen.values()]
        scans = []
        for i, fut in digests:
            digest = self.deps.wait(fut, deadline, f"resolving {i.text} to a digest")
            scans.append((i, self.deps.scan(i.text, digest, self._insecure(i), p.timeout, p.db, p.results_dir)))
        out = []
        for i, fut in scans:
            result = self.deps.wait(fut, deadline, f"scanning {i.text} for vulnerabilities")
            out.extend(_vuln_messages(p, i.text, result))
        return out

    def _pss(self, p: Policy, req: Request, labels: dict[str, str], d: Decision) -> tuple[list[str], list[str]]:
        from hullguard.detect.misconfig.pss import LEVELS, evaluate_pss, format_violations, parse_version

        found = pod_template(req.obj or {}, req.kind)
        if found is None:
            return [], []
        template = found[0]

        def level_for(mode: str, default: str) -> tuple[str, str, str]:
            level = labels.get(f"{PSS_LABEL}{mode}", default)
            version = labels.get(f"{PSS_LABEL}{mode}-version", p.version) or "latest"
            note = ""
            if level and level not in LEVELS:
                # The PodSecurity plugin evaluates an invalid level as restricted; so do we.
                note, level = f" (invalid {PSS_LABEL}{mode} label {level!r} evaluated as restricted)", "restricted"
            try:
                parse_version(version)
            except ValueError:
                note, version = f" (invalid {PSS_LABEL}{mode}-version {version!r} evaluated as latest)", "latest"
            return level, version, note

        out: dict[str, list[str]] = {}
        fingerprint = b""
        for mode, default in (("enforce", p.level), ("warn", p.warn_level), ("audit", p.audit_level)):
            level, version, note = level_for(mode, default)
            if not level or level == "privileged":
                continue
            # The same template arrives again and again (every replica, every rollout): cache the
            # verdict by the template's content.
            # repr keeps the JSON key order, so a reordered template is only a cache miss, never a wrong hit.
            fingerprint = fingerprint or hashlib.sha256(repr(template).encode()).digest()
            key = (fingerprint, level, version)
            text = self._pss_cache.get(key)
            if text is None:
                violations = evaluate_pss(template, level, version)
                text = format_violations(level, version, violations) if violations else ""
                if len(self._pss_cache) >= PSS_CACHE:
                    self._pss_cache.clear()
                self._pss_cache[key] = text
            if text:
                out[mode] = [text + note]
        messages = out.get("enforce", [])
        warns = out.get("warn", [])
        if "audit" in out:
            # Audit-label results are recorded in the decision log only, as the plugin does.
            d.results.append(PolicyResult(p.name, p.type, "audit", "fail", out["audit"]))
        return messages, warns

    def _cel_run(self, p: Policy, req: Request, labels: dict[str, str]) -> list[str]:
        cel = self.cel
        ns_obj = {"apiVersion": "v1", "kind": "Namespace",
                  "metadata": {"name": req.namespace, "labels": labels}} if req.namespace else None
        try:
            if hasattr(cel, "check_object"):
                # check_object also walks each policy's bindings and their params.
                violations = cel.check_object(p.cel_policies, req.obj, request=req.raw, namespace_object=ns_obj)
            else:
                violations = []
                for cp in p.cel_policies:
                    if cel.matches(cp, req.raw, namespace_object=ns_obj):
                        violations += cel.evaluate(cp, req.obj, request=req.raw, old_object=req.old,
                                                   namespace_object=ns_obj)
        except Exception as exc:
            raise DependencyError(f"CEL evaluation failed: {_first_line(str(exc))}") from None
        out = []
        for v in violations:
            name, message = getattr(v, "policy", ""), getattr(v, "message", "")
            out.append(f"{name}: {message}" if name else str(message))
        return out


def _vuln_messages(p: Policy, image: str, result: Any) -> list[str]:
    kev, severe = [], []
    for f in result.findings:
        if f.kind != "vulnerability":
            continue
        details = f.details or {}
        pkg = details.get("package", {}) if isinstance(details.get("package"), dict) else {}
        label = f"{f.rule_id} in {pkg.get('name', f.target)} {pkg.get('version', '')}".rstrip()
        if f.fix:
            label += f" (fixed in {f.fix})"
        if p.known_exploited and details.get("known_exploited"):
            kev.append(label)
        elif p.severity is not None and Severity(int(f.severity)) >= p.severity and (f.fix or not p.fixable_only):
            severe.append(label)
    out = []
    if kev:
        out.append(f"image {image} has {len(kev)} known-exploited vulnerabilit{'ies' if len(kev) > 1 else 'y'}: "
                   f"{', '.join(sorted(set(kev))[:10])}{' ...' if len(kev) > 10 else ''}")
    if severe:
        sev = p.severity.name.lower() if p.severity else ""
        kind = (sev if p.severity == Severity.CRITICAL else f"{sev}-or-higher") + (" fixable" if p.fixable_only else "")
        out.append(f"image {image} has {len(severe)} {kind} vulnerabilit{'ies' if len(severe) > 1 else 'y'}: "
                   f"{', '.join(sorted(set(severe))[:10])}{' ...' if len(severe) > 10 else ''}; "
                   "rebuild with the fixed versions")
    return out
