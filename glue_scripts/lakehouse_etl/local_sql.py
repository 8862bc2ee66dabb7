"""Every Delta table of the lake, for people and for SQL: names, locations, and a DuckDB connection over them."""

from __future__ import annotations

import re
import threading
from typing import Any

from chalicelib.athena import QueryError, QueryResult, read_only
from chalicelib.errors import NotFoundError
from lakehouse_etl import delta, duck
from lakehouse_etl.curated import CURATED_SQL
from lakehouse_etl.lake import Lake


def tables(lake: Lake) -> dict[str, str]:
    """`processed/<dataset>` and `curated/<table>` names with their URIs."""
    names = {f"processed/{d}": lake.processed(d) for d in sorted(lake.settings.datasets)}
    names.update({f"curated/{t}": lake.curated(t) for t in CURATED_SQL})
    return names


def uri_of(lake: Lake, name: str) -> str:
    known = tables(lake)
    if name not in known:
        raise NotFoundError(f"no table {name!r}; known: {', '.join(known)}")
    return known[name]


def sql_name(name: str) -> str:
    """The table's SQL name, the same on DuckDB and in the Glue catalog: `processed/orders` -> `processed_orders`."""
    return name.replace("/", "_")


def tables_in(lake: Lake, sql: str) -> dict[str, str]:
    """The tables (name -> URI) whose SQL names `sql` mentions, matched case-blind as SQL matches them."""
    return {name: uri for name, uri in tables(lake).items() if re.search(rf"\b{sql_name(name)}\b", sql, re.IGNORECASE)}


def duckdb_connection(lake: Lake, sql: str | None = None) -> Any:
    """DuckDB with a view per existing table (`processed_orders`, `curated_customer_summary`, ...); given `sql`, only
    the tables it names (listing a table's files costs time that grows with them: a scan of one batch should not pay
    it for every table of the lake)."""
    con = duck.session()
    for name, uri in (tables(lake) if sql is None else tables_in(lake, sql)).items():
        table = delta.open_table(uri, lake.storage_options)
        if table is not None:
            con.register(sql_name(name), table.to_pyarrow_dataset())
    return con


class DuckDBEngine:
    """The local stage's Athena: read-only SQL over the lake's Delta tables, with the same table names."""

    name = "duckdb"

    def __init__(self, lake: Lake) -> None:
        self.lake = lake

    def tables(self) -> set[str]:
        return {sql_name(n) for n, uri in tables(self.lake).items() if delta.open_table(uri, self.lake.storage_options)}

    def run(self, sql: str, timeout: float = 300.0) -> QueryResult:
        """Run one read-only statement, cut short after `timeout` seconds as Athena's poller would (the local stage
        is no kinder than AWS: a query too slow there is too slow here)."""
        return self._execute(
            sql,
            timeout,
            lambda cursor: QueryResult([d[0] for d in cursor.description or []], cursor.fetchall(), self.name),
        )

    def arrow(self, sql: str, timeout: float = 300.0) -> Any:
        """The same, the result as an Arrow table (its types kept: decimals, dates, timestamps with time zone)."""
        return self._execute(sql, timeout, lambda cursor: cursor.to_arrow_table())

    def export(self, sql: str, path: str, fmt: str, timeout: float = 300.0) -> int:
        """Write the result to `path` (parquet, csv or json: an array of objects) as DuckDB's COPY streams it, never
        holding it whole; returns the rows written."""
        options = {"parquet": "FORMAT parquet", "csv": "FORMAT csv, HEADER", "json": "FORMAT json, ARRAY true"}[fmt]
        target = path.replace("'", "''")

        def copy(statement: str) -> str:  # around the statement the guard let through
            return f"COPY ({statement}) TO '{target}' ({options})"

        return int(self._execute(sql, timeout, lambda cursor: cursor.fetchone()[0], around=copy))

    def _execute(self, sql: str, timeout: float, fetch: Any, around: Any = lambda statement: statement) -> Any:
        import duckdb

        statement = read_only(sql)
        con = duckdb_connection(self.lake, statement)
        timer = threading.Timer(timeout, con.interrupt)  # DuckDB stops the running query with InterruptException
        timer.start()
        try:
            return fetch(con.execute(around(statement)))
        except duckdb.InterruptException as exc:
            raise QueryError(f"DuckDB: the query ran past its {timeout:g} s timeout and was stopped") from exc
        except duckdb.Error as exc:
            raise QueryError(f"DuckDB: {exc}") from exc
        finally:
            timer.cancel()
            con.close()
