"""A small pipeline run in one Glue job: every dataset's batch in dependency order, the quality gate, curated/.

Glue bills each job run a minute of at least two workers, and this ETL runs on the driver alone, so a run whose
files are few pays for one job instead of one per dataset and one for the master merge (docs/etl.md, "How a run
is sized"). Each dataset stays isolated as in its own job: a failure is caught, the other datasets of its level
still run, and the job then fails naming each failed dataset, before any dataset that depends on them. The gate is
the pipeline's own (`RunSteps.quality`) on DuckDB over the tables, so its results are in the ledger when the state
machine's gate step looks (it reads them instead of judging again). Only a passed gate publishes curated/; a
failed one leaves the roll-back to the state machine, as for any run.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Collection
from dataclasses import dataclass, field

from chalicelib.errors import NotFoundError, PipelineError
from chalicelib.pipeline.steps import FAILED_MARK, RunSteps
from chalicelib.quality.results import ERROR
from lakehouse_etl import curated, processed
from lakehouse_etl.curated import CuratedReport
from lakehouse_etl.local_sql import DuckDBEngine
from lakehouse_etl.processed import BatchReport, Job

log = logging.getLogger(__name__)


class DatasetJobFailed(PipelineError):
    """Datasets of one level failed. The message carries them as a failed level of the state machine does, behind
    a mark the failure step finds in the job run's error message however Glue words it (`steps.job_errors`)."""

    def __init__(self, errors: list[dict[str, str]]) -> None:
        super().__init__(FAILED_MARK + json.dumps(errors))


@dataclass
class WholeRunReport:
    run: str
    batches: list[BatchReport] = field(default_factory=list)
    quality: str = ""  # the gate's status: PASSED, WARN or ERROR (then curated/ is left as it was)
    curated: list[CuratedReport] = field(default_factory=list)


def run(job: Job, name: str, fail: Collection[str] = ()) -> WholeRunReport:
    """Run pipeline run `name` whole. Safe to repeat (Step Functions retries a failed job): committed batches are
    skipped, the gate's recorded results are reused, curated/ finds nothing new. `fail` lists datasets whose step
    fails on purpose (the local stage's `lakehouse run --fail-job`)."""
    record = job.ledger.get_run(name)
    if record is None or record.plan is None:
        raise NotFoundError(f"no planned pipeline run named {name!r} in the ledger")
    report = WholeRunReport(name)
    for level in record.plan.get("levels", []):
        errors = []
        for batch in level:
            dataset = batch["dataset"]
            try:
                if dataset in fail:
                    raise PipelineError(f"{dataset}: forced failure (lakehouse run --fail-job {dataset})")
                report.batches += processed.run_batch(job, dataset, int(batch["batch"]))
            except Exception as exc:  # isolated as its own job would be: the level's other datasets still run
                log.exception("run %s: dataset %s failed", name, dataset)
                errors.append({"dataset": dataset, "Error": type(exc).__name__, "Cause": str(exc)[:400]})
        if errors:  # stop before the next level: its datasets check foreign keys against this one
            raise DatasetJobFailed(errors)
    gate = RunSteps(job.settings, job.stage, job.ledger).quality(name, DuckDBEngine(job.lake))
    report.quality = gate["status"]
    if gate["status"] == ERROR:
        log.warning("run %s: the quality gate failed; curated/ is not published\n%s", name, gate["summary"])
        return report
    report.curated = curated.run(job)
    return report
