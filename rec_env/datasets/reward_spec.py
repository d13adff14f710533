r"""Reward specifications: a reward written as a safe, linear expression of a log's outcomes.

A campaign log rarely holds "the reward"; it holds outcomes (``purchase``, ``spend``) and the
marketer knows the economics ("a purchase earns 10, a promotion costs 0.15"). A reward
specification writes that down as a string, for example ``"10*purchase - 0.15*treated"`` or
``"0.3*spend - cost[action]"``, and :meth:`RewardSpec.parse` turns it into the linear form

.. math::

    r(x, a) = c_0 + \sum_j c_j \, t_j + o_a, \qquad
    o_a = c_{\mathrm{treated}} \, [a \ne \mathrm{control}] + c_{\mathrm{cost}} \, \mathrm{cost}[a],

where each term :math:`t_j` is an outcome column or the 0/1 indicator of a comparison of a column
with a literal (``spend > 0``, ``status == 'paid'``), and :math:`o_a` is a per-action offset.
Because the form is linear, a model of the terms gives the expected reward directly:
:math:`E[r \mid x, a] = c_0 + \sum_j c_j \, E[t_j \mid x, a] + o_a`, so a classifier of
P(purchase) becomes expected profit (:meth:`RewardSpec.expected_rewards`).

The string is parsed with :mod:`ast` against a whitelist and is never evaluated. Allowed:

* numbers, and column names (each becomes a term);
* ``treated`` (1 where the action is not the control action) and ``cost[action]`` (the cost of
  the logged action, from the ``costs`` table);
* ``+``, ``-``, unary ``-``, ``*`` where one side is a number, ``/`` by a number, parentheses;
* one comparison (``==``, ``!=``, ``<``, ``<=``, ``>``, ``>=``) of a column with a number, or
  ``==`` / ``!=`` with a quoted string.

``treated``, ``action`` and ``cost`` are reserved words: a column of that name cannot be used in
an expression. A reward that is exactly a column name (even one that is not a Python name, such
as ``"net revenue"``) is that column when the column list is given.

This module imports numpy only.
"""

from __future__ import annotations

import ast
import difflib
import operator
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rec_env.errors import ConfigError

__all__ = ["ALLOWED_SYNTAX", "RESERVED_NAMES", "RewardSpec", "RewardTerm"]

ALLOWED_SYNTAX = (
    "numbers, column names, 'treated', 'cost[action]', + and -, * by a number, / by a number, "
    "unary -, parentheses, and one comparison (== != < <= > >=) of a column with a number "
    "(or == / != with a quoted string)"
)
"""What a reward expression may contain (quoted in every parse error)."""

RESERVED_NAMES = frozenset({"treated", "action", "cost"})
"""Names with a meaning in expressions; columns of these names cannot be used in one."""

_MAX_LENGTH = 2000  # long enough for any real reward, short enough to bound the parser's work

