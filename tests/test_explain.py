"""Policy explanations: exact Shapley values, local accuracy, consent masks, shap objects, cost."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib
import numpy as np
import pytest

from rec_env.agents.bandits import BANDITS
from rec_env.agents.base import Policy
from rec_env.agents.baselines import RandomPolicy
from rec_env.agents.explain import (
    PolicyExplainer,
    operating_background,
    population_background,
)
from rec_env.agents.explain.shapley import brute_force_shapley
from rec_env.agents.sb3 import train_sb3
from rec_env.catalog import ActionTable, load_catalog
from rec_env.features import FEATURE_INDEX, FEATURE_NAMES

matplotlib.use("Agg")

TABLE = ActionTable.from_catalog(load_catalog("strategy"))
TINY = {
    "ppo": {"n_envs": 16, "n_steps": 16, "batch_size": 128, "n_epochs": 2},
    "maskable_ppo": {"n_envs": 16, "n_steps": 16, "batch_size": 128, "n_epochs": 2},
    "a2c": {"n_envs": 16, "n_steps": 8},
    "dqn": {"n_envs": 16, "learning_starts": 500, "buffer_size": 5_000, "batch_size": 64},
}
USERS = sorted((Path(__file__).parents[1] / "profiles" / "users").glob("*.json"))


def user_observations() -> np.ndarray:
    rows = []
    for path in USERS:
        features = json.loads(path.read_text())["features"]
        if set(features) == set(FEATURE_NAMES):  # minimal_profile.json is deliberately partial
            rows.append([features[name] for name in FEATURE_NAMES])
    return np.array(rows, dtype=np.float32)


@pytest.fixture(scope="module")
def policies() -> dict[str, object]:
    trained = {
        name: train_sb3(name, {}, total_timesteps=1_500, seed=0, hyperparams=hp, eval_every=0)[0]
        for name, hp in TINY.items()
    }
    rng = np.random.default_rng(0)
    obs = population_background(2_000, seed=5)
    for name in ("linucb", "lin_ts"):
        bandit = BANDITS[name](n_actions=TABLE.n_actions, random_state=0)
        actions = rng.integers(0, TABLE.n_actions, obs.shape[0])
        bandit.update(obs, actions, rng.normal(obs[:, 2] / 100.0 * (actions % 3), 1.0))
        trained[name] = bandit
    trained["random"] = RandomPolicy(TABLE.n_actions, random_state=0)
    return trained


@pytest.fixture(scope="module")
def customers() -> np.ndarray:
    return np.concatenate([user_observations(), population_background(5, seed=99)])


KINDS = {
    "ppo": "probability",
    "a2c": "probability",
    "maskable_ppo": "probability",
    "dqn": "q_value",
    "linucb": "estimated_reward",
    "lin_ts": "estimated_reward",
    "random": "probability",
}


def policy_output(policy, kind: str, obs: np.ndarray, actions: np.ndarray) -> np.ndarray:
    """The explained value from the policy's own code (torch for SB3, the bandit's moments)."""
    rows = np.arange(len(actions))
    if kind == "q_value":
        return policy.q_values(obs)[rows, actions]
    if kind == "estimated_reward":
        return policy.moments(obs)[0][rows, actions]
    return policy.action_probabilities(obs, TABLE.consent_masks(obs))[rows, actions]


@pytest.mark.parametrize("name", list(KINDS))
def test_local_accuracy_against_the_policy_itself(policies, customers, name) -> None:
    explainer = PolicyExplainer(policies[name], n_background=6, seed=1)
    explanation = explainer.explain(customers)
    assert explainer.kind == KINDS[name]
    assert explanation.values.shape == customers.shape
    direct = policy_output(policies[name], explainer.kind, customers, explanation.actions)
    total = explanation.base_values + explanation.values.sum(axis=1)
    np.testing.assert_allclose(total, direct, atol=1e-6, rtol=0)
    np.testing.assert_allclose(explanation.model_outputs, direct, atol=1e-6, rtol=0)


@pytest.mark.parametrize("name", list(KINDS))
def test_matches_brute_force_over_all_coalitions(policies, customers, name) -> None:
    """Every one of the 2^16 coalitions of the averaged game, straight from the definition."""
    policy = policies[name]
    background = population_background(3, seed=11)
    explainer = PolicyExplainer(policy, background=background)
    x = customers[0]
    explanation = explainer.explain(x)
    action = int(explanation.actions[0])

    def value(z: np.ndarray) -> np.ndarray:
        return explainer.model_output(z, np.full(z.shape[0], action))

    reference, base = brute_force_shapley(value, x, background)
    np.testing.assert_allclose(explanation.values[0], reference, atol=2e-6)
    assert explanation.base_values[0] == pytest.approx(base, abs=2e-6)


def test_consent_features_get_the_credit_for_the_mask(policies) -> None:
    """A uniformly random policy only depends on the mask, so only consent features matter."""
    explainer = PolicyExplainer(policies["random"], n_background=8)
    x = population_background(1, seed=3)[0]
    x[[FEATURE_INDEX[f"consent_{c}"] for c in ("email", "sms", "push")]] = 0.0
    explanation = explainer.explain(x, actions=np.array([TABLE.no_action]))
    values = dict(zip(FEATURE_NAMES, explanation.values[0], strict=True))
    assert explanation.model_outputs[0] == pytest.approx(1.0)
    assert all(abs(v) < 1e-12 for f, v in values.items() if not f.startswith("consent_"))
    assert sum(values[f"consent_{c}"] for c in ("email", "sms", "push")) > 0.1


def test_default_action_is_the_most_likely_allowed_one(policies, customers) -> None:
    policy = policies["ppo"]
    explainer = PolicyExplainer(policy, n_background=4)
    explanation = explainer.explain(customers)
    probs = policy.action_probabilities(customers, TABLE.consent_masks(customers))
    np.testing.assert_array_equal(explanation.actions, probs.argmax(axis=1))


def test_excluded_actions_change_the_explained_probability(policies, customers) -> None:
    explainer = PolicyExplainer(policies["ppo"], n_background=4)
    x = customers[:1]
    excluded = np.zeros((1, TABLE.n_actions), dtype=bool)
    excluded[0, 1:] = True  # only no_action is left: its probability is 1 everywhere
    explanation = explainer.explain(x, excluded=excluded)
    assert explanation.actions[0] == TABLE.no_action
    assert explanation.model_outputs[0] == pytest.approx(1.0, abs=1e-6)
    np.testing.assert_allclose(explanation.values[0], 0.0, atol=1e-6)


def test_masked_action_and_bad_shapes_are_refused(policies) -> None:
    explainer = PolicyExplainer(policies["ppo"], n_background=4)
    x = population_background(1, seed=2)
    x[0, FEATURE_INDEX["consent_sms"]] = 0.0
    sms_action = TABLE.channel_names.index("sms")
    with pytest.raises(ValueError, match="masked"):
        explainer.explain(x, actions=np.array([sms_action]))
    with pytest.raises(ValueError, match="shape"):
        explainer.explain(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="actions"):
        explainer.explain(x, actions=np.array([99]))
    with pytest.raises(ValueError, match="at least 1"):
        PolicyExplainer(policies["ppo"], n_background=0)


def test_same_seed_same_explanation(policies, customers) -> None:
    first = PolicyExplainer(policies["ppo"], n_background=5, seed=7).explain(customers[:3])
    second = PolicyExplainer(policies["ppo"], n_background=5, seed=7).explain(customers[:3])
    other = PolicyExplainer(policies["ppo"], n_background=5, seed=8).explain(customers[:3])
    np.testing.assert_array_equal(first.values, second.values)
    assert not np.array_equal(first.base_values, other.base_values)


def test_as_dict_sorts_contributions(policies, customers) -> None:
    explainer = PolicyExplainer(policies["ppo"], n_background=4)
    explanation = explainer.explain(customers[:2])
    data = explainer.as_dict(explanation, 1, top=5)
    sizes = [abs(c["contribution"]) for c in data["contributions"]]
    assert len(sizes) == 5 and sizes == sorted(sizes, reverse=True)
    assert data["explained_output"] == f"P({TABLE.names[int(explanation.actions[1])]})"
    assert data["model_output"] == pytest.approx(
        data["base_value"] + float(explanation.values[1].sum()), abs=1e-9
    )
    json.dumps(data)


def test_shap_plots_accept_the_explanation(policies, customers, tmp_path) -> None:
    import matplotlib.pyplot as plt
    import shap

    explanation = PolicyExplainer(policies["ppo"], n_background=4).explain(customers)
    shap.plots.waterfall(explanation[0], show=False)
    plt.savefig(tmp_path / "waterfall.png")
    plt.close("all")
    shap.plots.beeswarm(explanation, show=False)
    plt.savefig(tmp_path / "beeswarm.png")
    plt.close("all")
    assert (tmp_path / "waterfall.png").stat().st_size > 1_000


# ---------------------------------------------------------------------------- one network copy
def test_explainer_and_server_use_one_network_copy(policies, customers) -> None:
    """The explainer and the service's fast path compute identical probabilities."""
    import torch
    from gymnasium import spaces

    from rec_env.agents.sb3.policy import ScaledFeatures
    from rec_env.features import OBS_HIGH, OBS_LOW
    from rec_env.scaling import InputScaling
    from rec_env.serve.fast_policy import numpy_probabilities

    policy = policies["ppo"]
    fast = numpy_probabilities(policy, TABLE, population_background(64, seed=4))
    assert fast is not None
    explainer = PolicyExplainer(policy, n_background=4)
    masks = TABLE.consent_masks(customers)
    actions = np.argmax(masks, axis=1)
    served = fast(customers, masks)
    np.testing.assert_array_equal(explainer.output.probabilities(customers, masks), served)
    np.testing.assert_array_equal(
        explainer.model_output(customers, actions), served[np.arange(len(actions)), actions]
    )
    np.testing.assert_allclose(served, policy.action_probabilities(customers, masks), atol=1e-6)
    # One scaling: the torch extractor runs the same function on the same factors.
    extractor = ScaledFeatures(spaces.Box(OBS_LOW, OBS_HIGH), "log")
    scaled = extractor(torch.as_tensor(customers)).numpy()
    np.testing.assert_allclose(scaled, InputScaling.from_bounds(OBS_HIGH)(customers), atol=1e-6)


