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

import httpx
import numpy as np
import pytest
from browser import artifacts_dir, browser, chromium_executable, visit
from serve_process import running_server
from served_runs import learned_linucb_run
from typer.testing import CliRunner

from rec_env.agents.explain import population_background
from rec_env.cli.main import app
from rec_env.features import FEATURE_NAMES

KEY = "browser-test-key"
CHARTS = ("decisions", "rewards", "off-policy", "holdout", "action-mix", "propensities",
          "conversion", "profit")  # fmt: skip


@pytest.fixture(scope="module")
def chromium() -> str:
    return chromium_executable()


@pytest.fixture(scope="module")
def linucb_run(tmp_path_factory) -> Path:
    return learned_linucb_run(tmp_path_factory.mktemp("runs") / "linucb-seed0")


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


def post_traffic(url: str, n: int = 120) -> None:
    """``n`` decisions with ids, and a reward for two thirds of them (buyers and zeros)."""
    rows = population_background(n, seed=3).astype(np.float64).round(4)
    rng = np.random.default_rng(0)
    with httpx.Client(base_url=url, headers={"X-API-Key": KEY}) as client:
        for i, row in enumerate(rows):
            body = {"features": dict(zip(FEATURE_NAMES, row.tolist(), strict=True)),
                    "customer_id": f"c{i}"}  # fmt: skip
            decision = client.post("/v1/recommend", json=body)
            assert decision.status_code == 200, decision.text
            if i % 3:
                reward = float(rng.choice([0.0, 0.0, 12.5, 30.0]))
                posted = client.post(
                    f"/v1/events/{decision.json()['event_id']}/reward", json={"reward": reward}
                )
                assert posted.status_code == 200, posted.text


def test_the_dashboard_renders_live_data(chromium, linucb_run, tmp_path) -> None:
    """A real server with an API key: the page asks for it, then draws every chart."""
    with running_server(linucb_run, tmp_path, "--no-explain", "--seed", "0",
                        "--holdout", "0.1", api_key=KEY) as server:  # fmt: skip
        post_traffic(server.url)
        with browser() as launched:
            with visit(launched, f"{server.url}/dashboard") as asked:  # no key: the form
                asked.page.wait_for_function("document.body.dataset.ready === 'key'")
                assert asked.page.locator("#api-key-form").is_visible()
                assert all("401" in error for error in asked.console_errors), asked.console_errors
                asked.page.fill("#api-key", KEY)
                asked.page.locator("#api-key-form").evaluate("form => form.requestSubmit()")
                asked.page.wait_for_function("document.body.dataset.ready === 'true'")
            with visit(launched, f"{server.url}/dashboard#key={KEY}") as page_visit:
                page = page_visit.page
                page.wait_for_function("document.body.dataset.ready === 'true'", timeout=30_000)
                assert page.locator("#error").is_hidden()
                assert page.locator("#total-decisions").inner_text().replace(",", "") == "120"
                for chart in CHARTS:
                    drawn = page.locator(f"#chart-{chart} *")
                    assert drawn.count() > 3, chart  # axes, marks and labels
                    box = page.locator(f"#chart-{chart}").bounding_box()
                    assert box is not None and box["width"] > 150, chart
                page.screenshot(path=str(artifacts_dir(tmp_path) / "dashboard.png"), full_page=True)
                page_visit.assert_clean()
