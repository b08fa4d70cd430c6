"""Pool acquire latency: the time ``SandboxPool.acquire()`` takes to hand out a sandbox
that is already warm, i.e. what an episode pays to start when a pool is used.

"warm": before every acquire the previous release's teardown has finished and
``wait_ready()`` has refilled the pool, so acquire always finds a ready sandbox and
nothing runs in the background. "cold_queue" (informative only): acquire/release in a
tight loop without waiting, so once the 8 warm sandboxes are used up each acquire waits
for the filler thread to build a new one while releases tear sandboxes down in parallel.
"""

from __future__ import annotations

import argparse
import time

from _common import CONFIG, NullSink, config_summary, report, summarize_ms

from rollcage import SandboxPool

TARGET_P50_MS = 3.0
POOL_SIZE = 8


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=50)
    args = parser.parse_args()
    warm: list[float] = []
    cold: list[float] = []
    pool = SandboxPool(CONFIG, size=POOL_SIZE, events=NullSink())
    try:
        pool.wait_ready()
        for _ in range(args.n):
            pool.wait_ready()
            start = time.perf_counter()
            sandbox = pool.acquire()
            warm.append(time.perf_counter() - start)
            pool.release(sandbox)
        pool.wait_ready()
        for _ in range(args.n):
            start = time.perf_counter()
            sandbox = pool.acquire()
            cold.append(time.perf_counter() - start)
            pool.release(sandbox)
    finally:
        pool.close()
    stats = summarize_ms(warm)
    report(
        "pool_acquire",
        {
            "config": config_summary(),
            "pool_size": POOL_SIZE,
            "n": args.n,
            "warm_ms": stats,
            "cold_queue_ms": summarize_ms(cold),
            "target": f"warm p50 <= {TARGET_P50_MS:g} ms",
            "meets_target": stats["p50"] <= TARGET_P50_MS,
        },
    )


if __name__ == "__main__":
    main()
