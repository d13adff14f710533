"""The anchors' side of ``benchmarks/uplift_anchors.py``, run by the python of its virtualenv.

It imports only numpy, scikit-learn, scikit-uplift and causalml (never ``rec_env``), so that the
peer libraries stay out of the project's environment. Two commands:

``reference OUT.json``
    scikit-uplift's metrics on small fixed cases, the reference of ``tests/test_uplift.py``.
``published CSV OUT.npz``
    reruns the notebook behind the issue's anchor (scikit-uplift's ``pipeline_usage_EN``:
    Womens e-mail vs none, visit, ``train_test_split(test_size=0.5, random_state=42)``,
    CatBoostEncoder + ``ClassTransformation(XGBClassifier(max_depth=2, random_state=42))``,
    uplift@30 % ``overall``; published 0.0660) and writes its split and predictions.
``fit IN.npz OUT.npz``
    fits every anchor on the training half written by ``uplift_anchors.py`` and writes each
    anchor's predicted uplift of every treatment over the control on the held-out half, and
    scikit-uplift's own uplift@30 % / Qini / AUUC of those predictions as a cross-check.
"""

from __future__ import annotations

import json
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

REFERENCE_COMMAND = (
    "benchmarks/.venv-uplift/bin/python benchmarks/_uplift_anchor_models.py "
    "reference tests/data/uplift_sklift_reference.json"
)


def _reference_cases() -> list[dict[str, Any]]:
    """Small seeded cases with ties in the scores and unequal group sizes."""
    rng = np.random.default_rng(12)
    cases = []
    for name, n, p_treat in (("balanced_ties", 40, 0.5), ("unbalanced", 57, 0.3)):
        treatment = (rng.random(n) < p_treat).astype(int)
        y = (rng.random(n) < 0.3 + 0.2 * treatment).astype(int)
        uplift = np.round(rng.normal(size=n), 1)
        cases.append(
            {
                "name": name,
                "y": y.tolist(),
                "treatment": treatment.tolist(),
                "uplift": uplift.tolist(),
            }
        )
    return cases


def write_reference(path: str) -> None:
    """scikit-uplift's metrics on :func:`_reference_cases`, as JSON."""
    import sklift
    from sklift import metrics

    cases = _reference_cases()
    for case in cases:
        y, t, u = (np.array(case[key]) for key in ("y", "treatment", "uplift"))
        case["qini_curve"] = [a.tolist() for a in metrics.qini_curve(y, u, t)]
        case["uplift_curve"] = [a.tolist() for a in metrics.uplift_curve(y, u, t)]
        case["perfect_qini_curve"] = [a.tolist() for a in metrics.perfect_qini_curve(y, t)]
        case["perfect_uplift_curve"] = [a.tolist() for a in metrics.perfect_uplift_curve(y, t)]
        case["qini_auc_score"] = float(metrics.qini_auc_score(y, u, t))
        case["qini_auc_score_no_negative"] = float(
            metrics.qini_auc_score(y, u, t, negative_effect=False)
        )
        case["uplift_auc_score"] = float(metrics.uplift_auc_score(y, u, t))
        case["uplift_at_k"] = {
            f"{strategy}_{k}": float(metrics.uplift_at_k(y, u, t, strategy=strategy, k=k))
            for strategy in ("overall", "by_group")
            for k in (0.3, 0.5, 7)
        }
    document = {
        "command": REFERENCE_COMMAND,
        "scikit_uplift": sklift.__version__,
        "numpy": np.__version__,
        "cases": cases,
    }
    # One line per case: small diffs, still readable.
    body = ",\n  ".join(json.dumps(case) for case in cases)
    header = json.dumps({k: v for k, v in document.items() if k != "cases"})[:-1]
    Path(path).write_text(f'{header}, "cases": [\n  {body}\n]}}\n')


def _lgbm(kind: str, seed: int) -> Any:
    """The base learner every meta-learner uses: a small LightGBM model."""
    import lightgbm

    cls = lightgbm.LGBMClassifier if kind == "classifier" else lightgbm.LGBMRegressor
    return cls(
        n_estimators=200,
        learning_rate=0.05,
        num_leaves=15,
        min_child_samples=100,
        random_state=seed,
        n_jobs=1,
        verbose=-1,
    )


def _per_arm(
    fit_predict: Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray], np.ndarray],
    x_train: np.ndarray,
    actions: np.ndarray,
    outcome: np.ndarray,
    x_test: np.ndarray,
    control: int,
    n_actions: int,
) -> np.ndarray:
    """``(n_test, n_actions)`` uplift over the control, one two-action model per treatment."""
    uplift = np.zeros((x_test.shape[0], n_actions))
    for arm in range(n_actions):
        if arm == control:
            continue
        rows = (actions == arm) | (actions == control)
        treated = (actions[rows] == arm).astype(int)
        uplift[:, arm] = fit_predict(x_train[rows], outcome[rows], treated, x_test)
    return uplift


