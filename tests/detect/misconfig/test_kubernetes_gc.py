"""Loading and checking manifests pause the cyclic collector and always leave it as they found it."""

from __future__ import annotations

import gc

import pytest

from hullguard.detect.misconfig.kubernetes import check_manifests, check_text, load_manifests

POD = "apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: a}\nspec: {containers: [{name: c, image: x:1}]}\n"


@pytest.mark.parametrize("data", [POD, "kind: [unclosed\n", b"\x00binary", "a: &x [*x]\n"])
def test_collector_state_is_restored(data) -> None:
    assert gc.isenabled()
    check_text(data, "m.yaml")
    load_manifests(data, "m.yaml")
    assert gc.isenabled()
    gc.disable()
    try:
        check_text(data, "m.yaml")
        assert not gc.isenabled()  # a caller that turned it off keeps it off
    finally:
        gc.enable()


def test_collector_is_restored_when_a_check_raises() -> None:
    with pytest.raises(ValueError):
        check_manifests(load_manifests(POD), pss_level="nonsense")
    assert gc.isenabled()
