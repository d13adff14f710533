"""What a run's world means to the service: its features, its actions and its products.

A run directory records the world it was trained in (``run.json``'s ``env``: ``world``
``strategy``, ``item`` or ``slate``, and in the item worlds the product table). The service
serves the run in that world, and :class:`ServedWorld` holds what requests, decisions and
responses need of it:

* the features a customer may give: the 16 strategy features, plus in the item worlds three
  per category of the run's product table (:func:`rec_env.item_features.item_features`);
* the action table: the strategy catalog's offers on channels, or one action per (product,
  channel, offer) plus no action (:class:`rec_env.item_actions.ItemActionTable`);
* the products (id, name, category, price) and which are in stock.

Masks are consent on the action's channel (read from the customer's features: the one
definition, :func:`rec_env.features.consent_masks`) and, in the item worlds, products in stock
and not excluded by the request. The server knows nothing of a customer's last message; a
caller that wants no repeat excludes those products (``excluded_products``).

:meth:`ServedWorld.from_run` checks that the product table the run names still gives the run's
actions and features (and, for a slate policy, its product vectors): a table edited since
training would serve other products under the same names, so it is refused.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from rec_env.catalog import ActionTable, load_catalog
from rec_env.features import CHANNELS, FEATURES, Feature, consent_columns, consent_masks
from rec_env.serve.customers import CustomerFiller

if TYPE_CHECKING:  # pragma: no cover
    from rec_env.agents.base import Policy
    from rec_env.agents.runs import RunInfo
    from rec_env.products import ProductTable

__all__ = ["WORLDS", "ServedWorld"]

WORLDS = ("strategy", "item", "slate")
"""The worlds a run may be trained in (``EnvSettings.world``)."""

_NO_CHANNEL = len(CHANNELS)


@dataclass(frozen=True, eq=False)
class ServedWorld:
    """The features, actions and products of the served run's world.

    Attributes:
        kind: ``"strategy"``, ``"item"`` or ``"slate"``.
        features: The features a customer has, in observation order.
        actions: The action table (strategy catalog or item actions).
        products: The product table (item worlds), else None.
        slate_size: Products per message (slate world), else None.
        model: The item world's customer model (for the startup checks), else None.
        customers: Fills in the features a customer leaves out (:class:`CustomerFiller`).
    """

    kind: str
    features: tuple[Feature, ...]
    actions: Any
    products: ProductTable | None = None
    slate_size: int | None = None
    model: Any = None
    customers: CustomerFiller = field(init=False, repr=False)

    def __post_init__(self) -> None:
        columns = consent_columns(self.feature_names)
        if columns is None:  # pragma: no cover - every world's features hold consent
            raise ValueError("the served features hold no consent flags")
        object.__setattr__(self, "_consent_columns", columns)
        available = None if self.products is None else self.products.stock != 0
        object.__setattr__(self, "_available", available)
        object.__setattr__(self, "customers", CustomerFiller(self.features))

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_run(cls, info: RunInfo, directory: Any = "") -> ServedWorld:
        """The world ``info`` was trained in, checked against the run's actions and features.

        Raises:
            ValueError: If the run's catalog or product table no longer gives its actions and
                features (a ``ConfigError``, a ``ValueError``, if the file is missing).
        """
        settings = info.settings
        if settings.world == "strategy":
            world = cls(
                "strategy", FEATURES, ActionTable.from_catalog(load_catalog(settings.catalog))
            )
        else:
            model = settings.build_model()
            world = cls(
                settings.world,
                _item_features(model),
                model.actions,
                model.products,
                settings.k if settings.world == "slate" else None,
                model,
            )
        world._check_run(info, directory)
        return world

    def _check_run(self, info: RunInfo, directory: Any) -> None:
        """Refuse a run whose actions or features are not this world's (module docstring)."""
        source = "catalog" if self.kind == "strategy" else f"product table {info.settings.products}"
        if tuple(info.action_names) != tuple(self.actions.names):
            raise ValueError(
                f"{directory}: the run's actions are not those of its {source} "
                f"({len(info.action_names)} against {self.actions.n_actions} actions); was it "
                "changed since training?"
            )
        if self.kind != "strategy" and tuple(info.feature_names) != self.feature_names:
            raise ValueError(
                f"{directory}: the run's features are not those of its {source} (its "
                "categories changed since training?)"
            )

    def check_policy(self, policy: Policy, directory: Any = "") -> None:
        """Refuse a policy this world cannot serve.

        Raises:
            ValueError: If the policy's actions are not the world's, it fails on a customer
                (e.g. an oracle, which needs the simulator), or in the slate world it does not
                score products (only a PPO actor does) or scores another product table's.
        """
        if tuple(policy.action_names) != tuple(self.actions.names):
            raise ValueError(f"{directory}: the policy's actions do not match its catalog")
        if self.kind == "slate":
            self._check_slate_policy(policy, directory)
        dummy = np.zeros((1, self.n_features))
        generator = policy.random_.bit_generator
        state = generator.state
        try:  # a policy that needs the simulator (an oracle) fails here, not on a request
            if self.kind == "slate":
                policy.scoring_vectors(dummy)  # type: ignore[attr-defined]
            else:
                policy.action_probabilities(dummy, self.allowed_actions(dummy, None))
        except Exception as exc:
            raise ValueError(
                f"{directory}: cannot serve this {policy.algorithm} policy "
                f"({type(exc).__name__}: {exc})"
            ) from None
        finally:
            generator.state = state

    def _check_slate_policy(self, policy: Policy, directory: Any) -> None:
        """Refuse a slate policy that does not score products, or scores another table's."""
        decoder = getattr(policy, "slate", None)
        if decoder is None or not hasattr(policy, "scoring_vectors"):
            raise ValueError(
                f"{directory}: cannot serve a {policy.algorithm} policy in the slate world: "
                "only a trained actor that scores products (ppo) can be served"
            )
        embeddings = self.model.embeddings
        if (
            decoder.embeddings.shape != embeddings.shape
            or not np.allclose(decoder.embeddings, embeddings, rtol=0.0, atol=1e-9)
            or decoder.slate_size != self.slate_size
            or tuple(decoder.offers) != tuple(self.actions.offers)
        ):
            raise ValueError(
                f"{directory}: the policy's product vectors are not those of its product table "
                f"{self.model.products!r}; was it changed since training?"
            )

    # ------------------------------------------------------------------ features
    @property
    def feature_names(self) -> tuple[str, ...]:
        """The features' names, in observation order."""
        return tuple(f.name for f in self.features)

    @property
    def n_features(self) -> int:
        """Number of features of an observation."""
        return len(self.features)

    @property
    def consent_columns(self) -> list[int]:
        """Columns of the consent flags, in :data:`~rec_env.features.CHANNELS` order."""
        return self._consent_columns  # type: ignore[attr-defined, no-any-return]

    def consent(self, obs: np.ndarray) -> np.ndarray:
        """``(n, n_channels)`` bool consent read from ``obs``."""
        return obs[:, self.consent_columns] > 0.5

    # ------------------------------------------------------------------ masks
    @property
    def available(self) -> np.ndarray | None:
        """``(n_products,)`` bool: in stock (item worlds), else None."""
        return self._available  # type: ignore[attr-defined, no-any-return]

    def request_allowed(
        self,
        excluded_actions: np.ndarray | None = None,
        excluded_products: np.ndarray | None = None,
    ) -> np.ndarray:
        """``(A,)`` bool: what a request allows before consent (in stock, not excluded).

        Args:
            excluded_actions: ``(A,)`` bool, True for excluded actions.
            excluded_products: ``(n_products,)`` bool, True for excluded products (item worlds).
        """
        allowed = np.ones(self.actions.n_actions, dtype=bool)
        if self.products is not None:
            product = self.actions.product
            sent = product >= 0
            keep = (
                self.available if excluded_products is None else self.available & ~excluded_products
            )
            allowed[sent] = keep[product[sent]]
        if excluded_actions is not None:
            allowed &= ~excluded_actions
        allowed[self.actions.no_action] = True  # doing nothing is always possible
        return allowed

    def allowed_actions(self, obs: np.ndarray, request_allowed: np.ndarray | None) -> np.ndarray:
        """``(n, A)`` bool: consent on the action's channel and allowed by the request."""
        allowed = consent_masks(self.consent(obs), self.actions.channel)
        if request_allowed is not None:
            allowed &= request_allowed
        return allowed

    def allowed_products(self, excluded_products: np.ndarray | None = None) -> np.ndarray:
        """``(n_products,)`` bool: in stock and not excluded (item worlds)."""
        assert self.available is not None
        return self.available if excluded_products is None else self.available & ~excluded_products

    # ------------------------------------------------------------------ descriptions
    def product_index(self, product_id: str) -> int:
        """Index of a product by id.

        Raises:
            KeyError: If there is no such product (or no products).
        """
        if self.products is None:
            raise KeyError(f"unknown product {product_id!r}: the strategy world has no products")
        return self.products.index(product_id)

    def describe_product(self, index: int) -> dict[str, Any]:
        """``id``, ``name``, ``category`` and ``price`` (USD) of a product."""
        products = self.products
        assert products is not None
        return {
            "id": products.ids[index],
            "name": products.names[index],
            "category": products.category_names[int(products.category[index])],
            "price": float(products.price[index]),
        }

    def describe_action(self, index: int) -> dict[str, Any]:
        """An action as the API shows it (the strategy world's, or with its product)."""
        table = self.actions
        if self.products is None:
            return {
                "index": index,
                "name": table.names[index],
                "offer": table.offers[index],
                "channel": table.channel_names[index],
            }
        product = int(table.product[index])
        discount = float(table.discount[index])
        return {
            "index": index,
            "name": table.names[index],
            "offer": _offer(product, discount),
            "channel": table.channel_names[index],
            "discount": discount,
            "product": None if product < 0 else self.describe_product(product),
        }

    def channel_name(self, channel: int) -> str:
        """Name of a channel index (``none`` for no channel)."""
        return CHANNELS[channel] if channel < _NO_CHANNEL else "none"

    def registration(self) -> dict[str, Any]:
        """What the decision log records of the world with the model version."""
        return {
            "world": self.kind,
            "feature_names": self.feature_names,
            "action_channels": tuple(self.actions.channel_names),
            "product_ids": None if self.products is None else tuple(self.products.ids),
            "slate_size": self.slate_size,
        }


def offer_name(sent: bool, discount: float) -> str:
    """The offer of an item message: ``none``, ``recommendation`` or ``discount``."""
    if not sent:
        return "none"
    return "discount" if discount > 0.0 else "recommendation"


def _offer(product: int, discount: float) -> str:
    return offer_name(product >= 0, discount)


def _item_features(model: Any) -> tuple[Feature, ...]:
    """The item world's features with the model's names (its product table's categories)."""
    from rec_env.item_features import item_features

    features = item_features(model.products.category_names)
    names: Sequence[str] = tuple(model.feature_names)
    if tuple(f.name for f in features) != tuple(names):  # pragma: no cover - one definition
        raise ValueError("the item model's features are not item_features()")
    return features
