"""Exact interventional Shapley values: local accuracy and agreement with brute force."""

from __future__ import annotations

import itertools
import math

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
    result = ExactShapley(f, background).shap_values(x)
    reference, base = brute_force_shapley(f, x, background)
    np.testing.assert_allclose(result.values, reference, atol=1e-9)
    assert result.base_value == pytest.approx(base, abs=1e-12)
    assert abs(result.base_value + result.values.sum() - result.output) < 1e-12
    assert result.output == pytest.approx(float(f(x[None])[0]), abs=1e-12)
    players = (x[None, :] != background).sum(axis=1)
    assert result.coalitions == int((1 << players).sum())


def test_a_feature_the_model_ignores_gets_zero() -> None:
    rng = np.random.default_rng(0)
    background = rng.normal(size=(5, 4)).astype(np.float32)

    def f(z):
        return np.sin(z[:, 0]) + z[:, 1] * z[:, 2]

    phi = ExactShapley(f, background).shap_values(rng.normal(size=4)).values
    assert phi[3] == pytest.approx(0.0, abs=1e-12)


def test_input_equal_to_the_background_has_no_contributions() -> None:
    background = np.ones((1, 3), dtype=np.float32)
    result = ExactShapley(lambda z: z.sum(axis=1), background).shap_values(np.ones(3))
    assert np.all(result.values == 0.0) and result.output == 3.0


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
    result = ExactShapley(f, background).shap_values(x)
    reference, ref_base = brute_force_shapley(f, x, background)
    np.testing.assert_allclose(result.values, reference, atol=1e-9)
    assert result.base_value == pytest.approx(ref_base, abs=1e-12)


# ---------------------------------------------------------------------------- network engine
FOREIGN = ("visits", "consent_email", "spend", "consent_sms", "tenure", "consent_push", "web")


def small_network(seed: int, widths: tuple[int, ...], activation: str = "relu"):
    """A random scaled MLP on the 7 foreign features; biases spread so units die or stay on."""
    from rec_env.agents.sb3.network import DenseLayer, NumpyNetwork
    from rec_env.scaling import InputScaling

    rng = np.random.default_rng(seed)
    sizes = (len(FOREIGN), *widths)
    layers = []
    for i, (n_in, n_out) in enumerate(itertools.pairwise(sizes)):
        last = i == len(sizes) - 2
        weight = rng.normal(size=(n_in, n_out)).astype(np.float32)
        bias = rng.normal(scale=1.5, size=n_out).astype(np.float32)
        layers.append(DenseLayer(weight, bias, None if last else activation))
    high = np.array([50, 1, 2000, 1, 365, 1, 1], dtype=np.float32)
    return NumpyNetwork(InputScaling.from_bounds(high, "log"), tuple(layers))


