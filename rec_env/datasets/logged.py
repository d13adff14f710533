r"""Logged bandit data: the decisions a logging policy took, their propensities and rewards.

Row :math:`i` holds a context :math:`x_i`, the action :math:`a_i` the logging policy
:math:`\mu` took, its propensity :math:`\mu(a_i \mid x_i)` and the reward :math:`r_i` observed
for it, optionally with the mask of the actions that were allowed, the position the action was
shown at (item logs with several positions, one row per position as in Open Bandit Pipeline),
the features of every action and the logging policy's whole distribution over actions. This is
what off-policy estimators (:mod:`rec_env.agents.ope`) need to value another policy without
running it.

:class:`LoggedSlateData` is the same for messages of ``K`` products (slates): the logged slate,
its channel and offer, the probability of the whole message and of each position, and the one
reward of the message.

Every array is validated on construction, so a data set that exists is a usable one: errors name
the problem (missing or zero propensities, mismatched shapes, actions outside the catalog,
rewards that are not finite) and the first offending row.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

__all__ = ["LoggedBanditData", "LoggedSlateData"]


def _first_rows(bad: np.ndarray) -> str:
    """``"3 rows (first: row 7)"`` for a boolean array of offending rows."""
    rows = np.flatnonzero(bad)
    noun = "row" if rows.size == 1 else "rows"
    return f"{rows.size} {noun} (first: row {rows[0]})"


def _as_vector(name: str, values: Any, n: int, dtype: type) -> np.ndarray:
    """``values`` as a ``(n,)`` array of ``dtype``.

    Raises:
        ValueError: If it is missing or does not hold exactly one value per row.
    """
    if values is None:
        raise ValueError(f"{name} are missing: give one value per logged decision")
    array = np.asarray(values)
    if array.shape != (n,):
        raise ValueError(
            f"shape mismatch: {name} must have shape ({n},) like the contexts' rows, "
            f"got {array.shape}"
        )
    return array.astype(dtype, copy=False)


@dataclass(eq=False)
class LoggedBanditData:
    """A validated log of one-step decisions (a contextual bandit's feedback).

    Args:
        contexts: ``(n, d)`` features of each decision.
        actions: ``(n,)`` integer index of the logged action, in ``[0, n_actions)``.
        propensities: ``(n,)`` probability with which the logging policy took that action, in
            ``(0, 1]``.
        rewards: ``(n,)`` finite reward observed for the logged action.
        n_actions: Size of the action catalog.
        action_masks: Optional ``(n, n_actions)`` bool, True where an action was allowed; the
            logged action must be allowed.
        action_names: Optional names of the actions (default ``action_0`` …).
        feature_names: Optional names of the context columns (default ``x0`` …).
        positions: Optional ``(n,)`` integer position (slot) at which the action was shown, in
            ``[0, n_positions)``: one row per (decision, position), as in Open Bandit
            Pipeline. Target policies then give a 3-D ``(n, n_actions, n_positions)``
            distribution.
        n_positions: Number of positions (default: the largest logged position + 1); only
            with ``positions``.
        action_context: Optional ``(n_actions, d_a)`` features of each action (for a pooled
            reward model over context and action features).
        logging_distribution: Optional ``(n, n_actions)`` (or, with positions,
            ``(n, n_actions, n_positions)``) probabilities of every action under the logging
            policy; its value at the logged action (and position) must equal the propensity.
            Used to find the target's mass on actions the logger (almost) never takes.

    Raises:
        ValueError: Naming the field and the first offending row, if an array is missing, has
            the wrong shape, holds a propensity that is missing (NaN), not positive or above 1,
            an action outside the catalog or masked, a reward that is not finite, a position
            outside ``[0, n_positions)``, or a logging distribution that is not a distribution
            or disagrees with the propensities.
    """

    contexts: np.ndarray
    actions: np.ndarray
    propensities: np.ndarray
    rewards: np.ndarray
    n_actions: int
    action_masks: np.ndarray | None = None
    action_names: tuple[str, ...] | None = None
    feature_names: tuple[str, ...] | None = None
    positions: np.ndarray | None = None
    n_positions: int | None = None
    action_context: np.ndarray | None = None
    logging_distribution: np.ndarray | None = None

    def __post_init__(self) -> None:
        if isinstance(self.n_actions, bool) or int(self.n_actions) != self.n_actions:
            raise ValueError(f"n_actions must be an integer, got {self.n_actions!r}")
        self.n_actions = int(self.n_actions)
        if self.n_actions < 1:
            raise ValueError(f"n_actions must be at least 1, got {self.n_actions}")
        self.contexts = self._check_contexts(self.contexts)
        n = self.contexts.shape[0]
        self.actions = self._check_actions(self.actions, n)
        self.propensities = self._check_propensities(self.propensities, n)
        self.rewards = _as_vector("rewards", self.rewards, n, np.float64)
        if not np.all(np.isfinite(self.rewards)):
            raise ValueError(
                f"rewards must be finite: {_first_rows(~np.isfinite(self.rewards))} "
                "are NaN or infinite"
            )
        self.action_masks = self._check_masks(self.action_masks, n)
        self.action_names = self._check_names(
            "action_names", self.action_names, self.n_actions, "action_"
        )
        self.feature_names = self._check_names(
            "feature_names", self.feature_names, self.contexts.shape[1], "x"
        )
        self._check_positions(n)
        self.action_context = self._check_action_context(self.action_context)
        self.logging_distribution = self._check_logging_distribution(self.logging_distribution)

    def _check_positions(self, n: int) -> None:
        if self.positions is None:
            if self.n_positions is not None:
                raise ValueError("n_positions is given without positions: give both or neither")
            return
        raw = _as_vector("positions", self.positions, n, np.float64)
        if self.n_positions is None:
            self.n_positions = int(np.nanmax(raw)) + 1 if np.isfinite(raw).all() else 1
        if isinstance(self.n_positions, bool) or int(self.n_positions) != self.n_positions:
            raise ValueError(f"n_positions must be an integer, got {self.n_positions!r}")
        self.n_positions = int(self.n_positions)
        outside = ~np.isfinite(raw) | (raw != np.round(raw)) | (raw < 0)
        outside |= raw >= self.n_positions
        if outside.any():
            raise ValueError(
                f"positions outside [0, {self.n_positions}): {_first_rows(outside)} holds "
                f"{raw[np.flatnonzero(outside)[0]]!r}"
            )
        self.positions = raw.astype(np.intp)

    def _check_action_context(self, action_context: Any) -> np.ndarray | None:
        if action_context is None:
            return None
        array = np.asarray(action_context, dtype=np.float64)
        if array.ndim != 2 or array.shape[0] != self.n_actions:
            raise ValueError(
                f"shape mismatch: action_context must have shape (n_actions, d_a) = "
                f"({self.n_actions}, d_a), got {array.shape}"
            )
        if not np.all(np.isfinite(array)):
            raise ValueError("action_context must be finite")
        return array

    def _check_logging_distribution(self, distribution: Any) -> np.ndarray | None:
        if distribution is None:
            return None
        array = np.asarray(distribution, dtype=np.float64)
        n = self.contexts.shape[0]
        shape: tuple[int, ...] = (n, self.n_actions)
        if self.positions is not None:
            shape = (n, self.n_actions, self.n_positions or 1)
        if array.shape != shape:
            raise ValueError(
                f"shape mismatch: logging_distribution must have shape {shape}"
                f"{' (n, n_actions, n_positions)' if len(shape) == 3 else ' (n, n_actions)'}, "
                f"got {array.shape}"
            )
        if not np.all(np.isfinite(array)) or (array < 0).any():
            raise ValueError("logging_distribution must be finite and non-negative")
        sums = array.sum(axis=1)
        bad = ~np.isclose(sums, 1.0, atol=1e-6)
        if bad.ndim == 2:
            bad = bad.any(axis=1)
        if bad.any():
            raise ValueError(f"logging_distribution must sum to 1 over actions: {_first_rows(bad)}")
        logged = array[np.arange(n), self.actions]
        if logged.ndim == 2:
            logged = logged[np.arange(n), self.positions]
        differs = ~np.isclose(logged, self.propensities, rtol=1e-5, atol=1e-8)
        if differs.any():
            raise ValueError(
                "logging_distribution disagrees with the propensities at the logged action in "
                f"{_first_rows(differs)}"
            )
        return array

    @staticmethod
    def _check_contexts(contexts: Any) -> np.ndarray:
        if contexts is None:
            raise ValueError("contexts are missing: give an (n, d) array")
        array = np.asarray(contexts, dtype=np.float64)
        if array.ndim != 2:
            raise ValueError(f"contexts must have shape (n, d), got {array.shape}")
        if array.shape[0] == 0:
            raise ValueError("the log is empty: contexts have no rows")
        if not np.all(np.isfinite(array)):
            raise ValueError(
                f"contexts must be finite: {_first_rows(~np.isfinite(array).all(axis=1))} "
                "hold NaN or infinite values"
            )
        return array

    def _check_actions(self, actions: Any, n: int) -> np.ndarray:
        raw = _as_vector("actions", actions, n, np.float64)
        outside = ~np.isfinite(raw) | (raw != np.round(raw)) | (raw < 0) | (raw >= self.n_actions)
        if outside.any():
            first = np.flatnonzero(outside)[0]
            raise ValueError(
                f"actions outside the catalog of {self.n_actions} actions (valid: 0 to "
                f"{self.n_actions - 1}): {_first_rows(outside)} holds {raw[first]!r}"
            )
        return raw.astype(np.intp)

    @staticmethod
    def _check_propensities(propensities: Any, n: int) -> np.ndarray:
        array = _as_vector("propensities", propensities, n, np.float64)
        if np.isnan(array).any():
            raise ValueError(
                f"propensities are missing (NaN) in {_first_rows(np.isnan(array))}: "
                "off-policy estimates need the logging probability of every logged action"
            )
        if (array <= 0).any():
            raise ValueError(
                f"propensities must be > 0, but {_first_rows(array <= 0)} "
                "are zero or negative: the importance weight 1/propensity is undefined"
            )
        if (array > 1.0 + 1e-9).any():
            raise ValueError(f"propensities must be <= 1, but {_first_rows(array > 1.0 + 1e-9)}")
        return array

    def _check_masks(self, masks: Any, n: int) -> np.ndarray | None:
        if masks is None:
            return None
        array = np.asarray(masks)
        if array.shape != (n, self.n_actions):
            raise ValueError(
                f"shape mismatch: action_masks must have shape ({n}, {self.n_actions}), "
                f"got {array.shape}"
            )
        array = array.astype(bool)
        masked = ~array[np.arange(n), self.actions]
        if masked.any():
            raise ValueError(f"the logged action is masked (not allowed) in {_first_rows(masked)}")
        return array

    @staticmethod
    def _check_names(field: str, names: Any, size: int, prefix: str) -> tuple[str, ...]:
        if names is None:
            return tuple(f"{prefix}{i}" for i in range(size))
        names = tuple(str(name) for name in names)
        if len(names) != size:
            raise ValueError(f"{field} must hold {size} names, got {len(names)}")
        return names

    def __len__(self) -> int:
        return int(self.contexts.shape[0])

    @property
    def n(self) -> int:
        """Number of logged decisions."""
        return len(self)

    def subset(self, rows: np.ndarray) -> LoggedBanditData:
        """The decisions at ``rows`` (indices or a boolean mask), as a new data set."""
        return LoggedBanditData(
            contexts=self.contexts[rows],
            actions=self.actions[rows],
            propensities=self.propensities[rows],
            rewards=self.rewards[rows],
            n_actions=self.n_actions,
            action_masks=None if self.action_masks is None else self.action_masks[rows],
            action_names=self.action_names,
            feature_names=self.feature_names,
            positions=None if self.positions is None else self.positions[rows],
            n_positions=self.n_positions,
            action_context=self.action_context,
            logging_distribution=None
            if self.logging_distribution is None
            else self.logging_distribution[rows],
        )

    def with_rewards(self, rewards: np.ndarray) -> LoggedBanditData:
        """The same decisions with other rewards (e.g. another outcome of the same log)."""
        return replace(self, rewards=rewards)


@dataclass(eq=False)
class LoggedSlateData:
    """A validated log of slate messages: what was shown, with what probability, and its reward.

    Args:
        contexts: ``(n, d)`` features of each decision.
        slates: ``(n, K)`` product index at each position, in display order, -1 where empty
            (a message that sends nothing is all -1).
        channels: ``(n,)`` channel index of each message (``n_channels``: none, nothing sent).
        offers: ``(n,)`` offer index of each message (0 when nothing is sent).
        propensities: ``(n,)`` probability of the whole message (channel, offer and ordered
            slate), in ``(0, 1]``.
        position_propensities: ``(n, K)`` probability of each position given the positions
            above it (NaN where empty).
        rewards: ``(n,)`` finite reward of each message (one number: slates have no
            per-position rewards).
        allowed_products: ``(n, n_products)`` bool, the products that could be shown.
        n_channels: Number of message channels.
        product_ids: Ids of the products, in index order.
        feature_names: Optional names of the context columns (default ``x0`` …).

    Raises:
        ValueError: Naming the field and the first offending row, if an array has the wrong
            shape, a propensity is missing or outside ``(0, 1]``, a product is outside the
            table or not allowed, or a reward is not finite.
    """

    contexts: np.ndarray
    slates: np.ndarray
    channels: np.ndarray
    offers: np.ndarray
    propensities: np.ndarray
    position_propensities: np.ndarray
    rewards: np.ndarray
    allowed_products: np.ndarray
    n_channels: int
    product_ids: tuple[str, ...]
    feature_names: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        self.contexts = LoggedBanditData._check_contexts(self.contexts)
        n = self.contexts.shape[0]
        self.product_ids = tuple(str(p) for p in self.product_ids)
        self.slates = np.asarray(self.slates, dtype=np.intp)
        if self.slates.ndim != 2 or self.slates.shape[0] != n:
            raise ValueError(f"slates must have shape ({n}, K), got {self.slates.shape}")
        outside = ((self.slates < -1) | (self.slates >= len(self.product_ids))).any(axis=1)
        if outside.any():
            raise ValueError(f"slates hold products outside the table in {_first_rows(outside)}")
        self.channels = _as_vector("channels", self.channels, n, np.intp)
        self.offers = _as_vector("offers", self.offers, n, np.intp)
        self.propensities = LoggedBanditData._check_propensities(self.propensities, n)
        self.position_propensities = np.asarray(self.position_propensities, dtype=np.float64)
        if self.position_propensities.shape != self.slates.shape:
            raise ValueError(
                f"shape mismatch: position_propensities must have shape {self.slates.shape} "
                f"like the slates, got {self.position_propensities.shape}"
            )
        self.rewards = _as_vector("rewards", self.rewards, n, np.float64)
        if not np.all(np.isfinite(self.rewards)):
            raise ValueError(
                f"rewards must be finite: {_first_rows(~np.isfinite(self.rewards))} "
                "are NaN or infinite"
            )
        self.allowed_products = np.asarray(self.allowed_products, dtype=bool)
        if self.allowed_products.shape != (n, len(self.product_ids)):
            raise ValueError(
                f"shape mismatch: allowed_products must have shape ({n}, "
                f"{len(self.product_ids)}), got {self.allowed_products.shape}"
            )
        shown = self.slates >= 0
        rows = np.arange(n)[:, None]
        masked = (shown & ~self.allowed_products[rows, self.slates.clip(0)]).any(axis=1)
        if masked.any():
            raise ValueError(f"a logged slate shows a product not allowed in {_first_rows(masked)}")
        self.feature_names = LoggedBanditData._check_names(
            "feature_names", self.feature_names, self.contexts.shape[1], "x"
        )

    def __len__(self) -> int:
        return int(self.contexts.shape[0])

    @property
    def n(self) -> int:
        """Number of logged messages."""
        return len(self)

    @property
    def sent(self) -> np.ndarray:
        """``(n,)`` True where a message went out (a channel and at least one product)."""
        return (self.channels < self.n_channels) & (self.slates[:, 0] >= 0)

    def with_rewards(self, rewards: np.ndarray) -> LoggedSlateData:
        """The same messages with other rewards (e.g. another outcome of the same log)."""
        return replace(self, rewards=rewards)
