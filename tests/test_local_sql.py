"""The local stage's SQL engine: DuckDB's own Parquet reader over a Delta table's file list must read exactly what
delta-rs reads (types, column order, partition values, columns added later), stay current with new commits, and
copy S3 files once into its cache."""

from __future__ import annotations

import os
import time
from datetime import UTC, date, datetime
from decimal import Decimal

import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake
from lakehouse_etl import delta
from lakehouse_etl.file_cache import FileCache
from lakehouse_etl.lake import Lake
from lakehouse_etl.local_sql import DuckDBEngine


def _orders(ids: list[int], days: list[date | None], cities: list[str | None]) -> pa.Table:
    n = len(ids)
    return pa.table(
        {
            "order_id": pa.array(ids, pa.int64()),
            "total": pa.array([Decimal("12.34")] * n, pa.decimal128(12, 2)),
            "placed_at": pa.array([datetime(2026, 11, 25, 10, tzinfo=UTC)] * n, pa.timestamp("us", tz="UTC")),
            "city": pa.array(cities, pa.string()),
            "order_date": pa.array(days, pa.date32()),
        }
    )


def _views(engine: DuckDBEngine) -> dict[str, str]:
    rows = engine._con.execute("SELECT view_name, sql FROM duckdb_views() WHERE NOT internal").fetchall()
    return dict(rows)


def test_duckdb_reads_a_partitioned_table_as_delta_rs_does(settings, tmp_path):
    """Partition values with NULLs, spaces, slashes and percent signs come back from the file paths as the log
    holds them; the columns keep the table's order and types; a column added by a later merge is NULL in the
    files written before it."""
    uri = f"{tmp_path}/processed/orders"
    first = _orders([1, 2, 3], [date(2026, 11, 1), None, date(2026, 11, 2)], ["a b", "x/y", None])
    write_deltalake(uri, first, partition_by=["city"])
    later = _orders([4], [date(2026, 11, 3)], ["é%"]).append_column("channel", pa.array(["web"]))
    write_deltalake(uri, later, partition_by=["city"], mode="append", schema_mode="merge")

    engine = DuckDBEngine(Lake(str(tmp_path), settings))
    got = engine.arrow("SELECT * FROM processed_orders ORDER BY order_id")
    expected = delta.read(uri, {}).sort_by("order_id")
    assert got.schema.names == expected.schema.names  # the table's order (a merge may move a partition column)
    assert set(got.schema.names) == {*first.schema.names, "channel"}
    assert got.schema.types == expected.schema.types
    assert got.to_pylist() == expected.to_pylist()
    assert got.column("city").to_pylist() == ["a b", "x/y", None, "é%"]
    assert got.column("channel").to_pylist() == [None, None, None, "web"]
    assert "read_parquet" in _views(engine)["processed_orders"]  # DuckDB's own reader, not an Arrow dataset scan
    # a value with a slash is not one folder: the partition values come from the log, a branch per partition
    assert "UNION ALL" in _views(engine)["processed_orders"]


def test_a_table_whose_files_all_hold_every_column_is_read_without_union_by_name(settings, tmp_path):
    uri = f"{tmp_path}/processed/orders"
    write_deltalake(uri, _orders([1, 2], [date(2026, 11, 1)] * 2, ["a", "b"]), partition_by=["order_date"])
    write_deltalake(uri, _orders([3], [date(2026, 11, 2)], ["c"]), partition_by=["order_date"], mode="append")
    engine = DuckDBEngine(Lake(str(tmp_path), settings))
    one_day = engine.arrow("SELECT order_id FROM processed_orders WHERE order_date = DATE '2026-11-02'")
    assert one_day.column("order_id").to_pylist() == [3]
    view = _views(engine)["processed_orders"]
    assert "order_date := 'DATE'" in view and "union_by_name" not in view  # typed from the log, not guessed


