"""Request and response models of the decision service.

A customer is a :class:`rec_env.customer.CustomerProfile`: its features are generated from
:data:`rec_env.features.FEATURES`, so every feature's name, description, unit, range and
default appear in the OpenAPI schema and are enforced on input. Any subset of the features may
be given; the others are filled in with the documented defaults of
:data:`rec_env.customer.FEATURE_DEFAULTS` and reported in ``filled_in``.

One strict policy, identical in the schema and in validation (the schema is generated from
these models): numbers are JSON numbers, finite and within range; strings and booleans are not
numbers (``true`` is not 1, not even for the 0/1 flags); booleans are only ``true`` and
``false`` (not ``1`` or ``"yes"``); integers are whole numbers (``3`` or ``3.0``, as JSON
Schema's ``integer``); unknown keys are rejected. A failed check, and a body that is not JSON at
all, is a 422 response whose ``loc`` names the field. The models here know nothing of the
served catalog or the operator's limits; :mod:`rec_env.serve.validation` derives from them the
models an app validates with.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    TypeAdapter,
    WithJsonSchema,
    create_model,
    model_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, PydanticCustomError, core_schema
from typing_extensions import TypedDict

from rec_env.customer import (
    CustomerFeatures,
    CustomerProfile,
    feature_description,
    feature_value_type,
)
from rec_env.features import FEATURES, Feature
from rec_env.fitting.history import MAX_EVENTS, CustomerHistory
from rec_env.fitting.history import Date as HistoryDate
from rec_env.serve.settings import MAX_BATCH

__all__ = [
    "EXAMPLE_FEATURES",
    "MAX_EXCLUDED",
    "SEED_EXAMPLE",
    "Action",
    "BatchDecisionResponse",
    "BatchFilledFeature",
    "BatchLayout",
    "BatchRecommendRequest",
    "BatchRecommendResponse",
    "Contribution",
    "CustomerFeatures",
    "DecisionResponse",
    "ErrorResponse",
    "ExplainRequest",
    "ExplainResponse",
    "Explanation",
    "ExplorationInfo",
    "FeatureColumns",
    "FeatureSpec",
    "FilledFeature",
    "Health",
    "ModelInfo",
    "Product",
    "RecommendRequest",
    "RecommendResponse",
    "RewardRequest",
    "RewardResponse",
    "ValidationErrorResponse",
    "ValidationProblem",
    "absent_means_none",
    "batch_fields",
    "batch_size",
    "check_batch_layout",
    "column_value_type",
    "columns_type",
    "feature_columns_type",
    "whole_number",
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

SEED_EXAMPLE: dict[str, float] = {
    "recency": 15,
    "frequency": 3,
    "monetary_value": 200,
    "engagement_score": 0.78,
    "discount_sensitive": 1,
    "free_shipping_preferred": 0,
    "email_opens": 0.87,
    "sms_response": 0.12,
    "push_response": 0.05,
    "last_purchase_days": 8,
}
"""The seed's flat example customer: the ten profile features; contact state and consent are
filled in."""

MAX_EXCLUDED = 256
"""Most actions one request may exclude."""
_MAX_ID_LENGTH = 256
_STRICT = ConfigDict(extra="forbid", allow_inf_nan=False, strict=True)
_EXAMPLE_ACTION = {"index": 5, "name": "discount_15_sms", "offer": "discount", "channel": "sms"}
_EXAMPLE_FILLED_IN = [
    {"feature": "days_since_contact", "value": 365.0, "reason": "not given: no contact recorded"},
    {
        "feature": "consent_push",
        "value": 0.0,
        "reason": "consent unknown: treated as no consent, nothing is sent on this channel",
    },
]
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


class _ZeroOrOne:
    """A 0/1 flag checked by pydantic-core itself: a float equal to 0 or to 1, strictly.

    The same rule as :func:`rec_env.customer.feature_value_type`'s flags, without a Python call
    per value: a 10,000-customer batch carries 50,000 flags, whose Python checks cost more than
    deciding for the whole batch. The schema is a number among 0 and 1.
    """

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        return core_schema.union_schema(
            [
                core_schema.float_schema(strict=True, ge=0.0, le=0.0),
                core_schema.float_schema(strict=True, ge=1.0, le=1.0),
            ],
            custom_error_type="binary",
            custom_error_message="must be 0 or 1",
        )


def column_value_type(feature: Feature) -> Any:
    """The validated type of one value of ``feature`` in a batch's columns.

    :func:`rec_env.customer.feature_value_type`, with flags checked natively (:class:`_ZeroOrOne`).
    """
    if feature.binary:
        return Annotated[float, _ZeroOrOne(), WithJsonSchema({"type": "number", "enum": [0, 1]})]
    return feature_value_type(feature)


def columns_type(
    features: Sequence[Feature],
    max_batch: int,
    describe: Callable[[Feature], str],
    examples: list[dict[str, Any]] | None = None,
) -> Any:
    """``FeatureColumns``: one list of at most ``max_batch`` values per feature of ``features``.

    Args:
        features: The features a column may name (the strategy world's or an item world's).
        max_batch: Most customers in one call.
        describe: Each feature's description, unit, range and default.
        examples: Examples for the schema.
    """
    columns: Any = TypedDict(  # type: ignore[misc]  # built from the features
        "FeatureColumns",
        {
            f.name: Annotated[
                list[column_value_type(f)],  # type: ignore[misc]
                Field(min_length=1, max_length=max_batch, description=describe(f)),
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
    extra: dict[str, Any] = {"minProperties": 1}
    if examples is not None:
        extra["examples"] = examples
    columns.__pydantic_config__ = ConfigDict(
        extra="forbid", allow_inf_nan=False, strict=True, json_schema_extra=extra
    )
    return columns


def feature_columns_type(max_batch: int) -> Any:
    """The strategy world's ``columns``: one list of at most ``max_batch`` values per feature."""
    example = {k: [v, v] for k, v in EXAMPLE_FEATURES.items()}
    return columns_type(FEATURES, max_batch, feature_description, [example])


