"""Pipeline runs: when accepted files start one (the batcher). The state machine's Lambda steps: steps.py.

A burst of files must not start a Glue job run per file (Glue bills a minimum per run), so accepted files
wait in the ledger (`pending`) and a run starts when the oldest has waited `window_seconds`, or enough
files or bytes wait. A run takes one batch per dataset (`Ledger.open_batch`: a file is in exactly one
batch), gets a ledger name `run-000042`, and its execution is named after it, so starting it twice starts
it once. At most one run is in flight: every run rebuilds curated/ and each table has one writer at a time.

The orchestrator is Step Functions on AWS and the local executor on the local stage (`lakehouse run`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal, Protocol

from chalicelib.aws import error_code
from chalicelib.config import Settings, Stage, dataset_levels
from chalicelib.errors import PipelineError
from chalicelib.ledger import FileRecord, Ledger, Run
from chalicelib.ledger.records import MasterMerge, PlannedBatch, RunPlan, RunSizing
from chalicelib.names import crawler_name, process_job, run_job, spark_job
from chalicelib.pipeline.batching import BatchPolicy
from chalicelib.pipeline.crawling import CrawlDecision, decide
from chalicelib.pipeline.engines import choose, single_node_worker_type
from chalicelib.pipeline.plans import resumed
from chalicelib.pipeline.recovery import Recovery, queue_sender, recover_received
from chalicelib.pipeline.steps import RunSteps
from chalicelib.stage.catalog import catalogued_from_contract

if TYPE_CHECKING:
    from types_boto3_stepfunctions import SFNClient

log = logging.getLogger(__name__)

RUNNING = "RUNNING"


class Orchestrator(Protocol):
    """What runs a pipeline execution: Step Functions on AWS, the local executor on the local stage."""

    def start(self, name: str, input_: Mapping[str, Any]) -> None:
        """Start execution `name`; starting one that exists already is not an error (idempotent)."""

    def status(self, name: str) -> str | None:
        """RUNNING, SUCCEEDED, FAILED, TIMED_OUT or ABORTED; None if it was never started."""


class StepFunctions:
    """The stage's state machine on AWS. A run's execution is named `<run>-<ledger epoch>` (Ledger.epoch): Step
    Functions keeps a name for 90 days after its execution ends, and a ledger made again numbers runs from 1."""

    def __init__(self, sfn: SFNClient, state_machine_arn: str, epoch: str = "") -> None:
        self.sfn, self.arn, self.epoch = sfn, state_machine_arn, epoch

    @classmethod
    def for_stage(cls, stage: Stage, epoch: str = "") -> StepFunctions:
        from chalicelib.aws import ClientSettings, account_id, client

        clients = ClientSettings.for_stage(stage)
        arn = stage.state_machine_arn(account_id(client("sts", clients)))
        return cls(client("stepfunctions", clients), arn, epoch)

    def execution_arn(self, name: str) -> str:
        """The ARN of run `name`'s execution of this state machine."""
        return self.arn.replace(":stateMachine:", ":execution:") + f":{self.execution_name(name)}"

    def execution_name(self, name: str) -> str:
        """Run `name`'s execution name: `<run>-<epoch>`, or the run's own name for a ledger from before epochs."""
        return f"{name}-{self.epoch}" if self.epoch else name

    def start(self, name: str, input_: Mapping[str, Any]) -> None:
        """Start execution `name`; one that exists already with the same input was this run's (idempotent). One with
        another input is an earlier ledger's run of the same name (Step Functions keeps a name for 90 days after its
        execution ends, a ledger recreated numbers its runs from 1 again): a clear error, not a run that never
        starts."""
        try:
            self.sfn.start_execution(stateMachineArn=self.arn, name=self.execution_name(name), input=json.dumps(input_))
        except Exception as exc:
            if error_code(exc) != "ExecutionAlreadyExists":
                raise
            earlier = self.sfn.describe_execution(executionArn=self.execution_arn(name))
            if json.loads(earlier.get("input") or "null") != input_:
                raise PipelineError(
                    f"execution name {self.execution_name(name)} was used by another run (started "
                    f"{earlier.get('startDate')}): Step Functions keeps execution names for 90 days; the run stays "
                    "planned, not started"
                ) from exc
            log.info("execution %s exists already", name)

    def status(self, name: str) -> str | None:
        """The execution's status, or None if it was never started."""
        try:
            return str(self.sfn.describe_execution(executionArn=self.execution_arn(name))["status"])
        except Exception as exc:
            if error_code(exc) == "ExecutionDoesNotExist":
                return None
            raise