def _sklift_class_transformation(seed: int, binary: bool) -> Callable[..., np.ndarray]:
    from sklift.models import ClassTransformation, ClassTransformationReg

    def fit_predict(x: np.ndarray, y: np.ndarray, t: np.ndarray, x_test: np.ndarray) -> np.ndarray:
        if binary:
            model = ClassTransformation(estimator=_lgbm("classifier", seed))
        else:
            # The regression variant needs the treatment propensity (here the observed share).
            model = ClassTransformationReg(
                estimator=_lgbm("regressor", seed),
                propensity_val=float(t.mean()),
            )
        model.fit(x, y, t)
        return np.asarray(model.predict(x_test), dtype=np.float64)

    return fit_predict


def _sklift_two_models(seed: int, binary: bool) -> Callable[..., np.ndarray]:
    from sklift.models import TwoModels

    kind = "classifier" if binary else "regressor"

    def fit_predict(x: np.ndarray, y: np.ndarray, t: np.ndarray, x_test: np.ndarray) -> np.ndarray:
        model = TwoModels(
            estimator_trmnt=_lgbm(kind, seed), estimator_ctrl=_lgbm(kind, seed), method="vanilla"
        )
        model.fit(x, y, t)
        return np.asarray(model.predict(x_test), dtype=np.float64)

    return fit_predict


def _causalml_multi(
    name: str,
    seed: int,
    binary: bool,
    x: np.ndarray,
    actions: np.ndarray,
    y: np.ndarray,
    x_test: np.ndarray,
    control: int,
    n_actions: int,
) -> np.ndarray | None:
    """The causalml learners, fitted once on all actions (they take several treatments natively)."""
    labels = np.array([f"a{a}" for a in range(n_actions)])
    treatment = labels[actions]
    control_name = f"a{control}"
    if name == "causalml_x_learner":
        from causalml.inference.meta import BaseXClassifier, BaseXRegressor

        if binary:
            model = BaseXClassifier(
                outcome_learner=_lgbm("classifier", seed),
                effect_learner=_lgbm("regressor", seed),
                control_name=control_name,
            )
        else:
            model = BaseXRegressor(learner=_lgbm("regressor", seed), control_name=control_name)
        # Randomised with equal shares: the true propensity is 1/3; pass it, not a fitted one.
        share = {g: np.full(len(y), 1.0 / n_actions) for g in labels if g != control_name}
        model.fit(x, treatment, y, p=share)
        effects = model.predict(x_test, p={g: np.full(len(x_test), 1.0 / n_actions) for g in share})
        groups = list(model.t_groups)
    else:
        if not binary:
            return None  # causalml's uplift trees take a 0/1 outcome only
        from causalml.inference.tree import UpliftRandomForestClassifier, UpliftTreeClassifier

        if name == "causalml_uplift_tree":
            model = UpliftTreeClassifier(
                max_depth=5,
                min_samples_leaf=200,
                min_samples_treatment=50,
                evaluationFunction="KL",
                control_name=control_name,
                random_state=seed,
            )
        else:
            model = UpliftRandomForestClassifier(
                n_estimators=50,
                max_depth=5,
                min_samples_leaf=200,
                min_samples_treatment=50,
                evaluationFunction="KL",
                control_name=control_name,
                random_state=seed,
                n_jobs=1,
            )
        model.fit(x, treatment=treatment, y=y)
        if name == "causalml_uplift_tree":
            probabilities = model.predict(x_test)  # columns: control, then the treatments
            effects = probabilities[:, 1:] - probabilities[:, [0]]
            groups = [g for g in model.classes_ if g != control_name]
        else:
            effects = model.predict(x_test)
            groups = list(model.classes_[1:])
    uplift = np.zeros((x_test.shape[0], n_actions))
    for column, group in enumerate(groups):
        uplift[:, int(str(group)[1:])] = np.asarray(effects)[:, column]
    return uplift


