"""CEL ValidatingAdmissionPolicy loading, matching and evaluation (hullguard.policy.cel)."""

from __future__ import annotations

import textwrap
from fractions import Fraction
from pathlib import Path

import pytest

from hullguard.model import HullguardError, Severity
from hullguard.policy.cel import (
    PolicyLoadError,
    build_request,
    check_object,
    evaluate,
    load_policies,
    load_policies_lenient,
    matches,
    parse_quantity,
    resource_for_kind,
    selector_matches,
)


def vap(name: str = "p", validations: str = "  - expression: \"true\"\n", *, extra_spec: str = "",
        rules: str = "", annotations: str = "") -> str:
    rules = rules or textwrap.indent(textwrap.dedent("""\
        - apiGroups: [""]
          apiVersions: ["v1"]
          operations: ["CREATE", "UPDATE"]
          resources: ["pods"]
        """), "      ")
    meta = f"metadata:\n  name: {name}\n" + (f"  annotations:\n{annotations}" if annotations else "")
    return (f"apiVersion: admissionregistration.k8s.io/v1\nkind: ValidatingAdmissionPolicy\n{meta}"
            f"spec:\n{extra_spec}  matchConstraints:\n    resourceRules:\n{rules}  validations:\n{validations}")


def write(tmp_path: Path, text: str, name: str = "p.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def one(tmp_path: Path, text: str):
    (policy,) = load_policies([write(tmp_path, text)])
    return policy


def pod(name: str = "web", ns: str = "shop", **spec) -> dict:
    spec.setdefault("containers", [{"name": "c", "image": "nginx:1.25"}])
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns, "labels": {"app": name}},
            "spec": spec}


def run(policy, obj, **kw):
    return evaluate(policy, obj, request=build_request(obj), **kw)


# --- loading ------------------------------------------------------------------------------------

def test_loads_fields_and_severity_annotation(tmp_path: Path) -> None:
    p = one(tmp_path, vap("limits", '  - expression: "object.spec.containers.size() > 0"\n    message: m\n'
                          "    reason: Forbidden\n",
                          annotations="    hullguard.dev/severity: low\n",
                          extra_spec="  failurePolicy: Ignore\n"))
    assert (p.name, p.rule_id, p.severity, p.failure_policy) == ("limits", "CEL:limits", Severity.LOW, "Ignore")
    assert p.validations[0].reason == "Forbidden" and p.validations[0].message == "m"
    assert p.line == 1 and p.path.endswith("p.yaml")


def test_default_severity_is_high(tmp_path: Path) -> None:
    assert one(tmp_path, vap()).severity is Severity.HIGH


@pytest.mark.parametrize(("expr", "needle"), [
    ("object.spec.containers.all(c, ", "does not compile"),
    ("object.spec.foo(", "does not compile"),
    ("noSuchFunction(object)", "undeclared function 'noSuchFunction'"),
    ("object.?spec.orValue(1)", "does not compile"),
])
def test_compile_error_names_policy_and_expression_and_others_still_load(tmp_path: Path, expr: str,
                                                                        needle: str) -> None:
    bad = vap("broken", f"  - expression: {expr!r}\n".replace("'", '"') if '"' not in expr
              else f"  - expression: '{expr}'\n")
    write(tmp_path, bad, "a.yaml")
    write(tmp_path, vap("fine"), "b.yaml")
    with pytest.raises(PolicyLoadError) as info:
        load_policies([tmp_path])
    err = info.value
    assert isinstance(err, HullguardError)
    assert "'broken'" in str(err) and needle in str(err) and expr[:12] in str(err)
    assert [p.name for p in err.policies] == ["fine"]
    assert "\n" not in str(err)


def test_compile_error_in_variables_message_expression_and_match_conditions(tmp_path: Path) -> None:
    for spec, validations in [
        ('  variables:\n  - name: v\n    expression: "1 +"\n', '  - expression: "true"\n'),
        ("", '  - expression: "true"\n    messageExpression: "\'a\' +"\n'),
        ('  matchConditions:\n  - name: c\n    expression: "(("\n', '  - expression: "true"\n'),
    ]:
        path = write(tmp_path, vap("x", validations, extra_spec=spec))
        policies, errors = load_policies_lenient([path])
        assert policies == [] and len(errors) == 1 and "'x'" in errors[0] and "does not compile" in errors[0]