FeatureColumns: Any = feature_columns_type(MAX_BATCH)
"""``columns`` with the largest batch limit (:data:`~rec_env.serve.settings.MAX_BATCH`)."""


def _whole_float_to_int(value: Any) -> Any:
    """JSON Schema's integer is any number without a fraction: 3.0 is 3 (but true is not 1)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def whole_number(**bounds: int) -> Any:
    """An integer as JSON Schema's ``integer``: 3 or 3.0, not 3.5, "3" or true.

    ``bounds`` (``ge=1``, ...) apply to the integer, so the schema shows them as ``minimum``
    and ``maximum``.
    """
    return Annotated[int, Field(strict=True, **bounds), BeforeValidator(_whole_float_to_int)]


def absent_means_none(schema: dict[str, Any]) -> None:
    """Schema of a field that may be left out but not given as ``null``: no default shown."""
    schema.pop("default", None)


def _nested_or_flat(schema: dict[str, Any], feature_properties: dict[str, Any]) -> None:
    """Turn the schema of a :class:`CustomerProfile` request into its two accepted forms.

    Validation takes the features nested under ``features`` or, if there is no ``features``
    key, flat at the top level beside the other fields; either way no other key is accepted.
    The schema says the same with ``anyOf``: the nested form, or the flat form whose properties
    are the other fields and the features.
    """
    properties = schema.pop("properties")
    schema.pop("additionalProperties", None)
    options = {name: value for name, value in properties.items() if name != "features"}
    schema["anyOf"] = [
        {
            "title": "nested",
            "type": "object",
            "properties": {**options, "features": properties["features"]},
            "additionalProperties": False,
        },
        {
            "title": "flat",
            "type": "object",
            "properties": {**options, **feature_properties},
            "additionalProperties": False,
        },
    ]


_FEATURE_PROPERTIES: dict[str, Any] = TypeAdapter(CustomerFeatures).json_schema()["properties"]
"""The JSON schema of each feature (as in ``CustomerFeatures``), for the flat form."""


class _NestedOrFlat(CustomerProfile):
    """A request about one customer, whose JSON schema shows the nested and the flat form.

    ``flat_features`` is the JSON schema of each feature of the flat form; a subclass with
    other features (the item worlds') sets its own.
    """

    model_config = ConfigDict(strict=True, allow_inf_nan=False)
    flat_features: ClassVar[dict[str, Any]] = _FEATURE_PROPERTIES

    @classmethod
    def __get_pydantic_json_schema__(
        cls, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        """The model's schema with its properties split into the two forms."""
        json_schema = super().__get_pydantic_json_schema__(core_schema, handler)
        _nested_or_flat(handler.resolve_ref_schema(json_schema), cls.flat_features)
        return json_schema


def _check_columns(columns: dict[str, list[float]]) -> int:
    """The number of customers of equally long columns (``unequal_lengths`` error if not)."""
    if not columns:
        raise ValueError("give at least one feature column")
    lengths = {name: len(values) for name, values in columns.items()}
    first, expected = next(iter(lengths.items()))
    for name, length in lengths.items():
        if length != expected:
            raise PydanticCustomError(
                "unequal_lengths",
                "{name} has {length} values, {first} has {expected}",
                {"name": name, "length": length, "first": first, "expected": expected},
            )
    return expected


def batch_size(request: Any) -> int:
    """Number of customers of a batch request (``customers`` or ``columns``)."""
    if request.customers is not None:
        return len(request.customers)
    return len(next(iter(request.columns.values())))


def check_batch_layout(request: Any) -> None:
    """Exactly one of ``customers`` and ``columns``, equally long columns and customer ids.

    Raises:
        ValueError: If the request gives both layouts or neither.
        PydanticCustomError: ``unequal_lengths`` for columns or ids of different lengths.
    """
    if (request.customers is None) == (request.columns is None):
        raise ValueError("give exactly one of customers and columns")
    if request.columns is not None:
        _check_columns(request.columns)
    if request.customer_ids is not None and len(request.customer_ids) != batch_size(request):
        raise PydanticCustomError(
            "unequal_lengths",
            "customer_ids has {n_ids} entries for {n} customers",
            {"n_ids": len(request.customer_ids), "n": batch_size(request)},
        )


class _Model(BaseModel):
    model_config = _STRICT


class FilledFeature(BaseModel):
    """A feature the request left out, and the value it was given."""

    feature: str
    value: float = Field(description="The value used for the decision.")
    reason: str = Field(description="Why this value (a documented default, or assumed consent).")


class BatchFilledFeature(FilledFeature):
    """A feature some customers of a batch left out, and the value they were given."""

    n_customers: int = Field(description="How many customers of the batch got this value.")


def _history_form(schema: dict[str, Any]) -> None:
    """Add the history form to the nested and the flat form of :func:`_nested_or_flat`.

    Validation takes ``history`` (and ``as_of``) or features, not both; the schema says so with
    a third form, in which ``history`` is required and ``features``, if present, is empty. In
    the other two, ``history`` and ``as_of`` may only be null (left out).
    """
    nested, flat = schema["anyOf"]
    history = nested["properties"]["history"]
    as_of = nested["properties"]["as_of"]
    for form in (nested, flat):
        form["properties"]["history"] = form["properties"]["as_of"] = {"type": "null"}
    not_null = [option for option in history.pop("anyOf") if option.get("type") != "null"]
    options = {
        name: value
        for name, value in nested["properties"].items()
        if name not in ("features", "history", "as_of")
    }
    schema["anyOf"].append(
        {
            "title": "history",
            "type": "object",
            "properties": {
                **options,
                "features": {"type": "object", "maxProperties": 0},
                "history": {**history, **not_null[0]},
                "as_of": as_of,
            },
            "required": ["history"],
            "additionalProperties": False,
        }
    )


class _CustomerOrHistory(_NestedOrFlat):
    """A request about one customer of the strategy world: features, or a history instead."""

    @classmethod
    def __get_pydantic_json_schema__(
        cls, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        """The nested, the flat and the history form."""
        json_schema = super().__get_pydantic_json_schema__(core_schema, handler)
        _history_form(handler.resolve_ref_schema(json_schema))
        return json_schema

    history: CustomerHistory | None = Field(
        None,
        description="The customer's history (orders, contacts, visits, consents, tags; at most "
        f"{MAX_EVENTS:,} events per list) instead of features: the 16 features are built from "
        "it by the simulator's definitions and listed in filled_in. Give either features or "
        "a history, not both.",
        json_schema_extra=absent_means_none,
    )
    as_of: HistoryDate | None = Field(  # type: ignore[valid-type]
        None,
        description="With history: its last day (YYYY-MM-DD); default: the latest event's day.",
        json_schema_extra=absent_means_none,
    )


_REWARD_WINDOW_DAYS = Field(
    None,
    gt=0.0,
    le=36_500.0,
    description="This request's attribution window in days (default: the server's "
    "--reward-window-days): rewards posted inside it add up, and when it closes their sum, "
    "or the default reward, is what the policy learns.",
    json_schema_extra=absent_means_none,
)


class RecommendRequest(_CustomerOrHistory):
    """Decide the marketing action for one customer.

    The features may be nested under ``features`` or given at the top level (the flat form);
    any subset of them will do. Features left out are filled in with documented defaults and
    reported in the response's ``filled_in``; unknown consent is no consent unless the
    operator assumes it (``--assume-consent``). Instead of features, a ``history`` (and
    optionally ``as_of``) gives the customer's events; ``filled_in`` then lists every feature,
    built from the history or defaulted for want of events.
    """

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"features": EXAMPLE_FEATURES, "excluded_actions": ["discount_20_sms"]},
                {"customer_id": "cust-1001", "features": EXAMPLE_FEATURES, "explain": True},
                SEED_EXAMPLE,
            ]
        }
    )

    explain: bool = Field(
        False, description="Also explain the decision with SHAP values (true or false only)."
    )
    excluded_actions: list[str] = Field(
        default_factory=list,
        max_length=MAX_EXCLUDED,
        description="Actions this customer must not get (names of the served catalog); "
        "no_action cannot be excluded.",
    )
    reward_window_days: float | None = _REWARD_WINDOW_DAYS
    baseline_action: str | None = Field(
        None,
        description="Apprentice mode: the action your existing rule chose for this customer. "
        "It is what the service returns and logs as served (with baseline_propensity); the "
        "model's own choice and probabilities are logged beside it, so that recenv ope can "
        "estimate both. It must be allowed for the customer (consent, rules, excluded_actions).",
        json_schema_extra=absent_means_none,
    )
    baseline_propensity: float = Field(
        1.0,
        gt=0.0,
        le=1.0,
        description="The probability your rule chose baseline_action with (1: a deterministic "
        "rule).",
    )


