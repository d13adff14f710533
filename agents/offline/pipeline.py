r"""The one path from a retailer's own log to a targeting policy: split, learn, evaluate, report.

:func:`run_offline` is what ``recenv offline learn`` runs; :func:`evaluate_saved_run` is
``recenv offline evaluate`` and :func:`write_report` writes the files of both.

* **Split.** The log is split at random (seeded) into a training and a held-out part,
  *stratified by the logged action* so that both parts keep the logged split; or a separate
  held-out file is read with the training encoding. The split is saved (row indices).
* **Learn.** Each learner of :mod:`rec_env.agents.offline` is fitted on the training part only.
  Uplift learners (``t_learner``, ``x_learner``, ``dr_learner``) need a control action; a
  learner that fails or needs what the log lacks is reported with the reason, never dropped.
* **Evaluate.** On the held-out part, every learned policy is valued next to the constant
  policies (each action to everyone, the control included) and uniform random, by every
  estimator of :data:`rec_env.agents.ope.ALL_ESTIMATORS` (IPS, SNIPS, DM, DR, SNDR, Switch-DR,
  DRos), with 95 % bootstrap intervals and the weight diagnostics. DM refits its reward model in
  every replicate (see :mod:`rec_env.agents.ope.refit`).
* **Targeting report** (logs with a control): for each learned policy with per-action scores,
  customers are ranked by the predicted gain of their best treatment over the control; the
  report gives uplift@30 % (Hájek means over the rows whose logged action matches the
  recommendation or is the control, Zhao et al. 2017), the policy-value curve (DR), the
  incremental response and net incremental revenue of the top 30 %, and for two-action
  campaigns the Qini curve, and the Qini coefficient and AUUC when the outcome is 0/1.

Everything random draws from generators seeded by ``seed``: the same log and settings give the
same ``results.json``.
"""

from __future__ import annotations

import csv
import json
import math
import shutil
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rec_env.agents.base import Policy
from rec_env.datasets.logged import LoggedBanditData
from rec_env.datasets.tabular import TabularLog

__all__ = [
    "DEFAULT_ESTIMATORS",
    "DEFAULT_LEARNERS",
    "ENCODER_FILE",
    "POLICIES_DIR",
    "RESULTS_FILE",
    "SPEC_FILE",
    "SPLIT_FILE",
    "OfflineRun",
    "evaluate_saved_run",
    "logistic_propensity_model",
    "planned_steps",
    "read_run_log",
    "run_offline",
    "split_rows",
    "write_report",
    "write_run",
]

DEFAULT_LEARNERS = ("reward_model", "t_learner", "dr_learner", "ipw", "linucb_replay")
"""Learners fitted when none are named."""

DEFAULT_ESTIMATORS = ("ips", "snips", "dm", "dr", "sndr", "switch_dr", "dros")
"""Estimators of the report; ``dr`` ranks the policies."""

UPLIFT_LEARNERS = ("t_learner", "x_learner", "dr_learner")
TARGET_SHARE = 0.3
SPEC_FILE = "spec.json"
ENCODER_FILE = "encoder.json"
SPLIT_FILE = "split.json"
RESULTS_FILE = "results.json"
RESULTS_CSV = "results.csv"
POLICIES_DIR = "policies"
_CURVE_POINTS = 101

Progress = Callable[[str], None]


@dataclass
class OfflineRun:
    """What :func:`run_offline` learned and measured.

    Attributes:
        log: The training log as read (encoder, spec with the action order, reward).
        results: The JSON-ready report (what ``results.json`` holds).
        policies: The learned policies by learner name (those that were fitted).
        train_rows: Indices of the training rows in the log file (``None`` with a test file).
        test_rows: Indices of the held-out rows (``None`` with a test file).
    """

    log: TabularLog
    results: dict[str, Any]
    policies: dict[str, Policy] = field(default_factory=dict)
    train_rows: np.ndarray | None = None
    test_rows: np.ndarray | None = None


def planned_steps(n_learners: int, n_actions: int) -> int:
    """Steps :func:`run_offline` reports to its progress callback (for a progress bar)."""
    return 1 + n_learners + (n_actions + 1 + n_learners)


