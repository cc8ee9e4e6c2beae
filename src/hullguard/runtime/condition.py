"""Falco's condition language: parse to a small AST, expand macros and lists, compile to Python.

Compilation generates Python source for the whole condition of a rule and compiles it once, so
evaluating a rule is one function call with inline comparisons. Measured against a tree of
closures for a typical shell-in-container condition (CPython 3.11): 1.9 us vs 4.4 us when it
matches, 0.6 us vs 3.1 us when it fails early, because every node of a closure tree costs a
Python call while generated code short-circuits natively.

List-valued fields (``ka.req.pod.containers.image``) follow libsinsp: ``in`` holds when every
value is in the set, ``intersects`` when any is. Other operators on them (which Falco refuses)
are accepted here and hold when any value matches.

Values are context-sensitive, as in Falco: after an operator a *bare* word runs until
whitespace, a parenthesis or a comma, so ``evt.dir = <`` and ``fd.name startswith /etc/`` parse.
"""

from __future__ import annotations

import base64
import fnmatch
import ipaddress
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from hullguard.runtime.fields import UnknownField, _num, lookup, normalise_value

BINARY_OPS = ("==", "!=", "<=", ">=", "=", "<", ">")
WORD_OPS = ("contains", "icontains", "bcontains", "startswith", "bstartswith", "endswith", "glob", "iglob",
            "regex", "in", "intersects", "pmatch", "exists")
LIST_OPS = ("in", "intersects", "pmatch")
TRANSFORMERS = ("tolower", "toupper", "b64", "basename", "len")


class ConditionError(Exception):
    """A condition that cannot be parsed, with the character offset of the problem."""

    def __init__(self, message: str, pos: int = -1) -> None:
        super().__init__(message)
        self.pos = pos


class UndefinedMacro(ConditionError):
    pass


class Unsupported(ConditionError):
    """Syntactically fine but names a field/operator this engine does not implement."""


# ---- AST --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FieldRef:
    name: str
    arg: str | None = None
    transformers: tuple[str, ...] = ()  # innermost last, e.g. tolower(basename(x)) -> ("tolower", "basename")

    def text(self) -> str:
        s = self.name if self.arg is None else f"{self.name}[{self.arg}]"
        for t in reversed(self.transformers):
            s = f"{t}({s})"
        return s


@dataclass(frozen=True, slots=True)
class Cmp:
    lhs: FieldRef
    op: str
    value: Any = None  # str | FieldRef | tuple[str, ...] | None (exists)


@dataclass(frozen=True, slots=True)
class BoolOp:
    op: str  # and | or
    children: tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class Not:
    child: Any


@dataclass(frozen=True, slots=True)
class MacroRef:
    name: str
    pos: int = 0


Node = Cmp | BoolOp | Not | MacroRef

# ---- parser -----------------------------------------------------------------------------------

_WS = re.compile(r"\s*")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_FIELDNAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_\-]+)+")
_BARE = re.compile(r"[^\s(),\"']+")
_WORD_END = re.compile(r"(?![A-Za-z0-9_.])")


