"""Train any trainable agent and write a run directory.

SB3 algorithms train through :func:`rec_env.agents.sb3.train_sb3`; bandits learn online in the
vectorised environment from every step's reward. Both evaluate periodically on a fixed cohort
(the learning curve) and once at the end on a larger one (``final_metrics`` in ``run.json``).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import fields
from pathlib import Path
from typing import Any

from rec_env import __version__
from rec_env.agents.base import Policy
from rec_env.agents.evaluation.evaluate import EVAL_SEED, evaluate
from rec_env.agents.registry import (
    BANDIT_ALGORITHMS,
    TRAINABLE,
    action_kwargs,
    check_algorithm,
    make_bandit,
)
from rec_env.agents.runs import (
    RunInfo,
    default_run_dir,
    load_run,
    world_env_id,
    write_curve,
    write_policy_files,
    write_run_info,
)
from rec_env.settings import EnvSettings

__all__ = ["check_hyperparameters", "train", "train_bandit"]


_BANDIT_DEFAULTS = {"n_envs": 256, "n_timesteps": 500_000}


@contextmanager
def _progress_bar(total: int, enabled: bool, label: str) -> Iterator[Any]:
    if not enabled:
        yield None
        return
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    columns = (TextColumn(label), BarColumn(), TextColumn("{task.completed:,}/{task.total:,}"))
    with Progress(*columns, TimeRemainingColumn(), transient=True) as bar:
        yield (bar, bar.add_task(label, total=total))


def train_bandit(
    algorithm: str,
    settings: EnvSettings,
    total_timesteps: int,
    seed: int,
    hyperparams: dict[str, Any] | None = None,
    n_envs: int = 256,
    eval_every: int = 100_000,
    eval_customers: int = 2_000,
    progress: bool = False,
) -> tuple[Policy, list[dict[str, float]]]:
    """Let a bandit learn online in the vectorised env for ``total_timesteps`` customer-steps.

    Each step every customer gets the bandit's (exploring) decision, and the bandit updates from
    the whole batch of rewards. Every ``eval_every`` steps the greedy policy is evaluated frozen.

    Returns:
        The trained bandit and its learning curve rows.
    """
    from rec_env import make_vec_env

    model = settings.build_model()
    policy = make_bandit(algorithm, model, seed, **(hyperparams or {}))
    venv = make_vec_env(n_envs, seed=seed, settings=settings)
    obs = venv.reset()
    curve: list[dict[str, float]] = []
    done, next_eval, start, reward_sum = 0, eval_every, time.perf_counter(), 0.0
    with _progress_bar(total_timesteps, progress, algorithm) as bar:
        while done < total_timesteps:
            actions = policy.predict(obs, venv.action_masks(), deterministic=False)
            next_obs, rewards, _, _ = venv.step(actions)
            policy.update(obs, actions, rewards.astype(float))
            obs, done, reward_sum = next_obs, done + n_envs, reward_sum + float(rewards.sum())
            if bar is not None:
                bar[0].update(bar[1], completed=min(done, total_timesteps))
            if done >= next_eval or done >= total_timesteps:
                result = evaluate(
                    policy, settings, eval_customers, EVAL_SEED, compare_to_oracle=False
                )
                kpi = result.kpis["profit_per_customer"]
                curve.append(
                    {
                        "timesteps": float(done),
                        "wall_time_s": time.perf_counter() - start,
                        "profit_per_customer": kpi.mean,
                        "profit_ci95": kpi.ci,
                        "train_reward_per_step": reward_sum / done,
                    }
                )
                next_eval += eval_every
    return policy, curve


def _check_bandit_hyperparameters(
    algorithm: str, settings: EnvSettings, hyperparams: dict[str, Any], steps: int | None
) -> dict[str, Any]:
    """A bandit's hyperparameters with the defaults filled in, checked by building it once."""
    from rec_env.agents.bandits import BANDITS

    params = {**_BANDIT_DEFAULTS, **hyperparams}
    if steps is not None:
        params["n_timesteps"] = steps
    for name in ("n_envs", "n_timesteps"):
        value = params[name]
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{algorithm}: {name} must be a positive integer, got {value!r}")
    model = settings.build_model()
    # A bandit's hyperparameters are its keyword-only dataclass fields (OBP style), less those
    # the registry sets from the catalog.
    known = {f.name for f in fields(BANDITS[algorithm]) if f.init and f.kw_only}
    known -= set(action_kwargs(model.actions))
    unknown = sorted(set(params) - known - set(_BANDIT_DEFAULTS))
    if unknown:
        raise ValueError(
            f"{algorithm}: unknown hyperparameter(s) {', '.join(unknown)}; known: "
            f"{', '.join(sorted(known | set(_BANDIT_DEFAULTS)))}"
        )
    bandit_settings = {k: v for k, v in params.items() if k not in _BANDIT_DEFAULTS}
    try:
        make_bandit(algorithm, model, 0, **bandit_settings)  # its __post_init__ checks values
    except TypeError as exc:  # a field the registry sets itself, e.g. action_names
        raise ValueError(f"{algorithm}: cannot set {', '.join(bandit_settings)}: {exc}") from None
    return params


