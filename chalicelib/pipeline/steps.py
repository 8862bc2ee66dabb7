"""The state machine's Lambda steps: the quality gate, the failure step, the success step (archive) and the
catalog refresh. Each reads the run's plan from the ledger and is safe to repeat (Step Functions retries)."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from chalicelib.aws import error_code
from chalicelib.config import Contract, Settings, Stage
from chalicelib.errors import NotFoundError, PipelineError
from chalicelib.ledger import FileRecord, Ledger, Run, Status
from chalicelib.ledger.records import PlannedBatch
from chalicelib.names import process_job
from chalicelib.pipeline.reports import QualityReport, RunFailed, RunFinished, TablesRefreshed
from chalicelib.quality import gate as quality
from chalicelib.quality.gate import Loads, SqlEngine
from chalicelib.quality.results import ERROR, PASSED, WARN, TableQuality

if TYPE_CHECKING:
    from types_boto3_glue import GlueClient
    from types_boto3_s3 import S3Client
    from types_boto3_s3.type_defs import CopySourceTypeDef

log = logging.getLogger(__name__)

FAILED_MARK = "DatasetJobFailed: "  # before the failed datasets in the error of a job that runs a run whole


class RunSteps:
    """The state machine's Lambda steps: quality gate, catalog refresh, finishing or failing a run."""

    def __init__(self, settings: Settings, stage: Stage, ledger: Ledger) -> None:
        self.settings, self.stage, self.ledger = settings, stage, ledger

    def _run(self, name: str) -> Run:
        run = self.ledger.get_run(name)
        if run is None:
            raise NotFoundError(f"no pipeline run named {name!r} in the ledger")
        return run

    def _batch_files(self, batch: Mapping[str, Any]) -> list[FileRecord]:
        """The files of a dataset batch of the active run (its batch item still names them)."""
        item = self.ledger.batch_state(batch["dataset"])
        if item is None or int(item["number"]) != int(batch["batch"]):
            return []
        return self.ledger.get_many(item["files"])

    def _etl_summary(self, batch: Mapping[str, Any]) -> dict[str, Any]:
        """What the batch's Glue job reported (rows merged and rejected by reason, duplicates dropped)."""
        records = self._batch_files(batch)
        item = self.ledger.batch_state(batch["dataset"]) or {}
        summary = json.loads(item.get("summary") or "{}") if int(item.get("number", -1)) == int(batch["batch"]) else {}
        return {
            **summary,
            "files": len(records),
            "file_ids": [r.file_id for r in records],
            "rows_merged": sum(r.rows_merged or 0 for r in records),
            "rows_rejected": sum(r.rows_rejected or 0 for r in records),
        }

    def audit_input(self, batch: Mapping[str, Any]) -> tuple[dict[str, Any], quality.BatchScope]:
        """What the gate judges a dataset batch by: the ETL's summary, and the rows the batch wrote."""
        etl = self._etl_summary(batch)
        number = int(batch["batch"]) if etl.pop("batch_column", None) else None  # None: merged before `_batch`
        return etl, quality.BatchScope(etl.pop("file_ids"), etl.get("partitions"), etl.get("table_rows"), number)

    def _unaudited(self, run: Run) -> list[PlannedBatch]:
        """Merged batches of datasets outside this run that no quality check has seen (a run that failed
        before its gate, a manual `lakehouse etl`): they are audited now, so nothing reaches curated/ unaudited,
        and rolled back like the run's own if they fail."""

        planned, out = {b["dataset"] for b in run.batches}, list[PlannedBatch]()
        for dataset in sorted(set(self.settings.datasets) - planned):
            item = self.ledger.batch_state(dataset)
            if not item or item["state"] != "CLOSED" or item.get("outcome"):
                continue  # none, still open, or nothing of it left in the table (failed, rolled back)
            latest = self.ledger.quality_history(dataset, 1)
            if latest and latest[0]["batch"] == int(item["number"]) and latest[0]["run"] != run.name:
                continue  # audited by an earlier run
            job = process_job(self.stage, dataset)
            out.append({"dataset": dataset, "batch": int(item["number"]), "job": job})
        return out

    def _judged(self, name: str, batch: Mapping[str, Any]) -> TableQuality | None:
        """The result this run's gate recorded for a batch already: the job that ran the run whole audited it, or
        this is a retried step. A batch is judged once."""
        latest = self.ledger.quality_history(batch["dataset"], 1)
        if latest and latest[0]["run"] == name and latest[0]["batch"] == int(batch["batch"]):
            return TableQuality.from_dict(latest[0])
        return None

    def quality(
        self, name: str, engine: SqlEngine, now: datetime | None = None, timeout: float = 300.0
    ) -> QualityReport:
        """The quality gate before curated/ is published (write-audit-publish). Per dataset of the run: the
        ETL's rejections, the contract's rules in one scan of the rows its batch wrote (`quality.BatchScope`),
        and the volume against earlier loads. Results are kept in the ledger (a batch judged already is not judged
        again); the batches of datasets with a failed `error` rule are listed under `rollback`, for the state
        machine to take back out."""
        run, now = self._run(name), now or datetime.now(UTC)
        batches = run.batches + self._unaudited(run)
        judged = {b["dataset"]: q for b in batches if (q := self._judged(name, b))}
        todo = [b for b in batches if b["dataset"] not in judged]
        tables = engine.tables() if todo else set()
        contracts = [self.settings.datasets[b["dataset"]] for b in todo]
        summaries, scopes = zip(*(self.audit_input(b) for b in todo), strict=True) if todo else ((), ())
        loads = [self._loads(name, c, etl["rows_merged"]) for c, etl in zip(contracts, summaries, strict=True)]
        with ThreadPoolExecutor(4) as pool:  # Athena runs the tables' scans side by side
            scans = list(
                pool.map(
                    lambda c, b, n: quality.scan(engine, c, tables, now, timeout, b, n), contracts, scopes, loads
                )
            )
        for batch, contract, etl, (rows, checks) in zip(todo, contracts, summaries, scans, strict=True):
            checks.insert(0, quality.check_rejected(self.settings.pipeline.max_rejected_percent, etl))
            result = TableQuality(contract.name, name, int(batch["batch"]), rows, etl["rows_merged"], checks, etl)
            self.ledger.save_quality(name, contract.name, result.as_dict())
            judged[contract.name] = result
        results = [judged[b["dataset"]] for b in batches]
        statuses = {r.status for r in results}
        status = ERROR if ERROR in statuses else WARN if WARN in statuses else PASSED
        failing = {r.dataset for r in results if r.status == ERROR}
        return {
            "status": status,
            "summary": quality.summary(name, results, stage=self.stage.name),
            "rollback": [b for b in batches if b["dataset"] in failing],
            "datasets": {r.dataset: r.status for r in results},
            "results": [r.as_dict() for r in results],
        }

    def _loads(self, name: str, contract: Contract, loaded: int) -> Loads:
        """The rows run `name` loaded into a dataset's table, with the loads of the earlier runs its rules compare
        them with (from the ledger's quality history, newest first)."""
        need = quality.earlier_loads(contract)
        history = self.ledger.quality_history(contract.name, need + 1) if need else []
        return Loads(loaded, [h["rows_loaded"] for h in history if h["run"] != name][:need])

    def fail(self, name: str, error: str, cause: str, s3: S3Client | None = None) -> RunFailed:
        """The failure step: the run's unmerged files become FAILED with their dataset's cause; files a job
        did merge stay PROCESSED and, given `s3`, are archived (their data is in processed/); the run is
        closed."""
        run = self._run(name)
        error, cause = _unwrap(error, cause)
        per_dataset = _dataset_errors(error, cause)
        failed, archived = 0, 0  # files of the run now FAILED; merged files archived
        for batch in run.batches:
            if batch["dataset"] in per_dataset:
                why = per_dataset[batch["dataset"]]
            elif per_dataset:
                why = ("NotRun", f"not run: {', '.join(sorted(per_dataset))} failed in an earlier level")
            else:
                why = (error, _message(cause))
            failed_here = self.ledger.fail_batch(batch["dataset"], int(batch["batch"]), *why, run=name)
            records = self._batch_files(batch)
            for record in records:  # a rollback (which knows no run) failed these: say which run it was
                if record.status == Status.FAILED and record.run is None:
                    self.ledger.set_file(record.file_id, run=name)
            failed += sum(r.status == Status.FAILED for r in records)
            if s3 is None:
                continue
            try:
                if failed_here:  # requeued, these files are read again in a new batch: no second copy of their rows
                    rows = self.settings.zones.rejected_rows(batch["dataset"], int(batch["batch"]))
                    s3.delete_object(Bucket=self.stage.bucket, Key=rows)
                archived += self._archive_all(s3, [r for r in records if r.status == Status.PROCESSED])
            except Exception:  # the failure must still be recorded: what is left waits where it is
                log.exception("run %s: tidying up after %s failed", name, batch["dataset"])
        self.ledger.end_run(name, "FAILED", error, cause)
        log.error("run %s failed: %s: %s (%d files FAILED, %d archived)", name, error, cause, failed, archived)
        return {"run": name, "files_failed": failed, "archived": archived}

    def finish(self, name: str, s3: S3Client) -> RunFinished:
        """The success step: remember the layouts the run's crawlers saw, archive the run's raw files, then close
        the run. Safe to repeat."""
        summary: RunFinished = {"run": name, "datasets": {}, "files": 0, "archived": 0}
        run = self._run(name)
        for dataset, layouts in (run.plan.get("layouts", {}) if run.plan else {}).items():
            self.ledger.record_crawl(dataset, layouts, name)
        for batch in run.batches:
            records = [r for r in self._batch_files(batch) if r.status == Status.PROCESSED]
            summary["archived"] += self._archive_all(s3, records)
            summary["files"] += len(records)
            summary["datasets"][batch["dataset"]] = {
                "batch": batch["batch"],
                "files": len(records),
                "rows_merged": sum(r.rows_merged or 0 for r in records),
                "rows_rejected": sum(r.rows_rejected or 0 for r in records),
            }
        self.ledger.end_run(name, "SUCCEEDED")
        return summary

    def _archive_all(self, s3: S3Client, records: list[FileRecord]) -> int:
        """Archive files 16 at a time (server-side copies); versions of one key one after the other, so each
        copy is checked against its own source."""
        by_key: dict[str, list[FileRecord]] = {}
        for record in records:
            by_key.setdefault(record.key, []).append(record)
        with ThreadPoolExecutor(16) as pool:
            done = pool.map(lambda group: sum(self._archive(s3, r) for r in group), by_key.values())
            return sum(done)

    def _archive(self, s3: S3Client, record: FileRecord) -> int:
        """Copy a processed raw file to archive/ and check the copy; only then hide it from raw/ with a delete
        marker (the version stays, so nothing is lost). A newer upload under the same key is left alone."""
        if record.archived_key:
            return 0
        zones = self.settings.zones
        key = zones.archive + record.key.removeprefix(zones.raw)
        source: CopySourceTypeDef = {"Bucket": record.bucket, "Key": record.key}
        if record.version_id:
            source["VersionId"] = record.version_id
        s3.copy(source, self.stage.bucket, key)  # managed copy: multipart above 5 GB
        copied = s3.head_object(Bucket=self.stage.bucket, Key=key)
        if record.size is not None and copied["ContentLength"] != record.size:
            raise PipelineError(
                f"archive copy of {record.file_id} has {copied['ContentLength']} bytes, not {record.size}"
            )
        try:
            current = s3.head_object(Bucket=record.bucket, Key=record.key).get("VersionId")
        except Exception as exc:
            if error_code(exc) not in ("404", "NoSuchKey", "NotFound"):
                raise
            current = None  # hidden already (a repeated step)
        # Not atomic with the HEAD: an upload landing in between would be hidden too, but never lost (it is
        # a version of its own, and its notification is validated and processed like any other).
        if record.version_id and current == record.version_id:
            s3.delete_object(Bucket=record.bucket, Key=record.key)
        self.ledger.set_file(record.file_id, archived_key=key)
        return 1

    def refresh_tables(
        self, s3: S3Client, glue: GlueClient, zones: tuple[str, ...] = ("raw", "processed", "curated")
    ) -> TablesRefreshed:
        """Register the stage's tables in its Glue database for Athena (see `chalicelib.catalog`)."""
        from chalicelib.stage.catalog import refresh

        return {"tables": refresh(self.settings, self.stage, s3, glue, zones)}


