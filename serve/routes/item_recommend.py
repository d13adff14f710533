"""``/v1/recommend`` and ``/v1/recommend/batch`` for runs of the item and slate worlds.

An item decision names the product (id, name, category, price), the channel and the offer,
with its propensity and the most probable actions; a slate decision names ``K`` products in
display order with the probability of the whole slate and of each position
(:mod:`rec_env.serve.slates`). Customers are filled in by the world's
:class:`~rec_env.serve.customers.CustomerFiller` (item features left out: no history), and the
request's ``excluded_products`` and ``excluded_actions`` narrow what may be served; consent,
read from the features, always applies.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from pydantic_core import to_json

from rec_env.agents.threads import pinned_threads
from rec_env.customer import FilledCustomers
from rec_env.features import CHANNELS
from rec_env.serve.routes.inputs import excluded_actions, invalid
from rec_env.serve.service import DecisionService
from rec_env.serve.slates import SampledSlates
from rec_env.serve.validation import BodyValidator
from rec_env.serve.world import ServedWorld, offer_name

__all__ = ["decide_item_batch", "excluded_products", "item_excluded_actions", "recommend_item"]


def excluded_products(
    world: ServedWorld, ids: Sequence[str], loc: tuple[str, ...]
) -> np.ndarray | None:
    """``(n_products,)`` bool of the excluded product ids (None if none); 422 naming a bad one."""
    if not ids:
        return None
    assert world.products is not None
    excluded = np.zeros(world.products.n_products, dtype=bool)
    for position, product_id in enumerate(ids):
        try:
            excluded[world.product_index(product_id)] = True
        except KeyError as exc:
            raise invalid((*loc, position), str(exc.args[0])) from None
    return excluded


def item_excluded_actions(service: DecisionService, body: Any) -> np.ndarray | None:
    """``(A,)`` bool of the request's excluded actions (item world), or None."""
    names = getattr(body, "excluded_actions", None)
    if not names:
        return None
    return excluded_actions(service, names, ("body", "excluded_actions"))


def _slate(world: ServedWorld, sampled: SampledSlates, i: int) -> dict[str, Any]:
    """The API's ``slate`` of customer ``i``."""
    channel = int(sampled.channels[i])
    products = [
        {
            **world.describe_product(int(j)),
            "position": k + 1,
            "probability": float(sampled.position_probabilities[i, k]),
        }
        for k, j in enumerate(sampled.slates[i].tolist())
        if j >= 0
    ]
    discount = float(sampled.discounts[i])
    return {
        "channel": world.channel_name(channel),
        "offer": offer_name(bool(products), discount),
        "discount": discount if products else 0.0,
        "products": products,
        "probability": float(sampled.propensities[i]),
    }


def recommend_item(
    service: DecisionService, body: Any, customer: FilledCustomers
) -> dict[str, Any]:
    """Decide, log and describe one customer's item or slate decision."""
    world, obs = service.world, customer.observations
    products = excluded_products(world, body.excluded_products, ("body", "excluded_products"))
    filled_in = [filled.as_dict() for filled in customer.filled_in]
    if world.kind == "slate":
        result = service.decide_slates(obs, world.allowed_products(products), [body.customer_id])
        sampled: SampledSlates = result.outcome.slates
        return {
            "event_id": result.event_ids[0],
            "model_version": service.model_version,
            "slate": _slate(world, sampled, 0),
            "propensity": float(sampled.propensities[0]),
            "filled_in": filled_in,
            "explanation": None,
        }
    allowed = world.request_allowed(item_excluded_actions(service, body), products)
    result = service.decide_items(obs, allowed, [body.customer_id], top=body.top_actions)
    columns = result.outcome.columns
    return {
        "event_id": result.event_ids[0],
        "model_version": service.model_version,
        "action": service.describe_action(int(columns.actions[0])),
        "propensity": float(columns.propensities[0]),
        "probabilities": result.outcome.top[0],
        "filled_in": filled_in,
        "explanation": None,
    }