@pytest.mark.parametrize(("text", "needle"), [
    ("key: [unclosed\n", "invalid YAML"),
    ("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n", "no ValidatingAdmissionPolicy"),
    ("apiVersion: admissionregistration.k8s.io/v1\nkind: ValidatingAdmissionPolicy\nmetadata: {name: n}\n"
     "spec: {validations: [{expression: 'true'}]}\n", "matchConstraints is required"),
    ("apiVersion: admissionregistration.k8s.io/v1\nkind: ValidatingAdmissionPolicy\nmetadata: {name: n}\n"
     "spec: {matchConstraints: {resourceRules: [{resources: [pods]}]}}\n", "validations is empty"),
    ("apiVersion: v1\nkind: ValidatingAdmissionPolicy\nmetadata: {name: n}\nspec: {}\n", "must have apiVersion"),
    (vap("n", "  - expression: 'true'\n    message: no\n"), "message must be a string (quote it)"),
    (vap("n", "  - expression: 'true'\n    reason: Nope\n"), "reason 'Nope' is not one Kubernetes allows"),
    (vap("n", extra_spec="  failurePolicy: Sometimes\n"), "failurePolicy must be Fail or Ignore"),
    (vap("n", annotations="    hullguard.dev/severity: urgent\n"), "hullguard.dev/severity must be"),
    ("apiVersion: admissionregistration.k8s.io/v1\nkind: ValidatingAdmissionPolicy\nspec: {}\n", "metadata.name"),
    ("a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
     "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
     "e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]\n"
     "g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f, *f]\n", "skipped"),
    ("\x00\x01binary", "binary"),
])
def test_bad_documents_are_one_line_errors(tmp_path: Path, text: str, needle: str) -> None:
    good = write(tmp_path, vap("good"), "good.yaml")
    policies, errors = load_policies_lenient([write(tmp_path, text, "bad.yaml"), good, tmp_path / "missing.yaml"])
    assert [p.name for p in policies] == ["good"]
    assert any(needle in e for e in errors), errors
    assert any("missing.yaml: no such policy file" in e for e in errors)
    assert all("\n" not in e for e in errors)


def test_huge_and_deeply_nested_expressions_are_refused(tmp_path: Path) -> None:
    long_expr = " || ".join(["true"] * 3000)
    deep = "(" * 400 + "true" + ")" * 400
    path = write(tmp_path, vap("big", f'  - expression: "{long_expr}"\n') + "---\n"
                 + vap("deep", f'  - expression: "{deep}"\n'))
    policies, errors = load_policies_lenient([path])
    assert policies == []
    assert any("'big'" in e and "longer than" in e for e in errors)
    assert any("'deep'" in e and "does not compile" in e for e in errors)


def test_duplicate_policy_and_unknown_binding(tmp_path: Path) -> None:
    binding = ("apiVersion: admissionregistration.k8s.io/v1\nkind: ValidatingAdmissionPolicyBinding\n"
               "metadata: {name: b}\nspec: {policyName: nope}\n")
    path = write(tmp_path, vap("p") + "---\n" + vap("p") + "---\n" + binding)
    policies, errors = load_policies_lenient([path])
    assert len(policies) == 1
    assert any("defined twice" in e for e in errors) and any("unknown policy 'nope'" in e for e in errors)


# --- matching -----------------------------------------------------------------------------------

@pytest.mark.parametrize(("kind", "plural"), [
    ("Pod", "pods"), ("Deployment", "deployments"), ("NetworkPolicy", "networkpolicies"), ("Ingress", "ingresses"),
    ("Endpoints", "endpoints"), ("StorageClass", "storageclasses"), ("PriorityClass", "priorityclasses"),
    ("Gateway", "gateways"), ("CronJob", "cronjobs"),
])
def test_resource_for_kind(kind: str, plural: str) -> None:
    assert resource_for_kind(kind) == plural


