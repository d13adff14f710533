"""The documentation's commands run, so that the docs cannot rot.

Every fenced ``bash`` and ``python`` block of ``docs/tutorials/*.md``, and every ``bash`` block
of the README's job sections, is run in order in a temporary directory, as a reader would run
it:

* a ``bash`` block runs line by line: ``recenv …`` commands in process, with Typer's
  ``CliRunner`` (no interpreter start-up per command), any other line in ``bash``; a block that
  sets shell variables or holds a heredoc runs as one ``bash`` script (``set -euo pipefail``).
  What a block ``export``s holds for the later blocks of its page, as in the reader's shell,
  and ``curl`` fails on an HTTP error;
* a ``python`` block runs as a script in a fresh interpreter;
* a block with a ``recenv serve`` command starts that server on a free port for the rest of its
  page (section, for the README), and ``localhost:8000`` in the page's blocks means that port;
* a block after ``<!-- not-run: REASON -->`` is skipped, and only the blocks of
  :data:`ALLOWED_NOT_RUN` may be.

Tutorials use small sizes themselves. The README shows the real commands (``recenv train ppo``
trains 6 M steps), so its blocks run with :data:`README_BUDGET` appended to them; its weekly
campaign starts from the files a team would have (:func:`weekly_campaign_inputs`).

Besides, every ``recenv`` command in a ``bash`` block of any page must parse: the command
exists and takes the options given.
"""

from __future__ import annotations

import functools
import os
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
import typer
from serve_process import free_port
from typer.testing import CliRunner

from rec_env.cli.main import app

ROOT = Path(__file__).parents[1]
DOCS = ROOT / "docs"
README = ROOT / "README.md"
TUTORIALS = sorted((DOCS / "tutorials").glob("*.md"))

README_SHARED_SECTIONS = (
    "Train and compare",
    "Explain a decision",
    "Serve, and the reward contract",
    "Your own logs: features, twins, offline evaluation, OPE",
)
"""README job sections run one after the other in one directory (each uses the one before)."""

WEEKLY_CAMPAIGN = "A weekly campaign"
"""The README's weekly campaign (required by issue 14), run from its own inputs."""

ALLOWED_NOT_RUN: dict[tuple[str, str], str] = {}
"""(page, first line of the block) → why it is not run. Keep it short: it is empty."""

TINY_TRAIN = ("--steps", "256", "--eval-customers", "20", "--final-customers", "20")
README_BUDGET: dict[tuple[str, ...], tuple[str, ...]] = {
    # PPO's shipped rollout is 1,024 envs x 16 steps, whatever --steps says
    ("train", "ppo"): (*TINY_TRAIN, "--set", "n_envs=64", "--set", "batch_size=256"),
    ("train",): TINY_TRAIN,
    ("compare",): ("--customers", "100"),
    ("offline", "synthetic"): ("--customers", "2000"),
    ("offline", "learn"): ("--n-bootstrap", "30"),
    ("profiles", "twins"): ("--weeks", "13"),
}
"""Options appended to the README's commands (a later option wins): small budgets for tests."""

SERVER_PORT_IN_DOCS = "localhost:8000"
CURL_FAILS_ON_HTTP_ERRORS = 'curl() { command curl --fail-with-body "$@"; }'
"""The docs' ``curl -s`` exits 0 on a 4xx answer; in the tests such an answer fails the block."""
SHELL_SYNTAX = re.compile(r"[|&;<>()$`]")
SHELL_STATE = re.compile(r"^\s*(export\s+)?[A-Za-z_]\w*=|<<")
NOT_RUN = re.compile(r"<!--\s*not-run:\s*(.+?)\s*-->")
runner = CliRunner()


# ------------------------------------------------------------------------------- reading pages
@dataclass(frozen=True)
class Block:
    """A fenced code block: its language, code, and the not-run reason before it, if any."""

    language: str
    code: str
    not_run: str | None = None

    @property
    def first_line(self) -> str:
        return self.code.strip().splitlines()[0]


def code_blocks(text: str, languages: tuple[str, ...] = ("bash", "python")) -> list[Block]:
    """The fenced blocks of ``text`` in the given languages, in order."""
    found = []
    pattern = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)
    for match in pattern.finditer(text):
        if match.group(1) in languages:
            before = text[: match.start()].rstrip().splitlines()
            marker = NOT_RUN.fullmatch(before[-1].strip()) if before else None
            found.append(Block(match.group(1), match.group(2), marker and marker.group(1)))
    return found


