"""Image configuration checks (HG-IMG-*): the config, the history and the squashed filesystem of
synthetic multi-layer images read through the real scan pipeline."""

from __future__ import annotations

from pathlib import Path

import pytest

from hullguard.detect.misconfig.image import (
    MAX_PER_RULE,
    ConfigFilesAnalyzer,
    ImageEntriesAnalyzer,
    check_image,
)
from hullguard.detect.misconfig.rules import all_rules, get_rule
from hullguard.image import tarstream
from hullguard.image.layers import EntryMeta, LayerResult, squash
from hullguard.inventory.base import FileInfo
from hullguard.model import Artifact, Finding, Layer, Severity
from hullguard.scan import ScanOptions, scan_image
from tests.builders.synth import Dir, File, Opaque, Symlink, Whiteout, build_synth

ELF = b"\x7fELF\x02\x01\x01" + b"\0" * 57


def _scan(img_path: Path, tmp_path: Path, cache: bool = False) -> list[Finding]:
    opts = ScanOptions(misconfig=True, use_cache=cache, cache_dir=str(tmp_path / "cache"))
    return [f for f in scan_image(str(img_path), opts).findings if f.kind == "misconfiguration"]


def _by_rule(findings: list[Finding], rule: str) -> dict[str, Finding]:
    return {f.location.path: f for f in findings if f.rule_id == rule and f.location}


def _image(tmp_path: Path, **kw):
    layers = [
        [
            Dir("usr"), Dir("usr/bin"), Dir("usr/sbin"),
            File("usr/bin/passwd", ELF, mode=0o4755),
            File("usr/bin/chage", ELF, mode=0o2755),
            File("usr/local/bin/backdoor", ELF, mode=0o4755),
            File("opt/tool/runas", ELF, mode=0o6755),
            File("usr/bin/fixed-later", ELF, mode=0o4755),
            Dir("tmp", mode=0o1777),
            Dir("srv/upload", mode=0o777),
            File("etc/app.conf", "x=1\n", mode=0o666),
            Symlink("usr/bin/link", "passwd"),
            File("var/lib/apt/lists/lock", b""),
            Dir("var/lib/apt/lists/partial"),
            File("var/lib/apt/lists/deb.debian.org_debian_dists_bookworm_InRelease", b"x" * 300),
            File("var/lib/apt/lists/deb.debian.org_debian_dists_bookworm_main_binary-amd64_Packages.lz4", b"y" * 700),
            File("usr/sbin/sshd", ELF, mode=0o755),
            File("root/.cache/pip/http/a/b", b"z" * 50),
        ],
        [
            # Deleting and re-writing offenders: none of these may be reported.
            Whiteout("opt/tool/runas"),
            Whiteout("root/.cache"),
            File("usr/bin/fixed-later", ELF, mode=0o755),
            File("var/cache/apk/APKINDEX.abc.tar.gz", b"q" * 10),
        ],
    ]
    history = ["/bin/sh -c #(nop) ADD file:abc in / ",
               "ADD https://example.com/tool.tgz /opt/ # buildkit"]
    config = {
        "Env": ["PATH=/usr/bin", "DB_PASSWORD=s3cretvalue", "GPG_KEY=A035C8C19219BA821ECEA86B64E628F8D684696D",
                "API_TOKEN_FILE=/run/secrets/token", f"GH={'ghp_' + 'A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8'}"],
        "Volumes": {"/var/run/docker.sock": {}, "/data": {}, "/etc/": {}},
        "ExposedPorts": {"22/tcp": {}, "8080/tcp": {}},
    }
    config.update(kw.pop("config", {}))
    return build_synth(layers, fmt="oci", out=tmp_path / "img", history=history, config=config, **kw)


