"""``recenv offline learn / evaluate / report`` end to end on small logs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from rec_env.cli.main import app
from tests.cli_checks import assert_bad_input

runner = CliRunner()

FAST = [
    "--learners",
    "reward_model,t_learner",
    "--n-bootstrap",
    "20",
    "--no-progress",
    "--estimators",
    "ips,snips,dm,dr",
]


def _write_log(path: Path, n: int, seed: int) -> Path:
    """A two-action promotion log: a numeric and two categorical features, a 0/1 purchase."""
    rng = np.random.default_rng(seed)
    age = rng.integers(18, 80, n)
    channel = rng.choice(["Web", "Phone", "Store"], n)
    region = rng.choice([1, 2, 3], n)  # numbers, declared categorical
    promo = rng.choice(["none", "promo"], n)
    lift = np.where(channel == "Web", 0.25, 0.0) * (promo == "promo")
    purchase = (rng.random(n) < 0.1 + 0.002 * (age - 18) * 0.5 + lift).astype(int)
    lines = ["age,channel,region,promo,purchase"]
    lines += [
        f"{a},{c},{r},{p},{y}"
        for a, c, r, p, y in zip(age, channel, region, promo, purchase, strict=True)
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def _learn(log: Path, out: Path, *extra: str) -> object:
    return runner.invoke(
        app,
        [
            "offline",
            "learn",
            str(log),
            "--action",
            "promo",
            "--reward",
            "10*purchase - 0.15*treated",
            "--features",
            "age,channel,region",
            "--categorical",
            "region",
            "--control",
            "none",
            "--out",
            str(out),
            *FAST,
            *extra,
        ],
    )


@pytest.fixture(scope="module")
def learned(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, object]:
    root = tmp_path_factory.mktemp("offline")
    log = _write_log(root / "campaign.csv", 600, seed=0)
    out = root / "run"
    return log, out, _learn(log, out)


def test_learn_writes_a_complete_run(learned: tuple) -> None:
    _, out, result = learned
    assert result.exit_code == 0, result.output
    assert "do nothing" in result.stdout and "best policy (DR):" in result.stdout
    for name in ("spec.json", "encoder.json", "split.json", "results.json", "results.csv"):
        assert (out / name).is_file(), name
    assert (out / "policy_value.png").is_file() and (out / "qini.png").is_file()
    for learner in ("reward_model", "t_learner"):
        assert (out / "policies" / learner / "state.npz").is_file()
    results = json.loads((out / "results.json").read_text())
    assert results["actions"] == ["none", "promo"] and results["control"] == "none"
    assert "channel=Web" in results["features"] and "region=2" in results["features"]
    names = [e["name"] for e in results["policies"]]
    assert {"always none", "always promo", "random", "reward_model", "t_learner"} == set(names)
    targeting = next(e for e in results["policies"] if e["name"] == "t_learner")["targeting"]
    assert {"uplift_at_30", "qini_coefficient", "auuc", "policy_value_curve"} <= set(targeting)
    low, high = targeting["uplift_at_30_ci"]
    assert low < high and targeting["uplift_at_30_undefined"] >= 0
    for key in ("qini_coefficient", "auuc"):
        low, high = targeting[f"{key}_ci"]
        assert low < high
    assert "uplift@30% (the best-scored 30 %, recommended action vs none), 95% CI:" in result.stdout
    split = json.loads((out / "split.json").read_text())
    assert len(split["train_rows"]) + len(split["test_rows"]) == 600
    # Learned policies are compared with the best constant on the same resamples.
    best_constant = max(
        (e for e in results["policies"] if e["kind"] == "constant"),
        key=lambda e: next(r["value"] for r in e["estimates"] if r["estimator"] == "dr"),
    )
    for entry in results["policies"]:
        gain = entry.get("gain")
        assert (gain is not None) == (entry["kind"] == "learned")
        if gain:
            dr = next(r["value"] for r in entry["estimates"] if r["estimator"] == "dr")
            best = next(r["value"] for r in best_constant["estimates"] if r["estimator"] == "dr")
            assert gain["baseline"] == best_constant["name"]
            assert gain["value"] == pytest.approx(dr - best, abs=1e-9)
            assert gain["ci_low"] <= gain["value"] <= gain["ci_high"]
    assert f"gain over {best_constant['name']}" in result.stdout


def test_same_seed_same_results(learned: tuple, tmp_path: Path) -> None:
    log, out, _ = learned
    again = _learn(log, tmp_path / "again")
    assert again.exit_code == 0, again.output
    assert (tmp_path / "again" / "results.json").read_text() == (out / "results.json").read_text()
    other = _learn(log, tmp_path / "other", "--seed", "1")
    assert other.exit_code == 0, other.output
    assert (tmp_path / "other" / "results.json").read_text() != (out / "results.json").read_text()


def test_evaluate_a_saved_run_on_another_log(learned: tuple, tmp_path: Path) -> None:
    _, out, _ = learned
    other = _write_log(tmp_path / "next_month.csv", 300, seed=1)
    result = runner.invoke(
        app,
        [
            "offline",
            "evaluate",
            str(other),
            "--run",
            str(out),
            "--out",
            str(tmp_path / "e"),
            "--learner",
            "t_learner",
            "--n-bootstrap",
            "20",
            "--no-progress",
            "--estimators",
            "ips,dr",
        ],
    )
    assert result.exit_code == 0, result.output
    results = json.loads((tmp_path / "e" / "results.json").read_text())
    assert results["n_test"] == 300
    assert [e["name"] for e in results["policies"] if e["kind"] == "learned"] == ["t_learner"]


def test_report_prints_and_writes(learned: tuple, tmp_path: Path) -> None:
    _, out, _ = learned
    result = runner.invoke(app, ["offline", "report", str(out), "--out", str(tmp_path / "r")])
    assert result.exit_code == 0, result.output
    assert "t_learner" in result.stdout
    assert (tmp_path / "r" / "results.csv").is_file()


def test_bad_input_is_one_line_and_leaves_nothing(learned: tuple, tmp_path: Path) -> None:
    log, out, _ = learned
    target = tmp_path / "run"
    result = runner.invoke(
        app,
        [
            "offline",
            "learn",
            str(log),
            "--action",
            "promo",
            "--reward",
            "purchase",
            "--features",
            "age,nosuch",
            "--out",
            str(target),
            *FAST,
        ],
    )
    assert_bad_input(result, "nosuch")
    assert not target.exists()
    result = runner.invoke(
        app,
        [
            "offline",
            "learn",
            str(log),
            "--action",
            "promo",
            "--reward",
            "__import__('os')",
            "--features",
            "age",
            "--out",
            str(target),
            *FAST,
        ],
    )
    assert_bad_input(result)
    assert not target.exists()
    result = _learn(log, out)  # exists, no --force
    assert_bad_input(result, "already exists")
    result = _learn(log, target, "--learners", "reward_model,magic")
    assert_bad_input(result, "magic")
    assert not target.exists()


def test_hillstrom_preset_with_a_profit_reward(tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        [
            "offline",
            "learn",
            "--preset",
            "hillstrom",
            "--rows",
            "3000",
            "--reward",
            "0.3*spend - 0.1*treated",
            "--out",
            str(tmp_path / "h"),
            *FAST,
        ],
    )
    assert result.exit_code == 0, result.output
    results = json.loads((tmp_path / "h" / "results.json").read_text())
    assert results["actions"] == ["Mens E-Mail", "Womens E-Mail", "No E-Mail"]
    assert results["n_train"] + results["n_test"] == 3000
    assert "always No E-Mail (do nothing)" in result.stdout.replace("\n", " ") or (
        "(do" in result.stdout
    )
    assert results["propensity"] == "uniform"


def test_the_open_bandit_preset_evaluates_per_position(tmp_path: Path) -> None:
    """Item-level log with positions: every policy is valued at each row's own position."""
    out = tmp_path / "obd"
    result = runner.invoke(
        app,
        ["offline", "learn", "--preset", "obd", "--rows", "3000", "--learners", "reward_model",
         "--n-bootstrap", "20", "--estimators", "ips,dr", "--no-progress", "--out", str(out)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    results = json.loads((out / "results.json").read_text())
    n_actions = len(results["actions"])
    assert n_actions > 40 and len(results["policies"]) == n_actions + 2  # constants, random
    random = next(e for e in results["policies"] if e["name"] == "random")
    ips = next(r for r in random["estimates"] if r["estimator"] == "ips")
    assert ips["mean_weight"] == pytest.approx(1.0, abs=1e-9)  # uniform logging: w = 1
    words = " ".join(result.stdout.split())
    assert f"{n_actions - 3} other constant policies in results.csv" in words
    assert "reward_model:" in words


def test_a_synthetic_campaign_reports_the_true_values(tmp_path: Path) -> None:
    """recenv offline synthetic, then learn with --truth: the truth next to the estimates."""
    log = tmp_path / "campaign.csv"
    made = runner.invoke(app, ["offline", "synthetic", "--customers", "3000", "--out", str(log)])
    assert made.exit_code == 0, made.output
    truth = tmp_path / "campaign.truth.csv"
    assert "--truth" in made.stdout and truth.is_file()
    features = made.stdout.split("--features ")[1].split()[0]
    out = tmp_path / "run"
    args = ["offline", "learn", str(log), "--action", "action", "--reward", "reward",
            "--propensity", "p", "--control", "no_action", "--features", features,
            "--learners", "reward_model", "--truth", str(truth), "--out", str(out),
            *FAST]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    results = json.loads((out / "results.json").read_text())
    test_rows = json.loads((out / "split.json").read_text())["test_rows"]
    expected = np.loadtxt(truth, delimiter=",", skiprows=1)[test_rows]
    by_name = {e["name"]: e for e in results["policies"]}
    assert by_name["always no_action"]["true_value"] == pytest.approx(expected[:, 0].mean())
    assert by_name["random"]["true_value"] == pytest.approx(expected.mean())
    assert 0.0 < by_name["reward_model"]["true_value"] < 0.1
    short = tmp_path / "short.truth.csv"
    short.write_text("\n".join(truth.read_text().splitlines()[:100]) + "\n")
    args[args.index(str(truth))] = str(short)
    args[args.index(str(out))] = str(tmp_path / "other")
    assert_bad_input(runner.invoke(app, args), "truth", "rows")


def test_boosting_policies_are_learned_saved_and_served(tmp_path: Path) -> None:
    """--model boosting: tree policies, saved as arrays, loadable as a served run."""
    from threadpoolctl import threadpool_limits

    from rec_env.agents.offline.trees import TreeEnsembleModel
    from rec_env.agents.runs import load_run

    log = tmp_path / "campaign.csv"
    made = runner.invoke(app, ["offline", "synthetic", "--customers", "1000", "--out", str(log)])
    assert made.exit_code == 0, made.output
    features = made.stdout.split("--features ")[1].split()[0]
    out = tmp_path / "run"
    args = ["offline", "learn", str(log), "--action", "action", "--reward", "reward",
            "--propensity", "p", "--control", "no_action", "--features", features,
            "--n-bootstrap", "10", "--estimators", "dr", "--no-progress",
            "--learners", "reward_model,dr_learner", "--model", "boosting",
            "--out", str(out)]  # fmt: skip
    with threadpool_limits(1):  # tiny boosting fits are slower with threads on a busy machine
        result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    results = json.loads((out / "results.json").read_text())
    assert results["model"] == "boosting" and results["unsaved"] == {}
    for name in ("reward_model", "dr_learner"):
        policy, info = load_run(out / "policies" / name)
        assert info.algorithm == "catalog_subset"
        models = policy.inner.models.values()  # type: ignore[attr-defined]
        assert any(isinstance(m, TreeEnsembleModel) for m in models), name
    args[args.index("boosting")] = "forest"
    assert_bad_input(runner.invoke(app, args), "--model", "ridge or boosting")
