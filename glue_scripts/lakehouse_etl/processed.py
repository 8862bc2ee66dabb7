"""The processed/ (silver) job of one dataset: pending VALID files -> typed, checked rows -> Delta MERGE."""

from __future__ import annotations

import json
import logging
import tempfile
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from chalicelib.config import Settings, Stage
from chalicelib.errors import NotFoundError, TableError
from chalicelib.ledger import Batch, FileRecord, FileResult, Ledger, now_iso
from chalicelib.ledger.base import item_bytes
from chalicelib.pipeline.batching import BatchPolicy
from lakehouse_etl import delta
from lakehouse_etl.lake import Lake
from lakehouse_etl.sources import stream_batch
from lakehouse_etl.transform import BATCH_COLUMN, Cleaned, clean

if TYPE_CHECKING:
    from types_boto3_s3 import S3Client
    from types_boto3_s3.type_defs import HeadObjectRequestTypeDef

log = logging.getLogger(__name__)

# The batch's partition values go into its ledger item and its quality result, both DynamoDB items of at most 400 KB:
# past this many bytes of them (a partition column of many values) the gate reads every partition instead, its
# `_batch` condition still selecting only the batch's rows.
PARTITIONS_BYTES = 64 * 1024


@dataclass
class Job:
    """What every ETL job needs, passed in explicitly."""

    settings: Settings
    stage: Stage
    s3: S3Client
    ledger: Ledger
    lake: Lake

    @classmethod
    def for_stage(cls, settings: Settings, stage_name: str) -> Job:
        from chalicelib.aws import ClientSettings, client
        from chalicelib.ledger import ledger_for

        stage = settings.stage(stage_name)
        s3 = client("s3", ClientSettings.for_stage(stage))
        return cls(settings, stage, s3, ledger_for(stage), Lake.for_stage(settings, stage))


@dataclass
class BatchReport:
    dataset: str
    batch: int
    files: int
    rows_read: int
    rows_merged: int
    rows_rejected: int
    duplicates_dropped: int
    delta_version: int
    skipped: bool  # already in the table: a re-run after an interruption
    rejected_by_reason: dict[str, int] = field(default_factory=dict)
    partitions: list[str] | None = None  # the partition values the batch wrote (None: unpartitioned)
    table_rows: int = 0  # the table's rows after the batch, from the Delta log
    metrics: dict[str, Any] = field(default_factory=dict)


def parent_keys(job: Job, dataset: str) -> dict[str, tuple[Any, str]]:
    """For each foreign key of `dataset`: the parent's processed table as something DuckDB scans (an Arrow dataset:
    only its key column is read, streamed), and that key column; an empty table if the parent has none yet."""
    out: dict[str, tuple[Any, str]] = {}
    for column, (parent, parent_column) in job.settings.datasets[dataset].foreign_keys.items():
        table = delta.open_table(job.lake.processed(parent), job.lake.storage_options)
        if table is None:
            out[column] = (pa.table({parent_column: pa.array([], pa.string())}), parent_column)
        else:
            out[column] = (delta.dataset(table, job.lake.storage_options), parent_column)
    return out


def write_rejected(job: Job, dataset: str, batch: Batch, path: Path) -> None:
    """Upload the batch's rejected rows (a Parquet file at `path`) under rejected/<dataset>/rows/."""
    # Same key for the same batch: a re-run rewrites the same rows, it does not add a second copy.
    job.s3.upload_file(str(path), job.stage.bucket, job.lake.rejected_rows(dataset, batch.number))


def _still_there(job: Job, record: FileRecord) -> bool:
    """False (and the file marked GONE) if its validated version was deleted since: a batch must not stall."""
    from chalicelib.aws import error_code

    kwargs: HeadObjectRequestTypeDef = {"Bucket": record.bucket, "Key": record.key}
    if record.version_id:
        kwargs["VersionId"] = record.version_id
    try:
        job.s3.head_object(**kwargs)
        return True
    except Exception as exc:
        if error_code(exc) not in ("404", "NoSuchKey", "NoSuchVersion", "NotFound"):
            raise
    job.ledger.mark_gone(record, "OBJECT_GONE", "the validated object version was deleted before its ETL")
    log.warning("file %s is gone; left out of its batch", record.file_id)
    return False


