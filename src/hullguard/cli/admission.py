"""`hullguard admission serve|manifests|certs`."""

from __future__ import annotations

import argparse
import os
import sys

from hullguard.model import HullguardError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("admission", help="Kubernetes admission webhook (validating and mutating)",
                       description="Run hullguard as a Kubernetes validating and mutating admission webhook, "
                       "or print the manifests that install it.")
    asub = p.add_subparsers(dest="admission_command", metavar="ACTION", parser_class=type(p))

    s = asub.add_parser("serve", help="serve AdmissionReview over HTTPS (/validate, /mutate)",
                        description="Serve admission.k8s.io/v1 AdmissionReview on /validate and /mutate, plus "
                        "/healthz, /readyz and /metrics. Decisions are logged as JSON lines.")
    s.add_argument("--policy", default=os.environ.get("HULLGUARD_ADMISSION_POLICY", ""),
                   help="policy YAML file (see docs/admission.md), reloaded when it changes; without one every "
                   "request is admitted")
    s.add_argument("--cert", required=True, help="PEM serving certificate (chain); reloaded when it changes")
    s.add_argument("--key", required=True, help="PEM private key of the certificate; reloaded when it changes")
    s.add_argument("--host", default="0.0.0.0", help="address to listen on (default: 0.0.0.0)")
    s.add_argument("--port", type=int, default=8443, help="port to listen on (default: 8443)")
    s.add_argument("--log-file", default="", help="append decision records here instead of stderr")
    s.set_defaults(func=_serve)

    m = asub.add_parser("manifests", help="print the YAML that installs the webhook",
                        description="Print Namespace, ServiceAccount, RBAC, Secret, ConfigMap, Deployment, Service "
                        "and Mutating/ValidatingWebhookConfiguration objects as one multi-document YAML.")
    m.add_argument("--namespace", default="hullguard-system", help="namespace to install into")
    m.add_argument("--image", required=True, help="hullguard container image (pin it by digest)")
    m.add_argument("--cert", required=True, help="PEM serving certificate for the Service's DNS names")
    m.add_argument("--key", required=True, help="PEM private key of the serving certificate")
    m.add_argument("--ca", required=True, help="PEM CA certificate that signed --cert (becomes caBundle)")
    m.add_argument("--policy", default="", help="policy YAML to put in the ConfigMap (default: a starter policy)")
    m.add_argument("--name", default="hullguard-admission", help="name of every object (default: hullguard-admission)")
    m.add_argument("--replicas", type=int, default=2)
    m.add_argument("--timeout-seconds", type=int, default=10, help="webhook timeoutSeconds (1-30, default 10)")
    m.add_argument("--failure-policy", choices=("Fail", "Ignore"), default="Fail",
                   help="what the API server does when the webhook cannot answer (default: Fail)")
    m.add_argument("--operations", default="CREATE,UPDATE",
                   help="operations sent to the webhook (default: CREATE,UPDATE; add DELETE for CEL policies on it)")
    m.add_argument("-o", "--output", help="write the YAML here instead of stdout")
    m.set_defaults(func=_manifests)

    c = asub.add_parser("certs", help="generate a test CA and serving certificate",
                        description="Write ca.crt, tls.crt and tls.key (ECDSA P-256) for the Service's DNS names. "
                        "For tests and first installs; use cert-manager or your PKI in production.")
    c.add_argument("--out-dir", required=True, help="directory to write ca.crt, tls.crt and tls.key into")
    c.add_argument("--namespace", default="hullguard-system")
    c.add_argument("--service", default="hullguard-admission")
    c.add_argument("--name", action="append", default=[], help="extra DNS name or IP for the certificate")
    c.add_argument("--days", type=int, default=365)
    c.set_defaults(func=_certs)
    p.set_defaults(func=lambda args: (p.print_help(sys.stderr), 2)[1])


def _read(path: str, what: str, limit: int = 1 << 20) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read(limit)
    except OSError as exc:
        raise HullguardError(f"cannot read {what} {path}: {exc.strerror}") from None


def _serve(args: argparse.Namespace) -> int:
    import signal
    import threading

    from hullguard.admission.config import AdmissionConfig, load_config
    from hullguard.admission.engine import Engine
    from hullguard.admission.server import DecisionLog, PolicyReloader, TLSFiles, WebhookServer, serve

    if not 0 <= args.port < 65536:
        raise HullguardError(f"--port {args.port} is not a TCP port")
    config = load_config(args.policy) if args.policy else AdmissionConfig(source="<none>")
    engine = Engine(config)
    tls = TLSFiles(args.cert, args.key)
    if args.log_file:
        try:
            stream = open(args.log_file, "a", encoding="utf-8")  # noqa: SIM115 - open for the server's life
        except OSError as exc:
            raise HullguardError(f"cannot open --log-file {args.log_file}: {exc.strerror}") from None
    else:
        stream = sys.stderr
    try:
        server = WebhookServer((args.host, args.port), engine, tls, log=DecisionLog(stream))
    except OSError as exc:
        raise HullguardError(f"cannot listen on {args.host}:{args.port}: {exc.strerror}") from None

    def stop(_sig: int, _frame: object) -> None:
        server.ready = False  # /readyz fails first, so endpoints drop this pod while it finishes
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    reloader = PolicyReloader(args.policy, server).start() if args.policy else None
    server.event("listening", address=f"{args.host}:{server.port}", policies=[p.name for p in config.policies],
                 policy_file=config.source)
    serve(server)
    if reloader:
        reloader.stop()
    server.engine.deps.close()
    return 0


def _manifests(args: argparse.Namespace) -> int:
    from hullguard.admission import manifests
    from hullguard.admission.config import load_config
    from hullguard.cli.output import check_output_path, write

    check_output_path(args.output)
    ops = [o.strip().upper() for o in args.operations.split(",") if o.strip()]
    if not ops or set(ops) - {"CREATE", "UPDATE", "DELETE", "CONNECT"}:
        raise HullguardError(f"--operations {args.operations!r}: use CREATE, UPDATE, DELETE, CONNECT")
    policy_text = manifests.DEFAULT_POLICY
    if args.policy:
        load_config(args.policy)  # refuse to ship a policy the server would refuse to start with
        policy_text = _read(args.policy, "policy file", 4 << 20).decode("utf-8", "replace")
    opts = manifests.Options(
        namespace=args.namespace, image=args.image, cert_pem=_read(args.cert, "certificate"),
        key_pem=_read(args.key, "key"), ca_pem=_read(args.ca, "CA certificate"), policy_text=policy_text,
        name=args.name, replicas=args.replicas, timeout_seconds=args.timeout_seconds,
        failure_policy=args.failure_policy, operations=ops)
    write(manifests.render(manifests.build(opts)).encode(), args.output)
    return 0


def _certs(args: argparse.Namespace) -> int:
    from hullguard.admission.certs import generate, service_names

    names = service_names(args.service, args.namespace) + list(args.name)
    paths = generate(args.out_dir, names, days=args.days)
    print(f"wrote {paths.ca}, {paths.cert}, {paths.key}", file=sys.stderr)
    return 0
