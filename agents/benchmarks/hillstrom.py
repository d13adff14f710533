r"""The Hillstrom benchmark: learn targeting policies on half the customers, value them on the rest.

Protocol (:func:`run_hillstrom`):

1. Load the campaign (:func:`rec_env.datasets.load_hillstrom`) with the chosen reward and split
   the customers 50/50 at random (seeded).
2. Learn on the first half:

   * ``reward_model``: one ridge regression per action
     (:class:`~rec_env.agents.ope.reward_models.RidgeRewardEstimator`) and the action with the
     highest prediction;
   * ``linucb`` and ``lin_ts``: :class:`~rec_env.agents.bandits.LinUCB` and
     :class:`~rec_env.agents.bandits.LinearThompsonSampling` directly on Hillstrom's 11
     features, standardised by their training mean and standard deviation
     (:meth:`~rec_env.feature_space.FeatureSpace.standardised`), trained by replay
     (:func:`~rec_env.agents.ope.replay.replay`, Li et al. 2011): they learn only from the rounds
     where their choice matches the logged action. Their exploration widths (:math:`\alpha`,
     :math:`v`) are multiplied by the standard deviation of the training rewards, so that the
     same settings suit visits (0/1) and spend (dollars).

3. Value every policy, frozen, on the held-out half with IPS, SNIPS and DR (the DR reward model
   cross-fitted on the held-out half), against the constant policies ``always_mens``,
   ``always_womens`` and ``never`` (no e-mail) and ``random``.
4. Compare each learned policy with the best constant policy (the constant with the highest DR
   value on the held-out half, which favours the constant) by paired bootstrap differences.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rec_env.agents.base import Policy
from rec_env.agents.baselines import FixedActionPolicy, RandomPolicy
from rec_env.agents.offline.reward_model import RewardModelPolicy, fit_reward_model
from rec_env.agents.ope import (
    DoublyRobust,
    InverseProbabilityWeighting,
    OffPolicyEstimator,
    OPEResult,
    SelfNormalizedIPS,
)
from rec_env.agents.ope.replay import ReplayResult, replay
from rec_env.agents.ope.reward_models import RidgeRewardEstimator
from rec_env.datasets import HILLSTROM_ACTIONS, HILLSTROM_FEATURES, load_hillstrom
from rec_env.feature_space import FeatureSpace

__all__ = [
    "CONSTANT_POLICIES",
    "LEARNED_POLICIES",
    "HillstromBenchmark",
    "RewardModelPolicy",
    "run_hillstrom",
]

LEARNED_POLICIES: tuple[str, ...] = ("reward_model", "linucb", "lin_ts")
"""Policies learned on the training half."""

CONSTANT_POLICIES: dict[str, int] = {
    "always_mens": HILLSTROM_ACTIONS.index("mens_email"),
    "always_womens": HILLSTROM_ACTIONS.index("womens_email"),
    "never": HILLSTROM_ACTIONS.index("no_email"),
}
"""The constant policies and their action."""

ESTIMATOR_NAMES: tuple[str, ...] = ("ips", "snips", "dr")


@dataclass
class HillstromBenchmark:
    """Held-out estimates of every policy, replay curves and the comparison with constants.

    Attributes:
        reward: The reward used.
        seed: Seed of the split, the bandits and the bootstrap.
        n_train: Customers in the training half.
        n_test: Customers in the held-out half.
        estimates: Policy name → its IPS, SNIPS and DR results on the held-out half.
        replays: Replay of the training half for each learned bandit and reference policy.
        best_constant: Name of the constant policy with the highest held-out DR value.
        gains: Learned policy name → paired ``V(policy) - V(best constant)`` per estimator.
        action_shares: Policy name → ``(n_actions,)`` mean probability of each action on the
            held-out customers.
    """

    reward: str
    seed: int
    n_train: int
    n_test: int
    estimates: dict[str, list[OPEResult]] = field(default_factory=dict)
    replays: list[ReplayResult] = field(default_factory=list)
    best_constant: str = ""
    gains: dict[str, list[OPEResult]] = field(default_factory=dict)
    action_shares: dict[str, np.ndarray] = field(default_factory=dict)

    def rows(self) -> list[dict[str, Any]]:
        """One row per policy and estimator: value, CI, weight diagnostics, action shares."""
        return [
            {
                "policy": policy,
                **result.as_dict(),
                **{
                    f"share_{name}": float(share)
                    for name, share in zip(
                        HILLSTROM_ACTIONS, self.action_shares[policy], strict=True
                    )
                },
            }
            for policy, results in self.estimates.items()
            for result in results
        ]

    def gain_rows(self) -> list[dict[str, Any]]:
        """One row per learned policy and estimator: the paired difference with the constant."""
        return [
            {"policy": policy, "baseline": self.best_constant, **result.as_dict()}
            for policy, results in self.gains.items()
            for result in results
        ]

    def verdicts(self) -> dict[str, str]:
        """Learned policy → whether its DR gain over the best constant is significant."""
        out = {}
        for policy, results in self.gains.items():
            dr = results[ESTIMATOR_NAMES.index("dr")]
            if dr.ci_low > 0:
                out[policy] = f"beats {self.best_constant} (DR 95% CI of the gain above 0)"
            elif dr.ci_high < 0:
                out[policy] = f"worse than {self.best_constant} (DR 95% CI below 0)"
            else:
                out[policy] = f"no significant difference from {self.best_constant}"
        return out


def _split(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A seeded random 50/50 split of ``n`` rows (the training half gets the extra row)."""
    order = np.random.default_rng(seed).permutation(n)
    half = (n + 1) // 2
    return order[:half], order[half:]


