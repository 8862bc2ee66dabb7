"""`lakehouse query`: SQL over the lake, on Athena for a deployed stage and on DuckDB for the local stage.

Both engines see the same table names (`processed_<dataset>`, `curated_<table>`), so a query written in the
SQL that Trino and DuckDB share (the examples in `chalicelib/queries/`) runs unchanged on either.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, overload

from chalicelib import QUERIES_DIR as EXAMPLES_DIR
from chalicelib.athena import Athena, QueryResult, read_only
from chalicelib.config import Settings, Stage

if TYPE_CHECKING:
    from lakehouse_etl.local_sql import DuckDBEngine


def examples() -> dict[str, Path]:
    return {p.stem: p for p in sorted(EXAMPLES_DIR.glob("*.sql"))}


def on_duckdb(settings: Settings, stage: Stage, sql: str) -> QueryResult:
    """Run on DuckDB over the stage's Delta tables. DuckDB does not report the bytes a query reads, so
    `bytes_scanned` is the size of the tables the query names: an upper bound."""
    from lakehouse_etl import delta
    from lakehouse_etl.local_sql import sql_name, tables_in

    engine = sql_engine(settings, stage, local=True)
    lake, result = engine.lake, engine.run(sql)
    named, size = [], 0
    for name, uri in tables_in(lake, sql).items():
        table = delta.open_table(uri, lake.storage_options)
        if table is not None:
            named.append(sql_name(name))
            size += sum(table.get_add_actions(flatten=True).column("size_bytes").to_pylist())
    return replace(result, bytes_scanned=size, details={"tables": named, "bytes": "size of the tables named"})


@overload
def sql_engine(settings: Settings, stage: Stage, *, local: Literal[True]) -> DuckDBEngine: ...
@overload
def sql_engine(settings: Settings, stage: Stage, *, local: bool) -> DuckDBEngine | Athena: ...
def sql_engine(settings: Settings, stage: Stage, *, local: bool) -> DuckDBEngine | Athena:
    """Where a stage's SQL runs: DuckDB over the local stage's Delta tables, Athena elsewhere."""
    if local:
        from lakehouse_etl.file_cache import FileCache
        from lakehouse_etl.lake import Lake
        from lakehouse_etl.local_sql import DuckDBEngine

        from lakehouse.paths import CACHE_DIR

        return DuckDBEngine(Lake.for_stage(settings, stage), cache=FileCache.at(CACHE_DIR))
    return Athena.for_stage(settings, stage)


def serve_duckdb_to_local_lambdas() -> None:
    """The local stage's Lambdas run in this process: give them DuckDB as their SQL engine
    (`LAKEHOUSE_SQL_ENGINE = duckdb` in the local stage's Chalice config)."""
    from chalicelib import runtime

    runtime.SQL_ENGINES["duckdb"] = lambda settings, stage: sql_engine(settings, stage, local=True)


def on_athena(settings: Settings, stage: Stage, sql: str, timeout: float) -> QueryResult:
    return Athena.for_stage(settings, stage).run(sql, timeout)


def as_text(value: Any) -> str:
    return "" if value is None else str(value)


def athena_frames(stage: Stage, sql: str, *, chunked: bool = False) -> Any:
    """A read-only statement on Athena through the AWS SDK for pandas: one DataFrame, or an iterator of them
    (`chunked`, for results bigger than memory). Columns keep their types (pyarrow-backed)."""
    import awswrangler as wr
    import boto3

    return wr.athena.read_sql_query(
        read_only(sql),
        database=stage.glue_database,
        workgroup=stage.athena_workgroup,
        ctas_approach=False,  # no CTAS tables: the workgroup's guards and result location apply as for `query`
        chunksize=chunked or None,
        dtype_backend="pyarrow",
        boto3_session=boto3.Session(region_name=stage.region),
    )


def export(settings: Settings, stage: Stage, sql: str, path: Path, fmt: str, timeout: float, *, local: bool) -> int:
    """Write a query's result to `path` (parquet, csv, or json: an array of objects), streamed: DuckDB's COPY on
    the local stage, Athena's result read chunk by chunk on AWS. Returns the rows written."""
    if local:
        return sql_engine(settings, stage, local=True).export(sql, str(path), fmt, timeout)
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows, writer = 0, None
    with path.open("wb") as file:
        if fmt == "json":
            file.write(b"[")
        for chunk in athena_frames(stage, sql, chunked=True):
            table = pa.Table.from_pandas(chunk, preserve_index=False)
            if fmt == "parquet":
                writer = writer or pq.ParquetWriter(file, table.schema)
                writer.write_table(table)
            elif fmt == "csv":
                file.write(chunk.to_csv(index=False, header=rows == 0).encode())
            else:
                records = chunk.to_json(orient="records", date_format="iso")[1:-1]
                file.write((b"," if rows and records else b"") + records.encode())
            rows += len(chunk)
        if writer is not None:
            writer.close()
        if fmt == "json":
            file.write(b"]")
    return rows
