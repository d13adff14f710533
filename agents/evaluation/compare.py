"""Compare agents side by side on one cohort: a table, CSV/JSON and PNG plots.

Entries are run directories (trained policies, evaluated frozen and labelled by the directory's
name), baseline names of the world (strategy: ``random``, ``best_fixed``, ``rule``, ``oracle``,
``cooldown``; item and slate: ``no_action``, ``random``, ``popular``, ``popular_category``,
``item_similarity``, ``oracle``, ``diverse_oracle``, and ``cooldown`` in the item world; see
:data:`~rec_env.agents.registry.BASELINES_BY_WORLD`) or bandit names (``linucb`` …), which then
learn online from scratch on the evaluation cohort, labelled ``linucb (online)``: their online
learning curve. A bandit run directory is evaluated both ways: frozen after training, and
``(online)``, learning on from its trained state. In the item and slate worlds every result has
the item metrics (:mod:`~rec_env.agents.evaluation.evaluate`).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rec_env.agents.evaluation.evaluate import Evaluation, evaluate
from rec_env.agents.registry import (
    ALL_ALGORITHMS,
    ALL_BASELINES,
    BANDIT_ALGORITHMS,
    SB3_ALGORITHMS,
    check_algorithm,
    make_bandit,
    make_baseline,
)
from rec_env.agents.runs import load_run, read_curve
from rec_env.settings import EnvSettings

__all__ = ["Contender", "compare", "resolve_contenders", "write_outputs"]


@dataclass
class Contender:
    """A policy to evaluate, how, and its training curve if it has one."""

    label: str
    policy: Any
    learn: bool = False
    curve: list[dict[str, float]] = field(default_factory=list)


def resolve_contenders(entries: list[str], settings: EnvSettings, seed: int) -> list[Contender]:
    """Turn run directories and algorithm names into policies to evaluate.

    Raises:
        ValueError: For an unknown name, a baseline or bandit that makes no sense in the world,
            a missing run, or a broken run directory.
    """
    model = settings.build_model()
    contenders: list[Contender] = []
    for entry in entries:
        path = Path(entry)
        if path.is_dir():
            policy, info = load_run(path)
            label = path.resolve().name
            contenders.append(Contender(label, policy, False, read_curve(path)))
            if info.algorithm in BANDIT_ALGORITHMS:
                online, _ = load_run(path)
                contenders.append(Contender(f"{label} (online)", online, True))
            continue
        if path.suffix or "/" in entry:
            raise ValueError(f"{entry}: no such run directory")
        name = check_algorithm(entry, ALL_ALGORITHMS)
        if name in SB3_ALGORITHMS:
            raise ValueError(
                f"{entry}: SB3 agents must be trained first (recenv train {name}); "
                "pass the run directory"
            )
        if name in BANDIT_ALGORITHMS:
            contenders.append(Contender(f"{name} (online)", make_bandit(name, model, seed), True))
        elif name in ALL_BASELINES:
            contenders.append(Contender(name, make_baseline(name, model, seed)))
    return contenders


def compare(
    entries: list[str],
    settings: EnvSettings | Mapping[str, Any] | None = None,
    n_customers: int = 10_000,
    seed: int = 0,
    progress: Any = None,
) -> tuple[list[Evaluation], list[Contender]]:
    """Evaluate every entry on the same cohort (same seed: same customers, same randomness)."""
    settings = EnvSettings.coerce(settings)
    contenders = resolve_contenders(entries, settings, seed)
    results = []
    for contender in contenders:
        if progress is not None:
            progress(contender.label)
        results.append(
            evaluate(
                contender.policy,
                settings,
                n_customers,
                seed,
                learn=contender.learn,
                name=contender.label,
            )
        )
    return results, contenders


def write_outputs(
    results: list[Evaluation], contenders: list[Contender], out: str | Path
) -> list[Path]:
    """Write ``comparison.csv``, ``comparison.json``, ``kpis.png`` and ``learning_curves.png``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rows = [r.row() for r in results]
    csv_path = out / "comparison.csv"
    with csv_path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    json_path = out / "comparison.json"
    json_path.write_text(json.dumps([r.to_dict() for r in results], indent=2), encoding="utf-8")
    from rec_env.agents.evaluation.plots import plot_kpis, plot_learning_curves

    return [
        csv_path,
        json_path,
        plot_kpis(results, out / "kpis.png"),
        plot_learning_curves(results, contenders, out / "learning_curves.png"),
    ]
