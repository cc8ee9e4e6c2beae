"""Registry failure modes against a misbehaving server on 127.0.0.1 (the happy paths and real
auth run against Debian's docker-registry in tests/integration)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from hullguard.image.registry import Reference
from hullguard.model import HullguardError
from hullguard.scan import ScanOptions, scan_image

BEHAVIOUR: dict[str, tuple[int, dict[str, str], bytes]] = {}


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        repo = self.path.split("/")[2]
        status, headers, body = BEHAVIOUR[repo]
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


CASES = {
    "broken": (500, {}, b"oops", "answered HTTP 500"),
    "basic": (401, {"WWW-Authenticate": 'Basic realm="x"'}, b"", "requires a login"),
    "weird": (200, {"Content-Type": "application/vnd.example+json"},
              json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.example+json"}).encode(),
              "unknown media type"),
    "schema1": (200, {"Content-Type": "application/vnd.docker.distribution.manifest.v1+prettyjws"},
                json.dumps({"schemaVersion": 1, "name": "x"}).encode(), "schema 1"),
    "notjson": (200, {"Content-Type": "application/vnd.oci.image.manifest.v1+json"}, b"<html>", "not valid JSON"),
    "helm": (200, {"Content-Type": "application/vnd.oci.image.manifest.v1+json"}, json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.cncf.helm.config.v1+json", "digest": "sha256:" + "a" * 64,
                   "size": 1}, "layers": []}).encode(), "not a container image"),
}


@pytest.mark.parametrize("repo", sorted(CASES))
def test_registry_failures_are_one_line_errors(server: str, repo: str) -> None:
    status, headers, body, expected = CASES[repo]
    BEHAVIOUR[repo] = (status, headers, body)
    with pytest.raises(HullguardError, match=expected) as info:
        scan_image(f"{server}/{repo}/img:1", ScanOptions(insecure=True, use_cache=False, timeout=5))
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(("text", "expected"), [
    ("alpine", ("docker.io", "library/alpine", "latest", "")),
    ("localhost:5000/a/b:1.2", ("localhost:5000", "a/b", "1.2", "")),
    ("ghcr.io/org/app@sha256:" + "b" * 64, ("ghcr.io", "org/app", "", "sha256:" + "b" * 64)),
    ("127.0.0.1:5055/team/app:v1@sha256:" + "c" * 64, ("127.0.0.1:5055", "team/app", "v1", "sha256:" + "c" * 64)),
    ("user/repo", ("docker.io", "user/repo", "latest", "")),
])
def test_reference_parsing(text: str, expected: tuple[str, str, str, str]) -> None:
    ref = Reference.parse(text)
    assert (ref.registry, ref.repository, ref.tag, ref.digest) == expected


@pytest.mark.parametrize("text", ["UPPER/case:1", "a/b:bad tag", "x@sha256:short", "a//b"])
def test_bad_references(text: str) -> None:
    with pytest.raises(HullguardError):
        Reference.parse(text)
