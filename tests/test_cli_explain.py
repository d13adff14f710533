"""``recenv explain`` through Typer's CliRunner."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from cli_checks import assert_bad_input
from typer.testing import CliRunner

from rec_env.agents.training import train
from rec_env.cli.explain import plain_words
from rec_env.cli.main import app
from rec_env.features import FEATURE_NAMES

runner = CliRunner()
USERS = Path(__file__).parents[1] / "profiles" / "users"


@pytest.fixture(scope="module")
def ppo_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "ppo"
    hyperparams = {"n_envs": 16, "n_steps": 16, "batch_size": 128, "n_epochs": 1}
    train("ppo", steps=1_024, out=out, hyperparams=hyperparams, eval_customers=100,
          final_customers=100)  # fmt: skip
    return out


@pytest.fixture(scope="module")
def linucb_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "linucb"
    train("linucb", steps=2_048, out=out, hyperparams={"n_envs": 256}, eval_customers=100,
          final_customers=100)  # fmt: skip
    return out


def write_user(tmp_path: Path, **changes) -> Path:
    data = json.loads((USERS / "bargain_hunter.json").read_text())
    for key, value in changes.items():
        if value is None:
            data["features"].pop(key)
        else:
            data["features"][key] = value
    path = tmp_path / "user.json"
    path.write_text(json.dumps(data))
    return path


def test_explain_prints_action_probability_and_plain_words(ppo_run, tmp_path) -> None:
    out = tmp_path / "why.png"
    result = runner.invoke(
        app,
        ["explain", str(USERS / "bargain_hunter.json"), "--model", str(ppo_run),
         "--out", str(out), "--top", "4"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "cust-1001: recommend" in result.output and "with probability 0." in result.output
    sentences = [
        line for line in result.output.splitlines() if " raises P(" in line or " lowers P(" in line
    ]
    assert len(sentences) == 4
    assert out.stat().st_size > 5_000 and out.read_bytes()[:4] == b"\x89PNG"


def test_explain_a_chosen_action_and_a_linear_bandit(linucb_run, tmp_path) -> None:
    out = tmp_path / "why.png"
    result = runner.invoke(
        app,
        ["explain", str(USERS / "loyal_vip.json"), "--model", str(linucb_run),
         "--action", "free_shipping_email", "--out", str(out)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "E[reward](free_shipping_email)" in result.output


def test_plain_words() -> None:
    assert (
        plain_words("discount_sensitive", 1.0, 0.2104, "P(discount_15_email)")
        == "discount_sensitive = 1 raises P(discount_15_email) by 0.21"
    )
    assert plain_words("recency", 12.5, -0.05, "Q(x)") == "recency = 12.5 lowers Q(x) by 0.05"


def test_summary_writes_shap_csv_and_beeswarm(ppo_run, tmp_path) -> None:
    customers = tmp_path / "customers.csv"
    rows = []
    for path in sorted(USERS.glob("*.json")):
        data = json.loads(path.read_text())
        if set(data["features"]) == set(FEATURE_NAMES):
            rows.append({"customer_id": data["customer_id"], **data["features"]})
    with customers.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["customer_id", *FEATURE_NAMES])
        writer.writeheader()
        writer.writerows(rows)
    out = tmp_path / "report_shap.csv"
    result = runner.invoke(
        app, ["explain", str(customers), "--summary", "--model", str(ppo_run), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    with out.open() as handle:
        table = list(csv.DictReader(handle))
    assert [r["customer_id"] for r in table] == [r["customer_id"] for r in rows]
    for row in table:
        shap_sum = sum(float(row[f"shap_{name}"]) for name in FEATURE_NAMES)
        assert float(row["base_value"]) + shap_sum == pytest.approx(
            float(row["model_output"]), abs=1e-6
        )
    beeswarm = tmp_path / "report_beeswarm.png"
    assert beeswarm.stat().st_size > 5_000
    assert "Most influential features" in result.output


@pytest.mark.parametrize(
    ("changes", "fragments"),
    [
        ({"recency": 5000}, ["features.recency", "less than or equal to 730"]),
        ({"recency": float("nan")}, ["features.recency", "finite"]),
        ({"consent_sms": 0.5}, ["features.consent_sms", "0 or 1"]),
        ({"colour": 3}, ["features.colour", "not permitted"]),
        ({"frequency": "often"}, ["features.frequency", "valid number"]),
    ],
)
def test_bad_customer_file_is_one_line_naming_the_field(ppo_run, tmp_path, changes, fragments):
    path = write_user(tmp_path, **changes)
    result = runner.invoke(app, ["explain", str(path), "--model", str(ppo_run)])
    assert_bad_input(result, "user.json", *fragments)


def explain(path: Path, run: Path, tmp_path: Path, *options: str):
    out = tmp_path / f"{path.stem}.png"
    args = ["explain", str(path), "--model", str(run), "--out", str(out), *options]
    return runner.invoke(app, args)


def filled_in_lines(output: str) -> dict[str, str]:
    """``feature -> "value: reason"`` of the output's filled-in list."""
    items = {}
    for line in output.split("features not given):\n", 1)[1].splitlines():
        if not line.startswith("  "):
            break
        feature, text = line.strip().split(" = ", 1)
        items[feature] = text
    return items


