"""``recenv score`` and :class:`rec_env.serve.scoring.Scorer`: the weekly campaign list."""

from __future__ import annotations

import csv
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from rec_env.agents.explain import population_background
from rec_env.agents.runs import load_run
from rec_env.agents.training import train
from rec_env.cli.main import app
from rec_env.features import FEATURE_INDEX, FEATURE_NAMES
from rec_env.rules import BusinessRules, compile_rules
from rec_env.serve.scoring import Scorer, holdout_flags, id_hash, score_frame
from tests.cli_checks import assert_bad_input

runner = CliRunner()


@pytest.fixture(scope="module")
def ppo_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "ppo"
    hyperparams = {"n_envs": 16, "n_steps": 16, "batch_size": 128, "n_epochs": 1}
    train("ppo", steps=1_024, out=out, hyperparams=hyperparams, eval_customers=100,
          final_customers=100)  # fmt: skip
    return out


@pytest.fixture(scope="module")
def base() -> tuple[np.ndarray, np.ndarray]:
    features = population_background(3_000, "default", "strategy", seed=0).astype(np.float64)
    # Recent contacts, so that frequency caps have customers to bind.
    features[:, FEATURE_INDEX["contacts_last_30d"]] = np.random.default_rng(0).integers(0, 3, 3_000)
    return np.array([f"c{i:05d}" for i in range(len(features))]), features


def write_customers(path: Path, ids: np.ndarray, features: np.ndarray) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["customer_id", *FEATURE_NAMES])
        for customer, row in zip(ids, features, strict=True):
            writer.writerow([customer, *(repr(float(v)) for v in row)])
    return path


def reference_hash(text: str, seed: int) -> int:
    """The id hash written out in plain Python integers."""
    bits = (1 << 64) - 1

    def mix(h: int) -> int:
        h = ((h ^ (h >> 30)) * 0xBF58476D1CE4E5B9) & bits
        h = ((h ^ (h >> 27)) * 0x94D049BB133111EB) & bits
        return h ^ (h >> 31)

    h = 0xCBF29CE484222325 ^ mix(seed & bits)
    for character in text:
        h = ((h ^ ord(character)) * 0x100000001B3) & bits
    return mix(h)


def test_holdout_is_a_stable_keyed_hash_of_the_id() -> None:
    ids = np.array([f"customer-{i}" for i in range(20_000)], dtype=object)
    held = holdout_flags(ids, 0.05, seed=7)
    assert held.mean() == pytest.approx(0.05, abs=0.005)
    # The same customer is in or out whatever the batch, its order or its neighbours.
    order = np.random.default_rng(0).permutation(ids.size)
    assert np.array_equal(holdout_flags(ids[order], 0.05, seed=7), held[order])
    assert np.array_equal(holdout_flags(ids[:10], 0.05, seed=7), held[:10])
    assert (held != holdout_flags(ids, 0.05, seed=8)).sum() > 1000  # another seed, another set
    assert (holdout_flags(ids, 0.10, seed=7) >= held).all()  # a larger share adds customers
    # The hash is integer arithmetic, the same on every machine: the compiled one is the plain
    # definition, FNV-1a over code points from a keyed offset, then SplitMix64.
    for text in ["c1", "customer-123", "é", "a\u00e9b", "x" * 40]:
        for seed in (0, 1, 2**40 + 3):
            assert int(id_hash(np.array([text]), seed)[0]) == reference_hash(text, seed)
    assert (
        id_hash(np.array(["ab", "ba", "a", "é"]), 1).tolist()
        == id_hash(np.array(["ab", "ba", "a", "é"], dtype=object), 1).tolist()
    )
    assert len(set(id_hash(np.array(["ab", "ba", "a", "a\u00e9"]), 1).tolist())) == 4
    with pytest.raises(ValueError, match="holdout share"):
        holdout_flags(ids, 1.0, 0)


