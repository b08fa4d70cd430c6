"""Condition language: parse with lark, check names, compile once to Python closures.

Syntax (Falco's, with rollcage's fields)::

    cond  := cond or cond | cond and cond | not cond | ( cond ) | MACRO | FIELD OP VALUE
           | FIELD LISTOP LIST | FIELD exists
    OP    := = == != < <= > >= contains icontains startswith endswith glob regex
    LISTOP:= in intersects pmatch cidr          LIST := ( item, ... ) | LISTNAME

A string operator also takes a list, ``cmd.args contains (a, b, listname)``, and then matches
when any item does (``= (...)`` is ``in``, ``!= (...)`` is "none of").

``not`` binds tighter than ``and``, which binds tighter than ``or``. Values are quoted strings
(``"..."`` or ``'...'``; a backslash only escapes the quote, every other backslash is kept, so
regexes need no double escaping) or bare words. Inside ``( ... )`` a bare item that names a
list is replaced by that list's items (Falco's rule); ``in NAME`` without parentheses must name
a list. A missing field makes every comparison false (``not`` of it is then true). A list field
(``cmd.argv``, ``flow.indicators``, ...) matches when any element matches, ``!=`` when none is
equal. ``regex`` searches anywhere (anchor with ``^``/``$``).
"""

from __future__ import annotations

import fnmatch
import functools
import ipaddress
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from lark import Lark, Token, Tree
from lark.exceptions import LarkError, UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from rollcage.rules.fields import BOOL, EVENT_TYPES, LIST, NUM, Field, lookup
from rollcage.rules.gate import leaf_literals

Predicate = Callable[[dict[str, Any], dict[str, Any]], bool]

MAX_CONDITION_CHARS = 20_000

_GRAMMAR = r"""
?start: or_expr
?or_expr: and_expr (_OR and_expr)*
?and_expr: not_expr (_AND not_expr)*
?not_expr: _NOT not_expr -> not_
         | atom
?atom: "(" or_expr ")"
     | FIELD OP value              -> binop
     | FIELD OP "(" [items] ")"    -> binop_list
     | FIELD LISTOP "(" [items] ")" -> listop
     | FIELD LISTOP value          -> listsingle
     | FIELD _EXISTS               -> exists
     | NAME                        -> macro
items: item ("," item)* ","?
?item: value
value: STRING1 | STRING2 | BARE
_OR.2: /or\b/
_AND.2: /and\b/
_NOT.2: /not\b/
_EXISTS.2: /exists\b/
OP.2: "==" | "!=" | "<=" | ">=" | "=" | "<" | ">" | /(contains|icontains|startswith|endswith|glob|regex)\b/
LISTOP.3: /(in|intersects|pmatch|cidr)\b/
FIELD.2: /[a-z][a-z0-9_]*(\.[a-z0-9_]+)+(\[-?[0-9]+\])?/
NAME: /[A-Za-z_][A-Za-z0-9_]*/
STRING1: /"(?:[^"\\]|\\.)*"/
STRING2: /'(?:[^'\\]|\\.)*'/
BARE: /[^\s(),"']+/
%import common.WS
%ignore WS
"""

_parser = Lark(_GRAMMAR, parser="lalr", lexer="contextual", propagate_positions=False, maybe_placeholders=False)


class ConditionError(ValueError):
    """A condition does not parse or names something that does not exist."""


def parse(text: str) -> Tree:
    """The parse tree of ``text``; :class:`ConditionError` with the column on a syntax error."""
    if not isinstance(text, str) or not text.strip():
        raise ConditionError("condition is empty")
    if len(text) > MAX_CONDITION_CHARS:
        raise ConditionError(f"condition longer than {MAX_CONDITION_CHARS} characters")
    try:
        return _parser.parse(text)
    except UnexpectedEOF:
        raise ConditionError("condition ends unexpectedly (unbalanced parentheses or missing value?)") from None
    except UnexpectedToken as exc:
        if exc.token.type == "$END":
            raise ConditionError("condition ends unexpectedly (unbalanced parentheses or missing value?)") from None
        raise ConditionError(f"unexpected {exc.token.value!r} at column {exc.column}{_hint(exc)}") from None
    except UnexpectedCharacters as exc:
        raise ConditionError(f"unexpected character {text[exc.pos_in_stream]!r} at column {exc.column}") from None
    except UnexpectedInput as exc:  # pragma: no cover - other lark input errors
        raise ConditionError(f"syntax error at column {getattr(exc, 'column', '?')}") from None
    except (LarkError, RecursionError) as exc:
        raise ConditionError(f"condition cannot be parsed: {exc.__class__.__name__}") from None


