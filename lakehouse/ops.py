"""The operations the commands and the demo share: the project's settings, the local stage, dropping files and
waiting for their verdicts, a pipeline run, the lifecycle definitions.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from chalicelib.config import SETTINGS_FILE, Settings, Stage, config_files, load_settings
from chalicelib.errors import ConfigError, LakehouseError
from chalicelib.ledger import FINAL, DynamoDBLedger, FileRecord
from chalicelib.lifecycle.rules import definition_text
from lakehouse import localstage, paths
from lakehouse.output import console, print_execution

CONFIG_DIR = paths.CONFIG_DIR


def project_settings() -> Settings:
    """The configuration the commands work from: `LAKEHOUSE_CONFIG`, by default the project's `config/`."""
    if not (CONFIG_DIR / SETTINGS_FILE).is_file():  # else the parser's "lakehouse.toml: missing" names no folder
        where = "LAKEHOUSE_CONFIG names the configuration folder (by default the project's config/)"
        raise ConfigError(str(CONFIG_DIR / SETTINGS_FILE), "(file)", None, f"missing; {where}")
    return load_settings(CONFIG_DIR)


def stage_settings(stage_name: str) -> tuple[Settings, Stage]:
    """Settings and one stage, its default bucket names completed with the account: moto's on the local stage, the
    one your AWS credentials are in otherwise (asking STS, so those credentials must work)."""
    settings = project_settings()
    stage = settings.stage(stage_name)
    if stage_name == localstage.STAGE:
        account = localstage.ACCOUNT
    else:
        from chalicelib.aws import ClientSettings, account_id, client

        account = account_id(client("sts", ClientSettings.from_env(stage.region)))
    settings = settings.for_account(account)
    return settings, settings.stage(stage_name)


def connect(stage_name: str) -> tuple[Settings, Stage]:
    """Settings and the stage; the local stage must be running, an AWS stage uses your AWS credentials."""
    if stage_name == localstage.STAGE:
        localstage.use(localstage.require())
    return stage_settings(stage_name)


def start_local_stage(settings: Settings) -> tuple[localstage.LocalStage, bool]:
    """Start the local stage if needed and provision it with the code an AWS stage uses."""
    from chalicelib.aws import Clients
    from chalicelib.stage.roles import lifecycle_buckets
    from deploy.chalice_project import write_environment
    from deploy.provision import provision
    from lakehouse.local_iam import ensure_lambda_roles

    settings = settings.for_account(localstage.ACCOUNT)
    stage = settings.stage(localstage.STAGE)

    def deploy() -> list[str]:
        done = provision(
            settings,
            stage,
            Clients.for_stage(stage),
            config_files(CONFIG_DIR),
            progress=lambda m: console.print(f"  {m}"),
        )
        # the Lambdas' roles, which `chalice deploy` makes on AWS: each local Lambda runs as its role
        lifecycle = lifecycle_buckets(definition_files(), stage.bucket)
        console.print(f"  {ensure_lambda_roles(settings, stage, localstage.ACCOUNT, lifecycle)}")
        write_environment(stage, localstage.ACCOUNT)  # the local Lambdas' environment, as `lakehouse deploy` does
        restored = localstage.last_restore() or {}
        if restored.get("manifest") or restored.get("replayed"):
            console.print(f"  raw files re-announced to the validator: {announce_unknown_raw_files(settings, stage)}")
            console.print(f"  RECEIVED files re-announced to the validator: {announce_received_files(stage)}")
        return done

    return localstage.up(stage.region, deploy)