def process_batch(job: Job, dataset: str, batch: Batch, *, engine: Any = None) -> BatchReport:
    """Read, clean and MERGE one batch within `[pipeline] etl_memory_bytes` of working memory: the files are streamed
    to a scratch folder, DuckDB and the MERGE spill there past the limit (docs/etl.md, "Memory"). Given a Spark
    `engine` (lakehouse_etl/spark.py), Spark cleans and merges the rows instead."""
    contract = job.settings.datasets[dataset]
    records = [r for r in sorted(job.ledger.get_many(batch.files), key=lambda r: r.received_at) if _still_there(job, r)]
    memory = job.settings.pipeline.etl_memory_bytes
    with tempfile.TemporaryDirectory(prefix=f"lakehouse-{dataset}-") as scratch:
        folder = Path(scratch)
        if engine is not None:
            return _on_spark(job, engine, dataset, batch, records, folder)
        raw = stream_batch(job.s3, records, contract, folder, memory_limit=memory)
        files = [r.file_id for r in records]
        with clean(raw, contract, parent_keys(job, dataset), files, memory_limit=memory, spill_dir=scratch) as cleaned:
            return _merge_cleaned(job, dataset, batch, records, cleaned, folder)


def _on_spark(
    job: Job, engine: Any, dataset: str, batch: Batch, records: list[FileRecord], folder: Path
) -> BatchReport:
    """process_batch on Spark (lakehouse_etl/spark.py): the batch's files read by Spark's tasks with the single-node
    reader and staged as Parquet (in `folder`; in S3 on Glue, whose executors are other machines), cleaned by Spark,
    the rejected rows written where the single-node engine writes them, the rest merged by Spark, the batch closed
    in the ledger with the same counts."""
    import pyarrow.parquet as pq

    from chalicelib.aws import ClientSettings
    from lakehouse_etl.spark import clean as clean_on_spark
    from lakehouse_etl.spark import merge as merge_on_spark
    from lakehouse_etl.spark import read_batch

    spark, contract = engine.spark, job.settings.datasets[dataset]
    on_s3 = f"{job.lake.root}/{job.settings.zones.spark_batch(dataset, batch.number)}"
    staged = on_s3 if engine.cluster else str(folder / "batch")
    s3_settings = ClientSettings.for_stage(job.stage)
    raw = read_batch(engine, records, contract, staged, s3_settings, job.settings.pipeline.etl_memory_bytes)
    parents = {}  # each foreign key's parent table, its key column only
    for column, (parent, key) in contract.foreign_keys.items():
        uri = job.lake.processed(parent)
        table = delta.open_table(uri, job.lake.storage_options)
        if engine.cluster and table is not None:
            parents[column] = (spark.read.format("delta").load(uri).select(key), key)
            continue
        # Sail cannot read what delta-rs merged (docs/etl.md): delta-rs reads the keys and hands them over
        keys = pa.table({key: []}) if table is None else delta.dataset(table, job.lake.storage_options).to_table([key])
        values = keys.column(key).to_pylist()
        rows = [(None if v is None else str(v),) for v in values]  # compared as text (step_sql)
        parents[column] = (spark.createDataFrame(rows, f"`{key}` STRING"), key)
    files = [r.file_id for r in records]
    cleaned = clean_on_spark(engine, raw, contract, parents, files)
    strings = [pa.field(c, pa.string()) for c in [*contract.column_names, "_reason_code", "_reason", "_source_file"]]
    rejected = pa.Table.from_pylist(  # few (the gate caps them), and typed as the single-node engine types them
        [r.asDict() for r in cleaned.rejected.collect()], pa.schema([*strings, pa.field("_row", pa.int64())])
    )
    if rejected.num_rows:
        pq.write_table(rejected, str(folder / "rejected.parquet"))
        write_rejected(job, dataset, batch, folder / "rejected.parquet")
    uri = job.lake.processed(dataset)
    merged = merge_on_spark(
        engine,
        uri,
        contract,
        cleaned.rows,
        app_id=f"processed/{dataset}",
        version=batch.number,
        storage_options=job.lake.storage_options,
        scratch=str(folder),
        memory_limit=job.settings.pipeline.etl_memory_bytes,
    )
    if engine.cluster and records:  # the staged batch (the table and rejected/ hold its rows now)
        filesystem, path = delta.arrow_filesystem(staged, job.lake.storage_options)
        filesystem.delete_dir(path)
    table = delta.open_table(uri, job.lake.storage_options)
    assert table is not None  # `merge` made it
    counts = {r[0]: r[1] for r in cleaned.rows.groupBy("_source_file").count().collect()}
    part = contract.partition_column
    return close(
        job,
        batch,
        records,
        delta.MergeResult(table.version(), not merged, {}, table.count()),
        merged=counts,
        rejected=dict(Counter(rejected.column("_source_file").to_pylist())),
        by_reason=dict(Counter(rejected.column("_reason_code").to_pylist())),
        duplicates=cleaned.duplicates_dropped,
        partitions=sorted(str(r[0]) for r in cleaned.rows.select(part).distinct().collect()) if part else None,
    )


