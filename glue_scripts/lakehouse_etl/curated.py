"""The master merge: curated/ (gold) tables from processed/ with SQL, recomputing only what the new data touched.

Each curated table is one SQL query over the processed tables, grouped by a column (`Curated.group`: a date, a
product, a customer). A run recomputes only the groups its batches touched and MERGEs them in, in one Delta commit:
- what changed in a processed table since the curated table last read it comes from the table's change data feed
  (`delta.enableChangeDataFeed`: the rows a commit inserted, deleted, and updated before and after), so a row that
  moved (an order whose date changed) touches its old group and its new one;
- each curated commit records, as Delta app transactions, the version of every processed table it has read, so a
  re-run finds nothing new and changes nothing, and a crash before the commit loses nothing;
- a curated table with no such record, or whose changes cannot be read back (a feed expired by VACUUM, a table
  written before the feed was on), is rebuilt whole, as `lakehouse curated rebuild` does on demand.

The incremental result equals a whole rebuild row for row (a property-based test holds it to that). The SQL sticks to
what Trino (Athena) and DuckDB both run.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import pyarrow as pa

from chalicelib.errors import QueryError
from chalicelib.quality.checks import listed
from lakehouse_etl import delta, duck
from lakehouse_etl.processed import Job
from lakehouse_etl.transform import table_schema

log = logging.getLogger(__name__)

SESSION_GAP_MINUTES = 30


@dataclass(frozen=True)
class Curated:
    """A curated table: its query, the key of its rows, and how a batch's changes map to the groups it recomputes.

    `sql` names each processed table as `{dataset}`; a recompute replaces it by that table's rows of the touched
    groups (`filters[dataset]`: SQL over the table, `{groups}` the touched values). `touched[dataset]` is a query
    over `changed` (the dataset's changed rows, old and new) giving the group values they touch.
    """

    sql: str
    key: tuple[str, ...]
    group: str
    filters: Mapping[str, str]
    touched: Mapping[str, str]

    def render(self, groups: str | None) -> str:
        """The query over every group (`groups` None) or over the touched ones (a SQL list of literals)."""
        names = {d: d for d in SOURCES}
        if groups is not None:
            names.update({d: f"({f.format(groups=groups)})" for d, f in self.filters.items()})
        return self.sql.format(**names)


SOURCES = ("orders", "order_items", "products", "customers", "clickstream", "reviews")  # the `{dataset}` names


# The orders of the touched dates, and every item of those orders (wherever its own order_date partition is).
_ORDERS_OF_DATES = "SELECT * FROM orders WHERE order_date IN ({groups})"
_ITEMS_OF_DATES = f"SELECT * FROM order_items WHERE order_id IN (SELECT order_id FROM ({_ORDERS_OF_DATES}))"

CURATED: dict[str, Curated] = {
    "daily_sales_by_category": Curated(
        """
        SELECT o.order_date, coalesce(p.category, 'unknown') AS category,
               count(DISTINCT o.order_id) AS orders, sum(i.quantity) AS units,
               CAST(sum(i.quantity * i.unit_price - coalesce(i.discount, 0)) AS DECIMAL(18, 2)) AS revenue
        FROM {order_items} i
        JOIN {orders} o ON o.order_id = i.order_id
        LEFT JOIN {products} p ON p.product_id = i.product_id
        GROUP BY o.order_date, coalesce(p.category, 'unknown')
        ORDER BY o.order_date, category""",
        key=("order_date", "category"),
        group="order_date",
        filters={"orders": _ORDERS_OF_DATES, "order_items": _ITEMS_OF_DATES},
        touched={
            "orders": "SELECT order_date FROM changed",
            "order_items": "SELECT o.order_date FROM orders o WHERE o.order_id IN (SELECT order_id FROM changed)",
            "products": "SELECT o.order_date FROM orders o JOIN order_items i ON i.order_id = o.order_id "
            "WHERE i.product_id IN (SELECT product_id FROM changed)",
        },
    ),
    "product_performance": Curated(
        """
        WITH events AS (
            SELECT product_id,
                   count(CASE WHEN event_type = 'view' THEN 1 END) AS views,
                   count(CASE WHEN event_type = 'add_to_cart' THEN 1 END) AS add_to_carts,
                   count(CASE WHEN event_type = 'purchase' THEN 1 END) AS purchases
            FROM {clickstream} WHERE product_id IS NOT NULL GROUP BY product_id),
        ratings AS (SELECT product_id, avg(rating) AS average_rating, count(*) AS reviews
                    FROM {reviews} GROUP BY product_id),
        sales AS (SELECT product_id, sum(quantity) AS units_sold,
                         sum(quantity * unit_price - coalesce(discount, 0)) AS revenue
                  FROM {order_items} GROUP BY product_id),
        ids AS (SELECT product_id FROM {products} UNION SELECT product_id FROM events
                UNION SELECT product_id FROM sales UNION SELECT product_id FROM ratings)
        SELECT ids.product_id, p.name, p.category,
               coalesce(e.views, 0) AS views, coalesce(e.add_to_carts, 0) AS add_to_carts,
               coalesce(e.purchases, 0) AS purchases,
               CASE WHEN coalesce(e.views, 0) = 0 THEN NULL
                    ELSE CAST(coalesce(e.purchases, 0) AS DOUBLE) / e.views END AS conversion_rate,
               CAST(r.average_rating AS DOUBLE) AS average_rating, coalesce(r.reviews, 0) AS reviews,
               coalesce(s.units_sold, 0) AS units_sold,
               CAST(coalesce(s.revenue, 0) AS DECIMAL(18, 2)) AS revenue
        FROM ids
        LEFT JOIN {products} p ON p.product_id = ids.product_id
        LEFT JOIN events e ON e.product_id = ids.product_id
        LEFT JOIN ratings r ON r.product_id = ids.product_id
        LEFT JOIN sales s ON s.product_id = ids.product_id
        ORDER BY ids.product_id""",
        key=("product_id",),
        group="product_id",
        filters={
            d: f"SELECT * FROM {d} WHERE product_id IN ({{groups}})"
            for d in ("products", "clickstream", "reviews", "order_items")
        },
        touched={d: "SELECT product_id FROM changed" for d in ("products", "clickstream", "reviews", "order_items")},
    ),
    "customer_summary": Curated(
        """
        WITH o AS (SELECT customer_id, count(*) AS orders, sum(total_amount) AS lifetime_value,
                          min(order_ts) AS first_order_at, max(order_ts) AS last_order_at
                   FROM {orders} GROUP BY customer_id)
        SELECT o.customer_id, c.country, c.signup_date, o.orders,
               CAST(o.lifetime_value AS DECIMAL(18, 2)) AS lifetime_value, o.first_order_at, o.last_order_at
        FROM o LEFT JOIN {customers} c ON c.customer_id = o.customer_id
        ORDER BY o.customer_id""",
        key=("customer_id",),
        group="customer_id",
        filters={d: f"SELECT * FROM {d} WHERE customer_id IN ({{groups}})" for d in ("orders", "customers")},
        touched={d: "SELECT customer_id FROM changed" for d in ("orders", "customers")},
    ),
    "clickstream_sessions": Curated(
        f"""
        WITH e AS (
            SELECT customer_id, event_id, event_ts, event_type,
                   CASE WHEN lag(event_ts) OVER w IS NULL
                          OR event_ts > lag(event_ts) OVER w + INTERVAL '{SESSION_GAP_MINUTES}' MINUTE
                        THEN 1 ELSE 0 END AS starts_session
            FROM {{clickstream}} WHERE customer_id IS NOT NULL
            WINDOW w AS (PARTITION BY customer_id ORDER BY event_ts, event_id)),
        s AS (SELECT *, sum(starts_session) OVER (PARTITION BY customer_id ORDER BY event_ts
                                                  ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS session_number
              FROM e)
        SELECT customer_id || '-' || CAST(session_number AS VARCHAR) AS session_id, customer_id, session_number,
               min(event_ts) AS session_start, max(event_ts) AS session_end, count(*) AS events,
               count(CASE WHEN event_type = 'view' THEN 1 END) AS views,
               count(CASE WHEN event_type = 'add_to_cart' THEN 1 END) AS add_to_carts,
               count(CASE WHEN event_type = 'purchase' THEN 1 END) AS purchases
        FROM s GROUP BY customer_id, session_number
        ORDER BY customer_id, session_number""",
        key=("session_id",),
        group="customer_id",
        filters={"clickstream": "SELECT * FROM clickstream WHERE customer_id IN ({groups})"},
        touched={"clickstream": "SELECT customer_id FROM changed"},
    ),
}
CURATED_SQL = {name: table.render(None) for name, table in CURATED.items()}  # the whole-rebuild queries

Mode = Literal["rebuilt", "merged", "unchanged"]


@dataclass(frozen=True)
class CuratedReport:
    table: str
    rows: int
    delta_version: int
    mode: Mode = "rebuilt"
    groups: int | None = None  # groups recomputed by a merge
    reason: str = ""  # why a table was rebuilt whole


def _source_app(dataset: str) -> str:
    """The app transaction id under which a curated commit records the version of processed/<dataset> it read."""
    return f"source:processed/{dataset}"


def run(job: Job, *, rebuild: bool = False) -> list[CuratedReport]:
    """Bring every curated table up to date with processed/: only the groups the changes since its last commit
    touched, or all of it (`rebuild`, or where that cannot be told)."""
    con = duck.session()
    sources: dict[str, Any] = {}
    for name, contract in job.settings.datasets.items():
        sources[name] = table = delta.open_table(job.lake.processed(name), job.lake.storage_options)
        empty = table_schema(contract).empty_table()
        con.register(name, delta.dataset(table, job.lake.storage_options) if table else empty)
    try:
        return [_bring_up_to_date(job, con, name, spec, sources, rebuild=rebuild) for name, spec in CURATED.items()]
    finally:
        con.close()


def _bring_up_to_date(
    job: Job, con: Any, name: str, spec: Curated, sources: Mapping[str, Any], *, rebuild: bool
) -> CuratedReport:
    uri, options = job.lake.curated(name), job.lake.storage_options
    current = delta.open_table(uri, options)
    marks = {d: sources[d].version() if sources[d] else -1 for d in spec.touched}  # what this run reads
    seen = {d: (current.transaction_version(_source_app(d)) if current else None) for d in marks}
    reason = "asked for (lakehouse curated rebuild)" if rebuild else ""
    if not reason and current is None:
        reason = "the table does not exist yet"
    if not reason and any(v is None for v in seen.values()):
        reason = "it does not record which processed versions it read"
    if current is not None and not reason and all((seen[d] or 0) >= v for d, v in marks.items()):
        return CuratedReport(name, current.count(), current.version(), "unchanged", 0)
    groups: list[Any] = []
    if not reason:
        try:
            groups = _touched(con, spec, sources, seen, marks)
        except Exception as exc:  # a change feed that cannot be read back: the whole table is recomputed
            reason = f"the changes since its last commit cannot be read ({type(exc).__name__}: {str(exc)[:200]})"
    transactions = {_source_app(d): max(v, 0) for d, v in marks.items()}
    if reason or current is None:
        result = _query(con, name, spec.render(None))
        version = delta.overwrite(uri, result, options, transactions=transactions)
        log.info("curated/%s rebuilt: %s", name, reason)
        return CuratedReport(name, result.num_rows, version, "rebuilt", reason=reason)
    # Dates stay literals, so both engines prune partitions by them; strings go in as a semi-join (`listed`).
    literals = ", ".join(delta.literal(g) for g in groups) if groups else "NULL"
    strings = bool(groups) and all(isinstance(g, str) for g in groups)
    result = _query(con, name, spec.render(listed(groups) if strings else literals))
    version, rows = delta.merge_groups(
        uri, result, key=spec.key, group=spec.group, groups=literals, storage_options=options, transactions=transactions
    )
    return CuratedReport(name, rows, version, "merged", len(groups))


def _touched(
    con: Any, spec: Curated, sources: Mapping[str, Any], seen: Mapping[str, int | None], marks: Mapping[str, int]
) -> list[Any]:
    """The group values the processed tables' changes since the versions `seen` touch, sorted."""
    values: set[Any] = set()
    for dataset, sql in spec.touched.items():
        since, now = (seen[dataset] or 0) + 1, marks[dataset]
        if sources[dataset] is None or since > now:
            continue
        changed = pa.table(sources[dataset].load_cdf(starting_version=since, ending_version=now))
        con.register("changed", changed)
        values |= {row[0] for row in con.execute(sql).fetchall() if row[0] is not None}
        con.unregister("changed")
    return sorted(values)


def _query(con: Any, name: str, sql: str) -> pa.Table:
    try:
        return con.sql(sql).to_arrow_table()
    except Exception as exc:
        raise QueryError(f"{name}: {exc}") from exc
