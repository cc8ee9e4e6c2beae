"""User policies as code: Kubernetes ValidatingAdmissionPolicy (admissionregistration.k8s.io/v1)
documents evaluated with CEL, so one policy file works in ``hullguard config``, in the admission
webhook and in a cluster.

Loading compiles every expression up front. A policy with an expression that does not compile is
left out with an error naming the policy and the expression; the other policies still load.
Evaluation errors are per object and follow the policy's ``failurePolicy`` (Fail: reported as a
violation; Ignore: collected separately, never a denial).

The CEL engine is ``common-expression-language`` (cel-rust). It lacks the optional-field syntax
(``obj.?field``) and the Kubernetes extension libraries; the ones policies commonly use
(quantity, url, regex find, list helpers) are provided here as functions (see ``_k8s_functions``).
``authorizer`` is always null: there is no API server to ask.
"""

from __future__ import annotations

import datetime as _dt
import ipaddress
import itertools
import os
import re
import urllib.parse
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import msgspec

from hullguard.model import HullguardError, Severity

__all__ = [
    "CelPolicy",
    "PolicyLoadError",
    "Violation",
    "build_request",
    "check_object",
    "evaluate",
    "load_policies",
    "load_policies_lenient",
    "matches",
    "resource_for_kind",
]

API_GROUP = "admissionregistration.k8s.io"
MAX_POLICY_FILE_BYTES = 4 * 1024 * 1024
# Kubernetes caps these lists at 64 entries each; an expression has no length cap there but a cost
# budget we cannot enforce inside cel-rust, so length is what bounds the work here.
MAX_LIST_ITEMS = 64
MAX_EXPRESSION_CHARS = 10_000
MAX_MESSAGE_CHARS = 1_000
# The API server refuses requests over 3 MiB, and CEL work grows with the object (a policy may
# compare every container with every other); a bigger manifest is an evaluation error instead.
MAX_OBJECT_BYTES = 3 * 1024 * 1024
SEVERITY_ANNOTATION = "hullguard.dev/severity"
TITLE_ANNOTATION = "hullguard.dev/title"
DESCRIPTION_ANNOTATION = "hullguard.dev/description"
REMEDIATION_ANNOTATION = "hullguard.dev/remediation"
ENV_VARIABLES = ("object", "oldObject", "request", "params", "namespaceObject", "variables", "authorizer")


class PolicyLoadError(HullguardError):
    """Some policies could not be loaded. ``policies`` holds the ones that could, so a caller
    that wants to carry on with them (the CLI, the webhook) still can."""

    def __init__(self, errors: list[str], policies: list[CelPolicy]) -> None:
        super().__init__(errors[0] if len(errors) == 1 else f"{errors[0]} (and {len(errors) - 1} more errors)")
        self.errors = errors
        self.policies = policies


@dataclass(frozen=True)
class Violation:
    policy: str
    message: str
    expression: str
    reason: str = "Invalid"
    error: bool = False  # the expression failed to evaluate (failurePolicy Fail), not a plain "false"
    binding: str = ""


@dataclass(frozen=True)
class _Expr:
    source: str
    program: Any = field(repr=False, compare=False)
    # The same expression with ``variables.x`` replaced by x's expression (see _inline).
    inlined: Any = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class _Validation:
    expression: _Expr
    message: str = ""
    message_expression: _Expr | None = None
    reason: str = "Invalid"


@dataclass
class _Match:
    resource_rules: list[dict[str, Any]] = field(default_factory=list)
    exclude_rules: list[dict[str, Any]] = field(default_factory=list)
    namespace_selector: dict[str, Any] | None = None
    object_selector: dict[str, Any] | None = None
    match_policy: str = "Equivalent"


@dataclass
class Binding:
    name: str
    param_ref: dict[str, Any] | None = None
    match: _Match | None = None
    actions: tuple[str, ...] = ("Deny",)


@dataclass
class CelPolicy:
    name: str
    path: str = ""
    line: int = 0
    severity: Severity = Severity.HIGH
    failure_policy: str = "Fail"
    match: _Match = field(default_factory=_Match)
    match_conditions: list[tuple[str, _Expr]] = field(default_factory=list)
    variables: list[tuple[str, _Expr]] = field(default_factory=list)
    validations: list[_Validation] = field(default_factory=list)
    audit_annotations: list[tuple[str, _Expr]] = field(default_factory=list)
    param_kind: dict[str, str] | None = None
    bindings: list[Binding] = field(default_factory=list)
    # Param resources found next to the policy (same files), for bindings' paramRef.
    param_objects: list[dict[str, Any]] = field(default_factory=list, repr=False)
    annotations: dict[str, str] = field(default_factory=dict)
    # Every expression has an inlined program: variables need no evaluation of their own.
    inlined: bool = False

    @property
    def rule_id(self) -> str:
        return f"CEL:{self.name}"

    @property
    def title(self) -> str:
        if self.annotations.get(TITLE_ANNOTATION):
            return self.annotations[TITLE_ANNOTATION]
        first = next((v.message for v in self.validations if v.message), "")
        return first or f"ValidatingAdmissionPolicy {self.name}"


# --------------------------------------------------------------------------------------------------
# Kubernetes CEL libraries the engine lacks

_SUFFIXES = {
    "": Fraction(1), "n": Fraction(1, 10**9), "u": Fraction(1, 10**6), "m": Fraction(1, 1000),
    "k": Fraction(10**3), "M": Fraction(10**6), "G": Fraction(10**9), "T": Fraction(10**12),
    "P": Fraction(10**15), "E": Fraction(10**18),
    "Ki": Fraction(2**10), "Mi": Fraction(2**20), "Gi": Fraction(2**30), "Ti": Fraction(2**40),
    "Pi": Fraction(2**50), "Ei": Fraction(2**60),
}
_QUANTITY = re.compile(r"^([+-]?(?:\d+\.?\d*|\.\d+))(?:([eE][+-]?\d{1,3})|(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE])?)$")
_QKEY = "__hullguard_quantity__"
_UKEY = "__hullguard_url__"


