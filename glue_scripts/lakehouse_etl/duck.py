"""The one place that opens DuckDB for the ETL: UTC, and a setting Arrow dataset scans need."""

from __future__ import annotations

from typing import Any


def session() -> Any:
    import duckdb

    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    # DuckDB pushes join-derived string bounds into Arrow dataset scans as string_view literals, which
    # pyarrow cannot compare with the tables' string columns ("no kernel matching (string, string_view)").
    con.execute("SET disabled_optimizers = 'join_filter_pushdown'")
    # Trino functions DuckDB names differently, so one SQL text (quality scans, example queries) runs on both.
    con.execute("CREATE MACRO regexp_like(s, p) AS regexp_matches(s, p)")
    con.execute("CREATE MACRO array_join(l, sep) AS array_to_string(l, sep)")
    return con
