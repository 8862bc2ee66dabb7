"""`lakehouse etl` and `lakehouse table`: the Glue jobs as local processes, the Delta tables and their history."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import click
from rich.table import Table

from chalicelib.errors import LakehouseError, NotFoundError
from lakehouse import localstage
from lakehouse.ops import connect
from lakehouse.output import console, out, print_etl


@click.command()
@click.option("--stage", "stage_name", default=localstage.STAGE, show_default=True)
@click.option("--dataset", "datasets", multiple=True, help="Only these datasets (default: all, parents first).")
@click.option("--curated/--no-curated", default=True, show_default=True, help="Rebuild curated/ afterwards.")
def etl(stage_name: str, datasets: tuple[str, ...], curated: bool) -> None:
    """Run the Glue jobs as local processes: processed/ for pending files, then the master merge."""
    from lakehouse.jobs import run_etl

    settings, stage = connect(stage_name)
    unknown = set(datasets) - set(settings.datasets)
    if unknown:
        raise click.UsageError(f"unknown dataset(s) {sorted(unknown)}; known: {', '.join(sorted(settings.datasets))}")
    with console.status("etl") as status:
        reports = run_etl(
            settings, stage, list(datasets) or None, curated, progress=lambda job: status.update(f"running {job}")
        )
    print_etl(reports)


@click.group()
def curated() -> None:
    """curated/ tables: each run merges only the groups its data touched; rebuild them whole on demand."""


@curated.command("rebuild")
@click.option("--stage", "stage_name", default=localstage.STAGE, show_default=True)
def curated_rebuild(stage_name: str) -> None:
    """Rebuild every curated/ table whole from processed/ (the master merge job with --rebuild)."""
    from lakehouse.jobs import run_script
    from lakehouse.output import print_curated

    _, stage = connect(stage_name)
    with console.status("rebuilding curated/"):
        reports = run_script("master_merge.py", stage, ["--rebuild", "yes"])
    print_curated(reports)


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
    """Compact small files and VACUUM every table (keeps 30 days of time travel); the Glue housekeeping job."""
    from lakehouse.jobs import run_script

    _, stage = connect(stage_name)
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
