"""The item and slate worlds' oracles: the myopic oracle's slates, and with a category cool-down.

Both see the customers' hidden state through the cohort they are attached to
(:meth:`~rec_env.agents.baselines.MyopicOracle.set_env`):

* :class:`OracleSlates` is the myopic oracle (:class:`~rec_env.agents.baselines.MyopicOracle`:
  the argmax of the exact expected reward of every single-product action) with slates from
  ``model.oracle_slates`` (greedy top-K by exact expected value). It sends only when the best
  message's expected value beats sending nothing: that is its whether-to-send rule.
* :class:`DiverseOracle` adds a category cool-down: it never recommends a product of a category
  whose boredom state ``recommended_<c>`` exceeds ``boredom_threshold``.

Slates' channels are checked against the observation's consent flags, so both are consent-safe
with masks omitted.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from rec_env.agents.baselines import MyopicOracle
from rec_env.agents.item_baselines import NO_CHANNEL, Slates

__all__ = ["DiverseOracle", "OracleSlates"]


class OracleSlates(MyopicOracle):
    """The myopic oracle, also for slates: ``model.oracle_slates`` (greedy top-K, exact).

    Attach it to a :class:`~rec_env.rollout.Cohort` (anything with ``model``, ``batch`` and
    ``expected_rewards()``) with :meth:`set_env`. Single products (item world): the argmax of
    the exact expected reward, as :class:`~rec_env.agents.baselines.MyopicOracle`; the slate
    world has no single-product rewards, so there only :meth:`predict_slates` decides.

    Args:
        n_actions: Size of the item action table.
        action_products: Product of each action (-1: no message).
        product_categories: ``(P,)`` category code of each product.
        **kwargs: :class:`~rec_env.agents.base.Policy`'s (the item world's ``features``).
    """

    algorithm: ClassVar[str] = "oracle_slates"

    def __init__(
        self,
        n_actions: int,
        action_products: Sequence[int],
        product_categories: Sequence[int],
        **kwargs: Any,
    ) -> None:
        super().__init__(n_actions, **kwargs)
        self.action_products = np.asarray(action_products, dtype=np.intp)
        self.categories = np.asarray(product_categories, dtype=np.intp)
        if self.action_products.shape != (n_actions,):
            raise ValueError(f"action_products needs one entry per action ({n_actions})")

    @classmethod
    def from_model(cls, model: Any, **kwargs: Any) -> OracleSlates:
        """The oracle for an item or slate model."""
        from rec_env.agents.registry import policy_kwargs

        table = model.actions
        return cls(
            table.n_actions, table.product.tolist(), model.products.category.tolist(),
            **kwargs, **policy_kwargs(model),
        )  # fmt: skip

    def get_config(self) -> dict[str, Any]:
        """Constructor arguments."""
        return {
            **super().get_config(),
            "action_products": self.action_products.tolist(),
            "product_categories": self.categories.tolist(),
        }

    def cooled_products(self, obs: np.ndarray) -> np.ndarray | None:
        """``(n, P)`` products the policy will not recommend (``None``: none)."""
        return None

    def predict_slates(self, obs: np.ndarray, allowed_products: np.ndarray | None = None) -> Slates:
        """The greedy oracle slate of every customer over the allowed, not cooled products."""
        if self.source is None:
            raise RuntimeError(f"{type(self).__name__} needs set_env(cohort) before it can decide")
        obs = self.features.check(np.atleast_2d(obs))
        model, batch = self.source.model, self.source.batch  # type: ignore[attr-defined]
        allowed = model.allowed_products(batch) if allowed_products is None else allowed_products
        cooled = self.cooled_products(obs)
        allowed = np.ascontiguousarray(allowed if cooled is None else allowed & ~cooled)
        offer = float(model.actions.discount[model.actions.product >= 0].min())
        slates, channels, _ = model.oracle_slates(batch, allowed, offer)
        consent = obs[:, self.features.consent_columns] > 0.5
        send = (channels < NO_CHANNEL) & consent[
            np.arange(obs.shape[0]), channels.clip(0, NO_CHANNEL - 1)
        ]
        slates[~send] = -1
        return slates, np.where(send, channels, NO_CHANNEL), np.full(obs.shape[0], offer)


class DiverseOracle(OracleSlates):
    """The myopic oracle with a category cool-down.

    It never recommends a product of a category whose boredom state ``recommended_<c>`` is
    above ``boredom_threshold``. Each product shown adds 1 to it and it decays by
    ``exp(-7/21) = 0.72`` a week, so after one message the default 0.6 is exceeded for the
    next 2 weekly cycles (1.0, 0.72) and the category is free again in the third (0.51). In
    the slate world every product of a slate counts, so a slate of one category cools it down
    for longer (``K = 4``: six cycles).

    Args:
        n_actions: Size of the item action table.
        action_products: Product of each action (-1: no message).
        product_categories: ``(P,)`` category code of each product.
        category_names: Category names (the ``recommended_<c>`` features).
        boredom_threshold: Largest boredom state at which a category may be recommended.
        **kwargs: :class:`OracleSlates`'s.
    """

    algorithm: ClassVar[str] = "diverse_oracle"

    def __init__(
        self,
        n_actions: int,
        action_products: Sequence[int],
        product_categories: Sequence[int],
        category_names: Sequence[str],
        boredom_threshold: float = 0.6,
        **kwargs: Any,
    ) -> None:
        super().__init__(n_actions, action_products, product_categories, **kwargs)
        self.category_names = tuple(category_names)
        self.boredom_threshold = float(boredom_threshold)
        self._recommended = [self.features.index(f"recommended_{c}") for c in self.category_names]

    @classmethod
    def from_model(cls, model: Any, **kwargs: Any) -> DiverseOracle:
        """The diverse oracle for an item or slate model."""
        kwargs.setdefault("category_names", model.products.category_names)
        return super().from_model(model, **kwargs)  # type: ignore[return-value]

    def get_config(self) -> dict[str, Any]:
        """Constructor arguments."""
        return {
            **super().get_config(),
            "category_names": list(self.category_names),
            "boredom_threshold": self.boredom_threshold,
        }

    def cooled_categories(self, obs: np.ndarray) -> np.ndarray:
        """``(n, C)`` True for the categories in cool-down."""
        return obs[:, self._recommended] > self.boredom_threshold

    def cooled_products(self, obs: np.ndarray) -> np.ndarray:
        """``(n, P)`` True for the products of categories in cool-down."""
        return self.cooled_categories(obs)[:, self.categories]

    def _action_probabilities(self, obs: np.ndarray, masks: np.ndarray | None) -> np.ndarray:
        """The oracle's choice among actions whose product's category is not cooling down."""
        obs = self.features.check(obs)
        products = self.action_products
        cooled = np.zeros((obs.shape[0], self.n_actions), dtype=bool)
        cooled[:, products >= 0] = self.cooled_products(obs)[:, products[products >= 0]]
        allowed = ~cooled if masks is None else masks & ~cooled
        return super()._action_probabilities(obs, allowed)