def test_build_request_shape() -> None:
    req = build_request({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"}})
    assert req["resource"] == {"group": "apps", "version": "v1", "resource": "deployments"}
    assert req["kind"]["kind"] == "Deployment" and req["operation"] == "CREATE"
    assert req["namespace"] == "default" and req["name"] == "d" and req["oldObject"] is None
    assert build_request({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "n"}})["namespace"] == ""


RULES_APPS = """\
      - apiGroups: ["apps"]
        apiVersions: ["v1"]
        operations: ["CREATE"]
        resources: ["deployments"]
"""


def test_resource_rules_operations_and_groups(tmp_path: Path) -> None:
    p = one(tmp_path, vap(rules=RULES_APPS))
    dep = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d", "namespace": "x"}}
    assert matches(p, build_request(dep))
    assert not matches(p, build_request(dep, operation="UPDATE"))
    assert not matches(p, build_request(pod()))
    # Equivalent (the default) matches the same resource served by another group and version.
    old = {**dep, "apiVersion": "extensions/v1beta1"}
    assert matches(p, build_request(old))
    kind_only = {"kind": {"group": "apps", "version": "v1", "kind": "Deployment"}, "operation": "CREATE",
                 "namespace": "x", "object": dep}
    assert matches(p, kind_only)
    exact = one(tmp_path, vap(rules=RULES_APPS).replace("  validations:", "    matchPolicy: Exact\n  validations:"))
    assert not matches(exact, build_request(old)) and matches(exact, build_request(dep))


def test_wildcards_subresources_names_and_scope(tmp_path: Path) -> None:
    p = one(tmp_path, vap(rules='      - apiGroups: ["*"]\n        apiVersions: ["*"]\n        operations: ["*"]\n'
                                '        resources: ["*"]\n        scope: Namespaced\n'))
    assert matches(p, build_request(pod()))
    ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "n"}}
    assert not matches(p, build_request(ns))  # cluster-scoped
    req = {**build_request(pod()), "subResource": "status"}
    assert not matches(p, req)  # "*" is top-level resources only
    named = one(tmp_path, vap(rules='      - apiGroups: [""]\n        apiVersions: ["v1"]\n        operations: ["*"]\n'
                                    '        resources: ["pods/*"]\n        resourceNames: ["web"]\n'))
    assert matches(named, req) and not matches(named, build_request(pod()))
    assert not matches(named, {**build_request(pod("other")), "subResource": "status"})


def test_exclude_rules_and_selectors(tmp_path: Path) -> None:
    spec = vap(rules='      - apiGroups: [""]\n        apiVersions: ["v1"]\n        operations: ["*"]\n'
                     '        resources: ["pods"]\n').replace(
        "  validations:",
        "    excludeResourceRules:\n    - apiGroups: ['']\n      apiVersions: ['v1']\n      operations: ['*']\n"
        "      resources: ['pods']\n      resourceNames: ['skipme']\n"
        "    namespaceSelector:\n      matchLabels: {env: prod}\n"
        "    objectSelector:\n      matchExpressions: [{key: app, operator: NotIn, values: [legacy]}]\n"
        "  validations:")
    p = one(tmp_path, spec)
    prod = {"metadata": {"name": "shop", "labels": {"env": "prod"}}}
    dev = {"metadata": {"name": "shop", "labels": {"env": "dev"}}}
    assert matches(p, build_request(pod()), namespace_object=prod)
    assert not matches(p, build_request(pod()), namespace_object=dev)
    assert not matches(p, build_request(pod()), namespace_object=None)  # labels unknown: In cannot hold
    assert not matches(p, build_request(pod("skipme")), namespace_object=prod)
    assert not matches(p, build_request(pod("legacy")), namespace_object=prod)