def next_run(settings: Settings, stage: Stage, ledger: Any, now: datetime | None = None) -> tuple[str, str] | None:
    """When the accepted files waiting in the ledger go through the pipeline: (the time, `HH:MM:SS UTC`, and one line
    that says it, why, and that `lakehouse run` starts a run now); None if no file waits."""
    from chalicelib.pipeline.batching import BATCHER_MINUTES, BatchPolicy

    waiting = [f for dataset in settings.datasets for f in ledger.pending_files(dataset)]
    if not waiting:
        return None
    files = f"{len(waiting)} accepted file waits" if len(waiting) == 1 else f"{len(waiting)} accepted files wait"
    option = "" if stage.name == localstage.STAGE else f" --stage {stage.name}"
    run_now = f"`lakehouse run{option}` starts one now"
    every = BATCHER_MINUTES * 60.0
    if stage.name == localstage.STAGE:
        local = localstage.running()
        every = local.batcher_seconds if local is not None else every
        if every <= 0:
            return "", (
                f"{files} for a pipeline run; this local stage runs no batcher ({localstage.BATCHER_ENV}=0): {run_now}"
            )
    by, why = BatchPolicy.of(settings).starts_by(waiting, now or datetime.now(UTC), every)
    active = ledger.active_run()
    after = f", after {active.name} (in flight) ends" if active is not None else ""
    when = f"{by:%H:%M:%S} UTC"
    return when, (f"{files} for a pipeline run: it starts by {when}{after} ({why}); {run_now}")


def raw_key(settings: Settings, dataset: str, path: Path, today: str | None = None) -> str:
    return f"{settings.zones.raw}{dataset}/ingest_date={today or datetime.now(UTC).date().isoformat()}/{path.name}"


def announce_unknown_raw_files(settings: Settings, stage: Stage) -> int:
    """Send the validator the S3 notification of every raw file the ledger has no record of: a restored stage's
    queue messages were in memory (lakehouse/snapshot.py), so a file uploaded but not yet validated would wait
    for ever. A file the ledger knows is left alone (the validator would acknowledge it anyway)."""
    from chalicelib.aws import ClientSettings, client
    from chalicelib.ledger import ledger_for

    s3, sqs = client("s3", ClientSettings.for_stage(stage)), client("sqs", ClientSettings.for_stage(stage))
    ledger, url, sent = ledger_for(stage), None, 0
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=stage.bucket, Prefix=settings.zones.raw):
        for version in page.get("Versions", []):
            if version["IsLatest"] and ledger.get(f"{stage.bucket}/{version['Key']}#{version['VersionId']}") is None:
                url = url or sqs.get_queue_url(QueueName=stage.ingest_queue)["QueueUrl"]
                body = localstage.s3_notification(stage.bucket, version["Key"], version["VersionId"])
                sqs.send_message(QueueUrl=url, MessageBody=body)
                sent += 1
    return sent


def announce_received_files(stage: Stage) -> int:
    """Announce again every file left RECEIVED past its lease and the queue's visibility timeout: the validator that
    held it died with the stage, and its message with the stage's queues (chalicelib/pipeline/recovery.py). One
    whose lease has not run out yet is announced by the batcher's next tick after it has."""
    from datetime import UTC, datetime

    from chalicelib.ledger import ledger_for
    from chalicelib.pipeline.recovery import queue_sender, recover_received

    return len(recover_received(ledger_for(stage), stage, queue_sender(stage), datetime.now(UTC)).announced)


def guess_dataset(settings: Settings, path: Path) -> str:
    """The dataset a file name starts with (longest match: order_items before orders)."""
    for name in sorted(settings.datasets, key=len, reverse=True):
        if path.name.startswith(name):
            return name
    raise click.UsageError(
        f"cannot tell the dataset of {path.name}; pass --dataset (one of {', '.join(sorted(settings.datasets))})"
    )


def drop_files(settings: Settings, stage: Any, files: list[tuple[Path, str]]) -> list[str]:
    """Upload files to raw/<dataset>/ through the S3 API; returns their ledger file ids."""
    from chalicelib.aws import ClientSettings, client

    s3 = client("s3", ClientSettings.for_stage(stage))
    ids = []
    for path, dataset in files:
        key = raw_key(settings, dataset, path)
        s3.upload_file(str(path), stage.bucket, key)  # multipart above 8 MB, as the AWS CLI does
        version = s3.head_object(Bucket=stage.bucket, Key=key).get("VersionId")
        ids.append(f"{stage.bucket}/{key}#{version}")
    return ids