class _Parser:
    def __init__(self, text: str) -> None:
        self.s = text
        self.i = 0

    def ws(self) -> None:
        self.i = _WS.match(self.s, self.i).end()  # type: ignore[union-attr]

    def peek_word(self, word: str) -> bool:
        self.ws()
        if not self.s.startswith(word, self.i):
            return False
        return _WORD_END.match(self.s, self.i + len(word)) is not None

    def fail(self, msg: str, cls: type[ConditionError] = ConditionError) -> ConditionError:
        near = self.s[self.i:self.i + 30]
        return cls(f"{msg} at offset {self.i} (near {near!r})" if near else f"{msg} at end of condition", self.i)

    def parse(self) -> Node:
        node = self.or_expr()
        self.ws()
        if self.i != len(self.s):
            raise self.fail("unexpected text")
        return node

    def or_expr(self) -> Node:
        kids = [self.and_expr()]
        while self.peek_word("or"):
            self.i += 2
            kids.append(self.and_expr())
        return kids[0] if len(kids) == 1 else BoolOp("or", tuple(kids))

    def and_expr(self) -> Node:
        kids = [self.not_expr()]
        while self.peek_word("and"):
            self.i += 3
            kids.append(self.not_expr())
        return kids[0] if len(kids) == 1 else BoolOp("and", tuple(kids))

    def not_expr(self) -> Node:
        if self.peek_word("not"):
            self.i += 3
            return Not(self.not_expr())
        return self.primary()

    def primary(self) -> Node:
        self.ws()
        if self.i >= len(self.s):
            raise self.fail("expected a condition")
        if self.s[self.i] == "(":
            self.i += 1
            node = self.or_expr()
            self.ws()
            if self.i >= len(self.s) or self.s[self.i] != ")":
                raise self.fail("expected ')'")
            self.i += 1
            return node
        start = self.i
        m = _FIELDNAME.match(self.s, self.i)
        ident = _IDENT.match(self.s, self.i)
        if ident and not m and not self._is_transformer_call():
            if ident.group(0) in ("and", "or"):
                raise self.fail(f"unexpected '{ident.group(0)}'")
            self.i = ident.end()
            return MacroRef(ident.group(0), start)
        lhs = self.field_expr()
        return self.check(lhs)

    def _is_transformer_call(self) -> bool:
        ident = _IDENT.match(self.s, self.i)
        if not ident or ident.group(0) not in (*TRANSFORMERS, "val"):
            return False
        j = _WS.match(self.s, ident.end()).end()  # type: ignore[union-attr]
        return j < len(self.s) and self.s[j] == "("

    def field_expr(self) -> FieldRef:
        self.ws()
        if self._is_transformer_call():
            ident = _IDENT.match(self.s, self.i)
            assert ident is not None
            name = ident.group(0)
            if name == "val":
                raise self.fail("val() is only allowed on the right-hand side")
            self.i = self.s.index("(", ident.end()) + 1
            inner = self.field_expr()
            self.ws()
            if self.i >= len(self.s) or self.s[self.i] != ")":
                raise self.fail("expected ')' after transformer argument")
            self.i += 1
            return FieldRef(inner.name, inner.arg, (name, *inner.transformers))
        m = _FIELDNAME.match(self.s, self.i)
        if not m:
            raise self.fail("expected a field name")
        self.i = m.end()
        arg = None
        if self.i < len(self.s) and self.s[self.i] == "[":
            end = self.s.find("]", self.i)
            if end < 0:
                raise self.fail("unterminated field argument")
            arg = self.s[self.i + 1:end].strip().strip("'\"")
            self.i = end + 1
        return FieldRef(m.group(0), arg)

    def check(self, lhs: FieldRef) -> Node:
        self.ws()
        for op in BINARY_OPS:
            if self.s.startswith(op, self.i):
                self.i += len(op)
                return Cmp(lhs, "=" if op == "==" else op, self.value())
        ident = _IDENT.match(self.s, self.i)
        if ident is None:
            raise self.fail(f"expected an operator after {lhs.text()}")
        word = ident.group(0)
        if word not in WORD_OPS:
            raise self.fail(f"unsupported operator {word!r}", Unsupported)
        self.i = ident.end()
        if word == "exists":
            return Cmp(lhs, word, None)
        if word in LIST_OPS:
            self.ws()
            if self.i < len(self.s) and self.s[self.i] == "(":
                return Cmp(lhs, word, self.list_value())
            # Falco accepts `x in list_name` style only in parentheses; a lone value is a 1-item list.
            return Cmp(lhs, word, (self.value(),))
        return Cmp(lhs, word, self.value())

    def list_value(self) -> tuple[str, ...]:
        self.i += 1  # (
        items: list[str] = []
        while True:
            self.ws()
            if self.i >= len(self.s):
                raise self.fail("unterminated list")
            if self.s[self.i] == ")":
                self.i += 1
                return tuple(items)
            items.append(self.scalar())
            self.ws()
            if self.i < len(self.s) and self.s[self.i] == ",":
                self.i += 1

    def value(self) -> str | FieldRef:
        self.ws()
        if self._is_transformer_call():
            ident = _IDENT.match(self.s, self.i)
            assert ident is not None
            if ident.group(0) == "val":
                self.i = self.s.index("(", ident.end()) + 1
                ref = self.field_expr()
                self.ws()
                if self.i >= len(self.s) or self.s[self.i] != ")":
                    raise self.fail("expected ')' after val(")
                self.i += 1
                return ref
            return self.field_expr()
        return self.scalar()

    def scalar(self) -> str:
        if self.i >= len(self.s):
            raise self.fail("expected a value")
        c = self.s[self.i]
        if c in "\"'":
            out = []
            j = self.i + 1
            while j < len(self.s):
                ch = self.s[j]
                if ch == "\\" and j + 1 < len(self.s):
                    out.append(self.s[j + 1])
                    j += 2
                    continue
                if ch == c:
                    self.i = j + 1
                    return "".join(out)
                out.append(ch)
                j += 1
            raise self.fail("unterminated string")
        m = _BARE.match(self.s, self.i)
        if not m:
            raise self.fail("expected a value")
        self.i = m.end()
        return m.group(0)


