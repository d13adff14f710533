"""The house style and the figures, checked on matplotlib's objects (not pixels)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest

from rec_env.agents.benchmarks.hillstrom import HillstromBenchmark
from rec_env.agents.benchmarks.outputs import plot_replay_curves, replay_figure
from rec_env.agents.evaluation.evaluate import KPI, Evaluation
from rec_env.agents.evaluation.plots import (
    kpi_figure,
    learning_curve_figure,
    plot_kpis,
    plot_learning_curves,
    smooth,
)
from rec_env.agents.evaluation.style import (
    FAMILY_SHADES,
    FEATURE_WORDS,
    HIGHLIGHT,
    Period,
    feature_label,
    feature_with_value,
    policy_colors,
    policy_family,
    svg_text,
)
from rec_env.agents.evaluation.targeting import PolicyValueCurve
from rec_env.agents.evaluation.uplift_plots import policy_value_figure, uplift_figure
from rec_env.agents.explain.plots import action_summary_figure, waterfall_figure
from rec_env.agents.ope.replay import ReplayResult
from rec_env.features import FEATURE_NAMES, FEATURES
from rec_env.settings import EnvSettings


def evaluation(policy: str, profit: float, messages: float = 10.0, weekly=None) -> Evaluation:
    kpis = {
        "profit_per_customer": KPI(profit, 0.5),
        "conversion_rate": KPI(0.005, 0.001),
        "contacts_per_customer": KPI(messages, 0.3),
        "unsubscribe_rate": KPI(0.1, 0.01),
        "churn_rate": KPI(0.4, 0.02),
    }
    return Evaluation(
        policy, 500, 0, EnvSettings(), kpis, {}, 0.0, None, [] if weekly is None else list(weekly)
    )


RESULTS = [
    evaluation("rule", 6.0),
    evaluation("oracle", 9.0),
    evaluation("ppo-seed0", 8.0),
    evaluation("no_action", 5.0, messages=0.0),
    evaluation("linucb (online)", 4.0),
]


def texts(fig) -> list[str]:
    return [t.get_text() for t in fig.findobj(matplotlib.text.Text)]


# ----------------------------------------------------------------------------- style
@pytest.mark.parametrize(
    ("label", "family"),
    [
        ("ppo-seed0", "rl"),
        ("maskable_ppo-seed3", "rl"),
        ("linucb (online)", "bandit"),
        ("egreedy-seed1 (online)", "bandit"),
        ("best_fixed", "rule"),
        ("always no_action", "no_action"),
        ("no_action", "no_action"),
        ("diverse_oracle", "oracle"),
        ("dr_learner", "learned"),
        ("something else", "other"),
    ],
)
def test_policy_family(label: str, family: str) -> None:
    assert policy_family(label) == family


def test_policy_colors_share_a_hue_per_family_and_differ_within_it() -> None:
    colors = policy_colors(["ppo-seed0", "a2c", "ppo-seed1", "linucb", "rule", "no_action"])
    assert colors["ppo-seed0"] == colors["ppo-seed1"]  # seeds of one algorithm
    assert colors["a2c"] != colors["ppo-seed0"]
    assert {colors["ppo-seed0"], colors["a2c"]} <= set(FAMILY_SHADES["rl"])
    assert colors["linucb"] in FAMILY_SHADES["bandit"]
    assert colors["no_action"] == FAMILY_SHADES["no_action"][0]


def test_every_env_feature_has_words_and_a_value_in_its_unit() -> None:
    assert set(FEATURE_WORDS) == set(FEATURE_NAMES)  # one table, every feature
    assert feature_with_value("contacts_last_30d", 3) == "messages in the last 30 days = 3"
    assert feature_with_value("consent_email", 1.0) == "accepts e-mail = yes"
    assert feature_with_value("email_opens", 0.25) == "e-mail open rate = 25 %"
    assert feature_with_value("monetary_value", 76.6) == "average order = $77"
    assert feature_label("purchases_footwear") == "recent purchases in footwear"
    assert all("_" not in feature_label(f.name) for f in FEATURES)


def test_period_words() -> None:
    assert (Period(52, 7.0).cycle, Period(52, 7.0).per_lifetime) == ("week", "a year")
    assert Period(26, 7.0).per_lifetime == "over 26 weeks"
    assert Period.of({"horizon": 30, "cycle_days": 1.0}).lifetime == "30 days"


def test_svg_is_inline_and_deterministic() -> None:
    first, second = svg_text(kpi_figure(RESULTS)), svg_text(kpi_figure(RESULTS))
    assert first.startswith("<svg") and first == second
    assert "<?xml" not in first and "DOCTYPE" not in first and "dc:date" not in first


# ----------------------------------------------------------------------------- KPIs
def test_kpis_are_sorted_with_the_winner_outlined_and_units() -> None:
    fig = kpi_figure(RESULTS)
    first = fig.axes[0]
    labels = [t.get_text() for t in first.get_yticklabels()]
    assert labels == ["oracle", "ppo-seed0", "rule", "no_action", "linucb (online)"]
    edges = [matplotlib.colors.to_hex(bar.get_edgecolor()) for bar in first.patches]
    winner = labels.index("ppo-seed0")  # the oracle is a reference, not the winner
    assert edges[winner] == HIGHLIGHT and first.patches[winner].get_linewidth() > 1
    assert sum(edge == HIGHLIGHT for edge in edges) == 1
    assert first.get_yticklabels()[winner].get_fontweight() == "bold"
    xlabels = [ax.get_xlabel() for ax in fig.axes]
    assert "USD per customer a year" in xlabels[0]
    assert any("unsubscribed" in label for label in xlabels)
    assert any(
        "purchases per week" in label and "100 active customers" in label for label in xlabels
    )
    colors = {matplotlib.colors.to_hex(bar.get_facecolor()) for bar in first.patches}
    assert len(colors) == len(labels)  # one colour per family here


def test_plot_kpis_writes_a_png(tmp_path) -> None:
    path = plot_kpis(RESULTS, tmp_path / "kpis.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ----------------------------------------------------------------------------- learning
def curve(steps: list[float], profits: list[float]) -> list[dict[str, float]]:
    return [
        {"timesteps": s, "profit_per_customer": p, "profit_ci95": 0.3}
        for s, p in zip(steps, profits, strict=True)
    ]


def test_learning_curves_band_over_seeds_log_axis_and_distinct_colours() -> None:
    weekly = np.linspace(0.3, 0.1, 52)
    results = [*RESULTS[:4], evaluation("linucb (online)", 4.0, weekly=weekly)]
    results += [evaluation("egreedy (online)", 4.5, weekly=weekly)]
    training = {
        "ppo": [curve([0, 1e5, 1e6], [4, 5, 6]), curve([0, 1e5, 1e6], [4, 6, 7])],
        "linucb": [curve([0, 5e3, 1e4], [4, 4.5, 4.6])],
    }
    fig = learning_curve_figure(results, training)
    left, right = fig.axes
    assert left.get_xscale() == "log"  # 10k and 1M steps on one axis
    assert "customer-weeks simulated" in left.get_xlabel()
    assert "USD per customer a year" in left.get_ylabel()
    assert [line.get_label() for line in left.get_lines()] == ["ppo, 2 seeds", "linucb"]
    assert len(left.collections) == 2  # a band per group
    band = left.collections[0].get_paths()[0].vertices[:, 1]
    assert band.min() <= 5 and band.max() >= 6  # the range over the two seeds
    online = [line for line in right.get_lines() if "online" in line.get_label()]
    assert len(online) == 2
    colors = [line.get_color() for line in right.get_lines()]
    assert len(set(colors)) == len(colors)
    assert right.get_xlabel() == "week of the customer's year"


def test_smooth_keeps_length_and_averages() -> None:
    values = np.array([0.0, 3.0, 0.0, 3.0, 0.0])
    assert smooth(values, 3).tolist() == [1.5, 1.0, 2.0, 1.0, 1.5]


def test_plot_learning_curves_groups_seeds(tmp_path) -> None:
    class Run:
        def __init__(self, label, rows):
            self.label, self.curve = label, rows

    runs = [Run("ppo-seed0", curve([1, 2], [1, 2])), Run("ppo-seed1", curve([1, 2], [2, 3]))]
    path = plot_learning_curves(RESULTS, runs, tmp_path / "curves.png")
    assert path.stat().st_size > 0


# ----------------------------------------------------------------------------- explanations
def test_waterfall_has_plain_labels_units_and_no_shap_jargon() -> None:
    values = np.zeros(16)
    values[FEATURE_NAMES.index("contacts_last_30d")] = -0.2
    values[FEATURE_NAMES.index("consent_sms")] = 0.3
    data = np.zeros(16)
    data[FEATURE_NAMES.index("contacts_last_30d")] = 3
    fig = waterfall_figure(
        values, 0.4, FEATURE_NAMES, data, axis_label="probability (%)", scale=100.0,
        value_format="{:.0f} %", max_display=5,
    )  # fmt: skip
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels[:2] == ["accepts SMS = no", "messages in the last 30 days = 3"]
    assert labels[-1] == "12 other features"
    assert ax.get_xlabel() == "probability (%)"
    words = " ".join(texts(fig))
    assert "average customer\n40 %" in words and "this customer\n50 %" in words
    assert "f(x)" not in words and "E[f(X)]" not in words


def test_action_summary_has_one_panel_per_action() -> None:
    rng = np.random.default_rng(0)
    values, data = rng.normal(size=(30, 16)), rng.uniform(size=(30, 16))
    actions = np.array([0] * 15 + [2] * 10 + [5] * 5)
    names = [f"action_{i}" for i in range(8)]
    fig = action_summary_figure(values, data, actions, names, FEATURE_NAMES, title="Why")
    titled = [ax.get_title("left") for ax in fig.axes if ax.get_title("left")]
    assert titled == [
        "action_0 (15 customers)",
        "action_2 (10 customers)",
        "action_5 (5 customers)",
    ]
    panel = fig.axes[1]
    dots = sum(len(c.get_offsets()) for c in panel.collections)
    assert dots == 10 * 8  # only the customers who got action_2, 8 features each
    assert "percentage points" in panel.get_xlabel()
    assert fig._suptitle.get_text() == "Why"
    again = action_summary_figure(values, data, actions, names, FEATURE_NAMES, title="Why")
    np.testing.assert_array_equal(  # same seed, same jitter
        fig.axes[0].collections[0].get_offsets(), again.axes[0].collections[0].get_offsets()
    )


# ----------------------------------------------------------------------------- replay, uplift
def test_replay_curves_have_plain_words_and_a_legend_on_every_panel(tmp_path) -> None:
    rewards = np.random.default_rng(1).binomial(1, 0.2, 300).astype(float)
    replays = [
        ReplayResult("linucb", np.arange(300), rewards, 900),
        ReplayResult("always_mens", np.arange(250), rewards[:250], 900),
    ]
    bench = HillstromBenchmark("visit", 0, 900, 900, replays=replays)
    fig = replay_figure(bench)
    assert all(ax.get_legend() is not None for ax in fig.axes)
    assert "site visits" in fig.axes[0].get_ylabel()
    assert "customers replayed" in fig.axes[0].get_xlabel()
    assert plot_replay_curves(bench, tmp_path / "replay.png").stat().st_size > 0


def test_uplift_figures_use_family_colours() -> None:
    shares = np.linspace(0.1, 1.0, 10)
    value = PolicyValueCurve(shares, (shares * 100).astype(int), shares, shares - 0.1,
                             shares + 0.1, "dr", 100)  # fmt: skip
    fig = policy_value_figure({"dr_learner": value}, references={"always no_action": 0.2})
    line = fig.axes[0].get_lines()[0]
    assert line.get_color() in FAMILY_SHADES["learned"]
    qini = uplift_figure({"t_learner": (np.arange(1, 11), np.arange(10.0))}, outcome="visits")
    assert "visits" in qini.axes[0].get_ylabel()
    with pytest.raises(ValueError, match="kind"):
        uplift_figure({"x": (np.arange(3), np.arange(3.0))}, kind="lift")
