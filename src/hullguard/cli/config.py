"""`hullguard config` (Dockerfiles and Kubernetes manifests) and `hullguard rules list|explain`."""

from __future__ import annotations

import argparse
import sys

from hullguard.cli.output import check_output_path, render, write
from hullguard.model import Artifact, HullguardError, ScanResult, Severity


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
    p.set_defaults(func=_config)

    rules = sub.add_parser("rules", help="list and explain the built-in rules")
    rsub = rules.add_subparsers(dest="rules_command", metavar="ACTION", parser_class=type(rules))
    lst = rsub.add_parser("list", help="every rule with its id, severity and title")
    lst.set_defaults(func=_rules_list)
    exp = rsub.add_parser("explain", help="what a rule checks, why it matters and how to fix it")
    exp.add_argument("rule_id", metavar="ID")
    exp.set_defaults(func=_rules_explain)
    rules.set_defaults(func=lambda args: (rules.print_help(sys.stderr), 2)[1])


def _config(args: argparse.Namespace) -> int:
    from hullguard.detect.misconfig.config import check_config_paths

    check_output_path(args.output)
    try:
        result = check_config_paths(args.paths, pss_level=args.pss_level, pss_version=args.pss_version,
                                    stdin=sys.stdin.buffer if "-" in args.paths else None)
    except ValueError as exc:
        raise HullguardError(str(exc)) from None
    if not args.quiet:
        for line in [*result.errors, *result.notices]:
            print(f"hullguard: {line}", file=sys.stderr)
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


def _all_rules() -> list:
    from hullguard.detect.misconfig.rules import all_rules
    from hullguard.detect.secrets.rules import catalog

    return [*all_rules(), *catalog()]


def _rules_list(args: argparse.Namespace) -> int:
    for rule in _all_rules():
        ref = f"CIS {rule.cis}" if rule.cis else f"PSS {rule.pss}" if rule.pss else ""
        print(f"{rule.id:<12} {rule.severity.name:<8} {rule.title}{'  [' + ref + ']' if ref else ''}")
    return 0


def _rules_explain(args: argparse.Namespace) -> int:
    from hullguard.detect.misconfig.rules import get_rule

    rule = get_rule(args.rule_id) or next(
        (r for r in _all_rules() if r.id.upper() == args.rule_id.upper()), None)
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
