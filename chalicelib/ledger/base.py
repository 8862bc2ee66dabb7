"""The file ledger: one record per delivered object version, and one content claim per MD5.

The flow (claim, take over a stale lease, claim content, finish) is written once in `Ledger`; storage is
four small hooks, filled by `DynamoDBLedger` (conditional writes, as on AWS) and `InMemoryLedger` (a lock,
for fast tests). Every transition is a single conditional write, never read-then-write, because S3 events
arrive at least once, late and concurrently.

Status moves RECEIVED -> VALID | REJECTED | DUPLICATE | GONE, and VALID -> PROCESSED when a processed/ job
has merged the file into its Delta table, or VALID -> FAILED when its pipeline run failed, and PROCESSED ->
FAILED when its batch failed the quality gate and was rolled back (the cause is kept; `requeue` puts a FAILED
file back to VALID for the next run). A RECEIVED record carries a lease: if its worker dies, a later
delivery takes the record over once the lease has expired.

The processed/ jobs keep their bookmark here too: a VALID file carries `pending = <dataset>` (a sparse
index lists them), and each dataset has one `batch#<dataset>` item naming the files of its open batch.

Pipeline runs live here as well: `run#<name>` items (plan, status, outcome) and one `pipeline` item that
names the active run, so that at most one run is in flight and starting one is a single conditional write. The
same item is the run lock of maintenance Glue job runs (housekeeping, `lakehouse etl` on a deployed stage): a `JobLock`
holds it instead of a run (chalicelib/pipeline/maintenance.py).
"""

from __future__ import annotations

import json
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from chalicelib.errors import FileInProgressError, LedgerError
from chalicelib.ledger.records import (
    FINAL,
    Batch,
    Claim,
    FileRecord,
    FileResult,
    Run,
    RunPlan,
    Status,
    content_pk,
    file_pk,
    now_iso,
)

JOB_LOCK = "job#"  # a run lock held by a maintenance job, not a run: `job#<purpose>#<token>`


@dataclass(frozen=True)
class JobLock:
    """The run lock held for a maintenance Glue job run (housekeeping, `lakehouse etl` on a deployed stage, ...): held
    while its job run runs and until `lease_until` (ISO), whichever is later."""

    holder: str
    purpose: str
    job: str | None
    job_run: str | None
    lease_until: str


