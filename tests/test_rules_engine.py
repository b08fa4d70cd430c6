"""Rule engine: alerts and their attribution, stateful rules, indexing, exporters."""

from __future__ import annotations

import json

import pytest

from rollcage.events.model import Event
from rollcage.rules import AlertCounters, RuleEngine, RuleSet, to_falco, to_ocsf

from .test_rules_support import command_event, event, exec_event

RULES = """
- rule: Miner
  desc: a miner
  condition: evt.type = exec and proc.name = xmrig
  output: miner %proc.name pid=%proc.pid args=%proc.args missing=%flow.domain
  priority: CRITICAL
  category: cryptomining
  action: kill
  tags: [T1496, mining]
- rule: Netcat
  condition: cmd.name = nc
  output: nc %cmd.args
  priority: ERROR
  category: reverse_shell
  tags: [T1059.004]
- rule: Port scan
  condition: evt.type = flow
  threshold: {count: 3, window: 10s, distinct: flow.dst_port}
  output: scan %flow.dst_ip
  priority: ERROR
  category: network_probe
  action: block
- rule: Burst
  condition: evt.type = flow and flow.decision = deny
  threshold: {count: 3, window: 5}
  priority: NOTICE
  category: policy_violation
- rule: Hot CPU
  condition: evt.type = resource and res.cpu_pct >= 90
  sustained: {for: 30s}
  priority: WARNING
  category: resource_abuse
- rule: GPU hog
  condition: evt.type = gpu and gpu.util >= 50
  sustained: {for: 10, by: gpu.pid}
  priority: ERROR
  category: gpu_diversion
"""


@pytest.fixture
def engine() -> RuleEngine:
    return RuleEngine(RuleSet.from_yaml(RULES))


def at(seconds: float) -> str:
    return f"2026-01-01T00:{int(seconds) // 60:02d}:{seconds % 60:09.6f}Z"


def test_alert_is_an_alert_event_with_attribution(engine: RuleEngine) -> None:
    ev = exec_event(["xmrig", "-o", "pool:3333"], pid=99)
    [alert] = engine.evaluate(ev)
    record = alert.to_dict()
    assert list(record) == [
        "type",
        "time",
        "sandbox_id",
        "run_id",
        "episode_id",
        "step",
        "rule",
        "category",
        "severity",
        "mitre",
        "action",
        "output",
        "evidence",
        "pid",
    ]
    assert record["type"] == "alert" and record["rule"] == "Miner"
    assert (record["category"], record["severity"], record["action"]) == ("cryptomining", "critical", "kill")
    assert record["mitre"] == ["T1496"]
    assert (record["sandbox_id"], record["run_id"], record["episode_id"], record["step"], record["pid"]) == (
        "sb-1",
        "run-1",
        "ep-1",
        3,
        99,
    )
    assert record["evidence"] == [ev]
    assert record["output"] == "miner xmrig pid=99 args=-o pool:3333 missing=<NA>"
    json.dumps(record)
    as_event = alert.to_event()
    assert isinstance(as_event, Event) and as_event.to_dict() == record


def test_monitor_mode_only_alerts() -> None:
    engine = RuleEngine(RuleSet.from_yaml(RULES), mode="monitor")
    [alert] = engine.evaluate(exec_event(["xmrig"]))
    assert alert.action == "alert"
    with pytest.raises(ValueError, match="mode"):
        RuleEngine(RuleSet.from_yaml(RULES), mode="yolo")


def test_a_command_event_fires_each_rule_once(engine: RuleEngine) -> None:
    alerts = engine.evaluate(command_event("nc -l 1 | nc 10.0.0.1 2"))
    assert [a.rule for a in alerts] == ["Netcat"]
    assert alerts[0].output == "nc -l 1"
    assert engine.evaluate(command_event("echo nc")) == []


def test_rules_are_indexed_by_event_type_and_name(engine: RuleEngine) -> None:
    assert [r.name for r in engine.rules_for("exec", "xmrig")] == ["Miner"]
    assert engine.rules_for("exec", "ls") == []
    assert [r.name for r in engine.rules_for("command", "nc")] == ["Netcat"]
    assert engine.rules_for("command", "ls") == []
    assert [r.name for r in engine.rules_for("flow")] == ["Port scan", "Burst"]
    assert engine.rules_for("dns") == []


def test_odd_events_do_not_raise(engine: RuleEngine) -> None:
    for ev in [
        {},
        {"type": None},
        {"type": "command", "commands": "nope"},
        {"type": "command", "commands": [1, None]},
        {"type": "exec", "argv": "x", "name": 5},
        {"type": "flow", "dst_port": "x", "time": "garbage"},
        {"type": "martian", "x": 1},
    ]:
        assert engine.evaluate(ev) == []


