r"""The 16 observed features of real customers, computed from their orders, messages and visits.

``recenv features`` and :func:`build_features` read a retailer's logs and give each customer the
features the simulator observes (:func:`features_from_history`: one customer's history as
JSON-like data, :mod:`rec_env.fitting.history`), **by the simulator's own definitions**: the
history is cut into cycles of ``cycle_days`` ending on ``as_of``, every customer starts from
:data:`~rec_env.features.HISTORY_START` (nothing bought, seen or sent) and each cycle applies
the functions the simulator's step applies (:func:`rec_env._kernels.record_order`,
:func:`~rec_env._kernels.record_message`, :func:`~rec_env._kernels.advance_cycle`), through
:func:`rec_env._kernels.history_kernel`. A test builds the features from a log the simulator
wrote and finds the simulator's own observation.

What each feature reads:

==========================  ==========================================================
``frequency``               orders, exponentially weighted by age (365-day constant)
``monetary_value``          order values (``amount`` + ``discount``: the list value),
                            the first order sets it, each later one moves it 30 %
``last_purchase_days``      days from the last order to ``as_of``
``recency``                 days from the last order, visit, or opened message
``engagement_score``        rises with visits, opens and orders, decays in quiet cycles
                            and loses ``irritation`` per ignored message
``email_opens`` …           each delivered message moves its channel's rate 10 % towards
                            opened (1) or not (0)
``days_since_contact``      days from the last delivered message
``contacts_last_30d``       messages delivered in the last ``round(30 / cycle_days)`` cycles
``discounts_last_90d``      discount offers among them, last ``round(90 / cycle_days)``
``consent_*``               the latest consent event per channel (an unsubscribe in the
                            contact log is one); none: no consent, nothing is sent
``discount_sensitive`` …    the CRM's tags table; none: 0 (not tagged)
==========================  ==========================================================

The three day counts are exact days from the event dates (the simulator's events fall on
cycle ends, where exact days and cycles agree); the rest move cycle by cycle, so events within a
cycle count as if on its last day.

**One hidden input.** In the simulator an ignored message erodes engagement by the customer's
own ``irritation``, a hidden parameter. The builder uses the given value (a twin's posterior,
or the simulated customers' own in the test), by default the population's mean
(:func:`mean_irritation`); with the mean, ``engagement_score`` is approximate for customers who
ignored messages, and every other feature is exact.

**Products** (``products=``, ``recenv features --products``): the item world's three features
per product category (:mod:`rec_env.fitting.item_builder`), from the orders' ``product_id``
(one row per order line; lines sharing an ``order_id`` are one order) and the contacts'
``products`` (the ids a message showed, separated by ``|``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from rec_env.errors import ConfigError
from rec_env.features import CHANNELS, FEATURE_HIGH, FEATURE_INDEX, FEATURE_NAMES, HISTORY_START

if TYPE_CHECKING:
    from rec_env.fitting.history import CustomerHistory
    from rec_env.products import ProductTable

__all__ = [
    "TABLES",
    "BuiltFeatures",
    "CustomerEvents",
    "build_features",
    "features_from_history",
    "history_problems",
    "mean_irritation",
    "parse_day",
    "population_mean",
    "read_events",
]

_EPOCH = np.datetime64("1970-01-01", "D")

TABLES: dict[str, dict[str, tuple[str, bool]]] = {
    "orders": {
        "customer_id": ("customer_id", True),
        "time": ("time", True),
        "amount": ("amount", True),
        "discount": ("discount", False),
        "order_id": ("order_id", False),
        "product_id": ("product_id", False),
    },
    "contacts": {
        "customer_id": ("customer_id", True),
        "time": ("time", True),
        "channel": ("channel", True),
        "offer": ("offer", False),
        "delivered": ("delivered", False),
        "opened": ("opened", False),
        "clicked": ("clicked", False),
        "unsubscribed": ("unsubscribed", False),
        "products": ("products", False),
    },
    "visits": {"customer_id": ("customer_id", True), "time": ("time", True)},
    "consents": {
        "customer_id": ("customer_id", True),
        "time": ("time", True),
        "channel": ("channel", True),
        "consent": ("consent", True),
    },
    "tags": {
        "customer_id": ("customer_id", True),
        "discount_sensitive": ("discount_sensitive", False),
        "free_shipping_preferred": ("free_shipping_preferred", False),
    },
}
"""Each input table's fields: ``field: (default column name, required)``.