def foreign_contexts(seed: int, n: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    obs = np.column_stack(
        [
            rng.integers(0, 4, n),
            rng.random(n) < 0.6,
            rng.gamma(2.0, 50.0, n),
            rng.random(n) < 0.5,
            rng.integers(0, 3, n) * 30.0,
            rng.random(n) < 0.5,
            rng.random(n),
        ]
    )
    return obs.astype(np.float32)


@pytest.mark.parametrize(
    ("widths", "activation", "tile_bits"),
    [
        ((12, 10, 4), "relu", 11),
        ((12, 10, 4), "relu", 2),
        ((12, 4), "relu", 2),
        ((8, 8, 8, 4), "relu", 3),
        ((9, 4), "tanh", 3),
        ((4,), None, 11),
    ],
)
def test_network_engine_matches_brute_force(monkeypatch, widths, activation, tile_bits) -> None:
    """Subset sums, tiles and folded ReLU units change nothing: brute force on 2^7 coalitions."""
    from rec_env.agents.explain import network_shapley
    from rec_env.agents.explain.heads import MaskedSoftmaxHead, SingleOutputHead
    from rec_env.agents.explain.masking import ActionMasking
    from rec_env.agents.explain.network_shapley import NetworkShapley

    monkeypatch.setattr(network_shapley, "TILE_BITS", tile_bits)
    monkeypatch.setattr(network_shapley, "FOLDED_TILE_BITS", min(tile_bits, 8))
    network = small_network(len(widths) + tile_bits, widths, activation or "relu")
    background = foreign_contexts(1, 5)
    x = foreign_contexts(2, 1)[0]
    channel = np.array([3, 0, 1, 2])  # no_action, then one action per channel
    masking = ActionMasking(4, [1, 3, 5], channel)
    excluded = np.array([False, False, True, False])
    engine = NetworkShapley.for_network(network, background)
    for action in (0, 1):
        result = engine.shap_values(x, MaskedSoftmaxHead(action, masking, excluded))
        reference, base = brute_force_shapley(
            lambda z, a=action: network.probabilities(z, masking.allowed(z, excluded))[:, a],
            x,
            background,
        )
        np.testing.assert_allclose(result.values, reference, atol=1e-6)
        assert result.base_value == pytest.approx(base, abs=1e-6)
        assert result.base_value + result.values.sum() == pytest.approx(result.output, abs=1e-12)
    q = engine.shap_values(x, SingleOutputHead(2))
    reference, _ = brute_force_shapley(lambda z: network.outputs(z)[:, 2], x, background)
    np.testing.assert_allclose(q.values, reference, atol=2e-5)
    assert q.output == pytest.approx(float(network.outputs(x)[0, 2]), abs=1e-5)


def test_folding_skips_the_units_no_coalition_can_switch() -> None:
    """Units fixed over a row cost no multiply-adds; the values stay exact."""
    from rec_env.agents.explain.heads import SingleOutputHead
    from rec_env.agents.explain.network_shapley import NetworkShapley

    network = small_network(0, (12, 10, 4))
    background = foreign_contexts(1, 4)
    x = foreign_contexts(2, 1)[0]
    result = NetworkShapley.for_network(network, background).shap_values(x, SingleOutputHead(0))
    first, second, _ = network.layers
    unfolded = result.coalitions * (first.weight.shape[1] * second.weight.shape[1] + 10)
    assert result.multiply_adds < unfolded
    reference, _ = brute_force_shapley(lambda z: network.outputs(z)[:, 0], x, background)
    np.testing.assert_allclose(result.values, reference, atol=2e-5)


@pytest.mark.parametrize("k", [1, 3, 8])
def test_game_shapley_values_equal_the_coefficient_matrix(k: int) -> None:
    from rec_env.agents.explain.shapley import game_shapley_values, shapley_matrix

    values = np.random.default_rng(k).normal(size=1 << k)
    np.testing.assert_allclose(game_shapley_values(values), values @ shapley_matrix(k), atol=1e-12)


def grouped_brute_force(f, x: np.ndarray, background: np.ndarray, groups: np.ndarray):
    """Shapley values of the game whose players are groups, straight from the definition."""
    n = int(groups.max()) + 1
    bits = coalition_bits_of(n)
    features = bits[:, groups]  # (2^G, d): the features each group coalition takes from x
    inputs = np.where(features[:, None, :], x, background[None, :, :])
    v = np.asarray(f(inputs.reshape(-1, x.size)), dtype=np.float64)
    v = v.reshape(1 << n, background.shape[0]).mean(axis=1)
    sizes = bits.sum(axis=1)
    weights = [math.factorial(s) * math.factorial(n - s - 1) / math.factorial(n) for s in range(n)]
    phi = np.zeros(n)
    for g in range(n):
        for t in np.flatnonzero(~bits[:, g]):
            phi[g] += weights[sizes[t]] * (v[t | (1 << g)] - v[t])
    return phi, float(v[0])


def coalition_bits_of(n: int) -> np.ndarray:
    return ((np.arange(1 << n)[:, None] >> np.arange(n)) & 1).astype(bool)


@pytest.mark.parametrize("widths", [(12, 10, 4), (9, 4)])
def test_grouped_players_give_the_shapley_values_of_the_grouped_game(widths) -> None:
    """Groups move their features together; consent features stay alone (they set the mask)."""
    from rec_env.agents.explain.heads import MaskedSoftmaxHead, SingleOutputHead
    from rec_env.agents.explain.masking import ActionMasking
    from rec_env.agents.explain.network_shapley import NetworkShapley

    network = small_network(3, widths)
    background = foreign_contexts(1, 5)
    x = foreign_contexts(2, 1)[0]
    # visits+spend+web form group 0, tenure is 4; the consent features are 1, 2 and 3.
    groups = np.array([0, 1, 0, 2, 4, 3, 0])
    masking = ActionMasking(4, [1, 3, 5], np.array([3, 0, 1, 2]))
    excluded = np.zeros(4, dtype=bool)
    engine = NetworkShapley.for_network(network, background)
    result = engine.shap_values(x, MaskedSoftmaxHead(1, masking, excluded), groups)
    reference, base = grouped_brute_force(
        lambda z: network.probabilities(z, masking.allowed(z, excluded))[:, 1],
        x,
        background,
        groups,
    )
    assert result.values.shape == (5,)
    np.testing.assert_allclose(result.values, reference, atol=1e-6)
    assert result.base_value == pytest.approx(base, abs=1e-6)
    assert result.base_value + result.values.sum() == pytest.approx(result.output, abs=1e-6)
    # One player per feature is the ungrouped game, which differs.
    single = engine.shap_values(x, SingleOutputHead(0), np.arange(7))
    plain = engine.shap_values(x, SingleOutputHead(0))
    np.testing.assert_allclose(single.values, plain.values, atol=1e-9)
    with pytest.raises(ValueError, match="groups of their own"):
        engine.shap_values(
            x, MaskedSoftmaxHead(1, masking, excluded), np.array([0, 0, 1, 2, 3, 4, 5])
        )
