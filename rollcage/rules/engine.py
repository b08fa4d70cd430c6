"""Evaluate events against a rule set and turn matches into alerts.

Rules are indexed once by the event types (and, for ``command``/``exec`` events, the program
names) under which their condition can hold, so an event only runs the rules that could match
it. A rule fires at most once per event. Stateful rules keep small per-sandbox state:

* ``threshold: {count: N, window: S}`` fires when N matching events fall within S seconds
  (``distinct: FIELD`` counts distinct values instead, ``by: FIELD`` keeps a counter per value);
  the counter restarts after it fires.
* ``sustained: {for: S}`` fires once when the condition held on every sample for S seconds
  (a non-matching sample, or a gap longer than S, restarts it; ``by: FIELD`` per value).

State is keyed by (rule, sandbox, by-value) in an LRU map of bounded size.
"""

from __future__ import annotations

import time as _time
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from rollcage.events.model import Attribution, Event, utc_now

try:
    import ahocorasick
except ImportError:  # pragma: no cover - the dependency is pinned; the fallback is only slower
    ahocorasick = None
from rollcage.rules.condition import ANY, types_at
from rollcage.rules.fields import EVENT_TYPES, command_view, lookup
from rollcage.rules.gate import compile_gate, gate_text, node_literals
from rollcage.rules.ruleset import Rule, RuleSet, render_output

MODES = ("enforce", "monitor")
_MAX_EVIDENCE = 10


@dataclass
class Alert:
    """A rule match, with everything the ``alert`` event and the exporters need."""

    rule: str
    category: str
    severity: str
    priority: str
    mitre: list[str]
    tags: list[str]
    action: str
    output: str
    output_fields: dict[str, Any]
    evidence: list[dict[str, Any]]
    pid: int | None = None
    sandbox_id: str | None = None
    run_id: str | None = None
    episode_id: str | None = None
    step: int | None = None
    time: str = field(default_factory=utc_now)

    def to_dict(self) -> dict[str, Any]:
        """The ``alert`` event as in docs/events.md."""
        return {
            "type": "alert",
            "time": self.time,
            "sandbox_id": self.sandbox_id,
            "run_id": self.run_id,
            "episode_id": self.episode_id,
            "step": self.step,
            "rule": self.rule,
            "category": self.category,
            "severity": self.severity,
            "mitre": list(self.mitre),
            "action": self.action,
            "output": self.output,
            "evidence": list(self.evidence),
            "pid": self.pid,
        }

    def to_event(self) -> Event:
        """The alert as an :class:`~rollcage.events.model.Event` for sinks and the store."""
        record = self.to_dict()
        data = {k: record[k] for k in ("rule", "category", "severity", "mitre", "action", "output", "evidence", "pid")}
        return Event(
            type="alert",
            sandbox_id=self.sandbox_id,
            attribution=Attribution(run_id=self.run_id, episode_id=self.episode_id, step=self.step),
            data=data,
            time=self.time,
        )


class _Bucket:
    """Rules that can match one event type: by program name, and for any name."""

    __slots__ = ("any", "by_name", "name_keyed")

    def __init__(self) -> None:
        # (rule, predicate specialised to the event type, literal gate or None)
        self.any: list[tuple[Rule, Any, Any]] = []
        self.by_name: dict[str, list[tuple[Rule, Any, Any]]] = {}
        self.name_keyed = False


_NOTHING: frozenset[int] = frozenset()


class _Gate:
    """Which gated command rules have one of their literals in a view's text.

    One Aho-Corasick pass (pyahocorasick) finds every literal at once; without the library,
    each rule's literals are searched with a regex.
    """

    def __init__(self, bucket: _Bucket) -> None:
        by_literal: dict[str, set[int]] = {}
        self._fallback: list[tuple[int, Any]] = []
        for entries in [bucket.any, *bucket.by_name.values()]:
            for rule, _pred, lits in entries:
                if lits:
                    for lit in lits:
                        by_literal.setdefault(lit, set()).add(rule.index)
        self._automaton: Any = None
        if by_literal and ahocorasick is not None:
            automaton = ahocorasick.Automaton()
            for lit, indexes in by_literal.items():
                automaton.add_word(lit, frozenset(indexes))
            automaton.make_automaton()
            self._automaton = automaton
        else:
            rules: dict[int, set[str]] = {}
            for lit, indexes in by_literal.items():
                for i in indexes:
                    rules.setdefault(i, set()).add(lit)
            self._fallback = [(i, compile_gate(frozenset(lits))) for i, lits in rules.items()]

    def passed(self, event: dict[str, Any], view: dict[str, Any]) -> frozenset[int] | set[int]:
        text = gate_text(event, view)
        if self._automaton is not None:
            out: set[int] = set()
            for _end, indexes in self._automaton.iter(text):
                out |= indexes
            return out
        return {i for i, search in self._fallback if search(text) is not None}


