"""`hullguard config` (Dockerfiles and Kubernetes manifests) and `hullguard rules list|explain`."""

from __future__ import annotations

import argparse
import io
import os
import sys
from typing import Any

from hullguard.cli.output import check_output_path, render, write
from hullguard.model import Artifact, Finding, HullguardError, Location, ScanResult, Severity


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "config", help="check Dockerfiles and Kubernetes manifests",
        description="Check Dockerfiles and Kubernetes manifests (files, folders, or - for stdin, so "
        "`helm template ... | hullguard config -` works): CIS Docker Benchmark checks, Pod Security "
        "Standards, least privilege, RBAC and NetworkPolicy coverage.")
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.add_argument("-f", "--format", choices=("table", "json", "sarif", "markdown", "html"), default="table",
                   help="output format")
    p.add_argument("-o", "--output", help="write the result to this file instead of stdout")
    p.add_argument("-q", "--quiet", action="store_true", help="no notices on stderr")
    p.add_argument("--pss-level", choices=("baseline", "restricted"),
                   help="report only Pod Security Standards violations at this level")
    p.add_argument("--pss-version", default="latest", help="Pod Security Standards version, e.g. v1.30")
    p.add_argument("--severity", default="", help="report only these severities, e.g. HIGH,CRITICAL")
    p.add_argument("--exit-code", type=int, default=0, help="exit with this code when anything is reported")
    p.add_argument("--policy", action="append", default=[], metavar="FILE_OR_DIR",
                   help="ValidatingAdmissionPolicy YAML (CEL) to check Kubernetes objects against; repeatable")
    p.set_defaults(func=_config)

    rules = sub.add_parser("rules", help="list and explain the built-in rules")
    rsub = rules.add_subparsers(dest="rules_command", metavar="ACTION", parser_class=type(rules))
    lst = rsub.add_parser("list", help="every rule with its id, severity and title")
    lst.add_argument("--policy", action="append", default=[], metavar="FILE_OR_DIR",
                     help="also list these ValidatingAdmissionPolicy files (rule ids CEL:<name>)")
    lst.set_defaults(func=_rules_list)
    exp = rsub.add_parser("explain", help="what a rule checks, why it matters and how to fix it")
    exp.add_argument("rule_id", metavar="ID")
    exp.add_argument("--policy", action="append", default=[], metavar="FILE_OR_DIR",
                     help="also look the id up in these ValidatingAdmissionPolicy files")
    exp.set_defaults(func=_rules_explain)
    rules.set_defaults(func=lambda args: (rules.print_help(sys.stderr), 2)[1])


def _config(args: argparse.Namespace) -> int:
    from hullguard.detect.misconfig.config import check_config_paths

    check_output_path(args.output)
    stdin_data = None
    if "-" in args.paths:
        from hullguard.detect.misconfig.kubernetes import MAX_FILE_BYTES

        # Read once: the built-in checks and the CEL policies both need the objects.
        stdin_data = sys.stdin.buffer.read(MAX_FILE_BYTES + 1)
    try:
        result = check_config_paths(args.paths, pss_level=args.pss_level, pss_version=args.pss_version,
                                    stdin=io.BytesIO(stdin_data) if stdin_data is not None else None)
    except ValueError as exc:
        raise HullguardError(str(exc)) from None
    policy_errors: list[str] = []
    if getattr(args, "policy", None):
        cel_findings, policy_errors, notices = _cel_findings(args.paths, args.policy, stdin_data, result.loaded)
        result.findings.extend(cel_findings)
        result.notices.extend(notices)
    if not args.quiet:
        for line in [*result.errors, *result.notices]:
            print(f"hullguard: {line}", file=sys.stderr)
    for line in policy_errors:
        # Broken policies are reported even with --quiet: a silently skipped policy reads as a pass.
        print(f"hullguard: error: {line}", file=sys.stderr)
    if result.objects == 0 and result.errors:
        raise HullguardError(f"nothing could be checked ({len(result.errors)} input error(s))")
    findings = result.findings
    if args.severity:
        wanted = {Severity.parse(w) for w in args.severity.split(",") if w.strip()}
        findings = [f for f in findings if f.severity in wanted]
    findings.sort(key=lambda f: (-int(f.severity), f.rule_id, f.target))
    scan = ScanResult(artifact=Artifact(name=" ".join(args.paths), type="config"), findings=findings)
    write(render(scan, args.format), args.output)
    return args.exit_code if args.exit_code and findings else 0


def _manifest_files(paths: list[str]) -> list[str]:
    from hullguard.detect.misconfig.dockerfile import is_dockerfile_name
    from hullguard.detect.misconfig.kubernetes import YAML_SUFFIXES

    out = []
    for p in paths:
        if p == "-" or (os.path.isfile(p) and not is_dockerfile_name(p)):
            out.append(p)
        elif os.path.isdir(p):
            for root, dirs, files in os.walk(p):
                dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in {"node_modules", "vendor"})
                out.extend(os.path.join(root, f) for f in sorted(files) if f.lower().endswith(YAML_SUFFIXES))
    return out


