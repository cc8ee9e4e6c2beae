from __future__ import annotations

import json

from hullguard.detect.vulns import (
    MatchOptions,
    apply,
    filter_findings,
    layer_roles,
    match,
    parse_severities,
    result_summary,
    sort_by_risk,
    summary,
    upgrade_label,
)
from hullguard.model import Artifact, Finding, Layer, Location, OSInfo, Package, ScanResult, Severity
from hullguard.vulndb.osv import parse
from hullguard.vulndb.store import Store
from tests.vulndb.records import V3_CRITICAL, V3_MEDIUM, fixed, record

LAYER = "sha256:" + "a" * 64


def _load(store: Store, *recs: dict) -> None:
    store.replace_source("test", [parse(json.dumps(r)) for r in recs])


def _result(packages: list[Package], os_info: OSInfo | None = None) -> ScanResult:
    return ScanResult(artifact=Artifact(name="t", type="docker-archive"), os=os_info, packages=packages,
                      layers=[Layer(digest=LAYER, created_by="RUN apt-get install -y openssl")])


def _pkg(name: str, version: str, eco: str, **kw) -> Package:
    kw.setdefault("locations", [Location(path="var/lib/dpkg/status", layer=LAYER)])
    return Package(name=name, version=version, ecosystem=eco, **kw)


DEBIAN12 = OSInfo(family="debian", release="12", codename="bookworm")


def test_debian_matches_source_package_and_release(store: Store) -> None:
    _load(store,
          record("DSA-5532-1", "Debian:12", "openssl", fixed("3.0.11-1~deb12u2"), aliases=["CVE-2023-5363"],
                 ecosystem_specific={"urgency": "high"}, severity=[{"type": "CVSS_V3", "score": V3_CRITICAL}]),
          record("DSA-OLD", "Debian:11", "openssl", fixed("1.1.1w-0+deb11u1")),
          record("DEBIAN-CVE-2024-0001", "Debian:12", "openssl", [{"introduced": "0"}]),
          record("GHSA-upstream", "PyPI", "openssl", fixed("99")))
    pkgs = [_pkg("libssl3", "3.0.11-1~deb12u1", "deb", source_name="openssl", source_version="3.0.11-1~deb12u1",
                 purl="pkg:deb/debian/libssl3@3.0.11-1~deb12u1?distro=debian-12")]
    rep = match(_result(pkgs, DEBIAN12), store)
    by_id = {f.rule_id: f for f in rep.findings}
    assert set(by_id) == {"DSA-5532-1", "DEBIAN-CVE-2024-0001"}
    f = by_id["DSA-5532-1"]
    assert f.kind == "vulnerability" and f.fix == "3.0.11-1~deb12u2"
    assert f.severity == Severity.HIGH  # the distro's urgency wins over CVSS for distro packages
    d = f.details
    assert d["distro_severity"] == "high" and d["cvss"]["score"] == 9.8
    assert d["aliases"] == ["CVE-2023-5363"] and d["cve"] == "CVE-2023-5363"
    assert d["advisory_ecosystem"] == "Debian:12" and d["status"] == "fixed"
    assert d["layer"] == LAYER and d["created_by"].startswith("RUN apt-get")
    assert d["path"] == "var/lib/dpkg/status" and d["url"].endswith("/DSA-5532-1")
    assert d["package"]["source_name"] == "openssl"
    assert by_id["DEBIAN-CVE-2024-0001"].details["status"] == "not yet fixed"
    assert by_id["DEBIAN-CVE-2024-0001"].fix == ""


def test_debian_fixed_version_installed_is_clean(store: Store) -> None:
    _load(store, record("DSA-1", "Debian:12", "curl", fixed("7.88.1-10+deb12u5")))
    pkgs = [_pkg("curl", "7.88.1-10+deb12u5", "deb", source_name="curl")]
    assert match(_result(pkgs, DEBIAN12), store).findings == []


