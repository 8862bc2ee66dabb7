"""The local stage and its files: `up`, `down`, `env`, `drop`, `ledger`, `check`, `generate`, `serve`, `demo`."""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path

import click
from rich.markup import escape
from rich.table import Table

from chalicelib.config import Settings, Stage
from chalicelib.ledger import FileRecord, Status, ledger_for
from lakehouse import localstage
from lakehouse.ops import (
    connect,
    drop_files,
    guess_dataset,
    next_run,
    project_settings,
    start_local_stage,
    wait_for,
)
from lakehouse.output import console, out, print_records


@click.command()
def up() -> None:
    """Start the embedded local stage (moto server + validator) and provision it, with the data it had at `down`.
    Idempotent."""
    with console.status("starting the local stage"):
        local, started = start_local_stage(project_settings())
    console.print(f"local stage {'started' if started else 'already running'} at {local.endpoint} (pid {local.pid})")
    restored = (localstage.last_restore() or {}) if started else {}
    if manifest := restored.get("manifest"):
        console.print(f"restored its data as of {manifest['taken_at']}: {manifest['counts']}", highlight=False)
    if restored.get("unclean"):
        console.print(
            "[yellow]the local stage had stopped without `lakehouse down` (killed?): the "
            f"{restored['replayed']} changes it acknowledged after its last snapshot were applied again from its "
            "journal[/yellow]",
            highlight=False,
        )
    for line in restored.get("failed", []):
        console.print(f"[red]not restored:[/red] {line}", highlight=False)


@click.command()
@click.option("--discard", is_flag=True, help="Forget the stage's data instead of keeping it for the next `up`.")
def down(discard: bool) -> None:
    """Stop the local stage. Its data (the lake with every object version, the ledger, the catalog, the runs) is
    kept under .lakehouse/ for the next `lakehouse up`, unless --discard. Idempotent."""
    with console.status("stopping the local stage" + ("" if discard else " and saving its data")):
        was = localstage.down(discard=discard)
    kept = "; its data forgotten" if discard else f"; its data kept in {localstage.SNAPSHOT_DIR}"
    console.print(("local stage stopped" if was else "local stage was not running") + kept, highlight=False)


@click.command()
def env() -> None:
    """Print the environment for standard clients: eval "$(lakehouse env)" then use the AWS CLI or boto3."""
    local = localstage.require()
    stage = project_settings().stage(localstage.STAGE)
    for name, value in {**local.environment(), "LAKEHOUSE_BUCKET": stage.bucket}.items():
        out.print(f"export {name}={value}", highlight=False)


@click.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--dataset", help="Dataset of every file (default: from each file name).")
@click.option("--stage", "stage_name", default=localstage.STAGE, show_default=True)
@click.option("--wait/--no-wait", default=True, show_default=True, help="Wait for the validator's verdicts.")
@click.option("--timeout", default=120.0, show_default=True)
def drop(files: tuple[Path, ...], dataset: str | None, stage_name: str, wait: bool, timeout: float) -> None:
    """Upload FILES into raw/<dataset>/ and (by default) wait for each file's verdict."""
    settings, stage = connect(stage_name)
    if dataset is not None and dataset not in settings.datasets:
        console.print(f"[yellow]warning:[/yellow] no contract for dataset {dataset!r}: the files will be rejected")
    ids = drop_files(settings, stage, [(p, dataset or guess_dataset(settings, p)) for p in files])
    if not wait:
        out.print("\n".join(ids))
        return
    records = wait_for(ledger_for(stage), ids, timeout)
    waiting = _say_when_runs_start(settings, stage, [records[i] for i in ids])
    print_records([records[i] for i in ids], waiting)
    if waiting is not None:
        console.print(waiting[1], highlight=False, soft_wrap=True)
    if any(r.status != Status.VALID for r in records.values()):
        sys.exit(2)


