"""Checks of a built image (HG-IMG-*): its configuration and its final, squashed filesystem.

Two analyzers ride along the single streaming pass over the layers:

- ``ImageEntriesAnalyzer`` reads no file data; it flags tar headers (setuid/setgid bits,
  world-writable modes, package-manager caches, an ssh daemon) so that ``check_image`` can judge
  the squashed view, where a file deleted or re-written by a later layer no longer counts;
- ``ConfigFilesAnalyzer`` runs the Dockerfile and Kubernetes checks on such files shipped inside
  the image, one file at a time.

``check_image`` then turns the artifact's config, its history and the surviving flagged entries
into findings that name the path and the layer that wrote it.
"""

from __future__ import annotations

import posixpath
import re
import stat
from collections.abc import Iterable
from typing import Any, ClassVar

from hullguard.image import tarstream
from hullguard.image.layers import EntryMeta, Squashed
from hullguard.inventory.base import Analyzer, AnalyzerError, FileInfo
from hullguard.model import Artifact, Fact, Finding, Layer, Location, Package, Severity

from .dockerfile import (
    _SECRET_NAME,
    _SECRET_NAME_OK,
    _SECRET_VALUE,
    DockerfileError,
    check_dockerfile,
    is_dockerfile_name,
)
from .rules import Rule, register

__all__ = ["RULES", "ConfigFilesAnalyzer", "ImageEntriesAnalyzer", "check_image"]


def _r(num: int, title: str, sev: Severity, desc: str, fix: str, cis: str = "") -> Rule:
    return Rule(id=f"HG-IMG-{num:03d}", title=title, severity=sev, description=desc, remediation=fix, cis=cis,
                references=("https://github.com/opencontainers/image-spec/blob/main/config.md",))


L, M, H, C = Severity.LOW, Severity.MEDIUM, Severity.HIGH, Severity.CRITICAL
RULES: dict[str, Rule] = {r.id: r for r in [
    _r(1, "Image runs as root", H,
       "The image config sets no User, or sets root / uid 0, so its processes run as root unless the "
       "runtime overrides it; a process escape then starts with root privileges.",
       "Create an unprivileged user in the image and set it with `USER <name or uid>`.", "4.1"),
    _r(2, "Unexpected setuid/setgid file", H,
       "A file with the setuid or setgid bit that is not one of the usual distribution tools lets any "
       "user who can run it act with its owner's (usually root's) privileges.",
       "Remove the bit (`chmod u-s,g-s FILE`) or the file, in the same build step that created it.", "4.8"),
    _r(3, "Distribution setuid/setgid file", L,
       "A usual distribution tool (passwd, su, mount, ...) carries the setuid or setgid bit. Containers "
       "rarely need them, and each is a possible privilege escalation path.",
       "Strip the bits in the image: `find / -xdev -perm /6000 -type f -exec chmod a-s {} +`.", "4.8"),
    _r(4, "World-writable file", M,
       "Any user in the container can change this file, including code or configuration that another, "
       "more privileged process reads or runs.",
       "Give the file to the user that needs it and drop the world write bit (`chmod o-w`).", ""),
    _r(5, "World-writable directory without sticky bit", M,
       "Any user can create, rename or delete entries in this directory, including other users' files.",
       "Drop the world write bit, or set the sticky bit as /tmp has (`chmod 1777`).", ""),
    _r(6, "Secret in image environment", H,
       "Env values are stored in the image config and visible to anyone who can pull the image.",
       "Pass secrets at run time (secret mounts, an orchestrator secret store), never with ENV.", "4.10"),
    _r(7, "No HEALTHCHECK", L,
       "Without a healthcheck the engine cannot tell a hung container from a healthy one.",
       "Add a HEALTHCHECK instruction that probes the service.", "4.6"),
    _r(8, "Package manager cache left in the image", L,
       "Index files and downloaded packages add size and describe the build host's state; they are "
       "not needed at run time.",
       "Clean in the same RUN (`rm -rf /var/lib/apt/lists/*`, `apk add --no-cache`, `pip install "
       "--no-cache-dir`, `npm cache clean --force`, `dnf clean all`) or use a cache mount.", ""),
    _r(9, "SSH server in the image", M,
       "An ssh daemon in a container is another service to secure and to keep patched, and a way in "
       "that bypasses the orchestrator's access control and audit.",
       "Remove the ssh server; use `docker exec` / `kubectl exec` for access.", "5.6"),
    _r(10, "Sensitive path declared as a volume", H,
       "A VOLUME over a host-critical path (the container runtime socket, /, /etc, /proc, ...) invites "
       "mounting that host path into the container, which usually means control of the host.",
       "Remove the VOLUME declaration; mount only application data directories.", "5.5"),
    _r(11, "SSH port exposed", M,
       "The image exposes port 22, which suggests a running ssh server.",
       "Remove `EXPOSE 22` and the ssh server.", ""),
    _r(12, "Base image uses 'latest' or no tag", M,
       "The base image recorded in the image's labels was referenced by a moving tag, so a rebuild may "
       "silently pick up a different base.",
       "Build from a versioned tag, ideally pinned by digest (`name:tag@sha256:...`).", "4.2"),
    _r(13, "ADD from a remote URL in the build history", M,
       "A layer was created by `ADD <url>`: the download was not verified and the file may differ at "
       "every build.",
       "Download with curl/wget in a RUN and verify a checksum, or use `ADD --checksum=`.", "4.9"),
]}
register(*RULES.values())

