"""Every Delta table of the lake, for people and for SQL: names, locations, and a DuckDB connection over them."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import unquote

from chalicelib.athena import QueryError, QueryResult, read_only, within_athena_limit
from chalicelib.errors import NotFoundError, TableError
from lakehouse_etl import delta, duck
from lakehouse_etl.curated import CURATED_SQL
from lakehouse_etl.delta import arrow_filesystem, literal
from lakehouse_etl.file_cache import FileCache
from lakehouse_etl.lake import Lake

if TYPE_CHECKING:
    from duckdb import DuckDBPyConnection

T = TypeVar("T")


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


def duckdb_connection(lake: Lake, sql: str | None = None, *, cache: FileCache | None = None) -> Any:
    """DuckDB with a view per existing table (`processed_orders`, `curated_customer_summary`, ...); given `sql`, only
    the tables it names (listing a table's files costs time that grows with them: a scan of one batch should not pay
    it for every table of the lake). `cache` holds local copies of S3 files for DuckDB's own reader."""
    con = duck.session()
    for name, uri in (tables(lake) if sql is None else tables_in(lake, sql)).items():
        table = delta.open_table(uri, lake.storage_options)
        if table is not None:
            register(con, sql_name(name), table, lake.storage_options, cache)
    return con


def register(con: Any, name: str, table: Any, storage_options: dict[str, str], cache: FileCache | None) -> None:
    """`name`: a view of `table`'s current version, every column cast to the type the Delta schema gives it (files of
    other writers differ: Spark's INT96 timestamps read as naive TIMESTAMP, delta-rs's MERGE writes `string_view`),
    and partition values as the log records them. DuckDB's own Parquet reader over the version's file list when the
    files are on this disk (or copied there by `cache`): several times faster than DuckDB's scan of the Arrow
    dataset delta-rs builds (bench/sql.py), which serves S3 without a cache (the Glue jobs) and an empty table.
    What neither reads right is refused (`delta.unreadable`)."""
    import duckdb
    import pyarrow as pa

    reason = delta.unreadable(table)
    if reason:
        raise TableError(f"{name}: {reason}")
    schema = pa.schema(table.schema().to_arrow())
    actions = pa.table(table.get_add_actions(flatten=True))
    paths = [unquote(p) for p in actions.column("path").to_pylist()]
    root = table.table_uri.removeprefix("file://").rstrip("/")
    if paths and root.startswith("s3://") and cache is not None:
        sizes = actions.column("size_bytes").to_pylist()
        files = cache.paths(zip([f"{root}/{p}" for p in paths], sizes, strict=True), storage_options)
    elif paths and not root.startswith("s3://"):
        files = [f"{root}/{p}" for p in paths]
    else:
        files = []
    if files:
        try:
            source = _parquet_source(con, table, schema, actions, paths, files, root)
            con.execute(f'CREATE VIEW "{name}" AS SELECT {_cast_columns(schema)} FROM {source}')
            return
        except duckdb.BinderException:  # a column of the table's schema in none of its files yet
            pass
    try:
        dataset = delta.dataset(table, storage_options)
    except pa.ArrowInvalid as exc:  # delta-rs 1.6 spells a negative decimal partition value -1.50 as -1.-50
        raise TableError(f"{name}: a partition value cannot be read through Arrow: {exc}") from exc
    con.register(name, dataset)  # its schema is the log's, to which pyarrow casts each file's columns


def _cast_columns(schema: Any) -> str:
    """The view's select list: every column cast to the DuckDB type of its Delta type."""
    return ", ".join(f'CAST("{c}" AS {t}) AS "{c}"' for c, t in _duck_types(schema).items())


def _duck_types(schema: Any) -> dict[str, str]:
    import duckdb

    types = duckdb.from_arrow(schema.empty_table()).types
    return dict(zip(schema.names, (str(t) for t in types), strict=True))