def test_the_engine_sees_each_new_commit_and_a_table_made_again(settings, tmp_path):
    """The session and its views are kept between statements, never a stale version of a table."""
    uri = f"{tmp_path}/processed/orders"
    engine = DuckDBEngine(Lake(str(tmp_path), settings))
    with pytest.raises(Exception, match="processed_orders"):
        engine.arrow("SELECT count(*) FROM processed_orders")
    write_deltalake(uri, _orders([1], [date(2026, 11, 1)], ["a"]))
    count = "SELECT count(*) AS n FROM processed_orders"
    assert engine.arrow(count).column("n").to_pylist() == [1]
    write_deltalake(uri, _orders([2, 3], [date(2026, 11, 1)] * 2, ["a", "b"]), mode="append")
    assert engine.arrow(count).column("n").to_pylist() == [3]
    DeltaTable(uri).delete("order_id = 2")  # a commit that removes a file's rows
    assert engine.arrow(count).column("n").to_pylist() == [2]
    write_deltalake(uri, _orders([9], [date(2026, 11, 1)], ["z"]), mode="overwrite")
    assert engine.arrow("SELECT order_id FROM processed_orders").column("order_id").to_pylist() == [9]


def test_an_empty_table_reads_as_no_rows_with_its_columns(settings, tmp_path):
    uri = f"{tmp_path}/processed/orders"
    DeltaTable.create(uri, schema=_orders([], [], []).schema, partition_by=["order_date"])
    got = DuckDBEngine(Lake(str(tmp_path), settings)).arrow("SELECT * FROM processed_orders")
    assert got.num_rows == 0 and got.schema.names[0] == "order_id"


def test_the_cache_trims_least_recently_used_copies_but_never_one_in_use(tmp_path):
    cache = FileCache(tmp_path, max_bytes=250)
    old = time.time() - 3600
    for i, name in enumerate(["a", "b", "c"]):
        path = tmp_path / "bucket" / name
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(b"x" * 100)
        os.utime(path, (old + i, old + i))
    assert cache.trim(keep={str(tmp_path / "bucket" / "a")}) == 100  # "a" is oldest but in use: "b" goes
    assert sorted(p.name for p in (tmp_path / "bucket").iterdir()) == ["a", "c"]
    (tmp_path / "bucket" / "d").write_bytes(b"x" * 100)  # used just now: kept over the cap
    assert FileCache(tmp_path, max_bytes=0).trim() == 200  # a and c, not d
    assert [p.name for p in (tmp_path / "bucket").iterdir()] == ["d"]


def test_s3_files_are_copied_once_and_a_cut_copy_again(lake_job, tmp_path, monkeypatch):
    """On the local stage DuckDB reads local copies of the S3 files: the first statement copies them, the next
    copies nothing, a copy cut short (its size is not the log's) is copied again, and new files are added."""
    from lakehouse_etl import file_cache

    copied: list[str] = []
    real_copy = file_cache._copy
    monkeypatch.setattr(file_cache, "_copy", lambda fs, uri, local: (copied.append(uri), real_copy(fs, uri, local)))
    lake = lake_job.lake
    uri = lake.processed("orders")
    write_deltalake(uri, _orders([1, 2], [date(2026, 11, 1)] * 2, ["a", "b"]), storage_options=lake.storage_options)
    cache = FileCache(tmp_path / "cache")
    engine = DuckDBEngine(lake, cache=cache)
    count = "SELECT count(*) AS n FROM processed_orders"
    assert engine.arrow(count).column("n").to_pylist() == [2]
    (copy,) = cache.root.rglob("*.parquet")
    assert str(copy).startswith(str(cache.root / lake_job.stage.bucket / "processed" / "orders"))
    assert len(copied) == 1
    assert DuckDBEngine(lake, cache=cache).arrow(count).column("n").to_pylist() == [2]
    assert len(copied) == 1  # a second engine (another `lakehouse query`) finds the copy

    copy.write_bytes(copy.read_bytes()[:10])  # cut short, as a crash mid-copy would leave it
    assert DuckDBEngine(lake, cache=cache).arrow(count).column("n").to_pylist() == [2]
    assert len(copied) == 2
    size = DeltaTable(uri, storage_options=lake.storage_options).get_add_actions(flatten=True)["size_bytes"]
    assert copy.stat().st_size == size.to_pylist()[0]

    write_deltalake(uri, _orders([3], [date(2026, 11, 2)], ["c"]), mode="append", storage_options=lake.storage_options)
    assert engine.arrow(count).column("n").to_pylist() == [3]
    assert len(copied) == 3 and len(list(cache.root.rglob("*.parquet"))) == 2
