"""The Spark engine: the batch step of lakehouse_etl/transform.py and the upsert of lakehouse_etl/delta.py, for
batches past one node, with the same contracts. Glue runs it as classic PySpark 3.5 with Delta Lake
(`--datalake-formats delta`); the local stage and the tests run it on Sail (`pysail`, a Spark Connect server).

Nothing here writes the rules again: the batch step's SQL is `transform.step_sql`, written in DuckDB's dialect and
rendered as Spark SQL by sqlglot (`to_spark`), with the few rewrites its Spark generator does not make. The code
keeps to what both classic PySpark 3.5 and Spark Connect run: DataFrames and Spark SQL, no `delta.tables` API.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from chalicelib.config import Contract
from chalicelib.errors import TableError
from lakehouse_etl.delta import literal
from lakehouse_etl.transform import step_sql

_local: dict[str, Any] = {}  # the Sail server of this process, started once
_starting = threading.Lock()


def to_spark(sql: str) -> str:
    """DuckDB SQL as Spark SQL. sqlglot's Spark generator does most of it (QUALIFY becomes a subquery, VARCHAR a
    STRING); by hand: a whole-string regular expression match becomes an anchored RLIKE, POSIX classes and `\\1`
    back-references become Java's, and epoch seconds become a timestamp with `timestamp_seconds`."""
    import sqlglot
    from sqlglot import exp

    def rewrite(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.RegexpFullMatch):
            return exp.RegexpLike(this=node.this, expression=exp.Literal.string(f"^(?:{node.expression.this})$"))
        if isinstance(node, exp.RegexpReplace):
            pattern = node.expression.this.replace("[:space:]", "\\s")
            replacement = node.args["replacement"].this.replace("\\1", "$1")
            return exp.RegexpReplace(
                this=node.this,
                expression=exp.Literal.string(pattern),
                replacement=exp.Literal.string(replacement),
            )
        if isinstance(node, exp.UnixToTime):
            return exp.Anonymous(this="timestamp_seconds", expressions=[node.this])
        return node

    return sqlglot.parse_one(sql, read="duckdb").transform(rewrite).sql(dialect="spark")


@dataclass(frozen=True)
class Engine:
    """A Spark session and what its Delta writer can do."""

    spark: Any
    # Delta Lake on Spark (Glue 5.0) writes the change data feed curated/ reads; Sail 0.7.2 refuses to write a
    # table that has it ("Table features must be specified, please specify: ChangeDataFeed"), so on Sail the
    # commit itself is handed to delta-rs (`merge`).
    writes_change_feed: bool
    # Glue's executors run on other machines: what Spark reads is staged in S3, not on the driver's disk.
    cluster: bool = False


def session() -> Engine:
    """Spark as this process has it: Glue's Spark session inside a Glue job (Delta Lake set up by the job's
    `--datalake-formats delta` and `--conf`), Sail anywhere else."""
    try:
        from awsglue.context import GlueContext  # present only inside a Glue job
    except ImportError:
        return local_session()
    from pyspark.context import SparkContext

    spark = GlueContext(SparkContext.getOrCreate()).spark_session
    spark.conf.set("spark.sql.session.timeZone", "UTC")
    return Engine(spark, writes_change_feed=True, cluster=True)


