"""Run directories for the decision-service tests: a policy saved as ``recenv train`` would."""

from __future__ import annotations

from pathlib import Path

from rec_env.agents.bandits import EpsilonGreedy
from rec_env.agents.runs import RunInfo, policy_digests, write_run_info
from rec_env.catalog import ActionTable, load_catalog

TABLE = ActionTable.from_catalog(load_catalog("strategy"))
A = TABLE.n_actions
CHANNELS = [name.rsplit("_", 1)[1] if name != "no_action" else "none" for name in TABLE.names]


def write_run(directory: Path, policy) -> Path:
    """A run directory holding ``policy``, as ``recenv train`` would write it."""
    policy.save(directory)
    write_run_info(directory, RunInfo(
        algorithm=policy.algorithm, env_id="rec_env/Recommendation-v0", env={}, feature_names=[],
        action_names=list(TABLE.names), hyperparameters={}, seed=0, recenv_version="test",
        **policy_digests(directory, policy),
    ))  # fmt: skip
    return directory


def uniform_bandit_run(directory: Path) -> Path:
    """An ε-greedy bandit that explores always (ε = 1): uniform over the allowed actions."""
    policy = EpsilonGreedy(n_actions=A, action_names=TABLE.names, random_state=0, epsilon=1.0,
                           decay=0.0, min_epsilon=0.0)  # fmt: skip
    return write_run(directory, policy)
