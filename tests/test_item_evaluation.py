"""Evaluation and comparison in the item and slate worlds (issue 11, section 5)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from rec_env.agents import evaluate
from rec_env.agents.evaluation.compare import compare
from rec_env.agents.evaluation.item_kpis import ItemRecorder
from rec_env.agents.evaluation.item_metrics import ndcg_at_k
from rec_env.agents.registry import make_baseline
from rec_env.rollout import Cohort, run_cohort, run_slate_cohort
from rec_env.settings import EnvSettings

ITEM = EnvSettings(world="item", horizon=8)
SLATE = EnvSettings(world="slate", horizon=4)
ITEM_KPIS = {
    "click_through_rate",
    "message_conversion_rate",
    "ndcg_at_1",
    "hit_rate_at_1",
    "precision_at_1",
    "history_diversity",
    "novelty",
}
STRATEGY_KPIS = {
    "profit_per_customer",
    "reward_per_customer",
    "revenue_per_customer",
    "discount_cost_per_customer",
    "conversion_rate",
    "purchases_per_customer",
    "contacts_per_customer",
    "unsubscribe_rate",
    "churn_rate",
}


@pytest.fixture(scope="module")
def item_model():
    return ITEM.build_model()


@pytest.fixture(scope="module")
def item_results(item_model):
    names = ("random", "popular", "popular_category", "oracle")
    return {
        name: evaluate(make_baseline(name, item_model, 1), ITEM, 400, seed=2, name=name)
        for name in names
    }


def test_item_evaluation_reports_every_metric_with_a_confidence_interval(item_results) -> None:
    result = item_results["random"]
    assert set(result.kpis) == STRATEGY_KPIS | ITEM_KPIS
    for name in ITEM_KPIS | {"profit_per_customer", "revenue_per_customer", "conversion_rate"}:
        kpi = result.kpis[name]
        assert math.isfinite(kpi.mean) and kpi.ci > 0, name
    assert result.kpis["click_through_rate"].mean < 0.2
    assert 0.0 < result.catalog_metrics["exposure_gini"] < 0.5
    assert (
        result.catalog_metrics["ranking_k"] == 1
        and result.catalog_metrics["relevant_products"] == 10
    )
    data = json.loads(json.dumps(result.to_dict()))
    assert data["catalog_metrics"]["catalog_coverage"] == result.catalog_metrics["catalog_coverage"]
    assert data["settings"]["world"] == "item"
    row = result.row()
    assert {"ndcg_at_1_ci95", "novelty", "catalog_coverage", "exposure_gini"} <= set(row)
    assert 0.0 < result.oracle_share < 1.0


def test_item_metrics_rank_the_baselines_sensibly(item_results) -> None:
    kpis = {name: r.kpis for name, r in item_results.items()}
    catalog = {name: r.catalog_metrics for name, r in item_results.items()}
    # the myopic oracle sends each customer's best allowed product: always among the top 10
    assert kpis["oracle"]["ndcg_at_1"].mean > 0.99 > kpis["random"]["ndcg_at_1"].mean + 0.5
    assert catalog["random"]["catalog_coverage"] > catalog["popular"]["catalog_coverage"]
    assert catalog["random"]["exposure_gini"] < catalog["popular"]["exposure_gini"]
    assert kpis["popular"]["novelty"].high < kpis["random"]["novelty"].low
    diversity = {name: k["history_diversity"].mean for name, k in kpis.items()}
    assert diversity["popular_category"] < 0.2 < diversity["random"]  # one category vs many


def test_the_same_seed_gives_the_same_item_evaluation(item_model, item_results) -> None:
    again = evaluate(make_baseline("random", item_model, 1), ITEM, 400, seed=2, name="random")
    assert again.to_dict() == item_results["random"].to_dict()
    other = evaluate(make_baseline("random", item_model, 1), ITEM, 400, seed=3)
    assert other.kpis["profit_per_customer"] != again.kpis["profit_per_customer"]


def test_a_policy_that_recommends_nothing_has_undefined_item_metrics(item_model) -> None:
    result = evaluate(make_baseline("no_action", item_model), ITEM, 100, compare_to_oracle=False)
    assert math.isnan(result.kpis["ndcg_at_1"].mean)
    assert math.isnan(result.kpis["click_through_rate"].mean)
    assert result.catalog_metrics["catalog_coverage"] == 0.0


def test_ranking_metrics_are_taken_against_the_utilities_at_decision_time(item_model) -> None:
    policy = make_baseline("item_similarity", item_model, min_days_between_contacts=None)
    recorder = ItemRecorder(item_model, 300, 1, k=1)
    run_cohort(item_model, policy, 300, 1, seed=4, observer=recorder)
    cohort = Cohort(item_model, 300, seed=4)  # the same customers, before the step
    actions = policy.predict(cohort.observation(), cohort.action_masks())
    products = item_model.actions.product[actions]
    utility = item_model.utilities(cohort.batch)
    allowed = item_model.allowed_products(cohort.batch)
    utility = np.where(allowed, utility, utility.min(axis=1, keepdims=True) - 1.0)
    totals = recorder.totals()
    delivered = totals.messages > 0
    assert delivered.sum() > 200
    expected = ndcg_at_k(products[delivered, None], utility[delivered], 1, n_relevant=10)
    assert np.allclose(totals.ranking["ndcg"][delivered], expected)
    assert np.all(totals.ranking["ndcg"][~delivered] == 0.0)


def test_the_observer_does_not_change_the_rollout(item_model) -> None:
    policy = make_baseline("random", item_model, 5)
    plain = run_cohort(item_model, policy, 200, 6, seed=7)
    policy = make_baseline("random", item_model, 5)
    observed = run_cohort(
        item_model, policy, 200, 6, seed=7, observer=ItemRecorder(item_model, 200, 6, 1)
    )
    for name in ("profit", "purchases", "contacts", "churned", "action_counts"):
        assert np.array_equal(getattr(plain, name), getattr(observed, name)), name


def test_strategy_evaluations_have_no_item_metrics() -> None:
    result = evaluate(make_baseline("random", EnvSettings().build_model()), {}, 200, seed=1)
    assert set(result.kpis) == STRATEGY_KPIS
    assert result.catalog_metrics == {} and "catalog_metrics" not in result.to_dict()


def test_slate_evaluation_reports_slate_metrics() -> None:
    model = SLATE.build_model()
    result = evaluate(
        make_baseline("popular_category", model), SLATE, 150, seed=1, compare_to_oracle=False
    )
    assert {"ndcg_at_4", "hit_rate_at_4", "precision_at_4", "intra_list_diversity"} <= set(
        result.kpis
    )
    assert result.catalog_metrics["ranking_k"] == 4
    assert 0.0 <= result.kpis["intra_list_diversity"].mean < 0.2  # one category per slate
    assert set(result.action_distribution) <= {
        "no_action",
        "slate:email",
        "slate:sms",
        "slate:push",
    }
    with pytest.raises(ValueError, match="frozen"):
        evaluate(make_baseline("popular", model), SLATE, 10, learn=True)


class _PopularityScores:
    """A scoring-vector policy (as an SB3 ``Box`` policy would be): popularity, by e-mail."""

    def __init__(self, model) -> None:
        self.vector = np.zeros(model.action_dim)
        e = model.embeddings.shape[1]
        self.vector[e - 1] = 1.0  # the standardised log popularity column
        self.vector[e + 1] = 1.0  # e-mail

    def predict(self, obs, action_masks=None, deterministic=True):
        assert action_masks is None
        return np.tile(self.vector, (obs.shape[0], 1))


def test_the_slate_rollout_decodes_scoring_vectors() -> None:
    model = SLATE.build_model()
    decided = []

    class Observer(ItemRecorder):
        def on_decision(self, cohort, slates, channels, alive) -> None:
            allowed = model.allowed_products(cohort.batch)
            decided.append((slates.copy(), channels.copy(), allowed))

    run_slate_cohort(
        model, _PopularityScores(model), 100, 3, seed=2, observer=Observer(model, 100, 3, 4)
    )
    popularity = model.products.popularity
    for slates, channels, allowed in decided:
        assert np.all((channels == 0) | (channels == 3))
        sent = channels == 0
        expected = np.argsort(-np.where(allowed, popularity, -1.0), axis=1, kind="stable")[:, :4]
        assert np.array_equal(slates[sent], expected[sent])


def test_compare_refuses_baselines_of_another_world() -> None:
    with pytest.raises(ValueError, match="makes no sense in the item world"):
        compare(["popular", "rule"], ITEM, 20)
    results, _ = compare(["popular", "diverse_oracle"], ITEM.replace(horizon=2), 50, seed=1)
    assert [r.policy for r in results] == ["popular", "diverse_oracle"]
    assert all("ndcg_at_1" in r.kpis for r in results)