Orders: ``amount`` paid and, optionally, the ``discount`` given (currency); rows sharing an
``order_id`` are the lines of one order (their amounts add up); ``product_id`` (read with a
product table) names each line's product. Contacts: one row per message, ``channel`` one of
e-mail/SMS/push, ``offer`` text (a discount offer when it contains "discount"), flags 0/1
(``delivered`` defaults to 1, an ``opened`` or ``clicked`` 1 is a response), ``products`` (read
with a product table) the ids shown, separated by ``|``. Consents: ``consent`` 0/1 from
``time`` on.
"""


@dataclass(frozen=True)
class _Table:
    """One table's parsed columns (days since 1970-01-01 for times)."""

    customer: np.ndarray
    day: np.ndarray
    columns: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass(frozen=True)
class CustomerEvents:
    """A retailer's event logs as arrays, as :func:`read_events` returns them.

    Attributes:
        orders: ``customer``, ``day``, ``value`` (list value: amount + discount).
        contacts: ``customer``, ``day``, ``channel`` (index into CHANNELS), ``opened``,
            ``discount``, ``unsubscribed``; delivered messages only.
        visits: ``customer``, ``day``.
        consents: ``customer``, ``day``, ``channel``, ``consent``.
        tags: ``customer``, ``discount_sensitive``, ``free_shipping_preferred``.
        bought: ``customer``, ``day``, ``category``: one row per order line (with products).
        shown: ``customer``, ``day``, ``category``: one row per product shown in a delivered
            message (with products).
        category_names: The product table's categories (empty: no product table).
    """

    orders: _Table
    contacts: _Table | None = None
    visits: _Table | None = None
    consents: _Table | None = None
    tags: _Table | None = None
    bought: _Table | None = None
    shown: _Table | None = None
    category_names: tuple[str, ...] = ()


@dataclass(frozen=True)
class BuiltFeatures:
    """Customers' observed features and where they came from.

    Attributes:
        customer_ids: ``(n,)`` ids, sorted.
        observations: ``(n, len(names))`` float64 in ``names`` order.
        defaulted: Feature name → customers for whom it came from no data (consent with no
            consent event, tags with no tags row).
        as_of: The last day of the history (days since 1970-01-01).
        ignored_after: Events after ``as_of`` that were left out, by table.
        names: The features: :data:`~rec_env.features.FEATURE_NAMES`, and with a product
            table those of :func:`rec_env.item_features.item_features`.
    """

    customer_ids: np.ndarray
    observations: np.ndarray
    defaulted: dict[str, int]
    as_of: int
    ignored_after: dict[str, int]
    names: tuple[str, ...] = FEATURE_NAMES

    def to_columns(self) -> dict[str, np.ndarray]:
        """``customer_id`` and one column per feature."""
        columns: dict[str, np.ndarray] = {"customer_id": self.customer_ids}
        for j, name in enumerate(self.names):
            columns[name] = self.observations[:, j]
        return columns


# How the logs' columns become events (both for files and for a JSON history).
def _list_value(amount: np.ndarray, discount: np.ndarray) -> np.ndarray:
    """An order's list value: the amount paid plus the discount given."""
    return amount + discount


def _responded(opened: np.ndarray, clicked: np.ndarray) -> np.ndarray:
    """A message got a response when it was opened or clicked."""
    return np.maximum(opened, clicked)


def _discount_offer(offer: np.ndarray) -> np.ndarray:
    """An offer is a discount when its name contains "discount" (any case)."""
    return np.char.find(np.char.lower(offer.astype(np.str_)), "discount") >= 0


# ---------------------------------------------------------------------------- parsing
def parse_day(value: str | int | np.datetime64) -> int:
    """A date (``2024-06-30``, a date-time, or days since 1970-01-01) as days since 1970-01-01.

    Raises:
        ValueError: If it is not a date.
    """
    if isinstance(value, (int, np.integer)):
        return int(value)
    try:
        return int((np.datetime64(str(value).strip()[:10], "D") - _EPOCH).astype(np.int64))
    except ValueError:
        raise ValueError(f"not a date (YYYY-MM-DD): {value!r}") from None


def _days(values: np.ndarray, where: Any, column: str) -> np.ndarray:
    """Dates or date-times (ISO 8601) as int64 days; errors name the row."""
    text = np.char.strip(values.astype(np.str_))
    try:
        return (text.astype("U10").astype("datetime64[D]") - _EPOCH).astype(np.int64)
    except ValueError:
        for k, cell in enumerate(text):
            try:
                np.datetime64(str(cell)[:10], "D")
            except ValueError:
                raise ConfigError(
                    f"{where.cell(k, column)}: not a date (YYYY-MM-DD[ HH:MM:SS]): {str(cell)!r}"
                ) from None
        raise  # pragma: no cover


