"""OpenAPI descriptions shared by the routers: error responses and raw JSON bodies."""

from __future__ import annotations

from typing import Any

from rec_env.serve.schemas import ErrorResponse, ValidationErrorResponse

__all__ = [
    "EXPLANATIONS_DISABLED",
    "INVALID_BODY",
    "UNAUTHORIZED",
    "VALIDATION_ERROR",
    "raw_json_body",
]

UNAUTHORIZED: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorResponse, "description": "Missing or invalid API key."}
}
VALIDATION_ERROR: dict[int | str, dict[str, Any]] = {
    422: {
        "model": ValidationErrorResponse,
        "description": "Validation error; each problem's loc names the field.",
    }
}
INVALID_BODY: dict[int | str, dict[str, Any]] = {
    413: {
        "model": ErrorResponse,
        "description": "The body is larger than the server's --max-body-bytes; it was not read.",
    },
    422: {
        "model": ValidationErrorResponse,
        "description": "Invalid body, on every endpoint alike: not JSON (type json_invalid, "
        'loc ["body"]), a field that breaks the schema (loc names it), more values than any '
        "valid request holds (too_many_values, too_long), or a constraint the schema cannot "
        "express (equal lengths, an action the customer does not allow).",
    },
}
"""The responses of an endpoint that reads a JSON body."""
EXPLANATIONS_DISABLED: dict[int | str, dict[str, Any]] = {
    503: {"model": ErrorResponse, "description": "Explanations are disabled (--no-explain)."}
}


def raw_json_body(schema_ref: str, required: bool = True) -> dict[str, Any]:
    """OpenAPI of a JSON body read from raw bytes (FastAPI cannot see its model)."""
    return {
        "requestBody": {
            "required": required,
            "content": {"application/json": {"schema": {"$ref": schema_ref}}},
        }
    }
