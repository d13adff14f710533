"""Baseline policies: random, fixed action, classic rule, myopic oracle, contact cool-down.

Every baseline decides through :class:`~rec_env.agents.base.Policy`, so it respects consent
when it knows its actions' channels (see :func:`rec_env.agents.registry.make_baseline`).
"""

from __future__ import annotations

from typing import Any, ClassVar, Protocol

import numpy as np

from rec_env.agents.base import FeaturesLike, Policy, masked_argmax, uniform_over_allowed
from rec_env.catalog import ActionTable
from rec_env.dynamics import CustomerModel
from rec_env.features import CHANNELS, CONSENT_FEATURES
from rec_env.rollout import CohortResult, run_cohort

__all__ = [
    "ContactCooldown",
    "FixedActionPolicy",
    "FlagTargetedPolicy",
    "MyopicOracle",
    "RandomPolicy",
    "RuleBasedPolicy",
    "best_fixed_action",
]


class _OracleSource(Protocol):
    def expected_rewards(self) -> np.ndarray: ...


def _one_hot(actions: np.ndarray, n_actions: int) -> np.ndarray:
    probs = np.zeros((actions.shape[0], n_actions))
    probs[np.arange(actions.shape[0]), actions] = 1.0
    return probs


class RandomPolicy(Policy):
    """Uniformly random over the allowed actions."""

    algorithm: ClassVar[str] = "random"

    def _action_probabilities(self, obs: np.ndarray, masks: np.ndarray | None) -> np.ndarray:
        """Uniform over allowed actions."""
        return uniform_over_allowed(obs.shape[0], self.n_actions, masks)

    def _predict(
        self, obs: np.ndarray, masks: np.ndarray | None, deterministic: bool
    ) -> np.ndarray:
        """A random allowed action (random even when ``deterministic``)."""
        return super()._predict(obs, masks, deterministic=False)


class FixedActionPolicy(Policy):
    """Always the same action; the do-nothing action where it is masked.

    Args:
        action: Index of the action.
        fallback: Action used where ``action`` is masked.
    """

    algorithm: ClassVar[str] = "fixed"

    def __init__(self, n_actions: int, action: int, fallback: int = 0, **kwargs: Any) -> None:
        super().__init__(n_actions, **kwargs)
        if not 0 <= action < n_actions:
            raise ValueError(f"action must be in [0, {n_actions}), got {action}")
        self.action = int(action)
        self.fallback = int(fallback)

    def _action_probabilities(self, obs: np.ndarray, masks: np.ndarray | None) -> np.ndarray:
        """One-hot on the action, or on the fallback where the action is masked."""
        actions = np.full(obs.shape[0], self.action)
        if masks is not None:
            actions = np.where(masks[:, self.action], self.action, self.fallback)
        return _one_hot(actions, self.n_actions)

    def get_config(self) -> dict[str, Any]:
        """Constructor arguments."""
        return {**super().get_config(), "action": self.action, "fallback": self.fallback}


class MyopicOracle(Policy):
    """Argmax of the true expected immediate reward (``expected_rewards()``).

    It sees the customers' hidden parameters, so it is the best possible one-step policy: the
    ceiling for contextual bandits. Attach it to an env, a vec env or a cohort with
    :meth:`set_env` before predicting.
    """

    algorithm: ClassVar[str] = "oracle"

    def __init__(self, n_actions: int, **kwargs: Any) -> None:
        super().__init__(n_actions, **kwargs)
        self.source: _OracleSource | None = None

    def set_env(self, env: _OracleSource) -> None:
        """Use ``env.expected_rewards()`` for the customers being decided."""
        self.source = env

    def _action_probabilities(self, obs: np.ndarray, masks: np.ndarray | None) -> np.ndarray:
        """One-hot on the action with the highest expected immediate reward."""
        if self.source is None:
            raise RuntimeError("MyopicOracle needs set_env(env) before it can decide")
        expected = np.atleast_2d(self.source.expected_rewards())
        if expected.shape[0] != obs.shape[0]:
            raise ValueError("the oracle's env and the observations hold different customers")
        return _one_hot(masked_argmax(expected, masks), self.n_actions)