_ONE_LAYOUT = [{"required": ["customers"]}, {"required": ["columns"]}]
"""The schema's "exactly one of ``customers`` and ``columns``" (left out is None, not null)."""


def batch_fields(customers: Any, columns: Any, max_batch: int) -> dict[str, tuple[Any, Any]]:
    """``customers``, ``columns`` and ``customer_ids`` of a batch request (``create_model``).

    Args:
        customers: The type of one customer's features (``CustomerFeatures``).
        columns: The type of the column layout (``FeatureColumns``).
        max_batch: Most customers in one call.
    """
    return {
        "customers": (
            list[customers],  # type: ignore[valid-type]
            Field(
                None,
                min_length=1,
                max_length=max_batch,
                description="One object of features per customer; any subset of the features.",
                json_schema_extra=absent_means_none,
            ),
        ),
        "columns": (
            columns,
            Field(
                None,
                description="One list per feature, all of the same length.",
                json_schema_extra=absent_means_none,
            ),
        ),
        "customer_ids": (
            list[Annotated[str, Field(max_length=_MAX_ID_LENGTH)] | None] | None,
            Field(
                None,
                max_length=max_batch,
                description="Your ids of the customers, in order (logged); one per customer.",
            ),
        ),
    }


class BatchLayout(BaseModel):
    """A batch request: exactly one of ``customers`` and ``columns``, equally long lists.

    The base of the strategy world's and the item worlds' batch requests, whose fields
    :func:`batch_fields` gives.
    """

    model_config = ConfigDict(**_STRICT, json_schema_extra={"oneOf": _ONE_LAYOUT})

    @model_validator(mode="after")
    def _one_layout(self) -> BatchLayout:
        check_batch_layout(self)
        return self

    @property
    def n_customers(self) -> int:
        """Number of customers in the request."""
        return batch_size(self)