def split_rows(actions: np.ndarray, test_share: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded random split, stratified by action: ``(train_rows, test_rows)``, each sorted.

    Each action's rows are permuted and ``round(test_share * count)`` of them held out, so
    both parts keep the logged split.

    Raises:
        ValueError: If ``test_share`` is not in (0, 1) or a part would be empty.
    """
    if not 0.0 < test_share < 1.0:
        raise ValueError(f"--test-share must be in (0, 1), got {test_share}")
    rng = np.random.default_rng(seed)
    held = []
    for action in np.unique(actions):
        rows = rng.permutation(np.flatnonzero(actions == action))
        held.append(rows[: round(test_share * rows.size)])
    test = np.sort(np.concatenate(held))
    train = np.setdiff1d(np.arange(actions.size), test)
    if test.size == 0 or train.size == 0:
        raise ValueError(
            f"a test share of {test_share} leaves an empty part of {actions.size} rows"
        )
    return train, test


def logistic_propensity_model(
    contexts: np.ndarray, actions: np.ndarray, n_actions: int
) -> np.ndarray:
    """``(n, n_actions)`` logging probabilities from a multinomial logistic regression.

    The ``propensity_model`` hook of :func:`~rec_env.datasets.read_log` for logs that were not
    randomised: scikit-learn's ``LogisticRegression`` on the standardised features, fitted and
    predicted on the same rows, probabilities floored at 1e-3 (and renormalised) so that no
    weight explodes. It is only as right as the model: estimates on such logs are biased by
    whatever the model misses (read_log warns).
    """
    from sklearn.linear_model import LogisticRegression

    scale = contexts.std(axis=0)
    inputs = (contexts - contexts.mean(axis=0)) / np.where(scale > 0, scale, 1.0)
    model = LogisticRegression(max_iter=1000).fit(inputs, actions)
    probabilities = np.zeros((contexts.shape[0], n_actions))
    probabilities[:, model.classes_.astype(int)] = model.predict_proba(inputs)
    probabilities = np.maximum(probabilities, 1e-3)
    return probabilities / probabilities.sum(axis=1, keepdims=True)


def read_run_log(spec: Any, encoder: Any = None) -> TabularLog:
    """:func:`~rec_env.datasets.read_log` with the logistic propensity model when needed."""
    from rec_env.datasets import read_log

    model = logistic_propensity_model if spec.propensity == "model" else None
    return read_log(spec, encoder=encoder, propensity_model=model)


# ---------------------------------------------------------------------------- learning
MODELS: tuple[str, ...] = ("ridge", "boosting")
"""The learners' regressors: ridge regression (the default) or gradient boosting.

Boosting is scikit-learn's ``HistGradientBoostingRegressor`` (200 trees, learning rate 0.05,
seeded), for outcomes, effects and DR's reward model alike; its policies save as arrays
(:mod:`~rec_env.agents.offline.trees`). The replay bandits stay linear.
"""

_MODEL_OPTIONS = ("estimator", "effect_estimator", "reward_estimator")


def regressor(model: str, seed: int) -> Any:
    """A fresh regressor of kind ``model`` (:data:`MODELS`).

    Raises:
        ValueError: For an unknown kind.
    """
    if model == "ridge":
        from rec_env.agents.ope.reward_models import RidgeRewardEstimator

        return RidgeRewardEstimator()
    if model == "boosting":
        from sklearn.ensemble import HistGradientBoostingRegressor

        return HistGradientBoostingRegressor(max_iter=200, learning_rate=0.05, random_state=seed)
    raise ValueError(f"unknown model {model!r}; choose from {', '.join(MODELS)}")


def _learner_options(name: str, log: TabularLog, seed: int, model: str = "ridge") -> dict[str, Any]:
    """The options :func:`~rec_env.agents.offline.learn` gets for ``name`` on this log.

    Raises:
        ValueError: If an uplift learner is asked for on a log without a control action, or
            the model is unknown.
    """
    from rec_env.agents.offline.learners import learner_options

    options: dict[str, Any] = {"random_state": seed}
    if model != "ridge":
        accepted = learner_options(name)
        for option in _MODEL_OPTIONS:
            if option in accepted:
                options[option] = regressor(model, seed)
    if name in UPLIFT_LEARNERS:
        if log.control is None:
            raise ValueError("needs a control action (--control, or control: in the spec)")
        options["control"] = log.control
    return options


def _fit(name: str, train: LoggedBanditData, log: TabularLog, seed: int, model: str) -> Policy:
    from rec_env.agents.offline import learn

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=RuntimeWarning)
        return learn(name, train, **_learner_options(name, log, seed, model))


# ---------------------------------------------------------------------------- evaluation
def _estimators(names: Sequence[str], n_bootstrap: int, seed: int) -> list[Any]:
    from rec_env.agents.ope import ALL_ESTIMATORS

    built = []
    for name in names:
        cls = ALL_ESTIMATORS[name]
        options: dict[str, Any] = {"n_bootstrap": n_bootstrap, "random_state": seed}
        if getattr(cls, "needs_reward_model", False):
            options["n_refit_bootstrap"] = n_bootstrap
        built.append(cls(**options))
    return built


def _plain(value: Any) -> Any:
    """JSON-ready: numpy scalars as Python numbers, non-finite floats as ``None``."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return _plain(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _constant(n: int, n_actions: int, action: int) -> np.ndarray:
    probabilities = np.zeros((n, n_actions))
    probabilities[:, action] = 1.0
    return probabilities


