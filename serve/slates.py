r"""The slate logging policy: a slate policy's message with exploration, and its probabilities.

A slate policy (PPO on ``rec_env/SlateRecommendation-v0``) outputs a scoring vector: product
scores :math:`s_j` (its embedding weights dotted with the product vectors), channel scores and
offer scores (:class:`~rec_env.agents.sb3.slate.SlateDecoder`). Its own decision is
deterministic: the ``K`` allowed products of highest score, best first, on the highest-scoring
channel (none if the customer has not consented to it), with the highest-scoring offer. A
deterministic log cannot evaluate any other policy, so the service serves a *logging policy*
around it, chosen by the same ``--exploration`` setting as single actions, and logs the
probability of what it served. A message is three independent draws, channel, offer and the
ordered slate, and its probability is their product:

.. math::

    P(c, o, \sigma) = q_{\text{channel}}(c)\; q_{\text{offer}}(o)\;
    \prod_{k=1}^{K} P(\sigma_k \mid \sigma_1, \dots, \sigma_{k-1}).

The factor of position ``k`` is what the API and the log call the *position probability*: the
probability that the product shown at position ``k`` is there, given the products above it.
Their running product is the probability of the first ``k`` products (the cascade propensity
of slate estimators such as RIPS), and their product with the channel's and the offer's is the
probability of the whole slate (the standard slate IPS propensity). Every one is exact:

* ``epsilon`` (default, ε = 0.05): with probability 1 − ε the policy's slate, with ε a uniformly
  random ordered slate of ``K`` of the ``M`` allowed products; likewise the channel (uniform over
  none and the consented channels) and the offer. The probability of a prefix is
  :math:`(1-\varepsilon)\,[\sigma_{1..k} = \sigma^*_{1..k}] + \varepsilon \prod_{i<k} 1/(M-i)`, so
  any slate has probability at least :math:`\varepsilon\,(M-K)!/M!`, and every product is at
  any position with probability at least ε/M. This is the same ε-mixing as single actions,
  which keeps the policy's own slate 95 % of the time. (A Plackett–Luce draw around an actor
  whose scores are not calibrated as log-odds puts an arbitrary share of traffic on other
  slates; ε says how much.)
* ``temperature`` (τ): a Plackett–Luce slate over :math:`s_j / \tau`: position ``k`` draws
  product ``j`` among the allowed products not yet shown with probability
  :math:`e^{s_j/\tau} / \sum_{l} e^{s_l/\tau}`; the channel and the offer are a softmax of
  their scores over τ (a channel without consent gives its share to none).
* ``none``: the policy's message; every probability is 1.

A message on channel none sends nothing: its slate is empty and its probability is the
channel's. With no product allowed (all excluded or out of stock) nothing is sent.

Each customer takes ``K + 3`` uniform numbers from the seeded sampler, whichever branch uses
them (channel, offer, the ε choice, one per position), so the decision log can count the draws
and a restart continue the stream.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from rec_env.serve.exploration import Exploration

if TYPE_CHECKING:  # pragma: no cover
    from rec_env.agents.sb3.slate import SlateDecoder

__all__ = ["SampledSlates", "SlateSampler"]


@dataclass(frozen=True)
class SampledSlates:
    """Served slate messages and their probabilities (module docstring).

    Attributes:
        slates: ``(n, K)`` product indices in display order, -1 where empty.
        channels: ``(n,)`` channel index (``n_channels``: none, nothing sent).
        discounts: ``(n,)`` the offer's discount (0 when nothing is sent).
        position_probabilities: ``(n, K)`` probability of each position given the positions
            above it, NaN where empty.
        propensities: ``(n,)`` probability of each whole message.
        actions: ``(n,)`` item action of each message's first product (0: nothing sent).
    """

    slates: np.ndarray
    channels: np.ndarray
    discounts: np.ndarray
    position_probabilities: np.ndarray
    propensities: np.ndarray
    actions: np.ndarray


def _inverse_cdf(probabilities: np.ndarray, uniforms: np.ndarray) -> np.ndarray:
    """One index per row of ``probabilities`` ``(n, m)``, never one of probability 0."""
    cumulative = np.cumsum(probabilities, axis=1)
    chosen = (cumulative <= (uniforms * cumulative[:, -1])[:, None]).sum(axis=1)
    last = probabilities.shape[1] - 1 - np.argmax(probabilities[:, ::-1] > 0.0, axis=1)
    return np.minimum(chosen, last)


def _one_hot(index: np.ndarray, width: int) -> np.ndarray:
    out = np.zeros((index.size, width))
    out[np.arange(index.size), index] = 1.0
    return out


def _softmax(scores: np.ndarray, temperature: float) -> np.ndarray:
    weights = np.exp((scores - scores.max(axis=1, keepdims=True)) / temperature)
    return weights / weights.sum(axis=1, keepdims=True)


class SlateSampler:
    """Serve slates of a decoder's scoring vectors with exploration (module docstring).

    Args:
        decoder: The slate policy's decoder (product vectors, ``K``, offers).
        exploration: The exploration kind and its ε or τ.
    """

    def __init__(self, decoder: SlateDecoder, exploration: Exploration) -> None:
        self.decoder = decoder
        self.exploration = exploration

    @property
    def draws(self) -> int:
        """Uniform numbers each customer takes: channel, offer, the ε choice, one per position."""
        return self.decoder.slate_size + 3

    def sample(
        self,
        vectors: np.ndarray,
        allowed_products: np.ndarray,
        consent: np.ndarray,
        uniforms: np.ndarray,
    ) -> SampledSlates:
        """Draw each customer's message.

        Args:
            vectors: ``(n, D)`` scoring vectors (clipped to the action box).
            allowed_products: ``(n_products,)`` bool, what the request allows.
            consent: ``(n, n_channels)`` bool consent of each customer.
            uniforms: ``(n, draws)`` uniform numbers in [0, 1).
        """
        decoder, n = self.decoder, vectors.shape[0]
        vectors = np.asarray(vectors, dtype=np.float64)
        n_allowed = int(allowed_products.sum())
        e, n_channels = decoder.n_embedding, consent.shape[1]
        best, best_channels, best_discounts = decoder.decode(
            vectors, np.broadcast_to(allowed_products, (n, decoder.n_products)), consent
        )
        channel_q = self._channel_probabilities(
            vectors[:, e : e + 1 + n_channels], best_channels, consent, n_allowed > 0
        )
        choice = _inverse_cdf(channel_q, uniforms[:, 0])
        channels = np.where(choice == 0, n_channels, choice - 1)
        offer_q, offers = self._offers(vectors[:, e + 1 + n_channels :], best_discounts, uniforms)
        slates, positions = self._slates(
            decoder.scores(vectors), best, allowed_products, n_allowed, uniforms
        )
        silent = channels == n_channels
        slates[silent] = -1
        positions[silent] = np.nan
        positions[slates < 0] = np.nan
        rows = np.arange(n)
        propensities = channel_q[rows, choice] * np.where(
            silent, 1.0, offer_q[rows, offers] * np.nanprod(positions, axis=1)
        )
        discounts = np.where(silent, 0.0, np.asarray(decoder.offers)[offers])
        actions = decoder.lead_actions(slates, channels, discounts)
        return SampledSlates(slates, channels, discounts, positions, propensities, actions)

    # ------------------------------------------------------------------ channel and offer
    def _channel_probabilities(
        self, scores: np.ndarray, best: np.ndarray, consent: np.ndarray, any_product: bool
    ) -> np.ndarray:
        """``(n, 1 + n_channels)`` probabilities of none, then each channel."""
        n, n_channels = consent.shape
        best_choice = np.where(best >= n_channels, 0, best + 1)
        if not any_product:
            return _one_hot(np.zeros(n, dtype=np.intp), n_channels + 1)
        open_ = np.ones((n, n_channels + 1), dtype=bool)
        open_[:, 1:] = consent
        kind, epsilon = self.exploration.kind, self.exploration.epsilon
        if kind == "epsilon":
            uniform = open_ / open_.sum(axis=1, keepdims=True)
            return (1.0 - epsilon) * _one_hot(best_choice, n_channels + 1) + epsilon * uniform
        if kind == "temperature":
            weights = _softmax(scores, self.exploration.temperature)
            refused = np.where(open_, 0.0, weights).sum(axis=1)
            weights = np.where(open_, weights, 0.0)
            weights[:, 0] += refused
            return weights
        return _one_hot(best_choice, n_channels + 1)

    def _offers(
        self, scores: np.ndarray, best: np.ndarray, uniforms: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(probabilities (n, n_offers), drawn offer index (n,))``."""
        offers = np.asarray(self.decoder.offers)
        n = best.shape[0]
        best_index = np.argmax(best[:, None] == offers[None, :], axis=1)
        kind = self.exploration.kind
        if offers.size == 1 or kind == "none":
            q = _one_hot(best_index, offers.size)
        elif kind == "epsilon":
            epsilon = self.exploration.epsilon
            q = (1.0 - epsilon) * _one_hot(best_index, offers.size) + epsilon / offers.size
        else:
            q = _softmax(scores, self.exploration.temperature)
        return q, _inverse_cdf(q, uniforms[:, 1]) if n else best_index

    # ------------------------------------------------------------------ slates
    def _slates(
        self,
        scores: np.ndarray,
        best: np.ndarray,
        allowed: np.ndarray,
        n_allowed: int,
        uniforms: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(slates (n, K), position probabilities (n, K))`` of the exploration kind."""
        kind, n, size = self.exploration.kind, scores.shape[0], self.decoder.slate_size
        length = min(size, n_allowed)
        positions = np.ones((n, size))
        if kind == "none" or length == 0:
            return best.copy(), positions
        if kind == "temperature":
            return self._plackett_luce(scores, allowed, length, uniforms)
        epsilon = self.exploration.epsilon
        explore = uniforms[:, 2] < epsilon
        slates = best.copy()
        slates[explore] = self._uniform_slates(allowed, length, uniforms[explore])
        uniform_prefix = 1.0  # probability of one ordered prefix under the uniform slate
        previous = np.ones(n)
        for k in range(length):
            uniform_prefix /= n_allowed - k
            same = np.all(slates[:, : k + 1] == best[:, : k + 1], axis=1)
            prefix = (1.0 - epsilon) * same + epsilon * uniform_prefix
            positions[:, k] = prefix / previous
            previous = prefix
        return slates, positions

    def _uniform_slates(self, allowed: np.ndarray, length: int, uniforms: np.ndarray) -> np.ndarray:
        """Uniformly random ordered slates of ``length`` allowed products (one uniform each)."""
        n, size = uniforms.shape[0], self.decoder.slate_size
        slates = np.full((n, size), -1, dtype=np.intp)
        remaining = np.broadcast_to(allowed, (n, allowed.size)).copy()
        for k in range(length):
            counts = np.cumsum(remaining, axis=1)
            rank = np.floor(uniforms[:, 3 + k] * counts[:, -1]).astype(np.intp)
            slates[:, k] = np.argmax(counts > rank[:, None], axis=1)
            remaining[np.arange(n), slates[:, k]] = False
        return slates

    def _plackett_luce(
        self, scores: np.ndarray, allowed: np.ndarray, length: int, uniforms: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Plackett–Luce slates over ``scores / τ`` and each position's probability."""
        n, size = scores.shape[0], self.decoder.slate_size
        temperature = self.exploration.temperature
        slates = np.full((n, size), -1, dtype=np.intp)
        positions = np.ones((n, size))
        remaining = np.broadcast_to(allowed, scores.shape).copy()
        rows = np.arange(n)
        for k in range(length):
            masked = np.where(remaining, scores, -np.inf)
            # relative to the best remaining score: its weight is 1, so no total underflows
            weights = np.exp((masked - masked.max(axis=1, keepdims=True)) / temperature)
            chosen = _inverse_cdf(weights, uniforms[:, 3 + k])
            slates[:, k] = chosen
            positions[:, k] = weights[rows, chosen] / weights.sum(axis=1)
            remaining[rows, chosen] = False
        return slates, positions