_BatchFields: Any = create_model(  # the annotated fields of the strategy world's batch
    "_BatchFields",
    __base__=BatchLayout,
    **batch_fields(CustomerFeatures, FeatureColumns, MAX_BATCH),
)


class BatchRecommendRequest(_BatchFields):  # type: ignore[misc, valid-type]
    """Decide for many customers at once: exactly one of ``customers`` and ``columns``.

    ``columns`` is the fast path for large batches (one list per feature, all of the same
    length); ``customers`` takes the same objects as ``features`` of ``/v1/recommend``. Rows may
    leave features out and columns may be missing; those features are filled in as for
    ``/v1/recommend``. ``customer_ids``, if given, has one entry per customer. (Equal lengths
    are checked but cannot be said in JSON Schema; everything else here is in the schema.)
    """

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"customers": [EXAMPLE_FEATURES, EXAMPLE_FEATURES]},
                {"columns": {k: [v, v] for k, v in EXAMPLE_FEATURES.items()}},
            ],
            "oneOf": _ONE_LAYOUT,
        }
    )

    excluded_actions: list[str] = Field(
        default_factory=list,
        max_length=MAX_EXCLUDED,
        description="Actions no customer of the batch may get (names of the served catalog); "
        "no_action cannot be excluded.",
    )
    include_probabilities: bool = Field(
        False,
        description="Return every customer's probabilities (in action_names order); true or "
        "false only.",
    )
    reward_window_days: float | None = _REWARD_WINDOW_DAYS
    baseline_actions: list[str] | None = Field(
        None,
        description="Apprentice mode: per customer, the action your existing rule chose (as "
        "baseline_action of /v1/recommend): it is returned and logged as served, the model's "
        "own choice beside it.",
        json_schema_extra=absent_means_none,
    )
    baseline_propensities: list[float] | None = Field(
        None,
        description="Per customer, the probability your rule chose its baseline action with "
        "(default: 1 each).",
        json_schema_extra=absent_means_none,
    )


