"""Request bodies into arrays: raw JSON parsing, excluded actions, and 422s that name the field.

Customers are completed by :func:`rec_env.customer.fill_in_rows` and
:func:`rec_env.customer.fill_in_columns`, the functions ``recenv explain`` uses too.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from fastapi import HTTPException, status
from fastapi.exceptions import RequestValidationError
from pydantic import TypeAdapter, ValidationError

from rec_env.serve.service import ActionNotAllowedError, DecisionService

__all__ = ["excluded_actions", "invalid", "parse_body", "require_explainer"]


def invalid(loc: Sequence[str | int], message: str) -> RequestValidationError:
    """A 422 error at ``loc``."""
    return RequestValidationError([{"type": "value_error", "loc": tuple(loc), "msg": message}])


def parse_body(adapter: TypeAdapter[Any], raw: bytes) -> Any:
    """Validate a raw JSON body with pydantic; errors become 422s located in ``body``."""
    try:
        return adapter.validate_json(raw)
    except ValidationError as exc:
        errors = [{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]
        raise RequestValidationError(errors) from None


def excluded_actions(
    service: DecisionService, names: Sequence[str], loc: tuple[str, ...]
) -> np.ndarray:
    """``(A,)`` bool of the excluded action names; 422 naming a bad entry."""
    excluded = np.zeros(service.actions.n_actions, dtype=bool)
    for position, name in enumerate(names):
        try:
            excluded[service.excludable_index(name)] = True
        except ActionNotAllowedError as exc:
            raise invalid((*loc, position), str(exc)) from None
    return excluded


def require_explainer(service: DecisionService) -> None:
    """503 if the service runs without an explainer."""
    if service.explainer is None:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE, "explanations are disabled (--no-explain)"
        )
