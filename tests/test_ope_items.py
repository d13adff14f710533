"""Off-policy evaluation of item and slate decision logs (schema 3): reading them back, IPS,
SNIPS and DR of single-product runs, whole-slate IPS of slate runs, and ``recenv ope``.

The logs are simulated on a small item world (8 products in 3 categories, 25 actions): an
exploring logging policy with exact propensities serves a cohort for a few cycles through the
service's decision-log writer, and each row also keeps the simulator's exact expected reward of
the served decision, so the target's true value on the same customers is known exactly.
"""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from cli_checks import assert_bad_input
from fastapi.testclient import TestClient
from test_cli_ope import write_policy_run
from typer.testing import CliRunner

from rec_env import ITEM_ENV_ID, SLATE_ENV_ID
from rec_env.agents.base import Policy
from rec_env.agents.baselines import FixedActionPolicy, RandomPolicy
from rec_env.agents.ope import (
    ESTIMATORS,
    SlateIPS,
    evaluate_policy,
    slate_target_probabilities,
)
from rec_env.agents.ope.simulation import epsilon_greedy_probabilities
from rec_env.agents.registry import make_baseline, policy_kwargs
from rec_env.agents.runs import RunInfo, policy_digests, write_run_info
from rec_env.cli.main import app
from rec_env.datasets.decision_log import read_decision_log, read_slate_decision_log
from rec_env.features import CHANNELS, FEATURE_NAMES, consent_columns, consent_masks
from rec_env.item_features import item_features
from rec_env.products import save_products, synthetic_products
from rec_env.serve import ServeSettings, create_app
from rec_env.serve.decision_log import DecisionLog
from rec_env.serve.decision_records import ColumnarDecisions
from rec_env.settings import EnvSettings

runner = CliRunner()
N_CUSTOMERS, N_CYCLES, EPSILON = 2_000, 4, 0.5
N_UNREWARDED = 100
SLATE_SIZE = 2


def product_table(directory: Path, n_products: int) -> str:
    """A small seeded product table (3 categories) saved as YAML."""
    table = synthetic_products(n_products, n_categories=3, seed=0)
    return str(save_products(table, directory / f"products_{n_products}.yaml"))


def write_run(directory: Path, policy: Policy, settings: EnvSettings) -> Path:
    """A run directory for ``policy`` of ``settings``' world, as ``recenv train`` writes it."""
    env_id = {"item": ITEM_ENV_ID, "slate": SLATE_ENV_ID}[settings.world]
    policy.save(directory)
    write_run_info(directory, RunInfo(
        algorithm=policy.algorithm, env_id=env_id, env=settings.to_dict(),
        feature_names=list(policy.features.names), action_names=list(policy.action_names),
        hyperparameters={}, seed=0, recenv_version="test", **policy_digests(directory, policy),
    ))  # fmt: skip
    return directory


def fixed_policy(model, product: int = 0) -> FixedActionPolicy:
    """A loadable item policy: ``product`` by e-mail where allowed, else no message."""
    action = model.actions.names.index(f"{model.products.ids[product]}:email")
    return FixedActionPolicy(model.actions.n_actions, action, 0, **policy_kwargs(model))


def register(log: DecisionLog, model, version: str, slate_size: int | None = None) -> None:
    """Register ``model``'s world with the log, as the service does."""
    log.register_model(
        version, "logging", "0" * 64, model.actions.names, world=model_world(model),
        feature_names=model.feature_names, action_channels=model.actions.channel_names,
        product_ids=model.products.ids, slate_size=slate_size,
    )  # fmt: skip


def model_world(model) -> str:
    return "slate" if hasattr(model, "decode") else "item"


def request_mask(model) -> np.ndarray:
    """``(A,)`` the actions a request allows before consent: no action and products in stock."""
    table = model.actions
    allowed = np.ones(table.n_actions, dtype=bool)
    allowed[1:] = model.products.stock[table.product[1:]] != 0
    return allowed


def log_masks(model, obs: np.ndarray) -> np.ndarray:
    """``(n, A)`` the masks the log records: the request's mask and consent on the channel."""
    channels = np.array([(*CHANNELS, "none").index(c) for c in model.actions.channel_names])
    consent = obs[:, consent_columns(model.feature_names)]
    return request_mask(model) & consent_masks(consent, channels)


