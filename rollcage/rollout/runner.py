"""Run many episodes at once: ``run_rollouts(tasks, policy_factory, episodes=M, concurrency=K)``.

Episode ``i`` (0 <= i < M) plays task ``tasks[i % len(tasks)]`` with seed ``seed + i`` under the
id ``ep{i:05d}-{task}``, so a rerun with the same ``run_id`` knows which episodes it already has
(``resume=True`` skips every episode with a stored trajectory; one that was interrupted is rerun).

Each episode: ``policy_factory(task)`` gives a policy (see :mod:`rollcage.rollout.policies`); a
:class:`~rollcage.envs.TerminalEnv` starts a sandbox (from a :class:`~rollcage.SandboxPool` per
sandbox configuration, or fresh with ``pool=False``), the policy acts until the episode ends
(``submit``, a critical alert, ``max_steps``, the episode's time limit), the verifier scores it and
the reward includes the safety shaping; alerts are attributed to the step whose command started
the process that caused them. The record goes to the :class:`~rollcage.rollout.store.RunStore`.

``backend="ray"`` runs each episode as a Ray task on a local Ray instance (started with
``ray.init(num_cpus=2, include_dashboard=False)`` unless one is running); the driver writes the
store, so the API and the store are the same.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rollcage.envs.registry import PREFIX, registry
from rollcage.envs.reward import RewardConfig
from rollcage.envs.task import Task, TaskError, load_task
from rollcage.rollout.policies import SUBMIT, Decision, StepContext
from rollcage.rollout.store import RunStore, aggregate

PolicyFactory = Callable[[Task], Any]
END_STATUS = {"submit": "submitted"}  # env end_reason -> episode status (others keep their name)


# -- plans -----------------------------------------------------------------------------


@dataclass(frozen=True)
class EpisodePlan:
    index: int
    episode_id: str
    task: Task
    seed: int


def resolve_task(item: Task | str | os.PathLike[str]) -> Task:
    """A :class:`Task` from a Task, an env id (``rollcage:terminal/x``), a bundled task id or a directory."""
    if isinstance(item, Task):
        return item
    if isinstance(item, str):
        envs = registry()
        for env_id in (item, PREFIX + item):
            spec = envs.get(env_id)
            if spec is not None and spec.task is not None:
                return spec.task if isinstance(spec.task, Task) else load_task(spec.task)
    path = Path(item)
    if path.is_dir() or path.name in ("task.yaml", "task.yml"):
        return load_task(path)
    raise TaskError(f"no task or environment {str(item)!r} (give a task, an env id, a task id or a task directory)")


def plan_episodes(tasks: Sequence[Task], episodes: int, seed: int) -> list[EpisodePlan]:
    if not tasks:
        raise ValueError("run_rollouts needs at least one task")
    if episodes < 1:
        raise ValueError("episodes must be at least 1")
    picks = [tasks[i % len(tasks)] for i in range(episodes)]
    return [EpisodePlan(i, f"ep{i:05d}-{task.id}", task, seed + i) for i, task in enumerate(picks)]


def new_run_id() -> str:
    return time.strftime("run-%Y%m%d-%H%M%S-") + secrets.token_hex(2)


# -- sandboxes from pools --------------------------------------------------------------


class _Router:
    """The event sink of pooled sandboxes: events go to the episode that holds the sandbox
    (its AlertCollector), or to ``fallback`` while none does."""

    def __init__(self, fallback: Any) -> None:
        self.fallback = fallback
        self._routes: dict[str, Any] = {}
        self._lock = threading.Lock()

    def route(self, sandbox_id: str, sink: Any) -> None:
        with self._lock:
            self._routes[sandbox_id] = sink

    def unroute(self, sandbox_id: str) -> None:
        with self._lock:
            self._routes.pop(sandbox_id, None)

    def emit(self, event: Any) -> None:
        with self._lock:
            sink = self._routes.get(getattr(event, "sandbox_id", None))
        target = sink if sink is not None else self.fallback
        if target is not None:
            target.emit(event)


class _PooledSandbox:
    """A pool's sandbox as the env sees it: closing it hands it back to the pool (destroyed)."""

    def __init__(self, sandbox: Any, pool: Any, router: _Router) -> None:
        self.sandbox = sandbox
        self._pool = pool
        self._router = router
        self._released = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.sandbox, name)

    def close(self) -> None:
        if not self._released:
            self._released = True
            self._router.unroute(self.sandbox.id)
            self._pool.release(self.sandbox)


