"""Rule files: loading, overrides, append, disable, and validation errors with lines."""

from __future__ import annotations

from pathlib import Path

import pytest

from rollcage.rules import RuleEngine, RuleLoadError, RuleSet

from .test_rules_support import exec_event

BASE = """
- list: miners
  items: [xmrig, minerd]
- macro: is_exec
  condition: evt.type = exec
- rule: Miner
  desc: a miner
  condition: is_exec and proc.name in (miners)
  output: miner %proc.name pid %proc.pid
  priority: CRITICAL
  category: cryptomining
  action: kill
  tags: [T1496, mining]
"""


def load(*texts: str) -> RuleSet:
    docs = [(f"file{i}.yaml", t) for i, t in enumerate(texts)]
    ruleset, errors = RuleSet._build(docs)
    if errors:
        raise RuleLoadError(errors)
    assert ruleset is not None
    return ruleset


def errors_of(text: str, *, default: bool = False) -> list[str]:
    with pytest.raises(RuleLoadError) as info:
        RuleSet.from_yaml(text, source="user.yaml", default=default)
    return [str(e) for e in info.value.errors]


def fires(ruleset: RuleSet, argv: list[str]) -> list[str]:
    return [a.rule for a in RuleEngine(ruleset).evaluate(exec_event(argv))]


def test_a_rule_loads_with_severity_mitre_and_action() -> None:
    rule = load(BASE).get("Miner")
    assert rule is not None
    assert (rule.severity, rule.priority, rule.action, rule.category) == (
        "critical",
        "Critical",
        "kill",
        "cryptomining",
    )
    assert rule.mitre == ["T1496"] and rule.tags == ["T1496", "mining"]
    assert rule.source == "file0.yaml" and rule.line == 6


@pytest.mark.parametrize(
    ("priority", "severity"),
    [
        ("EMERGENCY", "critical"),
        ("Alert", "critical"),
        ("ERROR", "high"),
        ("warning", "medium"),
        ("NOTICE", "low"),
        ("INFORMATIONAL", "info"),
        ("DEBUG", "info"),
        ("high", "high"),
        ("low", "low"),
    ],
)
def test_priorities_map_to_severities(priority: str, severity: str) -> None:
    rule = load(BASE.replace("priority: CRITICAL", f"priority: {priority}")).get("Miner")
    assert rule is not None and rule.severity == severity


def test_list_append_extends_and_redefinition_replaces() -> None:
    appended = load(BASE, "- list: miners\n  items: [cpuminer]\n  append: true\n")
    assert fires(appended, ["cpuminer"]) == ["Miner"] and fires(appended, ["xmrig"]) == ["Miner"]
    replaced = load(BASE, "- list: miners\n  items: [cpuminer]\n")
    assert fires(replaced, ["cpuminer"]) == ["Miner"] and fires(replaced, ["xmrig"]) == []
    overridden = load(BASE, "- list: miners\n  items: [ethminer]\n  override:\n    items: append\n")
    assert fires(overridden, ["ethminer"]) == ["Miner"] and fires(overridden, ["xmrig"]) == ["Miner"]


def test_macro_append_and_rule_condition_append() -> None:
    ruleset = load(BASE, "- rule: Miner\n  condition: and not proc.cwd = /safe\n  append: true\n")
    assert fires(ruleset, ["xmrig"]) == ["Miner"]
    assert RuleEngine(ruleset).evaluate(exec_event(["xmrig"], cwd="/safe")) == []
    macro = load(BASE, "- macro: is_exec\n  condition: and proc.uid = 0\n  append: true\n")
    assert fires(macro, ["xmrig"]) == []  # exec_event runs as uid 1000


def test_disable_and_change_a_shipped_rule_by_name() -> None:
    disabled = load(BASE, "- rule: Miner\n  enabled: false\n")
    assert disabled.get("Miner").enabled is False  # type: ignore[union-attr]
    assert fires(disabled, ["xmrig"]) == []
    changed = load(BASE, "- rule: Miner\n  action: alert\n  priority: WARNING\n")
    rule = changed.get("Miner")
    assert rule is not None and (rule.action, rule.severity) == ("alert", "medium")
    assert rule.condition == "is_exec and proc.name in (miners)"


def test_a_redefinition_replaces_the_whole_rule() -> None:
    ruleset = load(BASE, "- rule: Miner\n  condition: proc.name = ls\n  priority: INFO\n  category: policy_violation\n")
    assert fires(ruleset, ["ls"]) == ["Miner"] and fires(ruleset, ["xmrig"]) == []
    assert ruleset.get("Miner").action == "alert"  # type: ignore[union-attr]