def _numbers(values: np.ndarray, where: Any, column: str, flag: bool = False) -> np.ndarray:
    """Finite, non-negative numbers (0/1 with ``flag``); errors name the row."""
    if values.dtype.kind in "iuf":
        numbers = values.astype(np.float64)
        bad = ~np.isfinite(numbers)
    else:
        text = np.char.strip(values.astype(np.str_))
        numbers = np.full(text.shape, np.nan)
        bad = np.zeros(text.shape, dtype=bool)
        for k, cell in enumerate(text):
            try:
                numbers[k] = float(cell)
            except ValueError:
                bad[k] = True
        bad |= ~np.isfinite(numbers)
    problem = "not a number"
    if not bad.any():
        bad = numbers < 0
        problem = "negative"
        if flag and not bad.any():
            bad = (numbers != 0) & (numbers != 1)
            problem = "not 0 or 1"
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        raise ConfigError(f"{where.cell(k, column)}: {problem}: {str(values[k])!r}")
    return numbers


def _channels(values: np.ndarray, where: Any, column: str) -> np.ndarray:
    text = np.char.lower(np.char.strip(values.astype(np.str_)))
    text = np.where(text == "e-mail", "email", text)
    index = np.full(text.shape, -1, dtype=np.int64)
    for c, name in enumerate(CHANNELS):
        index[text == name] = c
    if (index < 0).any():
        k = int(np.flatnonzero(index < 0)[0])
        raise ConfigError(
            f"{where.cell(k, column)}: unknown channel {str(values[k])!r} "
            f"(expected one of {', '.join(CHANNELS)})"
        )
    return index


def _customers(values: np.ndarray, where: Any, column: str, what: str = "customer") -> np.ndarray:
    text = np.char.strip(values.astype(np.str_))
    empty = text == ""
    if empty.any():
        k = int(np.flatnonzero(empty)[0])
        raise ConfigError(f"{where.cell(k, column)}: missing {what} id")
    return text


