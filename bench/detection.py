"""Detection quality and speed of the monitor, on the labelled cases in bench/detection_cases/.

- recall per category: a case counts as caught when any layer alerts. The static layer
  (bash AST analysis + rules, as ``rollcage analyze``) judges every case; cases it misses
  are then run for real in a monitored sandbox (exec sensor, gateway with the simulated
  internet, resources), so the exec, wire and resource layers get their chance.
- false positives: benign cases from the repo and every line of ../shared/corpora/
  benign-nl2bash.txt, judged statically (a false "block" would stop a real agent).
- speed: static analysis + rules, commands per second over the corpus.
- enforcement: from a miner's exec to its kill (a user rule marks a renamed binary's hash),
  and bytes a stratum client delivers to the simulated pool when policy even allows the pool.
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import os
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml
from _common import report

from rollcage import Sandbox, SandboxConfig
from rollcage.cli.monitor_cmd import verdict_for
from rollcage.gateway.client import Gateway
from rollcage.net.netns import create_netns, remove_netns
from rollcage.rules import RuleEngine, RuleSet
from rollcage.testing import SimulatedInternet

CASES = Path(__file__).parent / "detection_cases"
CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "corpora" / "benign-nl2bash.txt"
MUST_BE_COMPLETE = ("cryptomining", "tunnel", "reverse_shell", "network_probe")


class Collector:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def emit(self, event: Any) -> None:
        self.events.append(event.to_dict())


def load_cases(pattern: str) -> list[dict[str, Any]]:
    cases = []
    for path in sorted(CASES.glob(pattern)):
        cases.extend(yaml.safe_load(path.read_text()))
    return cases


def run_dynamic(case: dict[str, Any], gateway: Gateway) -> list[dict[str, Any]]:
    """Run one attack case in a monitored, networked sandbox; return its alerts."""
    sink = Collector()
    config = SandboxConfig(mode="monitor", network=[], memory="256m", pids=128, timeout=8)
    with Sandbox(config, gateway=gateway, events=sink) as sb:
        for path, content in (case.get("files") or {}).items():
            target = path if path.startswith("/") else f"/work/{path}"
            if target.startswith(("/work/", "/tmp/")):
                sb.write_file(target, content, mode=0o755)
        sb.run(case["command"], timeout=8, step=1)
        time.sleep(1.5)  # background processes, late flows, a resource sample or two
    return [e for e in sink.events if e["type"] == "alert"]


def measure_kill_latency(repeats: int) -> dict[str, Any]:
    """exec of a renamed 'miner' (hash listed by a user rule) to SIGKILL, from the events' clocks."""
    digest = hashlib.sha256(Path("/bin/sleep").read_bytes()).hexdigest()
    with tempfile.TemporaryDirectory() as tmp:
        rules = Path(tmp) / "miners.yaml"
        rules.write_text(f"- list: miner_sha256\n  items: [{digest}]\n  append: true\n")
        samples = []
        for _ in range(repeats):
            sink = Collector()
            with Sandbox(SandboxConfig(mode="enforce", rules=(rules,)), events=sink) as sb:
                sb.run("cp /bin/sleep /tmp/kworker")
                sent = time.time()
                sb.run("(/tmp/kworker 30 &)")
                deadline = time.monotonic() + 5
                while time.monotonic() < deadline and not any(e["type"] == "alert" for e in sink.events):
                    time.sleep(0.01)
            alert = next((e for e in sink.events if e["type"] == "alert"), None)
            if alert is None or alert["response"].get("taken") != "kill":
                samples.append(None)
                continue
            samples.append((_ts(alert["time"]) - sent, _ts(alert["time"]) - _ts(alert["evidence"][0]["time"])))
    ok = sorted(s for s in samples if s is not None)
    return {
        "repeats": repeats,
        "killed": len(ok),
        "command_sent_to_kill_ms_p50": round(ok[len(ok) // 2][0] * 1000, 2) if ok else None,
        "command_sent_to_kill_ms_max": round(ok[-1][0] * 1000, 2) if ok else None,
        "exec_event_to_kill_ms_max": round(max(s[1] for s in ok) * 1000, 2) if ok else None,
        "target_ms": 500,
        "meets_target": bool(ok) and len(ok) == repeats and ok[-1][0] <= 0.5,
    }


def measure_pool_bytes(internet: SimulatedInternet, gateway: Gateway, mode: str) -> dict[str, Any]:
    """A stratum client in a sandbox whose policy allows the pool: how much reaches the pool?

    In ``enforce`` mode static analysis already refuses the script; in ``monitor`` mode it
    runs, and only the gateway stands between it and the pool."""
    before_conn, before_msgs = internet.pool.connections, len(internet.pool.messages)
    script = (
        "import socket\nfor _ in range(5):\n  try:\n"
        "    s=socket.create_connection(('203.0.113.10',3333),timeout=2)\n"
        '    s.sendall(b\'{"id":1,"method":"mining.subscribe","params":["cpuminer/2.5"]}\\n\'); s.recv(64)\n'
        "  except OSError: pass\n"
    )
    sink = Collector()
    config = SandboxConfig(mode=mode, network=["203.0.113.10:3333"])
    with Sandbox(config, gateway=gateway, events=sink) as sb:
        sb.write_file("/work/m.py", script)
        sb.run("python3 /work/m.py", timeout=30)
        time.sleep(0.5)
    flows = [e for e in sink.events if e["type"] == "flow" and e["dst_port"] == 3333]
    return {
        "mode": mode,
        "attempts": len(flows),
        "denied": sum(1 for f in flows if f["decision"] == "deny"),
        "pool_connections": internet.pool.connections - before_conn,
        "pool_messages": len(internet.pool.messages) - before_msgs,
        "bytes_delivered": sum(f.get("bytes_out", 0) for f in flows if f["decision"] == "allow"),
    }


def _ts(text: str) -> float:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").timestamp()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-dynamic", action="store_true", help="static layer only")
    parser.add_argument("--kill-repeats", type=int, default=5)
    parser.add_argument("--show-misses", action="store_true")
    args = parser.parse_args()

    engine = RuleEngine(RuleSet.load(), mode="enforce")
    attacks = load_cases("attacks_*.yaml")
    static_caught: dict[str, bool] = {}
    for case in attacks:
        static_caught[case["id"]] = verdict_for(case["command"], engine, case.get("files"))["verdict"] != "allow"

    benign = load_cases("benign.yaml")
    corpus = [line for line in CORPUS.read_text(errors="replace").splitlines() if line.strip()]
    started = time.perf_counter()
    corpus_verdicts = [verdict_for(line, engine)["verdict"] for line in corpus]
    rate = len(corpus) / (time.perf_counter() - started)
    benign_verdicts = [verdict_for(c["command"], engine, c.get("files"))["verdict"] for c in benign]

    dynamic_caught: dict[str, bool] = {}
    kill = pool = None
    if not args.no_dynamic:
        outer = f"rcbench-offline-{os.getpid()}"
        create_netns(outer)
        try:
            with SimulatedInternet() as internet, Gateway(internet.connector_spec(), outer_netns=outer) as gw:
                for case in attacks:
                    if not static_caught[case["id"]]:
                        dynamic_caught[case["id"]] = bool(run_dynamic(case, gw))
                pool = [measure_pool_bytes(internet, gw, mode) for mode in ("enforce", "monitor")]
            kill = measure_kill_latency(args.kill_repeats)
        finally:
            remove_netns(outer)

    per_category: dict[str, dict[str, Any]] = collections.defaultdict(lambda: {"cases": 0, "caught": 0})
    misses = []
    for case in attacks:
        row = per_category[case["category"]]
        row["cases"] += 1
        if static_caught[case["id"]] or dynamic_caught.get(case["id"]):
            row["caught"] += 1
        else:
            misses.append({"id": case["id"], "category": case["category"], "layers": case.get("layers")})
    for row in per_category.values():
        row["recall"] = round(row["caught"] / row["cases"], 4)
    total = sum(r["cases"] for r in per_category.values())
    caught = sum(r["caught"] for r in per_category.values())
    corpus_fp = sum(1 for v in corpus_verdicts if v != "allow")
    benign_fp = sum(1 for v in benign_verdicts if v != "allow")
    result = {
        "attack_cases": total,
        "recall_overall": round(caught / total, 4),
        "recall_by_category": dict(sorted(per_category.items())),
        "static_only_recall": round(sum(static_caught.values()) / total, 4),
        "dynamic_runs": len(dynamic_caught),
        "dynamic_caught": sum(dynamic_caught.values()),
        "targets": {
            "complete_categories": {c: per_category[c]["recall"] == 1.0 for c in MUST_BE_COMPLETE},
            "overall_at_least_0.95": caught / total >= 0.95,
            "fp_at_most_0.01": (corpus_fp + benign_fp) / (len(corpus) + len(benign)) <= 0.01,
            "static_at_least_5000_per_s": rate >= 5000,
        },
        "false_positives": {
            "benign_cases": len(benign),
            "benign_flagged": benign_fp,
            "corpus_lines": len(corpus),
            "corpus_flagged": corpus_fp,
            "corpus_blocked": sum(1 for v in corpus_verdicts if v == "block"),
            "rate": round((corpus_fp + benign_fp) / (len(corpus) + len(benign)), 5),
        },
        "static_commands_per_s": round(rate, 1),
        "kill": kill,
        "pool": pool,
    }
    if args.show_misses:
        result["misses"] = misses
    report("detection", result)


if __name__ == "__main__":
    sys.exit(main())
