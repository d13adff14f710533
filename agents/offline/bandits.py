r"""LinUCB and linear Thompson sampling learned from a log by replay.

The bandit (:class:`~rec_env.agents.bandits.LinUCB`,
:class:`~rec_env.agents.bandits.LinearThompsonSampling`) sees the log's contexts standardised
by their mean and standard deviation (any number of features) and learns from the rounds that
:func:`~rec_env.agents.ope.replay.replay` keeps: those where its choice matches the logged
action, accepted with probability :math:`p_{\min} / p_i` on non-uniform logs (rejection
sampling), so that it learns as it would have live. Exploration widths are given in units of
the standard deviation of the log's rewards, so one setting suits 0/1 and dollar rewards.
The returned bandit is the library's own class (algorithms ``linucb`` / ``lin_ts``), saved and
loaded like any trained bandit; its replay is kept on ``replay_result_``.
"""

from __future__ import annotations

from collections.abc import Sequence

from rec_env.agents.bandits import LinearThompsonSampling, LinUCB
from rec_env.agents.base import FeaturesLike, Policy
from rec_env.agents.ope.replay import replay
from rec_env.datasets.logged import LoggedBanditData

__all__ = ["fit_lin_ts_replay", "fit_linucb_replay"]


def _trained(
    bandit: Policy, data: LoggedBanditData, min_propensity: float | None, seed: int | None
) -> Policy:
    result = replay(bandit, data, min_propensity=min_propensity, random_state=seed)
    bandit.replay_result_ = result  # type: ignore[attr-defined]
    return bandit


def _space(data: LoggedBanditData, features: FeaturesLike) -> FeaturesLike:
    from rec_env.feature_space import FeatureSpace

    if features is not None:
        return features
    return FeatureSpace.standardised(data.feature_names, data.contexts)


def fit_linucb_replay(
    data: LoggedBanditData,
    *,
    alpha: float = 1.0,
    regularization: float = 1.0,
    min_propensity: float | None = None,
    features: FeaturesLike = None,
    action_channels: Sequence[str] | None = None,
    random_state: int | None = 0,
) -> LinUCB:
    r"""LinUCB trained by (rejection-sampling) replay of the log.

    Args:
        data: The logged decisions, replayed in order.
        alpha: Confidence width, in standard deviations of the log's rewards.
        regularization: Ridge penalty :math:`\lambda`.
        min_propensity: :math:`p_{\min}` of the rejection step (default: the log's smallest).
        features: Feature space of the contexts (default: standardised on ``data``).
        action_channels: Channel of each action, for consent safety.
        random_state: Seed of the rejection draws and of the bandit.
    """
    spread = float(data.rewards.std()) or 1.0
    bandit = LinUCB(
        data.n_actions,
        data.action_names,
        random_state,
        action_channels=action_channels,
        features=_space(data, features),
        alpha=alpha * spread,
        regularization=regularization,
    )
    return _trained(bandit, data, min_propensity, random_state)  # type: ignore[return-value]


def fit_lin_ts_replay(
    data: LoggedBanditData,
    *,
    v: float = 1.0,
    regularization: float = 1.0,
    min_propensity: float | None = None,
    features: FeaturesLike = None,
    action_channels: Sequence[str] | None = None,
    random_state: int | None = 0,
) -> LinearThompsonSampling:
    r"""Linear Thompson sampling trained by (rejection-sampling) replay of the log.

    Args:
        data: The logged decisions, replayed in order.
        v: Posterior scale, in standard deviations of the log's rewards.
        regularization: Ridge penalty :math:`\lambda`.
        min_propensity: :math:`p_{\min}` of the rejection step (default: the log's smallest).
        features: Feature space of the contexts (default: standardised on ``data``).
        action_channels: Channel of each action, for consent safety.
        random_state: Seed of the rejection draws and of the sampling.
    """
    spread = float(data.rewards.std()) or 1.0
    bandit = LinearThompsonSampling(
        data.n_actions,
        data.action_names,
        random_state,
        action_channels=action_channels,
        features=_space(data, features),
        v=v * spread,
        regularization=regularization,
    )
    return _trained(bandit, data, min_propensity, random_state)  # type: ignore[return-value]
