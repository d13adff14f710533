r"""Off-policy evaluation of slates: whole-slate IPS and SNIPS, and independent (per-position) IPS.

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

Independent IPS (:class:`SlateIndependentIPS`) is the per-position estimator for logs that
*do* have one reward per position (clicks on item slots, as in the Open Bandit Dataset): one
record per (slate, position), with the marginal probability :math:`\mu(a_{ik} \text{ at } k
\mid x_i)` that the logger shows that item at that position. Under the item-position click
model (Li et al. 2018) the reward at a position depends on the item and the position only, so

.. math::

    \hat V_{\mathrm{IIPS}} = \frac{1}{|S|} \sum_{s \in S} \sum_{k} w_{s,k}\, r_{s,k},
    \qquad w_{s,k} = \frac{\pi(a_{s,k} \text{ at } k \mid x_s)}
    {\mu(a_{s,k} \text{ at } k \mid x_s)},

the expected sum of rewards per slate, is unbiased with weights that are per position, not
per whole slate. The bootstrap resamples whole slates.

Target probabilities: the slate policies of recenv (the slate PPO actor, the item baselines'
``predict_slates``) are deterministic, so :math:`\pi(s_i \mid x_i)` is 1 where the policy sends
the logged message in the logged context and 0 elsewhere (:func:`slate_target_probabilities`).
A policy without ``predict_slates`` cannot give a slate's probability, and is refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from rec_env.agents.ope.base import (
    BootstrapSettings,
    OPEResult,
    check_target_probabilities,
    importance_weights,
    unsupported_mass,
    weight_diagnostics,
)
from rec_env.agents.ope.bootstrap import bootstrap_sums, replicate_ratios
from rec_env.datasets.logged import LoggedBanditData, LoggedSlateData

__all__ = ["SlateIPS", "SlateIndependentIPS", "slate_target_probabilities"]


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
        low, high, undefined = self._counted_interval(self.label, replicate_ratios(sums, 0))
        value = float(totals[0] / totals[1])
        return OPEResult(
            self.label,
            value,
            low,
            high,
            data.n,
            *weight_diagnostics(weights),
            raw_max_weight=float(weights.max()),
            n_replicates=self.n_bootstrap,
            n_undefined_replicates=undefined,
        )


@dataclass(kw_only=True)
class SlateIndependentIPS(BootstrapSettings):
    r"""Independent (item-position) IPS of a ranking policy: the sum of rewards per slate.

    Formula in the module docstring. Records are rows of a
    :class:`~rec_env.datasets.LoggedBanditData` with ``positions``; a row's propensity is the
    logging policy's marginal probability of that item at that position (Open Bandit
    Pipeline's ``pscore_item_position``; the Open Bandit Dataset's ``pscore``).

    Args:
        n_bootstrap: Bootstrap replicates (whole slates are resampled).
        confidence: Level of the confidence interval, in (0, 1).
        random_state: Seed of the bootstrap's resampling.

    References:
        S. Li, Y. Abbasi-Yadkori, B. Kveton, S. Muthukrishnan, V. Vinay and Z. Wen. Offline
        evaluation of ranking policies with click models. KDD 2018; Open Bandit Pipeline's
        ``SlateIndependentIPS`` (H. Kiyohara et al. Doubly robust off-policy evaluation for
        ranking policies under the cascade behavior model. WSDM 2022).
    """

    name: ClassVar[str] = "slate_iips"

    @property
    def label(self) -> str:
        """``slate_iips``."""
        return self.name

    def estimate(
        self, data: LoggedBanditData, target_probabilities: np.ndarray, slate_ids: np.ndarray
    ) -> OPEResult:
        r"""Estimate the target's expected sum of rewards per slate.

        Args:
            data: One record per (slate, position), with ``positions``.
            target_probabilities: ``(n, n_actions, n_positions)`` marginal probability
                :math:`\pi(a 	ext{ at } k \mid x_i)` of each item at each position.
            slate_ids: ``(n,)`` the slate each record belongs to.

        Returns:
            The estimate (``n`` is the number of slates) and the weight diagnostics of the
            records.

        Raises:
            ValueError: If the log has no positions, the probabilities are not 3-D or do not
                match the log, or ``slate_ids`` does not hold one id per record.
        """
        if data.positions is None:
            raise ValueError(
                "slate_iips needs one record per (slate, position): give the log positions "
                "(LoggedBanditData(positions=...))"
            )
        target = check_target_probabilities(data, target_probabilities)
        ids = np.asarray(slate_ids)
        if ids.shape != (data.n,):
            raise ValueError(
                f"shape mismatch: slate_ids must have shape ({data.n},), got {ids.shape}"
            )
        slate = np.unique(ids, return_inverse=True)[1].ravel()
        weights = importance_weights(data, target)
        per_slate = np.bincount(slate, weights=weights * data.rewards)
        columns = np.column_stack([per_slate, np.ones(per_slate.size)])
        sums = bootstrap_sums(columns, self.n_bootstrap, self.random_state)
        low, high, undefined = self._counted_interval(self.label, replicate_ratios(sums, 0))
        return OPEResult(
            self.label,
            float(per_slate.mean()),
            low,
            high,
            int(per_slate.size),
            *weight_diagnostics(weights),
            raw_max_weight=float(weights.max()),
            unsupported_mass=unsupported_mass(data, target),
            n_replicates=self.n_bootstrap,
            n_undefined_replicates=undefined,
        )