def wait_for(ledger: DynamoDBLedger, file_ids: list[str], timeout: float) -> dict[str, FileRecord]:
    """Wait until every file has a final ledger status, with a progress bar."""
    done: dict[str, FileRecord] = {}
    deadline = time.monotonic() + timeout
    with Progress(
        TextColumn("validating"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as progress:
        task = progress.add_task("files", total=len(file_ids))
        while len(done) < len(file_ids):
            for file_id in file_ids:
                if file_id not in done and (record := ledger.get(file_id)) and record.status in FINAL:
                    done[file_id] = record
            progress.update(task, completed=len(done))
            if len(done) < len(file_ids):
                if time.monotonic() > deadline:
                    raise LakehouseError(
                        f"{len(file_ids) - len(done)} file(s) not validated after {timeout:.0f}s: "
                        f"{[f for f in file_ids if f not in done]}"
                    )
                time.sleep(0.2)
    return done


def fail_jobs(stage: Any, specs: tuple[str, ...]) -> dict[str, int]:
    """`orders` or `orders:1` (a dataset, or master_merge) -> {Glue job name: runs that will fail}."""
    from chalicelib.names import job_name, process_job

    out_: dict[str, int] = {}
    for spec in specs:
        name, _, times = spec.partition(":")
        job = job_name(stage, "master_merge.py") if name == "master_merge" else process_job(stage, name)
        out_[job] = int(times) if times else 1_000_000
    return out_


BUSY_WAIT_SECONDS = 3600  # `lakehouse run` waits this long for a run the local stage's schedule started


def run_pipeline(
    settings: Settings,
    stage: Any,
    fail_jobs: dict[str, int] | None = None,
    *,
    crawl: bool = False,
    engine: str | None = None,
) -> list[dict[str, Any]]:
    """Start runs until nothing waits (a run takes at most one batch per dataset); returns the executions.
    `crawl`: every run crawls all its datasets, layout changed or not; `engine`: every batch on it ("spark")."""
    import logging

    import app  # noqa: F401  (its loggers exist from here on)
    from lakehouse.orchestration import local_pipeline

    for name in ("lakehouse", "chalicelib"):  # the Lambdas' JSON logs: the CLI prints its own progress
        logging.getLogger(name).setLevel(logging.WARNING)
    waited_since = None
    with local_pipeline(settings, stage, localstage.EXECUTIONS_DIR, fail_jobs) as (pipeline, orchestrator):
        while True:
            with console.status("pipeline: running"):
                tick = pipeline.tick(force=True, crawl=crawl, engine=engine)
            if tick.action == "busy":  # the local stage's own batcher schedule is running one: wait for it
                if waited_since is None:
                    console.print(f"pipeline: waiting for {tick.run or 'a run'} in flight in the local stage")
                    waited_since = time.monotonic()
                elif time.monotonic() - waited_since > BUSY_WAIT_SECONDS:
                    raise LakehouseError(
                        f"{tick.run} has been running for over {BUSY_WAIT_SECONDS // 60} minutes; "
                        "see `lakehouse executions` and the local stage's log"
                    )
                time.sleep(2)
                continue
            waited_since = None
            console.print(f"pipeline: {tick.action} {tick.run or ''} {tick.detail}", highlight=False)
            if tick.action != "started":
                return orchestrator.finished
            print_execution(orchestrator.finished[-1])
            if orchestrator.finished[-1]["status"] != "SUCCEEDED":
                return orchestrator.finished


LIFECYCLE_DIR = CONFIG_DIR / "lifecycle"


def definition_files(folder: Path = LIFECYCLE_DIR) -> dict[str, str | bytes]:
    """The lifecycle definition files of a folder, by name (one that is not UTF-8 as its bytes, for the parser to
    report with its name)."""
    return {path.name: definition_text(path.read_bytes()) for path in sorted(folder.glob("*.toml"))}


def local_lake_rules(settings: Settings) -> list[dict[str, Any]] | None:
    """The lake bucket's rules as config/lifecycle/ defines them (what `lifecycle push` would upload)."""
    from chalicelib.lifecycle.rules import lake_rules

    return lake_rules(definition_files(), settings.stage(localstage.STAGE).bucket)
