"""``recenv report`` and ``recenv compare --html``: one self-contained HTML page."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest
from cli_checks import assert_bad_input
from served_runs import learned_linucb_run
from typer.testing import CliRunner

import rec_env
from rec_env.agents.baselines import FixedActionPolicy
from rec_env.agents.evaluation.evaluate import KPI, Evaluation
from rec_env.agents.report import headline
from rec_env.agents.report.lifetime import lifetime_mix
from rec_env.agents.runs import read_run_info
from rec_env.cli.main import app
from rec_env.settings import EnvSettings

runner = CliRunner()

EXTERNAL = re.compile(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", re.IGNORECASE)
"""A reference to another host: what a self-contained page must not have."""


@pytest.fixture(scope="module")
def linucb_run(tmp_path_factory) -> Path:
    return learned_linucb_run(tmp_path_factory.mktemp("runs") / "linucb-seed0")


def evaluation(policy: str, profit: float, messages: float, ci: float = 0.2) -> Evaluation:
    kpis = {
        "profit_per_customer": KPI(profit, ci),
        "conversion_rate": KPI(0.005, 0.001),
        "contacts_per_customer": KPI(messages, 0.3),
        "unsubscribe_rate": KPI(0.1, 0.01),
        "churn_rate": KPI(0.4, 0.02),
    }
    return Evaluation(policy, 1000, 0, EnvSettings(), kpis, {}, 0.0, None, [0.1] * 52)


def visible_text(page: str) -> str:
    return re.sub(
        r"<[^>]+>", " ", re.sub(r"<svg.*?</svg>|<style>.*?</style>", "", page, flags=re.S)
    )


# ----------------------------------------------------------------------------- the headline
def test_headline_names_the_winner_the_best_rule_and_doing_nothing() -> None:
    results = [
        evaluation("ppo-seed0", 9.19, 15),
        evaluation("best_fixed", 8.06, 22),
        evaluation("random", 8.5, 30),
        evaluation("no_action", 5.0, 0),
        evaluation("oracle", 12.0, 20),  # a reference, never the winner
    ]
    first, second = headline(results)
    assert first == (
        "ppo-seed0 earns $9.19 per customer a year, 14 % more than the best rule (best_fixed, "
        "$8.06), by sending 15 messages instead of 22."
    )
    assert second.startswith("Sending no messages at all earns $5.00")


def test_headline_says_so_when_nothing_beats_doing_nothing() -> None:
    results = [
        evaluation("ppo-seed0", 4.0, 15),
        evaluation("rule", 4.5, 10),
        evaluation("no_action", 5.0, 0),
    ]
    (sentence, focus) = headline(results, focus=["ppo-seed0"])
    assert sentence.startswith("No policy beats sending no messages: doing nothing earns $5.00")
    assert "the best other policy, rule, earns $4.50 while sending 10 messages" in sentence
    assert focus.startswith("The best trained policy, ppo-seed0, earns $4.00")


def test_headline_calls_a_difference_within_the_intervals_unclear() -> None:
    results = [evaluation("cooldown", 5.1, 9, ci=1.0), evaluation("no_action", 5.0, 0, ci=1.0)]
    first, second = headline(results)
    assert first.startswith("cooldown earns $5.10 per customer a year")
    assert second.endswith("(within the 95 % confidence intervals: not a clear gain).")


# ----------------------------------------------------------------------------- the lifetime
def test_lifetime_mix_counts_active_customers_by_age() -> None:
    settings = EnvSettings(horizon=6)
    model = settings.build_model()
    action = model.actions.names.index("recommendation_email")
    policy = FixedActionPolicy(model.actions.n_actions, action)
    mix = lifetime_mix(policy, settings, 200, seed=0, label="always recommend")
    assert mix.counts.shape == (6, model.actions.n_actions)
    assert mix.counts[0].sum() == 200  # everyone is active in week 1
    assert np.all(np.diff(mix.counts.sum(axis=1)) <= 0)  # churned customers leave
    sent = mix.counts[:, action] + mix.counts[:, model.actions.names.index("no_action")]
    assert np.array_equal(sent, mix.counts.sum(axis=1))  # the fallback where e-mail is masked
    assert mix.top_actions(1)[0][0] == "recommendation_email"


# ----------------------------------------------------------------------------- the CLI
@pytest.fixture(scope="module")
def runs_report(linucb_run, tmp_path_factory) -> str:
    """The report of a run, made once by the CLI (explaining 8 customers, 1 example)."""
    out = tmp_path_factory.mktemp("report") / "report.html"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("rec_env.agents.report.explanations.EXPLAINED_CUSTOMERS", 8)
        patch.setattr("rec_env.agents.report.explanations.EXAMPLE_CUSTOMERS", 1)
        args = ["report", str(linucb_run), "--customers", "100", "--out", str(out)]
        result = runner.invoke(app, [*args, "--no-progress"])
    assert result.exit_code == 0, result.output
    assert f"wrote {out}" in result.stdout
    return out.read_text(encoding="utf-8")


def test_report_of_runs_is_one_self_contained_page(runs_report) -> None:
    assert not EXTERNAL.search(runs_report)
    assert "<script" not in runs_report and "<link" not in runs_report
    for anchor in ("comparison", "learning", "lifetime", "explanations"):
        assert f'<section id="{anchor}">' in runs_report
    text = visible_text(runs_report)
    assert "per customer a year" in text and "sending no messages" in text.lower()


def test_report_footer_makes_it_reproducible(runs_report, linucb_run) -> None:
    text = visible_text(runs_report)
    info = read_run_info(linucb_run)
    assert info.weights_sha256 in text and info.files["state.npz"] in text
    assert f"recenv {rec_env.__version__}" in text
    assert re.search(r"Command:\s+recenv report", text)
    assert "evaluation cohort seed 0" in text and "linucb-seed0: training seed 0" in text


def test_report_explains_in_words(runs_report) -> None:
    assert "f(x)" not in runs_report and "E[f(X)]" not in runs_report
    assert "Example customer 1 gets" in runs_report
    assert re.search(r"(accepts|days since|average order|messages in)[^<]* = ", runs_report)


def test_compare_html_writes_the_report_next_to_the_outputs(tmp_path) -> None:
    html = tmp_path / "compare.html"
    args = ["compare", "no_action", "rule", "--customers", "60", "--out", str(tmp_path / "cmp")]
    result = runner.invoke(app, [*args, "--html", str(html)])
    assert result.exit_code == 0, result.output
    page = html.read_text(encoding="utf-8")
    assert '<section id="comparison">' in page and '<section id="lifetime">' in page
    assert "60 simulated customers" in page
    assert not EXTERNAL.search(page)
    assert (tmp_path / "cmp" / "comparison.json").is_file()


def write_saved_results(root: Path) -> list[Path]:
    """A compare output, an offline results.json, a bench directory and ab/ope JSON files."""
    compare = root / "cmp"
    compare.mkdir()
    results = [evaluation("cooldown", 8.0, 9), evaluation("no_action", 6.0, 0)]
    (compare / "comparison.json").write_text(json.dumps([r.to_dict() for r in results]))
    estimate = {"estimator": "dr", "value": 0.031, "ci_low": 0.014, "ci_high": 0.045,
                "n": 1000, "effective_sample_size": 50.0, "max_weight": 40.0,
                "unsupported_mass": 0.2}  # fmt: skip
    offline = root / "offline"
    offline.mkdir()
    (offline / "results.json").write_text(json.dumps({
        "reward": "conversion", "control": "no_action", "n_test": 1000, "seed": 0,
        "policies": [
            {"name": "dr_learner", "kind": "learned", "estimates": [estimate]},
            {"name": "always no_action", "kind": "constant",
             "estimates": [{**estimate, "value": 0.02, "effective_sample_size": 400.0,
                            "unsupported_mass": 0.0}]},
        ],
    }))  # fmt: skip
    bench = root / "bench"
    bench.mkdir()
    with (bench / "hillstrom_visit.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=[*estimate, "policy"])
        writer.writeheader()
        writer.writerow({**estimate, "policy": "linucb"})
    lift = {"metric": "profit", "a": 1.4, "b": 2.0, "difference": 0.53, "ci_low": -0.4,
            "ci_high": 1.5, "relative": 0.3, "p_value": 0.27, "test": "welch"}  # fmt: skip
    arm = {"policy": "rule", "customers": 1000,
           "kpis": {"profit_per_customer": {"mean": 1.44, "ci95": 0.3}}}  # fmt: skip
    ab = root / "ab.json"
    ab.write_text(json.dumps({"a": arm, "b": {**arm, "policy": "cooldown"},
                              "lift": {"profit_per_customer": lift}}))  # fmt: skip
    analysis = root / "analysis.json"
    analysis.write_text(json.dumps({
        "metric": "spend", "control": "holdout",
        "arms": [{"name": n, "customers": 500, "share": 0.5, "metric": {"mean": m, "ci95": 0.1},
                  "conversion": {"mean": 0.1, "ci95": 0.01}} for n, m in (("email", 2.0),
                                                                          ("holdout", 1.5))],
        "sample_ratio": {"p_value": 1e-6, "mismatch": True},
        "comparisons": [{"arm": "email", "metric": lift}],
    }))  # fmt: skip
    evaluated = root / "eval.json"
    single = {**evaluation("ppo-seed0", 7.0, 12).to_dict(), "n_customers": 10_000}
    evaluated.write_text(json.dumps(single))  # recenv eval RUN --json, another cohort
    ope = root / "ope.json"
    ope.write_text(json.dumps({"policy": "runs/ppo", "algorithm": "ppo", "with_reward": 900,
                               "logged_policy": {"mean": 0.02, "ci95": 0.01},
                               "estimates": [estimate]}))  # fmt: skip
    return [compare, offline, bench, ab, ope, analysis, evaluated]


def test_report_reads_saved_results_of_every_command(tmp_path) -> None:
    out = tmp_path / "saved.html"
    inputs = [str(p) for p in write_saved_results(tmp_path)]
    result = runner.invoke(app, ["report", *inputs, "--out", str(out)])
    assert result.exit_code == 0, result.output
    page = out.read_text(encoding="utf-8")
    assert not EXTERNAL.search(page)
    for anchor in ("comparison", "offline", "bench", "ab"):
        assert f'<section id="{anchor}">' in page
    text = visible_text(page)
    assert "cooldown earns $8.00 per customer a year" in text
    assert "dr_learner is estimated to earn 0.031 conversion per customer" in text
    assert "few effective samples; policy takes actions the log rarely took" in text
    assert "the logged policy earned 0.02" in text
    assert "profit per customer (USD)" in text  # the A/B lift in words
    assert "Sample ratio mismatch" in text and "lift over holdout" in text
    assert "ppo-seed0" in text and "2 different simulated cohorts" in text


def test_same_seed_same_lifetime_mix(linucb_run) -> None:
    from rec_env.agents.runs import load_run

    policy, info = load_run(linucb_run)
    settings = info.settings.replace(horizon=8)
    first, second, other = (
        lifetime_mix(policy, settings, 100, seed, "linucb") for seed in (3, 3, 4)
    )
    assert np.array_equal(first.counts, second.counts)
    assert not np.array_equal(first.counts, other.counts)


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["nowhere"], ["nowhere", "no such file"]),
        (["{empty}"], ["no result recenv report reads"]),
        (["{json}"], ["not a result recenv report reads"]),
        (["{empty}", "--out", "{tmp}/report.pdf"], ["unsupported file type", ".html"]),
        (["{empty}", "--customers", "0"], ["--customers"]),
    ],
)
def test_bad_input_is_one_error_line(tmp_path, args, fragments) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "other.json").write_text('{"hello": 1}')
    paths = {"empty": tmp_path / "empty", "json": tmp_path / "other.json", "tmp": tmp_path}
    args = [a.format(**paths) for a in args]
    if "--out" not in args:
        args += ["--out", str(tmp_path / "r.html")]
    assert_bad_input(runner.invoke(app, ["report", *args]), *fragments)


def test_an_existing_report_needs_force(tmp_path) -> None:
    inputs = [str(p) for p in write_saved_results(tmp_path)][:1]
    out = tmp_path / "r.html"
    out.write_text("old")
    assert_bad_input(runner.invoke(app, ["report", *inputs, "--out", str(out)]), "--force")
    result = runner.invoke(app, ["report", *inputs, "--out", str(out), "--force"])
    assert result.exit_code == 0 and out.read_text() != "old"


def test_a_column_and_its_intervals_share_their_decimals() -> None:
    from rec_env.agents.report.logged import bench_section

    values = [
        {"policy": "a", "estimator": "dr", "value": "1.2", "ci_low": "0.8952", "ci_high": "1.504",
         "effective_sample_size": "", "unsupported_mass": "", "n": ""},
        {"policy": "b", "estimator": "dr", "value": "12345.678", "ci_low": "0.06859",
         "ci_high": "20000", "effective_sample_size": "", "unsupported_mass": "", "n": ""},
    ]  # fmt: skip
    gains = [{"policy": "a", "baseline": "b", "estimator": "dr", "value": "-0.0604",
              "ci_low": "-0.221", "ci_high": "0.0719"}]  # fmt: skip
    html = "".join(bench_section("bench", "spend", {"values": values[:1], "gains": gains}))
    assert "1.20" in html and "[0.90, 1.50]" in html and "1.504" not in html
    assert "-0.060" in html and "[-0.221, 0.072]" in html
    wide = "".join(bench_section("bench", "spend", {"values": values, "gains": []}))
    assert "12,346" in wide and "[0, 20,000]" in wide  # one scale for the column: the largest's
