"""`lakehouse cost`: the monthly estimate and its what-ifs."""

from __future__ import annotations

import json
from typing import Any

import click
from rich.table import Column, Table
from rich.text import Text

from lakehouse.ops import local_lake_rules, project_settings
from lakehouse.output import console, out, print_what_if


@click.command()
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
    settings = project_settings()
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
                Text(line["item"]),  # not rich markup: items name config sections (`[schedules] housekeeping`)
                f"{line['quantity']:,.2f}",
                line["unit"],
                f"{line['unit_price']:g}" + (f" per {line['per']:,.0f}" if line["per"] != 1 else ""),
                f"{line['monthly']:,.2f}",
            )
    out.print(table)
    if estimate["notice"]:
        console.print(f"[yellow]{estimate['notice']}[/yellow]", highlight=False)
    out.print(f"total: {estimate['monthly_total']:,.2f} {estimate['currency']} a month", highlight=False)
    out.print(f"prices: {estimate['price_source']}", highlight=False)
    for assumption in estimate["assumptions"]:
        out.print(f"  - {assumption}", highlight=False, markup=False)
    print_what_if(estimate)
    print_engines(estimate["engines"], estimate["currency"])


def print_engines(engines: dict[str, Any], currency: str) -> None:
    """A dataset batch by size on each engine, and which the stage picks: where `[pipeline] spark_bytes` sits."""
    gib = 2**30
    price = f"{currency} a batch"
    table = Table(
        "dataset batch",
        "picked",
        "single node",
        Column(price, justify="right"),
        "Spark",
        Column(price, justify="right"),
        title_justify="left",
    )
    table.title = (
        f"a dataset batch on each engine: Spark from spark_bytes = {engines['spark_bytes'] / gib:g} GiB "
        f"(batches are cut at max_batch_bytes = {engines['max_batch_bytes'] / gib:g} GiB)"
    )
    for row in engines["rows"]:
        cells = [row["bytes"] / gib, row["chosen"]]
        for engine in ("single", "spark"):
            run = row[engine]
            cells += [f"{run['workers']}, {run['minutes']:,.1f} min", f"{run['price']:,.2f}"]
        table.add_row(f"{cells[0]:g} GiB", *cells[1:])
    out.print(table)
    for assumption in engines["assumptions"]:
        out.print(f"  - {assumption}", highlight=False, markup=False)