# ---------------------------------------------------------------------------- any feature space
HILLSTROM_LIKE = ("recency_months", "history_usd", "mens", "womens", "newbie", "web")


class SoftmaxScorePolicy(Policy):
    """A fixed softmax of linear scores over any feature space (no consent columns)."""

    algorithm = "softmax_score"

    def __init__(self, weights: np.ndarray, features: tuple[str, ...]) -> None:
        super().__init__(weights.shape[1], features=features)
        self.weights = weights

    def _action_probabilities(self, obs: np.ndarray, masks: np.ndarray | None) -> np.ndarray:
        scores = np.tanh(obs @ self.weights / 50.0) * 3.0
        weights = np.exp(scores - scores.max(axis=1, keepdims=True))
        if masks is not None:
            weights *= masks
        return weights / weights.sum(axis=1, keepdims=True)


def hillstrom_like(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.column_stack(
        [
            rng.integers(1, 13, n),
            rng.gamma(2.0, 120.0, n).round(2),
            rng.random(n) < 0.5,
            rng.random(n) < 0.5,
            rng.random(n) < 0.5,
            rng.random(n) < 0.6,
        ]
    ).astype(np.float32)


def test_a_policy_on_a_foreign_feature_space_is_explained_exactly() -> None:
    """d = 6 named features, 3 actions, no consent columns: the generic exact engine."""
    rng = np.random.default_rng(0)
    policy = SoftmaxScorePolicy(rng.normal(size=(6, 3)) * 20, HILLSTROM_LIKE)
    background = hillstrom_like(5, seed=1)
    explainer = PolicyExplainer(policy, background=background)
    assert explainer.table is None and explainer.kind == "probability"
    customers = hillstrom_like(4, seed=2)
    explanation = explainer.explain(customers)
    assert explanation.feature_names == list(HILLSTROM_LIKE)
    assert explanation.values.shape == (4, 6)
    direct = policy.action_probabilities(customers)[np.arange(4), explanation.actions]
    total = explanation.base_values + explanation.values.sum(axis=1)
    np.testing.assert_allclose(total, direct, atol=1e-6, rtol=0)
    np.testing.assert_array_equal(explanation.actions, policy.predict(customers))
    action = int(explanation.actions[0])
    reference, base = brute_force_shapley(
        lambda z: policy.action_probabilities(z)[:, action], customers[0], background
    )
    np.testing.assert_allclose(explanation.values[0], reference, atol=1e-9)
    assert explanation.base_values[0] == pytest.approx(base, abs=1e-9)
    assert explainer.as_dict(explanation, 0)["explained_output"] == f"P(action_{action})"
    with pytest.raises(ValueError, match="background"):
        PolicyExplainer(policy)
    with pytest.raises(ValueError, match=r"shape \(n, 6\)"):
        explainer.explain(np.zeros((1, 16)))


def test_a_linear_bandit_on_a_foreign_feature_space_has_its_closed_form() -> None:
    from rec_env.feature_space import FeatureSpace

    customers = hillstrom_like(300, seed=3)
    space = FeatureSpace.standardised(HILLSTROM_LIKE, customers)
    bandit = BANDITS["linucb"](n_actions=3, random_state=0, features=space)
    rng = np.random.default_rng(0)
    actions = rng.integers(0, 3, customers.shape[0])
    bandit.update(customers, actions, customers[:, 1] / 100.0 * (actions == 1) + rng.random(300))
    explainer = PolicyExplainer(bandit, background=customers[:8])
    assert explainer.kind == "estimated_reward"
    explanation = explainer.explain(customers[10:13])
    action = int(explanation.actions[0])
    reference, base = brute_force_shapley(
        lambda z: explainer.model_output(z, np.full(z.shape[0], action)),
        customers[10],
        customers[:8],
    )
    np.testing.assert_allclose(explanation.values[0], reference, atol=1e-9)
    assert explanation.base_values[0] == pytest.approx(base, abs=1e-9)


# ---------------------------------------------------------------------------- cost and threads
def test_example_users_cost_at_most_twice_the_drawn_customers(policies) -> None:
    """Section 5's goal in deterministic work, not time: median ≤ 2×, worst case ≤ 4×.

    The work is the network arithmetic the explainer counts (multiply-adds), against the
    default background of customers in operation (against freshly drawn customers it is 2.5-4×
    the drawn customers' median). The coalitions (``2^k`` per background row) stay within the
    worst-case bound too.
    """
    explainer = PolicyExplainer(policies["ppo"])
    drawn = explainer.explain(population_background(16, seed=2026))
    users = explainer.explain(user_observations())
    typical = np.median(drawn.multiply_adds)
    assert np.median(users.multiply_adds) <= 2.0 * typical
    assert users.multiply_adds.max() <= 4.0 * typical
    assert users.coalitions.max() <= 4.0 * np.median(drawn.coalitions)


def test_explanations_run_on_one_thread_and_restore_the_settings(policies) -> None:
    import torch
    from threadpoolctl import threadpool_info

    seen: list[tuple[int, int]] = []

    class Recording(RandomPolicy):
        def _action_probabilities(self, obs: np.ndarray, masks: np.ndarray | None) -> np.ndarray:
            blas = max(pool["num_threads"] for pool in threadpool_info())
            seen.append((blas, torch.get_num_threads()))
            return super()._action_probabilities(obs, masks)

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        explainer = PolicyExplainer(Recording(TABLE.n_actions, random_state=0), n_background=2)
        explainer.explain(population_background(1, seed=1))
        assert seen and all(threads == (1, 1) for threads in seen)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_background_of_customers_in_operation_is_seeded_and_has_history() -> None:
    first = operating_background(12, seed=3)
    np.testing.assert_array_equal(first, operating_background(12, seed=3))
    assert not np.array_equal(first, operating_background(12, seed=4))
    assert first.shape == (12, len(FEATURE_NAMES))
    assert (first[:, FEATURE_INDEX["contacts_last_30d"]] > 0).mean() > 0.5
    fresh = population_background(12, seed=3)
    assert (fresh[:, FEATURE_INDEX["contacts_last_30d"]] == 0).all()
