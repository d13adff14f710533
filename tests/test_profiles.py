"""Shipped populations and example customers: they load, simulate, differ, and fail clearly."""

from __future__ import annotations

import copy
import json
import math
import re
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from rec_env import ConfigError, RecommendationEnv, build_model
from rec_env.agents.baselines import FixedActionPolicy, RandomPolicy
from rec_env.customer import CustomerProfile, load_customer
from rec_env.features import FEATURE_INDEX, FEATURE_NAMES, PROFILE_FEATURES
from rec_env.population import (
    HIDDEN_PARAMETERS,
    SAMPLED_FEATURES,
    CustomerSampler,
    list_populations,
    load_population,
)
from rec_env.rollout import run_cohort

POPULATIONS = list_populations()
USERS_DIR = Path(str(resources.files("rec_env.profiles") / "users"))
USER_FILES = sorted(USERS_DIR.glob("*.json"))


def _default_population_data() -> dict[str, Any]:
    text = (resources.files("rec_env.profiles") / "default.yaml").read_text(encoding="utf-8")
    return yaml.safe_load(text)


# ---------------------------------------------------------------------- shipped populations
def test_default_and_at_least_two_more_populations_are_shipped() -> None:
    assert "default" in POPULATIONS
    assert len(POPULATIONS) >= 3


@pytest.mark.parametrize("name", POPULATIONS)
def test_shipped_population_loads_with_complete_segments(name: str) -> None:
    population = load_population(name)
    assert population.name == name
    assert population.description.strip()
    assert len(population.segments) >= (4 if name == "default" else 3)
    for segment in population.segments:
        assert segment.weight > 0
        assert segment.description.strip()
        assert set(segment.observed) == set(SAMPLED_FEATURES)
        assert set(segment.hidden) == set(HIDDEN_PARAMETERS)


@pytest.mark.parametrize("name", POPULATIONS)
def test_shipped_population_simulates_with_finite_results(name: str) -> None:
    model = build_model(name)
    n_actions = model.actions.n_actions
    for policy in (FixedActionPolicy(n_actions, 0), RandomPolicy(n_actions, random_state=0)):
        result = run_cohort(model, policy, n_customers=200, horizon=5, seed=0)
        kpis = result.kpis()
        assert all(math.isfinite(value) for value in kpis.values()), kpis
        assert np.isfinite(result.profit).all()
        assert (result.cycles >= 1).all()
        assert 0.0 <= kpis["churn_rate"] <= 1.0


def test_shipped_populations_differ_in_profit_without_contact() -> None:
    profits = {}
    for name in POPULATIONS:
        model = build_model(name)
        policy = FixedActionPolicy(model.actions.n_actions, model.actions.no_action)
        result = run_cohort(model, policy, n_customers=3000, horizon=52, seed=0)
        profits[name] = result.kpis()["profit_per_customer"]
    assert all(profit > 0 for profit in profits.values()), profits
    assert max(profits.values()) > 1.2 * min(profits.values()), profits


# ---------------------------------------------------------------------- population errors
def _write_yaml(tmp_path: Path, name: str, data: dict[str, Any]) -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def _negative_weight(data: dict[str, Any]) -> None:
    data["segments"][0]["weight"] = -0.3


def _missing_hidden(data: dict[str, Any]) -> None:
    del data["segments"][1]["hidden"]["discount_habituation"]


def _unknown_key(data: dict[str, Any]) -> None:
    data["segments"][0]["colour"] = "red"


def _bad_distribution(data: dict[str, Any]) -> None:
    data["segments"][0]["observed"]["engagement_score"]["dist"] = "gama"


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (_negative_weight, r"segments\.0\.weight: Input should be greater than 0"),
        (_missing_hidden, r"segments\.1: .*hidden is missing discount_habituation"),
        (_unknown_key, r"segments\.0\.colour: Extra inputs are not permitted"),
        (_bad_distribution, r"segments\.0\.observed\.engagement_score: .*'gama'.*'gamma'"),
    ],
    ids=["negative_weight", "missing_hidden", "unknown_key", "bad_distribution"],
)
def test_invalid_population_names_file_field_and_problem(
    tmp_path: Path, mutate: Callable[[dict[str, Any]], None], expected: str
) -> None:
    data = copy.deepcopy(_default_population_data())
    mutate(data)
    path = _write_yaml(tmp_path, "broken.yaml", data)
    with pytest.raises(ConfigError, match=re.escape(str(path)) + ": " + expected):
        load_population(path)


