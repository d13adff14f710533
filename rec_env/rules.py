"""Business rules: what a retailer allows, as one object for training, scoring and serving.

A rules file (YAML, validated here) says which messages may go to which customers:

.. code-block:: yaml

    caps:                     # frequency caps, from the observed contact counts
      - {max_messages: 3}                        # at most 3 messages in 30 days
      - {max_messages: 1, channels: [sms]}       # an SMS only to those with < 1 in 30 days
      - {max_discounts: 1}                       # no discount after 1 in 90 days
      - {min_days_between: 14}                   # two weeks between messages
    eligibility:              # conditions on features that rule actions out
      - name: no_discount_after_purchase
        offers: [discount]
        when: [{feature: last_purchase_days, op: "<", value: 7}]
    suppression: {customer_ids: [c-17, c-42], file: suppressed.csv}
    budgets:                  # across a batch (a week's campaign list)
      - {name: discounts, offers: [discount], max_messages: 1000}
      - {name: sms_spend, channels: [sms], max_cost: 200.0}
    min_no_action_share: 0.1  # at least 10 % of a batch get nothing

Caps, eligibility and suppression compile to per-customer action masks
(:meth:`CompiledRules.masks`), combined with consent wherever masks are: the env during
training (``EnvSettings(rules=...)``: a masked action delivers nothing, as one without consent
does, and ``action_masks()`` includes the rules), ``recenv score`` and ``recenv serve``. Budgets
and the no-action share bind a whole batch, so only batch scoring applies them
(:meth:`CompiledRules.allocate`); one customer at a time, in training or a single request, they
cannot be known.

Counts come from the observed features, which carry one contact count for all channels
(``contacts_last_30d``), the discounts of 90 days (``discounts_last_90d``) and the days since
the last message (``days_since_contact``): a cap on one channel limits that channel's messages
by the count over all channels.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from rec_env.catalog import ActionTable
from rec_env.config import load_model
from rec_env.errors import ConfigError
from rec_env.features import CHANNELS, FEATURE_INDEX, FEATURE_NAMES

__all__ = [
    "CONDITION_OPS",
    "BatchAllocation",
    "Budget",
    "BusinessRules",
    "Cap",
    "CompiledRules",
    "Condition",
    "Eligibility",
    "MaskProgram",
    "compile_rules",
    "load_rules",
]

_OPS = {
    "<": np.less,
    "<=": np.less_equal,
    ">": np.greater,
    ">=": np.greater_equal,
    "==": np.equal,
    "!=": np.not_equal,
}
CONDITION_OPS = tuple(_OPS)
_TABLE_BITS = 16
"""Rule codes below ``2**_TABLE_BITS`` are described by a lookup table."""
"""A condition's operators, in the order of :attr:`MaskProgram.condition_op`'s codes."""
_OFFERS = ("discount", "free_shipping", "recommendation")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Selects(_Strict):
    """Which messages a rule is about: every message, or those of some actions, offers, channels.

    The lists narrow each other (an action must match every list given); ``no_action`` is never
    selected, so no rule can forbid doing nothing.
    """

    actions: list[str] | None = Field(None, description="Action names of the catalog.")
    offers: list[str] | None = Field(None, description=f"Offer types: {', '.join(_OFFERS)}.")
    channels: list[str] | None = Field(None, description=f"Channels: {', '.join(CHANNELS)}.")

    @field_validator("channels")
    @classmethod
    def _known_channels(cls, value: list[str] | None) -> list[str] | None:
        for channel in value or []:
            if channel not in CHANNELS:
                raise ValueError(f"unknown channel {channel!r}; channels: {', '.join(CHANNELS)}")
        return value

    @field_validator("offers")
    @classmethod
    def _known_offers(cls, value: list[str] | None) -> list[str] | None:
        for offer in value or []:
            if offer not in _OFFERS:
                raise ValueError(f"unknown offer {offer!r}; offers: {', '.join(_OFFERS)}")
        return value

    def selected(self, table: ActionTable) -> np.ndarray:
        """``(n_actions,)`` bool: the messages of ``table`` this rule is about.

        Raises:
            ValueError: For an action name the catalog does not have.
        """
        chosen = table.is_contact > 0
        if self.actions is not None:
            unknown = sorted(set(self.actions) - set(table.names))
            if unknown:
                raise ValueError(f"unknown action {unknown[0]!r} (not in the catalog)")
            chosen &= np.isin(np.array(table.names), self.actions)
        if self.offers is not None:
            chosen &= np.isin(np.array(table.offers), self.offers)
        if self.channels is not None:
            indices = [CHANNELS.index(c) for c in self.channels]
            chosen &= np.isin(table.channel, indices)
        return chosen


class Cap(_Selects):
    """A frequency cap: one of ``max_messages``, ``max_discounts`` or ``min_days_between``."""

    max_messages: int | None = Field(
        None, ge=0, description="Selected messages only while contacts_last_30d is below this."
    )
    max_discounts: int | None = Field(
        None, ge=0, description="Selected messages only while discounts_last_90d is below this."
    )
    min_days_between: float | None = Field(
        None, gt=0, description="Selected messages only once days_since_contact reaches this."
    )

    @model_validator(mode="after")
    def _one_limit(self) -> Cap:
        given = [self.max_messages, self.max_discounts, self.min_days_between]
        if sum(v is not None for v in given) != 1:
            raise ValueError("give exactly one of max_messages, max_discounts, min_days_between")
        return self

    @property
    def name(self) -> str:
        """A label for reason codes, e.g. ``cap:max_messages=3``."""
        for field in ("max_messages", "max_discounts", "min_days_between"):
            value = getattr(self, field)
            if value is not None:
                scope = "" if self.channels is None else f"[{','.join(self.channels)}]"
                return f"cap:{field}={value:g}{scope}"
        raise AssertionError("a cap has one limit")  # pragma: no cover

    def selected(self, table: ActionTable) -> np.ndarray:
        """The messages the cap limits: a discount cap limits discounts unless told otherwise."""
        chosen = super().selected(table)
        if self.max_discounts is not None and self.offers is None:
            chosen &= np.array(table.offers) == "discount"
        return chosen

    @property
    def condition(self) -> Condition:
        """The customers the cap stops, as a condition on one feature."""
        if self.max_messages is not None:
            return Condition(feature="contacts_last_30d", op=">=", value=self.max_messages)
        if self.max_discounts is not None:
            return Condition(feature="discounts_last_90d", op=">=", value=self.max_discounts)
        return Condition(feature="days_since_contact", op="<", value=self.min_days_between or 0)

    def blocked(self, obs: np.ndarray) -> np.ndarray:
        """``(n,)`` bool: customers the cap stops from getting the selected messages."""
        return self.condition.holds(obs)


class Condition(_Strict):
    """``feature op value``, e.g. ``last_purchase_days < 7``."""

    feature: str
    op: Literal["<", "<=", ">", ">=", "==", "!="]
    value: float

    @field_validator("feature")
    @classmethod
    def _known_feature(cls, value: str) -> str:
        if value not in FEATURE_INDEX:
            raise ValueError(f"unknown feature {value!r}; features: {', '.join(FEATURE_NAMES)}")
        return value

    def holds(self, obs: np.ndarray) -> np.ndarray:
        """``(n,)`` bool."""
        return _OPS[self.op](obs[:, FEATURE_INDEX[self.feature]], self.value)


class Eligibility(_Selects):
    """The selected messages are not allowed for customers meeting every condition."""

    name: str = Field(min_length=1, max_length=100)
    when: list[Condition] = Field(min_length=1)

    def blocked(self, obs: np.ndarray) -> np.ndarray:
        """``(n,)`` bool: customers meeting every condition."""
        out = np.ones(obs.shape[0], dtype=bool)
        for condition in self.when:
            out &= condition.holds(obs)
        return out


class Suppression(_Strict):
    """Customers who get no message at all: ids given inline and/or in a CSV's first column."""

    customer_ids: list[str] = Field(default_factory=list)
    file: Path | None = Field(
        None, description="CSV with a customer_id column (relative to the rules file)."
    )