def test_scorer_respects_consent_rules_and_holdout(ppo_run, base) -> None:
    ids, features = base
    policy, info = load_run(ppo_run)
    rules = compile_rules(
        BusinessRules.model_validate(
            {"caps": [{"max_messages": 1}],
             "budgets": [{"name": "d", "offers": ["discount"], "max_messages": 50}],
             "suppression": {"customer_ids": ["c00003", "c00004"]},
             "min_no_action_share": 0.3}
        ),
        info.settings.build_model().actions,
    )  # fmt: skip
    scorer = Scorer.for_run(policy, info, rules=rules, holdout=0.1, seed=3)
    scored = scorer.score(features, ids)
    table = scorer.table
    names = np.array(table.names)
    channel = table.channel[scored.actions]
    consent = features[:, [FEATURE_INDEX[f"consent_{c}"] for c in ("email", "sms", "push")]]
    sent = channel < 3
    assert (consent[np.flatnonzero(sent), channel[sent]] > 0.5).all()  # never without consent
    capped = features[:, FEATURE_INDEX["contacts_last_30d"]] >= 1
    assert capped.sum() > 1000 and not sent[capped].any()  # the cap
    assert not sent[[3, 4]].any() and "suppression" in scored.rules[3]
    assert (np.char.startswith(names[scored.actions].astype(str), "discount")).sum() <= 50
    assert (scored.actions == table.no_action).mean() >= 0.3
    assert (scored.actions[scored.holdout] == table.no_action).all()
    assert (scored.rules[scored.holdout] == "holdout").all()
    assert scored.holdout.mean() == pytest.approx(0.1, abs=0.02)
    assert np.allclose(scored.probabilities.sum(axis=1), 1.0)
    assert ((scored.propensities > 0) & (scored.propensities <= 1)).all()
    # Same seed, same list; another seed draws other actions.
    again = Scorer.for_run(policy, info, rules=rules, holdout=0.1, seed=3).score(features, ids)
    assert np.array_equal(again.actions, scored.actions)
    other = Scorer.for_run(policy, info, rules=rules, holdout=0.1, seed=4).score(features, ids)
    assert not np.array_equal(other.actions, scored.actions)
    # The distributed engines' shape: a DataFrame in, a DataFrame out.
    import pandas as pd

    frame = pd.DataFrame(features, columns=list(FEATURE_NAMES)).assign(customer_id=ids)
    out = score_frame(frame.iloc[:100], Scorer.for_run(policy, info, seed=3), top_k=2)
    assert list(out.columns[:5]) == ["customer_id", "action", "propensity", "holdout", "rules"]
    assert {"top1_action", "top2_probability"} <= set(out.columns) and len(out) == 100


def test_cli_score_writes_and_logs_the_list(ppo_run, base, tmp_path) -> None:
    import pyarrow.parquet as pq

    ids, features = base
    customers = write_customers(tmp_path / "customers.csv", ids[:500], features[:500])
    rules = tmp_path / "rules.yaml"
    rules.write_text("caps: [{min_days_between: 14}]\nmin_no_action_share: 0.2\n")
    out, db = tmp_path / "decisions.parquet", tmp_path / "decisions.db"
    args = ["score", str(customers), "--model", str(ppo_run), "--rules", str(rules),
            "--holdout", "0.1", "--out", str(out), "--db", str(db)]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "500 customers scored" in result.stdout and f"wrote {out}" in result.stdout
    table = pq.read_table(out).to_pandas()
    assert len(table) == 500 and list(table.columns[:3]) == ["customer_id", "event_id", "action"]
    assert table["event_id"].is_unique and table["holdout"].sum() > 20
    assert (table.loc[table["holdout"], "action"] == "no_action").all()
    with sqlite3.connect(db) as connection:
        logged = connection.execute(
            "SELECT event_id, customer_id, propensity, holdout FROM decisions"
        )
        rows = {e: (c, p, bool(h)) for e, c, p, h in logged.fetchall()}
    assert set(rows) == set(table["event_id"])
    # every decision is logged as written: its propensity (forced no-actions: 1) and holdout
    listed = table.set_index("event_id")
    assert [rows[e][0] for e in listed.index] == listed["customer_id"].tolist()
    np.testing.assert_allclose([rows[e][1] for e in listed.index], listed["propensity"])
    assert [rows[e][2] for e in listed.index] == listed["holdout"].tolist()
    assert (listed["propensity"] == 1.0).sum() > listed["holdout"].sum()  # the share forced some
    # --top-k and --no-log, and CSV output.
    csv_out = tmp_path / "top.csv"
    result = runner.invoke(app, [*args[:-4], "--out", str(csv_out), "--no-log", "--top-k", "2"])
    assert result.exit_code == 0, result.output
    header = csv_out.read_text().splitlines()[0].split(",")
    assert "event_id" not in header and "top2_action" in header and "p_no_action" not in header


