"""One definition per fact: environment settings, step outputs and feature bounds."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

from rec_env import _kernels
from rec_env.agents.evaluation import evaluate
from rec_env.agents.registry import make_baseline
from rec_env.dynamics import OUTCOME_FIELDS, StepOutcome
from rec_env.features import FEATURE_HIGH
from rec_env.settings import DEFAULT_HORIZON, EnvSettings

ROOT = Path(__file__).resolve().parents[1]


def test_settings_validate_and_name_the_field() -> None:
    with pytest.raises(ValueError, match="reward_mode"):
        EnvSettings(reward_mode="revenue")
    with pytest.raises(ValueError, match="horizon"):
        EnvSettings(horizon=0)
    with pytest.raises(ValueError, match="cycle_days"):
        EnvSettings(cycle_days=0.5)
    with pytest.raises(ValueError, match=r"unknown environment setting.*horizont"):
        EnvSettings.from_dict({"horizont": 10})


def test_settings_round_trip_and_are_hashable() -> None:
    settings = EnvSettings(profile="premium_loyal", reward_mode="conversion", horizon=8)
    assert EnvSettings.from_dict(settings.to_dict()) == settings
    assert EnvSettings.coerce(None) == EnvSettings() and EnvSettings().horizon == DEFAULT_HORIZON
    assert len({settings, EnvSettings.from_dict(settings.to_dict())}) == 1


def test_evaluation_records_the_settings_it_ran() -> None:
    settings = EnvSettings(horizon=3)
    policy = make_baseline("random", settings.build_model())
    result = evaluate(policy, settings, n_customers=50, seed=0, compare_to_oracle=False)
    assert result.settings == settings
    assert result.to_dict()["settings"]["horizon"] == 3


def test_step_outputs_are_named_once() -> None:
    # The kernel's row constants are derived from OUTCOME_FIELDS, never numbered by hand.
    for row, name in enumerate(OUTCOME_FIELDS):
        assert getattr(_kernels, f"OUT_{name.upper()}") == row
    assert _kernels.N_OUT == len(OUTCOME_FIELDS) == len(StepOutcome.FIELDS)
    values = np.arange(len(OUTCOME_FIELDS) * 2, dtype=float).reshape(-1, 2)
    outcome = StepOutcome(values, np.zeros((2, 16), dtype=np.float32))
    assert outcome.profit.tolist() == values[OUTCOME_FIELDS.index("profit")].tolist()
    assert outcome.customer(1)["revenue"] == values[OUTCOME_FIELDS.index("revenue"), 1]


def test_the_kernels_clip_at_the_feature_bounds() -> None:
    assert FEATURE_HIGH["last_purchase_days"] == _kernels.MAX_DAYS
    assert FEATURE_HIGH["recency"] == _kernels.MAX_RECENCY
    assert FEATURE_HIGH["days_since_contact"] == _kernels.MAX_CONTACT_DAYS
    assert FEATURE_HIGH["frequency"] == _kernels.MAX_FREQUENCY
    assert FEATURE_HIGH["monetary_value"] == _kernels.MAX_MONETARY


BOUND_LITERALS = {730.0}
"""Feature bounds that mean nothing else (365 is also days per year, 2000 a cohort size)."""


def _numeric_literals(path: Path) -> set[float]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {
        float(node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, int | float)
        and not isinstance(node.value, bool)
    }


def test_feature_bounds_are_written_only_in_features_py() -> None:
    sources = [
        path
        for folder in ("rec_env", "agents", "serve", "cli")
        for path in (ROOT / folder).rglob("*.py")
        if path.name != "features.py"
    ]
    offenders = {
        str(path.relative_to(ROOT)): sorted(_numeric_literals(path) & BOUND_LITERALS)
        for path in sources
        if _numeric_literals(path) & BOUND_LITERALS
    }
    assert not offenders, f"feature bounds written outside rec_env/features.py: {offenders}"


def test_the_default_horizon_is_written_once() -> None:
    offenders = []
    for folder in ("rec_env", "agents", "serve", "cli"):
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if not isinstance(node, ast.FunctionDef):
                    continue
                arguments = [*node.args.posonlyargs, *node.args.args]
                defaults = dict(
                    zip([a.arg for a in arguments][::-1], node.args.defaults[::-1], strict=False)
                )
                defaults.update(
                    (a.arg, d)
                    for a, d in zip(node.args.kwonlyargs, node.args.kw_defaults, strict=True)
                )
                default = defaults.get("horizon")
                if isinstance(default, ast.Constant) and default.value is not None:
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not offenders, f"horizon defaults written as literals: {offenders}"
