"""The rows the ETL rejected, with their reasons: `lakehouse rejected` and `lake.rejected(...)`.

Each processed/ job writes the rows of its batch it could not use to `rejected/<dataset>/rows/batch=NNNNNN/
rejected.parquet` (the raw strings as delivered, `_reason_code`, `_reason`, `_source_file`, `_row`). When the quality
gate rolls a batch back, its rows stay and a `ROLLED_BACK.json` mark is written beside them (the files come again
under a new batch number once requeued), so every row here says whether its batch is still in the table.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypedDict

from chalicelib.config import Settings, Stage
from chalicelib.errors import NotFoundError, UsageError
from chalicelib.ledger import Ledger

if TYPE_CHECKING:
    from types_boto3_s3 import S3Client

_BATCH_KEY = re.compile(r"^(?P<dataset>[^/]+)/rows/batch=(?P<batch>\d+)/(?P<name>rejected\.parquet|ROLLED_BACK\.json)$")


class RejectedRow(TypedDict):
    """One rejected row, as `lakehouse rejected --json` prints it and `lake.rejected()` frames it."""

    dataset: str
    batch: int
    source_file: str | None  # the ledger's file id: bucket/key#version
    row: int  # 1-based among the file's data rows (a CSV header is not counted)
    reason_code: str  # the first reason's code
    message: str  # every reason, the first without its code
    rolled_back: bool  # the quality gate took the row's batch back out of processed/
    rolled_back_at: str | None
    values: dict[str, Any]  # the row's fields as delivered (strings)


COLUMNS = tuple(RejectedRow.__annotations__)  # the frame's columns, even when it has no rows


@dataclass(frozen=True)
class RejectedBatch:
    """One batch's rejected rows in rejected/, and its rollback mark if the quality gate took the batch back."""

    dataset: str
    batch: int
    key: str
    written: str  # when the rows were written (S3's LastModified): newest batches are listed first
    rolled_back: dict[str, Any] | None = None  # the mark: rolled_back_at, reason


def rejected_batches(s3: S3Client, settings: Settings, stage: Stage, dataset: str | None = None) -> list[RejectedBatch]:
    """The batches with rejected rows, newest first; one LIST per 1000 keys, the marks read only where present."""
    zone = settings.zones.rejected
    prefix = f"{zone}{dataset}/rows/" if dataset else zone
    rows: dict[tuple[str, int], tuple[str, str]] = {}
    marks: dict[tuple[str, int], str] = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=stage.bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            found = _BATCH_KEY.match(obj["Key"].removeprefix(zone))  # quarantined whole files do not match
            if found is None or found["dataset"] not in settings.datasets:
                continue
            at = (found["dataset"], int(found["batch"]))
            if found["name"] == "rejected.parquet":
                rows[at] = (obj["Key"], obj["LastModified"].isoformat())
            else:
                marks[at] = obj["Key"]
    out = [
        RejectedBatch(d, b, key, written, _mark(s3, stage.bucket, marks[(d, b)]) if (d, b) in marks else None)
        for (d, b), (key, written) in rows.items()
    ]
    return sorted(out, key=lambda r: (r.written, r.dataset, r.batch), reverse=True)


def _mark(s3: S3Client, bucket: str, key: str) -> dict[str, Any]:
    mark: dict[str, Any] = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    return mark


def read_parquet(s3: S3Client, bucket: str, key: str, columns: list[str] | None = None) -> Any:
    """One Parquet object, read from memory Arrow owns. Handed Python bytes (`io.BytesIO`), Arrow's reader threads
    may drop the last reference to them after the process began to exit, and dropping a Python object there ends in
    `terminate called without an active exception` (apache/arrow 34314; issue 26 saw `lakehouse rejected` abort so)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    sink = pa.BufferOutputStream()  # a copy in Arrow's memory: the reader then holds nothing of Python's
    sink.write(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    return pq.read_table(pa.BufferReader(sink.getvalue()), columns=columns)


def _rows(s3: S3Client, bucket: str, found: RejectedBatch, limit: int) -> list[RejectedRow]:
    """The first `limit` rows of one batch, in file order, each with its reason, source and rollback."""
    table = read_parquet(s3, bucket, found.key)
    out: list[RejectedRow] = []
    for row in table.slice(0, limit).to_pylist():
        code, reason = str(row.pop("_reason_code")), str(row.pop("_reason"))
        source, number = row.pop("_source_file"), int(row.pop("_row"))
        mark = found.rolled_back or {}
        out.append(
            RejectedRow(
                dataset=found.dataset,
                batch=found.batch,
                source_file=source,
                row=number,
                reason_code=code,
                message=reason.removeprefix(f"{code}: "),
                rolled_back=found.rolled_back is not None,
                rolled_back_at=mark.get("rolled_back_at"),
                values=row,
            )
        )
    return out


def rejected_rows(
    s3: S3Client,
    settings: Settings,
    stage: Stage,
    ledger: Ledger,
    *,
    dataset: str | None = None,
    run: str | None = None,
    batch: int | None = None,
    limit: int = 100,
) -> list[RejectedRow]:
    """Up to `limit` rejected rows, newest batch first, of one `dataset`, one `run`'s batches, or one `batch` (of a
    dataset): rows of batches the quality gate rolled back included, each saying so."""
    if dataset is not None and dataset not in settings.datasets:
        raise NotFoundError(f"no dataset {dataset!r}; known: {', '.join(sorted(settings.datasets))}")
    if batch is not None and dataset is None:
        raise UsageError("batch", "batch numbers count per dataset: give the dataset too")
    if limit < 1:
        raise UsageError("limit", f"{limit} is not a number of rows (1 or more)")
    wanted: set[tuple[str, int]] | None = None
    if run is not None:
        found_run = ledger.get_run(run)
        if found_run is None:
            raise NotFoundError(f"no pipeline run named {run!r} in the ledger (lakehouse executions lists them)")
        wanted = {(b["dataset"], int(b["batch"])) for b in found_run.batches}
    out: list[RejectedRow] = []
    for found in rejected_batches(s3, settings, stage, dataset):
        if len(out) >= limit:
            break
        if batch is not None and found.batch != batch:
            continue
        if wanted is not None and (found.dataset, found.batch) not in wanted:
            continue
        out += _rows(s3, stage.bucket, found, limit - len(out))
    return out