def test_cli_score_reason_codes(ppo_run, base, tmp_path) -> None:
    import pyarrow.parquet as pq

    ids, features = base
    customers = write_customers(tmp_path / "customers.csv", ids[:5], features[:5])
    out = tmp_path / "d.parquet"
    result = runner.invoke(app, ["score", str(customers), "--model", str(ppo_run), "--out",
                                 str(out), "--no-log", "--explain", "3"])  # fmt: skip
    assert result.exit_code == 0, result.output
    reasons = pq.read_table(out).column("reasons").to_pylist()
    assert all(len(r.split(";")) == 3 for r in reasons)
    assert reasons[0].split(":")[0] in FEATURE_NAMES


def test_cli_score_bad_input_writes_nothing(ppo_run, base, tmp_path) -> None:
    ids, features = base
    out, db = tmp_path / "d.parquet", tmp_path / "d.db"
    good = write_customers(tmp_path / "good.csv", ids[:10], features[:10])
    bad_value = features[:10].copy()
    bad_value[3, FEATURE_INDEX["frequency"]] = -5
    cases = [
        (write_customers(tmp_path / "neg.csv", ids[:10], bad_value), [], "row 4: frequency"),
        (write_customers(tmp_path / "dup.csv", np.array(["a"] * 10), features[:10]), [],
         "customer_id 'a' appears more than once"),
        (tmp_path / "missing.csv", [], "missing.csv: no such file"),
        (good, ["--holdout", "1.5"], "holdout share"),
        (good, ["--top-k", "0"], "--top-k"),
    ]  # fmt: skip
    (tmp_path / "short.csv").write_text("customer_id,recency\nc1,3\n")
    cases.append((tmp_path / "short.csv", [], "frequency"))
    rules = tmp_path / "rules.yaml"
    rules.write_text("caps: [{max_messages: -1}]\n")
    cases.append((good, ["--rules", str(rules)], "caps.0.max_messages"))
    for path, extra, message in cases:
        result = runner.invoke(app, ["score", str(path), "--model", str(ppo_run), "--out",
                                     str(out), "--db", str(db), *extra])  # fmt: skip
        assert_bad_input(result, message)
        assert not out.exists() and not db.exists()


def test_serve_applies_the_same_rules(ppo_run, base, tmp_path) -> None:
    from fastapi.testclient import TestClient

    from rec_env.serve import ServeSettings, create_app

    _, features = base
    rules = tmp_path / "rules.yaml"
    rules.write_text("caps: [{max_messages: 1}]\nsuppression: {customer_ids: [vip-1]}\n")
    settings = ServeSettings(model_dir=ppo_run, db=tmp_path / "d.db", seed=0, explain=False,
                             rules=rules, epsilon=1.0)  # fmt: skip
    capped = features[features[:, FEATURE_INDEX["contacts_last_30d"]] >= 1][:40]
    free = features[(features[:, FEATURE_INDEX["contacts_last_30d"]] < 1)
                    & (features[:, FEATURE_INDEX["consent_email"]] > 0.5)][:40]  # fmt: skip
    assert len(capped) == 40 and len(free) == 40

    def served(client: TestClient, rows: np.ndarray, customer_ids: list[str]) -> list[str]:
        body = {"columns": {n: rows[:, j].tolist() for j, n in enumerate(FEATURE_NAMES)},
                "customer_ids": customer_ids}  # fmt: skip
        response = client.post("/v1/recommend/batch", json=body)
        assert response.status_code == 200, response.text
        return response.json()["actions"]

    with TestClient(create_app(settings)) as client:
        # Uniform exploration (epsilon 1) would message someone if the rules let it.
        assert set(served(client, capped, [f"c{i}" for i in range(40)])) == {"no_action"}
        assert set(served(client, free, ["vip-1"] * 40)) == {"no_action"}
        assert set(served(client, free, [f"c{i}" for i in range(40)])) != {"no_action"}
    bad = tmp_path / "bad.yaml"
    bad.write_text("caps: [{max_messages: x}]\n")
    with (
        pytest.raises(ValueError, match=r"bad\.yaml"),
        TestClient(create_app(settings.model_copy(update={"rules": bad}))),
    ):
        pass


