"""``EnvSettings``: what a simulated world is, as one small frozen value.

Every adapter over the customer model (the Gymnasium env, the vector envs, the evaluator,
training, run directories) takes an :class:`EnvSettings` instead of loose keyword dicts, and a
run directory stores it in ``run.json``, so that it says exactly what it was trained on.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from typing import TYPE_CHECKING, Any

from rec_env.dynamics import REWARD_MODES

if TYPE_CHECKING:  # pragma: no cover
    from rec_env.dynamics import CustomerModel
    from rec_env.item_dynamics import ItemModel

__all__ = ["DEFAULT_CYCLE_DAYS", "DEFAULT_HORIZON", "WORLDS", "EnvSettings"]

WORLDS: tuple[str, ...] = ("strategy", "item", "slate")
"""What an action is: an offer × channel, one product × channel, or a slate of products."""

_ITEM_FIELDS = ("products", "slate_size", "choice_model", "offers")

DEFAULT_HORIZON = 52
"""Cycles per customer before truncation: a year of weekly campaigns."""

DEFAULT_CYCLE_DAYS = 7.0
"""Days per campaign cycle."""


@dataclass(frozen=True)
class EnvSettings:
    """The settings of one simulated world.

    Attributes:
        profile: Population name (``recenv profiles list``) or YAML path.
        reward_mode: ``"profit"``, ``"conversion"`` or ``"rule"``.
        catalog: Action catalog name or YAML path.
        horizon: Cycles per customer before truncation.
        cycle_days: Days per cycle.
        world: ``"strategy"`` (offer × channel actions), ``"item"`` (one product × channel
            per message) or ``"slate"`` (``slate_size`` products per message).
        products: Product table name or path (item and slate worlds).
        slate_size: Products per message in the slate world (1 in the item world).
        choice_model: ``"mnl"`` or ``"cascade"``: how a customer picks from a slate.
        offers: Discount levels a product message may carry (0: none).
        purchase_days: Organic purchases at day resolution: a cycle may hold one on each of its
            days (strategy world; default: at most one purchase a cycle).
        customers: A twins file (:meth:`rec_env.fitting.twins.Twins.save`, ``recenv profiles
            twins``): every new customer is the twin of one of a retailer's own customers
            instead of a draw from the population (strategy world; ``profile`` must be the
            twins' population).
        rules: A business rules file (:mod:`rec_env.rules`): its caps, eligibility and
            suppression mask actions in training as in scoring and serving (strategy world).

    Raises:
        ValueError: If a value is out of range; the message names the field.
    """

    profile: str = "default"
    reward_mode: str = "profit"
    catalog: str = "strategy"
    horizon: int = DEFAULT_HORIZON
    cycle_days: float = DEFAULT_CYCLE_DAYS
    world: str = "strategy"
    products: str = "default"
    slate_size: int = 4
    choice_model: str = "mnl"
    offers: tuple[float, ...] = (0.0,)
    purchase_days: bool = False
    customers: str | None = None
    rules: str | None = None

    def __post_init__(self) -> None:
        # Paths are kept as strings so that settings hash, compare and serialise the same way.
        object.__setattr__(self, "profile", str(self.profile))
        object.__setattr__(self, "catalog", str(self.catalog))
        if self.reward_mode not in REWARD_MODES:
            raise ValueError(
                f"reward_mode must be one of {', '.join(REWARD_MODES)}, got {self.reward_mode!r}"
            )
        if isinstance(self.horizon, bool) or int(self.horizon) != self.horizon:
            raise ValueError(f"horizon must be a whole number, got {self.horizon!r}")
        object.__setattr__(self, "horizon", int(self.horizon))
        if self.horizon < 1:
            raise ValueError(f"horizon must be at least 1, got {self.horizon}")
        object.__setattr__(self, "cycle_days", float(self.cycle_days))
        if not 1.0 <= self.cycle_days <= 90.0:
            raise ValueError(f"cycle_days must be between 1 and 90, got {self.cycle_days}")
        self._check_item_fields()

    def _check_item_fields(self) -> None:
        if self.world not in WORLDS:
            raise ValueError(f"world must be one of {', '.join(WORLDS)}, got {self.world!r}")
        object.__setattr__(self, "products", str(self.products))
        if isinstance(self.slate_size, bool) or int(self.slate_size) != self.slate_size:
            raise ValueError(f"slate_size must be a whole number, got {self.slate_size!r}")
        object.__setattr__(self, "slate_size", int(self.slate_size))
        if not 1 <= self.slate_size <= 20:
            raise ValueError(f"slate_size must be between 1 and 20, got {self.slate_size}")
        if self.choice_model not in ("mnl", "cascade"):
            raise ValueError(f"choice_model must be 'mnl' or 'cascade', got {self.choice_model!r}")
        offers = tuple(float(o) for o in self.offers)
        if not offers or any(not 0.0 <= o < 1.0 for o in offers) or len(set(offers)) < len(offers):
            raise ValueError(f"offers must be distinct discounts in [0, 1), got {self.offers!r}")
        object.__setattr__(self, "offers", offers)
        if self.world != "strategy" and self.reward_mode == "rule":
            raise ValueError("reward_mode 'rule' is the strategy world's; use profit or conversion")
        if not isinstance(self.purchase_days, bool):
            raise ValueError(f"purchase_days must be true or false, got {self.purchase_days!r}")
        if self.purchase_days and self.world != "strategy":
            raise ValueError("purchase_days is the strategy world's (item worlds buy per product)")
        if self.customers is not None:
            object.__setattr__(self, "customers", str(self.customers))
            if self.world != "strategy":
                raise ValueError("customers (twins) are the strategy world's")
        if self.rules is not None:
            object.__setattr__(self, "rules", str(self.rules))
            if self.world != "strategy":
                raise ValueError("rules are the strategy world's (item actions have no rules yet)")

    @property
    def k(self) -> int:
        """Products per message: ``slate_size`` in the slate world, else 1."""
        return self.slate_size if self.world == "slate" else 1

    @classmethod
    def from_dict(cls, values: Mapping[str, Any] | None) -> EnvSettings:
        """Settings from a mapping such as ``run.json``'s ``env``; unknown keys are an error.

        Raises:
            ValueError: For an unknown key or an invalid value.
        """
        values = dict(values or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(
                f"unknown environment setting(s) {', '.join(unknown)}; "
                f"known: {', '.join(sorted(known))}"
            )
        return cls(**values)

    @classmethod
    def coerce(cls, settings: EnvSettings | Mapping[str, Any] | None) -> EnvSettings:
        """``settings`` itself, or settings from a mapping (``None`` gives the defaults)."""
        if isinstance(settings, EnvSettings):
            return settings
        return cls.from_dict(settings)

    def to_dict(self) -> dict[str, Any]:
        """The settings as JSON-serialisable values (the strategy world omits item fields)."""
        data = asdict(self)
        data["offers"] = list(self.offers)
        if self.world == "strategy":
            for name in ("world", *_ITEM_FIELDS):
                data.pop(name)
        if not self.purchase_days:  # the default; runs written before it existed match
            data.pop("purchase_days")
        for name in ("customers", "rules"):
            if getattr(self, name) is None:
                data.pop(name)
        return data

    def replace(self, **changes: Any) -> EnvSettings:
        """A copy with some fields changed (validated again)."""
        return replace(self, **changes)

    def build_model(self) -> CustomerModel | ItemModel:
        """The batched customer model of these settings (loads population, catalog, products).

        Raises:
            rec_env.errors.ConfigError: If a population, catalog or product file is missing or
                invalid.
        """
        from rec_env.env import build_model

        if self.world == "strategy":
            model = build_model(
                self.profile,
                self.reward_mode,  # type: ignore[arg-type]
                self.catalog,
                self.cycle_days,
                self.purchase_days,
            )
            if self.customers is not None:
                from rec_env.autoreset import check_customers
                from rec_env.errors import ConfigError
                from rec_env.fitting.twins import load_twins

                try:
                    model.customers = check_customers(load_twins(self.customers), model)
                except ValueError as exc:
                    raise ConfigError(f"customers: {exc}") from None
            if self.rules is not None:
                from rec_env.rules import load_rules

                model.rules = load_rules(self.rules, model.actions)
            return model
        from rec_env.item_env import build_item_model

        return build_item_model(self)
