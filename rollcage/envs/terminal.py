"""``TerminalEnv``: one task, one fresh sandbox per episode, GEM-style API.

``reset(seed, options) -> (obs, info)`` starts a sandbox, copies the task's files into the
workspace and runs its setup; the first observation is the task's instruction.
``step(action) -> (obs, reward, terminated, truncated, info)`` runs one tool call. The episode
ends on ``submit`` (terminated), on a critical alert (terminated), or at ``max_steps`` or the
episode's wall-clock limit (truncated); then the task's verifier runs in the sandbox and the
reward is its score plus the safety shaping of the episode's alerts.
"""

from __future__ import annotations

import contextlib
import re
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from rollcage.config import SandboxConfig, format_validation_error
from rollcage.envs.reward import AlertCollector, AlertsSource, RewardConfig, is_alert, shaping
from rollcage.envs.task import Task, TaskError, load_task
from rollcage.envs.tools import TOOL_SCHEMAS, ActionError, parse_action, run_tool

VERIFIER_DIR = "/tmp/rollcage-tests"
_SCORE_RE = re.compile(r"^\s*SCORE:\s*([0-9]*\.?[0-9]+)\s*(?:/\s*([0-9]*\.?[0-9]+))?", re.MULTILINE)
_VERIFIER_OUTPUT_KEEP = 8000

SandboxFactory = Callable[..., Any]


def _default_sandbox_factory(config: SandboxConfig, **kwargs: Any) -> Any:
    from rollcage.sandbox import Sandbox

    return Sandbox(config, **kwargs)


def parse_score(output: str, passed: bool) -> float:
    """The last ``SCORE: x`` or ``SCORE: a/b`` line of the verifier's output, clamped to [0, 1];
    without one, 1.0 when the verifier exited 0, else 0.0."""
    matches = list(_SCORE_RE.finditer(output))
    if not matches:
        return 1.0 if passed else 0.0
    num, den = matches[-1].groups()
    try:
        value = float(num) / float(den) if den is not None else float(num)
    except ZeroDivisionError:
        value = 0.0
    return max(0.0, min(1.0, value))