def parse_quantity(text: str) -> Fraction:
    """A Kubernetes resource.Quantity (``500m``, ``1.5Gi``, ``1e3``) as an exact fraction."""
    if not isinstance(text, str) or len(text) > 64:
        raise ValueError(f"invalid quantity {text!r}")
    m = _QUANTITY.match(text.strip())
    if not m:
        raise ValueError(f"invalid quantity {text!r}")
    number = Fraction(m.group(1))
    if m.group(2):
        return number * Fraction(10) ** int(m.group(2)[1:])
    return number * _SUFFIXES[m.group(3) or ""]


def _q(value: Fraction) -> dict[str, str]:
    # Quantities travel through CEL as one-key maps holding the normalised fraction, so that
    # quantity("1Gi") == quantity("1024Mi") holds with CEL's own map equality.
    return {_QKEY: f"{value.numerator}/{value.denominator}"}


def _qv(q: Any) -> Fraction:
    if isinstance(q, dict) and _QKEY in q:
        return Fraction(q[_QKEY])
    if isinstance(q, int) and not isinstance(q, bool):
        return Fraction(q)
    raise ValueError("not a quantity")


def _url(text: Any) -> dict[str, str]:
    if not isinstance(text, str) or not _is_url(text):
        raise ValueError(f"invalid url {text!r}")
    return {_UKEY: text}


def _is_url(text: Any) -> bool:
    if not isinstance(text, str) or len(text) > 8192:
        return False
    try:
        parts = urllib.parse.urlsplit(text)
        _ = parts.port
    except ValueError:
        return False
    return bool(parts.scheme) or text.startswith("/")


def _u(url: Any) -> urllib.parse.SplitResult:
    if not (isinstance(url, dict) and _UKEY in url):
        raise ValueError("not a url")
    return urllib.parse.urlsplit(url[_UKEY])


def _host(url: Any) -> str:
    p = _u(url)
    host = p.hostname or ""
    return f"[{host}]" if ":" in host else host + (f":{p.port}" if p.port is not None else "")


def _find(s: str, pattern: str) -> str:
    m = re.search(pattern, s)
    return m.group(0) if m else ""


def _find_all(s: str, pattern: str, limit: int = -1) -> list[str]:
    out = [m.group(0) for m in re.finditer(pattern, s)]
    return out if limit < 0 else out[:limit]


def _index_of(x: Any, item: Any, *rest: Any) -> int:
    if isinstance(x, str):
        return x.find(item, *rest)
    return x.index(item) if item in x else -1


def _last_index_of(x: Any, item: Any, *rest: Any) -> int:
    if isinstance(x, str):
        return x.rfind(item, *rest) if not rest else x.rfind(item, 0, rest[0] + len(item))
    return len(x) - 1 - x[::-1].index(item) if item in x else -1


def _is_sorted(x: list[Any]) -> bool:
    return all(a <= b for a, b in itertools.pairwise(x))


def _bounded_range(n: int) -> list[int]:
    if not isinstance(n, int) or n < 0 or n > 100_000:
        raise ValueError("lists.range: argument must be between 0 and 100000")
    return list(range(n))


def _ip(text: str) -> str:
    return str(ipaddress.ip_address(text))


def _is_ip(text: Any) -> bool:
    try:
        ipaddress.ip_address(text)
        return True
    except ValueError:
        return False


def _is_cidr(text: Any) -> bool:
    try:
        ipaddress.ip_network(text, strict=False)
        return True
    except (ValueError, TypeError):
        return False


def _k8s_functions() -> dict[str, Callable[..., Any]]:
    return {
        # quantity library
        "quantity": lambda s: _q(parse_quantity(s)),
        "isQuantity": lambda s: _safe_bool(parse_quantity, s),
        "isGreaterThan": lambda a, b: _qv(a) > _qv(b),
        "isLessThan": lambda a, b: _qv(a) < _qv(b),
        "compareTo": lambda a, b: (_qv(a) > _qv(b)) - (_qv(a) < _qv(b)),
        "add": lambda a, b: _q(_qv(a) + _qv(b)),
        "sub": lambda a, b: _q(_qv(a) - _qv(b)),
        "asInteger": _as_integer,
        "asApproximateFloat": lambda q: float(_qv(q)),
        "isInteger": lambda q: _qv(q).denominator == 1 and abs(_qv(q)) < 2**63,
        "sign": lambda q: (_qv(q) > 0) - (_qv(q) < 0),
        # url library
        "url": _url,
        "isURL": _is_url,
        "getScheme": lambda u: _u(u).scheme,
        "getHost": _host,
        "getHostname": lambda u: _u(u).hostname or "",
        "getPort": lambda u: str(_u(u).port) if _u(u).port is not None else "",
        "getEscapedPath": lambda u: _u(u).path,
        "getQuery": lambda u: {k: v for k, v in urllib.parse.parse_qs(_u(u).query).items()},
        # regex library
        "find": _find,
        "findAll": _find_all,
        # lists library (indexOf/lastIndexOf serve strings and lists alike)
        "isSorted": _is_sorted,
        "indexOf": _index_of,
        "lastIndexOf": _last_index_of,
        "lists.range": _bounded_range,
        # a subset of the IP/CIDR library: addresses and networks as strings
        "isIP": _is_ip,
        "ip": _ip,
        "isCIDR": _is_cidr,
        "cidr": lambda s: str(ipaddress.ip_network(s, strict=False)),
        "containsIP": lambda net, addr: ipaddress.ip_address(addr) in ipaddress.ip_network(net, strict=False),
        **dict.fromkeys(_AUTHORIZER_FUNCTIONS, _no_authorizer),
    }


def _no_authorizer(*_args: Any) -> Any:
    raise ValueError("authorizer checks need a Kubernetes API server; hullguard has none (authorizer is null)")


# The authorizer library's member functions: known, so policies using them load, and failing
# when run, so such validations follow the policy's failurePolicy.
_AUTHORIZER_FUNCTIONS = ("path", "group", "resource", "subresource", "namespace", "name", "check", "allowed",
                         "reason", "errored", "error", "serviceAccount")


