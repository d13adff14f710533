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
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    WithJsonSchema,
)
from pydantic_core import PydanticCustomError
from typing_extensions import TypedDict

from rec_env.customer import feature_description, feature_value_type
from rec_env.features import FEATURE_NAMES, Feature
from rec_env.serve.customers import NO_HISTORY_REASON, item_default
from rec_env.serve.schemas import (
    MAX_EXCLUDED,
    BatchDecisionResponse,
    BatchLayout,
    DecisionResponse,
    FilledFeature,
    Product,
    _NestedOrFlat,
    batch_fields,
    columns_type,
    whole_number,
)

__all__ = [
    "DEFAULT_TOP_ACTIONS",
    "MAX_TOP_ACTIONS",
    "ItemAction",
    "ItemBatchBase",
    "ItemBatchRecommendResponse",
    "ItemContribution",
    "ItemExplainResponse",
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
    return columns_type(features, max_batch, item_feature_description)


# ---------------------------------------------------------------------------- requests
class ItemRequestBase(_NestedOrFlat):
    """A request about one customer of an item world (nested or flat, as in the strategy world)."""


class ItemBatchBase(BatchLayout):
    """Decide for many customers of an item world: exactly one of ``customers`` and ``columns``.

    As in the strategy world: ``columns`` is the fast path for large batches, ``customers`` takes
    the same objects as ``features`` of ``/v1/recommend``, and features left out are filled in.
    """


@dataclass(frozen=True)
class ItemRequestFields:
    """The fields of an item world's requests, by endpoint (for ``pydantic.create_model``)."""

    recommend: dict[str, Any]
    batch: dict[str, Any]
    explain: dict[str, Any]


def _false_only(explain: bool) -> bool:
    """``explain`` of an item world's ``/v1/recommend``: false (``/v1/explain`` explains)."""
    if explain:
        raise PydanticCustomError(
            "explain_not_served", "explanations of item and slate runs are served by /v1/explain"
        )
    return explain


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
        Annotated[bool, AfterValidator(_false_only), WithJsonSchema({"const": False})],
        Field(
            False,
            description="false only: explanations of item and slate decisions are served by "
            "/v1/explain.",
        ),
    )
    batch: dict[str, Any] = {**batch_fields(features, columns, max_batch), **excluded}
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


class ItemRecommendResponse(DecisionResponse):
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

    action: ItemAction
    propensity: float = Field(description="Probability with which the action was served.")
    probabilities: dict[str, float] = Field(
        description="Serving probability of the most probable actions (top_actions of them), "
        "most probable first; every other action has less (0 where not allowed)."
    )
    explanation: None = Field(None, description="Not served here for item runs (/v1/explain).")