class Ledger(ABC):
    """The ledger flow; subclasses only store items."""

    def __init__(self, lease_seconds: int = 960) -> None:
        self.lease_seconds = lease_seconds

    # -- the flow ----------------------------------------------------------------------------
    def claim(self, record: FileRecord, now: datetime | None = None) -> Claim:
        """Create the RECEIVED record with a lease, take over an expired lease, or report a redelivery.

        Raises FileInProgressError while another worker holds a live lease.
        """
        now = now or datetime.now(UTC)
        mine = replace(
            record,
            status=Status.RECEIVED,
            received_at=record.received_at or now_iso(now),
            updated_at=now_iso(now),
            lease_token=uuid.uuid4().hex,
            lease_until=now_iso(now + timedelta(seconds=self.lease_seconds)),
        )
        existing = self._put_if_absent(mine.to_item())
        if existing is None:
            return Claim(mine, claimed=True)
        old = FileRecord.from_item(existing)
        if old.status in FINAL:
            return Claim(old, claimed=False)
        if old.lease_until and old.lease_until > now_iso(now):
            raise FileInProgressError(f"{old.file_id} is being validated by another worker until {old.lease_until}")
        # The previous worker died: take over, but only if nobody else took over first.
        taken = replace(old, updated_at=mine.updated_at, lease_token=mine.lease_token, lease_until=mine.lease_until)
        updates = {"updated_at": taken.updated_at, "lease_token": taken.lease_token, "lease_until": taken.lease_until}
        if not self._update_if(file_pk(old.file_id), updates, {"lease_token": old.lease_token}):
            raise FileInProgressError(f"{old.file_id} was taken over by another worker")
        return Claim(taken, claimed=True)

    def owner_of_content(self, md5: str) -> str | None:
        """The file that first delivered this content, if any (a consistent read)."""
        item = self._get(content_pk(md5))
        return None if item is None else str(item["file_id"])

    def claim_content(self, md5: str, record: FileRecord) -> str | None:
        """Atomically make `record` the owner of this content; return the earlier owner's file_id if any."""
        existing = self._put_if_absent(
            {
                "pk": content_pk(md5),
                "kind": "content",
                "file_id": record.file_id,
                "dataset": record.dataset,
                "claimed_at": now_iso(),
            }
        )
        if existing is None or existing["file_id"] == record.file_id:  # ours, perhaps from a crashed attempt
            return None
        return str(existing["file_id"])

    def finish(self, record: FileRecord, status: Status, **changes: Any) -> FileRecord:
        """Move a claimed RECEIVED record to a final status; only the lease holder may."""
        if status not in FINAL:
            raise LedgerError(f"{status} is not a final status")
        if status == Status.VALID:
            changes["pending"] = record.dataset  # now waiting for its processed/ job
        done = replace(record, status=status, updated_at=now_iso(), lease_token=None, lease_until=None, **changes)
        updates = {k: v for k, v in done.to_item().items() if k not in ("pk", "kind")}
        updates.update(lease_token=None, lease_until=None)
        if not self._update_if(file_pk(record.file_id), updates, {"lease_token": record.lease_token}):
            raise FileInProgressError(f"{record.file_id}: lease lost to another worker before finishing")
        return done

    def mark_announced(self, record: FileRecord) -> FileRecord:
        """Record that a VALID file's announcement was sent (a redelivery then sends none)."""
        self._update_if(file_pk(record.file_id), {"announced": True}, {"status": str(Status.VALID)})
        return replace(record, announced=True)

    # -- files a dead validator left RECEIVED (chalicelib.pipeline.recovery) ------------------------------
    def received_since(self, since: str) -> list[FileRecord]:
        """Files still RECEIVED that were received since `since` (ISO time). The time index is eventually
        consistent: each is read again, consistently, and kept only if it is still RECEIVED."""
        items = self._get_many(self._received_since(since))
        return [FileRecord.from_item(i) for i in items if i.get("status") == str(Status.RECEIVED)]

    def mark_reannounced(self, record: FileRecord, now: datetime) -> bool:
        """Count one more announcement of a RECEIVED file whose worker died; False (and nothing written) when another
        tick counted it first or a worker has taken its lease since it was read."""
        return self._update_if(
            file_pk(record.file_id),
            {"reannounced": (record.reannounced or 0) + 1, "reannounced_at": now_iso(now)},
            {"status": str(Status.RECEIVED), "lease_token": record.lease_token, "reannounced": record.reannounced},
        )

    # -- the processed/ jobs' bookmark --------------------------------------------------------------
    def pending_files(self, dataset: str, limit: int | None = None) -> list[FileRecord]:
        """VALID files of `dataset` not yet merged, oldest first. The index that lists them is eventually consistent
        (a DynamoDB GSI: "reads from a global secondary index are eventually consistent"), so a file closed moments ago
        can still be listed: each is read again, consistently, and kept only if it is still pending."""
        listed = self._pending(dataset, limit)
        fresh = {i["pk"]: i for i in self._get_many([i["pk"] for i in listed])} if listed else {}
        return [
            FileRecord.from_item(fresh[i["pk"]]) for i in listed if fresh.get(i["pk"], {}).get("pending") == dataset
        ]

    def open_batch(
        self,
        dataset: str,
        *,
        take: Callable[[list[FileRecord]], Sequence[str]] | None = None,
        limit: int = 1000,
    ) -> Batch | None:
        """The dataset's open batch (an interrupted run: resume it) or a new one of the files `take` chooses from
        its `limit` oldest pending files (default: all of them; the policy is `chalicelib.pipeline.batching`)."""
        pk = f"batch#{dataset}"
        for _ in range(3):  # another job may open the batch between our read and our write
            item = self._get(pk)
            if item and item["state"] == "OPEN":
                return Batch(dataset, int(item["number"]), tuple(item["files"]), resumed=True)
            pending = self.pending_files(dataset, limit)
            files = fitting_one_item(tuple(take(pending) if take else (r.file_id for r in pending)))
            if not files:
                return None
            number = int(item["number"]) + 1 if item else 1
            fields_ = {"number": number, "state": "OPEN", "files": list(files), "opened_at": now_iso()}
            if item is None:
                opened = self._put_if_absent({"pk": pk, "kind": "batch", "dataset": dataset, **fields_}) is None
            else:  # the previous batch's outcome and job summary do not carry over
                forget = {"outcome": None, "summary": None, "rolled_back_at": None, "delta_version": None}
                opened = self._update_if(pk, {**fields_, **forget}, {"number": item["number"], "state": "CLOSED"})
            if opened:
                return Batch(dataset, number, files)
        raise LedgerError(f"could not open a batch for {dataset}: the batch item keeps changing")

    def close_batch(
        self, batch: Batch, delta_version: int, results: dict[str, FileResult], summary: dict[str, Any] | None = None
    ) -> None:
        """Mark the batch's files PROCESSED with their counts, then close the batch, keeping the job's `summary`
        (rows rejected by reason, duplicates dropped) for the quality gate. Safe to repeat."""
        when = now_iso()
        for file_id in batch.files:
            result = results.get(file_id, FileResult(0, 0))
            self._update_if(
                file_pk(file_id),
                {
                    "status": str(Status.PROCESSED),
                    "pending": None,
                    "batch": batch.number,
                    "delta_version": delta_version,
                    "rows_merged": result.rows_merged,
                    "rows_rejected": result.rows_rejected,
                    "processed_at": when,
                    "updated_at": when,
                },
                {"status": str(Status.VALID)},
            )
        self._update_if(
            f"batch#{batch.dataset}",
            {
                "state": "CLOSED",
                "closed_at": when,
                "delta_version": delta_version,
                "summary": json.dumps(summary or {}, sort_keys=True),
            },
            {"number": batch.number, "state": "OPEN"},
        )

    def batch_state(self, dataset: str) -> dict[str, Any] | None:
        """The dataset's batch item: its latest `number`, `state` (OPEN or CLOSED), `files` and `outcome`."""
        return self._get(f"batch#{dataset}")

    def fail_batch(self, dataset: str, number: int, error: str, cause: str, run: str | None = None) -> int:
        """Mark the still-unprocessed files of an open batch FAILED with the cause and close the batch, so the
        next batch can open. Files already PROCESSED are left alone. Returns how many files failed."""
        item = self.batch_state(dataset)
        if item is None or int(item["number"]) != number or item["state"] != "OPEN":
            return 0
        when, failed = now_iso(), 0
        for file_id in item["files"]:
            failed += self._update_if(
                file_pk(file_id),
                {
                    "status": str(Status.FAILED),
                    "pending": None,
                    "batch": number,
                    "run": run,
                    "reason_code": error[:200],
                    "reason": cause[:4000],
                    "updated_at": when,
                },
                {"status": str(Status.VALID)},
            )
        self._update_if(
            f"batch#{dataset}",
            {"state": "CLOSED", "outcome": "FAILED", "closed_at": when},
            {"number": number, "state": "OPEN"},
        )
        return failed

    def unprocess_batch(self, dataset: str, number: int, error: str, reason: str) -> int:
        """A merged batch was rolled back out of its table: its PROCESSED files become FAILED. Safe to repeat."""
        item = self.batch_state(dataset)
        if item is None or int(item["number"]) != number:
            return 0
        when, failed = now_iso(), 0
        for file_id in item["files"]:
            failed += self._update_if(
                file_pk(file_id),
                {"status": str(Status.FAILED), "reason_code": error, "reason": reason, "updated_at": when},
                {"status": str(Status.PROCESSED), "batch": number},
            )
        self._update_if(f"batch#{dataset}", {"outcome": "ROLLED_BACK", "rolled_back_at": when}, {"number": number})
        return failed

    def forget(self, file_id: str) -> bool:
        """Delete a file's record and its content claim (if the claim is this file's), as if it had never come:
        `lakehouse smoke` takes back what it added. Only a final status that is not waiting for a run can go."""
        record = self.get(file_id)
        if record is None:
            return False
        if record.status not in FINAL or record.pending:
            raise LedgerError(f"{file_id} is {record.status} and waiting for a run: it cannot be forgotten now")
        if record.md5:
            self._delete_if(content_pk(record.md5), {"file_id": file_id})
        return self._delete_if(file_pk(file_id), {"status": str(record.status)})

    def requeue(self, file_id: str) -> bool:
        """FAILED -> VALID and pending again, for the next run (after the cause was fixed)."""
        record = self.get(file_id)
        if record is None or record.status != Status.FAILED:
            return False
        return self._update_if(
            file_pk(file_id),
            {
                "status": str(Status.VALID),
                "pending": record.dataset,
                "reason_code": None,
                "reason": None,
                "batch": None,
                "run": None,
                "updated_at": now_iso(),
            },
            {"status": str(Status.FAILED)},
        )

    def set_file(self, file_id: str, **changes: Any) -> None:
        """Record facts about a file that do not change its status (the run that took it, its archive copy)."""
        self._update_if(file_pk(file_id), {**changes, "updated_at": now_iso()}, {})

    # -- the raw layouts the crawlers have seen -------------------------------------------------------
    def crawled_layouts(self, dataset: str) -> set[str] | None:
        """The file layouts a successful crawl of `dataset` has seen; None if it was never crawled."""
        item = self._get(f"crawl#{dataset}")
        return None if item is None else set(json.loads(item["layouts"]))

    def record_crawl(self, dataset: str, layouts: Sequence[str], run: str) -> None:
        """Remember that `run` crawled `dataset` with files of these layouts. One run is in flight at a time, so
        the read and the write below never race with another run's."""
        item = {"pk": f"crawl#{dataset}", "kind": "crawl", "dataset": dataset, "layouts": "[]"}
        seen = set(json.loads((self._put_if_absent(item) or item)["layouts"])) | set(layouts)
        self._update_if(item["pk"], {"layouts": json.dumps(sorted(seen)), "run": run, "crawled_at": now_iso()}, {})

    # -- pipeline runs -------------------------------------------------------------------------------
    def active_run(self) -> Run | None:
        """The run in flight, if any (at most one); None too while a maintenance job holds the run lock."""
        item = self._get("pipeline")
        if not item or not item.get("active") or str(item["active"]).startswith(JOB_LOCK):
            return None
        # A batcher that died right after naming the run left no run item: create it now, to be planned.
        return self.get_run(item["active"]) or self._new_run(item["active"])

    def _new_run(self, name: str) -> Run:
        run = Run(name, started_at=now_iso())
        item = {"pk": f"run#{name}", "kind": "run", "run": name, "status": run.status, "received_at": run.started_at}
        existing = self._put_if_absent(item)
        return run if existing is None else Run.from_item(existing)

    def epoch(self) -> str:
        """This ledger's own id, made once with its first pipeline item: Step Functions keeps an execution's name
        for 90 days, so a ledger made again (its runs numbered from 1 again) names its executions apart with it. A
        ledger from before the id existed has none ("") and keeps its names."""
        item = self._get("pipeline")
        if item is None:
            made = {"pk": "pipeline", "kind": "pipeline", "next": 1, "epoch": uuid.uuid4().hex[:8]}
            item = self._put_if_absent(made) or made
        return str(item.get("epoch", ""))

    def begin_run(self) -> Run | None:
        """Make a new run the active one; None if a run is already active (one run in flight at a time)."""
        item = self._get("pipeline")
        if item and item.get("active"):
            return None
        number = int(item["next"]) if item else 1
        name = f"run-{number:06d}"
        if item is None:
            began = (
                self._put_if_absent({"pk": "pipeline", "kind": "pipeline", "active": name, "next": number + 1}) is None
            )
        else:
            began = self._update_if("pipeline", {"active": name, "next": number + 1}, {"active": None, "next": number})
        return self._new_run(name) if began else None

    # -- the run lock, held by a maintenance job (chalicelib/pipeline/maintenance.py) ---------------------------
    def lock_holder(self) -> str | None:
        """Who holds the run lock: a run's name, a maintenance job's `job#<purpose>#<token>`, or None."""
        item = self._get("pipeline")
        return str(item["active"]) if item and item.get("active") else None

    def job_lock(self) -> JobLock | None:
        """The maintenance job holding the run lock, if one does."""
        item = self._get("pipeline")
        if not item or not str(item.get("active") or "").startswith(JOB_LOCK):
            return None
        return JobLock(
            str(item["active"]),
            str(item.get("purpose", "")),
            item.get("job"),
            item.get("job_run"),
            str(item.get("lease_until", "")),
        )

    def take_job_lock(self, purpose: str, lease_until: datetime) -> JobLock | None:
        """Take the run lock for a maintenance job (one conditional write, as `begin_run`); None if a run or another
        job holds it. The holder has until `lease_until` to name its job run (`record_job_run`)."""
        self.epoch()  # the pipeline item exists from here on
        lock = JobLock(f"{JOB_LOCK}{purpose}#{uuid.uuid4().hex[:12]}", purpose, None, None, now_iso(lease_until))
        taken = {"active": lock.holder, "purpose": purpose, "lease_until": lock.lease_until, "held_at": now_iso()}
        return lock if self._update_if("pipeline", {**taken, "job": None, "job_run": None}, {"active": None}) else None

    def record_job_run(self, lock: JobLock, job: str, job_run: str, lease_until: datetime) -> JobLock | None:
        """The lock's job run (the lock is held while it runs, and until `lease_until`); None if the lock was lost."""
        held = replace(lock, job=job, job_run=job_run, lease_until=now_iso(lease_until))
        changes = {"job": job, "job_run": job_run, "lease_until": held.lease_until}
        return held if self._update_if("pipeline", changes, {"active": lock.holder}) else None

    def renew_job_lock(self, lock: JobLock, lease_until: datetime) -> JobLock | None:
        """Keep the lock until `lease_until` (a holder that starts another job after this one); None if lost."""
        held = replace(lock, lease_until=now_iso(lease_until))
        return held if self._update_if("pipeline", {"lease_until": held.lease_until}, {"active": lock.holder}) else None

    def release_job_lock(self, lock: JobLock) -> bool:
        """Free the run lock if `lock` still holds it."""
        gone = dict.fromkeys(("active", "purpose", "job", "job_run", "lease_until", "held_at"))
        return self._update_if("pipeline", gone, {"active": lock.holder})

    def save_plan(self, run: Run, plan: RunPlan, files: int, bytes_: int) -> Run:
        """Keep a run's plan (the execution input) and mark it RUNNING."""
        self._update_if(
            f"run#{run.name}",
            {"plan": json.dumps(plan, sort_keys=True), "status": "RUNNING", "files": files, "bytes": bytes_},
            {"status": "PLANNING"},
        )
        return replace(run, plan=plan, status="RUNNING", files=files, bytes=bytes_)

    def end_run(self, name: str, status: str, error: str | None = None, cause: str | None = None) -> bool:
        """Close a run (first close wins) and free the pipeline for the next one."""
        changes = {"status": status, "ended_at": now_iso(), "error": error, "cause": cause and cause[:4000]}
        ended = any(self._update_if(f"run#{name}", changes, {"status": before}) for before in ("RUNNING", "PLANNING"))
        self._update_if("pipeline", {"active": None}, {"active": name})
        return ended

    def save_quality(self, run: str, dataset: str, result: dict[str, Any]) -> None:
        """Keep a dataset's quality result of a run (its history feeds the volume rule and the status API).
        A retried step writes the same result again."""
        item = {
            "pk": f"quality#{dataset}#{run}",
            "kind": f"quality#{dataset}",
            "received_at": now_iso(),
            "run": run,
            "dataset": dataset,
            "status": result["status"],
            "rows_loaded": int(result["rows_loaded"]),
            "result": json.dumps(result, sort_keys=True, default=str),
        }
        if self._put_if_absent(item) is not None:
            changes = {k: v for k, v in item.items() if k not in ("pk", "kind", "received_at")}
            self._update_if(item["pk"], changes, {"run": run})

    def quality_history(self, dataset: str, limit: int | None = None) -> list[dict[str, Any]]:
        """A dataset's quality results, newest first."""
        return [json.loads(i["result"]) for i in self._newest(f"quality#{dataset}", limit)]

    def get_run(self, name: str) -> Run | None:
        """A run by name, or None."""
        item = self._get(f"run#{name}")
        return None if item is None else Run.from_item(item)

    def runs(self, limit: int | None = None) -> list[Run]:
        """Pipeline runs, newest first."""
        return [Run.from_item(i) for i in self._newest("run", limit)]

    def mark_gone(self, record: FileRecord, code: str, reason: str) -> None:
        """A VALID file whose object version disappeared before its ETL: nothing left to merge."""
        self._update_if(
            file_pk(record.file_id),
            {
                "status": str(Status.GONE),
                "pending": None,
                "reason_code": code,
                "reason": reason,
                "updated_at": now_iso(),
            },
            {"status": str(Status.VALID)},
        )

    def get(self, file_id: str) -> FileRecord | None:
        """A file record by id, or None."""
        item = self._get(file_pk(file_id))
        return None if item is None else FileRecord.from_item(item)

    def get_many(self, file_ids: list[str] | tuple[str, ...]) -> list[FileRecord]:
        """The records of these files, in the order given (unknown ones left out): a batch's files at once."""
        items = {i["pk"]: i for i in self._get_many([file_pk(f) for f in file_ids])}
        return [FileRecord.from_item(items[file_pk(f)]) for f in file_ids if file_pk(f) in items]

    def files(self, limit: int | None = None) -> list[FileRecord]:
        """File records, newest first."""
        return [FileRecord.from_item(i) for i in self._newest("file", limit)]

    def file_counts(self, since: str) -> dict[str, int]:
        """Files received since `since` (ISO time), by status."""
        counts: dict[str, int] = {}
        for status in self._statuses_since("file", since):
            counts[status] = counts.get(status, 0) + 1
        return counts

    # -- storage hooks -----------------------------------------------------------------------
    @abstractmethod
    def _put_if_absent(self, item: dict[str, Any]) -> dict[str, Any] | None:
        """Write `item` unless its pk exists; return the existing item (and write nothing) if it does."""

    @abstractmethod
    def _update_if(self, pk: str, updates: dict[str, Any], expect: dict[str, Any]) -> bool:
        """Set (None: remove) attributes if every `expect` attribute equals its value; False if not."""

    @abstractmethod
    def _get(self, pk: str) -> dict[str, Any] | None: ...

    @abstractmethod
    def _delete_if(self, pk: str, expect: dict[str, Any]) -> bool:
        """Delete the item if every `expect` attribute equals its value; False if not (or if it is gone)."""

    def _get_many(self, pks: list[str]) -> list[dict[str, Any]]:
        """The items that exist of these keys, in any order (storages with a batch read override this)."""
        return [item for pk in pks if (item := self._get(pk)) is not None]

    @abstractmethod
    def _newest(self, kind: str, limit: int | None) -> list[dict[str, Any]]:
        """Items of `kind` (file, run) by `received_at`, newest first."""

    @abstractmethod
    def _statuses_since(self, kind: str, since: str) -> list[str]:
        """The `status` of every item of `kind` received since `since` (only that attribute is read)."""

    @abstractmethod
    def _pending(self, dataset: str, limit: int | None) -> list[dict[str, Any]]:
        """File items with `pending == dataset`, oldest first."""

    @abstractmethod
    def _received_since(self, since: str) -> list[str]:
        """The keys of file items with status RECEIVED received since `since`."""


