"""Rule files: load Falco-shaped YAML (lists, macros, rules), merge overrides, compile.

Files are read in order — the shipped defaults first, then the user's — and later items change
earlier ones by name, as in Falco: a redefinition replaces, ``append: true`` (or
``override: {key: append}``) extends, and a ``rule`` item without a ``condition`` changes only
the keys it gives (``- rule: X`` / ``enabled: false`` disables a shipped rule). Every problem is
collected as a :class:`RuleError` that names the file, line and item; nothing half-loads.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from rollcage.errors import RollcageError
from rollcage.rules.condition import Compiled, Compiler, ConditionError
from rollcage.rules.fields import lookup

CATEGORIES = (
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
)
ACTIONS = ("alert", "block", "kill", "freeze", "stop", "end_episode")
SEVERITIES = ("critical", "high", "medium", "low", "info")

# Falco priority -> rollcage severity; severity words are accepted as priorities too.
_PRIORITY_TO_SEVERITY = {
    "emergency": "critical",
    "alert": "critical",
    "critical": "critical",
    "error": "high",
    "warning": "medium",
    "notice": "low",
    "informational": "info",
    "info": "info",
    "debug": "info",
    "high": "high",
    "medium": "medium",
    "low": "low",
}
_FALCO_PRIORITIES = {
    "emergency": "Emergency",
    "alert": "Alert",
    "critical": "Critical",
    "error": "Error",
    "warning": "Warning",
    "notice": "Notice",
    "informational": "Informational",
    "info": "Informational",
    "debug": "Debug",
}
SEVERITY_TO_PRIORITY = {
    "critical": "Critical",
    "high": "Error",
    "medium": "Warning",
    "low": "Notice",
    "info": "Informational",
}

_MITRE = re.compile(r"^T\d{4}(\.\d{3})?$")
_OUTPUT_FIELD = re.compile(
    r"%(?:\((?P<p>[a-z_][a-z0-9_.\[\]-]*)\)|(?P<f>[a-z_][a-z0-9_]*(?:\.[a-z0-9_]+)+(?:\[-?\d+\])?))"
)

_LIST_KEYS = {"list", "items", "append", "override"}
_MACRO_KEYS = {"macro", "condition", "append", "override"}
_RULE_KEYS = {
    "rule",
    "desc",
    "condition",
    "output",
    "priority",
    "severity",
    "tags",
    "enabled",
    "category",
    "action",
    "append",
    "override",
    "threshold",
    "sustained",
    "source",
}
_IGNORED_ITEMS = {"required_engine_version", "required_plugin_versions"}


@dataclass(frozen=True)
class RuleError:
    """One problem in a rule file: where it is, which item, and what is wrong."""

    source: str
    line: int
    kind: str  # rule / macro / list / file
    name: str | None
    message: str

    def __str__(self) -> str:
        where = f"{self.source}:{self.line}"
        if self.name is None:
            return f"{where}: {self.message}"
        return f"{where}: {self.kind} {self.name!r}: {self.message}"


class RuleLoadError(RollcageError, ValueError):
    """Rule files have errors; ``errors`` lists every one."""

    def __init__(self, errors: Sequence[RuleError]) -> None:
        self.errors = list(errors)
        super().__init__("\n".join(str(e) for e in self.errors))


@dataclass(frozen=True)
class Threshold:
    """Fire when ``count`` matching events (or distinct values of ``distinct``) fall in ``window`` s."""

    count: int
    window: float
    by: str | None = None
    distinct: str | None = None


@dataclass(frozen=True)
class Sustained:
    """Fire when the condition held on every sample for ``duration`` seconds."""

    duration: float
    by: str | None = None


@dataclass
class Rule:
    """A rule after merging and compiling; ``compiled`` is None only while loading."""

    name: str
    condition: str
    category: str
    priority: str
    severity: str
    desc: str = ""
    output: str = ""
    tags: list[str] = field(default_factory=list)
    action: str = "alert"
    enabled: bool = True
    source: str = ""
    line: int = 0
    condition_line: int = 0
    threshold: Threshold | None = None
    sustained: Sustained | None = None
    compiled: Compiled | None = None
    output_fields: tuple[str, ...] = ()
    index: int = 0

    @property
    def mitre(self) -> list[str]:
        return [t for t in self.tags if _MITRE.match(t)]

    def summary(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "category": self.category,
            "severity": self.severity,
            "priority": self.priority,
            "action": self.action,
            "enabled": self.enabled,
            "mitre": self.mitre,
            "source": f"{self.source}:{self.line}",
        }


@dataclass
class _Def:
    kind: str
    name: str
    body: dict[str, Any]
    lines: dict[str, int]
    source: str
    line: int


def default_rule_files() -> list[Path]:
    """The shipped rule files, in load order."""
    base = resources.files("rollcage.rules") / "default"
    return sorted(Path(str(p)) for p in base.iterdir() if p.name.endswith((".yaml", ".yml")))


def parse_duration(value: Any) -> float:
    """Seconds from ``30``, ``"30s"``, ``"500ms"``, ``"2m"`` or ``"1h"``; ValueError otherwise."""
    if isinstance(value, bool):
        raise ValueError(f"bad duration {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*", str(value))
        if not m:
            raise ValueError(f"bad duration {value!r} (use e.g. 10, '10s', '500ms', '2m')")
        unit = {"ms": 0.001, "s": 1.0, None: 1.0, "m": 60.0, "h": 3600.0}[m.group(2)]
        seconds = float(m.group(1)) * unit
    if seconds <= 0:
        raise ValueError(f"duration must be positive, got {value!r}")
    return seconds


def _read_items(text: str, source: str, errors: list[RuleError]) -> list[_Def]:
    """YAML text -> item definitions with line numbers (PyYAML's composed nodes keep marks)."""
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
        if root is None:
            return []
        if not isinstance(root, yaml.SequenceNode):
            errors.append(RuleError(source, root.start_mark.line + 1, "file", None, "expected a list of items"))
            return []
        out: list[_Def] = []
        for node in root.value:
            line = node.start_mark.line + 1
            if not isinstance(node, yaml.MappingNode):
                errors.append(RuleError(source, line, "file", None, "each item must be a mapping (list/macro/rule)"))
                continue
            body: dict[str, Any] = {}
            lines: dict[str, int] = {}
            for key_node, value_node in node.value:
                key = loader.construct_object(key_node, deep=True)
                key = str(key)
                if key in body:
                    errors.append(
                        RuleError(source, key_node.start_mark.line + 1, "file", None, f"duplicate key {key!r}")
                    )
                body[key] = loader.construct_object(value_node, deep=True)
                lines[key] = value_node.start_mark.line + 1
            kinds = [k for k in ("rule", "macro", "list") if k in body]
            if not kinds:
                if _IGNORED_ITEMS & set(body):
                    continue
                keys = ", ".join(sorted(body)) or "nothing"
                errors.append(RuleError(source, line, "file", None, f"item is not a list, macro or rule (has {keys})"))
                continue
            if len(kinds) > 1:
                errors.append(RuleError(source, line, "file", None, f"item has more than one of {', '.join(kinds)}"))
                continue
            kind = kinds[0]
            name = body[kind]
            if not isinstance(name, str) or not name.strip():
                errors.append(RuleError(source, line, kind, None, f"{kind} name must be a non-empty string"))
                continue
            out.append(_Def(kind, name, body, lines, source, line))
        return out
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 0
        problem = exc.problem or exc.context or "invalid YAML"
        errors.append(RuleError(source, line, "file", None, f"YAML syntax error: {problem}"))
        return []
    except yaml.YAMLError as exc:
        errors.append(RuleError(source, 0, "file", None, f"YAML error: {exc}"))
        return []
    except RecursionError:
        errors.append(RuleError(source, 0, "file", None, "YAML nested too deeply"))
        return []
    finally:
        loader.dispose()


def _override_mode(d: _Def, key: str) -> str | None:
    """'append', 'replace' or None for ``key`` of a redefinition."""
    override = d.body.get("override")
    if isinstance(override, dict) and key in override:
        return str(override[key])
    if d.body.get("append") is True:
        return "append"
    return None


class RuleSet:
    """Lists, macros and compiled rules, in load order. Build with :meth:`load`."""

    def __init__(self, rules: list[Rule], lists: dict[str, list[Any]], macros: dict[str, str], files: list[str]):
        self.rules = rules
        self.lists = lists
        self.macros = macros
        self.files = files
        self._by_name = {r.name: r for r in rules}

    # --- construction ---------------------------------------------------------------------------

    @classmethod
    def load(
        cls,
        paths: Iterable[str | Path] | None = None,
        *,
        default: bool = True,
        extra: Iterable[str | Path] = (),
    ) -> RuleSet:
        """Shipped defaults (unless ``default=False``), then ``paths``, then ``extra``.

        Raises :class:`RuleLoadError` listing every error.
        """
        ruleset, errors = cls.check(paths, default=default, extra=extra)
        if errors:
            raise RuleLoadError(errors)
        assert ruleset is not None
        return ruleset

    @classmethod
    def from_yaml(cls, text: str, *, source: str = "<rules>", default: bool = False) -> RuleSet:
        """A rule set from YAML text (after the defaults when ``default=True``)."""
        docs = cls._default_docs() if default else []
        ruleset, errors = cls._build([*docs, (source, text)])
        if errors:
            raise RuleLoadError(errors)
        assert ruleset is not None
        return ruleset

    @classmethod
    def check(
        cls,
        paths: Iterable[str | Path] | None = None,
        *,
        default: bool = True,
        extra: Iterable[str | Path] = (),
    ) -> tuple[RuleSet | None, list[RuleError]]:
        """Like :meth:`load` but returns ``(ruleset or None, errors)``."""
        docs = cls._default_docs() if default else []
        errors: list[RuleError] = []
        for path in [*(paths or ()), *extra]:
            source = str(path)
            try:
                docs.append((source, Path(path).read_text(encoding="utf-8")))
            except (OSError, UnicodeDecodeError) as exc:
                reason = getattr(exc, "strerror", None) or str(exc)
                errors.append(RuleError(source, 0, "file", None, f"cannot read: {reason}"))
        ruleset, build_errors = cls._build(docs)
        errors.extend(build_errors)
        order = {source: i for i, (source, _) in enumerate(docs)}
        errors.sort(key=lambda e: (order.get(e.source, -1), e.line))
        return (None if errors else ruleset), errors

    @staticmethod
    def _default_docs() -> list[tuple[str, str]]:
        return [(f"default/{p.name}", p.read_text(encoding="utf-8")) for p in default_rule_files()]

    @classmethod
    def _build(cls, docs: list[tuple[str, str]]) -> tuple[RuleSet | None, list[RuleError]]:
        errors: list[RuleError] = []
        lists: dict[str, _Def] = {}
        macros: dict[str, _Def] = {}
        rules: dict[str, Rule] = {}
        for source, text in docs:
            for d in _read_items(text, source, errors):
                if d.kind == "list":
                    cls._merge_list(d, lists, errors)
                elif d.kind == "macro":
                    cls._merge_macro(d, macros, errors)
                else:
                    cls._merge_rule(d, rules, errors)

        list_values = cls._expand_lists(lists, errors)
        macro_text = {name: d.body["condition"] for name, d in macros.items()}
        compiler = Compiler(list_values, macro_text)
        for name, d in macros.items():
            try:
                compiler.macro(name)
            except ConditionError as exc:
                errors.append(RuleError(d.source, d.lines.get("condition", d.line), "macro", name, str(exc)))
        ordered = list(rules.values())
        for index, rule in enumerate(ordered):
            rule.index = index
            try:
                rule.compiled = compiler.compile(rule.condition)
            except ConditionError as exc:
                errors.append(RuleError(rule.source, _cond_line(rule), "rule", rule.name, str(exc)))
        if errors:
            order = {source: i for i, (source, _) in enumerate(docs)}
            errors.sort(key=lambda e: (order.get(e.source, -1), e.line))
            return None, errors
        return cls(ordered, list_values, macro_text, [s for s, _ in docs]), []

    @staticmethod
    def _merge_list(d: _Def, lists: dict[str, _Def], errors: list[RuleError]) -> None:
        unknown = set(d.body) - _LIST_KEYS
        if unknown:
            key = sorted(unknown)[0]
            errors.append(RuleError(d.source, d.lines[key], "list", d.name, f"unknown key {key!r}"))
            return
        items = d.body.get("items")
        if items is None:
            items = []
        if not isinstance(items, list) or any(isinstance(i, dict | list) for i in items):
            errors.append(RuleError(d.source, d.lines.get("items", d.line), "list", d.name, "items must be a list"))
            return
        d.body["items"] = [i for i in items if i is not None]
        if _override_mode(d, "items") == "append":
            if d.name not in lists:
                errors.append(RuleError(d.source, d.line, "list", d.name, "append to a list that is not defined"))
                return
            lists[d.name].body["items"] = [*lists[d.name].body["items"], *d.body["items"]]
            return
        lists[d.name] = d

    @staticmethod
    def _merge_macro(d: _Def, macros: dict[str, _Def], errors: list[RuleError]) -> None:
        unknown = set(d.body) - _MACRO_KEYS
        if unknown:
            key = sorted(unknown)[0]
            errors.append(RuleError(d.source, d.lines[key], "macro", d.name, f"unknown key {key!r}"))
            return
        cond = d.body.get("condition")
        if not isinstance(cond, str) or not cond.strip():
            errors.append(RuleError(d.source, d.lines.get("condition", d.line), "macro", d.name, "needs a condition"))
            return
        if _override_mode(d, "condition") == "append":
            if d.name not in macros:
                errors.append(RuleError(d.source, d.line, "macro", d.name, "append to a macro that is not defined"))
                return
            old = macros[d.name]
            old.body["condition"] = f"{old.body['condition']} {cond}"
            return
        macros[d.name] = d

    @classmethod
    def _merge_rule(cls, d: _Def, rules: dict[str, Rule], errors: list[RuleError]) -> None:
        def err(key: str | None, message: str) -> None:
            errors.append(RuleError(d.source, d.lines.get(key, d.line) if key else d.line, "rule", d.name, message))

        unknown = set(d.body) - _RULE_KEYS
        if unknown:
            key = sorted(unknown)[0]
            hint = " (exceptions are not supported; narrow the condition instead)" if key == "exceptions" else ""
            err(key, f"unknown key {key!r}{hint}")
            return
        values: dict[str, Any] = {}
        ok = True
        for key in ("desc", "output", "condition"):
            if key in d.body:
                if not isinstance(d.body[key], str):
                    err(key, f"{key} must be a string")
                    ok = False
                else:
                    values[key] = d.body[key].strip()
        if "priority" in d.body or "severity" in d.body:
            key = "priority" if "priority" in d.body else "severity"
            word = str(d.body[key]).strip().lower()
            if word not in _PRIORITY_TO_SEVERITY:
                err(key, f"bad {key} {d.body[key]!r} (Falco priority or one of {', '.join(SEVERITIES)})")
                ok = False
            else:
                values["severity"] = _PRIORITY_TO_SEVERITY[word]
                values["priority"] = _FALCO_PRIORITIES.get(word) or SEVERITY_TO_PRIORITY[values["severity"]]
        if "category" in d.body:
            if d.body["category"] not in CATEGORIES:
                err("category", f"bad category {d.body['category']!r} (one of {', '.join(CATEGORIES)})")
                ok = False
            else:
                values["category"] = d.body["category"]
        if "action" in d.body:
            if d.body["action"] not in ACTIONS:
                err("action", f"bad action {d.body['action']!r} (one of {', '.join(ACTIONS)})")
                ok = False
            else:
                values["action"] = d.body["action"]
        if "enabled" in d.body:
            if not isinstance(d.body["enabled"], bool):
                err("enabled", "enabled must be true or false")
                ok = False
            else:
                values["enabled"] = d.body["enabled"]
        if "tags" in d.body:
            tags = d.body["tags"]
            if not isinstance(tags, list) or not all(isinstance(t, str | int) for t in tags):
                err("tags", "tags must be a list of strings")
                ok = False
            else:
                values["tags"] = [str(t) for t in tags]
        if "threshold" in d.body and "sustained" in d.body:
            err("sustained", "a rule takes threshold or sustained, not both")
            ok = False
        if "threshold" in d.body:
            try:
                values["threshold"] = _threshold(d.body["threshold"])
            except ValueError as exc:
                err("threshold", f"threshold: {exc}")
                ok = False
        if "sustained" in d.body:
            try:
                values["sustained"] = _sustained(d.body["sustained"])
            except ValueError as exc:
                err("sustained", f"sustained: {exc}")
                ok = False
        if "output" in values and ok:
            try:
                values["output_fields"] = output_fields(values["output"])
            except ValueError as exc:
                err("output", str(exc))
                ok = False
        if not ok:
            return

        existing = rules.get(d.name)
        appending = d.body.get("append") is True or isinstance(d.body.get("override"), dict)
        if appending or "condition" not in values:
            if existing is None:
                what = "append to" if appending else "change"
                err(None, f"cannot {what} a rule that is not defined (a new rule needs a condition)")
                return
            for key, value in values.items():
                mode = _override_mode(d, key) if appending else "replace"
                if mode == "append" and key in ("condition", "output", "desc"):
                    value = f"{getattr(existing, key)} {value}".strip()
                elif mode == "append" and key == "tags":
                    value = [*existing.tags, *[t for t in value if t not in existing.tags]]
                setattr(existing, key, value)
            if "output" in values and "output_fields" not in values:
                existing.output_fields = output_fields(existing.output)
            if "condition" in values:
                existing.source, existing.condition_line = d.source, d.lines.get("condition", d.line)
            return
        missing = [k for k in ("category",) if k not in values]
        if "severity" not in values:
            missing.append("priority")
        if missing:
            err(None, f"missing {' and '.join(missing)}")
            return
        output = values.get("output") or f"{d.name} (%evt.type)"
        rule = Rule(
            name=d.name,
            condition=values["condition"],
            category=values["category"],
            priority=values["priority"],
            severity=values["severity"],
            desc=values.get("desc", ""),
            output=output,
            tags=values.get("tags", []),
            action=values.get("action", "alert"),
            enabled=values.get("enabled", True),
            source=d.source,
            line=d.line,
            threshold=values.get("threshold"),
            sustained=values.get("sustained"),
            output_fields=output_fields(output),
            condition_line=d.lines.get("condition", d.line),
        )
        if existing is not None:
            rules.pop(d.name)  # a redefinition replaces, and takes the new position
        rules[d.name] = rule

    @staticmethod
    def _expand_lists(lists: dict[str, _Def], errors: list[RuleError]) -> dict[str, list[Any]]:
        """Lists may name other lists among their items (Falco); expand them, refusing cycles."""
        done: dict[str, list[Any]] = {}

        def expand(name: str, stack: list[str]) -> list[Any]:
            if name in done:
                return done[name]
            if name in stack:
                raise ValueError(" -> ".join([*stack[stack.index(name) :], name]))
            out: list[Any] = []
            for item in lists[name].body["items"]:
                if isinstance(item, str) and item in lists:
                    out.extend(expand(item, [*stack, name]))
                else:
                    out.append(item)
            done[name] = out
            return out

        for name, d in lists.items():
            try:
                expand(name, [])
            except ValueError as exc:
                errors.append(RuleError(d.source, d.line, "list", name, f"list refers to itself: {exc}"))
                done[name] = []
        return done

    # --- queries --------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.rules)

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self.rules)

    def get(self, name: str) -> Rule | None:
        return self._by_name.get(name)

    @property
    def enabled_rules(self) -> list[Rule]:
        return [r for r in self.rules if r.enabled]