def _merge_cleaned(
    job: Job, dataset: str, batch: Batch, records: list[FileRecord], cleaned: Cleaned, folder: Path
) -> BatchReport:
    contract = job.settings.datasets[dataset]
    if cleaned.rejected.num_rows:
        cleaned.rejected.to_parquet(str(folder / "rejected.parquet"))
        write_rejected(job, dataset, batch, folder / "rejected.parquet")
    result = delta.merge_batch(
        job.lake.processed(dataset),
        contract,
        cleaned.rows,
        app_id=f"processed/{dataset}",
        version=batch.number,
        storage_options=job.lake.storage_options,
        memory_limit=job.settings.pipeline.etl_memory_bytes,
    )
    return close(
        job,
        batch,
        records,
        result,
        merged=cleaned.rows.counts("_source_file"),
        rejected=cleaned.rejected.counts("_source_file"),
        by_reason=cleaned.rejected.counts("_reason_code"),
        duplicates=cleaned.duplicates_dropped,
        partitions=delta.partition_values(contract, cleaned.rows),
    )


def close(
    job: Job,
    batch: Batch,
    records: list[FileRecord],
    result: delta.MergeResult,
    *,
    merged: dict[Any, int],
    rejected: dict[Any, int],
    by_reason: dict[Any, int],
    duplicates: int,
    partitions: list[str] | None,
) -> BatchReport:
    """Close the batch in the ledger with each file's counts and the batch's summary (either engine's), and report
    it. `merged` and `rejected` count rows by file id."""
    rows_merged, rows_rejected = sum(merged.values()), sum(rejected.values())
    if partitions is not None and item_bytes(partitions) > PARTITIONS_BYTES:
        log.info("batch %d touched %d partitions: the gate will read them all", batch.number, len(partitions))
        partitions = None
    summary: dict[str, Any] = {
        "rows_read": rows_merged + rows_rejected + duplicates,
        "rows_merged": rows_merged,
        "rows_rejected": rows_rejected,
        "duplicates_dropped": duplicates,
        "rejected_by_reason": by_reason,
        # what the quality gate needs to read only this batch's rows, and the table's size from the Delta log
        "partitions": partitions,
        "table_rows": result.table_rows,
    }
    job.ledger.close_batch(
        batch,
        result.version,
        {r.file_id: FileResult(merged.get(r.file_id, 0), rejected.get(r.file_id, 0)) for r in records},
        {**summary, "batch_column": BATCH_COLUMN},  # the gate selects the batch's rows by it (not by file ids)
    )
    return BatchReport(
        dataset=batch.dataset,
        batch=batch.number,
        files=len(records),
        delta_version=result.version,
        skipped=result.skipped,
        **summary,
        metrics={
            k: result.metrics[k]
            for k in (
                "num_target_files_added",
                "num_target_files_removed",
                "num_target_files_scanned",
                "num_target_files_skipped_during_scan",
            )
            if k in result.metrics
        },
    )


