"""Runtime detection: Falco-compatible rules evaluated over syscall-shaped and audit events."""

from hullguard.runtime.engine import Alert, Engine
from hullguard.runtime.rules import RulesError, Ruleset, load_rules

__all__ = ["Alert", "Engine", "RulesError", "Ruleset", "load_rules"]
