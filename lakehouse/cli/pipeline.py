"""`lakehouse run`, `executions` and `requeue`: pipeline runs on the local stage or a deployed one."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click
from rich.table import Table

from chalicelib.ledger import Status, ledger_for
from lakehouse import localstage
from lakehouse.ops import connect, fail_jobs, run_pipeline
from lakehouse.output import console, out, print_execution

if TYPE_CHECKING:
    from click.decorators import FC
    from types_boto3_stepfunctions import SFNClient


def engine_option(help: str) -> Callable[[FC], FC]:
    """`--engine auto|spark|single`, given to the command as None (auto: each batch by its size and contract) or
    the engine every batch runs on (`Pipeline.tick(engine=...)`)."""
    return click.option(
        "--engine",
        type=click.Choice(["auto", "spark", "single"]),
        default="auto",
        show_default=True,
        callback=lambda _ctx, _param, value: None if value == "auto" else value,
        help=help,
    )


@click.command("run")
@click.option("--stage", "stage_name", default=localstage.STAGE, show_default=True)
@click.option(
    "--fail-job",
    "fail_job",
    multiple=True,
    metavar="DATASET[:N]",
    help="Local stage: make a dataset's (or master_merge's) Glue job fail N times (default: every time).",
)
@click.option("--crawl", is_flag=True, help="Crawl every two-format dataset of the run, even with no new layout.")
@engine_option("Where each dataset's batch runs: by its size and contract (auto), on Spark, or on one node.")
def run_command(stage_name: str, fail_job: tuple[str, ...], crawl: bool, engine: str | None) -> None:
    """Run the pipeline over every accepted file now, without waiting for the batching window. Crawlers run
    only for two-format datasets whose files bring a raw layout not crawled before, unless --crawl. A dataset's
    batch runs on Spark past [pipeline] spark_bytes or when its contract says so, unless --engine says otherwise."""
    settings, stage = connect(stage_name)
    if stage_name != localstage.STAGE:
        from chalicelib.pipeline.batcher import Pipeline

        if fail_job:
            raise click.UsageError("--fail-job is for the local stage")
        tick = Pipeline.on_aws(settings, stage, ledger_for(stage)).tick(force=True, crawl=crawl, engine=engine)
        console.print(f"pipeline: {tick.action} {tick.run or ''} {tick.detail}", highlight=False)
        return
    executions = run_pipeline(settings, stage, fail_jobs(stage, fail_job), crawl=crawl, engine=engine)
    if any(e["status"] != "SUCCEEDED" for e in executions):
        sys.exit(1)


@click.command()
@click.argument("name", required=False)
@click.option("--stage", "stage_name", default=localstage.STAGE, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON document, for scripts.")
@click.option("--logs", is_flag=True, help="With NAME on the local stage: what its Lambda steps printed.")
def executions(name: str | None, stage_name: str, as_json: bool, logs: bool) -> None:
    """List pipeline executions with their state and failed step; with NAME, that execution's states."""
    if stage_name == localstage.STAGE:  # kept on disk: readable after `lakehouse down` too
        from lakehouse.orchestration import ExecutionStore

        records = ExecutionStore(localstage.EXECUTIONS_DIR).all()
    else:
        records = aws_executions(connect(stage_name)[1])
    if name:
        # on AWS a run's execution is `<run>-<ledger epoch>` (StepFunctions); earlier ledgers' runs of that name too
        records = [r for r in records if r["name"] == name or r["name"].startswith(f"{name}-")]
        if not records:
            raise click.BadParameter(f"no execution named {name}", param_hint="NAME")
    if as_json:
        out.print_json(json.dumps(records, default=str))
    elif name:
        print_execution(records[0], details=True)
        for line in records[0].get("lambda_logs", []) if logs else []:
            out.print(line, highlight=False, markup=False)
    else:
        table = Table("execution", "status", "started", "failed step", "error")
        for r in records:
            table.add_row(
                r["name"], r["status"], r["started_at"], r.get("failed_state") or "", (r.get("error") or "")[:80]
            )
        out.print(table)


@click.command()
@click.option("--stage", "stage_name", default=localstage.STAGE, show_default=True)
@click.option("--run", "run_name", help="Only the files of this run.")
def requeue(stage_name: str, run_name: str | None) -> None:
    """Put FAILED files back in the queue (once their cause is fixed); the next run takes them."""
    _, stage = connect(stage_name)
    ledger = ledger_for(stage)
    failed = [r for r in ledger.files() if r.status == Status.FAILED and (run_name is None or r.run == run_name)]
    done = sum(ledger.requeue(r.file_id) for r in failed)
    console.print(f"{done} FAILED file(s) requeued")


def aws_executions(stage: Any, limit: int = 50) -> list[dict[str, Any]]:
    """The stage's Step Functions executions; for a failed one, the state whose error failed it."""
    from chalicelib.pipeline.batcher import StepFunctions

    machine = StepFunctions.for_stage(stage)
    sfn, records = machine.sfn, []
    for execution in sfn.list_executions(stateMachineArn=machine.arn, maxResults=limit)["executions"]:
        record = {"name": execution["name"], "status": execution["status"], "started_at": str(execution["startDate"])}
        if execution["status"] != "SUCCEEDED":
            record.update(failed_step(sfn, execution["executionArn"]))
        records.append(record)
    return records


def failed_step(sfn: SFNClient, execution_arn: str) -> dict[str, str]:
    """The first state that failed in an execution's history (the pipeline catches it and fails later)."""
    state = None
    pages = sfn.get_paginator("get_execution_history").paginate(executionArn=execution_arn)
    for event in (e for page in pages for e in page["events"]):
        if "stateEnteredEventDetails" in event:
            state = event["stateEnteredEventDetails"]["name"]
        for key, details in event.items():
            if key.endswith("FailedEventDetails") and isinstance(details, dict) and "error" in details:
                return {"failed_state": state or "", "error": str(details["error"])}
    return {}
