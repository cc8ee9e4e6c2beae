"""`hullguard image`, `hullguard fs` and `hullguard sbom`."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable

from hullguard.cli.output import FORMATS, check_output_path, render, write
from hullguard.model import HullguardError

SIZE_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}


def parse_size(text: str) -> int:
    t = text.strip().lower().removesuffix("b").removesuffix("i")
    unit = t[-1] if t and t[-1] in SIZE_UNITS else ""
    try:
        value = float(t[: len(t) - len(unit)] if unit else t)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 512M, 32G)") from None
    if value <= 0:
        raise argparse.ArgumentTypeError("size must be positive")
    return int(value * SIZE_UNITS[unit])


def _output_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("-f", "--format", choices=FORMATS, default=os.environ.get("HULLGUARD_FORMAT", "table"),
                   help="output format (default: table)")
    p.add_argument("-o", "--output", help="write the result to this file instead of stdout")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")


SCANNERS = ("vuln", "secret", "misconfig")
# Findings of these kinds trip --exit-code.
GATED_KINDS = {"vulnerability", "secret", "misconfiguration"}


def _scanners(text: str) -> set[str]:
    chosen = {w.strip() for w in text.split(",") if w.strip()} - {"none"}
    unknown = chosen - set(SCANNERS)
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown scanner {sorted(unknown)[0]!r} (available: {', '.join(SCANNERS)}, or none)")
    return chosen


def _severities(text: str):
    if not text:
        return None
    from hullguard.detect.vulns import parse_severities

    try:
        return parse_severities(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _vuln_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--scanners", type=_scanners, default=os.environ.get("HULLGUARD_SCANNERS", "vuln"),
                   help="what to look for, comma-separated: vuln, secret (in every layer, the image "
                   "config and its history), misconfig (image configuration and final filesystem, plus "
                   "Dockerfiles and Kubernetes manifests found inside), or none for the inventory only "
                   "(default: vuln)")
    p.add_argument("--db", default="", help="advisory database: a SQLite path or postgresql:// URL "
                   "(default: $HULLGUARD_DB, else the cache; the bundled snapshot on first use)")
    p.add_argument("--severity", type=_severities, default=os.environ.get("HULLGUARD_SEVERITY", ""),
                   help="report only these severities, e.g. HIGH,CRITICAL")
    p.add_argument("--ignore-unfixed", action="store_true", help="hide vulnerabilities with no fixed version")
    p.add_argument("--exit-code", type=int, default=0,
                   help="exit with this code when any vulnerability remains after filtering (CI gate)")
    p.add_argument("--ignorefile", default=os.environ.get("HULLGUARD_IGNOREFILE", ""),
                   help="YAML ignore file (default: ./.hullguardignore when present)")
    p.add_argument("--vex", action="append", default=[], metavar="FILE",
                   help="OpenVEX or CycloneDX VEX document; not_affected/fixed statements suppress findings")
    p.add_argument("--show-suppressed", action="store_true",
                   help="list what VEX statements and the ignore file suppressed, with the justification "
                   "(table, JSON, CycloneDX analysis, SARIF suppressions); they never trip --exit-code")


def _scan_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--cache-dir", default=os.environ.get("HULLGUARD_CACHE_DIR", ""),
                   help="layer cache directory (default: $XDG_CACHE_HOME/hullguard)")
    p.add_argument("--no-cache", action="store_true", help="do not read or write the layer cache")
    p.add_argument("--max-uncompressed", type=parse_size, default=parse_size("32G"),
                   help="stop when the image expands beyond this many bytes (default: 32G)")
    p.add_argument("--max-entries", type=int, default=10_000_000,
                   help="stop when the image holds more tar entries than this (default: 10000000)")


def register(sub: argparse._SubParsersAction) -> None:
    image = sub.add_parser(
        "image", help="scan a container image",
        description="Scan a container image. TARGET is docker-archive:PATH[:TAG], oci-dir:PATH[:REF], "
        "oci-archive:PATH[:REF], a registry reference (host:port/repo:tag or ...@sha256:...), "
        "or a bare path (detected).")
    image.add_argument("target", metavar="TARGET")
    _output_options(image)
    _vuln_options(image)
    _scan_options(image)
    image.add_argument("--platform", default=os.environ.get("HULLGUARD_PLATFORM", ""),
                       help="os/arch[/variant] to pick from a multi-platform image (default: this host's)")
    image.add_argument("--insecure", action="store_true", help="allow plain-HTTP and unverified-TLS registries")
    image.add_argument("--username", default=os.environ.get("HULLGUARD_USERNAME", ""), help="registry user name")
    image.add_argument("--password", default=os.environ.get("HULLGUARD_PASSWORD", ""),
                       help="registry password or token (prefer HULLGUARD_PASSWORD)")
    image.add_argument("--timeout", type=float, default=30.0, help="registry timeout in seconds (default: 30)")
    image.add_argument("--attest", metavar="KEY", default="",
                       help="sign the CycloneDX SBOM and the scan result with this cosign-format key and attach "
                       "them to the registry image as attestations (password from COSIGN_PASSWORD)")
    image.set_defaults(func=_image)

    fs = sub.add_parser("fs", help="scan a root filesystem or project directory",
                        description="Scan a directory: an unpacked root filesystem or a project checkout.")
    fs.add_argument("path", metavar="PATH")
    _output_options(fs)
    _vuln_options(fs)
    fs.set_defaults(func=_fs)

    sbom = sub.add_parser("sbom", help="read a CycloneDX or SPDX JSON SBOM as the input",
                          description="Read a CycloneDX (1.2-1.6) or SPDX (2.2/2.3) JSON SBOM, ours or "
                          "another tool's, and report on its packages.")
    sbom.add_argument("file", metavar="FILE", help="SBOM file, or - for stdin")
    _output_options(sbom)
    _vuln_options(sbom)
    sbom.set_defaults(func=_sbom)


class _Progress:
    """A rich progress bar on stderr; nothing at all when quiet or not a terminal."""

    def __init__(self, quiet: bool) -> None:
        self.bar = None
        if quiet or not sys.stderr.isatty():
            return
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                            TimeElapsedColumn(), console=Console(stderr=True), transient=True)
        self.task = None

    def __enter__(self) -> Callable[[str, int, int], None] | None:
        if self.bar is None:
            return None
        self.bar.start()

        def update(desc: str, done: int, total: int) -> None:
            if self.task is None:
                self.task = self.bar.add_task(desc, total=total or None)
            self.bar.update(self.task, description=desc, completed=done, total=total or None)

        return update

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()


def _options(args: argparse.Namespace):
    from hullguard.image.source import Platform
    from hullguard.scan import ScanOptions

    analyzers = None
    if "secret" in getattr(args, "scanners", ()):
        # Secret scanning reads nearly every text file, so it runs only when asked for.
        from hullguard.detect.secrets.analyzer import SecretAnalyzer
        from hullguard.inventory.registry import all_analyzers

        analyzers = [*all_analyzers(), SecretAnalyzer()]
    return ScanOptions(
        analyzers=analyzers,
        misconfig="misconfig" in getattr(args, "scanners", ()),
        cache_dir=getattr(args, "cache_dir", ""),
        use_cache=not getattr(args, "no_cache", False),
        platform=Platform.parse(args.platform) if getattr(args, "platform", "") else None,
        insecure=getattr(args, "insecure", False),
        username=getattr(args, "username", ""),
        password=getattr(args, "password", ""),
        timeout=getattr(args, "timeout", 30.0),
        max_uncompressed=getattr(args, "max_uncompressed", 32 * 1024**3),
        max_entries=getattr(args, "max_entries", 10_000_000),
    )


def _detect(result, args: argparse.Namespace):
    """Run the chosen scanners over the inventory, then filter what the user asked to see."""
    if "secret" in args.scanners and (result.artifact.config or result.artifact.history):
        from hullguard.detect.secrets.analyzer import redact_image_config, redact_text, scan_image_config

        art = result.artifact
        result.findings = [*result.findings, *scan_image_config(art.config, art.history)]
        # The findings mask what they found; the report must not print the same values elsewhere.
        art.config, art.history = redact_image_config(art.config, art.history)
        for layer in result.layers:
            layer.created_by = redact_text(layer.created_by, "history")
    if "misconfig" in args.scanners:
        _misconfig_details(result, args.severity)
    if "vuln" not in args.scanners:
        return result
    from hullguard.detect.vulns import apply, filter_findings, sort_by_risk
    from hullguard.vulndb import open_for_scan

    severities = args.severity if args.severity else None
    store = open_for_scan(args.db, quiet=args.quiet)
    try:
        result = apply(result, store)
    finally:
        close = getattr(store, "close", None)
        if close:
            close()
    result.findings = sort_by_risk(filter_findings(result.findings, severities=severities,
                                                   ignore_unfixed=args.ignore_unfixed))
    return result


def _misconfig_details(result, severities) -> None:
    """Name the build step behind each misconfiguration (after secrets in the history were masked),
    apply --severity, which the vulnerability filter leaves to each kind, and list the worst first."""
    _mask_env_secrets(result)
    created_by = {layer.digest: layer.created_by for layer in result.layers}
    others, misconf = [], []
    for f in result.findings:
        if f.kind != "misconfiguration":
            others.append(f)
            continue
        if severities and f.severity not in severities:
            continue
        step = created_by.get(f.location.layer) if f.location and f.location.layer else None
        if step:
            f.details = {**f.details, "layer_created_by": " ".join(step.split())[:300]}
        misconf.append(f)
    misconf.sort(key=lambda f: (-int(f.severity), f.rule_id, f.location.path if f.location else f.target))
    result.findings = [*others, *misconf]


def _mask_env_secrets(result) -> None:
    """A secret that HG-IMG-006 found in Env is masked in its finding; the report must not print it
    in the config, the history (``ENV K=v`` is recorded there) or the layer list either."""
    art = result.artifact
    env = art.config.get("Env") if isinstance(art.config, dict) else None
    if not isinstance(env, list):
        return
    values = set()
    for f in result.findings:
        index = f.details.get("index") if f.rule_id == "HG-IMG-006" else None
        if isinstance(index, int) and 0 < index <= len(env) and isinstance(env[index - 1], str):
            value = env[index - 1].partition("=")[2].strip().strip("\"'")
            if len(value) >= 4:  # shorter values would mask unrelated text everywhere
                values.add(value)
    if not values:
        return

    def mask(text: str) -> str:
        for value in sorted(values, key=len, reverse=True):
            text = text.replace(value, value[:2] + "*" * max(0, min(len(value), 12) - 2))
        return text

    art.config = {**art.config, "Env": [mask(e) if isinstance(e, str) else e for e in env]}
    art.history = [{**h, "created_by": mask(h["created_by"])} if isinstance(h.get("created_by"), str) else h
                   for h in art.history]
    for layer in result.layers:
        layer.created_by = mask(layer.created_by)


def _suppress(result, args: argparse.Namespace):
    """Apply the ignore file and VEX statements; what they hide is reported, never silently lost."""
    ignorefile = args.ignorefile or (".hullguardignore" if os.path.isfile(".hullguardignore") else "")
    if not (ignorefile or args.vex) or not result.findings:
        return result
    shown: list = []
    if args.vex:
        from hullguard.policy.vex import apply_vex, load_vex

        outcome = apply_vex(result.findings, load_vex(args.vex))
        result.findings = outcome.kept
        shown.extend(_mark(f, "vex", st.summary()) for f, st in outcome.suppressed)
        if outcome.suppressed:
            result.warnings.append(f"{len(outcome.suppressed)} finding(s) suppressed by VEX statements")
    if ignorefile:
        from hullguard.policy.ignore import apply_ignores, load_ignore_file

        outcome = apply_ignores(result.findings, load_ignore_file(ignorefile))
        result.findings = outcome.kept
        shown.extend(_mark(f, "ignorefile", {"id": rule.id, "reason": rule.reason, "source": rule.source,
                                             **({"expires": rule.expires.isoformat()} if rule.expires else {})})
                     for f, rule in outcome.suppressed)
        for rule in outcome.expired:
            result.warnings.append(f"{ignorefile}: ignore entry {rule.id} expired on {rule.expires}; "
                                   "it no longer suppresses anything")
        if outcome.suppressed:
            result.warnings.append(f"{len(outcome.suppressed)} finding(s) suppressed by {ignorefile}")
    if getattr(args, "show_suppressed", False):
        result.findings = [*result.findings, *shown]
    return result


def _mark(finding, how: str, why: dict):
    """A suppressed finding kept for --show-suppressed: ``details["suppressed"]`` says by what, and a
    VEX statement also sits in ``details["vex"]``, where the CycloneDX reporter turns it into ``analysis``."""
    extra = {"suppressed": how, "vex": why} if how == "vex" else {"suppressed": how, "ignore": why}
    finding.details = {**finding.details, **extra}
    return finding


def suppressed(finding) -> bool:
    return bool(finding.details.get("suppressed"))


def _emit(result, args: argparse.Namespace) -> int:
    result = _suppress(_detect(result, args), args)
    write(render(result, args.format), args.output)
    if getattr(args, "attest", ""):
        _attest(result, args)
    if result.warnings and not args.quiet:
        shown = result.warnings[:5]
        for w in shown:
            print(f"hullguard: warning: {w}", file=sys.stderr)
        if len(result.warnings) > len(shown):
            print(f"hullguard: {len(result.warnings) - len(shown)} more warnings (see --format json)",
                  file=sys.stderr)
    if args.exit_code and any(f.kind in GATED_KINDS and not suppressed(f) for f in result.findings):
        return args.exit_code
    return 0


def _attest(result, args: argparse.Namespace) -> None:
    """Attach what this scan saw to the very manifest it scanned: by digest, never the tag again."""
    import json

    from hullguard.supply.attest import attach_scan_attestations

    art = result.artifact
    if art.type != "registry" or not art.manifest_digest:
        raise HullguardError("--attest needs a registry image (the attestations are stored beside it)")
    from hullguard.image.registry import Reference

    ref = Reference.parse(args.target)
    reference = f"{ref.registry}/{ref.repository}@{art.manifest_digest}"
    sbom_doc = json.loads(render(result, "cyclonedx"))
    scan_doc = json.loads(render(result, "json"))
    for line in attach_scan_attestations(reference, sbom_doc, scan_doc, args.attest, insecure=args.insecure):
        if not args.quiet:
            print(f"hullguard: attested {line}", file=sys.stderr)


def _image(args: argparse.Namespace) -> int:
    from hullguard.scan import scan_image

    check_output_path(args.output)
    if args.attest and not os.path.isfile(args.attest):
        raise HullguardError(f"--attest key {args.attest} not found")
    opts = _options(args)
    with _Progress(args.quiet) as progress:
        opts.progress = progress
        result = scan_image(args.target, opts)
    return _emit(result, args)


def _fs(args: argparse.Namespace) -> int:
    from hullguard.scan import scan_fs

    check_output_path(args.output)
    if not os.path.isdir(args.path):
        raise HullguardError(f"{args.path} is not a directory")
    result = scan_fs(args.path, _options(args))
    return _emit(result, args)


def _sbom(args: argparse.Namespace) -> int:
    from hullguard.inventory.sbom_in import read_sbom

    check_output_path(args.output)
    if args.file == "-":
        data = sys.stdin.buffer.read(512 * 1024 * 1024 + 1)
    else:
        try:
            with open(args.file, "rb") as f:
                data = f.read(512 * 1024 * 1024 + 1)
        except OSError as exc:
            raise HullguardError(f"cannot read {args.file}: {exc.strerror}") from None
    result = read_sbom(data, args.file)
    return _emit(result, args)