def parse(text: str) -> Node:
    return _Parser(text).parse()


# ---- macro and list expansion -----------------------------------------------------------------


def expand(node: Node, macros: Mapping[str, Node], lists: Mapping[str, list[str]],
           _stack: tuple[str, ...] = ()) -> Node:
    """Inline macros (recursively, cycles rejected) and replace list names inside list values."""
    if isinstance(node, MacroRef):
        if node.name not in macros:
            raise UndefinedMacro(f"undefined macro '{node.name}'", node.pos)
        if node.name in _stack:
            raise ConditionError(f"macro '{node.name}' refers to itself ({' -> '.join((*_stack, node.name))})")
        return expand(macros[node.name], macros, lists, (*_stack, node.name))
    if isinstance(node, BoolOp):
        return BoolOp(node.op, tuple(expand(c, macros, lists, _stack) for c in node.children))
    if isinstance(node, Not):
        return Not(expand(node.child, macros, lists, _stack))
    if isinstance(node, Cmp) and isinstance(node.value, tuple):
        items: list[str] = []
        for item in node.value:
            items.extend(lists.get(item, (item,)))
        return Cmp(node.lhs, node.op, tuple(items))
    return node


def fields_of(node: Node) -> list[FieldRef]:
    out: list[FieldRef] = []

    def walk(n: Node) -> None:
        if isinstance(n, BoolOp):
            for c in n.children:
                walk(c)
        elif isinstance(n, Not):
            walk(n.child)
        elif isinstance(n, Cmp):
            out.append(n.lhs)
            if isinstance(n.value, FieldRef):
                out.append(n.value)

    walk(node)
    return out


def flatten(node: Node) -> Node:
    """Merge nested ``and``/``or`` of the same kind, so macros' conjuncts become top-level ones."""
    if isinstance(node, BoolOp):
        kids: list[Node] = []
        for c in node.children:
            c = flatten(c)
            if isinstance(c, BoolOp) and c.op == node.op:
                kids.extend(c.children)
            else:
                kids.append(c)
        return kids[0] if len(kids) == 1 else BoolOp(node.op, tuple(kids))
    if isinstance(node, Not):
        return Not(flatten(node.child))
    return node