@pytest.mark.parametrize(("selector", "labels", "expected"), [
    ({}, {}, True),
    ({"matchLabels": {"a": "1"}}, {"a": "1", "b": "2"}, True),
    ({"matchLabels": {"a": "1"}}, {"a": "2"}, False),
    ({"matchExpressions": [{"key": "a", "operator": "In", "values": ["1", "2"]}]}, {"a": "2"}, True),
    ({"matchExpressions": [{"key": "a", "operator": "In", "values": ["1"]}]}, {}, False),
    ({"matchExpressions": [{"key": "a", "operator": "NotIn", "values": ["1"]}]}, {}, True),
    ({"matchExpressions": [{"key": "a", "operator": "Exists"}]}, {"a": ""}, True),
    ({"matchExpressions": [{"key": "a", "operator": "DoesNotExist"}]}, {"a": ""}, False),
    ({"matchExpressions": [{"key": "a", "operator": "Bogus"}]}, {"a": ""}, False),
])
def test_label_selectors(selector: dict, labels: dict, expected: bool) -> None:
    assert selector_matches(selector, labels) is expected


# --- evaluation ---------------------------------------------------------------------------------

def test_false_validation_gives_message_expression_then_message_then_default(tmp_path: Path) -> None:
    p = one(tmp_path, vap(validations=(
        "  - expression: \"object.metadata.name != 'web'\"\n"
        "    messageExpression: \"'bad name ' + object.metadata.name\"\n"
        "    message: static\n"
        "  - expression: \"object.metadata.name != 'web'\"\n    message: static\n"
        "  - expression: \"object.metadata.name != 'web'\"\n"
        "  - expression: \"object.metadata.name != 'web'\"\n    messageExpression: \"''\"\n"
        "    message: fallback\n")))
    got = run(p, pod())
    assert [v.message for v in got] == ["bad name web", "static",
                                        "failed expression: object.metadata.name != 'web'", "fallback"]
    assert all(v.policy == "p" and v.reason == "Invalid" and not v.error for v in got)
    assert run(p, pod("api")) == []


def test_variables_see_earlier_variables_and_all_environment_names(tmp_path: Path) -> None:
    p = one(tmp_path, vap(extra_spec=(
        "  variables:\n"
        "  - name: names\n    expression: \"object.spec.containers.map(c, c.name)\"\n"
        "  - name: count\n    expression: \"size(variables.names)\"\n"),
        validations=(
        "  - expression: \"variables.count == 1 && variables.names[0] == 'c'\"\n"
        "  - expression: \"request.operation == 'CREATE' && request.userInfo.username == 'hullguard'\"\n"
        "  - expression: \"!('object' in request) && !('uid' in request) && request.kind.kind == 'Pod'\"\n"
        "  - expression: \"oldObject == null && authorizer == null && params == null\"\n"
        "  - expression: \"namespaceObject.metadata.name == 'shop'\"\n")))
    assert run(p, pod(), namespace_object={"metadata": {"name": "shop"}}) == []
    two = pod(containers=[{"name": "a"}, {"name": "b"}])
    assert [v.expression for v in run(p, two, namespace_object={"metadata": {"name": "shop"}})] == [
        "variables.count == 1 && variables.names[0] == 'c'"]


def test_match_conditions_gate_validations(tmp_path: Path) -> None:
    p = one(tmp_path, vap(validations="  - expression: \"false\"\n    message: denied\n", extra_spec=(
        "  matchConditions:\n  - name: only-shop\n    expression: \"request.namespace == 'shop'\"\n")))
    assert [v.message for v in run(p, pod())] == ["denied"]
    assert run(p, pod(ns="other")) == []


@pytest.mark.parametrize("failure", ["Fail", "Ignore"])
def test_runtime_errors_follow_failure_policy(tmp_path: Path, failure: str) -> None:
    p = one(tmp_path, vap(extra_spec=f"  failurePolicy: {failure}\n", validations=(
        "  - expression: \"object.spec.nope == 1\"\n"
        "  - expression: \"object.metadata.name\"\n"
        "  - expression: \"false\"\n    message: plain\n")))
    ignored: list = []
    got = run(p, pod(), errors=ignored)
    errs = [v for v in got if v.error]
    if failure == "Fail":
        assert len(errs) == 2 and ignored == []
        assert "no such key" in errs[0].message and "object.spec.nope" in errs[0].message
        assert "not bool" in errs[1].message and errs[0].reason == "InternalError"
    else:
        assert errs == [] and len(ignored) == 2
    assert [v.message for v in got if not v.error] == ["plain"]


