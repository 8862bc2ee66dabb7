"""The quality gate's one scan per table against one query per rule, on a large orders table.

    python bench/quality.py [--rows 5000000] [--repeat 3]

Writes a processed/orders Delta table (partitioned by order_date, as the ETL writes it) with `--rows` rows
into a temporary directory, with anomalies planted at known rates, then checks the shipped orders contract's
rules on it with DuckDB (the local stage's engine) two ways, in the same process, alternating:
- one scan: `chalicelib.quality.scan`, the query the quality gate runs;
- per rule: each rule's condition as a query of its own (`quality.rule_sql`), what the one scan replaces.
Both read the table through the same path (a fresh DuckDB session over the Delta table per query, as the gate
does). It prints the median wall time of each, their ratio, and the Parquet bytes each way must read: Athena
bills by the bytes of the columns a query reads, 10 MB at least per query, so that ratio is the cost ratio.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "glue_scripts")]

ATHENA_MIN_BYTES = 10 * 1024**2

TABLE_SQL = """
SELECT
  'O' || lpad(CAST(i AS varchar), 9, '0') AS order_id,
  'C' || lpad(CAST(i % 100000 AS varchar), 6, '0') AS customer_id,
  TIMESTAMPTZ '2025-03-01 00:00:00+00' + to_seconds(i) AS order_ts,
  CASE WHEN i % 1000 = 7 THEN 'lost in transit' ELSE ['placed', 'shipped', 'delivered'][1 + i % 3] END AS status,
  CAST(CASE WHEN i % 2000 = 11 THEN -1 ELSE (i % 50000) / 100.0 END AS DECIMAL(12, 2)) AS total_amount,
  CASE WHEN i % 500 = 3 THEN NULL ELSE 'EUR' END AS currency,
  CAST(TIMESTAMPTZ '2025-03-01 00:00:00+00' + to_seconds(i) AS DATE) AS order_date
FROM range({rows}) t(i)
UNION ALL  -- keys that occur twice: one in 100,000
SELECT 'O' || lpad(CAST(i AS varchar), 9, '0'), 'C000000', TIMESTAMPTZ '2025-03-01 00:00:00+00', 'placed',
  1.00, 'EUR', DATE '2025-03-01'
FROM range(0, {rows}, 100000) t(i)
"""


def write_table(uri: str, rows: int) -> int:
    import pyarrow as pa
    from deltalake import write_deltalake
    from lakehouse_etl import duck

    con = duck.session()
    table = con.execute(TABLE_SQL.format(rows=rows)).to_arrow_table()
    schema = pa.schema(
        [
            ("order_id", pa.string()),
            ("customer_id", pa.string()),
            ("order_ts", pa.timestamp("us", tz="UTC")),
            ("status", pa.string()),
            ("total_amount", pa.decimal128(12, 2)),
            ("currency", pa.string()),
            ("order_date", pa.date32()),
        ]
    )
    write_deltalake(uri, table.cast(schema), partition_by=["order_date"])
    return table.num_rows


def column_bytes(uri: str) -> dict[str, int]:
    """Compressed Parquet bytes per column over the table's files (what Athena would read per column)."""
    import pyarrow.parquet as pq
    from deltalake import DeltaTable

    sizes: dict[str, int] = {}
    table = DeltaTable(uri)
    for path in table.file_uris():
        meta = pq.ParquetFile(path).metadata
        for g in range(meta.num_row_groups):
            group = meta.row_group(g)
            for c in range(group.num_columns):
                column = group.column(c)
                sizes[column.path_in_schema] = sizes.get(column.path_in_schema, 0) + column.total_compressed_size
    return sizes


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    from lakehouse_etl.lake import Lake
    from lakehouse_etl.local_sql import DuckDBEngine

    from chalicelib.config import load_settings
    from chalicelib.quality import gate as quality

    settings = load_settings(ROOT / "config")
    contract = settings.datasets["orders"]
    sql_rules = [r for r in contract.rules if r.check not in ("volume", "row_count")]
    root = tempfile.mkdtemp(prefix="lakehouse-quality-bench-")
    lake = Lake(root, replace(settings, datasets={"orders": contract}))
    started = time.perf_counter()
    rows = write_table(lake.processed("orders"), args.rows)
    print(f"processed_orders: {rows:,} rows written in {time.perf_counter() - started:.1f} s ({root})")

    engine = DuckDBEngine(lake)
    tables = engine.tables()
    now = datetime.now(UTC)

    def one_scan() -> dict[str, object]:
        _, results = quality.scan(engine, contract, tables, now, 600)
        return {r.rule: r.observed for r in results if r.check != "row_count"}

    def per_rule() -> dict[str, object]:
        found = {}
        for rule in sql_rules:
            result = engine.run(quality.rule_sql(contract, rule, tables))
            row = dict(zip(result.columns, result.rows[0], strict=True))
            found.update({r.rule: r.observed for r in quality.evaluate(replace(contract, rules=(rule,)), row, now)[1]})
        return found

    one_scan(), per_rule()  # warm the file cache for both
    times: dict[str, list[float]] = {"one scan": [], "per rule": []}
    answers = {}
    for _ in range(args.repeat):  # alternating, so drift in the machine's speed hits both
        for name, fn in (("one scan", one_scan), ("per rule", per_rule)):
            started = time.perf_counter()
            answers[name] = fn()
            times[name].append(time.perf_counter() - started)
    if answers["one scan"] != answers["per rule"]:
        print(f"the two ways disagree: {answers}")
        return 1
    print(f"rules checked: {len(sql_rules)} SQL rules of the orders contract; observed: {answers['one scan']}")
    scan, each = statistics.median(times["one scan"]), statistics.median(times["per rule"])
    print(
        f"one scan: 1 query, median {scan:.2f} s of {args.repeat}: {', '.join(f'{t:.2f}' for t in times['one scan'])}"
    )
    print(
        f"per rule: {len(sql_rules)} queries, median {each:.2f} s of {args.repeat}: "
        f"{', '.join(f'{t:.2f}' for t in times['per rule'])}"
    )
    print(f"per rule / one scan: {each / scan:.2f}x the time")

    sizes = column_bytes(lake.processed("orders"))
    key = list(contract.primary_key)

    def read(columns: list[str]) -> int:
        return max(ATHENA_MIN_BYTES, sum(sizes.get(c, 0) for c in set(columns) if c != contract.partition_column))

    scan_bytes = read(key + [c for r in sql_rules for c in r.columns])
    rule_bytes = sum(read(key + list(r.columns)) for r in sql_rules)
    print(
        f"Athena-billed bytes (Parquet columns read, 10 MB minimum per query): one scan {scan_bytes:,}, "
        f"per rule {rule_bytes:,} ({rule_bytes / scan_bytes:.2f}x)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