def test_ubuntu_lts_release(store: Store) -> None:
    _load(store, record("USN-1", "Ubuntu:22.04:LTS", "zlib", fixed("1:1.2.11.dfsg-2ubuntu9.2")),
          record("USN-2", "Ubuntu:20.04:LTS", "zlib", fixed("1:1.2.11.dfsg-2ubuntu1.5")))
    pkgs = [_pkg("zlib1g", "1:1.2.11.dfsg-2ubuntu9", "deb", source_name="zlib")]
    rep = match(_result(pkgs, OSInfo(family="ubuntu", release="22.04")), store)
    assert [f.rule_id for f in rep.findings] == ["USN-1"]


def test_alpine_origin_and_minor_release(store: Store) -> None:
    _load(store, record("ALPINE-CVE-2023-1", "Alpine:v3.19", "busybox", fixed("1.36.1-r16")),
          record("ALPINE-CVE-2023-2", "Alpine:v3.18", "busybox", fixed("1.36.1-r7")))
    pkgs = [_pkg("ssl_client", "1.36.1-r15", "apk", source_name="busybox", locations=[])]
    rep = match(_result(pkgs, OSInfo(family="alpine", release="3.19.1")), store)
    assert [f.rule_id for f in rep.findings] == ["ALPINE-CVE-2023-1"]
    assert rep.findings[0].location is None


def test_rocky_source_rpm(store: Store) -> None:
    _load(store, record("RLSA-2024:0001", "Rocky Linux:9", "openssl", fixed("1:3.0.7-25.el9_3")))
    pkgs = [_pkg("openssl-libs", "1:3.0.7-24.el9", "rpm", source_name="openssl")]
    rep = match(_result(pkgs, OSInfo(family="rocky", release="9.3")), store)
    assert [f.fix for f in rep.findings] == ["1:3.0.7-25.el9_3"]


def test_pypi_name_normalisation(store: Store) -> None:
    _load(store,
          record("GHSA-j", "PyPI", "Jinja2", fixed("2.11.3"), severity=[{"type": "CVSS_V3", "score": V3_MEDIUM}]),
          record("GHSA-z", "PyPI", "zope.interface", fixed("5.0")))
    pkgs = [_pkg("jinja2", "2.11.2", "pypi", locations=[Location(path="app/jinja2-2.11.2.dist-info/METADATA")]),
            _pkg("Zope_Interface", "4.7", "pypi")]
    rep = match(_result(pkgs), store)
    assert sorted(f.rule_id for f in rep.findings) == ["GHSA-j", "GHSA-z"]
    j = next(f for f in rep.findings if f.rule_id == "GHSA-j")
    assert j.severity == Severity.MEDIUM and j.details["severity_source"] == "cvss"


def test_npm_scoped_and_ghsa_text_severity(store: Store) -> None:
    _load(store, record("GHSA-s", "npm", "@babel/traverse", fixed("7.23.2"),
                        database_specific={"severity": "CRITICAL"}))
    rep = match(_result([_pkg("@Babel/traverse", "7.23.0", "npm")]), store)
    assert [(f.rule_id, f.severity) for f in rep.findings] == [("GHSA-s", Severity.CRITICAL)]


def test_maven_group_artifact_from_purl(store: Store) -> None:
    _load(store, record("GHSA-jfh8-c2jp-5v3q", "Maven", "org.apache.logging.log4j:log4j-core",
                        fixed("2.15.0", "2.0-beta9")))
    pkgs = [_pkg("log4j-core", "2.14.1", "maven", purl="pkg:maven/org.apache.logging.log4j/log4j-core@2.14.1"),
            _pkg("org.apache.logging.log4j:log4j-core", "2.17.1", "maven")]
    rep = match(_result(pkgs), store)
    assert [f.details["package"]["version"] for f in rep.findings] == ["2.14.1"]


def test_go_module_with_v_prefix(store: Store) -> None:
    _load(store, record("GO-2022-0001", "Go", "golang.org/x/text", fixed("0.3.8"), range_type="SEMVER"))
    rep = match(_result([_pkg("golang.org/x/text", "v0.3.7", "golang")]), store)
    assert [f.fix for f in rep.findings] == ["0.3.8"]