def _targets(
    data: LoggedBanditData, policies: dict[str, Policy]
) -> list[tuple[str, str, np.ndarray]]:
    """``(name, kind, (n, A) target probabilities)``: constants, random, then the learned."""
    n, n_actions = data.n, data.n_actions
    names = data.action_names or tuple(str(a) for a in range(n_actions))
    targets = [
        (f"always {name}", "constant", _constant(n, n_actions, a)) for a, name in enumerate(names)
    ]
    targets.append(("random", "random", np.full((n, n_actions), 1.0 / n_actions)))
    for name, policy in policies.items():
        targets.append(
            (name, "learned", policy.action_probabilities(data.contexts, data.action_masks))
        )
    if data.positions is not None:  # the same choice at every position, as OBP evaluates
        positions = int(data.n_positions or 1)
        targets = [(n, k, np.repeat(t[:, :, None], positions, axis=2)) for n, k, t in targets]
    return targets


def _gain_scores(policy: Policy, data: LoggedBanditData, control: int) -> tuple[Any, Any] | None:
    """``(best treatment, its predicted gain over the control)`` per row, or ``None``."""
    from rec_env.agents.offline import OfflinePolicy

    if not isinstance(policy, OfflinePolicy):
        return None
    scores = policy.scores(data.contexts)
    treatments = np.array([a for a in range(data.n_actions) if a != control])
    best = treatments[np.argmax(scores[:, treatments], axis=1)]
    rows = np.arange(data.n)
    return best, scores[rows, best] - scores[:, control]


def _downsample(x: np.ndarray, y: np.ndarray) -> dict[str, list[float]]:
    keep = np.unique(np.linspace(0, x.size - 1, min(_CURVE_POINTS, x.size)).astype(int))
    return {"n_targeted": x[keep].tolist(), "value": y[keep].tolist()}


def _targeting(
    policy: Policy,
    data: LoggedBanditData,
    control: int,
    estimated_rewards: np.ndarray,
    binary: np.ndarray | None,
    n_bootstrap: int = 200,
    seed: int = 0,
) -> dict[str, Any]:
    """The uplift / targeting report of one learned policy on the held-out log.

    uplift@30 % gets a percentile-bootstrap 95 % interval over the matched rows (seeded);
    replicates whose top 30 % holds no treated or no control customer are counted
    (``uplift_at_30_undefined``), not dropped silently.
    """
    from rec_env.agents.evaluation.targeting import policy_value_curve, targeting_summary
    from rec_env.agents.evaluation.uplift import (
        matched_two_action,
        qini_auc_score,
        qini_curve,
        uplift_at_k,
        uplift_auc_score,
    )

    scored = _gain_scores(policy, data, control)
    if scored is None:
        return {"note": "no per-action scores (replay bandit): no ranking to report"}
    best, gain = scored
    report: dict[str, Any] = {}
    rows, treated = matched_two_action(data.actions, best, control)
    try:
        report["uplift_at_30"] = uplift_at_k(
            data.rewards[rows],
            gain[rows],
            treated,
            k=TARGET_SHARE,
            propensities=data.propensities[rows],
        )
    except ValueError as exc:
        report["uplift_at_30"] = None
        report["uplift_at_30_note"] = str(exc)
    else:
        report.update(_uplift_interval(data, rows, treated, gain, n_bootstrap, seed))
    curve = policy_value_curve(
        data.rewards, data.actions, data.propensities, gain, best, control, estimated_rewards
    )
    report["policy_value_curve"] = {
        "shares": curve.shares,
        "value": curve.value,
        "ci_low": curve.ci_low,
        "ci_high": curve.ci_high,
        "estimator": curve.estimator,
    }
    summary = targeting_summary(
        data.rewards,
        data.actions,
        data.propensities,
        gain,
        best,
        control,
        TARGET_SHARE,
        estimated_rewards=estimated_rewards,
    )
    report["top_30"] = {
        "n_targeted": summary.n_targeted,
        "rate_targeted": summary.rate_targeted,
        "rate_control": summary.rate_control,
        "incremental_rate": summary.incremental_rate,
        "incremental_ci": list(summary.incremental_ci),
        "net_incremental_reward": summary.net_incremental_revenue,
    }
    if data.n_actions == 2:
        treatment = (data.actions != control).astype(np.int64)
        x, y = qini_curve(data.rewards, gain, treatment, data.propensities)
        report["qini_curve"] = _downsample(x, y)
        if binary is not None:
            for key, score in (("qini_coefficient", qini_auc_score), ("auuc", uplift_auc_score)):
                report[key] = score(binary, gain, treatment, propensities=data.propensities)
                report[f"{key}_ci"] = _score_interval(
                    score, binary, gain, treatment, data.propensities, n_bootstrap, seed
                )
    return report


