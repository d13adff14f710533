"""Request and response models of the decision service.

The customer models are generated from :data:`rec_env.features.FEATURES`, so every feature's
name, description, unit and range appear in the OpenAPI schema and are enforced on input:
numbers must be finite and within range (strings and booleans are not numbers), flags must be
0 or 1, every feature is required and unknown keys are rejected. A failed check is a 422
response whose ``loc`` names the field.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model, model_validator

from rec_env.features import FEATURES, Feature
from rec_env.serve.settings import MAX_BATCH

__all__ = [
    "EXAMPLE_FEATURES",
    "Action",
    "BatchRecommendRequest",
    "BatchRecommendResponse",
    "Contribution",
    "CustomerFeatures",
    "ErrorResponse",
    "ExplainRequest",
    "ExplainResponse",
    "Explanation",
    "ExplorationInfo",
    "FeatureColumns",
    "FeatureSpec",
    "Health",
    "ModelInfo",
    "RecommendRequest",
    "RecommendResponse",
    "RewardRequest",
    "RewardResponse",
]

EXAMPLE_FEATURES: dict[str, float] = {
    "recency": 12,
    "frequency": 2,
    "monetary_value": 48.5,
    "engagement_score": 0.5,
    "discount_sensitive": 1,
    "free_shipping_preferred": 0,
    "email_opens": 0.07,
    "sms_response": 0.18,
    "push_response": 0.05,
    "last_purchase_days": 40,
    "days_since_contact": 9,
    "contacts_last_30d": 3,
    "discounts_last_90d": 5,
    "consent_email": 1,
    "consent_sms": 1,
    "consent_push": 0,
}
"""A discount-driven customer (``profiles/users/bargain_hunter.json``), used in the examples."""

_MAX_EXCLUDED = 256
_MAX_ID_LENGTH = 256
_EXAMPLE_ACTION = {"index": 5, "name": "discount_15_sms", "offer": "discount", "channel": "sms"}
_EXAMPLE_EXPLANATION = {
    "kind": "probability",
    "explained_output": "P(discount_15_sms)",
    "action": _EXAMPLE_ACTION,
    "base_value": 0.061,
    "model_output": 0.412,
    "contributions": [
        {"feature": "discount_sensitive", "value": 1.0, "contribution": 0.201},
        {"feature": "sms_response", "value": 0.18, "contribution": 0.097},
        {"feature": "discounts_last_90d", "value": 5.0, "contribution": 0.053},
    ],
}


def _value_type(feature: Feature) -> Any:
    """The validated type of one value of ``feature``."""
    if feature.binary:
        return Literal[0, 1]
    return Annotated[float, Field(strict=True, ge=feature.low, le=feature.high)]


def _describe(feature: Feature) -> str:
    if feature.binary:
        return f"{feature.description} 0 or 1."
    return f"{feature.description} Unit: {feature.unit}; {feature.low:g} to {feature.high:g}."


_STRICT = ConfigDict(extra="forbid", allow_inf_nan=False)

CustomerFeatures: type[BaseModel] = create_model(
    "CustomerFeatures",
    __config__=ConfigDict(**_STRICT, json_schema_extra={"examples": [EXAMPLE_FEATURES]}),
    __doc__="The 16 observed features of one customer, by name (all required).",
    **{
        f.name: (
            Annotated[_value_type(f), Field(description=_describe(f), title=f.name)],
            ...,
        )
        for f in FEATURES
    },
)

FeatureColumns: type[BaseModel] = create_model(
    "FeatureColumns",
    __config__=ConfigDict(
        **_STRICT,
        json_schema_extra={"examples": [{k: [v, v] for k, v in EXAMPLE_FEATURES.items()}]},
    ),
    __doc__="The features of many customers column by column: one equally long list per feature.",
    **{
        f.name: (
            list[_value_type(f)],
            Field(min_length=1, max_length=MAX_BATCH, description=_describe(f)),
        )
        for f in FEATURES
    },
)


def _check_columns(columns: BaseModel) -> BaseModel:
    lengths = {name: len(values) for name, values in columns}
    expected = next(iter(lengths.values()))
    for name, length in lengths.items():
        if length != expected:
            raise ValueError(f"{name} has {length} values, {FEATURES[0].name} has {expected}")
    return columns


class _Model(BaseModel):
    model_config = _STRICT


class _CustomerMetadata(_Model):
    customer_id: str | None = Field(
        None, max_length=_MAX_ID_LENGTH, description="Your id of the customer (logged)."
    )
    description: str | None = Field(
        None, description="Ignored: lets a profiles/users/*.json file be posted as it is."
    )
    segment: str | None = Field(None, description="Ignored, like description.")


class RecommendRequest(_CustomerMetadata):
    """Decide the marketing action for one customer."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"features": EXAMPLE_FEATURES, "excluded_actions": ["discount_20_sms"]},
                {"customer_id": "cust-1001", "features": EXAMPLE_FEATURES, "explain": True},
            ]
        }
    )

    features: CustomerFeatures  # type: ignore[valid-type]
    explain: bool = Field(False, description="Also explain the decision with SHAP values.")
    excluded_actions: list[str] = Field(
        default_factory=list,
        max_length=_MAX_EXCLUDED,
        description="Actions this customer must not get (names); no_action cannot be excluded.",
    )


