"""The condition language: parsing per construct, evaluation semantics, outputs."""

from __future__ import annotations

from typing import Any

import pytest

from hullguard.runtime.condition import (
    BoolOp,
    Cmp,
    ConditionError,
    FieldRef,
    MacroRef,
    Not,
    OutputFormat,
    UndefinedMacro,
    Unsupported,
    compile_condition,
    event_types,
    expand,
    flatten,
    parse,
)


def run(cond: str, ev: dict[str, Any], macros: dict[str, str] | None = None,
        lists: dict[str, list[str]] | None = None) -> bool:
    m = {k: parse(v) for k, v in (macros or {}).items()}
    return compile_condition(flatten(expand(parse(cond), m, lists or {})))(ev)


EXEC = {"evt.type": "execve", "evt.dir": "<", "proc.name": "bash", "proc.pname": "nginx",
        "proc.cmdline": "bash -c id", "proc.pid": 42, "proc.tty": 0, "container.id": "abc123",
        "fd.name": "/etc/shadow", "_anc": ["nginx", "containerd-shim", "systemd"]}


class TestParse:
    def test_precedence_and_binds_tighter_than_or(self) -> None:
        n = parse("a or b and c")
        assert isinstance(n, BoolOp) and n.op == "or"
        assert n.children[0] == MacroRef("a", 0)
        assert isinstance(n.children[1], BoolOp) and n.children[1].op == "and"

    def test_not_and_parentheses(self) -> None:
        n = parse("not (a or b)")
        assert isinstance(n, Not) and isinstance(n.child, BoolOp)

    def test_bare_values_keep_symbols(self) -> None:
        assert parse("evt.dir=<") == Cmp(FieldRef("evt.dir"), "=", "<")
        assert parse("fd.name startswith /etc/") == Cmp(FieldRef("fd.name"), "startswith", "/etc/")

    def test_quoted_values_and_escapes(self) -> None:
        n = parse('proc.cmdline contains "a \\"b\\" c"')
        assert n == Cmp(FieldRef("proc.cmdline"), "contains", 'a "b" c')
        assert parse("proc.name = 'x y'") == Cmp(FieldRef("proc.name"), "=", "x y")

    def test_double_equals_is_equals(self) -> None:
        assert parse("proc.name == bash").op == "="  # type: ignore[union-attr]

    def test_list_literal_with_quoted_items(self) -> None:
        n = parse('proc.name in (a, b, "c d")')
        assert n == Cmp(FieldRef("proc.name"), "in", ("a", "b", "c d"))
        assert parse("proc.name in ()") == Cmp(FieldRef("proc.name"), "in", ())

    def test_field_arguments(self) -> None:
        assert parse("proc.aname[2] = sshd") == Cmp(FieldRef("proc.aname", "2"), "=", "sshd")
        assert parse("ka.req.pod.containers.image[0] = x").lhs == FieldRef(  # type: ignore[union-attr]
            "ka.req.pod.containers.image", "0")
        assert parse("evt.arg[flags] contains O_TRUNC").lhs == FieldRef("evt.arg", "flags")  # type: ignore[union-attr]

    def test_transformers_and_val(self) -> None:
        n = parse("tolower(basename(proc.exe)) = val(proc.name)")
        assert n == Cmp(FieldRef("proc.exe", None, ("tolower", "basename")), "=", FieldRef("proc.name"))

    def test_exists_is_unary(self) -> None:
        assert parse("ka.target.subresource exists") == Cmp(FieldRef("ka.target.subresource"), "exists", None)

    @pytest.mark.parametrize("op", ["contains", "icontains", "bcontains", "startswith", "bstartswith", "endswith",
                                    "glob", "regex", "=", "!=", "<", "<=", ">", ">="])
    def test_every_binary_operator_parses(self, op: str) -> None:
        assert parse(f"proc.name {op} x").op == op  # type: ignore[union-attr]

    @pytest.mark.parametrize("text", ["proc.name =", "(proc.name = a", "proc.name in (a, b", "proc.name = 'x",
                                      "proc.name = a b", "and", "proc.name[1 = x"])
    def test_malformed(self, text: str) -> None:
        with pytest.raises(ConditionError):
            parse(text)

    def test_unknown_operator_is_unsupported(self) -> None:
        with pytest.raises(Unsupported):
            parse("proc.name fuzzymatch x")

    def test_keywords_need_word_boundaries(self) -> None:
        n = parse("notable and order")
        assert n == BoolOp("and", (MacroRef("notable", 0), MacroRef("order", 12)))


