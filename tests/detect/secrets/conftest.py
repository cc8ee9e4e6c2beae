from __future__ import annotations

import pytest

from hullguard.detect.secrets.engine import Engine

try:
    import hyperscan  # noqa: F401

    HAVE_HS = True
except ImportError:  # pragma: no cover
    HAVE_HS = False

needs_hyperscan = pytest.mark.skipif(not HAVE_HS, reason="hyperscan not installed")


@pytest.fixture(scope="session")
def re_engine() -> Engine:
    return Engine(use_hyperscan=False)


@pytest.fixture(scope="session")
def hs_engine() -> Engine:
    if not HAVE_HS:
        pytest.skip("hyperscan not installed")
    return Engine(use_hyperscan=True)


@pytest.fixture(scope="session", params=["hyperscan", "re"])
def engine(request: pytest.FixtureRequest, re_engine: Engine) -> Engine:
    if request.param == "re":
        return re_engine
    return request.getfixturevalue("hs_engine")
