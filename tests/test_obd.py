"""The Open Bandit Dataset sample: loader, and recenv's estimates against Open Bandit Pipeline.

The reference (``tests/data/obd_obp_reference.{npz,json}``) was produced by
``python benchmarks/obd_check.py --refresh``: OBP 0.5.7's published small-sample protocol (BTS
with the ZOZOTOWN prior evaluated on the random log) run in its own virtualenv. The npz holds
OBP's inputs (the BTS distribution and its reward model at the logged positions) and the json
its estimates.
"""

from __future__ import annotations

import hashlib
import json
import os
from importlib import resources
from pathlib import Path

import numpy as np
import pytest

from rec_env.agents import ope
from rec_env.datasets.logged import LoggedBanditData
from rec_env.datasets.obd import (
    OBD_N_ACTIONS,
    OBD_N_POSITIONS,
    load_obd,
    obd_action_context_names,
    on_policy_value,
)

DATA = Path(__file__).parent / "data"
REFERENCE = json.loads((DATA / "obd_obp_reference.json").read_text())
FILES = ("random_all.csv.gz", "bts_all.csv.gz", "random_item_context.csv", "bts_item_context.csv")


@pytest.fixture(scope="module")
def random_log() -> LoggedBanditData:
    return load_obd("random")


@pytest.fixture(scope="module")
def obp_inputs() -> dict[str, np.ndarray]:
    """OBP's inputs as 3-D arrays; the reward model is NaN away from the logged position."""
    stored = np.load(DATA / "obd_obp_reference.npz")
    n = stored["q_hat_index"].size
    q_hat = np.full((n, OBD_N_ACTIONS, OBD_N_POSITIONS), np.nan)
    q_hat[np.arange(n), :, stored["positions"]] = stored["q_hat_rows"][stored["q_hat_index"]]
    return {
        "action_dist": np.broadcast_to(stored["bts_action_dist"], q_hat.shape),
        "estimated_rewards": q_hat,
        "actions": stored["actions"],
        "positions": stored["positions"],
    }


def _estimators() -> dict[str, ope.OffPolicyEstimator]:
    """OBP's names → recenv's estimators with the reference's settings."""
    protocol = REFERENCE["protocol"]
    settings = {"n_bootstrap": 20, "random_state": 0}
    return {
        "ipw": ope.InverseProbabilityWeighting(**settings),
        "snipw": ope.SelfNormalizedIPS(**settings),
        "dm": ope.DirectMethod(**settings),
        "dr": ope.DoublyRobust(**settings),
        "sndr": ope.SelfNormalizedDoublyRobust(**settings),
        "switch-dr": ope.SwitchDoublyRobust(tau=protocol["switch_dr_lambda"], **settings),
        "dr-os": ope.DoublyRobustWithShrinkage(lambda_=protocol["dr_os_lambda"], **settings),
    }


def test_random_log_shapes_and_values(random_log: LoggedBanditData) -> None:
    data = random_log
    assert (data.n, data.n_actions, data.n_positions) == (10_000, 80, 3)
    # The first row of random_all.csv.gz: item 14 at position 3 (counted from 1), no click.
    assert (data.actions[0], data.positions[0], data.rewards[0]) == (14, 2, 0.0)
    assert np.array_equal(np.unique(data.positions), [0, 1, 2])
    assert np.all(data.propensities == 1 / 80)
    assert data.rewards.sum() == 38  # clicks in the random sample
    # Four one-hot user features: exactly one level of each per row.
    assert data.contexts.shape == (10_000, 26)
    assert np.all(data.contexts.sum(axis=1) == 4)
    assert data.feature_names[0].startswith("user_feature_0=")
    assert data.action_context.shape == (80, len(obd_action_context_names("random")))
    assert np.all(data.action_context[:, 1:].sum(axis=1) == 3)  # three one-hot item features
    assert data.action_context[0, 0] == pytest.approx(-0.49917162609493676)
    assert data.logging_distribution is not None
    assert np.allclose(data.logging_distribution.sum(axis=1), 1.0)


