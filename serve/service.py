"""The decision service: a verified policy, exploration, the decision log and online learning.

:class:`DecisionService` is what the HTTP layer calls; it knows nothing about HTTP. It is built
once per process (:meth:`DecisionService.from_settings`) from the run directory of the settings
only, after checking the model file's SHA-256 against ``run.json``.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from rec_env.agents.base import OnlinePolicy, Policy
from rec_env.agents.runs import RunInfo, load_run
from rec_env.catalog import ActionTable, load_catalog
from rec_env.features import FEATURE_NAMES, consent_columns, consent_masks
from rec_env.serve.decision_log import (
    DecisionLog,
    RewardConflictError,
    RewardReceipt,
    UnknownEventError,
)
from rec_env.serve.exploration import Exploration, sample_actions
from rec_env.serve.fast_policy import NUMPY_ALGORITHMS, ProbabilityFunction, numpy_probabilities
from rec_env.serve.metrics import Metrics
from rec_env.serve.settings import ServeSettings
from rec_env.serve.state import PolicyStateStore

if TYPE_CHECKING:  # pragma: no cover
    from rec_env.agents.explain.explainer import PolicyExplainer

__all__ = ["ActionNotAllowedError", "DecisionService", "Decisions", "RewardOutcome"]

_CHECK_CUSTOMERS = 256
"""Customers on which a numpy copy of the policy must match the policy at startup."""


def _catalog(info: RunInfo) -> str:
    """The action catalog the run was trained with."""
    return info.settings.catalog


class ActionNotAllowedError(ValueError):
    """An action name is unknown, or may not be excluded or explained here."""


@dataclass(frozen=True)
class Decisions:
    """The decisions of one request.

    Attributes:
        event_ids: ``n`` event ids, as logged.
        actions: ``(n,)`` served action indices.
        propensities: ``(n,)`` probability of each served action.
        probabilities: ``(n, A)`` probabilities the actions were drawn from.
    """

    event_ids: list[str]
    actions: np.ndarray
    propensities: np.ndarray
    probabilities: np.ndarray


@dataclass(frozen=True)
class RewardOutcome:
    """What happened to a posted reward.

    Attributes:
        receipt: The decision log's receipt.
        learned: True if the online policy learned from the reward now.
        n_updates: Rewards the online policy has learned from.
    """

    receipt: RewardReceipt
    learned: bool
    n_updates: int


class DecisionService:
    """Serve decisions of one policy, log them, and learn from rewards if the policy is online.

    Args:
        policy: The policy (already verified and loaded).
        info: Its ``run.json``.
        settings: The service settings.
        log: The decision log.
        explainer: The explainer of ``policy``, or None to disable explanations.
        state_store: Where an online policy's updates are persisted, if anywhere.
        n_updates: Rewards the policy had already learned from (restored state).
        metrics: Where decisions, explanations and rewards are counted (default: new).
    """

    def __init__(
        self,
        policy: Policy,
        info: RunInfo,
        settings: ServeSettings,
        log: DecisionLog,
        explainer: PolicyExplainer | None = None,
        state_store: PolicyStateStore | None = None,
        n_updates: int = 0,
        metrics: Metrics | None = None,
    ) -> None:
        self.policy = policy
        self.info = info
        self.settings = settings
        self.log = log
        self.explainer = explainer
        self.state_store = state_store
        self.n_updates = n_updates
        self.metrics = metrics if metrics is not None else Metrics()
        self._saved_updates = n_updates
        self.actions = ActionTable.from_catalog(load_catalog(_catalog(info)))
        columns = consent_columns(FEATURE_NAMES)
        assert columns is not None  # the service's features always hold the consent flags
        self._consent_columns = columns
        names = tuple(info.action_names)
        if self.actions.names != names or tuple(policy.action_names) != names:
            raise ValueError(
                f"{settings.model_dir}: the policy's actions do not match its catalog "
                f"({', '.join(self.actions.names)})"
            )
        self.exploration = Exploration(settings.exploration, settings.epsilon, settings.temperature)
        self.seed = settings.seed if settings.seed is not None else secrets.randbits(63)
        self.random = np.random.default_rng(self.seed)
        self.model_version = f"{info.algorithm}-{info.model_sha256[:12]}"
        self._lock = threading.Lock()
        self._probabilities = self._fast_probabilities()
        self._warm_up()
        log.register_model(self.model_version, info.algorithm, info.model_sha256, info.action_names)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_settings(
        cls, settings: ServeSettings, metrics: Metrics | None = None
    ) -> DecisionService:
        """Load and verify the run of ``settings``, restore online state, open the log.

        Args:
            settings: The service settings.
            metrics: Where to count decisions, explanations and rewards (default: new).

        Raises:
            ValueError: If the run directory is missing or invalid, its model file does not
                match its SHA-256, the state directory belongs to another model, or the
                decision log cannot be opened.
        """
        policy, info = load_run(settings.model_dir, verify=True)
        state_store, n_updates = None, 0
        if isinstance(policy, OnlinePolicy) and settings.state_dir is not None:
            state_store = PolicyStateStore(settings.state_dir, info.algorithm, info.model_sha256)
            restored = state_store.load()
            if restored is not None:
                policy, n_updates = restored
        log = DecisionLog(settings.db)
        try:
            explainer = None
            if settings.explain:
                from rec_env.agents.explain.explainer import PolicyExplainer

                explainer = PolicyExplainer(
                    policy,
                    n_background=settings.n_background,
                    population=info.settings.profile,
                    catalog=_catalog(info),
                    seed=settings.explain_seed,
                )
            return cls(policy, info, settings, log, explainer, state_store, n_updates, metrics)
        except BaseException:
            log.close()
            raise

    def _fast_probabilities(self) -> ProbabilityFunction:
        """The policy's probabilities in numpy if it is an SB3 MLP that allows it (checked)."""
        from rec_env.agents.explain import population_background

        if self.policy.algorithm not in NUMPY_ALGORITHMS:
            return self.policy.action_probabilities
        cohort = population_background(
            _CHECK_CUSTOMERS, self.info.settings.profile, _catalog(self.info), seed=0
        ).astype(np.float64)
        fast = numpy_probabilities(self.policy, self.actions, cohort)
        return fast if fast is not None else self.policy.action_probabilities

    def _warm_up(self) -> None:
        """Compile numba kernels and import shap now, not in the first requests.

        Runs the policy and the explainer once on a dummy customer; the policy's generator is
        put back, so warming up draws nothing.
        """
        generator = self.policy.random_.bit_generator
        state = generator.state
        dummy = np.zeros((2, len(FEATURE_NAMES)))
        self.policy.action_probabilities(dummy, self.actions.consent_masks(dummy))
        if self.explainer is not None:
            self.explainer.explain(dummy[:1])
        generator.state = state

    def close(self) -> None:
        """Persist unsaved online updates and close the decision log."""
        with self._lock:
            if self.state_store is not None and self.n_updates != self._saved_updates:
                self._save_state()
        self.log.close()

    # ------------------------------------------------------------------ properties
    @property
    def assume_consent(self) -> tuple[str, ...]:
        """Channels on which unknown consent counts as given (default: none)."""
        return self.settings.assume_consent

    @property
    def online(self) -> bool:
        """True if the policy learns from rewards."""
        return isinstance(self.policy, OnlinePolicy)

    def action_index(self, name: str) -> int:
        """Index of the action ``name``.

        Raises:
            ActionNotAllowedError: If there is no such action.
        """
        try:
            return self.actions.index(name)
        except KeyError as exc:
            raise ActionNotAllowedError(exc.args[0]) from None

    def excludable_index(self, name: str) -> int:
        """Index of the action ``name``, which a caller wants to exclude.

        Raises:
            ActionNotAllowedError: If there is no such action, or it is the do-nothing action.
        """
        index = self.action_index(name)
        if index == self.actions.no_action:
            raise ActionNotAllowedError(
                f"{name} cannot be excluded: it is the fallback when nothing else is allowed"
            )
        return index

    def allowed_actions(self, obs: np.ndarray, excluded: np.ndarray | None = None) -> np.ndarray:
        """``(n, A)`` bool: consent on the action's channel and not ``excluded``.

        Args:
            obs: ``(n, 16)`` features.
            excluded: ``(A,)`` or ``(n, A)`` bool, True for actions the caller excluded. The
                do-nothing action needs no consent and cannot be excluded, so every row keeps
                at least one allowed action.
        """
        allowed = consent_masks(obs[:, self._consent_columns], self.actions.channel)
        if excluded is not None:
            allowed &= ~excluded
        return allowed

    def describe_action(self, index: int) -> dict[str, Any]:
        """``index``, ``name``, ``offer`` and ``channel`` of an action."""
        table = self.actions
        return {
            "index": index,
            "name": table.names[index],
            "offer": table.offers[index],
            "channel": table.channel_names[index],
        }

    # ------------------------------------------------------------------ decisions
    def decide(
        self,
        obs: np.ndarray,
        allowed: np.ndarray,
        customer_ids: Sequence[str | None] | None = None,
    ) -> Decisions:
        """Decide for ``obs`` ``(n, 16)`` among ``allowed`` ``(n, A)`` and log the decisions.

        One call of the policy for the whole batch, exploration, one draw per customer from the
        seeded generator, and one transaction in the decision log.
        """
        with self._lock:
            policy_probabilities = self._probabilities(obs, allowed)
            probabilities = self.exploration.apply(policy_probabilities, allowed)
            actions = sample_actions(probabilities, self.random)
            n_updates = self.n_updates
        event_ids = self.log.log_decisions(
            self.model_version,
            n_updates,
            obs,
            allowed,
            probabilities,
            actions,
            customer_ids,
        )
        self.metrics.add_decisions(obs.shape[0])
        propensities = probabilities[np.arange(obs.shape[0]), actions]
        return Decisions(event_ids, actions, propensities, probabilities)

    def explain(
        self, obs: np.ndarray, action: int | None, excluded: np.ndarray, top: int | None = None
    ) -> dict[str, Any]:
        """SHAP explanation of ``action`` (default: the most likely allowed one) for one customer.

        Args:
            obs: ``(1, 16)`` features.
            action: Action index to explain, or None.
            excluded: ``(1, A)`` bool, True for actions the caller excluded.
            top: Keep the ``top`` largest contributions.

        Raises:
            RuntimeError: If the service was started without an explainer.
        """
        if self.explainer is None:
            raise RuntimeError("explanations are disabled (explain = false)")
        actions = None if action is None else np.array([action])
        if self.online:  # the explainer reads learned state that updates change
            with self._lock:
                explanation = self.explainer.explain(obs, actions=actions, excluded=excluded)
        else:
            explanation = self.explainer.explain(obs, actions=actions, excluded=excluded)
        self.metrics.add_explanation()
        return self.explainer.as_dict(explanation, i=0, top=top)

    # ------------------------------------------------------------------ rewards
    def reward(self, event_id: str, reward: float) -> RewardOutcome:
        """Record a decision's reward and let an online policy learn from it, exactly once.

        A reward for a decision of another model version is logged but not learned from.

        Raises:
            UnknownEventError: If no decision has this id.
            RewardConflictError: If the decision already has a different reward.
        """
        try:
            receipt = self.log.record_reward(event_id, reward)
        except UnknownEventError:
            self.metrics.add_reward("unknown")
            raise
        except RewardConflictError:
            self.metrics.add_reward("conflict")
            raise
        self.metrics.add_reward("duplicate" if receipt.duplicate else "recorded", reward)
        decision, policy = receipt.decision, self.policy
        if (
            receipt.duplicate
            or not isinstance(policy, OnlinePolicy)
            or decision.model_version != self.model_version
        ):
            return RewardOutcome(receipt, False, self.n_updates)
        with self._lock:
            policy.update(
                decision.features[None, :],
                np.array([decision.action]),
                np.array([reward], dtype=np.float64),
            )
            self.n_updates += 1
            if (
                self.state_store is not None
                and self.n_updates - self._saved_updates >= self.settings.state_save_every
            ):
                self._save_state()
            return RewardOutcome(receipt, True, self.n_updates)

    def _save_state(self) -> None:
        """Snapshot the online policy (the caller holds the lock)."""
        assert self.state_store is not None and isinstance(self.policy, OnlinePolicy)
        self.state_store.save(self.policy, self.n_updates)
        self._saved_updates = self.n_updates
