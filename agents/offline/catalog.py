"""A policy learned on some of a catalog's actions, deciding over the whole catalog.

A campaign log rarely tries every action the simulator knows: the synthetic campaign logs four
of the strategy world's 16, a retailer's A/B test two or three. A policy learned on such a log
scores only the actions it saw, while ``recenv serve`` decides over the world's whole catalog.
:class:`CatalogPolicy` bridges the two: it gives every action outside the learned ones
probability 0, passes the caller's masks (combined with consent over the catalog's channels) to
the learned policy restricted to its own actions, and falls back to doing nothing for a customer
none of whose learned actions is allowed (one who consents to no channel the log used).

It saves as ``policy.json`` (its own configuration with the learned policy's, by algorithm) and
the learned policy's ``state.npz``, without pickle, so a run directory with it loads through
:func:`~rec_env.agents.integrity.load_verified_policy` like any other.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from rec_env.agents.base import POLICY_FILE, FeaturesLike, Policy

__all__ = ["CatalogPolicy"]

_STATE_FILE = "state.npz"


class CatalogPolicy(Policy):
    """A learned policy over a subset of a catalog, as a policy over the whole catalog.

    Args:
        n_actions: Size of the catalog.
        action_names: The catalog's action names.
        random_state: Seed of the policy's generator (sampling is the learned policy's).
        action_channels: Channel of each catalog action (consent is checked over these).
        features: Feature space of the observations (the learned policy's).
        inner: The learned policy's ``{"algorithm": ..., "config": ...}``, as saved; its
            actions must be catalog actions, and its files ``policy.json`` and ``state.npz``.
        fallback: The catalog action taken when no learned action is allowed (doing nothing).

    Raises:
        ValueError: If a learned action or the fallback is not in the catalog, or the learned
            policy's algorithm cannot be nested.
    """

    algorithm: ClassVar[str] = "catalog_subset"
    saved_files: ClassVar[tuple[str, ...]] = (POLICY_FILE, _STATE_FILE)

    def __init__(
        self,
        n_actions: int,
        action_names: Sequence[str] | None = None,
        random_state: int | None = None,
        *,
        action_channels: Sequence[str] | None = None,
        features: FeaturesLike = None,
        inner: Mapping[str, Any],
        fallback: str = "no_action",
    ) -> None:
        super().__init__(
            n_actions,
            action_names,
            random_state,
            action_channels=action_channels,
            features=features,
        )
        from rec_env.agents.integrity import policy_class

        algorithm = str(inner.get("algorithm", ""))
        if algorithm == self.algorithm:
            raise ValueError("a catalog_subset policy cannot hold another one")
        cls = policy_class(algorithm)
        if tuple(cls.saved_files) != self.saved_files:
            raise ValueError(
                f"a {algorithm} policy saves {', '.join(cls.saved_files)}; only policies saved "
                f"as {' and '.join(self.saved_files)} can be restricted to a catalog"
            )
        self.inner: Policy = cls(**dict(inner.get("config", {})))
        self._bind(fallback)

    @classmethod
    def wrap(
        cls,
        policy: Policy,
        catalog_names: Sequence[str],
        catalog_channels: Sequence[str] | None = None,
        fallback: str = "no_action",
    ) -> CatalogPolicy:
        """``policy`` (already learned) deciding over the catalog ``catalog_names``.

        Raises:
            ValueError: As the constructor.
        """
        wrapped = cls.__new__(cls)
        Policy.__init__(
            wrapped,
            len(catalog_names),
            catalog_names,
            policy.random_state,
            action_channels=catalog_channels,
            features=policy.features,
        )
        if isinstance(policy, CatalogPolicy):
            raise ValueError("a catalog_subset policy cannot hold another one")
        if tuple(policy.saved_files) != cls.saved_files:
            raise ValueError(
                f"a {policy.algorithm} policy saves {', '.join(policy.saved_files)}; only "
                f"policies saved as {' and '.join(cls.saved_files)} can be restricted to a catalog"
            )
        wrapped.inner = policy
        wrapped._bind(fallback)
        return wrapped

    def _bind(self, fallback: str) -> None:
        """Map the learned policy's actions and the fallback onto catalog columns."""
        unknown = [name for name in self.inner.action_names if name not in self.action_names]
        if unknown:
            raise ValueError(
                f"the learned actions {', '.join(unknown)} are not in the catalog "
                f"({', '.join(self.action_names)})"
            )
        if fallback not in self.action_names:
            raise ValueError(f"fallback {fallback!r} is not a catalog action")
        self.fallback = fallback
        self.columns = np.array([self.action_names.index(n) for n in self.inner.action_names])
        self._fallback_index = self.action_names.index(fallback)
        supported = np.zeros(self.n_actions, dtype=bool)
        supported[self.columns] = True
        supported[self._fallback_index] = True
        supported.flags.writeable = False
        self._supported = supported

    @property
    def supported_actions(self) -> np.ndarray:
        """The learned actions and the fallback (read-only; the service reads it per request)."""
        return self._supported

    def _action_probabilities(self, obs: np.ndarray, masks: np.ndarray | None) -> np.ndarray:
        n = obs.shape[0]
        probabilities = np.zeros((n, self.n_actions))
        own = None if masks is None else masks[:, self.columns]
        # The learned policy adds its own consent, if it knows its channels.
        own = self.inner.allowed_actions(obs, own)
        decided = np.ones(n, dtype=bool) if own is None else own.any(axis=1)
        if decided.any():
            rows = np.flatnonzero(decided)
            inner = self.inner._action_probabilities(obs[rows], None if own is None else own[rows])
            probabilities[rows[:, None], self.columns[None, :]] = inner
        if not decided.all():
            rest = ~decided
            if masks is not None and not masks[rest, self._fallback_index].all():
                raise ValueError(
                    f"a row of action_masks allows none of the learned actions "
                    f"({', '.join(self.inner.action_names)}) nor {self.fallback!r}"
                )
            probabilities[rest, self._fallback_index] = 1.0
        return probabilities

    # ------------------------------------------------------------------ persistence
    def get_config(self) -> dict[str, Any]:
        """The catalog, the fallback and the learned policy's configuration."""
        return {
            **super().get_config(),
            "inner": {"algorithm": self.inner.algorithm, "config": self.inner.get_config()},
            "fallback": self.fallback,
        }

    def learned_arrays(self) -> dict[str, np.ndarray]:
        """The learned policy's arrays."""
        return self.inner.learned_arrays()

    def _save_state(self, directory: Path) -> None:
        self.inner._save_state(directory)

    def _load_state(self, directory: Path) -> None:
        self.inner._load_state(directory)