@click.command()
@click.option("--stage", "stage_name", default=localstage.STAGE, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON document, for scripts.")
@click.option("--limit", type=click.IntRange(min=0), default=50, show_default=True, help="Newest N files (0: all).")
def ledger(stage_name: str, as_json: bool, limit: int) -> None:
    """List the file ledger, newest first."""
    settings, stage = connect(stage_name)
    records = ledger_for(stage).files(limit or None)
    if as_json:
        out.print_json(json.dumps([r.public() for r in records]))
        return
    waiting = _say_when_runs_start(settings, stage, records)
    print_records(records, waiting)
    if waiting is not None:
        console.print(waiting[1], highlight=False, soft_wrap=True)


def _say_when_runs_start(settings: Settings, stage: Stage, records: list[FileRecord]) -> tuple[str, str] | None:
    """When the run that takes the waiting files starts (see `ops.next_run`), if any of `records` waits for one."""
    if not any(r.pending for r in records):
        return None
    return next_run(settings, stage, ledger_for(stage))


@click.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--dataset", help="Dataset contract to check against (default: from the file name).")
@click.option("--json", "as_json", is_flag=True, help="The verdict as one JSON document, for scripts.")
def check(file: Path, dataset: str | None, as_json: bool) -> None:
    """Validate a local FILE against its contract, exactly as the validator would, without uploading it. Exit 2 if
    it would be rejected."""
    from chalicelib.ingest.validation import validate_stream

    settings = project_settings()
    name = dataset or guess_dataset(settings, file)
    if name not in settings.datasets:
        raise click.UsageError(f"no contract for dataset {name!r}")
    with file.open("rb") as stream:
        verdict = validate_stream(stream, key=file.name, contract=settings.datasets[name], limits=settings.limits)
    if as_json:
        out.print_json(json.dumps({"dataset": name, "ok": verdict.ok, **vars(verdict)}))
    elif verdict.ok:
        rows = f"{verdict.rows:,} row{'s' if verdict.rows != 1 else ''}"
        packed = ", gzip" if verdict.compressed else ""
        out.print(
            f"[green]VALID[/green] {escape(file.name)} as {name}: {rows}, {len(verdict.columns)} columns "
            f"({verdict.format}{packed}, {verdict.size:,} bytes, MD5 {verdict.md5})",
            highlight=False,
        )
    else:
        out.print(  # the message names the line where there is one
            f"[red]REJECTED[/red] {escape(file.name)} as {name}: {verdict.code}: {escape(verdict.message or '')}",
            highlight=False,
        )
    sys.exit(0 if verdict.ok else 2)


@click.command()
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


@click.command()
@click.option("--stage", "stage_name", default=localstage.STAGE, show_default=True)
@click.option("--host", default="127.0.0.1", show_default=True, help="Loopback by default: the local API is open.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
def serve(stage_name: str, host: str, port: int) -> None:
    """Serve the HTTP API (/cost, /status) and the dashboard (/) until stopped: on the local stage's data, or
    a deployed stage's with your AWS credentials (the API runs here, so no API key or IAM signing is needed).
    The local stage is started first if it is not running (as `lakehouse up`); stopped later, the dashboard says
    so, and started again (`lakehouse up`, on a new port) it is followed."""
    from lakehouse.serve import StageFollower, api_server, reap_when_it_stops

    settings = project_settings()
    if stage_name == localstage.STAGE:
        local = localstage.running()
        if local is None:
            with console.status("starting the local stage"):
                local, _ = start_local_stage(settings)
            reap_when_it_stops(local.pid)
            console.print(
                f"local stage started at {local.endpoint} (as `lakehouse up` does; `lakehouse down` stops it, "
                "`make demo` adds the demo's data)"
            )
        localstage.use(local)
    else:
        settings.stage(stage_name)  # an unknown stage is refused here, with the known ones
    follow = StageFollower(local) if stage_name == localstage.STAGE else None
    try:
        server = api_server(host, port, stage_name, follow)
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc.strerror} (try --port)") from None
    console.print(f"dashboard: http://{host}:{port}/   API: /cost, /status, /openapi.json   (Ctrl-C stops)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        console.print("stopped")


@click.command()
@click.option("--keep-running", is_flag=True, help="Leave the local stage up afterwards.")
@click.option(
    "--fail-job",
    metavar="DATASET",
    help="First run the pipeline with this dataset's Glue job failing, to see the alert and FAILED files.",
)
@click.option(
    "--fresh",
    is_flag=True,
    help="Run on an empty stage: the local stage's data is set aside under .lakehouse/before-demo-<time>/.",
)
def demo(keep_running: bool, fail_job: str | None, fresh: bool) -> None:
    """Drop sample files into the local stage, run the pipeline over them, check the result, stop. A stage that
    holds data (running, or kept by `lakehouse down`) is used as it is: the demo adds its files and judges those."""
    from lakehouse.demo import run_demo

    if fail_job is not None and fail_job not in project_settings().datasets:
        raise click.BadParameter(f"not a dataset: {fail_job}", param_hint="--fail-job")
    sys.exit(run_demo(keep_running=keep_running, fail_job=fail_job, fresh=fresh))