def test_bts_log_and_shared_encoding(random_log: LoggedBanditData) -> None:
    bts = load_obd("bts", with_affinity=True)
    assert bts.n == 10_000 and bts.logging_distribution is None
    assert 0 < bts.propensities.min() < bts.propensities.max() < 1
    # One encoding of the user features for both logs, then the 80 affinity columns.
    assert bts.feature_names[:26] == random_log.feature_names
    assert bts.feature_names[26] == "user-item_affinity_0" and bts.contexts.shape[1] == 106
    assert np.all(bts.contexts[:, 26:] >= 0) and bts.contexts[:, 26:].sum() > 0
    assert on_policy_value("bts") == pytest.approx(42 / 10_000)
    assert on_policy_value("random") == pytest.approx(REFERENCE["on_policy_random_value"])
    assert on_policy_value("bts") == pytest.approx(REFERENCE["on_policy_bts_value"])


def test_unknown_policy_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown OBD logging policy 'men'"):
        load_obd("men")


def test_rows_are_in_obp_order(
    random_log: LoggedBanditData, obp_inputs: dict[str, np.ndarray]
) -> None:
    assert np.array_equal(random_log.actions, obp_inputs["actions"])
    assert np.array_equal(random_log.positions, obp_inputs["positions"])


def test_recenv_reproduces_obp_on_the_same_inputs(
    random_log: LoggedBanditData, obp_inputs: dict[str, np.ndarray]
) -> None:
    for name, estimator in _estimators().items():
        result = estimator.estimate(
            random_log,
            obp_inputs["action_dist"],
            estimated_rewards=obp_inputs["estimated_rewards"],
        )
        assert result.value == pytest.approx(REFERENCE["estimates"][name], abs=1e-10), name
    # OBP's published quickstart value of IPW (obp 0.3.3 notebook: 0.004553).
    assert REFERENCE["estimates"]["ipw"] == pytest.approx(0.004553, abs=5e-7)


def test_positions_cannot_be_sliced_wrongly(
    random_log: LoggedBanditData, obp_inputs: dict[str, np.ndarray]
) -> None:
    dist = np.asarray(obp_inputs["action_dist"])
    ips = ope.InverseProbabilityWeighting(n_bootstrap=20)
    # The silent mistake: reading position 0 for every row. Without positions in the log it
    # gives a plausible but wrong number ...
    no_positions = LoggedBanditData(
        contexts=random_log.contexts,
        actions=random_log.actions,
        propensities=random_log.propensities,
        rewards=random_log.rewards,
        n_actions=random_log.n_actions,
    )
    wrong = ips.estimate(no_positions, dist[:, :, 0]).value
    right = ips.estimate(random_log, dist).value
    assert right == pytest.approx(REFERENCE["estimates"]["ipw"], abs=1e-12)
    assert abs(wrong - right) > 5e-4
    # ... but the loaded log carries its positions, so a 2-D slice is refused.
    with pytest.raises(ValueError, match="must be 3-D"):
        ips.estimate(random_log, dist[:, :, 0])
    # The files count positions from 1: left unshifted, they are refused too.
    with pytest.raises(ValueError, match="positions outside"):
        LoggedBanditData(
            contexts=random_log.contexts,
            actions=random_log.actions,
            propensities=random_log.propensities,
            rewards=random_log.rewards,
            n_actions=80,
            positions=random_log.positions + 1,
            n_positions=3,
        )


def test_reference_files_are_small_and_documented() -> None:
    assert (DATA / "obd_obp_reference.npz").stat().st_size < 2_000_000
    assert REFERENCE["command"] == "python benchmarks/obd_check.py --refresh"
    assert set(REFERENCE["estimates"]) == set(_estimators())


def test_packaged_sample_is_the_published_one() -> None:
    shared = Path(os.environ.get("RECENV_SHARED_DATA", Path(__file__).parents[2] / "shared/data"))
    if not (shared / "obd").is_dir():
        pytest.skip(f"the shared OBD sample is not at {shared / 'obd'}")
    packaged = resources.files("rec_env.datasets").joinpath("obd")
    total = 0
    for name in FILES:
        ours = packaged.joinpath(name).read_bytes()
        total += len(ours)
        theirs = (shared / "obd" / name).read_bytes()
        assert hashlib.sha256(ours).digest() == hashlib.sha256(theirs).digest(), name
    assert total < 500_000
