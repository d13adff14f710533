"""The dashboard's numbers for one time range, read from the summary tables by hour range.

Every query reads ``summary_*`` rows with ``first_hour <= hour < end_hour`` through their
primary key (which starts with ``hour``), so its cost grows with the range's hours and the
actions served, never with the log's size. Actions are reported by name, merged over the model
versions that served them.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable

import numpy as np

from rec_env.serve.dashboard.ranges import TimeRange
from rec_env.serve.dashboard.schemas import (
    ActionMixRow,
    ActionOutcome,
    CatchUpInfo,
    DashboardSummary,
    EstimateModel,
    HoldoutComparison,
    ModelState,
    OffPolicyEstimate,
    PropensityHistogram,
    RangeInfo,
    RewardTotals,
    TimePoint,
)
from rec_env.serve.dashboard.statistics import Estimate, Moments, difference
from rec_env.serve.dashboard.summaries import HOUR_SECONDS, PROPENSITY_BINS, SummaryStore

__all__ = ["BASELINE_ACTION", "summarise"]

BASELINE_ACTION = "no_action"
_RANGE = "hour >= ? AND hour < ?"


class _Rewards:
    """Sums of ``summary_rewards`` of one group."""

    def __init__(self) -> None:
        self.rewards = self.positive = self.defaulted = self.windowed = 0
        self.reward = Moments(0, 0.0, 0.0)
        self.ipw = Moments(0, 0.0, 0.0)
        self.reward2_over_p = 0.0

    def add(self, row: tuple, baseline: bool) -> None:
        """Add a row ``(rewards, positive, defaulted, windowed rewards, sums…)``."""
        rewards, positive, defaulted, windowed, total, total2, ipw, ipw2, r2p = row
        self.rewards += int(rewards)
        self.positive += int(positive)
        self.defaulted += int(defaulted)
        self.windowed += int(windowed)
        self.reward += Moments(int(rewards), float(total), float(total2))
        if baseline:  # only the baseline's decisions have 1[a = a0] = 1
            self.ipw += Moments(0, float(ipw), float(ipw2))
            self.reward2_over_p += float(r2p)


def _model(estimate: Estimate) -> EstimateModel:
    return EstimateModel(
        value=estimate.value, ci_low=estimate.ci_low, ci_high=estimate.ci_high, n=estimate.n
    )


def summarise(
    store: SummaryStore, time_range: TimeRange, model: ModelState, catch_up: CatchUpInfo
) -> DashboardSummary:
    """The dashboard's numbers for ``time_range`` (takes the store's lock).

    Args:
        store: The summary tables (caught up by the caller).
        time_range: The range.
        model: The served model's state.
        catch_up: What the caller's catch-up did.
    """
    start = time.perf_counter()
    bounds = (time_range.first_hour, time_range.end_hour)
    with store.lock:
        run = store.connection.execute
        by_hour = run(
            f"SELECT hour, SUM(decisions) FROM summary_decisions WHERE {_RANGE} GROUP BY hour",
            bounds,
        ).fetchall()
        by_action = run(
            "SELECT model_version, action, SUM(decisions), SUM(windowed) FROM summary_decisions "
            f"WHERE {_RANGE} GROUP BY model_version, action",
            bounds,
        ).fetchall()
        by_bin = run(
            "SELECT propensity_bin, SUM(decisions) FROM summary_decisions "
            f"WHERE {_RANGE} GROUP BY propensity_bin",
            bounds,
        ).fetchall()
        rewards = run(
            "SELECT model_version, action, holdout, SUM(rewards), SUM(positive), SUM(defaulted), "
            "SUM(CASE WHEN windowed = 1 THEN rewards ELSE 0 END), SUM(sum_reward), "
            "SUM(sum_reward2), SUM(sum_ipw_reward), SUM(sum_ipw_reward2), "
            f"SUM(sum_reward2_over_p) FROM summary_rewards WHERE {_RANGE} "
            "GROUP BY model_version, action, holdout",
            bounds,
        ).fetchall()
        received = run(
            "SELECT hour, SUM(rewards), SUM(defaulted), SUM(sum_reward) FROM summary_received "
            f"WHERE {_RANGE} GROUP BY hour",
            bounds,
        ).fetchall()
        names = {version: store.action_names(version) for version, *_ in (*by_action, *rewards)}
    name_of = _namer(names)
    decisions = {name_of(v, a): 0 for v, a, *_ in by_action}
    windowed = 0
    for version, action, count, windowed_count in by_action:
        decisions[name_of(version, action)] += int(count)
        windowed += int(windowed_count)
    per_action: dict[str, _Rewards] = defaultdict(_Rewards)
    by_holdout = {0: _Rewards(), 1: _Rewards()}
    served = _Rewards()  # the treated decisions of the model served now
    for version, action, holdout, *sums in rewards:
        name = name_of(version, action)
        baseline = name == BASELINE_ACTION
        per_action[name].add(tuple(sums), baseline)
        by_holdout[1 if holdout else 0].add(tuple(sums), baseline)
        if version == model.model_version and not holdout:
            served.add(tuple(sums), baseline)
    summary = DashboardSummary(
        range=RangeInfo(
            since=time_range.since,
            until=time_range.until,
            bucket=time_range.bucket.value,
            bucket_seconds=time_range.bucket.hours * HOUR_SECONDS,
            n_buckets=time_range.n_buckets,
        ),
        catch_up=catch_up,
        model=model,
        series=_series(time_range, by_hour, received),
        action_mix=_action_mix(decisions),
        propensities=_histogram(by_bin),
        rewards=_totals(decisions, windowed, by_holdout),
        actions=_outcomes(decisions, per_action),
        holdout=_holdout(by_holdout),
        off_policy=_off_policy(served, model.model_version),
        query_seconds=0.0,
    )
    summary.query_seconds = time.perf_counter() - start
    return summary


def _namer(names: dict[str, list[str]]) -> Callable[[str, int], str]:
    """A function naming ``(model_version, action)``; unknown indices as ``action_<i>``."""

    def name_of(version: str, action: int) -> str:
        known = names.get(version, [])
        return known[action] if 0 <= action < len(known) else f"action_{action}"

    return name_of


def _series(time_range: TimeRange, by_hour: list, received: list) -> list[TimePoint]:
    """Decisions made and rewards recorded per bucket (every bucket, zeros included)."""
    n, width = time_range.n_buckets, time_range.bucket.hours
    decisions = np.zeros(n, dtype=np.int64)
    rewards = np.zeros((n, 2), dtype=np.int64)
    reward_sum = np.zeros(n)
    for hour, count in by_hour:
        decisions[(int(hour) - time_range.first_hour) // width] += int(count)
    for hour, count, defaulted, total in received:
        bucket = (int(hour) - time_range.first_hour) // width
        rewards[bucket] += (int(count), int(defaulted))
        reward_sum[bucket] += float(total)
    return [
        TimePoint(
            start=float((time_range.first_hour + i * width) * HOUR_SECONDS),
            decisions=int(decisions[i]),
            rewards=int(rewards[i, 0]),
            defaulted=int(rewards[i, 1]),
            reward_sum=float(reward_sum[i]),
        )
        for i in range(n)
    ]


def _action_mix(decisions: dict[str, int]) -> list[ActionMixRow]:
    """The actions served, most frequent first."""
    total = sum(decisions.values())
    ordered = sorted(decisions.items(), key=lambda item: (-item[1], item[0]))
    return [
        ActionMixRow(action=name, decisions=count, share=count / total if total else 0.0)
        for name, count in ordered
    ]


def _histogram(by_bin: list) -> PropensityHistogram:
    """The propensity histogram over :data:`PROPENSITY_BINS` equal bins."""
    counts = [0] * PROPENSITY_BINS
    for bin_, count in by_bin:
        counts[int(bin_)] += int(count)
    edges = [round(i / PROPENSITY_BINS, 10) for i in range(PROPENSITY_BINS + 1)]
    return PropensityHistogram(edges=edges, counts=counts)


def _totals(
    decisions: dict[str, int], windowed: int, by_holdout: dict[int, _Rewards]
) -> RewardTotals:
    """The range's decisions by the state of their reward."""
    n = sum(decisions.values())
    rewarded = sum(group.rewards for group in by_holdout.values())
    rewarded_windowed = sum(group.windowed for group in by_holdout.values())
    pending = max(windowed - rewarded_windowed, 0)
    return RewardTotals(
        decisions=n,
        rewarded=rewarded,
        defaulted=sum(group.defaulted for group in by_holdout.values()),
        pending_windows=pending,
        without_reward=max(n - rewarded - pending, 0),
        reward_sum=sum(group.reward.total for group in by_holdout.values()),
    )