def test_threshold_counts_distinct_values_within_the_window(engine: RuleEngine) -> None:
    def flow(port: int, t: float, sandbox: str = "sb-1") -> dict:
        return event("flow", dst_ip="10.0.0.1", dst_port=port, decision="allow", time=at(t), sandbox_id=sandbox)

    assert engine.evaluate(flow(1, 0)) == []
    assert engine.evaluate(flow(1, 1)) == []  # same port again: still one distinct
    assert engine.evaluate(flow(2, 2)) == []
    assert engine.evaluate(flow(3, 3, sandbox="sb-2")) == []  # other sandbox has its own count
    [alert] = engine.evaluate(flow(3, 4))
    assert alert.rule == "Port scan" and [e["dst_port"] for e in alert.evidence] == [1, 2, 3]
    # the counter restarts after firing, and old events fall out of the window
    assert engine.evaluate(flow(4, 5)) == []
    assert engine.evaluate(flow(5, 30)) == [] and engine.evaluate(flow(6, 31)) == []


def test_threshold_counts_events_within_the_window(engine: RuleEngine) -> None:
    def denied(t: float) -> dict:
        return event("flow", dst_ip="10.0.0.1", dst_port=80, decision="deny", time=at(t))

    assert engine.evaluate(denied(0)) == [] and engine.evaluate(denied(1)) == []
    assert engine.evaluate(denied(10)) == []  # the first two are older than 5 s now
    assert engine.evaluate(denied(11)) == []
    alerts = engine.evaluate(denied(12))
    assert [a.rule for a in alerts] == ["Burst"] and len(alerts[0].evidence) == 3


def test_sustained_needs_every_sample_for_the_duration(engine: RuleEngine) -> None:
    def cpu(pct: float, t: float) -> dict:
        return event("resource", cpu_pct=pct, memory_bytes=1, pids=3, time=at(t))

    fired = [t for t in range(0, 50, 5) if engine.evaluate(cpu(99, t))]
    assert fired == [30]  # once, when 30 s of samples held
    engine.reset()
    assert not any(engine.evaluate(cpu(99, t)) for t in range(0, 25, 5))
    assert engine.evaluate(cpu(10, 25)) == []  # one low sample breaks the streak
    assert not any(engine.evaluate(cpu(99, t)) for t in range(30, 60, 5))
    assert engine.evaluate(cpu(99, 60)) != []


def test_sustained_by_field_keeps_one_streak_per_value(engine: RuleEngine) -> None:
    def gpu(pid: int, util: float, t: float) -> dict:
        return event("gpu", pid=pid, util=util, memory_bytes=1, cmdline="x", time=at(t))

    for t in range(0, 10):
        assert engine.evaluate(gpu(1, 90, t)) == []
        assert engine.evaluate(gpu(2, 0 if t == 5 else 90, t)) == []  # pid 2 broke its streak
    [alert] = engine.evaluate(gpu(1, 90, 10))
    assert alert.rule == "GPU hog" and alert.pid == 1 and len(alert.evidence) == 2
    assert engine.evaluate(gpu(2, 90, 10)) == []


def test_state_is_bounded() -> None:
    engine = RuleEngine(RuleSet.from_yaml(RULES), max_state=50)
    for i in range(1000):
        engine.evaluate(event("flow", dst_port=i % 2, dst_ip="198.51.100.1", decision="deny", sandbox_id=f"s{i}"))
    assert len(engine._state) <= 50


def test_counts_and_exporters(engine: RuleEngine) -> None:
    [alert] = engine.evaluate(exec_event(["xmrig", "-o", "x:1"], pid=7))
    assert engine.counts["rule"] == {"Miner": 1} and engine.counts["severity"] == {"critical": 1}

    falco = to_falco(alert, hostname="h")
    assert set(falco) == {"time", "rule", "priority", "output", "output_fields", "tags", "source", "hostname"}
    assert (falco["rule"], falco["priority"], falco["hostname"]) == ("Miner", "Critical", "h")
    assert falco["output_fields"]["proc.pid"] == 7 and falco["output_fields"]["proc.name"] == "xmrig"
    assert falco["output_fields"]["rollcage.run_id"] == "run-1" and falco["tags"] == ["T1496", "mining"]
    from_dict = to_falco(alert.to_dict(), hostname="h")
    assert from_dict["priority"] == "Critical" and "T1496" in from_dict["tags"]
    json.dumps(falco)

    ocsf = to_ocsf(alert)
    assert (ocsf["class_uid"], ocsf["category_uid"], ocsf["type_uid"]) == (2004, 2, 200401)
    assert ocsf["severity_id"] == 5 and ocsf["finding_info"]["attacks"] == [{"technique": {"uid": "T1496"}}]
    assert ocsf["unmapped"]["episode_id"] == "ep-1" and isinstance(ocsf["time"], int)
    json.dumps(ocsf)

    counters = AlertCounters()
    counters.add(alert)
    counters.add(alert.to_dict())
    assert counters.as_dict()["category"] == {"cryptomining": 2}
    assert 'rollcage_alerts_total{rule="Miner",category="cryptomining",severity="critical"} 2' in counters.prometheus()