def _orders_of_lines(
    customer: np.ndarray, day: np.ndarray, value: np.ndarray, order_id: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One row per order from order lines: values summed, dated by the earliest line.

    Orders keep the file's order (of their first lines), as orders of one day are applied in it.
    """
    key = np.char.add(np.char.add(customer, "\x00"), order_id)
    _, first, group = np.unique(key, return_index=True, return_inverse=True)
    by_first = np.argsort(first, kind="stable")
    rank = np.empty_like(by_first)
    rank[by_first] = np.arange(len(by_first))
    first, group = first[by_first], rank[group]
    order_day = np.full(len(first), np.iinfo(np.int64).max)
    np.minimum.at(order_day, group, day)
    return customer[first], order_day, np.bincount(group, weights=value, minlength=len(first))


def _read(
    path: Path, table: str, columns: dict[str, str], needed: tuple[str, ...] = ()
) -> tuple[dict[str, np.ndarray], Any]:
    """The mapped columns of one table (optional ones, except ``needed``, if the file has them)."""
    from rec_env.datasets.table_io import read_columns, read_header

    if not path.is_file():
        raise ConfigError(f"{path}: file not found ({table})")
    header = read_header(path)
    wanted = {}
    for name, (default, required) in TABLES[table].items():
        column = columns.get(name, default)
        if column in header:
            wanted[name] = column
        elif required or name in needed:
            raise ConfigError(
                f"{path}: the {table} table has no column {column!r} ({name}); it has "
                f"{', '.join(header)}. Map it with --column {table}.{name}=<column>"
            )
    values, where = read_columns(path, list(wanted.values()))
    if not len(values[wanted["customer_id"]]):
        raise ConfigError(f"{path}: the {table} table has no rows")
    return {name: values[column] for name, column in wanted.items()}, _Named(where, wanted)


@dataclass(frozen=True)
class _Named:
    """A :class:`~rec_env.datasets.encoding.Location` that names cells by their file column."""

    where: Any
    columns: dict[str, str]

    def cell(self, index: int, name: str) -> str:
        return self.where.cell(index, self.columns.get(name, name))


def read_events(
    orders: str | Path,
    contacts: str | Path | None = None,
    visits: str | Path | None = None,
    consents: str | Path | None = None,
    tags: str | Path | None = None,
    columns: dict[str, dict[str, str]] | None = None,
    products: str | Path | ProductTable | None = None,
) -> CustomerEvents:
    """Read and validate the event tables (CSV, gzip CSV or Parquet).

    Args:
        orders: The order log.
        contacts: The contact log (messages sent).
        visits: Site or app visits.
        consents: Consent changes.
        tags: CRM tags per customer.
        columns: ``{table: {field: column}}`` where a file's column names differ from
            :data:`TABLES`.
        products: A product table (shipped name, path or table, as the item env's
            ``products`` setting): the orders' ``product_id`` and the contacts' ``products``
            columns are then required, and give the per-category features.

    Raises:
        ConfigError: Naming the file, the row and the column of the first bad cell (an
            unknown product id included), or a missing file or column.
    """
    columns = columns or {}
    unknown = [
        f"{t}.{f}" for t, fields in columns.items() for f in fields if f not in TABLES.get(t, {})
    ]
    if unknown:
        raise ConfigError(f"unknown column mapping {unknown[0]} (tables and fields: see TABLES)")
    catalog = None
    if products is not None:
        from rec_env.products import load_products

        catalog = load_products(products)
    order_table, bought = _read_orders(Path(orders), columns.get("orders", {}), catalog)
    contact_table = visit_table = consent_table = tag_table = shown = None
    if contacts is not None:
        contact_table, shown = _read_contacts(Path(contacts), columns.get("contacts", {}), catalog)
    if visits is not None:
        raw, where = _read(Path(visits), "visits", columns.get("visits", {}))
        visit_table = _Table(
            _customers(raw["customer_id"], where, "customer_id"), _days(raw["time"], where, "time")
        )
    if consents is not None:
        raw, where = _read(Path(consents), "consents", columns.get("consents", {}))
        consent_table = _Table(
            _customers(raw["customer_id"], where, "customer_id"),
            _days(raw["time"], where, "time"),
            {
                "channel": _channels(raw["channel"], where, "channel"),
                "consent": _numbers(raw["consent"], where, "consent", flag=True),
            },
        )
    if tags is not None:
        raw, where = _read(Path(tags), "tags", columns.get("tags", {}))
        n = len(raw["customer_id"])
        tag_table = _Table(
            _customers(raw["customer_id"], where, "customer_id"),
            np.zeros(n, dtype=np.int64),
            {
                name: _numbers(raw[name], where, name, flag=True)
                for name in ("discount_sensitive", "free_shipping_preferred")
                if name in raw
            },
        )
    return CustomerEvents(
        order_table,
        contact_table,
        visit_table,
        consent_table,
        tag_table,
        bought,
        shown,
        () if catalog is None else catalog.category_names,
    )


def _read_orders(
    path: Path, mapping: dict[str, str], catalog: ProductTable | None
) -> tuple[_Table, _Table | None]:
    """The orders (lines sharing an ``order_id`` made one) and, with a catalog, their lines."""
    needed = ("product_id",) if catalog is not None else ()
    raw, where = _read(path, "orders", mapping, needed)
    value = _numbers(raw["amount"], where, "amount")
    if "discount" in raw:
        value = _list_value(value, _numbers(raw["discount"], where, "discount"))
    customer = _customers(raw["customer_id"], where, "customer_id")
    day = _days(raw["time"], where, "time")
    lines = None
    if catalog is not None:
        from rec_env.fitting.item_builder import product_categories

        category = product_categories(raw["product_id"], where, "product_id", catalog)
        lines = _Table(customer, day, {"category": category})
    if "order_id" in raw:
        order_id = _customers(raw["order_id"], where, "order_id", what="order")
        customer, day, value = _orders_of_lines(customer, day, value, order_id)
    return _Table(customer, day, {"value": value}), lines


def _read_contacts(
    path: Path, mapping: dict[str, str], catalog: ProductTable | None
) -> tuple[_Table, _Table | None]:
    """The delivered messages and, with a catalog, one row per product they showed."""
    needed = ("products",) if catalog is not None else ()
    raw, where = _read(path, "contacts", mapping, needed)
    n = len(raw["customer_id"])
    flags = {
        name: _numbers(raw[name], where, name, flag=True) if name in raw else np.zeros(n)
        for name in ("opened", "clicked", "unsubscribed")
    }
    delivered = (
        _numbers(raw["delivered"], where, "delivered", flag=True) > 0
        if "delivered" in raw
        else np.ones(n, dtype=bool)
    )
    discount = _discount_offer(raw["offer"] if "offer" in raw else np.full(n, ""))
    customer = _customers(raw["customer_id"], where, "customer_id")
    day = _days(raw["time"], where, "time")
    messages = _Table(
        customer[delivered],
        day[delivered],
        {
            "channel": _channels(raw["channel"], where, "channel")[delivered],
            "opened": _responded(flags["opened"], flags["clicked"])[delivered],
            "discount": discount[delivered].astype(np.float64),
            "unsubscribed": flags["unsubscribed"][delivered],
        },
    )
    if catalog is None:
        return messages, None
    from rec_env.fitting.item_builder import shown_products

    row, category = shown_products(raw["products"], where, "products", catalog)
    row, category = row[delivered[row]], category[delivered[row]]
    return messages, _Table(customer[row], day[row], {"category": category})


# ---------------------------------------------------------------------------- building
def mean_irritation(population: str | Path = "default") -> float:
    """The population's mean ``irritation``, weighted by segment (the builder's default)."""
    return population_mean("irritation", population)


def population_mean(parameter: str, population: str | Path = "default") -> float:
    """A hidden parameter's mean over the population, weighted by segment."""
    from rec_env.population import load_population

    loaded = load_population(population)
    weights = np.array([s.weight for s in loaded.segments], dtype=np.float64)
    means = []
    for segment in loaded.segments:
        spec = segment.hidden[parameter]
        mean = getattr(spec, "mean", None)
        if mean is None:  # any other distribution: its sample mean, seeded
            mean = float(spec.sample(np.random.default_rng(0), 10_000).mean())
        means.append(float(mean))
    return float(np.dot(weights / weights.sum(), means))


