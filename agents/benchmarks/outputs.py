"""Files of the Hillstrom benchmark: the held-out table, the gains and the replay curves.

:func:`write_hillstrom_outputs` writes, for reward ``R``:

* ``hillstrom_R.csv``: one row per policy and estimator (``ips``, ``snips``, ``dr``): value,
  95 % CI, number of held-out customers, effective sample size, largest and mean weight;
* ``hillstrom_R_gains.csv``: each learned policy minus the best constant policy, per estimator,
  with paired bootstrap 95 % CIs;
* ``hillstrom_R_replay.csv``: the training replay of every policy: rounds logged and kept, and
  mean reward per kept round;
* ``hillstrom_R_replay.png``: the replay learning curves, cumulative reward and running mean
  reward against kept rounds.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np

from rec_env.agents.benchmarks.hillstrom import LEARNED_POLICIES, HillstromBenchmark

__all__ = ["plot_replay_curves", "write_hillstrom_outputs"]


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def plot_replay_curves(bench: HillstromBenchmark, path: str | Path) -> Path:
    """Replay learning curves of the training half as a PNG (matplotlib, Agg).

    Left: cumulative reward against kept rounds. Right: mean reward per kept round so far
    (from round 200 on, where it has settled enough to read). Learned bandits are solid lines,
    the constant and random references dashed.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (total, running) = plt.subplots(1, 2, figsize=(11, 4.2))
    for result in bench.replays:
        if result.n_kept == 0:
            continue
        rounds = np.arange(1, result.n_kept + 1)
        cumulative = result.cumulative_reward
        style = "-" if result.policy in LEARNED_POLICIES else "--"
        label = f"{result.policy} ({result.mean_reward:.4g}/round)"
        total.plot(rounds, cumulative, style, linewidth=1.4, label=label)
        start = min(200, result.n_kept) - 1
        running.plot(rounds[start:], (cumulative / rounds)[start:], style, linewidth=1.4)
    total.set(xlabel="replayed (kept) rounds", ylabel=f"cumulative {bench.reward}")
    running.set(xlabel="replayed (kept) rounds", ylabel=f"mean {bench.reward} per round")
    total.legend(fontsize=8)
    fig.suptitle(
        f"Hillstrom replay (Li et al. 2011) on the training half: {bench.n_train:,} customers, "
        f"reward {bench.reward}, seed {bench.seed}",
        fontsize=10,
    )
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


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
