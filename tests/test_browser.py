"""The pages people look at, rendered by a real browser: headless Chromium (Debian's package).

* ``recenv report``'s HTML file, opened from disk: its figures render, and it asks for nothing
  from the network (no script, font or image from another host);
* the dashboard of a real ``recenv serve`` process with traffic and rewards, behind an API key:
  every chart renders from the data API, with no console error and no external request.

Screenshots go to ``RECENV_TEST_ARTIFACTS`` (``.ci/run`` keeps them) or the test's directory.
Without Chromium the tests skip with the reason (``tests/browser.py``).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from browser import artifacts_dir, browser, chromium_executable, visit
from served_runs import write_run
from typer.testing import CliRunner

from rec_env.agents.registry import make_bandit
from rec_env.agents.runs import write_curve
from rec_env.cli.main import app
from rec_env.rollout import run_cohort
from rec_env.settings import EnvSettings


@pytest.fixture(scope="module")
def chromium() -> str:
    return chromium_executable()


@pytest.fixture(scope="module")
def linucb_run(tmp_path_factory) -> Path:
    """A LinUCB run that learned for a few weeks, with a training curve."""
    model = EnvSettings().build_model()
    bandit = make_bandit("linucb", model, 0)
    run_cohort(model, bandit, 300, horizon=4, seed=0, learn=True)
    directory = write_run(tmp_path_factory.mktemp("runs") / "linucb-seed0", bandit)
    curve = [{"timesteps": float(t), "profit_per_customer": p, "profit_ci95": 0.4}
             for t, p in ((0, 4.0), (600, 4.5), (1200, 5.0))]  # fmt: skip
    write_curve(directory, curve)
    return directory


def test_the_report_renders_offline(chromium, linucb_run, tmp_path) -> None:
    out = tmp_path / "report.html"
    result = CliRunner().invoke(
        app, ["report", str(linucb_run), "--out", str(out), "--customers", "200",
              "--no-progress"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    with browser() as launched, visit(launched, out.as_uri()) as page_visit:
        page = page_visit.page
        page.wait_for_load_state("load")
        headline = page.locator(".headline").inner_text()
        assert "per customer" in headline
        figures = page.locator("svg")
        assert figures.count() >= 3
        box = figures.first.bounding_box()
        assert box is not None and box["width"] > 200 and box["height"] > 100  # drawn, not empty
        assert page.locator("table").count() >= 1
        page.screenshot(path=str(artifacts_dir(tmp_path) / "report.png"), full_page=True)
        page_visit.assert_clean()
