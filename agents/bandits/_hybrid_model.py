r"""The model behind the hybrid bandits: validation, learned state, posterior.

:class:`_HybridBandit` holds what :class:`~rec_env.agents.bandits.hybrid.HybridLinUCB` and
:class:`~rec_env.agents.bandits.hybrid.HybridLinearThompsonSampling` share; the model and its
closed form are in the docstring of :mod:`rec_env.agents.bandits.hybrid`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rec_env.agents.bandits._hybrid_kernels import (
    HybridPosterior,
    _shared_updates,
    bilinear_variances,
    hybrid_posterior,
    n_pairs,
    shared_only_posterior,
)
from rec_env.agents.bandits._linear_kernels import (
    _linear_moments,
    _padded,
    _refresh_derived,
    _scaled_contexts,
    _sherman_morrison_updates,
)
from rec_env.agents.bandits.base import (
    BanditPolicy,
    _check_finite_observations,
    _check_number,
    _feedback_arrays,
)
from rec_env.agents.bandits.linear import _scaling
from rec_env.agents.threads import pinned_threads
from rec_env.feature_space import FeatureSpace

__all__ = ["ActionFeaturesLike"]

ActionFeaturesLike = np.ndarray | Sequence[Sequence[float]] | None
"""``(n_actions, k)`` action features, or ``None`` (one constant feature per action)."""


def _check_action_features(values: ActionFeaturesLike, n_actions: int) -> np.ndarray:
    """``values`` as a read-only ``(n_actions, k)`` float64 array (``None``: ones, ``k = 1``).

    Raises:
        ValueError: If they are not finite numbers of that shape.
    """
    if values is None:
        array = np.ones((n_actions, 1))
    else:
        try:
            array = np.array(values, dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError("action_features must be an (n_actions, k) array of numbers") from None
        if array.ndim != 2 or array.shape[0] != n_actions or array.shape[1] < 1:
            raise ValueError(
                f"action_features must have shape ({n_actions}, k >= 1), got {array.shape}"
            )
        if not np.isfinite(array).all():
            raise ValueError("action_features must be finite")
    array.setflags(write=False)
    return array


def _check_interactions(
    names: Sequence[str] | None, features: FeatureSpace
) -> tuple[tuple[str, ...] | None, np.ndarray]:
    """The interaction feature names and their context columns, the bias (last) included.

    Raises:
        ValueError: If a name is not a feature of the space or appears twice.
    """
    if names is None:
        return None, np.arange(features.d + 1)
    if isinstance(names, str):
        raise ValueError("interaction_features must be a list of feature names, not a string")
    names = tuple(names)
    unknown = sorted(set(names) - set(features.names))
    repeated = sorted({name for name in names if names.count(name) > 1})
    if unknown or repeated:
        raise ValueError(
            "interaction_features must be distinct features of the space; "
            f"unknown: {unknown}, repeated: {repeated}"
        )
    columns = [list(features.names).index(name) for name in names]
    return names, np.array([*columns, features.d], dtype=np.intp)


@dataclass(eq=False, kw_only=True)
class _HybridBandit(BanditPolicy):
    r"""Shared (bilinear) plus optional per-action ridge regression (module docstring).

    Attributes:
        gram_inverse_, reward_vectors_, counts_: The disjoint statistics :math:`A_a^{-1}`,
            :math:`b_a` and counts (``per_action``).
        shared_gram_, shared_rewards_, counts_: Upper triangles of :math:`\sum z z^\top` in
            Kronecker form ``(u_sym, k_sym)``, :math:`\sum r z` as ``(u, k)`` and counts
            (``per_action=False``).
    """

    action_features: ActionFeaturesLike = field(default=None, repr=False)
    regularization: float = 1.0
    shared_regularization: float = 1.0
    per_action: bool = True
    interaction_features: Sequence[str] | None = None

    def _check_hyperparameters(self) -> None:
        self.regularization = _check_number(
            "regularization", self.regularization, low=0.0, low_inclusive=False
        )
        self.shared_regularization = _check_number(
            "shared_regularization", self.shared_regularization, low=0.0, low_inclusive=False
        )
        if not isinstance(self.per_action, bool | np.bool_):
            raise ValueError(f"per_action must be a boolean, got {self.per_action!r}")
        self.per_action = bool(self.per_action)
        self.action_features = _check_action_features(self.action_features, self.n_actions)
        self.interaction_features, self._select = _check_interactions(
            self.interaction_features, self.features
        )

    @property
    def state_names(self) -> tuple[str, ...]:  # type: ignore[override]
        """The learned arrays of this variant."""
        if self.per_action:
            return ("gram_inverse_", "reward_vectors_", "counts_")
        return ("shared_gram_", "shared_rewards_", "counts_")

    @property
    def d(self) -> int:
        """Context size: the number of features plus the bias."""
        return self.features.d + 1

    @property
    def _columns(self) -> np.ndarray | None:
        """Interaction columns for the numpy steps (``None``: every column, no copy)."""
        return None if self.interaction_features is None else self._select

    def _init_state(self) -> None:
        self._scaling = _scaling(self.features)
        d, u, k = self.d, self._select.shape[0], self.action_features.shape[1]
        if self.per_action:
            self.gram_inverse_ = np.tile(np.eye(d) / self.regularization, (self.n_actions, 1, 1))
            self.reward_vectors_ = np.zeros((self.n_actions, d))
        else:
            self.shared_gram_ = np.zeros((n_pairs(u), n_pairs(k)))
            self.shared_rewards_ = np.zeros((u, k))
        self.counts_ = np.zeros(self.n_actions, dtype=np.int64)
        self._state_loaded()

    def _state_loaded(self) -> None:
        if self.per_action:  # the disjoint estimates, kept up to date by the update kernel
            rows = _padded(self.n_actions)
            self._theta = np.zeros((rows, _padded(self.d)))
            self._packed = np.zeros((rows, _padded(n_pairs(self.d))))
            changed = np.ones(self.n_actions, dtype=bool)
            _refresh_derived(
                self.gram_inverse_, self.reward_vectors_, changed, self._theta, self._packed
            )
        self._posterior: HybridPosterior | None = None

    def get_config(self) -> dict[str, Any]:
        """Constructor arguments, JSON-ready (the action features as nested lists)."""
        config = super().get_config()
        config["action_features"] = self.action_features.tolist()
        if self.interaction_features is not None:
            config["interaction_features"] = list(self.interaction_features)
        return config

    # ------------------------------------------------------------------ posterior
    def posterior(self) -> HybridPosterior:
        """The derived arrays, rebuilt if an update came since the last decision.

        Raises:
            ValueError: If the learned state is too large for them to be finite.
        """
        posterior = self._posterior
        if posterior is None:
            with pinned_threads():
                posterior = self._posterior = self._build_posterior()
        return posterior

    def _build_posterior(self) -> HybridPosterior:
        rows, d = _padded(self.n_actions), self.d
        if self.per_action:
            disjoint = self._theta[: self.n_actions, :d]
            return hybrid_posterior(
                self.gram_inverse_, disjoint, self._columns, self.action_features,
                self.regularization, self.shared_regularization, self._packed.shape,
            )  # fmt: skip
        return shared_only_posterior(
            self.shared_gram_, self.shared_rewards_, self._select, self.action_features,
            self.shared_regularization, (rows, _padded(d)),
        )  # fmt: skip

    @property
    def theta_(self) -> np.ndarray:
        r"""``(n_actions, d)`` effective coefficients :math:`\hat{\bar\theta}_a` over ``x``.

        The estimated reward is linear in the context: ``contexts(obs) @ theta_.T``.
        """
        return self.posterior().theta[: self.n_actions, : self.d]

    @property
    def shared_coefficients_(self) -> np.ndarray:
        r"""``(u, k)`` :math:`\hat B`: weight of each interaction × action feature pair."""
        return self.posterior().shared_mean

    def contexts(self, obs: np.ndarray) -> np.ndarray:
        """``(n, d)`` contexts of ``obs`` (see :func:`linear_contexts`)."""
        return _scaled_contexts(self.features.check(obs), self._scaling)

    def moments(self, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        r"""Per-customer predicted rewards and squared confidence widths.

        Returns:
            ``(n, n_actions)`` arrays :math:`x^\top\hat{\bar\theta}_a` and the posterior
            variance of that estimate over :math:`v^2` (:math:`x^\top\Sigma_a x`).
        """
        obs = self.features.check(obs)
        posterior = self.posterior()
        if self.per_action:
            return _linear_moments(
                obs, self._scaling, posterior.theta, posterior.packed, self.n_actions
            )
        contexts = _scaled_contexts(obs, self._scaling)
        means = contexts @ posterior.theta[: self.n_actions, : self.d].T
        with pinned_threads():
            variances = bilinear_variances(
                contexts[:, self._select], posterior.shared_covariance, self.action_features
            )
        return means, variances

    def update(self, obs: np.ndarray, actions: np.ndarray, rewards: np.ndarray) -> None:
        """Learn from a batch, sample by sample in order (exactly the sequential result).

        Args:
            obs: ``(n, F)`` observations of the policy's feature space.
            actions: ``(n,)`` actions taken.
            rewards: ``(n,)`` rewards received.

        Raises:
            ValueError: On mismatched lengths, actions out of range, non-finite observations or
                rewards, or values so large that the state would overflow; the state is
                unchanged then.
        """
        obs = self.features.check(obs)
        _check_finite_observations(obs)
        actions, rewards = _feedback_arrays(obs.shape[0], actions, rewards)
        if self.per_action:
            _sherman_morrison_updates(
                obs, self._scaling, actions, rewards, self.gram_inverse_,
                self.reward_vectors_, self.counts_, self._theta, self._packed,
            )  # fmt: skip
        else:
            _shared_updates(
                obs, self._scaling, self._select, self.action_features, actions, rewards,
                self.shared_gram_, self.shared_rewards_, self.counts_,
            )  # fmt: skip
        self._posterior = None