def test_withdrawn_is_skipped_unless_asked(store: Store) -> None:
    _load(store, record("GHSA-w", "npm", "minimist", fixed("1.2.6"), withdrawn="2024-01-01T00:00:00Z"))
    result = _result([_pkg("minimist", "1.2.0", "npm")])
    assert match(result, store).findings == []
    assert len(match(result, store, MatchOptions(include_withdrawn=True)).findings) == 1


def test_unparsable_version_is_not_checked_with_one_warning(store: Store) -> None:
    _load(store, record("GHSA-x", "PyPI", "foo", fixed("2.0")))
    pkgs = [_pkg("foo", "not a version!!", "pypi"), _pkg("bar", "also bad??", "pypi"), _pkg("foo", "1.0", "pypi")]
    result = _result(pkgs)
    rep = match(result, store)
    assert len(rep.findings) == 1
    assert len(rep.not_checked) == 2
    assert len([w for w in rep.warnings if "unparsable PyPI version" in w]) == 1
    out = apply(result, store)
    flagged = [p for p in out.packages if p.metadata.get("vulnerabilities", "").startswith("not checked")]
    assert len(flagged) == 2 and len(out.findings) == 1 and out.warnings


def test_unknown_distribution_is_not_checked(store: Store) -> None:
    rep = match(_result([_pkg("openssl", "1.0", "deb")], OSInfo(family="kali", release="2024.1")), store)
    assert rep.findings == [] and "kali" in rep.not_checked[0][1]


def test_os_owned_language_packages_are_skipped(store: Store) -> None:
    _load(store, record("GHSA-y", "PyPI", "pyyaml", fixed("5.4")))
    owned = _pkg("PyYAML", "5.3.1", "pypi", metadata={"os_owned_by": "python3-yaml"})
    assert match(_result([owned]), store).findings == []
    assert len(match(_result([owned]), store, MatchOptions(skip_os_owned=False)).findings) == 1


def test_bad_range_in_data_is_warned_not_fatal(store: Store) -> None:
    _load(store, record("GHSA-bad", "PyPI", "foo", [{"introduced": "0"}, {"fixed": "n/a!!"}]),
          *(record(f"GHSA-bad{i}", "PyPI", "foo", [{"introduced": f"x{i}??"}]) for i in range(5)),
          record("GHSA-good", "PyPI", "foo", fixed("2.0")))
    rep = match(_result([_pkg("foo", "1.0", "pypi"), _pkg("foo", "1.1", "pypi")]), store)
    # The good advisory still matches both packages; the bad ranges make one warning, not six or twelve.
    assert sorted(f.rule_id for f in rep.findings) == ["GHSA-good", "GHSA-good"]
    [warning] = rep.warnings
    assert warning.startswith("6 PyPI advisories with unparsable versions") and "and 3 more" in warning


def test_epss_kev_and_risk_order(store: Store) -> None:
    _load(store,
          record("GHSA-a", "npm", "a", fixed("2.0.0"), aliases=["CVE-2024-1111"],
                 severity=[{"type": "CVSS_V3", "score": V3_CRITICAL}]),
          record("GHSA-b", "npm", "b", fixed("2.0.0"), aliases=["CVE-2024-2222"],
                 severity=[{"type": "CVSS_V3", "score": V3_MEDIUM}]),
          record("GHSA-c", "npm", "c", fixed("2.0.0"), aliases=["CVE-2024-3333"],
                 severity=[{"type": "CVSS_V3", "score": V3_MEDIUM}]))
    store.set_epss([("CVE-2024-3333", 0.9, 0.99), ("CVE-2024-1111", 0.01, 0.1)], "2024-05-01")
    store.set_kev([{"cve": "CVE-2024-2222", "date_added": "2024-05-01"}])
    rep = match(_result([_pkg(n, "1.0.0", "npm") for n in "abc"]), store)
    assert [f.rule_id for f in rep.findings] == ["GHSA-b", "GHSA-c", "GHSA-a"]
    assert rep.findings == sort_by_risk(rep.findings)  # the matcher's own ordering agrees with risk_key()
    assert rep.findings[0].details["known_exploited"] is True
    assert rep.findings[1].details["epss"]["score"] == 0.9


