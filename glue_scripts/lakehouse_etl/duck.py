"""The one place that opens DuckDB for the ETL (UTC, a setting Arrow dataset scans need, a memory limit with spill to
disk), and `Rows`: a batch's rows held by such a session, read back as streams."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

STREAM_ROWS = 128 * 1024  # rows per record batch handed out of DuckDB


def session(*, memory_limit: int | None = None, spill_dir: str | None = None) -> Any:
    """A DuckDB connection. Given `memory_limit` (bytes) it keeps its working memory below that and spills what does
    not fit to `spill_dir` (sorts, joins, aggregates and tables alike), so the worker's memory, not the batch's size,
    decides what fits (docs/etl.md, "Memory")."""
    import duckdb

    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute("SET enable_progress_bar = false")  # a long query would draw one on stdout: job logs, JSON reports
    if memory_limit:
        con.execute(f"SET memory_limit = '{max(1, memory_limit // 2**20)}MiB'")
    if spill_dir:
        con.execute(f"SET temp_directory = '{spill_dir}'")
    # DuckDB pushes join-derived string bounds into Arrow dataset scans as string_view literals, which
    # pyarrow cannot compare with the tables' string columns ("no kernel matching (string, string_view)").
    con.execute("SET disabled_optimizers = 'join_filter_pushdown'")
    # Trino functions DuckDB names differently, so one SQL text (quality scans, example queries) runs on both.
    con.execute("CREATE MACRO regexp_like(s, p) AS regexp_matches(s, p)")
    con.execute("CREATE MACRO array_join(l, sep) AS array_to_string(l, sep)")
    return con


@dataclass
class Rows:
    """Rows held by a DuckDB session (table or view `name`), read as a fresh stream as often as needed: a commit
    retried after a conflict reads them again, and nothing holds them all in Arrow memory at once."""

    con: Any
    name: str
    schema: pa.Schema | None = None  # the streams are cast to it
    _count: int | None = field(default=None, repr=False)

    @classmethod
    def of(cls, table: pa.Table, schema: pa.Schema | None = None) -> Rows:
        """Rows of an Arrow table, registered (not copied) in a session of their own."""
        con = session()
        con.register("source", table)
        return cls(con, "source", schema)

    @property
    def num_rows(self) -> int:
        if self._count is None:
            self._count = int(self.con.execute(f"SELECT count(*) FROM {self.name}").fetchone()[0])
        return self._count

    def reader(self, *, order_by: str | None = None) -> pa.RecordBatchReader:
        """A stream of the rows (sorted by column `order_by`: DuckDB sorts within its memory limit). It ends when its
        session runs another query: read it before asking anything else."""
        order = f' ORDER BY "{order_by}"' if order_by else ""
        stream = self.con.sql(f"SELECT * FROM {self.name}{order}").to_arrow_reader(STREAM_ROWS)
        return stream.cast(self.schema) if self.schema is not None else stream

    def distinct(self, column: str) -> list[Any]:
        """The column's distinct values but null, sorted."""
        query = f'SELECT DISTINCT "{column}" FROM {self.name} WHERE "{column}" IS NOT NULL ORDER BY 1'
        return [v for (v,) in self.con.execute(query).fetchall()]

    def counts(self, column: str) -> dict[Any, int]:
        """How many rows carry each value of the column."""
        query = f'SELECT "{column}", count(*) FROM {self.name} GROUP BY 1'
        return {v: int(n) for v, n in self.con.execute(query).fetchall()}

    def to_parquet(self, path: str) -> None:
        """Write the rows to a local Parquet file, streamed."""
        self.con.execute(f"COPY (SELECT * FROM {self.name}) TO '{path}' (FORMAT parquet)")

    def close(self) -> None:
        self.con.close()