def _hint(exc: UnexpectedToken) -> str:
    expected = exc.expected or set()
    if "OP" in expected or "LISTOP" in expected:
        return " (expected an operator: =, !=, <, >, in, contains, startswith, glob, regex, cidr, ...)"
    return ""


def unquote(token: Token) -> str:
    text = str(token)
    if token.type == "STRING1":
        return text[1:-1].replace('\\"', '"')
    if token.type == "STRING2":
        return text[1:-1].replace("\\'", "'")
    return text


# --- type analysis ------------------------------------------------------------------------------
#
# For a condition, which event types (and for command/exec events, which program names) can make
# it true? A map type -> frozenset of names or ANY; key "*" is the default for unlisted types.

ANY = None
TypeMap = dict[str, frozenset[str] | None]
_EVERYTHING: TypeMap = {"*": ANY}
_NAME_FIELDS = {"cmd.name": "command", "proc.name": "exec"}


def _u(a: frozenset[str] | None, b: frozenset[str] | None) -> frozenset[str] | None:
    return ANY if a is ANY or b is ANY else a | b


def _i(a: frozenset[str] | None, b: frozenset[str] | None) -> frozenset[str] | None:
    if a is ANY:
        return b
    if b is ANY:
        return a
    return a & b


def _at(m: TypeMap, t: str) -> frozenset[str] | bool | None:
    if t in m:
        return m[t]
    return m.get("*", False)  # False: impossible for this type


def union(a: TypeMap, b: TypeMap) -> TypeMap:
    out: TypeMap = {}
    for key in set(a) | set(b):
        x, y = _at(a, key), _at(b, key)
        if x is False:
            out[key] = y  # type: ignore[assignment]
        elif y is False:
            out[key] = x
        else:
            out[key] = _u(x, y)
    return out


def intersection(a: TypeMap, b: TypeMap) -> TypeMap:
    out: TypeMap = {}
    for key in set(a) | set(b):
        x, y = _at(a, key), _at(b, key)
        if x is False or y is False:
            continue
        value = _i(x, y)
        if value is ANY or value:
            out[key] = value
    return out


def types_at(m: TypeMap, event_type: str) -> frozenset[str] | bool | None:
    """Names (or ANY) under which a condition can hold for ``event_type``; False if never."""
    value = _at(m, event_type)
    if value is not False and value is not ANY and not value:
        return False
    return value


# --- compilation --------------------------------------------------------------------------------


# A compiled condition keeps a small tree whose leaves are Python expressions over ``ev`` (the
# event) and ``v`` (the view): ("leaf", expr, field_types, evt_types), ("and"|"or", [nodes]),
# ("not", node). For one event type the tree is simplified (a leaf whose field that type never
# carries is False; ``evt.type = x`` is a constant) and made one Python function, so running a
# rule costs one call plus one call per remaining comparison.
Node = tuple[Any, ...]
_CONST = {True: "True", False: "False"}


def _render(node: Node, event_type: str | None) -> str | bool:
    kind = node[0]
    if kind == "leaf":
        _, expr, field_types, evt_values, _lits = node
        if event_type is not None:
            if evt_values is not None:
                return event_type in evt_values
            if field_types is not None and event_type not in field_types:
                return False
        return expr
    if kind == "not":
        inner = _render(node[1], event_type)
        return (not inner) if isinstance(inner, bool) else f"(not {inner})"
    is_and = kind == "and"
    parts: list[str] = []
    for child in node[1]:
        r = _render(child, event_type)
        if isinstance(r, bool):
            if r is not is_and:  # False in an and, True in an or
                return r
            continue
        parts.append(r)
    if not parts:
        return is_and
    if len(parts) == 1:
        return parts[0]
    return "(" + (" and " if is_and else " or ").join(parts) + ")"


def _leaves(node: Node) -> int:
    if node[0] == "leaf":
        return 1
    if node[0] == "not":
        return _leaves(node[1])
    return sum(_leaves(c) for c in node[1])