def test_minimal_profile_is_explained_with_what_was_filled_in(ppo_run, tmp_path) -> None:
    result = explain(USERS / "minimal_profile.json", ppo_run, tmp_path)
    assert result.exit_code == 0, result.output
    assert "cust-1007: recommend" in result.output
    assert "Filled in (6 of 16 features not given):" in result.output
    filled = filled_in_lines(result.output)
    assert list(filled) == ["days_since_contact", "contacts_last_30d", "discounts_last_90d",
                            "consent_email", "consent_sms", "consent_push"]  # fmt: skip
    assert filled["days_since_contact"] == "365: not given: no contact recorded"
    assert filled["discounts_last_90d"] == "0: not given: no discount recorded"
    assert filled["consent_sms"].startswith("1: consent unknown: assumed")
    assert "Consent on email, sms, push is assumed for this explanation" in result.output


def test_the_seed_flat_json_and_any_subset_are_accepted(linucb_run, tmp_path) -> None:
    flat = tmp_path / "seed.json"
    flat.write_text(json.dumps({"recency": 15, "frequency": 3, "monetary_value": 200,
                                "engagement_score": 0.78, "discount_sensitive": 1,
                                "free_shipping_preferred": 0, "email_opens": 0.87,
                                "sms_response": 0.12, "push_response": 0.05,
                                "last_purchase_days": 8}))  # fmt: skip
    result = explain(flat, linucb_run, tmp_path, "--assume-consent", "none")
    assert result.exit_code == 0, result.output
    assert "Customer seed: recommend no_action" in result.output  # no consent: nothing to send
    filled = filled_in_lines(result.output)
    assert filled["consent_email"].startswith("0: consent unknown: treated as no consent")
    assert "assumed for this explanation" not in result.output
    subset = tmp_path / "subset.json"
    subset.write_text(
        json.dumps({"customer_id": "c-5", "features": {"recency": 3, "consent_email": 1}})
    )
    result = explain(subset, linucb_run, tmp_path, "--assume-consent", "push")
    assert result.exit_code == 0, result.output
    filled = filled_in_lines(result.output)
    assert len(filled) == 14 and "recency" not in filled and "consent_email" not in filled
    assert filled["consent_push"].startswith("1: ") and filled["consent_sms"].startswith("0: ")
    assert filled["monetary_value"] == "74: not given: median of the default population"
    assert "Consent on push is assumed" in result.output
    complete = explain(USERS / "loyal_vip.json", linucb_run, tmp_path)
    assert complete.exit_code == 0 and "Filled in" not in complete.output
    bad = explain(flat, linucb_run, tmp_path, "--assume-consent", "email,fax")
    assert_bad_input(bad, "--assume-consent", "unknown channel 'fax'")


def test_other_bad_inputs(ppo_run, tmp_path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text("{ not json")
    assert_bad_input(
        runner.invoke(app, ["explain", str(broken), "--model", str(ppo_run)]), "broken.json"
    )
    user = USERS / "bargain_hunter.json"
    assert_bad_input(
        runner.invoke(app, ["explain", str(user), "--model", str(tmp_path / "nope")]), "nope"
    )
    assert_bad_input(
        runner.invoke(app, ["explain", str(user), "--model", str(ppo_run), "--action", "fax"]),
        "unknown action 'fax'",
    )
    assert_bad_input(
        runner.invoke(app, ["explain", str(tmp_path / "x.json"), "--model", str(ppo_run)]),
        "file not found",
    )
    bad_csv = tmp_path / "bad.csv"
    bad_csv.write_text(",".join(FEATURE_NAMES) + "\n" + ",".join(["1"] * 15 + ["maybe"]) + "\n")
    assert_bad_input(
        runner.invoke(app, ["explain", str(bad_csv), "--summary", "--model", str(ppo_run)]),
        "bad.csv: line 2: consent_push",
    )
    assert_bad_input(
        runner.invoke(app, ["explain", str(bad_csv), "--model", str(ppo_run)]), "--summary"
    )


def test_tampered_model_is_refused(ppo_run, tmp_path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(ppo_run, copy)
    model = copy / "model.zip"
    model.write_bytes(model.read_bytes() + b"\0")
    result = runner.invoke(app, ["explain", str(USERS / "loyal_vip.json"), "--model", str(copy)])
    assert_bad_input(result, "SHA-256")


def test_same_background_seed_same_numbers(ppo_run, tmp_path) -> None:
    outputs = [
        runner.invoke(
            app,
            [
                "explain",
                str(USERS / "loyal_vip.json"),
                "--model",
                str(ppo_run),
                "--out",
                str(tmp_path / f"{i}.png"),
                "--seed",
                str(seed),
            ],
        ).output.splitlines()[:-1]
        for i, seed in enumerate((3, 3, 4))
    ]
    assert outputs[0] == outputs[1]
    assert outputs[0] != outputs[2]
    assert np.isfinite(len(outputs[0]))
