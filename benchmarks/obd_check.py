"""recenv's off-policy estimates on the Open Bandit Dataset, side by side with Open Bandit Pipeline.

OBP's published small-sample protocol (its ``examples/quickstart/obd.ipynb``): Bernoulli Thompson
sampling with the ZOZOTOWN production prior (campaign "all", 80 items, 3 positions) is the target
policy; its action distribution is computed by Monte Carlo (``n_sim=100000``, seed 12345) and
evaluated on the log of the uniformly random policy. DM and DR use OBP's ``RegressionModel``
(a logistic regression on user features x item features, one per position, 3-fold cross-fitted,
seed 12345). The estimators are IPW, SNIPW, DM, DR, SNDR, Switch-DR and DRos.

Step 1 (only with ``--refresh``, or when the reference files are missing) runs OBP in its own
virtualenv, ``benchmarks/.venv-obp`` (git-ignored): OBP 0.5.7 pins old scikit-learn, pandas
and NumPy and declares Python < 3.11, so it must not enter the project environment. The venv
sees the project's site-packages only for ``torch`` (which OBP imports at module level but this
protocol never uses); the pins installed in the venv shadow everything else. OBP's inputs and
estimates are saved to ``tests/data/obd_obp_reference.npz`` and ``.json``:

* ``bts_action_dist``: the (80, 3) distribution. OBP tiles one distribution over every round
  (the policy is context-free), so this is the whole (10000, 80, 3) input, losslessly.
* ``q_hat_rows`` + ``q_hat_index``: OBP's cross-fitted reward model at each round's logged
  position, ``q_hat[i, :, position_i]``, stored as its distinct rows and a row index. That slice
  is all DM/DR/SNDR/Switch-DR/DRos read; the full (10000, 80, 3) array (19 MB) is not stored.
* ``actions``, ``positions``: OBP's row order, so that recenv's loader can be checked against it.

Step 2 (always, in the project environment) loads the packaged sample with
:func:`rec_env.datasets.load_obd`, computes recenv's estimates on those inputs, and prints both
with their differences, then the relative estimation error of every estimator: its estimate of
BTS's value from the random log against BTS's on-policy click rate in the BTS log (OBP's
benchmark)::

    python benchmarks/obd_check.py            # compare against the stored reference
    python benchmarks/obd_check.py --refresh  # rebuild the venv output and the reference first
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import venv
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
VENV = ROOT / "benchmarks" / ".venv-obp"
REFERENCE_NPZ = ROOT / "tests" / "data" / "obd_obp_reference.npz"
REFERENCE_JSON = ROOT / "tests" / "data" / "obd_obp_reference.json"
# OBP 0.5.7's own pins (its pyproject.toml); all have CPython 3.11 wheels.
OBP_PINS = (
    "numpy==1.23.5",
    "scipy==1.9.3",
    "scikit-learn==1.1.3",
    "pandas==1.5.2",
    "seaborn==0.12.2",
    "mypy-extensions==0.4.3",
)
OBP_VERSION = "0.5.7"
SEED = 12345
N_SIM = 100_000
# Hyperparameters of the estimators that have one (OBP's defaults make Switch-DR equal to DR
# and DRos equal to DM, so they would say nothing).
SWITCH_LAMBDA = 5.0
DROS_LAMBDA = 10.0
ESTIMATORS = ("ipw", "snipw", "dm", "dr", "sndr", "switch-dr", "dr-os")


def _venv_python() -> Path:
    return VENV / "bin" / "python"


def ensure_venv() -> Path:
    """Create ``benchmarks/.venv-obp`` with OBP and its pins (once); its interpreter."""
    python = _venv_python()
    marker = VENV / f"obp-{OBP_VERSION}.installed"
    if marker.exists():
        return python
    try:
        import torch  # noqa: F401
    except ImportError as error:  # pragma: no cover - the project installs torch
        raise SystemExit(
            "OBP imports torch at module level; install the CPU build in the project "
            "environment first (pip install torch --index-url <cpu index>)"
        ) from error
    print(f"creating {VENV} (OBP {OBP_VERSION} and its pins) ...", flush=True)
    # System site-packages only to reuse the project's CPU torch: PyPI's Linux torch pulls
    # gigabytes of CUDA libraries. Everything OBP pins is installed into the venv and wins.
    venv.EnvBuilder(system_site_packages=True, with_pip=True, clear=True).create(VENV)
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, "--only-binary=:all:", *OBP_PINS], check=True)
    # OBP declares Python < 3.11 although it runs on 3.11 with its pins.
    subprocess.run(
        [*pip, "--no-deps", "--ignore-requires-python", f"obp=={OBP_VERSION}"], check=True
    )
    marker.write_text("ok\n")
    return python


def run_obp(npz_path: Path, json_path: Path) -> None:
    """OBP's protocol (run inside the venv): save its inputs and estimates."""
    import obp
    import sklearn
    from obp.dataset import OpenBanditDataset
    from obp.ope import (
        DirectMethod,
        DoublyRobust,
        DoublyRobustWithShrinkage,
        InverseProbabilityWeighting,
        OffPolicyEvaluation,
        RegressionModel,
        SelfNormalizedDoublyRobust,
        SelfNormalizedInverseProbabilityWeighting,
        SwitchDoublyRobust,
    )
    from obp.policy import BernoulliTS
    from sklearn.linear_model import LogisticRegression

    dataset = OpenBanditDataset(behavior_policy="random", campaign="all")
    feedback = dataset.obtain_batch_bandit_feedback()
    policy = BernoulliTS(
        n_actions=dataset.n_actions,
        len_list=dataset.len_list,
        is_zozotown_prior=True,
        campaign="all",
        random_state=SEED,
    )
    action_dist = policy.compute_batch_action_dist(n_sim=N_SIM, n_rounds=feedback["n_rounds"])
    regression = RegressionModel(
        n_actions=dataset.n_actions,
        len_list=dataset.len_list,
        action_context=dataset.action_context,
        base_model=LogisticRegression(random_state=SEED),
    )
    q_hat = regression.fit_predict(
        context=feedback["context"],
        action=feedback["action"],
        reward=feedback["reward"],
        position=feedback["position"],
        pscore=feedback["pscore"],
        n_folds=3,
        random_state=SEED,
    )
    ope = OffPolicyEvaluation(
        bandit_feedback=feedback,
        ope_estimators=[
            InverseProbabilityWeighting(),
            SelfNormalizedInverseProbabilityWeighting(),
            DirectMethod(),
            DoublyRobust(),
            SelfNormalizedDoublyRobust(),
            SwitchDoublyRobust(lambda_=SWITCH_LAMBDA),
            DoublyRobustWithShrinkage(lambda_=DROS_LAMBDA),
        ],
    )
    estimates = ope.estimate_policy_values(
        action_dist=action_dist, estimated_rewards_by_reg_model=q_hat
    )
    ground_truth = OpenBanditDataset.calc_on_policy_policy_value_estimate(
        behavior_policy="bts", campaign="all"
    )
    relative_errors = ope.evaluate_performance_of_estimators(
        ground_truth_policy_value=ground_truth,
        action_dist=action_dist,
        estimated_rewards_by_reg_model=q_hat,
        metric="relative-ee",
    )
    if not np.all(action_dist == action_dist[:1]):
        raise RuntimeError("OBP's BTS distribution differs between rounds: store it whole")
    n = int(feedback["n_rounds"])
    logged_q = q_hat[np.arange(n), :, feedback["position"]]
    rows, index = np.unique(logged_q, axis=0, return_inverse=True)
    np.savez_compressed(
        npz_path,
        bts_action_dist=action_dist[0],
        q_hat_rows=rows,
        q_hat_index=index.reshape(-1).astype(np.int32),
        actions=feedback["action"].astype(np.int16),
        positions=feedback["position"].astype(np.int8),
    )
    reference = {
        "command": "python benchmarks/obd_check.py --refresh",
        "obp_version": obp.__version__,
        "sklearn_version": sklearn.__version__,
        "protocol": {
            "behavior_log": "random_all (OBP's small sample, 10,000 rounds)",
            "target": "BernoulliTS(n_actions=80, len_list=3, is_zozotown_prior=True, "
            f"campaign='all', random_state={SEED}).compute_batch_action_dist(n_sim={N_SIM})",
            "reward_model": "RegressionModel(action_context=dataset.action_context, base_model="
            f"LogisticRegression(random_state={SEED})).fit_predict(n_folds=3, "
            f"random_state={SEED})",
            "switch_dr_lambda": SWITCH_LAMBDA,
            "dr_os_lambda": DROS_LAMBDA,
        },
        "estimates": {k: float(v) for k, v in estimates.items()},
        "on_policy_bts_value": float(ground_truth),
        "on_policy_random_value": float(feedback["reward"].mean()),
        "relative_estimation_errors": {k: float(v) for k, v in relative_errors.items()},
        "q_hat_distinct_rows": int(rows.shape[0]),
    }
    json_path.write_text(json.dumps(reference, indent=2) + "\n")
    print(json.dumps(reference, indent=2))


