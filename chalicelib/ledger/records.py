"""The ledger's records: files, batches, runs, and their statuses."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal, NotRequired, TypedDict


class Status(StrEnum):
    """A file's status in the ledger (see the package docstring for how it moves)."""

    RECEIVED = "RECEIVED"
    VALID = "VALID"
    REJECTED = "REJECTED"
    DUPLICATE = "DUPLICATE"
    GONE = "GONE"  # the object version was deleted before it could be read: nothing to keep
    PROCESSED = "PROCESSED"  # merged into processed/<dataset>
    FAILED = "FAILED"  # its pipeline run failed; `reason` says why


FINAL = frozenset({Status.VALID, Status.REJECTED, Status.DUPLICATE, Status.GONE, Status.PROCESSED, Status.FAILED})


def now_iso(now: datetime | None = None) -> str:
    """`now` (default: the current time) as ISO 8601 in UTC with microseconds, as the ledger sorts it."""
    return (now or datetime.now(UTC)).isoformat(timespec="microseconds")


@dataclass(frozen=True)
class FileRecord:
    """One delivered object version. `file_id` is `bucket/key#version` (the sequencer where unversioned)."""

    file_id: str
    bucket: str
    key: str
    version_id: str | None  # S3's version id; None in an unversioned bucket
    dataset: str
    status: Status = Status.RECEIVED
    received_at: str = ""
    updated_at: str = ""
    size: int | None = None
    etag: str | None = None
    md5: str | None = None
    format: str | None = None
    layout: str | None = None  # what a crawler would see (chalicelib.ingest.layout); None: validated before it was kept
    raw_table: bool | None = None  # False: raw_<dataset> in Athena reads this CSV's columns wrong (stage.catalog)
    rows: int | None = None
    reason_code: str | None = None
    reason: str | None = None
    line: int | None = None
    duplicate_of: str | None = None
    rejected_key: str | None = None
    announced: bool = False
    pending: str | None = None  # the dataset, while the file waits for its processed/ job
    batch: int | None = None
    delta_version: int | None = None
    rows_merged: int | None = None
    rows_rejected: int | None = None
    processed_at: str | None = None
    run: str | None = None  # the pipeline run that took the file
    archived_key: str | None = None
    lease_token: str | None = None
    lease_until: str | None = None
    reannounced: int | None = None  # times the batcher announced it again, its worker dead (pipeline/recovery.py)
    reannounced_at: str | None = None

    def to_item(self) -> dict[str, Any]:
        """The record as a ledger item."""
        item = {k: v for k, v in asdict(self).items() if v is not None}
        item["status"] = str(self.status)
        return {"pk": f"file#{self.file_id}", "kind": "file", **item}

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> FileRecord:
        names = {f.name for f in fields(cls)}
        values = {k: v for k, v in item.items() if k in names}
        for k in ("size", "rows", "line", "batch", "delta_version", "rows_merged", "rows_rejected", "reannounced"):
            if values.get(k) is not None:
                values[k] = int(values[k])
        values["status"] = Status(values.get("status", Status.RECEIVED))
        return cls(**values)

    def public(self) -> dict[str, Any]:
        """The record without lease internals, for people and scripts."""
        out = {k: v for k, v in asdict(self).items() if v is not None and not k.startswith("lease_")}
        out["status"] = str(self.status)
        return out


@dataclass(frozen=True)
class Batch:
    """The files one processed/ job run merges into its table as Delta app transaction `number`."""

    dataset: str
    number: int
    files: tuple[str, ...]
    resumed: bool = False  # an earlier run opened it and did not close it


RunStatus = Literal["PLANNING", "RUNNING", "SUCCEEDED", "FAILED"]  # PLANNING -> RUNNING -> SUCCEEDED | FAILED


class PlannedBatch(TypedDict):
    """One dataset batch of a run's plan (the execution input's `levels`), and what the Glue job runs on."""

    dataset: str
    batch: int
    job: str
    worker_type: NotRequired[str]  # not on a batch audited outside its own run (`RunSteps._unaudited`)
    workers: NotRequired[int]


class MasterMerge(TypedDict):
    """The workers of a per-dataset run's master merge."""

    worker_type: str
    workers: int


class RunSizing(TypedDict):
    """How a run is run (`Pipeline.sizing`): one job doing everything, or a job per dataset then the merge."""

    mode: Literal["single", "per_dataset"]
    sizing: str  # why, in words
    job: NotRequired[str]  # single: the job that runs the run whole
    master_merge: NotRequired[MasterMerge]  # per_dataset


class RunPlan(RunSizing):
    """A run's plan, kept in the ledger and given to its execution as input (`Pipeline._plan`)."""

    run: str
    crawlers: list[str]
    crawl_reasons: dict[str, str]  # dataset -> why it is crawled or not
    layouts: dict[str, list[str]]  # of the crawled datasets, recorded once the run succeeds
    levels: list[list[PlannedBatch]]  # dataset batches, level by level (a level after those it depends on)
    engines: dict[str, str]  # dataset -> the engine its batch runs on, and why


@dataclass(frozen=True)
class Run:
    """One pipeline run: the dataset batches it processes and how it ended."""

    name: str
    status: RunStatus = "PLANNING"
    started_at: str = ""
    ended_at: str | None = None
    plan: RunPlan | None = None  # the execution input
    files: int = 0
    bytes: int = 0
    error: str | None = None
    cause: str | None = None

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> Run:
        return cls(
            name=item["run"],
            status=item["status"],
            started_at=item["received_at"],
            ended_at=item.get("ended_at"),
            plan=json.loads(item["plan"]) if item.get("plan") else None,
            files=int(item.get("files", 0)),
            bytes=int(item.get("bytes", 0)),
            error=item.get("error"),
            cause=item.get("cause"),
        )

    @property
    def batches(self) -> list[PlannedBatch]:
        """The plan's dataset batches ({dataset, batch, job}), level by level."""
        return [b for level in (self.plan.get("levels", []) if self.plan else []) for b in level]


@dataclass(frozen=True)
class FileResult:
    rows_merged: int
    rows_rejected: int


@dataclass(frozen=True)
class Claim:
    record: FileRecord
    claimed: bool  # False: the record already existed in a final state (a redelivery)


def file_pk(file_id: str) -> str:
    """The ledger key of a file record."""
    return f"file#{file_id}"


def content_pk(md5: str) -> str:
    """The ledger key of a content claim (one per MD5)."""
    return f"md5#{md5}"
