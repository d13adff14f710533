"""The shared base of the bandits: validation, masks, numba helpers and state files.

Every bandit is an Open Bandit Pipeline style dataclass: its fields are its hyperparameters,
validated on construction, and it owns its generator ``self.random_`` (seeded by
``random_state``). The loop that drives it lives outside (:func:`rec_env.rollout.run_cohort`).
All methods are batch-first: a whole batch of customers is decided with the current parameters,
then :meth:`BanditPolicy.update` learns from the whole batch. Masks (the caller's and the consent
read from the observations) are combined by :class:`~rec_env.agents.base.Policy` before they
reach a bandit.
"""

from __future__ import annotations

import numbers
from abc import abstractmethod
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from numba import njit

from rec_env.agents.base import POLICY_FILE, FeaturesLike, OnlinePolicy, Policy

__all__ = ["STATE_FILE", "BanditPolicy"]


STATE_FILE = "state.npz"
"""Learned arrays of a saved bandit, next to ``policy.json`` (read without pickle)."""


# ---------------------------------------------------------------------------- validation
def _check_number(
    name: str,
    value: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    low_inclusive: bool = True,
    integer: bool = False,
) -> Any:
    """``value`` as a float (or int) if it is a finite number within the bounds.

    Raises:
        ValueError: Naming the field ``name`` if the value is not a number or out of bounds.
    """
    kind = numbers.Integral if integer else numbers.Real
    if isinstance(value, bool) or not isinstance(value, kind) or not np.isfinite(value):
        wanted = "an integer" if integer else "a finite number"
        raise ValueError(f"{name} must be {wanted}, got {value!r}")
    if low is not None and (value < low or (value == low and not low_inclusive)):
        relation = ">=" if low_inclusive else ">"
        raise ValueError(f"{name} must be {relation} {low}, got {value!r}")
    if high is not None and value > high:
        raise ValueError(f"{name} must be <= {high}, got {value!r}")
    return int(value) if integer else float(value)


def _full_masks(masks: np.ndarray | None, n: int, n_actions: int) -> np.ndarray:
    """``masks``, or all-``True`` masks for ``None``."""
    return np.ones((n, n_actions), dtype=bool) if masks is None else masks