def _pointers(customer_index: np.ndarray, n: int) -> np.ndarray:
    """CSR pointers of events sorted by customer index."""
    return np.concatenate([[0], np.cumsum(np.bincount(customer_index, minlength=n))]).astype(
        np.int64
    )


def build_features(
    events: CustomerEvents,
    as_of: str | int,
    *,
    cycle_days: int = 7,
    since: str | int | None = None,
    irritation: float | np.ndarray | None = None,
    customers: Sequence[str] | None = None,
) -> BuiltFeatures:
    """Each customer's 16 observed features at the end of ``as_of``.

    Args:
        events: The logs (:func:`read_events`).
        as_of: The last day of the history (a date or days since 1970-01-01); later events
            are left out and counted.
        cycle_days: Length of a cycle (the simulator's ``cycle_days``).
        since: The first day of everyone's history; ``None``: each customer's own first order,
            message or visit.
        irritation: Engagement lost per ignored message: one number, or one per customer (in
            the order of ``customers``); ``None``: :func:`mean_irritation`.
        customers: The customers to build, in this order (default: every id in the logs,
            sorted). A customer without events gets :data:`HISTORY_START`.

    Raises:
        ValueError: If ``cycle_days`` is not positive, ``since`` is after ``as_of``, or
            ``irritation`` has the wrong shape or is outside [0, 1].
    """
    from rec_env._kernels import history_kernel

    if cycle_days < 1:
        raise ValueError(f"cycle_days must be at least 1, got {cycle_days}")
    last = parse_day(as_of)
    first = None if since is None else parse_day(since)
    if first is not None and first > last:
        raise ValueError("since is after as_of")
    tables = {
        "orders": events.orders,
        "contacts": events.contacts,
        "visits": events.visits,
        "consents": events.consents,
    }
    ignored = {}
    kept: dict[str, _Table] = {}
    for name, table in tables.items():
        if table is None:
            continue
        ignored[name] = int((table.day > last).sum())
        kept[name] = _between(table, first, last)
    if customers is None:
        ids = [t.customer for t in kept.values()]
        if events.tags is not None:
            ids.append(events.tags.customer)
        customer_ids = np.unique(np.concatenate(ids)) if ids else np.array([], dtype=np.str_)
    else:
        customer_ids = np.asarray(customers, dtype=np.str_)
        if len(np.unique(customer_ids)) != len(customer_ids):
            raise ValueError("customers holds a duplicate id")
    n = len(customer_ids)
    order = np.argsort(customer_ids, kind="stable")
    sorted_ids = customer_ids[order]

    def index_of(table: _Table) -> tuple[np.ndarray, np.ndarray]:
        """Customer index of each event (events of unknown customers are dropped)."""
        pos = np.searchsorted(sorted_ids, table.customer)
        pos = np.minimum(pos, max(n - 1, 0))
        known = (sorted_ids[pos] == table.customer) if n else np.zeros(len(pos), dtype=bool)
        return order[pos[known]], known

    if irritation is None:
        irritation = mean_irritation()
    irritations = np.broadcast_to(np.asarray(irritation, dtype=np.float64), (n,)).copy()
    if irritations.shape != (n,) or not ((irritations >= 0) & (irritations <= 1)).all():
        raise ValueError("irritation must be one number or one per customer, in [0, 1]")

    # cycle j (0 = the last) covers days (last - (j + 1) * L, last - j * L]
    def cycle_of(day: np.ndarray) -> np.ndarray:
        return (last - day) // cycle_days

    cycle_lists = [cycle_of(t.day) for t in kept.values()]
    oldest = int(max((c.max() for c in cycle_lists if c.size), default=0))
    if first is not None:
        oldest = max(oldest, int(cycle_of(np.array([first]))[0]))
    n_cycles = oldest + 1

    def arrays(name: str, *fields: str) -> tuple[np.ndarray, ...]:
        """Pointers, global cycle and fields of table ``name``, sorted by customer and day."""
        table = kept.get(name)
        if table is None:
            empty = (np.zeros(n + 1, dtype=np.int64), np.zeros(0, np.int64))
            return (*empty, *(np.zeros(0) for _ in fields))
        who, known = index_of(table)
        day = table.day[known]
        sort = np.lexsort((day, who))
        cycles = (n_cycles - 1 - cycle_of(day[sort])).astype(np.int64)
        values = tuple(table.columns[f][known][sort] for f in fields)
        return (_pointers(who[sort], n), cycles, *values)

    order_ptr, order_cycle, order_value = arrays("orders", "value")
    message_ptr, message_cycle, channel, opened, discount = arrays(
        "contacts", "channel", "opened", "discount"
    )
    visit_ptr, visit_cycle = arrays("visits")
    start = np.full(n, n_cycles, dtype=np.int64)
    if first is not None:
        start[:] = n_cycles - 1 - int(cycle_of(np.array([first]))[0])
    else:
        for ptr, cycles in (
            (order_ptr, order_cycle),
            (message_ptr, message_cycle),
            (visit_ptr, visit_cycle),
        ):
            has = ptr[1:] > ptr[:-1]
            start[has] = np.minimum(start[has], cycles[ptr[:-1][has]])
    obs = np.tile(np.array([HISTORY_START[f] for f in FEATURE_NAMES])[:, None], (1, n))
    history_kernel(
        obs,
        start,
        n_cycles,
        order_ptr,
        order_cycle,
        order_value.astype(np.float64),
        message_ptr,
        message_cycle,
        channel.astype(np.int64),
        opened.astype(np.float64),
        discount.astype(np.float64),
        visit_ptr,
        visit_cycle,
        irritations,
        max(1, round(30.0 / cycle_days)),
        max(1, round(90.0 / cycle_days)),
        float(cycle_days),
    )
    _exact_days(obs, kept, index_of, last, n)
    defaulted = _consent_and_tags(obs, events, kept, index_of, n)
    if not events.category_names:
        return BuiltFeatures(customer_ids, obs.T.copy(), defaulted, last, ignored)
    from rec_env.fitting.item_builder import category_features
    from rec_env.item_features import item_features

    bought, shown = (
        None if t is None else _between(t, first, last) for t in (events.bought, events.shown)
    )
    n_categories = len(events.category_names)
    item = category_features(bought, shown, index_of, n, n_categories, last, cycle_days)
    names = tuple(f.name for f in item_features(events.category_names))
    observations = np.concatenate([obs.T, item], axis=1)
    return BuiltFeatures(customer_ids, observations, defaulted, last, ignored, names)


