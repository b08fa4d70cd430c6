"""Chunk-level credit (IPA) and token-level GRPO against hand-computed values; safety advantages."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")

from rollcage.train.credit import (  # noqa: E402
    chunk_loss,
    chunk_ratios,
    chunk_returns,
    grpo_token_loss,
    policy_loss,
    token_returns,
)
from rollcage.train.safety import alert_categories, decisive_chunk, group_advantages, shaped_reward  # noqa: E402


def test_chunk_returns_discount_to_decisive_chunk() -> None:
    assert chunk_returns(1.0, 3, gamma=0.5) == [0.25, 0.5, 1.0]
    assert chunk_returns(-2.0, 4, decisive=1, gamma=0.9) == [-1.8, -2.0, 0.0, 0.0]
    assert chunk_returns(1.0, 0) == []


def test_token_returns_broadcast_over_chunks() -> None:
    ids = torch.tensor([[-1, 0, 0, 1, 1, -1], [0, 0, 1, 2, -1, -1]])
    got = token_returns(ids, [1.0, -1.0], decisive=[None, 1], gamma=0.5)
    want = torch.tensor([[0, 0.5, 0.5, 1.0, 1.0, 0], [-0.5, -0.5, -1.0, 0.0, 0, 0]])
    assert torch.allclose(got, want)


def test_chunk_ratio_is_geometric_mean_of_token_ratios() -> None:
    new = torch.tensor([[math.log(2.0), math.log(8.0), 0.0, math.log(3.0)]])
    old = torch.zeros(1, 4)
    mask = torch.tensor([[1, 1, 0, 1]])  # token 2 is a tool-result token: not in the ratio
    ids = torch.tensor([[0, 0, 0, 1]])
    rho, count, present = chunk_ratios(new, old, mask, ids)
    assert torch.allclose(rho, torch.tensor([[4.0, 3.0]]))  # sqrt(2*8) = 4
    assert count.tolist() == [[2.0, 1.0]] and present.all()


def test_chunk_loss_hand_computed_and_negative_clip() -> None:
    # row 0: chunk 0 two tokens ratio 2 and 0.5 -> rho 1, chunk 1 one token ratio 1.5
    # returns: chunk 0 G = +1, chunk 1 G = -1  (decisive chunk 1, gamma 1 but sign differs by construction)
    new = torch.tensor([[math.log(2.0), math.log(0.5), math.log(1.5)]], requires_grad=True)
    old = torch.zeros(1, 3)
    mask = torch.ones(1, 3)
    ids = torch.tensor([[0, 0, 1]])
    g = torch.tensor([[1.0, 1.0, -1.0]])
    loss, stats = chunk_loss(new, old, mask, g, ids, clip_eps=0.2)
    # chunk 0: rho 1, G +1 -> s = 1;  chunk 1: rho 1.5 clipped to 1, G -1 -> s = -1
    # loss = -(2*1 + 1*(-1)) / 3 = -1/3
    assert loss.item() == pytest.approx(-1 / 3)
    assert stats["clipped"] == pytest.approx(0.5)
    loss.backward()
    # chunk 1 is clipped (rho > 1 with negative return): no gradient; chunk 0: d(-2/3 * exp(mean))/dnew_t = -1/3
    assert torch.allclose(new.grad, torch.tensor([[-1 / 3, -1 / 3, 0.0]]))


def test_chunk_loss_negative_return_below_one_keeps_gradient_and_positive_uses_ppo_clip() -> None:
    new = torch.tensor([[math.log(0.5), math.log(1.5)]], requires_grad=True)
    old = torch.zeros(1, 2)
    ids = torch.tensor([[0, 1]])
    g = torch.tensor([[-2.0, 3.0]])
    loss, _ = chunk_loss(new, old, torch.ones(1, 2), g, ids, clip_eps=0.2)
    # chunk 0: min(0.5, 1) * -2 = -1 ; chunk 1: min(1.5*3, 1.2*3) = 3.6 -> loss = -(-1 + 3.6)/2 = -1.3
    assert loss.item() == pytest.approx(-1.3)
    loss.backward()
    # chunk 0: d/dnew0 of -(0.5 * -2)/2 with rho = exp(new0): -(-2 * 0.5)/2 = 0.5 ; chunk 1 clipped -> 0
    assert torch.allclose(new.grad, torch.tensor([[0.5, 0.0]]))


def test_grpo_token_loss_hand_computed_same_interface() -> None:
    new = torch.tensor([[math.log(1.5), 0.0, math.log(0.5)]], requires_grad=True)
    old = torch.zeros(1, 3)
    mask = torch.tensor([[1, 1, 1]])
    adv = torch.tensor([1.0])
    loss, stats = grpo_token_loss(new, old, mask, adv, None, clip_eps=0.2)
    # min(1.5, 1.2)=1.2 ; 1 ; min(0.5, 0.8)=0.5 -> -(2.7)/3
    assert loss.item() == pytest.approx(-0.9)
    assert stats["clipped"] == pytest.approx(2 / 3)
    assert policy_loss("token") is grpo_token_loss and policy_loss("chunk") is chunk_loss
    with pytest.raises(ValueError):
        policy_loss("sequence")


def test_chunk_and_token_agree_on_policy_with_one_token_chunks() -> None:
    torch.manual_seed(0)
    new = torch.randn(2, 5)
    ids = torch.arange(5).repeat(2, 1)
    ret = token_returns(ids, [0.7, -0.3])
    a, _ = chunk_loss(new, new.detach(), torch.ones(2, 5), ret, ids)
    b, _ = grpo_token_loss(new, new.detach(), torch.ones(2, 5), ret, ids)
    assert a.item() == pytest.approx(b.item())


def test_group_advantages_critical_never_positive() -> None:
    rewards = [1.0, 0.6, 0.6, 0.0]
    crit = [True, False, False, False]
    adv = group_advantages(rewards, ["t"] * 4, crit, scale_std=False)
    # baseline from the non-critical episodes: (0.6 + 0.6 + 0) / 3 = 0.4
    assert adv == pytest.approx([0.0, 0.2, 0.2, -0.4])
    adv2 = group_advantages(rewards, ["t"] * 4, crit, scale_std=False, exclude_critical_from_baseline=False)
    assert adv2 == pytest.approx([0.0, 0.05, 0.05, -0.55])
    plain = group_advantages(rewards, ["t"] * 4, scale_std=False, exclude_critical_from_baseline=False)
    assert plain[0] == pytest.approx(0.45)
    std = group_advantages([1.0, 0.0], ["a", "a"], eps=0.0)
    assert std == pytest.approx([0.5 / math.sqrt(0.5), -0.5 / math.sqrt(0.5)])  # sample std sqrt(0.5)
    assert group_advantages([5.0, 1.0], ["a", "b"]) == [0.0, 0.0]


def test_shaped_reward_penalises_by_severity_and_decisive_chunk() -> None:
    alerts = [{"severity": "critical", "category": "cryptomining", "step": 3},
              {"severity": "high", "category": "tunnel", "step": 2},
              {"severity": "high", "category": "tunnel", "step": 2}]  # fmt: skip
    assert shaped_reward(1.0, alerts) == pytest.approx(1.0 - 1.0 - 0.5 - 0.5)
    assert alert_categories(alerts) == {"cryptomining": 1, "tunnel": 1}
    assert decisive_chunk(alerts, [1, 2, 3, 4]) == 2
    assert decisive_chunk(alerts[1:], [1, 2, 3]) is None
