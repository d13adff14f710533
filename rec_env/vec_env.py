"""``RecommendationVecEnv``: an SB3 ``VecEnv`` implemented directly on the batched core.

Unlike ``DummyVecEnv``, which loops over single envs in Python, this steps all customers with
one call to :meth:`rec_env.dynamics.CustomerModel.step`. Importing this module imports
Stable-Baselines3 (and so torch); ``rec_env.make_vec_env`` imports it lazily.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from stable_baselines3.common.vec_env.base_vec_env import (
    VecEnv,
    VecEnvIndices,
    VecEnvObs,
    VecEnvStepReturn,
)

from rec_env.dynamics import CustomerPool, RewardMode
from rec_env.env import build_model
from rec_env.features import FEATURE_NAMES, OBS_HIGH, OBS_LOW

__all__ = ["RecommendationVecEnv"]


class RecommendationVecEnv(VecEnv):
    """``n_envs`` customers stepped together; each slot starts a new customer when one ends.

    It autoresets: when a customer churns (``terminated``) or reaches the horizon (truncated),
    the returned observation is the new customer's, the last one is in
    ``infos[i]["terminal_observation"]``, and ``infos[i]["TimeLimit.truncated"]`` says whether it
    was a truncation. The ``infos`` of slots that did not end are one shared empty dict per
    step: copy an entry before writing to it. ``env_method("action_masks")`` and
    ``env_method("expected_rewards")`` answer per slot, so sb3-contrib ``MaskablePPO`` works.

    Args:
        n_envs: Number of customers simulated in parallel.
        seed: Seed of the single generator behind every draw.
        profile: Population name or YAML path.
        reward_mode: ``"profit"``, ``"conversion"`` or ``"rule"``.
        catalog: Action catalog name or YAML path.
        horizon: Cycles per customer before truncation.
        cycle_days: Days per cycle.
    """

    def __init__(
        self,
        n_envs: int = 64,
        seed: int | None = None,
        profile: str | Path = "default",
        reward_mode: RewardMode = "profit",
        catalog: str | Path = "strategy",
        horizon: int = 52,
        cycle_days: float = 7.0,
    ) -> None:
        if n_envs < 1:
            raise ValueError(f"n_envs must be at least 1, got {n_envs}")
        if int(horizon) < 1:
            raise ValueError(f"horizon must be at least 1, got {horizon}")
        self.model = build_model(profile, reward_mode, catalog, cycle_days)
        self.horizon = int(horizon)
        self.feature_names = FEATURE_NAMES
        self.action_names = self.model.actions.names
        self.render_mode = None
        observation_space = spaces.Box(OBS_LOW, OBS_HIGH, dtype=np.float32)
        action_space = spaces.Discrete(self.model.actions.n_actions)
        super().__init__(n_envs, observation_space, action_space)
        self._rng = np.random.default_rng(seed)
        self._pool = CustomerPool(self.model.sampler, self._rng, chunk=max(256, 8 * n_envs))
        self._batch = self.model.new_batch(n_envs)
        self._t = np.zeros(n_envs, dtype=np.int64)
        self._actions = np.zeros(n_envs, dtype=np.intp)
        self._all = np.arange(n_envs)
        self._started = False

    # ------------------------------------------------------------------ VecEnv API
    def seed(self, seed: int | None = None) -> Sequence[int | None]:
        """Reseed the generator; takes effect at the next :meth:`reset`."""
        self._seeds = [seed for _ in range(self.num_envs)]
        return self._seeds

    def reset(self) -> VecEnvObs:
        """Draw a new customer in every slot."""
        if self._seeds and self._seeds[0] is not None:
            self._rng = np.random.default_rng(self._seeds[0])
            self._pool = CustomerPool(self.model.sampler, self._rng, chunk=self._pool.chunk)
        self._reset_seeds()
        self._reset_options()
        self.model.draw_customers(self._batch, self._all, self._pool)
        self._t[:] = 0
        self._started = True
        return self.model.observe(self._batch)

    def step_async(self, actions: np.ndarray) -> None:
        """Store the actions of the next step."""
        self._actions[:] = np.asarray(actions).reshape(self.num_envs)

    def step_wait(self) -> VecEnvStepReturn:
        """Advance every customer one cycle and restart the ones that ended."""
        if not self._started:
            raise RuntimeError("call reset() before step()")
        out = self.model.step(self._batch, self._actions, self._rng)
        self._t += 1
        terminated = out.terminated
        truncated = self._t >= self.horizon
        dones = terminated | truncated
        obs = out.observation
        # Slots that did not end share one fresh empty dict (building n dicts per step would
        # cost more than the dynamics); slots that ended get their own.
        infos: list[dict[str, Any]] = [{}] * self.num_envs
        done_rows = np.flatnonzero(dones)
        if done_rows.size:
            final_obs = obs[done_rows]
            time_limit = (truncated & ~terminated)[done_rows].tolist()
            for k, i in enumerate(done_rows.tolist()):
                infos[i] = {
                    "terminal_observation": final_obs[k],
                    "TimeLimit.truncated": time_limit[k],
                }
            self.model.draw_customers(self._batch, done_rows, self._pool)
            self._t[done_rows] = 0
            obs[done_rows] = self._batch.features[:, done_rows].T
        return obs, out.values[0].astype(np.float32), dones, infos

    def close(self) -> None:
        """Nothing to release."""

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        """The attribute of the env, repeated for each selected slot."""
        value = getattr(self, attr_name)
        return [value for _ in self._get_indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        """Set an attribute (shared by all slots)."""
        setattr(self, attr_name, value)

    def env_method(
        self,
        method_name: str,
        *method_args: Any,
        indices: VecEnvIndices = None,
        **method_kwargs: Any,
    ) -> list[Any]:
        """Call a batched method once and split its result per slot.

        Supported: ``action_masks`` and ``expected_rewards``.
        """
        if method_name not in ("action_masks", "expected_rewards"):
            raise AttributeError(f"RecommendationVecEnv has no per-slot method {method_name!r}")
        result = getattr(self, method_name)(*method_args, **method_kwargs)
        return [result[i] for i in self._get_indices(indices)]

    def env_is_wrapped(
        self, wrapper_class: type[gym.Wrapper], indices: VecEnvIndices = None
    ) -> list[bool]:
        """No slot is wrapped."""
        return [False for _ in self._get_indices(indices)]

    def get_images(self) -> Sequence[np.ndarray | None]:
        """No images: the env renders text only."""
        return [None for _ in range(self.num_envs)]

    def _get_indices(self, indices: VecEnvIndices) -> Iterable[int]:
        if indices is None:
            return range(self.num_envs)
        if isinstance(indices, int):
            return [indices]
        return indices

    # ------------------------------------------------------------------ batched extras
    def action_masks(self) -> np.ndarray:
        """``(n_envs, n_actions)`` bool consent masks."""
        return self.model.action_masks(self._batch)

    def expected_rewards(self) -> np.ndarray:
        """``(n_envs, n_actions)`` true expected immediate rewards (oracle access)."""
        return self.model.expected_rewards(self._batch)