class ItemBatchRecommendResponse(BatchDecisionResponse):
    """Item decisions of a batch, column by column in the order of the request."""

    actions: list[str] = Field(description="Served action names.")
    action_indices: list[int]
    products: list[str | None] = Field(description="Served product ids (null: no message).")
    channels: list[str]
    propensities: list[float]
    top_actions: list[dict[str, float]] | None = Field(
        None, description="With include_probabilities: each customer's most probable actions."
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


class SlateRecommendResponse(DecisionResponse):
    """The served slate and its probability, whole and per position."""

    slate: Slate
    propensity: float = Field(description="Probability of the served slate (slate.probability).")
    explanation: None = Field(None, description="Not served here for slate runs (/v1/explain).")


class SlateBatchRecommendResponse(BatchDecisionResponse):
    """Slate decisions of a batch, column by column in the order of the request."""

    slates: list[list[str]] = Field(description="Product ids of each slate in display order.")
    channels: list[str]
    discounts: list[float]
    propensities: list[float] = Field(description="Probability of each whole slate.")
    position_probabilities: list[list[float]] = Field(
        description="Probability of each position given the positions above it."
    )


class ItemContribution(BaseModel):
    """One player's SHAP contribution: a feature, or a group of item history features."""

    feature: str = Field(
        description="A feature, or a group: history_<category> (a category's purchases, "
        "recommended and days_since) or <kind>_by_category (one item feature kind over all "
        "categories)."
    )
    value: float | None = Field(description="The customer's value of a feature; null for a group.")
    features: dict[str, float] | None = Field(
        description="A group's features and the customer's values; null for a feature."
    )
    contribution: float = Field(description="SHAP value: effect on the explained output.")


class ItemExplainResponse(BaseModel):
    """Why this product for this customer: SHAP contributions to a contrast of the policy's outputs.

    The explained value contrasts the decision with its best alternative (``kind``): in item
    runs the log-odds of the recommended action over the runner-up (PPO, A2C, MaskablePPO) or
    their Q-value difference (DQN); in slate runs the score margin of the slate's first product
    over the best product left out. ``base_value`` plus the sum of the contributions equals
    ``model_output``. Nothing is decided or logged.
    """

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "kind": "log_odds",
                    "explained_output": "log P(P0042:email)/P(P0107:email)",
                    "description": "log-odds of the recommendation over the runner-up",
                    "decision": [
                        "recommend P0042 'Trail Running Shoe' (footwear, $89.00) by email, "
                        "probability 0.41",
                        "runner-up: P0107 'Yoga Mat' (sports_outdoors, $35.00) by email, "
                        "probability 0.12",
                    ],
                    "action": _ITEM_ACTION,
                    "runner_up": None,
                    "product": None,
                    "rival": None,
                    "slate": None,
                    "base_value": 0.4,
                    "model_output": 1.23,
                    "grouping": "category",
                    "contributions": [
                        {
                            "feature": "history_footwear",
                            "value": None,
                            "features": {
                                "purchases_footwear": 2.0,
                                "recommended_footwear": 1.0,
                                "days_since_footwear": 12.0,
                            },
                            "contribution": 0.61,
                        },
                        {
                            "feature": "discount_sensitive",
                            "value": 1.0,
                            "features": None,
                            "contribution": 0.22,
                        },
                    ],
                    "model_version": "ppo-5cfe9e7f1c19",
                    "filled_in": [],
                }
            ]
        }
    )

    kind: Literal["log_odds", "q_advantage", "score_margin"] = Field(
        description="What the explained value is: log-odds or Q-value advantage over the "
        "runner-up (item runs), or score margin over the best product left out (slate runs)."
    )
    explained_output: str = Field(description="The value, e.g. log P(P0042:email)/P(P0107:email).")
    description: str = Field(description="The value in words.")
    decision: list[str] = Field(description="The decision explained, in words.")
    action: ItemAction | None = Field(description="Item runs: the explained action.")
    runner_up: ItemAction | None = Field(description="Item runs: the runner-up action.")
    product: Product | None = Field(description="Slate runs: the explained product.")
    rival: Product | None = Field(description="Slate runs: the best product left out.")
    slate: list[Product] | None = Field(description="Slate runs: the slate in display order.")
    base_value: float = Field(description="Average value over the background customers.")
    model_output: float = Field(description="The value for this customer.")
    grouping: Literal["feature", "category", "kind"] = Field(
        description="The players: one per feature, or the first grouping of the item history "
        "features whose exact Shapley values fit the server's limit (one player per category, "
        "else per item feature kind); the 16 strategy features are always players of their own."
    )
    contributions: list[ItemContribution] = Field(
        description="Sorted by |contribution|, largest first."
    )
    model_version: str
    filled_in: list[FilledFeature] = DecisionResponse.model_fields["filled_in"]


def item_responses(kind: str) -> tuple[type[BaseModel], type[BaseModel], type[BaseModel]]:
    """The response models of ``/v1/recommend``, ``/v1/recommend/batch`` and ``/v1/explain``."""
    if kind == "slate":
        return SlateRecommendResponse, SlateBatchRecommendResponse, ItemExplainResponse
    return ItemRecommendResponse, ItemBatchRecommendResponse, ItemExplainResponse
