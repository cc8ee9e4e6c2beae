"""Rules added after the comparison with trivy's built-in rules: what they must not fire on."""

from __future__ import annotations

import base64

import pytest

from hullguard.detect.secrets.engine import Engine

PULL = base64.b64encode(b'{"auths":{"r.fake":{"auth":"Y2k6RkFLRXBhc3N3b3Jk"}}}').decode()


@pytest.mark.parametrize(("path", "text", "rule"), [
    ("k8s/secret.yaml", f"data:\n  .dockerconfigjson: {PULL}\n", "HG-SECRET-169"),
    ("k8s/secret.json", f'{{"data": {{".dockerconfigjson": "{PULL}"}}}}\n', "HG-SECRET-169"),
    ("k8s/legacy.yaml", f"data:\n  .dockercfg: {PULL}\n", "HG-SECRET-169"),
    ("auth.json", '"packagist_ort_' + "0a" * 34 + '"\n', "HG-SECRET-170"),
    ("a.env", "DT=dt0c01." + "A1" * 12 + "." + "Z9" * 32 + "\n", "HG-SECRET-171"),
])
def test_fires(engine: Engine, path: str, text: str, rule: str) -> None:
    assert rule in [m.rule.id for m in engine.scan(text.encode(), path)]


@pytest.mark.parametrize("text", [
    "  .dockerconfigjson: {{ .Values.pullSecret | b64enc }}\n",  # a Helm template, no value yet
    "  .dockerconfigjson: ${PULL_SECRET}\n",
    "  .dockerconfigjson: eyJ\n",  # too short to hold any credential
    "packagist_uut_" + "0a" * 33 + "\n",  # 66 hex: not a token
    "packagist_xyz_" + "0a" * 34 + "\n",
    "dt0c01." + "a1" * 12 + "." + "z9" * 32 + "\n",  # Dynatrace tokens are upper case
    "dt0c01." + "A1" * 12 + "." + "Z9" * 31 + "\n",
])
def test_does_not_fire(engine: Engine, text: str) -> None:
    found = {m.rule.id for m in engine.scan(text.encode(), "k8s/x.yaml")}
    assert not found & {"HG-SECRET-169", "HG-SECRET-170", "HG-SECRET-171"}, found