def field_values(node: Node, name: str) -> frozenset[str] | None:
    """The values of field ``name`` a condition can match (from ``name = x`` / ``name in (...)``
    reachable through top-level ``and``/``or``), or None when any value may match."""
    if isinstance(node, Cmp) and node.lhs.name == name and not node.lhs.transformers and node.lhs.arg is None:
        if node.op == "=" and isinstance(node.value, str):
            return frozenset((node.value,))
        if node.op == "in" and isinstance(node.value, tuple):
            return frozenset(node.value)
        return None
    if isinstance(node, BoolOp):
        sets = [field_values(c, name) for c in node.children]
        if node.op == "and":
            known = [s for s in sets if s is not None]
            if not known:
                return None
            out = known[0]
            for s in known[1:]:
                out = out & s
            return out
        if any(s is None for s in sets):
            return None
        return frozenset().union(*sets)  # type: ignore[arg-type]
    return None


def event_types(node: Node) -> frozenset[str] | None:
    """The evt.type values a condition can match, or None when it may match any type."""
    return field_values(node, "evt.type")


def drop_routed(node: Node, name: str) -> Node:
    """Remove top-level ``name = x`` / ``name in (...)`` conjuncts: once the engine routes events
    by that field, they are always true for the events that reach the rule."""
    if not isinstance(node, BoolOp) or node.op != "and":
        return node
    kids = tuple(c for c in node.children if field_values(c, name) is None or not isinstance(c, Cmp))
    if not kids:
        return Cmp(FieldRef(name), "exists")
    return kids[0] if len(kids) == 1 else BoolOp("and", kids)


# ---- compilation ------------------------------------------------------------------------------


def _lower(v: Any) -> Any:
    if isinstance(v, list):
        return [x.lower() if isinstance(x, str) else x for x in v]
    return v.lower() if isinstance(v, str) else v


def _upper(v: Any) -> Any:
    if isinstance(v, list):
        return [x.upper() if isinstance(x, str) else x for x in v]
    return v.upper() if isinstance(v, str) else v


def _b64(v: Any) -> Any:
    if not isinstance(v, str):
        return None
    try:
        return base64.b64decode(v, validate=False).decode("utf-8", "replace")
    except ValueError:
        return None


def _basename(v: Any) -> Any:
    return v.rsplit("/", 1)[-1] if isinstance(v, str) else v


def _len(v: Any) -> Any:
    return len(v) if isinstance(v, (str, list)) else None


_TRANSFORM_FNS: dict[str, Callable[[Any], Any]] = {
    "tolower": _lower, "toupper": _upper, "b64": _b64, "basename": _basename, "len": _len}


def _as_bytes(v: Any) -> bytes:
    return v.encode("utf-8", "surrogateescape") if isinstance(v, str) else bytes(v)


def _hex(value: str) -> bytes:
    try:
        return bytes.fromhex(value)
    except ValueError:
        return value.encode()


def _glob_re(pattern: str, ignore_case: bool = False) -> re.Pattern[str]:
    return re.compile(fnmatch.translate(pattern), re.IGNORECASE if ignore_case else 0)


@dataclass
class _Gen:
    consts: dict[str, Any] = field(default_factory=dict)
    n: int = 0

    def const(self, value: Any) -> str:
        name = f"_c{self.n}"
        self.n += 1
        self.consts[name] = value
        return name


def _nets(values: tuple[str, ...] | str) -> tuple[Any, ...]:
    items = (values,) if isinstance(values, str) else values
    try:
        return tuple(ipaddress.ip_network(v, strict=False) for v in items)
    except ValueError as exc:
        raise ConditionError(f"not a network address: {exc}") from exc


def _in_nets(ip: Any, nets: tuple[Any, ...]) -> bool:
    if not isinstance(ip, str):
        return False
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return False
    return any(addr in n for n in nets)


