"""`lakehouse`: the command line for the local stage and for deployed stages."""

from __future__ import annotations

import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from chalicelib.config import Settings, config_files, load_settings
from chalicelib.errors import LakehouseError
from chalicelib.ledger import FINAL, DynamoDBLedger, FileRecord, Status, ledger_for
from lakehouse import localstage
from lakehouse.jobs import rejected_by_reason

CONFIG_DIR = localstage.PROJECT_DIR / "config"


def _console(stderr: bool) -> Console:
    terminal = Console(stderr=stderr)
    # In logs and CI rich would wrap everything at 80 columns.
    return terminal if terminal.is_terminal else Console(stderr=stderr, width=160)


console = _console(stderr=True)  # progress and messages
out = _console(stderr=False)  # results


def _settings() -> Settings:
    return load_settings(CONFIG_DIR)


def _connect(stage_name: str) -> tuple[Settings, Any]:
    """Settings and the stage; the local stage must be running, an AWS stage uses your AWS credentials."""
    settings = _settings()
    stage = settings.stage(stage_name)
    if stage_name == localstage.STAGE:
        localstage.use(localstage.require())
    return settings, stage


class _Group(click.Group):
    """Turn the project's errors, and AWS's (a missing permission, no credentials), into one clear line and exit
    status 1, not a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return super().invoke(ctx)
        except LakehouseError as exc:
            console.print(f"[red]error:[/red] {exc}", highlight=False)
            sys.exit(1)
        except (BotoCoreError, ClientError) as exc:
            console.print(f"[red]error:[/red] AWS: {exc}", highlight=False)
            sys.exit(1)


@click.group(cls=_Group)
def main() -> None:
    """Serverless Lakehouse: local stage, ingest, and ledger."""


def start_local_stage(settings: Settings) -> tuple[localstage.LocalStage, bool]:
    """Start the local stage if needed and provision it with the code an AWS stage uses."""
    from chalicelib.aws import Clients
    from deploy.provision import provision

    stage = settings.stage(localstage.STAGE)
    return localstage.up(
        stage.region,
        lambda: provision(
            settings,
            stage,
            Clients.for_stage(stage),
            config_files(CONFIG_DIR),
            progress=lambda m: console.print(f"  {m}"),
        ),
    )


@main.command()
def up() -> None:
    """Start the embedded local stage (moto server + validator) and provision it. Idempotent."""
    with console.status("starting the local stage"):
        local, started = start_local_stage(_settings())
    console.print(f"local stage {'started' if started else 'already running'} at {local.endpoint} (pid {local.pid})")


@main.command()
def down() -> None:
    """Stop the local stage (its data is in memory and goes with it). Idempotent."""
    console.print("local stage stopped" if localstage.down() else "local stage was not running")


@main.command()
def env() -> None:
    """Print the environment for standard clients: eval "$(lakehouse env)" then use the AWS CLI or boto3."""
    local = localstage.require()
    stage = _settings().stage(localstage.STAGE)
    for name, value in {**local.environment(), "LAKEHOUSE_BUCKET": stage.bucket}.items():
        out.print(f"export {name}={value}", highlight=False)


@main.command()
@click.option("--stage", "stage_name", default="dev", show_default=True)
@click.option("--plan", "plan_only", is_flag=True, help="Show what would change and change nothing.")
def deploy(stage_name: str, plan_only: bool) -> None:
    """Create or update everything of an AWS stage that `chalice deploy` does not make (IAM roles, buckets,
    ledger, queues, topics, Glue, Athena, the state machine, an API key where used); idempotent, and a run
    that failed half-way is completed by the next. Then: chalice deploy --stage STAGE."""
    from chalicelib.aws import Clients
    from deploy.plan import plan
    from deploy.provision import provision

    settings = _settings()
    stage = settings.stage(stage_name)
    if stage_name == localstage.STAGE:
        raise click.UsageError("the local stage is deployed by `lakehouse up`")
    clients = Clients.for_stage(stage)
    if plan_only:
        with console.status(f"reading stage {stage_name}"):
            changes = plan(settings, stage, clients, config_files(CONFIG_DIR))
        print_changes(changes, f"lakehouse deploy --stage {stage_name} would change (--plan: nothing changed)")
        return
    provision(settings, stage, clients, config_files(CONFIG_DIR), progress=lambda m: console.print(f"  {m}"))
    console.print(f"deployed; next: chalice deploy --stage {stage_name}", highlight=False)


@main.command()
@click.option("--stage", "stage_name", default="dev", show_default=True)
@click.option("--yes", "apply", is_flag=True, help="Delete. Without it: only list what would be deleted.")
@click.option("--delete-data", is_flag=True, help="Also the lake bucket (every version), its access logs, the ledger.")
def teardown(stage_name: str, apply: bool, delete_data: bool) -> None:
    """Delete what `lakehouse deploy` made (run `chalice delete --stage STAGE` first). The data is kept unless
    --delete-data; a teardown that failed half-way is finished by running it again."""
    from chalicelib.aws import Clients
    from deploy.teardown import teardown as run

    settings = _settings()
    stage = settings.stage(stage_name)
    if stage_name == localstage.STAGE:
        raise click.UsageError("the local stage goes with `lakehouse down`")
    deleted, kept = run(
        settings,
        stage,
        Clients.for_stage(stage),
        apply=apply,
        delete_data=delete_data,
        progress=lambda m: console.print(f"  {m}", highlight=False),
    )
    if not deleted:
        out.print(f"nothing of stage {stage_name} left to delete", highlight=False)
    for what in kept:
        out.print(f"kept: {what} (--delete-data deletes it)", highlight=False)
    if deleted and not apply:
        out.print(f"a dry run: `lakehouse teardown --stage {stage_name} --yes` deletes these", highlight=False)


@main.command(hidden=True)
@click.option("--stage", "stage_name", default="dev", show_default=True)
@click.pass_context
def provision(ctx: click.Context, stage_name: str) -> None:
    """The old name of `lakehouse deploy`."""
    ctx.invoke(deploy, stage_name=stage_name, plan_only=False)


def print_changes(findings: list[Any], title: str) -> None:
    if not findings:
        out.print("nothing to change", highlight=False)
        return
    print_findings(findings, title, with_fix=False)
    out.print(f"{len(findings)} changes", highlight=False)


def raw_key(settings: Settings, dataset: str, path: Path, today: str | None = None) -> str:
    return f"{settings.zones.raw}{dataset}/ingest_date={today or datetime.now(UTC).date().isoformat()}/{path.name}"


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


@main.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--dataset", help="Dataset of every file (default: from each file name).")
@click.option("--stage", "stage_name", default=localstage.STAGE, show_default=True)
@click.option("--wait/--no-wait", default=True, show_default=True, help="Wait for the validator's verdicts.")
@click.option("--timeout", default=120.0, show_default=True)
def drop(files: tuple[Path, ...], dataset: str | None, stage_name: str, wait: bool, timeout: float) -> None:
    """Upload FILES into raw/<dataset>/ and (by default) wait for each file's verdict."""
    settings, stage = _connect(stage_name)
    if dataset is not None and dataset not in settings.datasets:
        console.print(f"[yellow]warning:[/yellow] no contract for dataset {dataset!r}: the files will be rejected")
    ids = drop_files(settings, stage, [(p, dataset or guess_dataset(settings, p)) for p in files])
    if not wait:
        out.print("\n".join(ids))
        return
    records = wait_for(ledger_for(stage), ids, timeout)
    print_records([records[i] for i in ids])
    if any(r.status != Status.VALID for r in records.values()):
        sys.exit(2)


