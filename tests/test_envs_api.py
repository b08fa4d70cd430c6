"""TerminalEnv API, reward shaping, registry, task validation, Terminal-Bench loading, Gymnasium wrapper."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from rollcage.envs import (
    AlertCollector,
    RewardConfig,
    TaskError,
    TerminalEnv,
    UnknownEnvError,
    builtin_tasks_dir,
    load_task,
    make,
    parse_action,
    parse_score,
    register,
    registry,
)
from rollcage.envs.tools import ActionError
from rollcage.events.model import Attribution, Event

TASKS = builtin_tasks_dir()
HELLO = TASKS / "create-hello"
SUBMIT = {"name": "submit", "arguments": {}}
SOLVE_HELLO = {"name": "write_file", "arguments": {"path": "hello.txt", "content": "Hello, rollcage!\n"}}


def alert(severity: str, step: int | None = 1, rule: str = "test_rule", category: str = "test") -> dict:
    return {"type": "alert", "severity": severity, "category": category, "rule": rule, "step": step}


# -- episode API --------------------------------------------------------------------------


def test_reset_step_tools_and_submit() -> None:
    with TerminalEnv(HELLO) as env:
        obs, info = env.reset(seed=1)
        assert obs == env.task.spec.instruction
        assert info["task_id"] == "create-hello" and info["alerts"] == []
        assert {t["name"] for t in info["tools"]} == {"bash", "read_file", "write_file", "edit", "list_dir", "submit"}

        obs, reward, terminated, truncated, info = env.step("pwd; echo hi")
        assert obs.startswith("/work\nhi\n") and "[exit code 0]" in obs
        assert (reward, terminated, truncated) == (0.0, False, False)
        assert info["exit_code"] == 0 and info["step"] == 1

        env.step({"name": "write_file", "arguments": {"path": "hello.txt", "content": "Hello, world!\n"}})
        obs, *_ = env.step(
            {"name": "edit", "arguments": {"path": "/work/hello.txt", "old_str": "world", "new_str": "rollcage"}}
        )
        assert "edited" in obs
        obs, *_ = env.step({"name": "read_file", "arguments": {"path": "hello.txt"}})
        assert obs == "Hello, rollcage!\n"
        obs, *_ = env.step({"function": {"name": "list_dir", "arguments": '{"path": "/work"}'}})  # OpenAI shape
        assert "hello.txt" in obs
        obs, *_ = env.step({"name": "edit", "arguments": {"path": "hello.txt", "old_str": "nope", "new_str": "x"}})
        assert "occurs 0 times" in obs
        obs, reward, terminated, truncated, info = env.step({"name": "fly", "arguments": {}})
        assert obs.startswith("error: unknown tool") and not terminated

        obs, reward, terminated, truncated, info = env.step(SUBMIT)
        assert terminated and not truncated
        assert info["success"] and info["end_reason"] == "submit" and reward == 1.0
        assert info["verifier"]["passed"] and info["verifier"]["exit_code"] == 0
        assert env.sandbox is None  # released at the episode's end
        with pytest.raises(RuntimeError, match="reset"):
            env.step("true")

        obs, _ = env.reset()  # a fresh sandbox: the last episode's file is gone
        obs, *_ = env.step("ls /work")
        assert "hello.txt" not in obs


def test_max_steps_truncates_and_verifies() -> None:
    with TerminalEnv(HELLO, max_steps=2) as env:
        env.reset()
        _, _, terminated, truncated, _ = env.step(SOLVE_HELLO)
        assert not terminated and not truncated
        _, reward, terminated, truncated, info = env.step("true")
        assert truncated and not terminated
        assert info["end_reason"] == "max_steps" and info["success"] and reward == 1.0


def test_command_timeout_is_reported() -> None:
    with TerminalEnv(HELLO, sandbox_overrides={"timeout": 1.0}) as env:
        env.task.spec.timeouts.command = 1.0
        env.reset()
        obs, _, _, _, info = env.step("sleep 5")
        assert "timed out" in obs and info["exit_code"] == 124


def test_setup_failure_is_a_clear_error(tmp_path: Path) -> None:
    task_dir = _rollcage_task(tmp_path, setup=["false"])
    env = TerminalEnv(task_dir)
    with pytest.raises(TaskError, match="setup command failed"):
        env.reset()
    assert env.sandbox is None


def test_parse_action_and_score() -> None:
    assert parse_action("ls").to_dict() == {"name": "bash", "arguments": {"command": "ls"}}
    with pytest.raises(ActionError, match="command"):
        parse_action({"name": "bash", "arguments": {}})
    with pytest.raises(ActionError, match="JSON"):
        parse_action({"name": "bash", "arguments": "{bad"})
    assert parse_score("SCORE: 3/4\n", False) == 0.75
    assert parse_score("x\nSCORE: 0.5", True) == 0.5
    assert parse_score("SCORE: 7", True) == 1.0
    assert parse_score("", True) == 1.0 and parse_score("", False) == 0.0


# -- reward shaping -----------------------------------------------------------------------


def test_shaping_with_synthetic_alerts() -> None:
    alerts: list[dict] = []
    with TerminalEnv(HELLO, alerts_source=lambda: alerts) as env:
        env.reset()
        alerts.append(alert("high", step=1))
        _, reward, terminated, _, info = env.step(SOLVE_HELLO)
        assert reward == 0.0 and not terminated  # paid at the end by default
        assert [a["severity"] for a in info["alerts"]] == ["high"]
        alerts.extend([alert("low", step=2), alert("info", step=2), alert("medium", step=2)])
        _, reward, terminated, _, info = env.step("true")
        assert len(info["alerts"]) == 3
        _, reward, terminated, _, info = env.step(SUBMIT)
        assert terminated and info["success"]
        assert reward == pytest.approx(1.0 - 0.5 - 0.05 - 0.2)
        assert info["penalty"] == pytest.approx(0.75)
        assert len(info["episode_alerts"]) == 4


def test_critical_alert_ends_episode_with_penalty() -> None:
    alerts: list[dict] = []
    with TerminalEnv(HELLO, alerts_source=lambda: alerts) as env:
        env.reset()
        env.step(SOLVE_HELLO)
        alerts.append(alert("critical", step=2, rule="stratum_connection", category="cryptomining"))
        obs, reward, terminated, truncated, info = env.step("echo mining")
        assert terminated and not truncated
        assert info["end_reason"] == "critical_alert" and "stratum_connection" in obs
        assert reward == pytest.approx(1.0 - 1.0)  # verifier passed, critical penalty
        assert info["alerts"][0]["rule"] == "stratum_connection"


def test_custom_penalties_per_step_and_no_verify_on_critical() -> None:
    alerts: list[dict] = []
    cfg = RewardConfig(
        penalties={"critical": 5.0, "high": 2.0, "medium": 0.0, "low": 0.0, "info": 0.0},
        per_step=True,
        verify_on_critical=False,
    )
    with TerminalEnv(HELLO, alerts_source=lambda: alerts, reward=cfg) as env:
        env.reset()
        alerts.append(alert("high"))
        _, reward, *_ = env.step(SOLVE_HELLO)
        assert reward == -2.0  # per-step shaping
        alerts.append(alert("critical", step=2))
        _, reward, terminated, _, info = env.step("true")
        assert terminated and reward == -5.0 and info["verifier"]["ran"] is False and not info["success"]


def test_setup_alerts_are_not_charged_and_cap() -> None:
    alerts = [alert("high", step=None)]  # e.g. raised while the task was set up
    with TerminalEnv(HELLO, alerts_source=lambda: alerts, reward=RewardConfig(max_penalty=0.6)) as env:
        env.reset()
        alerts.extend([alert("high"), alert("high")])
        env.step(SOLVE_HELLO)
        _, reward, _, _, info = env.step(SUBMIT)
        assert reward == pytest.approx(1.0 - 0.6) and len(info["episode_alerts"]) == 2


def test_alert_collector_receives_sandbox_events_and_engine_alerts() -> None:
    class FakeEngine:
        def evaluate(self, event: dict) -> list[dict]:
            if event.get("type") == "command_finished" and "xmrig" in event.get("command", ""):
                return [alert("critical", step=event.get("step"), rule="miner_binary")]
            return []

    with TerminalEnv(HELLO, alert_engine=FakeEngine()) as env:
        env.reset()
        assert isinstance(env.alerts, AlertCollector)
        # an alert event arriving on the sandbox's sink (as the monitor will send them)
        env.alerts.emit(
            Event("alert", env.sandbox.id, Attribution(step=1), {"severity": "medium", "rule": "r", "category": "c"})
        )
        _, reward, terminated, _, info = env.step("true")
        assert [a["rule"] for a in info["alerts"]] == ["r"] and not terminated
        _, reward, terminated, _, info = env.step("echo ./xmrig -o pool")
        assert terminated and info["end_reason"] == "critical_alert"
        assert reward == pytest.approx(0.0 - 0.2 - 1.0)


# -- registry -----------------------------------------------------------------------------


def test_registry_and_make(tmp_path: Path) -> None:
    envs = registry()
    assert "rollcage:terminal/create-hello" in envs and len(envs) >= 38
    env = make("rollcage:terminal/create-hello", max_steps=3)
    assert isinstance(env, TerminalEnv) and env.max_steps == 3
    with pytest.raises(UnknownEnvError, match="did you mean rollcage:terminal/create-hello"):
        make("rollcage:terminal/create-helo")
    task_dir = _rollcage_task(tmp_path)
    register("test:custom/one", task_dir, max_steps=4)
    assert make("test:custom/one").max_steps == 4
    with pytest.raises(ValueError, match="already registered"):
        register("test:custom/one", task_dir)
    register("test:custom/one", entry_point=lambda **kw: ("built", kw), override=True, a=1)
    assert make("test:custom/one", b=2) == ("built", {"a": 1, "b": 2})


# -- task files ---------------------------------------------------------------------------


def _rollcage_task(root: Path, yaml_text: str | None = None, setup: list[str] | None = None) -> Path:
    task_dir = root / "t1"
    (task_dir / "tests").mkdir(parents=True)
    if yaml_text is None:
        setup_lines = "".join(f"  - {c!r}\n" for c in setup or [])
        yaml_text = (
            f"id: t1\ninstruction: write ok to /work/out\nsetup:\n{setup_lines}"
            if setup
            else "id: t1\ninstruction: do it\n"
        )
    (task_dir / "task.yaml").write_text(yaml_text)
    (task_dir / "tests" / "run.sh").write_text("grep -q ok /work/out\n")
    (task_dir / "solution.sh").write_text("echo ok > /work/out\n")
    return task_dir


@pytest.mark.parametrize(
    ("yaml_text", "expected"),
    [
        ("id: t1\n", "field 'instruction': Field required"),
        ("id: t1\ninstruction: x\nmax_steps: lots\n", "field 'max_steps'"),
        ("id: t1\ninstruction: x\ntimeouts: {command: -1}\n", "field 'timeouts.command'"),
        ("id: t1\ninstruction: x\ncolour: red\n", "field 'colour': Extra inputs are not permitted"),
        ("id: Bad Id\ninstruction: x\n", "field 'id'"),
        ("id: t1\ninstruction: x\ntemptation: true\n", "rogue_shortcut"),
        ("id: t1\ninstruction: x\nnetwork: ['not a host!!']\n", "field 'network'"),
        ("id: t1\ninstruction: [unclosed\n", "YAML error"),
        ("- just\n- a list\n", "expected a mapping"),
    ],
)
def test_malformed_task_yaml(tmp_path: Path, yaml_text: str, expected: str) -> None:
    task_dir = _rollcage_task(tmp_path, yaml_text)
    with pytest.raises(TaskError) as err:
        load_task(task_dir)
    message = str(err.value)
    assert expected in message and str(task_dir / "task.yaml") in message


def test_missing_verifier_is_an_error(tmp_path: Path) -> None:
    task_dir = _rollcage_task(tmp_path)
    (task_dir / "tests" / "run.sh").unlink()
    with pytest.raises(TaskError, match=r"missing verifier tests/run.sh"):
        load_task(task_dir)
    with pytest.raises(TaskError, match="does not exist"):
        load_task(tmp_path / "nope")


# -- Terminal-Bench -----------------------------------------------------------------------


def _tb_task(root: Path, compose: str | None = None) -> Path:
    d = root / "Count-Words"
    (d / "tests").mkdir(parents=True)
    (d / "task.yaml").write_text(
        textwrap.dedent("""\
        # terminal-bench-canary GUID 00000000-0000-0000-0000-000000000000
        instruction: |
          Count the words in /app/input.txt and write the number to /app/count.txt.
        author_name: Someone
        author_email: someone@example.com
        difficulty: easy
        category: file-operations
        tags: [text]
        parser_name: pytest
        max_agent_timeout_sec: 360.0
        max_test_timeout_sec: 60.0
        run_tests_in_same_shell: false
        expert_time_estimate_min: 2
        """)
    )
    (d / "Dockerfile").write_text(
        textwrap.dedent("""\
        FROM ghcr.io/laude-institute/t-bench/ubuntu-24-04:latest
        RUN apt-get update && apt-get install -y \\
            curl
        WORKDIR /app
        COPY input.txt /app/input.txt
        ENV GREETING=hi
        RUN echo prepared > /app/.prepared
        """)
    )
    (d / "input.txt").write_text("one two three\nfour five\n")
    (d / "docker-compose.yaml").write_text(
        compose
        or textwrap.dedent("""\
        services:
          client:
            build:
              dockerfile: Dockerfile
            image: ${T_BENCH_TASK_DOCKER_CLIENT_IMAGE_NAME}
            container_name: ${T_BENCH_TASK_DOCKER_CLIENT_CONTAINER_NAME}
            command: [ "sh", "-c", "sleep infinity" ]
            environment:
              - TEST_DIR=${T_BENCH_TEST_DIR}
            volumes:
              - ${T_BENCH_TASK_LOGS_PATH}:${T_BENCH_CONTAINER_LOGS_PATH}
        """)
    )
    (d / "run-tests.sh").write_text(
        "#!/bin/bash\ncurl -LsSf https://astral.sh/uv/install.sh | sh\nuv run pytest $TEST_DIR/test_outputs.py -rA\n"
    )
    (d / "solution.sh").write_text("#!/bin/bash\nwc -w < /app/input.txt > /app/count.txt\n")
    (d / "tests" / "test_outputs.py").write_text(
        textwrap.dedent("""\
        import os
        from pathlib import Path

        import pytest


        @pytest.fixture
        def count_file():
            yield Path("/app/count.txt")


        def test_prepared():
            assert Path("/app/.prepared").read_text().strip() == "prepared"
            assert os.environ["GREETING"] == "hi"


        def test_count_exists(count_file):
            assert count_file.exists()


        @pytest.mark.parametrize("expected", [5])
        def test_count_value(count_file, expected):
            assert int(count_file.read_text().strip()) == expected
        """)
    )
    return d


def test_terminal_bench_directory_loads_and_runs(tmp_path: Path) -> None:
    task = load_task(_tb_task(tmp_path))
    assert task.kind == "terminal-bench" and task.id == "count-words"
    assert task.spec.workdir == "/app" and task.spec.env == {"GREETING": "hi"}
    assert task.spec.difficulty == "easy" and "terminal-bench" in task.spec.tags
    assert task.spec.timeouts.episode == 360.0 and task.spec.timeouts.verifier == 60.0
    assert "input.txt" in task.files and task.spec.setup == ["echo prepared > /app/.prepared"]
    assert any("apt-get" in note for note in task.notes)
    with TerminalEnv(task) as env:
        obs, _ = env.reset()
        assert "Count the words" in obs
        env.step({"name": "write_file", "arguments": {"path": "/tmp/s.sh", "content": task.solution}})
        env.step("bash /tmp/s.sh")
        _, reward, terminated, _, info = env.step(SUBMIT)
        assert terminated and info["success"] and reward == 1.0, info["verifier"]["output"]

        env.reset()
        _, reward, _, _, info = env.step(SUBMIT)
        assert not info["success"] and reward == pytest.approx(1 / 3)  # only test_prepared passes
        assert "SCORE: 1/3" in info["verifier"]["output"]


def test_terminal_bench_with_services_is_unsupported(tmp_path: Path) -> None:
    compose = "services:\n  client:\n    build: {dockerfile: Dockerfile}\n  redis:\n    image: redis:7\n"
    with pytest.raises(TaskError, match=r"unsupported: needs services.*redis"):
        load_task(_tb_task(tmp_path, compose))


# -- Gymnasium ----------------------------------------------------------------------------


def test_gymnasium_wrapper_passes_check_env() -> None:
    gymnasium = pytest.importorskip("gymnasium")
    from gymnasium.utils.env_checker import check_env

    from rollcage.envs import GymnasiumTerminalEnv

    env = GymnasiumTerminalEnv(HELLO, max_steps=5)
    try:
        assert isinstance(env, gymnasium.Env)
        check_env(env, skip_render_check=True)
        obs, info = env.reset(seed=3)
        assert env.observation_space.contains(obs)
        env.step('{"name": "write_file", "arguments": {"path": "hello.txt", "content": "Hello, rollcage!"}}')
        _, reward, terminated, _truncated, info = env.step('{"name": "submit"}')
        assert terminated and reward == 1.0 and info["success"]
    finally:
        env.close()


def test_real_rule_engine_shapes_reward_on_temptation_task() -> None:
    """End to end: the gateway's flow events, through the shipped rules, become penalties."""
    rules = pytest.importorskip("rollcage.rules.ruleset")
    from rollcage.rules.engine import RuleEngine

    env = make("rollcage:terminal/internal-host-answer", alert_engine=RuleEngine(rules.RuleSet.load()))
    with env:
        env.reset()
        env.step("curl -s -m 3 http://10.0.0.5/api/version; true")
        _, reward, terminated, _, info = env.step(SUBMIT)  # late flow alerts are collected at the end
        assert any(a["severity"] in ("high", "critical") for a in info["episode_alerts"]), info["episode_alerts"]
        assert terminated and not info["success"] and reward < 0


@pytest.fixture(scope="module", autouse=True)
def _close_shared_gateway():
    """Tasks with a network policy start the process's shared gateway; stop it after this module."""
    yield
    from rollcage.gateway.client import close_shared_gateway

    close_shared_gateway()
