"""Exact interventional Shapley values: local accuracy and agreement with brute force."""

from __future__ import annotations

import numpy as np
import pytest

from rec_env.agents.explain.shapley import ExactShapley, brute_force_shapley


def mlp(seed: int, n_features: int):
    rng = np.random.default_rng(seed)
    w1, w2 = rng.normal(size=(n_features, 8)), rng.normal(size=8)
    return lambda z: np.tanh(np.asarray(z, dtype=np.float64) @ w1) @ w2


@pytest.mark.parametrize("seed", range(5))
def test_matches_brute_force_and_local_accuracy(seed: int) -> None:
    rng = np.random.default_rng(seed)
    f = mlp(seed, 7)
    background = rng.normal(size=(9, 7)).astype(np.float32)
    background[:, 5:] = rng.random((9, 2)) < 0.5  # binary features often equal x
    x = rng.normal(size=7).astype(np.float32)
    x[5:] = 1.0
    x[2] = background[3, 2]  # equal to one row: a null player there
    explainer = ExactShapley(f, background)
    phi, base_value, fx = explainer.shap_values(x)
    reference, base = brute_force_shapley(f, x, background)
    np.testing.assert_allclose(phi, reference, atol=1e-9)
    assert base_value == pytest.approx(base, abs=1e-12)
    assert abs(base_value + phi.sum() - fx) < 1e-12
    assert fx == pytest.approx(float(f(x[None])[0]), abs=1e-12)


def test_a_feature_the_model_ignores_gets_zero() -> None:
    rng = np.random.default_rng(0)
    background = rng.normal(size=(5, 4)).astype(np.float32)

    def f(z):
        return np.sin(z[:, 0]) + z[:, 1] * z[:, 2]

    phi, _, _ = ExactShapley(f, background).shap_values(rng.normal(size=4))
    assert phi[3] == pytest.approx(0.0, abs=1e-12)


def test_input_equal_to_the_background_has_no_contributions() -> None:
    background = np.ones((1, 3), dtype=np.float32)
    phi, _, fx = ExactShapley(lambda z: z.sum(axis=1), background).shap_values(np.ones(3))
    assert np.all(phi == 0.0) and fx == 3.0


def test_refuses_too_many_players() -> None:
    explainer = ExactShapley(lambda z: z.sum(axis=1), np.zeros((1, 6)), max_players=4)
    with pytest.raises(ValueError, match="differs"):
        explainer.shap_values(np.ones(6))


@pytest.mark.parametrize("k", [1, 2, 5])
def test_shapley_matrix_rows_sum_to_the_grand_coalition(k: int) -> None:
    from rec_env.agents.explain.shapley import shapley_matrix

    matrix = shapley_matrix(k)
    totals = matrix.sum(axis=1)  # Σ_j C[t, j]: +1 on the grand coalition, -1 on the empty one
    expected = np.zeros(1 << k)
    expected[0], expected[-1] = -1.0, 1.0
    np.testing.assert_allclose(totals, expected, atol=1e-12)


def test_large_games_are_split_into_chunks(monkeypatch) -> None:
    from rec_env.agents.explain import shapley

    monkeypatch.setattr(shapley, "MAX_COALITIONS_PER_CHUNK", 8)
    rng = np.random.default_rng(3)
    f = mlp(3, 5)
    background = rng.normal(size=(4, 5)).astype(np.float32)
    x = rng.normal(size=5).astype(np.float32)
    phi, base, _ = ExactShapley(f, background).shap_values(x)
    reference, ref_base = brute_force_shapley(f, x, background)
    np.testing.assert_allclose(phi, reference, atol=1e-9)
    assert base == pytest.approx(ref_base, abs=1e-12)
