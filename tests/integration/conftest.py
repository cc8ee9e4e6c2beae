"""Session fixtures backed by real parts: a debootstrapped Debian tree, images built from it,
and Debian's distribution registry on loopback (anonymous, basic auth, token auth).

Missing host tools skip these tests with the reason, unless HULLGUARD_REQUIRE_INTEGRATION
is set (CI sets it): then a missing tool is a failure, so CI cannot go green by skipping.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.builders import image as image_mod
from tests.builders import registry as registry_mod
from tests.builders import rootfs as rootfs_mod


def integration_required() -> bool:
    return os.environ.get("HULLGUARD_REQUIRE_INTEGRATION", "").strip().lower() not in ("", "0", "false", "no")


def unavailable(reason: str) -> None:
    """Skip, or fail when integration tests are required."""
    if integration_required():
        pytest.fail(f"HULLGUARD_REQUIRE_INTEGRATION is set but {reason}", pytrace=False)
    pytest.skip(reason)


def require_tools(*tools: str) -> None:
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        unavailable(f"missing tools: {', '.join(missing)} (run .ci/setup.sh)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def debian_rootfs_parts() -> rootfs_mod.BuiltRootfs:
    """The cached Debian bookworm tree: ``.root`` merged, ``.base`` and ``.lang`` separately."""
    missing = rootfs_mod.missing_tools()
    cached = (rootfs_mod.cache_root() / f"rootfs-{rootfs_mod.recipe_key()}" / "recipe.json").is_file()
    if missing and not cached:
        unavailable(f"cannot build the Debian root filesystem, missing: {', '.join(missing)}")
    if os.geteuid() != 0 and not cached:
        unavailable("debootstrap needs root to build the Debian root filesystem")
    return rootfs_mod.build_rootfs_parts()


@pytest.fixture(scope="session")
def debian_rootfs(debian_rootfs_parts: rootfs_mod.BuiltRootfs) -> Path:
    """Merged root filesystem (Debian minbase + pip/npm/jar packages). Read-only: it is a shared cache."""
    return debian_rootfs_parts.root


@pytest.fixture(scope="session")
def debian_image(debian_rootfs_parts: rootfs_mod.BuiltRootfs) -> image_mod.ImagePaths:
    """The three-layer image in every format (OCI dir/archive, docker-archive both layouts, multi-arch)."""
    return image_mod.build_image(debian_rootfs_parts)


@pytest.fixture(scope="session")
def debian_umoci_layout(debian_rootfs_parts: rootfs_mod.BuiltRootfs) -> Path:
    """An OCI layout of the merged tree written by umoci (tag ``1``), an independent writer."""
    require_tools("umoci")
    return image_mod.umoci_debian_layout(debian_rootfs_parts)


def _registry(tmp_path_factory: pytest.TempPathFactory, auth: str) -> Iterator[registry_mod.Registry]:
    require_tools("docker-registry", "skopeo")
    reg = registry_mod.start_registry(tmp_path_factory.mktemp(f"registry-{auth}"), auth=auth)
    try:
        yield reg
    finally:
        reg.stop()


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[registry_mod.Registry]:
    """Anonymous registry; ``.host`` is ``127.0.0.1:PORT``, ``.url`` its http:// base."""
    yield from _registry(tmp_path_factory, "none")


@pytest.fixture(scope="session")
def registry_basic_auth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[registry_mod.Registry]:
    """htpasswd (bcrypt) registry; credentials in ``.username``/``.password`` (``.basic_auth``)."""
    yield from _registry(tmp_path_factory, "basic")


@pytest.fixture(scope="session")
def registry_token_auth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[registry_mod.Registry]:
    """Bearer-token registry; ``.token_server`` is our issuer, which takes ``.username``/``.password``."""
    yield from _registry(tmp_path_factory, "token")


PushFn = Callable[..., str]


@pytest.fixture(scope="session")
def push_image() -> PushFn:
    """``push_image(registry, oci_dir_or_ref, "repo:tag", creds=None, source_transport="oci") -> digest``.

    Uses skopeo and the registry's own credentials unless ``creds`` is given; returns
    the manifest digest the registry stored.
    """
    require_tools("skopeo")
    return registry_mod.push_image