def test_filters_and_summary() -> None:
    def f(rule: str, sev: Severity, fix: str, pkg: str = "p") -> Finding:
        return Finding(kind="vulnerability", rule_id=rule, severity=sev, fix=fix,
                       details={"package": {"name": pkg, "ecosystem": "npm", "version": "1.0.0"}})

    fs = [f("A", Severity.CRITICAL, "1.2.0"), f("B", Severity.LOW, ""), f("C", Severity.HIGH, "1.5.0"),
          Finding(kind="secret", rule_id="HG-S-1", severity=Severity.LOW)]
    assert [x.rule_id for x in filter_findings(fs, min_severity=Severity.HIGH)] == ["A", "C", "HG-S-1"]
    assert [x.rule_id for x in filter_findings(fs, ignore_unfixed=True)] == ["A", "C", "HG-S-1"]
    sevs = parse_severities("low,CRITICAL")
    assert [x.rule_id for x in filter_findings(fs, severities=sevs)] == ["A", "B", "HG-S-1"]
    assert [x.rule_id for x in sort_by_risk(fs[:3])] == ["A", "C", "B"]
    s = summary(fs)
    assert (s["total"], s["fixable"]) == (3, 2)
    assert s["upgrades"] == [{"package": "p", "ecosystem": "npm", "installed": "1.0.0", "to": "1.5.0", "fixes": 2,
                              "ids": ["A", "C"]}]
    try:
        parse_severities("urgent")
    except ValueError as exc:
        assert "URGENT" in str(exc)
    else:
        raise AssertionError("expected ValueError")


# --- distro fix states (real record shapes: tests/detect/test_distro_records.py) ---------------


def test_unfixed_distro_entries_are_listed_and_dropped_by_ignore_unfixed(store: Store) -> None:
    _load(store,
          record("DEBIAN-CVE-2024-1000", "Debian:12", "openssl", [{"introduced": "0"}],
                 ecosystem_specific={"urgency": "end-of-life"}),
          record("DEBIAN-CVE-2024-1001", "Debian:12", "openssl", [{"introduced": "0"}],
                 ecosystem_specific={"urgency": "unimportant"}),
          record("DEBIAN-CVE-2024-1004", "Debian:12", "openssl", fixed("3.0.99-1")))
    pkgs = [_pkg("libssl3", "3.0.11-1~deb12u1", "deb", source_name="openssl")]
    result = _result(pkgs, DEBIAN12)
    rep = match(result, store)
    status = {f.rule_id: f.details["status"] for f in rep.findings}
    assert status == {"DEBIAN-CVE-2024-1000": "will not fix", "DEBIAN-CVE-2024-1001": "not yet fixed",
                      "DEBIAN-CVE-2024-1004": "fixed"}
    out = apply(result, store)
    assert len(out.findings) == 3 and "vulnerabilities" not in out.packages[0].metadata
    # --ignore-unfixed drops the states without a fix, whatever the distro calls them.
    assert [f.rule_id for f in filter_findings(rep.findings, ignore_unfixed=True)] == ["DEBIAN-CVE-2024-1004"]


def test_ubuntu_priority_from_severity_type(store: Store) -> None:
    rec = record("UBUNTU-CVE-2024-2000", "Ubuntu:22.04:LTS", "zlib", fixed("1:1.2.11.dfsg-2ubuntu9.3"),
                 severity=[{"type": "Ubuntu", "score": "medium"}, {"type": "CVSS_V3", "score": V3_CRITICAL}])
    _load(store, rec)
    pkgs = [_pkg("zlib1g", "1:1.2.11.dfsg-2ubuntu9", "deb", source_name="zlib")]
    [f] = match(_result(pkgs, OSInfo(family="ubuntu", release="22.04")), store).findings
    assert f.severity == Severity.MEDIUM and f.details["severity_source"] == "distro"
    assert f.details["cvss"]["score"] == 9.8


