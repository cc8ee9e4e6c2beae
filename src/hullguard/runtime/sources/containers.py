"""Which container a process belongs to, from its cgroup path, and what the runtime knows of it.

Container runtimes name the cgroup of each container after its 64-hex id; the surrounding
pattern tells which runtime made it:

    docker (cgroupfs)         /docker/<id>
    docker (systemd)          /system.slice/docker-<id>.scope
    containerd / CRI          .../kubepods-burstable-pod<uid>.slice/cri-containerd-<id>.scope
    kubelet, cgroupfs driver  /kubepods/burstable/pod<uid>/<id>
    podman                    /machine.slice/libpod-<id>.scope   (or /libpod_parent/libpod-<id>)
    CRI-O                     .../crio-<id>.scope

Metadata (names, image, pod) comes from the runtime when it can be reached without extra
dependencies: Docker's HTTP API over its unix socket, and the OCI bundle ``config.json`` that
containerd and CRI-O write for every container (its CRI annotations name the pod, namespace and
image). containerd's own gRPC API is not used.
"""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import dataclass
from typing import Any

_ID = r"([0-9a-f]{64})"
_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(rf"(?:^|/)docker-{_ID}\.scope$"), "docker"),
    (re.compile(rf"(?:^|/)docker/{_ID}$"), "docker"),
    (re.compile(rf"(?:^|/)cri-containerd-{_ID}\.scope$"), "containerd"),
    (re.compile(rf"(?:^|/)crio-{_ID}\.scope$"), "cri-o"),
    (re.compile(rf"(?:^|/)libpod-{_ID}\.scope(?:/container)?$"), "podman"),
    (re.compile(rf"(?:^|/)libpod_parent/libpod-{_ID}$"), "podman"),
    # kubelet with the cgroupfs driver: the runtime is not named in the path.
    (re.compile(rf"(?:^|/)kubepods(?:/[a-z]+)?/pod[0-9a-f-]{{36}}/{_ID}$"), "cri"),
)
_POD_UID = re.compile(r"pod([0-9a-f]{8}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{12})")
MAX_CGROUP_FILE = 64 * 1024


@dataclass(frozen=True, slots=True)
class CgroupInfo:
    container_id: str  # the full 64-hex id
    runtime: str  # docker | containerd | cri-o | podman | cri
    pod_uid: str | None = None

    @property
    def short_id(self) -> str:
        return self.container_id[:12]


def parse_cgroup(text: str) -> CgroupInfo | None:
    """The container of a ``/proc/PID/cgroup`` file (v1 or v2 lines), or None for the host."""
    for line in text.splitlines():
        path = line.split(":", 2)[-1].strip()
        if not path or path == "/":
            continue
        for pat, runtime in _PATTERNS:
            m = pat.search(path)
            if m:
                pod = _POD_UID.search(path)
                uid = pod.group(1).replace("_", "-") if pod else None
                if runtime == "cri" and "/kubepods" not in path:
                    continue
                return CgroupInfo(m.group(1), runtime, uid)
    return None


def split_image(image: str) -> tuple[str, str]:
    """(repository, tag) of an image reference; a colon before the last slash is a port."""
    ref = image.split("@", 1)[0]
    slash, colon = ref.rfind("/"), ref.rfind(":")
    if colon > slash:
        return ref[:colon], ref[colon + 1:]
    return ref, ("" if "@" in image else "latest")


def container_fields(info: CgroupInfo | None, meta: dict[str, Any] | None) -> dict[str, Any]:
    """Falco's container.* / k8s.* fields for a process in ``info``'s container."""
    if info is None:
        return {"container.id": "host", "container.name": "host", "container.type": "host"}
    ev: dict[str, Any] = {"container.id": info.short_id, "container.type": info.runtime}
    if info.pod_uid:
        ev["k8s.pod.uid"] = info.pod_uid
    for k, v in (meta or {}).items():
        if v not in (None, ""):
            ev[k] = v
    image = ev.get("container.image")
    if isinstance(image, str) and "container.image.repository" not in ev:
        ev["container.image.repository"], ev["container.image.tag"] = split_image(image)
    return ev


