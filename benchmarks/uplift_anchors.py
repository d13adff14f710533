"""Hillstrom: recenv's targeting policies next to scikit-uplift and causalml, on one split.

Protocol:

1. One seeded 50/50 split of the 64,000 customers, stratified by the logged action.
2. Every contender learns on the training half only:

   * anchors (in their own virtualenv, ``benchmarks/.venv-uplift``, created on first use with
     pinned wheels; see :mod:`_uplift_anchor_models`): scikit-uplift's class transformation and
     two-model approach (one two-action model per e-mail, LightGBM base learners), causalml's
     X-learner (all three actions at once, LightGBM), uplift tree and uplift random forest (KL
     splits; 0/1 outcomes only, so visit only);
   * recenv (the registry :data:`RECENV_CONTENDERS`, to which new learners are added): the
     reward-model policy (one ridge regression per action, the ``recenv bench hillstrom``
     learner), "Mens e-mail to everyone" and "no e-mail".

3. Every contender's policy is valued on the held-out half with the same estimators: IPS and
   DR (ridge reward model cross-fitted on the held-out half), 95 % bootstrap intervals. An
   uplift model becomes a policy by sending each customer the e-mail with the highest predicted
   uplift, if that uplift is positive: for ``visit`` the visit uplift, for ``spend`` the spend
   uplift, for ``profit`` (spend x 30 % margin - $0.10 per e-mail) margin x spend uplift - cost.
4. Uplift metrics on the held-out half (visit, scikit-uplift's definitions, implemented in
   :mod:`rec_env.agents.evaluation.uplift` and cross-checked here against scikit-uplift's own
   numbers on the same predictions): uplift@30 % (strategy ``overall``), Qini coefficient and
   AUUC for Womens vs no e-mail (the issue's anchor: 0.066 for class transformation) and Mens
   vs no e-mail, and the multi-action Qini coefficient (recommended e-mail vs no e-mail).
5. Plots (Qini curves, policy-value curves by share targeted) and ``results.json`` /
   ``results.csv`` in ``--out``.

Run from the repository root (the first run installs the anchors, ~2 min)::

    python benchmarks/uplift_anchors.py --out runs/uplift_anchors
"""

from __future__ import annotations

import argparse
import csv
import importlib
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rec_env.agents.evaluation.targeting import policy_value_curve, targeting_summary
from rec_env.agents.evaluation.uplift import (
    matched_two_action,
    qini_auc_score,
    qini_curve,
    ranking,
    uplift_at_k,
    uplift_auc_score,
)
from rec_env.agents.evaluation.uplift_plots import plot_policy_value_curves, plot_uplift_curves
from rec_env.agents.ope import DoublyRobust, InverseProbabilityWeighting
from rec_env.datasets import (
    EMAIL_COST,
    HILLSTROM_ACTIONS,
    PROFIT_MARGIN,
    LoggedBanditData,
    load_hillstrom,
)

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv-uplift"
WORKER = ROOT / "_uplift_anchor_models.py"
PINS = (
    "scikit-uplift==0.5.1",
    "causalml==0.18.0",
    "lightgbm==4.7.0",
    "xgboost==3.2.0",
    "category_encoders==2.11.2",
)
"""Anchor versions; ``--only-binary=:all:`` (wheels only) is enforced on install."""

REWARDS = ("visit", "spend", "profit")
CONTROL = HILLSTROM_ACTIONS.index("no_email")
MENS = HILLSTROM_ACTIONS.index("mens_email")
WOMENS = HILLSTROM_ACTIONS.index("womens_email")
ANCHOR_OUTCOME = {"visit": "visit", "spend": "spend", "profit": "spend"}
"""Outcome each anchor is fitted on for each reward (profit is derived from spend uplift)."""


@dataclass(frozen=True)
class Contender:
    """A policy's held-out decisions and, if it has them, its predicted uplift.

    Attributes:
        target: ``(n_test, n_actions)`` action probabilities on the held-out customers.
        uplift: ``(n_test, n_actions)`` predicted reward gain of each action over no e-mail
            (0 in the control column), or None for policies without a score.
    """

    target: np.ndarray
    uplift: np.ndarray | None = None


RecenvBuilder = Callable[[LoggedBanditData, np.ndarray, int], Contender]
"""``(training log of one reward, held-out contexts, seed) -> Contender``."""


