"""`lakehouse query`: SQL over the lake, on Athena for a deployed stage and on DuckDB for the local stage.

Both engines see the same table names (`processed_<dataset>`, `curated_<table>`), so a query written in the
SQL that Trino and DuckDB share (the examples in `queries/`) runs unchanged on either.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from chalicelib.athena import Athena, QueryError, QueryResult, read_only
from chalicelib.config import Settings, Stage

EXAMPLES_DIR = Path(__file__).resolve().parent.parent / "queries"


def examples() -> dict[str, Path]:
    return {p.stem: p for p in sorted(EXAMPLES_DIR.glob("*.sql"))}


def on_duckdb(settings: Settings, stage: Stage, sql: str) -> QueryResult:
    """Run on DuckDB over the stage's Delta tables. DuckDB does not count the bytes it reads from Arrow
    datasets, so `bytes_scanned` is the size of the tables the query names: an upper bound."""
    import duckdb
    from lakehouse_etl import delta
    from lakehouse_etl.catalog import duckdb_connection, tables
    from lakehouse_etl.lake import Lake

    statement = read_only(sql)
    lake = Lake.for_stage(settings, stage)
    con = duckdb_connection(lake)
    try:
        cursor = con.execute(statement)
        rows = cursor.fetchall()
        columns = [d[0] for d in cursor.description or []]
    except duckdb.Error as exc:
        raise QueryError(f"DuckDB: {exc}") from exc
    finally:
        con.close()
    named, size = [], 0
    for name, uri in tables(lake).items():
        view = name.replace("/", "_")
        if re.search(rf"\b{view}\b", statement, re.IGNORECASE):
            table = delta.open_table(uri, lake.storage_options)
            if table is not None:
                named.append(view)
                size += sum(table.get_add_actions(flatten=True).column("size_bytes").to_pylist())
    return QueryResult(columns, rows, "duckdb", size, {"tables": named, "bytes": "size of the tables named"})


def on_athena(settings: Settings, stage: Stage, sql: str, timeout: float) -> QueryResult:
    from chalicelib.aws import ClientSettings, client

    athena = client("athena", ClientSettings.for_stage(stage))
    output = f"s3://{stage.bucket}/{settings.zones.athena_results}"
    return Athena(athena, stage.glue_database, stage.athena_workgroup, output).run(sql, timeout)


def as_text(value: Any) -> str:
    return "" if value is None else str(value)
