"""A ``recenv serve`` subprocess for the service benchmarks: a free port, a small run, startup.

The benchmarks run the code under test through a command (``recenv``, or another virtualenv's
``python -c ...``), so that the same script measures the code before and after a change.
"""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

import httpx

__all__ = ["free_port", "start_server", "train_small_run"]


def free_port() -> int:
    """A free TCP port on the loopback interface."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def train_small_run(
    command: Sequence[str], directory: Path, algorithm: str = "linucb", steps: int = 2048
) -> Path:
    """A small run of ``algorithm`` trained by ``command`` (the code under test)."""
    out = directory / algorithm
    subprocess.run(
        [*command, "train", algorithm, "--steps", str(steps), "--out", str(out),
         "--eval-customers", "50", "--final-customers", "50", "--no-progress"],
        cwd=directory, check=True, capture_output=True,
    )  # fmt: skip
    return out


def start_server(
    command: Sequence[str],
    model: Path,
    db: Path,
    port: int,
    options: Sequence[str] = (),
    log: Path | None = None,
) -> subprocess.Popen:
    """Start ``recenv serve`` (seed 0, no explainer) and wait until ``/health`` answers.

    Args:
        command: How to run ``recenv``.
        model: The run directory.
        db: The decision log; the server runs in its directory.
        port: The port to listen on.
        options: More ``recenv serve`` options.
        log: Where the server's output goes (default: stderr kept for the error message).

    Raises:
        RuntimeError: If the server exits or does not answer within 120 s.
    """
    serve = [*command, "serve", "--model", str(model.resolve()), "--db", str(db),
             "--port", str(port), "--seed", "0", "--no-explain", "--log-level", "warning",
             *options]  # fmt: skip
    if log is None:
        server = subprocess.Popen(serve, cwd=db.parent, stderr=subprocess.PIPE)
    else:
        with log.open("a") as handle:
            server = subprocess.Popen(serve, cwd=db.parent, stdout=handle, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while True:
        if server.poll() is not None:
            output = log.read_text() if log is not None else server.stderr.read().decode()
            raise RuntimeError(f"the server exited: {output[-2000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1.0).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            server.kill()
            raise RuntimeError("the server did not start within 120 s")
        time.sleep(0.05)
