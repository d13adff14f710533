"""What a report holds, gathered from saved results and, for run directories, a short evaluation.

:class:`ReportContent` is filled by :func:`~rec_env.agents.report.inputs.read_result` (saved
results: ``recenv compare``'s ``comparison.json``, ``recenv eval --json``, ``recenv offline``'s
``results.json``, ``recenv bench``'s CSV files, ``recenv ab … --json`` and ``recenv ope --json``)
and by :func:`add_simulation` (run directories: evaluated on one simulated cohort with the
world's baselines, the action mix over the customer lifetime and explanations) or
:func:`add_comparison` (a comparison already run, for ``recenv compare --html``). Nothing heavy
is re-run for saved results.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rec_env.agents.evaluation.evaluate import Evaluation
from rec_env.agents.evaluation.plots import ranked, winner
from rec_env.agents.evaluation.style import policy_family, run_group
from rec_env.agents.report.explanations import ExplainedRun, explain_run
from rec_env.agents.report.lifetime import LifetimeMix, lifetime_mix
from rec_env.settings import EnvSettings

__all__ = [
    "DEFAULT_LIFETIME_CUSTOMERS",
    "ReportContent",
    "RunRecord",
    "add_comparison",
    "add_simulation",
]

DEFAULT_LIFETIME_CUSTOMERS = 2_000
"""Customers of the cohort whose actions are counted by age (a few seconds per policy)."""

MAX_LIFETIME_POLICIES = 4
"""Policies whose action mix over the lifetime is shown: the runs, the winner, the best rule."""

Progress = Callable[[str], None]


@dataclass(frozen=True)
class RunRecord:
    """A run directory's provenance, from its ``run.json``.

    Attributes:
        path: The run directory.
        algorithm: The algorithm.
        seed: Training seed.
        recenv_version: The recenv that trained it.
        weights_sha256: SHA-256 of what the policy decides with.
        files: File name → SHA-256 of the files the policy is loaded from.
        timesteps: Environment steps of training.
        env_id: The env trained on.
    """

    path: str
    algorithm: str
    seed: int
    recenv_version: str
    weights_sha256: str
    files: dict[str, str]
    timesteps: int
    env_id: str


@dataclass
class ReportContent:
    """Everything a report shows; each section is drawn only if it has something.

    Attributes:
        evaluations: Policies evaluated on one simulated cohort (compare, eval, run dirs).
        cohort: ``customers`` and ``seed`` of that cohort, if it was simulated here.
        training: Run group (label without the seed) → learning curves of its seeds.
        lifetimes: Action mix by customer age of a few policies.
        explanations: Explained runs.
        offline: ``(source, results.json)`` of ``recenv offline`` runs.
        benches: ``(source, reward, tables)`` of ``recenv bench hillstrom`` outputs.
        ab_tests: ``(source, JSON)`` of ``recenv ab simulate`` or ``analyze``.
        ope: ``(source, JSON)`` of ``recenv ope``.
        runs: Provenance of every run directory.
        sources: The inputs, as given.
        notes: Sentences about what could not be shown and why.
    """

    evaluations: list[Evaluation] = field(default_factory=list)
    cohort: dict[str, int] | None = None
    training: dict[str, list[list[dict[str, float]]]] = field(default_factory=dict)
    lifetimes: list[LifetimeMix] = field(default_factory=list)
    explanations: list[ExplainedRun] = field(default_factory=list)
    offline: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    benches: list[tuple[str, str, dict[str, list[dict[str, str]]]]] = field(default_factory=list)
    ab_tests: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    ope: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    runs: list[RunRecord] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def is_empty(self) -> bool:
        """Whether no section has anything to show."""
        return not (self.evaluations or self.offline or self.benches or self.ab_tests or self.ope)

    def add_run_record(self, path: str | Path, info: Any) -> None:
        """Record a run directory's provenance (its validated ``run.json``)."""
        self.runs.append(
            RunRecord(
                path=str(path),
                algorithm=info.algorithm,
                seed=info.seed,
                recenv_version=info.recenv_version,
                weights_sha256=info.weights_sha256,
                files=dict(info.files),
                timesteps=info.timesteps,
                env_id=info.env_id,
            )
        )