def _learner(name: str, **options: Any) -> RecenvBuilder:
    """A builder of the offline learner ``name`` (:func:`rec_env.agents.offline.learn`)."""

    def build(train: LoggedBanditData, test_contexts: np.ndarray, seed: int) -> Contender:
        from rec_env.agents.offline import learn

        policy = learn(name, train, random_state=seed, **options)
        scores = policy.scores(test_contexts)  # reward or uplift per action: gain = difference
        control = list(train.action_names or ()).index("no_email")
        return Contender(policy.action_probabilities(test_contexts), scores - scores[:, [control]])

    return build


def _boosting() -> Any:
    """Gradient boosting like the anchors' LightGBM (scikit-learn's histogram version)."""
    from sklearn.ensemble import HistGradientBoostingRegressor

    return HistGradientBoostingRegressor(max_iter=200, learning_rate=0.05, random_state=0)


def _constant(action: int) -> RecenvBuilder:
    def build(train: LoggedBanditData, test_contexts: np.ndarray, seed: int) -> Contender:
        return Contender(np.eye(train.n_actions)[np.full(len(test_contexts), action)])

    return build


RECENV_CONTENDERS: dict[str, RecenvBuilder] = {
    "recenv_reward_model": _learner("reward_model"),
    "recenv_t_learner": _learner("t_learner", control="no_email"),
    "recenv_x_learner": _learner("x_learner", control="no_email"),
    "recenv_dr_learner": _learner("dr_learner", control="no_email"),
    "recenv_ipw_dr": _learner("ipw", objective="dr"),
    "recenv_x_learner_gbm": _learner(
        "x_learner", control="no_email", estimator=_boosting(), effect_estimator=_boosting()
    ),
    "recenv_dr_learner_gbm": _learner(
        "dr_learner", control="no_email", estimator=_boosting(), effect_estimator=_boosting()
    ),
}
"""recenv's learners; add one as ``name -> builder`` (see :data:`RecenvBuilder`)."""

CONSTANT_CONTENDERS: dict[str, RecenvBuilder] = {
    "recenv_mens_to_everyone": _constant(MENS),
    "recenv_no_email": _constant(CONTROL),
}
"""The constant campaigns (three-action catalog only)."""