class ContactCooldown(Policy):
    """A non-myopic rule: follow ``base`` but rest between messages.

    Sends nothing unless at least ``min_days_between_contacts`` days have passed since the last
    delivered message and fewer than ``max_contacts_30d`` messages went out in the last 30 days.
    Wrapped around :class:`MyopicOracle` it beats the oracle over a full horizon, because it
    leaves room for fatigue to fade and does not push customers into unsubscribing or churning.

    Args:
        base: The policy that picks what to send when a message is allowed.
        no_action: Index of the do-nothing action.
        min_days_between_contacts: Cool-down after each delivered message.
        max_contacts_30d: Cap on messages per 30 days.
    """

    algorithm: ClassVar[str] = "cooldown"

    def __init__(
        self,
        base: Policy,
        no_action: int = 0,
        min_days_between_contacts: float = 21.0,
        max_contacts_30d: float = 2.0,
    ) -> None:
        super().__init__(
            base.n_actions,
            base.action_names,
            action_channels=base.action_channels,
            features=base.features,
        )
        self.base = base
        self.no_action = int(no_action)
        self.min_days = float(min_days_between_contacts)
        self.max_contacts = float(max_contacts_30d)
        self._days_column = self.features.index("days_since_contact")
        self._contacts_column = self.features.index("contacts_last_30d")

    def set_env(self, env: Any) -> None:
        """Forward the env to the base policy (for the oracle)."""
        if hasattr(self.base, "set_env"):
            self.base.set_env(env)

    def _resting(self, obs: np.ndarray) -> np.ndarray:
        return (obs[:, self._days_column] < self.min_days) | (
            obs[:, self._contacts_column] >= self.max_contacts
        )

    def _action_probabilities(self, obs: np.ndarray, masks: np.ndarray | None) -> np.ndarray:
        """The base policy's probabilities, or all mass on no action while resting."""
        probs = self.base.action_probabilities(obs, masks)
        resting = self._resting(self.features.check(obs))
        probs[resting] = 0.0
        probs[resting, self.no_action] = 1.0
        return probs


class RuleBasedPolicy(Policy):
    """The classic CRM heuristic.

    A discount to discount-sensitive customers, free shipping to free-shipping-preferring ones,
    each on the consented channel with the best observed response; nothing to everyone else.
    Build it from a catalog with :meth:`from_catalog`.

    Args:
        n_actions: Size of the action space.
        discount_by_channel: Discount action per channel (email, sms, push).
        shipping_by_channel: Free-shipping action per channel.
        no_action: Index of the do-nothing action.
    """

    algorithm: ClassVar[str] = "rule"

    def __init__(
        self,
        n_actions: int,
        discount_by_channel: list[int],
        shipping_by_channel: list[int],
        no_action: int = 0,
        **kwargs: Any,
    ) -> None:
        super().__init__(n_actions, **kwargs)
        rates = ("email_opens", "sms_response", "push_response")
        self._rate_columns = [self.features.index(name) for name in rates]
        self._consent_columns = [self.features.index(name) for name in CONSENT_FEATURES]
        self._discount_column = self.features.index("discount_sensitive")
        self._shipping_column = self.features.index("free_shipping_preferred")
        self.no_action = int(no_action)
        self.discount_by_channel = np.asarray(discount_by_channel, dtype=np.intp)
        self.shipping_by_channel = np.asarray(shipping_by_channel, dtype=np.intp)
        for name, table in (
            ("discount_by_channel", self.discount_by_channel),
            ("shipping_by_channel", self.shipping_by_channel),
        ):
            if table.shape != (len(CHANNELS),) or not np.all((table >= 0) & (table < n_actions)):
                raise ValueError(f"{name} needs one valid action per channel {CHANNELS}")

    @classmethod
    def from_catalog(
        cls, actions: ActionTable, discount_rate: float = 0.15, features: FeaturesLike = None
    ) -> RuleBasedPolicy:
        """The rule for a compiled catalog, sending the given discount rate."""

        def by_channel(wanted: Any) -> list[int]:
            table = [actions.no_action] * len(CHANNELS)
            for i in range(actions.n_actions):
                if actions.channel[i] < len(CHANNELS) and wanted(i):
                    table[int(actions.channel[i])] = i
            return table

        return cls(
            actions.n_actions,
            by_channel(lambda i: np.isclose(actions.discount[i], discount_rate)),
            by_channel(lambda i: actions.shipping[i] > 0),
            actions.no_action,
            action_names=actions.names,
            action_channels=actions.channel_names,
            features=features,
        )

    def get_config(self) -> dict[str, Any]:
        """Constructor arguments."""
        return {
            **super().get_config(),
            "discount_by_channel": self.discount_by_channel.tolist(),
            "shipping_by_channel": self.shipping_by_channel.tolist(),
            "no_action": self.no_action,
        }

    def _action_probabilities(self, obs: np.ndarray, masks: np.ndarray | None) -> np.ndarray:
        """One-hot on the rule's action."""
        obs = self.features.check(obs)
        rates = obs[:, self._rate_columns].astype(float)
        consent = obs[:, self._consent_columns] > 0.5  # picks a channel; masks below enforce
        rates = np.where(consent, rates, -1.0)
        best = np.argmax(rates, axis=1)
        any_consent = consent.any(axis=1)
        actions = np.full(obs.shape[0], self.no_action)
        shipping = (obs[:, self._shipping_column] > 0.5) & any_consent
        discount = (obs[:, self._discount_column] > 0.5) & any_consent
        actions = np.where(shipping, self.shipping_by_channel[best], actions)
        actions = np.where(discount, self.discount_by_channel[best], actions)
        if masks is not None:
            actions = np.where(masks[np.arange(obs.shape[0]), actions], actions, self.no_action)
        return _one_hot(actions, self.n_actions)


