"""``RecommendationVecEnv``: an SB3 ``VecEnv`` implemented directly on the batched core.

Unlike ``DummyVecEnv``, which loops over single envs in Python, this steps all customers with
one call to :meth:`rec_env.dynamics.CustomerModel.step`. Importing this module imports
Stable-Baselines3 (and so torch); ``rec_env.make_vec_env`` imports it lazily.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3.common.vec_env.base_vec_env import (
    VecEnv,
    VecEnvIndices,
    VecEnvObs,
    VecEnvStepReturn,
)

from rec_env.autoreset import CustomerSlots
from rec_env.dynamics import RewardMode
from rec_env.env import model_spaces, resolve_settings, shared_model
from rec_env.features import FEATURE_NAMES
from rec_env.settings import EnvSettings

__all__ = ["RecommendationVecEnv"]


class RecommendationVecEnv(VecEnv):
    """``n_envs`` customers stepped together; each slot starts a new customer when one ends.

    It autoresets the SB3 way: when a customer churns (``terminated``) or reaches the horizon
    (truncated), the returned observation is the new customer's, the last one is in
    ``infos[i]["terminal_observation"]``, and ``infos[i]["TimeLimit.truncated"]`` says whether it
    was a truncation. The ``infos`` of slots that did not end are one shared empty dict per
    step: copy an entry before writing to it. ``env_method("action_masks")`` and
    ``env_method("expected_rewards")`` answer per slot, so sb3-contrib ``MaskablePPO`` works.
    The slots' bookkeeping (:class:`~rec_env.autoreset.CustomerSlots`) is shared with the
    Gymnasium vector env.

    Args:
        n_envs: Number of customers simulated in parallel.
        seed: Seed of the single generator behind every draw.
        settings: The simulated world (:class:`~rec_env.settings.EnvSettings` or a mapping).
        profile: Population name or YAML path (overrides ``settings``).
        reward_mode: ``"profit"``, ``"conversion"`` or ``"rule"`` (overrides ``settings``).
        catalog: Action catalog name or YAML path (overrides ``settings``).
        horizon: Cycles per customer before truncation (overrides ``settings``).
        cycle_days: Days per cycle (overrides ``settings``).
        render_mode: ``None`` or ``"rgb_array"`` (pictures from :meth:`get_images`).
        customers: Twins of your own customers (:func:`rec_env.fitting.twins.fit_twins`): every
            new customer is one of their twins, drawn from its posterior (strategy world; the
            twins' population must be ``profile``).
    """

    def __init__(
        self,
        n_envs: int = 64,
        seed: int | None = None,
        settings: EnvSettings | Mapping[str, Any] | None = None,
        *,
        profile: str | Path | None = None,
        reward_mode: RewardMode | None = None,
        catalog: str | Path | None = None,
        horizon: int | None = None,
        cycle_days: float | None = None,
        render_mode: str | None = None,
        world: str | None = None,
        products: str | Path | None = None,
        customers: Any = None,
        **item_options: Any,
    ) -> None:
        if n_envs < 1:
            raise ValueError(f"n_envs must be at least 1, got {n_envs}")
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        self.settings = resolve_settings(
            settings,
            profile=profile,
            reward_mode=reward_mode,
            catalog=catalog,
            horizon=horizon,
            cycle_days=cycle_days,
            world=world,
            products=products,
            **item_options,
        )
        self.model = shared_model(self.settings)
        self.horizon = self.settings.horizon
        self.feature_names = getattr(self.model, "feature_names", FEATURE_NAMES)
        self.action_names = self.model.actions.names
        observation_space, action_space = model_spaces(self.model)
        self.render_mode = render_mode  # read by VecEnv.__init__ through get_attr
        super().__init__(n_envs, observation_space, action_space)
        self.slots = CustomerSlots(
            self.model, n_envs, self.horizon, np.random.default_rng(seed), customers
        )
        self._actions: np.ndarray = np.zeros(n_envs, dtype=np.intp)

    # ------------------------------------------------------------------ VecEnv API
    def seed(self, seed: int | None = None) -> Sequence[int | None]:
        """Reseed the generator; takes effect at the next :meth:`reset`."""
        self._seeds = [seed for _ in range(self.num_envs)]
        return self._seeds

    def reset(self) -> VecEnvObs:
        """Draw a new customer in every slot."""
        if self._seeds and self._seeds[0] is not None:
            self.slots.reseed(np.random.default_rng(self._seeds[0]))
        self._reset_seeds()
        self._reset_options()
        return self.slots.start()

    def step_async(self, actions: np.ndarray) -> None:
        """Remember the actions of the next step (:meth:`step_wait` copies and checks them)."""
        self._actions = np.asarray(actions)

    def step_wait(self) -> VecEnvStepReturn:
        """Advance every customer one cycle and restart the ones that ended."""
        out, terminated, truncated = self.slots.step(self._actions)
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
            obs[done_rows] = self.slots.restart(done_rows)
        return obs, out.reward.astype(np.float32), dones, infos

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
        """One picture per slot with ``render_mode="rgb_array"`` (see ``rec_env.render``)."""
        if self.render_mode != "rgb_array":
            return [None for _ in range(self.num_envs)]
        return self.slots.render_rgb()

    def _get_indices(self, indices: VecEnvIndices) -> Iterable[int]:
        if indices is None:
            return range(self.num_envs)
        if isinstance(indices, int):
            return [indices]
        return indices

    # ------------------------------------------------------------------ batched extras
    def action_masks(self) -> np.ndarray:
        """``(n_envs, n_actions)`` bool consent masks."""
        return self.slots.action_masks()

    def expected_rewards_of(self, actions: np.ndarray) -> np.ndarray:
        """``(n_envs,)`` true expected immediate reward of each slot's given action."""
        return self.slots.expected_rewards_of(actions)

    def expected_rewards(self) -> np.ndarray:
        """``(n_envs, n_actions)`` true expected immediate rewards (oracle access)."""
        return self.slots.expected_rewards()