def print_records(records: list[FileRecord]) -> None:
    table = Table("status", "dataset", "file", "rows", "in Delta", "reason")
    colours = {
        "VALID": "green",
        "PROCESSED": "blue",
        "DUPLICATE": "yellow",
        "REJECTED": "red",
        "GONE": "magenta",
        "FAILED": "bold red",
    }
    for r in records:
        reason = f"{r.reason_code}: {r.reason}" if r.reason_code else ""
        if r.line:
            reason += f" [line {r.line}]"
        merged = (
            "" if r.delta_version is None else f"v{r.delta_version}: {r.rows_merged} merged, {r.rows_rejected} rejected"
        )
        table.add_row(
            f"[{colours.get(r.status, 'white')}]{r.status}[/]",
            r.dataset,
            r.key.rsplit("/", 1)[-1],
            "" if r.rows is None else str(r.rows),
            merged,
            reason,
        )
    out.print(table)


@main.command()
@click.option("--stage", "stage_name", default=localstage.STAGE, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON document, for scripts.")
@click.option("--limit", default=50, show_default=True, help="Newest N files (0: all).")
def ledger(stage_name: str, as_json: bool, limit: int) -> None:
    """List the file ledger, newest first."""
    _, stage = _connect(stage_name)
    records = ledger_for(stage).files(limit or None)
    if as_json:
        out.print_json(json.dumps([r.public() for r in records]))
    else:
        print_records(records)


@main.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--dataset", help="Dataset contract to check against (default: from the file name).")
def check(file: Path, dataset: str | None) -> None:
    """Validate a local FILE against its contract, exactly as the validator would, without uploading it."""
    from chalicelib.ingest.validation import validate_stream

    settings = _settings()
    name = dataset or guess_dataset(settings, file)
    if name not in settings.datasets:
        raise click.UsageError(f"no contract for dataset {name!r}")
    with file.open("rb") as stream:
        verdict = validate_stream(stream, key=file.name, contract=settings.datasets[name], limits=settings.limits)
    out.print_json(json.dumps({"dataset": name, "ok": verdict.ok, **vars(verdict)}))
    sys.exit(0 if verdict.ok else 2)


@main.command()
@click.argument("folder", type=click.Path(file_okay=False, path_type=Path))
@click.option("--orders", default=2000, show_default=True, help="Number of orders (other datasets scale with it).")
@click.option("--anomaly-rate", default=0.02, show_default=True, help="Share of rows with one planted anomaly.")
@click.option("--seed", default=7, show_default=True)
@click.option("--end", type=click.DateTime(["%Y-%m-%d"]), help="The data ends the day before (default: today, UTC).")
def generate(folder: Path, orders: int, anomaly_rate: float, seed: int, end: datetime | None) -> None:
    """Write a deterministic sample set of all datasets into FOLDER, with planted anomalies (manifest.json).
    The same seed and end give the same files."""
    from lakehouse.generate import generate as write

    if orders < 1 or not 0 <= anomaly_rate < 1:
        raise click.UsageError("--orders must be at least 1 and --anomaly-rate in [0, 1)")
    manifest = write(folder, orders=orders, anomaly_rate=anomaly_rate, seed=seed, end=end and end.date())
    table = Table("dataset", "file", "rows", "kept by the ETL", "duplicates", "planted anomalies")
    for name, planted in manifest["datasets"].items():
        table.add_row(
            name,
            planted["file"],
            str(planted["rows_written"]),
            str(planted["clean_rows"]),
            str(planted["duplicates"]),
            ", ".join(f"{k} {n}" for k, n in sorted(planted["anomalies"].items())),
        )
    out.print(table)
    console.print(f"manifest: {folder / 'manifest.json'}")


def print_etl(reports: dict[str, list[dict[str, Any]]]) -> None:
    table = Table(
        "dataset",
        "batches",
        "files",
        "rows read",
        "merged",
        "rejected",
        "duplicates",
        "rejected by reason",
        "delta version",
    )
    for dataset, batches in reports.items():
        if dataset == "curated":
            continue
        reasons = rejected_by_reason(batches)
        table.add_row(
            dataset,
            str(len(batches)),
            str(sum(b["files"] for b in batches)),
            str(sum(b["rows_read"] for b in batches)),
            str(sum(b["rows_merged"] for b in batches)),
            str(sum(b["rows_rejected"] for b in batches)),
            str(sum(b["duplicates_dropped"] for b in batches)),
            ", ".join(f"{k} {n}" for k, n in sorted(reasons.items())),
            str(batches[-1]["delta_version"]) if batches else "-",
        )
    out.print(table)
    if "curated" in reports:
        out.print(
            "curated: "
            + ", ".join(f"{r['table']} {r['rows']} rows (v{r['delta_version']})" for r in reports["curated"])
        )


@main.command()
@click.option("--stage", "stage_name", default=localstage.STAGE, show_default=True)
@click.option("--dataset", "datasets", multiple=True, help="Only these datasets (default: all, parents first).")
@click.option("--curated/--no-curated", default=True, show_default=True, help="Rebuild curated/ afterwards.")
def etl(stage_name: str, datasets: tuple[str, ...], curated: bool) -> None:
    """Run the Glue jobs as local processes: processed/ for pending files, then the master merge."""
    from lakehouse.jobs import run_etl

    settings, stage = _connect(stage_name)
    unknown = set(datasets) - set(settings.datasets)
    if unknown:
        raise click.UsageError(f"unknown dataset(s) {sorted(unknown)}; known: {', '.join(sorted(settings.datasets))}")
    with console.status("etl") as status:
        reports = run_etl(
            settings, stage, list(datasets) or None, curated, progress=lambda job: status.update(f"running {job}")
        )
    print_etl(reports)


@main.group()
def table() -> None:
    """Delta tables: list, history, show (with time travel), housekeeping."""


def _lake(stage_name: str) -> Any:
    from lakehouse_etl.lake import Lake

    settings, stage = _connect(stage_name)
    return Lake.for_stage(settings, stage)


@table.command("list")
@click.option("--stage", "stage_name", default=localstage.STAGE, show_default=True)
def table_list(stage_name: str) -> None:
    """Every processed/ and curated/ table with its version and row count."""
    from lakehouse_etl import delta
    from lakehouse_etl import local_sql as catalog

    lake = _lake(stage_name)
    listing = Table("table", "version", "rows", "location")
    for name, uri in catalog.tables(lake).items():
        dt = delta.open_table(uri, lake.storage_options)
        listing.add_row(name, "-" if dt is None else str(dt.version()), "-" if dt is None else str(dt.count()), uri)
    out.print(listing)


def _uri(lake: Any, name: str) -> str:
    from lakehouse_etl import local_sql as catalog

    try:
        return catalog.uri_of(lake, name)
    except KeyError as exc:
        raise click.UsageError(str(exc.args[0])) from None


@table.command("history")
@click.argument("name")
@click.option("--stage", "stage_name", default=localstage.STAGE, show_default=True)
def table_history(name: str, stage_name: str) -> None:
    """The commits of table NAME (e.g. processed/orders), newest first."""
    from lakehouse_etl import delta

    lake = _lake(stage_name)
    dt = delta.open_table(_uri(lake, name), lake.storage_options)
    if dt is None:
        raise LakehouseError(f"{name} has no commits yet")
    history = Table("version", "time (UTC)", "operation", "rows out", "files added", "files removed")
    for entry in dt.history():
        metrics = entry.get("operationMetrics", {})
        when = datetime.fromtimestamp(entry["timestamp"] / 1000, UTC).isoformat(timespec="seconds")
        history.add_row(
            str(entry["version"]),
            when,
            entry["operation"],
            str(metrics.get("num_output_rows", metrics.get("numOutputRows", ""))),
            str(metrics.get("num_target_files_added", metrics.get("numAddedFiles", ""))),
            str(metrics.get("num_target_files_removed", metrics.get("numRemovedFiles", ""))),
        )
    out.print(history)


@table.command("show")
@click.argument("name")
@click.option("--version", type=int, help="Time travel: the table as of this version.")
@click.option("--as-of", help="Time travel: the table as of this time (ISO 8601, e.g. 2026-11-25T10:00:00Z).")
@click.option("--limit", default=20, show_default=True)
@click.option("--stage", "stage_name", default=localstage.STAGE, show_default=True)
def table_show(name: str, version: int | None, as_of: str | None, limit: int, stage_name: str) -> None:
    """Rows of table NAME, now or as it was (--version / --as-of)."""
    from lakehouse_etl import delta

    if version is not None and as_of is not None:
        raise click.UsageError("give --version or --as-of, not both")
    lake = _lake(stage_name)
    try:
        data = delta.read(_uri(lake, name), lake.storage_options, version=version, as_of=as_of)
    except Exception as exc:
        if isinstance(exc, click.UsageError):
            raise
        raise LakehouseError(
            f"cannot read {name}{f' at version {version}' if version is not None else ''}"
            f"{f' as of {as_of}' if as_of else ''}: {exc}"
        ) from exc
    rows = Table(*data.column_names)
    for row in data.slice(0, limit).to_pylist():
        rows.add_row(*("" if v is None else str(v) for v in row.values()))
    out.print(rows)
    console.print(f"{data.num_rows} rows" + (f", first {limit} shown" if data.num_rows > limit else ""))


@table.command("housekeeping")
@click.option("--stage", "stage_name", default=localstage.STAGE, show_default=True)
def table_housekeeping(stage_name: str) -> None:
    """Compact small files and VACUUM every table (keeps 30 days of time travel); the Glue housekeeping job."""
    from lakehouse.jobs import run_script

    _, stage = _connect(stage_name)
    report = Table("table", "files added", "files removed by compaction", "files vacuumed", "version")
    for r in run_script("housekeeping.py", stage):
        if not r.get("missing"):
            report.add_row(
                r["table"],
                str(r["files_added"]),
                str(r["files_removed_by_compaction"]),
                str(r["files_vacuumed"]),
                str(r["version"]),
            )
    out.print(report)


# -- the pipeline ---------------------------------------------------------------------------------------------
_MARKS = {"StateExited": "[green]ok[/]", "StateFailed": "[red]FAILED[/]", "StateCaught": "[yellow]caught[/]"}


def print_execution(record: dict[str, Any], details: bool = False) -> None:
    """An execution's states in order: what finished, what was retried, what failed and why."""
    from chalicelib.pipeline.steps import describe_error

    colour = {"SUCCEEDED": "green", "FAILED": "red"}.get(record["status"], "yellow")
    out.print(f"[bold]{record['name']}[/]: [{colour}]{record['status']}[/]", highlight=False)
    for event in record.get("history", []):
        label, kind = event["state"], event["event"]
        if kind == "StateExited" and not details and label.count(".") > 2:
            continue  # inside Map iterations only what went wrong, unless asked for every state
        if kind == "TaskRetry":
            out.print(f"   retry  {label}: {event['error']} (attempt {event['attempt']})", highlight=False)
        elif kind in _MARKS:
            error = f"  {describe_error(event['error'], event.get('cause', ''))[:300]}" if "error" in event else ""
            out.print(f"   {_MARKS[kind]:<6} {label}{error}", highlight=False)
    runs = record.get("glue_runs", [])
    if runs:
        failed = sum(r.get("JobRunState") == "FAILED" for r in runs)
        out.print(f"   glue job runs: {len(runs)} ({failed} failed)", highlight=False)
    for message in record.get("published", []):
        topic = message["TopicArn"].rsplit(":", 1)[-1]
        out.print(f"   sns {topic}: {message.get('Subject', '')}", highlight=False)
        if record["status"] != "SUCCEEDED":
            out.print(f"      {message['Message'][:600]}", highlight=False)


def _fail_jobs(stage: Any, specs: tuple[str, ...]) -> dict[str, int]:
    """`orders` or `orders:1` (a dataset, or master_merge) -> {Glue job name: runs that will fail}."""
    from chalicelib.names import job_name

    out_: dict[str, int] = {}
    for spec in specs:
        name, _, times = spec.partition(":")
        script = "master_merge.py" if name == "master_merge" else f"process_{name}.py"
        out_[job_name(stage, script)] = int(times) if times else 1_000_000
    return out_


BUSY_WAIT_SECONDS = 3600  # `lakehouse run` waits this long for a run the local stage's schedule started


def run_pipeline(settings: Settings, stage: Any, fail_jobs: dict[str, int] | None = None) -> list[dict[str, Any]]:
    """Start runs until nothing waits (a run takes at most one batch per dataset); returns the executions."""
    import logging

    import app  # noqa: F401  (its loggers exist from here on)
    from lakehouse.orchestration import local_pipeline

    for name in ("lakehouse", "chalicelib"):  # the Lambdas' JSON logs: the CLI prints its own progress
        logging.getLogger(name).setLevel(logging.WARNING)
    waited_since = None
    with local_pipeline(settings, stage, localstage.EXECUTIONS_DIR, fail_jobs) as (pipeline, orchestrator):
        while True:
            with console.status("pipeline: running"):
                tick = pipeline.tick(force=True)
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


@main.command("run")
@click.option("--stage", "stage_name", default=localstage.STAGE, show_default=True)
@click.option(
    "--fail-job",
    "fail_job",
    multiple=True,
    metavar="DATASET[:N]",
    help="Local stage: make a dataset's (or master_merge's) Glue job fail N times (default: every time).",
)
def run_command(stage_name: str, fail_job: tuple[str, ...]) -> None:
    """Run the pipeline over every accepted file now, without waiting for the batching window."""
    settings, stage = _connect(stage_name)
    if stage_name != localstage.STAGE:
        from chalicelib.pipeline.batcher import Pipeline

        if fail_job:
            raise click.UsageError("--fail-job is for the local stage")
        tick = Pipeline.on_aws(settings, stage, ledger_for(stage)).tick(force=True)
        console.print(f"pipeline: {tick.action} {tick.run or ''} {tick.detail}", highlight=False)
        return
    executions = run_pipeline(settings, stage, _fail_jobs(stage, fail_job))
    if any(e["status"] != "SUCCEEDED" for e in executions):
        sys.exit(1)


@main.command()
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
        records = aws_executions(_connect(stage_name)[1])
    if name:
        records = [r for r in records if r["name"] == name]
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


def aws_executions(stage: Any, limit: int = 50) -> list[dict[str, Any]]:
    """The stage's Step Functions executions; for a failed one, the state whose error failed it."""
    from chalicelib.pipeline.batcher import StepFunctions

    machine = StepFunctions.for_stage(stage)
    sfn, records = machine.sfn, []
    for execution in sfn.list_executions(stateMachineArn=machine.arn, maxResults=limit)["executions"]:
        record = {"name": execution["name"], "status": execution["status"], "started_at": str(execution["startDate"])}
        if execution["status"] != "SUCCEEDED":
            record.update(_failed_step(sfn, execution["executionArn"]))
        records.append(record)
    return records


def _failed_step(sfn: Any, execution_arn: str) -> dict[str, str]:
    """The first state that failed in an execution's history (the pipeline catches it and fails later)."""
    state = None
    pages = sfn.get_paginator("get_execution_history").paginate(executionArn=execution_arn)
    for event in (e for page in pages for e in page["events"]):
        if "stateEnteredEventDetails" in event:
            state = event["stateEnteredEventDetails"]["name"]
        for key, details in event.items():
            if key.endswith("FailedEventDetails") and "error" in details:
                return {"failed_state": state or "", "error": details["error"]}
    return {}


@main.command()
@click.option("--stage", "stage_name", default=localstage.STAGE, show_default=True)
@click.option("--run", "run_name", help="Only the files of this run.")
def requeue(stage_name: str, run_name: str | None) -> None:
    """Put FAILED files back in the queue (once their cause is fixed); the next run takes them."""
    _, stage = _connect(stage_name)
    ledger = ledger_for(stage)
    failed = [r for r in ledger.files() if r.status == Status.FAILED and (run_name is None or r.run == run_name)]
    done = sum(ledger.requeue(r.file_id) for r in failed)
    console.print(f"{done} FAILED file(s) requeued")


@main.command()
@click.argument("sql", required=False)
@click.option("--example", help="One of the shipped queries in chalicelib/queries/ (see --list).")
@click.option("--list", "list_examples", is_flag=True, help="List the shipped example queries.")
@click.option("--file", "sql_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--stage", "stage_name", default=localstage.STAGE, show_default=True)
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True)
@click.option("--timeout", default=300.0, show_default=True, help="Seconds before an Athena query is stopped.")
def query(
    sql: str | None,
    example: str | None,
    list_examples: bool,
    sql_file: Path | None,
    stage_name: str,
    fmt: str,
    timeout: float,
) -> None:
    """Run read-only SQL over the lake: DuckDB on the local stage, Athena on a deployed one."""
    import csv

    from lakehouse.query import as_text, examples, on_athena, on_duckdb

    shipped = examples()
    if list_examples:
        for name, path in shipped.items():
            out.print(f"{name}: {path.read_text().splitlines()[0].lstrip('- ')}", highlight=False)
        return
    if sum(x is not None for x in (sql, example, sql_file)) != 1:
        raise click.UsageError("give exactly one of SQL, --example NAME or --file PATH")
    if example is not None and example not in shipped:
        raise click.BadParameter(f"no example {example!r}; known: {', '.join(shipped)}", param_hint="--example")
    text = sql or (shipped[example] if example else sql_file).read_text()
    settings, stage = _connect(stage_name)
    with console.status(f"query on {'DuckDB' if stage_name == localstage.STAGE else 'Athena'}"):
        if stage_name == localstage.STAGE:
            result = on_duckdb(settings, stage, text)
        else:
            result = on_athena(settings, stage, text, timeout)
    if fmt == "json":
        out.print_json(json.dumps([dict(zip(result.columns, row, strict=True)) for row in result.rows], default=str))
    elif fmt == "csv":
        writer = csv.writer(sys.stdout)
        writer.writerow(result.columns)
        writer.writerows([[as_text(v) for v in row] for row in result.rows])
    else:
        table = Table(*result.columns)
        for row in result.rows:
            table.add_row(*(as_text(v) for v in row))
        out.print(table)
    scanned = "unknown" if result.bytes_scanned is None else f"{result.bytes_scanned:,} bytes"
    note = f" ({result.details['bytes']})" if "bytes" in result.details else ""
    console.print(f"{len(result.rows)} rows from {result.engine}; scanned: {scanned}{note}", highlight=False)


