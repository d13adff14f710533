"""What a served bandit should have learned, read from the decision log with plain SQL.

Independent of :meth:`rec_env.serve.decision_log.DecisionLog.rewards_after` (the code under
test): a fresh bandit from the run learns every logged reward of a model version once, in seq
order, one reward at a time as the service does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from rec_env.agents.base import Policy
from rec_env.agents.runs import load_run
from rec_env.features import FEATURE_NAMES

_REWARDS = (
    "SELECT w.seq, w.reward, d.action, r.features, w.position FROM rewards AS w "
    "JOIN requests AS r ON r.request_id = w.request_id "
    "JOIN decisions AS d ON d.request_id = w.request_id AND d.position = w.position "
    "WHERE r.model_version = ? ORDER BY w.seq"
)


def logged_rewards(db: Path, model_version: str) -> Iterator[tuple[int, np.ndarray, int, float]]:
    """``(seq, features, action, reward)`` of every logged reward of ``model_version``."""
    import sqlite3

    connection = sqlite3.connect(db)
    try:
        rows = connection.execute(_REWARDS, (model_version,)).fetchall()
    finally:
        connection.close()
    for seq, reward, action, blob, position in rows:
        features = np.frombuffer(blob, dtype="<f8").reshape(-1, len(FEATURE_NAMES))[position]
        yield seq, features, action, reward


def relearned(
    run: Path, db: Path, model_version: str, accept: Callable[[float], bool] = lambda r: True
) -> tuple[Policy, int]:
    """A fresh bandit of ``run`` that learned each logged (and accepted) reward once, in seq
    order, and the number it learned."""
    policy, _ = load_run(run)
    n = 0
    for _, features, action, reward in logged_rewards(db, model_version):
        if accept(reward):
            policy.update(features[None, :], np.array([action]), np.array([reward]))
            n += 1
    return policy, n


def assert_same_state(policy: Policy, expected: Policy) -> None:
    """Bit-identical learned arrays."""
    got, want = policy.learned_arrays(), expected.learned_arrays()
    assert got.keys() == want.keys()
    for name in want:
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)
