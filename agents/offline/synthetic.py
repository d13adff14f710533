r"""A randomised campaign made up from the simulator, with the true value of any policy known.

:func:`synthetic_campaign` draws customers of the strategy world, logs for each one of a few
e-mail actions (and doing nothing) with known, unequal probabilities, and the reward the
simulator gives (:meth:`~rec_env.dynamics.CustomerModel.step`). Customers who did not consent to
e-mail are left out, so every logged action is allowed. :meth:`SyntheticCampaign.write_csv`
writes the log for ``recenv offline learn`` (the 16 observed features, the action, its
propensity ``p`` and the reward), and :meth:`SyntheticCampaign.true_value` is the value of a
policy on any subset of those customers, :math:`\frac1n \sum_i \sum_a \pi(a \mid x_i)\,
q(x_i, a)`, from the simulator's closed-form expected rewards: what an off-policy estimate on
the same customers should recover.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rec_env.agents.base import Policy

__all__ = [
    "SYNTHETIC_ACTIONS",
    "SYNTHETIC_PROPENSITIES",
    "SyntheticCampaign",
    "read_truth",
    "synthetic_campaign",
]

SYNTHETIC_ACTIONS = (
    "no_action",
    "discount_10_email",
    "free_shipping_email",
    "recommendation_email",
)
"""The campaign's actions (catalog names of the strategy world); the first is the control."""

SYNTHETIC_PROPENSITIES = (0.4, 0.2, 0.2, 0.2)
"""Known logging probabilities of :data:`SYNTHETIC_ACTIONS`, the same for every customer."""


@dataclass(frozen=True)
class SyntheticCampaign:
    """A logged randomised campaign on simulated customers, with its truth.

    Attributes:
        contexts: ``(n, 16)`` observed features.
        actions: ``(n,)`` logged action index into :data:`SYNTHETIC_ACTIONS`.
        propensities: ``(n,)`` probability of the logged action.
        rewards: ``(n,)`` reward the simulator gave.
        expected: ``(n, n_actions)`` true expected reward of every action for every customer.
        feature_names: The 16 feature names.
    """

    contexts: np.ndarray
    actions: np.ndarray
    propensities: np.ndarray
    rewards: np.ndarray
    expected: np.ndarray
    feature_names: tuple[str, ...]

    @property
    def n(self) -> int:
        """Number of logged customers."""
        return int(self.actions.size)

    def true_value(self, policy: Policy, rows: np.ndarray | None = None) -> float:
        """Mean true expected reward of ``policy`` on the customers ``rows`` (default: all)."""
        rows = np.arange(self.n) if rows is None else np.asarray(rows)
        probabilities = policy.action_probabilities(self.contexts[rows])
        return float(np.sum(probabilities * self.expected[rows], axis=1).mean())

    def true_constant_values(self, rows: np.ndarray | None = None) -> np.ndarray:
        """``(n_actions,)`` true value of giving each action to everyone in ``rows``."""
        rows = np.arange(self.n) if rows is None else np.asarray(rows)
        return self.expected[rows].mean(axis=0)

    def write_csv(self, path: str | Path) -> Path:
        """Write the log: the 16 features, ``action`` (name), ``p`` and ``reward``."""
        path = Path(path)
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow([*self.feature_names, "action", "p", "reward"])
            for i in range(self.n):
                writer.writerow(
                    [
                        *(f"{v:.10g}" for v in self.contexts[i]),
                        SYNTHETIC_ACTIONS[self.actions[i]],
                        f"{self.propensities[i]:.10g}",
                        f"{self.rewards[i]:.10g}",
                    ]
                )
        return path

    def write_truth_csv(self, path: str | Path) -> Path:
        """Write the truth, row by row as in :meth:`write_csv`: ``expected_<action>`` columns."""
        path = Path(path)
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow([f"expected_{a}" for a in SYNTHETIC_ACTIONS])
            for row in self.expected:
                writer.writerow([f"{v:.10g}" for v in row])
        return path


def read_truth(
    path: str | Path, action_names: tuple[str, ...], rows: int | None = None
) -> np.ndarray:
    """``(n, n_actions)`` true expected rewards from :meth:`SyntheticCampaign.write_truth_csv`.

    Args:
        path: The truth file.
        action_names: The log's actions, in its index order.
        rows: Read only the first rows (as the log's ``max_rows``).

    Raises:
        ValueError: If the file is missing, lacks an action's column or holds a non-number.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such truth file")
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = [a for a in action_names if f"expected_{a}" not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{path}: no column expected_{missing[0]} (the truth of {missing[0]})")
        values = []
        for line, record in enumerate(reader, start=2):
            if rows is not None and len(values) == rows:
                break
            try:
                values.append([float(record[f"expected_{a}"]) for a in action_names])
            except (TypeError, ValueError):
                raise ValueError(
                    f"{path}: line {line} holds a value that is not a number"
                ) from None
    return np.asarray(values, dtype=np.float64).reshape(-1, len(action_names))


def synthetic_campaign(
    n_customers: int, seed: int = 0, reward_mode: str = "conversion", cycle_days: float = 30.0
) -> SyntheticCampaign:
    """Simulate a randomised e-mail campaign on about ``n_customers`` consenting customers.

    Draws ``n_customers`` customers of the default strategy world, keeps those who consent to
    e-mail (about 90 %), and logs one action each with :data:`SYNTHETIC_PROPENSITIES`. Every
    draw comes from one generator seeded by ``seed``.

    Args:
        n_customers: Customers drawn before the consent filter.
        seed: Seed of every draw.
        reward_mode: The simulator's reward: ``conversion`` (0/1 purchase; the default, a
            clear case for interval checks) or ``profit`` (heavy-tailed margin).
        cycle_days: Days one logged decision covers; 30 gives about 2 % conversions (7, the
            simulator's default week, about 1 %).

    Raises:
        ValueError: If ``n_customers`` is below 10.
    """
    from rec_env.features import FEATURE_NAMES
    from rec_env.settings import EnvSettings

    if n_customers < 10:
        raise ValueError(f"n_customers must be at least 10, got {n_customers}")
    model = EnvSettings(reward_mode=reward_mode, cycle_days=cycle_days).build_model()
    columns = np.array([model.actions.names.index(name) for name in SYNTHETIC_ACTIONS])
    rng = np.random.default_rng(seed)
    batch = model.new_batch(n_customers)
    model.draw_customers(batch, np.arange(n_customers), rng)
    obs = model.observe(batch).astype(np.float64)
    allowed = model.action_masks(batch)[:, columns].all(axis=1)
    probabilities = np.asarray(SYNTHETIC_PROPENSITIES)
    logged = rng.choice(len(SYNTHETIC_ACTIONS), size=n_customers, p=probabilities)
    expected = model.expected_rewards(batch)[:, columns]  # before step changes the customers
    outcome = model.step(batch, columns[logged], rng)
    return SyntheticCampaign(
        contexts=obs[allowed],
        actions=logged[allowed],
        propensities=probabilities[logged[allowed]],
        rewards=np.asarray(outcome.reward, dtype=np.float64)[allowed],
        expected=expected[allowed],
        feature_names=tuple(FEATURE_NAMES),
    )
