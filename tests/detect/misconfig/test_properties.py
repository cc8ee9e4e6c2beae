"""Property tests: arbitrary text never crashes the parsers, and line numbers stay in range."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from hullguard.detect.misconfig.dockerfile import check_dockerfile, parse_dockerfile
from hullguard.detect.misconfig.kubernetes import ManifestResult, check_manifests, load_manifests
from hullguard.detect.misconfig.pss import evaluate_pss

_DF_LINES = st.sampled_from([
    "FROM alpine:3.19", "FROM x AS y", "RUN a \\", "RUN <<EOF", "EOF", "  # c", "", "COPY . .",
    "RUN curl x | sh", "USER root", "ENV A=b C", "ARG X", "# escape=`", "RUN [\"a\"", "ONBUILD RUN x",
    "HEALTHCHECK NONE", "ADD http://x /y", "RUN <<-E cat", "\tE", "`", "WORKDIR x",
])


@settings(max_examples=150, deadline=None)
@given(st.lists(st.one_of(_DF_LINES, st.text(max_size=30)), max_size=30))
def test_dockerfile_parser_total(lines: list[str]):
    text = "\n".join(lines)
    df = parse_dockerfile(text)
    n = max(1, len(text.splitlines()))
    for inst in df.instructions:
        assert 1 <= inst.line <= inst.end_line <= n
    check_dockerfile(text)


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(
        st.sampled_from(["spec", "containers", "securityContext", "metadata", "kind", "volumes", "name",
                         "capabilities", "add", "drop", "hostPath", "rules", "subjects", "roleRef", "template",
                         "podSelector", "items", "annotations", "runAsNonRoot", "seccompProfile", "type"]),
        children, max_size=5),
    max_leaves=30,
)


@settings(max_examples=150, deadline=None)
@given(_json, st.sampled_from(["Pod", "Deployment", "CronJob", "Role", "RoleBinding", "NetworkPolicy", "List"]))
def test_manifest_checks_total(body: Any, kind: str):
    doc = dict(body) if isinstance(body, dict) else {"spec": body}
    doc["kind"] = kind
    check_manifests([doc])
    check_manifests([doc], pss_level="restricted", pss_version="v1.24")
    evaluate_pss(doc, "restricted")


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_yaml_loader_total(text: str):
    result = ManifestResult()
    load_manifests(text, "x.yaml", result)