# Setuid/setgid tools that distributions ship (Debian, Ubuntu, Alpine, Fedora/RHEL, SUSE).
USUAL_SETUID = frozenset({
    "passwd", "chsh", "chfn", "gpasswd", "newgrp", "sg", "su", "sudo", "sudoedit", "mount", "umount", "pkexec",
    "ping", "ping6", "arping", "traceroute6.iputils", "fusermount", "fusermount3", "ntfs-3g", "pppd", "chage",
    "expiry", "unix_chkpwd", "unix2_chkpwd", "pam_extrausers_chkpwd", "pam_timestamp_check", "ssh-agent",
    "ssh-keysign", "wall", "write", "write.ul", "bsd-write", "crontab", "dotlockfile", "locate", "mlocate",
    "plocate", "dbus-daemon-launch-helper", "polkit-agent-helper-1", "Xorg.wrap", "newuidmap", "newgidmap",
    "at", "mount.nfs", "mount.cifs", "mount.ecryptfs_private", "staprun", "userhelper", "usernetctl",
    "utempter", "mail-lock", "mail-unlock", "mail-touchlock", "lockfile", "procmail", "exim4", "sendmail",
    "postdrop", "postqueue", "screen", "chrome-sandbox", "snap-confine", "bbsuid", "ksu", "suexec",
    "chkpwd", "login", "netreport", "dmcrypt-get-device", "vmware-user-suid-wrapper", "lppasswd",
})
_DISTRO_DIRS = ("bin/", "sbin/", "usr/bin/", "usr/sbin/", "usr/lib/", "usr/lib64/", "usr/lib32/", "usr/libexec/",
                "lib/", "lib64/")

# (name, directory prefix) of package-manager caches; lock files and empty "partial" dirs stay in
# clean images, so only real content counts.
CACHES = (
    ("apt lists", "var/lib/apt/lists/"),
    ("apt archives", "var/cache/apt/archives/"),
    ("apk cache", "var/cache/apk/"),
    ("pip cache", "root/.cache/pip/"),
    ("npm cache", "root/.npm/"),
    ("yarn cache", "usr/local/share/.cache/yarn/"),
    ("yum cache", "var/cache/yum/"),
    ("dnf cache", "var/cache/dnf/"),
)
_CACHE_NOISE = {"lock", "partial", ".lock"}
_CACHE_PREFIXES = tuple(prefix for _, prefix in CACHES)
_FILE_KINDS = frozenset({tarstream.REGULAR, tarstream.CONTIGUOUS, tarstream.HARDLINK})
SSHD_PATHS = frozenset({"usr/sbin/sshd", "sbin/sshd", "usr/bin/sshd", "usr/sbin/dropbear", "usr/bin/dropbear"})
SSH_PACKAGES = frozenset({"openssh-server", "openssh-server-pam", "dropbear"})

SENSITIVE_VOLUMES = frozenset({
    "/", "/etc", "/proc", "/sys", "/dev", "/boot", "/root", "/run", "/var/run", "/var/lib/docker",
    "/var/lib/containerd", "/var/lib/kubelet", "/etc/kubernetes", "/lib/modules", "/usr", "/bin", "/sbin", "/lib",
    "/var/log", "/home",
})
# Findings of one kind past this many are counted, not listed: a chmod -R 777 would otherwise
# bury everything else in the report.
MAX_PER_RULE = 200

_ROOT_USERS = {"", "root", "0"}
_ADD_URL = re.compile(r"(?:^|[\s)])ADD\s+(?:--\S+\s+)*((?:https?|ftp)://\S+)", re.I)


def _is_setid(kind: str, mode: int) -> bool:
    return kind in (tarstream.REGULAR, tarstream.CONTIGUOUS, tarstream.HARDLINK) and bool(
        mode & (stat.S_ISUID | stat.S_ISGID))


