"""The admission policy file: one YAML document, checked whole at load time.

Every mistake is reported as a HullguardError naming the policy and the field, so a typo stops
``admission serve`` before it starts rather than silently letting pods through.
"""

from __future__ import annotations

import fnmatch
import functools
import os
import re
from dataclasses import dataclass, field
from typing import Any

from hullguard.fileio import read_bounded
from hullguard.model import HullguardError, Severity

MODES = ("enforce", "warn", "audit")
FAILURE_POLICIES = ("Fail", "Ignore")
POLICY_TYPES = ("allowedRegistries", "disallowLatest", "requireDigest", "mutateDigest", "verifySignature",
                "podSecurity", "cel", "vulnerabilities")
# Types that judge images; they run only on kinds with a pod template.
IMAGE_TYPES = {"allowedRegistries", "disallowLatest", "requireDigest", "mutateDigest", "verifySignature",
               "vulnerabilities"}
PSS_LABEL = "pod-security.kubernetes.io/"
MAX_POLICY_FILE = 4 * 1024 * 1024


@functools.lru_cache(maxsize=1024)
def _compiled(patterns: tuple[str, ...]) -> re.Pattern[str]:
    return re.compile("|".join(f"(?:{fnmatch.translate(p)})" for p in patterns))


def glob_match(patterns: list[str], text: str) -> bool:
    """fnmatch semantics ('*' also matches '/'), one compiled regex per pattern list: this runs
    for every policy and container of every request."""
    if not patterns:
        return False
    return _compiled(tuple(patterns)).match(text) is not None


@dataclass
class Exemptions:
    namespaces: list[str] = field(default_factory=list)
    # "system:serviceaccount:NS:NAME" globs; "NS:NAME" is accepted as shorthand.
    service_accounts: list[str] = field(default_factory=list)
    users: list[str] = field(default_factory=list)
    images: list[str] = field(default_factory=list)

    def exempt_request(self, namespace: str, username: str) -> str:
        """Why the whole request is exempt, or ''."""
        if namespace and glob_match(self.namespaces, namespace):
            return f"namespace {namespace} is exempt"
        if username and glob_match(self.service_accounts, username):
            return f"service account {username.removeprefix('system:serviceaccount:')} is exempt"
        if username and glob_match(self.users, username):
            return f"user {username} is exempt"
        return ""


@dataclass
class Selector:
    """A Kubernetes LabelSelector: matchLabels and matchExpressions (In, NotIn, Exists, DoesNotExist)."""

    match_labels: dict[str, str] = field(default_factory=dict)
    expressions: list[tuple[str, str, list[str]]] = field(default_factory=list)

    def matches(self, labels: dict[str, str]) -> bool:
        for k, v in self.match_labels.items():
            if labels.get(k) != v:
                return False
        for key, op, values in self.expressions:
            present = key in labels
            if op == "In" and not (present and labels[key] in values):
                return False
            if op == "NotIn" and present and labels[key] in values:
                return False
            if op == "Exists" and not present:
                return False
            if op == "DoesNotExist" and present:
                return False
        return True


@dataclass
class Policy:
    name: str
    type: str
    mode: str = "enforce"
    failure_policy: str = "Fail"
    timeout: float = 10.0
    namespaces: list[str] = field(default_factory=list)  # globs; empty = every namespace
    namespace_selector: Selector | None = None
    operations: list[str] = field(default_factory=lambda: ["CREATE", "UPDATE"])
    kinds: list[str] = field(default_factory=list)  # empty = every workload kind
    images: list[str] = field(default_factory=list)  # globs; empty = every image
    exclude: Exemptions = field(default_factory=Exemptions)
    # type-specific
    registries: list[str] = field(default_factory=list)
    keys: list[bytes] = field(default_factory=list)
    key_names: list[str] = field(default_factory=list)
    attestations: list[str] = field(default_factory=list)
    level: str = "baseline"
    version: str = "latest"
    warn_level: str = ""
    audit_level: str = ""
    cel_files: list[str] = field(default_factory=list)
    cel_policies: list[Any] = field(default_factory=list)
    known_exploited: bool = True
    severity: Severity | None = Severity.CRITICAL
    fixable_only: bool = True
    results_dir: str = ""
    db: str = ""

    def applies_to_image(self, image: str, normalized: str) -> bool:
        if not self.images:
            return True
        return glob_match(self.images, image) or glob_match(self.images, normalized)


