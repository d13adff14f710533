"""``recenv serve --model RUN_DIR``: run the decision service with uvicorn (one worker)."""

from __future__ import annotations

import errno
import socket
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from rec_env.cli._errors import fail, reporting_bad_input

__all__ = ["serve_command"]

_OPTION_NAMES = {"model_dir": "--model", "db": "--db", "state_dir": "--state-dir"}


def _settings_error(exc: Exception) -> str:
    """A pydantic ``ValidationError`` of the settings as ``--option: problem`` text."""
    problems = []
    for error in exc.errors():  # type: ignore[attr-defined]
        field = str(error["loc"][0]) if error["loc"] else "settings"
        option = _OPTION_NAMES.get(field, "--" + field.replace("_", "-"))
        problems.append(f"{option}: {error['msg']}")
    return "; ".join(problems)


def _check_can_listen(host: str, port: int) -> None:
    """Bind ``host:port`` once and release it, so a bad host or a busy port fails up front.

    Binds the way uvicorn does (IPv6 if the host holds a colon, with ``SO_REUSEADDR``), before
    the model is loaded or the decision log is created.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except socket.gaierror:
            fail(f"--host {host}: not an IP address or a known host name")
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                fail(f"--port {port}: already in use on {host}; stop that server or pick another")
            fail(f"cannot listen on {host}:{port} ({exc.strerror or exc})")


def serve_command(
    ctx: typer.Context,
    run: Annotated[
        Path | None,
        typer.Argument(
            metavar="RUN",
            show_default=False,
            help="Run directory written by `recenv train` (or give --model): a strategy, item "
            "or slate run.",
        ),
    ] = None,
    model: Annotated[
        Path | None,
        typer.Option("--model", help="Run directory written by `recenv train` (or give RUN)."),
    ] = None,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    db: Annotated[
        str | None,
        typer.Option(
            help="Decision log: a SQLite file (one server), or a postgresql://user:password@host"
            "/database URL that several replicas share [default: decisions.db]."
        ),
    ] = None,
    api_key: Annotated[
        str | None,
        typer.Option(
            envvar="RECENV_API_KEY",
            help="Require this X-API-Key header for rewards, /v1/model and /metrics. Set it "
            "in the environment (RECENV_API_KEY=... recenv serve ...): on the command line "
            "`ps` shows it to every user. An empty key is refused.",
            show_envvar=True,
        ),
    ] = None,
    exploration: Annotated[
        str | None, typer.Option(help="epsilon, temperature or none [default: epsilon].")
    ] = None,
    epsilon: Annotated[float | None, typer.Option(help="ε of ε-mixing [default: 0.05].")] = None,
    temperature: Annotated[
        float | None, typer.Option(help="Softmax temperature [default: 1].")
    ] = None,
    seed: Annotated[
        int | None, typer.Option(help="Seed of the action sampler [default: OS entropy].")
    ] = None,
    state_dir: Annotated[
        Path | None,
        typer.Option(
            help="Keep snapshots of an online learner's (bandit's) state here, so a restart "
            "replays only the rewards logged since the last one."
        ),
    ] = None,
    state_save_every: Annotated[
        int | None,
        typer.Option(help="Snapshot the online state every this many rewards [default: 100]."),
    ] = None,
    explain: Annotated[
        bool | None,
        typer.Option(
            help="Explain decisions; the explainer is built on the first request [default: on]."
        ),
    ] = None,
    n_background: Annotated[
        int | None, typer.Option(help="Background customers of explanations [default: 16].")
    ] = None,
    assume_consent: Annotated[
        str | None,
        typer.Option(
            envvar="RECENV_ASSUME_CONSENT",
            show_envvar=True,
            help="Channels on which a customer's unknown consent (left out of a request) counts "
            "as given: a comma-separated list of email, sms, push, or all. By default nothing "
            "is sent on a channel of unknown consent.",
        ),
    ] = None,
    rules: Annotated[
        Path | None,
        typer.Option(
            help="Business rules (YAML): caps, eligibility and suppression mask every decision."
        ),
    ] = None,
    holdout: Annotated[
        float | None,
        typer.Option(
            help="Share of customers held out (no message) by a keyed hash of customer_id, as "
            "recenv score does [default: 0]."
        ),
    ] = None,
    holdout_seed: Annotated[
        int | None, typer.Option(help="Key of the holdout's hash [default: 0].")
    ] = None,
    apprentice: Annotated[
        bool | None,
        typer.Option(
            "--apprentice/--live",
            help="Apprentice mode: every recommend request must give the caller's own choice "
            "(baseline_action), which is served; the model's is only logged [default: live].",
        ),
    ] = None,
    reward_min: Annotated[
        float | None,
        typer.Option(
            help="Lowest accepted reward in USD; below it: 422, neither logged nor learned "
            "[default: -1000]."
        ),
    ] = None,
    reward_max: Annotated[
        float | None,
        typer.Option(
            help="Highest accepted reward in USD; above it: 422, neither logged nor learned "
            "[default: 1000]."
        ),
    ] = None,
    reward_window_days: Annotated[
        float | None,
        typer.Option(
            help="Attribution window in days from a decision's activation (else the decision): "
            "rewards inside it add up (in parts), and when it closes their sum, or "
            "--default-reward, is what is learned [default: none, a reward is final at once]."
        ),
    ] = None,
    default_reward: Annotated[
        float | None,
        typer.Option(help="Reward of a decision whose window closes without one [default: 0]."),
    ] = None,
    require_activation: Annotated[
        bool | None,
        typer.Option(
            "--require-activation/--no-require-activation",
            help="Learn from and evaluate activated (delivered) decisions only: a reward for a "
            "decision never activated is refused (409) [default: off].",
        ),
    ] = None,
    window_close_interval: Annotated[
        float | None,
        typer.Option(
            help="Seconds between background closes of the reward windows that are over "
            "(0: only on POST /v1/rewards/close) [default: 60]."
        ),
    ] = None,
    refresh_seconds: Annotated[
        float | None,
        typer.Option(
            help="PostgreSQL --db: seconds between two catch-ups of an online policy with the "
            "rewards other replicas recorded (0: only when this replica records one) "
            "[default: 1]."
        ),
    ] = None,
    max_body_bytes: Annotated[
        int | None,
        typer.Option(
            help="Largest request body in bytes; a larger one gets 413 unread [default: 8 MiB]."
        ),
    ] = None,
    wal_max_bytes: Annotated[
        int | None,
        typer.Option(help="Bound on the decision log's write-ahead log [default: 64 MiB]."),
    ] = None,
    torch_threads: Annotated[
        int,
        typer.Option(help="Torch and BLAS threads (1 is fastest for single decisions)."),
    ] = 1,
    access_log: Annotated[bool, typer.Option(help="Log every request (uvicorn).")] = False,
    log_level: Annotated[
        str, typer.Option(help="uvicorn log level: critical, error, warning, info, debug, trace.")
    ] = "info",
) -> None:
    """Serve a trained policy over HTTP: recommendations, rewards, explanations, metrics.

    RUN may be a run of any env: rec_env/Recommendation-v0 (an offer on a channel),
    rec_env/ItemRecommendation-v0 (a product on a channel) or rec_env/SlateRecommendation-v0 (a
    slate of products). The model file's SHA-256 is checked against run.json, and an item run's
    product table against its actions, before anything starts. Every decision and reward is
    logged to the --db (SQLite, or PostgreSQL shared by replicas); export it with
    `recenv log export`. Options left out fall back to
    RECENV_* environment variables, then to the defaults shown. One worker process: the
    decision log and online learning live in it. OpenAPI docs: /docs.
    """
    source = ctx.get_parameter_source("api_key")  # by name: typer vendors its own click
    if api_key is not None and getattr(source, "name", None) == "COMMANDLINE":
        typer.echo(
            "warning: --api-key on the command line is visible to every user (ps); "
            "set RECENV_API_KEY in the environment instead",
            err=True,
        )
    if (run is None) == (model is None):
        fail("give the run directory once: as RUN or as --model")
    model = run if run is not None else model
    if not 0 < port < 65536:
        fail(f"--port must be between 1 and 65535, got {port}")
    if torch_threads < 1:
        fail(f"--torch-threads must be at least 1, got {torch_threads}")
    from uvicorn.config import LOG_LEVELS

    if log_level.lower() not in LOG_LEVELS:
        fail(f"--log-level must be one of {', '.join(LOG_LEVELS)}, got {log_level!r}")
    from pydantic import ValidationError

    from rec_env.datasets.decision_log_backend import describe
    from rec_env.serve import DecisionService, ServeSettings, create_app
    from rec_env.serve.database_lock import DatabaseLock

    given: dict[str, Any] = {
        "model_dir": model,
        "db": db,
        "api_key": api_key,
        "exploration": exploration,
        "epsilon": epsilon,
        "temperature": temperature,
        "seed": seed,
        "state_dir": state_dir,
        "state_save_every": state_save_every,
        "explain": explain,
        "n_background": n_background,
        "assume_consent": assume_consent,
        "rules": rules,
        "holdout": holdout,
        "holdout_seed": holdout_seed,
        "apprentice": apprentice,
        "reward_min": reward_min,
        "reward_max": reward_max,
        "reward_window_days": reward_window_days,
        "default_reward": default_reward,
        "require_activation": require_activation,
        "window_close_interval": window_close_interval,
        "refresh_seconds": refresh_seconds,
        "max_body_bytes": max_body_bytes,
        "wal_max_bytes": wal_max_bytes,
    }
    try:
        settings = ServeSettings(**{k: v for k, v in given.items() if v is not None})
    except ValidationError as exc:
        fail(_settings_error(exc))
    _check_can_listen(host, port)
    with reporting_bad_input():
        # refuse a second server on this --db before spending seconds loading the model; the
        # decision log takes the lock for good when it opens
        DatabaseLock(settings.db).release()
        service = DecisionService.from_settings(settings)
    if "torch" in sys.modules:
        import torch

        torch.set_num_threads(torch_threads)
    from threadpoolctl import threadpool_limits

    # numpy's BLAS too: an item batch's 64 x 601 output layer would otherwise spin a second
    # thread that costs more CPU than it saves time on a busy machine
    threadpool_limits(limits=torch_threads, user_api="blas")
    import uvicorn

    typer.echo(
        f"serving {service.model_version} on http://{host}:{port} "
        f"(decision log {describe(settings.db)})",
        err=True,
    )
    uvicorn.run(
        create_app(settings, service=service),
        host=host,
        port=port,
        workers=1,
        access_log=access_log,
        log_level=log_level.lower(),
    )