def _world_writable(kind: str, mode: int) -> bool:
    if not mode & stat.S_IWOTH:
        return False
    if kind == tarstream.DIRECTORY:
        return not mode & stat.S_ISVTX
    return kind in (tarstream.REGULAR, tarstream.CONTIGUOUS, tarstream.HARDLINK)


def _cache_of(path: str) -> str:
    for name, prefix in CACHES:
        if path.startswith(prefix):
            rest = path[len(prefix):]
            return "" if not rest or rest.split("/", 1)[0] in _CACHE_NOISE else name
    return ""


class ImageEntriesAnalyzer(Analyzer):
    """Reads no file contents: flags tar headers for the image checks (see ``analyze_layer``)."""

    name: ClassVar[str] = "misconfig-entries"
    version: ClassVar[int] = 1

    def wants(self, info: FileInfo) -> bool:
        return False

    def analyze(self, info: FileInfo, data: bytes) -> Iterable[Fact]:
        return ()

    def notes_entry(self, path: str, kind: str, mode: int) -> bool:
        # Called for every entry of every layer, so each test is one C-level operation on the
        # common path: a mode mask, a set lookup, one startswith over a tuple.
        if mode & 0o6002:
            return _is_setid(kind, mode) or _world_writable(kind, mode)
        if kind not in _FILE_KINDS:
            return False
        return path in SSHD_PATHS or (path.startswith(_CACHE_PREFIXES) and bool(_cache_of(path)))


# Trees of third-party code: manifests there are examples and test data, not what the image runs.
_VENDOR_PARTS = frozenset({"node_modules", "vendor", "site-packages", "dist-packages", "__pycache__", ".git",
                           "testdata", "test", "tests", "examples"})
_SYSTEM_PREFIXES = ("usr/share/", "usr/lib/", "usr/lib64/", "usr/local/lib/", "lib/", "var/lib/", "proc/", "sys/",
                    "go/pkg/mod/", "root/.cache/", "root/go/pkg/mod/", "usr/local/go/")
MAX_CONFIG_BYTES = 1024 * 1024
# Only whole-set checks could judge these (a NetworkPolicy in another file selects the pods).
_CROSS_FILE_RULES = {"HG-K8S-030", "HG-K8S-031"}


class ConfigFilesAnalyzer(Analyzer):
    """Dockerfiles and Kubernetes manifests shipped inside an image, checked one file at a time."""

    name: ClassVar[str] = "misconfig-files"
    version: ClassVar[int] = 1
    max_size: ClassVar[int] = MAX_CONFIG_BYTES

    def wants(self, info: FileInfo) -> bool:
        path = info.path
        slash = path.rfind("/")
        base = path[slash + 1:].lower()
        if not (base.endswith((".yaml", ".yml")) or "dockerfile" in base or "containerfile" in base):
            return False
        if info.size <= 0 or info.size > MAX_CONFIG_BYTES or path.startswith(_SYSTEM_PREFIXES):
            return False
        if not base.endswith((".yaml", ".yml")) and not is_dockerfile_name(base):
            return False
        return not any(part in _VENDOR_PARTS for part in path.split("/")[:-1])

    def analyze(self, info: FileInfo, data: bytes) -> Iterable[Fact]:
        if is_dockerfile_name(info.path.rsplit("/", 1)[-1]):
            try:
                return check_dockerfile(data, info.path)
            except DockerfileError as exc:
                raise AnalyzerError(str(exc)) from None
        if b"apiVersion" not in data or b"kind" not in data:
            return ()
        from .kubernetes import check_text

        result = check_text(data, info.path)
        if not result.objects and result.errors:
            raise AnalyzerError(result.errors[0])
        return [f for f in result.findings if f.rule_id not in _CROSS_FILE_RULES]


# --------------------------------------------------------------------------------------------------
# checks


class _Out:
    def __init__(self, layers: list[Layer]) -> None:
        self.layers = layers
        self.findings: list[Finding] = []
        self.warnings: list[str] = []
        self.counts: dict[str, int] = {}

    def digest(self, index: int) -> str:
        return self.layers[index].digest if 0 <= index < len(self.layers) else ""

    def add(self, num: int, path: str, message: str, *, layer: str = "", severity: Severity | None = None,
            **details: Any) -> None:
        rule = RULES[f"HG-IMG-{num:03d}"]
        n = self.counts[rule.id] = self.counts.get(rule.id, 0) + 1
        if n > MAX_PER_RULE:
            return
        d: dict[str, Any] = {"message": message}
        if rule.cis:
            d["cis"] = rule.cis
        d.update({k: v for k, v in details.items() if v not in (None, "")})
        self.findings.append(Finding(
            kind="misconfiguration", rule_id=rule.id, severity=severity or rule.severity, title=rule.title,
            target=path, location=Location(path=path, layer=layer), fix=rule.remediation, details=d))

    def finish(self) -> None:
        for rule_id, n in sorted(self.counts.items()):
            if n > MAX_PER_RULE:
                self.warnings.append(f"{rule_id}: {n} findings, only the first {MAX_PER_RULE} are listed")