class SandboxSource:
    """Makes the env's sandboxes: from one :class:`SandboxPool` per configuration (``pool_size``
    warm each), or fresh ones when ``pool_size`` is 0."""

    def __init__(self, *, pool_size: int, gateway: Any, events: Any) -> None:
        self.pool_size = pool_size
        self.gateway = gateway
        self.events = events
        self.router = _Router(events)
        self._pools: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._closed = False

    def __call__(self, config: Any, *, run_id: str | None = None, episode_id: str | None = None, events: Any = None):
        from rollcage.sandbox import Sandbox, SandboxPool

        extra = {"gateway": self.gateway} if self.gateway is not None else {}
        if self.pool_size < 1:
            return Sandbox(config, run_id=run_id, episode_id=episode_id, events=events or self.events, **extra)
        key = config.model_dump_json()
        with self._lock:
            pool = self._pools.get(key)
            if pool is None:
                pool = self._pools[key] = SandboxPool(config, size=self.pool_size, events=self.router, **extra)
        sandbox = self._acquire(pool, run_id, episode_id)
        if events is not None:
            self.router.route(sandbox.id, events)
        return _PooledSandbox(sandbox, pool, self.router)

    def _acquire(self, pool: Any, run_id: str | None, episode_id: str | None, timeout: float = 120.0) -> Any:
        # short waits, so that closing the source (an interrupted run) frees a waiting thread at once
        from rollcage.errors import RollcageError

        deadline = time.monotonic() + timeout
        while True:
            try:
                return pool.acquire(timeout=0.25, run_id=run_id, episode_id=episode_id)
            except RollcageError:
                if self._closed or getattr(pool, "_error", None) is not None or time.monotonic() > deadline:
                    raise

    def close(self) -> None:
        self._closed = True
        with self._lock:
            pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            pool.close()


# -- one episode -----------------------------------------------------------------------


@dataclass
class EpisodeOptions:
    """Everything an episode needs besides its plan (picklable for Ray, except ``gateway``/``events``)."""

    run_id: str
    policy_factory: PolicyFactory
    reward_config: RewardConfig | None = None
    mode: str = "monitor"
    max_steps: int | None = None
    sandbox_overrides: dict[str, Any] = field(default_factory=dict)
    settle_s: float = 0.0  # wait before the verifier for late alerts (background jobs)