@dataclass
class Compiled:
    """A compiled condition: expression tree, names it uses, type map and fields it reads."""

    node: Node
    env: dict[str, Any]
    types: TypeMap
    fields: frozenset[str]

    def __post_init__(self) -> None:
        self._cache: dict[str | None, Predicate | None] = {}

    def predicate_for(self, event_type: str | None) -> Predicate | None:
        """The predicate specialised to one event type (None: any); None when it can never hold."""
        if event_type in self._cache:
            return self._cache[event_type]
        rendered = _render(self.node, event_type)
        if rendered is False:
            pred = None
        elif rendered is True:
            pred = _always
        else:
            try:
                pred = eval(f"lambda ev, v: {rendered}", {"__builtins__": {}, **self.env})
            except (RecursionError, SyntaxError, MemoryError):
                raise ConditionError("condition is nested too deeply") from None
        self._cache[event_type] = pred
        return pred

    @property
    def predicate(self) -> Predicate:
        """The unspecialised predicate (works for every event type)."""
        pred = self.predicate_for(None)
        return pred if pred is not None else _never


def _always(ev: dict[str, Any], v: dict[str, Any]) -> bool:
    return True


def _never(ev: dict[str, Any], v: dict[str, Any]) -> bool:
    return False


_INLINE_MACRO_LEAVES = 200


class Compiler:
    """Compiles conditions against a set of lists and macro conditions.

    Macros are compiled once each and shared (inlined while small, called when large), so macro
    chains never blow up; a macro that refers to itself, directly or not, is an error naming
    the cycle.
    """

    def __init__(self, lists: Mapping[str, list[Any]], macros: Mapping[str, str]) -> None:
        self.lists = lists
        self.macros = macros
        self._macro_cache: dict[str, Compiled] = {}
        self._stack: list[str] = []
        self._counter = 0

    def _name(self, env: dict[str, Any], obj: Any) -> str:
        self._counter += 1
        name = f"_c{self._counter}"
        env[name] = obj
        return name

    def macro(self, name: str) -> Compiled:
        cached = self._macro_cache.get(name)
        if cached is not None:
            return cached
        if name in self._stack:
            cycle = " -> ".join([*self._stack[self._stack.index(name) :], name])
            raise ConditionError(f"macro recursion: {cycle}")
        if name not in self.macros:
            raise ConditionError(f"undefined macro {name!r}")
        self._stack.append(name)
        try:
            compiled = self.compile(self.macros[name])
        finally:
            self._stack.pop()
        self._macro_cache[name] = compiled
        return compiled

    def compile(self, text: str) -> Compiled:
        tree = parse(text)
        try:
            compiled = self._node(tree)
        except RecursionError:
            raise ConditionError("condition is nested too deeply") from None
        compiled.predicate_for(None)  # fail now, not at the first event, if Python cannot take it
        return compiled

    def _node(self, node: Tree) -> Compiled:
        kind = node.data
        if kind in ("or_expr", "and_expr"):
            parts = [self._node(c) for c in node.children]
            combine = union if kind == "or_expr" else intersection
            types = parts[0].types
            for p in parts[1:]:
                types = combine(types, p.types)
            env: dict[str, Any] = {}
            for p in parts:
                env.update(p.env)
            tag = "or" if kind == "or_expr" else "and"
            return Compiled((tag, [p.node for p in parts]), env, types, _fields(parts))
        if kind == "not_":
            inner = self._node(node.children[0])
            return Compiled(("not", inner.node), inner.env, dict(_EVERYTHING), inner.fields)
        if kind == "macro":
            name = str(node.children[0])
            try:
                macro = self.macro(name)
            except ConditionError as exc:
                if str(exc).startswith(("macro recursion", "in macro", "undefined macro")):
                    raise
                raise ConditionError(f"in macro {name!r}: {exc}") from None
            if _leaves(macro.node) <= _INLINE_MACRO_LEAVES:
                return macro
            env = {}
            call = self._name(env, _memo_call(macro.predicate))
            return Compiled(("leaf", f"{call}(ev, v)", None, None, None), env, macro.types, macro.fields)
        if kind in ("binop", "binop_list", "listop", "listsingle", "exists"):
            return self._comparison(node)
        raise ConditionError(f"unsupported construct {kind}")  # pragma: no cover

    def _comparison(self, node: Tree) -> Compiled:
        field_name = str(node.children[0])
        field = lookup(field_name)
        if field is None:
            raise ConditionError(f"unknown field {field_name!r}")
        kind = node.data
        if kind == "exists":
            op, values = "exists", []
        elif kind == "binop":
            op = str(node.children[1])
            values = [_value(node.children[2])]
        elif kind == "listsingle":  # FIELD in NAME: the name must be a list (cidr also takes one network)
            op = str(node.children[1])
            token = node.children[2].children[0]
            if token.type == "BARE" and str(token) in self.lists:
                values = [str(x) for x in self.lists[str(token)]]
            elif op == "cidr" or token.type != "BARE":
                values = [unquote(token)]
            else:
                raise ConditionError(f"undefined list {str(token)!r}")
        else:  # listop, binop_list
            op = str(node.children[1])
            values = []
            for child in node.children[2:]:
                items = child.children if isinstance(child, Tree) and child.data == "items" else [child]
                for item in items:
                    token = item.children[0] if isinstance(item, Tree) else item
                    if token.type in ("NAME", "BARE") and str(token) in self.lists:
                        values.extend(str(x) for x in self.lists[str(token)])
                    else:
                        values.append(unquote(token))
        if op == "==":
            op = "="
        if kind == "binop_list":
            if op in ("<", "<=", ">", ">="):
                raise ConditionError(f"operator {op} takes one number, not a list")
            if op == "=":
                op = "in"
            elif op == "!=":
                op = "notin"
        test = _make_value_test(field, op, values)
        types = _types_for(field, op, values)
        env: dict[str, Any] = {}
        access = getattr(field.getter, "access", None)
        if field.per_event:
            name = self._name(env, _memo_per_event(field.getter, test))
            expr = f"{name}(ev, v)"
        elif access is not None:
            name = self._name(env, test)
            expr = f"{name}({access[0]}.get({access[1]!r}))"
        else:
            name = self._name(env, test)
            getter = self._name(env, field.getter)
            expr = f"{name}({getter}(ev, v))"
        evt_values = frozenset(values) if field.name == "evt.type" and op in ("=", "in") else None
        leaf = ("leaf", expr, field.types, evt_values, leaf_literals(field.name, op, values))
        return Compiled(leaf, env, types, frozenset([field.name]))