def _score_interval(
    score: Any,
    y: np.ndarray,
    gain: np.ndarray,
    treatment: np.ndarray,
    propensities: np.ndarray,
    n_bootstrap: int,
    seed: int,
) -> list[float] | None:
    """95 % percentile-bootstrap interval of a ranking score (Qini coefficient, AUUC).

    Replicates where the score is undefined (a resample without a treated or a control row)
    are left out of the percentiles; None if fewer than two are defined.
    """
    rng = np.random.default_rng(seed)
    replicates = []
    for _ in range(n_bootstrap):
        pick = rng.integers(0, y.size, y.size)
        try:
            value = score(y[pick], gain[pick], treatment[pick], propensities=propensities[pick])
        except ValueError:
            continue
        if np.isfinite(value):
            replicates.append(value)
    if len(replicates) < 2:
        return None
    low, high = np.percentile(replicates, [2.5, 97.5])
    return [float(low), float(high)]


def _uplift_interval(
    data: LoggedBanditData,
    rows: np.ndarray,
    treated: np.ndarray,
    gain: np.ndarray,
    n_bootstrap: int,
    seed: int,
) -> dict[str, Any]:
    """``uplift_at_30_ci`` (95 % percentile bootstrap) and the count of undefined replicates."""
    from rec_env.agents.evaluation.uplift import uplift_at_k

    rng = np.random.default_rng(seed)
    y, s, w = data.rewards[rows], gain[rows], data.propensities[rows]
    replicates, undefined = [], 0
    for _ in range(n_bootstrap):
        pick = rng.integers(0, rows.size, rows.size)
        try:
            replicates.append(uplift_at_k(y[pick], s[pick], treated[pick], k=TARGET_SHARE,
                                          propensities=w[pick]))  # fmt: skip
        except ValueError:
            undefined += 1
    if len(replicates) < 2:
        return {"uplift_at_30_ci": None, "uplift_at_30_undefined": undefined}
    low, high = np.percentile(replicates, [2.5, 97.5])
    return {"uplift_at_30_ci": [float(low), float(high)], "uplift_at_30_undefined": undefined}


def _binary_outcome(log: TabularLog, rows: np.ndarray | None) -> np.ndarray | None:
    """A 0/1 outcome for the Qini coefficient: the reward, or its one outcome term."""
    candidates = [log.data.rewards]
    if log.term_values.ndim == 2 and log.term_values.shape[1] == 1:
        candidates.append(log.term_values[:, 0])
    for values in candidates:
        values = values if rows is None else values[rows]
        if np.isin(values, (0.0, 1.0)).all():
            return values.astype(np.float64)
    return None


