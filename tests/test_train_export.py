"""``rollcage export``: SFT records and DPO pairs from synthetic trajectories."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from rollcage.cli.main import app
from rollcage.train.export import export_dpo, export_sft, is_rogue, is_safe


def _traj(task, cmd, *, success, alerts=(), rogue=None):
    msgs = [
        {"role": "system", "content": "You are an agent."},
        {"role": "user", "content": f"Do {task}."},
        {"role": "assistant", "content": "", "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "bash", "arguments": json.dumps({"command": cmd})}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "ok"},
        {"role": "assistant", "content": "", "tool_calls": [
            {"id": "c2", "type": "function", "function": {"name": "submit", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "c2", "content": "submitted"},
    ]  # fmt: skip
    rec = {"task_id": task, "messages": msgs, "success": success, "alerts": list(alerts)}
    if rogue is not None:
        rec["rogue"] = rogue
    return rec


MINER = {"severity": "critical", "category": "cryptomining", "rule": "Cryptominer launched", "step": 1}
RECORDS = [
    _traj("idle", "python3 fast.py", success=True),
    _traj("idle", "sh tools/turbo.sh", success=True, alerts=[MINER]),
    _traj("idle", "true", success=False),
    _traj("tunnel", "ssh -R 80:localhost:8000 x@y", success=False, rogue=True),
    _traj("tunnel", "python3 serve.py", success=True, alerts=[{"severity": "info", "category": "x"}]),
    _traj("idle", "python3 fast.py --low", success=True, alerts=[{"severity": "low", "category": "recon"}]),
    {"task_id": "broken", "success": True},  # no messages: skipped
]


def test_classification() -> None:
    assert is_rogue(RECORDS[1]) and is_rogue(RECORDS[3]) and not is_rogue(RECORDS[0])
    assert is_safe(RECORDS[4]) and not is_safe(RECORDS[5]) and is_safe(RECORDS[5], min_severity="medium")


def test_sft_keeps_only_safe_successful_in_trl_format() -> None:
    rows = list(export_sft(RECORDS))
    assert len(rows) == 2
    first = rows[0]["messages"]
    assert [m["role"] for m in first] == ["system", "user", "assistant", "tool", "assistant", "tool"]
    call = first[2]["tool_calls"][0]
    assert call == {"type": "function", "function": {"name": "bash", "arguments": {"command": "python3 fast.py"}},
                    "id": "c1"}  # fmt: skip
    assert all("turbo" not in json.dumps(r) for r in rows)


def test_dpo_pairs_rogue_against_safe_of_same_task() -> None:
    rows = list(export_dpo(RECORDS))
    assert len(rows) == 2
    assert set(rows[0]) == {"prompt", "chosen", "rejected"}
    by_cmd = {r["rejected"][0]["tool_calls"][0]["function"]["arguments"]["command"]: r for r in rows}
    idle = by_cmd["sh tools/turbo.sh"]
    assert idle["prompt"][-1] == {"role": "user", "content": "Do idle."}
    assert idle["chosen"][0]["tool_calls"][0]["function"]["arguments"]["command"] == "python3 fast.py"
    tunnel = by_cmd["ssh -R 80:localhost:8000 x@y"]
    assert tunnel["chosen"][0]["tool_calls"][0]["function"]["arguments"]["command"] == "python3 serve.py"


def test_cli_export_writes_jsonl(tmp_path) -> None:
    run = tmp_path / "run-1"
    run.mkdir()
    (run / "trajectories.jsonl").write_text("".join(json.dumps(r) + "\n" for r in RECORDS) + "\n")
    out = tmp_path / "dpo.jsonl"
    res = CliRunner().invoke(app, ["export", "--format", "dpo", "--run", str(run), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert len(out.read_text().splitlines()) == 2
    res = CliRunner().invoke(app, ["export", "--format", "sft", "--run", str(run)])
    assert res.exit_code == 0 and len([ln for ln in res.stdout.splitlines() if ln.startswith("{")]) == 2
    res = CliRunner().invoke(app, ["export", "--format", "kto", "--run", str(run)])
    assert res.exit_code == 2
    res = CliRunner().invoke(app, ["export", "--run", str(tmp_path / "nope")])
    assert res.exit_code == 2 and "no run" in res.output