@dataclass
class AdmissionConfig:
    policies: list[Policy] = field(default_factory=list)
    exemptions: Exemptions = field(default_factory=Exemptions)
    # namespace name or glob -> labels; an exact name wins over globs, globs merge in file order.
    namespaces: dict[str, dict[str, str]] = field(default_factory=dict)
    insecure_registries: list[str] = field(default_factory=list)
    cache_ttl: float = 300.0
    failure_ttl: float = 30.0
    cache_entries: int = 10_000
    source: str = ""

    def namespace_labels(self, namespace: str) -> dict[str, str]:
        labels: dict[str, str] = {}
        for pattern, values in self.namespaces.items():
            if pattern != namespace and fnmatch.fnmatchcase(namespace, pattern):
                labels.update(values)
        labels.update(self.namespaces.get(namespace, {}))
        if namespace:
            labels.setdefault("kubernetes.io/metadata.name", namespace)
        return labels

    def insecure(self, host: str) -> bool:
        return glob_match(self.insecure_registries, host)


class _Reader:
    """Typed access to one mapping of the file, with errors that say where."""

    def __init__(self, data: Any, where: str) -> None:
        if not isinstance(data, dict):
            raise HullguardError(f"{where}: expected a mapping, got {type(data).__name__}")
        self.data = data
        self.where = where
        self.seen: set[str] = set()

    def get(self, key: str, default: Any = None) -> Any:
        self.seen.add(key)
        return self.data.get(key, default)

    def str(self, key: str, default: str = "", choices: tuple[str, ...] = ()) -> str:
        value = self.get(key, default)
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            raise HullguardError(f"{self.where}.{key}: expected a string")
        value = str(value)
        if choices and value not in choices:
            raise HullguardError(f"{self.where}.{key}: {value!r} is not one of {', '.join(choices)}")
        return value

    def bool(self, key: str, default: bool) -> bool:
        value = self.get(key, default)
        if not isinstance(value, bool):
            raise HullguardError(f"{self.where}.{key}: expected true or false")
        return value

    def number(self, key: str, default: float, low: float = 0.001, high: float = 86400.0) -> float:
        value = self.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
            raise HullguardError(f"{self.where}.{key}: expected a number between {low:g} and {high:g}")
        return float(value)

    def strings(self, key: str) -> list[str]:
        value = self.get(key, [])
        if value is None:
            return []
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise HullguardError(f"{self.where}.{key}: expected a list of non-empty strings")
        return list(value)

    def labels(self, key: str) -> dict[str, str]:
        value = self.get(key, {}) or {}
        if not isinstance(value, dict):
            raise HullguardError(f"{self.where}.{key}: expected a mapping of labels")
        return {str(k): str(v) for k, v in value.items()}

    def done(self) -> None:
        unknown = sorted(set(map(str, self.data)) - self.seen)
        if unknown:
            raise HullguardError(f"{self.where}: unknown field {unknown[0]!r}")


def _exemptions(data: Any, where: str) -> Exemptions:
    if data is None:
        return Exemptions()
    r = _Reader(data, where)
    sas = [s if s.startswith("system:serviceaccount:") else f"system:serviceaccount:{s}"
           for s in r.strings("serviceAccounts")]
    out = Exemptions(r.strings("namespaces"), sas, r.strings("users"), r.strings("images"))
    r.done()
    return out