def _history(artifact: Artifact, layers: list[Layer]) -> list[tuple[int, str, str]]:
    """(1-based history index, created_by, digest of the layer it made or "") for each entry."""
    out = []
    real = layers  # the manifest lists only layers that history entries without empty_layer made
    next_layer = 0
    for i, h in enumerate(artifact.history, 1):
        created_by = str(h.get("created_by") or "")
        digest = ""
        if not h.get("empty_layer"):
            if next_layer < len(real):
                digest = real[next_layer].digest
            next_layer += 1
        out.append((i, created_by, digest))
    return out


def _history_match(history: list[tuple[int, str, str]], pattern: re.Pattern[str]) -> tuple[int, str]:
    for index, created_by, digest in reversed(history):
        if pattern.search(created_by):
            return index, digest
    return 0, ""


def _check_config(artifact: Artifact, history: list[tuple[int, str, str]], out: _Out) -> None:
    cfg = artifact.config if isinstance(artifact.config, dict) else {}
    user = str(cfg.get("User") or "").strip()
    name = user.split(":", 1)[0]
    if name in _ROOT_USERS:
        out.add(1, "image-config:User", "no User set: runs as root" if not user else f"User {user!r} is root",
                user=user)

    for i, env in enumerate(cfg.get("Env") or [], 1):
        if not isinstance(env, str) or "=" not in env:
            continue
        key, _, value = env.partition("=")
        val = value.strip().strip("\"'")
        if not val:
            continue
        if _SECRET_VALUE.search(val):
            why = f"{key} holds a credential"
        elif _SECRET_NAME.search(key) and not _SECRET_NAME_OK.search(key) and not val.startswith(("$", "/")):
            why = f"{key} looks like a secret"
        else:
            continue
        out.add(6, "image-config:Env", why, variable=key, index=i,
                evidence=val[:2] + "*" * max(0, min(len(val), 12) - 2))

    hc = cfg.get("Healthcheck")
    test = hc.get("Test") if isinstance(hc, dict) else None
    if not isinstance(test, list) or not test:
        out.add(7, "image-config:Healthcheck", "no healthcheck in the image config")
    elif str(test[0]).upper() == "NONE":
        out.add(7, "image-config:Healthcheck", "healthcheck disabled (HEALTHCHECK NONE)")

    volumes = cfg.get("Volumes")
    if isinstance(volumes, dict):
        for vol in sorted(volumes):
            # normpath keeps a leading "//" (POSIX allows it a meaning), so strip slashes first.
            norm = posixpath.normpath("/" + str(vol).strip().lstrip("/")) if str(vol).strip() else ""
            if norm in SENSITIVE_VOLUMES or norm.endswith(".sock"):
                index, digest = _history_match(history, re.compile(r"\bVOLUME\b.*" + re.escape(str(vol))))
                sev = Severity.CRITICAL if norm.endswith(".sock") else None
                out.add(10, "image-config:Volumes", f"VOLUME {vol}", volume=str(vol), severity=sev,
                        history=index or None)

    ports = cfg.get("ExposedPorts")
    if isinstance(ports, dict):
        for port in sorted(ports):
            if str(port).split("/", 1)[0].strip() == "22":
                out.add(11, "image-config:ExposedPorts", f"EXPOSE {port}", port=str(port))

    labels = cfg.get("Labels") if isinstance(cfg.get("Labels"), dict) else {}
    base = str(labels.get("org.opencontainers.image.base.name") or "").strip()
    if base and not labels.get("org.opencontainers.image.base.digest") and "@" not in base:
        last = base.rsplit("/", 1)[-1]
        tag = last.split(":", 1)[1] if ":" in last else ""
        if tag in ("", "latest"):
            out.add(12, "image-config:Labels", f"base image {base}" + ("" if tag else " (no tag)"), base=base)

    for index, created_by, digest in history:
        m = _ADD_URL.search(created_by)
        if m:
            out.add(13, "image-config:history", f"ADD {m.group(1)[:200]}", layer=digest, history=index)