def local_session() -> Engine:
    """Spark on a Sail server (`python -m pysail spark server`) started by this process on first use and stopped
    when it exits. Its own process: Sail's threads then never wait on this interpreter's lock, which a moto server
    in the same process (the tests) needs to answer delta-rs. Sail reads S3 as the lake's other readers do, from
    the environment (the local stage's endpoint and credentials)."""
    import atexit
    import os
    import socket
    import subprocess
    import sys
    import time

    from pyspark.sql import SparkSession

    with _starting:
        if "port" not in _local:
            with socket.socket() as sock:
                sock.bind(("127.0.0.1", 0))
                port = sock.getsockname()[1]
            server = subprocess.Popen(
                [sys.executable, "-m", "pysail", "spark", "server", "--ip", "127.0.0.1", "--port", str(port)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                # Sail runs Python tasks (read_batch) in its own interpreter: it imports what this process does
                env={
                    **os.environ,
                    "PYTHONPATH": os.pathsep.join(p for p in sys.path if p and os.path.isdir(p)),
                    # Sail drops a session idle for 15 minutes (its default), and this process keeps one session
                    # for as long as it lives (a test suite idles longer between its Spark tests on a busy machine)
                    "SAIL_SPARK__SESSION_TIMEOUT_SECS": str(7 * 24 * 3600),
                },
            )
            atexit.register(server.terminate)
            deadline = time.monotonic() + 60
            while not _answers(port):
                if server.poll() is not None or time.monotonic() > deadline:
                    raise TableError(f"the Sail server did not start (exit {server.poll()})")
                time.sleep(0.1)
            _local.update(server=server, port=port)
    spark = SparkSession.builder.remote(f"sc://127.0.0.1:{_local['port']}").getOrCreate()
    spark.conf.set("spark.sql.session.timeZone", "UTC")  # as DuckDB's session: timestamps are UTC
    return Engine(spark, writes_change_feed=False)


def _answers(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def read_batch(
    engine: Engine,
    records: list[Any],
    contract: Contract,
    where: str,
    s3_settings: Any,
    memory_limit: int | None = None,
) -> Any:
    """The batch's raw files as a DataFrame of strings + lineage, as `sources.stream_batch` gives them: Spark's
    tasks read a file each with the single-node reader (`sources.read_file`: decompression, byte order marks, JSON
    numbers as text, lineage), so the parsing is the same by construction, and write the rows as Parquet at `where`
    (a folder; on Glue, S3) for the steps after to read. No row passes through the driver. `s3_settings` is the
    stage's `ClientSettings` (region, retries), which the tasks build their S3 client from."""
    from functools import partial

    from lakehouse_etl.sources import empty_batch

    schema = empty_batch(contract).schema
    kinds = {"_seq": "INT", "_row": "BIGINT"}  # the lineage; every column of the file is read as a string
    ddl = ", ".join(f"`{f.name}` {kinds.get(f.name, 'STRING')}" for f in schema)
    if not records:  # every file of the batch went away: nothing to read, nothing to stage
        return engine.spark.createDataFrame([], ddl)
    files = engine.spark.createDataFrame([(seq,) for seq in range(len(records))], "seq INT")
    read = partial(_read_files, records=records, contract=contract, settings=s3_settings, memory_limit=memory_limit)
    files.repartition(len(records)).mapInArrow(read, ddl).write.mode("overwrite").parquet(where)
    return engine.spark.read.schema(ddl).parquet(where)


def _read_files(
    batches: Any, *, records: list[Any], contract: Contract, settings: Any, memory_limit: int | None
) -> Any:
    """A Spark task of `read_batch`: the files whose positions it is given, read into a local scratch folder."""
    import tempfile
    from pathlib import Path

    from chalicelib.aws import client
    from lakehouse_etl.sources import read_file

    s3 = client("s3", settings)
    for batch in batches:
        for seq in batch.column(0).to_pylist():
            with tempfile.TemporaryDirectory(prefix="lakehouse-read-") as folder:
                yield from read_file(s3, records[seq], contract, Path(folder), seq, memory_limit)


@dataclass(frozen=True)
class SparkCleaned:
    """`transform.Cleaned` on Spark: temp views `good` and `rejected` of the session, and the duplicates dropped."""

    rows: Any  # DataFrame: typed, one row per key, contract columns + _source_file
    rejected: Any  # DataFrame: raw strings + _reason_code, _reason, _source_file, _row
    duplicates_dropped: int


def clean(
    engine: Engine,
    batch: Any,
    contract: Contract,
    parents: Mapping[str, tuple[Any, str]] | None = None,
    files: list[str] | None = None,
) -> SparkCleaned:
    """Type, check and de-duplicate `batch` (a DataFrame of strings + lineage, as sources.stream_batch gives) with
    the statements DuckDB runs; `parents[fk column]` is (a DataFrame of the parent's rows, its key column)."""
    spark = engine.spark
    batch.createOrReplaceTempView("batch")
    names = spark.createDataFrame([(i, f) for i, f in enumerate(files or [])], "_seq INT, _source_file STRING")
    names.createOrReplaceTempView("files")
    for i, fk_col in enumerate(sorted(contract.foreign_keys)):
        parent = (parents or {}).get(fk_col, (spark.createDataFrame([], "k STRING"), "k"))[0]
        parent.createOrReplaceTempView(f"parent_{i}")
    steps = step_sql(contract, {fk: column for fk, (_, column) in (parents or {}).items()})
    # cached: each is read by the steps after it, and counted
    checked = spark.sql(to_spark(steps["checked"])).cache()
    checked.createOrReplaceTempView("checked")
    valid = checked.where("_reason IS NULL").count()
    rejected = spark.sql(to_spark(steps["rejected"])).cache()
    rejected.createOrReplaceTempView("rejected")
    spark.sql(to_spark(steps["dup"])).cache().createOrReplaceTempView("dup")
    good = spark.sql(to_spark(steps["good"])).cache()
    good.createOrReplaceTempView("good")
    return SparkCleaned(good, rejected, valid - good.count())


def merge(
    engine: Engine,
    uri: str,
    contract: Contract,
    rows: Any,
    *,
    app_id: str,
    version: int,
    storage_options: dict[str, str],
    scratch: str,
    memory_limit: int | None = None,
) -> bool:
    """Upsert `rows` into the processed table at `uri` by primary key, as batch `version` of `app_id`; returns
    False when that batch is already in the table (a re-run changes nothing).

    The table is made as the single-node engine makes it (`delta.ensure_table`: schema, properties, change data
    feed), so either engine can write it next. The partition rule is `delta.merge_predicate`'s: the batch's partition
    values, and those of the partitions already holding one of its keys, as literals (other partitions are not read;
    a key whose partition changed is moved, not doubled). The batch is named in the commit twice: as a Delta app
    transaction where the writer keeps them, and in the MERGE predicate the Delta log records (Sail keeps no app
    transactions). A writer that cannot write the table's change data feed (Sail) stages the rows as Parquet under
    `scratch` and delta-rs commits them within `memory_limit` bytes ([pipeline] etl_memory_bytes), spilling."""
    from lakehouse_etl import delta
    from lakehouse_etl.transform import BATCH_COLUMN, processed_schema, table_schema

    spark, marker = engine.spark, f"{app_id}#{version}"
    part = contract.partition_column
    table = delta.open_table(uri, storage_options) or delta.ensure_table(
        uri, processed_schema(contract), [part] if part else [], storage_options
    )
    if (table.transaction_version(app_id) or 0) >= version or committed(table, marker, storage_options):
        return False
    delta.add_missing_columns(table, processed_schema(contract))  # `_batch` on a table made before it
    change_feed = table.metadata().configuration.get("delta.enableChangeDataFeed") == "true"
    if change_feed and not engine.writes_change_feed:
        source = staged(rows, scratch, table_schema(contract), memory_limit)
        try:
            result = delta.merge_batch(
                uri,
                contract,
                source,
                app_id=app_id,
                version=version,
                storage_options=storage_options,
                memory_limit=memory_limit,
            )
        finally:
            source.close()
        return not result.skipped
    # the batch that wrote each row, as delta.merge_batch stamps it: the quality gate selects the batch's rows by it
    rows.selectExpr("*", f"CAST({int(version)} AS BIGINT) AS `{BATCH_COLUMN}`").createOrReplaceTempView("source")
    on = " AND ".join(f"t.`{k}` = s.`{k}`" for k in contract.primary_key)
    if part:
        values = {r[0] for r in spark.sql(f"SELECT DISTINCT `{part}` FROM source").collect()}
        key = contract.primary_key[0]
        other = f"t.`{part}` NOT IN ({', '.join(literal(v) for v in sorted(values))})" if values else "true"
        moved = spark.sql(  # the partitions that hold one of the keys: only the key and partition columns are read
            f"SELECT DISTINCT t.`{part}` FROM delta.`{uri}` t JOIN source s ON t.`{key}` = s.`{key}` WHERE {other}"
        ).collect()
        values |= {r[0] for r in moved}
        if values:
            on += f" AND t.`{part}` IN ({', '.join(literal(v) for v in sorted(values))})"
    spark.conf.set("spark.databricks.delta.write.txnAppId", app_id)
    spark.conf.set("spark.databricks.delta.write.txnVersion", str(version))
    spark.sql(
        f"MERGE INTO delta.`{uri}` t USING source s ON {on} AND {literal(marker)} = {literal(marker)} "
        "WHEN MATCHED THEN UPDATE SET * WHEN NOT MATCHED THEN INSERT *"
    ).collect()
    return True


def staged(rows: Any, scratch: str, schema: Any, memory_limit: int | None = None) -> Any:
    """`rows` written as Parquet under `scratch` (a local folder) by Spark, read back as a stream (never whole) by a
    DuckDB session kept within `memory_limit` bytes, spilling to `scratch`, as the single-node engine's rows are."""
    import pyarrow.dataset as ds

    from lakehouse_etl.duck import Rows, session

    path = f"{scratch.rstrip('/')}/staged"
    rows.write.mode("overwrite").parquet(path)
    con = session(memory_limit=memory_limit, spill_dir=scratch)
    con.register("staged", ds.dataset(path, format="parquet", schema=schema))
    return Rows(con, "staged", schema)


def committed(table: Any, marker: str, storage_options: dict[str, str], versions: int = 50) -> bool:
    """Whether one of the table's last `versions` commits is batch `marker`'s (Spark's MERGE predicate, which the
    commit's commitInfo records, holds it). Read from the commit files themselves: delta-rs's `history()` holds
    Python's interpreter lock while it waits on S3, so against a moto server in the same process (the tests) it
    waits until it times out."""
    from lakehouse_etl.delta import arrow_filesystem

    filesystem, root = arrow_filesystem(table.table_uri, storage_options)
    latest, quoted = table.version(), literal(marker).encode()  # quoted: batch 2's marker is not in batch 21's
    for version in range(latest, max(-1, latest - versions), -1):
        with filesystem.open_input_stream(f"{root.rstrip('/')}/_delta_log/{version:020d}.json") as commit:
            if quoted in commit.read():
                return True
    return False
