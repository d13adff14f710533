"""``recenv score``: the weekly campaign list, one decision per customer, under business rules.

Reads a customers file (``customer_id`` and the 16 features, as ``recenv features`` writes
them), decides with a trained run through :class:`rec_env.serve.scoring.Scorer` (holdout,
consent and rules masks, the policy with exploration, budgets), logs every decision in the
decision log so that rewards can be joined to its event id, and writes the list. Nothing is
written or logged if the input is bad.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer

from rec_env.cli._errors import fail, reporting_bad_input
from rec_env.cli._outputs import FORCE_HELP, check_output_file, staged_file

__all__ = ["score_command"]

MAX_ROWS = 50_000_000
"""Most customers in one file (bounded memory: about 1 KB each while scoring)."""

LOG_CHUNK = 100_000
"""Decisions per decision-log transaction."""


def score_command(
    customers: Annotated[
        Path, typer.Argument(help="Customers: CSV or Parquet with customer_id and 16 features.")
    ],
    model: Annotated[Path, typer.Option(help="Run directory written by recenv train.")],
    out: Annotated[Path, typer.Option(help="Decisions to write: .parquet or .csv.")],
    rules: Annotated[
        Path | None, typer.Option(help="Business rules (YAML): caps, eligibility, budgets …")
    ] = None,
    holdout: Annotated[
        float, typer.Option(help="Share of customers held out (no message), by id hash.")
    ] = 0.0,
    holdout_seed: Annotated[int, typer.Option(help="Key of the holdout's id hash.")] = 0,
    seed: Annotated[int, typer.Option(help="Seed of the action draws.")] = 0,
    epsilon: Annotated[
        float, typer.Option(help="Exploration: share of uniform choice among allowed actions.")
    ] = 0.05,
    greedy: Annotated[
        bool, typer.Option("--greedy", help="Most probable action, no draw (propensity 1).")
    ] = False,
    top_k: Annotated[
        int | None,
        typer.Option(help="Write the K most probable actions instead of every probability."),
    ] = None,
    explain: Annotated[
        int,
        typer.Option(help="Reason codes: the K largest SHAP contributions (slow; 0: none)."),
    ] = 0,
    db: Annotated[
        Path | None,
        typer.Option(help="Decision log to add the decisions to [default: decisions.db]."),
    ] = Path("decisions.db"),
    log: Annotated[
        bool, typer.Option(help="Log the decisions (needed to join rewards later).")
    ] = True,
    force: Annotated[bool, typer.Option("--force", help=FORCE_HELP)] = False,
) -> None:
    """Decide this week's action for every customer, and write and log the campaign list.

    Each row: customer_id, event_id (the decision log's, to post rewards to), action,
    propensity, holdout, the rules that bound the decision, and the probabilities (or the
    top K). Consent is always applied: a customer without consent on a channel gets nothing on
    it, whatever the policy or the rules say.
    """
    from rec_env.agents.runs import load_run
    from rec_env.serve.exploration import Exploration
    from rec_env.serve.scoring import Scorer

    suffix = out.suffix.lower()
    if suffix not in (".parquet", ".pq", ".csv"):
        fail(f"--out: expected a .parquet or .csv file, got {out.name!r}")
    if top_k is not None and top_k < 1:
        fail(f"--top-k must be at least 1, got {top_k}")
    if not 0 <= explain <= 16:
        fail(f"--explain must be between 0 and 16, got {explain}")
    check_output_file(out, force=force)
    started = time.perf_counter()
    with reporting_bad_input():
        policy, info = load_run(model, lean=True)
        if info.settings.world != "strategy":
            raise ValueError(f"{model}: recenv score decides strategy actions; this run is an "
                             f"{info.settings.world} run")  # fmt: skip
        compiled = None
        if rules is not None:
            from rec_env.env import shared_model
            from rec_env.rules import load_rules

            compiled = load_rules(rules, shared_model(info.settings).actions)
        scorer = Scorer.for_run(
            policy,
            info,
            rules=compiled,
            holdout=holdout,
            holdout_seed=holdout_seed,
            exploration=Exploration(epsilon=epsilon),
            seed=seed,
            greedy=greedy,
        )
        ids, features = read_customers(customers)
        scored = scorer.score(features, ids, checked=True)
        reasons = _reason_codes(policy, info, features, scored, explain) if explain else None
    decided = time.perf_counter()
    event_ids = _log(db, info, features, scorer, scored) if log and db is not None else None
    with staged_file(out) as staged:
        write_scored(scored, staged, suffix, top_k, event_ids, reasons)
    total = time.perf_counter() - started
    _summary(scored, out, db if log else None, decided - started, total)


def read_customers(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """``(ids (n,), features (n, 16))`` from a CSV or Parquet file.

    Raises:
        ConfigError: Naming the file, the row and the column of a missing or bad value, or a
            missing column.
        ValueError: For an empty file, too many rows or repeated ids.
    """
    from rec_env.datasets.encoding import as_numbers
    from rec_env.datasets.table_io import read_columns
    from rec_env.features import FEATURE_NAMES
    from rec_env.serve.scoring import check_features

    if not path.is_file():
        raise ValueError(f"{path}: no such file")
    raw, where = read_columns(path, ["customer_id", *FEATURE_NAMES], max_rows=MAX_ROWS + 1)
    ids = np.asarray(raw["customer_id"])
    n = ids.shape[0]
    if n == 0:
        raise ValueError(f"{path}: no customers")
    if n > MAX_ROWS:
        raise ValueError(f"{path}: more than {MAX_ROWS:,} customers; split the file")
    import pandas as pd

    text = pd.Series(ids, dtype=object)
    missing = text.isna().to_numpy() | (text.astype(str).str.strip() == "").to_numpy()
    if missing.any():
        raise ValueError(f"{path}: row {np.argmax(missing) + 1}: customer_id: missing")
    repeated = text.duplicated().to_numpy()
    if repeated.any():
        first = str(text.iloc[int(np.argmax(repeated))])
        raise ValueError(f"{path}: customer_id {first!r} appears more than once")
    ids = text.astype(str).to_numpy(dtype=object)
    features = np.column_stack([as_numbers(raw[name], name, where) for name in FEATURE_NAMES])
    try:
        check_features(features)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None
    return ids, features


def _reason_codes(policy: Any, info: Any, features: np.ndarray, scored: Any, k: int) -> np.ndarray:
    """``feature:+0.123;…``: the ``k`` largest SHAP contributions to each decision."""
    from rec_env.agents.explain import PolicyExplainer

    explainer = PolicyExplainer(
        policy, population=info.settings.profile, catalog=info.settings.catalog
    )
    allowed = scored.probabilities > 0
    explanation = explainer.explain(features, scored.actions, excluded=~allowed)
    names = np.array(explainer.feature_names)
    order = np.argsort(-np.abs(explanation.values), axis=1)[:, :k]
    return np.array(
        [
            ";".join(f"{names[j]}:{explanation.values[i, j]:+.4f}" for j in row)
            for i, row in enumerate(order)
        ],
        dtype=object,
    )


def _log(db: Path, info: Any, features: np.ndarray, scorer: Any, scored: Any) -> np.ndarray:
    """Add the decisions to the decision log, in transactions of :data:`LOG_CHUNK`."""
    from rec_env.serve.decision_log import DecisionLog

    with reporting_bad_input():
        log = DecisionLog(db)
    try:
        log.register_model(
            info.model_version,
            info.algorithm,
            info.model_sha256,
            info.action_names,
            action_channels=tuple(scorer.table.channel_names),
        )
        ids: list[str] = []
        allowed = scored.probabilities > 0
        for start in range(0, scored.n, LOG_CHUNK):
            rows = slice(start, start + LOG_CHUNK)
            ids += log.log_decisions(
                info.model_version,
                0,
                features[rows],
                allowed[rows],
                scored.probabilities[rows],
                scored.actions[rows],
                customer_ids=scored.customer_ids[rows].tolist(),
                holdout=scored.holdout[rows],
                # a budget's second draw, a forced no-action or --greedy: not probabilities[a]
                propensities=scored.propensities[rows],
            )
    finally:
        log.close()
    return np.array(ids, dtype=object)


def write_scored(
    scored: Any,
    path: Path,
    suffix: str,
    top_k: int | None = None,
    event_ids: np.ndarray | None = None,
    reasons: np.ndarray | None = None,
) -> None:
    """The campaign list as Parquet (straight from the arrays) or CSV."""
    if suffix == ".csv":
        from rec_env.cli._outputs import write_columns

        columns = scored.columns(top_k)
        if event_ids is not None:
            columns = {"customer_id": columns.pop("customer_id"), "event_id": event_ids, **columns}
        if reasons is not None:
            columns["reasons"] = reasons
        write_columns(columns, path, ".csv")
        return
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = scored.to_arrow(top_k, event_ids)
    if reasons is not None:
        table = table.append_column("reasons", pa.array(reasons, type=pa.string()))
    pq.write_table(table, path)


def _summary(scored: Any, out: Path, db: Path | None, decide: float, total: float) -> None:
    names = np.array(scored.action_names)
    counts = np.bincount(scored.actions, minlength=len(names))
    n = scored.n
    typer.echo(
        f"{n:,} customers scored in {decide:.2f} s ({n / max(decide, 1e-9):,.0f}/s); "
        f"{total:.2f} s in all"
    )
    typer.echo(f"  holdout: {scored.holdout.sum():,} ({scored.holdout.mean():.1%})")
    bound = np.count_nonzero((scored.rules != "") & ~scored.holdout)
    typer.echo(f"  decisions bound by a rule: {bound:,}")
    for j in np.argsort(-counts)[:6]:
        if counts[j]:
            typer.echo(f"  {names[j]}: {counts[j]:,} ({counts[j] / n:.1%})")
    if db is not None:
        typer.echo(f"logged in {db}")
    typer.echo(f"wrote {out}")
