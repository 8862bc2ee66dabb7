"""The Glue jobs a command runs: on the local stage the glue_scripts/ entry points as local processes, on a deployed
stage Glue job runs; either way under the pipeline's run lock (chalicelib/pipeline/maintenance.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chalicelib.config import Settings, Stage, dataset_order
from chalicelib.errors import LakehouseError
from chalicelib.names import job_name, process_job

if TYPE_CHECKING:
    from types_boto3_s3 import S3Client

    from chalicelib.pipeline.maintenance import JobRun, Maintenance

GLUE_SCRIPTS = Path(__file__).resolve().parent.parent / "glue_scripts"


def rejected_by_reason(batches: list[dict[str, Any]]) -> Counter[str]:
    """Rows rejected by reason code over the batch reports of one dataset."""
    total: Counter[str] = Counter()
    for batch in batches:
        total.update(batch["rejected_by_reason"])
    return total


def rejected_rows_by_reason(s3: S3Client, settings: Settings, stage: Stage) -> dict[str, Counter[str]]:
    """Rows rejected by reason code, per dataset, from the rejected.parquet of every batch under rejected/ that is
    still in its table (a batch the quality gate rolled back comes again under a new number once requeued)."""
    from lakehouse.rejected import read_parquet, rejected_batches

    out: dict[str, Counter[str]] = {}
    for found in rejected_batches(s3, settings, stage):
        if found.rolled_back is None:
            codes = read_parquet(s3, stage.bucket, found.key, ["_reason_code"]).column(0).to_pylist()
            out.setdefault(found.dataset, Counter()).update(codes)
    return out


def run_script(
    script: str, stage: Stage, arguments: Sequence[str] = (), env: Mapping[str, str] | None = None
) -> list[dict[str, Any]]:
    """Run one Glue entry point as a process (as the local stage's Glue); returns its JSON report."""
    where = ["--stage", stage.name, "--bucket", stage.bucket, *(["--account", stage.account] if stage.account else [])]
    result = subprocess.run(
        [sys.executable, str(GLUE_SCRIPTS / script), *where, *arguments],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {}), "PYTHONPATH": str(GLUE_SCRIPTS)},
    )
    if result.returncode != 0:
        tail = "\n".join(result.stderr.strip().splitlines()[-15:])
        raise LakehouseError(f"{script} failed (exit {result.returncode}):\n{tail}")
    report: list[dict[str, Any]] = json.loads(result.stdout.strip().splitlines()[-1])
    return report


class LocalGlueRuns:
    """The local stage's Glue for maintenance job runs: the job's glue_scripts/ entry point as a local process, with
    the job's arguments over its defaults, as Glue runs it. `start` returns once the process has ended; a run id
    carries its process id, so a lock held by a command that died is seen as ended (chalicelib/pipeline/maintenance)."""

    def __init__(self, settings: Settings, stage: Stage) -> None:
        self.settings, self.stage = settings, stage
        self.ended: dict[str, tuple[str, str]] = {}  # run id -> JobRunState, ErrorMessage
        self.reports: dict[str, list[dict[str, Any]]] = {}  # run id -> the job's JSON report

    def start(self, job: str, arguments: Mapping[str, str]) -> str:
        import uuid

        from chalicelib.stage.declared import glue_jobs

        glue_job = glue_jobs(self.settings, self.stage).get(job)
        if glue_job is None:
            raise LakehouseError(f"no Glue job named {job} on the local stage")
        run_id = f"jr_local_{os.getpid()}_{uuid.uuid4().hex[:12]}"
        given = {**glue_job.arguments, **arguments}
        try:
            self.reports[run_id] = run_script(glue_job.script, self.stage, [a for pair in given.items() for a in pair])
            self.ended[run_id] = ("SUCCEEDED", "")
        except LakehouseError as exc:
            self.ended[run_id] = ("FAILED", str(exc))
        return run_id

    def state(self, job: str, run_id: str) -> tuple[str, str]:
        if run_id in self.ended:
            return self.ended[run_id]
        pid = run_id.split("_")[2] if run_id.startswith("jr_local_") else ""
        try:  # another process's run: running while that process lives
            os.kill(int(pid), 0)
        except (ValueError, OSError):
            return ("FAILED", "its process is gone")
        return ("RUNNING", "")


def maintenance(stage: Stage, local: LocalGlueRuns | None) -> Maintenance:
    """The stage's maintenance job runs under the run lock: on the local stage `local` (local processes), on a
    deployed stage (`local` None) Glue job runs, never local processes."""
    from chalicelib.aws import ClientSettings, client
    from chalicelib.ledger import ledger_for
    from chalicelib.pipeline.maintenance import AwsGlueRuns, Maintenance

    if local is not None:
        return Maintenance(stage, ledger_for(stage), local)
    return Maintenance(stage, ledger_for(stage), AwsGlueRuns(client("glue", ClientSettings.for_stage(stage))))


def run_jobs(
    settings: Settings,
    stage: Stage,
    purpose: str,
    jobs: Sequence[tuple[str, Mapping[str, str]]],
    *,
    local: bool,
    progress: Callable[[str], None] = lambda _: None,
    poll: float = 15.0,
) -> list[tuple[JobRun, list[dict[str, Any]] | None]]:
    """Run maintenance `jobs` (name, arguments) under the run lock, waiting for each, as local processes (`local`:
    the local stage) or Glue job runs: each ended job run with its JSON report (None for a Glue job run: its report is
    in its CloudWatch log)."""
    glue = LocalGlueRuns(settings, stage) if local else None
    done = maintenance(stage, glue).run(purpose, jobs, progress, poll)
    return [(run, glue.reports.get(run.run_id) if glue else None) for run in done]


def etl_jobs(
    settings: Settings, stage: Stage, datasets: list[str] | None, curated: bool
) -> list[tuple[str, dict[str, str]]]:
    """`lakehouse etl`'s job runs: each dataset's processed/ job over its pending files (parents first), then the
    master merge."""
    jobs: list[tuple[str, dict[str, str]]] = [
        (process_job(stage, d), {}) for d in dataset_order(settings) if not datasets or d in datasets
    ]
    return jobs + ([(job_name(stage, "master_merge.py"), {})] if curated else [])