# --- base image vs application -------------------------------------------------------------------


def _layered(history: list[dict], layers: list[Layer], packages: list[Package] | None = None,
             labels: dict | None = None) -> ScanResult:
    return ScanResult(artifact=Artifact(name="t", type="docker-archive", history=history,
                                        config={"Labels": labels} if labels else {}),
                      layers=layers, packages=packages or [], os=DEBIAN12)


def _d(n: int) -> str:
    return "sha256:" + str(n) * 64


def test_layer_roles_from_the_base_images_last_command() -> None:
    # python:3.11 on debian:12, then an application: the last CMD followed by layers is the seam.
    history = [{"created_by": "/bin/sh -c #(nop) ADD file:abc in / "},
               {"created_by": '/bin/sh -c #(nop)  CMD ["bash"]', "empty_layer": True},
               {"created_by": "/bin/sh -c set -eux; apt-get install python3"},
               {"created_by": 'CMD ["python3"]', "empty_layer": True, "comment": "buildkit.dockerfile.v0"},
               {"created_by": "WORKDIR /app", "empty_layer": True},
               {"created_by": "COPY . /app # buildkit"},
               {"created_by": "RUN /bin/sh -c pip install -r requirements.txt # buildkit"},
               {"created_by": 'CMD ["python3", "app.py"]', "empty_layer": True}]
    layers = [Layer(digest=_d(i), created_by=h["created_by"]) for i, h in
              enumerate(h for h in history if not h.get("empty_layer"))]
    roles = layer_roles(_layered(history, layers))
    assert [roles[layer.digest] for layer in layers] == ["base", "base", "application", "application"]


def test_layer_roles_fallback_and_edge_cases() -> None:
    # No command entries at all (the demo image): the root filesystem import is the base.
    history = [{"created_by": "/bin/sh -c #(nop) ADD file:debian-rootfs.tar.xz in / "},
               {"created_by": "RUN pip install flask"}, {"created_by": "COPY app/ /srv/app"}]
    layers = [Layer(digest=_d(i), created_by=h["created_by"]) for i, h in enumerate(history)]
    assert list(layer_roles(_layered(history, layers)).values()) == ["base", "application", "application"]
    # A base image scanned on its own: its CMD comes last, so nothing follows the seam.
    alone = [history[0], {"created_by": 'CMD ["bash"]', "empty_layer": True}]
    assert list(layer_roles(_layered(alone, layers[:1])).values()) == ["base"]
    # Filesystem and SBOM scans have no layers, hence no roles.
    assert layer_roles(_result([])) == {LAYER: "application"}
    assert layer_roles(ScanResult(artifact=Artifact(name="d", type="filesystem"))) == {}


