"""A peer library's own virtualenv for a benchmark (its pins clash with the project's)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path


def ensure_venv(venv: Path, pins: Sequence[str], say: Callable[[str], None] = print) -> Path:
    """The python of ``venv`` with ``pins`` installed (wheels only), (re)installed if needed.

    A stamp file in the virtualenv records the pins it was installed with.
    """
    python, stamp = venv / "bin" / "python", venv / "recenv-pins.txt"
    if not python.exists():
        say(f"creating {venv}")
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    if not stamp.exists() or stamp.read_text().split() != list(pins):
        say(f"installing {', '.join(pins)} (wheels only) into {venv}")
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", "--only-binary=:all:", *pins], check=True
        )
        stamp.write_text("\n".join(pins) + "\n")
    return python
