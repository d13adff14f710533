"""The report page: headline, sections and the reproducibility footer, as one HTML string."""

from __future__ import annotations

from pathlib import Path

from rec_env.agents.evaluation.plots import ranked
from rec_env.agents.evaluation.style import policy_colors
from rec_env.agents.report.content import ReportContent
from rec_env.agents.report.headline import headline
from rec_env.agents.report.html import escape, page, paragraph, section, table
from rec_env.agents.report.logged import logged_headline, logged_sections
from rec_env.agents.report.simulated import (
    comparison_section,
    explanation_section,
    learning_section,
    lifetime_section,
)

__all__ = ["render_report"]


def _colors(content: ReportContent) -> dict[str, str]:
    """One colour per policy for every figure of the report."""
    best_first = [r.policy for r in ranked(content.evaluations)]
    return policy_colors([*best_first, *content.training])  # the strongest shade to the best


def _subtitle(content: ReportContent) -> str:
    if content.evaluations:
        first = content.evaluations[0]
        return (
            f"{len(content.evaluations)} policies on {first.n_customers:,} simulated customers "
            f"of the {first.settings.profile} population ({first.settings.world} world)"
        )
    names = ", ".join(str(source) for source in content.sources)
    return f"Results read from {names}"


def _footer(content: ReportContent, command: str, version: str, generated: str) -> str:
    """The reproducibility footer: version, command, seeds, models' hashes, inputs."""
    lines = [
        f"<p>recenv {escape(version)}"
        + (f", generated {escape(generated)}" if generated else "")
        + "</p>"
    ]
    lines.append(f"<p>Command: <code>{escape(command)}</code></p>")
    seeds = []
    if content.evaluations:
        cohort = ranked(content.evaluations)[0]
        seeds.append(f"evaluation cohort seed {cohort.seed} ({cohort.n_customers:,} customers)")
    seeds += [f"{run.path}: training seed {run.seed}" for run in content.runs]
    if seeds:
        lines.append(f"<p>Seeds: {escape('; '.join(seeds))}</p>")
    if content.runs:
        rows = [
            [
                run.path,
                run.algorithm,
                f"{run.timesteps:,}",
                run.recenv_version,
                run.weights_sha256,
                ", ".join(f"{name} {digest}" for name, digest in run.files.items()),
            ]
            for run in content.runs
        ]
        lines.append(
            table(
                [
                    "run",
                    "algorithm",
                    "training steps",
                    "trained with recenv",
                    "weights SHA-256",
                    "files SHA-256",
                ],
                rows,
                text_columns=6,
            )
        )
    if content.sources:
        lines.append(f"<p>Saved results read: {escape(', '.join(content.sources))}</p>")
    return "".join(lines)


def render_report(
    content: ReportContent, *, command: str, version: str, generated: str = ""
) -> str:
    """The report as one self-contained HTML document.

    Args:
        content: What to show.
        command: The command line that made the report (for the footer).
        version: recenv's version.
        generated: When, as text (left out if empty, e.g. for reproducible files).
    """
    colors = _colors(content)
    lead: list[str] = []
    sections: list[tuple[str, str, str]] = []
    if content.evaluations:
        focus = [Path(run.path).resolve().name for run in content.runs]
        lead = headline(content.evaluations, focus)
        sections.append(("comparison", "Comparison", comparison_section(content, colors)))
        if content.training or any(r.reward_per_cycle for r in content.evaluations):
            sections.append(("learning", "Learning curves", learning_section(content, colors)))
        if content.lifetimes:
            sections.append(("lifetime", "Over the lifetime", lifetime_section(content)))
        if content.explanations:
            sections.append(("explanations", "Explanations", explanation_section(content)))
    elif content.offline:
        lead = [logged_headline(results) for _, results in content.offline[:1]]
    sections += logged_sections(content)
    notes = list(content.notes)
    cohorts = {(r.n_customers, r.seed, r.settings) for r in content.evaluations}
    if len(cohorts) > 1:
        notes.append(
            f"The evaluations come from {len(cohorts)} different simulated cohorts (customers, "
            "seed or world differ): compare policies of different cohorts with care."
        )
    if notes:
        body = [paragraph(note, "note") for note in notes]
        sections.append(("notes", "Notes", section("notes", "Notes", body)))
    return page(
        "recenv report",
        _subtitle(content),
        lead,
        sections,
        _footer(content, command, version, generated),
    )
