"""``recenv report``: one self-contained HTML page of what recenv measured, for people.

* :mod:`~rec_env.agents.report.inputs`: reads saved results of compare, eval, offline, bench,
  ab and ope;
* :mod:`~rec_env.agents.report.content`: what a report holds, and the short evaluation of run
  directories (with :mod:`~rec_env.agents.report.lifetime`, the action mix by customer age, and
  :mod:`~rec_env.agents.report.explanations`);
* :mod:`~rec_env.agents.report.headline`: the plain-words headline;
* :mod:`~rec_env.agents.report.simulated`, :mod:`~rec_env.agents.report.logged`: the sections;
* :mod:`~rec_env.agents.report.html`, :mod:`~rec_env.agents.report.report`: the page.

Figures are matplotlib in the house style (:mod:`rec_env.agents.evaluation.style`, which says
why), inlined as SVG.
"""

from __future__ import annotations

from rec_env.agents.report.content import ReportContent, add_comparison, add_simulation
from rec_env.agents.report.headline import headline
from rec_env.agents.report.inputs import input_kind, read_result
from rec_env.agents.report.report import render_report

__all__ = [
    "ReportContent",
    "add_comparison",
    "add_simulation",
    "headline",
    "input_kind",
    "read_result",
    "render_report",
]
