"""Credit assignment for policy-gradient updates on multi-turn tool-use episodes.

Two losses with one interface, so a run can switch between them (``credit: token|chunk``):

``chunk_loss`` — chunk-level credit after the ROME report's IPA (interaction-level policy
alignment). A *chunk* is one model turn through its tool call and the tool's result. Only the
model's own tokens carry log-probabilities (``mask`` is 1 on them, 0 on prompt, tool-result and
padding tokens); ``chunk_ids`` says which chunk each token belongs to (``-1``: none).

* Return. With the episode's (already normalised, see :mod:`rollcage.train.safety`) advantage
  ``R`` and the index ``d`` of the *outcome-deciding* chunk (by default the last one; the chunk
  that raised the first critical alert when there is one), chunk ``k`` gets
  ``G_k = gamma ** (d - k) * R`` for ``k <= d`` and ``G_k = 0`` for ``k > d`` (a chunk after the
  decision did not influence the outcome). Every token of chunk ``k`` shares ``G_k``
  (:func:`chunk_returns`, :func:`token_returns`).
* Ratio. The chunk's importance ratio is the geometric mean of its tokens' ratios,
  ``rho_k = exp(mean_{t in k} (logp_new_t - logp_old_t))`` over the chunk's masked tokens.
* Clipping. For ``G_k < 0`` the ratio is clipped to ``[0, 1]``: ``s_k = min(rho_k, 1) * G_k``
  (an update may make a bad chunk less likely without bound, but a chunk whose probability has
  already grown past the behaviour policy's gets no gradient — it cannot be pushed further up by
  the negative signal's sign flip nor amplify a large negative weight). For ``G_k > 0`` it is
  the standard PPO clip: ``s_k = min(rho_k * G_k, clip(rho_k, 1 - eps, 1 + eps) * G_k)``. For
  ``G_k == 0`` the chunk contributes 0.
* Loss. Every masked token of chunk ``k`` carries ``-s_k``; the loss is the mean over all
  masked tokens of the batch (token-mean aggregation, the same as :func:`grpo_token_loss`).

``grpo_token_loss`` — token-level GRPO (DeepSeekMath / TRL's default ``loss_type="grpo"``-style
ratio, token-mean aggregation): token ratio ``r_t = exp(logp_new_t - logp_old_t)``, per-token
surrogate ``min(r_t * A_t, clip(r_t, 1 - eps, 1 + eps) * A_t)``, loss = ``-mean`` over masked
tokens. ``A_t`` is the per-token advantage (the episode's advantage broadcast, or the output of
:func:`token_returns` with ``gamma=1`` and no decisive chunk, which is the same thing).

Both return ``(loss, stats)``; ``stats`` holds detached floats (mean ratio, clipped fraction).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

__all__ = ["chunk_loss", "chunk_ratios", "chunk_returns", "grpo_token_loss", "policy_loss", "token_returns"]


def chunk_returns(advantage: float, num_chunks: int, decisive: int | None = None, gamma: float = 1.0) -> list[float]:
    """``G_k = gamma ** (d - k) * advantage`` for ``k <= d`` and 0 after ``d`` (``d`` defaults to the last chunk)."""
    if num_chunks <= 0:
        return []
    d = num_chunks - 1 if decisive is None else max(0, min(int(decisive), num_chunks - 1))
    return [float(advantage) * gamma ** (d - k) if k <= d else 0.0 for k in range(num_chunks)]


def token_returns(
    chunk_ids: torch.Tensor,
    advantages: Sequence[float] | torch.Tensor,
    decisive: Sequence[int | None] | None = None,
    gamma: float = 1.0,
) -> torch.Tensor:
    """Per-token returns ``[B, T]``: token ``t`` of row ``b`` gets ``G_{chunk_ids[b, t]}`` of that row
    (0 where ``chunk_ids`` is negative). Chunks are numbered 0..K-1 within a row."""
    out = torch.zeros(chunk_ids.shape, dtype=torch.float32)
    for b in range(chunk_ids.shape[0]):
        ids = chunk_ids[b]
        valid = ids[ids >= 0]
        if valid.numel() == 0:
            continue
        k = int(valid.max()) + 1
        adv = float(advantages[b])
        g = torch.tensor(chunk_returns(adv, k, None if decisive is None else decisive[b], gamma))
        out[b] = torch.where(ids >= 0, g[ids.clamp(min=0)], torch.zeros(()))
    return out


def chunk_ratios(
    logp_new: torch.Tensor, logp_old: torch.Tensor, mask: torch.Tensor, chunk_ids: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Geometric-mean ratio per (row, chunk). Returns ``(rho [B, K], count [B, K], chunk_present [B, K])``."""
    mask = mask.to(logp_new.dtype) * (chunk_ids >= 0).to(logp_new.dtype)
    k = int(chunk_ids.max().item()) + 1 if chunk_ids.numel() and int(chunk_ids.max()) >= 0 else 0
    b = logp_new.shape[0]
    if k == 0:
        zeros = logp_new.new_zeros((b, 0))
        return zeros, zeros, zeros.bool()
    onehot = torch.nn.functional.one_hot(chunk_ids.clamp(min=0), k).to(logp_new.dtype) * mask.unsqueeze(-1)
    diff = (logp_new - logp_old.detach()).unsqueeze(-1)
    count = onehot.sum(dim=1)  # [B, K]
    mean = (diff * onehot).sum(dim=1) / count.clamp(min=1)
    return torch.exp(mean), count, count > 0


