"""``recenv ope`` on the decision log of ``recenv serve`` (SQLite, Parquet and CSV)."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from cli_checks import assert_bad_input
from typer.testing import CliRunner

from rec_env import build_model
from rec_env.agents.base import uniform_over_allowed
from rec_env.agents.baselines import FixedActionPolicy, RandomPolicy
from rec_env.agents.ope import ESTIMATORS, evaluate_policy
from rec_env.agents.ope.simulation import simulate_logged_data
from rec_env.agents.runs import RunInfo, policy_digests, write_run_info
from rec_env.cli.main import app
from rec_env.datasets.decision_log import read_decision_log
from rec_env.serve.decision_log import DecisionLog

runner = CliRunner()
N_DECISIONS, N_UNREWARDED = 2_000, 150


def write_policy_run(directory, action_names, action: int) -> None:
    """A run directory holding a fixed-action policy, as ``recenv train`` would write it."""
    policy = FixedActionPolicy(len(action_names), action, action_names=tuple(action_names))
    policy.save(directory)
    write_run_info(directory, RunInfo(
        algorithm="fixed", env_id="rec_env/Recommendation-v0", env={}, feature_names=[],
        action_names=list(action_names),
        hyperparameters={}, seed=0, recenv_version="test", **policy_digests(directory, policy),
    ))  # fmt: skip


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A decision log of uniformly random decisions with rewards for all but 150 of them."""
    root = tmp_path_factory.mktemp("ope")
    model = build_model("default", "profit")
    names = model.actions.names
    data, _ = simulate_logged_data(model, RandomPolicy(len(names)), N_DECISIONS, seed=3)
    log = DecisionLog(root / "decisions.sqlite")
    log.register_model("random-1", "random", "0" * 64, names)
    probabilities = uniform_over_allowed(data.n, data.n_actions, data.action_masks)
    ids = []
    for rows in np.array_split(np.arange(data.n), 3):  # three requests
        ids += log.log_decisions("random-1", 0, data.contexts[rows], data.action_masks[rows],
                                 probabilities[rows], data.actions[rows])  # fmt: skip
    for event_id, reward in zip(ids[N_UNREWARDED:], data.rewards[N_UNREWARDED:], strict=True):
        log.record_reward(event_id, float(reward))
    log.close()
    run = root / "run"
    write_policy_run(run, names, names.index("discount_15_email"))
    for suffix in ("parquet", "csv"):
        out = root / f"decisions.{suffix}"
        result = runner.invoke(app, ["log", "export", "--db", str(log.path), "--out", str(out)])
        assert result.exit_code == 0, result.output
    return root, data.subset(np.arange(N_UNREWARDED, data.n)), run


def ope(*args: str):
    return runner.invoke(app, ["ope", *args, "--n-bootstrap", "200"])


@pytest.mark.parametrize("log_name", ["decisions.sqlite", "decisions.parquet", "decisions.csv"])
def test_ope_agrees_with_the_library_on_every_log_format(served, log_name) -> None:
    root, rewarded, run = served
    result = ope("--log", str(root / log_name), "--policy", str(run), "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["decisions"] == N_DECISIONS
    assert report["skipped_without_reward"] == N_UNREWARDED
    assert report["with_reward"] == N_DECISIONS - N_UNREWARDED
    target = FixedActionPolicy(rewarded.n_actions, rewarded.action_names.index("discount_15_email"))
    expected = evaluate_policy(
        rewarded,
        target.action_probabilities(rewarded.contexts, rewarded.action_masks),
        [cls(n_bootstrap=200) for cls in ESTIMATORS.values()],
    )
    for got, want in zip(report["estimates"], expected, strict=True):
        assert got["estimator"] == want.estimator
        for key in ("value", "ci_low", "ci_high", "effective_sample_size", "max_weight"):
            assert got[key] == pytest.approx(getattr(want, key), rel=1e-9), key


def test_ope_prints_every_estimator_with_its_interval(served) -> None:
    root, _, run = served
    result = ope("--log", str(root / "decisions.sqlite"), "--policy", str(run),
                 "--max-weight", "10")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert f"{N_UNREWARDED} skipped (no reward yet)" in result.stdout
    for label in ("IPS", "IPS_CLIP10", "SNIPS", "DM", "DR", "95% CI", "ESS", "max weight"):
        assert label in result.stdout


def test_read_decision_log_maps_actions_by_name(served) -> None:
    root, rewarded, _ = served
    names = rewarded.action_names
    reordered = read_decision_log(root / "decisions.parquet", names[::-1]).data
    assert reordered.n == rewarded.n
    np.testing.assert_array_equal(reordered.actions, len(names) - 1 - rewarded.actions)
    np.testing.assert_array_equal(reordered.action_masks, rewarded.action_masks[:, ::-1])
    np.testing.assert_allclose(reordered.contexts, rewarded.contexts)


def test_ope_bad_input_is_one_line_and_exit_2(served, tmp_path) -> None:
    root, _, run = served
    log = str(root / "decisions.csv")
    assert_bad_input(ope("--log", str(tmp_path / "none.sqlite"), "--policy", str(run)),
                     "no such decision log")  # fmt: skip
    assert_bad_input(ope("--log", str(root / "x.json"), "--policy", str(run)), "unknown", ".csv")
    assert_bad_input(ope("--log", log, "--policy", str(tmp_path / "none")), "no such run")
    assert_bad_input(ope("--log", log, "--policy", str(run), "--max-weight", "0"), "--max-weight")
    assert_bad_input(runner.invoke(app, ["ope", "--log", log, "--policy", str(run),
                                         "--n-bootstrap", "1"]), "--n-bootstrap")  # fmt: skip
    other = tmp_path / "other_run"
    write_policy_run(other, ["no_action", "coupon"], 1)
    assert_bad_input(ope("--log", log, "--policy", str(other)), "outside the policy's catalog")

    with open(log, newline="") as handle:
        rows = list(csv.DictReader(handle))
    columns = list(rows[0])

    def edited(name: str, change) -> str:
        path = tmp_path / name
        with path.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=[c for c in columns if c in rows[0]])
            writer.writeheader()
            for i, row in enumerate(rows):
                writer.writerow(change(i, dict(row)))
        return str(path)

    def blank_propensity(i, row):
        row["propensity"] = "" if i == 500 else row["propensity"]
        return row

    def zero_propensity(i, row):
        row["propensity"] = "0" if i == 600 else row["propensity"]
        return row

    def no_recency(i, row):
        row.pop("recency")
        return row

    missing = edited("missing.csv", blank_propensity)
    assert_bad_input(ope("--log", missing, "--policy", str(run)), "propensities are missing")
    zero = edited("zero.csv", zero_propensity)
    assert_bad_input(ope("--log", zero, "--policy", str(run)), "propensities must be > 0")
    columns.remove("recency")
    assert_bad_input(ope("--log", edited("short.csv", no_recency), "--policy", str(run)),
                     "no column 'recency'")  # fmt: skip
    (tmp_path / "junk.parquet").write_text("not parquet")
    assert_bad_input(ope("--log", str(tmp_path / "junk.parquet"), "--policy", str(run)),
                     "cannot read it as parquet")  # fmt: skip