def test_filesystem_checks_follow_the_squashed_image(tmp_path: Path) -> None:
    img = _image(tmp_path)
    findings = _scan(img.path, tmp_path)
    base, top = img.layer_digests

    usual = _by_rule(findings, "HG-IMG-003")
    unexpected = _by_rule(findings, "HG-IMG-002")
    assert set(usual) == {"usr/bin/passwd", "usr/bin/chage"}
    assert set(unexpected) == {"usr/local/bin/backdoor"}  # runas deleted, fixed-later lost its bit
    assert usual["usr/bin/passwd"].severity == Severity.LOW
    assert usual["usr/bin/chage"].details["mode"] == "2755"
    assert unexpected["usr/local/bin/backdoor"].severity == Severity.HIGH
    assert unexpected["usr/local/bin/backdoor"].location.layer == base
    assert unexpected["usr/local/bin/backdoor"].details["cis"] == "4.8"

    assert set(_by_rule(findings, "HG-IMG-005")) == {"srv/upload"}  # /tmp has the sticky bit
    assert set(_by_rule(findings, "HG-IMG-004")) == {"etc/app.conf"}  # the 0777 symlink is not a file

    caches = _by_rule(findings, "HG-IMG-008")
    assert set(caches) == {"var/lib/apt/lists", "var/cache/apk"}  # pip cache deleted by the top layer
    assert caches["var/lib/apt/lists"].details["files"] == 2  # lock and partial/ do not count
    assert caches["var/lib/apt/lists"].details["bytes"] == 1000
    assert caches["var/lib/apt/lists"].location.layer == base
    assert caches["var/cache/apk"].location.layer == top

    sshd = _by_rule(findings, "HG-IMG-009")
    assert set(sshd) == {"usr/sbin/sshd"} and sshd["usr/sbin/sshd"].location.layer == base


def test_config_checks(tmp_path: Path) -> None:
    img = _image(tmp_path)
    findings = _scan(img.path, tmp_path)
    root = _by_rule(findings, "HG-IMG-001")["image-config:User"]
    assert root.severity == Severity.HIGH and root.details["cis"] == "4.1"
    env = [f for f in findings if f.rule_id == "HG-IMG-006"]
    assert sorted(f.details["variable"] for f in env) == ["DB_PASSWORD", "GH"]
    assert all("s3cretvalue" not in f.evidence and "s3cretvalue" not in str(f.details) for f in env)
    assert any(f.rule_id == "HG-IMG-007" for f in findings)
    volumes = sorted((f.details["volume"], f.severity) for f in findings if f.rule_id == "HG-IMG-010")
    assert volumes == [("/etc/", Severity.HIGH), ("/var/run/docker.sock", Severity.CRITICAL)]
    ports = [f.details["port"] for f in findings if f.rule_id == "HG-IMG-011"]
    assert ports == ["22/tcp"]
    [add] = [f for f in findings if f.rule_id == "HG-IMG-013"]
    assert "https://example.com/tool.tgz" in add.details["message"]
    assert add.location.layer == img.layer_digests[1] and add.details["history"] == 2


def test_a_clean_image_has_no_findings(tmp_path: Path) -> None:
    img = build_synth(
        [[Dir("tmp", mode=0o1777), File("usr/bin/app", ELF, mode=0o755), File("var/lib/apt/lists/lock", b""),
          Dir("var/cache/apk")]],
        fmt="oci", out=tmp_path / "img",
        config={"User": "10001:10001", "Env": ["PATH=/usr/bin", "PASSWORD_FILE=/run/secrets/pw"],
                "Healthcheck": {"Test": ["CMD", "/usr/bin/app", "health"]}, "ExposedPorts": {"8080/tcp": {}},
                "Volumes": {"/data": {}}},
    )
    assert _scan(img.path, tmp_path) == []


@pytest.mark.parametrize(("user", "root"), [("", True), ("root", True), ("0", True), ("0:0", True),
                                            ("root:wheel", True), ("app", False), ("1000", False),
                                            ("1000:0", False)])
