"""Rule engine: Falco-shaped YAML rules over rollcage events, and the shipped default rulesets.

    ruleset = RuleSet.load()                      # shipped defaults
    ruleset = RuleSet.load(["my.yaml"])           # defaults, then my.yaml (overrides by name)
    engine = RuleEngine(ruleset)
    for alert in engine.evaluate(event_dict):
        store.append(alert.to_event())

See ``rollcage/rules/README.md`` for the rule format, the condition language and stateful rules.
"""

from rollcage.rules.condition import ConditionError
from rollcage.rules.engine import Alert, RuleEngine
from rollcage.rules.export import AlertCounters, to_falco, to_ocsf
from rollcage.rules.ruleset import (
    ACTIONS,
    CATEGORIES,
    SEVERITIES,
    Rule,
    RuleError,
    RuleLoadError,
    RuleSet,
    Sustained,
    Threshold,
    default_rule_files,
)

__all__ = [
    "ACTIONS",
    "CATEGORIES",
    "SEVERITIES",
    "Alert",
    "AlertCounters",
    "ConditionError",
    "Rule",
    "RuleEngine",
    "RuleError",
    "RuleLoadError",
    "RuleSet",
    "Sustained",
    "Threshold",
    "default_rule_files",
    "to_falco",
    "to_ocsf",
]