def _scalar_op(op: str, kind: str, const: Any, gen: _Gen) -> tuple[str, Any]:
    """(python expression template over ``X``, converted constant) for one scalar comparison."""
    if kind == "net" and op in ("=", "!="):
        c = gen.const(_nets(const))
        return (f"_in_nets(X, {c})" if op == "=" else f"(X is not None and not _in_nets(X, {c}))"), None
    if op in ("=", "!=", "<", "<=", ">", ">="):
        if kind == "num" or op in ("<", "<=", ">", ">="):
            num = _num(const)
            if num is None:
                raise ConditionError(f"{const!r} is not a number")
            c = gen.const(num)
            py = {"=": "==", "!=": "!="}.get(op, op)
            return f"(_num(X) {py} {c})", None
        c = gen.const(const)
        return (f"(X == {c})" if op == "=" else f"(X is not None and X != {c})"), None
    c = gen.const(const)
    if op == "contains":
        return f"(isinstance(X, str) and {c} in X)", None
    if op == "icontains":
        gen.consts[c] = const.lower()
        return f"(isinstance(X, str) and {c} in X.lower())", None
    if op == "startswith":
        return f"(isinstance(X, str) and X.startswith({c}))", None
    if op == "endswith":
        return f"(isinstance(X, str) and X.endswith({c}))", None
    if op == "bcontains":
        gen.consts[c] = _hex(const)
        return f"(X is not None and {c} in _as_bytes(X))", None
    if op == "bstartswith":
        gen.consts[c] = _hex(const)
        return f"(X is not None and _as_bytes(X).startswith({c}))", None
    if op in ("glob", "iglob"):
        gen.consts[c] = _glob_re(const, op == "iglob").match
        return f"(isinstance(X, str) and {c}(X) is not None)", None
    if op == "regex":
        try:
            # Falco anchors regex at both ends (a full match), unlike grep.
            gen.consts[c] = re.compile(const).fullmatch
        except re.error as exc:
            raise ConditionError(f"bad regex {const!r}: {exc}") from exc
        return f"(isinstance(X, str) and {c}(X) is not None)", None
    raise Unsupported(f"unsupported operator {op!r}")


def _pmatch(prefixes: tuple[tuple[str, str], ...]) -> Callable[[Any], bool]:
    def match(v: Any) -> bool:
        if not isinstance(v, str):
            return False
        return any(v == p or v.startswith(ps) for p, ps in prefixes)

    return match