def test_serve_holds_out_the_customers_score_holds_out(ppo_run, base, tmp_path) -> None:
    from fastapi.testclient import TestClient

    from rec_env.serve import ServeSettings, create_app

    ids, features = base
    rows = features[:400]
    expected = holdout_flags(ids[:400], 0.2, 5)
    settings = ServeSettings(model_dir=ppo_run, db=tmp_path / "d.db", seed=0, explain=False,
                             holdout=0.2, holdout_seed=5)  # fmt: skip
    body = {"columns": {n: rows[:, j].tolist() for j, n in enumerate(FEATURE_NAMES)},
            "customer_ids": ids[:400].tolist()}  # fmt: skip
    with TestClient(create_app(settings)) as client:
        batch = client.post("/v1/recommend/batch", json=body).json()
        assert np.array_equal(batch["holdout"], expected) and expected.sum() > 40
        actions = np.array(batch["actions"])
        assert (actions[expected] == "no_action").all()
        assert np.allclose(np.array(batch["propensities"])[expected], 1.0)
        held = ids[:400][expected][0]
        features_0 = dict(zip(FEATURE_NAMES, rows[0].tolist(), strict=True))
        one = {"customer_id": str(held), "features": features_0}
        single = client.post("/v1/recommend", json=one).json()
        assert single["holdout"] is True and single["action"]["name"] == "no_action"
        anonymous = client.post("/v1/recommend", json={"features": one["features"]}).json()
        assert anonymous["holdout"] is False


def test_a_customers_decision_does_not_depend_on_the_batch(ppo_run, base) -> None:
    """Draws come from each customer's id: any batching or order gives the same list."""
    ids, features = base
    policy, info = load_run(ppo_run)
    scorer = Scorer.for_run(policy, info, holdout=0.1, seed=9)
    whole = scorer.score(features, ids)
    order = np.random.default_rng(1).permutation(len(ids))
    shuffled = scorer.score(features[order], ids[order])
    assert np.array_equal(shuffled.actions, whole.actions[order])
    halves = [scorer.score(features[part], ids[part]) for part in (slice(0, 700), slice(700, None))]
    assert np.array_equal(np.concatenate([h.actions for h in halves]), whole.actions)
    other = Scorer.for_run(policy, info, holdout=0.1, seed=10).score(features, ids)
    assert not np.array_equal(other.actions, whole.actions)


