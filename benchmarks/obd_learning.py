"""Off-policy learning of an item policy on the Open Bandit Dataset sample (issue 12, section 4).

Learn an item policy from the first 70 % of the uniformly random log (time order), evaluate it
on the last 30 % with IPS, SNIPS and DR (pooled logistic reward model over user features x item
features x position, 3-fold cross-fitted on the held-out part), and compare with Bernoulli TS:
its on-policy click rate in the BTS log (the full log and its last 30 %) and its off-policy
estimate on the same held-out rows (OBP's stored ZOZOTOWN-prior distribution).

Learners (``rec_env.agents.offline``), all on the one-hot user features; their policies do not
depend on the position (the same item distribution at all 3 positions, each row valued at its
own position as OBP does; a slate would need distinct items):

* ``ipw-ips`` / ``ipw-dr``: weighted classification maximising the IPS / DR value (OBP's
  ``IPWLearner``), logistic regression;
* ``reward-pooled``: argmax of one pooled logistic reward model over (user, item) features;
* baselines: ``uniform`` (the logging policy) and ``popular`` (the item with the most training
  clicks per impression, everyone).

The sample has 38 clicks in 10,000 rows (about 11 in the held-out 3,000), so every interval is
wide; read the table as what the method gives, not as a ranking. Usage::

    python benchmarks/obd_learning.py [--train-share 0.7] [--seed 0]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression

from rec_env.agents import ope
from rec_env.agents.base import Policy
from rec_env.agents.offline import learn
from rec_env.datasets.logged import LoggedBanditData
from rec_env.datasets.obd import load_obd

ROOT = Path(__file__).resolve().parents[1]
REFERENCE_NPZ = ROOT / "tests" / "data" / "obd_obp_reference.npz"


def _per_position(probabilities: np.ndarray, n_positions: int) -> np.ndarray:
    """``(n, A)`` position-independent probabilities as the ``(n, A, P)`` the estimators take."""
    return np.repeat(probabilities[:, :, None], n_positions, axis=2)


def learned_policies(train: LoggedBanditData, seed: int) -> dict[str, Policy]:
    """Name → the policy each offline learner fits on the training rows."""
    classifier = LogisticRegression(max_iter=1000, C=1.0, random_state=seed)
    return {
        "ipw-ips": learn("ipw", train, classifier=classifier, objective="ips", random_state=seed),
        "ipw-dr": learn("ipw", train, classifier=classifier, objective="dr", random_state=seed),
        "reward-pooled": learn(
            "reward_model",
            train,
            estimator=LogisticRegression(max_iter=1000, random_state=seed),
            pooled=True,
            action_features=train.action_context,
            random_state=seed,
        ),
    }


def evaluate(
    test: LoggedBanditData, probabilities: np.ndarray, q_hat: np.ndarray, seed: int
) -> dict[str, ope.OPEResult]:
    """IPS, SNIPS and DR of ``(n, A, P)`` target probabilities on the held-out rows."""
    settings = {"n_bootstrap": 1000, "random_state": seed}
    estimators = {
        "ips": ope.InverseProbabilityWeighting(**settings),
        "snips": ope.SelfNormalizedIPS(**settings),
        "dr": ope.DoublyRobust(**settings),
    }
    return {
        name: estimator.estimate(test, probabilities, estimated_rewards=q_hat)
        for name, estimator in estimators.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-share", type=float, default=0.7)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    data = load_obd("random")
    cut = round(args.train_share * data.n)
    train, test = data.subset(np.arange(cut)), data.subset(np.arange(cut, data.n))
    n_pos = data.n_positions or 1
    print(
        f"train: first {train.n} rows ({int(train.rewards.sum())} clicks); "
        f"test: last {test.n} rows ({int(test.rewards.sum())} clicks)"
    )
    # One held-out reward model for every DR estimate (cross-fitted on the test rows only).
    q_hat = ope.DirectMethod(
        reward_model=LogisticRegression(max_iter=1000, random_state=args.seed),
        n_folds=3,
        pooled=True,
        random_state=args.seed,
    ).fit_rewards(test)
    q_hat = _per_position(q_hat, n_pos)

    targets: dict[str, np.ndarray] = {}
    targets["uniform"] = np.full((test.n, data.n_actions), 1.0 / data.n_actions)
    clicks = np.bincount(train.actions, weights=train.rewards, minlength=data.n_actions)
    shown = np.bincount(train.actions, minlength=data.n_actions)
    popular = np.zeros((test.n, data.n_actions))
    popular[:, int(np.argmax(clicks / np.maximum(shown, 1)))] = 1.0
    targets["popular"] = popular
    for name, policy in learned_policies(train, args.seed).items():
        targets[name] = policy.action_probabilities(test.contexts)
    stored = np.load(REFERENCE_NPZ)
    bts = np.broadcast_to(stored["bts_action_dist"], (test.n, data.n_actions, n_pos))

    bts_log = load_obd("bts")
    bts_tail = bts_log.rewards[round(args.train_share * bts_log.n) :].mean()
    print(
        f"Bernoulli TS on-policy click rate: {bts_log.rewards.mean():.5f} (whole BTS log), "
        f"{bts_tail:.5f} (its last {1 - args.train_share:.0%})"
    )
    print(f"{'policy':<14} {'IPS':>8} {'95% CI':>19} {'SNIPS':>8} {'DR':>8} {'95% CI':>19}")
    rows = {name: _per_position(p, n_pos) for name, p in targets.items()}
    rows["bts (OBP dist)"] = bts
    for name, probabilities in rows.items():
        results = evaluate(test, probabilities, q_hat, args.seed)
        ips, snips, dr = results["ips"], results["snips"], results["dr"]
        print(
            f"{name:<14} {ips.value:>8.5f} [{ips.ci_low:.5f}, {ips.ci_high:.5f}] "
            f"{snips.value:>8.5f} {dr.value:>8.5f} [{dr.ci_low:.5f}, {dr.ci_high:.5f}]"
        )


if __name__ == "__main__":
    main()
