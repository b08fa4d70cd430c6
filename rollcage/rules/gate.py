"""Literal prefilter for command rules: skip a rule unless its view's text holds a needed word.

For a condition specialised to ``command`` events we work out a set of lowercase literals of
which at least one must occur in the view's *gate text* (the simple command's argv and
redirects, its program path, the whole command line, URLs and paths, lowercased) for the
condition to have any chance of holding. One regex search over that text then stands in for
running the whole condition on most commands. ``None`` means no such set is known.
"""

from __future__ import annotations

import re
from typing import Any

try:  # Python 3.11+
    from re import _constants as sre_constants  # type: ignore[attr-defined]
    from re import _parser as sre_parse  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover
    import sre_constants  # type: ignore[no-redef]
    import sre_parse  # type: ignore[no-redef]

Literals = frozenset[str] | None

_TEXT_FIELDS = {
    "cmd.name",
    "cmd.path",
    "cmd.argv",
    "cmd.args",
    "cmd.text",
    "cmd.redirects",
    "cmd.line",
    "cmd.urls",
    "cmd.paths",
}
_LITERAL_OPS = {"=", "in", "intersects", "contains", "icontains", "startswith", "endswith", "pmatch"}
_MIN_LEN = 2


def gate_text(event: dict[str, Any], view: dict[str, Any]) -> str:
    """The lowercase text a command view's gate is checked against."""
    parts = [view.get("text") or "", view.get("path") or "", event.get("command") or ""]
    for key in ("urls", "paths"):
        items = event.get(key)
        if isinstance(items, list):
            parts.extend(str(i) for i in items)
    return "\n".join(p if isinstance(p, str) else str(p) for p in parts).lower()


def leaf_literals(field: str, op: str, values: list[str]) -> Literals:
    """Literals one of which must be in the gate text for ``field op values`` to hold."""
    if field not in _TEXT_FIELDS or not values:
        return None
    if op in _LITERAL_OPS:
        lits = frozenset(v.lower() for v in values)
        if field in ("cmd.name", "cmd.path") and op in ("=", "in", "intersects"):
            return lits if all(lits) else None
        return lits if all(len(v) >= _MIN_LEN for v in lits) else None
    if op == "regex":
        out: set[str] = set()
        for pattern in values:
            found = regex_literals(pattern)
            if found is None:
                return None
            out |= found
        return frozenset(out)
    return None


def regex_literals(pattern: str) -> Literals:
    """Literals (lowercase) one of which every match of ``pattern`` contains; None if unknown."""
    try:
        parsed = sre_parse.parse(pattern)
    except (re.error, RecursionError, ValueError):
        return None
    try:
        return _sequence(list(parsed))
    except RecursionError:
        return None


def _better(a: Literals, b: Literals) -> Literals:
    if a is None:
        return b
    if b is None:
        return a
    return a if (min(map(len, a)), -len(a)) >= (min(map(len, b)), -len(b)) else b


def _sequence(items: list[tuple[Any, Any]]) -> Literals:
    best: Literals = None
    run: list[str] = []

    def close() -> None:
        nonlocal best, run
        if len(run) >= _MIN_LEN:
            best = _better(best, frozenset(["".join(run).lower()]))
        run = []

    for op, av in items:
        if op is sre_constants.LITERAL:
            run.append(chr(av))
            continue
        close()
        if op is sre_constants.SUBPATTERN:
            best = _better(best, _sequence(list(av[-1])))
        elif op is sre_constants.BRANCH:
            best = _better(best, _branch(av[1]))
        elif op in (
            sre_constants.MAX_REPEAT,
            sre_constants.MIN_REPEAT,
            getattr(sre_constants, "POSSESSIVE_REPEAT", None),
        ):
            low, _high, sub = av
            if low >= 1:
                best = _better(best, _sequence(list(sub)))
        elif op is sre_constants.ASSERT:
            direction, sub = av
            if direction == 1:
                best = _better(best, _sequence(list(sub)))
        elif op is sre_constants.ATOMIC_GROUP if hasattr(sre_constants, "ATOMIC_GROUP") else False:
            best = _better(best, _sequence(list(av)))
    close()
    return best


def _branch(alternatives: list[Any]) -> Literals:
    out: set[str] = set()
    for alt in alternatives:
        lits = _sequence(list(alt))
        if lits is None:
            return None
        out |= lits
    return frozenset(out)


def node_literals(node: tuple[Any, ...], event_type: str) -> Literals:
    """Literals for a condition tree (see ``condition``) on events of ``event_type``.

    An empty set means the condition can never hold for that type.
    """
    kind = node[0]
    if kind == "leaf":
        _, _expr, field_types, evt_values, lits = node
        if evt_values is not None:
            return None if event_type in evt_values else frozenset()
        if field_types is not None and event_type not in field_types:
            return frozenset()
        return lits
    if kind == "not":
        return None
    children = [node_literals(c, event_type) for c in node[1]]
    if kind == "and":
        if any(c is not None and not c for c in children):
            return frozenset()
        best: Literals = None
        for c in children:
            best = _better(best, c)
        return best
    out: set[str] = set()
    for c in children:
        if c is None:
            return None
        out |= c
    return frozenset(out)


def compile_gate(lits: Literals) -> Any:
    """A ``search`` function over gate text for these literals, or None for no gate."""
    if lits is None or not lits:
        return None
    return re.compile("|".join(re.escape(x) for x in sorted(lits, key=len, reverse=True))).search
