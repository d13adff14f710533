"""Decisions of item and slate policies: the policy's scores, exploration, and the log's columns.

:class:`ItemDecider` serves single-product policies (PPO, A2C, MaskablePPO, DQN, bandits): the
policy's logits or probabilities go to :func:`~rec_env.serve.item_sampling.sample_item_actions`.
:class:`SlateDecider` serves a slate actor's scoring vectors through
:class:`~rec_env.serve.slates.SlateSampler`. Both use the numpy copy of an SB3 network
(:func:`rec_env.agents.sb3.network.numpy_network`) when it matches the policy on customers of the
run's world, as the strategy world does (:mod:`rec_env.serve.fast_policy`); otherwise they call
the policy. Either way the policy itself never sees an action its consent flags refuse.

The service (:class:`~rec_env.serve.service.DecisionService`) holds one decider and calls it
under its policy lock; the decider returns the columns the log stores
(:class:`~rec_env.serve.decision_log.ColumnarDecisions`) and what the response shows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from rec_env.agents.base import Policy
from rec_env.serve.decision_log import ColumnarDecisions
from rec_env.serve.exploration import Exploration
from rec_env.serve.fast_policy import CHECK_CUSTOMERS, NUMPY_ALGORITHMS, TOLERANCE
from rec_env.serve.item_sampling import (
    policy_weights,
    sample_item_actions,
    serving_probabilities,
)
from rec_env.serve.slates import SampledSlates, SlateSampler
from rec_env.serve.world import ServedWorld

__all__ = ["ItemDecider", "ItemOutcome", "SlateDecider", "SlateOutcome", "make_decider"]


@dataclass(frozen=True)
class ItemOutcome:
    """Single-product decisions, before logging.

    Attributes:
        columns: What the decision log stores.
        top: Each customer's most probable actions ``{name: serving probability}``, most
            probable first (when asked for).
    """

    columns: ColumnarDecisions
    top: list[dict[str, float]] | None


@dataclass(frozen=True)
class SlateOutcome:
    """Slate decisions, before logging.

    Attributes:
        columns: What the decision log stores.
        slates: The served messages and their probabilities.
    """

    columns: ColumnarDecisions
    slates: SampledSlates


def _check_cohort(world: ServedWorld) -> np.ndarray:
    """Customers on which a numpy copy must match its policy (seeded: the same every start).

    The item world's are customers in operation
    (:func:`~rec_env.agents.explain.background.operating_background`); the slate world's,
    which has no single-product step to operate them with, are new customers whose item
    features are drawn uniformly within their bounds.
    """
    model = world.model
    if not hasattr(model, "decode"):
        from rec_env.agents.explain.background import operating_background

        return operating_background(CHECK_CUSTOMERS, model=model, seed=0).astype(np.float64)
    rng = np.random.default_rng(0)
    batch = model.new_batch(CHECK_CUSTOMERS)
    model.draw_customers(batch, np.arange(CHECK_CUSTOMERS), rng)
    obs = model.observe(batch).astype(np.float64)
    low = np.array([f.low for f in world.features])[16:]
    high = np.array([f.high for f in world.features])[16:]
    obs[:, 16:] = rng.uniform(low, high, (CHECK_CUSTOMERS, low.size))
    return obs


class ItemDecider:
    """Serve a single-product policy of the item world.

    Args:
        policy: The served policy.
        world: Its world.
        exploration: The exploration around the policy.
    """

    draws = 1
    """Uniform numbers each customer takes from the sampler."""

    def __init__(self, policy: Policy, world: ServedWorld, exploration: Exploration) -> None:
        self.policy = policy
        self.world = world
        self.exploration = exploration
        self.channel = np.asarray(world.actions.channel, dtype=np.int64)
        self.names = np.array(world.actions.names, dtype=object)
        self.network: Any = self._numpy_network()

    @property
    def logits(self) -> bool:
        """True if the scores are an actor's logits (the numpy copy), else probabilities."""
        return self.network is not None

    def _numpy_network(self) -> Any:
        """The actor's numpy copy, if it is one and matches the policy (else None)."""
        if self.policy.algorithm not in NUMPY_ALGORITHMS:
            return None
        from rec_env.agents.sb3.network import numpy_network

        network = numpy_network(self.policy)
        if network is None:
            return None
        cohort = _check_cohort(self.world)
        masks = self.world.allowed_actions(cohort, self.world.request_allowed())
        expected = self.policy.action_probabilities(cohort, masks)
        if not np.allclose(network.probabilities(cohort, masks), expected, atol=TOLERANCE, rtol=0):
            return None
        return network

    def scores(self, obs: np.ndarray, request_allowed: np.ndarray) -> np.ndarray:
        """``(n, A)`` logits of the numpy actor, or the policy's (consent-safe) probabilities."""
        if self.network is not None:
            return self.network.outputs(obs)
        masks = self.world.allowed_actions(obs, request_allowed)
        return self.policy.action_probabilities(obs, masks)

    def decide(
        self,
        obs: np.ndarray,
        request_allowed: np.ndarray,
        uniforms: np.ndarray,
        top: int | None = None,
    ) -> ItemOutcome:
        """Draw one action per customer (one uniform each), and its most probable ``top``."""
        # fresh network outputs: their memory takes the weights
        weights = policy_weights(self.scores(obs, request_allowed), self.logits, overwrite=True)
        consent = self.world.consent(obs)
        actions, propensities = sample_item_actions(
            weights, consent, self.channel, request_allowed, self.exploration, uniforms
        )
        columns = ColumnarDecisions(actions, propensities, request_allowed)
        if top is None:
            return ItemOutcome(columns, None)
        q = serving_probabilities(weights, consent, self.channel, request_allowed, self.exploration)
        return ItemOutcome(columns, self._top(q, top, actions, propensities))

    def _top(
        self, q: np.ndarray, top: int, actions: np.ndarray, propensities: np.ndarray
    ) -> list[dict[str, float]]:
        """Each row's ``top`` most probable actions; the served one shows its logged propensity."""
        k = min(top, q.shape[1])
        best = np.argpartition(-q, k - 1, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(q, best, axis=1), axis=1, kind="stable")
        best = np.take_along_axis(best, order, axis=1)
        rows = []
        for i, indices in enumerate(best):
            row = {self.names[a]: float(q[i, a]) for a in indices.tolist() if q[i, a] > 0.0}
            served = self.names[actions[i]]
            if served in row:  # the kernel's value, so that it equals the logged propensity
                row[served] = float(propensities[i])
            rows.append(row)
        return rows


