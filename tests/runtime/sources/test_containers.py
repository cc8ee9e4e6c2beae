"""Container attribution from /proc/PID/cgroup paths, and runtime metadata lookups."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from hullguard.runtime.sources.containers import (
    BundleMetadata,
    DockerMetadata,
    container_fields,
    parse_cgroup,
    split_image,
)

from .conftest import CID

UID = "0e5a3c1d-8b7f-4e2a-9c6d-1f2e3d4c5b6a"

# Lines as the kernel prints them (v1: "id:controllers:path", v2: "0::path").
CASES = [
    ("docker cgroupfs v1", f"12:pids:/docker/{CID}\n11:memory:/docker/{CID}\n", "docker", None),
    ("docker systemd v2", f"0::/system.slice/docker-{CID}.scope\n", "docker", None),
    ("containerd CRI systemd", f"0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod"
                               f"{UID.replace('-', '_')}.slice/cri-containerd-{CID}.scope\n", "containerd", UID),
    ("kubelet cgroupfs v1", f"4:memory:/kubepods/besteffort/pod{UID}/{CID}\n", "cri", UID),
    ("kubelet cgroupfs guaranteed", f"0::/kubepods/pod{UID}/{CID}\n", "cri", UID),
    ("podman", f"0::/machine.slice/libpod-{CID}.scope/container\n", "podman", None),
    ("podman cgroupfs", f"3:cpu:/libpod_parent/libpod-{CID}\n", "podman", None),
    ("cri-o", f"0::/kubepods.slice/kubepods-pod{UID.replace('-', '_')}.slice/crio-{CID}.scope\n", "cri-o", UID),
]


@pytest.mark.parametrize(("label", "text", "runtime", "pod_uid"), CASES, ids=[c[0] for c in CASES])
def test_cgroup_patterns(label: str, text: str, runtime: str, pod_uid: str | None) -> None:
    info = parse_cgroup(text)
    assert info is not None, label
    assert info.container_id == CID and info.short_id == CID[:12]
    assert info.runtime == runtime and info.pod_uid == pod_uid


@pytest.mark.parametrize("text", [
    "0::/\n", "0::/user.slice/user-1000.slice/session-3.scope\n", "0::/system.slice/docker.service\n",
    "4:memory:/process_api/9f37e40b3e5027ea887125b6763bbe81\n",
    f"0::/system.slice/crio-conmon-{CID}.scope\n",  # the monitor process, not the container
    f"0::/docker/{CID[:-1]}\n",  # 63 hex digits: not an id
    f"0::/elsewhere/{CID}\n",  # a bare id outside kubepods names no runtime
    "", "garbage without colons",
])
def test_host_or_unknown_paths(text: str) -> None:
    assert parse_cgroup(text) is None


def test_container_fields_for_host_and_container() -> None:
    assert container_fields(None, None)["container.id"] == "host"
    info = parse_cgroup(CASES[2][1])
    ev = container_fields(info, {"container.image": "registry.local:5000/team/app:1.2", "k8s.ns.name": "shop",
                                 "container.name": None})
    assert ev["container.id"] == CID[:12] and ev["k8s.pod.uid"] == UID and ev["k8s.ns.name"] == "shop"
    assert ev["container.image.repository"] == "registry.local:5000/team/app"
    assert ev["container.image.tag"] == "1.2"
    assert "container.name" not in ev


def test_split_image() -> None:
    assert split_image("nginx") == ("nginx", "latest")
    assert split_image("localhost:5000/a/b") == ("localhost:5000/a/b", "latest")
    assert split_image("ghcr.io/x/y:v1@sha256:" + "a" * 64) == ("ghcr.io/x/y", "v1")
    assert split_image("ghcr.io/x/y@sha256:" + "a" * 64) == ("ghcr.io/x/y", "")


def test_bundle_annotations_containerd_and_crio(tmp_path: Path) -> None:
    task = tmp_path / "run/containerd/io.containerd.runtime.v2.task/k8s.io" / CID
    task.mkdir(parents=True)
    (task / "config.json").write_text(json.dumps({"ociVersion": "1.0.2", "annotations": {
        "io.kubernetes.cri.container-type": "container", "io.kubernetes.cri.container-name": "web",
        "io.kubernetes.cri.image-name": "docker.io/library/nginx:1.27", "io.kubernetes.cri.sandbox-name": "web-0",
        "io.kubernetes.cri.sandbox-namespace": "shop", "io.kubernetes.cri.sandbox-uid": UID}}))
    other = "b" * 64
    crio = tmp_path / "run/containers/storage/overlay-containers" / other / "userdata"
    crio.mkdir(parents=True)
    (crio / "config.json").write_text(json.dumps({"annotations": {
        "io.kubernetes.pod.name": "api-1", "io.kubernetes.pod.namespace": "prod",
        "io.kubernetes.container.name": "api", "io.kubernetes.cri-o.ImageName": "quay.io/acme/api:2"}}))
    bad = "c" * 64
    (tmp_path / "run/containers/storage/overlay-containers" / bad / "userdata").mkdir(parents=True)
    (tmp_path / "run/containers/storage/overlay-containers" / bad / "userdata/config.json").write_text("{nope")
    meta = BundleMetadata(str(tmp_path))
    assert meta.available()
    got = meta.lookup(CID)
    assert got is not None
    assert got["k8s.pod.name"] == "web-0" and got["k8s.ns.name"] == "shop" and got["container.name"] == "web"
    assert got["container.image"] == "docker.io/library/nginx:1.27"
    got2 = meta.lookup(other)
    assert got2 is not None and got2["k8s.ns.name"] == "prod" and got2["container.image"] == "quay.io/acme/api:2"
    assert meta.lookup(bad) is None
    assert meta.lookup("d" * 64) is None


def test_docker_metadata_over_unix_socket(docker_socket: str) -> None:
    d = DockerMetadata(docker_socket)
    got = d.lookup(CID)
    assert got is not None
    assert got["container.name"] == "web" and got["k8s.pod.name"] == "web-0" and got["k8s.ns.name"] == "shop"
    assert got["container.image"] == "nginx:1.27" and got["container.privileged"] == "true"
    assert d.lookup("f" * 64) is None
    d.close()


def test_docker_metadata_absent_socket(tmp_path: Path) -> None:
    d = DockerMetadata(str(tmp_path / "none.sock"))
    assert not d.available() and d.lookup(CID) is None
    # A socket path nobody listens on: a failure, then back-off rather than a retry per process.
    dead = tmp_path / "dead.sock"
    import socket
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(dead))
    s.close()
    d2 = DockerMetadata(str(dead))
    assert os.path.exists(dead) and d2.lookup(CID) is None and d2._down_until > 0
