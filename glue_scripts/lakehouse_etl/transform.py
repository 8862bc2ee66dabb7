"""Type, check and de-duplicate one batch, driven by its contract: one SQL statement per step, run by DuckDB.

The SQL is generated from the contract in DuckDB's dialect, kept close to Spark SQL (`TRY_CAST`,
`regexp_replace`, window functions; DuckDB's `regexp_full_match` and `QUALIFY` would need rewording), so
the same rules can move to a Glue Spark job when one node is outgrown.

Cleaning rules (documented in docs/etl.md):
- every value is trimmed; an empty string is a null;
- numbers may carry currency symbols (EUR, USD, GBP, JPY signs) and `,` thousands separators; `.` is the
  decimal point; decimals are rounded to the contract's scale;
- timestamps: ISO 8601 with `T` or a space, with `Z`, `+hh:mm`, `+hhmm` or a zone name, or none (UTC is
  assumed), or Unix epoch seconds; everything is stored in UTC. Day-first or month-first dates (01/03/2025)
  are ambiguous and rejected;
- a row is rejected (kept, with every reason) for a type error, a null in a required column, a value
  outside the column's `min`/`max`, or a foreign key with no parent row;
- among the rows left, one row per primary key survives: the one delivered last (latest file in the
  batch, then the latest row in that file). Exact and key duplicates are counted, not rejected.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from chalicelib.config import Column, Contract
from chalicelib.errors import TableError
from lakehouse_etl.duck import Rows, session

_NUMBER_CLEAN = "regexp_replace(regexp_replace({x}, '[€$£¥[:space:]]', '', 'g'), ',([0-9]{{3}})', '\\1', 'g')"


@dataclass(frozen=True)
class Cleaned:
    """The outcome of `clean`, held by its DuckDB session (spilled to disk past its memory limit): close it after."""

    rows: Rows  # typed, one row per key, contract columns + _source_file
    rejected: Rows  # raw strings + _reason_code, _reason, _source_file, _row
    duplicates_dropped: int

    def close(self) -> None:
        self.rows.close()

    def __enter__(self) -> Cleaned:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def arrow_type(column: Column) -> pa.DataType:
    if column.type.startswith("decimal"):
        precision, scale = column.type[len("decimal(") : -1].split(",")
        return pa.decimal128(int(precision), int(scale))
    return {
        "string": pa.string(),
        "int32": pa.int32(),
        "int64": pa.int64(),
        "double": pa.float64(),
        "bool": pa.bool_(),
        "date": pa.date32(),
        "timestamp": pa.timestamp("us", tz="UTC"),
    }[column.type]


def table_schema(contract: Contract) -> pa.Schema:
    """A cleaned batch's schema: the contract's columns, typed, and the row's source file."""
    fields = [pa.field(c.name, arrow_type(c), nullable=c.nullable) for c in contract.columns]
    return pa.schema([*fields, pa.field("_source_file", pa.string())])


# The batch that last wrote a row, stamped by the MERGE (its app transaction version): the quality gate selects a
# batch's rows by it (`"_batch" = 12`), a condition whose length does not grow with the batch's files.
BATCH_COLUMN = "_batch"


def processed_schema(contract: Contract) -> pa.Schema:
    """The processed table's schema: a cleaned batch's, and the batch that wrote each row."""
    return table_schema(contract).append(pa.field(BATCH_COLUMN, pa.int64()))


def _q(name: str) -> str:
    return f'"{name}"'


def _typed(column: Column, x: str) -> str:
    """SQL that turns the cleaned string `x` into the column's type, NULL where it cannot."""
    t = column.type
    if t == "string":
        return x
    # Plain values take the first, cheap branch; only the others pay for the regular expressions.
    if t in ("int32", "int64"):
        sql_type = "INTEGER" if t == "int32" else "BIGINT"
        number = _NUMBER_CLEAN.format(x=x)
        return (
            f"CASE WHEN regexp_full_match({x}, '[+-]?[0-9]+') THEN TRY_CAST({x} AS {sql_type}) "
            f"WHEN regexp_full_match({number}, '[+-]?[0-9]+') THEN TRY_CAST({number} AS {sql_type}) END"
        )
    if t == "double" or t.startswith("decimal"):
        sql_type = "DOUBLE" if t == "double" else t.upper()
        return f"COALESCE(TRY_CAST({x} AS {sql_type}), TRY_CAST({_NUMBER_CLEAN.format(x=x)} AS {sql_type}))"
    if t == "bool":
        return f"TRY_CAST({x} AS BOOLEAN)"
    if t == "date":
        return f"COALESCE(TRY_CAST({x} AS DATE), CAST(TRY_CAST({x} AS TIMESTAMPTZ) AS DATE))"
    if t == "timestamp":
        return (
            f"COALESCE(TRY_CAST({x} AS TIMESTAMPTZ), CASE WHEN regexp_full_match({x}, '[0-9]{{9,10}}') "
            f"THEN to_timestamp(CAST({x} AS BIGINT)) END)"
        )
    raise TableError(f"no SQL for type {t}")


