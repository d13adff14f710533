"""Feature spaces: the env's instance, scaling, persistence and validation."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rec_env.feature_space import FeatureSpace
from rec_env.features import FEATURE_NAMES, OBS_HIGH, OBS_LOW


def test_the_env_space_is_the_feature_table() -> None:
    space = FeatureSpace.env()
    assert space.names == FEATURE_NAMES and space.d == 16
    np.testing.assert_array_equal(space.low, OBS_LOW)
    np.testing.assert_array_equal(space.high, OBS_HIGH)
    assert space.consent_columns == [13, 14, 15]
    obs = np.random.default_rng(0).random((5, 16)) * OBS_HIGH
    np.testing.assert_allclose(space.scaled(obs), obs / OBS_HIGH, rtol=1e-15)
    assert FeatureSpace.coerce(None) is space


def test_standardised_spaces_and_names_only() -> None:
    contexts = np.random.default_rng(1).normal(3.0, 2.0, size=(200, 3))
    contexts[:, 2] = 7.0  # a constant column keeps width 1
    space = FeatureSpace.standardised(["a", "b", "c"], contexts)
    z = space.scaled(contexts)
    np.testing.assert_allclose(z[:, :2].mean(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(z[:, :2].std(axis=0), 1.0)
    np.testing.assert_array_equal(z[:, 2], 0.0)
    assert space.consent_columns is None and space.index("b") == 1
    named = FeatureSpace.coerce(["x", "y"])
    np.testing.assert_array_equal(named.scaled([[2.0, -3.0]]), [[2.0, -3.0]])
    assert np.isinf(named.low).all() and np.isinf(named.high).all()


@pytest.mark.parametrize("make", [FeatureSpace.env, lambda: FeatureSpace.named(["u", "v"])])
def test_json_round_trip(make) -> None:
    space = make()
    payload = json.loads(json.dumps(space.to_dict(), allow_nan=False))
    assert FeatureSpace.from_dict(payload) == space
    assert FeatureSpace.coerce(payload) == space


def test_invalid_spaces_and_contexts_are_rejected() -> None:
    with pytest.raises(ValueError, match="repeated: a"):
        FeatureSpace(["a", "a"])
    with pytest.raises(ValueError, match=r"low 2\.0 > high 1\.0"):
        FeatureSpace(["a"], [2.0], [1.0])
    with pytest.raises(ValueError, match="one value per feature"):
        FeatureSpace(["a", "b"], [0.0])
    with pytest.raises(ValueError, match="width must be positive"):
        FeatureSpace(["a"], width=[0.0])
    with pytest.raises(ValueError, match="unknown feature space fields: scale"):
        FeatureSpace.from_dict({"names": ["a"], "scale": [1.0]})
    with pytest.raises(ValueError, match="no feature 'zip'"):
        FeatureSpace.env().index("zip")
    with pytest.raises(ValueError, match=r"shape \(n, 16\)"):
        FeatureSpace.env().check(np.zeros((2, 11)))
    with pytest.raises(AttributeError, match="immutable"):
        FeatureSpace.env().names = ("a",)
    with pytest.raises(ValueError, match="read-only"):
        FeatureSpace.env().high[0] = 1.0
