"""The Glue jobs a command runs: on the local stage the glue_scripts/ entry points as local processes, on a deployed
stage Glue job runs; either way under the pipeline's run lock (chalicelib/pipeline/maintenance.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

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


def script_command(script: str, stage: Stage, arguments: Sequence[str] = ()) -> list[str]:
    """The command that runs one Glue entry point as a local process against `stage`."""
    where = ["--stage", stage.name, "--bucket", stage.bucket, *(["--account", stage.account] if stage.account else [])]
    return [sys.executable, str(GLUE_SCRIPTS / script), *where, *arguments]


def script_env(env: Mapping[str, str] | None = None) -> dict[str, str]:
    return {**os.environ, **(env or {}), "PYTHONPATH": str(GLUE_SCRIPTS)}


def script_failed(script: str, code: int, stderr: str) -> LakehouseError:
    """The exception first, as Glue's ErrorMessage gives it; then where it came from."""
    lines = stderr.strip().splitlines() or [""]
    tail = "\n".join(lines[-15:])
    return LakehouseError(f"{script} failed (exit {code}): {lines[-1]}\n{tail}")


def run_script(
    script: str, stage: Stage, arguments: Sequence[str] = (), env: Mapping[str, str] | None = None
) -> list[dict[str, Any]]:
    """Run one Glue entry point as a process (as the local stage's Glue); returns its JSON report."""
    result = subprocess.run(
        script_command(script, stage, arguments), capture_output=True, text=True, env=script_env(env)
    )
    if result.returncode != 0:
        raise script_failed(script, result.returncode, result.stderr)
    report: list[dict[str, Any]] = json.loads(result.stdout.strip().splitlines()[-1])
    return report


@dataclass
class _LocalRun:
    script: str
    process: subprocess.Popen[bytes]
    stdout: IO[bytes]
    stderr: IO[bytes]
    ended: tuple[str, str] | None = None  # JobRunState, ErrorMessage


class LocalGlueRuns:
    """The local stage's Glue for maintenance job runs: the job's glue_scripts/ entry point as a local process with
    the job's arguments over its defaults, started and then asked about, as Glue's StartJobRun and GetJobRun. A run id
    carries the process id, so another process (the local stage's scheduler) sees a run it did not start as running
    while that process lives."""

    def __init__(self, settings: Settings, stage: Stage) -> None:
        self.settings, self.stage = settings, stage
        self.runs: dict[str, _LocalRun] = {}
        self.reports: dict[str, list[dict[str, Any]]] = {}  # run id -> the job's JSON report, once it succeeded

    def start(self, job: str, arguments: Mapping[str, str]) -> str:
        import tempfile
        import uuid

        from chalicelib.stage.declared import glue_jobs

        glue_job = glue_jobs(self.settings, self.stage).get(job)
        if glue_job is None:
            raise LakehouseError(f"no Glue job named {job} on the local stage")
        given = {**glue_job.arguments, **arguments}  # a run's arguments over the job's defaults, as on Glue
        command = script_command(glue_job.script, self.stage, [a for pair in given.items() for a in pair])
        # files, not pipes: a job's log may outgrow a pipe's buffer while nobody reads it
        stdout, stderr = tempfile.TemporaryFile(), tempfile.TemporaryFile()  # noqa: SIM115  # closed once it ended
        process = subprocess.Popen(command, stdout=stdout, stderr=stderr, env=script_env())
        run_id = f"jr_local_{process.pid}_{uuid.uuid4().hex[:12]}"
        self.runs[run_id] = _LocalRun(glue_job.script, process, stdout, stderr)
        return run_id

    def state(self, job: str, run_id: str) -> tuple[str, str]:
        run = self.runs.get(run_id)
        if run is None:
            return self._elsewhere(run_id)
        code = run.process.poll()
        if code is None:
            return ("RUNNING", "")
        if run.ended is None:
            run.stdout.seek(0)
            run.stderr.seek(0)
            out, err = run.stdout.read().decode(), run.stderr.read().decode()
            run.stdout.close()
            run.stderr.close()
            run.ended = ("FAILED", str(script_failed(run.script, code, err))) if code else ("SUCCEEDED", "")
            if code == 0:
                self.reports[run_id] = json.loads(out.strip().splitlines()[-1])
        return run.ended

    @staticmethod
    def _elsewhere(run_id: str) -> tuple[str, str]:
        """A run another process started: running while its process lives."""
        pid = run_id.split("_")[2] if run_id.startswith("jr_local_") else ""
        try:
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


# How often a command asks about its job run: Glue bills by the second, a person waits; the local stage's processes
# are near at hand.
GLUE_POLL_SECONDS = 15.0
LOCAL_POLL_SECONDS = 0.5


def run_jobs(
    settings: Settings,
    stage: Stage,
    purpose: str,
    jobs: Sequence[tuple[str, Mapping[str, str]]],
    *,
    local: bool,
    progress: Callable[[str], None] = lambda _: None,
) -> list[tuple[JobRun, list[dict[str, Any]] | None]]:
    """Run maintenance `jobs` (name, arguments) under the run lock, waiting for each, as local processes (`local`:
    the local stage) or Glue job runs: each ended job run with its JSON report (None for a Glue job run: its report is
    in its CloudWatch log)."""
    glue = LocalGlueRuns(settings, stage) if local else None
    poll = LOCAL_POLL_SECONDS if local else GLUE_POLL_SECONDS
    done = maintenance(stage, glue).run(purpose, jobs, progress, poll)
    return [(run, glue.reports.get(run.run_id) if glue else None) for run in done]


class LocalChores:
    """What the local stage's scheduler does beside the batcher, as EventBridge and the batcher Lambda do on AWS: free
    the run lock of a maintenance job run that ended, and start the housekeeping job when `[schedules] housekeeping`
    fires. One per scheduler: its local job runs are its own processes."""

    def __init__(self) -> None:
        from chalicelib.pipeline.schedules import Schedule

        self.housekeeping = Schedule("housekeeping")
        self.glue: LocalGlueRuns | None = None

    def tick(self, settings: Settings, stage: Stage, now: datetime) -> str | None:
        """One look: what it did, in words, or None."""
        from chalicelib.ledger import ledger_for
        from chalicelib.pipeline.maintenance import Maintenance

        if self.glue is None:
            self.glue = LocalGlueRuns(settings, stage)
        self.glue.settings = settings  # the configuration published in the bucket, as the Lambdas read it
        chores = Maintenance(stage, ledger_for(stage), self.glue)
        freed = chores.settle()
        if not self.housekeeping.due(settings.schedules.get("housekeeping"), now):
            return f"run lock of {freed} freed" if freed else None
        result = chores.housekeeping()
        return f"housekeeping {result['action']}: {result.get('job_run') or result.get('detail')}"


def etl_jobs(
    settings: Settings, stage: Stage, datasets: list[str] | None, curated: bool
) -> list[tuple[str, dict[str, str]]]:
    """`lakehouse etl`'s job runs: each dataset's processed/ job over its pending files (parents first), then the
    master merge."""
    jobs: list[tuple[str, dict[str, str]]] = [
        (process_job(stage, d), {}) for d in dataset_order(settings) if not datasets or d in datasets
    ]
    return jobs + ([(job_name(stage, "master_merge.py"), {})] if curated else [])