def _cond_line(rule: Rule) -> int:
    return rule.condition_line or rule.line


def output_fields(template: str) -> tuple[str, ...]:
    """The fields a Falco output template names (``%proc.name``); ValueError on an unknown one."""
    names = []
    for m in _OUTPUT_FIELD.finditer(template):
        name = m.group("p") or m.group("f")
        if lookup(name) is None:
            raise ValueError(f"unknown field {name!r} in output")
        if name not in names:
            names.append(name)
    return tuple(names)


def render_output(template: str, values: dict[str, Any]) -> str:
    """Substitute ``%field`` with its value (``<NA>`` when missing)."""

    def sub(m: re.Match[str]) -> str:
        value = values.get(m.group("p") or m.group("f"))
        if value is None:
            return "<NA>"
        if isinstance(value, list):
            return " ".join(str(v) for v in value)
        return str(value)

    return _OUTPUT_FIELD.sub(sub, template)


def _field_name(value: Any, what: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or lookup(value) is None:
        raise ValueError(f"{what}: unknown field {value!r}")
    return value


def _threshold(spec: Any) -> Threshold:
    if not isinstance(spec, dict):
        raise ValueError("expected a mapping {count: N, window: SECONDS}")
    unknown = set(spec) - {"count", "window", "by", "distinct"}
    if unknown:
        raise ValueError(f"unknown key {sorted(unknown)[0]!r}")
    count = spec.get("count")
    if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= 100_000:
        raise ValueError("count must be an integer between 1 and 100000")
    if "window" not in spec:
        raise ValueError("window is required")
    return Threshold(
        count=count,
        window=parse_duration(spec["window"]),
        by=_field_name(spec.get("by"), "by"),
        distinct=_field_name(spec.get("distinct"), "distinct"),
    )


def _sustained(spec: Any) -> Sustained:
    if not isinstance(spec, dict):
        raise ValueError("expected a mapping {for: SECONDS}")
    unknown = set(spec) - {"for", "by"}
    if unknown:
        raise ValueError(f"unknown key {sorted(unknown)[0]!r}")
    if "for" not in spec:
        raise ValueError("for is required")
    return Sustained(duration=parse_duration(spec["for"]), by=_field_name(spec.get("by"), "by"))
