from __future__ import annotations

import json

import pytest

from hullguard.model import HullguardError
from hullguard.policy.vex import apply_vex, load_vex, parse_vex
from tests.policy.conftest import secret, vuln

OPENSSL = "pkg:deb/debian/openssl@3.0.11-1~deb12u2"


def openvex(*statements, timestamp="2026-01-01T00:00:00Z"):
    return {
        "@context": "https://openvex.dev/ns/v0.2.0",
        "@id": "https://example.com/vex/1",
        "author": "Security Team",
        "timestamp": timestamp,
        "version": 1,
        "statements": list(statements),
    }


def ov_statement(status="not_affected", name="CVE-2024-0001", products=None, **extra):
    st = {
        "vulnerability": {"name": name},
        "products": products if products is not None else [{"@id": OPENSSL}],
        "status": status,
    }
    if status == "not_affected" and "justification" not in extra:
        extra["justification"] = "vulnerable_code_not_in_execute_path"
    st.update(extra)
    return st


def cdx(*vulns, components=None):
    return {
        "bomFormat": "CycloneDX",
        "specVersion": "1.6",
        "version": 1,
        "components": components or [],
        "vulnerabilities": list(vulns),
    }


def cdx_vuln(state="not_affected", vid="CVE-2024-0001", ref=OPENSSL, **analysis):
    a = {"state": state, **analysis}
    if state == "not_affected" and "justification" not in a:
        a["justification"] = "code_not_reachable"
    return {"id": vid, "analysis": a, "affects": [{"ref": ref}]}


def _index(write, *docs):
    return load_vex([write(f"vex{i}.json", json.dumps(d)) for i, d in enumerate(docs)])


# --- OpenVEX -------------------------------------------------------------------------------------


def test_openvex_not_affected_suppresses_with_justification(write):
    doc = openvex(ov_statement(impact_statement="the TLS heartbeat path is compiled out"))
    res = apply_vex([vuln(), secret()], _index(write, doc))
    assert len(res.kept) == 1 and res.kept[0].kind == "secret"
    finding, st = res.suppressed[0]
    assert finding.rule_id == "GHSA-aaaa-bbbb-cccc"
    summary = st.summary()
    assert summary["status"] == "not_affected"
    assert summary["justification"] == "vulnerable_code_not_in_execute_path"
    assert summary["detail"] == "the TLS heartbeat path is compiled out"
    assert summary["format"] == "openvex" and summary["source"].endswith("vex0.json")


def test_openvex_fixed_suppresses(write):
    res = apply_vex([vuln()], _index(write, openvex(ov_statement("fixed"))))
    assert res.suppressed and res.suppressed[0][1].status == "fixed"


@pytest.mark.parametrize("status", ["affected", "under_investigation"])
def test_openvex_non_suppressing_statuses(write, status):
    res = apply_vex([vuln()], _index(write, openvex(ov_statement(status))))
    assert res.kept and not res.suppressed


def test_openvex_matches_by_vulnerability_alias_and_by_finding_alias(write):
    by_statement_alias = ov_statement(name="DSA-0000-1")
    by_statement_alias["vulnerability"]["aliases"] = ["cve-2024-0001"]
    assert apply_vex([vuln()], _index(write, openvex(by_statement_alias))).suppressed
    # The finding's rule id (a GHSA) named directly by the statement.
    assert apply_vex([vuln()], _index(write, openvex(ov_statement(name="GHSA-aaaa-bbbb-cccc")))).suppressed


@pytest.mark.parametrize(
    ("product", "suppressed"),
    [
        ("pkg:deb/debian/openssl", True),  # versionless: every version
        ("pkg:deb/debian/openssl@3.0.11-1~deb12u2?arch=arm64", True),  # qualifiers stripped
        ("pkg:deb/debian/openssl@3.0.11-1~deb12u1", False),
        ("pkg:deb/debian/libssl3@3.0.11-1~deb12u2", False),
        ("pkg:deb/ubuntu/openssl", False),
        ("pkg:apk/debian/openssl", False),
        ("https://example.com/not-a-purl", False),
    ],
)
def test_openvex_product_purl_matching(write, product, suppressed):
    res = apply_vex([vuln()], _index(write, openvex(ov_statement(products=[{"@id": product}]))))
    assert bool(res.suppressed) is suppressed


def test_openvex_subcomponents_and_identifiers_and_legacy_strings(write):
    image = "pkg:oci/app@sha256%3Aabc"
    sub = ov_statement(products=[{"@id": image, "subcomponents": [{"@id": "pkg:deb/debian/openssl"}]}])
    assert apply_vex([vuln()], _index(write, openvex(sub))).suppressed
    ident = ov_statement(products=[{"@id": "urn:x", "identifiers": {"purl": "pkg:deb/debian/openssl"}}])
    assert apply_vex([vuln()], _index(write, openvex(ident))).suppressed
    legacy = {"vulnerability": "CVE-2024-0001", "products": ["pkg:deb/debian/openssl"], "status": "fixed"}
    assert apply_vex([vuln()], _index(write, openvex(legacy))).suppressed
    only_image = ov_statement(products=[{"@id": image}])
    assert not apply_vex([vuln()], _index(write, openvex(only_image))).suppressed


