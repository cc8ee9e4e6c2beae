"""Pack demo/layers/ into a docker-archive (`docker save` format, Docker 25+ layout).

The files under demo/layers/ are real package metadata: Debian 12 dpkg status entries and file
lists, PyPI dist-info/egg-info from the released wheels and sdists, npm package.json files and
lockfile from the npm registry, and slf4j-api's jar from Debian. Only metadata is kept (no
program code) so the demo stays small. The output is byte-for-byte reproducible.

    python demo/build.py [OUTPUT]     (default: demo/hullguard-demo.tar)
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import sys
import tarfile

HERE = os.path.dirname(os.path.abspath(__file__))
EPOCH = "2024-01-01T00:00:00Z"


def _info(name: str, **kw: object) -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name)
    ti.mtime = 1704067200
    ti.uname = ti.gname = "root"
    for k, v in kw.items():
        setattr(ti, k, v)
    return ti


def layer_tar(spec: dict) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        root = os.path.join(HERE, "layers", spec["dir"]) if "dir" in spec else None
        if root:
            for dirpath, dirnames, filenames in os.walk(root):
                dirnames.sort()
                rel_dir = os.path.relpath(dirpath, root)
                if rel_dir != ".":
                    tf.addfile(_info(rel_dir.replace(os.sep, "/"), type=tarfile.DIRTYPE, mode=0o755))
                for name in sorted(filenames):
                    full = os.path.join(dirpath, name)
                    rel = os.path.relpath(full, root).replace(os.sep, "/")
                    if os.path.islink(full):
                        tf.addfile(_info(rel, type=tarfile.SYMTYPE, linkname=os.readlink(full), mode=0o777))
                        continue
                    with open(full, "rb") as f:
                        data = f.read()
                    tf.addfile(_info(rel, size=len(data), mode=0o644), io.BytesIO(data))
        for path in spec.get("whiteouts", []):
            parent, _, base = path.rpartition("/")
            tf.addfile(_info(f"{parent}/.wh.{base}" if parent else f".wh.{base}", size=0, mode=0o644))
    return buf.getvalue()


def build(out: str) -> str:
    with open(os.path.join(HERE, "layers.json")) as f:
        spec = json.load(f)
    blobs: dict[str, bytes] = {}
    diff_ids = []
    for layer in spec["layers"]:
        data = layer_tar(layer)
        digest = hashlib.sha256(data).hexdigest()
        blobs[digest] = data
        diff_ids.append(f"sha256:{digest}")
    config = {
        "architecture": "amd64",
        "os": "linux",
        "created": EPOCH,
        "config": spec["config"],
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created": EPOCH, "created_by": layer["created_by"]} for layer in spec["layers"]],
    }
    config_bytes = json.dumps(config, sort_keys=True, separators=(",", ":")).encode()
    config_digest = hashlib.sha256(config_bytes).hexdigest()
    manifest = [{
        "Config": f"blobs/sha256/{config_digest}",
        "RepoTags": [spec["repo_tag"]],
        "Layers": [f"blobs/sha256/{d.split(':')[1]}" for d in diff_ids],
    }]
    tmp = out + ".tmp"
    with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tf:
        tf.addfile(_info("blobs", type=tarfile.DIRTYPE, mode=0o755))
        tf.addfile(_info("blobs/sha256", type=tarfile.DIRTYPE, mode=0o755))
        for digest, data in [*blobs.items(), (config_digest, config_bytes)]:
            tf.addfile(_info(f"blobs/sha256/{digest}", size=len(data)), io.BytesIO(data))
        mdata = json.dumps(manifest, separators=(",", ":")).encode()
        tf.addfile(_info("manifest.json", size=len(mdata)), io.BytesIO(mdata))
    os.replace(tmp, out)
    return out


if __name__ == "__main__":
    print(build(sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "hullguard-demo.tar")))