@main.group()
def quality() -> None:
    """The contracts' quality rules: results of the runs, a check now, DQDL for AWS Glue Data Quality."""


@quality.command("report")
@click.option("--run", "run_name", help="The results of this run (default: each dataset's latest).")
@click.option("--stage", "stage_name", default=localstage.STAGE, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON document, for scripts.")
def quality_report(run_name: str | None, stage_name: str, as_json: bool) -> None:
    """What the quality gate found, from the results the runs kept."""
    from lakehouse.quality_report import print_report

    settings, stage = _connect(stage_name)
    ledger_ = ledger_for(stage)
    results = []
    for dataset in sorted(settings.datasets):
        history = ledger_.quality_history(dataset, None if run_name else 1)
        results += [h for h in history if run_name is None or h["run"] == run_name]
    if as_json:
        out.print_json(json.dumps(results))
    elif not results:
        console.print(f"no quality results{f' for run {run_name}' if run_name else ''} yet")
    else:
        print_report(out, results, f"quality of run {run_name}" if run_name else "latest quality of each dataset")


@quality.command("check")
@click.argument("datasets", nargs=-1)
@click.option("--stage", "stage_name", default=localstage.STAGE, show_default=True)
@click.option("--timeout", default=300.0, show_default=True, help="Seconds before an Athena query is stopped.")
def quality_check(datasets: tuple[str, ...], stage_name: str, timeout: float) -> None:
    """Check the rules on the processed tables now (one scan per table; nothing is kept). Exit 1 on an error."""
    from chalicelib.quality import gate as rules
    from lakehouse.quality_report import counts, print_report
    from lakehouse.query import sql_engine

    settings, stage = _connect(stage_name)
    unknown = sorted(set(datasets) - set(settings.datasets))
    if unknown:
        raise click.BadParameter(f"not datasets: {', '.join(unknown)}", param_hint="DATASETS")
    engine = sql_engine(settings, stage, local=stage_name == localstage.STAGE)
    tables, now, results = engine.tables(), datetime.now(UTC), []
    for name in datasets or sorted(settings.datasets):
        rows, checks = rules.scan(engine, settings.datasets[name], tables, now, timeout)
        results.append({"dataset": name, "batch": None, "rows": rows, "checks": [c.__dict__ for c in checks]})
    print_report(out, results, f"quality of the processed tables now ({engine.name})")
    sys.exit(1 if counts(results)["ERROR"] else 0)


@quality.command("export-dqdl")
@click.argument("dataset")
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), help="Write here (default: stdout).")
def export_dqdl(dataset: str, output: Path | None) -> None:
    """Write DATASET's rules as an AWS Glue Data Quality (DQDL) ruleset."""
    from chalicelib.quality.dqdl import to_dqdl

    settings = _settings()
    if dataset not in settings.datasets:
        raise click.BadParameter(f"not a dataset: {dataset}; known: {', '.join(settings.datasets)}")
    try:
        text = to_dqdl(settings.datasets[dataset])
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    if output:
        output.write_text(text)
        console.print(f"wrote {output}")
    else:
        click.echo(text, nl=False)


