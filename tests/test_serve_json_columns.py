"""The column layout's fast path: numbers straight into arrays, exactly what pydantic accepts."""

from __future__ import annotations

import json

import numpy as np
import pytest
from fastapi.exceptions import RequestValidationError

from rec_env.serve.json_columns import scan_number_arrays
from rec_env.serve.validation import build_validators

VALIDATORS = build_validators(["no_action", "discount_10_email"], "no_action", 50, -10.0, 10.0)
BATCH = VALIDATORS.batch


def test_numbers_parse_as_python_parses_them() -> None:
    rng = np.random.default_rng(0)
    numbers = [
        *rng.normal(0, 1e3, 200).tolist(),  # 16 and 17 significant digits: the exact fallback
        *np.round(rng.uniform(0, 500, 200), 4).tolist(),
        *rng.integers(-(10**18), 10**18, 50).tolist(),
        0.1, 0.30000000000000004, -0.0, 0, 5e-324, 1e-300, 1.7976931348623157e308, 1e22,
        1e23, 123456789012345.0, 9007199254740993, 2.5e-5,
    ]  # fmt: skip
    text = "[" + " ,\n\t".join([*map(json.dumps, numbers), "1E400", "-0.0e-7"]) + "]"
    raw = f'{{"a": {text}, "s": "[1, 2]", "n": [[3.5], ["x", 4]], "e": []}}'.encode()
    spans, arrays = scan_number_arrays(raw)
    expected = json.loads(raw)["a"]
    assert [raw[s:e].decode() for s, e in spans] == [text, "[3.5]"]  # not in strings or mixed
    np.testing.assert_array_equal(arrays[0], np.array(expected, dtype=float))
    assert np.signbit(arrays[0][numbers.index(-0.0)])


@pytest.mark.parametrize(
    "columns",
    [
        {"recency": [1.5, 2], "consent_email": [0, 1.0]},
        {"monetary_value": [0.123456789012345678, 1e2], "consent_sms": [1, 1]},
    ],
)
def test_valid_columns_take_the_fast_path_with_pydantic_s_values(columns) -> None:
    raw = json.dumps(
        {"columns": columns, "customer_ids": ["a", None], "include_probabilities": True}
    )
    fast = BATCH.columns.parse(raw.encode())
    slow = BATCH._adapter.validate_json(raw)
    assert fast is not None and fast.n_customers == slow.n_customers == 2
    assert fast.customer_ids == slow.customer_ids and fast.include_probabilities
    for name, values in slow.columns.items():
        np.testing.assert_array_equal(fast.columns[name], values)


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ('{"columns": {"recency": [1, true]}}', ["body", "columns", "recency", 1]),
        ('{"columns": {"recency": [1, "2"]}}', ["body", "columns", "recency", 1]),
        ('{"columns": {"recency": [1, null]}}', ["body", "columns", "recency", 1]),
        ('{"columns": {"recency": [1, -3]}}', ["body", "columns", "recency", 1]),
        ('{"columns": {"recency": [1, 1e400]}}', ["body", "columns", "recency", 1]),
        ('{"columns": {"consent_email": [1, 0.5, 1]}}', ["body", "columns", "consent_email", 1]),
        ('{"columns": {"nope": [1]}}', ["body", "columns", "nope"]),
        ('{"columns": {"recency": []}}', ["body", "columns", "recency"]),
        ('{"columns": {"recency": [1, 2], "frequency": [1]}}', ["body"]),
        ('{"columns": {"recency": [1]}, "customer_ids": [1]}', ["body", "customer_ids", 0]),
        ('{"columns": {"recency": [1]}, "customer_ids": ["a", "b"]}', ["body"]),
        ('{"columns": {"recency": [1]}, "extra": [2]}', ["body", "extra"]),
        ('{"columns": {"recency": [1]}, "customers": [{}]}', ["body"]),
        ('{"columns": {"recency": [1, 01]}}', ["body"]),
        ('{"columns": {"recency": [1' + ", 1" * 50 + "]}}", ["body", "columns", "recency"]),
    ],
)
def test_bad_columns_get_pydantic_s_422_naming_the_field(body: str, loc: list) -> None:
    assert BATCH.columns.parse(body.encode()) is None  # the fast path declines
    with pytest.raises(RequestValidationError) as raised:
        BATCH.parse(body.encode())
    assert list(raised.value.errors()[0]["loc"]) == loc
