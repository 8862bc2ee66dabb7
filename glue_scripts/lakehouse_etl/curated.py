"""The master merge: curated/ (gold) tables rebuilt from processed/ with SQL.

Each curated table is rebuilt whole and replaced in one Delta commit, so a re-run gives the same rows and a
reader never sees half a rebuild. The SQL sticks to what Trino (Athena) and DuckDB both run.
"""

from __future__ import annotations

from dataclasses import dataclass

from chalicelib.errors import QueryError
from lakehouse_etl import delta, duck
from lakehouse_etl.processed import Job
from lakehouse_etl.transform import table_schema

SESSION_GAP_MINUTES = 30

CURATED_SQL = {
    "daily_sales_by_category": """
        SELECT o.order_date, coalesce(p.category, 'unknown') AS category,
               count(DISTINCT o.order_id) AS orders, sum(i.quantity) AS units,
               CAST(sum(i.quantity * i.unit_price - coalesce(i.discount, 0)) AS DECIMAL(18, 2)) AS revenue
        FROM order_items i
        JOIN orders o ON o.order_id = i.order_id
        LEFT JOIN products p ON p.product_id = i.product_id
        GROUP BY o.order_date, coalesce(p.category, 'unknown')
        ORDER BY o.order_date, category""",
    "product_performance": """
        WITH events AS (
            SELECT product_id,
                   count(CASE WHEN event_type = 'view' THEN 1 END) AS views,
                   count(CASE WHEN event_type = 'add_to_cart' THEN 1 END) AS add_to_carts,
                   count(CASE WHEN event_type = 'purchase' THEN 1 END) AS purchases
            FROM clickstream WHERE product_id IS NOT NULL GROUP BY product_id),
        ratings AS (SELECT product_id, avg(rating) AS average_rating, count(*) AS reviews
                    FROM reviews GROUP BY product_id),
        sales AS (SELECT product_id, sum(quantity) AS units_sold,
                         sum(quantity * unit_price - coalesce(discount, 0)) AS revenue
                  FROM order_items GROUP BY product_id),
        ids AS (SELECT product_id FROM products UNION SELECT product_id FROM events
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
        LEFT JOIN products p ON p.product_id = ids.product_id
        LEFT JOIN events e ON e.product_id = ids.product_id
        LEFT JOIN ratings r ON r.product_id = ids.product_id
        LEFT JOIN sales s ON s.product_id = ids.product_id
        ORDER BY ids.product_id""",
    "customer_summary": """
        WITH o AS (SELECT customer_id, count(*) AS orders, sum(total_amount) AS lifetime_value,
                          min(order_ts) AS first_order_at, max(order_ts) AS last_order_at
                   FROM orders GROUP BY customer_id)
        SELECT o.customer_id, c.country, c.signup_date, o.orders,
               CAST(o.lifetime_value AS DECIMAL(18, 2)) AS lifetime_value, o.first_order_at, o.last_order_at
        FROM o LEFT JOIN customers c ON c.customer_id = o.customer_id
        ORDER BY o.customer_id""",
    "clickstream_sessions": f"""
        WITH e AS (
            SELECT customer_id, event_id, event_ts, event_type,
                   CASE WHEN lag(event_ts) OVER w IS NULL
                          OR event_ts > lag(event_ts) OVER w + INTERVAL '{SESSION_GAP_MINUTES}' MINUTE
                        THEN 1 ELSE 0 END AS starts_session
            FROM clickstream WHERE customer_id IS NOT NULL
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
}


@dataclass(frozen=True)
class CuratedReport:
    table: str
    rows: int
    delta_version: int


def run(job: Job) -> list[CuratedReport]:
    con = duck.session()
    for name, contract in job.settings.datasets.items():
        table = delta.open_table(job.lake.processed(name), job.lake.storage_options)
        con.register(name, table.to_pyarrow_dataset() if table else table_schema(contract).empty_table())
    reports = []
    for name, sql in CURATED_SQL.items():
        try:
            result = con.sql(sql).to_arrow_table()
        except Exception as exc:
            raise QueryError(f"{name}: {exc}") from exc
        version = delta.overwrite(job.lake.curated(name), result, job.lake.storage_options)
        reports.append(CuratedReport(name, result.num_rows, version))
    con.close()
    return reports