LIFECYCLE_DIR = localstage.PROJECT_DIR / "config" / "lifecycle"


@main.group()
def lifecycle() -> None:
    """Bucket lifecycle rules from TOML definitions (config/lifecycle/), synced nightly."""


def _lifecycle(stage_name: str, workers: int = 16) -> Any:
    from chalicelib.lifecycle.sync import LifecycleSync

    settings, stage = _connect(stage_name)
    return settings, stage, LifecycleSync.for_stage(settings, stage, workers)


def definition_files(folder: Path = LIFECYCLE_DIR) -> dict[str, str]:
    """The lifecycle definition files of a folder, by name."""
    return {p.name: p.read_text(encoding="utf-8") for p in sorted(folder.glob("*.toml"))}


@lifecycle.command("push")
@click.option("--stage", "stage_name", default=localstage.STAGE, show_default=True)
@click.option("--from", "folder", default=LIFECYCLE_DIR, type=click.Path(file_okay=False, path_type=Path))
def lifecycle_push(stage_name: str, folder: Path) -> None:
    """Check the definitions in FOLDER and upload them to the stage's config/lifecycle/."""
    from chalicelib.lifecycle.rules import parse_definitions
    from deploy.provision import upload_config

    _, stage, sync = _lifecycle(stage_name)
    files = definition_files(folder)
    if not files:
        raise click.ClickException(f"no *.toml definitions in {folder}")
    problems = parse_definitions(files, stage.bucket).problems
    if problems:
        for where, problem in problems.items():
            console.print(f"[red]{where}[/red]: {problem}", highlight=False)
        raise click.ClickException("nothing uploaded: fix the definitions first")
    console.print(upload_config(sync.s3, stage.bucket, sync.definitions_prefix, files), highlight=False)


