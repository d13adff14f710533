"""``RecommendationVectorEnv``: a native Gymnasium ``VectorEnv`` on the batched core.

``gym.make_vec("rec_env/Recommendation-v0", num_envs=1024,
vectorization_mode="vector_entry_point")`` returns it (the registration's ``vector_entry_point``).
It steps all customers with one call to :meth:`rec_env.dynamics.CustomerModel.step`, where
``SyncVectorEnv`` would loop over ``num_envs`` single envs in Python. Importing this module
imports numpy and gymnasium only (no Stable-Baselines3, no torch).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from rec_env.autoreset import CustomerSlots
from rec_env.dynamics import ITEM_OUTCOME_FIELDS, RewardMode, StepOutcome
from rec_env.env import (
    RENDER_MODES,
    check_render_mode,
    model_spaces,
    resolve_settings,
    shared_model,
)
from rec_env.features import FEATURE_NAMES
from rec_env.item_env import ITEM_INFO_KEYS
from rec_env.settings import EnvSettings

__all__ = ["RecommendationVectorEnv"]

_INFO_KEYS = ("profit", "revenue", "purchased", "delivered", "opened", "unsubscribed", "churned")
_INFO_ROWS = [StepOutcome.FIELDS.index(key) for key in _INFO_KEYS]
_ITEM_INFO_ROWS = [ITEM_OUTCOME_FIELDS.index(key) for key in ITEM_INFO_KEYS]


class RecommendationVectorEnv(VectorEnv[np.ndarray, np.ndarray, np.ndarray]):
    """``num_envs`` customers as one Gymnasium vector env, with ``NEXT_STEP`` autoreset.

    Each slot behaves like ``gym.make("rec_env/Recommendation-v0")`` inside ``SyncVectorEnv``
    (the default ``AutoresetMode.NEXT_STEP``): the step in which a customer churns or reaches the
    horizon returns their last observation with ``terminated`` or ``truncated`` set; the next
    step ignores that slot's action and returns a new customer's first observation, reward 0,
    and ``terminated = truncated = False``.

    ``infos`` follow Gymnasium's vector convention: ``infos["profit"]`` … (the single env's step
    info keys) are ``(num_envs,)`` arrays with a mask ``infos["_profit"]`` of the slots that
    stepped; ``infos["segment"]`` / ``infos["_segment"]`` name the new customers of slots that
    were (auto)reset. The slots' bookkeeping (:class:`~rec_env.autoreset.CustomerSlots`) is the
    one of the SB3 VecEnv (:class:`~rec_env.vec_env.RecommendationVecEnv`).

    One generator drives every slot: ``reset(seed=s)`` reseeds it, and the same seed and actions
    give the same run. ``reset(options={"reset_mask": mask})`` resets only the masked slots.

    Args:
        num_envs: Number of customers simulated in parallel.
        settings: The simulated world (:class:`~rec_env.settings.EnvSettings` or a mapping).
        profile: Population name or YAML path (overrides ``settings``).
        reward_mode: ``"profit"``, ``"conversion"`` or ``"rule"`` (overrides ``settings``).
        catalog: Action catalog name or YAML path (overrides ``settings``).
        horizon: Cycles per customer before truncation (overrides ``settings``).
        cycle_days: Days per cycle (overrides ``settings``).
        max_episode_steps: A second truncation limit, as the registration's ``TimeLimit``
            applies to ``gym.make`` (``gym.make_vec`` passes it); customers are truncated after
            ``min(horizon, max_episode_steps)`` cycles.
        render_mode: ``None``, ``"ansi"`` or ``"rgb_array"``: :meth:`render` returns one frame
            per slot.
        customers: Twins of your own customers (:func:`rec_env.fitting.twins.fit_twins`): every
            new customer is one of their twins (strategy world; ``profile`` = their population).
    """

    metadata: ClassVar[dict[str, Any]] = {
        "render_modes": list(RENDER_MODES),
        "render_fps": 4,
        "autoreset_mode": AutoresetMode.NEXT_STEP,
    }

    def __init__(
        self,
        num_envs: int = 1,
        settings: EnvSettings | Mapping[str, Any] | None = None,
        *,
        profile: str | Path | None = None,
        reward_mode: RewardMode | None = None,
        catalog: str | Path | None = None,
        horizon: int | None = None,
        cycle_days: float | None = None,
        max_episode_steps: int | None = None,
        render_mode: str | None = None,
        world: str | None = None,
        products: str | Path | None = None,
        customers: Any = None,
        **item_options: Any,
    ) -> None:
        check_render_mode(render_mode)
        if max_episode_steps is not None and int(max_episode_steps) < 1:
            raise ValueError(f"max_episode_steps must be at least 1, got {max_episode_steps}")
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
        self.horizon = min(self.settings.horizon, int(max_episode_steps or self.settings.horizon))
        self.num_envs = int(num_envs)
        self.render_mode = render_mode
        self.feature_names = getattr(self.model, "feature_names", FEATURE_NAMES)
        self.action_names = self.model.actions.names
        self.single_observation_space, self.single_action_space = model_spaces(self.model)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self.slots = CustomerSlots(
            self.model, self.num_envs, self.horizon, self.np_random, customers
        )
        self._autoreset = np.zeros(self.num_envs, dtype=bool)
        item_world = self.settings.world != "strategy"
        self._info_keys = ITEM_INFO_KEYS if item_world else _INFO_KEYS
        self._info_rows = _ITEM_INFO_ROWS if item_world else _INFO_ROWS

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """New customers in every slot (or in ``options["reset_mask"]``'s slots).

        Args:
            seed: Reseeds the one generator behind every slot.
            options: ``{"reset_mask": (num_envs,) bool array}`` resets only those slots.

        Returns:
            ``(num_envs, n_features)`` observations of every slot, and ``infos`` with
            ``segment`` / ``_segment`` for the reset slots.
        """
        if seed is not None and not isinstance(seed, int | np.integer):
            raise TypeError(f"seed must be an int or None (one generator drives all), got {seed!r}")
        super().reset(seed=seed)
        if self.slots.rng is not self.np_random:
            self.slots.reseed(self.np_random)
        mask = self._reset_mask(options)
        rows = np.flatnonzero(mask)
        observations = self.slots.start(rows)
        self._autoreset[rows] = False
        return observations, self._segment_info(rows, mask)

    def _reset_mask(self, options: dict[str, Any] | None) -> np.ndarray:
        options = dict(options or {})
        mask = options.pop("reset_mask", None)
        if options:
            raise ValueError(f"unknown reset option(s) {', '.join(options)}; known: reset_mask")
        if mask is None:
            return np.ones(self.num_envs, dtype=bool)
        mask = np.asarray(mask)
        if mask.shape != (self.num_envs,) or mask.dtype != np.bool_ or not mask.any():
            raise ValueError(
                f"options['reset_mask'] must be a bool array of shape ({self.num_envs},) "
                "with at least one True"
            )
        if not self.slots.started and not mask.all():
            raise ValueError("the first reset must reset every slot")
        return mask

    def _segment_info(self, rows: np.ndarray, mask: np.ndarray) -> dict[str, Any]:
        segments = np.full(self.num_envs, None, dtype=object)
        segments[rows] = self.slots.segments(rows)
        return {"segment": segments, "_segment": mask}

    def step(
        self, actions: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """One cycle for every slot; slots that ended in the last step start a new customer."""
        outcome, terminated, truncated = self.slots.step(actions)
        observations = outcome.observation
        rewards = outcome.reward.copy()
        restarting = self._autoreset
        stepped = ~restarting
        infos: dict[str, Any] = {}
        restart = bool(restarting.any())
        if not restart or stepped.any():  # as SyncVectorEnv: a key appears when a slot has it
            block = outcome.values[self._info_rows]  # one (n_keys, num_envs) copy, by name
            block[:, restarting] = 0.0
            for key, row in zip(self._info_keys, block, strict=True):
                infos[key] = row
                infos[f"_{key}"] = stepped
        if restart:
            rows = np.flatnonzero(restarting)
            observations[rows] = self.slots.restart(rows)
            rewards[rows] = 0.0
            terminated[rows] = False
            truncated[rows] = False
            infos.update(self._segment_info(rows, restarting.copy()))
        self._autoreset = terminated | truncated
        return observations, rewards, terminated, truncated, infos

    def action_masks(self) -> np.ndarray:
        """``(num_envs, n_actions)`` bool consent masks of the current customers.

        A slot waiting for its autoreset still shows its ended customer; its next action is
        ignored anyway.
        """
        return self.slots.action_masks()

    def expected_rewards_of(self, actions: np.ndarray) -> np.ndarray:
        """``(n_envs,)`` true expected immediate reward of each slot's given action."""
        return self.slots.expected_rewards_of(actions)

    def expected_rewards(self) -> np.ndarray:
        """``(num_envs, n_actions)`` true expected immediate rewards (oracle access)."""
        return self.slots.expected_rewards()

    def render(self) -> tuple[Any, ...] | None:
        """One frame per slot: a picture (``"rgb_array"``) or a line of text (``"ansi"``)."""
        if self.render_mode == "rgb_array":
            return tuple(self.slots.render_rgb())
        if self.render_mode == "ansi":
            return tuple(self.slots.render_text(i) for i in range(self.num_envs))
        return None
