"""The ``rollcage`` command line as a user runs it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROLLCAGE = [sys.executable, "-m", "rollcage.cli.main"]


def rollcage(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*ROLLCAGE, *args], capture_output=True, text=True, timeout=timeout)


def test_sandbox_run_streams_output_and_exits_with_the_command_code(tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    r = rollcage("sandbox", "run", "--memory", "256m", "--events", str(events), "--", "echo out; echo err >&2; exit 3")
    assert r.returncode == 3
    assert r.stdout == "out\nerr\n"
    records = [json.loads(line) for line in events.read_text().splitlines()]
    records = [e for e in records if e["type"] in ("sandbox", "command_finished")]  # the monitor adds its own
    assert [(e["type"], e.get("action")) for e in records] == [
        ("sandbox", "created"),
        ("command_finished", None),
        ("sandbox", "stopped"),
    ]
    assert records[1]["command"] == "echo out; echo err >&2; exit 3" and records[1]["exit_code"] == 3
    assert records[0]["config"]["memory"] == 256 * 1024**2


def test_sandbox_run_joins_argv_like_a_shell_would() -> None:
    r = rollcage("sandbox", "run", "--", "printf", "%s|", "a b", "c")
    assert (r.returncode, r.stdout) == (0, "a b|c|")


def test_sandbox_run_events_file_appends(tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    for _ in range(2):
        assert rollcage("sandbox", "run", "--mode", "off", "--events", str(events), "--", "true").returncode == 0
    assert len(events.read_text().splitlines()) == 6


def test_sandbox_run_timeout_exits_124() -> None:
    r = rollcage("sandbox", "run", "--timeout", "0.5", "--", "sleep 30")
    assert r.returncode == 124 and "timed out" in r.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--memory", "lots"], "memory: invalid size"),
        (["--cpus", "0"], "cpus"),
        (["--rootfs", "/does/not/exist"], "rootfs"),
        (["--env", "NOEQUALS"], "KEY=VALUE"),
    ],
)
def test_sandbox_run_bad_options_are_clear_errors(args: list[str], message: str) -> None:
    r = rollcage("sandbox", "run", *args, "--", "true")
    assert r.returncode == 2
    assert message in r.stderr and "Traceback" not in r.stderr


def test_sandbox_run_passes_env_only_when_asked() -> None:
    r = rollcage("sandbox", "run", "--env", "GIVEN=yes", "--", "echo ${GIVEN:-no} ${HOME}")
    assert r.stdout == "yes /root\n"


def test_non_root_gets_a_clear_message(tmp_path: Path) -> None:
    nobody = shutil.which("setpriv")
    if nobody is None:
        pytest.skip("setpriv (util-linux) not installed")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    r = subprocess.run(
        [
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            sys.executable,
            "-c",
            "from rollcage.cli.main import main; main()",
            "sandbox",
            "run",
            "--",
            "true",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd="/",
        timeout=60,
    )
    if "No module named" in r.stderr:
        pytest.skip("the interpreter is not readable by uid 65534 here")
    assert r.returncode == 2
    assert "rollcage needs root" in r.stderr and "Traceback" not in r.stderr


def test_demo_replays_the_incident_and_catches_every_behaviour(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    r = rollcage("demo", "--out", str(out), timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    report = json.loads((out / "report.json").read_text())
    behaviours = {row["behaviour"] for row in report["rogue"]}
    assert {"miner", "miner_nohup", "miner_renamed", "reverse_tunnel", "internal_probe", "gpu_diversion",
            "persistence"} <= behaviours  # fmt: skip
    for row in report["rogue"]:
        assert row["caught"] and row["bytes_out"] == 0, row
        assert row["episode_id"] and row["step"] is not None and row["rule"]
    watched = {row["behaviour"]: row for row in report["rogue"] if row["mode"] == "monitor"}
    assert watched["miner_nohup"]["pid"] and watched["miner_nohup"]["step"] == 2  # the step that started it
    assert "kworker" in watched["miner_renamed"]["cmdline"]
    assert report["benign"] and all(b["passed"] and b["alerts"] == 0 for b in report["benign"])
    assert (out / "report.md").read_text().startswith("# rollcage incident replay")


def test_run_drives_a_model_server_through_the_stack(tmp_path: Path) -> None:
    """``rollcage run`` against a scripted OpenAI-compatible server on loopback."""
    from rollcage.agent.fake_server import FakeOpenAIServer, tool_calls_response

    script = [
        tool_calls_response(("bash", {"command": "echo 'Hello, rollcage!' > /work/hello.txt"})),
        tool_calls_response(("submit", {})),
    ]
    tasks = Path(__file__).resolve().parents[1] / "tasks" / "create-hello"
    with FakeOpenAIServer(script) as server:
        r = rollcage("run", "--model-url", server.base_url, "--model", "fake", "--tasks", str(tasks),
                     "--out", str(tmp_path), "--run-id", "r1", timeout=180)  # fmt: skip
        hits = server.hits
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert hits == 2
    record = json.loads((tmp_path / "r1" / "trajectories.jsonl").read_text().splitlines()[0])
    assert record["task"] == "create-hello" and record["success"] is True and record["alerts"] == []
    assert [s["action"]["name"] for s in record["steps"]] == ["bash", "submit"]


def test_run_with_a_dead_model_server_fails_clearly(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    tasks = Path(__file__).resolve().parents[1] / "tasks" / "create-hello"
    r = rollcage("run", "--model-url", f"http://127.0.0.1:{port}/v1", "--model", "m", "--tasks", str(tasks),
                 "--out", str(tmp_path), "--run-id", "dead", timeout=300)  # fmt: skip
    assert "Traceback" not in r.stderr
    record = json.loads((tmp_path / "dead" / "trajectories.jsonl").read_text().splitlines()[0])
    assert record["status"] in ("error", "model_error") or "not reachable" in json.dumps(record)