def test_invalid_yaml_syntax_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "syntax.yaml"
    path.write_text("name: x\nsegments: [\n  - {name: a, weight: 1\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=re.escape(str(path)) + ": not valid yaml"):
        load_population(path)


def test_missing_population_file(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.yaml"
    with pytest.raises(ConfigError, match=re.escape(str(path)) + ": file not found"):
        load_population(path)


def test_unknown_shipped_population_lists_available_names() -> None:
    with pytest.raises(ConfigError, match=r"no_such_shop: .*available: ") as excinfo:
        load_population("no_such_shop")
    for name in POPULATIONS:
        assert name in str(excinfo.value)


# ---------------------------------------------------------------------- example customers
def test_enough_varied_example_users_are_shipped() -> None:
    assert len(USER_FILES) >= 5
    profiles = [load_customer(path) for path in USER_FILES]
    complete = [p for p in profiles if set(p.features) == set(FEATURE_NAMES)]
    assert len(complete) >= len(profiles) // 2 + 1
    assert any(set(p.features) == set(PROFILE_FEATURES) for p in profiles)
    assert any(
        p.features.get("consent_sms") == 0.0 and p.features.get("consent_push") == 0.0
        for p in profiles
    )
    assert len({p.customer_id for p in profiles}) == len(profiles)


@pytest.fixture(scope="module")
def env() -> RecommendationEnv:
    return RecommendationEnv()


@pytest.mark.parametrize("path", USER_FILES, ids=[p.stem for p in USER_FILES])
def test_example_user_resets_env_to_its_features(env: RecommendationEnv, path: Path) -> None:
    profile = load_customer(path)
    assert profile.description.strip()
    obs, info = env.reset(seed=0, options={"customer": profile})
    assert obs.dtype == np.float32
    assert env.observation_space.contains(obs)
    assert info["segment"] in env.model.sampler.segment_names
    given = np.array(list(profile.features.values()), dtype=np.float32)
    columns = [FEATURE_INDEX[name] for name in profile.features]
    assert np.allclose(obs[columns], given)


@pytest.mark.parametrize(
    ("features", "feature", "problem"),
    [
        ({"engagement_score": 1.5}, "features.engagement_score", "less than or equal to 1"),
        ({"favourite_colour": 1}, "features.favourite_colour", "not permitted"),
        ({"recency": "ten days"}, "features.recency", "valid number"),
        ({"consent_sms": 0.5}, "features.consent_sms", "must be 0 or 1"),
    ],
    ids=["out_of_range", "unknown_feature", "non_numeric", "binary_half"],
)
def test_invalid_user_json_names_the_feature(
    tmp_path: Path, features: dict[str, Any], feature: str, problem: str
) -> None:
    path = tmp_path / "bad_user.json"
    path.write_text(json.dumps({"customer_id": "x", "features": features}), encoding="utf-8")
    with pytest.raises(ConfigError, match=re.escape(str(path))) as excinfo:
        load_customer(path)
    assert feature in str(excinfo.value)
    assert problem in str(excinfo.value)


# ---------------------------------------------------------------------- segment inference
@pytest.fixture(scope="module")
def default_sampler() -> CustomerSampler:
    return CustomerSampler(load_population("default"))


@pytest.mark.parametrize(
    ("features", "expected"),
    [
        (
            {"last_purchase_days": 12, "engagement_score": 0.85, "discount_sensitive": 0},
            "loyal_high_value",
        ),
        (
            {"last_purchase_days": 300, "engagement_score": 0.08, "days_since_contact": 60},
            "lapsing",
        ),
    ],
    ids=["loyal", "lapsing"],
)
def test_most_likely_segment(
    default_sampler: CustomerSampler, features: dict[str, float], expected: str
) -> None:
    profile = CustomerProfile(features=features)
    index = default_sampler.most_likely_segment(profile.features)
    assert default_sampler.segment_names[index] == expected


def test_most_likely_segment_reads_frequency_and_spend_on_a_fitted_population() -> None:
    """CDNOW's fitted segments share their sampled features; purchases and spend tell them apart."""
    sampler = CustomerSampler(load_population("cdnow"))
    picks = [
        sampler.segment_names[sampler.most_likely_segment(features)]
        for features in (
            {"frequency": 0, "monetary_value": 24, "last_purchase_days": 200},
            {"frequency": 3, "monetary_value": 45},
            {"frequency": 1, "monetary_value": 23},
        )
    ]
    assert picks == ["occasional_buyers_low_value", "regular_buyers", "occasional_buyers_low_value"]
    # Without them it falls back to the weights: the largest segment.
    assert sampler.most_likely_segment({"engagement_score": 0.5}) == int(
        np.argmax(sampler.segment_probabilities)
    )