def test_defaults_load_and_user_files_override_them(tmp_path: Path) -> None:
    default = RuleSet.load()
    assert len(default.rules) > 80
    assert {r.category for r in default.rules} == {
        "cryptomining",
        "tunnel",
        "reverse_shell",
        "network_probe",
        "credential_access",
        "persistence",
        "defense_evasion",
        "exfiltration",
        "ingress_transfer",
        "sandbox_escape",
        "resource_abuse",
        "gpu_diversion",
        "policy_violation",
    }
    user = tmp_path / "user.yaml"
    user.write_text(
        "- rule: Cryptominer launched\n  enabled: false\n- list: miner_binaries\n  items: [mysteryd]\n  append: true\n"
    )
    ruleset = RuleSet.load(extra=[user])
    assert ruleset.get("Cryptominer launched").enabled is False  # type: ignore[union-attr]
    assert "mysteryd" in ruleset.lists["miner_binaries"]
    with pytest.raises(RuleLoadError, match="cannot change a rule that is not defined"):
        RuleSet.load([user], default=False)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "- rule: R\n  condition: proc.nmae = x\n  priority: INFO\n  category: tunnel\n",
            "user.yaml:2: rule 'R': unknown field 'proc.nmae'",
        ),
        (
            "- rule: R\n  condition: proc.name = x\n  priority: INFO\n  category: mining\n",
            "user.yaml:4: rule 'R': bad category 'mining'",
        ),
        (
            "- rule: R\n  condition: proc.name = x\n  priority: LOUD\n  category: tunnel\n",
            "user.yaml:3: rule 'R': bad priority 'LOUD'",
        ),
        (
            "- rule: R\n  condition: proc.name = x\n  priority: INFO\n  category: tunnel\n  action: nuke\n",
            "user.yaml:5: rule 'R': bad action 'nuke'",
        ),
        (
            "- rule: R\n  condition: proc.name = x\n  priority: INFO\n  category: tunnel\n  colour: red\n",
            "user.yaml:5: rule 'R': unknown key 'colour'",
        ),
        (
            "- rule: R\n  condition: proc.name likes x\n  priority: INFO\n  category: tunnel\n",
            "user.yaml:2: rule 'R': unexpected 'likes'",
        ),
        (
            "- rule: R\n  condition: nomacro and proc.name = x\n  priority: INFO\n  category: tunnel\n",
            "user.yaml:2: rule 'R': undefined macro 'nomacro'",
        ),
        (
            "- rule: R\n  condition: proc.name in nolist\n  priority: INFO\n  category: tunnel\n",
            "user.yaml:2: rule 'R': undefined list 'nolist'",
        ),
        ("- rule: R\n  condition: proc.name = x\n  category: tunnel\n", "user.yaml:1: rule 'R': missing priority"),
        (
            "- rule: R\n  condition: proc.name = x\n  priority: INFO\n  category: tunnel\n  output: '%proc.nope here'\n",  # noqa: E501
            "user.yaml:5: rule 'R': unknown field 'proc.nope' in output",
        ),
        ("- rule: Nope\n  enabled: false\n", "user.yaml:1: rule 'Nope': cannot change a rule that is not defined"),
        ("- list: L\n  items: [a]\n  append: true\n", "user.yaml:1: list 'L': append to a list that is not defined"),
        (
            "- macro: a\n  condition: b\n- macro: b\n  condition: a\n",
            "user.yaml:2: macro 'a': macro recursion: a -> b -> a",
        ),
        ("- rule: R\n  condition: [unclosed\n", "user.yaml:3: YAML syntax error"),
        ("rule: R\n", "user.yaml:1: expected a list of items"),
        ("- just a string\n", "user.yaml:1: each item must be a mapping"),
        ("- rulez: R\n", "user.yaml:1: item is not a list, macro or rule"),
        (
            "- rule: R\n  condition: proc.name = x\n  condition: proc.name = y\n  priority: INFO\n  category: tunnel\n",
            "user.yaml:3: duplicate key 'condition'",
        ),
        (
            "- rule: R\n  condition: proc.name = x\n  priority: INFO\n  category: tunnel\n  threshold: {count: 0, window: 5}\n",  # noqa: E501
            "user.yaml:5: rule 'R': threshold: count must be",
        ),
        (
            "- rule: R\n  condition: proc.name = x\n  priority: INFO\n  category: tunnel\n  sustained: {for: soon}\n",
            "user.yaml:5: rule 'R': sustained: bad duration",
        ),
        (
            "- rule: R\n  condition: 42\n  priority: INFO\n  category: tunnel\n",
            "user.yaml:2: rule 'R': condition must be a string",
        ),
    ],
)
def test_validation_errors_name_file_line_and_rule(text: str, expected: str) -> None:
    errors = errors_of(text)
    assert any(e.startswith(expected) for e in errors), errors


def test_every_error_is_reported_not_just_the_first() -> None:
    text = (
        "- rule: A\n  condition: proc.nope = 1\n  priority: INFO\n  category: tunnel\n"
        "- rule: B\n  condition: proc.name = x\n  priority: INFO\n  category: nope\n"
    )
    errors = errors_of(text)
    assert len(errors) == 2 and errors[0].startswith("user.yaml:2:") and errors[1].startswith("user.yaml:8:")


def test_hostile_yaml_is_an_error_not_a_crash() -> None:
    bomb = "- &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"- &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n" for i in range(8)
    )
    errors = errors_of(bomb)
    assert errors and all("each item must be a mapping" in e for e in errors)
    deep = "- rule: R\n  condition: " + "[" * 5000 + "\n"
    assert errors_of(deep)
    assert errors_of("- rule: R\n  condition: !!python/object:os.system x\n")


def test_check_reports_unreadable_files(tmp_path: Path) -> None:
    ruleset, errors = RuleSet.check([tmp_path / "missing.yaml"], default=False)
    assert ruleset is None and "cannot read" in str(errors[0])
