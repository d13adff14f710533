"""``recenv examples``: the example files are package resources, listed and copied out."""

from __future__ import annotations

import json
from importlib.resources import files
from pathlib import Path

import yaml
from typer.testing import CliRunner

from rec_env.cli.examples import example_files
from rec_env.cli.main import app
from rec_env.rules import load_rules

runner = CliRunner()
PROFILES = Path(__file__).parents[1] / "profiles"


def test_every_example_is_an_installed_resource() -> None:
    examples = example_files()
    targets = {example.target for example in examples}
    assert {"users/bargain_hunter.json", "histories/example.json", "rules.yaml"} <= targets
    assert {"populations/default.yaml", "fitting/defaults.yaml", "suppressed.csv"} <= targets
    for example in examples:
        resource = files("rec_env.profiles").joinpath(*example.resource.split("/"))
        assert resource.is_file(), example.resource
        assert example.read_bytes() == resource.read_bytes()


def test_package_data_ships_every_example_file() -> None:
    """pyproject's package-data globs cover every example file in the source tree."""
    import tomllib

    config = tomllib.loads((PROFILES.parent / "pyproject.toml").read_text(encoding="utf-8"))
    globs = config["tool"]["setuptools"]["package-data"]["rec_env.profiles"]
    shipped = {str(p.relative_to(PROFILES)) for pattern in globs for p in PROFILES.glob(pattern)}
    for example in example_files():
        assert example.resource in shipped, example.resource


def test_list_names_every_file_once() -> None:
    result = runner.invoke(app, ["examples", "list"])
    assert result.exit_code == 0, result.output
    listed = [line for line in result.stdout.splitlines() if not line.startswith("#")]
    assert listed == [example.target for example in example_files()]


def test_copy_writes_the_files_and_they_load(tmp_path: Path) -> None:
    target = tmp_path / "new" / "examples"
    result = runner.invoke(app, ["examples", "copy", str(target)])
    assert result.exit_code == 0, result.output
    for example in example_files():
        assert (target / example.target).read_bytes() == example.read_bytes()
    json.loads((target / "users" / "loyal_vip.json").read_text(encoding="utf-8"))
    yaml.safe_load((target / "populations" / "default.yaml").read_text(encoding="utf-8"))
    rules = load_rules(target / "rules.yaml")  # its suppression file is found next to it
    assert {"c-17", "c-42"} <= set(rules.suppressed)


def test_copy_refuses_a_non_empty_directory_without_force(tmp_path: Path) -> None:
    (tmp_path / "rules.yaml").write_text("mine", encoding="utf-8")
    (tmp_path / "keep.txt").write_text("keep", encoding="utf-8")
    result = runner.invoke(app, ["examples", "copy", str(tmp_path)])
    assert result.exit_code == 2
    assert "already exists" in result.stderr
    assert (tmp_path / "rules.yaml").read_text(encoding="utf-8") == "mine"
    result = runner.invoke(app, ["examples", "copy", str(tmp_path), "--force"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "rules.yaml").read_bytes() == (
        PROFILES / "examples" / "rules.yaml"
    ).read_bytes()
    assert (tmp_path / "keep.txt").read_text(encoding="utf-8") == "keep"
    assert (tmp_path / "users" / "bargain_hunter.json").is_file()


def test_the_rules_page_shows_the_shipped_rules_file() -> None:
    page = (PROFILES.parent / "docs" / "reference" / "rules.md").read_text(encoding="utf-8")
    shown = page.split("```yaml\n", 1)[1].split("```", 1)[0]
    shipped = (PROFILES / "examples" / "rules.yaml").read_text(encoding="utf-8")
    assert yaml.safe_load(shown) == yaml.safe_load(shipped)
