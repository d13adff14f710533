"""Reading a retailer's own log (CSV / Parquet) with a LogSpec: encoding, rewards, propensities."""

from __future__ import annotations

import csv
import json
import warnings
from pathlib import Path

import numpy as np
import pytest

from rec_env.datasets import (
    HILLSTROM_ACTIONS,
    LogSpec,
    NonRandomisedLogWarning,
    TabularEncoder,
    load_hillstrom,
    load_preset,
    read_log,
)
from rec_env.errors import ConfigError

HEADER = ["id", "age", "channel", "promo", "purchase", "spend", "p"]
ROWS = [
    ["a1", "31", "Web", "promo", "1", "25.5", "0.5"],
    ["a2", "45", "Phone", "none", "0", "0", "0.5"],
    ["a3", "27", "Web", "none", "1", "12", "0.5"],
    ["a4", "52", "Store", "promo", "0", "0", "0.5"],
    ["a5", "38", "Phone", "promo", "1", "40", "0.5"],
    ["a6", "60", "Store", "none", "0", "0", "0.5"],
]


def _write_csv(path: Path, rows: list[list[str]], header: list[str] = HEADER) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def _spec(path: Path, **options) -> LogSpec:
    defaults = {
        "action": "promo",
        "reward": "10*purchase - 0.15*treated",
        "features": "age,channel",
        "propensity": "p",
        "control": "none",
        "row_id": "id",
    }
    return LogSpec.from_args(path, **{**defaults, **options})


@pytest.fixture
def campaign(tmp_path: Path) -> Path:
    return _write_csv(tmp_path / "campaign.csv", ROWS)


def test_csv_log_is_encoded_with_rewards_and_propensities(campaign):
    log = read_log(_spec(campaign))
    data = log.data
    assert log.action_names == ("none", "promo")  # sorted values
    assert log.control == 0 and log.control_name == "none"
    assert log.encoder.names == ("age", "channel=Phone", "channel=Store", "channel=Web")
    assert data.feature_names == log.encoder.names == log.feature_space.names
    np.testing.assert_array_equal(data.contexts[0], [31, 0, 0, 1])
    np.testing.assert_array_equal(data.actions, [1, 0, 0, 1, 1, 0])
    np.testing.assert_allclose(data.rewards, [9.85, 0, 10, -0.15, 9.85, 0])
    np.testing.assert_array_equal(data.propensities, np.full(6, 0.5))
    np.testing.assert_array_equal(log.term_values[:, 0], [1, 0, 1, 0, 1, 0])
    assert list(log.row_ids) == ["a1", "a2", "a3", "a4", "a5", "a6"]
    assert log.spec.actions == ["none", "promo"]
    # Numeric features are standardised in the feature space; one-hot columns stay 0/1.
    assert log.feature_space.center[0] == pytest.approx(np.mean([31, 45, 27, 52, 38, 60]))
    assert log.feature_space.width[1] == 1.0 and log.feature_space.high[1] == 1.0


def test_parquet_gives_the_same_log_as_csv(campaign, tmp_path):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    columns = list(zip(*ROWS, strict=True))
    table = pa.table(
        {
            "id": list(columns[0]),
            "age": [int(v) for v in columns[1]],
            "channel": list(columns[2]),
            "promo": list(columns[3]),
            "purchase": [int(v) for v in columns[4]],
            "spend": [float(v) for v in columns[5]],
            "p": [float(v) for v in columns[6]],
            "unused": ["x"] * len(ROWS),
        }
    )
    path = tmp_path / "campaign.parquet"
    pq.write_table(table, path)
    from_csv, from_parquet = read_log(_spec(campaign)), read_log(_spec(path))
    for field in ("contexts", "actions", "rewards", "propensities"):
        np.testing.assert_array_equal(
            getattr(from_parquet.data, field), getattr(from_csv.data, field)
        )
    assert from_parquet.encoder == from_csv.encoder