class TestEvaluate:
    @pytest.mark.parametrize(("cond", "want"), [
        ("proc.name = bash", True), ("proc.name != bash", False), ("proc.name != sh", True),
        ("proc.cmdline contains id", True), ("proc.cmdline icontains BASH", True),
        ("proc.cmdline startswith bash", True), ("proc.cmdline endswith id", True),
        ("proc.name glob 'ba*'", True), ("proc.name glob 'z*'", False),
        ("proc.name regex 'b.s'", False), ("proc.name regex 'b.sh'", True),
        ("proc.pid > 41", True), ("proc.pid <= 41", False),
        ("proc.pid = 42", True), ("proc.pid >= 42", True), ("proc.pid < 43", True),
        ("proc.name in (sh, bash)", True), ("proc.name in (sh)", False),
        ("proc.name intersects (bash)", True), ("fd.name pmatch (/etc)", True),
        ("fd.name pmatch (/et)", False), ("fd.name pmatch (/etc/shadow)", True),
        ("proc.cmdline bcontains 2d63", True), ("proc.cmdline bstartswith 62617368", True),
        ("proc.name exists", True), ("k8s.ns.name exists", False),
        ("not proc.name = sh", True), ("(proc.name = sh or proc.name = bash) and evt.dir = <", True),
        ("proc.aname[1] = nginx", True), ("proc.aname[2] = containerd-shim", True),
        ("proc.aname[0] = bash", True), ("proc.aname = systemd", True), ("proc.aname in (systemd)", True),
        ("proc.aname = nobody", False), ("fd.directory = /etc", True), ("fd.filename = shadow", True),
        ("toupper(proc.name) = BASH", True), ("len(proc.cmdline) = 10", True),
        ("basename(fd.name) = shadow", True), ("proc.name = val(proc.pname)", False),
        ("proc.name != val(proc.pname)", True),
    ])
    def test_operator(self, cond: str, want: bool) -> None:
        assert run(cond, EXEC) is want

    def test_missing_field_is_false_even_for_not_equal(self) -> None:
        assert run("k8s.ns.name != default", EXEC) is False
        assert run("not k8s.ns.name = default", EXEC) is True
        assert run("k8s.ns.name contains x", EXEC) is False

    def test_b64_transformer(self) -> None:
        assert run("b64(evt.arg.data) = 'curl x'", {"evt.arg.data": "Y3VybCB4"}) is True

    def test_numeric_fields_accept_string_values(self) -> None:
        assert run("fd.dport = 443", {"fd.dport": "443"}) is True
        assert run("fd.dport in (80, 443)", {"fd.dport": 443}) is True

    def test_non_number_for_numeric_comparison(self) -> None:
        with pytest.raises(ConditionError):
            run("proc.pid > lots", EXEC)

    def test_macros_expand_recursively(self) -> None:
        macros = {"spawned": "evt.type = execve and evt.dir = <", "sh": "proc.name in (shells)",
                  "shell_spawned": "spawned and sh"}
        assert run("shell_spawned", EXEC, macros, {"shells": ["bash", "sh"]}) is True

    def test_undefined_macro_is_named(self) -> None:
        with pytest.raises(UndefinedMacro, match="nosuchmacro"):
            run("proc.name = a and nosuchmacro", EXEC)

    def test_macro_cycle(self) -> None:
        with pytest.raises(ConditionError, match="refers to itself"):
            run("a", EXEC, {"a": "b", "b": "a"})

    def test_list_name_inside_literal_list(self) -> None:
        assert run("proc.name in (shells, zsh)", EXEC, lists={"shells": ["bash"]}) is True
        # An unknown name in a list is a literal, as in Falco.
        assert run("proc.name in (unknown_list)", {"proc.name": "unknown_list"}) is True

    def test_unsupported_field(self) -> None:
        with pytest.raises(Unsupported, match=r"proc\.madeup"):
            run("proc.madeup = 1", EXEC)

    def test_list_fields_in_means_all_values(self) -> None:
        ev = {"_k8s": {"requestObject": {"spec": {"containers": [{"image": "a"}, {"image": "b"}]}}}}
        assert run("ka.req.pod.containers.image in (a, b)", ev) is True
        assert run("ka.req.pod.containers.image in (a)", ev) is False
        assert run("ka.req.pod.containers.image intersects (a)", ev) is True
        assert run("ka.req.pod.containers.image = b", ev) is True
        assert run("ka.req.pod.containers.image[1] = b", ev) is True
        assert run("ka.req.pod.containers.image[5] exists", ev) is False


