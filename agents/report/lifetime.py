"""What a policy does over the customer lifetime: the action mix in week 1 against week 40.

:func:`lifetime_mix` runs the policy frozen on a simulated cohort through the one rollout,
:func:`rec_env.rollout.run_cohort`, with the policy wrapped in an :class:`ActionRecorder` that
counts the actions chosen for active customers in every cycle of their lives (all customers
start together, so the cycle is the customer's age). :func:`lifetime_figure` draws the shares
as stacked areas, one panel per policy.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from rec_env.agents.evaluation.style import Period, figure
from rec_env.rollout import run_cohort

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from rec_env.settings import EnvSettings

__all__ = [
    "ActionRecorder",
    "LifetimeMix",
    "lifetime_figure",
    "lifetime_mix",
]

NOTHING_COLOR = "#c8c8c8"
"""Colour of doing nothing in the stacked areas."""
_ACTION_COLORS = (
    "#1f5fae", "#d9741c", "#2e8b57", "#c0392b", "#7b52ab",
    "#8c6d31", "#e377c2", "#17becf", "#bcbd22", "#5b9bd5",
)  # fmt: skip


class ActionRecorder:
    """A policy wrapper that counts, per cycle, the actions chosen for active customers.

    ``run_cohort`` gives policies with ``set_env`` the cohort, whose ``alive`` flags say which
    rows are active; everything else (``update``, ``action_probabilities`` …) is the wrapped
    policy's.

    Args:
        policy: The policy.
        n_actions: Actions of the world.
    """

    def __init__(self, policy: Any, n_actions: int) -> None:
        self.policy = policy
        self.n_actions = n_actions
        self.counts: list[np.ndarray] = []
        self._cohort: Any = None

    def set_env(self, cohort: Any) -> None:
        """Keep the cohort (its ``alive`` flags) and pass it on to the policy if it wants it."""
        self._cohort = cohort
        inner = getattr(self.policy, "set_env", None)
        if callable(inner):
            inner(cohort)

    def predict(self, obs: np.ndarray, action_masks: Any = None, deterministic: bool = True) -> Any:
        """The policy's actions, counted for the active customers."""
        actions = np.asarray(self.policy.predict(obs, action_masks, deterministic))
        alive = (
            np.ones(actions.shape[0], dtype=bool) if self._cohort is None else self._cohort.alive
        )
        self.counts.append(np.bincount(actions[alive], minlength=self.n_actions))
        return actions

    def __getattr__(self, name: str) -> Any:
        return getattr(self.policy, name)


@dataclass(frozen=True)
class LifetimeMix:
    """Actions chosen for active customers, cycle by cycle.

    Attributes:
        policy: The policy's label.
        action_names: Names of the actions.
        counts: ``(cycles, n_actions)`` actions chosen for active customers in each cycle.
        period: The cycle length and horizon.
        n_customers: Cohort size.
    """

    policy: str
    action_names: tuple[str, ...]
    counts: np.ndarray
    period: Period
    n_customers: int

    @property
    def shares(self) -> np.ndarray:
        """``(cycles, n_actions)`` share of the active customers receiving each action."""
        totals = self.counts.sum(axis=1, keepdims=True)
        return self.counts / np.maximum(totals, 1)

    @property
    def active(self) -> np.ndarray:
        """``(cycles,)`` share of the cohort still active in each cycle."""
        return self.counts.sum(axis=1) / self.n_customers

    def top_actions(self, cycle: int, k: int = 3) -> list[tuple[str, float]]:
        """The ``k`` most chosen actions in ``cycle`` (1-based) and their shares."""
        shares = self.shares[min(cycle, len(self.counts)) - 1]
        order = np.argsort(-shares, kind="stable")[:k]
        return [(self.action_names[a], float(shares[a])) for a in order if shares[a] > 0]