def test_yaml_dates_and_odd_keys_reach_cel_as_json_would(tmp_path: Path) -> None:
    import datetime

    p = one(tmp_path, vap(validations="  - expression: \"object.metadata.annotations.since == '2024-01-02'\"\n"
                                      "  - expression: \"object.metadata.labels['1'] == 'one'\"\n"))
    obj = pod()
    obj["metadata"]["annotations"] = {"since": datetime.date(2024, 1, 2)}
    obj["metadata"]["labels"] = {1: "one"}
    assert run(p, obj) == []


# --- Kubernetes CEL libraries -------------------------------------------------------------------

@pytest.mark.parametrize(("text", "value"), [
    ("1", Fraction(1)), ("500m", Fraction(1, 2)), ("1Gi", Fraction(2**30)), ("1.5G", Fraction(1_500_000_000)),
    ("1e3", Fraction(1000)), ("-2Ki", Fraction(-2048)), ("100n", Fraction(1, 10**7)), (".5", Fraction(1, 2)),
])
def test_parse_quantity(text: str, value: Fraction) -> None:
    assert parse_quantity(text) == value


@pytest.mark.parametrize("text", ["", "1Z", "Gi", "1.2.3", "1 Gi", "x" * 100, "1e"])
def test_parse_quantity_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_quantity(text)


@pytest.mark.parametrize("expr", [
    "quantity('1Gi') == quantity('1024Mi')",
    "quantity('1Gi').isGreaterThan(quantity('1000Mi'))",
    "quantity('100m').isLessThan(quantity('1'))",
    "quantity('1').compareTo(quantity('1000m')) == 0",
    "quantity('1Ki').add(quantity('1Ki')) == quantity('2Ki')",
    "quantity('1').sub(1).sign() == 0",
    "quantity('2k').asInteger() == 2000",
    "quantity('1.5').asApproximateFloat() == 1.5",
    "!quantity('1.5').isInteger() && isQuantity('5Mi') && !isQuantity('5 Mi')",
    "url('https://example.com:8443/a/b?x=1').getHost() == 'example.com:8443'",
    "url('https://example.com/a').getScheme() == 'https' && url('https://example.com/a').getEscapedPath() == '/a'",
    "url('https://example.com:8443/').getPort() == '8443' && url('https://e.com/').getHostname() == 'e.com'",
    "url('https://x.io/?a=1&a=2').getQuery()['a'] == ['1', '2'] && isURL('https://a.b') && !isURL('nope')",
    "'abc 123 def 456'.find('[0-9]+') == '123' && 'abc 123 def 456'.findAll('[0-9]+') == ['123', '456']",
    "'a1b2'.findAll('[0-9]', 1) == ['1']",
    "[1, 2, 3].isSorted() && ![2, 1].isSorted() && [5, 6, 7].indexOf(6) == 1 && 'hello'.indexOf('l') == 2",
    "[1, 2, 1].lastIndexOf(1) == 2 && 'hello'.lastIndexOf('l') == 3",
    "'A,B'.lowerAscii().split(',').join('-') == 'a-b' && '  x '.trim() == 'x'",
    "isIP('10.0.0.1') && !isIP('10.0.0.256') && isCIDR('10.0.0.0/8') && containsIP('10.0.0.0/8', '10.1.2.3')",
    "[1, 2, 3].exists_one(x, x == 2) && [1, 2].map(x, x * 2) == [2, 4] && [1, 2].filter(x, x > 1) == [2]",
    "'registry.example.com/app'.startsWith('registry.') && 'x.yaml'.endsWith('.yaml') && 'abc'.matches('^a')",
])
def test_kubernetes_library_functions(tmp_path: Path, expr: str) -> None:
    p = one(tmp_path, vap(validations=f'  - expression: "{expr}"\n'))
    assert run(p, pod()) == [], expr