def reproduce_published(csv_path: str, output: str) -> None:
    """The notebook of the published uplift@30 % = 0.066, step by step (see the docstring)."""
    import pandas as pd
    from category_encoders import CatBoostEncoder
    from sklearn.model_selection import train_test_split
    from sklift.metrics import uplift_at_k
    from sklift.models import ClassTransformation
    from xgboost import XGBClassifier

    dataset = pd.read_csv(csv_path)
    dataset = dataset[dataset["segment"] != "Mens E-Mail"].copy()
    dataset["treatment"] = dataset["segment"].map({"Womens E-Mail": 1, "No E-Mail": 0})
    dataset = dataset.drop(["segment", "conversion", "spend"], axis=1)
    train, test = train_test_split(dataset, test_size=0.5, random_state=42)
    x_train, x_test = (part.drop(["visit", "treatment"], axis=1) for part in (train, test))
    categorical = x_train.select_dtypes(include=["object", "string"]).columns.tolist()
    # The notebook's sklearn Pipeline no longer fits with scikit-learn 1.9; same steps by hand.
    encoder = CatBoostEncoder(cols=categorical)
    model = ClassTransformation(estimator=XGBClassifier(max_depth=2, random_state=42))
    model.fit(encoder.fit_transform(x_train, train["visit"]), train["visit"], train["treatment"])
    uplift = np.asarray(model.predict(encoder.transform(x_test)), dtype=np.float64)
    score = uplift_at_k(test["visit"], uplift, test["treatment"], strategy="overall", k=0.3)
    np.savez(
        output,
        train_rows=train.index.to_numpy(),
        test_rows=test.index.to_numpy(),
        uplift=uplift,
        uplift_at_30=np.array(score),
    )


ANCHORS: tuple[str, ...] = (
    "sklift_class_transformation",
    "sklift_two_models",
    "causalml_x_learner",
    "causalml_uplift_tree",
    "causalml_uplift_forest",
)
"""Anchor names, in table order."""


def fit_anchors(inputs: str, output: str) -> None:
    """Fit every anchor on each outcome of ``inputs`` and write the held-out uplift."""
    from sklift import metrics

    data = np.load(inputs)
    seed, control, n_actions = int(data["seed"]), int(data["control"]), int(data["n_actions"])
    x, actions, x_test = data["x_train"], data["actions_train"], data["x_test"]
    results: dict[str, np.ndarray] = {}
    timings: dict[str, float] = {}
    for outcome in [str(o) for o in data["outcomes"]]:
        y = data[f"y_train_{outcome}"]
        binary = bool(np.isin(y, (0.0, 1.0)).all())
        for name in ANCHORS:
            start = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                if name.startswith("sklift"):
                    make = _sklift_class_transformation if "class" in name else _sklift_two_models
                    uplift = _per_arm(make(seed, binary), x, actions, y, x_test, control, n_actions)
                else:
                    uplift = _causalml_multi(
                        name, seed, binary, x, actions, y, x_test, control, n_actions
                    )
            if uplift is None:
                continue
            timings[f"{name}/{outcome}"] = time.perf_counter() - start
            results[f"{name}/{outcome}"] = uplift
            print(f"{name}/{outcome}: {timings[f'{name}/{outcome}']:.1f} s", file=sys.stderr)
    # scikit-uplift's own metrics of each anchor, to cross-check recenv's implementation.
    checks: dict[str, float] = {}
    y_test, a_test = data["y_test_visit"], data["actions_test"]
    for key, uplift in results.items():
        if not key.endswith("/visit"):
            continue
        for arm in range(n_actions):
            if arm == control:
                continue
            rows = (a_test == arm) | (a_test == control)
            t = (a_test[rows] == arm).astype(int)
            u, yy = uplift[rows, arm], y_test[rows]
            checks[f"{key}/{arm}/uplift_at_30"] = float(
                metrics.uplift_at_k(yy, u, t, strategy="overall", k=0.3)
            )
            checks[f"{key}/{arm}/qini_auc"] = float(metrics.qini_auc_score(yy, u, t))
            checks[f"{key}/{arm}/uplift_auc"] = float(metrics.uplift_auc_score(yy, u, t))
    np.savez(
        output,
        **{f"uplift:{k}": v for k, v in results.items()},
        **{f"seconds:{k}": np.array(v) for k, v in timings.items()},
        **{f"check:{k}": np.array(v) for k, v in checks.items()},
    )


if __name__ == "__main__":
    if sys.argv[1:2] == ["reference"] and len(sys.argv) == 3:
        write_reference(sys.argv[2])
    elif sys.argv[1:2] == ["published"] and len(sys.argv) == 4:
        reproduce_published(sys.argv[2], sys.argv[3])
    elif sys.argv[1:2] == ["fit"] and len(sys.argv) == 4:
        fit_anchors(sys.argv[2], sys.argv[3])
    else:
        sys.exit(f"usage: {sys.argv[0]} reference OUT.json | published CSV OUT.npz | fit IN OUT")
