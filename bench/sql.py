"""`lake.sql` (DuckDB over the lake's Delta tables, as `lakehouse.connect("local").sql` runs it) against a bare
DuckDB over the same tables' Parquet files, in one process, on the same queries.

    python bench/sql.py [--rows 2000000] [--repeats 5]

The tables (an orders table partitioned by day, and a small aggregate like curated/) are written with delta-rs
twice: into a local folder, and into S3 on a moto server as the local stage holds them, where lake.sql reads local
copies of the files (lakehouse_etl/file_cache.py) and the bare side reads those same copies. Prints each side's
median and the ratio (target: lake.sql at least 0.8x the bare speed, i.e. bare time / lake time >= 0.8), and on S3
what the first query paid to copy the files.
"""

from __future__ import annotations

import argparse
import os
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


def build(root: str, rows: int, storage_options: dict[str, str] | None = None) -> None:
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
    write_deltalake(f"{root}/processed/orders", orders, partition_by=["order_date"], storage_options=storage_options)
    curated = pa.table(
        {
            "order_date": pa.array(np.repeat(np.arange(np.datetime64("2026-01-01"), np.datetime64("2027-01-01")), 6)),
            "category": pa.array(["books", "garden", "toys", "audio", "kitchen", "sports"] * 365),
            "revenue": pa.array((rng.random(365 * 6) * 1e4).round(2)).cast(pa.decimal128(18, 2)),
        }
    )
    write_deltalake(f"{root}/curated/daily_sales_by_category", curated, storage_options=storage_options)


def compare(engine: object, files: dict[str, list[str]], repeats: int) -> float:
    """Each query on both sides, medians printed; returns the lowest speed ratio."""
    import duckdb

    bare = duckdb.connect()
    for name, uris in files.items():  # the bare side: DuckDB's own Parquet reader over the file list
        bare.execute(f"CREATE VIEW {name} AS SELECT * FROM read_parquet({uris!r}, hive_partitioning = true)")
    ratios = []
    for title, sql in QUERIES.items():
        lake_times, bare_times = [], []
        for _ in range(repeats):
            start = time.perf_counter()
            engine.arrow(sql)  # type: ignore[attr-defined]
            lake_times.append(time.perf_counter() - start)
            start = time.perf_counter()
            bare.execute(sql).to_arrow_table()
            bare_times.append(time.perf_counter() - start)
        lake_s, bare_s = statistics.median(lake_times), statistics.median(bare_times)
        ratios.append(bare_s / lake_s)
        print(
            f"  {title:32} lake.sql {lake_s * 1000:8.1f} ms   bare duckdb {bare_s * 1000:8.1f} ms   "
            f"speed ratio {bare_s / lake_s:.2f}"
        )
    return min(ratios)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    import boto3
    from deltalake import DeltaTable
    from lakehouse_etl.file_cache import FileCache
    from lakehouse_etl.lake import Lake
    from lakehouse_etl.local_sql import DuckDBEngine

    from chalicelib.config import load_settings
    from lakehouse.localstage import DUMMY_CREDENTIALS, serve_moto

    settings = load_settings(ROOT / "config")
    tables = {
        "processed_orders": "processed/orders",
        "curated_daily_sales_by_category": "curated/daily_sales_by_category",
    }

    folder = Path(tempfile.mkdtemp(prefix="bench-sql-"))
    build(str(folder), args.rows)
    print(f"tables in a local folder ({args.rows:,} orders):")
    files = {name: DeltaTable(str(folder / path)).file_uris() for name, path in tables.items()}
    lowest = [compare(DuckDBEngine(Lake(str(folder), settings)), files, args.repeats)]

    port = 18_000 + os.getpid() % 1000
    server = serve_moto(port)
    options = {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_ALLOW_HTTP": "true", "AWS_REGION": "us-east-1"}
    options.update({"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"})
    s3 = boto3.client(
        "s3",
        endpoint_url=options["AWS_ENDPOINT_URL"],
        region_name="us-east-1",
        **{k.lower(): v for k, v in DUMMY_CREDENTIALS.items()},
    )
    s3.create_bucket(Bucket="bench-lake")
    build("s3://bench-lake", args.rows, options)
    cache = FileCache(folder / "cache")
    engine = DuckDBEngine(Lake("s3://bench-lake", settings, options), cache=cache)
    start = time.perf_counter()
    engine.arrow("SELECT count(*) FROM processed_orders, curated_daily_sales_by_category")
    copied = sum(p.stat().st_size for p in cache.root.rglob("*") if p.is_file())
    print(
        f"tables in S3 on a moto server: the first query copied {copied / 2**20:.0f} MiB in "
        f"{time.perf_counter() - start:.2f} s; then:"
    )
    files = {
        name: [str(p) for p in sorted((cache.root / "bench-lake" / path).rglob("*.parquet"))]
        for name, path in tables.items()
    }
    lowest.append(compare(engine, files, args.repeats))
    server.shutdown()
    print(f"lowest speed ratio (bare time / lake.sql time): {min(lowest):.2f}  (target >= 0.8)")


if __name__ == "__main__":
    main()