def _between(table: _Table, first: int | None, last: int) -> _Table:
    """``table``'s rows from day ``first`` (``None``: any) to day ``last``."""
    keep = table.day <= last
    if first is not None:
        keep &= table.day >= first
    return _Table(
        table.customer[keep], table.day[keep], {k: v[keep] for k, v in table.columns.items()}
    )


def _latest_day(table: _Table | None, index_of: Any, n: int, rows: np.ndarray | None = None):
    """``(n,)`` each customer's last event day in ``table`` (−1: none)."""
    latest = np.full(n, -1, dtype=np.int64)
    if table is None or not len(table.day):
        return latest
    who, known = index_of(table)
    day = table.day[known]
    if rows is not None:
        who, day = who[rows[known]], day[rows[known]]
    np.maximum.at(latest, who, day)
    return latest


def _exact_days(obs: np.ndarray, kept: dict[str, _Table], index_of: Any, last: int, n: int):
    """The three day counts in exact days from the event dates (capped like the simulator)."""
    orders = _latest_day(kept.get("orders"), index_of, n)
    contacts = kept.get("contacts")
    sent = _latest_day(contacts, index_of, n)
    opened = (
        _latest_day(contacts, index_of, n, contacts.columns["opened"] > 0)
        if contacts is not None
        else np.full(n, -1)
    )
    visits = _latest_day(kept.get("visits"), index_of, n)
    interaction = np.maximum.reduce([orders, opened, visits])
    for name, day in (
        ("last_purchase_days", orders),
        ("recency", interaction),
        ("days_since_contact", sent),
    ):
        row = obs[FEATURE_INDEX[name]]
        has = day >= 0
        row[has] = np.minimum(last - day[has], FEATURE_HIGH[name])