def test_encoder_json_round_trip_and_reuse_on_a_test_file(campaign, tmp_path):
    log = read_log(_spec(campaign))
    saved = log.encoder.save(tmp_path / "encoder.json")
    loaded = TabularEncoder.load(saved)
    assert loaded == log.encoder
    assert json.loads(saved.read_text())["columns"][1]["levels"] == ["Phone", "Store", "Web"]
    test_file = _write_csv(tmp_path / "test.csv", [ROWS[3], ROWS[0]])  # only Store and Web
    # The resolved spec keeps the action order, though the test file holds only "promo".
    test_spec = log.spec.model_copy(update={"file": test_file})
    test_log = read_log(test_spec, encoder=loaded)
    assert test_log.action_names == ("none", "promo")
    np.testing.assert_array_equal(test_log.data.contexts, log.data.contexts[[3, 0]])


def test_unseen_levels_error_or_go_to_other(campaign, tmp_path):
    log = read_log(_spec(campaign))
    new = _write_csv(
        tmp_path / "new.csv", [ROWS[0], ["b1", "40", "Kiosk", "none", "0", "0", "0.5"]]
    )
    with pytest.raises(ConfigError) as error:
        read_log(_spec(new), encoder=log.encoder)
    assert "new.csv: row 2 (line 3), column 'channel': level 'Kiosk' was not seen" in str(
        error.value
    )
    lenient = read_log(_spec(campaign, unseen="other"))
    assert lenient.encoder.names[-1] == "channel=<other>"
    assert lenient.data.contexts[:, -1].sum() == 0.0
    scored = read_log(_spec(new), encoder=lenient.encoder)
    np.testing.assert_array_equal(scored.data.contexts[1], [40, 0, 0, 0, 1])


def test_missing_values_are_errors_naming_file_row_and_column_or_imputed(tmp_path):
    rows = [list(row) for row in ROWS]
    rows[2][1] = ""  # age of row 3
    rows[4][2] = "NA"  # channel of row 5
    path = _write_csv(tmp_path / "holes.csv", rows)
    with pytest.raises(ConfigError) as error:
        read_log(_spec(path))
    assert "holes.csv: row 3 (line 4), column 'age': the value is missing" in str(error.value)
    log = read_log(_spec(path, missing="impute"))
    mean_age = np.mean([31, 45, 52, 38, 60])
    assert log.data.contexts[2, 0] == pytest.approx(mean_age)
    # Channel: Store and Web are tied as the most frequent; ties go to the first sorted level.
    np.testing.assert_array_equal(log.data.contexts[4, 1:], [0, 1, 0])
    assert log.encoder.columns[1].fill == "Store"


@pytest.mark.parametrize(
    ("row", "column", "value", "message"),
    [
        (2, 1, "forty", "row 2 (line 3), column 'age': 'forty' is not a number, though 5"),
        (4, 4, "", "row 4 (line 5), column 'purchase': the outcome is missing"),
        (1, 6, "0", "row 1 (line 2), column 'p': propensity '0' is not in (0, 1]"),
        (5, 3, "", "row 5 (line 6), column 'promo': the value is missing"),
    ],
)
def test_bad_cells_name_the_file_row_and_column(tmp_path, row, column, value, message):
    rows = [list(r) for r in ROWS]
    rows[row - 1][column] = value
    path = _write_csv(tmp_path / "bad.csv", rows)
    with pytest.raises(ConfigError) as error:
        read_log(_spec(path))
    assert str(error.value).startswith(str(path))
    assert message in str(error.value)


def test_file_level_errors(campaign, tmp_path):
    with pytest.raises(
        ConfigError, match=r"campaign.csv: reward 'purchse'.*did you mean 'purchase'"
    ):
        read_log(_spec(campaign, reward="purchse"))
    ragged = tmp_path / "ragged.csv"
    ragged.write_text(campaign.read_text().replace("Phone,none", "Phone,none,extra", 1))
    with pytest.raises(ConfigError, match=r"ragged.csv: row 2 \(line 3\): expected 7 fields"):
        read_log(_spec(ragged))
    with pytest.raises(ConfigError, match=r"'maybe' is not one of the listed values"):
        bad = [list(r) for r in ROWS]
        bad[1][3] = "maybe"
        read_log(_spec(_write_csv(tmp_path / "a.csv", bad), actions="none,promo"))
    with pytest.raises(ConfigError, match=r"file not found|cannot read file"):
        read_log(_spec(tmp_path / "absent.csv"))
    with pytest.raises(ConfigError, match="control action 'nothing' is not one of"):
        read_log(_spec(campaign, control="nothing"))


