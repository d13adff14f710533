"""Tree models of the offline learners as plain arrays (``rec_env.agents.offline.trees``)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.ensemble import (
    ExtraTreesClassifier,
    ExtraTreesRegressor,
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.neighbors import KNeighborsRegressor
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor, ExtraTreeRegressor

from rec_env.agents.base import POLICY_FILE
from rec_env.agents.integrity import load_policy, load_verified_policy, policy_digests
from rec_env.agents.offline import EstimatorModel, LinearModel, fit_model, learn
from rec_env.agents.offline.base import STATE_FILE
from rec_env.agents.offline.trees import TreeEnsembleModel, as_tree_ensemble, is_tree_ensemble
from rec_env.datasets import LoggedBanditData

TOLERANCE = 1e-8
PROPENSITIES = np.array([0.3, 0.3, 0.4])


@pytest.fixture(scope="module", autouse=True)
def one_openmp_thread() -> Iterator[None]:
    """Histogram gradient boosting on one OpenMP thread: tiny fits wait on busy cores otherwise."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="openmp"):
        yield


def rows(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``(n, 4)`` inputs and a non-linear regression target."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4))
    return x, 2.0 * x[:, 0] + np.sin(2.0 * x[:, 1]) * (x[:, 2] > 0) + rng.normal(size=n)


def targets(y: np.ndarray, task: str) -> np.ndarray:
    """The regression target, or 2 or 3 classes cut from it."""
    if task == "binary":
        return (y > 0).astype(np.int64)
    if task == "three":
        return np.digitize(y, [-1.0, 1.0])
    return y


ESTIMATORS = [
    (DecisionTreeRegressor(max_depth=5, random_state=0), "regression"),
    (DecisionTreeClassifier(max_depth=5, random_state=0), "three"),
    (ExtraTreeRegressor(max_depth=6, random_state=0), "regression"),
    (RandomForestRegressor(n_estimators=8, max_depth=6, random_state=0), "regression"),
    (RandomForestClassifier(n_estimators=8, max_depth=6, random_state=0), "binary"),
    (ExtraTreesRegressor(n_estimators=8, max_depth=6, random_state=0), "regression"),
    (ExtraTreesClassifier(n_estimators=8, max_depth=6, random_state=0), "three"),
    (GradientBoostingRegressor(n_estimators=15, max_depth=3, random_state=0), "regression"),
    (GradientBoostingRegressor(n_estimators=15, loss="huber", random_state=0), "regression"),
    (GradientBoostingClassifier(n_estimators=15, max_depth=3, random_state=0), "binary"),
    (GradientBoostingClassifier(n_estimators=10, max_depth=2, random_state=0), "three"),
    (HistGradientBoostingRegressor(max_iter=15, random_state=0), "regression"),
    (HistGradientBoostingRegressor(max_iter=15, loss="absolute_error"), "regression"),
    (HistGradientBoostingClassifier(max_iter=15, random_state=0), "binary"),
    (HistGradientBoostingClassifier(max_iter=10, random_state=0), "three"),
]


def predictions_gap(model: TreeEnsembleModel, estimator: Any, x: np.ndarray) -> float:
    """Largest difference between the arrays' and the estimator's predictions on ``x``."""
    if model.link == "identity":
        return float(np.abs(model.expected(x) - estimator.predict(x)).max())
    proba = estimator.predict_proba(x)
    expected = proba @ np.asarray(estimator.classes_, dtype=np.float64)
    return max(
        float(np.abs(model.probabilities(x) - proba).max()),
        float(np.abs(model.expected(x) - expected).max()),
    )


# ---------------------------------------------------------------------------- conversion
@pytest.mark.parametrize(
    ("estimator", "task"),
    ESTIMATORS,
    ids=[f"{type(e).__name__}-{task}" for e, task in ESTIMATORS],
)
def test_arrays_reproduce_the_estimator_on_fresh_rows(estimator: Any, task: str) -> None:
    x, y = rows(400, seed=0)
    fresh, _ = rows(300, seed=1)
    fresh = fresh * 1.5  # beyond the training range too
    model = fit_model(estimator, x, targets(y, task).astype(np.float64))
    assert isinstance(model, TreeEnsembleModel)
    assert predictions_gap(model, model_estimator(estimator, x, y, task), fresh) <= TOLERANCE
    rebuilt = TreeEnsembleModel.from_arrays(model.arrays(), model.link)
    np.testing.assert_array_equal(rebuilt.expected(fresh), model.expected(fresh))


def model_estimator(template: Any, x: np.ndarray, y: np.ndarray, task: str) -> Any:
    """The template fitted as :func:`fit_model` fits it (seeded: the same trees)."""
    from sklearn.base import clone

    target = targets(y, task)
    return clone(template).fit(x, target.astype(np.int64) if task != "regression" else target)


def test_the_links_follow_the_estimator() -> None:
    x, y = rows(300, seed=2)
    links = {
        "regression": HistGradientBoostingRegressor(max_iter=5),
        "binary": HistGradientBoostingClassifier(max_iter=5),
        "three": GradientBoostingClassifier(n_estimators=3),
    }
    got = {task: fit_model(e, x, targets(y, task).astype(float)).link for task, e in links.items()}
    assert got == {"regression": "identity", "binary": "logistic", "three": "softmax"}
    forest_template = RandomForestClassifier(n_estimators=3, random_state=0)
    forest = fit_model(forest_template, x, targets(y, "three").astype(float))
    assert forest.link == "probability"
    assert forest.class_values.tolist() == [0.0, 1.0, 2.0]  # type: ignore[attr-defined]


def test_missing_values_follow_the_learned_direction() -> None:
    x, y = rows(500, seed=3)
    rng = np.random.default_rng(4)
    x[rng.random(x.shape) < 0.15] = np.nan
    fresh, _ = rows(200, seed=5)
    fresh[rng.random(fresh.shape) < 0.3] = np.nan
    for estimator in (HistGradientBoostingRegressor(max_iter=10), DecisionTreeRegressor()):
        fitted = estimator.fit(x, y)
        model = as_tree_ensemble(fitted, x)
        assert model.missing_left.any()
        assert predictions_gap(model, fitted, fresh) <= TOLERANCE


def test_inputs_are_rounded_to_float32_as_scikit_learn_trees_do() -> None:
    x = np.array([[1.0], [1.5]])
    fitted = DecisionTreeRegressor().fit(x, np.array([0.0, 1.0]))  # threshold 1.25
    model = as_tree_ensemble(fitted, x)
    near = np.array([[1.25 + 1e-9]])  # above the threshold, but 1.25 as a float32
    assert fitted.predict(near)[0] == 0.0
    assert model.expected(near)[0] == 0.0


def test_same_seed_same_arrays() -> None:
    x, y = rows(300, seed=6)
    first, again, other = (
        fit_model(RandomForestRegressor(n_estimators=4, random_state=seed), x, y)
        for seed in (7, 7, 8)
    )
    for name, array in first.arrays().items():  # type: ignore[attr-defined]
        np.testing.assert_array_equal(array, again.arrays()[name])  # type: ignore[attr-defined]
    assert not np.array_equal(first.threshold, other.threshold)  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("estimator", "target", "reason"),
    [
        (HistGradientBoostingRegressor(max_iter=5, loss="poisson"), "positive", "poisson"),
        (GradientBoostingClassifier(n_estimators=3, loss="exponential"), "binary", "exponential"),
        (GradientBoostingRegressor(n_estimators=3, init=DecisionTreeRegressor()), "y", "init"),
        (
            HistGradientBoostingRegressor(max_iter=5, categorical_features=[3]),
            "y",
            "categorical",
        ),
    ],
    ids=["log-link", "exponential-loss", "tree-init", "categorical"],
)
def test_unsupported_settings_stay_in_memory_with_the_reason(
    estimator: Any, target: str, reason: str
) -> None:
    x, y = rows(300, seed=8)
    x[:, 3] = np.random.default_rng(9).integers(0, 4, size=300)  # a category code
    y_fit = {"positive": np.abs(y) + 0.1, "binary": (y > 0).astype(float), "y": y}[target]
    model = fit_model(estimator, x, y_fit)
    assert isinstance(model, EstimatorModel)
    assert reason in (model.reason or "")
    assert np.isfinite(model.expected(x[:5])).all()