class RuleEngine:
    """Evaluates event dicts (docs/events.md) against the enabled rules of a :class:`RuleSet`.

    ``mode="monitor"`` reports every alert's action as ``alert`` (nothing is acted on);
    ``enforce`` reports the rule's action. Not thread-safe for stateful rules; use one engine
    per thread or a lock.
    """

    def __init__(self, ruleset: RuleSet, *, mode: str = "enforce", max_state: int = 10_000) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        self.ruleset = ruleset
        self.mode = mode
        self.max_state = max_state
        self.counts: dict[str, dict[str, int]] = {"rule": {}, "category": {}, "severity": {}}
        self.evaluated = 0
        self._state: OrderedDict[tuple[Any, ...], Any] = OrderedDict()
        self._rules = [r for r in ruleset.rules if r.enabled and r.compiled is not None]
        self._getters = {
            name: lookup(name).getter  # type: ignore[union-attr]
            for r in self._rules
            for name in (*r.output_fields, *(x for x in (_by(r), _distinct(r)) if x))
        }
        self._index = {t: self._bucket(t) for t in EVENT_TYPES}
        self._other = self._bucket(None)
        self._gate = _Gate(self._index["command"])

    def _bucket(self, event_type: str | None) -> _Bucket:
        bucket = _Bucket()
        named: dict[str, list[tuple[Rule, Any, Any]]] = {}
        for rule in self._rules:
            compiled = rule.compiled
            assert compiled is not None
            at = types_at(compiled.types, event_type if event_type is not None else "\0unknown")
            if at is False:
                continue
            pred = compiled.predicate_for(event_type)
            if pred is None:
                continue
            gate = node_literals(compiled.node, event_type) if event_type == "command" else None
            entry = (rule, pred, gate or None)
            if at is ANY or event_type not in ("command", "exec"):
                bucket.any.append(entry)
            else:
                for name in at:  # type: ignore[union-attr]
                    named.setdefault(name, []).append(entry)
        for name, pairs in named.items():
            merged = {id(e[0]): e for e in [*pairs, *bucket.any]}
            bucket.by_name[name] = sorted(merged.values(), key=lambda e: e[0].index)
        bucket.name_keyed = bool(named)
        return bucket

    def rules_for(self, event_type: str, name: str | None = None) -> list[Rule]:
        """The rules an event of this type (and program name) is checked against."""
        bucket = self._index.get(event_type, self._other)
        pairs = bucket.any
        if name is not None and bucket.name_keyed:
            pairs = bucket.by_name.get(name, bucket.any)
        return [e[0] for e in pairs]

    def evaluate(self, event: dict[str, Any]) -> list[Alert]:
        """Alerts raised by ``event`` (an event dict); never raises on odd or missing fields."""
        self.evaluated += 1
        event_type = event.get("type")
        bucket = self._index.get(event_type, self._other) if isinstance(event_type, str) else self._other
        if event_type == "command":
            commands = event.get("commands")
            views = [command_view(c) for c in commands] if isinstance(commands, list) and commands else [{}]
        else:
            views = [{}]
        alerts: list[Alert] = []
        fired: set[int] = set()
        for view in views:
            if bucket.name_keyed:
                command = event_type == "command"
                name = view.get("name") if command else event.get("name") or _basename(event.get("exe"))
                rules = bucket.by_name.get(name, bucket.any) if name else bucket.any
            else:
                rules = bucket.any
            passed = self._gate.passed(event, view) if event_type == "command" else _NOTHING
            for rule, predicate, gate in rules:
                if gate is not None and rule.index not in passed and rule.sustained is None:
                    continue
                if rule.index in fired:
                    continue
                try:
                    matched = predicate(event, view)
                except Exception:  # a value of an unexpected type: treat as no match
                    matched = False
                if rule.threshold is None and rule.sustained is None:
                    if not matched:
                        continue
                    evidence = [event]
                else:
                    evidence = self._stateful(rule, event, view, matched)
                    if evidence is None:
                        continue
                fired.add(rule.index)
                alerts.append(self._alert(rule, event, view, evidence))
        return alerts

    # --- state ----------------------------------------------------------------------------------

    def reset(self, sandbox_id: str | None = None) -> None:
        """Forget stateful-rule state (of one sandbox, or all)."""
        if sandbox_id is None:
            self._state.clear()
            return
        for key in [k for k in self._state if k[1] == sandbox_id]:
            del self._state[key]

    def _stateful(
        self, rule: Rule, event: dict[str, Any], view: dict[str, Any], matched: bool
    ) -> list[dict[str, Any]] | None:
        by = _by(rule)
        by_value = self._getters[by](event, view) if by else None
        key = (rule.index, event.get("sandbox_id"), _hashable(by_value))
        if rule.sustained is not None:
            return self._sustain(rule, key, event, matched)
        if not matched:
            return None
        return self._count(rule, key, event, view)

    def _get_state(self, key: tuple[Any, ...]) -> Any:
        state = self._state.get(key)
        if state is not None:
            self._state.move_to_end(key)
        return state

    def _put_state(self, key: tuple[Any, ...], state: Any) -> None:
        self._state[key] = state
        self._state.move_to_end(key)
        while len(self._state) > self.max_state:
            self._state.popitem(last=False)

    def _count(self, rule: Rule, key: tuple[Any, ...], event: dict[str, Any], view: dict[str, Any]) -> Any:
        spec = rule.threshold
        assert spec is not None
        now = _event_time(event)
        if spec.distinct:
            value = _hashable(self._getters[spec.distinct](event, view))
            if value is None:
                return None
            seen: OrderedDict[Any, tuple[float, dict[str, Any]]] | None = self._get_state(key)
            if seen is None:
                seen = OrderedDict()
                self._put_state(key, seen)
            seen.pop(value, None)
            seen[value] = (now, event)
            while seen and next(iter(seen.values()))[0] < now - spec.window:
                seen.popitem(last=False)
            if len(seen) >= spec.count:
                evidence = [e for _, e in list(seen.values())[-_MAX_EVIDENCE:]]
                seen.clear()
                return evidence
            return None
        times: deque[tuple[float, dict[str, Any]]] | None = self._get_state(key)
        if times is None:
            times = deque(maxlen=spec.count)
            self._put_state(key, times)
        times.append((now, event))
        while times and times[0][0] < now - spec.window:
            times.popleft()
        if len(times) >= spec.count:
            evidence = [e for _, e in list(times)[-_MAX_EVIDENCE:]]
            times.clear()
            return evidence
        return None

    def _sustain(self, rule: Rule, key: tuple[Any, ...], event: dict[str, Any], matched: bool) -> Any:
        spec = rule.sustained
        assert spec is not None
        if not matched:
            self._state.pop(key, None)
            return None
        now = _event_time(event)
        state = self._get_state(key)
        if state is None or now - state[1] > spec.duration or now < state[1]:
            state = [now, now, event, False]
            self._put_state(key, state)
        else:
            state[1] = now
        if not state[3] and now - state[0] >= spec.duration:
            state[3] = True
            return [state[2], event] if state[2] is not event else [event]
        return None

    # --- alerts ---------------------------------------------------------------------------------

    def _alert(self, rule: Rule, event: dict[str, Any], view: dict[str, Any], evidence: list[dict[str, Any]]) -> Alert:
        values = {name: _safe(self._getters[name], event, view) for name in rule.output_fields}
        pid = event.get("pid")
        alert = Alert(
            rule=rule.name,
            category=rule.category,
            severity=rule.severity,
            priority=rule.priority,
            mitre=rule.mitre,
            tags=list(rule.tags),
            action=rule.action if self.mode == "enforce" else "alert",
            output=render_output(rule.output, values),
            output_fields=values,
            evidence=evidence,
            pid=pid if isinstance(pid, int) and not isinstance(pid, bool) else None,
            sandbox_id=event.get("sandbox_id"),
            run_id=event.get("run_id"),
            episode_id=event.get("episode_id"),
            step=event.get("step"),
        )
        for kind, value in (("rule", rule.name), ("category", rule.category), ("severity", rule.severity)):
            self.counts[kind][value] = self.counts[kind].get(value, 0) + 1
        return alert


def _by(rule: Rule) -> str | None:
    if rule.threshold is not None:
        return rule.threshold.by
    if rule.sustained is not None:
        return rule.sustained.by
    return None


def _distinct(rule: Rule) -> str | None:
    return rule.threshold.distinct if rule.threshold is not None else None


def _basename(path: Any) -> str | None:
    return path.rsplit("/", 1)[-1] if isinstance(path, str) and path else None


def _hashable(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_hashable(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((k, _hashable(v)) for k, v in value.items()))
    return value


def _safe(getter: Any, event: dict[str, Any], view: dict[str, Any]) -> Any:
    try:
        return getter(event, view)
    except Exception:
        return None


def _event_time(event: dict[str, Any]) -> float:
    """Seconds since the epoch from the event's ``time`` (RFC 3339 or a number); now if absent."""
    value = event.get("time")
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        except ValueError:
            pass
    return _time.time()