def test_spec_validation_names_the_field(tmp_path):
    with pytest.raises(ConfigError, match="the action column 'promo' is also a feature"):
        _spec(tmp_path / "x.csv", features="age,promo")
    with pytest.raises(ConfigError, match="numeric lists channelz, which are not features"):
        _spec(tmp_path / "x.csv", numeric="channelz")
    with pytest.raises(ConfigError, match="assumes a randomised log"):
        _spec(tmp_path / "x.csv", propensity="split", randomised=False)
    yaml_path = tmp_path / "spec.yaml"
    yaml_path.write_text("file: campaign.csv\naction: promo\nfeatures: [age]\nreward: 1\n")
    with pytest.raises(ConfigError, match=r"spec.yaml: propensity: Field required"):
        LogSpec.from_yaml(yaml_path)


def test_yaml_spec_resolves_the_file_next_to_it(campaign):
    yaml_path = campaign.parent / "spec.yaml"
    yaml_path.write_text(
        "file: campaign.csv\naction: promo\ncontrol: none\nfeatures: [age, channel]\n"
        "reward: '10*purchase - cost[action]'\ncosts: {promo: 0.2}\npropensity: uniform\n"
    )
    log = read_log(LogSpec.from_yaml(yaml_path))
    np.testing.assert_allclose(log.data.rewards, [9.8, 0, 10, -0.2, 9.8, 0])
    np.testing.assert_array_equal(log.data.propensities, np.full(6, 0.5))


def _split_log(tmp_path: Path, n: int, treated: int) -> Path:
    rng = np.random.default_rng(0)
    promo = np.array(["promo"] * treated + ["none"] * (n - treated))
    rng.shuffle(promo)
    rows = [
        [f"r{i}", str(i % 50), "Web", a, str(i % 7 == 0), "0", "0.5"] for i, a in enumerate(promo)
    ]
    for row in rows:
        row[4] = "1" if row[4] == "True" else "0"
    return _write_csv(tmp_path / "split.csv", rows)


def test_split_propensity_accepts_an_observed_0_5011_split(tmp_path):
    path = _split_log(tmp_path, 10_000, 5011)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a randomised 50/50 test raises no warning
        log = read_log(_spec(path, propensity="split", features="age"))
    estimate = log.propensity
    np.testing.assert_array_equal(estimate.counts, [4989, 5011])
    np.testing.assert_allclose(estimate.shares, [0.4989, 0.5011])
    assert estimate.ci_low[1] < 0.5011 < estimate.ci_high[1]
    assert estimate.ci_low[1] < 0.5 < estimate.ci_high[1]
    assert estimate.uniform_p_value == pytest.approx(0.826, abs=1e-3)  # X² = 2·11²/5000
    expected = np.where(log.data.actions == 1, 0.5011, 0.4989)
    np.testing.assert_allclose(log.data.propensities, expected)
    np.testing.assert_allclose(log.data.logging_distribution[0], [0.4989, 0.5011])


def test_uniform_propensity_warns_when_the_split_contradicts_it(tmp_path):
    path = _split_log(tmp_path, 2_000, 1_300)
    with pytest.warns(UserWarning, match="unlikely under that"):
        log = read_log(_spec(path, propensity="uniform", features="age"))
    np.testing.assert_array_equal(log.data.propensities, np.full(2000, 0.5))


def test_model_propensity_needs_a_hook_and_warns_loudly(campaign):
    spec = _spec(campaign, propensity="model", randomised=False)
    with (
        pytest.warns(NonRandomisedLogWarning),
        pytest.raises(ConfigError, match="propensity_model"),
    ):
        read_log(spec)

    def fitted(contexts, actions, n_actions):
        assert contexts.shape == (6, 4) and n_actions == 2
        return np.tile([0.3, 0.7], (len(actions), 1))

    with pytest.warns(NonRandomisedLogWarning, match="NOT randomised"):
        log = read_log(spec, propensity_model=fitted)
    np.testing.assert_allclose(log.data.propensities, np.where(log.data.actions == 1, 0.7, 0.3))
    assert log.propensity.method == "model"


