"""``recenv features``: the 16 observed features of your customers, from your own logs.

The definitions are the simulator's (:mod:`rec_env.fitting.builder`); the output (CSV or
Parquet, one row per customer) is what ``recenv explain``, ``recenv serve`` and batch scoring
read. With ``--products``, the item world's three features per product category follow
(:mod:`rec_env.fitting.item_builder`). ``recenv profiles history`` writes the logs of simulated
customers in the same layout (``--products``: of the item world), to try the command or to
check it against the simulator.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from rec_env.cli._errors import check_count, fail, reporting_bad_input
from rec_env.cli._outputs import (
    FORCE_HELP,
    check_output_directory,
    check_output_file,
    staged_directory,
    staged_file,
    write_columns,
)

__all__ = ["features_command", "history_command"]

_Force = Annotated[bool, typer.Option("--force", help=FORCE_HELP)]
_Log = Annotated[Path | None, typer.Option(exists=False, dir_okay=False)]


def _mapping(values: list[str]) -> dict[str, dict[str, str]]:
    """``orders.customer_id=cust`` options as ``{table: {field: column}}``."""
    columns: dict[str, dict[str, str]] = {}
    for value in values:
        key, sep, column = value.partition("=")
        table, dot, name = key.strip().partition(".")
        if not sep or not dot or not column.strip():
            fail(f"--column: expected TABLE.FIELD=COLUMN (e.g. orders.time=date), got {value!r}")
        columns.setdefault(table, {})[name] = column.strip()
    return columns


def features_command(
    orders: Annotated[
        Path,
        typer.Option(
            help="Order log: customer_id, time, amount [, discount, order_id, product_id]."
        ),
    ],
    as_of: Annotated[str, typer.Option(help="Last day of the history (YYYY-MM-DD).")],
    out: Annotated[Path, typer.Option(help="Features to write: .csv or .parquet.")],
    contacts: Annotated[
        Path | None,
        typer.Option(
            help="Contact log: customer_id, time, channel [, offer, delivered, opened, "
            "clicked, unsubscribed, products]."
        ),
    ] = None,
    visits: Annotated[Path | None, typer.Option(help="Visit log: customer_id, time.")] = None,
    consents: Annotated[
        Path | None, typer.Option(help="Consent changes: customer_id, time, channel, consent.")
    ] = None,
    tags: Annotated[
        Path | None,
        typer.Option(help="CRM tags: customer_id, discount_sensitive, free_shipping_preferred."),
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(
            help="First day of everyone's history (default: each customer's first event)."
        ),
    ] = None,
    products: Annotated[
        str | None,
        typer.Option(
            help="Product table (shipped name or path, as the item env's products setting): "
            "adds purchases_, recommended_ and days_since_<category> from the orders' "
            "product_id and the contacts' products (ids separated by |)."
        ),
    ] = None,
    cycle_days: Annotated[int, typer.Option(help="Days per cycle (the simulator's).")] = 7,
    irritation: Annotated[
        float | None,
        typer.Option(help="Engagement lost per ignored message (default: the population mean)."),
    ] = None,
    column: Annotated[
        list[str] | None,
        typer.Option(help="Map a field to your column: TABLE.FIELD=COLUMN (repeatable)."),
    ] = None,
    force: _Force = False,
) -> None:
    """Build each customer's 16 features as of a day, by the simulator's definitions.

    With --products, the item world's 3 features per product category follow: order lines
    (rows sharing an order_id are one order) name their product_id, messages the products they
    showed. Every customer in any log gets a row. Consent without a consent event is 0 (nothing is
    sent on that channel) and untagged customers get tags 0; both are counted in the summary.
    Events after --as-of are left out and counted. Nothing is written on an error.
    """
    from rec_env.fitting.builder import build_features, read_events

    check_count("--cycle-days", cycle_days, low=1, high=365)
    if out.suffix.lower() not in (".csv", ".parquet", ".pq"):
        fail(f"--out: expected a .csv or .parquet file, got {out.name!r}")
    check_output_file(out, force=force)
    mapping = _mapping(column or [])
    with reporting_bad_input():
        events = read_events(
            orders, contacts, visits, consents, tags, columns=mapping, products=products
        )
        built = build_features(
            events, as_of, cycle_days=cycle_days, since=since, irritation=irritation
        )
    with staged_file(out) as staged:
        write_columns(built.to_columns(), staged, out.suffix.lower())
    n = len(built.customer_ids)
    typer.echo(f"wrote {out}: {n:,} customers, {len(built.names)} features as of {as_of}")
    for name, count in built.defaulted.items():
        reason = "no consent event: no consent" if name.startswith("consent") else "untagged: 0"
        typer.echo(f"  {name}: {count:,} of {n:,} customers without data ({reason})")
    left_out = {k: v for k, v in built.ignored_after.items() if v}
    if left_out:
        parts = ", ".join(f"{v:,} {k}" for k, v in left_out.items())
        typer.echo(f"  left out, after {as_of}: {parts}")


def history_command(
    out: Annotated[
        Path, typer.Option(help="Directory for orders/contacts/visits/consents/tags.csv")
    ],
    customers: Annotated[int, typer.Option(help="Simulated customers.")] = 1000,
    cycles: Annotated[int, typer.Option(help="Cycles of history.")] = 26,
    seed: Annotated[int, typer.Option(help="Seed of every draw.")] = 0,
    since: Annotated[str, typer.Option(help="First day of the history.")] = "2024-01-01",
    products: Annotated[
        str | None,
        typer.Option(
            help="Simulate the item world with this product table (shipped name or path): "
            "orders name their products, messages the products they showed."
        ),
    ] = None,
    force: _Force = False,
) -> None:
    """Write the event logs of simulated customers, and the simulator's own features.

    The customers start with no history and get random allowed messages (with --products,
    product messages of the item world). Next to the logs, simulator_features.csv holds what
    the simulator observes at the end: `recenv features` on the logs (with the command this
    prints) gives the same values, except engagement_score, which uses the population's mean
    irritation instead of each customer's.
    """
    check_count("--customers", customers, low=1, high=1_000_000)
    check_count("--cycles", cycles, low=1, high=520)
    check_output_directory(out, force=force)
    with reporting_bad_input():
        if products is None:
            from rec_env.fitting.simulated_history import simulate_history

            history = simulate_history(customers, cycles, seed=seed, since=since)
        else:
            from rec_env.fitting.simulated_item_history import simulate_item_history

            history = simulate_item_history(
                customers, cycles, seed=seed, since=since, products=products
            )
    with staged_directory(out, replace_whole=True) as staged:
        history.write_csv(staged)
        columns = {"customer_id": history.customer_ids}
        columns.update(
            {name: history.features[:, j] for j, name in enumerate(history.feature_names)}
        )
        write_columns(columns, staged / "simulator_features.csv", ".csv")
    typer.echo(f"wrote {out}: the logs of {customers:,} customers over {cycles} cycles")
    typer.echo(
        f"recenv features --orders {out}/orders.csv --contacts {out}/contacts.csv "
        f"--visits {out}/visits.csv --consents {out}/consents.csv --tags {out}/tags.csv "
        f"--since {history.since} --as-of {history.as_of} --out customers.csv"
        + ("" if products is None else f" --products {products}")
    )
