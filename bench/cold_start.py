"""Cold start: wall time from calling ``Sandbox(...)`` to holding the output of a first
``sb.run("echo hi")``. This is what an episode pays without a pool (bwrap, namespaces,
cgroup, agent and default bash session all start inside the timed window).
Closing the sandbox happens after the timer stops and is not counted. A couple of
warm-up iterations (not reported) absorb one-time costs such as lazy imports.
"""

from __future__ import annotations

import argparse
import time

from _common import CONFIG, NullSink, config_summary, report, summarize_ms

from rollcage import Sandbox

TARGET_P50_MS = 50.0


def cold_start_s(sink: NullSink) -> float:
    """Seconds from ``Sandbox(...)`` to the first command's output; closes afterwards."""
    sandbox: Sandbox | None = None
    try:
        start = time.perf_counter()
        sandbox = Sandbox(CONFIG, events=sink)
        result = sandbox.run("echo hi")
        elapsed = time.perf_counter() - start
        if result.output != "hi\n" or result.exit_code != 0:
            raise RuntimeError(f"unexpected result: {result}")
        return elapsed
    finally:
        if sandbox is not None:
            sandbox.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=2)
    args = parser.parse_args()
    sink = NullSink()
    for _ in range(args.warmup):
        cold_start_s(sink)
    samples = [cold_start_s(sink) for _ in range(args.n)]
    stats = summarize_ms(samples)
    report(
        "cold_start",
        {
            "config": config_summary(),
            "n": args.n,
            "warmup": args.warmup,
            "ms": stats,
            "target": f"p50 <= {TARGET_P50_MS:g} ms",
            "meets_target": stats["p50"] <= TARGET_P50_MS,
        },
    )


if __name__ == "__main__":
    main()
