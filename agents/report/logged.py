"""Sections of results on logged data: off-policy estimates, uplift, benchmarks and A/B tests.

Every estimator table carries its diagnostics: the effective sample size of the importance
weights (as a share of the rows: a small share means few logged decisions resemble the
policy's), the largest weight, and the share of the policy's choices the log hardly ever took
(``unsupported``), where no estimator can be trusted.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rec_env.agents.report.html import (
    escape,
    figure_html,
    paragraph,
    png_html,
    section,
    table,
)

__all__ = [
    "DIAGNOSTICS",
    "ab_section",
    "bench_section",
    "estimator_rows",
    "logged_headline",
    "logged_sections",
    "offline_section",
    "ope_section",
]

DIAGNOSTICS = (
    "Values estimated from logged decisions, each with its diagnostics: the effective sample "
    "size of the importance weights (a small share of the rows means few logged decisions "
    "resemble the policy's), the largest weight, and whether the policy takes actions the log "
    "hardly ever took, where no estimator can be trusted."
)
"""The paragraph that opens the off-policy section."""

_FEW_EFFECTIVE = 0.1
"""An ESS below this share of the rows is flagged."""
_UNSUPPORTED = 0.01
"""Unsupported probability mass above this is flagged."""


def _number(value: Any, digits: int = 3) -> str:
    if value is None or value == "":
        return "n/a"
    value = float(value)
    return "n/a" if not np.isfinite(value) else f"{value:.{digits}g}"


def _fixed(values: Iterable[Any], significant: int = 3) -> Callable[[Any], str]:
    """A formatter with one number of decimals for a group of numbers (a column and its CIs).

    The largest of them gets ``significant`` digits and the others as many decimals, so that
    a column reads ``1.20 [0.90, 1.50]``, not ``1.2 [0.8952, 1.504]``.
    """
    finite = [abs(float(v)) for v in values if v not in (None, "") and np.isfinite(float(v))]
    largest = max(finite, default=0.0)
    exponent = math.floor(math.log10(largest)) if largest > 0 else 0
    decimals = min(max(significant - 1 - exponent, 0), 6)

    def fmt(value: Any) -> str:
        if value is None or value == "" or not np.isfinite(float(value)):
            return "n/a"
        return f"{float(value):,.{decimals}f}"

    return fmt


def _diagnosis(estimate: Mapping[str, Any]) -> str:
    words = []
    n = float(estimate.get("n") or 0)
    ess = estimate.get("effective_sample_size")
    if n and ess is not None and ess != "" and float(ess) < _FEW_EFFECTIVE * n:
        words.append("few effective samples")
    unsupported = estimate.get("unsupported_mass")
    if unsupported not in (None, "") and float(unsupported) > _UNSUPPORTED:
        words.append("policy takes actions the log rarely took")
    return "; ".join(words) or "ok"


def estimator_rows(estimates: Sequence[Mapping[str, Any]]) -> list[list[str]]:
    """One row per estimate: value, CI, effective sample size, largest weight, diagnosis."""
    rows = []
    fmt = _fixed(e[k] for e in estimates for k in ("value", "ci_low", "ci_high"))
    for e in estimates:
        n = float(e.get("n") or 0)
        ess = e.get("effective_sample_size")
        share = f" ({float(ess) / n:.0%})" if n and ess not in (None, "") else ""
        rows.append(
            [
                str(e["estimator"]).upper(),
                fmt(e["value"]),
                f"[{fmt(e['ci_low'])}, {fmt(e['ci_high'])}]",
                f"{_number(ess, 4)}{share}",
                _number(e.get("max_weight")),
                _diagnosis(e),
            ]
        )
    return rows


_ESTIMATOR_HEADERS = (
    "estimator",
    "value per decision",
    "95 % CI",
    "effective sample size",
    "largest weight",
    "diagnosis",
)


def _dr(entry: Mapping[str, Any]) -> Mapping[str, Any]:
    return next((e for e in entry["estimates"] if e["estimator"] == "dr"), entry["estimates"][0])


def logged_headline(results: Mapping[str, Any]) -> str:
    """The best policy of an offline run against doing nothing, in one sentence."""
    policies = results["policies"]
    best = policies[0]
    dr = _dr(best)
    sentence = (
        f"On the held-out log ({results['n_test']:,} rows), {best['name']} is estimated to earn "
        f"{_number(dr['value'], 4)} {results['reward']} per customer "
        f"(95 % CI {_number(dr['ci_low'], 4)} to {_number(dr['ci_high'], 4)}, doubly robust)"
    )
    control = results.get("control")
    nothing = next((p for p in policies if p["name"] == f"always {control}"), None)
    if nothing is not None and nothing is not best:
        sentence += f", against {_number(_dr(nothing)['value'], 4)} for doing nothing ({control})"
    elif nothing is best:
        sentence += f": doing nothing ({control}) is the best policy in this log"
    gain = best.get("gain")
    if gain:
        verdict = "a clear gain" if gain.get("significant") else "not a clear gain"
        sentence += (
            f"; over the best single action ({gain['baseline']}) that is "
            f"{_number(gain['value'], 3)} ({verdict})"
        )
    return sentence + "."


def _offline_curves(results: Mapping[str, Any]) -> list[str]:
    from rec_env.agents.evaluation.uplift_plots import policy_value_figure, uplift_figure
    from rec_env.agents.offline.pipeline import saved_curves

    curves, qini = saved_curves(results)
    out = []
    reward = results["reward"]
    if curves:
        control = results.get("control")
        references = {
            f"{e['name']} (everyone)": float(_dr(e)["value"])
            for e in results["policies"]
            if e["kind"] == "constant"
        }
        nothing = f"always {control} (everyone)"
        chosen = dict(list(references.items())[:2])
        if nothing in references:
            chosen[nothing] = references[nothing]
        fig = policy_value_figure(
            curves,
            value_label=f"{reward} per customer",
            references=chosen,
            title=f"Value of targeting the best-scored share; the rest get {control}",
        )
        bands = " with 95 % bands" if len(curves) <= 3 else ""
        out.append(figure_html(fig, f"Held-out estimate{bands}."))
    if qini:
        out.append(figure_html(uplift_figure(qini, outcome=reward)))
    return out


def offline_section(source: str, results: Mapping[str, Any]) -> list[str]:
    """An offline run: the policies by DR value, each estimator with its diagnostics, curves."""
    rows = []
    fmt = _fixed(
        [_dr(e)[k] for e in results["policies"] for k in ("value", "ci_low", "ci_high")]
        + [e["true_value"] for e in results["policies"] if "true_value" in e]
    )
    for entry in results["policies"]:
        dr = _dr(entry)
        uplift = entry.get("targeting", {}).get("uplift_at_30")
        rows.append(
            [
                entry["name"],
                entry["kind"],
                fmt(dr["value"]),
                f"[{fmt(dr['ci_low'])}, {fmt(dr['ci_high'])}]",
                _diagnosis(dr),
                "" if uplift is None else _number(uplift, 3),
                "" if "true_value" not in entry else fmt(entry["true_value"]),
            ]
        )
    headers = [
        "policy",
        "kind",
        f"{results['reward']} per customer (DR)",
        "95 % CI",
        "diagnosis",
        "uplift in the top 30 %",
        "true value",
    ]
    body = [
        f"<h3>{escape(source)}</h3>",
        paragraph(logged_headline(results), "lead"),
        table(
            headers,
            rows,
            highlight=[0],
            caption="Best first, by the doubly robust estimate.",
            text_columns=2,
        ),
    ]
    best = results["policies"][0]
    body.append(paragraph(f"Every estimator for {best['name']}:"))
    body.append(table(_ESTIMATOR_HEADERS, estimator_rows(best["estimates"])))
    body.extend(_offline_curves(results))
    return body


def ope_section(source: str, payload: Mapping[str, Any]) -> list[str]:
    """A ``recenv ope`` result: the target's estimates against the logged policy's reward."""
    logged = payload["logged_policy"]
    text = (
        f"{payload.get('algorithm', 'the policy')} ({payload.get('policy', '')}) on "
        f"{payload.get('with_reward', 0):,} logged decisions with a reward: the logged policy "
        f"earned {_number(logged['mean'], 4)} ± {_number(logged['ci95'], 2)} per decision."
    )
    return [
        f"<h3>{escape(source)}</h3>",
        paragraph(text),
        table(_ESTIMATOR_HEADERS, estimator_rows(payload["estimates"])),
    ]


def bench_section(
    source: str, reward: str, tables: Mapping[str, list[dict[str, str]]]
) -> list[str]:
    """A Hillstrom benchmark: value of each policy on the held-out half, and the gains."""
    rows = []
    dr_rows = [row for row in tables["values"] if row.get("estimator") == "dr"]
    fmt = _fixed(row[k] for row in dr_rows for k in ("value", "ci_low", "ci_high"))
    for row in dr_rows:
        rows.append(
            [
                row["policy"],
                fmt(row["value"]),
                f"[{fmt(row['ci_low'])}, {fmt(row['ci_high'])}]",
                _diagnosis(row),
            ]
        )
    body = [
        f"<h3>{escape(source)}: Hillstrom e-mail campaign, reward {escape(reward)}</h3>",
        table(
            ["policy", f"{reward} per customer (DR)", "95 % CI", "diagnosis"],
            rows,
            caption="Learned on one half of the customers, valued on the other half.",
        ),
    ]
    dr_gains = [g for g in tables["gains"] if g.get("estimator") == "dr"]
    gain_fmt = _fixed(g[k] for g in dr_gains for k in ("value", "ci_low", "ci_high"))
    gains = [
        [
            g["policy"],
            g["baseline"],
            gain_fmt(g["value"]),
            f"[{gain_fmt(g['ci_low'])}, {gain_fmt(g['ci_high'])}]",
            "clear gain"
            if float(g["ci_low"]) > 0
            else "clear loss"
            if float(g["ci_high"]) < 0
            else "no clear difference",
        ]
        for g in dr_gains
    ]
    if gains:
        body.append(
            table(
                ["learned policy", "against", "difference (DR)", "95 % CI", "verdict"],
                gains,
                text_columns=2,
            )
        )
    picture = Path(source) / f"hillstrom_{reward}_replay.png"
    if picture.is_file():
        body.append(png_html(picture, "replay learning curves", "As saved by recenv bench."))
    return body


_LIFT_WORDS = {
    "profit_per_customer": "profit per customer (USD)",
    "conversion": "share of customers who bought",
}


def ab_section(source: str, payload: Mapping[str, Any]) -> list[str]:
    """An A/B test, simulated (two arms and the lifts) or analysed (arms, lifts, sample ratio)."""
    body = [f"<h3>{escape(source)}</h3>"]
    if "lift" in payload:
        arms = [
            [
                name.upper(),
                arm["policy"],
                f"{arm['customers']:,}",
                f"${arm['kpis']['profit_per_customer']['mean']:.2f}",
            ]
            for name, arm in (("a", payload["a"]), ("b", payload["b"]))
        ]
        body.append(
            table(["arm", "policy", "customers", "profit per customer"], arms, text_columns=2)
        )
        lifts = []
        for metric, lift in payload["lift"].items():
            fmt = _fixed(lift[k] for k in ("difference", "ci_low", "ci_high"))
            lifts.append(
                [
                    _LIFT_WORDS.get(metric, metric),
                    fmt(lift["difference"]),
                    f"[{fmt(lift['ci_low'])}, {fmt(lift['ci_high'])}]",
                    _number(lift["p_value"], 2),
                ]
            )
        body.append(table(["lift of B over A", "difference", "95 % CI", "p-value"], lifts))
        return body
    arms = [
        [
            arm["name"],
            f"{arm['customers']:,}",
            f"{arm['share']:.1%}",
            _number(arm["metric"]["mean"], 4),
            _number(arm["conversion"]["mean"], 3),
        ]
        for arm in payload["arms"]
    ]
    body.append(
        table(["arm", "customers", "share", f"mean {payload['metric']}", "conversion"], arms)
    )
    ratio = payload["sample_ratio"]
    if ratio.get("mismatch"):
        body.append(
            paragraph(
                f"Sample ratio mismatch (p = {_number(ratio['p_value'], 2)}): the split is not "
                "what was planned, so the lifts cannot be trusted.",
                "note",
            )
        )
    fmt = _fixed(
        c["metric"][k] for c in payload["comparisons"] for k in ("difference", "ci_low", "ci_high")
    )
    lifts = [
        [
            c["arm"],
            fmt(c["metric"]["difference"]),
            f"[{fmt(c['metric']['ci_low'])}, {fmt(c['metric']['ci_high'])}]",
            _number(c["metric"]["p_value"], 2),
        ]
        for c in payload["comparisons"]
    ]
    body.append(
        table([f"lift over {payload['control']}", "difference", "95 % CI", "p-value"], lifts)
    )
    return body


def logged_sections(content: Any) -> list[tuple[str, str, str]]:
    """The sections of results on logged data, those present only."""
    out = []
    if content.offline or content.ope:
        body = [paragraph(DIAGNOSTICS)]
        for source, results in content.offline:
            body.extend(offline_section(source, results))
        for source, payload in content.ope:
            body.extend(ope_section(source, payload))
        out.append(
            ("offline", "Off-policy estimates", section("offline", "Off-policy estimates", body))
        )
    if content.benches:
        body = []
        for source, reward, tables in content.benches:
            body.extend(bench_section(source, reward, tables))
        out.append(("bench", "Benchmarks", section("bench", "Benchmarks on real data", body)))
    if content.ab_tests:
        body = []
        for source, payload in content.ab_tests:
            body.extend(ab_section(source, payload))
        out.append(("ab", "A/B tests", section("ab", "A/B tests", body)))
    return out
