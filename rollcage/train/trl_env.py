"""TRL integration: a rollcage sandbox as a ``GRPOTrainer(environment_factory=...)`` environment,
and reward functions for ``reward_funcs``.

TRL (>= 1.x, ``environment_factory`` is experimental there) builds one :class:`RollcageToolEnv` per
rollout, calls ``reset(**row)`` with the dataset row, exposes every public method except
``reset``/``get_reward`` as a tool (their docstrings and type hints become the tool schemas), and
calls ``get_reward()`` once per finished rollout. A row names its task with ``task`` (a bundled
task id, ``rollcage:terminal/<id>``, or a task directory); ``reset`` starts a fresh rollcage
sandbox with that task (:class:`rollcage.envs.TerminalEnv`, monitored by the shipped rules) and
returns the task's instruction, which TRL appends to the row's last user message.

``get_reward()`` = verifier score + safety shaping (per-severity penalties of the episode's alerts,
:class:`rollcage.envs.RewardConfig`); a rollout that never called ``submit`` is verified when the
reward is asked for. :func:`task_success` and :func:`safety_penalty` read the same episode state
(TRL passes ``environments=`` to reward functions) so the two parts can be weighted separately.

Usage::

    from trl import GRPOConfig, GRPOTrainer
    from rollcage.train.trl_env import RollcageToolEnv, safety_penalty, task_success

    trainer = GRPOTrainer(model=..., args=GRPOConfig(...), train_dataset=rows,
                          environment_factory=RollcageToolEnv, reward_funcs=[task_success, safety_penalty])
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

from rollcage.envs.reward import RewardConfig

__all__ = ["RollcageToolEnv", "default_alert_engine", "environment_factory", "safety_penalty", "task_success"]


def default_alert_engine() -> Any:
    """The rule engine over the shipped default rules (None if the rules cannot be loaded)."""
    try:
        from rollcage.rules.engine import RuleEngine
        from rollcage.rules.ruleset import RuleSet

        return RuleEngine(RuleSet.load())
    except Exception:
        return None


class RollcageToolEnv:
    """One rollout's environment for TRL's ``GRPOTrainer(environment_factory=...)``."""

    def __init__(
        self,
        reward: RewardConfig | None = None,
        alert_engine: Any = "default",
        max_steps: int | None = None,
        sandbox_overrides: dict[str, Any] | None = None,
    ) -> None:
        self._reward_config = reward or RewardConfig()
        self._engine = default_alert_engine() if alert_engine == "default" else alert_engine
        self._max_steps = max_steps
        self._overrides = sandbox_overrides
        self._env: Any = None
        self._total = 0.0
        self._info: dict[str, Any] = {}
        self._alerts: list[dict[str, Any]] = []
        self.task_id: str | None = None

    # -- episode ---------------------------------------------------------------------------

    def reset(self, **row: Any) -> str | None:
        """Start the row's task (``row["task"]``) in a fresh sandbox; returns its instruction."""
        from rollcage.envs import make
        from rollcage.envs.registry import PREFIX
        from rollcage.envs.terminal import TerminalEnv

        self._close()
        task = row.get("task") or row.get("task_id")
        if not task:
            raise ValueError("a row for RollcageToolEnv needs a 'task' field")
        kwargs: dict[str, Any] = {"reward": self._reward_config, "alert_engine": self._engine}
        if self._max_steps:
            kwargs["max_steps"] = self._max_steps
        if self._overrides:
            kwargs["sandbox_overrides"] = self._overrides
        task = str(task)
        if "/" in task and not task.startswith(PREFIX):
            self._env = TerminalEnv(task, **kwargs)
        else:
            self._env = make(task if task.startswith(PREFIX) else PREFIX + task, **kwargs)
        self.task_id = self._env.spec.id
        self._total, self._info, self._alerts = 0.0, {}, []
        obs, _ = self._env.reset(seed=row.get("seed"))
        return None if row.get("instruction_in_prompt") else "\n\n" + obs

    def _act(self, name: str, arguments: dict[str, Any]) -> str:
        if self._env is None:
            return "error: no task: reset() was not called"
        if self._env.done:
            return "the episode is over"
        obs, reward, terminated, truncated, info = self._env.step({"name": name, "arguments": arguments})
        self._total += reward
        self._alerts.extend(info.get("alerts") or [])
        if terminated or truncated:
            self._info = info
            self._alerts = list(info.get("episode_alerts") or self._alerts)
        return obs

    def _finish(self) -> None:
        if self._env is not None and not self._env.done:
            self._act("submit", {})

    def _close(self) -> None:
        if self._env is not None:
            with contextlib.suppress(Exception):
                self._env.close()
            self._env = None

    # -- tools (public methods: TRL exposes them to the model) -----------------------------

    def bash(self, command: str) -> str:
        """Run a bash command in the task's workspace; state persists between calls.

        Args:
            command: the bash command line to run.

        Returns:
            The command's output and exit code.
        """
        return self._act("bash", {"command": command})

    def read_file(self, path: str) -> str:
        """Read a text file.

        Args:
            path: the file's path (relative paths are inside the workspace).

        Returns:
            The file's contents.
        """
        return self._act("read_file", {"path": path})

    def write_file(self, path: str, content: str) -> str:
        """Create or overwrite a text file.

        Args:
            path: the file's path (relative paths are inside the workspace).
            content: the full new contents.

        Returns:
            A confirmation.
        """
        return self._act("write_file", {"path": path, "content": content})

    def edit(self, path: str, old_str: str, new_str: str) -> str:
        """Replace the one occurrence of old_str in a file with new_str.

        Args:
            path: the file's path.
            old_str: text that occurs exactly once in the file.
            new_str: its replacement.

        Returns:
            A confirmation or why the edit failed.
        """
        return self._act("edit", {"path": path, "old_str": old_str, "new_str": new_str})

    def submit(self) -> str:
        """End the episode and have the work checked.

        Returns:
            A confirmation.
        """
        return self._act("submit", {})

    # -- reward ----------------------------------------------------------------------------

    def get_reward(self) -> float:
        """Verifier score plus safety shaping (verifies the work if ``submit`` was never called)."""
        self._finish()
        return float(self._total)

    @property
    def success(self) -> bool:
        self._finish()
        return bool(self._info.get("success"))

    @property
    def alerts(self) -> list[dict[str, Any]]:
        self._finish()
        return list(self._alerts)


def environment_factory(reward: RewardConfig | None = None, **kwargs: Any) -> Callable[[], RollcageToolEnv]:
    """A zero-argument factory for ``GRPOTrainer(environment_factory=...)`` with these settings."""

    def factory() -> RollcageToolEnv:
        return RollcageToolEnv(reward=reward, **kwargs)

    return factory


def task_success(
    completions: list[Any] | None = None, environments: list[Any] | None = None, **kwargs: Any
) -> list[float]:
    """1.0 for each rollout whose verifier passed, else 0.0 (a ``reward_funcs`` entry)."""
    return [1.0 if env.success else 0.0 for env in environments or []]


def safety_penalty(
    completions: list[Any] | None = None,
    environments: list[Any] | None = None,
    reward: RewardConfig | None = None,
    **kwargs: Any,
) -> list[float]:
    """The (non-positive) safety shaping of each rollout's alerts (a ``reward_funcs`` entry)."""
    from rollcage.envs.reward import shaping

    cfg = reward or RewardConfig()
    return [shaping(env.alerts, cfg) for env in environments or []]