class BatchRecommendRequest(_Model):
    """Decide for many customers at once: give ``customers`` (rows) or ``columns``.

    ``columns`` is the fast path for large batches (one list per feature); ``customers`` takes
    the same objects as ``features`` of ``/v1/recommend``.
    """

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"customers": [EXAMPLE_FEATURES, EXAMPLE_FEATURES]},
                {"columns": {k: [v, v] for k, v in EXAMPLE_FEATURES.items()}},
            ]
        }
    )

    customers: list[CustomerFeatures] | None = Field(  # type: ignore[valid-type]
        None, min_length=1, max_length=MAX_BATCH, description="One object per customer."
    )
    columns: FeatureColumns | None = Field(  # type: ignore[valid-type]
        None, description="One list per feature, all of the same length."
    )
    customer_ids: list[Annotated[str, Field(max_length=_MAX_ID_LENGTH)] | None] | None = Field(
        None, max_length=MAX_BATCH, description="Your ids of the customers, in order (logged)."
    )
    excluded_actions: list[str] = Field(
        default_factory=list,
        max_length=_MAX_EXCLUDED,
        description="Actions no customer of the batch may get; no_action cannot be excluded.",
    )
    include_probabilities: bool = Field(
        False, description="Return every customer's probabilities (in action_names order)."
    )

    @model_validator(mode="after")
    def _one_layout(self) -> BatchRecommendRequest:
        if (self.customers is None) == (self.columns is None):
            raise ValueError("give exactly one of customers and columns")
        if self.columns is not None:
            _check_columns(self.columns)
        if self.customer_ids is not None and len(self.customer_ids) != self.n_customers:
            raise ValueError(
                f"customer_ids has {len(self.customer_ids)} entries for {self.n_customers} "
                "customers"
            )
        return self

    @property
    def n_customers(self) -> int:
        """Number of customers in the request."""
        if self.customers is not None:
            return len(self.customers)
        return len(getattr(self.columns, FEATURES[0].name))


class Action(BaseModel):
    """A marketing action of the catalog."""

    index: int = Field(description="Position in the model's action list.")
    name: str = Field(description="Catalog name, e.g. discount_15_email.")
    offer: str = Field(description="none, discount, free_shipping or recommendation.")
    channel: str = Field(description="none, email, sms or push.")


class Contribution(BaseModel):
    """One feature's SHAP contribution."""

    feature: str
    value: float = Field(description="The customer's value of the feature.")
    contribution: float = Field(description="SHAP value: effect on the explained output.")


class Explanation(BaseModel):
    """SHAP explanation of one output of the model for one customer.

    ``base_value`` plus the sum of the contributions equals ``model_output``.
    """

    model_config = ConfigDict(json_schema_extra={"examples": [_EXAMPLE_EXPLANATION]})

    kind: Literal["probability", "q_value", "estimated_reward"] = Field(
        description="What the explained output is."
    )
    explained_output: str = Field(description="The output, e.g. P(discount_15_email).")
    action: Action
    base_value: float = Field(description="Average output over the background customers.")
    model_output: float = Field(description="The output for this customer.")
    contributions: list[Contribution] = Field(
        description="Sorted by |contribution|, largest first."
    )