def evaluate_policies(
    data: LoggedBanditData,
    policies: dict[str, Policy],
    *,
    control: int | None,
    binary: np.ndarray | None,
    estimators: Sequence[str] = DEFAULT_ESTIMATORS,
    n_bootstrap: int = 200,
    seed: int = 0,
    progress: Progress | None = None,
    truth: np.ndarray | None = None,
) -> list[dict[str, Any]]:
    """Every policy's estimates (and targeting report) on ``data``, best DR value first.

    With ``truth`` (``(n, n_actions)`` true expected reward of every action in every row, as a
    simulator knows it), each entry also gets ``true_value``, what the estimates should recover.

    Returns:
        One JSON-ready entry per policy: ``name``, ``kind``, ``estimates`` (one
        :class:`~rec_env.agents.ope.OPEResult` dict per estimator), ``action_shares`` and, for
        learned policies on a log with a control, ``targeting``.
    """
    from rec_env.agents.ope import cross_fitted_rewards, evaluate_policy

    estimated = cross_fitted_rewards(data, random_state=seed)
    entries = []
    targets = _targets(data, policies)
    for name, kind, target in targets:
        if progress is not None:
            progress(f"evaluating {name}")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # diagnostics are in the results instead
            results = evaluate_policy(data, target, _estimators(estimators, n_bootstrap, seed))
        entry: dict[str, Any] = {
            "name": name,
            "kind": kind,
            "estimates": [r.as_dict() for r in results],
            "action_shares": target.mean(axis=0)
            if target.ndim == 2
            else target[:, :, 0].mean(axis=0),
        }
        if truth is not None:
            flat = target if target.ndim == 2 else target[:, :, 0]
            entry["true_value"] = float(np.sum(flat * truth, axis=1).mean())
        if kind == "learned" and control is not None and data.n_actions > 1:
            entry["targeting"] = _targeting(
                policies[name], data, control, estimated, binary, n_bootstrap, seed
            )
        entries.append(_plain(entry))
    _add_gains(data, targets, entries, n_bootstrap, seed)
    ranked = sorted(entries, key=lambda e: -_value(e, "dr"))
    return ranked


def _add_gains(
    data: LoggedBanditData,
    targets: list[tuple[str, str, np.ndarray]],
    entries: list[dict[str, Any]],
    n_bootstrap: int,
    seed: int,
) -> None:
    """Each learned policy's paired DR gain over the best constant policy (``gain``).

    The two values share every bootstrap resample, so the interval of the difference is the one
    to read when asking "is the learned policy better than sending the best action to all?"
    (the separate intervals overlap far more than the difference varies). The best constant is
    the one with the highest DR value on the same rows, which favours the constant.
    """
    from rec_env.agents.ope import DoublyRobust

    pairs = list(zip(entries, targets, strict=True))
    constants = [(e, t) for e, (_, kind, t) in pairs if kind == "constant"]
    if not constants:
        return
    best, baseline = max(constants, key=lambda pair: _value(pair[0], "dr"))
    estimator = DoublyRobust(n_bootstrap=n_bootstrap, random_state=seed)
    for entry, (_, kind, target) in pairs:
        if kind != "learned":
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            gain = estimator.estimate_difference(data, target, baseline)
        entry["gain"] = _plain(
            {
                "baseline": best["name"],
                "estimator": "dr",
                "value": gain.value,
                "ci_low": gain.ci_low,
                "ci_high": gain.ci_high,
                "significant": bool(gain.ci_low > 0 or gain.ci_high < 0),
            }
        )


def _value(entry: dict[str, Any], estimator: str) -> float:
    for result in entry["estimates"]:
        if result["estimator"] == estimator:
            return float(result["value"])
    return float(entry["estimates"][0]["value"])


