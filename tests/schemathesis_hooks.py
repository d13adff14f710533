"""Schemathesis hooks of ``test_serve_schemathesis.py`` (loaded through ``SCHEMATHESIS_HOOKS``).

JSON Schema cannot say that a batch's columns (and its ``customer_ids``) are equally long, or
that the action to explain must be allowed for the customer (consent on its channel), or, for
item and slate runs, that the decision has an alternative to contrast it with
(``not_explainable``) and that the customer is near enough to the background customers for
exact Shapley values (``too_costly``), or that a date of a customer's history is a day of the
calendar (``date``: the schema's pattern lets 2024-02-30 through), or that a dashboard's
time range is a real and bounded one (``time_range``: since before until, at most 2400
buckets). The server checks these and answers 422 with a type of its own
(``unequal_lengths``, ``action_not_allowed``, ``not_explainable``, ``too_costly``, ``date``,
``time_range``); a schema-valid request refused for exactly these reasons, and nothing else,
is not a failure.
Every other check failure stands.
"""

from __future__ import annotations

import json

import schemathesis

SEMANTIC_ERRORS = frozenset(
    {"unequal_lengths", "action_not_allowed", "not_explainable", "too_costly", "date"}
    | {"time_range"}
)
"""422 types of constraints that JSON Schema cannot express."""


@schemathesis.hook
def filter_failure(context, failure, case, response) -> bool:
    """Keep every failure but a schema-valid body refused only for a semantic constraint."""
    if failure.code != "ST202" or response.status_code != 422:  # ST202: valid data rejected
        return True
    try:
        problems = json.loads(response.content)["detail"]
        return not all(problem["type"] in SEMANTIC_ERRORS for problem in problems)
    except (ValueError, KeyError, TypeError):
        return True
