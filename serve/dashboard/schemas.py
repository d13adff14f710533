"""The dashboard API's response models (documented in OpenAPI).

Rewards are in the service's reward unit: USD of profit per decision for the strategy and item
worlds' rewards (``recenv``'s reward is the customer-cycle's profit).
"""

from __future__ import annotations

from pydantic import BaseModel, Field

__all__ = [
    "ActionMixRow",
    "ActionOutcome",
    "CatchUpInfo",
    "DashboardStatus",
    "DashboardSummary",
    "EstimateModel",
    "HoldoutComparison",
    "ModelState",
    "OffPolicyEstimate",
    "PropensityHistogram",
    "RangeInfo",
    "RewardTotals",
    "TimePoint",
]


class EstimateModel(BaseModel):
    """A mean with its normal 95 % confidence interval (null where the data give none)."""

    value: float | None = Field(description="The mean (null without data).")
    ci_low: float | None = Field(description="Lower end of the 95 % interval.")
    ci_high: float | None = Field(description="Upper end of the 95 % interval.")
    n: int = Field(description="Decisions the mean is over.")


class RangeInfo(BaseModel):
    """The range answered: the one asked for, widened to whole buckets."""

    since: float = Field(description="Start, Unix seconds (included).")
    until: float = Field(description="End, Unix seconds (excluded).")
    bucket: str = Field(description="Width of the time series' buckets: hour or day.")
    bucket_seconds: int
    n_buckets: int


class CatchUpInfo(BaseModel):
    """What the incremental catch-up of the summary tables did before answering."""

    caught_up: bool = Field(description="False: the log had more rows than one call folds in.")
    decisions_folded: int
    rewards_folded: int
    request_watermark: int = Field(description="Last requests.request_id summarised.")
    reward_watermark: int = Field(description="Last rewards.seq summarised.")
    seconds: float = Field(description="Time the catch-up took.")


class ModelState(BaseModel):
    """The model being served now."""

    model_version: str
    algorithm: str
    online: bool = Field(description="True if the policy learns from rewards.")
    n_updates: int = Field(description="Rewards the online policy has learned from.")


class TimePoint(BaseModel):
    """One bucket of a time series."""

    start: float = Field(description="Bucket start, Unix seconds.")
    decisions: int = Field(0, description="Decisions made in the bucket.")
    rewards: int = Field(0, description="Final rewards recorded in the bucket.")
    defaulted: int = Field(0, description="Of them, default rewards of closed windows.")
    reward_sum: float = Field(0.0, description="Sum of the rewards recorded, USD.")


class ActionMixRow(BaseModel):
    """How often one action was served."""

    action: str
    decisions: int
    share: float = Field(description="Share of the range's decisions.")


class PropensityHistogram(BaseModel):
    """Served actions' propensities in equal bins over [0, 1]."""

    edges: list[float] = Field(description="Bin edges (one more than counts).")
    counts: list[int]


class RewardTotals(BaseModel):
    """The range's decisions by the state of their reward."""

    decisions: int
    rewarded: int = Field(description="Decisions with a final reward.")
    defaulted: int = Field(description="Of them, default rewards of closed windows.")
    pending_windows: int = Field(
        description="Decisions whose reward window is still open (or awaits an activation)."
    )
    without_reward: int = Field(description="Decisions without a window and without a reward.")
    reward_sum: float = Field(description="Sum of the final rewards, USD.")


class ActionOutcome(BaseModel):
    """Conversion and profit of one action's decisions with a final reward."""

    action: str
    decisions: int
    rewarded: int
    conversion: EstimateModel = Field(description="Share of rewarded decisions with reward > 0.")
    profit: EstimateModel = Field(description="Mean reward, USD per decision.")


class HoldoutComparison(BaseModel):
    """Mean reward of held-out customers against treated ones (USD per decision)."""

    treated: EstimateModel
    holdout: EstimateModel
    difference: EstimateModel = Field(description="treated - holdout, unpaired.")


class OffPolicyEstimate(BaseModel):
    """The running policy against always no_action, on treated decisions with final rewards.

    Only the decisions of the model served now count (those of earlier versions in the range
    are another policy's).
    """

    model_version: str = Field(description="The served model, whose decisions are evaluated.")
    baseline_action: str = Field(description="The action the policy is compared with.")
    running_policy: EstimateModel = Field(description="On-policy mean reward, USD per decision.")
    baseline: EstimateModel = Field(
        description="IPS estimate of always baseline_action: mean of 1[a=a0] r / p."
    )
    difference: EstimateModel = Field(description="running_policy - baseline, paired.")
    estimator: str = "ips"


class DashboardSummary(BaseModel):
    """Everything the dashboard page shows, for one time range."""

    range: RangeInfo
    catch_up: CatchUpInfo
    model: ModelState
    series: list[TimePoint] = Field(
        description="Per bucket: decisions made, and final rewards recorded."
    )
    action_mix: list[ActionMixRow]
    propensities: PropensityHistogram
    rewards: RewardTotals
    actions: list[ActionOutcome]
    holdout: HoldoutComparison
    off_policy: OffPolicyEstimate
    query_seconds: float = Field(description="Time spent reading the summary tables.")


class DashboardStatus(BaseModel):
    """The served model and the summaries' state, without reading a range."""

    model: ModelState
    catch_up: CatchUpInfo
