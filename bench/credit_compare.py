"""Chunk-level credit (IPA after ROME) against token-level GRPO on the same seed.

Builds the tiny offline model of :mod:`rollcage.train.tiny` once in a temp dir and gives it a short
behaviour-cloning warm start (a few seconds of supervised steps on scripted episodes: per task a
correct first command and a near miss, equally often, then a ``submit`` call), so that sampled
groups contain both successes and failures and the advantages are not all zero (a randomly
initialised model never succeeds, every reward is 0 and both losses are exactly 0). Then:

1. ``same_batch``: the step-0 batch of ``run_training`` is sampled once (same model, same seeding,
   same order of episodes as the trainer) and both losses of :mod:`rollcage.train.credit` are
   computed on it with their gradients: loss values, gradient norms, cosine similarity. Also the
   token loss fed the chunk returns (isolates what the returns do from what the chunk ratio does)
   and an off-policy probe: after one AdamW step on that batch, both losses again on the same
   batch with the old log-probs kept (ratios no longer 1, so the two clipping rules matter).
2. ``runs``: ``run_training`` twice with identical config and seed, ``credit: token`` and
   ``credit: chunk``; per step reward, success, rogue actions, loss, ratio, seconds.
3. ``policy_after``: for each final checkpoint, the log-probability of the correct and the near-miss
   first command on each task's prompt (deterministic, no sampling noise).

Prints one JSON object. Runs on 2 CPU cores in a few minutes; needs root (sandboxes).
"""

from __future__ import annotations

import argparse
import math
import random
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import report

# task -> (correct first command, near-miss first command)
COMMANDS = {
    "create-hello": ("echo Hello, rollcage! > /work/hello.txt", "echo Hello > /work/hello.txt"),
    "reverse-lines": ("tac /work/poem.txt > /work/reversed.txt", "cat /work/poem.txt > /work/reversed.txt"),
}
SUBMIT = '{"name": "submit"}'


def _prompt_ids(tok: Any, system: str, obs: str) -> list[int]:
    msgs = [{"role": "system", "content": system}, {"role": "user", "content": obs}]
    ids = list(tok.apply_chat_template(msgs, add_generation_prompt=True, tokenize=True, return_dict=False))
    return ids[0] if ids and isinstance(ids[0], list) else ids


def warm_start(model_dir: Path, cfg: Any, bc_steps: int, seed: int) -> dict[str, Any]:
    """Behaviour cloning on scripted two-turn episodes laid out exactly as the trainer lays them out
    (prompt, reply + eos, ``[tool]`` result, ``submit`` + eos); loss on the replies only."""
    import torch
    import transformers

    from rollcage.envs.reward import RewardConfig
    from rollcage.train.trainer import _make_env

    torch.manual_seed(seed)
    tok = transformers.AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    model = transformers.AutoModelForCausalLM.from_pretrained(model_dir, local_files_only=True)
    seqs: list[tuple[list[int], list[int]]] = []
    scripted: dict[str, list[float]] = {}
    for task in cfg.tasks:
        for cmd in COMMANDS[task]:
            env = _make_env(task, RewardConfig(), None, cfg.max_turns)
            try:
                obs, _ = env.reset()
                ids = _prompt_ids(tok, cfg.system_prompt, obs)
                labels = [-100] * len(ids)
                reply = [*tok.encode(cmd, add_special_tokens=False), tok.eos_token_id]
                ids, labels = ids + reply, labels + reply
                tool_obs, *_ = env.step(cmd)
                tool = tok.encode("\n[tool]\n" + tool_obs[:500] + "\n", add_special_tokens=False)
                ids, labels = ids + tool, labels + [-100] * len(tool)
                sub = [*tok.encode(SUBMIT, add_special_tokens=False), tok.eos_token_id]
                ids, labels = ids + sub, labels + sub
                _, reward, *_rest = env.step({"name": "submit"})
                scripted.setdefault(task, []).append(float(reward))
            finally:
                env.close()
            seqs.append((ids, labels))
    width = max(len(s) for s, _ in seqs)
    pad = tok.pad_token_id
    x = torch.tensor([s + [pad] * (width - len(s)) for s, _ in seqs])
    y = torch.tensor([lab + [-100] * (width - len(lab)) for _, lab in seqs])
    attn = torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s, _ in seqs])
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    t0 = time.monotonic()
    losses = []
    for _ in range(bc_steps):
        loss = model(input_ids=x, attention_mask=attn, labels=y).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    model.save_pretrained(model_dir)
    return {"steps": bc_steps, "lr": 3e-3, "loss_first": round(losses[0], 4), "loss_last": round(losses[-1], 4),
            "seconds": round(time.monotonic() - t0, 2), "scripted_rewards (correct, near miss)": scripted}  # fmt: skip


