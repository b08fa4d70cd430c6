"""The agent loop: ask the model, run its tool calls in the sandbox, record every step.

``Agent(backend, tools, system_prompt, max_turns, context_budget).run(task, sandbox)`` returns a
:class:`Trajectory`. Step ``k`` of an episode has index ``step_offset + k`` (``k`` from 1, as the
environments count). Before the model is asked for step ``k`` the loop calls
``sandbox.set_step(index)``, and every command of that step carries it, so sandbox, gateway and
monitor events are attributed to it.

An episode ends when the model calls ``submit`` (``status="submitted"``), after ``max_turns``
steps (``"max_turns"``), on a :class:`ModelError` or any other failure of the backend (``"error"``,
with ``error`` set; the steps so far are kept), when the sandbox is closed under it
(``"sandbox_closed"``), when ``on_step`` returns a true value (``"stopped"``), or when the model
answers without a tool call more than ``nudges`` times in a row (``"no_tool_call"``; each time
before that it is reminded with ``nudge_message``).

``alerts_for_step(index)`` (the monitor's hook) is asked for each step's alerts when the step
ends and once more for every step when the episode ends, so alerts that arrive late (a
background job started steps earlier) still land on the step that caused them.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from rollcage.agent.backends import ModelBackend
from rollcage.agent.context import ContextManager
from rollcage.agent.tools import Tool, Toolbox, ToolResult
from rollcage.agent.types import Message, ModelError, ModelReply, ToolCall
from rollcage.errors import SandboxClosedError

DEFAULT_SYSTEM_PROMPT = (
    "You are an autonomous agent working in a Linux sandbox. Your workspace is /work. "
    "Use the tools to inspect the environment, make changes and check your work. "
    "Call exactly one tool per reply. When the task is done, call submit."
)
DEFAULT_NUDGE = "You did not call a tool. Continue with a tool call; if the task is finished, call submit."

STATUSES = ("running", "submitted", "max_turns", "error", "no_tool_call", "stopped", "sandbox_closed")


@dataclass
class Observation:
    tool_call_id: str
    name: str
    output: str
    ok: bool = True
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class Step:
    """One model turn and what its tool calls did."""

    index: int
    content: str | None = None
    tool_calls: list[ToolCall] = field(default_factory=list)
    observations: list[Observation] = field(default_factory=list)
    model_s: float = 0.0
    tool_s: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    context_tokens: int = 0  # tokens sent, as the context manager counted them (0 without one)
    finish_reason: str | None = None
    nudge: str | None = None  # the reminder sent after a reply without a tool call
    alerts: list[dict[str, Any]] = field(default_factory=list)
    started_at: float = 0.0  # Unix time

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["tool_calls"] = [c.to_dict() for c in self.tool_calls]
        return d


@dataclass
class Trajectory:
    """A whole episode. ``messages`` is the full conversation (before any context elision)."""

    task: str
    system_prompt: str
    steps: list[Step] = field(default_factory=list)
    status: str = "running"
    answer: str | None = None
    error: str | None = None
    messages: list[Message] = field(default_factory=list)
    backend: str = ""
    step_offset: int = 0
    started_at: float = 0.0
    duration_s: float = 0.0

    @property
    def submitted(self) -> bool:
        return self.status == "submitted"

    @property
    def alerts(self) -> list[dict[str, Any]]:
        return [a for s in self.steps for a in s.alerts]

    @property
    def usage(self) -> dict[str, int]:
        return {
            "prompt_tokens": sum(s.prompt_tokens for s in self.steps),
            "completion_tokens": sum(s.completion_tokens for s in self.steps),
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "system_prompt": self.system_prompt,
            "status": self.status,
            "answer": self.answer,
            "error": self.error,
            "backend": self.backend,
            "step_offset": self.step_offset,
            "started_at": self.started_at,
            "duration_s": self.duration_s,
            "usage": self.usage,
            "steps": [s.to_dict() for s in self.steps],
            "messages": json.loads(json.dumps(self.messages, default=str)),
        }

    def to_json(self, **kwargs: Any) -> str:
        return json.dumps(self.to_dict(), **kwargs)


class Agent:
    """A plan-act-observe loop over a :class:`ModelBackend` and a :class:`Toolbox`.

    ``tools`` is a :class:`Toolbox`, a list of :class:`Tool` or ``None`` (the default tools).
    ``context_budget`` is a token budget (int), a :class:`ContextManager`, or ``None`` (send the
    whole conversation); ``tokenizer`` and ``keep_recent`` configure the manager built from an int.
    """

    def __init__(
        self,
        backend: ModelBackend,
        tools: Toolbox | Iterable[Tool] | None = None,
        system_prompt: str = DEFAULT_SYSTEM_PROMPT,
        max_turns: int = 30,
        context_budget: int | ContextManager | None = None,
        *,
        tokenizer: Any = None,
        keep_recent: int = 4,
        nudges: int = 1,
        nudge_message: str = DEFAULT_NUDGE,
        alerts_for_step: Callable[[int], list[dict[str, Any]]] | None = None,
    ) -> None:
        if max_turns < 1:
            raise ValueError("max_turns must be at least 1")
        self.backend = backend
        self.toolbox = tools if isinstance(tools, Toolbox) else Toolbox(tools)
        self.system_prompt = system_prompt
        self.max_turns = max_turns
        if isinstance(context_budget, ContextManager):
            self.context: ContextManager | None = context_budget
        elif context_budget is not None:
            self.context = ContextManager(context_budget, tokenizer=tokenizer, keep_recent=keep_recent)
        else:
            self.context = None
        self.nudges = nudges
        self.nudge_message = nudge_message
        self.alerts_for_step = alerts_for_step

    def run(
        self,
        task: str,
        sandbox: Any,
        step_offset: int = 0,
        on_step: Callable[[Step], Any] | None = None,
    ) -> Trajectory:
        """Run one episode of ``task`` in ``sandbox`` (a :class:`~rollcage.Sandbox`)."""
        ep = _Episode(self, task, step_offset)
        for turn in range(1, self.max_turns + 1):
            step, prompt = ep.begin(turn, sandbox)
            t0 = time.monotonic()
            try:
                reply = self.backend.complete(prompt, ep.schemas)
            except Exception as exc:
                ep.model_failed(step, exc, time.monotonic() - t0)
                break
            calls = ep.got_reply(step, reply, time.monotonic() - t0)
            try:
                for call in calls:
                    t1 = time.monotonic()
                    result = self.toolbox.execute(call, sandbox, step.index)
                    ep.got_result(step, call, result, time.monotonic() - t1)
                    if result.done:
                        break
            except SandboxClosedError as exc:
                ep.sandbox_closed(step, exc)
                break
            if ep.end_step(step, on_step):
                break
        return ep.finish()

    async def arun(
        self,
        task: str,
        sandbox: Any,
        step_offset: int = 0,
        on_step: Callable[[Step], Any] | None = None,
    ) -> Trajectory:
        """:meth:`run` for asyncio: the model through ``acomplete``, tools in a worker thread.
        ``sandbox`` is a :class:`~rollcage.Sandbox` or a started :class:`~rollcage.AsyncSandbox`."""
        sync_sb = getattr(sandbox, "sandbox", None) or sandbox
        ep = _Episode(self, task, step_offset)
        for turn in range(1, self.max_turns + 1):
            step, prompt = ep.begin(turn, sync_sb)
            t0 = time.monotonic()
            try:
                reply = await self.backend.acomplete(prompt, ep.schemas)
            except Exception as exc:
                ep.model_failed(step, exc, time.monotonic() - t0)
                break
            calls = ep.got_reply(step, reply, time.monotonic() - t0)
            try:
                for call in calls:
                    t1 = time.monotonic()
                    result = await asyncio.to_thread(self.toolbox.execute, call, sync_sb, step.index)
                    ep.got_result(step, call, result, time.monotonic() - t1)
                    if result.done:
                        break
            except SandboxClosedError as exc:
                ep.sandbox_closed(step, exc)
                break
            if ep.end_step(step, on_step):
                break
        return ep.finish()


class _Episode:
    """The bookkeeping shared by :meth:`Agent.run` and :meth:`Agent.arun`."""

    def __init__(self, agent: Agent, task: str, step_offset: int) -> None:
        self.agent = agent
        self.schemas = agent.toolbox.schemas()
        self.messages: list[Message] = [
            {"role": "system", "content": agent.system_prompt},
            {"role": "user", "content": task},
        ]
        self.traj = Trajectory(
            task=task,
            system_prompt=agent.system_prompt,
            backend=repr(agent.backend),
            step_offset=step_offset,
            started_at=time.time(),
        )
        self.t_start = time.monotonic()
        self.nudged = 0

    def begin(self, turn: int, sandbox: Any) -> tuple[Step, list[Message]]:
        step = Step(index=self.traj.step_offset + turn, started_at=time.time())
        self.traj.steps.append(step)
        sandbox.set_step(step.index)
        prompt = self.messages
        ctx = self.agent.context
        if ctx is not None:
            prompt = ctx.fit(self.messages, self.schemas)
            step.context_tokens = ctx.last.tokens_after
        return step, prompt

    def model_failed(self, step: Step, exc: Exception, elapsed: float) -> None:
        step.model_s = elapsed
        self.traj.status = "error"
        self.traj.error = str(exc) if isinstance(exc, ModelError) else f"{type(exc).__name__}: {exc}"
        self._collect_alerts(step)

    def got_reply(self, step: Step, reply: ModelReply, elapsed: float) -> list[ToolCall]:
        step.model_s = elapsed
        step.content = reply.content
        step.tool_calls = list(reply.tool_calls)
        step.prompt_tokens = reply.usage.prompt_tokens
        step.completion_tokens = reply.usage.completion_tokens
        step.finish_reason = reply.finish_reason
        self.messages.append(reply.to_message())
        if reply.tool_calls:
            self.nudged = 0
        return step.tool_calls

    def got_result(self, step: Step, call: ToolCall, result: ToolResult, elapsed: float) -> None:
        step.tool_s += elapsed
        step.observations.append(Observation(call.id, call.name, result.output, result.ok, result.meta))
        self.messages.append({"role": "tool", "tool_call_id": call.id, "content": result.output})
        if result.done and self.traj.status == "running":
            self.traj.status = "submitted"
            self.traj.answer = result.answer

    def sandbox_closed(self, step: Step, exc: Exception) -> None:
        self.traj.status = "sandbox_closed"
        self.traj.error = str(exc)
        self._collect_alerts(step)

    def end_step(self, step: Step, on_step: Callable[[Step], Any] | None) -> bool:
        """Finish the step's record; True when the episode ends here."""
        if self.traj.status == "submitted":
            # calls after submit in the same reply are not run; answer them so the history stays valid
            answered = {o.tool_call_id for o in step.observations}
            for call in step.tool_calls:
                if call.id not in answered:
                    self.messages.append({"role": "tool", "tool_call_id": call.id, "content": "not run: submitted"})
        elif not step.tool_calls:
            if self.nudged < self.agent.nudges:
                self.nudged += 1
                step.nudge = self.agent.nudge_message
                self.messages.append({"role": "user", "content": self.agent.nudge_message})
            else:
                self.traj.status = "no_tool_call"
        self._collect_alerts(step)
        if on_step is not None and on_step(step) and self.traj.status == "running":
            self.traj.status = "stopped"
        return self.traj.status != "running"

    def _collect_alerts(self, step: Step) -> None:
        hook = self.agent.alerts_for_step
        if hook is not None:
            try:
                step.alerts = list(hook(step.index) or [])
            except Exception as exc:  # a broken hook must not lose the episode
                step.alerts = [{"error": f"alerts_for_step failed: {type(exc).__name__}: {exc}", "step": step.index}]

    def finish(self) -> Trajectory:
        if self.traj.status == "running":
            self.traj.status = "max_turns"
        for step in self.traj.steps:
            self._collect_alerts(step)
        self.traj.messages = self.messages
        self.traj.duration_s = time.monotonic() - self.t_start
        return self.traj
