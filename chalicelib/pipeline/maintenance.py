"""Maintenance Glue job runs under the pipeline's run lock: housekeeping on its schedule, and what a person starts
against a stage (`lakehouse etl`, `curated rebuild`, `table housekeeping`, `smoke`'s cleanup).

Every table has one writer at a time: a pipeline run holds the ledger's run lock (`Ledger.begin_run`), and so does a
maintenance job, from before its StartJobRun until its job run ends. Nothing has to remember to give the lock back:
`settle` (the batcher's every tick, each schedule, each command) frees a lock whose job run has ended, however it
ended, or whose holder died before starting one (its lease ran out). A maintenance job that finds a run in flight
does not start: the schedule skips (the next night tries again), a command refuses with who holds the lock.

Where the job runs is a `GlueRuns`: Glue on AWS (`AwsGlueRuns`), the glue_scripts as local processes on the local
stage (lakehouse/jobs.py), both behind the same lock.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from chalicelib.config import Stage
from chalicelib.errors import LakehouseError, PipelineError
from chalicelib.ledger.base import JobLock, Ledger
from chalicelib.names import HOUSEKEEPING_SCRIPT, job_name

if TYPE_CHECKING:
    from types_boto3_glue import GlueClient

log = logging.getLogger(__name__)

# Glue's JobRunState values of a run that has ended (GetJobRun, "JobRun" in the AWS Glue API reference)
ENDED = frozenset({"SUCCEEDED", "FAILED", "STOPPED", "TIMEOUT", "ERROR", "EXPIRED"})
# How long a holder may take between taking the lock and naming its job run, and between two job runs of one command;
# a Lambda runs 15 minutes at most, so a starter that died frees the lock within this.
LEASE = timedelta(minutes=15)


class LockHeld(LakehouseError):
    """The run lock is held (a pipeline run in flight, or another maintenance job): nothing was started."""

    http_status = 409


class JobRunFailed(PipelineError):
    """A maintenance job run ended other than SUCCEEDED; the message has Glue's ErrorMessage."""


class GlueRuns(Protocol):
    """Where job runs run: Glue on AWS, local processes on the local stage."""

    def start(self, job: str, arguments: Mapping[str, str]) -> str:
        """StartJobRun: the job run's id."""

    def state(self, job: str, run_id: str) -> tuple[str, str]:
        """GetJobRun: its JobRunState and ErrorMessage ("" when none)."""


class AwsGlueRuns:
    """The stage's Glue jobs on AWS."""

    def __init__(self, glue: GlueClient) -> None:
        self.glue = glue

    def start(self, job: str, arguments: Mapping[str, str]) -> str:
        """StartJobRun (`arguments` over the job's DefaultArguments): the job run's id."""
        return self.glue.start_job_run(JobName=job, Arguments=dict(arguments))["JobRunId"]

    def state(self, job: str, run_id: str) -> tuple[str, str]:
        """GetJobRun: its JobRunState and ErrorMessage."""
        run = self.glue.get_job_run(JobName=job, RunId=run_id)["JobRun"]
        return str(run.get("JobRunState", "")), str(run.get("ErrorMessage", ""))


def utc_now() -> datetime:
    """The time now, in UTC."""
    return datetime.now(UTC)


@dataclass(frozen=True)
class JobRun:
    """One maintenance job run that ended."""

    job: str
    run_id: str
    state: str
    seconds: float


