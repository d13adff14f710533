"""BG/NBD and Pareto/NBD anchors for ``cdnow_holdout.py``, run inside ``benchmarks/.venv-btyd``.

This file imports only the anchor environment (``lifetimes``, numpy, pandas, scipy), never
recenv: the main script writes the calibration summaries to a ``.npz`` file, runs this worker
with the virtualenv's python and reads the results back. Two commands:

``fit INPUTS OUTPUTS``
    Fit BG/NBD (``BetaGeoFitter``) and Pareto/NBD (``ParetoNBDFitter``) to ``frequency``,
    ``recency`` and ``T`` (weeks) and write, for each model: the parameters, the fit time, each
    customer's conditional expected holdout count and P(alive), the cohort's unconditional
    expected cumulative repeat transactions at the given customer ages (the tracking curve),
    the conditional expected cumulative holdout transactions at the given horizons, and each
    customer's P(X = 0), P(X = 1), P(X = 2) in the holdout. Pareto/NBD's comes from
    ``lifetimes`` (Fader and Hardie's note 028, eq. 16); ``lifetimes`` has no conditional PMF
    for BG/NBD, so it is estimated from seeded posterior draws (see :func:`bgnbd_draws`), and
    the same is done for Pareto/NBD as a check of both.

``reference CDNOW_FILE OUTPUT_JSON``
    ``lifetimes.utils.calibration_and_holdout_data`` on the raw CDNOW file, daily (``freq="D"``)
    and calendar-weekly (``freq="W"``): the totals and a few customers' rows that
    ``tests/test_fitting_holdout.py`` checks recenv's summaries against.
"""

from __future__ import annotations

import json
import sys
import time
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pandas as pd

CALIBRATION_END = "1997-09-30"
HOLDOUT_END = "1998-06-30"
MAX_COUNT = 3
"""P(X = k) is returned for k < MAX_COUNT; the rest is P(X >= MAX_COUNT)."""


