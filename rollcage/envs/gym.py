"""``GymnasiumTerminalEnv``: a :class:`gymnasium.Env` around :class:`TerminalEnv` with Text spaces.

Actions are text: a bash command, or a JSON tool call ``{"name": ..., "arguments": {...}}``.
Observations are text of at most ``obs_max_chars`` characters. Gymnasium's ``Text`` space only
contains strings over its charset; terminal output can hold any character, so the observation
space is a ``Text`` subclass that accepts any string of the right length (sampling still uses
the printable ASCII charset).
"""

from __future__ import annotations

import json
import string
from typing import Any

import gymnasium
from gymnasium import spaces

from rollcage.envs.terminal import TerminalEnv

CHARSET = string.printable


class AnyText(spaces.Text):
    """A ``Text`` space whose ``contains`` accepts any ``str`` within the length bounds."""

    def contains(self, x: Any) -> bool:
        return isinstance(x, str) and self.min_length <= len(x) <= self.max_length


class GymnasiumTerminalEnv(gymnasium.Env):
    """Gymnasium view of a terminal task; ``env.unwrapped.terminal`` is the wrapped :class:`TerminalEnv`."""

    metadata = {"render_modes": ["ansi"]}

    def __init__(
        self,
        task: Any = None,
        *,
        env: TerminalEnv | None = None,
        render_mode: str | None = None,
        max_action_chars: int = 65_536,
        **kwargs: Any,
    ) -> None:
        if (task is None) == (env is None):
            raise ValueError("pass exactly one of task= (a Task or task directory) or env= (a TerminalEnv)")
        self.terminal = env if env is not None else TerminalEnv(task, **kwargs)
        self.render_mode = render_mode
        self.observation_space = AnyText(max_length=self.terminal.obs_max_chars, min_length=0, charset=CHARSET)
        self.action_space = AnyText(max_length=max_action_chars, min_length=0, charset=CHARSET)
        self._last_obs = ""

    @staticmethod
    def decode_action(action: Any) -> Any:
        """A JSON object with a ``name`` is a tool call; any other text is a bash command."""
        if isinstance(action, str) and action.lstrip().startswith("{"):
            try:
                decoded = json.loads(action)
            except json.JSONDecodeError:
                return action
            if isinstance(decoded, dict) and "name" in decoded:
                return decoded
        return action

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
        super().reset(seed=seed)
        obs, info = self.terminal.reset(seed=seed, options=options)
        self._last_obs = obs
        return obs, info

    def step(self, action: Any) -> tuple[str, float, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.terminal.step(self.decode_action(action))
        self._last_obs = obs
        return obs, float(reward), terminated, truncated, info

    def render(self) -> str | None:
        return self._last_obs if self.render_mode == "ansi" else None

    def close(self) -> None:
        self.terminal.close()