def test_finding_without_purl_is_never_suppressed(write):
    res = apply_vex([vuln(purl="")], _index(write, openvex(ov_statement())))
    assert res.kept


def test_later_statement_overrides_earlier(write):
    early = ov_statement(timestamp="2026-01-01T00:00:00Z")
    late = ov_statement("affected", timestamp="2026-02-01T00:00:00Z", action_statement="upgrade")
    assert apply_vex([vuln()], _index(write, openvex(late, early))).kept
    # Same time: document order decides, across files too.
    assert apply_vex([vuln()], _index(write, openvex(ov_statement("affected")), openvex(ov_statement()))).suppressed
    assert apply_vex([vuln()], _index(write, openvex(ov_statement()), openvex(ov_statement("affected")))).kept


# --- CycloneDX -----------------------------------------------------------------------------------


@pytest.mark.parametrize("state", ["not_affected", "false_positive", "resolved"])
def test_cyclonedx_suppressing_states(write, state):
    res = apply_vex([vuln()], _index(write, cdx(cdx_vuln(state, detail="checked by hand"))))
    assert res.suppressed
    summary = res.suppressed[0][1].summary()
    assert summary["status"] == state and summary["format"] == "cyclonedx"
    assert summary["detail"] == "checked by hand"
    if state == "not_affected":
        assert summary["justification"] == "code_not_reachable"


@pytest.mark.parametrize("state", ["exploitable", "in_triage", "resolved_with_pedigree"])
def test_cyclonedx_non_suppressing_states(write, state):
    assert apply_vex([vuln()], _index(write, cdx(cdx_vuln(state)))).kept


def test_cyclonedx_ref_by_bom_ref_and_bom_link(write):
    comps = [{"type": "application", "name": "app", "bom-ref": "app",
              "components": [{"type": "library", "name": "openssl", "bom-ref": "ossl-1",
                              "purl": OPENSSL + "?arch=amd64"}]}]
    assert apply_vex([vuln()], _index(write, cdx(cdx_vuln(ref="ossl-1"), components=comps))).suppressed
    link = "urn:cdx:3e671687-395b-41f5-a30f-a58921a69b79/1#" + "pkg:deb/debian/openssl"
    assert apply_vex([vuln()], _index(write, cdx(cdx_vuln(ref=link)))).suppressed
    assert apply_vex([vuln()], _index(write, cdx(cdx_vuln(ref="unknown-ref")))).kept


def test_cyclonedx_references_are_aliases(write):
    v = cdx_vuln(vid="GHSA-zzzz-zzzz-zzzz")
    v["references"] = [{"id": "CVE-2024-0001", "source": {"name": "NVD"}}]
    assert apply_vex([vuln(rule_id="DSA-1", aliases=("CVE-2024-0001",))], _index(write, cdx(v))).suppressed


def test_cyclonedx_vulnerability_without_analysis_is_ignored(write):
    v = {"id": "CVE-2024-0001", "affects": [{"ref": OPENSSL}]}
    index = _index(write, cdx(v))
    assert len(index) == 0
    assert apply_vex([vuln()], index).kept


def test_mixed_formats_in_one_index(write):
    index = _index(write, openvex(ov_statement(name="CVE-2024-0002")), cdx(cdx_vuln()))
    findings = [vuln(), vuln(rule_id="CVE-2024-0002", aliases=()), vuln(rule_id="CVE-2024-0003", aliases=())]
    res = apply_vex(findings, index)
    assert [f.rule_id for f, _ in res.suppressed] == ["GHSA-aaaa-bbbb-cccc", "CVE-2024-0002"]
    assert [f.rule_id for f in res.kept] == ["CVE-2024-0003"]
    assert len(index.documents) == 2


# --- bad input -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ("{not json", "not a JSON VEX document"),
        ("[]", "must be a JSON object"),
        ('{"hello": 1}', "not an OpenVEX"),
        (json.dumps({"@context": "https://openvex.dev/ns/v0.2.0"}), "no 'statements' list"),
        (json.dumps(openvex("x")), "statement 1 is not an object"),
        (json.dumps(openvex({"status": "fixed", "products": []})), "names no vulnerability"),
        (json.dumps(openvex(ov_statement("maybe"))), "unknown status 'maybe'"),
        (json.dumps({"bomFormat": "CycloneDX", "vulnerabilities": {}}), "no 'vulnerabilities' list"),
        (json.dumps(cdx({"analysis": {"state": "resolved"}})), "has no 'id'"),
        (json.dumps(cdx(cdx_vuln("ignored"))), "unknown analysis.state 'ignored'"),
    ],
)
def test_bad_documents_are_one_line_errors(write, doc, message):
    path = write("bad.json", doc)
    with pytest.raises(HullguardError) as err:
        load_vex([path])
    text = str(err.value)
    assert "\n" not in text and text.startswith(str(path)) and message in text


def test_missing_vex_file(tmp_path):
    with pytest.raises(HullguardError, match="cannot read VEX document"):
        load_vex([tmp_path / "nope.json"])


def test_parse_vex_from_text():
    assert parse_vex(json.dumps(openvex(ov_statement())))[0].status == "not_affected"
