"""Reading what recenv commands saved, for the report.

What each command writes, and what is read here:

=====================  ==========================================================================
command                read
=====================  ==========================================================================
``recenv train``       a run directory (``run.json``): evaluated here, see
                       :func:`~rec_env.agents.report.content.add_simulation`
``recenv compare``     its ``--out`` directory or its ``comparison.json``
``recenv eval``        the output of ``recenv eval RUN --json`` saved to a file
``recenv offline``     a ``learn``/``evaluate`` output directory or its ``results.json``
``recenv bench``       a ``bench hillstrom`` output directory (``hillstrom_<reward>*.csv``)
``recenv ab``          the output of ``recenv ab simulate … --json`` or ``ab analyze … --json``
``recenv ope``         the output of ``recenv ope … --json``
=====================  ==========================================================================
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from rec_env.agents.evaluation.evaluate import KPI, Evaluation
from rec_env.agents.report.content import ReportContent
from rec_env.settings import EnvSettings

__all__ = ["KINDS", "evaluation_from_dict", "input_kind", "read_result"]

KINDS = ("run", "comparison", "evaluation", "offline", "bench", "ab", "ope")
"""The kinds of input a report reads."""

_NEEDED_KPIS = (
    "profit_per_customer",
    "conversion_rate",
    "contacts_per_customer",
    "unsubscribe_rate",
    "churn_rate",
)
_EXPECTED = (
    "expected a run directory, a recenv compare output (comparison.json), recenv offline's "
    "results.json, a recenv bench hillstrom directory, or the --json output of recenv eval, "
    "ab or ope saved to a file"
)


def evaluation_from_dict(data: dict[str, Any]) -> Evaluation:
    """An :class:`~rec_env.agents.evaluation.evaluate.Evaluation` from its ``to_dict`` form.

    Raises:
        ValueError: If a field is missing or malformed (named).
    """
    try:
        kpis = {k: KPI(float(v["mean"]), float(v["ci95"])) for k, v in data["kpis"].items()}
        missing = [k for k in _NEEDED_KPIS if k not in kpis]
        if missing:
            raise ValueError(f"kpis lack {', '.join(missing)}")
        return Evaluation(
            policy=str(data["policy"]),
            n_customers=int(data["n_customers"]),
            seed=int(data["seed"]),
            settings=EnvSettings.from_dict(data["settings"]),
            kpis=kpis,
            action_distribution={
                k: float(v) for k, v in data.get("action_distribution", {}).items()
            },
            action_entropy=float(data.get("action_entropy", 0.0)),
            oracle_share=None if data.get("oracle_share") is None else float(data["oracle_share"]),
            reward_per_cycle=[float(x) for x in data.get("reward_per_cycle", [])],
            catalog_metrics={k: float(v) for k, v in data.get("catalog_metrics", {}).items()},
        )
    except (KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"not an evaluation: {type(exc).__name__} {exc}") from None


def _json_kind(data: Any) -> str | None:
    """The kind of a JSON document, by its fields."""
    if isinstance(data, list) and data and all(isinstance(d, dict) and "kpis" in d for d in data):
        return "comparison"
    if not isinstance(data, dict):
        return None
    if "kpis" in data and "policy" in data:
        return "evaluation"
    if (
        isinstance(data.get("policies"), list)
        and data["policies"]
        and "estimates" in data["policies"][0]
    ):
        return "offline"
    if {"a", "b", "lift"} <= data.keys() or {"arms", "comparisons", "sample_ratio"} <= data.keys():
        return "ab"
    if "estimates" in data and "logged_policy" in data:
        return "ope"
    return None


def _bench_stems(directory: Path) -> list[str]:
    """``hillstrom_<reward>`` of every value table in ``directory``."""
    return sorted(
        p.stem
        for p in directory.glob("hillstrom_*.csv")
        if not p.stem.endswith(("_gains", "_replay"))
    )


def input_kind(path: str | Path) -> str:
    """The kind of an input (:data:`KINDS`).

    Raises:
        ValueError: If the path does not exist or is none of them; the message says what is
            expected.
    """
    path = Path(path)
    if path.is_dir():
        if (path / "run.json").is_file():
            return "run"
        if (path / "comparison.json").is_file():
            return "comparison"
        if (path / "results.json").is_file():
            return "offline"
        if _bench_stems(path):
            return "bench"
        raise ValueError(f"{path}: no result recenv report reads in this directory; {_EXPECTED}")
    if not path.is_file():
        raise ValueError(f"{path}: no such file or directory")
    kind = _json_kind(_load_json(path))
    if kind is None:
        raise ValueError(f"{path}: not a result recenv report reads; {_EXPECTED}")
    return kind


def _load_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ValueError(f"{path}: not a JSON result file ({exc})") from None


def _read_csv(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        return []
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def read_result(path: str | Path, content: ReportContent) -> str:
    """Add a saved result (any kind but ``run``) to ``content``.

    Returns:
        The kind read.

    Raises:
        ValueError: If the input is not a result the report reads, or is malformed (the
            message names the file).
    """
    path = Path(path)
    kind = input_kind(path)
    content.sources.append(str(path))
    if kind == "run":
        raise ValueError(f"{path}: a run directory is evaluated, not read (add_simulation)")
    if kind == "bench":
        for stem in _bench_stems(path):
            tables = {
                "values": _read_csv(path / f"{stem}.csv"),
                "gains": _read_csv(path / f"{stem}_gains.csv"),
                "replay": _read_csv(path / f"{stem}_replay.csv"),
            }
            content.benches.append((str(path), stem.removeprefix("hillstrom_"), tables))
        return kind
    if path.is_dir():
        path = path / ("comparison.json" if kind == "comparison" else "results.json")
    data = _load_json(path)
    try:
        if kind == "comparison":
            content.evaluations.extend(evaluation_from_dict(d) for d in data)
        elif kind == "evaluation":
            content.evaluations.append(evaluation_from_dict(data))
        elif kind == "offline":
            content.offline.append((str(path), data))
        elif kind == "ab":
            content.ab_tests.append((str(path), data))
        else:
            content.ope.append((str(path), data))
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None
    return kind
