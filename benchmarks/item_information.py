"""How much of the myopic oracle's lead in the item world is information, not planning?

The item world's myopic oracle sees each customer's hidden taste; an agent sees what a retailer
sees (the 16 strategy features and the per-category purchase and message history). This
diagnostic trains PPO twice with the shipped item hyperparameters (the code path of ``recenv
train ppo --env rec_env/ItemRecommendation-v0``, one seed each):

1. ``ppo``: on the observation, as shipped;
2. ``ppo + taste``: on the observation plus the hidden taste vector (10 topic weights), the
   oracle's own information. This is not a deployable policy: it answers whether PPO, given
   what the oracle knows, plans better than the oracle.

and evaluates both next to no message and the myopic oracle on the same cohort (the same
customers and random numbers for every agent; the item multi-seed headline's: 5,000 customers,
seed 1). If ``ppo + taste`` beats the oracle while ``ppo`` does not, the gap is the hidden
taste, not the RL algorithm.

Run from the repository root (two trainings of ~4 min each on a quiet 2-core machine)::

    python benchmarks/item_information.py
    python benchmarks/item_information.py --plain runs/multiseed/item/ppo-seed0  # reuse a run
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from gymnasium import spaces
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper, VecNormalize
from stable_baselines3.common.vec_env.base_vec_env import VecEnvObs, VecEnvStepReturn

from rec_env import make_vec_env
from rec_env.settings import EnvSettings

ITEM = EnvSettings(world="item")


class WithTaste(VecEnvWrapper):
    """The item VecEnv's observation with each customer's hidden taste appended."""

    def __init__(self, venv: VecEnv) -> None:
        self.n_topics = venv.slots.batch.taste.shape[0]  # type: ignore[attr-defined]
        box = venv.observation_space
        assert isinstance(box, spaces.Box)
        space = spaces.Box(
            np.concatenate([box.low, np.zeros(self.n_topics, np.float32)]),
            np.concatenate([box.high, np.ones(self.n_topics, np.float32)]),
            dtype=np.float32,
        )
        super().__init__(venv, observation_space=space)

    def _augment(self, obs: np.ndarray) -> np.ndarray:
        taste = self.venv.slots.batch.taste  # type: ignore[attr-defined]
        return np.hstack([obs, taste.T.astype(np.float32)])

    def reset(self) -> VecEnvObs:
        """Reset; the observation with the taste."""
        return self._augment(self.venv.reset())  # type: ignore[arg-type]

    def step_async(self, actions: np.ndarray) -> None:
        """Note the taste of the customers who act (a slot's next customer may differ)."""
        self._acting = self.venv.slots.batch.taste.T.astype(np.float32)  # type: ignore[attr-defined]
        self.venv.step_async(actions)

    def step_wait(self) -> VecEnvStepReturn:
        """Step; the observation (of the customers now in the slots) with the taste."""
        obs, rewards, dones, infos = self.venv.step_wait()
        for i, info in enumerate(infos):
            if "terminal_observation" in info:  # the leaving customer's taste (before the step)
                info["terminal_observation"] = np.concatenate(
                    [info["terminal_observation"], self._acting[i]]
                )
        return self._augment(obs), rewards, dones, infos  # type: ignore[arg-type]

    def expected_rewards_of(self, actions: np.ndarray) -> np.ndarray:
        """The wrapped env's exact expected rewards (for ``training_reward: expected``)."""
        return self.venv.expected_rewards_of(actions)  # type: ignore[attr-defined]


def train_with_taste(seed: int, steps: int | None) -> Any:
    """PPO with the shipped item hyperparameters on the observation plus the taste."""
    from stable_baselines3 import PPO
    from stable_baselines3.common.utils import set_random_seed

    from rec_env.agents.sb3.schemas import resolve_hyperparams
    from rec_env.agents.sb3.training import ExpectedRewards

    params = resolve_hyperparams("ppo", "rec_env/ItemRecommendation-v0", None)
    set_random_seed(seed)
    venv: VecEnv = WithTaste(make_vec_env(params.n_envs, seed=seed, settings=ITEM))
    venv = VecNormalize(ExpectedRewards(venv), norm_obs=False, norm_reward=True, gamma=params.gamma)
    model = PPO("MlpPolicy", venv, seed=seed, device="cpu", **params.sb3_kwargs())
    model.learn(int(steps or params.n_timesteps))
    return model


class TastePolicy:
    """A ``ppo + taste`` model as a cohort policy.

    It reads the taste from the cohort (as the oracle reads its hidden parameters), masks as
    every policy does and acts greedily.
    """

    def __init__(self, model: Any) -> None:
        self.model = model
        self.cohort: Any = None

    def set_env(self, cohort: Any) -> None:
        """Attach the cohort whose hidden taste the policy reads."""
        self.cohort = cohort

    def predict(
        self, obs: np.ndarray, action_masks: np.ndarray | None = None, deterministic: bool = True
    ) -> np.ndarray:
        """The most probable allowed action."""
        import torch

        augmented = np.hstack([obs, self.cohort.batch.taste.T]).astype(np.float32)
        with torch.no_grad():
            dist = self.model.policy.get_distribution(torch.as_tensor(augmented))
            logits = dist.distribution.logits.numpy()
        if action_masks is not None:
            logits = np.where(action_masks, logits, -np.inf)
        return np.argmax(logits, axis=1)


def main(argv: Sequence[str] | None = None) -> int:
    """Train what is missing, evaluate, print the table; return the exit status."""
    from rec_env.agents.registry import make_baseline
    from rec_env.agents.runs import load_run
    from rec_env.agents.training import train
    from rec_env.rollout import run_cohort

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--plain", type=Path, help="an item PPO run to reuse (default: train)")
    parser.add_argument("--customers", type=int, default=5_000)
    parser.add_argument("--eval-seed", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0, help="training seed")
    parser.add_argument("--steps", type=int, help="training budget (default: the YAML's)")
    args = parser.parse_args(argv)

    model = ITEM.build_model()
    start = time.perf_counter()
    with_taste = TastePolicy(train_with_taste(args.seed, args.steps))
    print(f"ppo + taste: trained ({time.perf_counter() - start:.0f} s)", flush=True)
    start = time.perf_counter()
    plain_dir = args.plain or train("ppo", ITEM, steps=args.steps, seed=args.seed)
    plain, _ = load_run(plain_dir)
    print(f"ppo: {plain_dir} ({time.perf_counter() - start:.0f} s)", flush=True)

    agents = {
        "no_action": make_baseline("no_action", model, 0),
        "oracle": make_baseline("oracle", model, 0),
        "ppo": plain,
        "ppo + taste (diagnostic)": with_taste,
    }
    print(f"\n| policy | profit $ ({args.customers:,} customers, ±95% CI) | messages |")
    print("|---|---:|---:|")
    for name, policy in agents.items():
        result = run_cohort(model, policy, args.customers, ITEM.horizon, args.eval_seed)
        profit = result.profit
        ci = 1.96 * profit.std(ddof=1) / np.sqrt(profit.size)
        messages = float(np.mean(result.contacts))
        print(f"| {name} | {profit.mean():.2f} ± {ci:.2f} | {messages:.1f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
