"""Explain a policy's decisions with exact interventional Shapley values.

The explained value depends on the policy (:mod:`~.outputs`):

* PPO, A2C and MaskablePPO: the probability of the chosen action, after the mask;
* DQN: the Q-value of the chosen action;
* LinUCB and linear Thompson sampling: the estimated reward ``c(x)^T θ̂_a`` of the chosen
  action;
* any other policy: the probability of the chosen action, from ``action_probabilities``.

Contributions are interventional Shapley values against a background sample, by default of
customers in operation (:func:`~.background.operating_background`). They are exact, not sampled:
for every background row only the coalitions of the features where the customer differs from
that row are enumerated (:mod:`~.shapley`). The consent mask is part of the explained function
where the features carry consent (:mod:`~.masking`).

The contexts are those of the policy's feature space (``policy.features``): any ``(n, d)``
array with feature names, of which the env's 16 observed features are one instance. The result
is a :class:`shap.Explanation`, so ``shap.plots.waterfall`` and ``shap.plots.beeswarm`` work on
it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from rec_env.agents.base import Policy
from rec_env.agents.explain.background import DEFAULT_BACKGROUND_SIZE, operating_background
from rec_env.agents.explain.masking import ActionMasking
from rec_env.agents.explain.outputs import ExplainedOutput, OutputKind, explained_output
from rec_env.agents.explain.threads import pinned_threads
from rec_env.catalog import ActionTable, load_catalog
from rec_env.features import FEATURE_NAMES, consent_columns
from rec_env.item_actions import ItemActionTable

if TYPE_CHECKING:
    import shap

__all__ = ["PolicyExplainer"]


class PolicyExplainer:
    """Exact Shapley explanations of a policy's decisions.

    Build it once (it draws the background and copies the network), then call :meth:`explain`
    for any number of customers.

    Args:
        policy: The policy to explain.
        background: ``(n, d)`` background contexts in the policy's feature space
            (``policy.features``); customers in operation drawn with
            :func:`~.background.operating_background` if omitted (env features only).
        n_background: Size of the drawn background.
        population: Population of the drawn background.
        catalog: The action catalog: the channels of the actions, for the consent mask, where
            the features carry consent.
        seed: Seed of the drawn background.
        table: The actions' table (names and ``channel``) instead of the catalog's, e.g. an
            item world's :class:`~rec_env.item_actions.ItemActionTable`.

    Raises:
        ValueError: If the policy and the catalog disagree on the actions, or a foreign
            feature space comes without a background.

    Example:
        >>> explainer = PolicyExplainer(load_policy("runs/ppo-seed0"))  # doctest: +SKIP
        >>> explanation = explainer.explain(obs)  # doctest: +SKIP
        >>> shap.plots.waterfall(explanation[0])  # doctest: +SKIP
    """

    def __init__(
        self,
        policy: Policy,
        background: np.ndarray | None = None,
        n_background: int = DEFAULT_BACKGROUND_SIZE,
        population: str | Path = "default",
        catalog: str | Path = "strategy",
        seed: int = 0,
        table: ActionTable | ItemActionTable | None = None,
    ) -> None:
        self.policy = policy
        self.feature_names: tuple[str, ...] = policy.features.names
        """Names of the ``d`` features of the contexts: the policy's feature space."""
        env_features = self.feature_names == FEATURE_NAMES
        self.table: ActionTable | ItemActionTable | None = None
        if consent_columns(self.feature_names) is not None:
            self.table = (
                table if table is not None else ActionTable.from_catalog(load_catalog(catalog))
            )
            if self.table.n_actions != policy.n_actions:
                raise ValueError(
                    f"the policy has {policy.n_actions} actions, the catalog {self.table.n_actions}"
                )
        if background is None:
            if not env_features:
                raise ValueError("explaining contexts other than the env's needs a background")
            background = operating_background(n_background, population, catalog, seed)
        self.background = self._check_contexts(background, "background")
        self.masking = ActionMasking.for_features(self.feature_names, policy.n_actions, self.table)
        self.output: ExplainedOutput = explained_output(policy, self.masking, self.background)

    # ------------------------------------------------------------------ public API
    @property
    def kind(self) -> OutputKind:
        """What is explained: ``"probability"``, ``"q_value"`` or ``"estimated_reward"``."""
        return self.output.kind

    @property
    def action_names(self) -> tuple[str, ...]:
        """Names of the actions: the catalog's, or the policy's without one."""
        return self.table.names if self.table is not None else tuple(self.policy.action_names)

    def output_label(self, action: int) -> str:
        """What is explained for ``action``, e.g. ``P(discount_15_email)``."""
        return f"{self.output.symbol}({self.action_names[action]})"

    def explain(
        self,
        obs: np.ndarray,
        actions: np.ndarray | None = None,
        excluded: np.ndarray | None = None,
    ) -> shap.Explanation:
        """Explain the decisions for ``n`` customers.

        Args:
            obs: ``(n, d)`` contexts (one customer may be 1-D).
            actions: ``(n,)`` actions to explain (e.g. the ones served); by default the
                policy's choice: the allowed action with the highest explained value.
            excluded: ``(n, n_actions)`` bool, True for actions the caller excluded; combined
                with the consent mask.

        Returns:
            A :class:`shap.Explanation` with ``values`` ``(n, d)``, ``base_values`` ``(n,)``,
            ``data`` ``(n, d)`` and ``feature_names``. It also carries ``actions``,
            ``model_outputs``, ``coalitions`` and ``multiply_adds`` (each ``(n,)``: the work
            done, a deterministic measure of cost), ``output_labels`` and ``kind``.
            ``base_values + values.sum(1) == model_outputs`` (local accuracy).

        Raises:
            ValueError: On a wrong shape, an action out of range, or an action that is masked
                for its customer.
        """
        import shap

        data = np.atleast_2d(np.asarray(obs, dtype=np.float64))
        obs = self._check_contexts(obs, "obs")
        n, n_actions = obs.shape[0], self.policy.n_actions
        if excluded is None:
            excluded = np.zeros((n, n_actions), dtype=bool)
        excluded = np.asarray(excluded, dtype=bool).reshape(n, n_actions)
        with pinned_threads():
            allowed = self.masking.allowed(obs, excluded)
            if not allowed.any(axis=1).all():
                raise ValueError("every action is excluded for some customer")
            actions = self._check_actions(obs, actions, allowed)
            results = [
                self.output.shap_values(obs[i], int(actions[i]), excluded[i]) for i in range(n)
            ]
        explanation = shap.Explanation(
            values=np.array([r.values for r in results]),
            base_values=np.array([r.base_value for r in results]),
            data=data,
            feature_names=list(self.feature_names),
        )
        explanation.actions = actions
        explanation.model_outputs = np.array([r.output for r in results])
        explanation.coalitions = np.array([r.coalitions for r in results])
        explanation.multiply_adds = np.array([r.multiply_adds for r in results])
        explanation.output_labels = [self.output_label(int(a)) for a in actions]
        explanation.kind = self.kind
        return explanation

    def as_dict(
        self, explanation: shap.Explanation, i: int = 0, top: int | None = None
    ) -> dict[str, Any]:
        """One customer's explanation as JSON-ready data, largest contributions first.

        Args:
            explanation: What :meth:`explain` returned (not a slice of it).
            i: The customer's row.
            top: Keep only the ``top`` largest contributions (all by default).
        """
        values = np.asarray(explanation.values[i], dtype=np.float64)
        data = np.asarray(explanation.data[i], dtype=np.float64)
        order = np.argsort(-np.abs(values), kind="stable")[:top]
        action = int(explanation.actions[i])
        return {
            "kind": self.kind,
            "explained_output": self.output_label(action),
            "action": action,
            "base_value": float(explanation.base_values[i]),
            "model_output": float(explanation.model_outputs[i]),
            "contributions": [
                {
                    "feature": self.feature_names[j],
                    "value": float(data[j]),
                    "contribution": float(values[j]),
                }
                for j in order
            ],
        }

    def model_output(
        self, obs: np.ndarray, actions: np.ndarray, excluded: np.ndarray | None = None
    ) -> np.ndarray:
        """The explained value ``(n,)`` computed directly, without Shapley values."""
        obs = self._check_contexts(obs, "obs")
        if excluded is not None:
            excluded = np.asarray(excluded, dtype=bool).reshape(obs.shape[0], -1)
        return self.output.direct(obs, np.asarray(actions, dtype=np.intp), excluded)

    # ------------------------------------------------------------------ internals
    def _check_actions(
        self, obs: np.ndarray, actions: np.ndarray | None, allowed: np.ndarray
    ) -> np.ndarray:
        n, n_actions = allowed.shape
        if actions is None:
            return self.output.default_actions(obs, allowed)
        actions = np.asarray(actions, dtype=np.intp).reshape(n)
        if ((actions < 0) | (actions >= n_actions)).any():
            raise ValueError(f"actions must be in [0, {n_actions})")
        if not self.output.masked_actions_allowed and not allowed[np.arange(n), actions].all():
            raise ValueError("cannot explain an action that is masked for its customer")
        return actions

    def _check_contexts(self, obs: np.ndarray, name: str) -> np.ndarray:
        obs = np.atleast_2d(np.asarray(obs, dtype=np.float32))
        d = len(self.feature_names)
        if obs.ndim != 2 or obs.shape[1] != d or obs.shape[0] == 0:
            raise ValueError(f"{name} must have shape (n, {d}), got {obs.shape}")
        if not np.isfinite(obs).all():
            raise ValueError(f"{name} must be finite")
        return obs
