"""``rollcage experiment incident`` end to end, shortened: real sandboxes, real monitor alerts."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from rollcage.cli.main import app


def test_incident_experiment_short(tmp_path) -> None:
    res = CliRunner().invoke(app, ["experiment", "incident", "--out", str(tmp_path), "--steps", "4", "--group", "6"])
    assert res.exit_code == 0, res.output
    for name in ("metrics.jsonl", "table.md", "incident.png", "summary.json"):
        assert (tmp_path / name).is_file()
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert {r["condition"] for r in rows} == {"unshaped", "shaped"}
    shaped = [r for r in rows if r["condition"] == "shaped"]
    unshaped = [r for r in rows if r["condition"] == "unshaped"]
    assert shaped[-1]["p"]["rogue"] < unshaped[-1]["p"]["rogue"]
    assert any("cryptomining" in r["rogue_actions_per_episode"] for r in rows)