def _lifetime_labels(results: Sequence[Evaluation], runs: Sequence[str]) -> list[str]:
    """The policies whose lifetime is shown: the runs, then the winner and the best rule."""
    from rec_env.agents.report.headline import best_rule

    labels = [r.policy for r in ranked(results) if r.policy in runs]
    for extra in (winner(results), best_rule(results)):
        if extra is not None:
            labels.append(extra.policy)
    return list(dict.fromkeys(labels))[:MAX_LIFETIME_POLICIES]


def add_comparison(
    content: ReportContent,
    results: list[Evaluation],
    contenders: list[Any],
    settings: EnvSettings,
    *,
    runs: Sequence[str | Path] = (),
    seed: int,
    lifetime_customers: int = DEFAULT_LIFETIME_CUSTOMERS,
    explain: bool = True,
    progress: Progress | None = None,
) -> None:
    """Add a comparison already run (``compare``'s results and contenders) with its extras.

    Adds the training curves of the run directories, the action mix over the lifetime of the
    runs, the winner and the best rule (frozen policies only; on a cohort of
    ``lifetime_customers``), and explanations of the runs that can be explained.

    Args:
        content: The report's content, extended in place.
        results: The evaluations.
        contenders: What they evaluated (:class:`~rec_env.agents.evaluation.compare.Contender`).
        settings: The simulated world.
        runs: The run directories among the entries (labelled by their names).
        seed: Seed of the lifetime cohort and the explanations.
        lifetime_customers: Customers of the lifetime cohort (at most the comparison's).
        explain: Explain the runs.
        progress: Called with a message before each step.
    """
    say = progress or (lambda message: None)
    content.evaluations.extend(results)
    run_labels = [Path(p).resolve().name for p in runs]
    for contender in contenders:
        if contender.curve:
            content.training.setdefault(run_group(contender.label), []).append(contender.curve)
    frozen = {c.label: c for c in contenders if not c.learn}
    customers = min(lifetime_customers, results[0].n_customers) if results else 0
    if settings.world != "slate":
        for label in _lifetime_labels(results, run_labels):
            if label in frozen:
                say(f"counting the actions of {label} over the customer lifetime")
                content.lifetimes.append(
                    lifetime_mix(frozen[label].policy, settings, customers, seed, label)
                )
    else:
        content.notes.append("The slate world sends slates, not single actions: no action mix.")
    if explain:
        for label in run_labels:
            if label not in frozen or policy_family(label) == "oracle":
                continue
            say(f"explaining {label}")
            explained, reason = explain_run(frozen[label].policy, settings, label, seed=seed)
            if explained is not None:
                content.explanations.append(explained)
            else:
                content.notes.append(f"{label} is not explained: {reason}.")


def add_simulation(
    content: ReportContent,
    run_dirs: Sequence[str | Path],
    *,
    customers: int,
    seed: int,
    baselines: Sequence[str] | None = None,
    lifetime_customers: int = DEFAULT_LIFETIME_CUSTOMERS,
    explain: bool = True,
    progress: Progress | None = None,
) -> None:
    """Evaluate run directories with the world's baselines on one cohort, and add the result.

    The cohort's world is the first run's (every run must share it). Runs are evaluated frozen
    (bandit runs also learning on); see :func:`add_comparison` for the extras.

    Raises:
        ValueError: If a run directory is broken or the runs are of different worlds.
    """
    from rec_env.agents.evaluation.compare import compare
    from rec_env.agents.registry import BASELINES_BY_WORLD
    from rec_env.agents.runs import read_run_info

    infos = [read_run_info(path) for path in run_dirs]
    settings = infos[0].settings
    for path, info in zip(run_dirs, infos, strict=True):
        if info.settings.world != settings.world:
            raise ValueError(
                f"{path}: trained in the {info.settings.world} world, but {run_dirs[0]} in the "
                f"{settings.world} world; report runs of one world together"
            )
        content.add_run_record(path, info)
    entries = [str(p) for p in run_dirs] + list(
        baselines if baselines is not None else BASELINES_BY_WORLD[settings.world]
    )
    results, contenders = compare(entries, settings, customers, seed, progress=progress)
    content.cohort = {"customers": customers, "seed": seed}
    add_comparison(
        content,
        results,
        contenders,
        settings,
        runs=run_dirs,
        seed=seed,
        lifetime_customers=lifetime_customers,
        explain=explain,
        progress=progress,
    )