def test_library_errors_are_evaluation_errors(tmp_path: Path) -> None:
    p = one(tmp_path, vap(validations="  - expression: \"quantity(object.metadata.name).isInteger()\"\n"
                                      "  - expression: \"size(lists.range(1000000)) > 0\"\n"))
    got = run(p, pod())
    assert len(got) == 2 and all(v.error for v in got)


# --- bindings and params ------------------------------------------------------------------------

PARAM_POLICY = vap("max-replicas", rules=RULES_APPS, extra_spec="  paramKind: {apiVersion: v1, kind: ConfigMap}\n",
                   validations="  - expression: \"object.spec.replicas <= int(params.data.max)\"\n"
                               "    messageExpression: \"'too many replicas, max ' + params.data.max\"\n")


def binding(ref: str, name: str = "b", match: str = "") -> str:
    return (f"---\napiVersion: admissionregistration.k8s.io/v1\nkind: ValidatingAdmissionPolicyBinding\n"
            f"metadata: {{name: {name}}}\nspec:\n  policyName: max-replicas\n  validationActions: [Deny]\n"
            f"  paramRef: {ref}\n{match}")


def cm(name: str, ns: str, value: int, labels: str = "{}") -> str:
    return (f"---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}, namespace: {ns}, labels: {labels}}}\n"
            f"data: {{max: '{value}'}}\n")


def dep(replicas: int, ns: str = "shop") -> dict:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d", "namespace": ns},
            "spec": {"replicas": replicas}}


def test_binding_param_ref_by_name(tmp_path: Path) -> None:
    (p,) = load_policies([write(tmp_path, PARAM_POLICY + binding("{name: limits, namespace: cfg}")
                                + cm("limits", "cfg", 3) + cm("limits", "other", 100))])
    assert check_object([p], dep(3)) == []
    (v,) = check_object([p], dep(4))
    assert v.message == "too many replicas, max 3" and v.binding == "b"


def test_binding_param_selector_evaluates_every_match_and_namespace_defaults_to_request(tmp_path: Path) -> None:
    text = (PARAM_POLICY + binding("{selector: {matchLabels: {tier: web}}}") + cm("a", "shop", 5, "{tier: web}")
            + cm("b", "shop", 2, "{tier: web}") + cm("c", "shop", 1, "{tier: db}") + cm("d", "else", 1, "{tier: web}"))
    (p,) = load_policies([write(tmp_path, text)])
    assert [v.message for v in check_object([p], dep(3))] == ["too many replicas, max 2"]
    assert check_object([p], dep(2)) == []


@pytest.mark.parametrize(("action", "denied"), [("Deny", True), ("Allow", False)])
def test_missing_params_follow_parameter_not_found_action(tmp_path: Path, action: str, denied: bool) -> None:
    (p,) = load_policies([write(tmp_path, PARAM_POLICY + binding(
        f"{{name: absent, namespace: cfg, parameterNotFoundAction: {action}}}"))])
    got = check_object([p], dep(1))
    assert bool(got) is denied
    if denied:
        assert got[0].error and "no params found" in got[0].message


def test_binding_match_resources_narrow_the_policy(tmp_path: Path) -> None:
    match = "  matchResources:\n    namespaceSelector: {matchLabels: {env: prod}}\n"
    (p,) = load_policies([write(tmp_path, PARAM_POLICY + binding("{name: limits, namespace: cfg}", match=match)
                                + cm("limits", "cfg", 1))])
    prod = {"metadata": {"name": "shop", "labels": {"env": "prod"}}}
    assert len(check_object([p], dep(5), namespace_object=prod)) == 1
    assert check_object([p], dep(5), namespace_object={"metadata": {"name": "shop"}}) == []


def test_unbound_policy_runs_with_null_params(tmp_path: Path) -> None:
    p = one(tmp_path, vap(extra_spec="  paramKind: {apiVersion: v1, kind: ConfigMap}\n",
                          validations="  - expression: \"params == null\"\n"))
    assert check_object([p], pod()) == []


# --- variables: inlined and one-by-one evaluation agree -----------------------------------------