def _outcomes(decisions: dict[str, int], per_action: dict[str, _Rewards]) -> list[ActionOutcome]:
    """Conversion and profit per action, in the action mix's order."""
    outcomes = []
    for name, count in sorted(decisions.items(), key=lambda item: (-item[1], item[0])):
        group = per_action.get(name, _Rewards())
        conversion = Moments(group.rewards, float(group.positive), float(group.positive))
        outcomes.append(
            ActionOutcome(
                action=name,
                decisions=count,
                rewarded=group.rewards,
                conversion=_model(conversion.estimate()),
                profit=_model(group.reward.estimate()),
            )
        )
    return outcomes


def _holdout(by_holdout: dict[int, _Rewards]) -> HoldoutComparison:
    """Treated against held-out customers' mean reward."""
    treated = by_holdout[0].reward.estimate()
    holdout = by_holdout[1].reward.estimate()
    return HoldoutComparison(
        treated=_model(treated),
        holdout=_model(holdout),
        difference=_model(difference(treated, holdout)),
    )


def _off_policy(treated: _Rewards, model_version: str) -> OffPolicyEstimate:
    """The served model's mean reward against the IPS estimate of always no_action."""
    n = treated.rewards
    baseline = Moments(n, treated.ipw.total, treated.ipw.total2)
    # paired: d_i = r_i - x_i, sum d_i^2 = sum r^2 - 2 sum r x + sum x^2
    paired = Moments(
        n,
        treated.reward.total - treated.ipw.total,
        treated.reward.total2 - 2 * treated.reward2_over_p + treated.ipw.total2,
    )
    return OffPolicyEstimate(
        model_version=model_version,
        baseline_action=BASELINE_ACTION,
        running_policy=_model(treated.reward.estimate()),
        baseline=_model(baseline.estimate()),
        difference=_model(paired.estimate()),
    )