@pytest.mark.parametrize("greedy", [False, True])
def test_the_compiled_path_decides_as_the_numpy_definitions(ppo_run, base, greedy) -> None:
    """The network kernel and the softmax, ε-mixing and draw kernel are the same arithmetic."""
    ids, features = base
    policy, info = load_run(ppo_run)
    # Every kind of mask rule and every operator, so that the compiled rule program is checked
    # against CompiledRules.masks and binding (batch rules are the same code on both paths).
    when = [
        {"feature": "last_purchase_days", "op": "<=", "value": 40},
        {"feature": "frequency", "op": "!=", "value": 0},
        {"feature": "consent_sms", "op": "==", "value": 1},
    ]
    rules = compile_rules(
        BusinessRules.model_validate(
            {"caps": [{"max_messages": 1}, {"min_days_between": 10, "channels": ["sms"]}],
             "eligibility": [{"name": "e", "offers": ["discount"], "when": when},
                             {"name": "f", "channels": ["push"],
                              "when": [{"feature": "recency", "op": ">", "value": 30}]}],
             "suppression": {"customer_ids": ["c00001", "c00010"]}}
        ),
        info.settings.build_model().actions,
    )  # fmt: skip
    fast = Scorer.for_run(policy, info, rules=rules, holdout=0.1, seed=3, greedy=greedy)
    assert fast._compiled is not None  # a PPO network of SB3's default shape compiles
    network = fast.probability_fn.__self__
    plain = Scorer(
        policy,
        fast.table,
        probabilities=lambda obs, masks: network.probabilities(obs, masks),
        rules=rules,
        holdout=0.1,
        seed=3,
        greedy=greedy,
    )
    assert plain._compiled is None
    a, b = fast.score(features, ids), plain.score(features, ids)
    assert np.array_equal(a.actions, b.actions)
    # float32 products summed in another order than BLAS's: equal to float32 rounding
    np.testing.assert_allclose(a.probabilities, b.probabilities, rtol=0, atol=1e-7)
    np.testing.assert_allclose(a.propensities, b.propensities, rtol=0, atol=1e-7)
    assert np.array_equal(a.rules, b.rules) and np.array_equal(a.holdout, b.holdout)
    labels = set(";".join(a.rules.tolist()).split(";"))
    assert {"cap:max_messages=1", "eligibility:e", "eligibility:f", "suppression"} <= labels
    assert np.array_equal(a.probabilities > 0, b.probabilities > 0)  # the same masks (ε > 0)
    free = np.flatnonzero(~a.holdout & ((a.probabilities > 0).sum(axis=1) > 1))
    assert free.size > 100 and free.size < len(ids) - 100  # both kinds of customer were scored
    # The compiled pass checks the features as it reads them, naming the first bad row.
    bad = features.copy()
    bad[[4, 9], FEATURE_INDEX["recency"]] = [np.nan, -1.0]
    with pytest.raises(ValueError, match="row 5: recency: missing"):
        fast.score(bad, ids)
    assert fast.score(bad[:4], ids[:4]).n == 4
    layers = fast._compiled[1]
    scaled = network.scaling(features)
    np.testing.assert_allclose(layers(scaled), network.outputs(features), rtol=0, atol=1e-6)


@pytest.mark.timeout(300)
def test_ray_data_scores_partitions_like_one_process(ppo_run, base, tmp_path) -> None:
    """``recenv score`` as a pure function under a distributed engine: Ray Data, local mode."""
    ray = pytest.importorskip("ray", reason="ray[data] is a dev dependency; install .[dev]")
    import pandas as pd

    from rec_env.serve.scoring import BatchScorer

    ids, features = base
    frame = pd.DataFrame(features[:1200], columns=list(FEATURE_NAMES)).assign(
        customer_id=ids[:1200]
    )
    expected = BatchScorer(str(ppo_run), holdout=0.1, seed=4)(frame)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        dataset = ray.data.from_pandas(frame).repartition(4)
        scorer = BatchScorer(str(ppo_run), holdout=0.1, seed=4)
        scored = dataset.map_batches(scorer, batch_format="pandas", batch_size=None).to_pandas()
    finally:
        ray.shutdown()
    merged = expected.merge(scored, on="customer_id", suffixes=("", "_ray"))
    assert len(merged) == 1200
    assert (merged["action"] == merged["action_ray"]).all()
    assert np.allclose(merged["propensity"], merged["propensity_ray"])
    rules = tmp_path / "rules.yaml"
    rules.write_text("budgets: [{name: d, offers: [discount], max_messages: 5}]\n")
    with pytest.raises(ValueError, match="bind a whole batch"):
        BatchScorer(str(ppo_run), rules=str(rules))