def _cel_findings(paths: list[str], policy_paths: list[str], stdin_data: bytes | None,
                  loaded: list | None = None) -> tuple[list[Finding], list[str], list[str]]:
    """CEL policy violations of every Kubernetes object under ``paths``, each object sent as a
    CREATE request; (findings, policy errors, notices). ``loaded`` are the objects the built-in
    checks already read from ``paths``; without them the manifests are read again."""
    from hullguard.detect.misconfig.kubernetes import MAX_FILE_BYTES, ManifestResult, load_manifests
    from hullguard.policy.cel import build_request, check_object, load_policies_lenient, policy_rule

    policies, errors = load_policies_lenient(policy_paths)
    if not policies:
        # Asked-for policies that all failed must not read as a clean pass in CI.
        for line in errors:
            print(f"hullguard: error: {line}", file=sys.stderr)
        raise HullguardError(f"no usable policy in --policy ({len(errors)} error(s))")
    scratch = ManifestResult()  # read errors were reported by the built-in checks already
    objs = list(loaded) if loaded is not None else []
    for f in _manifest_files(paths) if loaded is None else ():
        if f == "-":
            objs.extend(load_manifests(stdin_data or b"", "-", scratch))
            continue
        try:
            with open(f, "rb") as fh:
                objs.extend(load_manifests(fh.read(MAX_FILE_BYTES + 1), f, scratch))
        except OSError:
            continue
    # Policies, bindings and their params are inputs, not objects to admit.
    skip = {"ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"}
    objs = [o for o in objs if o.kind not in skip]
    namespaces = {o.name: o.doc for o in objs if o.kind == "Namespace"}
    rules = {p.name: policy_rule(p) for p in policies}
    severity = {p.name: p.severity for p in policies}
    findings: list[Finding] = []
    notices: list[str] = []
    for o in objs:
        request = build_request(o.doc)
        ns = request["namespace"]
        ns_obj: dict[str, Any] | None = namespaces.get(ns) or (
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}} if ns else None)
        ignored: list = []
        for v in check_object(policies, o.doc, request=request, namespace_object=ns_obj, errors=ignored):
            rule = rules[v.policy]
            details: dict[str, Any] = {"resource": o.ref, "message": v.message, "expression": v.expression,
                                       "reason": v.reason, "policy": v.policy}
            if v.binding:
                details["binding"] = v.binding
            if v.error:
                details["evaluation_error"] = True
            findings.append(Finding(kind="misconfiguration", rule_id=rule.id, severity=severity[v.policy],
                                    title=v.message, target=o.ref, location=Location(path=o.path, line=o.line),
                                    fix=rule.remediation, details=details))
        notices.extend(f"{o.path}:{o.line}: policy {v.policy!r} ignored an error (failurePolicy Ignore): "
                       f"{v.message}" for v in ignored)
    return findings, errors, notices


def _all_rules(policy_paths: list[str] | None = None) -> list:
    from hullguard.detect.misconfig.rules import all_rules
    from hullguard.detect.secrets.rules import catalog

    rules = [*all_rules(), *catalog()]
    if policy_paths:
        from hullguard.policy.cel import load_policies_lenient, policy_rule

        policies, errors = load_policies_lenient(policy_paths)
        for line in errors:
            print(f"hullguard: error: {line}", file=sys.stderr)
        rules.extend(policy_rule(p) for p in policies)
    return rules


def _rules_list(args: argparse.Namespace) -> int:
    rules = _all_rules(getattr(args, "policy", None))
    width = max([12, *(len(r.id) for r in rules)])
    for rule in rules:
        ref = f"CIS {rule.cis}" if rule.cis else f"PSS {rule.pss}" if rule.pss else ""
        print(f"{rule.id:<{width}} {rule.severity.name:<8} {rule.title}{'  [' + ref + ']' if ref else ''}")
    return 0


def _rules_explain(args: argparse.Namespace) -> int:
    from hullguard.detect.misconfig.rules import get_rule

    rule = get_rule(args.rule_id) or next(
        (r for r in _all_rules(getattr(args, "policy", None)) if r.id.upper() == args.rule_id.upper()), None)
    if rule is None:
        raise HullguardError(f"no rule {args.rule_id!r} (see 'hullguard rules list')")
    print(f"{rule.id}: {rule.title}\nseverity: {rule.severity.name}")
    if rule.cis:
        print(f"CIS Docker Benchmark: {rule.cis}")
    if rule.pss:
        print(f"Pod Security Standards: {rule.pss}")
    print(f"\nWhat and why:\n  {rule.description}\n\nHow to fix:\n  {rule.remediation}")
    for ref in rule.references:
        print(f"  {ref}")
    return 0