class Compiler:
    """Turns an expanded AST into one Python function ``f(ev) -> bool``."""

    def __init__(self) -> None:
        self.gen = _Gen()
        self.fields_used: list[FieldRef] = []

    def field_expr(self, ref: FieldRef) -> tuple[str, str, str]:
        """(python expression, kind, multi) for a field reference, transformers applied."""
        try:
            spec, ex = lookup(ref.name, ref.arg)
        except UnknownField as exc:
            raise Unsupported(f"unsupported field {exc}") from exc
        self.fields_used.append(ref)
        key = ref.name if ref.arg is None else f"{ref.name}[{ref.arg}]"
        expr = f"_g({key!r})" if ex is None else f"{self.gen.const(ex)}(ev)"
        kind, multi = spec.kind, spec.multi
        if kind == "bool" and ex is None:
            # Events built in code may carry Python booleans; rules compare with true/false.
            expr = f"_nv({expr})"
        for t in reversed(ref.transformers):
            expr = f"{self.gen.const(_TRANSFORM_FNS[t])}({expr})"
            if t == "len":
                kind, multi = "num", ""
        return expr, kind, multi

    def node(self, n: Node) -> str:
        if isinstance(n, BoolOp):
            return "(" + f" {n.op} ".join(self.node(c) for c in n.children) + ")"
        if isinstance(n, Not):
            return f"(not {self.node(n.child)})"
        if isinstance(n, MacroRef):
            raise UndefinedMacro(f"undefined macro '{n.name}'", n.pos)
        return self.cmp(n)

    def cmp(self, n: Cmp) -> str:
        expr, kind, multi = self.field_expr(n.lhs)
        g = self.gen
        if n.op == "exists":
            return f"({expr} is not None)"
        if isinstance(n.value, FieldRef):
            rexpr, _rk, _rm = self.field_expr(n.value)
            tmpl, _ = _field_vs_field(n.op)
            return f"{g.const(tmpl)}({expr}, {rexpr})"
        if n.op in LIST_OPS:
            items = n.value if isinstance(n.value, tuple) else (n.value,)
            if kind == "net":
                fn = g.const(_nets(items))
                test = f"_in_nets(X, {fn})"
            elif n.op == "pmatch":
                pre = tuple((p.rstrip("/") or "/", p.rstrip("/") + "/") for p in items)
                fn = g.const(_pmatch(pre))
                test = f"{fn}(X)"
            else:
                conv = tuple(normalise_value(_num(i)) if kind == "num" else i for i in items)
                s = g.const(frozenset(conv))
                test = f"(X in {s})"
                if multi == "list":
                    if n.op == "in":
                        # A list field is "in" a set when every value is (and there is a value).
                        return f"_all_in({expr}, {s})"
                    return f"_any_in({expr}, {s})"
            return self._apply(expr, test, multi)
        if not isinstance(n.value, str):
            raise ConditionError(f"operator {n.op} needs a value")
        if multi and n.op == "!=":
            # For several values, "!=" means none of them is equal (fd.net != 127.0.0.0/8 for
            # either end of a socket), not "some value differs".
            tmpl, _ = _scalar_op("=", kind, n.value, g)
            tmp = f"_t{g.n}"
            g.n += 1
            return f"(({tmp} := {expr}) is not None and not {self._apply(tmp, tmpl, multi)})"
        tmpl, _ = _scalar_op(n.op, kind, n.value, g)
        return self._apply(expr, tmpl, multi)

    def _apply(self, expr: str, test: str, multi: str) -> str:
        if multi:
            # Multi-valued fields match when any value matches.
            fn = self.gen.const(None)
            self.gen.consts[fn] = eval(f"lambda X: {test}", self._globals())
            return f"_any({expr}, {fn})"
        if test.count("X") == 1:
            return test.replace("X", expr)
        # Extract once into a local (walrus) and reuse it: the first use is the first evaluated.
        tmp = f"_t{self.gen.n}"
        self.gen.n += 1
        return test.replace("X", f"({tmp} := {expr})", 1).replace("X", tmp)

    def _globals(self) -> dict[str, Any]:
        return {**_RUNTIME, **self.gen.consts}

    def compile(self, node: Node, name: str = "rule") -> Callable[[dict[str, Any]], bool]:
        body = self.node(node)
        src = f"def _rule(ev):\n    _g = ev.get\n    return bool({body})\n"
        ns = self._globals()
        exec(compile(src, f"<condition {name}>", "exec"), ns)
        fn = ns["_rule"]
        fn.__hg_source__ = src  # type: ignore[attr-defined]
        return fn


def _field_vs_field(op: str) -> tuple[Callable[[Any, Any], bool], None]:
    def cmp(a: Any, b: Any) -> bool:
        if a is None or b is None:
            return False
        if isinstance(a, list):
            return any(cmp(x, b) for x in a)
        if op in ("<", "<=", ">", ">="):
            a, b = _num(a), _num(b)
            if a is None or b is None:
                return False
        if op == "=":
            return a == b or str(a) == str(b)
        if op == "!=":
            return not (a == b or str(a) == str(b))
        if op == "<":
            return a < b
        if op == "<=":
            return a <= b
        if op == ">":
            return a > b
        if op == ">=":
            return a >= b
        sa, sb = str(a), str(b)
        if op == "contains":
            return sb in sa
        if op == "icontains":
            return sb.lower() in sa.lower()
        if op == "startswith":
            return sa.startswith(sb)
        if op == "endswith":
            return sa.endswith(sb)
        if op == "glob":
            return fnmatch.fnmatchcase(sa, sb)
        raise Unsupported(f"operator {op} with val()")

    if op not in ("=", "!=", "<", "<=", ">", ">=", "contains", "icontains", "startswith", "endswith", "glob"):
        raise Unsupported(f"operator {op} with a field on the right-hand side")
    return cmp, None


