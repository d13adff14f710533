"""Validated requests into arrays: excluded actions, and 422s that name the field.

Bodies are parsed by the app's :class:`~rec_env.serve.validation.RequestValidators`. Customers
are completed by :func:`rec_env.customer.fill_in_rows` and
:func:`rec_env.customer.fill_in_columns`, or built from a history by
:func:`rec_env.fitting.history.fill_in_history`: the functions ``recenv explain`` uses too.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from fastapi import HTTPException, status
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError

from rec_env.customer import FilledCustomers
from rec_env.serve.service import ActionNotAllowedError, DecisionService

__all__ = ["excluded_actions", "history_customer", "invalid", "require_explainer"]


def invalid(
    loc: Sequence[str | int], message: str, kind: str = "value_error"
) -> RequestValidationError:
    """A 422 error of type ``kind`` at ``loc``."""
    return RequestValidationError([{"type": kind, "loc": tuple(loc), "msg": message}])


def excluded_actions(
    service: DecisionService, names: Sequence[str], loc: tuple[str, ...]
) -> np.ndarray:
    """``(A,)`` bool of the excluded action names; 422 naming a bad entry.

    The validators already refuse unknown names and the do-nothing action; this is the
    service's own check, for callers that bypass them.
    """
    excluded = np.zeros(service.actions.n_actions, dtype=bool)
    for position, name in enumerate(names):
        try:
            excluded[service.excludable_index(name)] = True
        except ActionNotAllowedError as exc:
            raise invalid((*loc, position), str(exc)) from None
    return excluded


def require_explainer(service: DecisionService) -> None:
    """503 if the service runs without an explainer."""
    if service.explainer is not None:
        return
    if service.world.kind != "strategy" and service.settings.explain:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            f"explanations need a policy network; a {service.policy.algorithm} run has none",
        )
    raise HTTPException(
        status.HTTP_503_SERVICE_UNAVAILABLE, "explanations are disabled (--no-explain)"
    )


async def history_customer(service: DecisionService, body: Any) -> FilledCustomers:
    """The customer of a request that gives a ``history`` (or ``as_of``): its features built.

    The features come from :func:`rec_env.fitting.history.fill_in_history` with the run's cycle
    and population, in a worker thread (a history may hold tens of thousands of events);
    ``filled_in`` lists all 16, built from the history or defaulted.

    Raises:
        RequestValidationError: 422 for ``as_of`` without a history, or features and a history.
    """
    from rec_env.fitting.history import fill_in_history, run_options

    if body.history is None:
        raise invalid(("body", "as_of"), "as_of goes with a history; give one, or leave as_of out")
    if body.features:
        raise invalid(("body", "features"), "give either features or a history, not both")
    try:
        filled = await run_in_threadpool(
            fill_in_history,
            body.history,
            body.as_of,
            service.assume_consent,
            **run_options(service.info.settings),
        )
    except ValueError as exc:
        raise invalid(("body", "history"), str(exc)) from None
    return FilledCustomers(filled.observations, tuple(filled.report()))