VARS = ("  variables:\n"
        "  - name: names\n    expression: \"object.spec.containers.map(c, c.name) // the names\"\n"
        "  - name: first\n    expression: \"variables.names[0]\"\n")


@pytest.mark.parametrize(("validation", "inlined"), [
    ("variables.first == 'c' && size(variables.names) == 1", True),
    ("variables . first == 'c' && 'variables.first' == 'variables' + '.first'", True),
    ("has(variables.first) && variables.first == 'c'", False),
    ("variables['first'] == 'c'", False),
])
def test_variables_inlined_or_evaluated_give_the_same_answers(tmp_path: Path, validation: str, inlined: bool) -> None:
    p = one(tmp_path, vap(extra_spec=VARS, validations=f'  - expression: "{validation}"\n    message: denied\n'))
    assert p.inlined is inlined
    assert run(p, pod()) == []
    assert [v.message for v in run(p, pod(containers=[{"name": "x"}]))] == ["denied"]


def test_undeclared_or_later_variables_do_not_compile(tmp_path: Path) -> None:
    for spec, validation in [
        (VARS, "variables.nope == 1"),
        ("  variables:\n  - name: a\n    expression: \"variables.b\"\n  - name: b\n    expression: \"1\"\n", "true"),
    ]:
        policies, errors = load_policies_lenient([write(tmp_path, vap("v", f'  - expression: "{validation}"\n',
                                                                          extra_spec=spec))])
        assert policies == [] and "undeclared variable" in errors[0] and "'v'" in errors[0]


def test_failing_variable_fails_only_the_validations_that_use_it(tmp_path: Path) -> None:
    spec = "  variables:\n  - name: bad\n    expression: \"object.spec.nope\"\n"
    for extra in ("", "has(variables.bad) || "):  # inlined, then one by one
        p = one(tmp_path, vap(extra_spec=spec, validations=(
            f"  - expression: \"{extra}variables.bad == 1\"\n  - expression: \"false\"\n    message: plain\n")))
        got = run(p, pod())
        assert [v.error for v in got] == [True, False] and got[1].message == "plain"


def test_oversized_policy_file_and_object_are_refused(tmp_path: Path) -> None:
    big = write(tmp_path, vap("big") + "# " + "x" * (4 * 1024 * 1024) + "\n", "big.yaml")
    policies, errors = load_policies_lenient([big, write(tmp_path, vap("small"), "small.yaml")])
    assert [p.name for p in policies] == ["small"] and any("big.yaml: larger than" in e for e in errors)
    huge = pod(containers=[{"name": f"c{i}", "image": "x" * 1000} for i in range(4000)])
    (v,) = check_object(policies, huge)
    assert v.error and "API server's limit" in v.message
    assert check_object(policies, pod()) == []


@pytest.mark.parametrize(("expr", "holds"), [
    ("cel.bind(names, object.spec.containers.map(c, c.name), size(names) == 1 && names[0] == 'c')", True),
    ("cel.bind(a, 2, cel.bind(b, a * 3, b == 6))", True),
    ("cel.bind(a, 2, a == 3)", False),
    ("'cel.bind(x, 1, 2)'.startsWith('cel.bind')", True),
])
def test_cel_bind(tmp_path: Path, expr: str, holds: bool) -> None:
    p = one(tmp_path, vap(validations=f'  - expression: "{expr}"\n'))
    assert (run(p, pod()) == []) is holds


def test_authorizer_policies_load_and_fail_by_failure_policy(tmp_path: Path) -> None:
    expr = "authorizer.group('apps').resource('deployments').check('create').allowed()"
    for failure, reported in (("Fail", 1), ("Ignore", 0)):
        p = one(tmp_path, vap(extra_spec=f"  failurePolicy: {failure}\n", validations=f'  - expression: "{expr}"\n'))
        got = run(p, pod())
        assert len(got) == reported and all(v.error for v in got)
        assert all(v.message.endswith("group(): authorizer checks need a Kubernetes API server; hullguard has none "
                                      "(authorizer is null)") for v in got)