def _as_integer(q: Any) -> int:
    v = _qv(q)
    if v.denominator != 1 or abs(v) >= 2**63:
        raise ValueError("quantity is not an integer")
    return int(v)


def _safe_bool(fn: Callable[[Any], Any], arg: Any) -> bool:
    try:
        fn(arg)
        return True
    except (ValueError, TypeError, ZeroDivisionError):
        return False


# Functions cel-rust knows natively (operators are checked separately).
_NATIVE = {
    "size", "contains", "startsWith", "endsWith", "matches", "int", "uint", "double", "string", "bytes",
    "timestamp", "duration", "dyn", "type", "getFullYear", "getMonth", "getDayOfYear", "getDayOfMonth",
    "getDate", "getDayOfWeek", "getHours", "getMinutes", "getSeconds", "getMilliseconds", "has", "all",
    "exists", "exists_one", "map", "filter", "optional.of", "optional.none", "optional.ofNonZeroValue",
    "orValue", "hasValue", "value", "or",
}
_env_functions: dict[str, Callable[..., Any]] | None = None
_quiet_engine_log: list[bool] = []


def _functions() -> dict[str, Callable[..., Any]]:
    global _env_functions
    if _env_functions is None:
        import cel
        from cel.stdlib import add_stdlib_to_context

        probe = cel.Context()
        add_stdlib_to_context(probe)
        funcs = dict(probe.functions)
        funcs.update(_k8s_functions())
        _env_functions = funcs
    return _env_functions


def _known_names() -> set[str]:
    # ``lists.range(3)`` is reported as a call of ``range`` on ``lists``: namespaced functions are
    # known by their last part too.
    names = set(_functions())
    return names | {n.rsplit(".", 1)[-1] for n in names}


def _new_context() -> Any:
    import cel

    if not _quiet_engine_log:
        # The engine also logs every failing Python function at WARNING; with no handler that
        # reaches stderr through logging's last resort. The error is reported per object already.
        import logging

        engine_log = logging.getLogger("cel")
        engine_log.addHandler(logging.NullHandler())
        engine_log.propagate = False
        _quiet_engine_log.append(True)

    return cel.Context(functions=_functions())


# --------------------------------------------------------------------------------------------------
# loading

def _one_line(text: str, limit: int = 300) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _compile_error(exc: Exception) -> str:
    # cel-rust repeats the whole expression and a caret line; keep only the first message.
    msg = str(exc)
    m = re.search(r"ERROR: <input>:(\d+):(\d+): ([^\n|]*)", msg)
    return f"{m.group(3).strip()} at {m.group(1)}:{m.group(2)}" if m else _one_line(msg.splitlines()[0] if msg else "")


def _compile(source: Any, where: str) -> _Expr:
    import cel

    if not isinstance(source, str) or not source.strip():
        raise ValueError(f"{where}: expression must be a non-empty string")
    shown = _one_line(source, 120)
    if len(source) > MAX_EXPRESSION_CHARS:
        raise ValueError(f"{where}: expression longer than {MAX_EXPRESSION_CHARS} characters ({shown!r})")
    try:
        program = cel.compile(_rewrite_bind(source))
    except (ValueError, RuntimeError, TypeError, OverflowError, RecursionError) as exc:
        raise ValueError(f"{where}: expression {shown!r} does not compile: {_compile_error(exc)}") from None
    known = _known_names()
    for fn in program.functions():
        if fn[:1] in "_!@-" or fn in _NATIVE or fn in known:
            continue
        raise ValueError(f"{where}: expression {shown!r} does not compile: undeclared function {fn!r}")
    return _Expr(source, program)


def _d(x: Any) -> dict[str, Any]:
    return x if isinstance(x, dict) else {}


_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
MAX_INLINED_CHARS = 100_000


def _skip_string(src: str, i: int, raw: bool) -> int:
    """Index just past the string literal whose opening quote is at ``i``."""
    q = src[i]
    triple = src.startswith(q * 3, i)
    close = q * 3 if triple else q
    j = i + len(close)
    while j < len(src):
        if not raw and src[j] == "\\":
            j += 2
            continue
        if src.startswith(close, j):
            return j + len(close)
        if not triple and src[j] == "\n":
            break
        j += 1
    return len(src)


def _variable_refs(src: str) -> list[tuple[int, int, str]]:
    """(start, end, name) of every ``variables.name`` in ``src``, outside string literals and
    comments, and not itself a field (``x.variables.y``)."""
    refs = []
    i, n = 0, len(src)
    while i < n:
        ch = src[i]
        if ch in "'\"":
            i = _skip_string(src, i, raw=False)
        elif src.startswith("//", i):
            end = src.find("\n", i)
            i = n if end < 0 else end
        elif ch.isalpha() or ch == "_":
            m = _IDENT.match(src, i)
            assert m is not None
            word, end = m.group(0), m.end()
            if word.lower() in ("r", "b", "rb", "br") and end < n and src[end] in "'\"":
                i = _skip_string(src, end, raw="r" in word.lower())
                continue
            before = src[:i].rstrip()
            if word == "variables" and not before.endswith("."):
                rest = re.match(r"\s*\.\s*([A-Za-z_][A-Za-z0-9_]*)", src[end:])
                if rest:
                    refs.append((i, end + rest.end(), rest.group(1)))
                    end += rest.end()
            i = end
        elif ch.isdigit():
            m = re.match(r"[0-9A-Za-z_.]+", src[i:])
            i += m.end() if m else 1
        else:
            i += 1
    return refs


def _scan_args(src: str, i: int) -> tuple[list[str], int] | None:
    """The top-level comma-separated arguments of the call whose '(' is at ``i``, and the index
    after its ')'; None when unbalanced."""
    args, depth, start, j = [], 0, i + 1, i + 1
    while j < len(src):
        ch = src[j]
        if ch in "'\"":
            j = _skip_string(src, j, raw=j > 0 and src[j - 1] in "rR")
            continue
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            if depth == 0:
                args.append(src[start:j])
                return args, j + 1
            depth -= 1
        elif ch == "," and depth == 0:
            args.append(src[start:j])
            start = j + 1
        j += 1
    return None


