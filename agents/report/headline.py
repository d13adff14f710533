"""The report's headline: who wins, by how much, at what cost in messages, in plain words.

The sentence is computed from the evaluations, never written by hand, and it is honest about
doing nothing: if the best policy does not earn more than sending no messages, it says so.
The oracle (which sees every customer's true expected reward) is a reference, never the
winner. A difference smaller than the two 95 % confidence intervals combined is called not
clear (conservative: policies evaluated on one cohort share its randomness).
"""

from __future__ import annotations

from collections.abc import Sequence

from rec_env.agents.evaluation.evaluate import Evaluation
from rec_env.agents.evaluation.plots import ranked, winner
from rec_env.agents.evaluation.style import Period, policy_family

__all__ = ["best_rule", "clear_difference", "headline", "no_action_result"]

_PROFIT = "profit_per_customer"
_MESSAGES = "contacts_per_customer"


def best_rule(results: Sequence[Evaluation]) -> Evaluation | None:
    """The most profitable rule (the ``rule`` family without ``random``)."""
    rules = [
        r for r in ranked(results) if policy_family(r.policy) == "rule" and "random" not in r.policy
    ]
    return rules[0] if rules else None


def no_action_result(results: Sequence[Evaluation]) -> Evaluation | None:
    """The evaluation of sending nothing, if there is one."""
    return next((r for r in results if policy_family(r.policy) == "no_action"), None)


def clear_difference(a: Evaluation, b: Evaluation, key: str = _PROFIT) -> bool:
    """Whether ``a`` and ``b`` differ by more than their combined 95 % CI half-widths.

    Conservative for policies evaluated on the same cohort (the shared randomness makes the
    paired difference tighter than this).
    """
    x, y = a.kpis[key], b.kpis[key]
    return abs(x.mean - y.mean) > (x.ci**2 + y.ci**2) ** 0.5


def _money(value: float) -> str:
    return f"−${-value:,.2f}" if value < 0 else f"${value:,.2f}"


def _relative(a: float, b: float) -> str:
    """``"14 % more"`` / ``"3 % less"`` of ``a`` against ``b`` (``b`` > 0), else dollars."""
    if b > 0:
        change = 100 * (a - b) / b
        return f"{abs(change):.0f} % {'more' if change >= 0 else 'less'}"
    return f"{_money(abs(a - b))} {'more' if a >= b else 'less'}"


def _messages(value: float) -> str:
    return f"{value:.0f} message{'s' if round(value) != 1 else ''}"


def headline(results: Sequence[Evaluation], focus: Sequence[str] = ()) -> list[str]:
    """The headline sentences: the winner against the best rule, and against doing nothing.

    Args:
        results: Evaluations on one cohort.
        focus: Labels of the policies the report is about (trained runs): if none of them
            wins, a last sentence places the best of them against the winner.

    Example:
        "cooldown earns $8.66 per customer a year, 38 % more than the best other rule ..."
    """
    best = winner(results)
    if best is None:
        return ["Only the oracle was evaluated: there is no policy to recommend."]
    period = Period.of(best.settings)
    per = f"per customer {period.per_lifetime}"
    profit, messages = best.kpis[_PROFIT].mean, best.kpis[_MESSAGES].mean
    nothing = no_action_result(results)
    if nothing is best:
        return _nothing_wins(results, nothing) + _focus(results, best, focus, per)
    sentences = []
    rule = best_rule([r for r in results if r is not best])
    first = f"{best.policy} earns {_money(profit)} {per}"
    if rule is not None:
        rule_profit = rule.kpis[_PROFIT].mean
        other = "other " if policy_family(best.policy) == "rule" else ""
        first += f", {_relative(profit, rule_profit)} than the best {other}rule "
        first += f"({rule.policy}, {_money(rule_profit)})"
        first += f", by sending {_messages(messages)} instead of {rule.kpis[_MESSAGES].mean:.0f}"
        if not clear_difference(best, rule):
            first += " (within the 95 % confidence intervals: not a clear difference)"
    sentences.append(first + ".")
    if nothing is not None:
        gain = profit - nothing.kpis[_PROFIT].mean
        unclear = (
            ""
            if clear_difference(best, nothing)
            else " (within the 95 % confidence intervals: not a clear gain)"
        )
        sentences.append(
            f"Sending no messages at all earns {_money(nothing.kpis[_PROFIT].mean)}: "
            f"{best.policy} adds {_money(gain)} {per} over doing nothing{unclear}."
        )
    else:
        sentences.append(
            "Doing nothing (no_action) was not evaluated, so the gain over it is unknown."
        )
    return sentences + _focus(results, best, focus, per)


def _focus(
    results: Sequence[Evaluation], best: Evaluation, focus: Sequence[str], per: str
) -> list[str]:
    """The best of the ``focus`` policies against the winner, if it is not the winner."""
    runs = [r for r in ranked(results) if r.policy in focus]
    if not runs or runs[0] is best:
        return []
    run = runs[0]
    profit = run.kpis[_PROFIT].mean
    rank = ranked(results).index(run) + 1
    return [
        f"The best trained policy, {run.policy}, earns {_money(profit)} {per} "
        f"({_relative(profit, best.kpis[_PROFIT].mean)} than {best.policy}; "
        f"{rank} of {len(results)}), sending {_messages(run.kpis[_MESSAGES].mean)}."
    ]


def _nothing_wins(results: Sequence[Evaluation], nothing: Evaluation) -> list[str]:
    """The sentence when sending nothing earns the most (the oracle aside)."""
    per = f"per customer {Period.of(nothing.settings).per_lifetime}"
    value = _money(nothing.kpis[_PROFIT].mean)
    others = [
        r for r in ranked(results) if r is not nothing and policy_family(r.policy) != "oracle"
    ]
    if not others:
        return [f"Only doing nothing was evaluated: it earns {value} {per}."]
    top = others[0]
    return [
        f"No policy beats sending no messages: doing nothing earns {value} {per}, and the best "
        f"other policy, {top.policy}, earns {_money(top.kpis[_PROFIT].mean)} while sending "
        f"{_messages(top.kpis[_MESSAGES].mean)}."
    ]
