"""`lakehouse query`: read-only SQL over the lake (DuckDB locally, Athena on AWS)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
from rich.table import Table

from chalicelib.athena import read_only
from lakehouse import localstage
from lakehouse.ops import connect
from lakehouse.output import console, out


@click.command()
@click.argument("sql", required=False)
@click.option("--example", help="One of the shipped queries in chalicelib/queries/ (see --list).")
@click.option("--list", "list_examples", is_flag=True, help="List the shipped example queries.")
@click.option("--file", "sql_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--stage", "stage_name", default=localstage.STAGE, show_default=True)
@click.option(
    "--format", "fmt", type=click.Choice(["table", "csv", "json", "parquet"]), default="table", show_default=True
)
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the result here (csv, json or parquet), streamed: for results too big for the terminal.",
)
@click.option("--timeout", default=300.0, show_default=True, help="Seconds before an Athena query is stopped.")
def query(
    sql: str | None,
    example: str | None,
    list_examples: bool,
    sql_file: Path | None,
    stage_name: str,
    fmt: str,
    output: Path | None,
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
    text = sql or (shipped[example] if example else Path(str(sql_file))).read_text()
    if fmt == "parquet" and output is None:
        raise click.UsageError("--format parquet writes a file: give --output FILE")
    if output is not None and fmt == "table":
        raise click.UsageError("--output takes --format csv, json or parquet")
    read_only(text)  # a write or a syntax error it can tell is refused before a stage is touched
    settings, stage = connect(stage_name)
    if output is not None:
        from lakehouse.query import export

        local = stage_name == localstage.STAGE
        with console.status(f"query on {'DuckDB' if local else 'Athena'} into {output}"):
            rows = export(settings, stage, text, output, fmt, timeout, local=local)
        console.print(f"{rows} rows written to {output} ({fmt}, {output.stat().st_size:,} bytes)", highlight=False)
        return
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
