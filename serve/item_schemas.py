"""Request features and response models of the item and slate worlds.

A customer of an item world has the 16 strategy features plus three per category of the run's
product table (``purchases_<category>``, ``recommended_<category>``, ``days_since_<category>``,
:mod:`rec_env.item_features`); any subset may be given, under the same strict policy as the
strategy features (:mod:`rec_env.serve.schemas`): finite JSON numbers within the feature's
range, unknown names refused. Item features left out mean no history in the category
(:mod:`rec_env.serve.customers`). The types are built per product table by
:func:`item_features_type` and :func:`item_columns_type`, and narrowed into the request models
of an app by :mod:`rec_env.serve.validation`.

Responses name the product: an item decision is a product on a channel with an offer; a slate
decision is ``K`` products in display order on one channel, with the probability of the whole
slate and of each position (:mod:`rec_env.serve.slates`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator
from typing_extensions import TypedDict

from rec_env.customer import feature_description, feature_value_type
from rec_env.features import FEATURE_NAMES, Feature
from rec_env.serve.customers import NO_HISTORY_REASON, item_default
from rec_env.serve.schemas import (
    MAX_EXCLUDED,
    BatchRecommendRequest,
    FilledFeature,
    Product,
    _NestedOrFlat,
    batch_size,
    check_batch_layout,
    column_value_type,
    whole_number,
)

__all__ = [
    "DEFAULT_TOP_ACTIONS",
    "MAX_TOP_ACTIONS",
    "ItemAction",
    "ItemBatchBase",
    "ItemBatchRecommendResponse",
    "ItemRecommendResponse",
    "ItemRequestBase",
    "ItemRequestFields",
    "Slate",
    "SlateBatchRecommendResponse",
    "SlateProduct",
    "SlateRecommendResponse",
    "item_columns_type",
    "item_feature_description",
    "item_features_type",
    "item_request_fields",
    "item_responses",
]

DEFAULT_TOP_ACTIONS = 5
"""Most probable actions an item response lists by default."""
MAX_TOP_ACTIONS = 50
"""Most probable actions an item response may list (``top_actions``)."""

_STRATEGY = frozenset(FEATURE_NAMES)
_STRICT = ConfigDict(extra="forbid", allow_inf_nan=False, strict=True)


def item_feature_description(feature: Feature) -> str:
    """A feature's description, unit, range and default (strategy or item feature)."""
    if feature.name in _STRATEGY:
        return feature_description(feature)
    return (
        f"{feature.description} Unit: {feature.unit}; {feature.low:g} to {feature.high:g}. "
        f"If left out: {item_default(feature):g} ({NO_HISTORY_REASON})."
    )


def item_features_type(features: Sequence[Feature]) -> Any:
    """``CustomerFeatures`` of an item world: any subset of ``features``, by name."""
    typed: Any = TypedDict(  # type: ignore[misc]  # built from the product table
        "CustomerFeatures",
        {
            f.name: Annotated[
                feature_value_type(f),
                Field(description=item_feature_description(f), title=f.name),
            ]
            for f in features
        },
        total=False,
    )
    typed.__doc__ = (
        "Observed features of one customer by name: any subset of the 16 strategy features and "
        "of the item features of the served product table (three per category)."
    )
    typed.__pydantic_config__ = ConfigDict(extra="forbid", allow_inf_nan=False)
    return typed


def item_columns_type(features: Sequence[Feature], max_batch: int) -> Any:
    """``FeatureColumns`` of an item world: one list of at most ``max_batch`` values per feature."""
    columns: Any = TypedDict(  # type: ignore[misc]  # built from the product table
        "FeatureColumns",
        {
            f.name: Annotated[
                list[column_value_type(f)],  # type: ignore[misc]
                Field(min_length=1, max_length=max_batch, description=item_feature_description(f)),
            ]
            for f in features
        },
        total=False,
    )
    columns.__doc__ = (
        "The features of many customers column by column: one equally long list per feature. "
        "Any subset (at least one) of the features; a feature without a column is filled in "
        "for every customer."
    )
    columns.__pydantic_config__ = ConfigDict(
        extra="forbid", allow_inf_nan=False, strict=True, json_schema_extra={"minProperties": 1}
    )
    return columns


