"""The policy interface, baselines, evaluation, run directories and comparisons."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from rec_env import build_model
from rec_env.agents import evaluate
from rec_env.agents.base import Policy
from rec_env.agents.baselines import (
    ContactCooldown,
    FixedActionPolicy,
    FlagTargetedPolicy,
    MyopicOracle,
    RandomPolicy,
    RuleBasedPolicy,
)
from rec_env.agents.evaluation.compare import compare, write_outputs
from rec_env.agents.registry import BASELINES, check_algorithm, make_baseline
from rec_env.agents.runs import RunInfo, load_run, policy_digests, write_run_info
from rec_env.rollout import Cohort


def random_masks(n: int, n_actions: int, seed: int = 0) -> np.ndarray:
    masks = np.random.default_rng(seed).random((n, n_actions)) < 0.5
    masks[:, 0] = True
    return masks


def baseline_policies(model) -> list[Policy]:
    n = model.actions.n_actions
    return [
        RandomPolicy(n, random_state=0),
        FixedActionPolicy(n, 5),
        RuleBasedPolicy.from_catalog(model.actions),
        FlagTargetedPolicy(n, "discount_sensitive", 4),
        ContactCooldown(FixedActionPolicy(n, 13), 0),
    ]


def test_agents_package_does_not_import_torch() -> None:
    code = "import sys, rec_env.agents; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("deterministic", [True, False])
def test_baselines_respect_masks(model, deterministic) -> None:
    cohort = Cohort(model, 1000, seed=0)
    obs = cohort.observation()
    masks = random_masks(1000, 16)
    oracle = MyopicOracle(16)
    oracle.set_env(cohort)
    for policy in [*baseline_policies(model), oracle]:
        probs = policy.action_probabilities(obs, masks)
        assert np.allclose(probs.sum(axis=1), 1.0)
        assert np.all(probs[~masks] == 0.0), policy.algorithm
        actions = policy.predict(obs, masks, deterministic)
        assert masks[np.arange(1000), actions].all(), policy.algorithm


def test_myopic_oracle_picks_the_best_expected_action(model) -> None:
    cohort = Cohort(model, 500, seed=1)
    oracle = MyopicOracle(16)
    with pytest.raises(RuntimeError, match="set_env"):
        oracle.predict(cohort.observation())
    oracle.set_env(cohort)
    masks = cohort.action_masks()
    actions = oracle.predict(cohort.observation(), masks)
    expected = np.where(masks, cohort.expected_rewards(), -np.inf)
    assert np.array_equal(expected[np.arange(500), actions], expected.max(axis=1))


def test_save_load_round_trip(model, tmp_path) -> None:
    obs = Cohort(model, 300, seed=2).observation()
    for i, policy in enumerate(baseline_policies(model)[1:4]):
        policy.save(tmp_path / str(i))
        loaded = type(policy).load(tmp_path / str(i))
        assert np.array_equal(loaded.predict(obs), policy.predict(obs))
    with pytest.raises(ValueError, match="not a"):
        RandomPolicy.load(tmp_path / "0")


def test_evaluate_reports_cis_and_oracle_share() -> None:
    result = evaluate(RandomPolicy(16, random_state=0), {}, 2000, seed=3)
    profit = result.kpis["profit_per_customer"]
    assert profit.ci > 0 and profit.low < profit.mean < profit.high
    assert 0.2 < result.oracle_share < 1.0
    assert abs(sum(result.action_distribution.values()) - 1.0) < 1e-9
    assert 0 < result.action_entropy <= np.log(16) + 1e-9
    again = evaluate(RandomPolicy(16, random_state=0), {}, 2000, seed=3)
    assert again.kpis == result.kpis
    json.dumps(result.to_dict())


def test_registry_names() -> None:
    assert check_algorithm("Maskable-PPO") == "maskable_ppo"
    with pytest.raises(ValueError, match="choose one of"):
        check_algorithm("sarsa")
    model = build_model()
    for name in BASELINES:
        assert isinstance(make_baseline(name, model, 0, evaluation_customers=200), Policy)


def test_best_fixed_comes_from_the_baselines_not_from_a_study_script() -> None:
    code = (
        "import sys; from rec_env import build_model; "
        "from rec_env.agents.registry import make_baseline; "
        "make_baseline('best_fixed', build_model(), 0, evaluation_customers=50); "
        "print('rec_env.agents.evaluation.sequential' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def fake_run(tmp_path, policy: Policy):
    policy.save(tmp_path)
    write_run_info(
        tmp_path,
        RunInfo(
            algorithm=policy.algorithm,
            env_id="rec_env/Recommendation-v0",
            env={},
            feature_names=[],
            action_names=list(policy.action_names),
            hyperparameters={},
            seed=0,
            recenv_version="0",
            **policy_digests(tmp_path, policy),
        ),
    )
    return tmp_path


def test_load_run_checks_the_model_hash(tmp_path) -> None:
    run = fake_run(tmp_path, FixedActionPolicy(16, 3))
    policy, info = load_run(run)
    assert isinstance(policy, FixedActionPolicy) and info.algorithm == "fixed"
    (run / "policy.json").write_text((run / "policy.json").read_text().replace("3", "4"))
    with pytest.raises(ValueError, match="SHA-256"):
        load_run(run)
    with pytest.raises(ValueError, match="no such run"):
        load_run(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"run\.json"):
        load_run(tmp_path / "empty")


def test_compare_writes_table_csv_json_and_plots(tmp_path) -> None:
    run = fake_run(tmp_path / "run", FixedActionPolicy(16, 13))
    results, contenders = compare([str(run), "random", "oracle", "cooldown"], {}, 1000, seed=0)
    assert [r.policy for r in results][1:] == ["random", "oracle", "cooldown"]
    paths = write_outputs(results, contenders, tmp_path / "out")
    assert {p.name for p in paths} == {
        "comparison.csv",
        "comparison.json",
        "kpis.png",
        "learning_curves.png",
    }
    assert all(p.stat().st_size > 0 for p in paths)
    rows = (tmp_path / "out" / "comparison.csv").read_text().splitlines()
    assert len(rows) == 5 and "profit_per_customer_ci95" in rows[0]
    with pytest.raises(ValueError, match="no such run"):
        compare(["runs/does-not-exist"], {}, 100)
    with pytest.raises(ValueError, match="trained first"):
        compare(["ppo"], {}, 100)


def test_a_loaded_policy_continues_its_random_stream(tmp_path) -> None:
    policy = RandomPolicy(16, random_state=5)
    obs = np.zeros((50, 16), dtype=np.float32)
    policy.predict(obs)
    policy.save(tmp_path)
    expected = policy.predict(obs)
    assert np.array_equal(RandomPolicy.load(tmp_path).predict(obs), expected)