@lifecycle.command("sync")
@click.option("--stage", "stage_name", default=localstage.STAGE, show_default=True)
@click.option("--dry-run", is_flag=True, help="Print what would change; change nothing.")
@click.option("--workers", default=16, show_default=True, help="Buckets worked on at once.")
def lifecycle_sync(stage_name: str, dry_run: bool, workers: int) -> None:
    """Make every defined, existing bucket's lifecycle rules what the definitions in S3 say. Exit 1 if a
    definition was left out or a bucket failed."""
    import getpass

    from lakehouse.lifecycle_cli import print_sync

    _, _, sync = _lifecycle(stage_name, workers)
    report = sync.run(dry_run=dry_run, who=f"{getpass.getuser()} (lakehouse lifecycle sync)")
    print_sync(out, report)
    sys.exit(1 if report.problems or report.failed else 0)


@lifecycle.command("history")
@click.argument("bucket", required=False)
@click.option("--stage", "stage_name", default=localstage.STAGE, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="The history documents as JSON (before, after, files).")
def lifecycle_history(bucket: str | None, stage_name: str, as_json: bool) -> None:
    """Recorded lifecycle changes, newest first."""
    _, _, sync = _lifecycle(stage_name)
    documents = sync.history(bucket)
    if as_json:
        out.print_json(json.dumps(documents))
        return
    table = Table("change", "time", "who", "reason", "added", "removed")
    for column in table.columns:
        column.overflow = "fold"
    for doc in documents:
        table.add_row(
            doc["id"], doc["time"], doc["who"], doc["reason"], ", ".join(doc["added"]), ", ".join(doc["removed"])
        )
    out.print(table)


