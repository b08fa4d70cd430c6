"""Rollout throughput: episodes/s and steps/s of scripted episodes (each task's reference
solution: write it, run it, submit, then the verifier) run by ``run_rollouts`` over warm sandbox
pools. Defaults: M=64 episodes at concurrency K = 1, 8 and 32 over three small tasks (goal: at least
50 steps/s at K=32 on 2 cores). ``where_time_goes`` sums, over the episodes of each level, the time
spent resetting (sandbox from the pool, workspace files, task setup), in the policy, in environment
steps (tool calls in the sandbox) and in the verifier. Events go to a null sink so the SQLite
event store does not distort timings (the trajectory store is written as in real runs, fsync per
episode).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from _common import NullSink, report

from rollcage.rollout import RunStore, reference_policy, run_rollouts

TASKS = ["reverse-lines", "sort-unique", "create-hello"]


def where_time_goes(run_dir: Path) -> dict[str, float]:
    """Seconds summed over episodes (they overlap under concurrency), by phase."""
    totals = {"reset_s": 0.0, "policy_s": 0.0, "env_s": 0.0, "verifier_s": 0.0, "episode_s": 0.0}
    with RunStore.open(run_dir) as store:
        for record in store.trajectories():
            durations = record.get("durations") or {}
            verifier = (record.get("verifier") or {}).get("duration_s") or 0.0
            totals["reset_s"] += durations.get("reset_s", 0.0)
            totals["policy_s"] += durations.get("policy_s", 0.0)
            totals["env_s"] += durations.get("env_s", 0.0) - verifier
            totals["verifier_s"] += verifier
            totals["episode_s"] += durations.get("total_s", 0.0)
    return {k: round(v, 3) for k, v in totals.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--episodes", type=int, default=64)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--no-pool", action="store_true", help="start a fresh sandbox per episode")
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory(prefix="rollcage-bench-rollout-") as store_dir:
        for k in args.concurrency:
            start = time.perf_counter()
            s = run_rollouts(TASKS, reference_policy, episodes=args.episodes, concurrency=k, store_dir=store_dir,
                             run_id=f"k{k}", progress=False, events=NullSink(), pool=not args.no_pool)  # fmt: skip
            total = time.perf_counter() - start
            results.append({
                "concurrency": k, "episodes": s.executed, "steps": s.executed_steps, "succeeded": s.succeeded,
                "wall_s": s.wall_s, "total_s_incl_pool_teardown": round(total, 3),
                "episodes_per_s": s.episodes_per_s, "steps_per_s": s.steps_per_s, "errors": s.errors,
                "where_time_goes": where_time_goes(Path(store_dir) / f"k{k}"),
            })  # fmt: skip
    report("rollout", {"tasks": TASKS, "pool": not args.no_pool, "results": results})


if __name__ == "__main__":
    main()