class Product(BaseModel):
    """A product of the served product table (item and slate runs)."""

    id: str
    name: str
    category: str
    price: float = Field(description="List price, USD.")


class Action(BaseModel):
    """A marketing action of the catalog: an offer on a channel, or in the item worlds a product.

    ``discount`` and ``product`` are given for item and slate runs only.
    """

    index: int = Field(description="Position in the model's action list.")
    name: str = Field(description="Catalog name, e.g. discount_15_email or P0042:email.")
    offer: str = Field(description="none, discount, free_shipping or recommendation.")
    channel: str = Field(description="none, email, sms or push.")
    discount: float | None = Field(
        None, description="Item runs: the discount on the product, a fraction of its price."
    )
    product: Product | None = Field(
        None, description="Item runs: the recommended product (null: no message)."
    )


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


class DecisionResponse(BaseModel):
    """What every response about one decision holds (strategy, item and slate runs)."""

    event_id: str = Field(description="Id of the decision; post its reward with it.")
    model_version: str
    filled_in: list[FilledFeature] = Field(
        description="Features the request left out and the values they were given (in feature "
        "order); empty if every feature was given."
    )


class BatchDecisionResponse(BaseModel):
    """What every batch response holds, column by column in the order of the request."""

    model_version: str
    n: int = Field(description="Number of decisions.")
    event_ids: list[str]
    filled_in: list[BatchFilledFeature] = Field(
        description="Features some customers left out, the values they were given and for how "
        "many customers."
    )


class RecommendResponse(DecisionResponse):
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
                    "filled_in": _EXAMPLE_FILLED_IN,
                    "explanation": None,
                }
            ]
        }
    )

    action: Action
    propensity: float = Field(description="Probability with which the action was served.")
    probabilities: dict[str, float] = Field(
        description="Serving probability of every action (0 where not allowed)."
    )
    explanation: Explanation | None = Field(None, description="With explain: true.")
    holdout: bool = Field(
        False, description="The customer is in the holdout (--holdout): the action is no_action."
    )
    policy_action: Action | None = Field(
        None,
        description="Apprentice mode (baseline_action given): the action the model would have "
        "taken; the served action is the baseline.",
    )