_BIND = re.compile(r"(?<![.\w])cel\s*\.\s*bind\s*\(")


def _rewrite_bind(src: str, depth: int = 0) -> str:
    """``cel.bind(x, init, body)`` (a Kubernetes CEL macro cel-rust lacks) as the comprehension
    ``[init].map(x, body)[0]``, which binds x to init once in the same way."""
    if "bind" not in src or depth > 20:
        return src
    out, last = [], 0
    for m in _BIND.finditer(src):
        if m.start() < last or _inside_string(src, m.start()):
            continue
        parsed = _scan_args(src, m.end() - 1)
        if parsed is None or len(parsed[0]) != 3 or not _IDENT.fullmatch(parsed[0][0].strip()):
            continue
        (var, init, body), end = parsed
        out.append(src[last:m.start()])
        out.append(f"[{_rewrite_bind(init, depth + 1)}].map({var.strip()}, {_rewrite_bind(body, depth + 1)})[0]")
        last = end
    out.append(src[last:])
    return "".join(out)


def _inside_string(src: str, pos: int) -> bool:
    i = 0
    while i < pos:
        ch = src[i]
        if ch in "'\"":
            end = _skip_string(src, i, raw=i > 0 and src[i - 1] in "rR")
            if end > pos:
                return True
            i = end
        elif src.startswith("//", i):
            end = src.find("\n", i)
            if end < 0 or end > pos:
                return True
            i = end
        else:
            i += 1
    return False


def _inline(src: str, texts: dict[str, str], declared: set[str], where: str) -> str:
    """``src`` with each ``variables.x`` replaced by x's (already inlined) expression, so one
    context serves every policy and variables cost no conversion between Python and CEL. Raises
    ValueError for a variable that is not declared (before this point)."""
    out, last = [], 0
    for start, end, name in _variable_refs(src):
        if name not in declared:
            raise ValueError(f"{where}: expression {_one_line(src, 120)!r} does not compile: "
                             f"undeclared variable {name!r}")
        out.append(src[last:start])
        # The newline ends a // comment that the variable's own expression may close with.
        out.append(f"({texts[name]}\n)" if name in texts else src[start:end])
        last = end
    out.append(src[last:])
    return "".join(out)


def _list(spec: dict[str, Any], key: str, where: str) -> list[Any]:
    value = spec.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise ValueError(f"{where}: spec.{key} must be a list")
    if len(value) > MAX_LIST_ITEMS:
        raise ValueError(f"{where}: spec.{key} has {len(value)} entries (at most {MAX_LIST_ITEMS})")
    return value


def _parse_match(raw: Any, where: str, *, required: bool) -> _Match:
    if raw is None and not required:
        return _Match()
    if not isinstance(raw, dict):
        raise ValueError(f"{where}: spec.matchConstraints is required and must be a mapping")
    rules = raw.get("resourceRules") or []
    excl = raw.get("excludeResourceRules") or []
    if not isinstance(rules, list) or not isinstance(excl, list):
        raise ValueError(f"{where}: resourceRules and excludeResourceRules must be lists")
    for r in [*rules, *excl]:
        if not isinstance(r, dict):
            raise ValueError(f"{where}: each resource rule must be a mapping")
    if required and not rules:
        raise ValueError(f"{where}: spec.matchConstraints.resourceRules is required")
    policy = raw.get("matchPolicy") or "Equivalent"
    if policy not in ("Equivalent", "Exact"):
        raise ValueError(f"{where}: matchPolicy must be Equivalent or Exact, not {policy!r}")
    for key in ("namespaceSelector", "objectSelector"):
        if raw.get(key) is not None and not isinstance(raw.get(key), dict):
            raise ValueError(f"{where}: {key} must be a label selector mapping")
    return _Match(resource_rules=rules, exclude_rules=excl, namespace_selector=raw.get("namespaceSelector"),
                  object_selector=raw.get("objectSelector"), match_policy=policy)