async def run_episode(
    plan: EpisodePlan, opts: EpisodeOptions, sandbox_factory: Any, run: Callable[..., Any]
) -> dict[str, Any]:
    """Play one episode; returns its record. ``run(fn, *args)`` runs blocking env calls
    (a thread-pool executor). Exceptions inside the episode become ``status="error"``;
    cancellation propagates (the episode then stays unrecorded)."""
    from rollcage.envs.terminal import TerminalEnv

    started, t0 = time.time(), time.monotonic()
    record: dict[str, Any] = {
        "run_id": opts.run_id, "episode_id": plan.episode_id, "task": plan.task.id, "index": plan.index,
        "seed": plan.seed, "policy": None, "status": "error", "reward": 0.0, "success": False, "score": 0.0,
        "penalty": 0.0, "steps": [], "alerts": [], "alerts_by_category": {}, "unattributed_alerts": [],
        "verifier": None, "error": None, "started": started, "finished": None,
        "durations": {"reset_s": 0.0, "policy_s": 0.0, "env_s": 0.0, "total_s": 0.0},
    }  # fmt: skip
    env = None
    try:
        policy = opts.policy_factory(plan.task)
        record["policy"] = getattr(policy, "name", type(policy).__name__)
        overrides = {"mode": opts.mode, **getattr(policy, "sandbox_overrides", {}), **opts.sandbox_overrides}
        env = TerminalEnv(
            plan.task, reward=opts.reward_config, run_id=opts.run_id, max_steps=opts.max_steps,
            sandbox_factory=sandbox_factory, sandbox_overrides=overrides,
            events=getattr(sandbox_factory, "events", None),
        )  # fmt: skip
        t = time.monotonic()
        obs, info = await run(env.reset, plan.seed, {"episode_id": plan.episode_id, "run_id": opts.run_id})
        record["durations"]["reset_s"] = round(time.monotonic() - t, 4)
        policy.reset(obs, info)
        total = 0.0
        final: dict[str, Any] = {}
        gave_up = None
        while True:
            index = env.steps + 1
            t = time.monotonic()
            decision = await policy.act(obs, StepContext(env, index, plan.episode_id))
            if not isinstance(decision, Decision):
                decision = Decision(decision)
            policy_s = time.monotonic() - t
            action = decision.action
            if action is None:
                gave_up = decision.meta.get("gave_up") or "policy_stopped"
                action = SUBMIT
            if opts.settle_s and _is_submit(action):
                await asyncio.sleep(opts.settle_s)
            t = time.monotonic()
            step_started = time.time()
            obs, reward, terminated, truncated, info = await run(env.step, action)
            env_s = time.monotonic() - t
            total += reward
            record["durations"]["policy_s"] += policy_s
            record["durations"]["env_s"] += env_s
            record["steps"].append({
                "index": index, "message": decision.message, "action": info.get("action", _jsonable(action)),
                "action_error": info.get("action_error"), "observation": obs, "exit_code": info.get("exit_code"),
                "reward": reward, "terminated": terminated, "truncated": truncated, "started": step_started,
                "policy_s": round(policy_s, 4), "env_s": round(env_s, 4),
                "tokens": {"prompt": decision.prompt_tokens, "completion": decision.completion_tokens},
                "alerts_seen": len(info.get("alerts") or []), "alerts": [],
            })  # fmt: skip
            if terminated or truncated:
                final = info
                break
        alerts = list(final.get("episode_alerts") or [])
        by_step: dict[int, list[dict[str, Any]]] = {}
        for alert in alerts:
            if isinstance(alert.get("step"), int):
                by_step.setdefault(alert["step"], []).append(alert)
        known = {s["index"] for s in record["steps"]}
        for step in record["steps"]:
            step["alerts"] = by_step.get(step["index"], [])
        verifier = final.get("verifier") or {}
        end_reason = final.get("end_reason", "unknown")
        record.update(
            status=gave_up or END_STATUS.get(end_reason, end_reason), end_reason=end_reason, reward=total,
            success=bool(final.get("success")), score=final.get("score", 0.0), penalty=final.get("penalty", 0.0),
            alerts=alerts, alerts_by_category=dict(Counter(str(a.get("category")) for a in alerts)),
            unattributed_alerts=[a for a in alerts if a.get("step") not in known],
            verifier=verifier,
        )  # fmt: skip
    except (asyncio.CancelledError, KeyboardInterrupt):
        raise
    except Exception as exc:
        record["status"] = "error"
        record["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        if env is not None:
            with contextlib.suppress(Exception):
                await asyncio.shield(run(env.close))
    record["finished"] = time.time()
    record["durations"]["total_s"] = round(time.monotonic() - t0, 4)
    record["duration_s"] = record["durations"]["total_s"]
    record["durations"] = {k: round(v, 4) for k, v in record["durations"].items()}
    return record


def _is_submit(action: Any) -> bool:
    return isinstance(action, dict) and (action.get("name") or action.get("function", {}).get("name")) == "submit"


def _jsonable(action: Any) -> Any:
    return action if isinstance(action, str | dict) else repr(action)


def _episode_in_worker(plan: EpisodePlan, opts: EpisodeOptions) -> dict[str, Any]:
    """A whole episode in one process (a Ray worker): fresh sandbox, blocking calls inline."""

    async def inline(fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.to_thread(fn, *args)

    from rollcage.events.defaults import default_sink

    source = SandboxSource(pool_size=0, gateway=None, events=default_sink())
    return asyncio.run(run_episode(plan, opts, source, inline))


# -- the summary -----------------------------------------------------------------------


@dataclass
class RolloutSummary:
    """What a run produced. Whole-run figures (``episodes``, ``success_rate``, ``mean_reward``,
    ``alerts_by_category``, ...) count every finished episode in the store, resumed ones included;
    ``executed``, ``wall_s``, ``episodes_per_s`` and ``steps_per_s`` are this invocation's."""

    run_id: str
    store_dir: str
    episodes: int
    executed: int
    skipped: int
    succeeded: int
    success_rate: float
    mean_reward: float
    steps: int
    alerts: int
    alerts_by_category: dict[str, int]
    statuses: dict[str, int]
    per_task: dict[str, dict[str, Any]]
    wall_s: float
    executed_steps: int
    episodes_per_s: float
    steps_per_s: float
    backend: str = "local"
    errors: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}

    def table(self) -> Any:
        from rich.table import Table

        table = Table(title=f"rollout {self.run_id} ({self.backend})", show_header=True, header_style="bold")
        table.add_column("metric")
        table.add_column("value", justify="right")
        rows = [
            ("episodes (run)", str(self.episodes)),
            ("executed / skipped", f"{self.executed} / {self.skipped}"),
            ("success rate", f"{self.success_rate:.1%} ({self.succeeded}/{self.episodes})"),
            ("mean reward", f"{self.mean_reward:.3f}"),
            ("steps (run)", str(self.steps)),
            ("statuses", ", ".join(f"{k}={v}" for k, v in self.statuses.items()) or "-"),
            ("alerts", str(self.alerts)),
        ]
        rows += [(f"  {cat}", str(n)) for cat, n in self.alerts_by_category.items()]
        rows += [
            ("wall time", f"{self.wall_s:.2f} s"),
            ("episodes/s", f"{self.episodes_per_s:.2f}"),
            ("steps/s", f"{self.steps_per_s:.2f}"),
        ]
        for name, value in rows:
            table.add_row(name, value)
        return table

    def print(self, console: Any = None) -> None:
        from rich.console import Console

        (console or Console(stderr=True)).print(self.table())


# -- the run ---------------------------------------------------------------------------


async def arun_rollouts(
    tasks_or_env_ids: Sequence[Task | str | os.PathLike[str]] | Task | str,
    policy_factory: PolicyFactory,
    episodes: int = 1,
    concurrency: int = 4,
    store_dir: str | os.PathLike[str] = "rollouts",
    run_id: str | None = None,
    resume: bool = True,
    progress: bool = True,
    reward_config: RewardConfig | None = None,
    mode: str = "monitor",
    seed: int = 0,
    *,
    backend: str = "local",
    max_steps: int | None = None,
    sandbox_overrides: dict[str, Any] | None = None,
    gateway: Any = None,
    events: Any = None,
    pool: bool = True,
    settle_s: float = 0.0,
    on_episode: Callable[[dict[str, Any]], Any] | None = None,
    ray_address: str | None = None,
    ray_cpus_per_episode: float = 0.25,
) -> RolloutSummary:
    """The asyncio form of :func:`run_rollouts` (same arguments)."""
    if concurrency < 1:
        raise ValueError("concurrency must be at least 1")
    if backend not in ("local", "ray"):
        raise ValueError("backend must be 'local' or 'ray'")
    items = [tasks_or_env_ids] if isinstance(tasks_or_env_ids, Task | str) else list(tasks_or_env_ids)
    tasks = [resolve_task(t) for t in items]
    plans = plan_episodes(tasks, episodes, seed)
    run_id = run_id or new_run_id()
    store = RunStore(Path(store_dir) / run_id, run_id)
    try:
        store.write_meta({
            "run_id": run_id, "tasks": [t.id for t in tasks], "episodes": episodes, "concurrency": concurrency,
            "seed": seed, "mode": mode, "backend": backend, "max_steps": max_steps, "created": time.time(),
            "policy_factory": getattr(policy_factory, "__qualname__", repr(policy_factory)),
            "reward_config": (reward_config or RewardConfig()).model_dump(),
        })  # fmt: skip
        done = store.finished_ids() if resume else set()
        todo = [p for p in plans if p.episode_id not in done]
        opts = EpisodeOptions(run_id, policy_factory, reward_config, mode, max_steps, dict(sandbox_overrides or {}),
                              settle_s)  # fmt: skip
        t0 = time.monotonic()
        records = await _execute(todo, opts, store, concurrency, progress, backend, gateway, events, pool, on_episode,
                                 ray_address, ray_cpus_per_episode)  # fmt: skip
        wall = time.monotonic() - t0
        rows = [r for r in store.episodes() if r["status"] != "running"]
        agg = aggregate(rows)
        executed_steps = sum(len(r["steps"]) for r in records)
        summary = RolloutSummary(
            run_id=run_id, store_dir=str(store.path), episodes=agg["episodes"], executed=len(records),
            skipped=len(plans) - len(todo), succeeded=agg["succeeded"], success_rate=agg["success_rate"],
            mean_reward=agg["mean_reward"], steps=agg["steps"], alerts=agg["alerts"],
            alerts_by_category=agg["alerts_by_category"], statuses=agg["statuses"], per_task=agg["per_task"],
            wall_s=round(wall, 4), executed_steps=executed_steps,
            episodes_per_s=round(len(records) / wall, 4) if wall > 0 and records else 0.0,
            steps_per_s=round(executed_steps / wall, 4) if wall > 0 and records else 0.0,
            backend=backend, errors=[f"{r['episode_id']}: {r['error']}" for r in records if r.get("error")],
        )  # fmt: skip
    finally:
        store.close()
    if progress:
        summary.print()
    return summary


async def _execute(
    todo: list[EpisodePlan], opts: EpisodeOptions, store: RunStore, concurrency: int, progress: bool,
    backend: str, gateway: Any, events: Any, pool: bool, on_episode: Any, ray_address: str | None,
    ray_cpus: float,
) -> list[dict[str, Any]]:  # fmt: skip
    if not todo:
        return []
    if events is None:
        from rollcage.events.defaults import default_sink

        events = default_sink()
    semaphore = asyncio.Semaphore(concurrency)
    records: list[dict[str, Any]] = []
    executor = concurrent.futures.ThreadPoolExecutor(max_workers=2 * concurrency + 4, thread_name_prefix="rollout")
    loop = asyncio.get_running_loop()

    async def run(fn: Callable[..., Any], *args: Any) -> Any:
        return await loop.run_in_executor(executor, fn, *args)

    source = SandboxSource(pool_size=min(concurrency, len(todo)) if pool else 0, gateway=gateway, events=events)
    ray_started = False
    remote = None
    if backend == "ray":
        remote, ray_started = _ray_remote(ray_address, ray_cpus)

    bar = _Progress(len(todo), store.run_id, enabled=progress)

    async def one(plan: EpisodePlan) -> None:
        async with semaphore:
            await run(store.mark_running, plan.episode_id, plan.task.id)
            if remote is not None:
                record = await remote.remote(plan, opts)
            else:
                record = await run_episode(plan, opts, source, run)
            await run(store.append, record)
            records.append(record)
            bar.advance(record)
            if on_episode is not None:
                on_episode(record)

    tasks = [asyncio.ensure_future(one(p)) for p in todo]
    try:
        with bar:
            for fut in asyncio.as_completed(tasks):
                await fut
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await loop.run_in_executor(None, source.close)
        executor.shutdown(wait=True)
        if ray_started:
            import ray

            ray.shutdown()
    return records


def _ray_remote(address: str | None, cpus: float) -> tuple[Any, bool]:
    try:
        import ray
    except ImportError as exc:
        raise RuntimeError("backend='ray' needs ray: pip install 'ray==2.60.0'") from exc
    started = False
    if not ray.is_initialized():
        if address:
            ray.init(address=address, log_to_driver=False)
        else:
            ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        started = True
    return ray.remote(num_cpus=cpus, max_retries=0)(_episode_in_worker), started


class _Progress:
    """A rich progress bar (stderr) counting episodes, successes and alerts."""

    def __init__(self, total: int, run_id: str, enabled: bool) -> None:
        self.enabled = enabled
        self.ok = self.alerts = 0
        if enabled:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self._progress = Progress(
                TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                TextColumn("{task.fields[info]}"), console=Console(stderr=True), transient=False,
            )  # fmt: skip
            self._task = self._progress.add_task(run_id, total=total, info="")

    def advance(self, record: dict[str, Any]) -> None:
        self.ok += bool(record.get("success"))
        self.alerts += len(record.get("alerts") or [])
        if self.enabled:
            self._progress.update(self._task, advance=1, info=f"ok={self.ok} alerts={self.alerts}")

    def __enter__(self) -> _Progress:
        if self.enabled:
            self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.enabled:
            self._progress.stop()


def run_rollouts(
    tasks_or_env_ids: Sequence[Task | str | os.PathLike[str]] | Task | str,
    policy_factory: PolicyFactory,
    episodes: int = 1,
    concurrency: int = 4,
    store_dir: str | os.PathLike[str] = "rollouts",
    run_id: str | None = None,
    resume: bool = True,
    progress: bool = True,
    reward_config: RewardConfig | None = None,
    mode: str = "monitor",
    seed: int = 0,
    **kwargs: Any,
) -> RolloutSummary:
    """Run ``episodes`` episodes over ``tasks_or_env_ids`` (round robin), ``concurrency`` at a time,
    with policies from ``policy_factory(task)``; store them under ``store_dir/run_id``.

    Keyword-only extras: ``backend`` ("local" | "ray"), ``max_steps`` (override the tasks'),
    ``sandbox_overrides`` (merged into every sandbox's config), ``gateway`` (a
    :class:`~rollcage.gateway.client.Gateway`; default the shared one), ``events`` (event sink;
    default the SQLite event store), ``pool`` (warm sandbox pools, default True), ``settle_s``
    (wait before submitting so late alerts land), ``on_episode(record)`` (called after each stored
    episode; an exception it raises stops the run, in-flight episodes stay unrecorded),
    ``ray_address``, ``ray_cpus_per_episode``.
    """
    coro = arun_rollouts(tasks_or_env_ids, policy_factory, episodes, concurrency, store_dir, run_id, resume,
                         progress, reward_config, mode, seed, **kwargs)  # fmt: skip
    return asyncio.run(coro)


__all__ = [
    "EpisodeOptions",
    "EpisodePlan",
    "RolloutSummary",
    "SandboxSource",
    "arun_rollouts",
    "new_run_id",
    "plan_episodes",
    "resolve_task",
    "run_episode",
    "run_rollouts",
]