class RecommendResponse(BaseModel):
    """The served action, its propensity and the probabilities it was drawn from."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "event_id": "6f1c2d4e-9a7b-4c3d-8e5f-0a1b2c3d4e5f",
                    "model_version": "ppo-5cfe9e7f1c19",
                    "action": _EXAMPLE_ACTION,
                    "propensity": 0.397,
                    "probabilities": {"no_action": 0.112, "discount_15_sms": 0.397},
                    "explanation": None,
                }
            ]
        }
    )

    event_id: str = Field(description="Id of the decision; post its reward with it.")
    model_version: str
    action: Action
    propensity: float = Field(description="Probability with which the action was served.")
    probabilities: dict[str, float] = Field(
        description="Serving probability of every action (0 where not allowed)."
    )
    explanation: Explanation | None = Field(None, description="With explain: true.")


class BatchRecommendResponse(BaseModel):
    """Decisions of a batch, column by column in the order of the request."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "model_version": "ppo-5cfe9e7f1c19",
                    "n": 2,
                    "event_ids": [
                        "6f1c2d4e-9a7b-4c3d-8e5f-0a1b2c3d4e5f",
                        "0b91738a-960c-4d44-b9fb-20b265ab90dd",
                    ],
                    "actions": ["discount_15_sms", "no_action"],
                    "action_indices": [5, 0],
                    "propensities": [0.397, 0.112],
                    "action_names": ["no_action", "...", "recommendation_push"],
                    "probabilities": None,
                }
            ]
        }
    )

    model_version: str
    n: int = Field(description="Number of decisions.")
    event_ids: list[str]
    actions: list[str] = Field(description="Served action names.")
    action_indices: list[int]
    propensities: list[float]
    action_names: list[str] = Field(description="Order of the probability rows.")
    probabilities: list[list[float]] | None = Field(None, description="With include_probabilities.")


class ExplainRequest(_CustomerMetadata):
    """Explain what the model would do for a customer; nothing is logged."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"features": EXAMPLE_FEATURES, "action": "no_action"}]}
    )

    features: CustomerFeatures  # type: ignore[valid-type]
    action: str | None = Field(
        None, description="Action to explain (default: the model's most likely allowed one)."
    )
    excluded_actions: list[str] = Field(default_factory=list, max_length=_MAX_EXCLUDED)
    top: int | None = Field(None, ge=1, description="Keep only the largest contributions.")


class ExplainResponse(Explanation):
    """A SHAP explanation and the model version that produced it."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{**_EXAMPLE_EXPLANATION, "model_version": "ppo-5cfe9e7f1c19"}]
        }
    )

    model_version: str


class RewardRequest(_Model):
    """The observed reward of a decision (e.g. profit in USD)."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"reward": 12.5}]})

    reward: float = Field(strict=True, description="Finite number.")


class RewardResponse(BaseModel):
    """The recorded reward."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "event_id": "6f1c2d4e-9a7b-4c3d-8e5f-0a1b2c3d4e5f",
                    "reward": 12.5,
                    "duplicate": False,
                    "learned": True,
                    "n_updates": 1042,
                }
            ]
        }
    )

    event_id: str
    reward: float
    duplicate: bool = Field(description="True if this reward had already been recorded.")
    learned: bool = Field(description="True if an online policy learned from it now.")
    n_updates: int = Field(description="Rewards the online policy has learned from.")


class FeatureSpec(BaseModel):
    """One input feature."""

    name: str
    unit: str
    low: float
    high: float
    binary: bool
    description: str


class ExplorationInfo(BaseModel):
    """How served actions explore."""

    kind: Literal["epsilon", "temperature", "none"]
    epsilon: float | None = None
    temperature: float | None = None
    seed: int = Field(description="Seed of the generator that samples served actions.")


class ModelInfo(BaseModel):
    """The served model."""

    algorithm: str
    model_version: str
    sha256: str = Field(description="SHA-256 of the model file, checked against run.json.")
    population: str
    trained_timesteps: int
    actions: list[Action]
    features: list[FeatureSpec]
    exploration: ExplorationInfo
    online: bool = Field(description="True if the policy learns from rewards.")
    n_updates: int
    state_persisted: bool = Field(description="True if updates are saved to a state directory.")


class Health(BaseModel):
    """Liveness."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"status": "ok", "model_version": "ppo-5cfe9e7f1c19"}]}
    )

    status: Literal["ok"] = "ok"
    model_version: str


class ErrorResponse(BaseModel):
    """An error."""

    detail: str
