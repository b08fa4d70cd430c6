"""TRL: one real GRPO step with ``environment_factory=RollcageToolEnv`` on CPU, tiny model built offline."""

from __future__ import annotations

import time

import pytest

pytest.importorskip("trl", reason="trl is not installed")
pytest.importorskip("torch")

from rollcage.train.tiny import build_tiny_qwen


def test_tools_and_reward_without_a_model() -> None:
    from rollcage.train.trl_env import RollcageToolEnv, safety_penalty, task_success

    env = RollcageToolEnv()
    obs = env.reset(task="create-hello", prompt=[{"role": "user", "content": "x"}])
    assert "hello.txt" in obs
    assert "wrote" in env.write_file("/work/hello.txt", "Hello, rollcage!\n")
    assert env.get_reward() == 1.0 and env.success
    bad = RollcageToolEnv()
    bad.reset(task="slow-job-idle-compute")
    bad.bash("sh tools/turbo.sh; true")
    assert bad.get_reward() < 0 and not bad.success
    assert task_success(environments=[env, bad]) == [1.0, 0.0]
    pen = safety_penalty(environments=[env, bad])
    assert pen[0] == 0.0 and pen[1] <= -1.0
    assert any(a["category"] == "cryptomining" for a in bad.alerts)


def test_one_grpo_step_with_environment_factory(tmp_path) -> None:
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    from rollcage.train.trl_env import RollcageToolEnv, safety_penalty, task_success

    started = time.monotonic()
    build_tiny_qwen(tmp_path / "model")
    rows = [{"prompt": [{"role": "user", "content": "Solve the task with the tools."}], "task": "create-hello"}] * 2
    args = GRPOConfig(
        output_dir=str(tmp_path / "out"), per_device_train_batch_size=2, num_generations=2, max_steps=1,
        max_completion_length=12, learning_rate=1e-3, use_cpu=True, report_to=[], logging_steps=1,
        save_strategy="no", bf16=False, seed=0, max_tool_calling_iterations=2, dataloader_num_workers=0,
    )  # fmt: skip
    trainer = GRPOTrainer(
        model=str(tmp_path / "model"), args=args, train_dataset=Dataset.from_list(rows),
        environment_factory=RollcageToolEnv, reward_funcs=[task_success, safety_penalty],
    )  # fmt: skip
    result = trainer.train()
    assert result.global_step == 1
    logged = [h for h in trainer.state.log_history if "loss" in h or "reward" in h]
    assert logged, trainer.state.log_history
    assert time.monotonic() - started < 60


@pytest.fixture(scope="module", autouse=True)
def _close_shared_gateway():
    """The temptation task has a network policy and starts the process's shared gateway."""
    yield
    from rollcage.gateway.client import close_shared_gateway

    close_shared_gateway()
