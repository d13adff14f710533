"""Action catalogs: what the retailer can send, as data.

A catalog is a YAML file listing actions. Each action has a name, an offer, a value, a channel
and a cost. :class:`ActionTable` compiles a catalog into the numpy arrays the customer model
uses, so the dynamics never branch on action names.

Offers:

* ``none``: no message (the channel must be ``none``).
* ``discount``: ``value`` is the discount rate (0.15 = 15 % off every purchase in the cycle).
* ``free_shipping``: ``value`` is the shipping cost in USD the retailer absorbs per purchase.
* ``recommendation``: a personalised product recommendation; ``value`` is unused (0).

New offer kinds (for example catalog items) add a field to :class:`ActionSpec` and a column to
:class:`ActionTable`; the customer model reads columns, not names.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from rec_env.config import load_model, resolve_data_file
from rec_env.errors import ConfigError
from rec_env.features import (
    CHANNELS,
    CONSENT_FEATURES,
    FEATURE_NAMES,
    consent_columns,
    consent_masks,
)

__all__ = [
    "ActionSpec",
    "ActionTable",
    "Catalog",
    "ConfigError",
    "consent_columns",
    "consent_masks",
    "load_catalog",
]


Offer = Literal["none", "discount", "free_shipping", "recommendation"]
Channel = Literal["none", "email", "sms", "push"]


class ActionSpec(BaseModel):
    """One action of the catalog."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$", description="Unique snake_case name.")
    offer: Offer
    value: float = Field(0.0, ge=0.0, description="Discount rate, or shipping cost in USD.")
    channel: Channel
    cost: float = Field(0.0, ge=0.0, le=10.0, description="Cost per delivered message, USD.")
    label: str | None = Field(None, description="Human-readable label, e.g. '15% off · e-mail'.")

    @model_validator(mode="after")
    def _check_consistency(self) -> ActionSpec:
        if (self.offer == "none") != (self.channel == "none"):
            raise ValueError("offer 'none' goes with channel 'none' and only with it")
        if self.offer == "discount" and not 0.0 < self.value < 1.0:
            raise ValueError("a discount's value is a rate strictly between 0 and 1")
        if self.offer == "none" and self.cost != 0.0:
            raise ValueError("no_action cannot have a cost")
        return self


class Catalog(BaseModel):
    """An action catalog and the retailer economics it is priced against."""

    model_config = ConfigDict(extra="forbid")

    name: str
    description: str = ""
    gross_margin: float = Field(
        0.40, gt=0.0, lt=1.0, description="Gross margin rate on full-price revenue."
    )
    actions: list[ActionSpec] = Field(min_length=1)

    @model_validator(mode="after")
    def _check_actions(self) -> Catalog:
        names = [a.name for a in self.actions]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"duplicate action names: {', '.join(duplicates)}")
        if not any(a.offer == "none" for a in self.actions):
            raise ValueError("the catalog needs one action with offer 'none' (doing nothing)")
        return self


@dataclass(frozen=True)
class ActionTable:
    """A catalog compiled to arrays, one entry per action (shape ``(n_actions,)``).

    Attributes:
        names: Action names.
        channel: Channel index into :data:`rec_env.features.CHANNELS`; ``len(CHANNELS)`` means
            no channel (a padding column of zeros in per-channel customer arrays).
        is_contact: 1.0 where the action sends a message.
        discount: Discount rate applied to purchases in the cycle.
        shipping: Shipping subsidy in USD per purchase in the cycle.
        recommendation: 1.0 for recommendation offers.
        cost: Cost per delivered message, USD.
        gross_margin: Gross margin rate on full-price revenue.
        no_action: Index of the do-nothing action.
    """

    names: tuple[str, ...]
    offers: tuple[str, ...]
    channel_names: tuple[str, ...]
    channel: np.ndarray
    is_contact: np.ndarray
    discount: np.ndarray
    shipping: np.ndarray
    recommendation: np.ndarray
    cost: np.ndarray
    gross_margin: float
    no_action: int

    @classmethod
    def from_catalog(cls, catalog: Catalog) -> ActionTable:
        """Compile a validated catalog."""
        actions = catalog.actions
        no_channel = len(CHANNELS)
        channel = np.array(
            [CHANNELS.index(a.channel) if a.channel != "none" else no_channel for a in actions],
            dtype=np.intp,
        )
        return cls(
            names=tuple(a.name for a in actions),
            offers=tuple(a.offer for a in actions),
            channel_names=tuple(a.channel for a in actions),
            channel=channel,
            is_contact=(channel != no_channel).astype(np.float64),
            discount=np.array([a.value if a.offer == "discount" else 0.0 for a in actions]),
            shipping=np.array([a.value if a.offer == "free_shipping" else 0.0 for a in actions]),
            recommendation=np.array([float(a.offer == "recommendation") for a in actions]),
            cost=np.array([a.cost for a in actions]),
            gross_margin=catalog.gross_margin,
            no_action=next(i for i, a in enumerate(actions) if a.offer == "none"),
        )

    @property
    def n_actions(self) -> int:
        """Number of actions."""
        return len(self.names)

    def consent_masks(
        self, obs: np.ndarray, feature_names: tuple[str, ...] | None = None
    ) -> np.ndarray:
        """``(n, n_actions)`` bool: False where an action's channel has no consent in ``obs``.

        The mask depends only on the consent features (``consent_email``, ``consent_sms``,
        ``consent_push``) of the observations; it is the env's ``action_masks()`` for a
        customer seen from outside the simulator (a JSON file, an API request).

        Args:
            obs: ``(n, n_features)`` observations (one customer may be 1-D).
            feature_names: The columns of ``obs``; :data:`rec_env.features.FEATURE_NAMES` by
                default.

        Raises:
            ValueError: If ``feature_names`` lacks a consent feature.
        """
        obs = np.atleast_2d(np.asarray(obs))
        columns = consent_columns(feature_names or FEATURE_NAMES)
        if columns is None:
            raise ValueError(f"the features lack one of {', '.join(CONSENT_FEATURES)}")
        return consent_masks(obs[:, columns], self.channel)

    def index(self, name: str) -> int:
        """Index of the action called ``name``.

        Raises:
            KeyError: With the list of valid names if there is no such action.
        """
        try:
            return self.names.index(name)
        except ValueError:
            raise KeyError(
                f"unknown action {name!r}; valid actions: {', '.join(self.names)}"
            ) from None


def load_catalog(catalog: str | Path | Catalog = "strategy") -> Catalog:
    """Load an action catalog by shipped name (``"strategy"``) or from a YAML path.

    Raises:
        ConfigError: If the file is missing or invalid; the message names file, field and problem.
    """
    if isinstance(catalog, Catalog):
        return catalog
    path = resolve_data_file(catalog, "rec_env.catalogs", (".yaml", ".yml"))
    return load_model(path, Catalog)