def _any(vals: Any, test: Callable[[Any], bool]) -> bool:
    if vals is None:
        return False
    if not isinstance(vals, list):
        return bool(test(vals))
    return any(test(normalise_value(v)) for v in vals)


def _all_in(vals: Any, s: frozenset[Any]) -> bool:
    if not vals:
        return False
    if not isinstance(vals, list):
        return vals in s
    return all(normalise_value(v) in s for v in vals)


def _any_in(vals: Any, s: frozenset[Any]) -> bool:
    if not vals:
        return False
    if not isinstance(vals, list):
        return vals in s
    return any(normalise_value(v) in s for v in vals)


_RUNTIME: dict[str, Any] = {"_num": _num, "_nv": normalise_value, "_as_bytes": _as_bytes, "_any": _any,
                            "_all_in": _all_in, "_any_in": _any_in, "_in_nets": _in_nets}


def compile_condition(node: Node, name: str = "rule") -> Callable[[dict[str, Any]], bool]:
    return Compiler().compile(node, name)


# ---- outputs ----------------------------------------------------------------------------------

_OUT_FIELD = re.compile(r"%(?:\((?P<p>[A-Za-z_][\w.\-]*(?:\[[^\]]*\])?)\)|(?P<f>[A-Za-z_][\w\-]*(?:\.[\w\-]+)+"
                        r"(?:\[[^\]]*\])?))")
# Falco replaces %container.info by a container summary chosen at start-up; this is its -pc form.
OUTPUT_ALIASES = {
    "%container.info": "container_id=%container.id container_name=%container.name "
                       "container_image_repository=%container.image.repository "
                       "container_image_tag=%container.image.tag",
}
MISSING = "<NA>"


def _render(v: Any) -> str:
    if v is None:
        return MISSING
    if isinstance(v, list):
        return "(" + ",".join(_render(x) for x in v) + ")"
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


class OutputFormat:
    """A compiled output template: literal text and field extractors, in order."""

    def __init__(self, template: str) -> None:
        for alias, repl in OUTPUT_ALIASES.items():
            template = template.replace(alias, repl)
        self.template = " ".join(template.split())
        self.parts: list[str | tuple[str, Callable[[dict[str, Any]], Any]]] = []
        pos = 0
        for m in _OUT_FIELD.finditer(self.template):
            self.parts.append(self.template[pos:m.start()])
            key = m.group("p") or m.group("f")
            name, arg = key, None
            if key.endswith("]") and "[" in key:
                name, arg = key[:-1].split("[", 1)
            try:
                _spec, ex = lookup(name, arg)
            except UnknownField as exc:
                raise Unsupported(f"unsupported field {exc} in output") from exc
            self.parts.append((key, (lambda ev, k=key: ev.get(k)) if ex is None else ex))
            pos = m.end()
        self.parts.append(self.template[pos:])

    def fields(self) -> list[str]:
        return [p[0] for p in self.parts if isinstance(p, tuple)]

    def format(self, ev: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        out: list[str] = []
        values: dict[str, Any] = {}
        for p in self.parts:
            if isinstance(p, str):
                out.append(p)
            else:
                v = p[1](ev)
                values[p[0]] = v
                if p[0] == "evt.time" and isinstance(v, int):
                    # Falco prints evt.time as a wall clock with nanoseconds; JSON keeps the number.
                    secs, frac = divmod(v, 1_000_000_000)
                    out.append(f"{time.strftime('%H:%M:%S', time.gmtime(secs))}.{frac:09d}")
                else:
                    out.append(_render(v))
        return "".join(out), values
