"""The offline pipeline (split, learn, evaluate, report) and the synthetic campaign's truth."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest

from rec_env.agents.offline.pipeline import (
    RESULTS_FILE,
    evaluate_saved_run,
    read_run_log,
    run_offline,
    split_rows,
    write_run,
)
from rec_env.agents.offline.synthetic import SYNTHETIC_ACTIONS, synthetic_campaign
from rec_env.datasets import LogSpec
from rec_env.features import FEATURE_NAMES


@pytest.fixture(scope="module")
def campaign_run(tmp_path_factory: pytest.TempPathFactory) -> tuple:
    """A synthetic campaign written to CSV, read back and run through the pipeline."""
    campaign = synthetic_campaign(12000, seed=3)
    path = campaign.write_csv(tmp_path_factory.mktemp("synthetic") / "campaign.csv")
    spec = LogSpec.from_args(
        path,
        action="action",
        reward="reward",
        features=list(FEATURE_NAMES),
        propensity="p",
        actions=list(SYNTHETIC_ACTIONS),
        control="no_action",
    )
    run = run_offline(
        read_run_log(spec),
        learners=["reward_model"],
        n_bootstrap=60,
        seed=0,
        estimators=("ips", "snips", "dm", "dr", "sndr"),
    )
    return campaign, run


def test_split_is_stratified_seeded_and_complete() -> None:
    actions = np.repeat([0, 1, 2], [100, 60, 40])
    train, test = split_rows(actions, 0.25, seed=5)
    assert np.array_equal(np.sort(np.r_[train, test]), np.arange(200))
    assert np.bincount(actions[test]).tolist() == [25, 15, 10]
    again = split_rows(actions, 0.25, seed=5)
    assert np.array_equal(again[1], test)
    assert not np.array_equal(split_rows(actions, 0.25, seed=6)[1], test)
    with pytest.raises(ValueError, match="test-share"):
        split_rows(actions, 1.0, seed=0)


def test_synthetic_campaign_logs_known_propensities() -> None:
    campaign = synthetic_campaign(2000, seed=0)
    assert campaign.contexts.shape == (campaign.n, 16)
    assert 1500 < campaign.n < 2000  # customers without e-mail consent are left out
    shares = np.bincount(campaign.actions, minlength=4) / campaign.n
    assert np.allclose(shares, [0.4, 0.2, 0.2, 0.2], atol=0.04)
    assert np.allclose(campaign.propensities, np.array([0.4, 0.2, 0.2, 0.2])[campaign.actions])


def test_estimates_cover_the_synthetic_truth(campaign_run: tuple) -> None:
    campaign, run = campaign_run
    test_rows = run.test_rows
    truths = dict(
        zip(
            (f"always {a}" for a in SYNTHETIC_ACTIONS),
            campaign.true_constant_values(test_rows),
            strict=True,
        )
    )
    truths["reward_model"] = campaign.true_value(run.policies["reward_model"], test_rows)
    entries = {e["name"]: e for e in run.results["policies"]}
    dr = {
        name: next(r for r in entries[name]["estimates"] if r["estimator"] == "dr")
        for name in truths
    }
    learned = dr["reward_model"]
    assert learned["ci_low"] <= truths["reward_model"] <= learned["ci_high"], learned
    # Five 95 % intervals: one may miss by chance, none by much (1.5 half-widths).
    for name, truth in truths.items():
        half = (dr[name]["ci_high"] - dr[name]["ci_low"]) / 2
        assert abs(dr[name]["value"] - truth) < 1.5 * half, (name, truth, dr[name])
    # A clear case: the learned policy is really better than doing nothing.
    assert truths["reward_model"] > truths["always no_action"] + 0.003


def test_results_hold_every_estimator_and_rank_by_dr(campaign_run: tuple) -> None:
    _, run = campaign_run
    entries = run.results["policies"]
    names = {r["estimator"] for r in entries[0]["estimates"]}
    assert {"ips", "snips", "dm", "dr", "sndr"} <= names
    values = [next(r["value"] for r in e["estimates"] if r["estimator"] == "dr") for e in entries]
    assert values == sorted(values, reverse=True)
    assert run.results["best"] == entries[0]["name"]
    assert {e["kind"] for e in entries} == {"constant", "random", "learned"}
    assert "uplift_at_30" in next(e for e in entries if e["kind"] == "learned")["targeting"]


def test_saved_run_evaluates_on_another_log(campaign_run: tuple, tmp_path: Path) -> None:
    _, run = campaign_run
    write_run(run, tmp_path / "run")
    other = synthetic_campaign(800, seed=11).write_csv(tmp_path / "other.csv")
    results = evaluate_saved_run(tmp_path / "run", other, n_bootstrap=20, estimators=("dr",))
    assert results["n_test"] == sum(1 for _ in other.open()) - 1
    assert {e["name"] for e in results["policies"]} >= {"reward_model", "always no_action"}
    with pytest.raises(ValueError, match="no saved policy 'ipw'"):
        evaluate_saved_run(tmp_path / "run", other, learners=["ipw"], n_bootstrap=20)


def test_a_policy_that_cannot_be_saved_is_reported(campaign_run: tuple, tmp_path: Path) -> None:
    _, run = campaign_run
    policy = run.policies["reward_model"]

    def refuse(directory: Path) -> None:
        raise ValueError("cannot save without pickle")

    policy._save_state = refuse  # type: ignore[method-assign]
    try:
        write_run(run, tmp_path / "run")
    finally:
        del policy._save_state
        run.results["unsaved"].clear()
    saved = json.loads((tmp_path / "run" / RESULTS_FILE).read_text())
    assert saved["unsaved"] == {"reward_model": "cannot save without pickle"}
    assert not (tmp_path / "run" / "policies" / "reward_model").exists()


def test_non_randomised_log_gets_a_fitted_propensity_model(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=400)
    treated = rng.random(400) < 1 / (1 + np.exp(-2 * x))  # assignment depends on x
    lines = ["x,promo,y"] + [
        f"{a:.4f},{'yes' if t else 'no'},{int(rng.random() < 0.3)}"
        for a, t in zip(x, treated, strict=True)
    ]
    (tmp_path / "log.csv").write_text("\n".join(lines) + "\n")
    spec = LogSpec.from_args(
        tmp_path / "log.csv",
        action="promo",
        reward="y",
        features="x",
        propensity="model",
        randomised=False,
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        log = read_run_log(spec)
    assert any("randomi" in str(w.message).lower() for w in caught)
    p = log.data.propensities
    assert ((p > 0) & (p <= 1)).all()
    # Treated rows with high x were likely treated: their propensity is high, not 1/2.
    high = (log.data.actions == 1) & (x > 1)
    assert p[high].mean() > 0.75


def test_a_log_of_the_simulators_catalog_gives_servable_runs(tmp_path: Path) -> None:
    from rec_env.agents.baselines import RandomPolicy
    from rec_env.agents.ope.simulation import simulate_logged_data
    from rec_env.agents.runs import load_run
    from rec_env.settings import EnvSettings

    model = EnvSettings().build_model()
    names = list(model.actions.names)
    data, _ = simulate_logged_data(model, RandomPolicy(len(names)), 1500, seed=2)
    lines = [",".join([*FEATURE_NAMES, "action", "p", "reward"])]
    lines += [
        ",".join(
            [
                *(f"{v:.8g}" for v in data.contexts[i]),
                names[data.actions[i]],
                f"{data.propensities[i]:.8g}",
                f"{data.rewards[i]:.8g}",
            ]
        )
        for i in range(data.n)
    ]
    (tmp_path / "log.csv").write_text("\n".join(lines) + "\n")
    spec = LogSpec.from_args(
        tmp_path / "log.csv",
        action="action",
        reward="reward",
        features=list(FEATURE_NAMES),
        propensity="p",
        actions=names,
    )
    run = run_offline(
        read_run_log(spec), learners=["reward_model"], n_bootstrap=10, estimators=("dr",)
    )
    write_run(run, tmp_path / "run")
    policy, info = load_run(tmp_path / "run" / "policies" / "reward_model")
    assert info.action_names == names and info.feature_names == list(FEATURE_NAMES)
    assert np.array_equal(
        policy.predict(data.contexts), run.policies["reward_model"].predict(data.contexts)
    )
    # A log of actions the catalog does not have gets no run.json (serve could not load it).
    campaign = synthetic_campaign(300, seed=0).write_csv(tmp_path / "c.csv")
    renamed = tmp_path / "renamed.csv"
    renamed.write_text(campaign.read_text().replace("discount_10_email", "voucher"))
    actions = [a.replace("discount_10_email", "voucher") for a in SYNTHETIC_ACTIONS]
    spec = spec.model_copy(update={"file": renamed, "actions": actions})
    quick = run_offline(
        read_run_log(spec), learners=["reward_model"], n_bootstrap=10, estimators=("dr",)
    )
    write_run(quick, tmp_path / "renamed")
    assert not (tmp_path / "renamed" / "policies" / "reward_model" / "run.json").exists()


def test_a_log_of_some_catalog_actions_is_served_over_the_catalog(
    campaign_run: tuple, tmp_path: Path
) -> None:
    """The synthetic campaign's four actions: the saved run decides over all 16, safely."""
    from fastapi.testclient import TestClient

    from rec_env.agents.offline.catalog import CatalogPolicy
    from rec_env.agents.runs import load_run
    from rec_env.serve import ServeSettings, create_app

    campaign, run = campaign_run
    write_run(run, tmp_path / "run")
    directory = tmp_path / "run" / "policies" / "reward_model"
    policy, info = load_run(directory)
    assert isinstance(policy, CatalogPolicy) and policy.n_actions == 16
    assert info.action_names == list(policy.action_names)
    learned = run.policies["reward_model"]
    obs = campaign.contexts[:500]
    served = np.asarray(policy.action_names)[policy.predict(obs)]
    assert np.array_equal(served, np.asarray(learned.action_names)[learned.predict(obs)])
    # Whoever forgets the masks: no e-mail consent, no e-mail; the fallback is doing nothing.
    no_email = obs.copy()
    no_email[:, FEATURE_NAMES.index("consent_email")] = 0.0
    assert set(np.asarray(policy.action_names)[policy.predict(no_email)]) == {"no_action"}
    # A caller's mask that forbids the learned choice moves it to another learned action.
    masks = np.ones((len(obs), 16), dtype=bool)
    masks[:, policy.action_names.index("discount_10_email")] = False
    chosen = set(np.asarray(policy.action_names)[policy.predict(obs, masks)])
    assert chosen <= set(SYNTHETIC_ACTIONS) - {"discount_10_email"}
    # Saving again gives the same weights; evaluate reads the learned policy back.
    assert policy.weights_sha256() == info.weights_sha256
    other = synthetic_campaign(400, seed=12).write_csv(tmp_path / "other.csv")
    results = evaluate_saved_run(tmp_path / "run", other, n_bootstrap=10, estimators=("dr",))
    assert "reward_model" in {e["name"] for e in results["policies"]}
    # And the decision service serves it.
    settings = ServeSettings(model_dir=directory, db=tmp_path / "d.db", explain=False, epsilon=0)
    customer = dict(zip(FEATURE_NAMES, (float(v) for v in obs[0]), strict=True))
    with TestClient(create_app(settings)) as client:
        response = client.post("/v1/recommend", json={"features": customer})
    assert response.status_code == 200, response.text
    assert response.json()["action"]["name"] == served[0]
    # Heavy exploration still sends only what the campaign tried.
    settings = settings.model_copy(update={"epsilon": 1.0, "db": tmp_path / "e.db", "seed": 0})
    with TestClient(create_app(settings)) as client:
        names = {
            client.post("/v1/recommend", json={"features": customer}).json()["action"]["name"]
            for _ in range(40)
        }
    assert names <= set(SYNTHETIC_ACTIONS) and len(names) > 1