def _message(cause: str) -> str:
    """The readable part of a Task's cause: a Glue job run's ErrorMessage, a Lambda's errorMessage."""
    try:
        data = json.loads(cause)
    except ValueError:
        return cause
    if isinstance(data, dict):
        return str(data.get("ErrorMessage") or data.get("errorMessage") or cause)
    return cause


def _unwrap(error: str, cause: str) -> tuple[str, str]:
    """A job that ran a run whole failed the way a failed level does (`DatasetJobFailed` with the failed datasets):
    its Task fails with the job run as cause, and the datasets are in the run's error message."""
    message = _message(cause)
    at = message.rfind(FAILED_MARK)
    if error == "DatasetJobFailed" or at < 0:
        return error, cause
    try:
        found, _ = json.JSONDecoder().raw_decode(message, at + len(FAILED_MARK))
    except ValueError:
        return error, cause
    return ("DatasetJobFailed", json.dumps(found)) if isinstance(found, list) else (error, cause)


def _dataset_errors(error: str, cause: str) -> dict[str, tuple[str, str]]:
    """dataset -> (error, message) from a DatasetJobFailed cause (the failed datasets of one level)."""
    if error != "DatasetJobFailed":
        return {}
    try:
        items = json.loads(cause)
    except ValueError:
        return {}
    return {
        item["dataset"]: (str(item.get("Error", error)), _message(str(item.get("Cause", ""))))
        for item in (items if isinstance(items, list) else [])
        if isinstance(item, dict) and "dataset" in item
    }


def describe_error(error: str, cause: str) -> str:
    """One readable line for a run's error (its cause is often JSON nested in JSON)."""
    error, cause = _unwrap(error, cause)
    per_dataset = _dataset_errors(error, cause)
    if per_dataset:
        return f"{error}: " + "; ".join(f"{d}: {e}: {m}" for d, (e, m) in per_dataset.items())
    return f"{error}: {_message(cause)}"