def _learned_policies(
    train_data: Any, seed: int, alpha: float, v: float
) -> tuple[dict[str, Policy], list[ReplayResult]]:
    """The reward-model policy and the two bandits trained by replay on ``train_data``."""
    from rec_env.agents.bandits import LinearThompsonSampling, LinUCB

    names, n_actions = train_data.action_names, train_data.n_actions
    raw = FeatureSpace.named(HILLSTROM_FEATURES)
    # Ridge on the raw features: the same fit and bit-equal predictions as before the move.
    reward_model = fit_reward_model(train_data, RidgeRewardEstimator(), features=raw)
    policies: dict[str, Policy] = {"reward_model": reward_model}
    spread = float(train_data.rewards.std()) or 1.0
    features = FeatureSpace.standardised(HILLSTROM_FEATURES, train_data.contexts)
    bandits = {
        "linucb": LinUCB(n_actions, names, features=features, alpha=alpha * spread),
        "lin_ts": LinearThompsonSampling(n_actions, names, seed, features=features, v=v * spread),
    }
    replays = []
    for name, bandit in bandits.items():
        replays.append(replay(bandit, train_data, name=name))
        policies[name] = bandit
    return policies, replays


def _reference_policies(n_actions: int, seed: int) -> dict[str, Policy]:
    """The constant policies and the uniformly random one."""
    features = FeatureSpace.named(HILLSTROM_FEATURES)
    policies: dict[str, Policy] = {
        name: FixedActionPolicy(
            n_actions, action, action_names=HILLSTROM_ACTIONS, features=features
        )
        for name, action in CONSTANT_POLICIES.items()
    }
    policies["random"] = RandomPolicy(
        n_actions, HILLSTROM_ACTIONS, random_state=seed, features=features
    )
    return policies


def run_hillstrom(
    reward: str = "visit",
    seed: int = 0,
    n_bootstrap: int = 1000,
    customers: int | None = None,
    alpha: float = 1.0,
    v: float = 1.0,
    progress: Callable[[str], None] | None = None,
) -> HillstromBenchmark:
    r"""Run the benchmark (see the module docstring for the protocol).

    Args:
        reward: ``"visit"``, ``"conversion"``, ``"spend"`` or ``"profit"``.
        seed: Seed of the split, Thompson sampling, cross-fitting and the bootstrap.
        n_bootstrap: Bootstrap replicates of every confidence interval.
        customers: Use a seeded random subset of this many customers (default: all 64,000).
        alpha: LinUCB's confidence width, in units of the training rewards' standard deviation.
        v: Linear TS's posterior scale, in the same units.
        progress: Called with a short message before each stage.

    Returns:
        The benchmark's estimates, replays and comparisons.

    Raises:
        ValueError: If ``reward`` is unknown or ``customers`` is out of range.
    """
    say = progress or (lambda message: None)
    data = load_hillstrom(reward)
    if customers is not None:
        if not 4 <= customers <= data.n:
            raise ValueError(f"customers must be between 4 and {data.n}, got {customers}")
        data = data.subset(np.sort(np.random.default_rng(seed).permutation(data.n)[:customers]))
    train, test = _split(data.n, seed)
    train_data, test_data = data.subset(train), data.subset(test)
    bench = HillstromBenchmark(reward, seed, train_data.n, test_data.n)

    say("training the reward model and replaying the bandits on the training half")
    learned, bench.replays = _learned_policies(train_data, seed, alpha, v)
    references = _reference_policies(data.n_actions, seed)
    bench.replays += [replay(references[name], train_data, name=name) for name in references]

    say("estimating every policy's value on the held-out half")
    estimators: list[OffPolicyEstimator] = [
        InverseProbabilityWeighting(n_bootstrap=n_bootstrap, random_state=seed),
        SelfNormalizedIPS(n_bootstrap=n_bootstrap, random_state=seed),
        DoublyRobust(n_bootstrap=n_bootstrap, random_state=seed),
    ]
    rewards = estimators[-1].fit_rewards(test_data)
    probabilities = {
        name: policy.action_probabilities(test_data.contexts)
        for name, policy in {**learned, **references}.items()
    }
    for name, target in probabilities.items():
        bench.action_shares[name] = target.mean(axis=0)
        bench.estimates[name] = [
            e.estimate(test_data, target, estimated_rewards=rewards) for e in estimators
        ]
    dr = ESTIMATOR_NAMES.index("dr")
    bench.best_constant = max(CONSTANT_POLICIES, key=lambda c: bench.estimates[c][dr].value)
    baseline = probabilities[bench.best_constant]
    for name in learned:
        bench.gains[name] = [
            e.estimate_difference(
                test_data, probabilities[name], baseline, estimated_rewards=rewards
            )
            for e in estimators
        ]
    return bench
