"""Baselines for the item and slate worlds: what a retailer would run without learning.

Content baselines score every product from the observation alone and send the best allowed one
(single-product world, :meth:`ItemBaseline.predict`) or the ``K`` best (slate world,
:meth:`ItemBaseline.predict_slates`):

* :class:`MostPopular`: the product table's popularity;
* :class:`PopularInCategory`: the most popular products of the customer's favourite category
  (highest ``purchases_<c>``; if every one is 0, the smallest ``days_since_<c>`` below 365;
  else none), then the rest by popularity;
* :class:`ItemSimilarity`: "bought X, so Y". The observation holds per-category purchase
  history, not product ids, so "X" is the customer's purchase profile: the category centroids
  (mean unit topic vector of a category's products) weighted by the decayed purchase counts
  ``purchases_<c>`` (if all are 0, the most recent category by ``days_since_<c>``). Products
  are scored by the cosine similarity of their topic vector to it, ties and customers without
  a purchase falling back to popularity;
* :class:`RandomProducts`: random allowed products on a random consented channel (the slate
  world's random baseline; the item world's is :class:`~rec_env.agents.baselines.RandomPolicy`).

**Whether to send.** Content baselines follow the strategy world's ``cooldown`` rule: no
message unless ``days_since_contact >= 21`` and ``contacts_last_30d < 2``
(``min_days_between_contacts=None`` sends every cycle). The channel is the consented channel
with the best observed response (``email_opens``, ``sms_response``, ``push_response``) that has
an allowed product; the offer the smallest discount of the action table (none by default).

The oracles, which see the hidden state, are in :mod:`~rec_env.agents.item_oracles`.

Every policy is consent-safe with masks omitted: channels are chosen only among those the
observation's consent flags allow.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from rec_env.agents.base import Policy
from rec_env.features import CHANNELS

__all__ = [
    "NO_CHANNEL",
    "RATE_FEATURES",
    "ItemBaseline",
    "ItemSimilarity",
    "MostPopular",
    "PopularInCategory",
    "RandomProducts",
    "Slates",
    "top_k_products",
]

Slates = tuple[np.ndarray, np.ndarray, np.ndarray]
"""``(slates (n, K) product indices, -1 padded; channels (n,), len(CHANNELS): none; discounts
(n,))``: what :meth:`ItemBaseline.predict_slates` returns and ``step_slates`` takes."""

RATE_FEATURES = ("email_opens", "sms_response", "push_response")
NO_CHANNEL = len(CHANNELS)
"""Channel index of "no message" in slates' ``channels``."""
_NEVER_DAYS = 365.0


def top_k_products(scores: np.ndarray, k: int) -> np.ndarray:
    """``(n, k)`` products of highest score, best first; ``-1`` where the score is ``-inf``."""
    n, n_products = scores.shape
    k_eff = min(k, n_products)
    top = np.argpartition(-scores, k_eff - 1, axis=1)[:, :k_eff]
    top_scores = np.take_along_axis(scores, top, axis=1)
    order = np.lexsort((top, -top_scores), axis=1)  # by score, ties by product index
    slates = np.full((n, k), -1, dtype=np.intp)
    slates[:, :k_eff] = np.take_along_axis(top, order, axis=1)
    slates[:, :k_eff][~np.isfinite(np.take_along_axis(top_scores, order, axis=1))] = -1
    return slates