def run(job: Job, dataset: str, max_files: int | None = None, *, engine: Any = None) -> list[BatchReport]:
    """Merge every pending file of `dataset`, a batch at a time; an interrupted batch is finished first."""
    if dataset not in job.settings.datasets:
        raise NotFoundError(f"no contract for dataset {dataset!r}")
    reports = []
    policy = BatchPolicy.of(job.settings)
    if max_files:
        policy = replace(policy, max_files=max_files)
    while (batch := job.ledger.open_batch(dataset, take=policy.take, limit=policy.max_files)) is not None:
        log.info(
            "dataset %s: batch %d with %d files%s",
            dataset,
            batch.number,
            len(batch.files),
            " (resumed)" if batch.resumed else "",
        )
        reports.append(process_batch(job, dataset, batch, engine=engine))
    return reports


def roll_back_batch(job: Job, dataset: str, number: int) -> dict[str, Any]:
    """Take a batch that failed the quality gate back out of processed/<dataset> (write-audit-publish: it
    never reaches curated/) and mark its files FAILED, so `lakehouse requeue` can send them again."""
    item = job.ledger.batch_state(dataset)
    if item is None or int(item["number"]) != number or item["state"] != "CLOSED":
        raise TableError(f"{dataset}: batch {number} is not the latest closed batch, it cannot be rolled back")
    done = delta.roll_back(
        job.lake.processed(dataset),
        f"processed/{dataset}",
        number,
        int(item.get("delta_version", 0)),
        job.lake.storage_options,
    )
    reason = f"batch {number} failed the quality gate and was taken back out of processed/{dataset}"
    # Its rejected rows stay readable (`lakehouse rejected`), marked: deleted, they went behind a delete marker that
    # rejected/'s lifecycle expires after a day. Requeued, the files' rows come again under a new batch number.
    mark = json.dumps({"rolled_back_at": now_iso(), "reason": reason})
    job.s3.put_object(Bucket=job.stage.bucket, Key=job.lake.rolled_back_mark(dataset, number), Body=mark.encode())
    failed = job.ledger.unprocess_batch(dataset, number, "QualityCheckFailed", reason)
    log.info("dataset %s: batch %d rolled back (%s); %d files FAILED", dataset, number, done, failed)
    return {"dataset": dataset, "batch": number, "rolled_back": done, "files_failed": failed}


def run_batch(job: Job, dataset: str, number: int, *, engine: Any = None) -> list[BatchReport]:
    """Merge exactly batch `number` of `dataset`, as a pipeline run planned it. Safe to repeat: a batch that
    is already closed is reported as skipped, so a retried or restarted run does not merge anything twice."""
    if dataset not in job.settings.datasets:
        raise NotFoundError(f"no contract for dataset {dataset!r}")
    item = job.ledger.batch_state(dataset)
    if item is None or int(item["number"]) < number:
        raise TableError(f"{dataset}: batch {number} was never opened (latest: {item and item['number']})")
    if int(item["number"]) > number or item["state"] != "OPEN":
        log.info(
            "dataset %s: batch %d is already closed (%s); nothing to do", dataset, number, item.get("outcome", "done")
        )
        return []
    return [process_batch(job, dataset, Batch(dataset, number, tuple(item["files"]), resumed=True), engine=engine)]