def _checks(column: Column, raw: str, typed: str) -> list[tuple[str, str]]:
    """(condition, reason) pairs over the cleaned string `raw` and the typed value; true means a bad row."""
    shown = f"left({raw}, 40)"
    checks = [
        (f"{raw} IS NOT NULL AND {typed} IS NULL", f"'TYPE_ERROR: {column.name} is not a {column.type}: ' || {shown}")
    ]
    if not column.nullable:
        checks.append((f"{raw} IS NULL", f"'REQUIRED: {column.name} is missing'"))
    if column.min is not None:
        checks.append((f"{typed} < {column.min}", f"'OUT_OF_RANGE: {column.name} ' || {shown} || ' < {column.min:g}'"))
    if column.max is not None:
        checks.append((f"{typed} > {column.max}", f"'OUT_OF_RANGE: {column.name} ' || {shown} || ' > {column.max:g}'"))
    return checks


def clean_sql(contract: Contract, references: dict[str, str]) -> str:
    """The statement that types and checks table `batch`, joined to `references[fk column]` key tables.

    Its result has the typed columns, `_reason` (all problems, '; '-joined, NULL for a good row) and the
    lineage columns. The inner query types each value once; the outer one only compares.
    """
    inner, typed, checks, joins = [], [], [], []
    for column in contract.columns:
        raw, value = _q(f"_raw_{column.name}"), _q(column.name)
        cleaned = f"NULLIF(trim(b.{value}), '')"
        inner.append(f"{cleaned} AS {raw}")
        inner.append(f"{_typed(column, cleaned)} AS {value}")
        typed.append(value)
        checks += _checks(column, raw, value)
    for i, (fk_col, (dataset, parent_col)) in enumerate(sorted(contract.foreign_keys.items())):
        alias, raw = f"fk{i}", _q(f"_raw_{fk_col}")
        joins.append(f"LEFT JOIN {references[fk_col]} {alias} ON trim(b.{_q(fk_col)}) = {alias}.k")
        inner.append(f"{alias}.k IS NULL AS _no_parent_{i}")
        checks.append(
            (
                f"{raw} IS NOT NULL AND _no_parent_{i}",
                f"'ORPHAN: {fk_col} ' || {raw} || ' has no {dataset}.{parent_col}'",
            )
        )
    any_bad = " OR ".join(f"({cond})" for cond, _ in checks)
    reason = "concat_ws('; ', " + ", ".join(f"CASE WHEN {cond} THEN {msg} END" for cond, msg in checks) + ")"
    return (
        f"SELECT {', '.join(typed)}, CASE WHEN {any_bad} THEN {reason} END AS _reason, _seq, _row "
        f"FROM (SELECT {', '.join(inner)}, b._seq, b._row FROM batch b {' '.join(joins)})"
    )


def step_sql(contract: Contract, parent_columns: Mapping[str, str]) -> dict[str, str]:
    """The batch step as SQL, one statement per table it makes (`checked`, `rejected`, `dup`, `good`, in that
    order), over tables `batch` (strings and lineage), `files` (`_seq`, `_source_file`) and `parent_<i>` (the i-th
    foreign key's parent rows, key column `parent_columns[fk]`, "k" if absent). Written once in DuckDB's dialect:
    the Spark engine runs the same statements rendered as Spark SQL (lakehouse_etl/spark.py)."""
    references = {}
    for i, fk_col in enumerate(sorted(contract.foreign_keys)):
        column = _q(parent_columns.get(fk_col, "k"))
        # a semi-join on the batch's values: the parent's key column is streamed past them, never held whole
        references[fk_col] = (
            f"(SELECT DISTINCT CAST(p.{column} AS VARCHAR) AS k FROM parent_{i} p "
            f"WHERE CAST(p.{column} AS VARCHAR) IN (SELECT trim({_q(fk_col)}) FROM batch))"
        )
    names = [_q(c) for c in contract.column_names]
    raw = ", ".join(f"b.{c}" for c in names)
    keys = [_q(k) for k in contract.primary_key]
    key = ", ".join(keys)
    in_dup = f"EXISTS (SELECT 1 FROM dup d WHERE {' AND '.join(f'd.{k} = c.{k}' for k in keys)})"
    columns = ", ".join(f"c.{n}" for n in [*names, "_seq"])
    return {
        "checked": clean_sql(contract, references),
        # the raw strings as delivered, with every reason
        "rejected": f"SELECT {raw}, split_part(c._reason, ':', 1) AS _reason_code, c._reason, f._source_file, b._row "
        "FROM (SELECT * FROM checked WHERE _reason IS NOT NULL) c JOIN batch b ON b._seq = c._seq AND b._row = c._row "
        "LEFT JOIN files f ON f._seq = c._seq ORDER BY b._seq, b._row",
        # Only keys that occur more than once pay for the window that picks the last delivered row.
        "dup": f"SELECT {key} FROM checked WHERE _reason IS NULL GROUP BY {key} HAVING count(*) > 1",
        "good": f"SELECT {', '.join('w.' + n for n in names)}, f._source_file FROM ("
        f"SELECT {columns} FROM checked c WHERE c._reason IS NULL AND NOT {in_dup} "
        f"UNION ALL SELECT {', '.join(names)}, _seq FROM (SELECT * FROM checked c WHERE c._reason IS NULL AND {in_dup} "
        f"QUALIFY row_number() OVER (PARTITION BY {key} ORDER BY _seq DESC, _row DESC) = 1)"
        ") w LEFT JOIN files f ON f._seq = w._seq",
    }


