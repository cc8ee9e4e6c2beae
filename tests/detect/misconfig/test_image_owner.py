"""Setuid/setgid findings (HG-IMG-002/003) name the owner the bits hand out: root, or another id."""

from __future__ import annotations

from pathlib import Path

from hullguard.detect.misconfig.image import check_image
from hullguard.image.layers import EntryMeta, LayerResult, squash
from hullguard.model import Artifact, Layer
from hullguard.scan import ScanOptions, scan_image
from tests.builders.synth import File, build_synth

ELF = b"\x7fELF\x02\x01\x01" + b"\0" * 57
DIGEST = "sha256:" + "d" * 64


class OwnedMeta(EntryMeta, array_like=True):
    """EntryMeta with the owner ids the layer reader records once image/layers.py passes them on."""

    uid: int = -1
    gid: int = -1


def _messages(notable: dict[str, EntryMeta]) -> dict[str, tuple[str, str]]:
    layer = LayerResult(digest=DIGEST, notable=notable, seen=list(notable))
    findings, _ = check_image(Artifact(name="x", type="oci-dir", config={"User": "app"}), [Layer(digest=DIGEST)],
                              squash([layer]), [])
    return {f.location.path: (f.rule_id, f.details["message"]) for f in findings if f.rule_id in
            ("HG-IMG-002", "HG-IMG-003")}


def test_owner_root_or_other_is_named() -> None:
    got = _messages({
        "usr/local/bin/rootshell": OwnedMeta("0", 0o4755, 10, uid=0, gid=0),
        "usr/local/bin/games": OwnedMeta("0", 0o4755, 10, uid=1000, gid=0),
        "usr/local/bin/mailer": OwnedMeta("0", 0o2755, 10, uid=0, gid=8),
        "usr/local/bin/both": OwnedMeta("0", 0o6755, 10, uid=0, gid=0),
        "usr/bin/passwd": OwnedMeta("0", 0o4755, 10, uid=0, gid=0),
    })
    assert got["usr/local/bin/rootshell"] == ("HG-IMG-002", "setuid 4755, owned by root")
    assert got["usr/local/bin/games"] == ("HG-IMG-002", "setuid 4755, owned by uid 1000 (not root)")
    # Only setgid: the group is what it hands out; the owner is not mentioned.
    assert got["usr/local/bin/mailer"] == ("HG-IMG-002", "setgid 2755, group gid 8 (not root)")
    assert got["usr/local/bin/both"] == ("HG-IMG-002", "setuid+setgid 6755, owned by root, group root")
    assert got["usr/bin/passwd"] == ("HG-IMG-003", "setuid 4755, owned by root")


def test_unknown_owner_is_not_guessed() -> None:
    got = _messages({"usr/local/bin/x": EntryMeta("0", 0o4755, 10),
                     "usr/local/bin/y": OwnedMeta("0", 0o4755, 10)})
    assert got == {"usr/local/bin/x": ("HG-IMG-002", "setuid 4755"),
                   "usr/local/bin/y": ("HG-IMG-002", "setuid 4755")}


def test_image_scan_names_the_owner(tmp_path: Path) -> None:
    img = build_synth([[File("usr/local/bin/rootshell", ELF, mode=0o4755, uid=0),
                        File("opt/game/score", ELF, mode=0o4755, uid=1000)]],
                      fmt="oci", out=tmp_path / "img", history=["/bin/sh -c #(nop) ADD file:abc in / "],
                      config={"User": "app"})
    result = scan_image(str(img.path), ScanOptions(misconfig=True, use_cache=False))
    msgs = {f.location.path: f.details["message"] for f in result.findings if f.rule_id == "HG-IMG-002"}
    assert msgs == {"usr/local/bin/rootshell": "setuid 4755, owned by root",
                    "opt/game/score": "setuid 4755, owned by uid 1000 (not root)"}
