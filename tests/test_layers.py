"""The import-linter layers contract: ``cli -> serve -> agents -> core``, and it can fail."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# The installed layout of pyproject.toml's package-dir: one namespace, rec_env.
PACKAGE_DIRS = {
    "rec_env": "rec_env",
    "agents": "rec_env/agents",
    "cli": "rec_env/cli",
    "serve": "rec_env/serve",
    "profiles": "rec_env/profiles",
}
LINT_IMPORTS = shutil.which("lint-imports")


def installed_tree(target: Path) -> Path:
    """Copy the sources into ``target`` as they are installed (without building a wheel)."""
    for source, destination in PACKAGE_DIRS.items():
        shutil.copytree(
            ROOT / source,
            target / destination,
            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
            dirs_exist_ok=True,
        )
    return target


def lint(tree: Path) -> subprocess.CompletedProcess[str]:
    assert LINT_IMPORTS is not None
    return subprocess.run(
        [LINT_IMPORTS, "--no-cache", str(ROOT / "pyproject.toml")],
        cwd=tree,
        env={"PYTHONPATH": str(tree), "PATH": str(Path(sys.executable).parent)},
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.skipif(LINT_IMPORTS is None, reason="import-linter is not installed (dev extra)")
def test_layers_contract_holds_and_catches_an_upward_import(tmp_path: Path) -> None:
    tree = installed_tree(tmp_path)
    kept = lint(tree)
    assert kept.returncode == 0, kept.stdout + kept.stderr
    assert "1 kept, 0 broken" in kept.stdout

    # The core reaching up into the service must break the contract.
    dynamics = tree / "rec_env" / "dynamics.py"
    dynamics.write_text(
        dynamics.read_text(encoding="utf-8") + "\nfrom rec_env.serve import settings  # noqa\n",
        encoding="utf-8",
    )
    broken = lint(tree)
    assert broken.returncode != 0
    assert "rec_env.dynamics -> rec_env.serve.settings" in broken.stdout


@pytest.mark.skipif(LINT_IMPORTS is None, reason="import-linter is not installed (dev extra)")
def test_layers_contract_catches_agents_importing_the_service(tmp_path: Path) -> None:
    tree = installed_tree(tmp_path)
    base = tree / "rec_env" / "agents" / "base.py"
    base.write_text(
        base.read_text(encoding="utf-8") + "\nimport rec_env.serve.settings  # noqa\n",
        encoding="utf-8",
    )
    broken = lint(tree)
    assert broken.returncode != 0
    assert "rec_env.agents.base -> rec_env.serve.settings" in broken.stdout