class Budget(_Selects):
    """At most ``max_messages`` selected messages, or ``max_cost`` USD of them, in one batch."""

    name: str = Field(min_length=1, max_length=100)
    max_messages: int | None = Field(None, ge=0)
    max_cost: float | None = Field(None, ge=0, description="USD of message cost.")

    @model_validator(mode="after")
    def _one_limit(self) -> Budget:
        if (self.max_messages is None) == (self.max_cost is None):
            raise ValueError("give exactly one of max_messages, max_cost")
        return self


class BusinessRules(_Strict):
    """A rules file: caps, eligibility, suppression, budgets and a no-action share."""

    caps: list[Cap] = Field(default_factory=list)
    eligibility: list[Eligibility] = Field(default_factory=list)
    suppression: Suppression | None = None
    budgets: list[Budget] = Field(default_factory=list)
    min_no_action_share: float = Field(0.0, ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _unique_names(self) -> BusinessRules:
        names = [e.name for e in self.eligibility] + [b.name for b in self.budgets]
        duplicated = sorted({n for n in names if names.count(n) > 1})
        if duplicated:
            raise ValueError(f"rule name {duplicated[0]!r} is used twice")
        return self


@dataclass(frozen=True)
class CompiledRules:
    """Rules bound to a catalog: masks per customer, and the batch allocation.

    Attributes:
        rules: The validated rules.
        table: The action catalog.
        names: Labels of the mask rules (caps, eligibility, then ``suppression``), in order.
        selections: ``(n_rules, n_actions)`` bool, the messages each mask rule is about.
        suppressed: The suppressed customer ids.
        source: The rules file, for messages.
    """

    rules: BusinessRules
    table: ActionTable
    names: tuple[str, ...]
    selections: np.ndarray
    suppressed: frozenset[str]
    source: str = "<rules>"

    @property
    def batch_only(self) -> bool:
        """Whether some rules (budgets, a no-action share) bind only a batch."""
        return bool(self.rules.budgets) or self.rules.min_no_action_share > 0

    def blocked(self, obs: np.ndarray, customer_ids: np.ndarray | None = None) -> np.ndarray:
        """``(n_rules, n)`` bool: which mask rule stops which customer's selected messages."""
        obs = np.atleast_2d(np.asarray(obs, dtype=np.float64))
        rows = [cap.blocked(obs) for cap in self.rules.caps]
        rows += [rule.blocked(obs) for rule in self.rules.eligibility]
        if self.rules.suppression is not None:
            rows.append(self.suppressed_rows(customer_ids, obs.shape[0]))
        if not rows:
            return np.zeros((0, obs.shape[0]), dtype=bool)
        return np.stack(rows)

    def suppressed_rows(self, customer_ids: np.ndarray | None, n: int) -> np.ndarray:
        """``(n,)`` bool: the customers on the suppression list (nobody without ids)."""
        if customer_ids is None or not self.suppressed:
            return np.zeros(n, dtype=bool)
        return np.isin(np.asarray(customer_ids).astype(str), list(self.suppressed))

    def program(self) -> MaskProgram:
        """The mask rules as flat arrays, for a compiled kernel (:class:`MaskProgram`)."""
        conditions = [(r, cap.condition) for r, cap in enumerate(self.rules.caps)] + [
            (len(self.rules.caps) + r, condition)
            for r, rule in enumerate(self.rules.eligibility)
            for condition in rule.when
        ]
        return MaskProgram(
            selections=np.ascontiguousarray(self.selections, dtype=np.bool_),
            condition_rule=np.array([r for r, _ in conditions], dtype=np.int64),
            condition_feature=np.array(
                [FEATURE_INDEX[c.feature] for _, c in conditions], dtype=np.int64
            ),
            condition_op=np.array([CONDITION_OPS.index(c.op) for _, c in conditions], np.int64),
            condition_value=np.array([c.value for _, c in conditions], dtype=np.float64),
            suppression=len(self.names) - 1 if self.rules.suppression is not None else -1,
        )

    def masks(self, obs: np.ndarray, customer_ids: np.ndarray | None = None) -> np.ndarray:
        """``(n, n_actions)`` bool: the actions the caps, eligibility and suppression allow.

        Combine with consent (``&``); ``no_action`` is always allowed.

        Args:
            obs: ``(n, 16)`` observed features.
            customer_ids: ``(n,)`` ids, for the suppression list (without: nobody suppressed).
        """
        return self._masks(self.blocked(obs, customer_ids))

    def masks_and_binding(
        self, obs: np.ndarray, allowed: np.ndarray, customer_ids: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`masks` and :meth:`binding` together, evaluating the rules once."""
        blocked = self.blocked(obs, customer_ids)
        return self._masks(blocked), self._binding(blocked, allowed)

    def _masks(self, blocked: np.ndarray) -> np.ndarray:
        if blocked.shape[0] == 0:
            return np.ones((blocked.shape[1], self.table.n_actions), dtype=bool)
        # Customer i loses action a if any rule r blocking i selects a.
        lost = (blocked.T.astype(np.uint8) @ self.selections.astype(np.uint8)) > 0
        return ~lost

    @property
    def labels(self) -> tuple[str, ...]:
        """Every rule's label, in bit order of the codes (:meth:`binding`, :meth:`allocate`)."""
        budgets = tuple(f"budget:{b.name}" for b in self.rules.budgets)
        return (*self.names, *budgets, "min_no_action_share")

    def binding(
        self, obs: np.ndarray, allowed: np.ndarray, customer_ids: np.ndarray | None = None
    ) -> np.ndarray:
        """``(n,)`` uint64 codes: bit ``r`` set where mask rule ``r`` removed an allowed action.

        ``allowed`` is what consent allows; :meth:`describe` turns codes into labels.
        """
        return self._binding(self.blocked(obs, customer_ids), allowed)

    def _binding(self, blocked: np.ndarray, allowed: np.ndarray) -> np.ndarray:
        selects = (allowed.astype(np.uint8) @ self.selections.T.astype(np.uint8)) > 0
        bits = np.left_shift(np.uint64(1), np.arange(blocked.shape[0], dtype=np.uint64))
        return ((blocked & selects.T).T.astype(np.uint64) * bits).sum(axis=1, dtype=np.uint64)

    def describe(self, codes: np.ndarray) -> np.ndarray:
        """``(n,)`` object array of ``;``-joined labels of the bits set in ``codes``."""
        codes = np.asarray(codes, dtype=np.uint64).reshape(-1)
        if codes.size == 0 or int(codes.max()) < 1 << _TABLE_BITS:
            # a text for every code that occurs, looked up: no sort of a million codes
            seen = np.zeros(1 << _TABLE_BITS, dtype=bool)
            seen[codes] = True
            texts = np.empty(seen.size, dtype=object)
            for code in np.flatnonzero(seen).tolist():
                texts[code] = self._text(code)
            return texts[codes]
        unique, inverse = np.unique(codes, return_inverse=True)
        texts = np.array([self._text(int(code)) for code in unique], dtype=object)
        return texts[inverse.reshape(-1)]

    def _text(self, code: int) -> str:
        """The ``;``-joined labels of the bits set in ``code``."""
        return ";".join(label for b, label in enumerate(self.labels) if code >> b & 1)

    def allocate(
        self,
        actions: np.ndarray,
        probabilities: np.ndarray,
        allowed: np.ndarray,
        priority: np.ndarray,
        choose: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None,
        *,
        batch: np.ndarray | None = None,
    ) -> BatchAllocation:
        """Apply the budgets and the no-action share to a batch's chosen actions.

        Each budget keeps its selected messages for the customers of highest ``priority`` (the
        earlier customer first among equals), up to its limit; the others choose again
        (``choose``, default the most probable) from their probabilities over the actions still
        allowed, that budget's messages removed. Budgets are applied in the file's order,
        repeatedly until none is exceeded. Then, if fewer than ``min_no_action_share`` of the
        batch get nothing, the messages of lowest priority become ``no_action``.

        Args:
            actions: ``(n,)`` chosen actions (already within ``allowed``).
            probabilities: ``(n, n_actions)`` the probabilities they were chosen from.
            allowed: ``(n, n_actions)`` bool, consent and mask rules combined.
            priority: ``(n,)`` who keeps a budgeted message first (higher first).
            choose: ``choose(probabilities, rows)`` draws one action per row of ``(k,
                n_actions)`` probabilities (rows sum to 1) for the customers ``rows`` (indices
                into the batch, in priority order); batch scoring draws from each customer's
                own hash.
            batch: Indices of the rows of the arrays that form the batch (default: all), so
                that a caller need not copy them.

        Returns:
            Per customer of the batch: the action, the probability it was chosen with (1 for a
            forced ``no_action``), and the codes of the batch rules that changed the decision
            (bits after the mask rules', see :attr:`labels`).
        """
        rows = np.arange(len(actions)) if batch is None else np.asarray(batch, dtype=np.intp)
        actions = np.asarray(actions)[rows].astype(np.intp, copy=False)  # a copy: indexed
        probabilities = np.asarray(probabilities, dtype=np.float64)
        priority = np.asarray(priority, dtype=np.float64)[rows]
        propensity = _at(probabilities, rows, actions)
        codes = np.zeros(rows.size, dtype=np.uint64)
        first = len(self.names)
        no_action = self.table.no_action
        selections = [budget.selected(self.table) for budget in self.rules.budgets]
        removed = np.zeros(rows.size, dtype=np.uint64)  # bit b: budget b's messages removed
        for _ in range(len(self.rules.budgets) + 1):
            changed = False
            for b, budget in enumerate(self.rules.budgets):
                using = np.flatnonzero(selections[b][actions])
                if budget.max_messages is not None:
                    over = _beyond_top(using, priority, budget.max_messages)
                else:
                    using = _ranked(using, priority)
                    spent = np.cumsum(self.table.cost[actions[using]])
                    over = using[spent > float(budget.max_cost or 0.0) + 1e-12]
                if over.size == 0:
                    continue
                changed = True
                removed[over] |= np.uint64(1 << b)
                still = np.array(np.asarray(allowed)[rows[over]], dtype=bool)
                for other, selected in enumerate(selections):
                    lost = (removed[over] >> np.uint64(other)) & np.uint64(1) > 0
                    still &= ~(lost[:, None] & selected)
                left = np.where(still, probabilities[rows[over]], 0.0)
                total = left.sum(axis=1)
                nothing = total == 0
                left[:, no_action] += nothing  # nothing left: do nothing
                total[nothing] = 1.0  # the sum of that row now
                left /= total[:, None]
                again = np.argmax(left, axis=1) if choose is None else choose(left, over)
                actions[over] = again
                propensity[over] = _at(left, np.arange(over.size), again)
                codes[over] |= np.uint64(1 << (first + b))
            if not changed:
                break
        share = self.rules.min_no_action_share
        if share > 0:
            needed = int(np.ceil(share * rows.size)) - int(np.sum(actions == no_action))
            forced = _lowest(np.flatnonzero(actions != no_action), priority, needed)
            actions[forced] = no_action
            propensity[forced] = 1.0
            codes[forced] |= np.uint64(1 << (first + len(self.rules.budgets)))
        return BatchAllocation(actions, propensity, codes)


def _at(matrix: np.ndarray, rows: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """``matrix[rows, columns]``, through the flat array when it is contiguous (faster)."""
    if not matrix.flags.c_contiguous:
        return matrix[rows, columns]
    return matrix.reshape(-1)[rows * matrix.shape[1] + columns]


def _ranked(rows: np.ndarray, priority: np.ndarray) -> np.ndarray:
    """``rows`` (ascending) from the highest ``priority`` down, the earlier row first on ties."""
    return rows[np.argsort(-priority[rows], kind="stable")]


def _beyond_top(rows: np.ndarray, priority: np.ndarray, k: int) -> np.ndarray:
    """The ``rows`` after the first ``k`` of :func:`_ranked`, in its order, without ranking all.

    A selection (``np.partition``) finds the ``k``-th highest priority; only the rows below it
    are ranked. Rows tied with it keep their places by index, as in the stable ranking.
    """
    values = priority[rows]
    if rows.size <= k:
        return rows[:0]
    if k == 0 or np.isnan(values).any():
        return _ranked(rows, priority)[k:]
    threshold = np.partition(values, rows.size - k)[rows.size - k]
    kept = values > threshold
    ties = np.flatnonzero(values == threshold)
    kept[ties[: k - int(kept.sum())]] = True
    return _ranked(rows[~kept], priority)


def _lowest(rows: np.ndarray, priority: np.ndarray, k: int) -> np.ndarray:
    """The last ``k`` ``rows`` of :func:`_ranked` (in no particular order), without ranking all."""
    values = priority[rows]
    if k <= 0:
        return rows[:0]
    if rows.size <= k:
        return rows
    if np.isnan(values).any():
        return _ranked(rows, priority)[rows.size - k :]
    threshold = np.partition(values, k - 1)[k - 1]
    chosen = values < threshold
    ties = np.flatnonzero(values == threshold)
    # among equals the later row ranks lower, so it gives way first
    chosen[ties[ties.size - (k - int(chosen.sum())) :]] = True
    return rows[chosen]


@dataclass(frozen=True)
class MaskProgram:
    """The mask rules of :class:`CompiledRules` as arrays (:meth:`CompiledRules.program`).

    Rule ``r`` blocks a customer when every condition ``c`` with ``condition_rule[c] == r``
    holds (``feature condition_op value``, the operator a code into :data:`CONDITION_OPS`), or,
    for the suppression rule, when the customer is suppressed; it then removes
    ``selections[r]``. :meth:`CompiledRules.masks` is the definition; a test ties the two.

    Attributes:
        selections: ``(n_rules, n_actions)`` bool.
        condition_rule: ``(n_conditions,)`` the rule of each condition.
        condition_feature: ``(n_conditions,)`` feature index.
        condition_op: ``(n_conditions,)`` operator code.
        condition_value: ``(n_conditions,)`` float64.
        suppression: Row of the suppression rule, or -1.
    """

    selections: np.ndarray
    condition_rule: np.ndarray
    condition_feature: np.ndarray
    condition_op: np.ndarray
    condition_value: np.ndarray
    suppression: int


@dataclass(frozen=True)
class BatchAllocation:
    """The batch rules' result: ``(n,)`` actions, propensities and rule codes."""

    actions: np.ndarray
    propensities: np.ndarray
    codes: np.ndarray


def compile_rules(
    rules: BusinessRules, table: ActionTable, source: str | Path = "<rules>"
) -> CompiledRules:
    """Bind ``rules`` to a catalog (and read the suppression file).

    Raises:
        ConfigError: Naming ``source`` and the rule, for an action the catalog lacks or an
            unreadable suppression file.
    """
    source = str(source)
    selections, names = [], []
    sections = (
        ("caps", rules.caps),
        ("eligibility", rules.eligibility),
        ("budgets", rules.budgets),
    )
    for section, items in sections:
        for index, rule in enumerate(items):
            try:
                selected = rule.selected(table)
            except ValueError as exc:
                raise ConfigError(f"{source}: {section}.{index}: {exc}") from None
            if section == "budgets":
                continue
            selections.append(selected)
            names.append(rule.name if section == "caps" else f"eligibility:{rule.name}")
    suppressed: set[str] = set()
    if rules.suppression is not None:
        selections.append(table.is_contact > 0)
        names.append("suppression")
        suppressed.update(rules.suppression.customer_ids)
        if rules.suppression.file is not None:
            suppressed.update(_read_ids(rules.suppression.file, source))
    matrix = np.stack(selections) if selections else np.zeros((0, table.n_actions), dtype=bool)
    return CompiledRules(rules, table, tuple(names), matrix, frozenset(suppressed), source)


def _read_ids(file: Path, source: str) -> list[str]:
    """The ``customer_id`` column (or the first column) of a suppression CSV."""
    path = file if file.is_absolute() or source == "<rules>" else Path(source).parent / file
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.reader(handle)
            header = next(reader, None)
            if header is None:
                return []
            column = header.index("customer_id") if "customer_id" in header else 0
            ids = [] if "customer_id" in header else [header[0]]
            for line, row in enumerate(reader, start=2):
                if len(row) <= column or not row[column].strip():
                    raise ConfigError(f"{path}: line {line}: no customer id")
                ids.append(row[column].strip())
            return ids
    except OSError as exc:
        raise ConfigError(
            f"{source}: suppression.file: cannot read {path} ({exc.strerror})"
        ) from None


def load_rules(path: str | Path, table: ActionTable | None = None) -> CompiledRules:
    """Read, validate and compile a rules file (YAML or JSON).

    Args:
        path: The rules file.
        table: The catalog the rules apply to (default: the strategy catalog).

    Raises:
        ConfigError: Naming the file, the field and the problem.
    """
    from rec_env.catalog import load_catalog

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such rules file")
    rules = load_model(path, BusinessRules)
    table = table if table is not None else ActionTable.from_catalog(load_catalog("strategy"))
    return compile_rules(rules, table, path)