def _parquet_source(
    con: Any, table: Any, schema: Any, actions: Any, paths: list[str], files: list[str], root: str
) -> str:
    """DuckDB's `read_parquet` over `files`, partition columns added with the log's values: by DuckDB's hive parsing
    when every file's folders spell exactly those values (and nothing above the table's root looks like a
    partition), else a branch per partition holding its values as typed literals (a filter on them skips the other
    branches' files). A column in none of a branch's files (added after they were written) is NULL there, as Delta
    reads it."""
    parts = list(table.metadata().partition_columns)
    data = [c for c in schema.names if c not in parts]
    types = _duck_types(schema)
    values: list[tuple[str | None, ...]] = [()] * len(paths)
    if parts:
        logged = (actions.column(f"partition.{c}").to_pylist() for c in parts)
        values = [tuple(_text(v) for v in row) for row in zip(*logged, strict=True)]
    held = dict(
        con.execute(
            f"SELECT file_name, list(name) FROM parquet_schema([{', '.join(literal(f) for f in files)}]) "
            "GROUP BY file_name"
        ).fetchall()
    )

    def read(group: list[str], extra: str = "", hive: str = "hive_partitioning = false") -> str:
        present = {c for c in data if any(c in held.get(f, []) for f in group)}
        # Files that lack a column the others hold are read by name, at the price of reading every file's footer
        # whenever the view is bound (each query), so only then.
        uneven = any(not present.issubset(held.get(f, [])) for f in group)
        selected = [f'"{c}"' if c in present else f'CAST(NULL AS {types[c]}) AS "{c}"' for c in data]
        listed = ", ".join(literal(f) for f in group)
        options = hive + (", union_by_name = true" if uneven else "")
        return f"SELECT {', '.join(selected)}{extra} FROM read_parquet([{listed}], {options})"

    if not parts:
        return f"({read(files)})"
    if _hive_spelled(root, parts, paths, values):
        hive_types = ", ".join(f"{literal(c)}: {literal(types[c])}" for c in parts)
        extra = "".join(f', "{c}"' for c in parts)
        return f"({read(files, extra, f'hive_partitioning = true, hive_types = {{{hive_types}}}')})"
    groups: dict[tuple[str | None, ...], list[str]] = {}
    for file, value in zip(files, values, strict=True):
        groups.setdefault(value, []).append(file)
    branches = [
        read(
            group,
            "".join(
                f', CAST({"NULL" if v is None else literal(v)} AS {types[c]}) AS "{c}"'
                for c, v in zip(parts, value, strict=True)
            ),
        )
        for value, group in groups.items()
    ]
    return "(" + " UNION ALL ".join(branches) + ")"


def _text(value: Any) -> str | None:
    """A partition value as Delta's log spells it (dates and decimals as ISO text)."""
    if value is None:
        return None
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def _hive_spelled(root: str, parts: list[str], paths: list[str], values: list[tuple[str | None, ...]]) -> bool:
    """Whether DuckDB's hive parsing of the files' full paths gives exactly the log's partition values: no `k=v`
    folder above the table's root (DuckDB would take it for a column), each file's folders `c=value` in the log's
    order with its value, and no value DuckDB would parse as NULL (a string `null`, say)."""
    if any("=" in segment for segment in root.split("/")):
        return False
    for path, value in zip(paths, values, strict=True):
        folders = path.split("/")[:-1]
        spelled = ("__HIVE_DEFAULT_PARTITION__" if v is None else v for v in value)
        expected = [f"{c}={v}" for c, v in zip(parts, spelled, strict=True)]
        if folders != expected or any(v is not None and v.strip().lower() in ("null", "") for v in value):
            return False
    return True


_SHOW_TABLES = re.compile(r"\s*SHOW\s+(ALL\s+)?TABLES\b", re.IGNORECASE)


def _place(lines: list[str], sent: str, statement: str) -> str:
    """`line L, column C` of `statement` from DuckDB's message, which shows the line it read as `LINE n: ...` and
    a caret under the place ('' if it shows none). `sent` is what DuckDB ran: `statement`, maybe inside a COPY."""
    for number, line in enumerate(lines[:-1]):
        shown = re.match(r"LINE (\d+): ", line)
        caret = lines[number + 1].find("^")
        if shown and caret >= len(shown[0]):
            line_no, column = int(shown[1]), caret - len(shown[0]) + 1
            if line_no == 1:
                column -= sent.find(statement)  # the wrapping before it (a COPY's)
            if not line[len(shown[0]) :].startswith("..."):  # DuckDB cut a long line short: the column is its own
                return f"line {line_no}, column {column}"
            return f"line {line_no}"
    return ""