# ---------------------------------------------------------------------------- the path
def run_offline(
    log: TabularLog,
    *,
    learners: Sequence[str] = DEFAULT_LEARNERS,
    test_log: TabularLog | None = None,
    test_share: float = 0.5,
    seed: int = 0,
    n_bootstrap: int = 200,
    estimators: Sequence[str] = DEFAULT_ESTIMATORS,
    progress: Progress | None = None,
    truth: np.ndarray | None = None,
    model: str = "ridge",
) -> OfflineRun:
    """Split (or take ``test_log``), learn each learner on the training part, evaluate held out.

    Args:
        log: The log as read by :func:`read_run_log` (the training log if ``test_log``).
        learners: Names of :data:`rec_env.agents.offline.LEARNERS`.
        test_log: A held-out log read with ``log``'s encoder; otherwise ``log`` is split.
        test_share: Share of each action's rows held out.
        seed: Seed of the split, the learners, the cross-fitting and the bootstrap.
        n_bootstrap: Bootstrap replicates of every interval.
        estimators: Names of :data:`rec_env.agents.ope.ALL_ESTIMATORS`.
        progress: Called with a short message before each step.
        truth: ``(n, n_actions)`` true expected rewards of the rows of ``log`` (of ``test_log``
            if given), in its action order: each policy's ``true_value`` on the held-out rows
            is reported next to its estimates (a synthetic campaign's truth).
        model: The learners' regressor, one of :data:`MODELS`.

    Returns:
        The :class:`OfflineRun`.

    Raises:
        ValueError: On an unknown learner or estimator name, or a bad split.
    """
    from rec_env.agents.offline import LEARNERS
    from rec_env.agents.ope import ALL_ESTIMATORS

    unknown = [n for n in learners if n not in LEARNERS]
    if unknown:
        raise ValueError(f"unknown learner {unknown[0]!r}; choose from {', '.join(LEARNERS)}")
    regressor(model, seed)  # an unknown model fails before any work
    unknown = [n for n in estimators if n not in ALL_ESTIMATORS]
    if unknown:
        raise ValueError(
            f"unknown estimator {unknown[0]!r}; choose from {', '.join(ALL_ESTIMATORS)}"
        )
    step = progress or (lambda message: None)
    step("splitting")
    train_rows = test_rows = None
    evaluated = log if test_log is None else test_log
    if truth is not None and truth.shape != (evaluated.data.n, evaluated.data.n_actions):
        raise ValueError(
            f"the truth has shape {truth.shape}, but the log has {evaluated.data.n} rows and "
            f"{evaluated.data.n_actions} actions"
        )
    if test_log is None:
        train_rows, test_rows = split_rows(log.data.actions, test_share, seed)
        train, test = log.data.subset(train_rows), log.data.subset(test_rows)
        binary = _binary_outcome(log, test_rows)
    else:
        train, test = log.data, test_log.data
        binary = _binary_outcome(test_log, None)
    policies: dict[str, Policy] = {}
    failed: dict[str, str] = {}
    for name in learners:
        step(f"learning {name}")
        try:
            policies[name] = _fit(name, train, log, seed, model)
        except ValueError as exc:
            failed[name] = str(exc)
    entries = evaluate_policies(
        test,
        policies,
        control=log.control,
        binary=binary,
        estimators=estimators,
        n_bootstrap=n_bootstrap,
        seed=seed,
        progress=progress,
        truth=None if truth is None else truth if test_rows is None else truth[test_rows],
    )
    results = {
        "file": str(log.spec.file),
        "test_file": None if test_log is None else str(test_log.spec.file),
        "reward": log.spec.reward,
        "actions": list(log.action_names),
        "control": log.control_name,
        "propensity": log.spec.propensity,
        "randomised": log.spec.randomised,
        "model": model,
        "features": list(log.encoder.names),
        "split": "file" if test_log is None else "test_file",
        "test_share": None if test_log is not None else test_share,
        "seed": seed,
        "n_train": train.n,
        "n_test": test.n,
        "n_bootstrap": n_bootstrap,
        "ranked_by": "dr",
        "best": entries[0]["name"],
        "policies": entries,
        "failed": failed,
        "unsaved": {},
    }
    return OfflineRun(log, results, policies, train_rows, test_rows)


