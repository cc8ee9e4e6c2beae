"""Runtime detection: Falco-compatible rules evaluated over syscall-shaped and audit events.

    from hullguard.runtime import Engine, load_rules
    ruleset = load_rules(["falco_rules.yaml", "local.yaml"])   # later files override earlier ones
    engine = Engine(ruleset, rule_matching="first")             # Falco's default; or "all"
    for alert in engine.process(event):                         # event: see runtime.replay.normalise
        print(alert.to_dict())                                  # Falco's JSON output shape

``ruleset.statuses`` says for every rule whether it loaded, is disabled, or was skipped (and why,
with file and line); ``runtime.replay`` turns audit logs, Falco JSON and Tetragon export lines
into engine events.
"""

from hullguard.runtime.engine import Alert, Engine
from hullguard.runtime.rules import RulesError, Ruleset, load_rules

__all__ = ["Alert", "Engine", "RulesError", "Ruleset", "load_rules"]
