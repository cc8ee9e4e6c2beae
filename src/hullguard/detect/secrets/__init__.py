"""Secret detection: rules as data (rules.py), a multi-pattern engine (engine.py) and the
analyzer that turns engine matches into masked findings (analyzer.py)."""

from hullguard.detect.secrets.engine import AllowList, Engine, SecretMatch, default_engine, mask
from hullguard.detect.secrets.rules import RULES, Rule, rule_by_id

__all__ = [
    "RULES",
    "AllowList",
    "Engine",
    "Rule",
    "SecretMatch",
    "default_engine",
    "mask",
    "rule_by_id",
]