def _consent_and_tags(
    obs: np.ndarray, events: CustomerEvents, kept: dict[str, _Table], index_of: Any, n: int
) -> dict[str, int]:
    """Consent from its events (an unsubscribe is one), tags from their table."""
    defaulted: dict[str, int] = {}
    parts = []
    if "consents" in kept:
        t = kept["consents"]
        parts.append((t.customer, t.day, t.columns["channel"], t.columns["consent"], 0))
    if "contacts" in kept:
        t = kept["contacts"]
        out = t.columns["unsubscribed"] > 0
        parts.append((t.customer[out], t.day[out], t.columns["channel"][out], 0 * t.day[out], 1))
    for c, channel in enumerate(CHANNELS):
        row = obs[FEATURE_INDEX[f"consent_{channel}"]]
        who_parts, day_parts, priority_parts, value_parts = [], [], [], []
        for customer, day, channels, consent, priority in parts:
            mine = channels == c
            who, known = index_of(_Table(customer[mine], day[mine]))
            who_parts.append(who)
            day_parts.append(day[mine][known])
            priority_parts.append(np.full(len(who), priority))
            value_parts.append(consent[mine][known])
        seen = np.zeros(n, dtype=bool)
        if who_parts and sum(len(w) for w in who_parts):
            who = np.concatenate(who_parts)
            day = np.concatenate(day_parts)
            value = np.concatenate(value_parts)
            # the latest event per customer; on one day an unsubscribe (priority 1) wins
            sort = np.lexsort((np.concatenate(priority_parts), day, who))
            who, value = who[sort], value[sort]
            last_of_each = np.r_[who[1:] != who[:-1], True]
            row[who[last_of_each]] = value[last_of_each]
            seen[who] = True
        if (~seen).any():
            defaulted[f"consent_{channel}"] = int((~seen).sum())
    for name in ("discount_sensitive", "free_shipping_preferred"):
        tagged = np.zeros(n, dtype=bool)
        if events.tags is not None and name in events.tags.columns:
            who, known = index_of(events.tags)
            obs[FEATURE_INDEX[name], who] = events.tags.columns[name][known]
            tagged[who] = True
        if (~tagged).any():
            defaulted[name] = int((~tagged).sum())
    return defaulted


