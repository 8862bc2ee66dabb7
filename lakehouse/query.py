"""`lakehouse query`: SQL over the lake, on Athena for a deployed stage and on DuckDB for the local stage.

Both engines see the same table names (`processed_<dataset>`, `curated_<table>`), so a query written in the
SQL that Trino and DuckDB share (the examples in `chalicelib/queries/`) runs unchanged on either.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from chalicelib import QUERIES_DIR as EXAMPLES_DIR
from chalicelib.athena import Athena, QueryResult
from chalicelib.config import Settings, Stage


def examples() -> dict[str, Path]:
    return {p.stem: p for p in sorted(EXAMPLES_DIR.glob("*.sql"))}


def on_duckdb(settings: Settings, stage: Stage, sql: str) -> QueryResult:
    """Run on DuckDB over the stage's Delta tables. DuckDB does not count the bytes it reads from Arrow
    datasets, so `bytes_scanned` is the size of the tables the query names: an upper bound."""
    from lakehouse_etl import delta
    from lakehouse_etl.lake import Lake
    from lakehouse_etl.local_sql import DuckDBEngine, sql_name, tables_in

    lake = Lake.for_stage(settings, stage)
    result = DuckDBEngine(lake).run(sql)
    named, size = [], 0
    for name, uri in tables_in(lake, sql).items():
        table = delta.open_table(uri, lake.storage_options)
        if table is not None:
            named.append(sql_name(name))
            size += sum(table.get_add_actions(flatten=True).column("size_bytes").to_pylist())
    return replace(result, bytes_scanned=size, details={"tables": named, "bytes": "size of the tables named"})


def sql_engine(settings: Settings, stage: Stage, *, local: bool) -> Any:
    """Where a stage's SQL runs: DuckDB over the local stage's Delta tables, Athena elsewhere."""
    if local:
        from lakehouse_etl.lake import Lake
        from lakehouse_etl.local_sql import DuckDBEngine

        return DuckDBEngine(Lake.for_stage(settings, stage))
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