def evaluate_saved_run(
    run_dir: Path,
    file: Path,
    *,
    learners: Sequence[str] | None = None,
    seed: int = 0,
    n_bootstrap: int = 200,
    estimators: Sequence[str] = DEFAULT_ESTIMATORS,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Evaluate the saved policies of ``run_dir`` on another log, read with its spec and encoding.

    Raises:
        ValueError: If ``run_dir`` is not a run of ``recenv offline learn``, a named learner
            was not saved in it, or the file does not fit the spec or the encoding.
    """
    from rec_env.agents.integrity import load_policy
    from rec_env.datasets.encoding import TabularEncoder
    from rec_env.datasets.log_spec import LogSpec

    spec_path = run_dir / SPEC_FILE
    if not spec_path.is_file():
        raise ValueError(f"{run_dir}: no {SPEC_FILE}; not a run of recenv offline learn")
    spec = LogSpec.model_validate({**json.loads(spec_path.read_text()), "file": file})
    spec = spec.model_copy(update={"max_rows": None})
    encoder = TabularEncoder.load(run_dir / ENCODER_FILE)
    saved = sorted(p.name for p in (run_dir / POLICIES_DIR).iterdir() if p.is_dir())
    names = list(learners) if learners else saved
    missing = [n for n in names if n not in saved]
    if missing:
        raise ValueError(
            f"{run_dir}: no saved policy {missing[0]!r} (saved: {', '.join(saved) or 'none'})"
        )
    if progress is not None:
        progress("reading the log")
    log = read_run_log(spec, encoder)
    policies = {n: _learned(load_policy(run_dir / POLICIES_DIR / n)) for n in names}
    entries = evaluate_policies(
        log.data,
        policies,
        control=log.control,
        binary=_binary_outcome(log, None),
        estimators=estimators,
        n_bootstrap=n_bootstrap,
        seed=seed,
        progress=progress,
    )
    return {
        "run": str(run_dir),
        "file": str(file),
        "reward": spec.reward,
        "actions": list(log.action_names),
        "control": log.control_name,
        "seed": seed,
        "n_test": log.data.n,
        "n_bootstrap": n_bootstrap,
        "ranked_by": "dr",
        "best": entries[0]["name"],
        "policies": entries,
        "failed": {},
        "unsaved": {},
    }


def _learned(policy: Policy) -> Policy:
    """The policy over the log's own actions (a saved :class:`CatalogPolicy` holds it)."""
    from rec_env.agents.offline.catalog import CatalogPolicy

    return policy.inner if isinstance(policy, CatalogPolicy) else policy


# ---------------------------------------------------------------------------- files
def write_run(run: OfflineRun, directory: Path) -> list[Path]:
    """Write the run directory: spec, encoder, split, saved policies, results and plots.

    A policy that cannot be saved (a model neither linear nor a tree model) is recorded under
    ``unsaved`` in ``results.json`` with the reason.
    """
    directory.mkdir(parents=True, exist_ok=True)
    spec = run.log.spec.model_dump(mode="json")
    spec["file"] = str(Path(spec["file"]).resolve())
    if spec.get("action_features"):
        spec["action_features"] = str(Path(spec["action_features"]).resolve())
    paths = [directory / SPEC_FILE, directory / ENCODER_FILE, directory / SPLIT_FILE]
    paths[0].write_text(json.dumps(spec, indent=2), encoding="utf-8")
    run.log.encoder.save(paths[1])
    split: dict[str, Any] = {"method": run.results["split"], "seed": run.results["seed"]}
    if run.test_rows is not None and run.train_rows is not None:
        split.update(
            stratified_by="action",
            test_share=run.results["test_share"],
            train_rows=run.train_rows.tolist(),
            test_rows=run.test_rows.tolist(),
        )
    else:
        split["test_file"] = run.results["test_file"]
    paths[2].write_text(json.dumps(split), encoding="utf-8")
    unsaved = run.results["unsaved"]
    settings = _served_world(run.log)
    for name, policy in run.policies.items():
        target = directory / POLICIES_DIR / name
        try:
            if settings is not None and policy.n_actions < settings.build_model().actions.n_actions:
                policy = _over_catalog(policy, settings)
            policy.save(target)
            paths.append(target)
        except ValueError as exc:
            unsaved[name] = str(exc)
            shutil.rmtree(target, ignore_errors=True)
            continue
        if settings is not None:
            _write_run_info(target, policy, name, run, settings)
    for entry in run.results["policies"]:
        if entry["name"] in run.policies:
            entry["saved"] = entry["name"] not in unsaved
    return paths + write_report(run.results, directory)


def _served_world(log: TabularLog) -> Any:
    """The strategy world's settings if the log has its 16 features and catalog actions.

    Only then can ``recenv serve`` serve a learned policy: it checks that the run's features and
    actions are those of the world it simulates. A log of some of the catalog's actions (in the
    catalog's order) is served through :class:`CatalogPolicy`; otherwise ``None``.
    """
    from rec_env.features import FEATURE_NAMES
    from rec_env.settings import EnvSettings

    settings = EnvSettings()
    if tuple(log.encoder.names) != tuple(FEATURE_NAMES):
        return None
    catalog = settings.build_model().actions.names
    if not set(log.action_names) <= set(catalog) or len(set(log.action_names)) < 2:
        return None
    return settings


def _over_catalog(policy: Policy, settings: Any) -> Policy:
    """``policy`` of some catalog actions as a :class:`CatalogPolicy` over the whole catalog."""
    from rec_env.agents.offline.catalog import CatalogPolicy

    actions = settings.build_model().actions
    return CatalogPolicy.wrap(policy, actions.names, actions.channel_names)


def _write_run_info(
    directory: Path, policy: Policy, name: str, run: OfflineRun, settings: Any
) -> None:
    """``run.json`` next to a saved policy, so that ``recenv serve --run`` can load it."""
    from rec_env import __version__
    from rec_env.agents.integrity import policy_digests
    from rec_env.agents.runs import RunInfo, world_env_id, write_run_info

    entry = next(e for e in run.results["policies"] if e["name"] == name)
    dr = next((r for r in entry["estimates"] if r["estimator"] == "dr"), None)
    write_run_info(
        directory,
        RunInfo(
            algorithm=policy.algorithm,
            env_id=world_env_id(settings),
            env=settings.to_dict(),
            feature_names=list(policy.features.names),
            action_names=list(policy.action_names),
            hyperparameters={"learner": name, "source": "recenv offline learn"},
            seed=int(run.results["seed"]),
            recenv_version=__version__,
            **policy_digests(directory, policy),
            final_metrics={} if dr is None else {"held_out_dr": dr},
        ),
    )


_GAIN_FIELDS = ("baseline", "value", "ci_low", "ci_high", "significant")
"""Columns of the paired DR gain over the best constant (empty for other policies)."""


def _csv_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for entry in results["policies"]:
        targeting = entry.get("targeting", {})
        for estimate in entry["estimates"]:
            rows.append(
                {
                    "policy": entry["name"],
                    "kind": entry["kind"],
                    **estimate,
                    "uplift_at_30": targeting.get("uplift_at_30"),
                    "uplift_at_30_ci_low": (targeting.get("uplift_at_30_ci") or [None, None])[0],
                    "uplift_at_30_ci_high": (targeting.get("uplift_at_30_ci") or [None, None])[1],
                    "qini_coefficient": targeting.get("qini_coefficient"),
                    "qini_coefficient_ci_low": (targeting.get("qini_coefficient_ci") or [None])[0],
                    "qini_coefficient_ci_high": (
                        targeting.get("qini_coefficient_ci") or [None] * 2
                    )[1],
                    "auuc": targeting.get("auuc"),
                    "auuc_ci_low": (targeting.get("auuc_ci") or [None])[0],
                    "auuc_ci_high": (targeting.get("auuc_ci") or [None] * 2)[1],
                    **{f"gain_{k}": entry.get("gain", {}).get(k) for k in _GAIN_FIELDS},
                }
            )
    return rows


def write_report(results: dict[str, Any], directory: Path) -> list[Path]:
    """Write ``results.json``, ``results.csv`` and the plots of ``results`` into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = [directory / RESULTS_FILE, directory / RESULTS_CSV]
    paths[0].write_text(json.dumps(results, indent=2), encoding="utf-8")
    rows = _csv_rows(results)
    with paths[1].open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return paths + _plots(results, directory)


def saved_curves(
    results: Mapping[str, Any],
) -> tuple[dict[str, Any], dict[str, tuple[np.ndarray, np.ndarray]]]:
    """The policy-value and Qini curves of saved ``results`` (``results.json``), by policy."""
    from rec_env.agents.evaluation.targeting import PolicyValueCurve

    curves, qini = {}, {}
    for entry in results["policies"]:
        targeting = entry.get("targeting", {})
        if "policy_value_curve" in targeting:
            c = targeting["policy_value_curve"]
            shares = np.asarray(c["shares"], dtype=np.float64)
            curves[entry["name"]] = PolicyValueCurve(
                shares,
                (shares * results["n_test"]).astype(np.int64),
                np.asarray(c["value"], dtype=np.float64),
                np.asarray(c["ci_low"], dtype=np.float64),
                np.asarray(c["ci_high"], dtype=np.float64),
                c["estimator"],
                results["n_test"],
            )
        if "qini_curve" in targeting:
            q = targeting["qini_curve"]
            qini[entry["name"]] = (np.asarray(q["n_targeted"]), np.asarray(q["value"]))
    return curves, qini


def _plots(results: dict[str, Any], directory: Path) -> list[Path]:
    """``policy_value.png`` (and ``qini.png`` for two actions) of the learned policies."""
    from rec_env.agents.evaluation.uplift_plots import (
        plot_policy_value_curves,
        plot_uplift_curves,
    )

    curves, qini = saved_curves(results)
    paths = []
    if curves:
        constants = [e for e in results["policies"] if e["kind"] == "constant"]
        do_nothing = f"always {results['control']}"  # always drawn, with the best constants
        chosen = [e for e in constants if e["name"] == do_nothing]
        chosen += [e for e in constants if e["name"] != do_nothing][:2]
        references = {e["name"]: _value(e, "dr") for e in chosen}
        paths.append(
            plot_policy_value_curves(
                curves,
                directory / "policy_value.png",
                references=references,
                value_label=f"reward per customer ({results['reward']})",
                title=f"Targeting the top share, rest get {results['control']} (held out)",
            )
        )
    if qini:
        paths.append(
            plot_uplift_curves(
                qini,
                directory / "qini.png",
                outcome=f"reward ({results['reward']})",
            )
        )
    return paths
