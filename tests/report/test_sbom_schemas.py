"""Rendered SBOMs must validate against the official schemas (loaded locally, no network)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from hullguard.model import Artifact, Location, ScanResult
from hullguard.report import cyclonedx, spdx

from .conftest import debian_image_result, filesystem_result

RESULTS = {
    "debian-image": debian_image_result,
    "filesystem": filesystem_result,
    "empty": lambda: ScanResult(artifact=Artifact(name="img.tar", type="docker-archive")),
}


def _errors(validator: Any, doc: dict[str, Any]) -> list[str]:
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(doc)]


@pytest.mark.parametrize("which", sorted(RESULTS))
def test_cyclonedx_validates(which: str, cdx_validator: Any) -> None:
    doc = json.loads(cyclonedx.render(RESULTS[which]()))
    assert _errors(cdx_validator, doc) == []


@pytest.mark.parametrize("which", sorted(RESULTS))
def test_spdx_validates(which: str, spdx_validator: Any) -> None:
    doc = json.loads(spdx.render(RESULTS[which]()))
    assert _errors(spdx_validator, doc) == []


def test_schema_validators_do_reject(cdx_validator: Any, spdx_validator: Any) -> None:
    # Guards against a validator that accepts anything (e.g. a schema that failed to load).
    cdx = json.loads(cyclonedx.render(debian_image_result()))
    cdx["components"][1]["type"] = "not-a-type"
    assert _errors(cdx_validator, cdx)
    doc = json.loads(spdx.render(debian_image_result()))
    doc["packages"][1]["SPDXID"] = "SPDXRef-bad id"
    assert _errors(spdx_validator, doc)


@pytest.mark.parametrize("fmt", [cyclonedx, spdx], ids=["cyclonedx", "spdx"])
def test_undecodable_paths_do_not_break_rendering(fmt: Any) -> None:
    # tarfile decodes non-UTF-8 member names with surrogateescape.
    result = debian_image_result()
    bad = b"app/caf\xe9/package.json".decode("utf-8", "surrogateescape")
    result.packages[0].locations = [Location(path=bad, layer="")]
    result.packages[1].name = "x\ud800y"
    doc = json.loads(fmt.render(result))
    assert "caf\ufffd" in json.dumps(doc, ensure_ascii=False)
