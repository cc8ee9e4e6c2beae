"""Rule metadata shared by the misconfiguration detectors.

Rules are data (id, severity, texts, references) so that ``hullguard rules list/explain`` can show
them without running a check; the detectors register theirs here at import time.
"""

from __future__ import annotations

import msgspec

from hullguard.model import Severity


class Rule(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    id: str
    title: str
    severity: Severity
    description: str
    remediation: str
    cis: str = ""  # CIS Docker Benchmark section, where one exists
    pss: str = ""  # Pod Security Standards control, for HG-PSS-* rules
    references: tuple[str, ...] = ()


_REGISTRY: dict[str, Rule] = {}


def register(*rules: Rule) -> None:
    for rule in rules:
        if rule.id in _REGISTRY and _REGISTRY[rule.id] != rule:
            raise ValueError(f"duplicate rule id {rule.id}")
        _REGISTRY[rule.id] = rule


def _load_all() -> None:
    # Importing the detectors registers their rules; done lazily to avoid an import cycle.
    from . import dockerfile, image, kubernetes, pss  # noqa: F401


def all_rules() -> list[Rule]:
    _load_all()
    return sorted(_REGISTRY.values(), key=lambda r: r.id)


def get_rule(rule_id: str) -> Rule | None:
    _load_all()
    return _REGISTRY.get(rule_id.upper())
