"""The held-out check of a response fit: simulated against real campaign uplift.

:func:`check_responses` splits a campaign in two (seeded, stratified by arm), fits the responses
on one half (:func:`rec_env.fitting.responses.fit_campaign_responses`) and simulates one e-mail
on the other half's twins; see :mod:`rec_env.fitting.responses` for the method.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from rec_env.fitting.campaign_log import (
    CampaignLog,
    campaign_segments,
    mean_order_value,
    twin_features,
)
from rec_env.fitting.responses import EMAIL_ACTION, ResponseFit, fit_campaign_responses

if TYPE_CHECKING:  # pragma: no cover
    from rec_env.fitting.defaults import FitDefaults
    from rec_env.population import Population

__all__ = [
    "OUTCOMES",
    "ResponseCheck",
    "UpliftRow",
    "check_responses",
    "simulate_uplift",
    "split_campaign",
]

OUTCOMES: tuple[str, ...] = ("visit", "conversion", "spend")
"""Campaign outcomes compared, per customer over the window."""

_Z95 = 1.959964


def split_campaign(
    log: CampaignLog, seed: int = 0, share: float = 0.5
) -> tuple[np.ndarray, np.ndarray]:
    """Split customers in two, stratified by arm (seeded).

    Returns:
        ``(fit_rows, held_out_rows)``, sorted.
    """
    rng = np.random.default_rng(seed)
    fit_rows = []
    for k in range(len(log.arm_names)):
        rows = rng.permutation(np.flatnonzero(log.arm == k))
        fit_rows.append(rows[: round(share * rows.size)])
    chosen = np.sort(np.concatenate(fit_rows))
    return chosen, np.setdiff1d(np.arange(log.n), chosen)


@dataclass(frozen=True)
class UpliftRow:
    """One arm, group and outcome: the held-out real uplift, its CI, and the simulated one.

    Attributes:
        arm: E-mail arm (uplift over the control).
        group: Customer group (``all``, ``mens``, ``newbie`` …).
        outcome: ``visit``, ``conversion`` or ``spend`` (per customer, over the window).
        real: Held-out mean in the arm minus mean in the control.
        low: Lower end of the 95 % CI of ``real``.
        high: Upper end.
        simulated: Simulated uplift on the held-out customers' twins.
        baseline: Simulated uplift with default responses (the uncalibrated baseline).
        n_treated: Held-out customers of the group in the arm.
        n_control: Held-out customers of the group in the control.
    """

    arm: str
    group: str
    outcome: str
    real: float
    low: float
    high: float
    simulated: float
    baseline: float
    n_treated: int
    n_control: int

    @property
    def inside(self) -> bool:
        """Whether the simulated uplift lies in the real 95 % CI."""
        return self.low <= self.simulated <= self.high

    @property
    def baseline_inside(self) -> bool:
        """Whether the default-response uplift lies in the real 95 % CI."""
        return self.low <= self.baseline <= self.high


@dataclass(frozen=True)
class ResponseCheck:
    """The held-out check of :func:`check_responses`.

    Attributes:
        rows: One row per arm, group and outcome.
        fit: The responses fitted on the fitting half.
        n_fit: Customers fitted.
        n_held_out: Customers held out.
        replicas: Simulated draws of every held-out twin.
        seed: Seed of the split and of the simulation.
    """

    rows: list[UpliftRow]
    fit: ResponseFit
    n_fit: int
    n_held_out: int
    replicas: int
    seed: int

    def inside_share(self, arm: str | None = None, group: str | None = None) -> float:
        """Share of rows (of one arm and group, if given) whose simulated uplift is inside."""
        rows = [
            r
            for r in self.rows
            if (arm is None or r.arm == arm) and (group is None or r.group == group)
        ]
        return sum(r.inside for r in rows) / max(len(rows), 1)

    def row(self, arm: str, group: str, outcome: str) -> UpliftRow:
        """The row of one arm, group and outcome."""
        for r in self.rows:
            if (r.arm, r.group, r.outcome) == (arm, group, outcome):
                return r
        raise KeyError(f"no row for {arm}, {group}, {outcome}")

    def to_markdown(self) -> str:
        """The table: per arm and group, each outcome's real uplift [CI], simulated, inside."""
        lines = [
            "| arm | group | n (arm / control) | "
            + " | ".join(f"{o}: real [95 % CI] | sim | in? | default" for o in OUTCOMES)
            + " |",
            "|---|---|---:|" + "---:|---:|:-:|---:|" * len(OUTCOMES),
        ]
        keys = dict.fromkeys((r.arm, r.group) for r in self.rows)
        for arm, group in keys:
            cells = []
            n = ""
            for outcome in OUTCOMES:
                r = self.row(arm, group, outcome)
                n = f"{r.n_treated:,} / {r.n_control:,}"
                fmt = _format(outcome)
                cells.append(
                    f"{fmt(r.real)} [{fmt(r.low)}, {fmt(r.high)}] | {fmt(r.simulated)} | "
                    f"{'yes' if r.inside else 'no'} | {fmt(r.baseline)}"
                )
            lines.append(f"| {arm} | {group} | {n} | " + " | ".join(cells) + " |")
        return "\n".join(lines)


def _format(outcome: str) -> Any:
    if outcome == "spend":
        return lambda x: f"${x:+.3f}"
    return lambda x: f"{100 * x:+.2f} pp"