def history_problems(features: dict[str, float], cycle_days: int = 7) -> list[str]:
    """What no history could produce in a customer's features, under the builder's definitions.

    Checks the features that are given (any subset): the last interaction is no older than the
    last purchase (``recency`` ≤ ``last_purchase_days``); a purchase within the caps leaves
    ``frequency`` ≥ exp(−``last_purchase_days`` / 365) (at cycle resolution); an average
    order value needs an order (free orders leave it at 0); messages in the last 30 days mean
    the last one is no older than 30 days, none means it is; discounts in the last 90 days need
    a message within 90 days.

    Returns:
        One sentence per inconsistency (empty: some history gives these features).
    """
    f = features
    problems = []

    def given(*names: str) -> bool:
        return all(name in f for name in names)

    if given("recency", "last_purchase_days") and f["recency"] > f["last_purchase_days"]:
        problems.append(
            f"recency {f['recency']:g} > last_purchase_days {f['last_purchase_days']:g}: a "
            "purchase is an interaction, so the last interaction is at most that old"
        )
    cap = FEATURE_HIGH["last_purchase_days"]
    if given("frequency", "last_purchase_days") and f["last_purchase_days"] < cap:
        cycles = -(-f["last_purchase_days"] // cycle_days)  # the purchase's cycle, rounded up
        least = float(np.exp(-cycles * cycle_days / 365.0))
        if f["frequency"] < least - 1e-9:
            problems.append(
                f"frequency {f['frequency']:g} < {least:.3g}: a purchase "
                f"{f['last_purchase_days']:g} days ago alone counts that much"
            )
    if given("monetary_value", "frequency") and f["monetary_value"] > 0 and f["frequency"] <= 0:
        problems.append(
            f"monetary_value {f['monetary_value']:g} but frequency 0: an average order value "
            "needs an order (a free order leaves it at 0, not the other way round)"
        )
    window = max(1, round(30.0 / cycle_days)) * cycle_days
    if given("contacts_last_30d", "days_since_contact"):
        if f["contacts_last_30d"] > 0 and f["days_since_contact"] >= window:
            problems.append(
                f"contacts_last_30d {f['contacts_last_30d']:g} but days_since_contact "
                f"{f['days_since_contact']:g}: a message in the last 30 days is more recent"
            )
        if f["contacts_last_30d"] == 0 and f["days_since_contact"] < window - cycle_days:
            problems.append(
                f"days_since_contact {f['days_since_contact']:g} but contacts_last_30d 0: that "
                "message falls in the last 30 days"
            )
    long_window = max(1, round(90.0 / cycle_days)) * cycle_days
    if (
        given("discounts_last_90d", "days_since_contact")
        and f["discounts_last_90d"] > 0
        and f["days_since_contact"] >= long_window
    ):
        problems.append(
            f"discounts_last_90d {f['discounts_last_90d']:g} but days_since_contact "
            f"{f['days_since_contact']:g}: a discount in the last 90 days is a message"
        )
    return problems


# ---------------------------------------------------------------------------- one customer
def features_from_history(
    history: Mapping[str, Any] | CustomerHistory,
    as_of: str | int | None = None,
    *,
    cycle_days: int = 7,
    irritation: float | None = None,
) -> tuple[dict[str, float], list[str]]:
    """One customer's 16 features from their history as JSON-like data, by these definitions.

    The history (:class:`~rec_env.fitting.history.CustomerHistory`: ``orders``, ``contacts``,
    ``visits``, ``consents`` and ``tags``, the fields of :data:`TABLES`) becomes in-memory
    tables as :func:`read_events` makes them from files, and goes through
    :func:`build_features`.

    Args:
        history: The events (validated here unless already a ``CustomerHistory``).
        as_of: The last day of the history; default: the day of the latest event.
        cycle_days: Length of a cycle (the simulator's ``cycle_days``).
        irritation: Engagement lost per ignored message; ``None``: :func:`mean_irritation`.

    Returns:
        The features by name (``FEATURE_NAMES`` order) and the features that came from no data
        (consent without a consent event, tags without a tag).

    Raises:
        ValueError: Naming the path of the first bad field (``history.orders[3].time: ...``),
            or a bad ``as_of``, ``cycle_days`` or ``irritation``.
    """
    from rec_env.fitting.history import validate_history

    parsed = validate_history(history)
    if as_of is None:
        latest = parsed.latest_day()
        as_of = 0 if latest is None else latest  # no events: any day gives HISTORY_START
    built = build_features(
        _history_events(parsed), as_of, cycle_days=cycle_days, irritation=irritation,
        customers=[_ONE],
    )  # fmt: skip
    features = dict(zip(FEATURE_NAMES, built.observations[0].tolist(), strict=True))
    return features, [name for name in FEATURE_NAMES if name in built.defaulted]


_ONE = "customer"
"""The id of the one customer of :func:`features_from_history`'s tables."""


def _history_events(history: CustomerHistory) -> CustomerEvents:
    """The tables :func:`read_events` would read from files holding this one customer's rows."""

    def table(rows: list[Any], **columns: Any) -> _Table:
        n = len(rows)
        return _Table(
            np.full(n, _ONE),
            (np.array([row.time[:10] for row in rows], dtype="U10").astype("datetime64[D]")
             - _EPOCH).astype(np.int64).reshape(n),
            {name: np.asarray(values, dtype=np.float64).reshape(n) for name, values in
             columns.items()},
        )  # fmt: skip

    orders = history.orders
    delivered = [c for c in history.contacts if c.delivered > 0]
    tags = history.tags
    tag_columns = {} if tags is None else tags.model_dump(exclude_none=True)
    return CustomerEvents(
        table(
            orders,
            value=_list_value(
                np.array([o.amount for o in orders], dtype=np.float64),
                np.array([o.discount for o in orders], dtype=np.float64),
            ),
        ),
        table(
            delivered,
            channel=[CHANNELS.index(c.channel) for c in delivered],
            opened=_responded(
                np.array([c.opened for c in delivered], dtype=np.float64),
                np.array([c.clicked for c in delivered], dtype=np.float64),
            ),
            discount=_discount_offer(np.array([c.offer for c in delivered], dtype=np.str_)),
            unsubscribed=[c.unsubscribed for c in delivered],
        ),
        table(history.visits),
        table(
            history.consents,
            channel=[CHANNELS.index(c.channel) for c in history.consents],
            consent=[c.consent for c in history.consents],
        ),
        _Table(
            np.full(1 if tag_columns else 0, _ONE),
            np.zeros(1 if tag_columns else 0, dtype=np.int64),
            {name: np.array([value]) for name, value in tag_columns.items()},
        ),
    )