def test_summary_per_package_and_per_layer() -> None:
    base, app = _d(1), _d(2)
    history = [{"created_by": "ADD file:x in /"}, {"created_by": 'CMD ["bash"]', "empty_layer": True},
               {"created_by": "RUN npm ci"}]
    layers = [Layer(digest=base, created_by="ADD file:x in /"), Layer(digest=app, created_by="RUN npm ci")]

    def vuln(rule: str, name: str, version: str, eco: str, fix: str, layer: str, sev: Severity) -> Finding:
        return Finding(kind="vulnerability", rule_id=rule, severity=sev, fix=fix,
                       location=Location(path="p", layer=layer),
                       details={"package": {"name": name, "version": version, "ecosystem": eco}})

    fs = [vuln("DSA-1", "openssl", "3.0.11-1~deb12u1", "deb", "3.0.11-1~deb12u2", base, Severity.HIGH),
          vuln("DSA-2", "openssl", "3.0.11-1~deb12u1", "deb", "3.0.13-1~deb12u1", base, Severity.MEDIUM),
          vuln("DEBIAN-CVE-1", "zlib", "1:1.2.13.dfsg-1", "deb", "", base, Severity.LOW),
          vuln("GHSA-1", "qs", "6.7.0", "npm", "6.7.3", app, Severity.HIGH)]
    result = _layered(history, layers, labels={"org.opencontainers.image.base.name": "docker.io/debian:12"})
    result = ScanResult(artifact=result.artifact, layers=layers, findings=fs, os=DEBIAN12,
                        packages=[_pkg("x", "not a version!!", "pypi")])
    s = summary(fs, layer_roles(result))
    assert (s["total"], s["fixable"]) == (4, 3)
    base_group, app_group = s["by_layer"]
    assert (base_group["layer"], base_group["total"], base_group["fixable"], base_group["layers"]) == \
        ("base", 3, 2, [base])
    # Two advisories, one upgrade: the higher of the two lowest fixes.
    assert [(u["package"], u["to"], u["fixes"], u["layer"]) for u in base_group["upgrades"]] == \
        [("openssl", "3.0.13-1~deb12u1", 2, "base")]
    assert [(u["package"], u["to"], u["layer"]) for u in app_group["upgrades"]] == [("qs", "6.7.3", "application")]
    assert s["by_severity"]["HIGH"] == 2
    full = result_summary(result)
    assert full["base_image"] == "docker.io/debian:12"
    assert full["not_checked"] == []  # only apply() marks packages; see the next test
    assert "by_layer" not in summary(fs)  # no roles, no split


def test_not_checked_packages_reach_the_summary(store: Store) -> None:
    _load(store, record("GHSA-x", "PyPI", "foo", fixed("2.0")))
    pkgs = [_pkg("foo", "not a version!!", "pypi"), _pkg("weird", "1.0", "swift"), _pkg("foo", "1.0", "pypi")]
    out = apply(_result(pkgs), store)
    skipped = result_summary(out)["not_checked"]
    assert sorted((x["package"], x["ecosystem"]) for x in skipped) == [("foo", "pypi"), ("weird", "swift")]
    assert any("unparsable PyPI version" in x["reason"] for x in skipped)
    assert any("no advisory source for ecosystem 'swift'" in x["reason"] for x in skipped)
    # One warning per cause, not per package.
    assert len([w for w in out.warnings if "not checked" in w]) == 2


def test_summary_survives_findings_without_package_details() -> None:
    fs = [Finding(kind="vulnerability", rule_id="X-1", fix="2.0", details={"package": "not a dict"}),
          Finding(kind="vulnerability", rule_id="X-2", fix="3.0")]
    s = summary(fs, {LAYER: "base"})
    assert s["total"] == 2 and [u["fixes"] for u in s["upgrades"]] == [2]
    assert [g["layer"] for g in s["by_layer"]] == ["base", "application", ""]


def test_binaries_of_one_source_are_one_upgrade(store: Store) -> None:
    _load(store,
          record("DSA-5532-1", "Debian:12", "openssl", fixed("3.0.11-1~deb12u2")),
          record("DSA-5600-1", "Debian:12", "openssl", fixed("3.0.13-1~deb12u1")))
    pkgs = [_pkg("libssl3", "3.0.11-1~deb12u1", "deb", source_name="openssl"),
            _pkg("openssl", "3.0.11-1~deb12u1", "deb", source_name="openssl")]
    result = _result(pkgs, DEBIAN12)
    rep = match(result, store)
    assert len(rep.findings) == 4  # two advisories, two binaries
    [up] = summary(rep.findings)["upgrades"]
    assert (up["package"], up["packages"], up["to"], up["fixes"]) == \
        ("openssl", ["libssl3", "openssl"], "3.0.13-1~deb12u1", 2)
    assert upgrade_label(up) == "openssl (libssl3, openssl)"