class ItemBaseline(Policy):
    """A product-scoring baseline for the item and slate worlds (see the module docstring).

    Build one for a model with :meth:`from_model`. Subclasses implement
    :meth:`product_scores`.

    Args:
        n_actions: Size of the item action table.
        action_products: Product of each action (-1: no message).
        action_offers: Discount of each action.
        product_popularity: ``(P,)`` popularity of each product.
        product_categories: ``(P,)`` category code of each product.
        category_names: Category names (the ``purchases_<c>`` … features).
        slate_size: Products per message in :meth:`predict_slates`.
        min_days_between_contacts: Cool-down after each delivered message (``None``: send
            every cycle).
        max_contacts_30d: Cap on messages per 30 days.
        **kwargs: :class:`~rec_env.agents.base.Policy`'s; ``action_channels`` and the item
            world's ``features`` are required.
    """

    algorithm: ClassVar[str] = "item_baseline"

    def __init__(
        self,
        n_actions: int,
        action_products: Sequence[int],
        action_offers: Sequence[float],
        product_popularity: Sequence[float],
        product_categories: Sequence[int],
        category_names: Sequence[str],
        slate_size: int = 1,
        min_days_between_contacts: float | None = 21.0,
        max_contacts_30d: float = 2.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(n_actions, **kwargs)
        if self._channel_index is None or self.features.consent_columns is None:
            raise ValueError("item baselines need action_channels and features with consent")
        self.action_products = np.asarray(action_products, dtype=np.intp)
        self.action_offers = np.asarray(action_offers, dtype=np.float64)
        self.popularity = np.asarray(product_popularity, dtype=np.float64)
        self.categories = np.asarray(product_categories, dtype=np.intp)
        self.category_names = tuple(category_names)
        self.slate_size = int(slate_size)
        self.min_days = (
            None if min_days_between_contacts is None else float(min_days_between_contacts)
        )
        self.max_contacts = float(max_contacts_30d)
        n_products = self.popularity.shape[0]
        if self.action_products.shape != (n_actions,) or self.categories.shape != (n_products,):
            raise ValueError("action_products needs one entry per action, categories per product")
        # the action sending product p on channel c with the smallest offer (-1: none)
        self.offer = float(self.action_offers[self.action_products >= 0].min())
        self.no_action = int(np.flatnonzero(self.action_products < 0)[0])
        self._action_of = np.full((n_products, len(CHANNELS)), -1, dtype=np.intp)
        plain = (self.action_products >= 0) & np.isclose(self.action_offers, self.offer)
        for a in np.flatnonzero(plain):
            self._action_of[self.action_products[a], self._channel_index[a]] = a
        self._rate_columns = [self.features.index(name) for name in RATE_FEATURES]
        self._days_column = self.features.index("days_since_contact")
        self._contacts_column = self.features.index("contacts_last_30d")
        self._purchases = [self.features.index(f"purchases_{c}") for c in self.category_names]
        self._days_since = [self.features.index(f"days_since_{c}") for c in self.category_names]

    @classmethod
    def from_model(cls, model: Any, **kwargs: Any) -> ItemBaseline:
        """The baseline for an item or slate model (its actions, products and features)."""
        from rec_env.agents.registry import policy_kwargs

        table, products = model.actions, model.products
        return cls(
            table.n_actions,
            table.product.tolist(),
            table.discount.tolist(),
            products.popularity.tolist(),
            products.category.tolist(),
            products.category_names,
            **{"slate_size": model.slate_size, **cls._model_arguments(model), **kwargs},
            **policy_kwargs(model),
        )

    @classmethod
    def _model_arguments(cls, model: Any) -> dict[str, Any]:
        """Extra constructor arguments a subclass takes from the model."""
        return {}

    def get_config(self) -> dict[str, Any]:
        """Constructor arguments."""
        return {
            **super().get_config(),
            "action_products": self.action_products.tolist(),
            "action_offers": self.action_offers.tolist(),
            "product_popularity": self.popularity.tolist(),
            "product_categories": self.categories.tolist(),
            "category_names": list(self.category_names),
            "slate_size": self.slate_size,
            "min_days_between_contacts": self.min_days,
            "max_contacts_30d": self.max_contacts,
        }

    # ------------------------------------------------------------------ the parts that differ
    def product_scores(self, obs: np.ndarray) -> np.ndarray:
        """``(n, P)`` score of every product for every customer (higher: recommended first)."""
        return np.broadcast_to(self.popularity, (obs.shape[0], self.popularity.shape[0]))

    def _pick_channels(self, obs: np.ndarray, usable: np.ndarray) -> np.ndarray:
        """``(n,)`` the usable channel with the best observed response (-1: none)."""
        rates = np.where(usable, obs[:, self._rate_columns].astype(np.float64), -np.inf)
        return np.where(usable.any(axis=1), np.argmax(rates, axis=1), -1)

    # ------------------------------------------------------------------ shared decisions
    def resting(self, obs: np.ndarray) -> np.ndarray:
        """``(n,)`` True where the contact cool-down forbids a message this cycle."""
        if self.min_days is None:
            return np.zeros(obs.shape[0], dtype=bool)
        return (obs[:, self._days_column] < self.min_days) | (
            obs[:, self._contacts_column] >= self.max_contacts
        )

    def _consent(self, obs: np.ndarray) -> np.ndarray:
        return obs[:, self.features.consent_columns] > 0.5

    def _action_probabilities(self, obs: np.ndarray, masks: np.ndarray | None) -> np.ndarray:
        """One-hot on the best allowed product's action, or on no action."""
        obs = self.features.check(obs)
        n = obs.shape[0]
        # (n, P, channels): whether each product may go out on each channel
        allowed = np.broadcast_to(self._action_of >= 0, (n, *self._action_of.shape))
        if masks is not None:
            allowed = allowed & masks[:, self._action_of.clip(0)]
        allowed = allowed & self._consent(obs)[:, None, :]
        channel = self._pick_channels(obs, allowed.any(axis=1))
        on_channel = allowed[np.arange(n), :, channel.clip(0)] & (channel >= 0)[:, None]
        scores = np.where(on_channel, self.product_scores(obs), -np.inf)
        best = np.argmax(scores, axis=1)
        send = on_channel.any(axis=1) & ~self.resting(obs)
        actions = np.where(send, self._action_of[best, channel.clip(0)], self.no_action)
        probs = np.zeros((n, self.n_actions))
        probs[np.arange(n), actions] = 1.0
        return probs

    def predict_slates(self, obs: np.ndarray, allowed_products: np.ndarray | None = None) -> Slates:
        """The slate message for every customer: the ``slate_size`` best allowed products.

        Args:
            obs: ``(n, F)`` item-world observations.
            allowed_products: ``(n, P)`` products that may be shown (``None``: all).

        Returns:
            ``(slates, channels, discounts)`` (:data:`Slates`); no message where resting,
            without consent or without an allowed product.
        """
        obs = self.features.check(np.atleast_2d(obs))
        n, n_products = obs.shape[0], self.popularity.shape[0]
        allowed = (
            np.ones((n, n_products), dtype=bool)
            if allowed_products is None
            else np.asarray(allowed_products, dtype=bool)
        )
        scores = np.where(allowed, self.product_scores(obs), -np.inf)
        slates = top_k_products(scores, self.slate_size)
        channel = self._pick_channels(obs, self._consent(obs) & allowed.any(axis=1)[:, None])
        send = (channel >= 0) & ~self.resting(obs) & (slates[:, 0] >= 0)
        slates[~send] = -1
        channels = np.where(send, channel, NO_CHANNEL).astype(np.intp)
        return slates, channels, np.full(n, self.offer)

    # ------------------------------------------------------------------ observation helpers
    def favourite_categories(self, obs: np.ndarray) -> np.ndarray:
        """``(n,)`` the category with the most decayed purchases (then the most recent; -1)."""
        purchases = obs[:, self._purchases].astype(np.float64)
        days = obs[:, self._days_since].astype(np.float64)
        by_days = np.where(days.min(axis=1) < _NEVER_DAYS, np.argmin(days, axis=1), -1)
        return np.where(purchases.max(axis=1) > 0.0, np.argmax(purchases, axis=1), by_days)


class MostPopular(ItemBaseline):
    """The most popular allowed products of the product table (see the module docstring)."""

    algorithm: ClassVar[str] = "popular"


class PopularInCategory(ItemBaseline):
    """The most popular products of the customer's favourite category, then the rest."""

    algorithm: ClassVar[str] = "popular_category"

    def product_scores(self, obs: np.ndarray) -> np.ndarray:
        """Popularity, plus 2 (more than any popularity) in the favourite category."""
        favourite = self.favourite_categories(obs)
        in_favourite = self.categories[None, :] == favourite[:, None]
        return self.popularity[None, :] + 2.0 * in_favourite


class ItemSimilarity(ItemBaseline):
    """Products most similar (topic cosine) to the customer's purchase profile.

    Args:
        product_topics: ``(P, T)`` topic vectors of the products.
        **kwargs: :class:`ItemBaseline`'s.
    """

    algorithm: ClassVar[str] = "item_similarity"

    def __init__(
        self, *args: Any, product_topics: Sequence[Sequence[float]], **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        topics = np.asarray(product_topics, dtype=np.float64)
        self.topics = topics
        self._unit = topics / np.linalg.norm(topics, axis=1, keepdims=True)
        centroids = np.zeros((len(self.category_names), topics.shape[1]))
        np.add.at(centroids, self.categories, self._unit)
        norms = np.linalg.norm(centroids, axis=1, keepdims=True)
        self._centroids = centroids / np.where(norms > 0, norms, 1.0)

    @classmethod
    def _model_arguments(cls, model: Any) -> dict[str, Any]:
        return {"product_topics": model.products.topics.tolist()}

    def get_config(self) -> dict[str, Any]:
        """Constructor arguments."""
        return {**super().get_config(), "product_topics": self.topics.tolist()}

    def product_scores(self, obs: np.ndarray) -> np.ndarray:
        """Cosine to the purchase profile, plus popularity / 1000 to break ties."""
        weights = obs[:, self._purchases].astype(np.float64)
        recent = self.favourite_categories(obs)  # only used where no decayed purchase is left
        empty = weights.max(axis=1) <= 0.0
        rows = np.flatnonzero(empty & (recent >= 0))
        weights[rows, recent[rows]] = 1.0
        profile = weights @ self._centroids
        norms = np.linalg.norm(profile, axis=1, keepdims=True)
        cosine = (profile / np.where(norms > 0, norms, 1.0)) @ self._unit.T
        return cosine + 1e-3 * self.popularity[None, :]


class RandomProducts(ItemBaseline):
    """Random allowed products on a uniformly random consented channel, every cycle."""

    algorithm: ClassVar[str] = "random_products"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("min_days_between_contacts", None)
        super().__init__(*args, **kwargs)

    def product_scores(self, obs: np.ndarray) -> np.ndarray:
        """Uniform random scores from the policy's generator."""
        return self.random_.random((obs.shape[0], self.popularity.shape[0]))

    def _pick_channels(self, obs: np.ndarray, usable: np.ndarray) -> np.ndarray:
        scores = np.where(usable, self.random_.random(usable.shape), -np.inf)
        return np.where(usable.any(axis=1), np.argmax(scores, axis=1), -1)
