"""`lakehouse rejected`: the rows the ETL rejected, with their reasons, on the local stage or a deployed one."""

from __future__ import annotations

import json

import click
from rich.markup import escape
from rich.table import Table

from lakehouse import localstage
from lakehouse.output import console, out


def file_name(file_id: str) -> str:
    """A ledger file id (`bucket/key#version`) as the key people recognise: no bucket, no version id."""
    return file_id.rpartition("#")[0].partition("/")[2] or file_id


@click.command()
@click.option("--dataset", help="Only this dataset's rows.")
@click.option("--run", "run_name", help="Only the rows of this pipeline run's batches.")
@click.option("--batch", type=int, help="Only this batch of --dataset (batch numbers count per dataset).")
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=100,
    show_default=True,
    help="At most this many rows, newest batch first.",
)
@click.option("--stage", "stage_name", default=localstage.STAGE, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON document (with each row's values), for scripts.")
def rejected(
    dataset: str | None, run_name: str | None, batch: int | None, limit: int, stage_name: str, as_json: bool
) -> None:
    """The rows the ETL rejected: reason code and message, source file and row (1-based among its data rows), and
    whether the quality gate rolled the row's batch back (its files are then FAILED; `lakehouse requeue`)."""
    from chalicelib.aws import ClientSettings, client
    from chalicelib.ledger import ledger_for
    from lakehouse.ops import connect
    from lakehouse.rejected import rejected_rows

    settings, stage = connect(stage_name)
    s3 = client("s3", ClientSettings.for_stage(stage))
    rows = rejected_rows(
        s3, settings, stage, ledger_for(stage), dataset=dataset, run=run_name, batch=batch, limit=limit
    )
    if as_json:
        out.print_json(json.dumps(rows, default=str))
        return
    if not rows:
        console.print("no rejected rows" + "".join(f" {k} {v}" for k, v in _filters(dataset, run_name, batch)))
        return
    table = Table("dataset", "batch", "file", "row", "reason", "message", "batch rolled back")
    for r in rows:
        table.add_row(
            r["dataset"],
            str(r["batch"]),
            escape(file_name(r["source_file"] or "")),
            str(r["row"]),
            r["reason_code"],
            escape(r["message"]),
            f"[yellow]yes, {r['rolled_back_at']}[/]" if r["rolled_back"] else "no",
        )
    out.print(table)
    more = " (--limit for more)" if len(rows) == limit else ""
    console.print(f"{len(rows)} rejected rows{more}", highlight=False)


def _filters(dataset: str | None, run: str | None, batch: int | None) -> list[tuple[str, object]]:
    return [(k, v) for k, v in (("of dataset", dataset), ("of run", run), ("in batch", batch)) if v is not None]
