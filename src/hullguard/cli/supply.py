"""`hullguard keys generate | sign | verify | attest | verify-attestation`: cosign-compatible supply chain."""

from __future__ import annotations

import argparse
import json
import os
import sys

from hullguard.model import HullguardError

EXIT_OK, EXIT_UNVERIFIED = 0, 1


def _registry_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--insecure", action="store_true", help="allow plain-HTTP and unverified-TLS registries")
    p.add_argument("--username", default=os.environ.get("HULLGUARD_USERNAME", ""), help="registry user name")
    p.add_argument("--password", default=os.environ.get("HULLGUARD_PASSWORD", ""),
                   help="registry password or token (prefer HULLGUARD_PASSWORD)")
    p.add_argument("--timeout", type=float, default=30.0, help="registry timeout in seconds (default: 30)")


def _output_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--output", choices=("text", "json"), default="text", help="result format (default: text)")


def register(sub: argparse._SubParsersAction) -> None:
    keys = sub.add_parser("keys", help="generate cosign-compatible key pairs")
    ksub = keys.add_subparsers(dest="keys_command", metavar="ACTION", parser_class=type(keys))
    gen = ksub.add_parser("generate", help="write an encrypted ECDSA P-256 private key and its public key")
    gen.add_argument("--output-key-prefix", default="cosign", metavar="PREFIX",
                     help="write PREFIX.key and PREFIX.pub (default: cosign)")
    gen.add_argument("--format", choices=("cosign", "pkcs8"), default="cosign",
                     help="private key format: cosign's ENCRYPTED SIGSTORE PRIVATE KEY (default) or "
                          "standard encrypted PKCS#8")
    gen.add_argument("--force", action="store_true", help="overwrite existing files")
    gen.set_defaults(func=_keys_generate)
    keys.set_defaults(func=lambda args: (keys.print_help(sys.stderr), 2)[1])

    sign = sub.add_parser("sign", help="sign an image's manifest digest and push the signature (cosign format)")
    sign.add_argument("image", metavar="IMAGE")
    sign.add_argument("--key", required=True, help="private key file (cosign.key or PKCS#8 PEM)")
    sign.add_argument("-a", "--annotation", action="append", default=[], metavar="KEY=VALUE",
                      help="extra signed claim in the payload's 'optional' section (repeatable)")
    _registry_flags(sign)
    _output_flag(sign)
    sign.set_defaults(func=_sign)

    verify = sub.add_parser("verify", help="verify an image's cosign signatures against public keys")
    verify.add_argument("image", metavar="IMAGE")
    verify.add_argument("--key", action="append", default=[], metavar="PUB",
                        help="public key file (repeatable: any of them may have signed)")
    verify.add_argument("--require-all", action="store_true", help="every --key must have a valid signature")
    verify.add_argument("--trust-root", action="append", default=[], metavar="PEM",
                        help="keyless: Fulcio root (and intermediate) certificates to trust (repeatable)")
    verify.add_argument("--rekor-key", action="append", default=[], metavar="PUB",
                        help="keyless: Rekor public key whose bundles to trust (repeatable)")
    verify.add_argument("--certificate-identity", default=None, metavar="ID",
                        help="keyless: required signer (certificate e-mail or URI)")
    verify.add_argument("--certificate-oidc-issuer", default=None, metavar="URL",
                        help="keyless: required OIDC issuer of the signer's certificate")
    _registry_flags(verify)
    _output_flag(verify)
    verify.set_defaults(func=_verify)

    att = sub.add_parser("attest", help="attach a signed in-toto attestation (DSSE) to an image")
    att.add_argument("image", metavar="IMAGE")
    att.add_argument("--key", required=True, help="private key file")
    att.add_argument("--predicate", required=True, metavar="FILE", help="predicate file (JSON; any text for custom)")
    att.add_argument("--type", default="custom", metavar="TYPE",
                     help="cyclonedx, vuln, custom (default), spdxjson, slsaprovenance, openvex, or a URI")
    att.add_argument("--replace", action="store_true", help="replace earlier attestations of the same type")
    _registry_flags(att)
    _output_flag(att)
    att.set_defaults(func=_attest)

    va = sub.add_parser("verify-attestation", help="verify an image's attestations: signature, subject, type")
    va.add_argument("image", metavar="IMAGE")
    va.add_argument("--key", required=True, action="append", metavar="PUB", help="public key file (repeatable)")
    va.add_argument("--type", default=None, metavar="TYPE", help="required predicate type (short name or URI)")
    va.add_argument("--require-all", action="store_true", help="every --key must have a valid attestation")
    va.add_argument("--print-predicate", action="store_true", help="print the verified predicates (JSON)")
    _registry_flags(va)
    _output_flag(va)
    va.set_defaults(func=_verify_attestation)


def _conn(args: argparse.Namespace) -> dict[str, object]:
    return {"insecure": args.insecure, "timeout": args.timeout, "username": args.username or None,
            "password": args.password or None}


