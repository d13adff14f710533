r"""Replay evaluation of a (learning) policy on logged data (Li et al. 2011), by rejection sampling.

The logged rounds are shown to the policy one at a time, in order. When the policy's choice
equals the logged action the round is *matched*; a matched round is *kept* with probability
:math:`p_{\min} / p_i` (:math:`p_i` its logging propensity, :math:`p_{\min}` the smallest
propensity of the log, or a bound given), decided by a seeded draw. On a kept round the policy
observes its reward and (if it learns) updates; otherwise it learns nothing.

Why this is unbiased: a policy choosing :math:`a` with probability :math:`\pi(a \mid x)` has its
round kept with probability
:math:`\sum_a \pi(a \mid x)\,\mu(a \mid x)\,p_{\min} / \mu(a \mid x) = p_{\min}`, whatever the
context and the action, and then the action is :math:`a` with probability
:math:`\pi(a \mid x)`: the kept rounds are distributed exactly as if the policy had run live,
so the mean reward of the first :math:`T` kept rounds is an unbiased estimate of its average
reward over :math:`T` live rounds, learning included. About a share :math:`p_{\min}` of the
rounds is kept. This needs :math:`p_{\min} \le \mu(a \mid x)` for *every* action and context,
which the log shows only for the logged actions: pass ``min_propensity`` when the logging
policy's smallest probability is known.

On uniformly random logs (:math:`p_i = 1/A` for all :math:`i`) every matched round is kept:
Li et al.'s algorithm 1 exactly, with no draw.

Reference:
    L. Li, W. Chu, J. Langford and X. Wang. Unbiased offline evaluation of contextual-bandit-
    based news article recommendation algorithms. WSDM 2011, algorithm 1 (uniform logging);
    the rejection step for other logging policies is the standard generalisation (e.g.
    Dudík, Erhan, Langford and Li, Sample-efficient nonstationary policy evaluation for
    contextual bandits, UAI 2012).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rec_env.agents.base import Policy
from rec_env.datasets.logged import LoggedBanditData

__all__ = ["ReplayResult", "replay"]


@dataclass(frozen=True)
class ReplayResult:
    r"""The kept rounds of a replay.

    Attributes:
        policy: Name of the policy.
        rows: ``(T,)`` logged row of each kept round, in order.
        rewards: ``(T,)`` reward of each kept round.
        n_logged: Logged rounds replayed (kept or not).
        n_matched: Rounds where the policy chose the logged action (kept or rejected).
        min_propensity: :math:`p_{\min}` of the rejection step.
    """

    policy: str
    rows: np.ndarray
    rewards: np.ndarray
    n_logged: int
    n_matched: int = -1
    min_propensity: float = float("nan")

    @property
    def n_kept(self) -> int:
        """Number of kept rounds :math:`T`."""
        return int(self.rewards.shape[0])

    @property
    def cumulative_reward(self) -> np.ndarray:
        """``(T,)`` reward summed over the first ``t`` kept rounds, ``t = 1 … T``."""
        return np.cumsum(self.rewards)

    @property
    def mean_reward(self) -> float:
        """Mean reward per kept round (NaN if none was kept)."""
        return float(self.rewards.mean()) if self.n_kept else float("nan")


def _acceptance(data: LoggedBanditData, min_propensity: float | None) -> tuple[float, np.ndarray]:
    r""":math:`p_{\min}` and each round's probability of being kept if matched.

    Raises:
        ValueError: If an action is masked in some round, or ``min_propensity`` is not in
            ``(0, min p_i]``.
    """
    if data.action_masks is not None and not data.action_masks.all():
        raise ValueError("replay needs every action to be allowed in every logged round")
    uniform = 1.0 / data.n_actions
    if min_propensity is None and np.allclose(data.propensities, uniform, rtol=1e-6):
        return uniform, np.ones(data.n)  # Li et al.'s uniform case: keep every match, no draw
    smallest = float(data.propensities.min())
    bound = smallest if min_propensity is None else float(min_propensity)
    if not 0.0 < bound <= smallest * (1 + 1e-12):
        raise ValueError(
            f"min_propensity must be in (0, {smallest:.6g}] (the smallest logged propensity), "
            f"got {min_propensity}"
        )
    return bound, np.minimum(bound / data.propensities, 1.0)


_REJECTION_STREAM = 0x5E1EC7
"""Mixed into an integer seed, so that the rejection draws never replay another component's
stream seeded with the same number (a Thompson sampler's, or the data's own)."""


def _rejection_generator(random_state: int | np.random.Generator | None) -> np.random.Generator:
    """The generator of the rejection draws: a given one, or its own stream of the seed."""
    if isinstance(random_state, np.random.Generator):
        return random_state
    if random_state is None:
        return np.random.default_rng()
    return np.random.default_rng([_REJECTION_STREAM, int(random_state)])


def replay(
    policy: Policy,
    data: LoggedBanditData,
    learn: bool = True,
    deterministic: bool = False,
    name: str | None = None,
    *,
    min_propensity: float | None = None,
    random_state: int | np.random.Generator | None = 0,
) -> ReplayResult:
    r"""Replay the log through ``policy``, one round at a time, keeping matches by rejection.

    Args:
        policy: Any policy over the data's contexts; online policies (with ``update``) learn
            from each kept round when ``learn`` is true.
        data: Logged decisions with their propensities, in the order to replay.
        learn: Update online policies on the kept rounds.
        deterministic: Passed to ``predict`` (False: Thompson sampling samples, as live).
        name: Name of the policy in the result (default: its ``algorithm``).
        min_propensity: :math:`p_{\min}`, a lower bound of the logging probability of every
            action in every context (default: the smallest logged propensity).
        random_state: Seed (or generator) of the rejection draws; unused on uniform logs. An
            integer seeds a stream of its own (see :data:`_REJECTION_STREAM`).

    Returns:
        The kept rounds and their rewards.

    Raises:
        ValueError: If an action is masked in some round or ``min_propensity`` is out of range.
    """
    bound, accept = _acceptance(data, min_propensity)
    # One draw per logged round, made up front: whether a round is kept never depends on the
    # policy's earlier choices, and uniform logs (accept = 1) keep every match.
    if (accept >= 1.0).all():
        kept_if_matched = np.ones(data.n, dtype=bool)
    else:
        kept_if_matched = _rejection_generator(random_state).random(data.n) < accept
    policy_name = name or policy.algorithm
    update = getattr(policy, "update", None) if learn else None
    if not callable(update):  # a frozen policy: its choices do not depend on the order
        choices = policy.predict(data.contexts, None, deterministic)
        matched = choices == data.actions
        rows = np.flatnonzero(matched & kept_if_matched)
        return ReplayResult(
            policy_name, rows, data.rewards[rows], data.n, int(matched.sum()), bound
        )
    kept_rows: list[int] = []
    n_matched = 0
    for i in range(data.n):
        row = slice(i, i + 1)
        action = int(policy.predict(data.contexts[row], None, deterministic)[0])
        if action != data.actions[i]:
            continue
        n_matched += 1
        if not kept_if_matched[i]:
            continue
        kept_rows.append(i)
        update(data.contexts[row], data.actions[row], data.rewards[row])
    rows = np.array(kept_rows, dtype=np.intp)
    return ReplayResult(policy_name, rows, data.rewards[rows], data.n, n_matched, bound)