def _groups(log: CampaignLog) -> dict[str, np.ndarray]:
    """Customer groups of the table: all, buyer, newbie and channel levels."""
    mens, womens = log.mens > 0.5, log.womens > 0.5
    groups = {
        "all": np.ones(log.n, dtype=bool),
        "mens only": mens & ~womens,
        "womens only": womens & ~mens,
        "both": ~(mens ^ womens),
        "newbie": log.newbie > 0.5,
        "returning": log.newbie < 0.5,
    }
    for c, channel in enumerate(log.channel_names):
        groups[channel] = log.channel == c
    return groups


def _real_uplift(
    log: CampaignLog, arm: str, group: np.ndarray, outcome: str
) -> tuple[float, float, float, int, int]:
    """Difference in means, arm minus control, with a 95 % normal CI (Welch standard error)."""
    y = log.outcome(outcome)
    treated = y[group & log.treated(arm)]
    control = y[group & (log.arm == log.control)]
    if treated.size < 2 or control.size < 2:
        return math.nan, math.nan, math.nan, int(treated.size), int(control.size)
    diff = float(treated.mean() - control.mean())
    se = math.sqrt(treated.var(ddof=1) / treated.size + control.var(ddof=1) / control.size)
    return diff, diff - _Z95 * se, diff + _Z95 * se, int(treated.size), int(control.size)


def simulate_uplift(
    population: Population,
    twins: np.ndarray,
    segments: np.ndarray,
    window_days: float,
    seed: int = 0,
    replicas: int = 10,
) -> np.ndarray:
    """Simulated uplift of one e-mail per twin, over one window-long cycle.

    Every twin is drawn ``replicas`` times (hidden parameters from its segment) and simulated
    with :data:`EMAIL_ACTION` and with no action on the same random numbers.

    Args:
        population: The population (its segments in ``segments``' order).
        twins: ``(n, 16)`` observed features.
        segments: ``(n,)`` segment index of each twin in ``population``.
        window_days: The cycle length.
        seed: Seed of the hidden draws and of the step.
        replicas: Draws per twin.

    Returns:
        ``(n, 3)`` mean uplift per twin in visit, conversion and spend.
    """
    from rec_env.catalog import ActionTable, load_catalog
    from rec_env.dynamics import CustomerModel

    table = ActionTable.from_catalog(load_catalog("strategy"))
    model = CustomerModel(table, population, reward_mode="conversion", cycle_days=window_days)
    n = twins.shape[0]
    observed = np.tile(twins, (replicas, 1))
    codes = np.tile(segments, replicas)
    rng = np.random.default_rng(seed)
    flags = {"discount_sensitive": 0.0, "free_shipping_preferred": 0.0}
    _, hidden, _ = model.sampler.sample(rng, codes.size, segments=codes, fixed=flags)
    step_seed = int(rng.integers(2**63))
    results = []
    for action in ("no_action", EMAIL_ACTION):
        batch = model.new_batch(codes.size)
        model.set_customers(batch, np.arange(codes.size), observed, hidden, codes)
        actions = np.full(codes.size, table.names.index(action), dtype=np.intp)
        outcome = model.step(batch, actions, np.random.default_rng(step_seed))
        results.append(np.column_stack([outcome.visited, outcome.purchased, outcome.revenue]))
    uplift = results[1] - results[0]
    return uplift.reshape(replicas, n, 3).mean(axis=0)


def check_responses(
    log: CampaignLog,
    seed: int = 0,
    replicas: int = 10,
    defaults: FitDefaults | None = None,
) -> ResponseCheck:
    """Fit on half of the customers; simulate the campaign on the other half's twins.

    For every e-mail arm (and all of them pooled) and every group of :func:`_groups` (all
    customers, buyer, newbie, channel), the simulated uplift in visits, conversions and spend is
    set against the held-out real uplift and its 95 % CI, and against the simulated uplift with
    default responses.

    Args:
        log: The campaign.
        seed: Seed of the split (stratified by arm) and of the simulation.
        replicas: Simulated draws of each held-out twin.
        defaults: Values of what the campaign cannot identify.
    """
    fit_rows, held_rows = split_campaign(log, seed)
    fit = fit_campaign_responses(log.subset(fit_rows), defaults)
    held = log.subset(held_rows)
    codes, names, _ = campaign_segments(held)
    twins = twin_features(held, mean_order_value(log.subset(fit_rows)))
    groups = _groups(held)
    rows = []
    for arm in fit.arms:
        simulated = {}
        for responses in ("fitted", "default"):
            population = fit.population(arm, responses=responses)
            index = {s.name: k for k, s in enumerate(population.segments)}
            order = np.array([index.get(names[c], 0) for c in codes], dtype=np.intp)
            simulated[responses] = simulate_uplift(
                population, twins, order, log.window_days, seed + 1, replicas
            )
        for group, mask in groups.items():
            for j, outcome in enumerate(OUTCOMES):
                real, low, high, n_treated, n_control = _real_uplift(held, arm, mask, outcome)
                rows.append(
                    UpliftRow(
                        arm=arm,
                        group=group,
                        outcome=outcome,
                        real=real,
                        low=low,
                        high=high,
                        simulated=float(simulated["fitted"][mask, j].mean()),
                        baseline=float(simulated["default"][mask, j].mean()),
                        n_treated=n_treated,
                        n_control=n_control,
                    )
                )
    return ResponseCheck(rows, fit, fit_rows.size, held_rows.size, replicas, seed)