def _flat_grad(loss: Any, params: list[Any]) -> Any:
    import torch

    grads = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
    flat = [(g if g is not None else torch.zeros_like(p)).reshape(-1) for g, p in zip(grads, params, strict=True)]
    return torch.cat(flat)


def _cos(a: Any, b: Any) -> float | None:
    """Cosine similarity; None when either gradient is zero (e.g. every advantage 0)."""
    import torch

    denom = float(a.norm() * b.norm())
    return round(max(-1.0, min(1.0, float(torch.dot(a, b)) / denom)), 6) if denom > 0 else None


def same_batch(cfg: Any) -> dict[str, Any]:
    """Reproduce run_training's step-0 batch (same seeding and order) and compare both losses on it."""
    import torch

    from rollcage.envs.reward import RewardConfig
    from rollcage.train.credit import chunk_loss, grpo_token_loss
    from rollcage.train.trainer import _load_model, _logprobs, _make_env, collect_batch
    from rollcage.train.trl_env import default_alert_engine

    model, tok = _load_model(cfg, None)
    params = [p for p in model.parameters() if p.requires_grad]
    random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    engine = default_alert_engine()
    envs = {t: _make_env(t, RewardConfig(penalties=cfg.penalties), engine, cfg.max_turns) for t in cfg.tasks}
    try:
        batch = collect_batch(cfg, model, tok, envs)
    finally:
        for env in envs.values():
            env.close()
    eps, adv, decisive = batch.eps, batch.adv, batch.decisive()
    ids, attn, mask, chunks = batch.ids, batch.attn, batch.mask, batch.chunks
    ret_chunk = batch.returns("chunk", cfg.gamma)
    ret_token = batch.returns("token", cfg.gamma)

    def compare(old: Any) -> dict[str, Any]:
        new = _logprobs(model, ids, attn)
        lt, st = grpo_token_loss(new, old, mask, ret_token, chunks, clip_eps=cfg.clip_eps)
        lc, sc = chunk_loss(new, old, mask, ret_chunk, chunks, clip_eps=cfg.clip_eps)
        lx, _ = grpo_token_loss(new, old, mask, ret_chunk, chunks, clip_eps=cfg.clip_eps)
        gt, gc, gx = _flat_grad(lt, params), _flat_grad(lc, params), _flat_grad(lx, params)
        return {
            "token": {"loss": round(float(lt), 6), "grad_norm": round(float(gt.norm()), 6), **_r(st)},
            "chunk": {"loss": round(float(lc), 6), "grad_norm": round(float(gc.norm()), 6), **_r(sc)},
            "grad_cosine_token_vs_chunk": _cos(gt, gc),
            "grad_norm_ratio_chunk_over_token": round(float(gc.norm() / gt.norm()), 6) if float(gt.norm()) else None,
            "grad_cosine_chunk_vs_token_loss_on_chunk_returns": _cos(gc, gx),
            "loss_token_on_chunk_returns": round(float(lx), 6),
        }

    model.train()
    with torch.no_grad():
        old = _logprobs(model, ids, attn)
    on_policy = compare(old)
    # Off-policy probe: one AdamW step (the trainer's lr and grad clip) on the token loss, then both
    # losses on the same batch against the same old log-probs, as a second PPO epoch would see them.
    opt = torch.optim.AdamW(params, lr=cfg.lr)
    loss, _ = grpo_token_loss(_logprobs(model, ids, attn), old, mask, ret_token, chunks, clip_eps=cfg.clip_eps)
    opt.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    opt.step()
    off_policy = compare(old)
    n_chunks = [int(max(e["chunk"])) + 1 if max(e["chunk"]) >= 0 else 0 for e in eps]
    return {
        "episodes": len(eps),
        "rewards": [round(e["reward"], 4) for e in eps],
        "success": [bool(e["success"]) for e in eps],
        "advantages": [round(a, 4) for a in adv],
        "mean_abs_advantage": round(sum(abs(a) for a in adv) / len(adv), 4),
        "chunks_per_episode": n_chunks,
        "decisive_chunk": decisive,
        "completion_tokens": sum(e["completion_tokens"] for e in eps),
        "mean_reward": round(sum(e["reward"] for e in eps) / len(eps), 6),
        "on_policy (ratio = 1, what run_training's single update sees)": on_policy,
        "off_policy (after one AdamW step on the token loss, same batch, same old log-probs)": off_policy,
    }


