"""Whether an eBPF (bcc) source could run here, and exactly why not when it cannot.

bcc compiles its C programs at start-up, so it needs the ``bcc`` Python module, the privilege to
load BPF programs (root or CAP_BPF/CAP_SYS_ADMIN), kernel type information (headers under
/lib/modules/$(uname -r)/build, or BTF at /sys/kernel/btf/vmlinux) and tracefs for its kprobes.
hullguard ships no eBPF source yet: when every check passes, ``runtime sources`` says so and
points at the /proc source (same event shape) until one is added and testable.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass, field

_CAP_SYS_ADMIN, _CAP_BPF, _CAP_PERFMON = 21, 39, 38


@dataclass
class Availability:
    name: str
    available: bool
    reasons: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        return {"name": self.name, "available": self.available, "reasons": self.reasons, "notes": self.notes}


def _cap_eff(status_path: str = "/proc/self/status") -> int | None:
    try:
        with open(status_path, encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("CapEff:"):
                    return int(line.split()[1], 16)
    except (OSError, ValueError, IndexError):
        return None
    return None


def check_ebpf(*, root: str = "/", release: str | None = None) -> Availability:
    """Every missing prerequisite, each as one sentence; ``available`` when none is missing."""
    res = Availability("ebpf", False)
    if importlib.util.find_spec("bcc") is None:
        res.reasons.append("the bcc Python module is not installed (Debian: apt install python3-bpfcc)")
    caps = _cap_eff(os.path.join(root, "proc/self/status"))
    if caps is None:
        res.reasons.append("cannot read the effective capabilities from /proc/self/status")
    elif not (caps >> _CAP_SYS_ADMIN) & 1 and not ((caps >> _CAP_BPF) & 1 and (caps >> _CAP_PERFMON) & 1):
        res.reasons.append("not permitted to load BPF programs (needs root, or CAP_BPF with CAP_PERFMON)")
    release = release or os.uname().release
    headers = os.path.join(root, "lib/modules", release, "build")
    btf = os.path.join(root, "sys/kernel/btf/vmlinux")
    if not os.path.isdir(headers) and not os.path.exists(btf):
        res.reasons.append(f"no kernel headers ({headers}) and no BTF ({btf})")
    elif not os.path.isdir(headers):
        res.notes.append(f"BTF found but no kernel headers at {headers}; bcc older than 0.23 needs headers")
    tracefs = [os.path.join(root, p) for p in ("sys/kernel/tracing", "sys/kernel/debug/tracing")]
    if not any(os.path.isdir(os.path.join(p, "events")) or os.path.exists(os.path.join(p, "kprobe_events"))
               for p in tracefs):
        res.reasons.append("tracefs is not mounted (neither /sys/kernel/tracing nor /sys/kernel/debug/tracing)")
    if not res.reasons:
        res.available = True
        res.notes.append("prerequisites present, but hullguard has no eBPF source yet; use --proc")
    return res
