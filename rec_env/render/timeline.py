"""What the picture of a customer remembers: each cycle's message and what came of it.

Pure data (numpy only): the env records a :class:`CycleRecord` per step while it renders, and
:mod:`rec_env.render.figure` draws the records.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["ActionGlyph", "CustomerTimeline", "CycleRecord", "action_glyphs"]


@dataclass(frozen=True)
class ActionGlyph:
    """How the picture shows one action.

    Attributes:
        channel: ``"email"``, ``"sms"``, ``"push"`` or ``"none"`` (no message).
        kind: Kind of offer, which picks the colour: ``"none"``, ``"discount"``,
            ``"free_shipping"``, ``"recommendation"`` or ``"product"`` (the item worlds).
        label: Short text inside the message's cell, e.g. ``"15%"`` or ``"P0014"``.
    """

    channel: str
    kind: str
    label: str


def action_glyphs(actions: Any) -> tuple[ActionGlyph, ...]:
    """The glyph of every action of a strategy ``ActionTable`` or an ``ItemActionTable``."""
    glyphs = []
    for a, (name, channel) in enumerate(zip(actions.names, actions.channel_names, strict=True)):
        if channel == "none":
            glyphs.append(ActionGlyph("none", "none", ""))
        elif hasattr(actions, "product"):  # item world: "<product id>:<channel>[:<pct>off]"
            glyphs.append(ActionGlyph(channel, "product", name.split(":")[0]))
        else:
            kind = str(actions.offers[a])
            discount = f"{float(actions.discount[a]):.0%}"
            label = {"discount": discount, "free_shipping": "ship"}.get(kind, "reco")
            glyphs.append(ActionGlyph(channel, kind, label))
    return tuple(glyphs)


@dataclass(frozen=True)
class CycleRecord:
    """One cycle of one customer: the action and its outcome (the env's ``info`` fields).

    Attributes:
        action: Name of the action.
        glyph: How the picture shows it.
        reward: The step's reward (unit of the env's ``reward_mode``).
        profit: Profit of the cycle, USD.
        revenue: Revenue of the cycle, USD.
        delivered: The message reached the customer (consent on its channel).
        opened: The customer opened it.
        purchased: The customer bought in the cycle (with or without the message).
        unsubscribed: The message made the customer unsubscribe from its channel.
        churned: The customer lapsed for good at the end of the cycle.
    """

    action: str
    glyph: ActionGlyph
    reward: float
    profit: float
    revenue: float
    delivered: bool
    opened: bool
    purchased: bool
    unsubscribed: bool
    churned: bool


class CustomerTimeline:
    """The cycles of the current customer, oldest first.

    Args:
        horizon: Cycles in an episode; the picture's time axis spans them.
    """

    def __init__(self, horizon: int) -> None:
        self.horizon = int(horizon)
        self._cycles: list[CycleRecord] = []
        # Steps are kept as given and turned into records when drawn: SB3's make_vec_env makes
        # every env with render_mode="rgb_array", and most of those steps are never drawn.
        self._pending: list[tuple[str, ActionGlyph, Mapping[str, float]]] = []

    @property
    def cycles(self) -> list[CycleRecord]:
        """Every cycle so far, oldest first."""
        if self._pending:
            self._cycles.extend(_cycle_record(*step) for step in self._pending)
            self._pending.clear()
        return self._cycles

    def clear(self) -> None:
        """Forget every cycle (a new customer)."""
        self._cycles.clear()
        self._pending.clear()

    def record(self, action: str, glyph: ActionGlyph, outcome: Mapping[str, float]) -> None:
        """Add a cycle from its action and the step's ``reward`` and ``info`` fields.

        ``outcome`` is kept, not copied: pass a mapping that is not changed afterwards.
        """
        self._pending.append((action, glyph, outcome))

    def cumulative_profit(self) -> np.ndarray:
        """``(n_cycles + 1,)`` profit so far after each cycle, USD, starting at 0."""
        return np.concatenate([[0.0], np.cumsum([c.profit for c in self.cycles])])

    def __len__(self) -> int:
        return len(self._cycles) + len(self._pending)


def _cycle_record(action: str, glyph: ActionGlyph, outcome: Mapping[str, float]) -> CycleRecord:
    flags = ("delivered", "opened", "purchased", "unsubscribed", "churned")
    return CycleRecord(
        action=action,
        glyph=glyph,
        reward=float(outcome.get("reward", 0.0)),
        profit=float(outcome.get("profit", 0.0)),
        revenue=float(outcome.get("revenue", 0.0)),
        **{flag: float(outcome.get(flag, 0.0)) > 0.5 for flag in flags},
    )
