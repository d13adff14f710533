"""Reward expressions: safe parsing into a linear form, evaluation and expected rewards."""

from __future__ import annotations

import numpy as np
import pytest

from rec_env.datasets.reward_spec import RewardSpec, RewardTerm
from rec_env.errors import ConfigError

ACTIONS = ("none", "promo", "coupon")


def test_profit_expression_parses_into_the_linear_form():
    spec = RewardSpec.parse("10*purchase - 0.15*treated + 2")
    assert spec.constant == 2.0
    assert spec.terms == (RewardTerm("purchase"),)
    assert spec.coefficients == (10.0,)
    assert spec.treated == -0.15
    assert spec.columns == ("purchase",)
    assert str(spec) == "reward = 2 + 10·purchase − 0.15·[action ≠ control]"


def test_terms_merge_scale_and_divide():
    spec = RewardSpec.parse("(purchase + purchase)/4 - -(spend*0.5) + 3*(visits >= 2)")
    assert dict(zip(spec.terms, spec.coefficients, strict=True)) == {
        RewardTerm("purchase"): 0.5,
        RewardTerm("spend"): 0.5,
        RewardTerm("visits", ">=", 2.0): 3.0,
    }
    # A literal on the left is mirrored: "0 < spend" is "spend > 0".
    assert RewardSpec.parse("0 < spend").terms == (RewardTerm("spend", ">", 0.0),)
    assert RewardSpec.parse("purchase - purchase").terms == ()


def test_evaluate_with_treated_costs_and_a_text_comparison():
    spec = RewardSpec.parse(
        "10*purchase - cost[action] - 0.1*treated + (status == 'vip')",
        costs={"promo": 0.5, "coupon": 2.0},
    )
    outcomes = {
        "purchase": np.array([1.0, 0.0, 1.0, 0.0]),
        "status": np.array(["vip", "new", "new", "vip"]),
    }
    actions = np.array([0, 1, 2, 2])
    rewards = spec.evaluate(outcomes, actions, ACTIONS, control="none")
    # Offsets: none 0 (no cost given, control), promo -0.5 - 0.1, coupon -2 - 0.1.
    np.testing.assert_allclose(rewards, [11.0, -0.6, 7.9, -1.1])
    np.testing.assert_allclose(spec.action_offsets(ACTIONS, "none"), [0.0, -0.6, -2.1])


def test_expected_rewards_turn_a_probability_into_expected_profit():
    spec = RewardSpec.parse("10*purchase - 0.15*treated")
    p_purchase = np.array([[0.02, 0.05, 0.01], [0.1, 0.1, 0.1]])  # (n, n_actions)
    expected = spec.expected_rewards(p_purchase, ACTIONS, control="none")
    np.testing.assert_allclose(expected, [[0.2, 0.35, -0.05], [1.0, 0.85, 0.85]])
    with pytest.raises(ValueError, match=r"term_means must have shape \(n, 3, 1\)"):
        spec.expected_rewards(np.zeros((2, 2)), ACTIONS, control="none")


def test_treated_without_control_and_missing_costs_are_errors():
    with pytest.raises(ConfigError, match=r"uses 'treated'.*no control action is set"):
        RewardSpec.parse("purchase - treated").action_offsets(ACTIONS, None)
    spec = RewardSpec.parse("purchase - cost[action]", costs={"promo": 1.0})
    with pytest.raises(ConfigError, match="costs has no entry for: coupon"):
        spec.action_offsets(ACTIONS, "none")
    with pytest.raises(ConfigError, match="uses cost\\[action\\] but no costs are given"):
        RewardSpec.parse("purchase - cost[action]")


@pytest.mark.parametrize(
    ("expression", "token", "why"),
    [
        ("purchase * spend", "purchase * spend", "multiplies two outcomes"),
        ("purchase ** 2", "purchase ** 2", "not allowed"),
        ("spend / purchase", "spend / purchase", "divides by something other"),
        ("cost[0]", "cost[0]", "the only subscript is cost[action]"),
        ("10*purchase - action", "action", "is reserved"),
        ("spend > 'a'", "spend > 'a'", "orders text"),
        ("1 < spend < 5", "1 < spend < 5", "not one comparison"),
        ("abs(spend)", "abs(spend)", "not allowed (Call)"),
    ],
)
def test_invalid_expressions_name_the_token_and_what_is_allowed(expression, token, why):
    with pytest.raises(ConfigError) as error:
        RewardSpec.parse(expression)
    message = str(error.value)
    assert f"reward {expression!r}" in message
    assert repr(token) in message
    assert why in message
    assert "allowed: numbers, column names" in message


@pytest.mark.parametrize(
    "attack",
    [
        "__import__('os').system('echo pwned')",
        "().__class__.__bases__[0].__subclasses__()",
        "(lambda: 1)()",
        "[x for x in ()]",
        "open('/etc/passwd')",
        "purchase.__class__",
        "f'{purchase}'",
    ],
)
def test_unsafe_expressions_are_refused_without_evaluation(attack, capfd):
    with pytest.raises(ConfigError, match=r"is not allowed|not a valid expression"):
        RewardSpec.parse(attack)
    assert "pwned" not in capfd.readouterr().out


def test_syntax_errors_and_columns_are_checked():
    with pytest.raises(ConfigError, match=r"reward '10 \*' is not a valid expression"):
        RewardSpec.parse("10 * ")
    with pytest.raises(ConfigError, match="'purchse' is not a column of the log"):
        RewardSpec.parse("10*purchse", columns=["purchase", "spend"])
    # A column that is not a Python name can still be the whole reward.
    spec = RewardSpec.parse("net revenue", columns=["net revenue"])
    assert spec.terms == (RewardTerm("net revenue"),)
    with pytest.raises(ConfigError, match="not a valid expression"):
        RewardSpec.parse("net revenue")


def test_round_trip_through_a_dict():
    spec = RewardSpec.parse("0.3*spend - cost[action]", costs={"promo": 0.1})
    again = RewardSpec.from_dict(spec.to_dict())
    assert again == spec