def chunk_loss(
    logp_new: torch.Tensor,
    logp_old: torch.Tensor,
    mask: torch.Tensor,
    token_returns: torch.Tensor,
    chunk_ids: torch.Tensor | None = None,
    clip_eps: float = 0.2,
) -> tuple[torch.Tensor, dict[str, Any]]:
    """IPA-style chunk loss (see the module docstring). ``token_returns[b, t]`` must be constant over
    each chunk (build it with :func:`token_returns`); the chunk's return is read from its tokens."""
    if chunk_ids is None:
        raise ValueError("chunk_loss needs chunk_ids")
    rho, count, present = chunk_ratios(logp_new, logp_old, mask, chunk_ids)
    if rho.shape[1] == 0:
        return logp_new.sum() * 0.0, {"ratio": 1.0, "clipped": 0.0}
    m = mask.to(logp_new.dtype) * (chunk_ids >= 0).to(logp_new.dtype)
    onehot = torch.nn.functional.one_hot(chunk_ids.clamp(min=0), rho.shape[1]).to(logp_new.dtype) * m.unsqueeze(-1)
    g = (token_returns.to(logp_new.dtype).unsqueeze(-1) * onehot).sum(dim=1) / count.clamp(min=1)  # [B, K]
    neg = torch.clamp(rho, max=1.0) * g
    pos = torch.minimum(rho * g, torch.clamp(rho, 1 - clip_eps, 1 + clip_eps) * g)
    surrogate = torch.where(g < 0, neg, torch.where(g > 0, pos, torch.zeros_like(g)))
    total = count.sum().clamp(min=1)
    loss = -(surrogate * count).sum() / total  # each chunk's value carried by each of its tokens
    with torch.no_grad():
        clipped = torch.where(g < 0, rho > 1.0, (rho - 1).abs() > clip_eps) & present
        stats = {
            "ratio": float(rho[present].mean()) if present.any() else 1.0,
            "clipped": float(clipped.sum() / present.sum().clamp(min=1)),
        }
    return loss, stats


def grpo_token_loss(
    logp_new: torch.Tensor,
    logp_old: torch.Tensor,
    mask: torch.Tensor,
    token_returns: torch.Tensor,
    chunk_ids: torch.Tensor | None = None,
    clip_eps: float = 0.2,
) -> tuple[torch.Tensor, dict[str, Any]]:
    """Token-level clipped GRPO surrogate, token-mean aggregated. ``chunk_ids`` is accepted and ignored
    (same interface as :func:`chunk_loss`). ``token_returns`` may be ``[B]`` (broadcast) or ``[B, T]``."""
    adv = token_returns.to(logp_new.dtype)
    if adv.dim() == 1:
        adv = adv.unsqueeze(1).expand_as(logp_new)
    m = mask.to(logp_new.dtype)
    ratio = torch.exp(logp_new - logp_old.detach())
    surrogate = torch.minimum(ratio * adv, torch.clamp(ratio, 1 - clip_eps, 1 + clip_eps) * adv)
    loss = -(surrogate * m).sum() / m.sum().clamp(min=1)
    with torch.no_grad():
        on = m > 0
        stats = {
            "ratio": float(ratio[on].mean()) if on.any() else 1.0,
            "clipped": float(((ratio - 1).abs() > clip_eps)[on].float().mean()) if on.any() else 0.0,
        }
    return loss, stats


def policy_loss(credit: str):
    """The loss function for ``credit`` (``"token"`` or ``"chunk"``)."""
    if credit == "chunk":
        return chunk_loss
    if credit == "token":
        return grpo_token_loss
    raise ValueError(f"credit must be 'token' or 'chunk', got {credit!r}")