def _value(tree: Tree) -> str:
    return unquote(tree.children[0])


def _fields(parts: list[Compiled]) -> frozenset[str]:
    out: frozenset[str] = frozenset()
    for p in parts:
        out |= p.fields
    return out


def _types_for(field: Field, op: str, values: list[str]) -> TypeMap:
    if field.name == "evt.type" and op in ("=", "in"):
        return {v: ANY for v in values}
    if field.name in _NAME_FIELDS and op in ("=", "in"):
        return {_NAME_FIELDS[field.name]: frozenset(values)}
    if field.types is None:
        return dict(_EVERYTHING)
    return {t: ANY for t in field.types}


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


_BOOLS = {"true": True, "false": False}


@functools.lru_cache(maxsize=4096)
def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return None


def _scalar_test(field: Field, op: str, values: list[str]) -> Callable[[Any], bool]:
    """A test of one scalar value; every test is False for a missing value (None)."""
    value = values[0] if values else ""
    if op in ("=", "!="):  # "!=" is built as not "=" by the caller
        num = _number(value)
        want_bool = _BOOLS.get(value.lower())

        def eq(x: Any) -> bool:
            if x.__class__ is str:
                return x == value
            if x is None:
                return False
            if isinstance(x, bool):
                return want_bool is not None and x is want_bool
            if isinstance(x, int | float):
                return num is not None and x == num
            return str(x) == value

        return eq
    if op in ("<", "<=", ">", ">="):
        num = _number(value)
        if num is None:
            raise ConditionError(f"operator {op} needs a number, got {value!r}")
        cmp = {"<": float.__lt__, "<=": float.__le__, ">": float.__gt__, ">=": float.__ge__}[op]

        def order(x: Any) -> bool:
            if isinstance(x, bool):
                return False
            if isinstance(x, int | float):
                return cmp(float(x), num)
            if isinstance(x, str):
                n = _number(x)
                return n is not None and cmp(n, num)
            return False

        return order
    if op == "contains":
        if len(values) == 1:
            return lambda x: x is not None and value in (x if x.__class__ is str else str(x))
        search = re.compile("|".join(re.escape(v) for v in values)).search
        return lambda x: x is not None and search(x if x.__class__ is str else str(x)) is not None
    if op == "icontains":
        isearch = re.compile("|".join(re.escape(v) for v in values), re.IGNORECASE).search
        return lambda x: x is not None and isearch(x if x.__class__ is str else str(x)) is not None
    if op == "startswith":
        prefixes = tuple(values)
        return lambda x: x is not None and (x if x.__class__ is str else str(x)).startswith(prefixes)
    if op == "endswith":
        suffixes = tuple(values)
        return lambda x: x is not None and (x if x.__class__ is str else str(x)).endswith(suffixes)
    if op in ("glob", "regex"):
        try:
            if op == "glob":
                rxs = [re.compile(fnmatch.translate(v), re.DOTALL) for v in values]
            else:
                rxs = [re.compile(v) for v in values]
        except re.error as exc:
            raise ConditionError(f"bad {op} {value!r}: {exc}") from None
        fn = [(r.match if op == "glob" else r.search) for r in rxs]
        if len(fn) == 1:
            one = fn[0]
            return lambda x: x is not None and one(x if x.__class__ is str else str(x)) is not None
        return lambda x: x is not None and any(f(x if x.__class__ is str else str(x)) is not None for f in fn)
    if op in ("in", "intersects", "notin"):
        strings = frozenset(values)
        nums = frozenset(n for n in (_number(v) for v in values) if n is not None)
        bools = frozenset(_BOOLS[v.lower()] for v in values if v.lower() in _BOOLS)

        def member(x: Any) -> bool:
            if x.__class__ is str:
                return x in strings
            if x is None:
                return False
            if isinstance(x, bool):
                return x in bools
            if isinstance(x, int | float):
                return x in nums
            return (x if isinstance(x, str) else str(x)) in strings

        return member
    if op == "pmatch":
        prefixes = tuple(p.rstrip("/") + "/" for p in values if p)
        exact = frozenset(p.rstrip("/") or "/" for p in values)

        def pmatch(x: Any) -> bool:
            if x is None:
                return False
            s = x if isinstance(x, str) else str(x)
            return s in exact or s.startswith(prefixes)

        return pmatch
    if op == "cidr":
        nets = []
        for v in values:
            try:
                nets.append(ipaddress.ip_network(v, strict=False))
            except ValueError:
                raise ConditionError(f"bad network {v!r} for cidr") from None

        def in_net(x: Any) -> bool:
            ip = _ip(x) if isinstance(x, str) else None
            return ip is not None and any(ip in n for n in nets if n.version == ip.version)

        return in_net
    raise ConditionError(f"unknown operator {op!r}")  # pragma: no cover