def _selector(data: Any, where: str) -> Selector | None:
    if data is None:
        return None
    r = _Reader(data, where)
    sel = Selector(match_labels=r.labels("matchLabels"))
    exprs = r.get("matchExpressions", []) or []
    if not isinstance(exprs, list):
        raise HullguardError(f"{where}.matchExpressions: expected a list")
    for i, e in enumerate(exprs):
        er = _Reader(e, f"{where}.matchExpressions[{i}]")
        key = er.str("key")
        op = er.str("operator", choices=("In", "NotIn", "Exists", "DoesNotExist"))
        values = er.strings("values")
        er.done()
        if op in ("In", "NotIn") and not values:
            raise HullguardError(f"{where}.matchExpressions[{i}]: operator {op} needs values")
        sel.expressions.append((key, op, values))
    r.done()
    return sel


def _read_key(text: str, base: str, where: str) -> tuple[str, bytes]:
    if "-----BEGIN" in text:
        _check_public_key(text.encode(), f"{where}: inline key")
        return "inline key", text.encode()
    path = text if os.path.isabs(text) else os.path.join(base, text)
    try:
        with open(path, "rb") as f:
            data = f.read(65536)
    except OSError as exc:
        raise HullguardError(f"{where}: cannot read public key {text}: {exc.strerror}") from None
    _check_public_key(data, f"{where}: {text}")
    return text, data


def _check_public_key(pem: bytes, where: str) -> None:
    """Refuse a key that cannot be parsed now, rather than failing every admission request later."""
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    if b"-----BEGIN PUBLIC KEY-----" not in pem:
        raise HullguardError(f"{where} is not a PEM public key")
    try:
        load_pem_public_key(pem)
    except (ValueError, TypeError) as exc:
        raise HullguardError(f"{where} is not a usable public key: {exc}") from None


def _policy(data: Any, index: int, base: str, defaults: dict[str, Any]) -> Policy:
    where = f"policies[{index}]"
    r = _Reader(data, where)
    name = r.str("name")
    if not name:
        raise HullguardError(f"{where}: every policy needs a name")
    where = f"policy {name!r}"
    r.where = where
    ptype = r.str("type", choices=POLICY_TYPES)
    p = Policy(name=name, type=ptype)
    p.mode = r.str("mode", defaults["mode"], MODES)
    p.failure_policy = r.str("failurePolicy", defaults["failurePolicy"], FAILURE_POLICIES)
    p.timeout = r.number("timeoutSeconds", defaults["timeoutSeconds"], high=600)
    p.namespaces = r.strings("namespaces")
    p.namespace_selector = _selector(r.get("namespaceSelector"), f"{where}.namespaceSelector")
    p.operations = [o.upper() for o in r.strings("operations")] or ["CREATE", "UPDATE"]
    bad = set(p.operations) - {"CREATE", "UPDATE", "DELETE", "CONNECT", "*"}
    if bad:
        raise HullguardError(f"{where}.operations: unknown operation {sorted(bad)[0]!r}")
    p.kinds = r.strings("kinds")
    p.images = r.strings("images")
    p.exclude = _exemptions(r.get("exclude"), f"{where}.exclude")
    if ptype == "allowedRegistries":
        p.registries = [x if "/" in x else f"{x}/*" for x in r.strings("registries")]
        if not p.registries:
            raise HullguardError(f"{where}: allowedRegistries needs a non-empty 'registries' list")
    elif ptype == "verifySignature":
        for k in r.strings("keys"):
            label, pem = _read_key(k, base, where)
            p.key_names.append(label)
            p.keys.append(pem)
        if not p.keys:
            raise HullguardError(f"{where}: verifySignature needs at least one key in 'keys'")
        p.attestations = r.strings("attestations")
    elif ptype == "podSecurity":
        from hullguard.detect.misconfig.pss import LEVELS, PSSVersionError, parse_version

        p.level = r.str("level", "baseline", LEVELS)
        p.warn_level = r.str("warn", "", ("", *LEVELS))
        p.audit_level = r.str("audit", "", ("", *LEVELS))
        p.version = r.str("version", "latest")
        try:
            parse_version(p.version)
        except PSSVersionError as exc:
            raise HullguardError(f"{where}.version: {exc}") from None
    elif ptype == "cel":
        p.cel_files = [f if os.path.isabs(f) else os.path.join(base, f) for f in r.strings("files")]
        if not p.cel_files:
            raise HullguardError(f"{where}: cel needs 'files' (ValidatingAdmissionPolicy YAML)")
    elif ptype == "vulnerabilities":
        p.known_exploited = r.bool("knownExploited", True)
        sev = r.str("severity", "CRITICAL")
        p.severity = None if sev.lower() in ("", "none") else Severity.parse(sev)
        if p.severity == Severity.UNKNOWN and sev.upper() != "UNKNOWN":
            raise HullguardError(f"{where}.severity: {sev!r} is not LOW, MEDIUM, HIGH, CRITICAL or none")
        p.fixable_only = r.bool("fixableOnly", True)
        rd = r.str("resultsDir", "")
        p.results_dir = rd if not rd or os.path.isabs(rd) else os.path.join(base, rd)
        p.db = r.str("db", "")
        p.timeout = r.number("timeoutSeconds", defaults["scanTimeoutSeconds"], high=600)
    r.done()
    return p