def stratified_split(actions: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded 50/50 split within each action (the training half gets any odd row)."""
    rng = np.random.default_rng(seed)
    train, test = [], []
    for action in np.unique(actions):
        rows = rng.permutation(np.flatnonzero(actions == action))
        half = (rows.size + 1) // 2
        train.append(rows[:half])
        test.append(rows[half:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def _peer_venv() -> Any:
    """``benchmarks/_peer_venv.py``, also when this file is imported from elsewhere (tests)."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    return importlib.import_module("_peer_venv")


def ensure_venv(say: Callable[[str], None]) -> Path:
    """The anchors' python: ``benchmarks/.venv-uplift`` with :data:`PINS`."""
    return _peer_venv().ensure_venv(VENV, PINS, say)


def run_anchors(
    data: dict[str, LoggedBanditData], train: np.ndarray, test: np.ndarray, seed: int
) -> tuple[dict[str, np.ndarray], dict[str, float], dict[str, float]]:
    """Fit the anchors in their virtualenv; ``(uplift, seconds, sklift checks)`` by key."""
    python = ensure_venv(print)
    visit = data["visit"]
    with tempfile.TemporaryDirectory() as tmp:
        inputs, outputs = Path(tmp) / "in.npz", Path(tmp) / "out.npz"
        np.savez(
            inputs,
            seed=seed,
            control=CONTROL,
            n_actions=visit.n_actions,
            outcomes=np.array(["visit", "spend"]),
            x_train=visit.contexts[train],
            actions_train=visit.actions[train],
            x_test=visit.contexts[test],
            actions_test=visit.actions[test],
            y_train_visit=visit.rewards[train],
            y_train_spend=data["spend"].rewards[train],
            y_test_visit=visit.rewards[test],
        )
        subprocess.run(
            [str(python), "-W", "ignore", str(WORKER), "fit", str(inputs), str(outputs)],
            check=True,
        )
        with np.load(outputs) as saved:
            parts: dict[str, dict[str, Any]] = {"uplift": {}, "seconds": {}, "check": {}}
            for key in saved.files:
                kind, name = key.split(":", 1)
                parts[kind][name] = saved[key] if kind == "uplift" else float(saved[key])
    return parts["uplift"], parts["seconds"], parts["check"]


def published_protocol(
    data: LoggedBanditData, learners: dict[str, RecenvBuilder], seed: int
) -> dict[str, float]:
    """Uplift@30 % on the split of the notebook behind the 0.066 anchor, for everyone.

    The anchor's notebook is rerun in the virtualenv (``published`` in the worker); recenv's
    contenders learn on the same training rows (Womens e-mail vs none only, as there).
    """
    from importlib import resources

    python = ensure_venv(print)
    csv_path = resources.files("rec_env.datasets").joinpath("hillstrom.csv.gz")
    with tempfile.TemporaryDirectory() as tmp:
        output = Path(tmp) / "published.npz"
        subprocess.run(
            [str(python), "-W", "ignore", str(WORKER), "published", str(csv_path), str(output)],
            check=True,
        )
        with np.load(output) as saved:
            train, test = saved["train_rows"], saved["test_rows"]
            anchor_uplift, anchor_score = saved["uplift"], float(saved["uplift_at_30"])
    if (data.actions[np.r_[train, test]] == MENS).any():
        raise RuntimeError("the published split holds Mens e-mail rows: wrong file or rows")
    two_actions = np.where(data.actions == WOMENS, 0, 1)  # 0: Womens e-mail, 1: none
    log = LoggedBanditData(
        data.contexts,
        two_actions,
        np.full(data.n, 0.5),
        data.rewards,
        2,
        action_names=("womens_email", "no_email"),
    )
    treated, visits = 1 - two_actions[test], data.rewards[test]
    out = {
        "uplift_at_30_half_width_ct": uplift_at_30_half_width(visits, anchor_uplift, treated),
        "sklift_class_transformation_published": anchor_score,
        "sklift_class_transformation_recenv_metric": uplift_at_k(
            visits, anchor_uplift, treated, "overall", k=0.3
        ),
    }
    for name, build in learners.items():
        contender = build(log.subset(np.sort(train)), data.contexts[test], seed)
        if contender.uplift is not None:
            out[name] = uplift_at_k(visits, contender.uplift[:, 0], treated, "overall", k=0.3)
    return out


def uplift_at_30_half_width(visits: np.ndarray, score: np.ndarray, treated: np.ndarray) -> float:
    """Half-width of a 95 % normal interval of uplift@30 % (``overall``), given the ranking."""
    top = ranking(score)[: int(0.3 * score.size)]
    y, t = visits[top], treated[top]
    variance = sum(y[t == g].var(ddof=1) / (t == g).sum() for g in (0, 1))
    return 1.96 * float(np.sqrt(variance))


def uplift_policy(uplift: np.ndarray, reward: str) -> np.ndarray:
    """One-hot targeting: the e-mail with the largest predicted gain if it is positive."""
    gain = uplift * (PROFIT_MARGIN if reward == "profit" else 1.0)
    if reward == "profit":
        gain = gain - EMAIL_COST * (np.arange(gain.shape[1]) != CONTROL)
    gain = gain.copy()
    gain[:, CONTROL] = 0.0
    return np.eye(gain.shape[1])[np.argmax(gain, axis=1)]


_CHECKED = {"uplift_at_30": "uplift_at_30", "qini": "qini_auc", "auuc": "uplift_auc"}
"""Our metric name → the worker's name of scikit-uplift's value of it."""


def uplift_metrics(uplift: np.ndarray, actions: np.ndarray, visits: np.ndarray) -> dict[str, float]:
    """Visit uplift@30 %, Qini coefficient and AUUC per e-mail vs none, and multi-action Qini."""
    out: dict[str, float] = {}
    for label, arm in (("womens", WOMENS), ("mens", MENS)):
        rows = (actions == arm) | (actions == CONTROL)
        t = (actions[rows] == arm).astype(int)
        y, score = visits[rows], uplift[rows, arm]
        out[f"uplift_at_30_{label}"] = uplift_at_k(y, score, t, "overall", k=0.3)
        out[f"qini_{label}"] = qini_auc_score(y, score, t)
        out[f"auuc_{label}"] = uplift_auc_score(y, score, t)
    treatments = np.delete(uplift, CONTROL, axis=1)
    recommended = np.delete(np.arange(uplift.shape[1]), CONTROL)[np.argmax(treatments, axis=1)]
    rows, t = matched_two_action(actions, recommended, CONTROL)
    out["qini_multi"] = qini_auc_score(visits[rows], treatments.max(axis=1)[rows], t)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-bootstrap", type=int, default=500)
    parser.add_argument("--out", type=Path, default=Path("runs/uplift_anchors"))
    parser.add_argument("--skip-anchors", action="store_true", help="recenv contenders only")
    parser.add_argument(
        "--skip-published", action="store_true", help="skip the anchor notebook's own split"
    )
    parser.add_argument(
        "--recenv",
        default=",".join(RECENV_CONTENDERS),
        help=f"comma-separated recenv learners (default all: {', '.join(RECENV_CONTENDERS)})",
    )
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()

    data = {reward: load_hillstrom(reward) for reward in REWARDS}
    train, test = stratified_split(data["visit"].actions, args.seed)
    test_data = {reward: d.subset(test) for reward, d in data.items()}
    contexts = data["visit"].contexts[test]
    actions, visits = data["visit"].actions[test], data["visit"].rewards[test]

    # Predicted uplift per contender and reward (None: a policy without a score).
    uplifts: dict[str, dict[str, np.ndarray | None]] = {}
    targets: dict[str, dict[str, np.ndarray]] = {}
    chosen = {name: RECENV_CONTENDERS[name] for name in args.recenv.split(",") if name}
    for name, build in {**chosen, **CONSTANT_CONTENDERS}.items():
        for reward in REWARDS:
            contender = build(data[reward].subset(train), contexts, args.seed)
            uplifts.setdefault(name, {})[reward] = contender.uplift
            targets.setdefault(name, {})[reward] = contender.target
    seconds: dict[str, float] = {}
    checks: dict[str, float] = {}
    if not args.skip_anchors:
        anchor_uplift, seconds, checks = run_anchors(data, train, test, args.seed)
        for key, uplift in anchor_uplift.items():
            name, outcome = key.split("/")
            for reward in REWARDS:
                if ANCHOR_OUTCOME[reward] == outcome:
                    uplifts.setdefault(name, {})[reward] = uplift
                    targets.setdefault(name, {})[reward] = uplift_policy(uplift, reward)

    published: dict[str, float] = {}
    if not (args.skip_anchors or args.skip_published):
        visit = data["visit"]
        published = published_protocol(visit, chosen, args.seed)
    rows: list[dict[str, Any]] = []
    curves: dict[str, dict[str, Any]] = {"visit": {}, "spend": {}}
    references: dict[str, dict[str, float]] = {"visit": {}, "spend": {}}
    check_diffs: list[float] = []
    for reward in REWARDS:
        log = test_data[reward]
        dr = DoublyRobust(n_bootstrap=args.n_bootstrap, random_state=args.seed)
        ips = InverseProbabilityWeighting(n_bootstrap=args.n_bootstrap, random_state=args.seed)
        model = dr.fit_rewards(log)
        mens = np.eye(3)[np.full(log.n, MENS)]
        for name in targets:
            if reward not in targets[name]:
                continue
            target = targets[name][reward]
            row: dict[str, Any] = {"contender": name, "reward": reward}
            row["ips"] = ips.estimate(log, target).as_dict()
            row["dr"] = dr.estimate(log, target, estimated_rewards=model).as_dict()
            row["dr_gain_vs_mens"] = dr.estimate_difference(
                log, target, mens, estimated_rewards=model
            ).as_dict()
            row["share_emailed"] = float(1.0 - target[:, CONTROL].mean())
            uplift = uplifts[name].get(reward)
            if uplift is not None and reward in curves:
                score = np.delete(uplift, CONTROL, axis=1)
                recommended = np.delete(np.arange(3), CONTROL)[np.argmax(score, axis=1)]
                curve_args = (log.rewards, log.actions, log.propensities, score.max(axis=1))
                curves[reward][name] = policy_value_curve(
                    *curve_args, recommended, CONTROL, estimated_rewards=model
                )
                value = 1.0 if reward == "visit" else PROFIT_MARGIN
                row["top30"] = targeting_summary(
                    *curve_args, recommended, CONTROL, 0.3, value, EMAIL_COST, model
                ).__dict__
            if uplift is not None and reward == "visit":
                row.update(uplift_metrics(uplift, actions, visits))
                for ours, theirs in _CHECKED.items():
                    for arm, label in ((MENS, "mens"), (WOMENS, "womens")):
                        ref = checks.get(f"{name}/visit/{arm}/{theirs}")
                        if ref is not None:
                            check_diffs.append(abs(ref - row[f"{ours}_{label}"]))
            if reward in references and name in ("recenv_mens_to_everyone", "recenv_no_email"):
                references[reward][name] = row["dr"]["value"]
            rows.append(row)
    report(rows, curves, references, actions, visits, uplifts, args, seconds, check_diffs, start)
    if published:
        print("\nuplift@30 % (Womens vs none, visit) on the anchor notebook's own split:")
        for name, value in published.items():
            print(f"  {name}: {value:.4f}")
        results = json.loads((args.out / "results.json").read_text())
        results["published_protocol_uplift_at_30"] = published
        (args.out / "results.json").write_text(json.dumps(results, indent=1) + "\n")


def _cell(row: dict[str, Any], key: str = "dr") -> str:
    """``value [low, high]`` of one estimate of a result row, or ``-``."""
    if not row:
        return "-"
    result = row[key]
    return f"{result['value']:.4f} [{result['ci_low']:.4f}, {result['ci_high']:.4f}]"


def report(
    rows: list[dict[str, Any]],
    curves: dict[str, dict[str, Any]],
    references: dict[str, dict[str, float]],
    actions: np.ndarray,
    visits: np.ndarray,
    uplifts: dict[str, dict[str, np.ndarray | None]],
    args: argparse.Namespace,
    seconds: dict[str, float],
    check_diffs: list[float],
    start: float,
) -> None:
    """Print the markdown table and write the plots, JSON and CSV."""
    by_name: dict[str, dict[str, dict[str, Any]]] = {}
    for row in rows:
        by_name.setdefault(row["contender"], {})[row["reward"]] = row
    header = (
        "| contender | visit DR [95 % CI] | spend DR (USD) | profit DR (USD) "
        "| profit: gain vs Mens-to-all | % e-mailed (profit) "
        "| uplift@30 % W | Qini W | AUUC W | uplift@30 % M | Qini M | Qini multi |"
    )
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    metrics = ("uplift_at_30_womens", "qini_womens", "auuc_womens")
    metrics += ("uplift_at_30_mens", "qini_mens", "qini_multi")
    for name, per_reward in by_name.items():
        visit, spend, profit = (per_reward.get(r, {}) for r in REWARDS)
        cells = [name, _cell(visit), _cell(spend), _cell(profit)]
        cells += [_cell(profit, "dr_gain_vs_mens")]
        cells += [f"{100 * profit['share_emailed']:.1f}" if profit else "-"]
        cells += [f"{visit[key]:.4f}" if key in visit else "-" for key in metrics]
        print("| " + " | ".join(cells) + " |")
    if check_diffs:
        print(
            f"\nscikit-uplift cross-check on the anchors' predictions: max |diff| = "
            f"{max(check_diffs):.1e} over {len(check_diffs)} numbers"
        )
    rows_w = (actions == WOMENS) | (actions == CONTROL)
    t_w = (actions[rows_w] == WOMENS).astype(int)
    qini = {
        name: qini_curve(visits[rows_w], u["visit"][rows_w, WOMENS], t_w)
        for name, u in uplifts.items()
        if u.get("visit") is not None
    }
    if qini:
        plot_uplift_curves(
            qini,
            args.out / "qini_womens_visit.png",
            outcome="visits",
            title="Hillstrom, Womens e-mail vs none: Qini curves (held-out half)",
        )
    labels = {"visit": "visits per customer", "spend": "USD spent per customer"}
    for reward, per_model in curves.items():
        if per_model:
            plot_policy_value_curves(
                per_model,
                args.out / f"policy_value_{reward}.png",
                value_label=labels[reward],
                references={
                    {
                        "recenv_mens_to_everyone": "Mens e-mail to everyone",
                        "recenv_no_email": "no e-mail",
                    }[k]: v
                    for k, v in references[reward].items()
                },
                title=f"Hillstrom: {labels[reward]} by share e-mailed (DR, held-out half)",
            )
    document = {
        "command": " ".join(["python", *sys.argv]),
        "seed": args.seed,
        "n_bootstrap": args.n_bootstrap,
        "anchor_pins": PINS,
        "anchor_fit_seconds": seconds,
        "sklift_crosscheck_max_abs_diff": max(check_diffs) if check_diffs else None,
        "rows": rows,
        "seconds": time.perf_counter() - start,
    }
    (args.out / "results.json").write_text(json.dumps(document, indent=1, default=float) + "\n")
    with (args.out / "results.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["contender", "reward", "estimator", "value", "ci_low", "ci_high"])
        for row in rows:
            for key in ("ips", "dr", "dr_gain_vs_mens"):
                result = row[key]
                writer.writerow(
                    [
                        row["contender"],
                        row["reward"],
                        key,
                        result["value"],
                        result["ci_low"],
                        result["ci_high"],
                    ]
                )
    print(
        f"\nwrote {args.out}/results.json, results.csv and plots in "
        f"{time.perf_counter() - start:.0f} s"
    )


if __name__ == "__main__":
    main()
