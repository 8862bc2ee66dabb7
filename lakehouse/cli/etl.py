"""`lakehouse etl`, `curated rebuild` and `lakehouse table`: the Glue jobs under the pipeline's run lock (local
processes on the local stage, Glue job runs on a deployed one), the Delta tables and their history."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import click
from rich.table import Table

from chalicelib.config import Settings, Stage, dataset_order
from chalicelib.errors import LakehouseError, NotFoundError
from chalicelib.names import job_name
from lakehouse import localstage
from lakehouse.ops import connect
from lakehouse.output import console, out, print_etl

if TYPE_CHECKING:
    from chalicelib.pipeline.maintenance import JobRun


def run_maintenance(
    settings: Settings, stage: Stage, purpose: str, jobs: list[tuple[str, dict[str, str]]]
) -> list[tuple[JobRun, list[dict[str, Any]] | None]]:
    """Run `jobs` under the pipeline's run lock, showing each job run's progress: Glue job runs on a deployed stage
    (listed when done), local processes on the local stage."""
    from lakehouse.jobs import run_jobs
    from lakehouse.output import print_job_runs

    local = stage.name == localstage.STAGE
    with console.status(purpose) as status:
        done = run_jobs(
            settings, stage, purpose, jobs, local=local, progress=lambda line: status.update(f"{purpose}: {line}")
        )
    if not local:
        print_job_runs([run for run, _ in done])
    return done


@click.command()
@click.option("--stage", "stage_name", default=localstage.STAGE, show_default=True)
@click.option("--dataset", "datasets", multiple=True, help="Only these datasets (default: all, parents first).")
@click.option("--curated/--no-curated", default=True, show_default=True, help="Rebuild curated/ afterwards.")
def etl(stage_name: str, datasets: tuple[str, ...], curated: bool) -> None:
    """Run the Glue jobs under the run lock: processed/ for pending files, then the master merge (local processes on
    the local stage, Glue job runs on a deployed one)."""
    from lakehouse.jobs import etl_jobs

    settings, stage = connect(stage_name)
    unknown = set(datasets) - set(settings.datasets)
    if unknown:
        raise click.UsageError(f"unknown dataset(s) {sorted(unknown)}; known: {', '.join(sorted(settings.datasets))}")
    jobs = etl_jobs(settings, stage, list(datasets) or None, curated)
    done = run_maintenance(settings, stage, "lakehouse etl", jobs)
    if stage.name == localstage.STAGE:  # each job's report: a dataset's batches, then curated/
        names = [
            *(d for d in dataset_order(settings) if not datasets or d in datasets),
            *(["curated"] if curated else []),
        ]
        print_etl({name: report or [] for name, (_, report) in zip(names, done, strict=True)})


@click.group()
def curated() -> None:
    """curated/ tables: each run merges only the groups its data touched; rebuild them whole on demand."""


@curated.command("rebuild")
@click.option("--stage", "stage_name", default=localstage.STAGE, show_default=True)
def curated_rebuild(stage_name: str) -> None:
    """Rebuild every curated/ table whole from processed/ (the master merge job with --rebuild), under the run lock."""
    from lakehouse.output import print_curated

    settings, stage = connect(stage_name)
    job = job_name(stage, "master_merge.py")
    ((_, report),) = run_maintenance(settings, stage, "curated rebuild", [(job, {"--rebuild": "yes"})])
    if report is not None:
        print_curated(report)


@click.group()
def table() -> None:
    """Delta tables: list, history, show (with time travel), housekeeping."""


@table.command("list")
@click.option("--stage", "stage_name", default=localstage.STAGE, show_default=True)
def table_list(stage_name: str) -> None:
    """Every processed/ and curated/ table with its version and row count."""
    from lakehouse_etl import delta
    from lakehouse_etl import local_sql as catalog

    lake = open_lake(stage_name)
    listing = Table("table", "version", "rows", "location")
    for name, uri in catalog.tables(lake).items():
        dt = delta.open_table(uri, lake.storage_options)
        listing.add_row(name, "-" if dt is None else str(dt.version()), "-" if dt is None else str(dt.count()), uri)
    out.print(listing)


@table.command("history")
@click.argument("name")
@click.option("--stage", "stage_name", default=localstage.STAGE, show_default=True)
def table_history(name: str, stage_name: str) -> None:
    """The commits of table NAME (e.g. processed/orders), newest first."""
    from lakehouse_etl import delta

    lake = open_lake(stage_name)
    dt = delta.open_table(table_uri(lake, name), lake.storage_options)
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
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True)
@click.option("--stage", "stage_name", default=localstage.STAGE, show_default=True)
def table_show(name: str, version: int | None, as_of: str | None, limit: int, stage_name: str) -> None:
    """Rows of table NAME, now or as it was (--version / --as-of)."""
    from lakehouse_etl import delta

    if version is not None and as_of is not None:
        raise click.UsageError("give --version or --as-of, not both")
    lake = open_lake(stage_name)
    try:
        data = delta.read(table_uri(lake, name), lake.storage_options, version=version, as_of=as_of)
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
    """Compact small files and VACUUM every table (keeps 30 days of time travel): the housekeeping Glue job, under the
    run lock (the [schedules] housekeeping schedule runs it nightly)."""
    settings, stage = connect(stage_name)
    job = job_name(stage, "housekeeping.py")
    ((_, reports),) = run_maintenance(settings, stage, "housekeeping", [(job, {})])
    if reports is None:
        return
    report = Table("table", "files added", "files removed by compaction", "files vacuumed", "version")
    for r in reports:
        if not r.get("missing"):
            report.add_row(
                r["table"],
                str(r["files_added"]),
                str(r["files_removed_by_compaction"]),
                str(r["files_vacuumed"]),
                str(r["version"]),
            )
    out.print(report)


def open_lake(stage_name: str) -> Any:
    from lakehouse_etl.lake import Lake

    settings, stage = connect(stage_name)
    return Lake.for_stage(settings, stage)


def table_uri(lake: Any, name: str) -> str:
    from lakehouse_etl import local_sql as catalog

    try:
        return catalog.uri_of(lake, name)
    except NotFoundError as exc:  # a name the user typed: a usage error (exit 2), as click's own
        raise click.UsageError(str(exc)) from None