def bgnbd_draws(
    params: dict[str, float],
    frequency: np.ndarray,
    t: float,
    p_alive: np.ndarray,
    n_draws: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """``(n_draws, n)`` holdout counts drawn from the BG/NBD posterior of each customer.

    Given the calibration data, a customer is alive with probability ``p_alive``; if alive, the
    likelihood ``lambda^x exp(-lambda T) (1 - p)^x`` makes ``lambda ~ Gamma(r + x, alpha + T)``
    and ``p ~ Beta(a, b + x)`` independent. An alive customer then buys at the events of a
    Poisson(``lambda``) process and drops out after each purchase with probability ``p``, so the
    count over ``t`` is ``min(N, G)`` with ``N ~ Poisson(lambda t)`` and ``G ~ Geometric(p)``.
    """
    n = frequency.shape[0]
    shape = (n_draws, n)
    alive = rng.random(shape) < p_alive
    rate = rng.gamma(params["r"] + frequency, 1.0 / (params["alpha"] + params["T"]), size=shape)
    dropout = rng.beta(params["a"], params["b"] + frequency, size=shape)
    purchases = rng.poisson(rate * t)
    until_dropout = rng.geometric(np.clip(dropout, 1e-12, 1.0))
    return np.where(alive, np.minimum(purchases, until_dropout), 0)


def paretonbd_draws(
    params: dict[str, float],
    frequency: np.ndarray,
    t: float,
    p_alive: np.ndarray,
    n_draws: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """``(n_draws, n)`` holdout counts drawn from the Pareto/NBD posterior of each customer.

    If alive (probability ``p_alive``), ``lambda ~ Gamma(r + x, alpha + T)`` and
    ``mu ~ Gamma(s, beta + T)``; the remaining lifetime is Exponential(``mu``) and the count
    is Poisson(``lambda * min(lifetime, t)``).
    """
    n = frequency.shape[0]
    shape = (n_draws, n)
    alive = rng.random(shape) < p_alive
    rate = rng.gamma(params["r"] + frequency, 1.0 / (params["alpha"] + params["T"]), size=shape)
    death = rng.gamma(params["s"], 1.0 / (params["beta"] + params["T"]), size=shape)
    lifetime = rng.exponential(1.0 / np.maximum(death, 1e-300))
    return np.where(alive, rng.poisson(rate * np.minimum(lifetime, t)), 0)


def _total_log_likelihood(
    name: str, params: dict[str, float], x: np.ndarray, t_x: np.ndarray, big_t: np.ndarray
) -> float:
    """The log-likelihood summed over customers (``lifetimes`` reports it in other scales)."""
    from lifetimes import BetaGeoFitter, ParetoNBDFitter

    ones = np.ones_like(x)
    if name == "bgnbd":
        log_params = np.log([params[k] for k in ("r", "alpha", "a", "b")])
        return (
            -BetaGeoFitter._negative_log_likelihood(log_params, x, t_x, big_t, ones, 0.0) * x.size
        )
    values = [params[k] for k in ("r", "alpha", "s", "beta")]
    return -ParetoNBDFitter._negative_log_likelihood(values, x, t_x, big_t, ones, 0.0)


def _shares(draws: np.ndarray) -> np.ndarray:
    """``(n, MAX_COUNT)`` share of draws equal to 0, 1, ..., MAX_COUNT - 1 per customer."""
    return np.stack([(draws == k).mean(axis=0) for k in range(MAX_COUNT)], axis=1)


def fit_anchors(inputs: Path, outputs: Path) -> None:
    """The ``fit`` command (see the module docstring)."""
    from lifetimes import BetaGeoFitter, ParetoNBDFitter

    with np.load(inputs) as saved:
        data = {key: saved[key] for key in saved.files}
    x, t_x, big_t = data["frequency"], data["recency"], data["T"]
    t = float(data["holdout_weeks"])
    ages, sizes, horizons = data["curve_ages"], data["curve_sizes"], data["horizons"]
    n_draws, seed = int(data["n_draws"]), int(data["seed"])
    results: dict[str, np.ndarray] = {}
    for name, fitter, draw in (
        ("bgnbd", BetaGeoFitter(penalizer_coef=0.0), bgnbd_draws),
        ("paretonbd", ParetoNBDFitter(penalizer_coef=0.0), paretonbd_draws),
    ):
        start = time.perf_counter()
        if name == "paretonbd":
            # lifetimes starts Nelder-Mead from a draw of the global numpy RNG: start from a
            # fixed point instead, and converge tightly, so that reruns agree.
            fitter.fit(x, t_x, big_t, initial_params=np.ones(4), tol=1e-10, maxiter=20_000)
        else:
            fitter.fit(x, t_x, big_t)
        seconds = time.perf_counter() - start
        params = {key: float(value) for key, value in fitter.params_.items()}
        expected = np.asarray(
            fitter.conditional_expected_number_of_purchases_up_to_time(t, x, t_x, big_t), float
        )
        p_alive = np.asarray(fitter.conditional_probability_alive(x, t_x, big_t), float)
        unconditional = np.asarray(
            fitter.expected_number_of_purchases_up_to_time(ages.ravel()), float
        ).reshape(ages.shape)
        conditional = np.array(
            [
                float(
                    np.sum(
                        fitter.conditional_expected_number_of_purchases_up_to_time(h, x, t_x, big_t)
                    )
                )
                for h in horizons
            ]
        )
        rng = np.random.default_rng(seed)
        draws = np.concatenate(
            [
                draw({**params, "T": big_t[idx]}, x[idx], t, p_alive[idx], n_draws, rng)
                for idx in np.array_split(np.arange(x.shape[0]), 8)
            ],
            axis=1,
        )
        simulated = _shares(draws)
        if name == "paretonbd":
            p_holdout = np.stack(
                [
                    np.asarray(
                        fitter.conditional_probability_of_n_purchases_up_to_time(
                            k, t, x, t_x, big_t
                        ),
                        float,
                    )
                    for k in range(MAX_COUNT)
                ],
                axis=1,
            )
        else:
            p_holdout = simulated
        results.update(
            {
                f"{name}:param_names": np.array(list(params)),
                f"{name}:params": np.array(list(params.values())),
                f"{name}:log_likelihood": np.array(
                    _total_log_likelihood(name, params, x, t_x, big_t)
                ),
                f"{name}:seconds": np.array(seconds),
                f"{name}:expected": expected,
                f"{name}:p_alive": p_alive,
                f"{name}:unconditional_cumulative": unconditional.T @ sizes,
                f"{name}:conditional_cumulative": conditional,
                f"{name}:p_holdout": p_holdout,
                f"{name}:p_holdout_simulated": simulated,
                f"{name}:simulated_mean": np.array(draws.mean()),
            }
        )
    results["versions"] = np.array(
        [f"{pkg}=={version(pkg)}" for pkg in ("lifetimes", "numpy", "pandas", "scipy", "autograd")]
    )
    np.savez(outputs, **results)


def reference(cdnow_file: Path, output: Path) -> None:
    """The ``reference`` command (see the module docstring)."""
    from lifetimes.utils import calibration_and_holdout_data

    log = pd.read_csv(cdnow_file, sep=r"\s+", header=0, names=["customer", "date", "cds", "value"])
    log["date"] = pd.to_datetime(log["date"].astype(str), format="%Y%m%d")
    out: dict[str, object] = {
        "command": (
            "benchmarks/.venv-btyd/bin/python benchmarks/_cdnow_anchor_models.py reference "
            "rec_env/datasets/cdnow_master.txt.gz tests/data/cdnow_holdout_reference.json"
        ),
        "versions": [f"{pkg}=={version(pkg)}" for pkg in ("lifetimes", "pandas", "numpy")],
        "calibration_end": CALIBRATION_END,
        "holdout_end": HOLDOUT_END,
        "n_transactions": len(log),
    }
    for freq in ("D", "W"):
        table = calibration_and_holdout_data(
            log,
            "customer",
            "date",
            CALIBRATION_END,
            HOLDOUT_END,
            freq=freq,
            monetary_value_col="value",
        ).sort_index()
        head = table.loc[[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 100, 1000, 10000, 23570]]
        out[freq] = {
            "n_customers": len(table),
            "frequency_cal": float(table["frequency_cal"].sum()),
            "recency_cal": float(table["recency_cal"].sum()),
            "T_cal": float(table["T_cal"].sum()),
            "frequency_holdout": float(table["frequency_holdout"].sum()),
            "no_holdout_customers": int((table["frequency_holdout"] == 0).sum()),
            "duration_holdout": float(table["duration_holdout"].iloc[0]),
            "monetary_value_cal": float(table["monetary_value_cal"].sum()),
            "customers": {
                str(index): {key: float(value) for key, value in row.items()}
                for index, row in head.iterrows()
            },
        }
    output.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    command, first, second = sys.argv[1:4]
    if command == "fit":
        fit_anchors(Path(first), Path(second))
    elif command == "reference":
        reference(Path(first), Path(second))
    else:
        raise SystemExit(f"unknown command {command!r}; use fit or reference")