class DuckDBEngine:
    """The local stage's Athena: read-only SQL over the lake's Delta tables, with the same table names."""

    name = "duckdb"

    def __init__(self, lake: Lake, cache: FileCache | None = None) -> None:
        self.lake, self.cache = lake, cache
        # One DuckDB session for the engine's life, its views made again only when their table has a new version:
        # opening a session and binding a table's file list cost more than a small query (bench/sql.py).
        self._con: Any = None
        self._versions: dict[str, int | None] = {}
        self._tables: dict[str, Any] = {}  # view -> its DeltaTable, brought up to date before each statement
        self._filesystems: dict[str, tuple[Any, str]] = {}  # table URI -> pyarrow filesystem and path
        self._lock = threading.Lock()  # one statement at a time on the session

    def tables(self) -> set[str]:
        """The lake's tables that exist (what the Glue catalog lists on AWS): a listing each, no read."""
        return {sql_name(n) for n, uri in tables(self.lake).items() if delta.exists(uri, self.lake.storage_options)}

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

        def written(cursor: DuckDBPyConnection) -> int:  # COPY answers one row: the rows written
            row = cursor.fetchone()
            return int(row[0]) if row else 0

        return self._execute(sql, timeout, written, around=copy)

    def _execute(
        self,
        sql: str,
        timeout: float,
        fetch: Callable[[DuckDBPyConnection], T],
        around: Callable[[str], str] = lambda statement: statement,
    ) -> T:
        import duckdb

        within_athena_limit(sql)  # what Athena would refuse, refused here as Athena refuses it
        statement = read_only(sql)
        with self._lock:
            con = self._session(statement)
            timer = threading.Timer(timeout, con.interrupt)  # DuckDB stops the running query with InterruptException
            timer.start()
            try:
                return fetch(con.execute(around(statement)))
            except duckdb.InterruptException as exc:
                raise QueryError(f"DuckDB: the query ran past its {timeout:g} s timeout and was stopped") from exc
            except duckdb.Error as exc:
                raise self._error(exc, around(statement), statement) from None
            finally:
                timer.cancel()

    def _error(self, exc: Exception, sent: str, statement: str) -> QueryError:
        """DuckDB's error as one line: a syntax error with its place in `statement`, an unknown table with the lake's
        tables (DuckDB would suggest its own catalog's, e.g. `pg_description`), anything else its first line."""
        import duckdb

        lines = str(exc).splitlines()
        first = lines[0].split(": ", 1)[-1] if lines else type(exc).__name__
        missing = re.match(r"Table with name (\S+) does not exist", first)
        if isinstance(exc, duckdb.CatalogException) and missing:
            known = ", ".join(sorted(self.tables())) or "none yet (a pipeline run makes them: `lakehouse run`)"
            return QueryError(f"no table {missing[1]}; the lake has: {known}")
        where = _place(lines, sent, statement)
        if not where and first.endswith("at end of input"):  # DuckDB shows no place there: the statement's end
            text = statement.rstrip().rstrip(";")
            where = f"line {text.count(chr(10)) + 1}, column {len(text.rsplit(chr(10), 1)[-1]) + 1}"
        if isinstance(exc, duckdb.ParserException):
            return QueryError(f"syntax error{f' at {where}' if where else ''}: {first.removeprefix('syntax error ')}")
        return QueryError(f"DuckDB: {first}{f' (at {where})' if where else ''}")

    def _session(self, statement: str) -> Any:
        """The session, its views of the tables `statement` names at their tables' current versions."""
        if self._con is None:
            self._con = duck.session()
        # SHOW TABLES names no table, yet lists them all (as Athena lists the Glue database's): view them all
        named = tables(self.lake) if _SHOW_TABLES.match(statement) else tables_in(self.lake, statement)
        for name, uri in named.items():
            view = sql_name(name)
            table = self._tables[view] = self._current(self._tables.get(view), uri)
            version = None if table is None else table.version()
            if view in self._versions and self._versions[view] == version:
                continue
            self._con.execute(f'DROP VIEW IF EXISTS "{view}"')
            if table is not None:
                register(self._con, view, table, self.lake.storage_options, self.cache)
            self._versions[view] = version
        return self._con

    def _current(self, table: Any, uri: str) -> Any:
        """`table` with the log's new commits read, or opened if need be. A commit is the log's next JSON file
        appearing (the Delta protocol; S3 is strongly consistent), so one look for that file tells whether
        anything changed: a HEAD on S3, where delta-rs's `update_incremental` lists the log and reads its
        checkpoint pointer (two round trips, each a moto request on the local stage)."""
        from deltalake.exceptions import DeltaError
        from pyarrow.fs import FileType

        if table is not None:
            filesystem, root = self._filesystems.setdefault(uri, arrow_filesystem(uri, self.lake.storage_options))
            commit = f"{root.rstrip('/')}/_delta_log/{table.version() + 1:020d}.json"
            if filesystem.get_file_info(commit).type == FileType.NotFound:
                return table
            try:
                table.update_incremental()
                return table
            except DeltaError:  # gone, or made again under the same path: open it afresh below
                pass
        return delta.open_table(uri, self.lake.storage_options)
