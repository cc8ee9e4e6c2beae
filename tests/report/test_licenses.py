from __future__ import annotations

import pytest

from hullguard.report import _licenses


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("MIT", "MIT"),
        ("mit", "MIT"),
        ("apache-2.0", "Apache-2.0"),
        ("Apache 2.0", None),
        ("MIT License", None),
        ("", None),
    ],
)
def test_spdx_id(text: str, expected: str | None) -> None:
    assert _licenses.spdx_id(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("MIT OR Apache-2.0", "MIT OR Apache-2.0"),
        ("mit or apache-2.0", "MIT OR Apache-2.0"),
        ("(MIT OR Apache-2.0) AND BSD-3-Clause", "(MIT OR Apache-2.0) AND BSD-3-Clause"),
        ("GPL-2.0-only WITH Classpath-exception-2.0", "GPL-2.0-only WITH Classpath-exception-2.0"),
        ("GPL-2.0-or-later+", "GPL-2.0-or-later+"),
        ("LicenseRef-foo.bar AND MIT", "LicenseRef-foo.bar AND MIT"),
        # WITH may only follow a single licence, never a group.
        ("(MIT OR GPL-3.0-only) WITH Classpath-exception-2.0", None),
        ("MIT AND", None),
        ("(MIT", None),
        ("MIT)", None),
        ("AND", None),
        ("GPL-2+ or Artistic", None),
        ("MIT/X11", None),
        ("(" * 200 + "MIT" + ")" * 200, None),
        ("MIT OR " * 1000 + "MIT", None),
    ],
)
def test_expression(text: str, expected: str | None) -> None:
    assert _licenses.expression(text) == expected


def test_license_ref_has_only_allowed_characters() -> None:
    assert _licenses.license_ref("Custom: see LICENSE (ünï)") == "LicenseRef-Custom-see-LICENSE-n"
    assert _licenses.license_ref("!!!") == "LicenseRef-unknown"
