r"""Run the env's linear bandits on the contexts of another data set, by zero padding.

:class:`~rec_env.agents.bandits.LinUCB` and :class:`~rec_env.agents.bandits.LinearThompsonSampling`
are compiled for the env's 16 observed features: their context is
:math:`x = (\mathrm{obs} / \mathrm{OBS\_HIGH}, 1)`. :class:`PaddedContextBandit` feeds them the
:math:`k \le 16` features of another data set (e.g. Hillstrom's 11) instead, standardised and
zero-padded:

.. math::

    \mathrm{obs} = (z \odot \mathrm{OBS\_HIGH}_{1..k},\ 0, \dots, 0), \qquad
    z = (c - m) / s,

so that the bandit sees :math:`x = (z, 0, \dots, 0, 1)`. Zero features are inert in ridge
regression: the padded rows and columns of :math:`A_a = \lambda I + \sum x x^\top` stay
:math:`\lambda I` (a separate block), :math:`b_a` and :math:`\hat\theta_a` stay 0 there, and
:math:`x^\top A_a^{-1} x` only involves the other block. The bandit is therefore exactly the
disjoint LinUCB or linear TS on :math:`(z, 1)` (up to floating-point rounding in
:math:`z \cdot h / h`), with one copy of the compiled kernels and no change to them.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import numpy as np

from rec_env.agents.bandits.base import BanditPolicy
from rec_env.agents.base import OnlinePolicy
from rec_env.features import OBS_HIGH

__all__ = ["PaddedContextBandit"]


class PaddedContextBandit(OnlinePolicy):
    """A linear bandit of :mod:`rec_env.agents.bandits` on ``k <= 16`` foreign features.

    Args:
        bandit: A fresh or trained :class:`~rec_env.agents.bandits.LinUCB` or
            :class:`~rec_env.agents.bandits.LinearThompsonSampling`.
        mean: ``(k,)`` centre :math:`m` of the features (e.g. their training mean).
        scale: ``(k,)`` scale :math:`s` of the features (e.g. their training standard
            deviation); zeros are replaced by 1.

    Raises:
        ValueError: If ``k`` exceeds the 16 features the bandits are compiled for, or the
            shapes of ``mean`` and ``scale`` differ.
    """

    algorithm: ClassVar[str] = "padded_context_bandit"

    def __init__(self, bandit: BanditPolicy, mean: np.ndarray, scale: np.ndarray) -> None:
        super().__init__(bandit.n_actions, bandit.action_names, bandit.random_state)
        mean = np.asarray(mean, dtype=np.float64)
        scale = np.asarray(scale, dtype=np.float64)
        if mean.ndim != 1 or mean.shape != scale.shape:
            raise ValueError(f"mean and scale must be 1-D of equal length, got {mean.shape}")
        if mean.shape[0] > OBS_HIGH.shape[0]:
            raise ValueError(
                f"at most {OBS_HIGH.shape[0]} context features fit the linear bandits, "
                f"got {mean.shape[0]}"
            )
        self.bandit = bandit
        self.mean = mean
        self.scale = np.where(scale > 0, scale, 1.0)
        self._high = OBS_HIGH[: mean.shape[0]].astype(np.float64)

    @classmethod
    def fitted_to(cls, bandit: BanditPolicy, contexts: np.ndarray) -> PaddedContextBandit:
        """The adapter standardising by the mean and standard deviation of ``contexts``."""
        return cls(bandit, contexts.mean(axis=0), contexts.std(axis=0))

    def observations(self, contexts: np.ndarray) -> np.ndarray:
        """``(n, 16)`` padded observations the bandit decodes back to standardised contexts.

        Raises:
            ValueError: If ``contexts`` does not have ``k`` columns.
        """
        contexts = np.atleast_2d(np.asarray(contexts, dtype=np.float64))
        if contexts.ndim != 2 or contexts.shape[1] != self.mean.shape[0]:
            raise ValueError(
                f"contexts must have shape (n, {self.mean.shape[0]}), got {contexts.shape}"
            )
        obs = np.zeros((contexts.shape[0], OBS_HIGH.shape[0]))
        obs[:, : self.mean.shape[0]] = (contexts - self.mean) / self.scale * self._high
        return obs

    def action_probabilities(
        self, obs: np.ndarray, action_masks: np.ndarray | None = None
    ) -> np.ndarray:
        """The bandit's ``(n, n_actions)`` probabilities for contexts ``obs`` ``(n, k)``."""
        return self.bandit.action_probabilities(self.observations(obs), action_masks)

    def predict(
        self,
        obs: np.ndarray,
        action_masks: np.ndarray | None = None,
        deterministic: bool = True,
    ) -> np.ndarray:
        """The bandit's actions ``(n,)`` for contexts ``obs`` ``(n, k)``."""
        return self.bandit.predict(self.observations(obs), action_masks, deterministic)

    def update(self, obs: np.ndarray, actions: np.ndarray, rewards: np.ndarray) -> None:
        """Let the bandit learn from contexts ``obs`` ``(n, k)``, actions and rewards."""
        self.bandit.update(self.observations(obs), actions, rewards)

    def save(self, directory: str | Path) -> None:
        """Not supported: the adapter is for offline benchmarks; save ``self.bandit`` instead.

        Raises:
            NotImplementedError: Always.
        """
        raise NotImplementedError("PaddedContextBandit cannot be saved; save its .bandit")