def test_user(user: str, root: bool) -> None:
    findings, _ = check_image(Artifact(name="x", type="oci-dir", config={"User": user}), [], None, [])
    assert any(f.rule_id == "HG-IMG-001" for f in findings) is root


def test_healthcheck_none_and_base_label() -> None:
    def rules(config: dict) -> dict[str, Finding]:
        found, _ = check_image(Artifact(name="x", type="oci-dir", config=config), [], None, [])
        return {f.rule_id: f for f in found}

    assert "disabled" in rules({"Healthcheck": {"Test": ["NONE"]}})["HG-IMG-007"].details["message"]
    label = "org.opencontainers.image.base.name"
    assert "HG-IMG-012" in rules({"Labels": {label: "docker.io/library/debian:latest"}})
    assert "HG-IMG-012" in rules({"Labels": {label: "registry:5000/team/base"}})
    assert "HG-IMG-012" not in rules({"Labels": {label: "registry:5000/team/base:1.2"}})
    assert "HG-IMG-012" not in rules({"Labels": {label: "debian:latest",
                                                 "org.opencontainers.image.base.digest": "sha256:" + "a" * 64}})


def test_history_maps_to_layers_across_empty_entries() -> None:
    layers = [Layer(digest="sha256:" + c * 64) for c in "ab"]
    art = Artifact(name="x", type="oci-dir", config={"User": "app", "Healthcheck": {"Test": ["CMD", "true"]}},
                   history=[{"created_by": "ADD file:1 in /"}, {"created_by": "ENV A=1", "empty_layer": True},
                            {"created_by": "/bin/sh -c #(nop) ADD ftp://h/x.tar /x"}])
    [add], _ = check_image(art, layers, None, [])
    assert add.rule_id == "HG-IMG-013" and add.location.layer == layers[1].digest and add.details["history"] == 3


def test_too_many_findings_are_counted_not_listed() -> None:
    layer = LayerResult(digest="sha256:" + "c" * 64,
                        notable={f"srv/d{i}": EntryMeta(tarstream.DIRECTORY, 0o777) for i in range(MAX_PER_RULE + 5)},
                        seen=[])
    art = Artifact(name="x", type="oci-dir", config={"User": "app", "Healthcheck": {"Test": ["CMD", "true"]}})
    findings, warnings = check_image(art, [Layer(digest=layer.digest)], squash([layer]), [])
    assert len(findings) == MAX_PER_RULE
    assert warnings == [f"HG-IMG-005: {MAX_PER_RULE + 5} findings, only the first {MAX_PER_RULE} are listed"]


def test_opaque_directory_hides_flagged_entries(tmp_path: Path) -> None:
    img = build_synth([[File("opt/a/su2", ELF, mode=0o4755), File("opt/b/su3", ELF, mode=0o4755)],
                       [Opaque("opt/a"), File("opt/a/new", b"x")]],
                      fmt="oci", out=tmp_path / "img", config={"User": "1"})
    assert set(_by_rule(_scan(img.path, tmp_path), "HG-IMG-002")) == {"opt/b/su3"}


def test_results_survive_the_layer_cache(tmp_path: Path) -> None:
    img = _image(tmp_path)
    first = _scan(img.path, tmp_path, cache=True)
    second = _scan(img.path, tmp_path, cache=True)
    key = [(f.rule_id, f.location.path, f.location.layer) for f in first]
    assert key == [(f.rule_id, f.location.path, f.location.layer) for f in second]
    assert len(key) > 10


def test_entries_analyzer_reads_no_data() -> None:
    a = ImageEntriesAnalyzer()
    assert not a.wants(FileInfo("usr/sbin/sshd", 0o755, 10))
    assert a.notes_entry("usr/sbin/sshd", tarstream.REGULAR, 0o755)
    assert not a.notes_entry("usr/sbin/sshd", tarstream.DIRECTORY, 0o755)
    assert not a.notes_entry("usr/bin/x", tarstream.SYMLINK, 0o777)
    assert a.notes_entry("var/cache/yum/x86_64/repomd.xml", tarstream.REGULAR, 0o644)
    assert not a.notes_entry("var/lib/apt/lists/lock", tarstream.REGULAR, 0o640)
    assert not a.notes_entry("var/tmp", tarstream.DIRECTORY, 0o1777)