class DockerMetadata:
    """``GET /containers/<id>/json`` on the Docker socket, cached; silent when unreachable."""

    def __init__(self, socket_path: str = "/var/run/docker.sock", timeout: float = 1.0) -> None:
        self.socket_path = socket_path
        self.timeout = timeout
        self._client: Any = None
        self._down_until = 0.0

    def available(self) -> bool:
        return os.path.exists(self.socket_path)

    def lookup(self, container_id: str) -> dict[str, Any] | None:
        if not self.available() or time.monotonic() < self._down_until:
            return None
        import httpx

        if self._client is None:
            self._client = httpx.Client(transport=httpx.HTTPTransport(uds=self.socket_path),
                                        base_url="http://docker", timeout=self.timeout)
        try:
            r = self._client.get(f"/containers/{container_id}/json")
            if r.status_code != 200 or len(r.content) > 4 * 1024 * 1024:
                return None
            doc = r.json()
        except (httpx.HTTPError, ValueError):
            # Daemon down or socket refused: back off instead of paying a timeout per process.
            self._down_until = time.monotonic() + 30
            return None
        if not isinstance(doc, dict):
            return None
        cfg = doc.get("Config") if isinstance(doc.get("Config"), dict) else {}
        labels = cfg.get("Labels") if isinstance(cfg.get("Labels"), dict) else {}
        host = doc.get("HostConfig") if isinstance(doc.get("HostConfig"), dict) else {}
        name = str(doc.get("Name") or "").lstrip("/")
        return {
            "container.name": labels.get("io.kubernetes.container.name") or name,
            "container.image": cfg.get("Image"),
            "container.image.id": str(doc.get("Image") or "").removeprefix("sha256:")[:12] or None,
            "container.privileged": "true" if host.get("Privileged") else "false",
            "k8s.pod.name": labels.get("io.kubernetes.pod.name"),
            "k8s.ns.name": labels.get("io.kubernetes.pod.namespace"),
            "k8s.pod.uid": labels.get("io.kubernetes.pod.uid"),
        }

    def close(self) -> None:
        if self._client is not None:
            self._client.close()


# Where containerd (runtime v2 shim) and CRI-O keep each container's OCI bundle.
BUNDLE_GLOBS = (
    "run/containerd/io.containerd.runtime.v2.task/{ns}/{id}/config.json",
    "run/containers/storage/overlay-containers/{id}/userdata/config.json",
)


class BundleMetadata:
    """Pod, namespace, container name and image from the CRI annotations of an OCI bundle."""

    def __init__(self, root: str = "/") -> None:
        self.root = root

    def available(self) -> bool:
        return any(os.path.isdir(os.path.join(self.root, p)) for p in
                   ("run/containerd/io.containerd.runtime.v2.task", "run/containers/storage/overlay-containers"))

    def _candidates(self, cid: str) -> list[str]:
        out = []
        task = os.path.join(self.root, "run/containerd/io.containerd.runtime.v2.task")
        try:
            namespaces = os.listdir(task)
        except OSError:
            namespaces = []
        for ns in namespaces:
            out.append(os.path.join(task, ns, cid, "config.json"))
        out.append(os.path.join(self.root, BUNDLE_GLOBS[1].format(id=cid)))
        return out

    def lookup(self, container_id: str) -> dict[str, Any] | None:
        for path in self._candidates(container_id):
            try:
                with open(path, "rb") as f:
                    raw = f.read(4 * 1024 * 1024 + 1)
            except OSError:
                continue
            if len(raw) > 4 * 1024 * 1024:
                return None
            try:
                doc = json.loads(raw)
            except ValueError:
                return None
            ann = doc.get("annotations") if isinstance(doc, dict) else None
            if not isinstance(ann, dict):
                return None

            def a(*keys: str, ann: dict[str, Any] = ann) -> Any:
                return next((ann[k] for k in keys if isinstance(ann.get(k), str)), None)

            return {
                "container.name": a("io.kubernetes.cri.container-name", "io.kubernetes.container.name"),
                "container.image": a("io.kubernetes.cri.image-name", "io.kubernetes.cri-o.ImageName"),
                "k8s.pod.name": a("io.kubernetes.cri.sandbox-name", "io.kubernetes.pod.name"),
                "k8s.ns.name": a("io.kubernetes.cri.sandbox-namespace", "io.kubernetes.pod.namespace"),
                "k8s.pod.uid": a("io.kubernetes.cri.sandbox-uid", "io.kubernetes.pod.uid"),
            }
        return None


class ContainerMetadata:
    """Runtime metadata per container id, looked up once and kept (bounded): Docker's API (also
    tried for CRI ids), Podman's Docker-compatible socket, or the CRI annotations of containerd and
    CRI-O bundles. Shared by the /proc and eBPF sources."""

    MAX_CONTAINERS = 4096

    def __init__(self, docker: DockerMetadata | None = None, podman: DockerMetadata | None = None,
                 bundles: BundleMetadata | None = None) -> None:
        self.docker = docker if docker is not None else DockerMetadata()
        # Podman serves the same Docker-compatible container inspect API on its own socket.
        self.podman = podman if podman is not None else DockerMetadata("/run/podman/podman.sock")
        self.bundles = bundles if bundles is not None else BundleMetadata()
        self._cache: dict[str, dict[str, Any]] = {}

    def get(self, info: CgroupInfo) -> dict[str, Any]:
        cached = self._cache.get(info.container_id)
        if cached is None:
            cached = self._lookup(info) or {}
            if len(self._cache) >= self.MAX_CONTAINERS:
                self._cache.clear()
            self._cache[info.container_id] = cached
        return cached

    def _lookup(self, info: CgroupInfo) -> dict[str, Any] | None:
        if info.runtime in ("docker", "cri"):
            meta = self.docker.lookup(info.container_id)
            if meta:
                return meta
        if info.runtime == "podman":
            return self.podman.lookup(info.container_id)
        if info.runtime in ("containerd", "cri-o", "cri"):
            return self.bundles.lookup(info.container_id)
        return None