def check_hyperparameters(
    algorithm: str,
    settings: EnvSettings | Mapping[str, Any] | None = None,
    hyperparams: dict[str, Any] | None = None,
    steps: int | None = None,
) -> dict[str, Any]:
    """The hyperparameters :func:`train` will use, checked before anything is trained or written.

    Args:
        algorithm: One of :data:`rec_env.agents.registry.TRAINABLE`.
        settings: The simulated world (bandits are built once on its action catalog; SB3
            reads the YAML section of its env id).
        hyperparams: Overrides of the defaults (SB3: the YAML file; bandits: their fields).
        steps: Environment steps, overriding ``n_timesteps``.

    Returns:
        Every hyperparameter, including ``n_envs`` and ``n_timesteps``.

    Raises:
        ValueError: If a hyperparameter is unknown or its value invalid (the message names it),
            or the algorithm cannot act in the world; :class:`rec_env.errors.ConfigError`, a
            ``ValueError``, for SB3's YAML file (which must have the world's env id).
    """
    algorithm = check_algorithm(algorithm, TRAINABLE)
    if algorithm in BANDIT_ALGORITHMS:
        return _check_bandit_hyperparameters(
            algorithm, EnvSettings.coerce(settings), dict(hyperparams or {}), steps
        )
    from rec_env.agents.sb3 import load_hyperparams
    from rec_env.agents.sb3.training import check_world

    settings = EnvSettings.coerce(settings)
    check_world(algorithm, settings)
    overrides = dict(hyperparams or {})
    if steps is not None:
        overrides["n_timesteps"] = steps
    return load_hyperparams(algorithm, world_env_id(settings), overrides=overrides)


def train(
    algorithm: str,
    settings: EnvSettings | Mapping[str, Any] | None = None,
    steps: int | None = None,
    seed: int = 0,
    out: str | Path | None = None,
    hyperparams: dict[str, Any] | None = None,
    eval_every: int | None = None,
    eval_customers: int = 2_000,
    final_customers: int = 10_000,
    progress: bool = False,
    tensorboard_log: str | None = None,
) -> Path:
    """Train ``algorithm`` and write its run directory.

    Args:
        algorithm: One of :data:`rec_env.agents.registry.TRAINABLE`.
        settings: The simulated world: :class:`~rec_env.settings.EnvSettings` or a mapping of
            its fields (``None``: the defaults).
        steps: Environment steps (customer-steps); the hyperparameter file's default if omitted.
        seed: Seed of training.
        out: Run directory (default ``runs/<algorithm>-seed<seed>``).
        hyperparams: Overrides of the hyperparameter file (SB3) or bandit hyperparameters.
        eval_every: Steps between learning-curve evaluations (default: ~10 per run).
        eval_customers: Cohort size of the learning-curve evaluations.
        final_customers: Cohort size of the final evaluation in ``run.json``.
        progress: Show a progress bar.
        tensorboard_log: TensorBoard directory (SB3 only).

    Returns:
        The run directory, with ``run.json`` recording the env id of ``settings.world``, the
        policy's feature names, every policy file's SHA-256 and the weights' (see
        :mod:`rec_env.agents.runs`).
    """
    algorithm = check_algorithm(algorithm, TRAINABLE)
    settings = EnvSettings.coerce(settings)
    used = check_hyperparameters(algorithm, settings, hyperparams, steps)
    total = int(used["n_timesteps"])
    directory = Path(out) if out is not None else default_run_dir(algorithm, seed)
    directory.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    if algorithm in BANDIT_ALGORITHMS:
        bandit_params = {k: v for k, v in used.items() if k not in _BANDIT_DEFAULTS}
        n_envs = int(used["n_envs"])
        policy, curve = train_bandit(
            algorithm,
            settings,
            total,
            seed,
            bandit_params,
            n_envs,
            eval_every or max(total // 10, n_envs),
            eval_customers,
            progress,
        )
    else:
        from rec_env.agents.sb3 import train_sb3

        overrides = dict(hyperparams or {})
        if steps is not None:
            overrides["n_timesteps"] = steps
        policy, curve = train_sb3(
            algorithm,
            settings,
            total_timesteps=total,
            seed=seed,
            hyperparams=overrides,
            eval_every=eval_every or max(total // 10, 1),
            eval_customers=eval_customers,
            progress=progress,
            tensorboard_log=tensorboard_log,
        )
    wall = time.perf_counter() - start
    digests = write_policy_files(directory, policy)  # removes another run's files left in out
    write_curve(directory, curve)
    final = evaluate(policy, settings, final_customers, EVAL_SEED, name=algorithm)
    write_run_info(
        directory,
        RunInfo(
            algorithm=algorithm,
            env_id=world_env_id(settings),
            env=settings.to_dict(),
            feature_names=list(policy.features.names),
            action_names=list(policy.action_names),
            hyperparameters=used,
            seed=seed,
            recenv_version=__version__,
            **digests,
            timesteps=total,
            wall_time_s=round(wall, 2),
            final_metrics=final.to_dict(),
        ),
    )
    load_run(directory)  # the run loads back and verifies, or training fails now, not serving
    load_run(directory, lean=True)  # and so does its serving copy
    return directory