def test_config_files_inside_the_image(tmp_path: Path) -> None:
    pod = ("apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: web}\nspec:\n  containers:\n"
           "  - name: c\n    image: nginx:1.25\n    securityContext: {privileged: true}\n")
    img = build_synth(
        [[File("app/Dockerfile", "FROM debian\nUSER app\n"), File("app/old.Dockerfile", "FROM alpine\n"),
          File("deploy/pod.yaml", pod), File("app/node_modules/x/pod.yaml", pod),
          File("etc/settings.yaml", "kind: notkubernetes\n")],
         [File("app/Dockerfile", "FROM debian:12\nUSER app\nHEALTHCHECK CMD true\n"), Whiteout("app/old.Dockerfile")]],
        fmt="oci", out=tmp_path / "img", config={"User": "1"},
    )
    findings = _scan(img.path, tmp_path)
    df = [f for f in findings if f.rule_id.startswith("HG-DF-")]
    # Only the final Dockerfile counts: the first version's untagged base is gone, and so is the
    # deleted one.
    assert {f.location.path for f in df} <= {"app/Dockerfile"}
    assert not any(f.rule_id in ("HG-DF-004", "HG-DF-019") for f in df)
    privileged = [f for f in findings if f.rule_id == "HG-PSS-003"]
    assert [f.location.path for f in privileged] == ["deploy/pod.yaml"]  # node_modules skipped
    assert privileged[0].location.layer == img.layer_digests[0]
    assert not any(f.rule_id in ("HG-K8S-030", "HG-K8S-031") for f in findings)


def test_config_files_analyzer_selection() -> None:
    a = ConfigFilesAnalyzer()
    assert a.wants(FileInfo("srv/Dockerfile", size=10))
    assert a.wants(FileInfo("srv/k8s/deploy.yml", size=10))
    assert not a.wants(FileInfo("srv/k8s/deploy.json", size=10))
    assert not a.wants(FileInfo("usr/share/doc/x/example.yaml", size=10))
    assert not a.wants(FileInfo("srv/vendor/x/Dockerfile", size=10))
    assert not a.wants(FileInfo("srv/big.yaml", size=2 * 1024 * 1024))
    assert not a.wants(FileInfo("srv/dockerfile-notes.txt", size=10))


def test_rules_are_registered_with_cis_sections() -> None:
    ids = {r.id for r in all_rules() if r.id.startswith("HG-IMG-")}
    assert len(ids) == 13
    assert {get_rule(i).cis for i in ("HG-IMG-001", "HG-IMG-002", "HG-IMG-006", "HG-IMG-007")} == {
        "4.1", "4.8", "4.10", "4.6"}
    assert all(get_rule(i).remediation and get_rule(i).description for i in ids)


def test_ssh_server_package_without_the_binary() -> None:
    from hullguard.model import Location, Package

    art = Artifact(name="x", type="oci-dir", config={"User": "app", "Healthcheck": {"Test": ["CMD", "true"]}})
    pkg = Package(name="openssh-server", version="1:9.2p1-2", ecosystem="deb",
                  locations=[Location(path="var/lib/dpkg/status", layer="sha256:" + "d" * 64)])
    other = Package(name="openssh-server", version="9.6", ecosystem="pypi")  # not a distro package
    [finding], _ = check_image(art, [], squash([]), [other, pkg])
    assert finding.rule_id == "HG-IMG-009" and finding.location.layer == "sha256:" + "d" * 64
    assert finding.details["package"] == "openssh-server"
    assert check_image(art, [], squash([]), [other])[0] == []