def _owners(packages: list[Package]) -> dict[str, str]:
    owner: dict[str, str] = {}
    for pkg in packages:
        if pkg.ecosystem in ("deb", "apk", "rpm"):
            for f in pkg.metadata.get("files", ()):
                if isinstance(f, str):
                    f = f.lstrip("/")
                    owner.setdefault(f, pkg.name)
                    # Merged /usr: dpkg still lists /bin/su while the file lives at usr/bin/su.
                    if f.startswith(("bin/", "sbin/", "lib/", "lib64/")):
                        owner.setdefault("usr/" + f, pkg.name)
    return owner


def _owner(meta: EntryMeta) -> tuple[int | None, int | None, str]:
    """(uid, gid, ", owned by ...") of a setuid/setgid entry, the ids the bits hand out: a setuid
    file owned by root gives root, one owned by another user gives only that user. Empty when the
    layer reader did not record the owner (ids are -1 or absent)."""
    uid = getattr(meta, "uid", -1)
    gid = getattr(meta, "gid", -1)
    uid = uid if isinstance(uid, int) and uid >= 0 else None
    gid = gid if isinstance(gid, int) and gid >= 0 else None
    parts = []
    if uid is not None and meta.mode & stat.S_ISUID:
        parts.append("owned by root" if uid == 0 else f"owned by uid {uid} (not root)")
    if gid is not None and meta.mode & stat.S_ISGID:
        parts.append("group root" if gid == 0 else f"group gid {gid} (not root)")
    return uid, gid, (", " + ", ".join(parts)) if parts else ""


def _check_files(notable: dict[str, tuple[int, EntryMeta]], packages: list[Package], out: _Out) -> None:
    owners: dict[str, str] | None = None
    caches: dict[str, list[tuple[str, int, EntryMeta]]] = {}
    sshd: tuple[str, int] | None = None
    for path in sorted(notable):
        index, meta = notable[path]
        layer = out.digest(index)
        if _is_setid(meta.type, meta.mode):
            if owners is None:
                owners = _owners(packages)
            base = path.rsplit("/", 1)[-1]
            bits = "+".join(b for b, m in (("setuid", stat.S_ISUID), ("setgid", stat.S_ISGID)) if meta.mode & m)
            usual = base in USUAL_SETUID and path.startswith(_DISTRO_DIRS)
            uid, gid, owner = _owner(meta)
            out.add(3 if usual else 2, path, f"{bits} {meta.mode:04o}{owner}", layer=layer,
                    mode=f"{meta.mode:04o}", package=owners.get(path), uid=uid, gid=gid)
        if _world_writable(meta.type, meta.mode):
            what = 5 if meta.type == tarstream.DIRECTORY else 4
            out.add(what, path, f"mode {meta.mode:04o}", layer=layer, mode=f"{meta.mode:04o}")
        if meta.type == tarstream.DIRECTORY:
            continue
        if path in SSHD_PATHS and sshd is None:
            sshd = (path, index)
        cache = _cache_of(path)
        if cache:
            caches.setdefault(cache, []).append((path, index, meta))
    for name, prefix in CACHES:
        entries = caches.get(name)
        if not entries:
            continue
        total = sum(m.size for _, _, m in entries)
        by_layer: dict[int, int] = {}
        for _, index, meta in entries:
            by_layer[index] = by_layer.get(index, 0) + meta.size + 1
        index = max(by_layer, key=lambda i: (by_layer[i], i))
        out.add(8, prefix.rstrip("/"), f"{name}: {len(entries)} files, {total} bytes", layer=out.digest(index),
                files=len(entries), bytes=total)
    if sshd is not None:
        out.add(9, sshd[0], "ssh daemon binary present", layer=out.digest(sshd[1]))
    else:
        pkg = next((p for p in packages if p.ecosystem in ("deb", "apk", "rpm") and p.name in SSH_PACKAGES), None)
        if pkg is not None:
            loc = pkg.locations[0] if pkg.locations else Location(path="")
            out.add(9, loc.path or pkg.name, f"package {pkg.name} {pkg.version} installed", layer=loc.layer,
                    package=pkg.name)


def check_image(artifact: Artifact, layers: list[Layer], squashed: Squashed | None,
                packages: list[Package]) -> tuple[list[Finding], list[str]]:
    """Findings for the image config and the final filesystem, plus warnings (truncated lists)."""
    out = _Out(layers)
    _check_config(artifact, _history(artifact, layers), out)
    if squashed is not None:
        _check_files(squashed.notable, packages, out)
    out.finish()
    return out.findings, out.warnings
