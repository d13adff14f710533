"""The request models an app validates with, built from its catalog and its settings.

:mod:`rec_env.serve.schemas` defines the requests; here they are narrowed to what one server
accepts: ``excluded_actions`` and ``action`` to the names of the served catalog, batch lists to
``max_batch`` customers, the reward to ``[reward_min, reward_max]``. A run of the item or slate
world gets requests with the item features of its product table
(:func:`~rec_env.serve.item_schemas.item_features_type`), ``excluded_products`` (ids of its
table) and, for single products, ``excluded_actions`` and ``top_actions``
(:func:`build_item_validators`). The app validates every body with these models and publishes
their JSON schema in OpenAPI, so the schema and the validation cannot drift apart. Each body is
first held to a :class:`ValueBudget` (a cheap scan of its bytes), then parsed by pydantic
straight from the bytes; a one-customer body over its budget that gives a ``history`` is held
to the larger budget of a history instead. Batch bodies in the column layout first try the
fast path of :class:`~rec_env.serve.json_columns.ColumnBatchParser` (numbers straight into
numpy arrays), which declines anything the request model would not accept as it is.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from pydantic import AfterValidator, BaseModel, Field, TypeAdapter, ValidationError, WithJsonSchema
from pydantic import create_model as create_pydantic_model
from pydantic_core import PydanticCustomError

from rec_env.features import FEATURES, Feature
from rec_env.fitting.history import MAX_EVENTS
from rec_env.serve.item_schemas import (
    ItemBatchBase,
    ItemRequestBase,
    item_columns_type,
    item_features_type,
    item_request_fields,
    item_responses,
)
from rec_env.serve.json_columns import ColumnBatchParser
from rec_env.serve.limits import ValueBudget
from rec_env.serve.schemas import (
    MAX_EXCLUDED,
    BatchRecommendRequest,
    CustomerFeatures,
    ExplainRequest,
    RecommendRequest,
    RewardRequest,
    batch_fields,
    feature_columns_type,
)
from rec_env.serve.world import ServedWorld

__all__ = ["BodyValidator", "RequestValidators", "build_item_validators", "build_validators"]

_INLINE_BYTES = 64 * 1024
"""Bodies up to this size are parsed on the event loop; larger ones in a worker thread."""

_N_FEATURES = len(FEATURES)

# Each event's fields (commas), its braces and the comma before it: orders 3 fields, contacts
# 7, visits 1, consents 3; plus the history's lists, its tags and as_of.
_HISTORY_TOKENS = MAX_EVENTS * (4 + 8 + 2 + 4) + 32
_HISTORY_OPENS = 4 * MAX_EVENTS + 8


class BodyValidator:
    """Validate one endpoint's raw JSON body: the value budget, then the pydantic model.

    Args:
        model: The request model (its JSON schema is the body's schema in OpenAPI).
        budget: What a valid body holds at most.
        columns: The fast path of a batch model's column layout, tried first (None: none).
        history_budget: What a valid body with a customer ``history`` holds at most; applied
            only to a body over ``budget`` that names a history, so a request with features
            costs nothing more.
    """

    def __init__(
        self,
        model: type[BaseModel],
        budget: ValueBudget,
        columns: ColumnBatchParser | None = None,
        history_budget: ValueBudget | None = None,
    ) -> None:
        self.model = model
        self.budget = budget
        self.columns = columns
        self.history_budget = history_budget
        self._adapter = TypeAdapter(model)

    @classmethod
    def for_batches(
        cls,
        model: type[BaseModel],
        budget: ValueBudget,
        features: Sequence[Feature],
        max_batch: int,
    ) -> BodyValidator:
        """The validator of a batch model, with the column layout's fast path."""
        return cls(model, budget, ColumnBatchParser(model, features, max_batch))

    def parse(self, raw: bytes) -> Any:
        """The validated request.

        Raises:
            RequestValidationError: 422 located in ``body``: over budget, not JSON
                (``json_invalid``), or invalid.
        """
        return self._parse(raw, self.budget.needs_scan(raw))

    async def parse_async(self, raw: bytes) -> Any:
        """:meth:`parse` from the event loop: large or suspect bodies in a worker thread."""
        suspect = self.budget.needs_scan(raw)
        if suspect or len(raw) > _INLINE_BYTES:
            return await run_in_threadpool(self._parse, raw, suspect)
        return self._parse(raw, False)

    def _parse(self, raw: bytes, suspect: bool) -> Any:
        """Scan ``raw`` against the budget if ``suspect``, then validate it."""
        budget = self.budget
        if suspect and self.history_budget is not None and b'"history"' in raw:
            budget = self.history_budget
            suspect = budget.needs_scan(raw)
        excess = budget.scan(raw) if suspect else None
        if excess is not None:
            raise RequestValidationError([excess])
        if self.columns is not None:
            parsed = self.columns.parse(raw)
            if parsed is not None:
                return parsed
        try:
            return self._adapter.validate_json(raw)
        except ValidationError as exc:
            errors = exc.errors(include_url=False, include_input=False)
            raise RequestValidationError(
                [{**error, "loc": ("body", *error["loc"])} for error in errors]
            ) from None


@dataclass(frozen=True)
class RequestValidators:
    """The body validators of one app, by endpoint.

    ``responses`` holds the response models of ``/v1/recommend``, ``/v1/recommend/batch`` and
    ``/v1/explain`` when they are not the strategy world's (for the OpenAPI schema).
    """

    recommend: BodyValidator
    batch: BodyValidator
    explain: BodyValidator
    reward: BodyValidator
    responses: tuple[type[BaseModel], type[BaseModel], type[BaseModel]] | None = None

    def models(self) -> list[type[BaseModel]]:
        """The request models, for the OpenAPI schema."""
        return [self.recommend.model, self.batch.model, self.explain.model, self.reward.model]


_LISTED_NAMES = 32
"""Up to this many names, an unknown one's error lists them all; beyond, a few examples."""


def _choices(names: Sequence[str]) -> str:
    """The names an error message offers: all of them, or the first few of a long list."""
    if len(names) <= _LISTED_NAMES:
        return ", ".join(names)
    return f"{', '.join(names[:3])}, ... ({len(names):,} in all, see the schema's enum)"


def _action_name(names: Sequence[str], fallback: str | None) -> Any:
    """A string that must be one of ``names``, but not ``fallback`` (the do-nothing action)."""
    accepted = [name for name in names if name != fallback]
    accepted_set = frozenset(accepted)
    choices = _choices(names)

    def check(name: str) -> str:
        if name in accepted_set:
            return name
        if name == fallback:
            raise PydanticCustomError(
                "not_excludable",
                "{name} cannot be excluded: it is the fallback when nothing else is allowed",
                {"name": name},
            )
        raise PydanticCustomError(
            "unknown_action",
            "unknown action '{name}'; the actions are {choices}",
            {"name": name, "choices": choices},
        )

    return Annotated[
        str, AfterValidator(check), WithJsonSchema({"type": "string", "enum": accepted})
    ]


def _product_id(ids: Sequence[str]) -> Any:
    """A string that must be one of the product ``ids``."""
    known = frozenset(ids)
    choices = _choices(ids)

    def check(product_id: str) -> str:
        if product_id in known:
            return product_id
        raise PydanticCustomError(
            "unknown_product",
            "unknown product '{id}'; the products are {choices}",
            {"id": product_id, "choices": choices},
        )

    return Annotated[
        str, AfterValidator(check), WithJsonSchema({"type": "string", "enum": list(ids)})
    ]


def _narrowed(
    base: type[BaseModel],
    fields: dict[str, tuple[Any, Any]],
    budget: ValueBudget,
    history_budget: ValueBudget | None = None,
) -> BodyValidator:
    """``base`` with some fields replaced (same name, so the same OpenAPI component)."""
    model = create_pydantic_model(  # type: ignore[call-overload]
        base.__name__, __base__=base, __module__=base.__module__, __doc__=base.__doc__, **fields
    )
    return BodyValidator(model, budget, history_budget=history_budget)


def _description(model: type[BaseModel], field: str) -> str | None:
    return model.model_fields[field].description


def _extra(model: type[BaseModel], field: str) -> Any:
    return model.model_fields[field].json_schema_extra


def build_validators(
    action_names: Sequence[str],
    fallback_action: str,
    max_batch: int,
    reward_min: float,
    reward_max: float,
) -> RequestValidators:
    """The body validators of a server.

    Args:
        action_names: The served catalog's actions.
        fallback_action: The do-nothing action, which cannot be excluded.
        max_batch: Most customers in one batch call.
        reward_min: Lowest accepted reward.
        reward_max: Highest accepted reward.
    """
    excludable = list[_action_name(action_names, fallback_action)]  # type: ignore[misc]

    def excluded(base: type[BaseModel]) -> dict[str, tuple[Any, Any]]:
        description = _description(base, "excluded_actions")
        field = Field(default_factory=list, max_length=MAX_EXCLUDED, description=description)
        return {"excluded_actions": (excludable, field)}

    one_customer = ValueBudget(  # a top object, features, excluded_actions
        tokens=MAX_EXCLUDED + 4 * _N_FEATURES + 64,
        opens=8,
        items={"excluded_actions": MAX_EXCLUDED},
        reason=f"one customer and at most {MAX_EXCLUDED} excluded actions",
    )
    one_history = ValueBudget(  # one customer given by a history of bounded lists
        tokens=one_customer.tokens + _HISTORY_TOKENS,
        opens=one_customer.opens + _HISTORY_OPENS,
        items=one_customer.items,
        reason=f"one customer, a history of at most {MAX_EVENTS:,} events per list and at most "
        f"{MAX_EXCLUDED} excluded actions",
    )
    batch_budget = ValueBudget(  # rows or columns, ids, baselines and excluded actions
        tokens=(_N_FEATURES + 4) * max_batch + MAX_EXCLUDED + 64,
        opens=max_batch + 2 * _N_FEATURES + 10,
        items={
            "customers": max_batch,
            "customer_ids": max_batch,
            "baseline_actions": max_batch,
            "baseline_propensities": max_batch,
            "excluded_actions": MAX_EXCLUDED,
        },
        reason=f"a batch holds at most {max_batch:,} customers",
    )
    layouts = batch_fields(CustomerFeatures, feature_columns_type(max_batch), max_batch)
    explained = _action_name(action_names, None) | None
    action = Field(None, description=_description(ExplainRequest, "action"))
    reward = Field(
        strict=True, ge=reward_min, le=reward_max, description=_description(RewardRequest, "reward")
    )
    action_name = _action_name(action_names, None)
    propensity = Annotated[float, Field(gt=0.0, le=1.0)]
    baselines = {
        "baseline_actions": (
            list[action_name] | None,  # type: ignore[valid-type]
            Field(
                None,
                max_length=max_batch,
                description=_description(BatchRecommendRequest, "baseline_actions"),
                json_schema_extra=_extra(BatchRecommendRequest, "baseline_actions"),
            ),
        ),
        "baseline_propensities": (
            list[propensity] | None,  # type: ignore[valid-type]
            Field(
                None,
                max_length=max_batch,
                description=_description(BatchRecommendRequest, "baseline_propensities"),
                json_schema_extra=_extra(BatchRecommendRequest, "baseline_propensities"),
            ),
        ),
    }
    batch = _narrowed(
        BatchRecommendRequest,
        {**layouts, **excluded(BatchRecommendRequest), **baselines},
        batch_budget,
    )
    baseline = Field(
        None,
        description=_description(RecommendRequest, "baseline_action"),
        json_schema_extra=_extra(RecommendRequest, "baseline_action"),
    )
    return RequestValidators(
        recommend=_narrowed(
            RecommendRequest,
            {**excluded(RecommendRequest), "baseline_action": (action_name | None, baseline)},
            one_customer,
            one_history,
        ),
        batch=BodyValidator.for_batches(batch.model, batch_budget, FEATURES, max_batch),
        explain=_narrowed(
            ExplainRequest,
            {**excluded(ExplainRequest), "action": (explained, action)},
            one_customer,
            one_history,
        ),
        reward=_narrowed(
            RewardRequest,
            {"reward": (float, reward)},
            ValueBudget(tokens=16, opens=4, reason="a reward is one number"),
        ),
    )


def _item_budgets(n_features: int, max_batch: int) -> tuple[ValueBudget, ValueBudget]:
    """The value budgets of one customer and of a batch with ``n_features`` features."""
    lists = {"excluded_actions": MAX_EXCLUDED, "excluded_products": MAX_EXCLUDED}
    one = ValueBudget(
        tokens=2 * MAX_EXCLUDED + 4 * n_features + 64,
        opens=8,
        items=lists,
        reason=f"one customer and at most {MAX_EXCLUDED} excluded actions and products",
    )
    batch = ValueBudget(
        tokens=(n_features + 2) * max_batch + 2 * MAX_EXCLUDED + 64,
        opens=max_batch + 2 * n_features + 8,
        items={"customers": max_batch, "customer_ids": max_batch, **lists},
        reason=f"a batch holds at most {max_batch:,} customers",
    )
    return one, batch


def _item_model(
    name: str, base: type[BaseModel], doc: str | None, fields: dict[str, Any]
) -> type[BaseModel]:
    """A request model ``name`` of an item world (same name: the same OpenAPI component)."""
    return create_pydantic_model(  # type: ignore[call-overload, no-any-return]
        name, __base__=base, __module__=base.__module__, __doc__=doc or base.__doc__, **fields
    )


def _explained(world: ServedWorld) -> tuple[Any, Any]:
    """The ``action`` field of an item world's explain request: an action, or a slate's product."""
    assert world.products is not None
    if world.kind == "slate":
        description = (
            "Product to explain (an id of the served product table): why it rather than the "
            "best product left out of the slate; default: the slate's first product."
        )
        return _product_id(world.products.ids) | None, Field(None, description=description)
    description = (
        "Action to explain (a name of the served catalog, allowed for this customer): why it "
        "rather than the runner-up; default: the model's most likely allowed action."
    )
    return _action_name(world.actions.names, None) | None, Field(None, description=description)


def build_item_validators(
    world: ServedWorld, max_batch: int, reward_min: float, reward_max: float
) -> RequestValidators:
    """The body validators of a server of an item or slate run (module docstring).

    Args:
        world: The run's world (its features, actions and products).
        max_batch: Most customers in one batch call.
        reward_min: Lowest accepted reward.
        reward_max: Highest accepted reward.
    """
    assert world.products is not None
    features = item_features_type(world.features)
    names = world.actions.names
    single = world.kind == "item"
    fields = item_request_fields(
        features,
        item_columns_type(world.features, max_batch),
        list[_product_id(world.products.ids)],  # type: ignore[misc]
        list[_action_name(names, names[world.actions.no_action])] if single else None,  # type: ignore[misc]
        max_batch,
    )
    one, batch = _item_budgets(world.n_features, max_batch)
    recommend = _item_model(
        "RecommendRequest", ItemRequestBase, RecommendRequest.__doc__, fields.recommend
    )
    explain = _item_model(
        "ExplainRequest",
        ItemRequestBase,
        ExplainRequest.__doc__,
        {**fields.explain, "action": _explained(world)},
    )
    for model in (recommend, explain):
        model.flat_features = TypeAdapter(features).json_schema()["properties"]  # type: ignore[attr-defined]
    reward = Field(
        strict=True, ge=reward_min, le=reward_max, description=_description(RewardRequest, "reward")
    )
    return RequestValidators(
        recommend=BodyValidator(recommend, one),
        batch=BodyValidator.for_batches(
            _item_model(
                "BatchRecommendRequest", ItemBatchBase, ItemBatchBase.__doc__, fields.batch
            ),
            batch,
            world.features,
            max_batch,
        ),
        explain=BodyValidator(explain, one),
        reward=_narrowed(
            RewardRequest,
            {"reward": (float, reward)},
            ValueBudget(tokens=16, opens=4, reason="a reward is one number"),
        ),
        responses=item_responses(world.kind),
    )