@dataclass
class Maintenance:
    """Maintenance job runs of one stage, each under the run lock."""

    stage: Stage
    ledger: Ledger
    glue: GlueRuns
    now: Callable[[], datetime] = field(default=utc_now)
    sleep: Callable[[float], None] = time.sleep

    def settle(self) -> str | None:
        """Free the run lock of a maintenance job that is over: its job run ended, or it named none and its lease ran
        out. Returns what was freed (or None)."""
        lock = self.ledger.job_lock()
        if lock is None:
            return None
        if lock.job and lock.job_run:
            state, _ = self.glue.state(lock.job, lock.job_run)
            if state not in ENDED:
                return None
        if lock.lease_until > self.now().isoformat(timespec="microseconds"):
            return None
        if not self.ledger.release_job_lock(lock):
            return None
        log.info("run lock of %s freed (job run %s over)", lock.purpose, lock.job_run)
        return lock.holder

    def take(self, purpose: str) -> JobLock:
        """The run lock for `purpose`; LockHeld naming the holder if a run or another job has it."""
        self.settle()
        lock = self.ledger.take_job_lock(purpose, self.now() + LEASE)
        if lock is None:
            raise LockHeld(f"{purpose} not started: {self._held_by()}; try again when it has ended")
        return lock

    def _held_by(self) -> str:
        holder = self.ledger.lock_holder()
        held = self.ledger.job_lock()
        if held is not None:
            return f"the run lock is held by {held.purpose} (Glue job run {held.job_run or 'starting'} of {held.job})"
        return f"the run lock is held by pipeline run {holder} (in flight)" if holder else "the run lock was taken"

    def start(self, lock: JobLock, job: str, arguments: Mapping[str, str] | None = None) -> JobLock:
        """StartJobRun `job` under `lock`; the lock is given back if Glue refuses the run."""
        try:
            run_id = self.glue.start(job, arguments or {})
        except Exception:
            self.ledger.release_job_lock(lock)
            raise
        held = self.ledger.record_job_run(lock, job, run_id, self.now() + LEASE)
        if held is None:  # cannot happen while the holder keeps its lease; said plainly if it does
            raise PipelineError(f"{lock.purpose}: the run lock was lost before job run {run_id} of {job} was recorded")
        return held

    def housekeeping(self) -> dict[str, Any]:
        """The schedule's housekeeping: one job run of the housekeeping job under the run lock, or a skip when the
        lock is held (a run in flight: the next night tries again). The lock goes with the job run's end (settle)."""
        freed = self.settle()
        job = job_name(self.stage, HOUSEKEEPING_SCRIPT)
        try:
            lock = self.take("housekeeping")
        except LockHeld as exc:
            return {"action": "skipped", "job": job, "detail": str(exc), "freed": freed}
        held = self.start(lock, job)
        # the job run alone holds the lock now: the first settle after it ends frees it
        self.ledger.renew_job_lock(held, self.now())
        return {"action": "started", "job": job, "job_run": held.job_run, "freed": freed}

    def run(
        self,
        purpose: str,
        jobs: Sequence[tuple[str, Mapping[str, str]]],
        progress: Callable[[str], None] = lambda _: None,
        poll: float = 15.0,
    ) -> list[JobRun]:
        """Run `jobs` (name, arguments) one after the other under one hold of the run lock, waiting for each and
        reporting its state through `progress`; the first that does not succeed stops the others (JobRunFailed).
        The lock is freed at the end, or left to its job run if this is interrupted while one runs."""
        lock = self.take(purpose)
        done: list[JobRun] = []
        try:
            for job, arguments in jobs:
                lock = self.start(lock, job, arguments)
                done.append(self._wait(lock, progress, poll))
                if done[-1].state != "SUCCEEDED":
                    break
        finally:
            self._let_go(lock)
        if done and done[-1].state != "SUCCEEDED":
            last = done[-1]
            raise JobRunFailed(
                f"{purpose}: Glue job run {last.run_id} of {last.job} ended {last.state}: {self._why(last)}"
            )
        return done

    def _wait(self, lock: JobLock, progress: Callable[[str], None], poll: float) -> JobRun:
        job, run_id = str(lock.job), str(lock.job_run)
        began = time.monotonic()
        while True:
            state, _ = self.glue.state(job, run_id)
            progress(f"{job} {run_id}: {state} ({time.monotonic() - began:.0f} s)")
            if state in ENDED:
                return JobRun(job, run_id, state, time.monotonic() - began)
            renewed = self.ledger.renew_job_lock(lock, self.now() + LEASE)
            if renewed is None:
                raise PipelineError(f"{lock.purpose}: the run lock was taken from job run {run_id} of {job}")
            self.sleep(poll)

    def _why(self, run: JobRun) -> str:
        return self.glue.state(run.job, run.run_id)[1] or "no error message"

    def _let_go(self, lock: JobLock) -> None:
        """Free the lock now if its job run is over; else leave it to the job run (settle frees it when it ends)."""
        try:
            running = (
                bool(lock.job and lock.job_run) and self.glue.state(str(lock.job), str(lock.job_run))[0] not in ENDED
            )
        except Exception:  # Glue cannot say now (the error that stopped us, perhaps): settle decides later
            log.warning(
                "%s: job run %s left holding the run lock until settle sees it ended", lock.purpose, lock.job_run
            )
            return
        if running:
            self.ledger.renew_job_lock(lock, self.now())
        else:
            self.ledger.release_job_lock(lock)