TickAction = Literal["started", "busy", "waiting", "idle"]


@dataclass(frozen=True)
class Tick:
    """What one look at the ledger did: started, busy (a run is in flight), waiting (not due yet), idle; and the
    files a dead validator left RECEIVED: those `announced` again, how many are `past_lease` (pipeline/recovery.py)."""

    action: TickAction
    run: str | None = None
    detail: str = ""
    announced: tuple[str, ...] = ()
    past_lease: int = 0


class Pipeline:
    """The batcher: accepted files in the ledger become pipeline runs when they have waited long enough."""

    def __init__(
        self,
        settings: Settings,
        stage: Stage,
        ledger: Ledger,
        orchestrator: Orchestrator,
        alert: Callable[[str, str], None] = lambda subject, message: None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        send: Callable[[str], None] | None = None,
    ) -> None:
        self.settings, self.stage, self.ledger = settings, stage, ledger
        self.orchestrator, self.alert, self.now = orchestrator, alert, now
        self.send = send or queue_sender(stage)  # a message to the ingest queue (the validator's)
        self.policy = BatchPolicy.of(settings)

    @classmethod
    def on_aws(cls, settings: Settings, stage: Stage, ledger: Ledger) -> Pipeline:
        """The pipeline of a deployed stage: its state machine, its alerts topic."""
        from chalicelib.aws import ClientSettings, account_id, client

        clients = ClientSettings.for_stage(stage)
        topic = stage.topic_arn(stage.alerts_topic, account_id(client("sts", clients)))

        def alert(subject: str, message: str) -> None:
            client("sns", clients).publish(TopicArn=topic, Subject=subject[:100], Message=message)

        return cls(settings, stage, ledger, StepFunctions.for_stage(stage, ledger.epoch()), alert)

    # -- the batcher -------------------------------------------------------------------------------------
    def waiting(self) -> dict[str, list[FileRecord]]:
        """VALID files not yet merged, by dataset, oldest first."""
        return {d: files for d in self.settings.datasets if (files := self.ledger.pending_files(d))}

    def due(self, waiting: Mapping[str, list[FileRecord]]) -> str | None:
        """Why a run should start now, or None while the window is still open."""
        return self.policy.due([f for records in waiting.values() for f in records], self.now())

    def tick(self, *, force: bool = False, crawl: bool = False, engine: str | None = None) -> Tick:
        """Look at the ledger once: resume or recover the active run, or start a new one when it is due.

        The schedule calls this every minute; `lakehouse run` calls it with `force` (no waiting for the window),
        with `crawl` to crawl every two-format dataset of the run whatever its layouts (`lakehouse run --crawl`),
        and with `engine` to run every dataset's batch on that engine ("spark", "single"; `lakehouse run --engine`).
        Then it announces again the files a dead validator left RECEIVED (`recover_received`).
        """
        tick = self._tick(force=force, crawl=crawl, engine=engine)
        recovery = self.recover_received()
        return replace(tick, announced=recovery.announced, past_lease=recovery.past_lease)

    def recover_received(self) -> Recovery:
        """Announce again each file RECEIVED past its lease and the queue's visibility timeout; count them."""
        return recover_received(self.ledger, self.stage, self.send, self.now())

    def _tick(self, *, force: bool, crawl: bool, engine: str | None) -> Tick:
        active = self.ledger.active_run()
        if active is not None:
            if active.plan is None:  # the batcher stopped between naming the run and planning it
                active = self._plan(active)
            state = self.orchestrator.status(active.name)
            if state is None:  # ... or between planning and starting it
                # a plan saved by an older planner gets today's fields, or the execution dies uncaught
                self.orchestrator.start(active.name, resumed(active.plan or {}, active.bytes))
                return Tick("started", active.name, "resumed a run that was planned but not started")
            if state == RUNNING:
                return Tick("busy", active.name, "a run is in flight")
            cause = f"execution {active.name} ended {state} before the pipeline recorded its outcome"
            RunSteps(self.settings, self.stage, self.ledger).fail(active.name, "ExecutionEnded", cause)
            self.alert(f"lakehouse: run {active.name} FAILED", cause)
        waiting = self.waiting()
        if not waiting:
            return Tick("idle", detail="no accepted files are waiting")
        reason = self.due(waiting) or ("forced" if force else None)
        if reason is None:
            count = sum(len(v) for v in waiting.values())
            return Tick("waiting", detail=f"{count} files waiting for the window to close")
        run = self.ledger.begin_run()
        if run is None:  # a maintenance job holds the run lock (chalicelib/pipeline/maintenance.py), or a run began
            holder = self.ledger.lock_holder() or "another batcher's run"
            return Tick("busy", detail=f"{holder} holds the run lock")
        run = self._plan(run, crawl=crawl, engine=engine)
        if not run.batches:  # the files went away between the look and the plan
            self.ledger.end_run(run.name, "SUCCEEDED", cause="nothing left to process")
            return Tick("idle", run.name, "nothing left to process")
        self.orchestrator.start(run.name, run.plan or {})
        log.info("run %s started: %s files (%s)", run.name, run.files, reason)
        return Tick("started", run.name, reason)

    def _plan(self, run: Run, *, crawl: bool = False, engine: str | None = None) -> Run:
        """Open one batch per dataset with waiting files (or resume an open one) and record the plan: its batches
        level by level, which datasets are crawled and why (`chalicelib.pipeline.crawling`), and how the run is
        sized (`sizing`)."""
        levels: list[list[PlannedBatch]] = []
        crawls: list[CrawlDecision] = []
        engines: dict[str, str] = {}
        files, size = 0, 0
        for level in dataset_levels(self.settings):
            batches: list[PlannedBatch] = []
            for dataset in level:
                batch = self.ledger.open_batch(dataset, take=self.policy.take, limit=self.policy.max_files)
                if batch is None:
                    continue
                records = self.ledger.get_many(batch.files)
                from_contract = catalogued_from_contract(self.settings.datasets[dataset])
                crawled = self.ledger.crawled_layouts(dataset)
                crawls.append(decide(dataset, records, crawled, force=crawl, from_contract=from_contract))
                files += len(records)
                batch_bytes = sum(r.size or 0 for r in records)
                size += batch_bytes
                chosen = choose(self.settings, dataset, batch_bytes, engine)
                engines[dataset] = chosen.why
                job = spark_job(self.stage, dataset) if chosen.spark else process_job(self.stage, dataset)
                batches.append(
                    {
                        "dataset": dataset,
                        "batch": batch.number,
                        "job": job,
                        "worker_type": chosen.worker_type,
                        "workers": chosen.workers,
                    }
                )
            if batches:
                levels.append(batches)
        plan: RunPlan = {
            "run": run.name,
            "crawlers": [crawler_name(self.stage, c.dataset) for c in crawls if c.crawl],
            "crawl_reasons": {c.dataset: c.reason for c in crawls},
            "layouts": {c.dataset: list(c.layouts) for c in crawls if c.crawl},
            "levels": levels,
            "engines": engines,
            **self.sizing(size, spark=any(v.startswith("spark") for v in engines.values())),
        }
        return self.ledger.save_plan(run, plan, files, size)

    def sizing(self, size: int, *, spark: bool = False) -> RunSizing:
        """How a run of `size` bytes of files is run. Glue bills every job run a minute of at least two workers
        (Spark's minimum; the ETL runs on the driver alone), so a small run is one job doing everything: every
        dataset's batch, the audit and curated/ ('single'). A bigger one gets a job per dataset, those of a level
        side by side, then the master merge ('per_dataset'), on workers sized from the run's bytes. See docs/etl.md
        for the numbers."""
        limit = self.settings.pipeline.single_job_bytes
        if size <= limit and not spark:
            return {"mode": "single", "job": run_job(self.stage), "sizing": f"{size:,} bytes <= {limit:,}: one job"}
        # the master merge reads what the run changed, on one node: sized from the run's bytes as a batch is
        merge: MasterMerge = {"worker_type": single_node_worker_type(size), "workers": 2}
        if spark:  # a Spark batch is its own job: the others of the run get theirs
            sizing = f"{size:,} bytes, a dataset on Spark: a job per dataset"
            return {"mode": "per_dataset", "master_merge": merge, "sizing": sizing}
        sizing = f"{size:,} bytes > {limit:,} (single_job_bytes): a job per dataset"
        return {"mode": "per_dataset", "master_merge": merge, "sizing": sizing}