def lifetime_mix(
    policy: Any, settings: EnvSettings, n_customers: int, seed: int, label: str
) -> LifetimeMix:
    """Run ``policy`` frozen on ``n_customers`` simulated customers and count its actions by age.

    Strategy and item worlds (the slate world's messages are not single actions).
    """
    model = settings.build_model()
    recorder = ActionRecorder(policy, model.actions.n_actions)
    run_cohort(model, recorder, n_customers, settings.horizon, seed, learn=False)
    counts = np.zeros((settings.horizon, model.actions.n_actions), dtype=np.int64)
    if recorder.counts:
        counts[: len(recorder.counts)] = np.array(recorder.counts)
    return LifetimeMix(label, tuple(model.actions.names), counts, Period.of(settings), n_customers)


def _shown_actions(mixes: Sequence[LifetimeMix], k: int) -> list[str]:
    """The ``k`` actions with the largest share in any cycle of any policy, doing nothing first."""
    best: dict[str, float] = {}
    for mix in mixes:
        peak = mix.shares.max(axis=0)
        for name, value in zip(mix.action_names, peak, strict=True):
            best[name] = max(best.get(name, 0.0), float(value))
    ranked = sorted((n for n in best if best[n] > 0 and n != "no_action"), key=lambda n: -best[n])
    return (["no_action"] if "no_action" in best else []) + ranked[:k]


def lifetime_figure(
    mixes: Sequence[LifetimeMix], marks: Sequence[int] = (1, 40), max_actions: int = 8
) -> Figure:
    """The share of active customers receiving each action, week by week, one panel per policy.

    The ``max_actions`` most used actions have their own colour (the same in every panel;
    doing nothing light grey), the rest are pooled as "other actions". Vertical lines mark the
    cycles of ``marks`` (week 1 and week 40 by default); the title gives the share of the
    cohort still active at the last mark.
    """
    shown = _shown_actions(mixes, max_actions)
    colors: Mapping[str, str] = {
        name: NOTHING_COLOR if name == "no_action" else _ACTION_COLORS[i % len(_ACTION_COLORS)]
        for i, name in enumerate(n for n in shown if n != "no_action")
    } | ({"no_action": NOTHING_COLOR} if "no_action" in shown else {})
    columns = min(len(mixes), 2)
    rows = int(np.ceil(len(mixes) / columns))
    with figure(
        nrows=rows, ncols=columns, figsize=(5.4 * columns, 3.3 * rows + 0.9), squeeze=False
    ) as fig:
        for ax, mix in zip(fig.axes, mixes, strict=False):
            cycles = np.arange(1, mix.counts.shape[0] + 1)
            index = {name: i for i, name in enumerate(mix.action_names)}
            layers = [
                100 * mix.shares[:, index[n]] if n in index else np.zeros(cycles.size)
                for n in shown
            ]
            layers.append(100 * np.clip(1 - np.sum(layers, axis=0) / 100, 0, 1))
            names = [*shown, "other actions"]
            palette = [colors[n] for n in shown] + ["#efe3c8"]
            ax.stackplot(cycles, layers, colors=palette, labels=names, linewidth=0)
            for mark in marks:
                if mark <= cycles[-1]:
                    ax.axvline(mark, color="#111111", lw=0.8)
                    ax.text(mark, 101, f"{mix.period.cycle} {mark}", ha="center", va="bottom",
                            fontsize=7)  # fmt: skip
            ax.set_xlim(1, cycles[-1])
            ax.set_ylim(0, 100)
            late = min(marks[-1], cycles[-1])
            active = f"{100 * mix.active[late - 1]:.0f} % still active in {mix.period.cycle} {late}"
            ax.set_title(f"{mix.policy} ({active})", pad=14)
            ax.set_xlabel(f"{mix.period.cycle} of the customer's {mix.period.lifetime}")
            ax.set_ylabel("% of active customers")
            ax.grid(visible=False)
        for ax in fig.axes[len(mixes) :]:
            ax.set_axis_off()
        handles, labels = fig.axes[0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 5))
        fig.suptitle("What each policy sends over the customer's lifetime", x=0.01, ha="left")
        fig.tight_layout(rect=(0, 0.1 + 0.04 * (len(labels) > 5), 1, 1))
    return fig