def parse_config(data: Any, base: str = ".", source: str = "<policy>") -> AdmissionConfig:
    if data is None:
        data = {}
    r = _Reader(data, source)
    cfg = AdmissionConfig(source=source)
    d = _Reader(r.get("defaults") or {}, f"{source}: defaults")
    defaults = {
        "mode": d.str("mode", "enforce", MODES),
        "failurePolicy": d.str("failurePolicy", "Fail", FAILURE_POLICIES),
        "timeoutSeconds": d.number("timeoutSeconds", 5.0, high=600),
        "scanTimeoutSeconds": d.number("scanTimeoutSeconds", 20.0, high=600),
    }
    d.done()
    cache = _Reader(r.get("cache") or {}, f"{source}: cache")
    cfg.cache_ttl = cache.number("ttlSeconds", 300.0)
    cfg.failure_ttl = cache.number("failureTTLSeconds", 30.0)
    cfg.cache_entries = int(cache.number("maxEntries", 10_000, low=1, high=10_000_000))
    cache.done()
    cfg.exemptions = _exemptions(r.get("exemptions"), f"{source}: exemptions")
    cfg.insecure_registries = r.strings("insecureRegistries")
    namespaces = r.get("namespaces") or {}
    if not isinstance(namespaces, dict):
        raise HullguardError(f"{source}: namespaces: expected a mapping of namespace -> {{labels: ...}}")
    for ns, entry in namespaces.items():
        nr = _Reader(entry or {}, f"{source}: namespaces.{ns}")
        cfg.namespaces[str(ns)] = nr.labels("labels")
        nr.done()
    policies = r.get("policies") or []
    if not isinstance(policies, list):
        raise HullguardError(f"{source}: policies: expected a list")
    names: set[str] = set()
    for i, pdata in enumerate(policies):
        p = _policy(pdata, i, base, defaults)
        if p.name in names:
            raise HullguardError(f"{source}: two policies are named {p.name!r}")
        names.add(p.name)
        cfg.policies.append(p)
    r.done()
    return cfg


def load_config(path: str) -> AdmissionConfig:
    import yaml

    raw = read_bounded(path, MAX_POLICY_FILE, "policy file")
    try:
        data = yaml.load(raw, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark else ""
        raise HullguardError(f"policy file {path} is not valid YAML{at}: {getattr(exc, 'problem', exc)}") from None
    return parse_config(data, os.path.dirname(os.path.abspath(path)), path)