class BatchRecommendResponse(BatchDecisionResponse):
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
                    "filled_in": [{**_EXAMPLE_FILLED_IN[0], "n_customers": 1}],
                }
            ]
        }
    )

    actions: list[str] = Field(description="Served action names.")
    action_indices: list[int]
    propensities: list[float]
    action_names: list[str] = Field(description="Order of the probability rows.")
    probabilities: list[list[float]] | None = Field(None, description="With include_probabilities.")
    holdout: list[bool] = Field(
        default_factory=list,
        description="Per customer: in the holdout (--holdout), so the action is no_action.",
    )
    policy_actions: list[str] | None = Field(
        None,
        description="Apprentice mode (baseline_actions given): per customer, the action the "
        "model would have taken; the served actions are the baselines.",
    )


class ExplainRequest(_CustomerOrHistory):
    """Explain what the model would do for a customer; nothing is logged.

    The customer is given and filled in as for ``/v1/recommend``.
    """

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"features": EXAMPLE_FEATURES, "action": "no_action"},
                {"customer_id": "cust-1007", "features": SEED_EXAMPLE},
            ]
        }
    )

    action: str | None = Field(
        None,
        description="Action to explain (a name of the served catalog, allowed for this "
        "customer); default: the model's most likely allowed action.",
    )
    excluded_actions: list[str] = Field(
        default_factory=list,
        max_length=MAX_EXCLUDED,
        description="Actions the model may not pick (names of the served catalog); no_action "
        "cannot be excluded.",
    )
    top: whole_number(ge=1) | None = Field(  # type: ignore[valid-type]
        None, description="Keep only the largest contributions (a whole number)."
    )


class ExplainResponse(Explanation):
    """A SHAP explanation and the model version that produced it."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    **_EXAMPLE_EXPLANATION,
                    "model_version": "ppo-5cfe9e7f1c19",
                    "filled_in": _EXAMPLE_FILLED_IN,
                }
            ]
        }
    )

    model_version: str
    filled_in: list[FilledFeature] = Field(
        description="Features the request left out and the values they were given."
    )


class RewardRequest(_Model):
    """The observed reward of a decision (e.g. profit in USD)."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"reward": 12.5}]})

    reward: float = Field(
        strict=True,
        description="Observed reward: a finite JSON number within the server's range "
        "(--reward-min, --reward-max; minimum and maximum below). Outside it: 422, and the "
        "reward is neither logged nor learned.",
    )
    part_id: str | None = Field(
        None,
        min_length=1,
        max_length=_MAX_ID_LENGTH,
        description="Id of this part of the reward (e.g. an order id). Inside a reward window "
        "the parts of an event add up; posting the same part again changes nothing. Without a "
        "window a reward is final at once and part_id is only logged.",
    )


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
    pending: bool = Field(
        False,
        description="True if the reward is a part of a window still open: it is learned from "
        "when the window closes, with the event's other parts.",
    )


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
    world: Literal["strategy", "item", "slate"] = Field(
        description="What an action is: an offer on a channel (strategy), a product on a "
        "channel (item) or a slate of products on a channel (slate)."
    )
    env_id: str = Field(description="The environment the policy was trained in.")
    slate_size: int | None = Field(description="Products per message of a slate run.")
    model_version: str
    sha256: str = Field(description="SHA-256 of the model file, checked against run.json.")
    population: str
    trained_timesteps: int
    actions: list[Action]
    features: list[FeatureSpec]
    exploration: ExplorationInfo
    online: bool = Field(description="True if the policy learns from rewards.")
    n_updates: int
    assume_consent: list[str] = Field(
        description="Channels on which a customer's unknown (left out) consent counts as given."
    )
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


class ValidationProblem(BaseModel):
    """One problem of a request."""

    loc: list[str | int] = Field(
        description='Where: "body" then the path to the field, or "path" and the parameter.'
    )
    msg: str = Field(description="What is wrong.")
    type: str = Field(
        description="Kind of problem: pydantic's error type (json_invalid, missing, "
        "float_type, less_than_equal, too_long, ...), too_many_values, unequal_lengths, "
        "not_excludable, unknown_action or action_not_allowed."
    )


class ValidationErrorResponse(BaseModel):
    """A 422: every problem of the request, located."""

    detail: list[ValidationProblem]