def test_a_log_without_rewards_is_refused(tmp_path) -> None:
    log = DecisionLog(tmp_path / "empty.db")
    names = ("no_action", "email")
    log.register_model("v1", "random", "0" * 64, names)
    log.log_decisions("v1", 0, np.zeros((3, 16)), np.ones((3, 2), bool),
                      np.full((3, 2), 0.5), np.array([0, 1, 1]))  # fmt: skip
    log.close()
    write_policy_run(tmp_path / "run", names, 1)
    result = ope("--log", str(tmp_path / "empty.db"), "--policy", str(tmp_path / "run"))
    assert_bad_input(result, "none of the 3 decisions has a reward yet")


def test_a_default_reward_after_the_window_counts_the_decisions_without_one(
    served, tmp_path
) -> None:
    """Marketing logs reward only buyers: past the window, no reward means the default."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from rec_env.datasets.decision_log import RewardDefault

    root, _, run = served
    table = pq.read_table(root / "decisions.parquet")
    created = table.column("created_at").to_numpy(zero_copy_only=False).copy()
    unrewarded = np.flatnonzero(np.isnan(table.column("reward").to_numpy(zero_copy_only=False)))
    assert unrewarded.size == N_UNREWARDED
    old = unrewarded[:100]
    created[old] -= np.timedelta64(10, "D")  # these decisions' 7-day window is over
    index = table.column_names.index("created_at")
    aged = table.set_column(index, "created_at", pa.array(created, type=table.schema[index].type))
    path = tmp_path / "aged.parquet"
    pq.write_table(aged, path)
    names = build_model("default", "profit").actions.names
    loaded = read_decision_log(path, names, default_reward=RewardDefault(0.0, 7 * 86400.0))
    assert (loaded.n_default_reward, loaded.n_without_reward) == (100, N_UNREWARDED - 100)
    assert loaded.data.n == N_DECISIONS - N_UNREWARDED + 100
    everything = read_decision_log(path, names, default_reward=RewardDefault(-1.5))
    assert everything.n_default_reward == N_UNREWARDED and everything.n_without_reward == 0
    assert np.sum(everything.data.rewards == -1.5) >= N_UNREWARDED
    result = ope("--log", str(path), "--policy", str(run), "--default-reward", "0",
                 "--window", "7d", "--json")  # fmt: skip
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["given_default_reward"] == 100 and payload["skipped_without_reward"] == 50
    assert payload["with_reward"] == loaded.data.n and payload["window_seconds"] == 604800
    printed = ope("--log", str(path), "--policy", str(run), "--default-reward", "0",
                  "--window", "7d")  # fmt: skip
    assert "100 given the default reward 0 after the 7d window" in printed.stdout
    assert_bad_input(ope("--log", str(path), "--policy", str(run), "--window", "7d"),
                     "--window", "--default-reward")  # fmt: skip
    assert_bad_input(ope("--log", str(path), "--policy", str(run), "--default-reward", "0",
                         "--window", "7 days"), "--window", "7d")  # fmt: skip


def test_ope_takes_the_other_estimators_and_shows_their_diagnostics(served) -> None:
    root, _, run = served
    log = str(root / "decisions.parquet")
    result = ope("--log", log, "--policy", str(run), "--estimators", "ips,sndr,switch_dr,dros",
                 "--json")  # fmt: skip
    assert result.exit_code == 0, result.output
    estimates = json.loads(result.stdout)["estimates"]
    assert [e["estimator"].split("_")[0] for e in estimates][:2] == ["ips", "sndr"]
    assert len(estimates) == 4 and all("correction_share" in e for e in estimates)
    printed = ope("--log", log, "--policy", str(run), "--estimators", "dr,sndr")
    assert printed.exit_code == 0 and "SNDR" in printed.stdout
    assert "unsupported mass: 0.0%" in printed.stdout
    assert "weighted residuals: DR " in printed.stdout and ", SNDR " in printed.stdout
    assert_bad_input(ope("--log", log, "--policy", str(run), "--estimators", "ips,magic"),
                     "--estimators", "magic", "switch_dr")  # fmt: skip
