"""Rollout throughput: episodes/s and steps/s of scripted episodes (each task's reference
solution: write it, run it, submit, then the verifier) run by ``run_rollouts`` over warm sandbox
pools. Defaults: M=20 episodes at concurrency K=4 over three small tasks; ``--concurrency 1 4 8``
measures several levels. Events go to a null sink so the SQLite event store does not distort
timings (the trajectory store is written as in real runs, fsync per episode).
"""

from __future__ import annotations

import argparse
import tempfile
import time

from _common import NullSink, report

from rollcage.rollout import reference_policy, run_rollouts

TASKS = ["reverse-lines", "sort-unique", "create-hello"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[4])
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
            })  # fmt: skip
    report("rollout", {"tasks": TASKS, "pool": not args.no_pool, "results": results})


if __name__ == "__main__":
    main()