class SlateDecider:
    """Serve a slate policy: its scoring vectors, decoded with exploration.

    Args:
        policy: The slate policy (:class:`~rec_env.agents.sb3.slate.SlatePPOPolicy`).
        world: Its world.
        exploration: The exploration around the policy.
    """

    def __init__(self, policy: Any, world: ServedWorld, exploration: Exploration) -> None:
        self.policy = policy
        self.world = world
        self.sampler = SlateSampler(policy.slate, exploration)
        self.draws = self.sampler.draws
        self.network: Any = self._numpy_network()

    def _numpy_network(self) -> Any:
        """The actor's numpy copy (its action means), if it matches the policy (else None)."""
        from rec_env.agents.sb3.network import numpy_network

        network = numpy_network(self.policy)
        if network is None:
            return None
        cohort = _check_cohort(self.world)
        expected = self.policy.scoring_vectors(cohort)
        copied = np.clip(network.outputs(cohort), -1.0, 1.0)
        return network if np.allclose(copied, expected, atol=TOLERANCE, rtol=0) else None

    def vectors(self, obs: np.ndarray) -> np.ndarray:
        """``(n, D)`` the actor's scoring vectors, clipped to the action box."""
        if self.network is not None:
            return np.clip(self.network.outputs(obs), -1.0, 1.0)
        return self.policy.scoring_vectors(obs)

    def decide(
        self, obs: np.ndarray, allowed_products: np.ndarray, uniforms: np.ndarray
    ) -> SlateOutcome:
        """Draw one message per customer (:attr:`draws` uniforms each)."""
        sampled = self.sampler.sample(
            self.vectors(obs), allowed_products, self.world.consent(obs), uniforms
        )
        request_allowed = self.world.request_allowed(excluded_products=~allowed_products)
        columns = ColumnarDecisions(
            sampled.actions,
            sampled.propensities,
            request_allowed,
            sampled.slates,
            sampled.position_probabilities,
            self.draws,
        )
        return SlateOutcome(columns, sampled)


def make_decider(
    policy: Policy, world: ServedWorld, exploration: Exploration
) -> ItemDecider | SlateDecider | None:
    """The decider of ``world`` (None in the strategy world, which the service decides itself)."""
    if world.kind == "item":
        return ItemDecider(policy, world, exploration)
    if world.kind == "slate":
        return SlateDecider(policy, world, exploration)
    return None