def reference_inputs(npz_path: Path, n_positions: int = 3) -> dict[str, np.ndarray]:
    """OBP's stored inputs as recenv takes them: 3-D ``(n, 80, 3)`` arrays.

    The reward model is stored at each row's logged position only; the other positions are NaN,
    so an estimator that read a wrong position would fail instead of using a wrong number.
    """
    stored = np.load(npz_path)
    n = stored["q_hat_index"].size
    rows = np.arange(n)
    q_hat = np.full((n, stored["q_hat_rows"].shape[1], n_positions), np.nan)
    q_hat[rows, :, stored["positions"]] = stored["q_hat_rows"][stored["q_hat_index"]]
    return {
        "action_dist": np.broadcast_to(stored["bts_action_dist"], q_hat.shape),
        "estimated_rewards": q_hat,
        "actions": stored["actions"],
        "positions": stored["positions"],
    }


def recenv_estimators() -> dict[str, object]:
    """OBP's estimator name → the recenv estimator with the same definition and settings."""
    from rec_env.agents import ope

    settings = {"n_bootstrap": 200, "random_state": SEED}
    return {
        "ipw": ope.InverseProbabilityWeighting(**settings),
        "snipw": ope.SelfNormalizedIPS(**settings),
        "dm": ope.DirectMethod(**settings),
        "dr": ope.DoublyRobust(**settings),
        "sndr": ope.SelfNormalizedDoublyRobust(**settings),
        "switch-dr": ope.SwitchDoublyRobust(tau=SWITCH_LAMBDA, **settings),
        "dr-os": ope.DoublyRobustWithShrinkage(lambda_=DROS_LAMBDA, **settings),
    }


