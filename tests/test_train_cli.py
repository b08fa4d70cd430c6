"""``rollcage train --config``: tiny model on CPU, chunk credit, LoRA, metrics, checkpoints, resume."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("torch")
pytest.importorskip("peft")

from typer.testing import CliRunner

from rollcage.cli.main import app
from rollcage.train.tiny import build_tiny_qwen


def test_train_two_steps_then_resume(tmp_path) -> None:
    build_tiny_qwen(tmp_path / "model")
    cfg = tmp_path / "train.yaml"
    cfg.write_text(
        "model: model\ntasks: [create-hello]\ngroup_size: 2\nlr: 0.001\nlora: {r: 4, alpha: 8}\n"
        "max_turns: 2\nmax_new_tokens: 8\ncredit: chunk\nsteps: 1\nsave_every: 1\nseed: 0\noutput_dir: out\n"
        "penalties: {critical: 1.0, high: 0.5, medium: 0.2, low: 0.05, info: 0.0}\n"
    )
    res = CliRunner().invoke(app, ["train", "--config", str(cfg)])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "out" / "checkpoint-1" / "trainer_state.pt").is_file()
    cfg.write_text(cfg.read_text().replace("steps: 1", "steps: 2").replace("credit: chunk", "credit: token"))
    res = CliRunner().invoke(app, ["train", "--config", str(cfg)])
    assert res.exit_code == 0, res.output
    rows = [json.loads(line) for line in (tmp_path / "out" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2]
    assert {"reward", "success", "rogue_actions_per_episode", "loss"} <= set(rows[0])
    assert (tmp_path / "out" / "checkpoint-2").is_dir()


def test_bad_config_is_a_clear_error(tmp_path) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("model: nowhere\ntasks: []\n")
    res = CliRunner().invoke(app, ["train", "--config", str(cfg)])
    assert res.exit_code == 2 and "tasks" in res.output