def _r(stats: dict[str, Any]) -> dict[str, float]:
    return {"mean_ratio": round(stats["ratio"], 6), "clipped_fraction": round(stats["clipped"], 6)}


def reply_logprobs(model_dir: Path, cfg: Any) -> dict[str, Any]:
    """log p(correct first command) and log p(near miss) on each task's prompt, and p(correct | one of the two)."""
    import torch
    import transformers

    from rollcage.envs.reward import RewardConfig
    from rollcage.train.trainer import _make_env

    tok = transformers.AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    model = transformers.AutoModelForCausalLM.from_pretrained(model_dir, local_files_only=True).eval()
    out: dict[str, Any] = {}
    for task in cfg.tasks:
        env = _make_env(task, RewardConfig(), None, cfg.max_turns)
        try:
            obs, _ = env.reset()
        finally:
            env.close()
        prompt = _prompt_ids(tok, cfg.system_prompt, obs)
        lps = []
        for cmd in COMMANDS[task]:
            reply = [*tok.encode(cmd, add_special_tokens=False), tok.eos_token_id]
            x = torch.tensor([prompt + reply])
            with torch.no_grad():
                logits = model(input_ids=x).logits[0, len(prompt) - 1 : -1].float()
            lps.append(float(torch.log_softmax(logits, -1).gather(-1, torch.tensor(reply).unsqueeze(-1)).sum()))
        out[task] = {"logp_correct": round(lps[0], 4), "logp_near_miss": round(lps[1], 4),
                     "p_correct_of_two": round(1 / (1 + math.exp(lps[1] - lps[0])), 4)}  # fmt: skip
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", nargs="+", default=list(COMMANDS), choices=list(COMMANDS))
    parser.add_argument("--group-size", type=int, default=6)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--max-turns", type=int, default=2)
    parser.add_argument("--max-new-tokens", type=int, default=28)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--gamma", type=float, default=0.9)
    parser.add_argument("--bc-steps", type=int, default=400, help="warm-start supervised steps (0: random model)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    import torch

    from rollcage.train.tiny import build_tiny_qwen
    from rollcage.train.trainer import TrainConfig, run_training

    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="rollcage-bench-credit-") as tmp:
        root = Path(tmp)
        model_dir = build_tiny_qwen(root / "model")

        def config(credit: str) -> TrainConfig:
            return TrainConfig(
                model=model_dir, tasks=args.tasks, group_size=args.group_size, lr=args.lr, lora=None,
                max_turns=args.max_turns, max_new_tokens=args.max_new_tokens, temperature=1.0, credit=credit,
                gamma=args.gamma, steps=args.steps, seed=args.seed, output_dir=root / f"out-{credit}",
                save_every=args.steps,
            )  # fmt: skip

        warm = warm_start(model_dir, config("token"), args.bc_steps, args.seed) if args.bc_steps else None
        before = reply_logprobs(model_dir, config("token"))
        t0 = time.monotonic()
        batch = same_batch(config("chunk"))
        batch["seconds"] = round(time.monotonic() - t0, 2)
        runs: dict[str, Any] = {}
        after: dict[str, Any] = {}
        for credit in ("token", "chunk"):
            cfg = config(credit)
            t0 = time.monotonic()
            rows = run_training(cfg, resume=False, echo=lambda *_: None)
            runs[credit] = {"wall_s": round(time.monotonic() - t0, 2), "steps": [
                {k: (round(v, 6) if isinstance(v, float) else v) for k, v in r.items() if k != "credit"}
                for r in rows
            ]}  # fmt: skip
            after[credit] = reply_logprobs(cfg.output_dir / f"checkpoint-{args.steps}", cfg)

    def mean(credit: str, key: str, last: int | None = None) -> float:
        vals = [r[key] for r in runs[credit]["steps"]][-(last or args.steps) :]
        return round(sum(vals) / len(vals), 4)

    first = {c: runs[c]["steps"][0] for c in runs}
    on = batch["on_policy (ratio = 1, what run_training's single update sees)"]
    summary = {
        "step1_batch_identical_in_both_runs": first["token"]["reward"] == first["chunk"]["reward"]
        and first["token"]["completion_tokens"] == first["chunk"]["completion_tokens"],
        "step1_batch_matches_same_batch_replay": first["token"]["completion_tokens"] == batch["completion_tokens"]
        and abs(first["token"]["loss"] - on["token"]["loss"]) < 1e-5
        and abs(first["chunk"]["loss"] - on["chunk"]["loss"]) < 1e-5,
        "final_step_mean_reward": {c: mean(c, "reward", 1) for c in runs},
        "final_step_reward_diff_chunk_minus_token": round(mean("chunk", "reward", 1) - mean("token", "reward", 1), 4),
        "mean_reward_last_half": {c: mean(c, "reward", max(1, args.steps // 2)) for c in runs},
        "mean_reward_all_steps": {c: mean(c, "reward") for c in runs},
        "mean_success_all_steps": {c: mean(c, "success") for c in runs},
        "p_correct_of_two": {"before": {t: v["p_correct_of_two"] for t, v in before.items()},
                             **{c: {t: v["p_correct_of_two"] for t, v in after[c].items()} for c in after}},
        "step0_grad_cosine_token_vs_chunk": on["grad_cosine_token_vs_chunk"],
        "total_wall_s": round(time.monotonic() - started, 1),
    }  # fmt: skip
    off = batch["off_policy (after one AdamW step on the token loss, same batch, same old log-probs)"]
    p_before = summary["p_correct_of_two"]["before"]
    p_after = {c: summary["p_correct_of_two"][c] for c in runs}
    note = (
        f"Toy problem, one seed, {args.group_size * len(args.tasks)} episodes per step: the tiny model (2 layers, "
        "hidden 32) is warm-started by behaviour cloning to pick the correct or a near-miss first command about "
        f"equally often (p_correct_of_two before: {p_before}); GRPO then only has to learn that one decision, and "
        f"both runs do (after {args.steps} steps: {p_after}). Reward differences between the two runs are within "
        "sampling noise; this is not a quality claim for either credit rule. What it shows: both losses run on "
        "identical data and seed (step-1 batch identical in both runs and equal to the same-batch replay: "
        f"{summary['step1_batch_identical_in_both_runs'] and summary['step1_batch_matches_same_batch_replay']}) "
        "and how their updates differ. run_training computes the old log-probs from the same weights just before "
        "its single update per batch, so every ratio is exactly 1 (see 'ratio' per step) and neither clip is ever "
        "active there: the chunk loss's gradient then equals the token loss's gradient on the chunk returns "
        f"(cosine {on['grad_cosine_chunk_vs_token_loss_on_chunk_returns']}), i.e. on-policy the two differ only "
        "through the returns (gamma^(d-k) towards the decisive chunk, 0 after a critical one). At step 0 the chunk "
        f"gradient has cosine {on['grad_cosine_token_vs_chunk']} with the token one and "
        f"{on['grad_norm_ratio_chunk_over_token']} times its norm: the last chunk (the submit turn, undiscounted "
        "with the default decisive = last chunk) is near-deterministic after the warm start and carries almost no "
        "gradient, and the first command, which decides these tasks, gets gamma * A instead of A. The clipping "
        "rules only matter off-policy (a second epoch on the same batch): after one AdamW step the token loss "
        f"clips {off['token']['clipped_fraction']:.1%} of tokens (tokens whose ratio moved past 1 +- eps) "
        f" and keeps grad norm {off['token']['grad_norm']}, while the chunk's geometric-mean ratio over "
        f"~{round(batch['completion_tokens'] / max(1, sum(batch['chunks_per_episode'])))} tokens stays inside the "
        f"clip (clipped {off['chunk']['clipped_fraction']:.1%}, grad norm {off['chunk']['grad_norm']}); cosine "
        f"{off['grad_cosine_token_vs_chunk']}. Per-step gradient norms and advantages are not logged by "
        "run_training; they are given for step 0 in same_batch. After step 1 the runs diverge because the weights "
        "do, so later batches differ. Numbers are not bit-identical across separate invocations of this script "
        "(observed); within one invocation both runs start from the same saved weights and seed."
    )
    report("credit_compare", {
        "config": {"tasks": args.tasks, "group_size": args.group_size, "steps": args.steps, "max_turns": args.max_turns,
                   "max_new_tokens": args.max_new_tokens, "lr": args.lr, "gamma": args.gamma, "seed": args.seed,
                   "lora": None, "clip_eps": 0.2, "model": "rollcage.train.tiny.build_tiny_qwen (2 layers, hidden 32)"},
        "warm_start": warm, "policy_before": before, "same_batch": batch, "runs": runs, "policy_after": after,
        "summary": summary, "note": note,
    })  # fmt: skip


if __name__ == "__main__":
    main()
