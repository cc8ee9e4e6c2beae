"""Find the pod template of every workload kind, and each container with its JSONPatch path."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

# kind -> path (as keys) from the object to its pod template ({metadata, spec}); () is the object itself.
TEMPLATE_PATHS: dict[str, tuple[str, ...]] = {
    "Pod": (),
    "Deployment": ("spec", "template"),
    "StatefulSet": ("spec", "template"),
    "DaemonSet": ("spec", "template"),
    "ReplicaSet": ("spec", "template"),
    "ReplicationController": ("spec", "template"),
    "Job": ("spec", "template"),
    "CronJob": ("spec", "jobTemplate", "spec", "template"),
}
CONTAINER_KEYS = ("initContainers", "containers", "ephemeralContainers")


@dataclass(frozen=True)
class Container:
    key: str  # containers | initContainers | ephemeralContainers
    index: int
    name: str
    image: str
    pointer: str  # JSON Pointer (RFC 6901) of the container's "image" field

    @property
    def where(self) -> str:
        return f"{self.key}[{self.name}]"


def _escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


def pod_template(obj: dict[str, Any], kind: str) -> tuple[dict[str, Any], str] | None:
    """({metadata, spec}, JSON Pointer of the template) for a known kind, None otherwise."""
    path = TEMPLATE_PATHS.get(kind)
    if path is None:
        return None
    node: Any = obj
    for key in path:
        node = node.get(key) if isinstance(node, dict) else None
    if not isinstance(node, dict):
        return None
    return node, "".join(f"/{_escape(k)}" for k in path)


def containers(obj: dict[str, Any], kind: str) -> Iterator[Container]:
    found = pod_template(obj, kind)
    if found is None:
        return
    template, base = found
    spec = template.get("spec")
    if not isinstance(spec, dict):
        return
    for key in CONTAINER_KEYS:
        items = spec.get(key)
        if not isinstance(items, list):
            continue
        for i, c in enumerate(items):
            if not isinstance(c, dict):
                continue
            image = c.get("image")
            yield Container(key, i, str(c.get("name", "")), image if isinstance(image, str) else "",
                            f"{base}/spec/{key}/{i}/image")