def _fill_batch(service: DecisionService, body: Any) -> FilledCustomers:
    """The batch's customers, filled in."""
    filler = service.world.customers
    if body.customers is not None:
        return filler.fill_rows(body.customers, service.assume_consent)
    return filler.fill_columns(body.columns, body.n_customers, service.assume_consent)


def decide_item_batch(
    service: DecisionService, validator: BodyValidator, max_batch: int, raw: bytes
) -> bytes:
    """Parse, fill in, decide and log a batch of an item or slate run; its JSON (in a thread).

    BLAS runs on one thread (:func:`~rec_env.agents.threads.pinned_threads`): a second one
    spin-waits through the network's products and doubles their CPU time, which a machine
    serving at full load does not have to spare.
    """
    with pinned_threads():
        response = _item_batch(service, validator, max_batch, raw)
    # pydantic-core's encoder: five times json.dumps' speed on 10,000-long lists
    return to_json(response)


def _item_batch(
    service: DecisionService, validator: BodyValidator, max_batch: int, raw: bytes
) -> dict[str, Any]:
    """The response of :func:`decide_item_batch`."""
    body = validator.parse(raw)
    if body.n_customers > max_batch:
        layout = "customers" if body.customers is not None else "columns"
        raise invalid(("body", layout), f"at most {max_batch} customers per call")
    world = service.world
    customers = _fill_batch(service, body)
    obs = customers.observations
    products = excluded_products(world, body.excluded_products, ("body", "excluded_products"))
    head = {"model_version": service.model_version}
    filled_in = [filled.as_dict(counts=True) for filled in customers.filled_in]
    if world.kind == "slate":
        result = service.decide_slates(obs, world.allowed_products(products), body.customer_ids)
        slates = _slate_columns(world, result.event_ids, result.outcome.slates)
        return {**head, **slates, "filled_in": filled_in}
    allowed = world.request_allowed(item_excluded_actions(service, body), products)
    top = body.top_actions if body.include_probabilities else None
    result = service.decide_items(obs, allowed, body.customer_ids, top=top)
    actions = result.outcome.columns.actions
    described = _action_columns(world)
    return {
        **head,
        "n": len(result.event_ids),
        "event_ids": result.event_ids,
        "actions": described["names"][actions].tolist(),
        "action_indices": actions.tolist(),
        "products": described["products"][actions].tolist(),
        "channels": described["channels"][actions].tolist(),
        "propensities": result.outcome.columns.propensities.tolist(),
        "top_actions": result.outcome.top,
        "filled_in": filled_in,
    }


def _action_columns(world: ServedWorld) -> dict[str, np.ndarray]:
    """Each action's name, product id (None: no message) and channel, as object arrays."""
    table = world.actions
    assert world.products is not None
    ids = np.array([*world.products.ids, None], dtype=object)
    return {
        "names": np.array(table.names, dtype=object),
        "products": ids[table.product],  # no action's -1 is the trailing None
        "channels": np.array(table.channel_names, dtype=object),
    }


def _slate_columns(
    world: ServedWorld, event_ids: list[str], sampled: SampledSlates
) -> dict[str, Any]:
    """A batch of slates, column by column."""
    assert world.products is not None
    ids = np.array([*world.products.ids, None], dtype=object)[sampled.slates].tolist()
    probabilities = sampled.position_probabilities.tolist()
    channels = np.array([*CHANNELS, "none"], dtype=object)
    return {
        "n": len(event_ids),
        "event_ids": event_ids,
        "slates": [[p for p in row if p is not None] for row in ids],
        "channels": channels[sampled.channels].tolist(),
        "discounts": sampled.discounts.tolist(),
        "propensities": sampled.propensities.tolist(),
        "position_probabilities": [[p for p in row if not math.isnan(p)] for row in probabilities],
    }