def test_event_types_from_top_level() -> None:
    def types(c: str) -> Any:
        return event_types(flatten(parse(c)))
    assert types("evt.type = execve and proc.name = x") == {"execve"}
    assert types("evt.type in (open, openat) and evt.type in (openat, execve)") == {"openat"}
    assert types("evt.type = a or evt.type in (b, c)") == {"a", "b", "c"}
    assert types("evt.type = a or proc.name = x") is None
    assert types("not evt.type = a") is None
    assert types("proc.name = bash") is None


class TestOutput:
    def test_substitution_missing_and_args(self) -> None:
        fmt = OutputFormat("shell=%proc.name ns=%k8s.ns.name gp=%proc.aname[2] pid=%proc.pid")
        text, values = fmt.format(EXEC)
        assert text == "shell=bash ns=<NA> gp=containerd-shim pid=42"
        assert values == {"proc.name": "bash", "k8s.ns.name": None, "proc.aname[2]": "containerd-shim",
                          "proc.pid": 42}

    def test_container_info_alias_and_whitespace(self) -> None:
        fmt = OutputFormat("x %container.info\n  y")
        assert "%container.info" not in fmt.template
        text, values = fmt.format({"container.id": "abc", "container.name": "web"})
        assert text.startswith("x container_id=abc container_name=web ")
        assert "container.image.tag" in values

    def test_list_values_render_in_parentheses(self) -> None:
        text, _ = OutputFormat("ips=%ka.sourceips").format({"_k8s": {"sourceIPs": ["1.2.3.4", "5.6.7.8"]}})
        assert text == "ips=(1.2.3.4,5.6.7.8)"

    def test_unknown_output_field(self) -> None:
        with pytest.raises(Unsupported):
            OutputFormat("x=%proc.madeup")


class TestNetworkFields:
    CONNECT = {"evt.type": "connect", "fd.sip": "10.1.2.3", "fd.dip": "93.184.216.34", "fd.dport": 443}
    ACCEPT = {"evt.type": "accept", "fd.cip": "192.168.1.9", "fd.sip": "10.1.2.3", "fd.sport": 22}

    @pytest.mark.parametrize(("cond", "ev", "want"), [
        ('fd.net = "10.0.0.0/8"', CONNECT, True),
        ('fd.net != "127.0.0.0/8"', CONNECT, True),
        ('fd.net != "10.0.0.0/8"', CONNECT, False),
        ('fd.snet in ("10.0.0.0/8", "192.168.0.0/16")', CONNECT, False),
        ('fd.snet in ("93.184.0.0/16")', CONNECT, True),
        ('fd.snet = "10.0.0.0/8"', ACCEPT, True),
        ('fd.cnet = "192.168.0.0/16"', ACCEPT, True),
        ('fd.ip = "10.1.2.3"', ACCEPT, True),
        ('fd.net = "fe80::/10"', CONNECT, False),
    ])
    def test_cidr(self, cond: str, ev: dict[str, Any], want: bool) -> None:
        assert run(cond, ev) is want

    def test_bad_cidr(self) -> None:
        with pytest.raises(ConditionError):
            run("fd.net = not-a-net", self.CONNECT)


def test_evt_time_renders_as_clock_but_stays_numeric_in_fields() -> None:
    text, values = OutputFormat("at %evt.time").format({"evt.time": 1_700_000_000_123_456_789})
    assert text == "at 22:13:20.123456789"
    assert values == {"evt.time": 1_700_000_000_123_456_789}