def test_positions_and_action_features(tmp_path):
    rows = [
        [f"r{i}", str(i), "Web", ["a", "b", "c"][i % 3], str(i % 2), "0", "0.5"] for i in range(12)
    ]
    header = [*HEADER[:6], "pos"]
    for i, row in enumerate(rows):
        row[6] = str(1 + i % 2)  # positions 1, 2
    path = _write_csv(tmp_path / "items.csv", rows, header)
    items = tmp_path / "items_features.csv"
    items.write_text("item,price,genre\nc,3.0,x\na,1.0,y\nb,2.0,x\nz,9.0,y\n")
    spec = LogSpec.from_args(
        path,
        action="promo",
        reward="purchase",
        features="age",
        propensity="split",
        positions="pos",
        action_features=items,
        action_key="item",
    )
    log = read_log(spec)
    data = log.data
    assert data.n_positions == 2 and log.spec.position_levels == ["1", "2"]
    np.testing.assert_array_equal(data.positions, np.arange(12) % 2)
    # Per-position split: every (action, position) cell holds 2 of the 6 rows of its position.
    np.testing.assert_allclose(data.propensities, np.full(12, 1 / 3))
    assert data.logging_distribution.shape == (12, 3, 2)
    assert log.action_feature_encoder.names == ("price", "genre=x", "genre=y")
    np.testing.assert_array_equal(data.action_context, [[1, 0, 1], [2, 1, 0], [3, 1, 0]])


def test_reading_is_deterministic(campaign):
    first, second = read_log(_spec(campaign)), read_log(_spec(campaign))
    for field in ("contexts", "actions", "rewards", "propensities"):
        np.testing.assert_array_equal(getattr(first.data, field), getattr(second.data, field))
    assert first.encoder.to_dict() == second.encoder.to_dict()


@pytest.fixture(scope="module")
def hillstrom_profit():
    return read_log(load_preset("hillstrom", reward="0.3*spend - 0.1*treated"))


def test_hillstrom_preset_reproduces_load_hillstrom(hillstrom_profit):
    log, reference = hillstrom_profit, load_hillstrom("profit")
    assert log.data.n == reference.n == 64_000
    np.testing.assert_array_equal(log.data.contexts, reference.contexts)
    np.testing.assert_array_equal(log.data.actions, reference.actions)
    np.testing.assert_array_equal(log.data.rewards, reference.rewards)
    np.testing.assert_array_equal(log.data.propensities, reference.propensities)
    assert log.action_names == ("Mens E-Mail", "Womens E-Mail", "No E-Mail")
    assert len(log.action_names) == len(HILLSTROM_ACTIONS)
    assert log.encoder.names[4:7] == ("zip_code=Urban", "zip_code=Surburban", "zip_code=Rural")


@pytest.mark.parametrize("reward", ["visit", "conversion", "spend"])
def test_hillstrom_preset_outcomes_match_on_a_prefix(reward):
    log = read_log(load_preset("hillstrom", reward=reward, max_rows=500))
    reference = load_hillstrom(reward).subset(np.arange(500))
    np.testing.assert_array_equal(log.data.rewards, reference.rewards)
    np.testing.assert_array_equal(log.data.contexts, reference.contexts)


@pytest.mark.parametrize(("counts", "p_value"), [([1000, 1062], 0.17214), ([50, 70, 60], 0.18888)])
def test_uniformity_p_value_is_the_chi_square_survival_function(counts, p_value):
    from rec_env.datasets.propensity import PropensityEstimate

    actions = np.repeat(np.arange(len(counts)), counts)
    estimate = PropensityEstimate.observe("split", actions, len(counts))
    # X² = 1.8642 on 1 df (scipy.stats.chi2.sf: 0.172140) and 3.3333 on 2 df (exp(-X²/2)).
    assert estimate.uniform_p_value == pytest.approx(p_value, abs=1e-4)


def test_a_propensity_column_on_a_non_randomised_log_still_warns(campaign):
    with pytest.warns(NonRandomisedLogWarning):
        log = read_log(_spec(campaign, randomised=False))
    assert log.propensity.method == "column"


def test_a_column_declared_numeric_must_hold_numbers(campaign):
    with pytest.raises(ConfigError, match=r"row 1 \(line 2\), column 'channel': 'Web' is not a"):
        read_log(_spec(campaign, numeric="channel"))
    # Declared categorical, numbers become levels ("31", "45", ...), one column each.
    log = read_log(_spec(campaign, categorical="age"))
    assert log.encoder.names[:2] == ("age=27", "age=31")
