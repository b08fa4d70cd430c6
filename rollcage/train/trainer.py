"""``rollcage train``: GRPO on rollcage tasks from a YAML config, on CPU with a local model.

A small self-contained GRPO loop (plain torch + transformers + optional peft LoRA), so that the
chunk-level credit of :mod:`rollcage.train.credit` can be used (TRL's ``GRPOTrainer`` only does
token-level losses; for TRL itself see :mod:`rollcage.train.trl_env`). Per step, for every task,
``group_size`` episodes run in fresh sandboxes (:class:`rollcage.envs.TerminalEnv`, the shipped
rules as monitor). One episode is one token sequence: the templated prompt, then per turn the
model's reply (trained tokens, chunk ``k``) and the tool's result (not trained, chunk ``k``). The
reply's tool call is a JSON object, optionally in ``<tool_call>...</tool_call>``; other text runs
as bash. Rewards are verifier score + per-severity penalties (``penalties``); advantages are
group-normalised per task with critical episodes never positive
(:func:`rollcage.train.safety.group_advantages`); ``credit: chunk`` discounts to the chunk that
raised the first critical alert (else the last one).

Writes ``metrics.jsonl`` (per step: reward, success, rogue actions per episode by category, loss,
seconds), ``checkpoint-<step>/`` (model or LoRA adapter, tokenizer, optimizer, RNG state) every
``save_every`` steps and at the end; a rerun with the same ``output_dir`` resumes from the last
checkpoint. vLLM generation is not used here (not installed on the CPU machines).
"""

from __future__ import annotations

import json
import random
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from rollcage.envs.reward import RewardConfig
from rollcage.train.safety import alert_categories, decisive_chunk, group_advantages, has_critical

__all__ = ["ConfigError", "LoraSettings", "TrainConfig", "run_training"]

_TOOL_CALL_RE = re.compile(r"<tool_call>\s*(\{.*?\})\s*</tool_call>", re.DOTALL)


class ConfigError(ValueError):
    """A training config that cannot be used."""


class LoraSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    r: int = 8
    alpha: int = 16
    dropout: float = 0.0
    target_modules: list[str] = Field(default_factory=lambda: ["q_proj", "v_proj"])


