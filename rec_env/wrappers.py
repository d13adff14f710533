"""Wrappers for training with your own RL code (plain Stable-Baselines3, CleanRL, the zoo).

The env's observations are raw business quantities (days up to 730, order values up to $2,000,
flags of 0 or 1), and its profit reward is a rare ~$50 purchase against message effects worth
cents. Generic RL code with default settings learns poorly from either. These wrappers fix both
with public pieces of the env only:

* :class:`ScaleObservation` maps every feature to [0, 1] (:func:`scale_features`).
* :class:`ExpectedReward` replaces the sampled reward by its expectation ``E[r | s, a]``
  (``expected_rewards()[action]``), for training: same expected return, none of the noise.

The docs' "Training with your own RL code" (``docs/guide/training.md``) gives the settings
measured to work with them.
"""

from __future__ import annotations

from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from rec_env.features import OBS_HIGH
from rec_env.scaling import InputScaling, Scaling

__all__ = ["ExpectedReward", "ScaleObservation", "Scaling", "scale_features"]

_SCALINGS = {scaling: InputScaling.from_bounds(OBS_HIGH, scaling) for scaling in ("linear", "log")}


def scale_features(obs: np.ndarray, scaling: Scaling = "log") -> np.ndarray:
    """Observations ``(..., n_features)`` in the env's units → float32 values in [0, 1].

    ``"linear"``: ``x / high``. ``"log"``: ``log1p(x) / log1p(high)`` for the non-binary features
    whose upper bound exceeds 1 (days, counts, USD) and ``x / high`` for the others, so that 7
    against 14 days since the last message, or 1 against 2 messages in 30 days, stay far apart
    after scaling (``x / 365`` squeezes them to a few hundredths). Bounds come from
    :data:`rec_env.features.FEATURES`.

    Raises:
        ValueError: For an unknown ``scaling``.
    """
    if scaling not in _SCALINGS:
        raise ValueError(f"scaling must be 'linear' or 'log', got {scaling!r}")
    return _SCALINGS[scaling](obs)


class ScaleObservation(
    gym.ObservationWrapper[np.ndarray, np.int64, np.ndarray], gym.utils.RecordConstructorArgs
):
    """Observations scaled to [0, 1] feature by feature (:func:`scale_features`).

    Neural networks with default initialisation expect inputs of order one; the raw features
    range over 0–2000. Apply the same scaling at inference (``scale_features(obs)``).

    Args:
        env: A ``rec_env/Recommendation-v0`` env (possibly wrapped).
        scaling: ``"log"`` (default) or ``"linear"``.
    """

    def __init__(self, env: gym.Env[np.ndarray, np.int64], scaling: Scaling = "log") -> None:
        gym.utils.RecordConstructorArgs.__init__(self, scaling=scaling)
        gym.ObservationWrapper.__init__(self, env)
        scale_features(np.zeros_like(OBS_HIGH), scaling)  # validate early
        self.scaling: Scaling = scaling
        shape = env.observation_space.shape
        self.observation_space = spaces.Box(0.0, 1.0, shape=shape, dtype=np.float32)

    def observation(self, observation: np.ndarray) -> np.ndarray:
        """The scaled observation."""
        return scale_features(observation, self.scaling)


class ExpectedReward(
    gym.Wrapper[np.ndarray, np.int64, np.ndarray, np.int64], gym.utils.RecordConstructorArgs
):
    """Reward = the expected immediate reward of the action taken, ``E[r | s, a]`` (training).

    The simulator computes ``expected_rewards()`` with the same formulas ``step`` samples from,
    so every policy keeps its expected return while the reward loses the noise of rare
    purchases. Transitions (opens, purchases, unsubscribes, churn) are still sampled. The
    sampled reward stays in ``info["sampled_reward"]``; wrap ``Monitor`` *inside* this wrapper
    (as SB3's ``make_vec_env(wrapper_class=...)`` does) to log the sampled episode returns.
    Evaluate policies on the plain env.

    Args:
        env: A ``rec_env/Recommendation-v0`` env (possibly wrapped).
    """

    def __init__(self, env: gym.Env[np.ndarray, np.int64]) -> None:
        gym.utils.RecordConstructorArgs.__init__(self)
        gym.Wrapper.__init__(self, env)

    def step(
        self, action: np.int64 | int
    ) -> tuple[np.ndarray, SupportsFloat, bool, bool, dict[str, Any]]:
        """Step, and return the expected reward of ``action`` before the step."""
        expected = float(self.env.unwrapped.expected_rewards()[int(action)])  # type: ignore[attr-defined]
        obs, reward, terminated, truncated, info = self.env.step(action)
        info["sampled_reward"] = float(reward)
        return obs, expected, terminated, truncated, info