def test_a_conversion_that_does_not_reproduce_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    x, y = rows(200, seed=10)
    fitted = GradientBoostingRegressor(n_estimators=5, random_state=0).fit(x, y)
    exact = fitted.predict
    monkeypatch.setattr(fitted, "predict", lambda x: exact(x) + 1e-6)  # arrays now off by 1e-6
    with pytest.raises(ValueError, match="do not reproduce"):
        as_tree_ensemble(fitted, x)


def test_another_layout_of_the_fitted_trees_is_refused() -> None:
    x, y = rows(200, seed=11)
    fitted = HistGradientBoostingRegressor(max_iter=3).fit(x, y)
    del fitted._predictors  # as if another scikit-learn version kept them elsewhere
    with pytest.raises(ValueError, match="not laid out as recenv reads them"):
        as_tree_ensemble(fitted, x)


def test_only_scikit_learn_tree_models_are_converted() -> None:
    assert is_tree_ensemble(HistGradientBoostingRegressor())
    assert not is_tree_ensemble(KNeighborsRegressor())

    class OwnForest(RandomForestRegressor):  # may predict otherwise: not converted
        pass

    assert not is_tree_ensemble(OwnForest())


# ---------------------------------------------------------------------------- policies
def campaign(n: int = 1_500, seed: int = 0) -> LoggedBanditData:
    """3 actions, control 0; action 1 pays where ``x0 > 0``, action 2 where ``x1 > 0.5``."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3))
    a = rng.choice(3, size=n, p=PROPENSITIES)
    mean = 1.5 * (x[:, 0] > 0) * (a == 1) + 2.0 * (x[:, 1] > 0.5) * (a == 2) - 0.5 * (a > 0)
    r = mean + 0.5 * rng.normal(size=n)
    return LoggedBanditData(x, a, PROPENSITIES[a], r, 3, action_names=("none", "one", "two"))


@pytest.fixture(scope="module")
def log() -> LoggedBanditData:
    return campaign()


@pytest.fixture(scope="module")
def fresh_contexts() -> np.ndarray:
    return np.random.default_rng(99).normal(size=(500, 3))


POLICIES = {
    "reward_model-hgb": (
        "reward_model",
        {"estimator": HistGradientBoostingRegressor(max_iter=20, random_state=0)},
    ),
    "x_learner-boosting": (
        "x_learner",
        {
            "estimator": GradientBoostingRegressor(n_estimators=15, random_state=0),
            "effect_estimator": HistGradientBoostingRegressor(max_iter=15, random_state=0),
            "propensity_estimator": RandomForestClassifier(n_estimators=5, random_state=0),
            "control": 0,
        },
    ),
    "dr_learner-hgb": (
        "dr_learner",
        {
            "estimator": HistGradientBoostingRegressor(max_iter=15, random_state=0),
            "effect_estimator": GradientBoostingRegressor(n_estimators=15, random_state=0),
            "control": 0,
        },
    ),
    "ipw-tree": ("ipw", {"classifier": DecisionTreeClassifier(max_depth=4, random_state=0)}),
}


@pytest.mark.parametrize("key", list(POLICIES))
def test_a_tree_policy_saves_and_loads_to_the_same_actions(
    key: str, log: LoggedBanditData, fresh_contexts: np.ndarray, tmp_path: Path
) -> None:
    name, options = POLICIES[key]
    policy = learn(name, log, **options)
    assert any(isinstance(m, TreeEnsembleModel) for m in policy.models.values())  # type: ignore[attr-defined]
    policy.save(tmp_path)
    with np.load(tmp_path / STATE_FILE, allow_pickle=False) as state:
        assert any(key.endswith(".tree_offsets") for key in state.files)
    loaded = load_policy(tmp_path)
    assert type(loaded) is type(policy)
    assert loaded.weights_sha256() == policy.weights_sha256()
    np.testing.assert_array_equal(loaded.predict(fresh_contexts), policy.predict(fresh_contexts))
    np.testing.assert_array_equal(loaded.scores(fresh_contexts), policy.scores(fresh_contexts))  # type: ignore[attr-defined]
    digests = policy_digests(tmp_path, policy)
    verified = load_verified_policy(
        tmp_path, policy.algorithm, digests["files"], digests["weights_sha256"]
    )
    np.testing.assert_array_equal(verified.predict(fresh_contexts), policy.predict(fresh_contexts))


def test_the_tree_policy_learns_the_thresholds(
    log: LoggedBanditData, fresh_contexts: np.ndarray
) -> None:
    policy = learn("reward_model", log, estimator=HistGradientBoostingRegressor(max_iter=30))
    chosen = policy.predict(fresh_contexts)
    best = np.where(fresh_contexts[:, 1] > 0.5, 2, np.where(fresh_contexts[:, 0] > 0, 1, 0))
    assert (chosen == best).mean() > 0.9  # a linear reward model gets 0.74


def test_links_record_the_kind_and_linear_runs_keep_bare_links(
    log: LoggedBanditData, tmp_path: Path
) -> None:
    trees = learn("reward_model", log, estimator=DecisionTreeRegressor(max_depth=3))
    linear = learn("reward_model", log)
    trees.save(tmp_path / "trees")
    linear.save(tmp_path / "linear")
    read = {d: json.loads((tmp_path / d / POLICY_FILE).read_text()) for d in ("trees", "linear")}
    assert set(read["trees"]["config"]["model_links"].values()) == {"tree:identity"}
    assert set(read["linear"]["config"]["model_links"].values()) == {"identity"}
    assert isinstance(load_policy(tmp_path / "linear").models["action_0"], LinearModel)  # type: ignore[attr-defined]


def test_an_unsupported_estimator_still_refuses_to_save(
    log: LoggedBanditData, tmp_path: Path
) -> None:
    policy = learn("reward_model", log, estimator=KNeighborsRegressor(n_neighbors=5))
    with pytest.raises(ValueError, match="built on KNeighborsRegressor without pickle"):
        policy.save(tmp_path)
    assert not (tmp_path / POLICY_FILE).exists()


def test_an_unconverted_tree_model_says_why_it_is_not_saved(
    log: LoggedBanditData, tmp_path: Path
) -> None:
    from rec_env.feature_space import FeatureSpace

    codes = log.contexts.copy()
    codes[:, 2] = np.round(np.abs(codes[:, 2]))  # a category code
    data = LoggedBanditData(codes, log.actions, log.propensities, log.rewards, 3)
    estimator = HistGradientBoostingRegressor(max_iter=5, categorical_features=[2])
    unscaled = FeatureSpace.named(data.feature_names)  # codes must stay integers
    policy = learn("reward_model", data, estimator=estimator, features=unscaled)
    with pytest.raises(ValueError, match=r"without pickle.*categorical"):
        policy.save(tmp_path)


# ---------------------------------------------------------------------------- tampered state
def _tamper_child(arrays: dict[str, np.ndarray]) -> None:
    left = arrays["action_1.left"].copy()
    left[np.flatnonzero(left >= 0)[0]] = 0  # points back to the root: a cycle
    arrays["action_1.left"] = left


def _tamper_range(arrays: dict[str, np.ndarray]) -> None:
    right = arrays["action_1.right"].copy()
    right[np.flatnonzero(right >= 0)[-1]] = right.size + 5
    arrays["action_1.right"] = right


def _tamper_value(arrays: dict[str, np.ndarray]) -> None:
    value = arrays["action_1.value"].copy()
    value[-1, 0] = np.inf
    arrays["action_1.value"] = value


def _tamper_feature(arrays: dict[str, np.ndarray]) -> None:
    feature = arrays["action_1.feature"].copy()
    feature[0] = 3  # the policy has 3 inputs: 0, 1, 2
    arrays["action_1.feature"] = feature


def _tamper_dtype(arrays: dict[str, np.ndarray]) -> None:
    arrays["action_1.left"] = arrays["action_1.left"].astype(np.float64) + 0.5


def _tamper_offsets(arrays: dict[str, np.ndarray]) -> None:
    arrays["action_1.tree_offsets"] = arrays["action_1.tree_offsets"][:-1]


def _tamper_missing(arrays: dict[str, np.ndarray]) -> None:
    del arrays["action_1.threshold"]


def _tamper_size(arrays: dict[str, np.ndarray]) -> None:
    arrays["action_1.n_inputs"] = np.array(4)


TAMPERINGS = {
    "cycle": (_tamper_child, "'left'"),
    "child out of range": (_tamper_range, "'right'"),
    "infinite leaf": (_tamper_value, "'value' holds non-finite"),
    "feature out of range": (_tamper_feature, "'feature'"),
    "float indices": (_tamper_dtype, "'left' must hold integers"),
    "offsets": (_tamper_offsets, "'tree_offsets'"),
    "missing array": (_tamper_missing, "missing arrays threshold"),
    "inputs": (_tamper_size, "takes 4 inputs, the policy gives 3"),
}


@pytest.mark.parametrize("kind", list(TAMPERINGS))
def test_a_tampered_tree_state_is_refused_naming_model_and_array(
    kind: str, log: LoggedBanditData, tmp_path: Path
) -> None:
    policy = learn("reward_model", log, estimator=DecisionTreeRegressor(max_depth=4))
    policy.save(tmp_path)
    with np.load(tmp_path / STATE_FILE, allow_pickle=False) as state:
        arrays = {key: state[key] for key in state.files}
    tamper, message = TAMPERINGS[kind]
    tamper(arrays)
    np.savez(tmp_path / STATE_FILE, **arrays)
    with pytest.raises(ValueError, match="action_1") as caught:
        load_policy(tmp_path)
    assert message in str(caught.value)


def test_an_unknown_model_kind_is_refused(log: LoggedBanditData, tmp_path: Path) -> None:
    policy = learn("reward_model", log, estimator=DecisionTreeRegressor(max_depth=2))
    policy.save(tmp_path)
    payload = json.loads((tmp_path / POLICY_FILE).read_text())
    payload["config"]["model_links"]["action_0"] = "pickle:identity"
    (tmp_path / POLICY_FILE).write_text(json.dumps(payload))
    with pytest.raises(ValueError, match=r"action_0.*unknown model kind 'pickle'"):
        load_policy(tmp_path)


def test_absurd_node_counts_are_refused() -> None:
    n = 10_000_001
    arrays = {
        "feature": np.broadcast_to(np.int64(-1), (n,)),  # no memory: the size is refused first
        "threshold": np.zeros(1),
        "left": np.zeros(1),
        "right": np.zeros(1),
        "missing_left": np.zeros(1, dtype=bool),
        "value": np.zeros((1, 1)),
        "tree_offsets": np.array([0, n]),
        "baseline": np.zeros(1),
        "class_values": np.zeros(0),
        "tree_weight": np.array(1.0),
        "n_inputs": np.array(3),
        "float32_inputs": np.array(True),
    }
    with pytest.raises(ValueError, match="'feature' must hold 1 to 10,000,000 nodes"):
        TreeEnsembleModel.from_arrays(arrays, "identity")