class TrainConfig(BaseModel):
    """Everything ``rollcage train --config FILE.yaml`` reads."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    model: Path = Field(description="local model directory (never downloaded)")
    tasks: list[str] = Field(min_length=1, description="task ids (bundled) or task directories")
    group_size: int = Field(default=4, ge=2)
    lr: float = 1e-5
    lora: LoraSettings | None = None
    penalties: dict[str, float] = Field(
        default_factory=lambda: dict(RewardConfig().penalties), description="safety shaping per severity"
    )
    max_turns: int = Field(default=4, ge=1)
    max_new_tokens: int = Field(default=48, ge=1)
    temperature: float = 1.0
    concurrency: int = Field(default=1, ge=1, description="episodes run at once (threads)")
    credit: Literal["token", "chunk"] = "chunk"
    gamma: float = Field(default=0.9, gt=0, le=1)
    clip_eps: float = 0.2
    steps: int = Field(default=10, ge=1)
    seed: int = 0
    output_dir: Path = Path("rollcage-train")
    save_every: int = Field(default=5, ge=1)
    system_prompt: str = "You solve tasks in a Linux workspace. Reply with one tool call as JSON."

    @classmethod
    def load(cls, path: str | Path) -> TrainConfig:
        try:
            data = yaml.safe_load(Path(path).read_text())
        except OSError as exc:
            raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not YAML: {exc}") from None
        try:
            cfg = cls.model_validate(data or {})
        except ValidationError as exc:
            raise ConfigError(f"{path}: " + "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}"
                                                      for e in exc.errors())) from None  # fmt: skip
        base = Path(path).resolve().parent
        if not cfg.model.is_absolute():
            cfg.model = base / cfg.model
        if not cfg.output_dir.is_absolute():
            cfg.output_dir = base / cfg.output_dir
        if not cfg.model.is_dir():
            raise ConfigError(f"model {cfg.model} is not a local directory (nothing is downloaded)")
        return cfg


def _parse(text: str) -> Any:
    match = _TOOL_CALL_RE.search(text)
    candidate = match.group(1) if match else text.strip()
    if candidate.startswith("{"):
        try:
            value = json.loads(candidate)
            if isinstance(value, dict) and "name" in value:
                return value
        except json.JSONDecodeError:
            pass
    return text.strip() or {"name": "submit"}


def _latest_checkpoint(out: Path) -> Path | None:
    cks = sorted(out.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]) if p.name[11:].isdigit() else -1)
    cks = [c for c in cks if (c / "trainer_state.pt").is_file()]
    return cks[-1] if cks else None


def _load_model(cfg: TrainConfig, ckpt: Path | None) -> tuple[Any, Any]:
    import transformers

    tok = transformers.AutoTokenizer.from_pretrained(cfg.model, local_files_only=True)
    source = ckpt if (ckpt is not None and cfg.lora is None) else cfg.model
    model = transformers.AutoModelForCausalLM.from_pretrained(source, local_files_only=True)
    if cfg.lora is not None:
        import peft

        if ckpt is not None:
            model = peft.PeftModel.from_pretrained(model, ckpt, is_trainable=True)
        else:
            lc = peft.LoraConfig(r=cfg.lora.r, lora_alpha=cfg.lora.alpha, lora_dropout=cfg.lora.dropout,
                                 target_modules=cfg.lora.target_modules, task_type="CAUSAL_LM")  # fmt: skip
            model = peft.get_peft_model(model, lc)
    return model, tok


def _make_env(task: str, reward: RewardConfig, engine: Any, max_turns: int) -> Any:
    from rollcage.envs import make
    from rollcage.envs.registry import PREFIX
    from rollcage.envs.terminal import TerminalEnv

    if "/" in task and not task.startswith(PREFIX):
        return TerminalEnv(task, reward=reward, alert_engine=engine, max_steps=max_turns)
    return make(task if task.startswith(PREFIX) else PREFIX + task, reward=reward, alert_engine=engine,
                max_steps=max_turns)  # fmt: skip


def _episode(cfg: TrainConfig, model: Any, tok: Any, env: Any, gen: Any) -> dict[str, Any]:
    import torch

    obs, _ = env.reset()
    msgs = [{"role": "system", "content": cfg.system_prompt}, {"role": "user", "content": obs}]
    ids = list(tok.apply_chat_template(msgs, add_generation_prompt=True, tokenize=True, return_dict=False))
    if isinstance(ids[0], list):
        ids = ids[0]
    mask, chunk = [0] * len(ids), [-1] * len(ids)
    steps, info, total, gen_s, env_s = [], {}, 0.0, 0.0, 0.0
    for k in range(cfg.max_turns):
        t0 = time.monotonic()
        with torch.no_grad():
            out = model.generate(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                                 max_new_tokens=cfg.max_new_tokens, do_sample=True, temperature=cfg.temperature,
                                 pad_token_id=tok.pad_token_id, generator=None)  # fmt: skip
        new = out[0, len(ids) :].tolist()
        gen_s += time.monotonic() - t0
        ids += new
        mask += [1] * len(new)
        chunk += [k] * len(new)
        t0 = time.monotonic()
        obs, reward, terminated, truncated, info = env.step(_parse(tok.decode(new, skip_special_tokens=True)))
        env_s += time.monotonic() - t0
        total += reward
        steps.append(info.get("step", k + 1))
        tool_ids = tok.encode("\n[tool]\n" + obs[:500] + "\n", add_special_tokens=False)
        if terminated or truncated:
            break
        ids += tool_ids
        mask += [0] * len(tool_ids)
        chunk += [k] * len(tool_ids)
    if not env.done:
        _, reward, *_rest, info = env.step({"name": "submit"})
        total += reward
    alerts = info.get("episode_alerts") or []
    return {"ids": ids, "mask": mask, "chunk": chunk, "reward": total, "success": bool(info.get("success")),
            "alerts": alerts, "chunk_steps": steps, "gen_s": gen_s, "env_s": env_s,
            "completion_tokens": sum(mask)}  # fmt: skip


@dataclass
class Batch:
    """One step's episodes as padded tensors: token ids, attention, trained-token mask and the
    chunk (turn) of every token (-1 for padding and the prompt)."""

    eps: list[dict[str, Any]]
    crit: list[bool]  # episode raised a critical alert
    adv: list[float]  # group-normalised, critical episodes never positive
    ids: Any
    attn: Any
    mask: Any
    chunks: Any

    def decisive(self) -> list[int]:
        """Per episode, the chunk that raised the first critical alert (else the last one)."""
        return [decisive_chunk(e["alerts"], e["chunk_steps"]) for e in self.eps]

    def returns(self, credit: str, gamma: float) -> Any:
        """Per-token returns: discounted to the decisive chunk (``chunk``) or flat (``token``)."""
        import torch

        from rollcage.train.credit import token_returns  # torch is loaded only for training

        if credit == "chunk":
            return token_returns(self.chunks, self.adv, self.decisive(), gamma)
        return torch.tensor(self.adv, dtype=torch.float32).unsqueeze(1) * (self.chunks >= 0)


def collect_batch(cfg: TrainConfig, model: Any, tok: Any, envs: dict[str, Any]) -> Batch:
    """``group_size`` episodes per task, in task order, scored and padded into one batch."""
    import torch

    model.eval()
    eps, groups = [], []
    for task, env in envs.items():
        for _ in range(cfg.group_size):
            eps.append(_episode(cfg, model, tok, env, None))
            groups.append(task)
    crit = [has_critical(e["alerts"]) for e in eps]
    adv = group_advantages([e["reward"] for e in eps], groups, crit)
    width = max(len(e["ids"]) for e in eps)
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0

    def padded(key: str, fill: int) -> list[list[int]]:
        return [e[key] + [fill] * (width - len(e["ids"])) for e in eps]

    return Batch(
        eps=eps, crit=crit, adv=adv,
        ids=torch.tensor(padded("ids", pad)),
        attn=torch.tensor([[1] * len(e["ids"]) + [0] * (width - len(e["ids"])) for e in eps]),
        mask=torch.tensor(padded("mask", 0), dtype=torch.float32),
        chunks=torch.tensor(padded("chunk", -1)),
    )  # fmt: skip


def _logprobs(model: Any, ids: Any, attn: Any) -> Any:
    import torch

    logits = model(input_ids=ids, attention_mask=attn).logits[:, :-1].float()
    lp = torch.log_softmax(logits, -1).gather(-1, ids[:, 1:].unsqueeze(-1)).squeeze(-1)
    return torch.cat([torch.zeros(ids.shape[0], 1), lp], dim=1)


def run_training(cfg: TrainConfig, resume: bool = True, echo: Any = print) -> list[dict[str, Any]]:
    """Train; returns the metrics rows written this run."""
    import torch
    from tqdm import tqdm

    from rollcage.train.credit import policy_loss
    from rollcage.train.trl_env import default_alert_engine

    out = cfg.output_dir
    out.mkdir(parents=True, exist_ok=True)
    ckpt = _latest_checkpoint(out) if resume else None
    model, tok = _load_model(cfg, ckpt)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr)
    start = 0
    random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    if ckpt is not None:
        state = torch.load(ckpt / "trainer_state.pt", weights_only=False)
        opt.load_state_dict(state["optimizer"])
        start = int(state["step"])
        torch.set_rng_state(state["torch_rng"])
        random.setstate(state["py_rng"])
        echo(f"resuming from {ckpt} at step {start}")
    reward_cfg = RewardConfig(penalties=cfg.penalties)
    engine = default_alert_engine()
    envs = {t: _make_env(t, reward_cfg, engine, cfg.max_turns) for t in cfg.tasks}
    loss_fn = policy_loss(cfg.credit)
    rows: list[dict[str, Any]] = []
    metrics_path = out / "metrics.jsonl"
    try:
        for step in tqdm(range(start, cfg.steps), initial=start, total=cfg.steps, desc="train", disable=None):
            t0 = time.monotonic()
            batch = collect_batch(cfg, model, tok, envs)
            eps, crit, ids, attn, mask, chunks = batch.eps, batch.crit, batch.ids, batch.attn, batch.mask, batch.chunks
            returns = batch.returns(cfg.credit, cfg.gamma)
            t_upd = time.monotonic()
            model.train()
            with torch.no_grad():
                old = _logprobs(model, ids, attn)
            new = _logprobs(model, ids, attn)
            loss, stats = loss_fn(new, old, mask, returns, chunks, clip_eps=cfg.clip_eps)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            cats: dict[str, float] = {}
            for e in eps:
                for c, n in alert_categories(e["alerts"]).items():
                    cats[c] = cats.get(c, 0.0) + n / len(eps)
            row = {
                "step": step + 1,
                "reward": sum(e["reward"] for e in eps) / len(eps),
                "success": sum(e["success"] for e in eps) / len(eps),
                "rogue_actions_per_episode": cats,
                "critical_episodes": sum(crit),
                "loss": float(loss.detach()),
                "ratio": stats["ratio"],
                "completion_tokens": sum(e["completion_tokens"] for e in eps),
                "gen_s": round(sum(e["gen_s"] for e in eps), 3),
                "env_s": round(sum(e["env_s"] for e in eps), 3),
                "update_s": round(time.monotonic() - t_upd, 3),
                "seconds": round(time.monotonic() - t0, 3),
                "credit": cfg.credit,
            }
            rows.append(row)
            with metrics_path.open("a") as fh:
                fh.write(json.dumps(row) + "\n")
            if (step + 1) % cfg.save_every == 0 or step + 1 == cfg.steps:
                _save(out / f"checkpoint-{step + 1}", model, tok, opt, step + 1)
    finally:
        for env in envs.values():
            env.close()
    return rows


def _save(path: Path, model: Any, tok: Any, opt: Any, step: int) -> None:
    import torch

    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path)
    tok.save_pretrained(path)
    torch.save({"optimizer": opt.state_dict(), "step": step, "torch_rng": torch.get_rng_state(),
                "py_rng": random.getstate()}, path / "trainer_state.pt")  # fmt: skip
