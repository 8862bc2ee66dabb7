"""`lake.sql` (DuckDB over the lake's Delta tables, as `lakehouse.connect("local").sql` runs it) against a bare
DuckDB over the same tables' Parquet files, in one process, on the same queries.

    python bench/sql.py [--rows 2000000] [--repeats 5]

The tables are written with delta-rs into a local folder (an orders table partitioned by day, and a small
aggregate like curated/); both sides read those files. Prints each side's median and the ratio (target: lake.sql
at least 0.8x the bare speed, i.e. bare time / lake time >= 0.8).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "glue_scripts")]

QUERIES = {
    "processed: revenue by status": "SELECT status, count(*), sum(total_amount) FROM processed_orders GROUP BY 1",
    "processed: one day": "SELECT count(*) FROM processed_orders WHERE order_date = DATE '2026-06-15'",
    "curated: top categories": "SELECT category, sum(revenue) FROM curated_daily_sales_by_category GROUP BY 1",
}


def build(folder: Path, rows: int) -> None:
    import numpy as np
    import pyarrow as pa
    from deltalake import write_deltalake

    rng = np.random.default_rng(7)
    days = np.datetime64("2026-01-01") + rng.integers(0, 365, rows).astype("timedelta64[D]")
    orders = pa.table(
        {
            "order_id": pa.array([f"O{i:09d}" for i in range(rows)]),
            "status": pa.array(rng.choice(["placed", "shipped", "delivered"], rows)),
            "total_amount": pa.array((rng.random(rows) * 1000).round(2)).cast(pa.decimal128(12, 2)),
            "order_date": pa.array(days, pa.date32()),
        }
    )
    write_deltalake(str(folder / "processed" / "orders"), orders, partition_by=["order_date"])
    curated = pa.table(
        {
            "order_date": pa.array(np.repeat(np.arange(np.datetime64("2026-01-01"), np.datetime64("2027-01-01")), 6)),
            "category": pa.array(["books", "garden", "toys", "audio", "kitchen", "sports"] * 365),
            "revenue": pa.array((rng.random(365 * 6) * 1e4).round(2)).cast(pa.decimal128(18, 2)),
        }
    )
    write_deltalake(str(folder / "curated" / "daily_sales_by_category"), curated)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    import duckdb
    from deltalake import DeltaTable
    from lakehouse_etl.lake import Lake
    from lakehouse_etl.local_sql import DuckDBEngine

    from chalicelib.config import load_settings

    folder = Path(tempfile.mkdtemp(prefix="bench-sql-"))
    build(folder, args.rows)
    engine = DuckDBEngine(Lake(str(folder), load_settings(ROOT / "config")))
    files = {
        "processed_orders": DeltaTable(str(folder / "processed" / "orders")).file_uris(),
        "curated_daily_sales_by_category": DeltaTable(str(folder / "curated" / "daily_sales_by_category")).file_uris(),
    }
    bare = duckdb.connect()
    for name, uris in files.items():  # the bare side: DuckDB's own Parquet reader over the file list
        bare.execute(f"CREATE VIEW {name} AS SELECT * FROM read_parquet({uris!r}, hive_partitioning = true)")
    ratios = []
    for title, sql in QUERIES.items():
        lake_times, bare_times = [], []
        for _ in range(args.repeats):
            start = time.perf_counter()
            engine.arrow(sql)
            lake_times.append(time.perf_counter() - start)
            start = time.perf_counter()
            bare.execute(sql).to_arrow_table()
            bare_times.append(time.perf_counter() - start)
        lake_s, bare_s = statistics.median(lake_times), statistics.median(bare_times)
        ratios.append(bare_s / lake_s)
        print(
            f"{title:32} lake.sql {lake_s * 1000:8.1f} ms   bare duckdb {bare_s * 1000:8.1f} ms   "
            f"speed ratio {bare_s / lake_s:.2f}"
        )
    print(f"lowest speed ratio (bare time / lake.sql time): {min(ratios):.2f}  (target >= 0.8)")


if __name__ == "__main__":
    main()