def recenv_estimates(reference_npz: Path) -> tuple[dict[str, float], float]:
    """The estimates of recenv on OBP's stored inputs, and BTS's on-policy click rate."""
    from rec_env.datasets.obd import load_obd, on_policy_value

    data = load_obd("random")
    inputs = reference_inputs(reference_npz)
    if not (
        np.array_equal(inputs["actions"], data.actions)
        and np.array_equal(inputs["positions"], data.positions)
    ):
        raise SystemExit("the stored OBP rows are not in the order of load_obd('random')")
    estimates = {
        name: estimator.estimate(
            data, inputs["action_dist"], estimated_rewards=inputs["estimated_rewards"]
        ).value
        for name, estimator in recenv_estimators().items()
    }
    return estimates, on_policy_value("bts")


def recenv_own_model_estimates(reference_npz: Path) -> dict[str, float]:
    """The estimates of recenv end to end: OBP's BTS distribution, recenv's reward model.

    One logistic regression over (one-hot user features, item features, one-hot position),
    3-fold cross-fitted: the estimates a user of recenv gets without OBP.
    """
    from sklearn.linear_model import LogisticRegression

    from rec_env.agents import ope
    from rec_env.datasets.obd import load_obd

    data = load_obd("random")
    action_dist = reference_inputs(reference_npz)["action_dist"]
    model = ope.DirectMethod(
        reward_model=LogisticRegression(random_state=SEED, max_iter=1000),
        n_folds=3,
        pooled=True,
        random_state=SEED,
    )
    q_hat = model.fit_rewards(data)
    # fit_rewards predicts at each row's position; the estimators take the 3-D form.
    q_hat_3d = np.repeat(q_hat[:, :, None], data.n_positions, axis=2)
    return {
        name: estimator.estimate(data, action_dist, estimated_rewards=q_hat_3d).value
        for name, estimator in recenv_estimators().items()
    }


def print_table(
    reference: dict, ours: dict[str, float], own_model: dict[str, float], truth: float
) -> None:
    """Both estimates, their difference and each one's relative estimation error."""
    theirs = reference["estimates"]
    print(
        f"OBP {reference['obp_version']} (scikit-learn {reference['sklearn_version']}); "
        f"Switch-DR tau = {SWITCH_LAMBDA:g}, DRos lambda = {DROS_LAMBDA:g}"
    )
    print(f"BTS on-policy click rate in the BTS log: {truth:.6f}")
    print("relative error = |estimate of BTS from the random log - on-policy| / on-policy")
    print(
        f"{'estimator':<10} {'OBP':>9} {'recenv':>9} {'|diff|':>8} {'rel.err':>8} "
        f"{'recenv own q':>12} {'rel.err':>8}"
    )
    for name in ESTIMATORS:
        mine, own = ours[name], own_model[name]
        print(
            f"{name:<10} {theirs[name]:>9.6f} {mine:>9.6f} {abs(theirs[name] - mine):>8.1e} "
            f"{abs(mine - truth) / truth:>8.4f} {own:>12.6f} {abs(own - truth) / truth:>8.4f}"
        )
    worst = max(abs(theirs[name] - ours[name]) for name in ESTIMATORS)
    print(f"largest |OBP - recenv| on the same inputs: {worst:.1e}")
    print("OBP's own relative errors:", reference["relative_estimation_errors"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--refresh", action="store_true", help="rerun OBP in its venv")
    parser.add_argument("--obp-side", nargs=2, metavar=("NPZ", "JSON"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.obp_side:
        run_obp(Path(args.obp_side[0]), Path(args.obp_side[1]))
        return
    if args.refresh or not (REFERENCE_NPZ.exists() and REFERENCE_JSON.exists()):
        python = ensure_venv()
        REFERENCE_NPZ.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "PYTHONNOUSERSITE": "1"}
        subprocess.run(
            [str(python), __file__, "--obp-side", str(REFERENCE_NPZ), str(REFERENCE_JSON)],
            check=True,
            cwd=ROOT / "benchmarks",
            env=env,
        )
    reference = json.loads(REFERENCE_JSON.read_text())
    ours, truth = recenv_estimates(REFERENCE_NPZ)
    print_table(reference, ours, recenv_own_model_estimates(REFERENCE_NPZ), truth)


if __name__ == "__main__":
    sys.exit(main())
