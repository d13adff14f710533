"""Files of the Hillstrom benchmark: the held-out table, the gains and the replay curves.

:func:`write_hillstrom_outputs` writes, for reward ``R``:

* ``hillstrom_R.csv``: one row per policy and estimator (``ips``, ``snips``, ``dr``): value,
  95 % CI, number of held-out customers, effective sample size, largest and mean weight;
* ``hillstrom_R_gains.csv``: each learned policy minus the best constant policy, per estimator,
  with paired bootstrap 95 % CIs;
* ``hillstrom_R_replay.csv``: the training replay of every policy: rounds logged and kept, and
  mean reward per kept round;
* ``hillstrom_R_replay.png``: the replay learning curves, total reward and reward per customer
  so far against the customers replayed.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from rec_env.agents.benchmarks.hillstrom import LEARNED_POLICIES, HillstromBenchmark

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["REWARD_WORDS", "plot_replay_curves", "replay_figure", "write_hillstrom_outputs"]


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


REWARD_WORDS: dict[str, tuple[str, str]] = {
    "visit": ("site visits", "visits"),
    "conversion": ("purchases", "purchases"),
    "spend": ("spend (USD)", "USD spent"),
    "profit": ("profit (USD)", "USD profit"),
}
"""Hillstrom reward → (what it counts, its unit per customer) in words."""


def replay_figure(bench: HillstromBenchmark) -> Figure:
    """The replay learning curves of the training half (house style), legends on both panels.

    Left: the total reward collected against the customers replayed, that is, the logged
    customers whose randomly chosen e-mail matched the policy's choice (Li et al. 2011). Right:
    the reward per replayed customer so far, from the 200th on, where it has settled enough to
    read. Learned policies are solid lines, the constant and random references dashed.
    """
    from rec_env.agents.evaluation.style import figure, policy_colors

    counted, unit = REWARD_WORDS.get(bench.reward, (bench.reward, bench.reward))
    colors = policy_colors(r.policy for r in bench.replays)
    with figure(nrows=1, ncols=2, figsize=(11, 4.4)) as fig:
        total, running = fig.axes
        for result in bench.replays:
            if result.n_kept == 0:
                continue
            rounds = np.arange(1, result.n_kept + 1)
            cumulative = result.cumulative_reward
            style = "-" if result.policy in LEARNED_POLICIES else "--"
            color = colors[result.policy]
            label = f"{result.policy} ({result.mean_reward:.3g} {unit} per customer)"
            total.plot(rounds, cumulative, style, color=color, linewidth=1.5, label=label)
            start = min(200, result.n_kept) - 1
            running.plot(
                rounds[start:],
                (cumulative / rounds)[start:],
                style,
                color=color,
                linewidth=1.5,
                label=result.policy,
            )
        replayed = "customers replayed (their logged e-mail matched the policy's choice)"
        total.set(xlabel=replayed, ylabel=f"total {counted} collected")
        total.set_title("What each policy collects while learning")
        running.set(xlabel=replayed, ylabel=f"{unit} per customer so far")
        running.set_title("Average so far (from the 200th customer)")
        total.legend(loc="upper left")
        running.legend(loc="lower right")
        fig.suptitle(
            f"Learning from the Hillstrom e-mail campaign: {bench.n_train:,} customers "
            f"(training half), reward {counted}, seed {bench.seed}",
            x=0.01,
            ha="left",
        )
        fig.tight_layout()
    return fig


def plot_replay_curves(bench: HillstromBenchmark, path: str | Path) -> Path:
    """Write :func:`replay_figure` as a PNG."""
    from rec_env.agents.evaluation.style import save_png

    return save_png(replay_figure(bench), path)


def write_hillstrom_outputs(bench: HillstromBenchmark, out: str | Path) -> list[Path]:
    """Write the CSV files and the PNG of the benchmark into ``out`` (created if needed).

    Returns:
        The paths written.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"hillstrom_{bench.reward}"
    replay_rows = [
        {
            "policy": r.policy,
            "logged_rounds": r.n_logged,
            "kept_rounds": r.n_kept,
            "mean_reward": r.mean_reward,
        }
        for r in bench.replays
    ]
    return [
        _write_csv(out / f"{stem}.csv", bench.rows()),
        _write_csv(out / f"{stem}_gains.csv", bench.gain_rows()),
        _write_csv(out / f"{stem}_replay.csv", replay_rows),
        plot_replay_curves(bench, out / f"{stem}_replay.png"),
    ]