def readme_section(title: str) -> str:
    """The text of the README's ``## title`` section."""
    text = README.read_text(encoding="utf-8")
    assert f"\n## {title}\n" in text, f"README has no section {title!r}"
    return text.split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]


def logical_lines(code: str) -> list[str]:
    """The commands of a shell block: lines joined across backslashes, pipes and open quotes."""
    commands, current = [], ""
    for line in code.splitlines():
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        current += line
        if current.rstrip().endswith(("|", "&&")) or not _quotes_closed(current):
            current += "\n"
            continue
        commands.append(current)
        current = ""
    return [*commands, current] if current else commands


def _quotes_closed(line: str) -> bool:
    try:
        shlex.split(line, comments=True)
    except ValueError:  # "No closing quotation"
        return False
    return True


def recenv_argv(line: str) -> list[str] | None:
    """The arguments of a plain ``recenv …`` command line, or None for anything else."""
    if not line.lstrip().startswith("recenv "):
        return None
    lexer = shlex.shlex(line, posix=True, punctuation_chars=False)
    lexer.whitespace_split, lexer.commenters = True, "#"
    try:
        tokens = list(lexer)
    except ValueError:
        return None
    if any(SHELL_SYNTAX.search(token) for token in tokens):
        return None
    return tokens[1:]


def with_budget(argv: list[str], budget: dict[tuple[str, ...], tuple[str, ...]]) -> list[str]:
    """``argv`` with the options of the first matching budget prefix appended."""
    for prefix, extra in budget.items():
        if tuple(argv[: len(prefix)]) == prefix:
            return [*argv, *extra]
    return argv


