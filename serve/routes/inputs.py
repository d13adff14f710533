"""Validated requests into arrays: excluded actions, and 422s that name the field.

Bodies are parsed by the app's :class:`~rec_env.serve.validation.RequestValidators`. Customers
are completed by :func:`rec_env.customer.fill_in_rows` and
:func:`rec_env.customer.fill_in_columns`, the functions ``recenv explain`` uses too.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from fastapi import HTTPException, status
from fastapi.exceptions import RequestValidationError

from rec_env.serve.service import ActionNotAllowedError, DecisionService

__all__ = ["excluded_actions", "invalid", "require_explainer"]


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