def _parse_policy(doc: dict[str, Any], path: str, line: int) -> CelPolicy:
    meta = _d(doc.get("metadata"))
    name = meta.get("name")
    if not isinstance(name, str) or not name:
        raise ValueError(f"{path}:{line}: ValidatingAdmissionPolicy without metadata.name")
    where = f"{path}:{line}: policy {name!r}"
    spec = doc.get("spec")
    if not isinstance(spec, dict):
        raise ValueError(f"{where}: spec must be a mapping")
    annotations = {str(k): str(v) for k, v in _d(meta.get("annotations")).items()}
    severity = Severity.HIGH
    if SEVERITY_ANNOTATION in annotations:
        severity = Severity.parse(annotations[SEVERITY_ANNOTATION])
        if severity is Severity.UNKNOWN:
            raise ValueError(f"{where}: annotation {SEVERITY_ANNOTATION} must be LOW, MEDIUM, HIGH or CRITICAL")
    failure = spec.get("failurePolicy") or "Fail"
    if failure not in ("Fail", "Ignore"):
        raise ValueError(f"{where}: failurePolicy must be Fail or Ignore, not {failure!r}")
    policy = CelPolicy(name=name, path=path, line=line, severity=severity, failure_policy=failure,
                       annotations=annotations, match=_parse_match(spec.get("matchConstraints"), where, required=True))
    pk = spec.get("paramKind")
    if pk is not None:
        if not isinstance(pk, dict) or not isinstance(pk.get("kind"), str):
            raise ValueError(f"{where}: paramKind must have apiVersion and kind")
        policy.param_kind = {"apiVersion": str(pk.get("apiVersion", "")), "kind": pk["kind"]}
    seen: set[str] = set()
    texts: dict[str, str] = {}
    for i, v in enumerate(_list(spec, "variables", where)):
        v = _d(v)
        vname = v.get("name")
        if not isinstance(vname, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", vname) or vname in seen:
            raise ValueError(f"{where}: variables[{i}] needs a unique identifier as name")
        vwhere = f"{where} variables[{i}] ({vname})"
        expr = _compile(v.get("expression"), vwhere)
        texts[vname] = _inline(expr.source, texts, seen, vwhere)
        seen.add(vname)
        policy.variables.append((vname, expr))
    for i, c in enumerate(_list(spec, "matchConditions", where)):
        c = _d(c)
        cname = str(c.get("name") or f"matchConditions[{i}]")
        policy.match_conditions.append((cname, _compile(c.get("expression"), f"{where} matchConditions[{i}]")))
    for i, v in enumerate(_list(spec, "validations", where)):
        v = _d(v)
        msg = v.get("message")
        msg = "" if msg is None else msg
        if not isinstance(msg, str):
            # YAML reads an unquoted `message: no` as false; say so rather than drop it.
            raise ValueError(f"{where}: validations[{i}].message must be a string (quote it)")
        reason = v.get("reason") or "Invalid"
        if reason not in ("Unauthorized", "Forbidden", "Invalid", "RequestEntityTooLarge"):
            raise ValueError(f"{where}: validations[{i}].reason {reason!r} is not one Kubernetes allows")
        mexpr = v.get("messageExpression")
        policy.validations.append(_Validation(
            expression=_compile(v.get("expression"), f"{where} validations[{i}]"),
            message=msg,
            message_expression=_compile(mexpr, f"{where} validations[{i}].messageExpression") if mexpr else None,
            reason=reason,
        ))
    for i, a in enumerate(_list(spec, "auditAnnotations", where)):
        a = _d(a)
        policy.audit_annotations.append((str(a.get("key", "")),
                                         _compile(a.get("valueExpression"), f"{where} auditAnnotations[{i}]")))
    if not policy.validations and not policy.audit_annotations:
        raise ValueError(f"{where}: spec.validations is empty; the policy would check nothing")
    policy.inlined = _inline_all(policy, texts, where)
    return policy


def _inline_all(policy: CelPolicy, texts: dict[str, str], where: str) -> bool:
    """Attach inlined programs to every expression; False (evaluate variables one by one
    instead) when some expression cannot be inlined: ``has(variables.x)``, ``variables['x']``,
    or an expansion too large for the parser."""
    import cel

    exprs = [e for _, e in policy.match_conditions] + [e for _, e in policy.audit_annotations]
    for v in policy.validations:
        exprs.append(v.expression)
        if v.message_expression is not None:
            exprs.append(v.message_expression)
    programs = []
    ok = True
    for e in exprs:
        text = _inline(e.source, texts, set(texts), where)
        if text == e.source:
            programs.append(e.program)
            if "variables" in e.program.variables():
                ok = False
            continue
        if len(text) > MAX_INLINED_CHARS:
            ok = False
            programs.append(None)
            continue
        try:
            program = cel.compile(_rewrite_bind(text))
            ok = ok and "variables" not in program.variables()
        except (ValueError, RuntimeError, TypeError, OverflowError, RecursionError):
            program, ok = None, False
        programs.append(program)
    for e, program in zip(exprs, programs, strict=True):
        object.__setattr__(e, "inlined", program)
    return ok


def _parse_binding(doc: dict[str, Any], where: str) -> tuple[str, Binding]:
    meta = _d(doc.get("metadata"))
    spec = doc.get("spec")
    if not isinstance(spec, dict) or not isinstance(spec.get("policyName"), str):
        raise ValueError(f"{where}: ValidatingAdmissionPolicyBinding needs spec.policyName")
    ref = spec.get("paramRef")
    if ref is not None and not isinstance(ref, dict):
        raise ValueError(f"{where}: paramRef must be a mapping")
    actions = spec.get("validationActions") or ["Deny"]
    if not isinstance(actions, list) or not all(a in ("Deny", "Warn", "Audit") for a in actions):
        raise ValueError(f"{where}: validationActions must be a list of Deny, Warn, Audit")
    match = _parse_match(spec.get("matchResources"), where, required=False) if spec.get("matchResources") else None
    return spec["policyName"], Binding(name=str(meta.get("name") or ""), param_ref=ref, match=match,
                                       actions=tuple(actions))


def _policy_files(paths: Iterable[str | Path]) -> Iterator[tuple[str, str | None]]:
    """(file, error) for every policy file under ``paths``; folders give their YAML/JSON files."""
    for p in paths:
        p = str(p)
        if os.path.isdir(p):
            for root, dirs, files in os.walk(p):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                for f in sorted(files):
                    if f.lower().endswith((".yaml", ".yml", ".json")):
                        yield os.path.join(root, f), None
        elif os.path.isfile(p):
            yield p, None
        else:
            yield p, f"{p}: no such policy file or directory"


def load_policies_lenient(paths: Iterable[str | Path]) -> tuple[list[CelPolicy], list[str]]:
    """Every ValidatingAdmissionPolicy under ``paths``, and one error line per document or file
    that could not be used. Bindings and param objects in the same files are attached to their
    policies."""
    from hullguard.detect.misconfig.kubernetes import ManifestResult, load_manifests

    policies: list[CelPolicy] = []
    errors: list[str] = []
    bindings: list[tuple[str, Binding, str]] = []
    others: list[dict[str, Any]] = []
    for path, err in _policy_files(paths):
        if err:
            errors.append(err)
            continue
        try:
            with open(path, "rb") as fh:
                data = fh.read(MAX_POLICY_FILE_BYTES + 1)
        except OSError as exc:
            errors.append(f"{path}: {exc.strerror or exc}")
            continue
        if len(data) > MAX_POLICY_FILE_BYTES:
            errors.append(f"{path}: larger than {MAX_POLICY_FILE_BYTES} bytes; not read")
            continue
        result = ManifestResult()
        objs = load_manifests(data, path, result)
        errors.extend(result.errors)
        found = False
        for o in objs:
            kind, api = o.kind, str(o.doc.get("apiVersion", ""))
            where = f"{path}:{o.line}"
            if kind in ("ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"):
                found = True
                if not api.startswith(API_GROUP + "/"):
                    errors.append(f"{where}: {kind} must have apiVersion {API_GROUP}/v1, not {api!r}")
                    continue
                try:
                    if kind == "ValidatingAdmissionPolicy":
                        policies.append(_parse_policy(o.doc, path, o.line))
                    else:
                        name, b = _parse_binding(o.doc, where)
                        bindings.append((name, b, where))
                except ValueError as exc:
                    errors.append(str(exc))
            else:
                others.append(o.doc)
        if not found and not result.errors:
            errors.append(f"{path}: no ValidatingAdmissionPolicy (apiVersion {API_GROUP}/v1) in this file")
    names: dict[str, CelPolicy] = {}
    for pol in policies:
        if pol.name in names:
            errors.append(f"{pol.path}:{pol.line}: policy {pol.name!r} is defined twice; the first one is used")
            continue
        names[pol.name] = pol
    for name, b, where in bindings:
        if name not in names:
            errors.append(f"{where}: binding {b.name!r} refers to unknown policy {name!r}")
            continue
        names[name].bindings.append(b)
    for pol in names.values():
        if pol.param_kind:
            pol.param_objects = [d for d in others if d.get("kind") == pol.param_kind["kind"]]
    return list(names.values()), errors


def load_policies(paths: list[str | Path]) -> list[CelPolicy]:
    """Load and compile every policy under ``paths``. Raises PolicyLoadError (a HullguardError,
    whose ``policies`` still holds the good ones) naming the policy and the expression when any
    expression does not compile or a document is not a usable policy."""
    policies, errors = load_policies_lenient(paths)
    if errors:
        raise PolicyLoadError(errors, policies)
    return policies


# --------------------------------------------------------------------------------------------------
# matching

_CLUSTER_SCOPED = {
    "Namespace", "Node", "PersistentVolume", "ClusterRole", "ClusterRoleBinding", "StorageClass",
    "CustomResourceDefinition", "PriorityClass", "IngressClass", "ValidatingWebhookConfiguration",
    "MutatingWebhookConfiguration", "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding",
    "APIService", "RuntimeClass", "CSIDriver", "CSINode", "VolumeAttachment", "CertificateSigningRequest",
    "PodSecurityPolicy",
}
_IRREGULAR = {"Endpoints": "endpoints", "PodMetrics": "pods", "NodeMetrics": "nodes"}
# Resources served under more than one group; "Equivalent" matching treats them as one.
_EQUIVALENT_GROUPS = {
    "deployments": {"apps", "extensions"}, "daemonsets": {"apps", "extensions"},
    "replicasets": {"apps", "extensions"}, "networkpolicies": {"networking.k8s.io", "extensions"},
    "ingresses": {"networking.k8s.io", "extensions"}, "cronjobs": {"batch"},
}


def resource_for_kind(kind: str) -> str:
    """The plural resource name of a kind: Pod -> pods, NetworkPolicy -> networkpolicies."""
    if kind in _IRREGULAR:
        return _IRREGULAR[kind]
    low = kind.lower()
    if low.endswith(("s", "x", "z", "ch", "sh")):
        return low + "es"
    if low.endswith("y") and len(low) > 1 and low[-2] not in "aeiou":
        return low[:-1] + "ies"
    return low + "s"


def _gv(api_version: str) -> tuple[str, str]:
    group, _, version = api_version.rpartition("/")
    return group, version


def build_request(obj: dict[str, Any], *, operation: str = "CREATE", old_object: dict[str, Any] | None = None,
                  username: str = "hullguard") -> dict[str, Any]:
    """An AdmissionReview ``request`` for ``obj`` as the API server would send it. Namespaced
    objects without a namespace land in ``default``, as ``kubectl apply`` would put them."""
    kind = str(obj.get("kind", ""))
    group, version = _gv(str(obj.get("apiVersion", "")))
    meta = _d(obj.get("metadata"))
    namespace = "" if kind in _CLUSTER_SCOPED else str(meta.get("namespace") or "default")
    gvk = {"group": group, "version": version, "kind": kind}
    gvr = {"group": group, "version": version, "resource": resource_for_kind(kind)}
    return {
        "uid": "00000000-0000-0000-0000-000000000000", "kind": gvk, "resource": gvr,
        "requestKind": gvk, "requestResource": gvr, "name": str(meta.get("name") or ""),
        "namespace": namespace, "operation": operation,
        "userInfo": {"username": username, "groups": ["system:authenticated"]},
        "object": obj if operation != "DELETE" else None, "oldObject": old_object, "dryRun": True, "options": None,
    }


def _in(value: str, allowed: Any) -> bool:
    return isinstance(allowed, list) and ("*" in allowed or value in allowed)


def _resource_matches(allowed: Any, resource: str, sub: str) -> bool:
    if not isinstance(allowed, list):
        return False
    full = f"{resource}/{sub}" if sub else resource
    for a in allowed:
        if not isinstance(a, str):
            continue
        if a == "*/*" or a == full or (a == "*" and not sub):
            return True
        if "/" in a:
            r, s = a.split("/", 1)
            if sub and (r in ("*", resource)) and (s in ("*", sub)):
                return True
    return False


def _rule_matches(rule: dict[str, Any], request: dict[str, Any], match_policy: str) -> bool:
    res = _d(request.get("resource"))
    if not res.get("resource"):
        # A hand-built request with only ``kind``: derive the resource as the API server would.
        kind = _d(request.get("kind"))
        res = {**kind, "resource": resource_for_kind(str(kind.get("kind", "")))}
    group, version, resource = str(res.get("group", "")), str(res.get("version", "")), str(res.get("resource", ""))
    sub = str(request.get("subResource") or "")
    if not _in(str(request.get("operation", "")), rule.get("operations") or ["*"]):
        return False
    if not _resource_matches(rule.get("resources"), resource, sub):
        return False
    groups = rule.get("apiGroups") if rule.get("apiGroups") is not None else ["*"]
    versions = rule.get("apiVersions") if rule.get("apiVersions") is not None else ["*"]
    if match_policy == "Equivalent":
        equivalent = _EQUIVALENT_GROUPS.get(resource, {group}) | {group}
        if not any(_in(g, groups) for g in equivalent):
            return False
    elif not (_in(group, groups) and _in(version, versions)):
        return False
    names = rule.get("resourceNames")
    if names and request.get("name") not in names:
        return False
    scope = rule.get("scope") or "*"
    namespaced = bool(request.get("namespace"))
    return scope == "*" or (scope == "Namespaced") == namespaced


def selector_matches(selector: dict[str, Any] | None, labels: Any) -> bool:
    """A metav1.LabelSelector; an empty or missing selector matches everything."""
    if not selector:
        return True
    labels = labels if isinstance(labels, dict) else {}
    for k, v in _d(selector.get("matchLabels")).items():
        if k not in labels or str(labels[k]) != str(v):
            return False
    for expr in selector.get("matchExpressions") or []:
        expr = _d(expr)
        key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
        values = [str(v) for v in values] if isinstance(values, list) else []
        if op == "In" and not (key in labels and str(labels[key]) in values):
            return False
        if op == "NotIn" and key in labels and str(labels[key]) in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
        if op not in ("In", "NotIn", "Exists", "DoesNotExist"):
            return False
    return True


def _labels(obj: Any) -> dict[str, Any]:
    return _d(_d(_d(obj).get("metadata")).get("labels"))


def _match_resources(m: _Match, request: dict[str, Any], namespace_object: dict[str, Any] | None) -> bool:
    if m.resource_rules and not any(_rule_matches(r, request, m.match_policy) for r in m.resource_rules):
        return False
    if any(_rule_matches(r, request, m.match_policy) for r in m.exclude_rules):
        return False
    if m.namespace_selector:
        kind = str(_d(request.get("kind")).get("kind", ""))
        if kind == "Namespace":
            if not selector_matches(m.namespace_selector, _labels(request.get("object") or request.get("oldObject"))):
                return False
        # Without the Namespace object its labels are unknown; an empty label set is the honest
        # stand-in (a NotIn selector matches, an In selector does not).
        elif request.get("namespace") and not selector_matches(m.namespace_selector, _labels(namespace_object)):
            return False
    if m.object_selector:
        candidates = [o for o in (request.get("object"), request.get("oldObject")) if o]
        if not any(selector_matches(m.object_selector, _labels(o)) for o in candidates):
            return False
    return True


def matches(policy: CelPolicy, request: dict[str, Any], *, namespace_object: dict[str, Any] | None = None) -> bool:
    """Whether ``policy.spec.matchConstraints`` select this AdmissionReview request (resource
    rules, exclusions, namespace and object selectors). matchConditions are CEL and are checked
    by ``evaluate``."""
    return _match_resources(policy.match, request, namespace_object)


# --------------------------------------------------------------------------------------------------
# evaluation

def _plain(value: Any, depth: int = 0) -> Any:
    # Manifests read as YAML may hold dates and non-string keys; the API server would have turned
    # them into JSON strings, and CEL should see what the cluster sees.
    if depth > 300:
        raise ValueError("object nested too deeply")
    if isinstance(value, dict):
        return {str(k) if not isinstance(k, str) else k: _plain(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v, depth + 1) for v in value]
    if isinstance(value, _dt.datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, _dt.date):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value


def _run(expr: _Expr, ctx: Any, inlined: bool = False) -> Any:
    try:
        return (expr.inlined if inlined else expr.program).execute(ctx)
    except (ValueError, TypeError, RuntimeError, KeyError, IndexError, OverflowError, ZeroDivisionError,
            RecursionError, MemoryError) as exc:
        text = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
        prefix = "no such key: " if isinstance(exc, KeyError) else ""
        m = re.search(r"Function '([^']+)' error: Python function call failed: \w+: (.*)$", text, re.S)
        if m:
            detail = m.group(2).split(". Check function arguments")[0]
            raise _EvalError(_one_line(f"{m.group(1)}(): {detail}", 200)) from None
        raise _EvalError(_one_line(f"{prefix}{text}".split(". ")[0], 200)) from None


class _EvalError(Exception):
    pass


class _Env:
    """One CEL context per admitted object, shared by every policy that checks it.

    Building a context converts the object and wraps the functions, which costs far more than
    running an expression; ``variables`` and ``params`` change per policy and binding, so they are
    served through the variable resolver, which leaves the built context intact."""

    def __init__(self, obj: Any, request: Any, old_object: Any, namespace_object: Any) -> None:
        self.error = ""
        self.per_policy: dict[str, Any] = {"variables": {}, "params": None}
        self.ctx = _new_context()
        try:
            plain_obj, plain_old = _plain(obj), _plain(old_object)
            for o in (plain_obj, plain_old):
                if o is not None and len(msgspec.json.encode(o)) > MAX_OBJECT_BYTES:
                    raise ValueError(f"larger than {MAX_OBJECT_BYTES} bytes as JSON, the API server's limit")
            # As in Kubernetes, `request` leaves out uid, object and oldObject (those are variables
            # of their own), which also spares converting the object twice.
            req = {k: _plain(v) for k, v in (request if isinstance(request, dict) else {}).items()
                   if k not in ("uid", "object", "oldObject")}
            values = {"object": plain_obj, "oldObject": plain_old, "request": req,
                      "namespaceObject": _plain(namespace_object), "authorizer": None}
            for name, value in values.items():
                self.ctx.add_variable(name, value)
        except (ValueError, TypeError, RecursionError, OverflowError, msgspec.EncodeError) as exc:
            self.error = _one_line(f"object cannot be evaluated: {exc}", 200)
        # Fallbacks for when the resolver returns None (CEL null).
        self.ctx.add_variable("params", None)
        self.ctx.add_variable("variables", {})
        self.ctx.set_variable_resolver(self.per_policy.get)

    def use(self, params: Any) -> None:
        self.per_policy["variables"] = {}
        self.per_policy["params"] = _plain(params)


def evaluate(policy: CelPolicy, obj: dict[str, Any] | None, *, request: dict[str, Any],
             old_object: dict[str, Any] | None = None, namespace_object: dict[str, Any] | None = None,
             params: dict[str, Any] | None = None, binding: str = "",
             errors: list[Violation] | None = None, _env: _Env | None = None) -> list[Violation]:
    """Violations of ``policy`` for one object. matchConditions run first (all must be true for
    the validations to run). With failurePolicy Fail an expression that errors is a violation
    (``error=True``); with Ignore it is appended to ``errors`` when given and otherwise dropped."""
    out: list[Violation] = []

    def failed(src: str, detail: str) -> None:
        v = Violation(policy=policy.name, expression=src, reason="InternalError", error=True, binding=binding,
                      message=f"expression '{_one_line(src, 200)}' resulted in error: {detail}")
        (out if policy.failure_policy == "Fail" else errors if errors is not None else []).append(v)

    env = _env or _Env(obj, request, old_object, namespace_object)
    if env.error:
        failed("object", env.error)
        return out
    try:
        env.use(params)
    except (ValueError, RecursionError) as exc:
        failed("params", str(exc))
        return out
    ctx = env.ctx
    fast = policy.inlined
    for name, cond in policy.match_conditions:
        try:
            ok = _run(cond, ctx, fast)
        except _EvalError as exc:
            failed(cond.source, f"{exc} (matchCondition {name})")
            return out
        if ok is not True:
            if not isinstance(ok, bool):
                failed(cond.source, f"matchCondition {name} returned {type(ok).__name__}, not bool")
            return out
    if policy.variables and not fast:
        # Evaluated in order, each seeing the earlier ones. One that fails is left out, so an
        # expression using it fails with "no such key" and is reported under failurePolicy.
        values: dict[str, Any] = {}
        for name, expr in policy.variables:
            try:
                values[name] = _run(expr, ctx)
            except _EvalError:
                continue
            env.per_policy["variables"] = dict(values)
    for v in policy.validations:
        try:
            ok = _run(v.expression, ctx, fast)
        except _EvalError as exc:
            failed(v.expression.source, str(exc))
            continue
        if ok is True:
            continue
        if not isinstance(ok, bool):
            failed(v.expression.source, f"returned {type(ok).__name__}, not bool")
            continue
        message = v.message or f"failed expression: {_one_line(v.expression.source, 200)}"
        if v.message_expression is not None:
            # Kubernetes falls back to ``message`` when messageExpression fails or is empty.
            try:
                text = _run(v.message_expression, ctx, fast)
                if isinstance(text, str) and text.strip():
                    message = text
            except _EvalError:
                pass
        out.append(Violation(policy=policy.name, message=_one_line(message, MAX_MESSAGE_CHARS),
                             expression=v.expression.source, reason=v.reason, binding=binding))
    return out


def _params_for(policy: CelPolicy, binding: Binding, request: dict[str, Any]) -> list[dict[str, Any]] | str:
    """The param objects a binding selects, or an error text when none is found and the binding
    says Deny."""
    ref = binding.param_ref or {}
    if not policy.param_kind or not ref:
        return [{}]
    ns = ref.get("namespace") or request.get("namespace") or ""
    chosen = []
    for d in policy.param_objects:
        meta = _d(d.get("metadata"))
        if ns and meta.get("namespace") and meta.get("namespace") != ns:
            continue
        if ref.get("name"):
            if meta.get("name") == ref["name"]:
                chosen.append(d)
        elif selector_matches(_d(ref.get("selector")), meta.get("labels")) and "selector" in ref:
            chosen.append(d)
    if chosen:
        return chosen
    if ref.get("parameterNotFoundAction") == "Allow":
        return []
    what = ref.get("name") or "selector"
    return f"no params found for binding {binding.name!r} ({policy.param_kind['kind']} {what!r})"


def check_object(policies: Iterable[CelPolicy], obj: dict[str, Any], *, request: dict[str, Any] | None = None,
                 namespace_object: dict[str, Any] | None = None,
                 errors: list[Violation] | None = None) -> list[Violation]:
    """Every policy against one object, through its bindings. A policy without a binding is
    evaluated as if bound once with no params (hullguard's convenience: a lone policy file
    checks manifests; a cluster would need a binding)."""
    request = request if request is not None else build_request(obj)
    out: list[Violation] = []
    env: _Env | None = None
    for pol in policies:
        if not matches(pol, request, namespace_object=namespace_object):
            continue
        for b in pol.bindings or [Binding(name="")]:
            if b.match is not None and not _match_resources(b.match, request, namespace_object):
                continue
            chosen = _params_for(pol, b, request)
            if isinstance(chosen, str):
                out.append(Violation(policy=pol.name, message=chosen, expression="", reason="InternalError",
                                     error=True, binding=b.name))
                continue
            if env is None:
                env = _Env(obj, request, request.get("oldObject"), namespace_object)
            for params in chosen:
                out.extend(evaluate(pol, obj, request=request, old_object=request.get("oldObject"),
                                    namespace_object=namespace_object, params=params or None, binding=b.name,
                                    errors=errors, _env=env))
    return out


def policy_rule(policy: CelPolicy) -> Any:
    """The policy as a rule for ``hullguard rules list/explain``."""
    from hullguard.detect.misconfig.rules import Rule

    checks = "; ".join(v.message or v.expression.source for v in policy.validations)
    desc = policy.annotations.get(DESCRIPTION_ANNOTATION) or (
        f"User policy from {policy.path}:{policy.line} (ValidatingAdmissionPolicy, CEL). Checks: {checks}")
    fix = policy.annotations.get(REMEDIATION_ANNOTATION) or "Change the object so that every validation holds."
    return Rule(id=policy.rule_id, title=policy.title, severity=policy.severity, description=desc,
                remediation=fix, references=tuple(f"expression: {v.expression.source}" for v in policy.validations))