class FlagTargetedPolicy(Policy):
    """One action for customers with a binary flag set, another for the rest.

    ``FlagTargetedPolicy(n, "discount_sensitive", discount_15_email, no_action)`` sends targeted
    discounts. Masked choices fall back to ``fallback``.

    Args:
        flag: Name of a binary observed feature.
        if_flag: Action for customers with the flag.
        otherwise: Action for the others.
        fallback: Action where the chosen one is masked.
    """

    algorithm: ClassVar[str] = "flag_targeted"

    def __init__(
        self,
        n_actions: int,
        flag: str,
        if_flag: int,
        otherwise: int = 0,
        fallback: int = 0,
        **kwargs: Any,
    ) -> None:
        super().__init__(n_actions, **kwargs)
        self._flag_column = self.features.index(flag)
        self.flag, self.if_flag, self.otherwise = flag, int(if_flag), int(otherwise)
        self.fallback = int(fallback)

    def _action_probabilities(self, obs: np.ndarray, masks: np.ndarray | None) -> np.ndarray:
        """One-hot on the flag's action."""
        obs = self.features.check(obs)
        actions = np.where(obs[:, self._flag_column] > 0.5, self.if_flag, self.otherwise)
        if masks is not None:
            allowed = masks[np.arange(obs.shape[0]), actions]
            actions = np.where(allowed, actions, self.fallback)
        return _one_hot(actions, self.n_actions)

    def get_config(self) -> dict[str, Any]:
        """Constructor arguments."""
        return {
            **super().get_config(),
            "flag": self.flag,
            "if_flag": self.if_flag,
            "otherwise": self.otherwise,
            "fallback": self.fallback,
        }


def best_fixed_action(
    model: CustomerModel, n_customers: int, horizon: int, seed: int
) -> tuple[int, CohortResult]:
    """The fixed action with the highest mean profit over the horizon, and its run.

    Every action is run on the same seeded cohort (common random numbers), with the do-nothing
    action where it is masked.
    """
    table = model.actions
    runs = [
        run_cohort(
            model,
            FixedActionPolicy(
                table.n_actions, a, table.no_action, action_channels=table.channel_names
            ),
            n_customers,
            horizon,
            seed,
        )
        for a in range(table.n_actions)
    ]
    best = int(np.argmax([r.profit.mean() for r in runs]))
    return best, runs[best]