def _emit(doc: dict[str, object], args: argparse.Namespace, text: str) -> None:
    if args.output == "json":
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
    else:
        sys.stdout.write(text)
    sys.stdout.flush()


def _keys_generate(args: argparse.Namespace) -> int:
    from hullguard.supply.keys import generate_keypair, read_password

    prefix = args.output_key_prefix
    key_path, pub_path = f"{prefix}.key", f"{prefix}.pub"
    for path in (key_path, pub_path):
        if os.path.exists(path) and not args.force:
            raise HullguardError(f"{path} exists; use --force to overwrite")
        parent = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(parent):
            raise HullguardError(f"directory {parent} does not exist")
    password = read_password("Enter password for private key: ", confirm=True)
    private, public = generate_keypair(password, fmt=args.format)
    _write_file(key_path, private, 0o600)
    _write_file(pub_path, public, 0o644)
    print(f"Private key written to {key_path}", file=sys.stderr)
    print(f"Public key written to {pub_path}", file=sys.stderr)
    return EXIT_OK


def _write_file(path: str, data: bytes, mode: int) -> None:
    try:
        if os.path.lexists(path):
            os.unlink(path)  # never write through a planted symlink
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
    except OSError as exc:
        raise HullguardError(f"cannot write {path}: {exc.strerror or exc}") from None


def _annotations(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        k, sep, v = item.partition("=")
        if not sep or not k:
            raise HullguardError(f"annotation {item!r} is not KEY=VALUE")
        out[k] = v
    return out


def _sign(args: argparse.Namespace) -> int:
    from hullguard.supply.keys import load_private_key
    from hullguard.supply.sign import sign_image

    annotations = _annotations(args.annotation)
    key = load_private_key(args.key)
    res = sign_image(args.image, key, annotations=annotations or None, **_conn(args))  # type: ignore[arg-type]
    where = f"{res.docker_reference}:{res.signature_tag}"
    text = (f"Pushed signature for {res.docker_reference}@{res.digest} to {where}\n" if res.appended
            else f"{res.docker_reference}@{res.digest} already carries this signature ({where})\n")
    _emit(vars(res), args, text)
    return EXIT_OK


def _verify(args: argparse.Namespace) -> int:
    from hullguard.supply.verify import verify_image

    trust = None
    if args.trust_root or args.rekor_key:
        from hullguard.supply.keyless import load_trust_root

        trust = load_trust_root(args.trust_root, args.rekor_key)
    elif not args.key:
        raise HullguardError("give --key PUB (or --trust-root and --rekor-key for keyless signatures)")
    if (args.certificate_identity or args.certificate_oidc_issuer) and trust is None:
        raise HullguardError("--certificate-identity/--certificate-oidc-issuer need --trust-root and --rekor-key")
    res = verify_image(args.image, args.key, require_all=args.require_all, trust_root=trust,  # type: ignore[arg-type]
                       identity=args.certificate_identity, oidc_issuer=args.certificate_oidc_issuer, **_conn(args))
    _emit(res.to_dict(), args, _text(res, "signature"))
    return EXIT_OK if res.verified else EXIT_UNVERIFIED


def _text(res, what: str) -> str:  # type: ignore[no-untyped-def]
    lines = [f"{res.reference} resolves to {res.digest}"]
    for c in res.checks:
        if c.ok:
            ref = f" (docker-reference {c.docker_reference})" if c.docker_reference else ""
            lines.append(f"  OK    {c.digest} signed by {c.key}{ref}: {c.reason}")
        else:
            lines.append(f"  FAIL  {c.reason}" + (f" [key {c.key}]" if c.key else ""))
    lines.append(("Verified: " if res.verified else "NOT verified: ") + res.reason)
    return "\n".join(lines) + "\n"


def _attest(args: argparse.Namespace) -> int:
    from hullguard.supply.attest import attest_image, load_predicate, predicate_type_uri
    from hullguard.supply.keys import load_private_key

    predicate_type_uri(args.type)  # reject a bad type before asking for a password
    predicate = load_predicate(args.predicate, args.type)
    key = load_private_key(args.key)
    res = attest_image(args.image, key, predicate, args.type, replace=args.replace, **_conn(args))  # type: ignore[arg-type]
    _emit(vars(res), args, f"Pushed {res.predicate_type} attestation for {res.repository}@{res.digest} "
                          f"to {res.repository}:{res.attestation_tag}\n")
    return EXIT_OK


def _verify_attestation(args: argparse.Namespace) -> int:
    from hullguard.supply.verify import verify_attestation

    res = verify_attestation(args.image, args.key, predicate_type=args.type, require_all=args.require_all,
                             **_conn(args))  # type: ignore[arg-type]
    if args.print_predicate and args.output == "text":
        text = _text(res, "attestation")
        sys.stderr.write(text)
        sys.stdout.write(json.dumps([s.get("predicate") for s in res.statements], indent=2) + "\n")
    else:
        _emit(res.to_dict(), args, _text(res, "attestation"))
    return EXIT_OK if res.verified else EXIT_UNVERIFIED
