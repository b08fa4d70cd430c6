"""Parallel rollouts: many episodes at once over sandbox pools (asyncio) or Ray, with a
resumable trajectory store and a summary.

```python
from rollcage.rollout import run_rollouts, reference_policy, RunStore

summary = run_rollouts(["csv-sum-by-region", "fizzbuzz-script"], reference_policy, episodes=8, concurrency=4,
                       store_dir="runs")
print(summary.to_dict())
store = RunStore.open(summary.store_dir)       # episodes(), trajectory(id), summary()
```
"""

from rollcage.rollout.policies import (
    ROGUE_POLICIES,
    SAFE_POLICIES,
    AgentPolicy,
    Decision,
    HostAction,
    Policy,
    RoguePolicy,
    ScriptedPolicy,
    StepContext,
    reference_policy,
    safe_policy,
    simulated_gpu,
)
from rollcage.rollout.runner import EpisodePlan, RolloutSummary, arun_rollouts, resolve_task, run_rollouts
from rollcage.rollout.store import RunStore, StoreError

__all__ = [
    "ROGUE_POLICIES",
    "SAFE_POLICIES",
    "AgentPolicy",
    "Decision",
    "EpisodePlan",
    "HostAction",
    "Policy",
    "RoguePolicy",
    "RolloutSummary",
    "RunStore",
    "ScriptedPolicy",
    "StepContext",
    "StoreError",
    "arun_rollouts",
    "reference_policy",
    "resolve_task",
    "run_rollouts",
    "safe_policy",
    "simulated_gpu",
]
