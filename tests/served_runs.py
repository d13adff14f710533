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


def learned_linucb_run(directory: Path) -> Path:
    """A LinUCB run that learned for a few weeks of 300 customers, with a training curve."""
    from rec_env.agents.registry import make_bandit
    from rec_env.agents.runs import write_curve
    from rec_env.rollout import run_cohort
    from rec_env.settings import EnvSettings

    model = EnvSettings().build_model()
    bandit = make_bandit("linucb", model, 0)
    run_cohort(model, bandit, 300, horizon=4, seed=0, learn=True)
    run = write_run(directory, bandit)
    rows = [
        {"timesteps": float(t), "profit_per_customer": p, "profit_ci95": 0.4}
        for t, p in ((0, 4.0), (600, 4.5), (1200, 5.0))
    ]
    write_curve(run, rows)
    return run