def record_rewards(db: Path, event_ids: list[str], rewards: np.ndarray) -> None:
    """Join rewards to logged decisions in one transaction (``DecisionLog.record_reward`` takes
    one at a time: 0.2 ms each, too slow for 8,000)."""
    with closing(sqlite3.connect(db)) as connection, connection:
        requests = connection.execute("SELECT request_id, n FROM requests ORDER BY request_id")
        keys = [(request, position) for request, n in requests for position in range(n)]
        keys = keys[-len(event_ids) :]
        connection.executemany(
            "INSERT INTO rewards (event_id, request_id, position, reward, received_at) "
            "VALUES (?, ?, ?, ?, 0.0)",
            [(e, *key, float(r)) for e, key, r in zip(event_ids, keys, rewards, strict=True)],
        )


def sample(probabilities: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    cumulative = probabilities.cumsum(axis=1)
    draws = rng.random(probabilities.shape[0]) * cumulative[:, -1]
    return np.minimum((cumulative <= draws[:, None]).sum(axis=1), probabilities.shape[1] - 1)


# ---------------------------------------------------------------------------- single products
@dataclass
class ItemLog:
    """A simulated item decision log and what the simulator knows about it."""

    db: Path
    settings: EnvSettings
    model: object
    target: Policy
    contexts: np.ndarray
    actions: np.ndarray
    propensities: np.ndarray
    rewards: np.ndarray
    expected: np.ndarray  # (n, A) exact expected reward of every action, before the step
    truth_logging: float

    def truth(self, policy: Policy) -> float:
        """The policy's exact value on the logged customers: mean of sum_a pi(a | x) q(x, a)."""
        masks = log_masks(self.model, self.contexts)
        return float(np.mean(np.sum(policy.action_probabilities(self.contexts, masks)
                                    * self.expected, axis=1)))  # fmt: skip

    @property
    def served_expected(self) -> np.ndarray:
        """``(n,)`` exact expected reward of each served action."""
        return self.expected[np.arange(self.actions.size), self.actions]


@pytest.fixture(scope="module")
def item_world(tmp_path_factory) -> tuple[EnvSettings, object]:
    """The small item world: 8 products in 3 categories (25 actions, 16 + 3 × 3 features)."""
    root = tmp_path_factory.mktemp("item-world")
    settings = EnvSettings(world="item", products=product_table(root, 8))
    return settings, settings.build_model()


def simulate_item_log(
    db: Path, settings: EnvSettings, model, n_customers: int, n_cycles: int, seed: int = 11
) -> ItemLog:
    """ε-greedy logging around "no message" (ε = 0.5), item similarity as the target."""
    base = make_baseline("no_action", model)
    target = make_baseline("item_similarity", model, min_days_between_contacts=None)
    log = DecisionLog(db)
    register(log, model, "logging-1")
    rng = np.random.default_rng(seed)
    batch = model.new_batch(n_customers)
    model.draw_customers(batch, np.arange(n_customers), rng)
    rows: dict[str, list[np.ndarray]] = {k: [] for k in ("x", "a", "p", "r", "q", "l")}
    ids: list[str] = []
    for _ in range(n_cycles):
        obs = model.observe(batch).astype(np.float64)
        masks = log_masks(model, obs)
        probabilities = epsilon_greedy_probabilities(base, obs, masks, EPSILON)
        actions = sample(probabilities, rng)
        q = model.expected_rewards(batch)  # exact, before the step
        propensities = probabilities[np.arange(n_customers), actions]
        decisions = ColumnarDecisions(actions.astype(np.int32), propensities, request_mask(model))
        ids += log.log_columnar("logging-1", 0, obs, decisions)
        outcome = model.step(batch, actions, rng)
        for key, value in zip(
            rows,
            (obs, actions, propensities, outcome.reward, q, np.sum(probabilities * q, axis=1)),
            strict=True,
        ):  # fmt: skip
            rows[key].append(value)
    x, a, p, r, q, lg = (np.concatenate(v) for v in rows.values())
    log.close()
    record_rewards(db, ids[N_UNREWARDED:], r[N_UNREWARDED:])
    kept = slice(N_UNREWARDED, None)
    return ItemLog(
        log.path, settings, model, target, x[kept], a[kept], p[kept], r[kept], q[kept],
        float(lg[kept].mean()),
    )  # fmt: skip


@pytest.fixture(scope="module")
def item_log(item_world, tmp_path_factory) -> ItemLog:
    """2,000 customers × 4 cycles: enough for intervals that tell target from logging."""
    db = tmp_path_factory.mktemp("item-ope") / "items.sqlite"
    return simulate_item_log(db, *item_world, N_CUSTOMERS, N_CYCLES)


@pytest.fixture(scope="module")
def small_item_log(item_world, tmp_path_factory) -> ItemLog:
    """200 customers × 2 cycles, for the command line."""
    db = tmp_path_factory.mktemp("item-cli") / "items.sqlite"
    return simulate_item_log(db, *item_world, 200, 2)


def read_items(log: ItemLog, path: Path | None = None):
    model = log.model
    return read_decision_log(
        path or log.db, model.actions.names, feature_names=model.feature_names, world="item"
    )


@pytest.fixture(scope="module")
def item_data(item_log):
    """The item log as read back for an item target of its world."""
    return read_items(item_log)


def test_an_item_log_reads_back_its_products_propensities_and_features(item_log, item_data) -> None:
    loaded = item_data
    data, model = loaded.data, item_log.model
    assert loaded.n_decisions == N_CUSTOMERS * N_CYCLES
    assert loaded.n_without_reward == N_UNREWARDED
    categories = model.products.category_names
    assert data.feature_names == tuple(f.name for f in item_features(categories))
    assert data.feature_names[:16] == FEATURE_NAMES and len(data.feature_names) > 16
    np.testing.assert_array_equal(data.contexts, item_log.contexts)
    np.testing.assert_array_equal(data.actions, item_log.actions)
    np.testing.assert_array_equal(data.propensities, item_log.propensities)
    np.testing.assert_array_equal(data.rewards, item_log.rewards)
    np.testing.assert_array_equal(data.action_masks, log_masks(model, item_log.contexts))
    # the action index is the item action table's: 1 + (product * 3 + channel) * offers + offer
    sent = data.actions > 0
    assert sent.any() and (data.actions == 0).any()
    product, channel = np.divmod(data.actions[sent] - 1, len(CHANNELS))
    np.testing.assert_array_equal(model.actions.product[data.actions[sent]], product)
    names = np.array(model.actions.names)[data.actions[sent]]
    ids, channel_names = np.array(model.products.ids)[product], np.array(CHANNELS)[channel]
    assert (names == np.char.add(np.char.add(ids, ":"), channel_names)).all()


def test_ips_snips_and_dr_of_item_policies_cover_their_true_values(item_log, item_data) -> None:
    """Rewards = the exact expected reward of each served action (E[r | x, a], all IPS needs),
    so the intervals are tight enough to tell the target from the logging policy and one
    product from another: a wrong action index, propensity or feature order shows."""
    data = item_data.data.with_rewards(item_log.served_expected)
    model = item_log.model
    email = [model.actions.names.index(f"{p}:email") for p in model.products.ids]
    by_value = np.argsort(item_log.expected[:, email].mean(axis=0))
    best, worst = fixed_policy(model, by_value[-1]), fixed_policy(model, by_value[0])
    estimators = [cls(n_bootstrap=400) for cls in ESTIMATORS.values()]
    for target, other in ((item_log.target, None), (best, worst)):
        truth = item_log.truth(target)
        probabilities = target.action_probabilities(data.contexts, data.action_masks)
        for result in evaluate_policy(data, probabilities, estimators):
            if result.estimator == "dm":  # biased by its reward model; no coverage promised
                continue
            assert result.ci_low <= truth <= result.ci_high, (target.algorithm, result)
            if result.estimator in ("snips", "dr"):  # the tighter ones
                assert not result.ci_low <= item_log.truth_logging <= result.ci_high, result
                if other is not None:
                    assert not result.ci_low <= item_log.truth(other) <= result.ci_high, result
    # with the sampled rewards the intervals are wide (rare purchases), and still cover it
    target = item_log.target.action_probabilities(data.contexts, data.action_masks)
    sampled = evaluate_policy(item_data.data, target, [ESTIMATORS["dr"](n_bootstrap=400)])
    assert sampled[0].ci_low <= item_log.truth(item_log.target) <= sampled[0].ci_high


def test_recenv_ope_evaluates_an_item_run_on_an_item_log(small_item_log, tmp_path) -> None:
    target = fixed_policy(small_item_log.model, product=3)
    run = write_run(tmp_path / "run", target, small_item_log.settings)
    export = tmp_path / "items.parquet"
    exported = runner.invoke(
        app, ["log", "export", "--db", str(small_item_log.db), "--out", str(export)]
    )
    assert exported.exit_code == 0, exported.output
    data = read_items(small_item_log).data
    expected = evaluate_policy(
        data,
        target.action_probabilities(data.contexts, data.action_masks),
        [cls(n_bootstrap=200) for cls in ESTIMATORS.values()],
    )
    for log in (small_item_log.db, export):
        result = runner.invoke(app, ["ope", "--log", str(log), "--policy", str(run), "--json",
                                     "--n-bootstrap", "200"])  # fmt: skip
        assert result.exit_code == 0, result.output
        report = json.loads(result.stdout)
        assert report["world"] == "item" and report["with_reward"] == data.n
        for got, want in zip(report["estimates"], expected, strict=True):
            assert got["estimator"] == want.estimator
            assert got["value"] == pytest.approx(want.value, rel=1e-9)
            assert got["ci_high"] == pytest.approx(want.ci_high, rel=1e-9)


def test_recenv_ope_refuses_a_log_of_another_world_or_product_table(
    small_item_log, tmp_path
) -> None:
    item_run = write_run(
        tmp_path / "item", fixed_policy(small_item_log.model), small_item_log.settings
    )
    strategy_db = tmp_path / "strategy.db"
    log = DecisionLog(strategy_db)
    names = ("no_action", "email")
    log.register_model("v1", "random", "0" * 64, names)
    ids = log.log_decisions("v1", 0, np.zeros((3, 16)), np.ones((3, 2), bool),
                            np.full((3, 2), 0.5), np.array([0, 1, 1]))  # fmt: skip
    log.record_reward(ids[0], 1.0)
    log.close()
    ope = ["ope", "--n-bootstrap", "50", "--log"]
    result = runner.invoke(app, [*ope, str(strategy_db), "--policy", str(item_run)])
    assert_bad_input(result, "served by a model of the strategy world", "a run of the item world")
    strategy_run = tmp_path / "strategy"
    write_policy_run(strategy_run, names, 1)
    result = runner.invoke(app, [*ope, str(small_item_log.db), "--policy", str(strategy_run)])
    assert_bad_input(result, "served by a model of the item world", "a run of the strategy world")
    for n_products, fragment in ((7, "outside the target's action table"),
                                 (9, "products the log's model did not have")):  # fmt: skip
        settings = EnvSettings(world="item", products=product_table(tmp_path, n_products))
        target = fixed_policy(settings.build_model())
        run = write_run(tmp_path / f"run{n_products}", target, settings)
        result = runner.invoke(app, [*ope, str(small_item_log.db), "--policy", str(run)])
        assert_bad_input(result, fragment)


def test_the_reader_names_missing_item_features(small_item_log, tmp_path) -> None:
    import pyarrow.parquet as pq

    from rec_env.datasets.decision_log_tables import iter_decision_tables

    table = next(iter_decision_tables(small_item_log.db))
    name = small_item_log.model.feature_names[-1]
    pq.write_table(table.drop_columns(["world", name]), tmp_path / "old.parquet")
    with pytest.raises(ValueError, match=f"no column '{name}'.*item features"):
        read_items(small_item_log, tmp_path / "old.parquet")


def test_a_served_item_log_reads_back_what_the_service_answered(item_log, tmp_path) -> None:
    """Round trip through ``recenv serve`` (TestClient): decisions, propensities, features."""
    model = item_log.model
    run = write_run(tmp_path / "fixed", fixed_policy(model, product=2), item_log.settings)
    category = model.products.category_names[1]
    columns = {
        "consent_email": [1, 1, 0, 1, 1, 0] * 10,
        "consent_sms": [0, 1, 1, 1, 0, 0] * 10,
        "recency": np.linspace(1, 300, 60).round(1).tolist(),
        f"purchases_{category}": np.linspace(0, 5, 60).round(2).tolist(),
    }
    db = tmp_path / "served.db"
    settings = ServeSettings(model_dir=run, db=db, seed=0, explain=False)
    with TestClient(create_app(settings)) as client:
        body = client.post("/v1/recommend/batch", json={"columns": columns}).json()
        rewarded = list(range(0, 60, 2))
        for i in rewarded:
            answer = client.post(f"/v1/events/{body['event_ids'][i]}/reward", json={"reward": i})
            assert answer.status_code == 200, answer.text
    loaded = read_decision_log(db, model.actions.names, feature_names=model.feature_names,
                               world="item")  # fmt: skip
    data = loaded.data
    assert loaded.n_decisions == 60 and data.n == len(rewarded)
    names = np.array(model.actions.names)
    assert names[data.actions].tolist() == [body["actions"][i] for i in rewarded]
    assert data.propensities.tolist() == [body["propensities"][i] for i in rewarded]
    assert data.rewards.tolist() == [float(i) for i in rewarded]
    for i, row in zip(rewarded, data.contexts, strict=True):
        product = body["products"][i]
        served = names[data.actions][rewarded.index(i)]
        assert product is None or served.startswith(f"{product}:")
        features = dict(zip(data.feature_names, row.tolist(), strict=True))
        assert features[f"purchases_{category}"] == columns[f"purchases_{category}"][i]
        assert features["consent_email"] == columns["consent_email"][i]
        assert features[f"days_since_{category}"] == 365.0  # not given: no history
    assert ((data.propensities > 0) & (data.propensities <= 1)).all()


# ---------------------------------------------------------------------------- slates
@dataclass
class SlateLog:
    db: Path
    settings: EnvSettings
    model: object
    target: Policy
    slates: np.ndarray
    channels: np.ndarray
    propensities: np.ndarray
    positions: np.ndarray
    rewards: np.ndarray
    expected: np.ndarray
    truth_target: float


def uniform_slates(model, obs: np.ndarray, rng: np.random.Generator):
    """A uniformly random message: a consented channel, then an ordered slate of available
    products; its whole and per-position probabilities (no consent: nothing, probability 1)."""
    n, k = obs.shape[0], SLATE_SIZE
    consent = obs[:, consent_columns(model.feature_names)] > 0.5
    available = model.products.stock != 0
    keys = np.where(available, rng.random((n, available.size)), -np.inf)
    slates = np.argsort(-keys, axis=1)[:, :k]
    n_consented = consent.sum(axis=1)
    pick = np.floor(rng.random(n) * np.maximum(n_consented, 1)).astype(int)
    channels = np.array([np.flatnonzero(c)[j] if c.any() else len(CHANNELS)
                         for c, j in zip(consent, pick, strict=True)])  # fmt: skip
    positions = 1.0 / (available.sum() - np.arange(k))[None, :].repeat(n, axis=0)
    propensities = positions.prod(axis=1) / np.maximum(n_consented, 1)
    silent = n_consented == 0
    slates[silent], positions[silent], propensities[silent] = -1, np.nan, 1.0
    return slates, channels, propensities, positions


@pytest.fixture(scope="module")
def slate_log(tmp_path_factory) -> SlateLog:
    """Uniformly random slates of 2 of 6 products for 1,500 customers × 3 cycles."""
    return simulate_slate_log(tmp_path_factory.mktemp("slate-ope"), 1_500, seed=5)


def simulate_slate_log(root: Path, n: int, seed: int) -> SlateLog:
    """Uniform slate logging (:func:`uniform_slates`), the popular slate as the target."""
    settings = EnvSettings(world="slate", products=product_table(root, 6), slate_size=SLATE_SIZE)
    model = settings.build_model()
    target = make_baseline("popular", model, min_days_between_contacts=None)
    log = DecisionLog(root / "slates.sqlite")
    register(log, model, "logging-1", SLATE_SIZE)
    rng = np.random.default_rng(seed)
    batch = model.new_batch(n)
    model.draw_customers(batch, np.arange(n), rng)
    parts: list[tuple[np.ndarray, ...]] = []
    event_ids: list[str] = []
    for _ in range(3):
        obs = model.observe(batch).astype(np.float64)
        slates, channels, propensities, positions = uniform_slates(model, obs, rng)
        discounts = np.zeros(n)
        sent = channels < len(CHANNELS)
        lead = np.where(sent, 1 + slates[:, 0] * len(CHANNELS) + channels, 0)
        expected = model.expected_slate_rewards(batch, slates, channels, discounts)
        allowed = np.broadcast_to(model.products.stock != 0, (n, model.products.n_products))
        truth = model.expected_slate_rewards(batch, *target.predict_slates(obs, allowed))
        decisions = ColumnarDecisions(
            lead.astype(np.int32), propensities, request_mask(model), slates.astype(np.int32),
            positions, SLATE_SIZE + 3,
        )  # fmt: skip
        ids = log.log_columnar("logging-1", 0, obs, decisions)
        outcome = model.step_slates(batch, slates, channels, discounts, rng)
        event_ids += ids
        parts.append((slates, channels, propensities, positions, outcome.reward, expected, truth))
    log.close()
    arrays = [np.concatenate(column) for column in zip(*parts, strict=True)]
    record_rewards(log.path, event_ids, arrays[4])
    return SlateLog(log.path, settings, model, target, *arrays[:6], float(arrays[6].mean()))


def read_slates(log: SlateLog):
    model = log.model
    return read_slate_decision_log(
        log.db, model.actions, model.products.ids, model.feature_names, SLATE_SIZE
    )


def test_a_slate_log_reads_back_its_slates_and_position_propensities(slate_log) -> None:
    data = read_slates(slate_log).data
    np.testing.assert_array_equal(data.slates, slate_log.slates)
    np.testing.assert_array_equal(data.channels, slate_log.channels)
    np.testing.assert_array_equal(data.propensities, slate_log.propensities)
    np.testing.assert_array_equal(data.position_propensities, slate_log.positions)
    np.testing.assert_array_equal(data.rewards, slate_log.rewards)
    sent = data.sent
    assert sent.any() and (~sent).any()
    np.testing.assert_allclose(
        data.position_propensities[sent].prod(axis=1) / data.propensities[sent],
        consent_count(data, slate_log.model)[sent],
    )


def consent_count(data, model) -> np.ndarray:
    return (data.contexts[:, consent_columns(model.feature_names)] > 0.5).sum(axis=1)


def test_whole_slate_ips_is_the_target_s_slate_probability_over_the_logged_one(slate_log) -> None:
    data = read_slates(slate_log).data
    model = slate_log.model
    target = slate_target_probabilities(slate_log.target, data, model.actions.offers)
    assert set(np.unique(target)) == {0.0, 1.0} and target.sum() > 30
    ips = SlateIPS(n_bootstrap=400).estimate(data, target)
    assert ips.value == pytest.approx(np.mean(target / data.propensities * data.rewards))
    exact = data.with_rewards(slate_log.expected)  # E[r | x, s]: no purchase noise
    for normalized in (False, True):
        estimate = SlateIPS(self_normalized=normalized, n_bootstrap=400).estimate(exact, target)
        assert estimate.ci_low <= slate_log.truth_target <= estimate.ci_high, estimate
    with pytest.raises(ValueError, match="cannot give the probability of a slate"):
        slate_target_probabilities(RandomPolicy(model.actions.n_actions), data, (0.0,))


def test_recenv_ope_evaluates_a_slate_run_with_whole_slate_ips(
    slate_log, tmp_path, monkeypatch
) -> None:
    """A fixed-action run cannot give a slate's probability: refused. The slate baseline can,
    but only a PPO actor is a loadable slate run (too slow to train here), so the run's loader
    hands the command the baseline."""
    import rec_env.agents.runs as runs

    run = write_run(tmp_path / "run", fixed_policy(slate_log.model), slate_log.settings)
    command = ["ope", "--log", str(slate_log.db), "--policy", str(run), "--n-bootstrap", "200"]
    assert_bad_input(runner.invoke(app, command), "cannot give the probability of a slate")
    assert_bad_input(runner.invoke(app, [*command, "--max-weight", "5"]), "--max-weight")
    real_load_run = runs.load_run
    monkeypatch.setattr(runs, "load_run", lambda d: (slate_log.target, real_load_run(d)[1]))
    result = runner.invoke(app, [*command, "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["world"] == "slate"
    assert [e["estimator"] for e in report["estimates"]] == ["slate_ips", "slate_snips"]
    data = read_slates(slate_log).data
    target = slate_target_probabilities(slate_log.target, data, (0.0,))
    want = SlateIPS(n_bootstrap=200).estimate(data, target)
    assert report["estimates"][0]["value"] == pytest.approx(want.value, rel=1e-9)
    assert report["estimates"][0]["ci_low"] == pytest.approx(want.ci_low, rel=1e-9)
    item_run = write_run(tmp_path / "item", fixed_policy(slate_log.model), EnvSettings(
        world="item", products=slate_log.settings.products))  # fmt: skip
    result = runner.invoke(app, ["ope", "--log", str(slate_log.db), "--policy", str(item_run)])
    assert_bad_input(result, "model of the slate world", "a run of the item world")