def _make_value_test(field: Field, op: str, values: list[str]) -> Callable[[Any], bool]:
    """A test of a field's value (``None`` when missing), with the list-field semantics."""
    if op == "exists":
        return lambda x: x is not None
    if field.kind == BOOL and op in ("=", "!=", "in", "notin"):
        for v in values:
            if v.lower() not in _BOOLS:
                raise ConditionError(f"field {field.name} is true or false, got {v!r}")
    if field.kind == NUM and op in ("=", "!=", "in", "notin"):
        for v in values:
            if _number(v) is None:
                raise ConditionError(f"field {field.name} is a number, got {v!r}")
    negate = op in ("!=", "notin")
    test = _scalar_test(field, "in" if op == "notin" else op, values)
    if field.kind == LIST:
        if negate:

            def none_equal(items: Any) -> bool:
                if items is None:
                    return False
                for x in items:  # noqa: SIM110 - a plain loop is faster than all() on the hot path
                    if x is not None and test(x):
                        return False
                return True

            return none_equal

        def any_match(items: Any) -> bool:
            if not items:
                return False
            for x in items:  # noqa: SIM110 - a plain loop is faster than any() on the hot path
                if x is not None and test(x):
                    return True
            return False

        return any_match
    if negate:
        return lambda x: x is not None and not test(x)
    return test


def _memo_per_event(get: Callable[[dict[str, Any], dict[str, Any]], Any], test: Callable[[Any], bool]) -> Predicate:
    """Reuse the last result while the views of one event are evaluated."""
    cell: list[tuple[Any, bool]] = [(None, False)]
    access = getattr(get, "access", None)
    key = access[1] if access is not None and access[0] == "ev" else None

    def memoised(ev: dict[str, Any], v: dict[str, Any]) -> bool:
        last_ev, last_result = cell[0]
        if last_ev is ev:
            return last_result
        result = test(ev.get(key) if key is not None else get(ev, v))
        cell[0] = (ev, result)  # one assignment: safe if threads share the engine
        return result

    return memoised


def _memo_call(pred: Predicate) -> Predicate:
    """A large macro's predicate, evaluated once per (event, view) however often it is named."""
    cell: list[tuple[Any, Any, bool]] = [(None, None, False)]

    def memoised(ev: dict[str, Any], v: dict[str, Any]) -> bool:
        last_ev, last_v, last_result = cell[0]
        if last_ev is ev and last_v is v:
            return last_result
        result = pred(ev, v)
        cell[0] = (ev, v, result)
        return result

    return memoised


def known_event_types() -> tuple[str, ...]:
    return EVENT_TYPES
