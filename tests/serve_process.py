"""``recenv serve`` as a real uvicorn process on a free loopback port, for the server tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx


@dataclass
class Server:
    """A running server: its URL and process."""

    url: str
    process: subprocess.Popen


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def running_server(
    run: Path, directory: Path, *options: str, api_key: str | None = None, db: str | None = None
) -> Iterator[Server]:
    """Start ``recenv serve --model run`` (log and db in ``directory``), wait for /health, and
    kill it on exit. The API key goes through ``RECENV_API_KEY``, never argv; ``db`` replaces
    the SQLite file (a PostgreSQL URL, for replicas)."""
    port = free_port()
    command = [
        sys.executable, "-c", "from rec_env.cli.main import app; app()", "serve",
        "--model", str(run), "--port", str(port), "--db", db or str(directory / "decisions.db"),
        "--log-level", "warning", *options,
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k != "RECENV_API_KEY"}
    if api_key is not None:
        env["RECENV_API_KEY"] = api_key
    log_path = directory / "server.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            assert process.poll() is None, log_path.read_text()
            try:
                if httpx.get(f"{url}/health", timeout=1.0).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.2)
        yield Server(url, process)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