@lifecycle.command("rollback")
@click.argument("change_id")
@click.option("--stage", "stage_name", default=localstage.STAGE, show_default=True)
def lifecycle_rollback(change_id: str, stage_name: str) -> None:
    """Put a bucket's lifecycle rules back as they were before CHANGE_ID (see `lakehouse lifecycle history`)."""
    import getpass

    _, _, sync = _lifecycle(stage_name)
    try:
        change = sync.rollback(change_id, who=f"{getpass.getuser()} (lakehouse lifecycle rollback)")
    except KeyError as exc:
        raise click.ClickException(exc.args[0]) from None
    console.print(
        f"{change.bucket}: {change.action}; added {change.added}, removed {change.removed} ({change.change_id})",
        highlight=False,
    )


@main.command()
@click.option("--scenario", type=click.Choice(["light", "medium", "heavy"]), help="Default: this configuration.")
@click.option("--set", "values", multiple=True, metavar="NAME=VALUE", help="A usage figure, e.g. stored_gb=500.")
@click.option("--json", "as_json", is_flag=True, help="The estimate as JSON (what GET /cost answers).")
def cost(scenario: str | None, values: tuple[str, ...], as_json: bool) -> None:
    """Estimate the monthly AWS cost, service by service, from config/ (or a scenario) and usage figures."""
    from chalicelib.cost import estimate as costs

    params = {}
    for value in values:
        name, sep, raw = value.partition("=")
        if not sep:
            raise click.BadParameter(f"{value!r}: write NAME=VALUE", param_hint="--set")
        params[name.strip()] = raw.strip()
    settings = _settings()
    try:
        estimate = costs.estimate_for(settings, scenario, params, local_lake_rules(settings))
    except costs.UsageError as exc:
        raise click.BadParameter(str(exc), param_hint="--set") from None
    if as_json:
        out.print_json(json.dumps(estimate))
        return
    table = Table("service", "item", "quantity", "unit", "unit price", "per month", title_justify="left")
    table.title = f"monthly estimate: {scenario or 'this configuration'}, {estimate['region']}"
    for line in estimate["lines"]:
        if line["monthly"] or line["quantity"]:
            table.add_row(
                line["service"],
                line["item"],
                f"{line['quantity']:,.2f}",
                line["unit"],
                f"{line['unit_price']:g}" + (f" per {line['per']:,.0f}" if line["per"] != 1 else ""),
                f"{line['monthly']:,.2f}",
            )
    out.print(table)
    out.print(f"total: {estimate['monthly_total']:,.2f} {estimate['currency']} a month", highlight=False)
    out.print(f"prices: {estimate['price_source']}", highlight=False)
    for assumption in estimate["assumptions"]:
        out.print(f"  - {assumption}", highlight=False)
    print_what_if(estimate)