def clean(
    batch: pa.Table | pa.RecordBatchReader,
    contract: Contract,
    parents: Mapping[str, tuple[Any, str]] | None = None,
    files: list[str] | None = None,
    *,
    memory_limit: int | None = None,
    spill_dir: str | None = None,
) -> Cleaned:
    """Type, check and de-duplicate `batch` (strings + lineage, from sources.stream_batch), in DuckDB within
    `memory_limit` bytes, spilling to `spill_dir`.

    `parents[fk column]` is (something DuckDB scans: an Arrow table or dataset, its key column) for the parent's
    existing rows: only the keys the batch names are looked up there. `files[_seq]` is the file id each row came
    from.
    """
    import duckdb

    con = session(memory_limit=memory_limit, spill_dir=spill_dir)
    try:
        return _clean(con, batch, contract, parents, files)
    except duckdb.OutOfMemoryException as exc:
        con.close()
        raise TableError(
            f"{contract.name}: the batch needs more working memory than [pipeline] etl_memory_bytes "
            f"({(memory_limit or 0) // 2**20} MiB) allows, even spilling to disk: raise it ({str(exc).splitlines()[0]})"
        ) from exc
    except BaseException:
        con.close()
        raise


def _clean(
    con: Any,
    batch: pa.Table | pa.RecordBatchReader,
    contract: Contract,
    parents: Mapping[str, tuple[Any, str]] | None,
    files: list[str] | None,
) -> Cleaned:
    con.execute("SET preserve_insertion_order = false")  # row order carries no meaning here; lineage does
    if isinstance(batch, pa.RecordBatchReader):  # a stream is read once: keep it (it is scanned twice)
        # Fed a block at a time from this thread: the stream is a Python generator, which DuckDB's own threads
        # must not pull (an error half-way then crashed or hung the interpreter).
        con.register("block", batch.schema.empty_table())
        con.execute("CREATE TABLE batch AS SELECT * FROM block")
        for block in batch:
            con.register("block", block)
            con.execute("INSERT INTO batch SELECT * FROM block")
        con.unregister("block")
    else:
        con.register("batch", batch)
    files = files or []
    con.register(
        "files",
        pa.table({"_seq": pa.array(range(len(files)), pa.int32()), "_source_file": pa.array(files, pa.string())}),
    )
    for i, fk_col in enumerate(sorted(contract.foreign_keys)):
        parent, _ = (parents or {}).get(fk_col, (pa.table({"k": pa.array([], pa.string())}), "k"))
        con.register(f"parent_{i}", parent)
    steps = step_sql(contract, {fk: column for fk, (_, column) in (parents or {}).items()})
    con.execute(f"CREATE TEMP TABLE checked AS {steps['checked']}")
    good = con.execute("SELECT count(*) FROM checked WHERE _reason IS NULL").fetchone()[0]
    con.execute(f"CREATE TEMP TABLE rejected AS {steps['rejected']}")
    con.execute(f"CREATE TEMP TABLE dup AS {steps['dup']}")
    con.execute(f"CREATE TEMP TABLE good AS {steps['good']}")
    con.execute("DROP TABLE checked")  # what is left is `good` and `rejected`: free the rest before the MERGE
    con.execute("DROP TABLE dup")
    if isinstance(batch, pa.RecordBatchReader):
        con.execute("DROP TABLE batch")
    rows = Rows(con, "good", table_schema(contract))
    return Cleaned(rows, Rows(con, "rejected"), good - rows.num_rows)
