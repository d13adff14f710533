"""Section 5 of the environment spec: the problem is sequential, measured on paired cohorts."""

from __future__ import annotations

import pytest

from rec_env.agents.evaluation.sequential import sequential_evidence


@pytest.fixture(scope="module")
def evidence() -> dict:
    return {c.name: c for c in sequential_evidence(n_customers=20_000, seed=11)}


def test_no_fixed_action_is_best_for_everyone(evidence) -> None:
    c = evidence["heterogeneity"]
    assert c.gap - c.ci > 0 and c.relative_gap > 0.08


def test_contacting_every_cycle_earns_less_than_every_fourth(evidence) -> None:
    c = evidence["over-contact"]
    assert c.gap - c.ci > 0


def test_discounting_everyone_raises_conversion_but_lowers_profit(evidence) -> None:
    c = evidence["discounts"]
    assert c.gap - c.ci > 0
    assert c.conversion_b > 1.1 * c.conversion_a


def test_restraint_beats_the_myopic_oracle(evidence) -> None:
    c = evidence["restraint"]
    assert c.gap - c.ci > 0 and c.relative_gap > 0.08
