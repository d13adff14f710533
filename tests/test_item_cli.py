"""``recenv train/eval/compare/explain --env`` on the item and slate envs (CliRunner, tiny runs).

The runs use a user's product table (``--products``): 24 products in 3 categories, so that a
customer has 16 + 9 features and the exact explanations stay fast.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_checks import assert_bad_input
from typer.testing import CliRunner

import rec_env
from rec_env.agents.runs import read_run_info
from rec_env.cli.main import app
from rec_env.products import save_products, synthetic_products
from rec_env.settings import EnvSettings

runner = CliRunner()
ENVS = {"item": rec_env.ITEM_ENV_ID, "slate": rec_env.SLATE_ENV_ID}
TINY = ["--set", "n_envs=16", "--set", "n_steps=16", "--set", "batch_size=128",
        "--set", "n_epochs=2"]  # fmt: skip


@pytest.fixture(scope="module")
def products(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("catalog") / "products.csv"
    return save_products(synthetic_products(24, n_categories=3, seed=0), path)


@pytest.fixture(scope="module")
def runs(tmp_path_factory, products) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("runs")
    out = {}
    for world, env_id in ENVS.items():
        out[world] = root / world
        result = runner.invoke(
            app,
            ["train", "ppo", "--env", env_id, "--products", str(products), "--steps", "512",
             "--eval-customers", "10", "--final-customers", "20", "--no-progress",
             "--out", str(out[world]), *TINY],
        )  # fmt: skip
        assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="module")
def customer(tmp_path_factory, products) -> Path:
    """A customer with e-mail consent only and some history in the first category."""
    path = tmp_path_factory.mktemp("users") / "shopper.json"
    features = {
        "recency": 20, "frequency": 3, "monetary_value": 55.0, "consent_email": 1,
        "consent_sms": 0, "consent_push": 0, "purchases_category_00": 2.0,
        "days_since_category_00": 12, "recommended_category_01": 4.0,
    }  # fmt: skip
    path.write_text(json.dumps({"customer_id": "shopper", "features": features}))
    return path


@pytest.mark.parametrize("world", ["item", "slate"])
def test_train_writes_the_env_id_and_world(runs, products, world) -> None:
    info = read_run_info(runs[world])
    assert info.env_id == ENVS[world] and info.settings.world == world
    assert info.settings.products == str(products)
    assert len(info.feature_names) == 16 + 3 * 3
    assert info.final_metrics["n_customers"] == 20


@pytest.mark.parametrize("world", ["item", "slate"])
def test_eval_a_run_of_an_item_env(runs, world) -> None:
    result = runner.invoke(app, ["eval", str(runs[world]), "--customers", "40", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["policy"] == "ppo" and data["settings"]["world"] == world
    assert "profit_per_customer" in data["kpis"]


@pytest.mark.parametrize("world", ["item", "slate"])
def test_compare_with_env(runs, products, world, tmp_path) -> None:
    out = tmp_path / "cmp"
    args = ["compare", str(runs[world]), "popular", "oracle", "--env", ENVS[world],
            "--products", str(products), "--customers", "40", "--out", str(out)]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert world in result.stdout and "popular" in result.stdout
    rows = json.loads((out / "comparison.json").read_text())
    assert [row["policy"] for row in rows] == [world, "popular", "oracle"]


def test_compare_refuses_a_run_of_another_env(runs, products, tmp_path) -> None:
    args = ["compare", str(runs["item"]), "--env", rec_env.SLATE_ENV_ID, "--products",
            str(products), "--out", str(tmp_path / "cmp")]  # fmt: skip
    assert_bad_input(runner.invoke(app, args), "trained on", f"--env {rec_env.ITEM_ENV_ID}")


def test_explain_says_which_product_and_why(runs, customer, tmp_path) -> None:
    png = tmp_path / "why.png"
    args = ["explain", str(customer), "--run", str(runs["item"]), "--background", "4",
            "--out", str(png)]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    first = result.stdout.splitlines()[0]
    assert first.startswith("Customer shopper: recommend S")  # a product of the table
    assert "by email" in first  # the only channel with consent
    assert "runner-up:" in result.stdout and "log P(S" in result.stdout
    assert "purchases_category_00 = 2" in result.stdout or "Top contributions" in result.stdout
    assert "6 item history features" in result.stdout  # 9 item features, 3 given
    assert png.stat().st_size > 0


def test_explain_a_slate(runs, customer, tmp_path) -> None:
    png = tmp_path / "why.png"
    args = ["explain", str(customer), "--run", str(runs["slate"]), "--background", "4",
            "--out", str(png)]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "slate" in result.stdout and "best product left out" in result.stdout
    assert "score(S" in result.stdout and png.stat().st_size > 0


def test_explain_by_groups_of_item_features(runs, customer, tmp_path) -> None:
    """--grouping kind: one player per item feature kind, values listed, exact in sum."""
    args = ["explain", str(customer), "--run", str(runs["item"]), "--background", "4",
            "--grouping", "kind", "--top", "30", "--out", str(tmp_path / "k.png")]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    words = " ".join(result.stdout.split())  # the table wraps long lines
    assert "grouped by kind" in words
    assert "purchases_by_category (purchases_category_00 = 2, purchases_category_01 = 0," in words
    assert (
        "purchases_category_00 = 2 raises" not in words
        and "purchases_category_00 = 2 lowers" not in words
    )
    args[args.index("kind")] = "category"
    args[-1] = str(tmp_path / "c.png")
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    words = " ".join(result.stdout.split())
    assert "history_category_00 (purchases_category_00 = 2, recommended_category_00 = 0," in words


def test_explain_refuses_a_bad_grouping(runs, customer, tmp_path) -> None:
    args = ["explain", str(customer), "--run", str(runs["item"]), "--grouping", "topic"]
    assert_bad_input(runner.invoke(app, args), "--grouping", "'topic'")


def test_item_explanations_fall_back_to_coarser_groups(runs, customer) -> None:
    """The finest grouping within the limit; beyond it at the coarsest, too costly."""
    import numpy as np

    from rec_env.agents.explain.background import operating_background
    from rec_env.agents.explain.items import (
        ExplanationTooCostlyError,
        FeatureGroups,
        ItemExplainer,
    )
    from rec_env.agents.runs import load_run

    policy, info = load_run(runs["item"])
    world = info.settings.build_model()
    names = tuple(world.feature_names)
    kinds = FeatureGroups.of(names, "kind")
    assert kinds.names[16:] == (
        "purchases_by_category", "recommended_by_category", "days_since_by_category"
    )  # fmt: skip
    assert FeatureGroups.of(names, "category").names[16:] == tuple(
        f"history_category_0{c}" for c in range(3)
    )
    background = operating_background(4, model=world, seed=0)
    obs = background[:1].copy()
    obs[0, 16:] = 3.0  # differs in every item feature from every background customer
    obs[0, :3] += 1.0
    k = {level: ItemExplainer(policy, world, background).differing_features(obs, level)
         for level in ("feature", "category", "kind")}  # fmt: skip
    assert k["feature"] > max(k["category"], k["kind"])
    explainer = ItemExplainer(policy, world, background, max_features=k["feature"] - 1)
    explained = explainer.explain(obs)
    assert explained.groups.level == "category"  # the first grouping that fits
    assert explained.values.values.shape == (16 + 3,)
    total = explained.values.base_value + explained.values.values.sum()
    assert total == pytest.approx(explained.values.output, abs=1e-5)
    features = ItemExplainer(policy, world, background, max_features=None).explain(obs)
    assert features.values.output == pytest.approx(explained.values.output, abs=1e-5)
    assert not np.allclose(features.values.values[:16], explained.values.values[:16])
    kinds_explained = ItemExplainer(policy, world, background, max_features=None).explain(
        obs, grouping="kind"
    )
    assert kinds_explained.groups.names[16:] == kinds.names[16:]
    assert kinds_explained.values.output == pytest.approx(explained.values.output, abs=1e-5)
    smallest = min(k["category"], k["kind"])
    with pytest.raises(ExplanationTooCostlyError, match="by kind"):
        ItemExplainer(policy, world, background, max_features=smallest - 1).explain(obs)


def test_explain_names_a_bad_item_feature(runs, tmp_path) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"features": {"recency": 3, "purchases_category_01": 99}}))
    result = runner.invoke(app, ["explain", str(path), "--run", str(runs["item"])])
    assert_bad_input(result, "purchases_category_01", "less than or equal to 20")


def test_explain_of_an_item_run_explains_item_actions(runs, customer, tmp_path) -> None:
    args = ["explain", str(customer), "--run", str(runs["item"]), "--background", "2",
            "--action", "S00:sms", "--out", str(tmp_path / "w.png")]  # fmt: skip
    assert_bad_input(runner.invoke(app, args), "S00:sms", "not allowed")


def test_bad_env_is_one_error_line(products, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert_bad_input(runner.invoke(app, ["train", "ppo", "--env", "nope/Env-v0"]), "nope/Env-v0",
                     rec_env.ITEM_ENV_ID)  # fmt: skip
    assert_bad_input(runner.invoke(app, ["compare", "random", "--env", "Item"]), "--env")
    strategy_products = ["train", "ppo", "--products", str(products)]
    assert_bad_input(runner.invoke(app, strategy_products), "--products")
    slate_dqn = ["train", "dqn", "--env", rec_env.SLATE_ENV_ID]
    assert_bad_input(runner.invoke(app, slate_dqn), "slate world")
    bad_table = ["train", "ppo", "--env", rec_env.ITEM_ENV_ID, "--products", "missing.csv"]
    assert_bad_input(runner.invoke(app, bad_table), "missing.csv")
    rule = ["train", "ppo", "--env", rec_env.ITEM_ENV_ID, "--reward-mode", "rule"]
    assert_bad_input(runner.invoke(app, rule), "rule")


def test_settings_of_an_env_id() -> None:
    from rec_env.cli._env_option import env_settings

    assert env_settings(rec_env.ENV_ID) == EnvSettings()
    assert env_settings(rec_env.SLATE_ENV_ID, "x.csv").products == "x.csv"
