r"""Off-policy evaluation of slate messages: whole-slate IPS and SNIPS.

A slate message :math:`s = (c, o, \sigma)` is a channel, an offer and an ordered slate of
``K`` products; the log holds its probability under the logging policy,
:math:`\mu(s_i \mid x_i)` (:mod:`rec_env.serve.slates`: the product of the channel's, the
offer's and every position's probability), and one reward :math:`r_i` for the whole message.
With the target policy's probability of the logged message, :math:`\pi(s_i \mid x_i)`, the
whole-slate importance weight is :math:`w_i = \pi(s_i \mid x_i) / \mu(s_i \mid x_i)` and

.. math::

    \hat V_{\mathrm{IPS}} = \frac{1}{n} \sum_{i=1}^n w_i\, r_i, \qquad
    \hat V_{\mathrm{SNIPS}} = \frac{\sum_i w_i\, r_i}{\sum_i w_i}.

Both are unbiased (SNIPS consistent) whenever :math:`\mu(s \mid x) > 0` for every message the
target can send, which the service's exploring logging policies guarantee. Their variance grows
with the number of ordered slates (a uniform slate of ``K`` of ``M`` products has probability
:math:`(M-K)!/M!`), so they are precise only for targets close to the logging policy; the
effective sample size in the result says how close.

Not implemented: per-position estimators such as the pseudo-inverse estimator (A. Swaminathan
et al. Off-policy evaluation for slate recommendation. NeurIPS 2017), which divide the reward
among positions through per-position marginal probabilities. The reward here is one number per
message (the purchases it caused, net of the send), not a sum of per-position rewards, and the
choice model (at most one click, positions competing through a multinomial logit) is not the
additive reward those estimators assume.

Target probabilities: the slate policies of recenv (the slate PPO actor, the item baselines'
``predict_slates``) are deterministic, so :math:`\pi(s_i \mid x_i)` is 1 where the policy sends
the logged message in the logged context and 0 elsewhere (:func:`slate_target_probabilities`).
A policy without ``predict_slates`` cannot give a slate's probability, and is refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from rec_env.agents.ope.base import BootstrapSettings, OPEResult, weight_diagnostics
from rec_env.agents.ope.bootstrap import bootstrap_sums, replicate_ratios
from rec_env.datasets.logged import LoggedSlateData

__all__ = ["SlateIPS", "slate_target_probabilities"]


def slate_target_probabilities(
    policy: Any, data: LoggedSlateData, offers: tuple[float, ...]
) -> np.ndarray:
    r""":math:`\pi(s_i \mid x_i)` ``(n,)``: a deterministic slate policy's probability per message.

    It is 1 where the policy sends the logged message (same channel, offer and ordered slate;
    or, like the log, nothing) and 0 elsewhere.

    Args:
        policy: A slate policy with ``predict_slates(obs, allowed_products)`` returning
            ``(slates, channels, discounts)``.
        data: The logged messages.
        offers: The action table's offer levels (discounts), in offer-index order.

    Raises:
        ValueError: If the policy cannot give a slate's probability (no ``predict_slates``).
    """
    if not callable(getattr(policy, "predict_slates", None)):
        algorithm = getattr(policy, "algorithm", type(policy).__name__)
        raise ValueError(
            f"the target policy ({algorithm}) cannot give the probability of a slate, so it "
            "cannot be evaluated on a slate log; use a slate run (ppo on "
            "rec_env/SlateRecommendation-v0) or an item baseline"
        )
    slates, channels, discounts = policy.predict_slates(data.contexts, data.allowed_products)
    slates, channels = np.asarray(slates), np.asarray(channels)
    if slates.shape != data.slates.shape:
        raise ValueError(
            f"the target policy's slates have shape {slates.shape}, the log's {data.slates.shape}"
        )
    offer = np.argmin(np.abs(np.asarray(discounts)[:, None] - np.asarray(offers)), axis=1)
    sends = (channels < data.n_channels) & (slates[:, 0] >= 0)
    same = (
        (channels == data.channels) & (offer == data.offers) & (slates == data.slates).all(axis=1)
    )
    return np.where(data.sent, sends & same, ~sends).astype(np.float64)


@dataclass(kw_only=True)
class SlateIPS(BootstrapSettings):
    r"""Whole-slate inverse probability weighting (module docstring), optionally self-normalised.

    Args:
        self_normalized: SNIPS (:math:`\sum w r / \sum w`) instead of IPS.
        n_bootstrap: Bootstrap replicates for the confidence interval.
        confidence: Level of the confidence interval, in (0, 1).
        random_state: Seed of the bootstrap's resampling.

    References:
        D. G. Horvitz and D. J. Thompson. A generalization of sampling without replacement from
        a finite universe. JASA 47(260), 1952; A. Swaminathan and T. Joachims. The
        self-normalized estimator for counterfactual learning. NeurIPS 2015.
    """

    self_normalized: bool = False

    name: ClassVar[str] = "slate_ips"

    @property
    def label(self) -> str:
        """``slate_ips`` or ``slate_snips``."""
        return "slate_snips" if self.self_normalized else self.name

    def estimate(self, data: LoggedSlateData, target_probabilities: np.ndarray) -> OPEResult:
        r"""Estimate the target's mean reward per message.

        Args:
            data: The logged slate messages.
            target_probabilities: ``(n,)`` :math:`\pi(s_i \mid x_i)`, the target's
                probability of each logged message.

        Raises:
            ValueError: If the probabilities do not match the log or are outside [0, 1], or
                (SNIPS) the target gives probability 0 to every logged message.
        """
        target = np.asarray(target_probabilities, dtype=np.float64)
        if target.shape != (data.n,):
            raise ValueError(
                f"shape mismatch: target slate probabilities must have shape ({data.n},), "
                f"got {target.shape}"
            )
        if not np.all(np.isfinite(target)) or (target < 0).any() or (target > 1).any():
            raise ValueError("target slate probabilities must be in [0, 1]")
        weights = target / data.propensities
        denominators = weights if self.self_normalized else np.ones(data.n)
        if denominators.sum() <= 0:
            raise ValueError(f"{self.label} is undefined: the target never sends a logged message")
        columns = np.column_stack([weights * data.rewards, denominators])
        totals = columns.sum(axis=0)
        sums = bootstrap_sums(columns, self.n_bootstrap, self.random_state)
        low, high = self._interval(replicate_ratios(sums, 0))
        value = float(totals[0] / totals[1])
        return OPEResult(self.label, value, low, high, data.n, *weight_diagnostics(weights))