# ---------------------------------------------------------------------------- requests
class ItemRequestBase(_NestedOrFlat):
    """A request about one customer of an item world (nested or flat, as in the strategy world)."""


class ItemBatchBase(BaseModel):
    """Decide for many customers of an item world: exactly one of ``customers`` and ``columns``.

    As in the strategy world: ``columns`` is the fast path for large batches, ``customers`` takes
    the same objects as ``features`` of ``/v1/recommend``, and features left out are filled in.
    """

    model_config = ConfigDict(
        extra="forbid",
        allow_inf_nan=False,
        strict=True,
        json_schema_extra={"oneOf": [{"required": ["customers"]}, {"required": ["columns"]}]},
    )

    @model_validator(mode="after")
    def _one_layout(self) -> ItemBatchBase:
        check_batch_layout(self)
        return self

    @property
    def n_customers(self) -> int:
        """Number of customers in the request."""
        return batch_size(self)


@dataclass(frozen=True)
class ItemRequestFields:
    """The fields of an item world's requests, by endpoint (for ``pydantic.create_model``)."""

    recommend: dict[str, Any]
    batch: dict[str, Any]
    explain: dict[str, Any]


def _absent_means_none(schema: dict[str, Any]) -> None:
    schema.pop("default", None)


def item_request_fields(
    features: Any, columns: Any, products: Any, actions: Any | None, max_batch: int
) -> ItemRequestFields:
    """The request fields of an item world (``actions``: None in the slate world).

    Args:
        features: :func:`item_features_type` of the world.
        columns: :func:`item_columns_type` of the world.
        products: The type of a list of product ids of the table.
        actions: The type of a list of excludable action names (single-product world only).
        max_batch: Most customers in one batch call.
    """
    excluded_products = (
        products,
        Field(
            default_factory=list,
            max_length=MAX_EXCLUDED,
            description="Products this customer must not get (ids of the served product table), "
            "e.g. those of its last message or just bought.",
        ),
    )
    excluded: dict[str, Any] = {"excluded_products": excluded_products}
    options: dict[str, Any] = {}
    if actions is not None:
        excluded["excluded_actions"] = (
            actions,
            Field(
                default_factory=list,
                max_length=MAX_EXCLUDED,
                description="Actions (product on a channel) this customer must not get; "
                "no_action cannot be excluded.",
            ),
        )
        options["top_actions"] = (
            whole_number(ge=1, le=MAX_TOP_ACTIONS),
            Field(
                DEFAULT_TOP_ACTIONS,
                description="How many of the most probable actions to return (a whole number).",
            ),
        )
    given = (
        features,
        Field(default_factory=dict, description="Any subset of the strategy and item features."),
    )
    explain = (
        bool,
        Field(
            False,
            description="Explanations are not served for item and slate runs: true gets 503 "
            "(recenv explain explains them).",
        ),
    )
    batch: dict[str, Any] = {
        "customers": (
            list[features],  # type: ignore[valid-type]
            Field(
                None,
                min_length=1,
                max_length=max_batch,
                description="One object of features per customer; any subset of the features.",
                json_schema_extra=_absent_means_none,
            ),
        ),
        "columns": (
            columns,
            Field(
                None,
                description="One list per feature, all of the same length.",
                json_schema_extra=_absent_means_none,
            ),
        ),
        "customer_ids": (
            BatchRecommendRequest.model_fields["customer_ids"].annotation,
            Field(None, max_length=max_batch, description="Your ids of the customers, in order."),
        ),
        **excluded,
    }
    if actions is not None:
        batch["include_probabilities"] = (
            bool,
            Field(False, description="Return each customer's most probable actions."),
        )
        batch.update(options)
    top = (whole_number(ge=1) | None, Field(None, description="Keep the largest contributions."))
    return ItemRequestFields(
        recommend={"features": given, "explain": explain, **excluded, **options},
        batch=batch,
        explain={"features": given, **excluded, "top": top},
    )


# ---------------------------------------------------------------------------- responses
_PRODUCT = {"id": "P0042", "name": "Trail Running Shoe", "category": "footwear", "price": 89.0}