def _clip(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    half = limit // 2
    return f"{text[:half]}\n[... {len(text) - 2 * half} characters cut ...]\n{text[-half:]}"


class TerminalEnv:
    """A terminal task in a rollcage sandbox.

    ``alerts_source``: a callable returning every alert (dict) of the current episode so far,
    polled after each step; without it the env installs an :class:`AlertCollector` as the
    sandbox's event sink (``env.alerts`` is that collector), fed by the sandbox's own events and,
    with ``alert_engine`` (e.g. a ``rollcage.rules`` engine), by the alerts it derives from them.
    ``events`` receives every sandbox event as well.
    """

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(
        self,
        task: Task | str | Path,
        *,
        reward: RewardConfig | None = None,
        alerts_source: AlertsSource | None = None,
        alert_engine: Any = None,
        events: Any = None,
        run_id: str | None = None,
        max_steps: int | None = None,
        obs_max_chars: int = 16_000,
        sandbox_factory: SandboxFactory | None = None,
        sandbox_overrides: dict[str, Any] | None = None,
        keep_sandbox: bool = False,
    ) -> None:
        self.task = task if isinstance(task, Task) else load_task(task)
        self.spec = self.task.spec
        self.reward_config = reward or RewardConfig()
        self.alerts_source = alerts_source
        self.alert_engine = alert_engine
        self.events = events
        self.run_id = run_id
        self.max_steps = max_steps or self.spec.max_steps
        self.obs_max_chars = obs_max_chars
        self.sandbox_factory = sandbox_factory or _default_sandbox_factory
        self.keep_sandbox = keep_sandbox
        self.sandbox: Any = None
        self.alerts = AlertCollector()
        self.episode_id: str | None = None
        self.seed: int | None = None
        self.steps = 0
        self.done = True
        self._consumed = 0
        self._episode_alerts: list[dict[str, Any]] = []
        self._penalty_paid = 0.0
        self._started = 0.0
        self.sandbox_config = self._build_config(sandbox_overrides or {})

    # -- configuration -------------------------------------------------------------------

    def _build_config(self, overrides: dict[str, Any]) -> SandboxConfig:
        spec = self.spec
        values: dict[str, Any] = {
            "memory": spec.memory,
            "cpus": spec.cpus,
            "pids": spec.pids,
            "timeout": spec.timeouts.command,
            "network": spec.network,
            "env": dict(spec.env),
            "workdir": spec.workdir,
        }
        values.update(overrides)
        try:
            return SandboxConfig(**values)
        except ValidationError as exc:
            raise TaskError(f"task {spec.id}: {format_validation_error(exc)}") from None

    @property
    def instruction(self) -> str:
        return self.spec.instruction

    @property
    def tools(self) -> list[dict[str, Any]]:
        return TOOL_SCHEMAS

    # -- episode -----------------------------------------------------------------------

    def reset(self, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
        options = options or {}
        self._release()
        self.seed = seed
        self.episode_id = str(options.get("episode_id") or f"ep-{uuid.uuid4().hex[:12]}")
        self.steps = 0
        self._consumed = 0
        self._episode_alerts = []
        self._penalty_paid = 0.0
        self.alerts = AlertCollector(forward=self.events, engine=self.alert_engine)
        self.sandbox = self.sandbox_factory(
            self.sandbox_config, run_id=options.get("run_id", self.run_id), episode_id=self.episode_id,
            events=self.alerts,
        )  # fmt: skip
        try:
            self._prepare()
        except BaseException:
            self._release()
            raise
        self._consumed = len(self._poll_alerts())  # alerts raised by the setup are not the agent's
        self.done = False
        self._started = time.monotonic()
        info = {
            "task_id": self.spec.id,
            "episode_id": self.episode_id,
            "seed": seed,
            "max_steps": self.max_steps,
            "tools": TOOL_SCHEMAS,
            "temptation": self.spec.temptation,
            "alerts": [],
        }
        return self.spec.instruction, info

    def _prepare(self) -> None:
        sb, workdir = self.sandbox, self.spec.workdir.rstrip("/") or "/"
        sb.set_step(None)
        with _trusted(sb):  # the task's own files and setup are not the agent's doing
            self._prepare_files_and_setup(sb, workdir)

    def _prepare_files_and_setup(self, sb: Any, workdir: str) -> None:
        for rel, data in sorted(self.task.files.items()):
            mode = 0o755 if rel.endswith(".sh") or data.startswith(b"#!") else 0o644
            sb.write_file(f"{workdir}/{rel}", data, mode)
        for command in self.spec.setup:
            result = sb.run(f"cd {workdir} && {command}", timeout=self.spec.timeouts.setup, session="setup")
            if result.exit_code != 0:
                raise TaskError(
                    f"task {self.spec.id}: setup command failed (exit {result.exit_code}): {command!r}\n"
                    f"{_clip(result.output, 2000)}"
                )

    def step(self, action: Any) -> tuple[str, float, bool, bool, dict[str, Any]]:
        if self.done or self.sandbox is None:
            raise RuntimeError("the episode is over (or never started): call reset() first")
        self.steps += 1
        info: dict[str, Any] = {"step": self.steps}
        terminated = truncated = False
        end_reason = None
        try:
            call = parse_action(action)
        except ActionError as exc:
            call = None
            obs = f"error: {exc}"
            info["action_error"] = str(exc)
        if call is not None:
            info["action"] = call.to_dict()
            if call.name == "submit":
                obs, terminated, end_reason = "submitted", True, "submit"
            else:
                result = run_tool(
                    self.sandbox, call, workdir=self.spec.workdir, timeout=self.spec.timeouts.command, step=self.steps
                )
                obs = result.output
                info["tool_ok"] = result.ok
                if result.exit_code is not None:
                    info["exit_code"] = result.exit_code

        new_alerts = self._new_alerts()
        info["alerts"] = new_alerts
        critical = [a for a in new_alerts if str(a.get("severity", "")).lower() == "critical"]
        if end_reason is None:
            if critical and self.reward_config.end_on_critical:
                terminated, end_reason = True, "critical_alert"
                obs += f"\n[episode ended: critical alert {critical[0].get('rule', '?')}]"
            elif self.steps >= self.max_steps:
                truncated, end_reason = True, "max_steps"
            elif time.monotonic() - self._started > self.spec.timeouts.episode:
                truncated, end_reason = True, "episode_timeout"

        reward = 0.0
        if self.reward_config.per_step:
            reward += self._pay(new_alerts)
        if end_reason is not None:
            reward += self._finish(end_reason, info)
        return _clip(obs, self.obs_max_chars), reward, terminated, truncated, info

    def _pay(self, alerts: list[dict[str, Any]]) -> float:
        cfg = self.reward_config
        penalty = -shaping(alerts, cfg.model_copy(update={"max_penalty": None}))
        if cfg.max_penalty is not None:
            penalty = max(0.0, min(penalty, cfg.max_penalty - self._penalty_paid))
        self._penalty_paid += penalty
        return -penalty

    def _finish(self, end_reason: str, info: dict[str, Any]) -> float:
        self.done = True
        verify = end_reason != "critical_alert" or self.reward_config.verify_on_critical
        verifier = self._verify() if verify else {"ran": False, "passed": False, "score": 0.0, "output": ""}
        # late alerts of the agent's steps (background jobs, gateway flows); ignore the verifier's own (step None)
        late = self._new_alerts(agent_only=True)
        info["alerts"] = info["alerts"] + late
        reward = verifier["score"]
        if self.reward_config.per_step:
            reward += self._pay(late)
        else:
            reward += self._pay(self._episode_alerts)
        info.update(
            end_reason=end_reason,
            verifier=verifier,
            success=bool(verifier["passed"]),
            score=verifier["score"],
            penalty=self._penalty_paid,
            episode_alerts=list(self._episode_alerts),
            steps=self.steps,
        )
        if not self.keep_sandbox:
            self._release()
        return reward

    def _verify(self) -> dict[str, Any]:
        with _trusted(self.sandbox):  # the verifier is the host's, not the agent's
            return self._run_verifier()

    def _run_verifier(self) -> dict[str, Any]:
        sb, spec = self.sandbox, self.spec
        sb.set_step(None)
        started = time.monotonic()
        prep = sb.run(f"rm -rf {VERIFIER_DIR} && mkdir -p {VERIFIER_DIR}", timeout=30, session="verifier")
        if prep.exit_code != 0:
            return {"ran": False, "passed": False, "score": 0.0, "output": "cannot prepare verifier: " + prep.output}
        for rel, (data, mode) in sorted(self.task.test_files().items()):
            sb.write_file(f"{VERIFIER_DIR}/{rel}", data, mode)
        command = f"cd {spec.workdir} && export TEST_DIR={VERIFIER_DIR} && {self.task.verifier_command}"
        result = sb.run(command, timeout=spec.timeouts.verifier, session="verifier")
        passed = result.exit_code == 0 and not result.timed_out
        return {
            "ran": True,
            "passed": passed,
            "score": parse_score(result.output, passed) if not result.timed_out else 0.0,
            "exit_code": result.exit_code,
            "timed_out": result.timed_out,
            "output": _clip(result.output, _VERIFIER_OUTPUT_KEEP),
            "duration_s": round(time.monotonic() - started, 3),
        }

    def _poll_alerts(self) -> list[dict[str, Any]]:
        source = self.alerts_source if self.alerts_source is not None else self.alerts
        return [dict(a) for a in (source() or ()) if is_alert(a)]

    def _new_alerts(self, agent_only: bool = False) -> list[dict[str, Any]]:
        """Alerts the source added since the last poll (the source's list is cumulative)."""
        alerts = self._poll_alerts()
        fresh = alerts[self._consumed :]
        if agent_only:
            fresh = [a for a in fresh if a.get("step") is not None]
        self._consumed = max(self._consumed, len(alerts))
        self._episode_alerts.extend(fresh)
        return fresh

    # -- lifecycle ---------------------------------------------------------------------

    def _release(self) -> None:
        sb, self.sandbox = self.sandbox, None
        if sb is not None:
            sb.close()

    def close(self) -> None:
        """Destroy the sandbox (if any); the env may be reset again afterwards."""
        self.done = True
        self._release()

    def __enter__(self) -> TerminalEnv:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"TerminalEnv(task={self.spec.id!r}, episode={self.episode_id!r}, steps={self.steps})"


def _trusted(sandbox: Any) -> Any:
    """``sandbox.trusted()`` where the sandbox has it (a remote or fake one may not)."""
    trusted = getattr(sandbox, "trusted", None)
    return trusted() if trusted is not None else contextlib.nullcontext()
