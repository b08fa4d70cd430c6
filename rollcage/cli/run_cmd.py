"""``rollcage run``: a real model on real tasks, through the whole stack, into the run store."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from rollcage.errors import RollcageError


def _fail(message: str, code: int = 2) -> typer.Exit:
    typer.echo(f"rollcage: {message}", err=True)
    return typer.Exit(code)


def run(
    model_url: Annotated[str, typer.Option("--model-url", help="OpenAI-compatible base URL, e.g. http://host:8000/v1")],
    model: Annotated[str, typer.Option("--model", help="model name the server knows")],
    tasks: Annotated[Path, typer.Option("--tasks", help="a task directory, or a directory of task directories")],
    concurrency: Annotated[int, typer.Option(min=1, max=256, help="episodes at once")] = 4,
    episodes: Annotated[int | None, typer.Option(min=1, help="episodes in all (default: one per task)")] = None,
    out: Annotated[Path, typer.Option(help="run store directory")] = Path("rollcage-runs"),
    run_id: Annotated[str | None, typer.Option("--run-id", help="resume or name the run")] = None,
    mode: Annotated[str, typer.Option(help="monitor or enforce")] = "enforce",
    api_key: Annotated[str | None, typer.Option(help="API key (default: $OPENAI_API_KEY or none)")] = None,
    temperature: Annotated[float, typer.Option(help="sampling temperature")] = 0.0,
    max_turns: Annotated[int | None, typer.Option(help="cap on steps per episode (default: the task's)")] = None,
    context_budget: Annotated[int | None, typer.Option(help="token budget of the conversation")] = None,
) -> None:
    """Run a model on tasks in sandboxes; every step, alert and reward goes to the run store."""
    from rollcage.agent import OpenAIBackend
    from rollcage.envs.task import load_task, load_tasks
    from rollcage.rollout import run_rollouts
    from rollcage.rollout.policies import AgentPolicy
    from rollcage.sandbox.host import require_root

    if mode not in ("monitor", "enforce"):
        raise _fail("--mode must be monitor or enforce")
    try:
        require_root()
        found = [load_task(tasks)] if (tasks / "task.yaml").is_file() else load_tasks(tasks)
        if not found:
            raise _fail(f"no tasks under {tasks}")
        key = api_key or os.environ.get("OPENAI_API_KEY") or "none"

        def policy(task: object) -> AgentPolicy:
            backend = OpenAIBackend(model_url, api_key=key, model=model, temperature=temperature)
            return AgentPolicy(backend, context_budget=context_budget)

        summary = run_rollouts(found, policy, episodes=episodes or len(found), concurrency=concurrency,
                               store_dir=out, run_id=run_id, mode=mode, max_steps=max_turns)  # fmt: skip
    except RollcageError as exc:
        raise _fail(str(exc)) from None
    summary.print()
    typer.echo(f"run {summary.run_id} stored in {Path(summary.store_dir) / summary.run_id}")
    if summary.errors:
        raise typer.Exit(1)
