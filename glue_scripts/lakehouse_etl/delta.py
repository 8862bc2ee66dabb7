"""Delta table operations: create, merge one batch idempotently, housekeeping, time travel."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from chalicelib.config import Contract
from chalicelib.errors import TableError
from lakehouse_etl.duck import STREAM_ROWS, Rows
from lakehouse_etl.transform import BATCH_COLUMN, processed_schema, table_schema

if TYPE_CHECKING:
    from deltalake import DeltaTable

log = logging.getLogger(__name__)

RETENTION_DAYS = 30  # time travel kept (seed 003); VACUUM never deletes files younger than this
TABLE_PROPERTIES = {
    "delta.deletedFileRetentionDuration": f"interval {RETENTION_DAYS} days",
    "delta.logRetentionDuration": f"interval {RETENTION_DAYS} days",
}
# processed/ tables also keep a change data feed: what each commit inserted, deleted and updated (old and new rows),
# so curated/ recomputes only the groups a batch touched (lakehouse_etl.curated).
CHANGE_FEED = {"delta.enableChangeDataFeed": "true"}


@dataclass(frozen=True)
class MergeResult:
    version: int  # the table version holding the batch
    skipped: bool  # the batch was already in the table (a re-run)
    metrics: dict[str, Any]
    table_rows: int  # the table's rows at that version, from its log's per-file record counts


def open_table(uri: str, storage_options: dict[str, str]) -> DeltaTable | None:
    """The Delta table at `uri`, or None if there is none; a log delta-rs cannot read is a TableError naming it (a
    negative decimal partition value as Sail 0.7.2 writes it, `-1.-50`, say)."""
    from deltalake import DeltaTable
    from deltalake.exceptions import DeltaError, TableNotFoundError

    try:
        return DeltaTable(uri, storage_options=storage_options)
    except TableNotFoundError:
        return None
    except DeltaError as exc:
        raise TableError(f"{uri}: its Delta log cannot be read: {exc}") from exc


def exists(uri: str, storage_options: dict[str, str]) -> bool:
    """Whether a Delta table is at `uri`: its log holds an entry. One listing (s3:ListBucket) and no read, as a catalog
    lookup is on AWS: a reader the table's files are closed to (the quality_check Lambda and curated/) still knows
    the table is there, where opening it would be AccessDenied."""
    if not uri.startswith("s3://"):
        log = Path(uri.removeprefix("file://")) / "_delta_log"
        return log.is_dir() and any(log.iterdir())
    import boto3

    o = {k.upper(): v for k, v in storage_options.items()}
    s3 = boto3.client(
        "s3",
        endpoint_url=o.get("AWS_ENDPOINT_URL"),
        region_name=o.get("AWS_REGION"),
        aws_access_key_id=o.get("AWS_ACCESS_KEY_ID"),  # none given: the default chain, as on Glue
        aws_secret_access_key=o.get("AWS_SECRET_ACCESS_KEY"),
        aws_session_token=o.get("AWS_SESSION_TOKEN"),
    )
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bool(s3.list_objects_v2(Bucket=bucket, Prefix=f"{key.rstrip('/')}/_delta_log/", MaxKeys=1).get("KeyCount"))


def ensure_table(uri: str, schema: pa.Schema, partition_by: list[str], storage_options: dict[str, str]) -> Any:
    """The processed table at `uri`, created if need be, with its change data feed on (turned on for a table made
    before the feed was kept: curated/ rebuilds once from such a table, then follows its changes)."""
    from deltalake import DeltaTable

    table = open_table(uri, storage_options)
    if table is None:
        table = DeltaTable.create(
            uri,
            schema=schema,
            partition_by=partition_by or None,
            mode="ignore",
            configuration={**TABLE_PROPERTIES, **CHANGE_FEED},
            storage_options=storage_options,
        )
    elif table.metadata().configuration.get("delta.enableChangeDataFeed") != "true":
        table.alter.set_table_properties(CHANGE_FEED)
    add_missing_columns(table, schema)
    return table


def add_missing_columns(table: Any, schema: pa.Schema) -> None:
    """Add the columns of `schema` a table made before them lacks (nullable: its older rows read NULL), in one
    commit, so a write with them needs no schema evolution (`_batch` on a table made before the gate used it)."""
    from deltalake.schema import Schema

    have = set(pa.schema(table.schema().to_arrow()).names)
    missing = [schema.field(name).with_nullable(True) for name in schema.names if name not in have]
    if missing:
        table.alter.add_columns(Schema.from_arrow(pa.schema(missing)).fields)


def literal(value: Any) -> str:
    """A SQL literal typed like the partition column, so delta-rs can prune files by partition value."""
    if isinstance(value, date):
        return f"DATE '{value.isoformat()}'"
    if isinstance(value, int | float):
        return str(value)
    return "'" + str(value).replace("'", "''") + "'"


def merge_predicate(
    contract: Contract, rows: Rows, table: Any = None, storage_options: dict[str, str] | None = None
) -> str:
    """Key equality plus literal partition values: the batch's, and (given the table) those of the partitions that
    already hold one of its keys, so a key whose partition value changed is matched and moved, never duplicated
    (upsert by key means one row per key). Other partitions are not even read."""
    keys = " AND ".join(f't."{k}" = s."{k}"' for k in contract.primary_key)
    part = contract.partition_column
    if not part or rows.num_rows == 0:
        return keys
    values = set(rows.distinct(part))
    if table is not None:
        values |= key_partitions(table, contract, rows, storage_options or {}, exclude=values)
    return f'{keys} AND t."{part}" IN ({", ".join(literal(v) for v in sorted(values))})'


def partition_values(contract: Contract, rows: Rows) -> list[str] | None:
    """The partition values of `rows` as text (ISO dates), sorted; None for an unpartitioned table."""
    part = contract.partition_column
    if not part:
        return None
    return sorted(str(v) for v in rows.distinct(part))


def key_partitions(
    table: Any, contract: Contract, rows: Rows, storage_options: dict[str, str], *, exclude: Collection[Any] = ()
) -> set[Any]:
    """The partitions outside `exclude` that hold one of the batch's keys, in two steps that read no more than keys:
    the files whose statistics (min and max of the first key column, in the table's log) admit one of the batch's
    keys (a file without statistics may hold any key), then a key-only read of those files' key column, joined to
    the batch's keys. DuckDB streams the key column past the batch's keys: none of it is held whole."""
    key, part = contract.primary_key[0], contract.partition_column
    files = pa.table(table.get_add_actions(flatten=True))
    bounds = {
        "p": files.column(f"partition.{part}"),
        "lo": files.column(f"min.{key}") if f"min.{key}" in files.column_names else pa.nulls(files.num_rows),
        "hi": files.column(f"max.{key}") if f"max.{key}" in files.column_names else pa.nulls(files.num_rows),
    }
    con, batch = rows.con, rows.name
    con.register("_file_bounds", pa.table(bounds))
    try:
        candidates = [
            v
            for (v,) in con.execute(
                f"SELECT DISTINCT p FROM _file_bounds f WHERE p IS NOT NULL AND EXISTS (SELECT 1 FROM {batch} s "
                f'WHERE (f.lo IS NULL OR s."{key}" >= f.lo) AND (f.hi IS NULL OR s."{key}" <= f.hi))'
            ).fetchall()
            if v not in exclude
        ]
    finally:
        con.unregister("_file_bounds")
    if not candidates:
        return set()
    # only the candidates' files: a dataset of every file of the table costs time that grows with the table
    where = [(part, "in", [str(v) for v in candidates])]
    con.register("_target", dataset(table, storage_options, where))
    try:
        return {
            v
            for (v,) in con.execute(
                f'SELECT DISTINCT t."{part}" FROM _target t WHERE t."{key}" IN (SELECT "{key}" FROM {batch})'
            ).fetchall()
        }
    finally:
        con.unregister("_target")


def append_files(table: Any, rows: Rows, contract: Contract, commit: Any, storage_options: dict[str, str]) -> None:
    """Append `rows` to `table` in one commit, a partition at a time: the rows stream sorted by the partition column
    into pyarrow's dataset writer, which closes each file once its partition is passed, and the written files are
    committed as add actions (with their statistics) and `commit`'s app transaction. Written by hand because
    delta-rs 1.6 keeps a writer open per partition until the end of a write, so a load that spans every day of a
    year holds them all in memory at once; this keeps a few files open, whatever the number of partitions."""
    import uuid

    import pyarrow.dataset as ds

    part = contract.partition_column
    schema = processed_schema(contract)
    written: list[Any] = []
    filesystem, root = arrow_filesystem(table.table_uri, storage_options)
    ds.write_dataset(
        rows.reader(order_by=part),
        root,
        filesystem=filesystem,
        format="parquet",
        partitioning=ds.partitioning(pa.schema([schema.field(part)]), flavor="hive") if part else None,
        basename_template=f"part-{uuid.uuid4().hex}-{{i}}.parquet",
        existing_data_behavior="overwrite_or_ignore",
        max_open_files=4,  # rows come sorted by partition: a passed partition's file is closed
        max_rows_per_group=STREAM_ROWS,
        file_visitor=written.append,
    )
    actions = [_add_action(f.path.removeprefix(root).lstrip("/"), f.size, f.metadata, part) for f in written]
    table.create_write_transaction(
        actions, mode="append", schema=schema, partition_by=[part] if part else None, commit_properties=commit
    )
    table.update_incremental()  # the caller reads the new version from it


def arrow_filesystem(uri: str, storage_options: dict[str, str]) -> tuple[Any, str]:
    """pyarrow's own filesystem for a table location and the table's path in it: S3 with the lake's endpoint and
    credentials (none given: the AWS default chain, as on Glue), or the local disk."""
    import pyarrow.fs as pa_fs

    if not uri.startswith("s3://"):
        return pa_fs.LocalFileSystem(), uri.removeprefix("file://")
    o = {k.upper(): v for k, v in storage_options.items()}
    keys = {}
    if o.get("AWS_ACCESS_KEY_ID"):
        keys = {"access_key": o["AWS_ACCESS_KEY_ID"], "secret_key": o.get("AWS_SECRET_ACCESS_KEY")}
        keys["session_token"] = o.get("AWS_SESSION_TOKEN")
    endpoint = o.get("AWS_ENDPOINT_URL")
    filesystem = pa_fs.S3FileSystem(region=o.get("AWS_REGION"), endpoint_override=endpoint, **keys)
    return filesystem, uri.removeprefix("s3://").rstrip("/")


def _add_action(path: str, size: int, metadata: Any, part: str | None) -> Any:
    """The add action of a Parquet file written into the table: its partition value (from its hive folder) and the
    statistics Delta readers prune by (rows, nulls, and min and max of string, integer and date columns; left out
    for other types, which the protocol allows, rather than round a decimal or a timestamp the wrong way)."""
    import json
    from datetime import UTC

    from deltalake.transaction import AddAction

    values: dict[str, str | None] = {}
    if part:
        value = path.split("/")[0].removeprefix(f"{part}=")
        values[part] = None if value == "__HIVE_DEFAULT_PARTITION__" else value
    low: dict[str, Any] = {}
    high: dict[str, Any] = {}
    nulls: dict[str, int] = {}
    for i in range(metadata.num_columns):
        name = metadata.schema.column(i).name
        groups = [metadata.row_group(g).column(i).statistics for g in range(metadata.num_row_groups)]
        if any(stats is None for stats in groups):
            continue  # a column without statistics in some row group gets none: readers then read the file
        nulls[name] = sum(stats.null_count for stats in groups)
        if all(stats.has_min_max and _stat_value(stats.min) is not None for stats in groups) and groups:
            low[name] = _stat_value(min(stats.min for stats in groups))
            high[name] = _stat_value(max(stats.max for stats in groups))
    stats_json = {"numRecords": metadata.num_rows, "minValues": low, "maxValues": high, "nullCount": nulls}
    now = int(datetime.now(UTC).timestamp() * 1000)
    return AddAction(path, size, values, now, True, json.dumps(stats_json))


def _stat_value(value: Any) -> Any:
    """A min or max as Delta's statistics write it, or None for a type left out (booleans, decimals, timestamps)."""
    if isinstance(value, bool | datetime) or not isinstance(value, str | int | date):
        return None
    return value.isoformat() if isinstance(value, date) else value


def merge_batch(
    uri: str,
    contract: Contract,
    source: pa.Table | Rows,
    *,
    app_id: str,
    version: int,
    storage_options: dict[str, str],
    attempts: int = 6,
    memory_limit: int | None = None,
) -> MergeResult:
    """Upsert `source` by primary key as Delta app transaction (`app_id`, `version`).

    A re-run of a batch already committed is a no-op (the table remembers the transaction). A commit that
    loses a race with another writer is retried on the fresh table: MERGE by key is safe to repeat. The rows are
    streamed in; past `memory_limit` bytes the MERGE spills to disk.
    """
    rows = source if isinstance(source, Rows) else Rows.of(source, table_schema(contract))
    try:
        return _merge(uri, contract, stamped(rows, version), app_id, version, storage_options, attempts, memory_limit)
    finally:
        if rows is not source:
            rows.close()


def stamped(rows: Rows, batch: int) -> Rows:
    """`rows` with the batch number in `_batch` (a view on their session: nothing is copied)."""
    view = "_batch_rows"
    rows.con.execute(
        f'CREATE OR REPLACE TEMP VIEW "{view}" AS SELECT *, CAST({int(batch)} AS BIGINT) AS "{BATCH_COLUMN}" '
        f"FROM {rows.name}"
    )
    schema = None if rows.schema is None else rows.schema.append(pa.field(BATCH_COLUMN, pa.int64()))
    return Rows(rows.con, f'"{view}"', schema)


def _merge(
    uri: str,
    contract: Contract,
    rows: Rows,
    app_id: str,
    version: int,
    storage_options: dict[str, str],
    attempts: int,
    memory_limit: int | None,
) -> MergeResult:
    from deltalake import CommitProperties, Transaction
    from deltalake.exceptions import CommitFailedError

    schema = processed_schema(contract)
    for attempt in range(1, attempts + 1):
        table = ensure_table(
            uri, schema, [contract.partition_column] if contract.partition_column else [], storage_options
        )
        if (table.transaction_version(app_id) or 0) >= version:
            return MergeResult(table.version(), True, {}, table.count())
        if rows.num_rows == 0:
            return MergeResult(table.version(), False, {}, table.count())
        commit = CommitProperties(app_transactions=[Transaction(app_id, version)])
        try:
            if not table.file_uris():  # an empty table: nothing to match, an append is the same and 3x faster
                append_files(table, rows, contract, commit, storage_options)
                return MergeResult(table.version(), False, {"num_target_rows_inserted": rows.num_rows}, table.count())
            # before the stream: a query on its session ends it
            predicate = merge_predicate(contract, rows, table, storage_options)
            metrics = (
                table.merge(
                    rows.reader(),
                    predicate,
                    source_alias="s",
                    target_alias="t",
                    merge_schema=True,
                    max_spill_size=memory_limit,
                    commit_properties=commit,
                )
                .when_matched_update_all()
                .when_not_matched_insert_all()
                .execute()
            )
            return MergeResult(table.version(), False, metrics, table.count())
        except CommitFailedError as exc:
            if attempt == attempts:
                raise
            delay = min(5.0, 0.1 * 2**attempt) * random.uniform(0.5, 1.5)  # no botocore here: delta-rs commits
            log.warning("commit conflict on %s (attempt %d), retrying in %.2fs: %s", uri, attempt, delay, exc)
            time.sleep(delay)
    raise TableError(f"{uri}: no commit after {attempts} attempts")  # not reached: the last attempt re-raises


def roll_back(uri: str, app_id: str, number: int, committed: int, storage_options: dict[str, str]) -> str:
    """Undo the commit `committed` that carried app transaction (`app_id`, `number`): a batch that failed its
    audit. The table is restored to the version before it (a new commit; time travel still shows both). Only
    the table's latest commit can be undone so; a repeat finds it undone. Returns what was done."""
    from deltalake import DeltaTable

    table = open_table(uri, storage_options)
    if table is None or committed < 1:
        return "nothing to undo"
    at = DeltaTable(uri, version=committed, storage_options=storage_options)
    before = DeltaTable(uri, version=committed - 1, storage_options=storage_options)
    if (at.transaction_version(app_id) or 0) < number or (before.transaction_version(app_id) or 0) >= number:
        return "nothing to undo"  # the batch made no commit of its own (every row rejected, say)
    if sorted(table.file_uris()) == sorted(before.file_uris()):
        return "already undone"
    if table.version() != committed:
        raise TableError(
            f"{uri}: batch {number} committed version {committed}, but the table is at {table.version()}; "
            "later commits would be undone too, so restore it by hand (lakehouse table history)"
        )
    table.restore(committed - 1)
    return f"restored to version {committed - 1}"


def _app_transactions(transactions: Mapping[str, int]) -> Any:
    from deltalake import CommitProperties, Transaction

    return CommitProperties(app_transactions=[Transaction(app, version) for app, version in transactions.items()])


def overwrite(
    uri: str, table: pa.Table, storage_options: dict[str, str], *, transactions: Mapping[str, int] | None = None
) -> int:
    """Replace a curated table's content in one commit (recording `transactions`: app id -> version); returns the new
    version."""
    from deltalake import write_deltalake

    write_deltalake(
        uri,
        table,
        mode="overwrite",
        schema_mode="overwrite",
        configuration=TABLE_PROPERTIES,
        storage_options=storage_options,
        commit_properties=_app_transactions(transactions or {}),
    )
    written = open_table(uri, storage_options)
    if written is None:  # it was written just now
        raise TableError(f"{uri}: not a Delta table after it was written")
    return written.version()


def merge_groups(
    uri: str,
    rows: pa.Table,
    *,
    key: Sequence[str],
    group: str,
    groups: str,
    storage_options: dict[str, str],
    transactions: Mapping[str, int],
) -> tuple[int, int]:
    """Replace the groups `groups` (a SQL list of literals of column `group`) of a curated table by `rows`, in one
    commit recording `transactions`: rows of those groups are updated, inserted, or deleted when `rows` no longer
    has them; other groups are not touched. Returns the new version and the table's rows."""
    table = open_table(uri, storage_options)
    if table is None:
        raise TableError(f"{uri}: no table to merge into")
    scope = f't."{group}" IN ({groups})'
    keys = " AND ".join(f't."{k}" = s."{k}"' for k in key)
    (
        table.merge(
            rows,
            f"{keys} AND {scope}",
            source_alias="s",
            target_alias="t",
            commit_properties=_app_transactions(transactions),
        )
        .when_matched_update_all()
        .when_not_matched_insert_all()
        .when_not_matched_by_source_delete(predicate=scope)
        .execute()
    )
    return int(table.version()), int(table.count())


def housekeeping(uri: str, storage_options: dict[str, str], *, dry_run: bool = False) -> dict[str, Any]:
    """Compact small files, then VACUUM what is older than the retention (time travel keeps 30 days)."""
    table = open_table(uri, storage_options)
    if table is None:
        return {"table": uri, "missing": True}
    compacted = {} if dry_run else table.optimize.compact()
    removed = table.vacuum(retention_hours=RETENTION_DAYS * 24, dry_run=dry_run, enforce_retention_duration=True)
    return {
        "table": uri,
        "files_added": compacted.get("numFilesAdded", 0),
        "files_removed_by_compaction": compacted.get("numFilesRemoved", 0),
        "files_vacuumed": len(removed),
        "version": table.version(),
    }


def read_history(uri: str, storage_options: dict[str, str], limit: int = 1) -> list[dict[str, Any]]:
    """The table's newest commits (operation, version, timestamp, ...), newest first."""
    from deltalake import DeltaTable

    return list(DeltaTable(uri, storage_options=storage_options).history(limit))


def read(
    uri: str,
    storage_options: dict[str, str],
    *,
    version: int | None = None,
    as_of: str | None = None,
    columns: list[str] | None = None,
    filters: list[tuple[str, str, Any]] | None = None,
) -> pa.Table:
    """A table as Arrow with the Delta schema's types, optionally as it was at a version or a time (ISO 8601).
    `columns` and `filters` (ANDed `(column, op, value)` triples) are pushed down to the log: delta-rs skips the
    partitions and files whose values and statistics cannot match, and only the columns asked for are read.

    The rows are filtered after they are cast to the Delta schema, not by pyarrow's Parquet scan: files delta-rs's
    MERGE writes carry `string_view` columns, for which pyarrow 24 has no compare or filter kernel (docs/etl.md,
    "Reading a Delta table"). delta-rs's own SQL reader (QueryBuilder) would read them, but it holds the
    interpreter's lock while it waits on S3, so a server in the same process (moto in the tests) never answers."""
    from deltalake import DeltaTable

    table = open_table(uri, storage_options)
    if table is None:
        raise TableError(f"{uri}: no Delta table there")
    latest = table.version()
    if version is not None:
        if not 0 <= version <= latest:
            raise TableError(f"{uri}: no version {version}; the table has versions 0 to {latest}")
        table = DeltaTable(uri, storage_options=storage_options, version=version)
    if as_of is not None:
        table.load_as_version(version_at(table, as_of, uri))
    reason = unreadable(table)
    if reason:
        raise TableError(f"{uri}: {reason}")
    schema = pa.schema(table.schema().to_arrow())
    wanted = list(schema.names) if columns is None else list(columns)
    unknown = [c for c in wanted if c not in schema.names]
    if unknown:
        raise TableError(f"{uri}: no column {', '.join(map(repr, unknown))}; the table has {', '.join(schema.names)}")
    if isinstance(filters, str | bytes) or not isinstance(filters or [], Collection):
        raise TableError(f"{uri}: filters are a list of (column, op, value) triples, not {filters!r}")
    where = [_typed_filter(uri, schema, f) for f in filters or []]
    needed = list(dict.fromkeys([*wanted, *(f[0] for f in where)]))
    try:
        files = _pruned_dataset(table, filters or [], storage_options)
    except pa.ArrowInvalid as exc:  # delta-rs 1.6 spells a negative decimal partition value -1.50 as -1.-50
        raise TableError(f"{uri}: a partition value delta-rs cannot give to Arrow: {exc}") from exc
    read = _scan(files, needed)
    fields = [schema.field(c) for c in needed]  # column by column: a reader does not enforce NOT NULL
    data = pa.Table.from_arrays([read.column(f.name).cast(f.type) for f in fields], schema=pa.schema(fields))
    if where:
        import pyarrow.parquet as pq

        to_expression: Any = pq.filters_to_expression  # untyped in pyarrow 24
        data = data.filter(to_expression(where))  # the triples pyarrow's readers take, values typed as the columns
    return data.select(wanted)


# reader features that change nothing for a reader of the log's files as they are listed
READABLE_FEATURES = {"timestampNtz", "v2Checkpoint", "vacuumProtocolCheck"}


def unreadable(table: Any) -> str | None:
    """Why the Arrow dataset delta-rs builds cannot read `table` right, or None. Column mapping (reader version 2, or
    the feature in version 3) names the files' columns by physical names it does not map: every column would read
    as NULL. Other reader features (deletion vectors, ...) it would ignore: rows would come back that are gone."""
    mode = table.metadata().configuration.get("delta.columnMapping.mode", "none")
    if mode != "none":
        return f"the table uses column mapping (mode {mode}), which the lakehouse's readers cannot read"
    features = set(table.protocol().reader_features or []) - READABLE_FEATURES
    if features:
        return f"the table needs reader features the lakehouse's readers lack: {', '.join(sorted(features))}"
    return None


def _scan(dataset: Any, columns: list[str]) -> pa.Table:
    """The dataset's columns, read with no work left in flight once it returns (no pre-buffered range is read that
    the scan does not wait for)."""
    import pyarrow.dataset as ds

    return dataset.to_table(columns=columns, fragment_scan_options=ds.ParquetFragmentScanOptions(pre_buffer=False))


def dataset(table: Any, storage_options: dict[str, str], filters: Any = None) -> Any:
    """delta-rs's Arrow dataset of `table`'s files (those `filters` cannot rule out, given), read through pyarrow's
    own filesystem. delta-rs's default is a Python filesystem (DeltaStorageHandler) whose files Arrow's IO threads
    hold: one released there once the interpreter is exiting ends the process in `terminate called without an
    active exception` (seen in `lakehouse table show` and `lakehouse query --format parquet`; the validator's race,
    chalicelib/ingest/validation.py). A native filesystem puts no Python object on Arrow's threads."""
    import pyarrow.fs as pa_fs

    filesystem, root = arrow_filesystem(table.table_uri, storage_options)
    return table.to_pyarrow_dataset(
        filesystem=pa_fs.SubTreeFileSystem(root.rstrip("/"), filesystem), file_pruning_predicate=filters or None
    )


def _pruned_dataset(table: Any, filters: list[tuple[str, str, Any]], storage_options: dict[str, str]) -> Any:
    """The dataset of the files the log cannot rule out; all of them if delta-rs cannot encode a filter's value (it
    refuses decimals, for one): the rows are filtered afterwards either way."""
    from deltalake.exceptions import DeltaError

    if filters:
        try:
            return dataset(table, storage_options, filters)
        except (DeltaError, pa.ArrowException, ValueError):
            pass
    return dataset(table, storage_options)


_OPS = ("=", "==", "!=", "<", "<=", ">", ">=", "in", "not in")


def _typed_filter(uri: str, schema: pa.Schema, triple: Any) -> tuple[str, str, Any]:
    """A `(column, op, value)` filter checked against the table, its value cast to the column's type (an int
    against a decimal, a naive time against a UTC timestamp, read as UTC); a one-line TableError if it cannot be."""
    if isinstance(triple, str | bytes) or not isinstance(triple, Collection) or len(triple) != 3:
        raise TableError(f"{uri}: a filter is a (column, op, value) triple, not {triple!r}")
    column, op, value = triple
    if not isinstance(column, str) or column not in schema.names:
        raise TableError(f"{uri}: no column {column!r}; the table has {', '.join(schema.names)}")
    if not isinstance(op, str) or op.lower().strip() not in _OPS:
        raise TableError(f"{uri}: filter operator {op!r} is not one of {', '.join(_OPS)}")
    op = op.lower().strip()
    listed = op in ("in", "not in")
    if listed and (isinstance(value, str | bytes) or not isinstance(value, Collection) or not value):
        raise TableError(f"{uri}: filter {column!r} {op} needs a non-empty list of values, not {value!r}")
    values = list(value) if listed else [value]
    kind = schema.field(column).type
    if pa.types.is_decimal(kind):  # an int64 does not fit a narrow decimal's precision; its exact value does
        from decimal import Decimal

        values = [Decimal(str(v)) if isinstance(v, int | float) and not isinstance(v, bool) else v for v in values]
    if pa.types.is_timestamp(kind):  # "2026-12-01 00:00:00" as well as "...T...Z": Python reads both, Arrow not
        values = [_iso_time(v) if isinstance(v, str) else v for v in values]
    try:  # value by value: a list may mix spellings ("2182.29", 2182.29) that Arrow would not put in one array
        typed = pa.array([pa.array([v]).cast(kind)[0].as_py() for v in values], type=kind)
    except (pa.ArrowException, TypeError, ValueError) as exc:
        raise TableError(f"{uri}: filter on {column!r} ({kind}): cannot compare with {value!r}") from exc
    return (column, op, typed if listed else typed[0])


def _iso_time(text: str) -> datetime | str:
    """An ISO 8601 time as an aware datetime (naive: UTC), or the text as it was when it is not one."""
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return text
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def version_at(table: Any, as_of: str, uri: str = "") -> int:
    """The newest version committed at or before `as_of` (ISO 8601), by the commits' recorded timestamps, the ones
    `history()` shows: delta-rs's own lookup goes by the log files' modification times, which can trail them, so a
    time copied from the history could open the version before."""
    when = _iso_time(as_of) if isinstance(as_of, str) else as_of
    if not isinstance(when, datetime):
        raise TableError(f"{uri}: as_of {as_of!r} is not an ISO 8601 time (e.g. 2026-12-01T10:00:00Z)")
    ms = when.timestamp() * 1000
    history = table.history()
    versions = [int(h["version"]) for h in history if h["timestamp"] <= ms]
    if not versions:
        first = min(history, key=lambda h: h["version"])
        created = datetime.fromtimestamp(first["timestamp"] / 1000, UTC).isoformat(timespec="seconds")
        raise TableError(f"{uri}: no version at or before {as_of}; the table's first commit is from {created}")
    return max(versions)
