r"""Slate policies: an SB3 actor's scoring vector decoded to a slate of products.

``rec_env/SlateRecommendation-v0`` acts with a ``Box`` scoring vector
(:class:`~rec_env.item_env.SlateModel`): its first ``e`` entries weight the product embeddings,
the ``K`` allowed products with the highest scores form the slate, best first, then the
channel scores (none, e-mail, SMS, push) and, with several offers, the offer scores.
:class:`SlateDecoder` holds what decoding needs (the embeddings, ``K``, the offers, the stock),
so a saved policy decodes without the product file. :class:`SlatePPOPolicy` is a trained PPO
actor behind the :class:`~rec_env.agents.base.Policy` interface:

* :meth:`~SlatePPOPolicy.predict` returns the env's actions, ``(n, D)`` scoring vectors, with
  the channel block rewritten to a consented channel or none (consent read from the
  observation, like every policy);
* :meth:`~SlatePPOPolicy.predict_slates` returns the decoded ``(slates, channels, discounts)``
  (:class:`rec_env.rollout.SlatePolicyLike`);
* its discrete view is the item world's action table: :meth:`action_probabilities` puts
  probability 1 on the *lead* item (the slate's first product with its channel and offer), so
  reports and masks read it like an item policy;
* :meth:`~SlatePPOPolicy.score_network` is the numpy network of every product's score after
  the action clipping, what the explainer explains.

Importing this module imports torch, Stable-Baselines3 and sb3-contrib.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.base_class import BaseAlgorithm

from rec_env.agents.sb3.network import DenseLayer, NumpyNetwork, numpy_network
from rec_env.agents.sb3.policy import PPOPolicy
from rec_env.features import CHANNELS

if TYPE_CHECKING:
    from rec_env.item_env import SlateModel

__all__ = ["SLATE_POLICY_CLASSES", "SlateDecoder", "SlatePPOPolicy"]

_N_CHANNELS = len(CHANNELS)


@dataclass(frozen=True, eq=False)
class SlateDecoder:
    """What turns a scoring vector into a slate, without the customer model.

    Attributes:
        embeddings: ``(n_products, e)`` float64 product vectors
            (:func:`rec_env.item_env.product_embeddings`).
        slate_size: Products per message ``K``.
        offers: Discount levels, in action order.
        available: ``(n_products,)`` bool, in stock.
    """

    embeddings: np.ndarray
    slate_size: int
    offers: tuple[float, ...]
    available: np.ndarray

    def __post_init__(self) -> None:
        embeddings = np.ascontiguousarray(self.embeddings, dtype=np.float64)
        available = np.asarray(self.available, dtype=bool)
        if embeddings.ndim != 2 or available.shape != (embeddings.shape[0],):
            raise ValueError("embeddings must be (n_products, e) and available (n_products,)")
        if self.slate_size < 1 or not self.offers:
            raise ValueError("slate_size must be positive and offers non-empty")
        object.__setattr__(self, "embeddings", embeddings)
        object.__setattr__(self, "available", available)
        object.__setattr__(self, "offers", tuple(float(o) for o in self.offers))

    @classmethod
    def from_model(cls, model: SlateModel) -> SlateDecoder:
        """The decoder of a slate world's model."""
        return cls(model.embeddings, model.slate_size, model.actions.offers, model.arrays.available)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SlateDecoder:
        """Inverse of :meth:`to_dict`."""
        return cls(
            np.asarray(data["embeddings"], dtype=np.float64),
            int(data["slate_size"]),
            tuple(data["offers"]),
            np.asarray(data["available"], dtype=bool),
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (floats round-trip exactly)."""
        return {
            "embeddings": self.embeddings.tolist(),
            "slate_size": self.slate_size,
            "offers": list(self.offers),
            "available": self.available.tolist(),
        }

    @property
    def n_products(self) -> int:
        """Products in the catalog."""
        return int(self.embeddings.shape[0])

    @property
    def n_embedding(self) -> int:
        """Entries of the vector that weight the embeddings (``e``)."""
        return int(self.embeddings.shape[1])

    @property
    def action_dim(self) -> int:
        """Length ``D`` of a scoring vector."""
        n_offers = len(self.offers)
        return self.n_embedding + 1 + _N_CHANNELS + (n_offers if n_offers > 1 else 0)

    @property
    def n_item_actions(self) -> int:
        """Size of the item world's action table: no action, then product × channel × offer."""
        return 1 + self.n_products * _N_CHANNELS * len(self.offers)

    def scores(self, actions: np.ndarray) -> np.ndarray:
        """``(n, n_products)`` float64 score ``weights · embedding`` of every product.

        Summed feature by feature in order, as the env's compiled decoder does, so that both
        rank products identically to the last bit.
        """
        weights = np.asarray(actions, dtype=np.float64).reshape(-1, self.action_dim)
        scores = np.zeros((weights.shape[0], self.n_products))
        for f in range(self.n_embedding):
            scores += weights[:, f : f + 1] * self.embeddings[:, f]
        return scores

    def decode(
        self,
        actions: np.ndarray,
        allowed_products: np.ndarray | None = None,
        allowed_channels: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(slates (n, K), channels (n,), discounts (n,))`` of scoring vectors ``(n, D)``.

        The same decisions as :meth:`rec_env.item_env.SlateModel.decode` (a test holds them
        equal): the ``K`` allowed products with the highest scores, best first, ties to the
        lower product index (-1 pads), the highest-scoring channel (``len(CHANNELS)``: none)
        and offer. A channel that is not allowed (no consent) becomes none, as the env
        delivers nothing on it.

        Args:
            actions: ``(n, D)`` scoring vectors.
            allowed_products: ``(n, n_products)`` bool (default: the products in stock).
            allowed_channels: ``(n, n_channels)`` bool (default: all).
        """
        actions = np.asarray(actions, dtype=np.float64).reshape(-1, self.action_dim)
        n, e = actions.shape[0], self.n_embedding
        scores = self.scores(actions)
        if allowed_products is None:
            allowed_products = np.broadcast_to(self.available, scores.shape)
        scores[~allowed_products] = -np.inf
        k_eff = min(self.slate_size, scores.shape[1])
        top = np.argsort(-scores, axis=1, kind="stable")[:, :k_eff]  # ties: lower index first
        slates = np.full((n, self.slate_size), -1, dtype=np.intp)
        slates[:, :k_eff] = top
        slates[~np.isfinite(np.take_along_axis(scores, slates.clip(0), axis=1))] = -1
        choice = np.argmax(actions[:, e : e + 1 + _N_CHANNELS], axis=1)
        channels = np.where(choice == 0, _N_CHANNELS, choice - 1).astype(np.intp)
        if allowed_channels is not None:
            refused = channels < _N_CHANNELS
            refused[refused] = ~allowed_channels[np.flatnonzero(refused), channels[refused]]
            channels[refused] = _N_CHANNELS
        offers = np.asarray(self.offers)
        if len(self.offers) > 1:
            discounts = offers[np.argmax(actions[:, e + 1 + _N_CHANNELS :], axis=1)]
        else:
            discounts = np.full(n, offers[0])
        return slates, channels, discounts

    def lead_actions(
        self, slates: np.ndarray, channels: np.ndarray, discounts: np.ndarray
    ) -> np.ndarray:
        """``(n,)`` item action of each message's first product (0: no message)."""
        n_offers = len(self.offers)
        offer = np.argmax(np.asarray(discounts)[:, None] == np.asarray(self.offers), axis=1)
        lead = slates[:, 0]
        sent = (channels < _N_CHANNELS) & (lead >= 0)
        actions = 1 + (lead * _N_CHANNELS + channels) * n_offers + offer
        return np.where(sent, actions, 0).astype(np.intp)

    def rewrite_channels(self, actions: np.ndarray, channels: np.ndarray) -> np.ndarray:
        """``actions`` with the channel block set to ``channels`` (1 for it, -1 for the others)."""
        actions = np.array(actions, dtype=np.float32, copy=True)
        e = self.n_embedding
        block = np.full((actions.shape[0], 1 + _N_CHANNELS), -1.0, dtype=np.float32)
        choice = np.where(channels >= _N_CHANNELS, 0, channels + 1)
        block[np.arange(actions.shape[0]), choice] = 1.0
        actions[:, e : e + 1 + _N_CHANNELS] = block
        return actions


class SlatePPOPolicy(PPOPolicy):
    """A PPO actor trained on ``rec_env/SlateRecommendation-v0`` (module docstring).

    Its algorithm is ``"ppo"``: a run directory says ``ppo`` and loads through
    :class:`~rec_env.agents.sb3.policy.PPOPolicy`, which hands a saved slate policy (its
    ``policy.json`` has ``slate``) to this class.

    Args:
        model: The trained PPO model with a ``Box`` action space.
        slate: The decoder (or its :meth:`SlateDecoder.to_dict`).
        n_actions: Size of the item action table (default: the decoder's).
        action_names: Names of the item actions.
        random_state: Seed of the generator of stochastic :meth:`predict`.
        **kwargs: ``action_channels`` and ``features`` (see
            :class:`~rec_env.agents.sb3.policy.SB3Policy`).
    """

    algorithm: ClassVar[str] = "ppo"

    def __init__(
        self,
        model: BaseAlgorithm | None = None,
        slate: SlateDecoder | Mapping[str, Any] | None = None,
        n_actions: int | None = None,
        action_names: tuple[str, ...] | list[str] | None = None,
        random_state: int | None = None,
        **kwargs: Any,
    ) -> None:
        if slate is None:
            raise ValueError("a slate policy needs its SlateDecoder")
        self.slate = slate if isinstance(slate, SlateDecoder) else SlateDecoder.from_dict(slate)
        n_actions = self.slate.n_item_actions if n_actions is None else n_actions
        super().__init__(model, n_actions, action_names, random_state, **kwargs)

    def _check_model(self, model: BaseAlgorithm) -> None:
        if type(model) is not self.model_class:
            raise TypeError(f"{type(self).__name__} wraps PPO, got {type(model).__name__}")
        space = model.action_space
        if not isinstance(space, spaces.Box) or space.shape != (self.slate.action_dim,):
            dim = self.slate.action_dim
            raise ValueError(f"the model's actions are not scoring vectors of length {dim}")

    def get_config(self) -> dict[str, Any]:
        """Constructor arguments, with the decoder."""
        return {**super().get_config(), "slate": self.slate.to_dict()}

    # ------------------------------------------------------------------ decisions
    def scoring_vectors(self, obs: np.ndarray, deterministic: bool = True) -> np.ndarray:
        """``(n, D)`` float32 raw actor outputs clipped to the action box (no consent applied).

        Deterministic: the actor's mean, as SB3's ``predict``; otherwise a draw from its
        Gaussian with the policy's own generator.
        """
        with torch.no_grad():
            dist = self.model.policy.get_distribution(self._obs_tensor(obs)).distribution
            mean = dist.mean.cpu().numpy().astype(np.float64)
            if not deterministic:
                std = dist.stddev.cpu().numpy().astype(np.float64)
                mean = mean + std * self.random_.standard_normal(mean.shape)
        return np.clip(mean, -1.0, 1.0).astype(np.float32)

    def _consented_channels(self, obs: np.ndarray) -> np.ndarray | None:
        """``(n, n_channels)`` consent read from ``obs`` (``None``: no consent columns)."""
        columns = self.features.consent_columns
        if columns is None:
            return None
        return self.features.check(obs)[:, columns] > 0.5

    def _from_masks(
        self, masks: np.ndarray | None, n: int
    ) -> tuple[np.ndarray | None, np.ndarray | None]:
        """``(allowed products (n, P), allowed channels (n, C))`` of item action masks.

        A product is allowed if any of its actions is, a channel if any action on it is.
        """
        if masks is None:
            return None, None
        grid = masks[:, 1:].reshape(n, self.slate.n_products, _N_CHANNELS, len(self.slate.offers))
        return grid.any(axis=(2, 3)), grid.any(axis=(1, 3))

    def predict_slates(
        self,
        obs: np.ndarray,
        allowed_products: np.ndarray | None = None,
        deterministic: bool = True,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(slates (n, K), channels (n,), discounts (n,))``, consent-safe.

        What :func:`rec_env.rollout.run_slate_cohort` asks of a slate policy: a channel without
        consent (read from ``obs``) becomes none.

        Args:
            obs: ``(n, n_features)`` observations (one customer may be 1-D).
            allowed_products: ``(n, n_products)`` bool, e.g. ``SlateModel.allowed_products``
                (in stock, not in the last message); default: in stock.
            deterministic: The actor's mean instead of a draw.
        """
        obs = np.atleast_2d(np.asarray(obs))
        vectors = self.scoring_vectors(obs, deterministic)
        return self.slate.decode(vectors, allowed_products, self._consented_channels(obs))

    def _decide(
        self, obs: np.ndarray, masks: np.ndarray | None, deterministic: bool
    ) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Scoring vectors with the decided channel, and the decoded messages, under masks."""
        vectors = self.scoring_vectors(obs, deterministic)
        decoded = self.slate.decode(vectors, *self._from_masks(masks, obs.shape[0]))
        return self.slate.rewrite_channels(vectors, decoded[1]), decoded

    def _predict(
        self, obs: np.ndarray, masks: np.ndarray | None, deterministic: bool
    ) -> np.ndarray:
        """``(n, D)`` scoring vectors, the channel block set to the consent-safe channel."""
        return self._decide(obs, masks, deterministic)[0]

    def _action_probabilities(self, obs: np.ndarray, masks: np.ndarray | None) -> np.ndarray:
        """One-hot on the lead item action (the deterministic slate's first product)."""
        _, decoded = self._decide(obs, masks, deterministic=True)
        lead = self.slate.lead_actions(*decoded)
        if masks is not None:
            lead = np.where(masks[np.arange(lead.size), lead], lead, 0)
        probs = np.zeros((obs.shape[0], self.n_actions))
        probs[np.arange(lead.size), lead] = 1.0
        return probs

    # ------------------------------------------------------------------ explanation
    def score_network(self) -> NumpyNetwork:
        r"""The numpy network of every product's score ``(n, n_products)``, clipping included.

        The actor's hidden layers, then ``clip(m, -1, 1) = relu(m + 1) - relu(m - 1) - 1`` of
        the first ``e`` action means as one ReLU layer of ``2e`` units, then the scores
        :math:`s_j = \operatorname{clip}(m)_{:e} \cdot v_j` as the linear output layer. Its
        outputs are what :meth:`predict_slates` ranks, exactly (up to float32 rounding).
        """
        actor = numpy_network(self)
        if actor is None:
            raise ValueError("the actor is not a plain scaled MLP")
        *hidden, means = actor.layers
        e, v = self.slate.n_embedding, self.slate.embeddings.astype(np.float32)
        weight, bias = means.weight[:, :e], means.bias[:e]
        clip = DenseLayer(
            np.ascontiguousarray(np.hstack([weight, weight])),
            np.concatenate([bias + 1.0, bias - 1.0]).astype(np.float32),
            "relu",
        )
        scores = DenseLayer(
            np.ascontiguousarray(np.vstack([v.T, -v.T])), -v.sum(axis=1).astype(np.float32)
        )
        return NumpyNetwork(actor.scaling, (*hidden, clip, scores))


SLATE_POLICY_CLASSES: dict[str, type[SlatePPOPolicy]] = {"ppo": SlatePPOPolicy}
"""Algorithm name → its slate policy class (PPO: see the slate hyperparameters' comment)."""
