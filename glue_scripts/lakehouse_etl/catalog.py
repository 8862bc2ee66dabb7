"""Every Delta table of the lake, for people and for SQL: names, locations, and a DuckDB connection over them."""

from __future__ import annotations

from typing import Any

from . import delta, duck
from .curated import CURATED_SQL
from .lake import Lake


def tables(lake: Lake) -> dict[str, str]:
    """`processed/<dataset>` and `curated/<table>` names with their URIs."""
    names = {f"processed/{d}": lake.processed(d) for d in sorted(lake.settings.datasets)}
    names.update({f"curated/{t}": lake.curated(t) for t in CURATED_SQL})
    return names


def uri_of(lake: Lake, name: str) -> str:
    known = tables(lake)
    if name not in known:
        raise KeyError(f"no table {name!r}; known: {', '.join(known)}")
    return known[name]


def duckdb_connection(lake: Lake) -> Any:
    """DuckDB with a view per existing table (`processed_orders`, `curated_customer_summary`, ...)."""
    con = duck.session()
    for name, uri in tables(lake).items():
        table = delta.open_table(uri, lake.storage_options)
        if table is not None:
            con.register(name.replace("/", "_"), table.to_pyarrow_dataset())
    return con