_COMPARISONS: dict[type[ast.cmpop], tuple[str, Callable[[Any, Any], Any]]] = {
    ast.Eq: ("==", operator.eq),
    ast.NotEq: ("!=", operator.ne),
    ast.Lt: ("<", operator.lt),
    ast.LtE: ("<=", operator.le),
    ast.Gt: (">", operator.gt),
    ast.GtE: (">=", operator.ge),
}
_MIRRORED = {"==": "==", "!=": "!=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}
_OPERATORS = {symbol: function for symbol, function in _COMPARISONS.values()}


@dataclass(frozen=True)
class RewardTerm:
    """One term of a reward: an outcome column, or the indicator of a comparison with a literal.

    Args:
        column: The outcome column.
        op: ``None`` for the column itself, else one of ``== != < <= > >=``.
        value: The literal compared with (a number, or a string for ``==`` / ``!=``).
    """

    column: str
    op: str | None = None
    value: float | str | None = None

    @property
    def name(self) -> str:
        """``"purchase"`` or ``"spend > 0"``."""
        if self.op is None:
            return self.column
        shown = repr(self.value) if isinstance(self.value, str) else f"{self.value:g}"
        return f"{self.column} {self.op} {shown}"

    @property
    def is_indicator(self) -> bool:
        """True for a comparison (a 0/1 term, what a classifier predicts)."""
        return self.op is not None

    @property
    def compares_text(self) -> bool:
        """True if the column is compared with a string (read as text, not numbers)."""
        return isinstance(self.value, str)

    def values(self, column: np.ndarray) -> np.ndarray:
        """``(n,)`` float64 value of the term, from the outcome column's values.

        Args:
            column: Numbers (float) or, for a string comparison, strings.
        """
        if self.op is None:
            return np.asarray(column, dtype=np.float64)
        compare = _OPERATORS[self.op]
        return np.asarray(compare(np.asarray(column), self.value), dtype=np.float64)


@dataclass(frozen=True)
class _Linear:
    """Intermediate linear form while walking the expression tree."""

    constant: float = 0.0
    terms: tuple[tuple[RewardTerm, float], ...] = ()
    treated: float = 0.0
    cost: float = 0.0

    @property
    def is_number(self) -> bool:
        return not self.terms and self.treated == 0.0 and self.cost == 0.0

    def plus(self, other: _Linear) -> _Linear:
        merged = dict(self.terms)
        for term, coefficient in other.terms:
            merged[term] = merged.get(term, 0.0) + coefficient
        return _Linear(
            self.constant + other.constant,
            tuple(merged.items()),
            self.treated + other.treated,
            self.cost + other.cost,
        )

    def times(self, factor: float) -> _Linear:
        return _Linear(
            self.constant * factor,
            tuple((term, coefficient * factor) for term, coefficient in self.terms),
            self.treated * factor,
            self.cost * factor,
        )


class _Parser:
    """Walks the ``ast`` of one expression; every node not on the whitelist is an error."""

    def __init__(self, expression: str, columns: Collection[str] | None) -> None:
        self.expression = expression
        self.columns = columns

    def fail(self, node: ast.AST | None, why: str) -> ConfigError:
        token = ast.get_source_segment(self.expression, node) if node is not None else None
        where = f": {token!r} {why}" if token else f": {why}"
        return ConfigError(f"reward {self.expression!r}{where}; allowed: {ALLOWED_SYNTAX}")

    def column(self, node: ast.Name) -> str:
        name = node.id
        if name in RESERVED_NAMES:
            hint = (
                "write cost[action]" if name in ("cost", "action") else "it means action != control"
            )
            raise self.fail(node, f"is reserved here ({hint})")
        if self.columns is not None and name not in self.columns:
            close = difflib.get_close_matches(name, list(self.columns), n=3)
            hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
            shown = ", ".join(sorted(self.columns)[:20])
            raise self.fail(node, f"is not a column of the log{hint} (columns: {shown})")
        return name

    def number(self, node: ast.AST) -> float | None:
        if isinstance(node, ast.Constant) and type(node.value) in (int, float):
            return float(node.value)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
            inner = self.number(node.operand)
            if inner is not None:
                return -inner if isinstance(node.op, ast.USub) else inner
        return None

    def linear(self, node: ast.AST) -> _Linear:
        value = self.number(node)
        if value is not None:
            if not np.isfinite(value):
                raise self.fail(node, "is not a finite number")
            return _Linear(constant=value)
        if isinstance(node, ast.Name):
            if node.id == "treated":
                return _Linear(treated=1.0)
            return _Linear(terms=((RewardTerm(self.column(node)), 1.0),))
        if isinstance(node, ast.Subscript):
            if (
                isinstance(node.value, ast.Name)
                and node.value.id == "cost"
                and isinstance(node.slice, ast.Name)
                and node.slice.id == "action"
            ):
                return _Linear(cost=1.0)
            raise self.fail(node, "is not allowed (the only subscript is cost[action])")
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
            inner = self.linear(node.operand)
            return inner.times(-1.0) if isinstance(node.op, ast.USub) else inner
        if isinstance(node, ast.BinOp):
            return self.binary(node)
        if isinstance(node, ast.Compare):
            return _Linear(terms=((self.comparison(node), 1.0),))
        raise self.fail(node, f"is not allowed ({type(node).__name__})")

    def binary(self, node: ast.BinOp) -> _Linear:
        left, right = self.linear(node.left), self.linear(node.right)
        if isinstance(node.op, ast.Add):
            return left.plus(right)
        if isinstance(node.op, ast.Sub):
            return left.plus(right.times(-1.0))
        if isinstance(node.op, ast.Mult):
            if left.is_number:
                return right.times(left.constant)
            if right.is_number:
                return left.times(right.constant)
            raise self.fail(node, "multiplies two outcomes: the reward must be linear")
        if isinstance(node.op, ast.Div):
            if right.is_number and right.constant != 0.0:
                return left.times(1.0 / right.constant)
            raise self.fail(node, "divides by something other than a non-zero number")
        raise self.fail(node, f"uses an operator that is not allowed ({type(node.op).__name__})")

    def comparison(self, node: ast.Compare) -> RewardTerm:
        if len(node.ops) != 1 or type(node.ops[0]) not in _COMPARISONS:
            raise self.fail(node, "is not one comparison of a column with a literal")
        symbol = _COMPARISONS[type(node.ops[0])][0]
        left, right = node.left, node.comparators[0]
        if not isinstance(left, ast.Name):  # "0 < spend" is "spend > 0"
            left, right, symbol = right, left, _MIRRORED[symbol]
        if not isinstance(left, ast.Name):
            raise self.fail(node, "does not compare a column with a literal")
        literal: float | str | None = self.number(right)
        if literal is None and isinstance(right, ast.Constant) and isinstance(right.value, str):
            if symbol not in ("==", "!="):
                raise self.fail(node, "orders text: compare a string only with == or !=")
            literal = right.value
        if literal is None:
            raise self.fail(node, "does not compare a column with a number or a quoted string")
        return RewardTerm(self.column(left), symbol, literal)


@dataclass(frozen=True)
class RewardSpec:
    """A reward as ``constant + Σ coefficient·term + offset[action]`` (see the module docs).

    Build one with :meth:`parse`. The fields are the parsed linear form.

    Args:
        expression: The string it was parsed from.
        constant: :math:`c_0`.
        terms: The outcome terms :math:`t_j`, in order of appearance.
        coefficients: Their coefficients :math:`c_j`.
        treated: Coefficient of the treatment indicator ``[action != control]``.
        cost: Coefficient of ``cost[action]``.
        costs: Cost of each action by name (``cost[action]``); the control action may be left
            out (cost 0).
    """

    expression: str
    constant: float
    terms: tuple[RewardTerm, ...]
    coefficients: tuple[float, ...]
    treated: float = 0.0
    cost: float = 0.0
    costs: Mapping[str, float] = field(default_factory=dict)

    @classmethod
    def parse(
        cls,
        expression: str,
        costs: Mapping[str, float] | None = None,
        columns: Collection[str] | None = None,
    ) -> RewardSpec:
        """Parse a reward expression safely (``ast`` whitelist, never ``eval``).

        Args:
            expression: For example ``"purchase"``, ``"10*purchase - 0.15*treated"`` or
                ``"0.3*spend - cost[action] + 5*(visits > 2)"``.
            costs: Cost of each action by name, for ``cost[action]``.
            columns: The log's columns, to check names against; a reward equal to one of
                them is that column even if it is not a Python name.

        Returns:
            The linear form.

        Raises:
            ConfigError: Naming the expression, the offending token and what is allowed.
        """
        costs = {str(action): float(value) for action, value in (costs or {}).items()}
        expression = str(expression).strip()
        if columns is not None and expression in columns and expression not in RESERVED_NAMES:
            return cls(expression, 0.0, (RewardTerm(expression),), (1.0,), costs=costs)
        if not expression:
            raise ConfigError(
                f"reward is empty; give a column or an expression of {ALLOWED_SYNTAX}"
            )
        if len(expression) > _MAX_LENGTH:
            raise ConfigError(f"reward expression is longer than {_MAX_LENGTH} characters")
        parser = _Parser(expression, columns)
        try:
            tree = ast.parse(expression, mode="eval")
            linear = parser.linear(tree.body)
        except SyntaxError as exc:
            raise ConfigError(
                f"reward {expression!r} is not a valid expression ({exc.msg}); "
                f"allowed: {ALLOWED_SYNTAX}"
            ) from None
        except RecursionError:
            raise ConfigError(f"reward {expression!r} is nested too deeply") from None
        kept = [(term, c) for term, c in linear.terms if c != 0.0]
        for name, value in costs.items():
            if not np.isfinite(value):
                raise ConfigError(f"costs.{name}: must be a finite number, got {value}")
        if linear.cost != 0.0 and not costs:
            raise ConfigError(
                f"reward {expression!r} uses cost[action] but no costs are given: "
                "give the cost of each action (e.g. costs: {promo: 0.15})"
            )
        return cls(
            expression,
            linear.constant,
            tuple(term for term, _ in kept),
            tuple(c for _, c in kept),
            linear.treated,
            linear.cost,
            costs,
        )

    # ------------------------------------------------------------------ what it needs
    @property
    def columns(self) -> tuple[str, ...]:
        """The outcome columns the reward reads, each once, in order of appearance."""
        return tuple(dict.fromkeys(term.column for term in self.terms))

    @property
    def uses_treated(self) -> bool:
        """True if the reward depends on ``treated`` (needs a control action)."""
        return self.treated != 0.0

    def text_columns(self) -> frozenset[str]:
        """Columns compared with strings (read as text rather than numbers)."""
        return frozenset(term.column for term in self.terms if term.compares_text)

    # ------------------------------------------------------------------ evaluation
    def action_offsets(self, action_names: Sequence[str], control: str | None) -> np.ndarray:
        """``(n_actions,)`` offset :math:`o_a` of each action.

        Raises:
            ConfigError: If the reward uses ``treated`` and there is no control action, or uses
                ``cost[action]`` and an action other than the control has no cost.
        """
        names = [str(name) for name in action_names]
        if self.uses_treated and control is None:
            raise ConfigError(
                f"reward {self.expression!r} uses 'treated' (action != control) but no control "
                f"action is set; name one of: {', '.join(names)}"
            )
        if control is not None and control not in names:
            raise ConfigError(f"control action {control!r} is not one of: {', '.join(names)}")
        offsets = np.zeros(len(names))
        if self.uses_treated:
            offsets += self.treated * np.array([name != control for name in names], dtype=float)
        if self.cost != 0.0:
            missing = [n for n in names if n not in self.costs and n != control]
            if missing:
                raise ConfigError(
                    f"reward {self.expression!r} uses cost[action] but costs has no entry for: "
                    f"{', '.join(missing)} (give 0 for a free action)"
                )
            offsets += self.cost * np.array([self.costs.get(name, 0.0) for name in names])
        return offsets

    def term_values(self, outcomes: Mapping[str, np.ndarray], n: int | None = None) -> np.ndarray:
        """``(n, n_terms)`` float64 value of each term, from the outcome columns.

        Args:
            outcomes: The outcome columns (:attr:`columns`).
            n: Number of rows, needed only when the reward has no terms.
        """
        if not self.terms:
            return np.zeros((0 if n is None else n, 0))
        return np.column_stack([term.values(outcomes[term.column]) for term in self.terms])

    def evaluate(
        self,
        outcomes: Mapping[str, np.ndarray],
        actions: np.ndarray,
        action_names: Sequence[str],
        control: str | None = None,
    ) -> np.ndarray:
        """``(n,)`` reward of each logged row.

        Args:
            outcomes: The outcome columns (:attr:`columns`), numbers or, for string
                comparisons, strings.
            actions: ``(n,)`` index of the logged action.
            action_names: Names of the actions, in index order.
            control: Name of the control action (needed for ``treated``).
        """
        actions = np.asarray(actions, dtype=np.intp)
        rewards = np.full(actions.shape[0], self.constant)
        for term, coefficient in zip(self.terms, self.coefficients, strict=True):
            rewards += coefficient * term.values(outcomes[term.column])
        return rewards + self.action_offsets(action_names, control)[actions]

    def expected_rewards(
        self,
        term_means: np.ndarray,
        action_names: Sequence[str],
        control: str | None = None,
    ) -> np.ndarray:
        r"""Expected reward of every action from predicted term means, by linearity.

        Args:
            term_means: ``(n, n_actions, n_terms)`` predicted :math:`E[t_j \mid x, a]`, for
                example a classifier's P(purchase) for each action; ``(n, n_actions)`` when
                there is one term.
            action_names: Names of the actions, in index order.
            control: Name of the control action (needed for ``treated``).

        Returns:
            ``(n, n_actions)`` :math:`c_0 + \sum_j c_j E[t_j] + o_a`.
        """
        means = np.asarray(term_means, dtype=np.float64)
        if means.ndim == 2 and len(self.terms) == 1:
            means = means[:, :, None]
        if means.ndim != 3 or means.shape[1:] != (len(action_names), len(self.terms)):
            raise ValueError(
                f"term_means must have shape (n, {len(action_names)}, {len(self.terms)}) "
                f"(rows, actions, terms {[t.name for t in self.terms]}), got {means.shape}"
            )
        linear = self.constant + means @ np.asarray(self.coefficients, dtype=np.float64)
        return linear + self.action_offsets(action_names, control)[None, :]

    # ------------------------------------------------------------------ persistence
    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable ``{"expression", "costs"}`` (the parse is recomputed on load)."""
        return {"expression": self.expression, "costs": dict(self.costs)}

    @classmethod
    def from_dict(cls, payload: Mapping[str, Any]) -> RewardSpec:
        """The spec written by :meth:`to_dict`."""
        return cls.parse(payload["expression"], payload.get("costs"))

    def __str__(self) -> str:
        parts = [
            f"{c:g}·{t.name if not t.is_indicator else '[' + t.name + ']'}"
            for t, c in zip(self.terms, self.coefficients, strict=True)
        ]
        if self.treated:
            parts.append(f"{self.treated:g}·[action ≠ control]")
        if self.cost:
            parts.append(f"{self.cost:g}·cost[action]")
        if self.constant or not parts:
            parts.insert(0, f"{self.constant:g}")
        return "reward = " + " + ".join(parts).replace("+ -", "− ")