class ItemAction(BaseModel):
    """An action of the item world: a product on a channel with an offer, or no action."""

    index: int = Field(description="Position in the model's action list.")
    name: str = Field(description='Action name: "<product id>:<channel>[:<pct>off]" or no_action.')
    offer: str = Field(description="none (no message), recommendation (at list price) or discount.")
    channel: str = Field(description="none, email, sms or push.")
    discount: float = Field(description="Discount on the product, a fraction of its price.")
    product: Product | None = Field(description="The recommended product (null: no message).")


_ITEM_ACTION = {
    "index": 124,
    "name": "P0042:email",
    "offer": "recommendation",
    "channel": "email",
    "discount": 0.0,
    "product": _PRODUCT,
}


class ItemRecommendResponse(BaseModel):
    """The served product and channel, its propensity and the most probable actions."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "event_id": "6f1c2d4e-9a7b-4c3d-8e5f-0a1b2c3d4e5f",
                    "model_version": "ppo-5cfe9e7f1c19",
                    "action": _ITEM_ACTION,
                    "propensity": 0.41,
                    "probabilities": {"P0042:email": 0.41, "no_action": 0.22},
                    "filled_in": [],
                    "explanation": None,
                }
            ]
        }
    )

    event_id: str = Field(description="Id of the decision; post its reward with it.")
    model_version: str
    action: ItemAction
    propensity: float = Field(description="Probability with which the action was served.")
    probabilities: dict[str, float] = Field(
        description="Serving probability of the most probable actions (top_actions of them), "
        "most probable first; every other action has less (0 where not allowed)."
    )
    filled_in: list[FilledFeature] = Field(
        description="Features the request left out and the values they were given."
    )
    explanation: None = Field(None, description="Not served for item runs (recenv explain).")


class ItemBatchRecommendResponse(BaseModel):
    """Item decisions of a batch, column by column in the order of the request."""

    model_version: str
    n: int = Field(description="Number of decisions.")
    event_ids: list[str]
    actions: list[str] = Field(description="Served action names.")
    action_indices: list[int]
    products: list[str | None] = Field(description="Served product ids (null: no message).")
    channels: list[str]
    propensities: list[float]
    top_actions: list[dict[str, float]] | None = Field(
        None, description="With include_probabilities: each customer's most probable actions."
    )
    filled_in: list[Any] = Field(
        description="Features some customers left out, the values they were given and for how "
        "many customers."
    )


class SlateProduct(Product):
    """A product of a slate, at its position."""

    position: int = Field(description="Display position, 1 first.")
    probability: float = Field(
        description="Probability that this product was served at this position given the "
        "products above it (1 for a deterministic policy)."
    )


class Slate(BaseModel):
    """A message of K products in display order on one channel."""

    channel: str = Field(description="none (nothing is sent), email, sms or push.")
    offer: str = Field(description="none, recommendation or discount.")
    discount: float
    products: list[SlateProduct] = Field(description="In display order; empty if none is sent.")
    probability: float = Field(
        description="Probability of this whole message: its channel, offer and every position."
    )


class SlateRecommendResponse(BaseModel):
    """The served slate and its probability, whole and per position."""

    event_id: str = Field(description="Id of the decision; post its reward with it.")
    model_version: str
    slate: Slate
    propensity: float = Field(description="Probability of the served slate (slate.probability).")
    filled_in: list[FilledFeature]
    explanation: None = Field(None, description="Not served for slate runs (recenv explain).")


class SlateBatchRecommendResponse(BaseModel):
    """Slate decisions of a batch, column by column in the order of the request."""

    model_version: str
    n: int
    event_ids: list[str]
    slates: list[list[str]] = Field(description="Product ids of each slate in display order.")
    channels: list[str]
    discounts: list[float]
    propensities: list[float] = Field(description="Probability of each whole slate.")
    position_probabilities: list[list[float]] = Field(
        description="Probability of each position given the positions above it."
    )
    filled_in: list[Any]


def item_responses(kind: str) -> tuple[type[BaseModel], type[BaseModel]]:
    """The response models of ``/v1/recommend`` and ``/v1/recommend/batch`` in ``kind``."""
    if kind == "slate":
        return SlateRecommendResponse, SlateBatchRecommendResponse
    return ItemRecommendResponse, ItemBatchRecommendResponse