def _feedback_arrays(
    n: int, actions: np.ndarray, rewards: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``actions`` (intp) and ``rewards`` (float64) of an update batch of ``n`` customers.

    Raises:
        ValueError: If their lengths are not ``n`` or a reward is not finite.
    """
    actions = np.asarray(actions, dtype=np.intp)
    rewards = np.asarray(rewards, dtype=np.float64)
    if actions.shape != (n,) or rewards.shape != (n,):
        raise ValueError("obs, actions and rewards must hold the same number of customers")
    if not _all_finite(rewards):
        raise ValueError("rewards must be finite")
    return actions, rewards


def _check_finite_observations(obs: np.ndarray) -> None:
    """Refuse observations with NaN or infinite values (a bandit would learn them for good).

    Raises:
        ValueError: If a value of ``obs`` is not a finite number.
    """
    obs = np.asarray(obs)
    if obs.dtype.kind not in "biuf":
        obs = obs.astype(np.float64)  # raises ValueError for text
    if not _all_finite(obs):
        raise ValueError("observations must be finite")


# ---------------------------------------------------------------------------- kernels
_NO_ALLOWED_ACTION = "a row of action_masks allows no action"
_ACTIONS_OUT_OF_RANGE = "actions must be in [0, n_actions)"


@njit(cache=True)
def _all_finite(values: np.ndarray) -> bool:
    """Whether every value is finite (one pass, no temporaries: cheap on the serving path)."""
    for value in values.flat:  # noqa: SIM110 - a loop numba compiles, not a generator
        if not np.isfinite(value):
            return False
    return True


@njit(cache=True)
def _masked_argmax(scores: np.ndarray, masks: np.ndarray | None, n: int) -> np.ndarray:
    """Row-wise argmax over allowed actions, the lowest index on ties.

    Args:
        scores: ``(n, A)`` scores, or ``(1, A)`` shared by every row.
        masks: ``(n, A)`` allowed actions, or ``None`` (all allowed).
        n: Number of rows.

    Raises:
        ValueError: If a row allows no action.
    """
    n_actions = scores.shape[1]
    shared = scores.shape[0] == 1
    actions = np.empty(n, dtype=np.intp)
    for i in range(n):
        row = 0 if shared else i
        best = -1
        for a in range(n_actions):
            if (masks is None or masks[i, a]) and (best < 0 or scores[row, a] > scores[row, best]):
                best = a
        if best < 0:
            raise ValueError(_NO_ALLOWED_ACTION)
        actions[i] = best
    return actions


@njit(cache=True)
def _argmax_frequencies(
    means: np.ndarray, scales: np.ndarray, draws: np.ndarray, masks: np.ndarray
) -> np.ndarray:
    """Share of Monte Carlo draws in which each allowed action scores highest.

    Row ``i``, draw ``k`` scores action ``a`` as ``means[i, a] + scales[i, a] * draws[k, a]``.

    Args:
        means: ``(n, A)`` locations.
        scales: ``(n, A)`` scales.
        draws: ``(D, A)`` standardised draws, shared by every row.
        masks: ``(n, A)`` allowed actions.

    Returns:
        ``(n, A)`` frequencies; rows sum to 1, masked entries are 0.

    Raises:
        ValueError: If a row allows no action.
    """
    n, n_actions = means.shape
    counts = np.zeros((n, n_actions))
    location, scale = np.empty(n_actions), np.empty(n_actions)
    for i in range(n):
        if not masks[i].any():
            raise ValueError(_NO_ALLOWED_ACTION)
        for a in range(n_actions):  # a masked action scores -inf in every draw
            location[a] = means[i, a] if masks[i, a] else -np.inf
            scale[a] = scales[i, a] if masks[i, a] else 0.0
        for k in range(draws.shape[0]):
            best, best_score = 0, location[0] + scale[0] * draws[k, 0]
            for a in range(1, n_actions):
                score = location[a] + scale[a] * draws[k, a]
                better = score > best_score  # branch-free selects: the winner is unpredictable
                best = a if better else best
                best_score = score if better else best_score
            counts[i, best] += 1.0
    return counts / draws.shape[0]


# ---------------------------------------------------------------------------- base class
@dataclass(eq=False)
class BanditPolicy(OnlinePolicy):
    """Base of the hand-written bandits: a dataclass of hyperparameters with learned arrays.

    Subclasses declare their hyperparameters as keyword-only fields (validated in
    :meth:`_check_hyperparameters`), name their learned arrays in ``state_names`` (attributes
    with a trailing underscore, saved to ``state.npz``) and implement :meth:`_predict`,
    :meth:`_probabilities` and :meth:`update`.

    Args:
        n_actions: Number of actions.
        action_names: Names of the actions, for reports.
        random_state: Seed of the policy's generator ``self.random_``.
        action_channels: Channel of each action (consent-safe when known).
        features: Feature space of the observations (default: the env's 16 features).
    """

    n_actions: int
    action_names: tuple[str, ...] | None = field(default=None, repr=False)
    random_state: int | None = None
    action_channels: tuple[str, ...] | None = field(default=None, kw_only=True, repr=False)
    features: FeaturesLike = field(default=None, kw_only=True, repr=False)

    state_names: ClassVar[tuple[str, ...]] = ()
    saved_files: ClassVar[tuple[str, ...]] = (POLICY_FILE, STATE_FILE)
    _BASE_FIELDS: ClassVar[frozenset[str]] = frozenset({"action_channels", "features"})

    def __post_init__(self) -> None:
        Policy.__init__(
            self,
            self.n_actions,
            self.action_names,
            self.random_state,
            action_channels=self.action_channels,
            features=self.features,
        )
        self._check_hyperparameters()
        self._init_state()

    def _check_hyperparameters(self) -> None:
        """Validate (and normalise) the hyperparameter fields."""

    @abstractmethod
    def _init_state(self) -> None:
        """Allocate the learned arrays named in ``state_names`` (the prior / no data)."""

    @abstractmethod
    def _predict(
        self, obs: np.ndarray, masks: np.ndarray | None, deterministic: bool
    ) -> np.ndarray:
        """Actions ``(n,)`` for 2-D ``obs`` and ``(n, A)`` masks (``None``: all allowed).

        ``deterministic`` exploits only (greedy / posterior mean) where the algorithm is
        randomised (ε-greedy, Thompson sampling); UCB algorithms are deterministic either way.
        A row of the masks that allows no action raises ``ValueError``.
        """

    @abstractmethod
    def _probabilities(self, obs: np.ndarray, masks: np.ndarray) -> np.ndarray:
        """``(n, n_actions)`` probabilities for 2-D ``obs`` and ``(n, A)`` masks."""

    def _action_probabilities(self, obs: np.ndarray, masks: np.ndarray | None) -> np.ndarray:
        """The law of ``predict(deterministic=False)``; masked actions have probability 0."""
        n = obs.shape[0]
        return self._probabilities(obs, _full_masks(masks, n, self.n_actions))

    def get_config(self) -> dict[str, Any]:
        """Constructor arguments: the base ones and every hyperparameter field."""
        hyperparameters = {
            f.name: getattr(self, f.name)
            for f in fields(self)
            if f.kw_only and f.name not in self._BASE_FIELDS
        }
        return {**super().get_config(), **hyperparameters}

    def learned_arrays(self) -> dict[str, np.ndarray]:
        """The learned arrays named in ``state_names``."""
        return {name: getattr(self, name) for name in self.state_names}

    def _save_state(self, directory: Path) -> None:
        """Write the learned arrays to ``state.npz``."""
        np.savez(directory / STATE_FILE, **self.learned_arrays())

    def _load_state(self, directory: Path) -> None:
        """Read the learned arrays from ``state.npz`` (no pickle), checking every one first.

        Raises:
            ValueError: If the file is missing, or an array is missing, has the wrong shape,
                holds a non-finite value or a negative count (the message names the file and
                the array); nothing is set then.
        """
        path = directory / STATE_FILE
        if not path.exists():
            raise ValueError(f"{directory}: no {STATE_FILE} (the bandit's learned state)")
        loaded = {}
        with np.load(path, allow_pickle=False) as data:
            for name in self.state_names:
                current = getattr(self, name)
                if name not in data.files:
                    raise ValueError(f"{path}: missing array {name!r}")
                array = data[name]
                if array.shape != current.shape:
                    raise ValueError(
                        f"{path}: {name} has shape {array.shape}, expected {current.shape}"
                    )
                if not np.can_cast(array.dtype, current.dtype, casting="same_kind"):
                    raise ValueError(
                        f"{path}: {name} has dtype {array.dtype}, expected {current.dtype}"
                    )
                if not np.isfinite(array).all():
                    raise ValueError(f"{path}: {name} holds non-finite values (NaN or infinity)")
                if name == "counts_" and (array < 0).any():
                    raise ValueError(f"{path}: {name} holds negative counts")
                loaded[name] = array.astype(current.dtype)
        for name, array in loaded.items():
            setattr(self, name, array)
        self._state_loaded()

    def _state_loaded(self) -> None:
        """Recompute derived arrays after loading (nothing by default)."""


def _one_hot(actions: np.ndarray, n_actions: int) -> np.ndarray:
    """``(n, n_actions)`` one-hot rows."""
    probs = np.zeros((actions.shape[0], n_actions))
    probs[np.arange(actions.shape[0]), actions] = 1.0
    return probs


def _sample_allowed(masks: np.ndarray, random: np.random.Generator) -> np.ndarray:
    """One action per row, uniformly among the allowed ones."""
    allowed = masks.cumsum(axis=1)
    picks = (random.random(masks.shape[0]) * allowed[:, -1]).astype(np.intp)
    return np.argmax(allowed > picks[:, None], axis=1)