# ------------------------------------------------------------------------------ running pages
@dataclass
class Page:
    """A page being run: its directory, shell environment file, server port and servers."""

    name: str
    directory: Path
    budget: dict[tuple[str, ...], tuple[str, ...]] = field(default_factory=dict)
    hooks: dict[tuple[str, ...], Callable[[Path], None]] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    blocks_run: int = 0
    recenv_commands: int = 0

    @property
    def env_file(self) -> Path:
        return self.directory.parent / f".{self.directory.name}.env"

    def environment(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k != "RECENV_API_KEY"}
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
        env["OMP_NUM_THREADS"] = "1"
        return env

    def localise(self, code: str) -> str:
        return code.replace(SERVER_PORT_IN_DOCS, f"127.0.0.1:{self.port}")

    def shell_script(self, lines: list[str]) -> str:
        """A bash script running ``lines`` after the page's exports, saving its own."""
        budgeted = []
        for line in lines:
            argv = recenv_argv(line)
            budgeted.append(line if argv is None else shlex.join(["recenv", *self._prepare(argv)]))
        return "\n".join(
            [
                "set -euo pipefail",
                CURL_FAILS_ON_HTTP_ERRORS,
                f'if [ -f "{self.env_file}" ]; then source "{self.env_file}"; fi',
                *budgeted,
                f'export -p > "{self.env_file}"',
            ]
        )

    def _prepare(self, argv: list[str]) -> list[str]:
        """Apply the budget, and run the hook of the command, if any, before it."""
        for prefix, hook in self.hooks.items():
            if tuple(argv[: len(prefix)]) == prefix:
                hook(self.directory)
        self.recenv_commands += 1
        return with_budget(argv, self.budget)

    def run(self, block: Block, stack: ExitStack) -> None:
        """Run one block (or start its server) in the page's directory."""
        context = f"{self.name}: block starting {block.first_line!r}"
        if block.not_run is not None:
            assert (self.name, block.first_line) in ALLOWED_NOT_RUN, f"{context} is not run"
            return
        code = self.localise(block.code)
        self.blocks_run += 1
        if block.language == "python":
            self._check(subprocess.run([sys.executable, "-c", code], **self._kwargs()), context)
            return
        lines = [line for line in logical_lines(code) if line.strip()]
        serve = [i for i, line in enumerate(lines) if (recenv_argv(line) or [""])[0] == "serve"]
        if serve:
            stack.enter_context(self.server(lines, serve[0], context))
            return
        if any(SHELL_STATE.search(line) for line in lines):  # variables or a heredoc: one script
            self._shell(lines, context)
            return
        for line in lines:  # line by line: recenv in process, anything else in bash
            argv = recenv_argv(line)
            if argv is not None:
                self._invoke(self._prepare(argv), context)
            elif not line.lstrip().startswith("#"):
                self._shell([line], context)

    def _shell(self, lines: list[str], context: str) -> None:
        script = self.shell_script(lines)
        self._check(subprocess.run(["bash", "-c", script], **self._kwargs()), context)

    def _kwargs(self) -> dict:
        return {
            "cwd": self.directory,
            "env": self.environment(),
            "capture_output": True,
            "text": True,
            "timeout": 600,
        }

    @staticmethod
    def _check(result: subprocess.CompletedProcess, context: str) -> None:
        assert result.returncode == 0, (
            f"{context}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        )

    def _invoke(self, argv: list[str], context: str) -> None:
        previous = Path.cwd()
        os.chdir(self.directory)
        try:
            result = runner.invoke(app, argv)
        finally:
            os.chdir(previous)
        assert result.exit_code == 0, (
            f"{context}: recenv {shlex.join(argv)} exited {result.exit_code}:\n"
            f"{result.output[-3000:]}\n{result.exception!r}"
        )

    @contextmanager
    def server(self, lines: list[str], serve_at: int, context: str) -> Iterator[None]:
        """Start the block's ``recenv serve`` on the page's port; stop it on exit."""
        serve = lines[serve_at] + f" --port {self.port} --log-level warning"
        script = self.shell_script(lines[:serve_at]).rsplit("\n", 1)[0]  # keep the export
        script += f'\nexport -p > "{self.env_file}"\nexec {serve}'
        log_path = self.directory.parent / f".{self.directory.name}.server.log"
        with log_path.open("w") as log:
            process = subprocess.Popen(
                ["bash", "-c", script],
                cwd=self.directory,
                env=self.environment(),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:
            deadline = time.monotonic() + 120
            while True:
                assert process.poll() is None, f"{context}:\n{log_path.read_text()}"
                try:
                    if httpx.get(f"http://127.0.0.1:{self.port}/health", timeout=1).is_success:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, f"{context}: the server did not start"
                time.sleep(0.2)
            yield
        finally:
            if process.poll() is None:
                process.kill()
            process.wait()


def run_blocks(page: Page, blocks: list[Block]) -> None:
    """Run ``blocks`` in order; servers they start stop at the end."""
    assert blocks, f"{page.name}: no blocks"
    with ExitStack() as stack:
        for block in blocks:
            page.run(block, stack)


# ----------------------------------------------------------------------------------- parsing
def test_blocks_and_lines_are_read_as_a_reader_reads_them() -> None:
    text = (
        "x\n```bash\nrecenv a \\\n  --b 1   # c\n```\n<!-- not-run: needs a server -->\n"
        "```bash\ncurl x | jq .\n```\n```text\nrecenv no\n```\n```python\nprint(1)\n```\n"
    )
    blocks = code_blocks(text)
    assert [b.language for b in blocks] == ["bash", "bash", "python"]
    assert [b.not_run for b in blocks] == [None, "needs a server", None]
    assert logical_lines(blocks[0].code) == ["recenv a    --b 1   # c"]
    assert logical_lines("jq . x |\n  curl -d @-\necho '{\n}'\n") == [
        "jq . x |\n  curl -d @-",
        "echo '{\n}'",
    ]
    assert recenv_argv(logical_lines(blocks[0].code)[0]) == ["a", "--b", "1"]
    assert recenv_argv("curl x | jq .") is None
    assert recenv_argv('recenv close --as-of "$(date)"') is None
    budget = {("train",): ("--steps", "9")}
    assert with_budget(["train", "ppo"], budget) == ["train", "ppo", "--steps", "9"]
    assert with_budget(["compare", "x"], budget) == ["compare", "x"]


def test_only_allowed_blocks_are_not_run() -> None:
    marked = {
        (page.name, block.first_line)
        for page in (*TUTORIALS, README)
        for block in code_blocks(page.read_text(encoding="utf-8"))
        if block.not_run is not None
    }
    assert marked == set(ALLOWED_NOT_RUN)


def _documented_commands() -> Iterator[tuple[str, list[str]]]:
    for path in (README, *sorted(DOCS.rglob("*.md"))):
        for block in code_blocks(path.read_text(encoding="utf-8"), ("bash",)):
            for line in logical_lines(block.code):
                argv = recenv_argv(line)
                if argv is not None:
                    yield f"{path.relative_to(ROOT)}: {line.strip()}", argv


@functools.cache
def _root_command() -> Any:
    """The click command behind the Typer app (built once: building it takes a while)."""
    return typer.main.get_command(app)


def _parse(argv: list[str]) -> None:
    """Resolve ``argv`` to a command and parse its arguments and options, without running it.

    Raises:
        Exception: Typer's usage errors (no such command or option, a value of the wrong type,
            an extra argument); a required argument left out is accepted.
    """
    command = _root_command()
    ctx = command.make_context("recenv", list(argv))
    while hasattr(command, "resolve_command"):
        name, command, rest = command.resolve_command(ctx, [*ctx._protected_args, *ctx.args])
        try:
            ctx = command.make_context(name, rest, parent=ctx)
        except Exception as exc:
            if type(exc).__name__ == "MissingParameter":
                return
            raise


def test_every_documented_recenv_command_parses() -> None:
    commands = list(_documented_commands())
    assert len(commands) > 50
    for where, argv in commands:
        try:
            _parse(argv)
        except Exception as exc:
            pytest.fail(f"{where}: {type(exc).__name__}: {exc}")


def test_a_wrong_command_or_option_does_not_parse() -> None:
    for argv in (
        ["trian", "ppo"],
        ["train", "ppo", "--stesp", "5"],
        ["train", "ppo", "--steps", "x"],
    ):
        with pytest.raises(Exception, match=r"No such command|No such option|valid integer"):
            _parse(argv)


# ------------------------------------------------------------------------------ running docs
@pytest.mark.slow
@pytest.mark.parametrize("tutorial", TUTORIALS, ids=lambda p: p.stem)
def test_tutorial_commands_run(tutorial: Path, tmp_path: Path) -> None:
    directory = tmp_path / tutorial.stem
    directory.mkdir()
    page = Page(tutorial.name, directory)
    blocks = code_blocks(tutorial.read_text(encoding="utf-8"))
    run_blocks(page, blocks)
    assert page.blocks_run == len(blocks) >= 5


@pytest.mark.slow
def test_readme_job_sections_run(tmp_path: Path) -> None:
    directory = tmp_path / "readme"
    directory.mkdir()
    for title in README_SHARED_SECTIONS:
        page = Page(f"README {title}", directory, budget=README_BUDGET)
        run_blocks(page, code_blocks(readme_section(title), ("bash",)))
    assert (directory / "runs" / "ppo-seed0" / "run.json").is_file()
    assert (directory / "campaign-policies").is_dir()


def weekly_campaign_inputs(directory: Path) -> None:
    """What a CRM team has before its week: logs, a rules file, a challenger policy."""
    logs, examples = directory.parent / "logs", directory.parent / "examples"
    for argv in (
        ["profiles", "history", "--out", str(logs), "--customers", "300", "--cycles", "26"],
        ["examples", "copy", str(examples)],
        ["train", "ppo", "--seed", "1", *README_BUDGET[("train", "ppo")]],
    ):
        previous = Path.cwd()
        os.chdir(directory)
        try:
            result = runner.invoke(app, argv)
        finally:
            os.chdir(previous)
        assert result.exit_code == 0, result.output
    for name in ("orders.csv", "contacts.csv", "consents.csv"):
        (directory / name).write_bytes((logs / name).read_bytes())
    for name in ("rules.yaml", "suppressed.csv"):
        (directory / name).write_bytes((examples / name).read_bytes())


def sent_and_results(directory: Path) -> None:
    """The send tool's list and the week's results: every message sent, one in ten buys."""
    decisions = pd.read_parquet(directory / "decisions.parquet")
    sent = decisions[decisions.action != "no_action"]
    sent[["event_id"]].to_csv(directory / "sent.csv", index=False)
    rng = np.random.default_rng(0)
    reward = np.where(rng.random(len(decisions)) < 0.1, rng.uniform(20, 40, len(decisions)), 0.0)
    pd.DataFrame({"event_id": decisions.event_id, "reward": reward.round(2)}).to_csv(
        directory / "results.csv", index=False
    )


@pytest.mark.slow
def test_readme_weekly_campaign_runs(tmp_path: Path) -> None:
    directory = tmp_path / "week"
    directory.mkdir()
    weekly_campaign_inputs(directory)
    hooks = {("rewards", "activate"): sent_and_results}
    page = Page(f"README {WEEKLY_CAMPAIGN}", directory, budget=README_BUDGET, hooks=hooks)
    blocks = code_blocks(readme_section(WEEKLY_CAMPAIGN), ("bash",))
    run_blocks(page, blocks)
    assert page.recenv_commands == 9  # features … ab analyze, as issue 14 lists them
    week = pd.read_csv(directory / "week.csv")
    assert week.holdout.any() and week.reward.notna().all()