ITEM_BYTES = 400 * 1024  # DynamoDB's largest item, names and values in UTF-8 ("Service, account, and table quotas")
# A batch item's file list: half an item, leaving room for its outcome and job summary, and for moto, which counts
# the old list and the new one together while an update replaces it. Ids of 80 bytes: 2,500 files.
BATCH_FILES_BYTES = 200 * 1024


def item_bytes(value: Any) -> int:
    """About what DynamoDB counts for a value: UTF-8 lengths, numbers as up to 21 bytes, and 3 bytes plus one per
    element for lists and maps ("Item sizes and formats", DynamoDB Developer Guide). Written by hand: boto3 has no
    item sizer."""
    if isinstance(value, str):
        return len(value.encode())
    if isinstance(value, dict):
        return 3 + sum(len(str(k).encode()) + item_bytes(v) + 1 for k, v in value.items())
    if isinstance(value, list | tuple):
        return 3 + sum(item_bytes(v) + 1 for v in value)
    return 21 if isinstance(value, int | float) else 1


def fitting_one_item(files: tuple[str, ...]) -> tuple[str, ...]:
    """The first of `files` (oldest first) whose ids fit a batch item (at least one): 1,000 ids of up to 1 KB each
    would pass DynamoDB's 400 KB, and the rest simply wait for the next batch."""
    total = 3
    for count, file_id in enumerate(files):
        total += item_bytes(file_id) + 1
        if total > BATCH_FILES_BYTES:
            return files[: max(count, 1)]
    return files