def local_lake_rules(settings: Settings) -> list[dict[str, Any]] | None:
    """The lake bucket's rules as config/lifecycle/ defines them (what `lifecycle push` would upload)."""
    from chalicelib.lifecycle.rules import lake_rules

    return lake_rules(definition_files(), settings.stage(localstage.STAGE).bucket)


def print_what_if(estimate: dict[str, Any]) -> None:
    out.print("what if:", highlight=False)
    for what in estimate["what_if"]:
        out.print(
            f"  {what['name']}: {what['monthly_saving']:,.2f} {estimate['currency']} a month saved ({what['detail']})",
            highlight=False,
        )


@main.command()
@click.option("--stage", "stage_name", default=localstage.STAGE, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="The report as JSON.")
def drift(stage_name: str, as_json: bool) -> None:
    """Compare the stage's declared setup with what is deployed; write the report to reports/drift/. Exit 1 on
    drift."""
    from chalicelib.stage.drift import run_report

    settings, stage = _connect(stage_name)
    with console.status("reading the stage's resources back"):
        report = run_report(settings, stage)
    if as_json:
        out.print_json(json.dumps(report.as_dict(), default=str))
    else:
        print_drift(report)
    deployed = report.deployment and report.deployment["config_fingerprint"]
    from chalicelib.stage.declared import config_fingerprint

    if deployed and deployed != config_fingerprint(config_files(CONFIG_DIR)):
        console.print(
            f"[yellow]config/ has changed since the last deployment[/yellow]: lakehouse deploy --stage {stage_name}"
        )
    console.print(f"written: {', '.join(f's3://{stage.bucket}/{k}' for k in report.keys)}", highlight=False)
    sys.exit(1 if report.drifted else 0)


