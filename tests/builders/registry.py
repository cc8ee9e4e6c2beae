"""Run Debian's ``docker-registry`` (CNCF distribution) on loopback, and push to it with skopeo.

with start_registry(tmp_path, auth="basic") as reg:
    push_image(reg, oci_dir, "test/img:1")
    httpx.get(f"{reg.url}/v2/test/img/tags/list", auth=reg.basic_auth)
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.builders.token_server import TokenServer, make_signing_material

DEFAULT_USER = "hullguard"
DEFAULT_PASSWORD = "s3cret-pass"
TOKEN_SERVICE = "hullguard-test-registry"
TOKEN_ISSUER = "hullguard-test-issuer"


class RegistryStartError(RuntimeError):
    pass


@dataclass
class Registry:
    host: str  # "127.0.0.1:PORT", as image references spell it
    auth: str  # "none" | "basic" | "token"
    root: Path
    proc: subprocess.Popen[bytes]
    username: str | None = None
    password: str | None = None
    token_server: TokenServer | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    @property
    def basic_auth(self) -> tuple[str, str] | None:
        return (self.username, self.password) if self.username and self.password else None

    @property
    def creds(self) -> str | None:
        """``user:password`` as skopeo's ``--creds`` wants it."""
        return f"{self.username}:{self.password}" if self.username and self.password else None

    @property
    def log(self) -> Path:
        return self.root / "registry.log"

    def ref(self, repo_tag: str) -> str:
        return f"{self.host}/{repo_tag}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        if self.token_server is not None:
            self.token_server.stop()


def free_port() -> int:
    # A small race (someone else may grab it before the registry binds) is acceptable in tests;
    # start_registry retries on a bind failure.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_htpasswd(path: Path, users: dict[str, str]) -> None:
    """bcrypt entries, the only hash the registry's htpasswd backend accepts."""
    lines = []
    try:
        import bcrypt

        for user, pw in users.items():
            lines.append(f"{user}:{bcrypt.hashpw(pw.encode(), bcrypt.gensalt(rounds=5)).decode()}")
    except ImportError:
        if shutil.which("htpasswd") is None:
            raise RegistryStartError("need the bcrypt package or htpasswd (apache2-utils)") from None
        for user, pw in users.items():
            out = subprocess.run(
                ["htpasswd", "-nbB", "-C", "5", user, pw], capture_output=True, text=True, check=True
            ).stdout.strip()
            lines.append(out)
    path.write_text("\n".join(lines) + "\n")


def _config(root: Path, port: int, auth_yaml: str) -> str:
    return f"""version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: {root}/data
  delete:
    enabled: true
  cache:
    blobdescriptor: inmemory
http:
  addr: 127.0.0.1:{port}
  secret: hullguard-test-secret-not-for-production
{auth_yaml}"""


def _auth_yaml(kind: str, root: Path, token: TokenServer | None) -> str:
    if kind == "none":
        return ""
    if kind == "basic":
        return f"auth:\n  htpasswd:\n    realm: hullguard-basic\n    path: {root}/htpasswd\n"
    if kind == "token":
        assert token is not None
        return (
            "auth:\n  token:\n"
            f"    realm: {token.realm}\n"
            f"    service: {token.service}\n"
            f"    issuer: {token.issuer}\n"
            f"    rootcertbundle: {token.material.cert_path}\n"
        )
    raise ValueError(f"unknown auth {kind!r}")


def start_registry(
    root: Path,
    auth: str = "none",
    username: str = DEFAULT_USER,
    password: str = DEFAULT_PASSWORD,
    token_header_mode: str = "kid",
    anonymous_pull: bool = False,
    timeout: float = 20.0,
) -> Registry:
    """Start a registry storing under ``root``; returns once ``GET /v2/`` answers."""
    binary = shutil.which("docker-registry")
    if binary is None:
        raise RegistryStartError("docker-registry is not installed (apt-get install docker-registry)")
    root.mkdir(parents=True, exist_ok=True)
    users = {username: password}
    token: TokenServer | None = None
    if auth == "basic":
        write_htpasswd(root / "htpasswd", users)
    elif auth == "token":
        material = make_signing_material(root / "token")
        token = TokenServer(
            material,
            users,
            issuer=TOKEN_ISSUER,
            service=TOKEN_SERVICE,
            header_mode=token_header_mode,
            anonymous_pull=anonymous_pull,
        ).start()
    last_err = ""
    for _attempt in range(3):
        port = free_port()
        cfg = root / "config.yml"
        cfg.write_text(_config(root, port, _auth_yaml(auth, root, token)))
        log = open(root / "registry.log", "ab")  # noqa: SIM115 - owned by the child for its lifetime
        proc = subprocess.Popen(
            [binary, "serve", str(cfg)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, "OTEL_TRACES_EXPORTER": "none"},
        )
        log.close()
        reg = Registry(
            f"127.0.0.1:{port}",
            auth,
            root,
            proc,
            username if auth != "none" else None,
            password if auth != "none" else None,
            token,
        )
        if _wait_ready(reg, timeout):
            return reg
        reg.proc.kill()
        reg.proc.wait(timeout=5)
        last_err = (root / "registry.log").read_text(errors="replace")[-2000:]
        if "address already in use" not in last_err:
            break
    if token is not None:
        token.stop()
    raise RegistryStartError(f"registry did not become ready:\n{last_err}")


def _wait_ready(reg: Registry, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=2.0, trust_env=False) as client:
        while time.monotonic() < deadline:
            if reg.proc.poll() is not None:
                return False
            try:
                # 401 counts as up: with auth enabled the anonymous probe is refused by design.
                r = client.get(f"{reg.url}/v2/")
                if r.status_code in (200, 401):
                    return True
            except httpx.TransportError:
                pass
            time.sleep(0.1)
    return False


@contextlib.contextmanager
def running_registry(root: Path, **kw: object) -> Iterator[Registry]:
    reg = start_registry(root, **kw)  # type: ignore[arg-type]
    try:
        yield reg
    finally:
        reg.stop()


def push_image(
    registry: Registry,
    source: Path | str,
    repo_tag: str,
    *,
    source_transport: str = "oci",
    creds: str | None = None,
    timeout: float = 600.0,
) -> str:
    """Copy an image into the registry with skopeo; returns the pushed manifest digest.

    ``source`` is an OCI layout dir (``oci``, optionally ``dir:tag``), or an archive path
    with ``source_transport`` ``docker-archive``/``oci-archive``. Pull it back by tag
    with ``registry.ref(repo_tag)`` or by digest with ``f"{registry.host}/{repo}@{digest}"``.
    """
    if shutil.which("skopeo") is None:
        raise RegistryStartError("skopeo is not installed")
    dest = f"docker://{registry.ref(repo_tag)}"
    with tempfile.TemporaryDirectory(prefix="hg-push-") as tmp:
        digest_file = Path(tmp) / "digest"
        cmd = ["skopeo", "--insecure-policy", "copy", "-q", "--dest-tls-verify=false"]
        cmd += ["--digestfile", str(digest_file)]
        creds = creds or registry.creds
        if creds:
            cmd += ["--dest-creds", creds]
        cmd += [f"{source_transport}:{source}", dest]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"skopeo copy failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")
        return digest_file.read_text().strip()