def print_drift(report: Any) -> None:
    if not report.drifted:
        out.print(f"no drift on stage {report.stage}: {len(report.checked)} resources checked, {report.since()}")
        return
    print_findings(report.findings, f"drift on stage {report.stage}")
    out.print(
        f"{len(report.findings)} findings in {len(report.checked)} resources checked, {report.since()}", highlight=False
    )


def print_findings(findings: list[Any], title: str, with_fix: bool = True) -> None:
    """Drift findings, or a deployment plan's changes: what is declared against what is live."""
    from rich.markup import escape

    table = Table("resource", "property", "expected", "actual", *(["suggested fix"] if with_fix else []))
    table.title, table.title_justify = title, "left"
    for f in findings:
        values = (f.resource, f.property, f.expected, f.actual, *([f.fix] if with_fix else []))
        table.add_row(*(escape(v if isinstance(v, str) else json.dumps(v, default=str)) for v in values))
    out.print(table)


@main.command()
@click.option("--stage", "stage_name", default=localstage.STAGE, show_default=True)
@click.option("--host", default="127.0.0.1", show_default=True, help="Loopback by default: the local API is open.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
def serve(stage_name: str, host: str, port: int) -> None:
    """Serve the HTTP API (/cost, /status) and the dashboard (/) until stopped: on the local stage's data, or
    a deployed stage's with your AWS credentials (the API runs here, so no API key or IAM signing is needed)."""
    from lakehouse.serve import api_server

    settings = _settings()
    if stage_name == localstage.STAGE:
        local = localstage.running()
        if local is None:
            with console.status("starting the local stage"):
                local, _ = start_local_stage(settings)
            console.print("local stage started, empty: `make demo` fills it with the demo's data")
        localstage.use(local)
    else:
        settings.stage(stage_name)  # an unknown stage is refused here, with the known ones
    try:
        server = api_server(host, port, stage_name)
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc.strerror} (try --port)") from None
    console.print(f"dashboard: http://{host}:{port}/   API: /cost, /status, /openapi.json   (Ctrl-C stops)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        console.print("stopped")


@main.command()
@click.option("--keep-running", is_flag=True, help="Leave the local stage up afterwards.")
@click.option(
    "--fail-job",
    metavar="DATASET",
    help="First run the pipeline with this dataset's Glue job failing, to see the alert and FAILED files.",
)
def demo(keep_running: bool, fail_job: str | None) -> None:
    """Start a fresh local stage, drop sample files, run the pipeline over them, check the result, stop."""
    from lakehouse.demo import run_demo

    if fail_job is not None and fail_job not in _settings().datasets:
        raise click.BadParameter(f"not a dataset: {fail_job}", param_hint="--fail-job")
    sys.exit(run_demo(keep_running=keep_running, fail_job=fail_job))


if __name__ == "__main__":
    main()
