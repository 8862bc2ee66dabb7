"""`lakehouse`: the command line for the local stage and for deployed stages."""

from __future__ import annotations

import sys
from typing import Any

import click

from chalicelib.errors import LakehouseError
from lakehouse.cli import cost, deploy, etl, lifecycle, local, pipeline, quality, query
from lakehouse.output import console


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
@click.version_option(package_name="serverless-lakehouse", prog_name="lakehouse")
def main() -> None:
    """Serverless Lakehouse: local stage, ingest, and ledger."""


# One module per command group; the operations they share with the demo are in lakehouse.ops (and what they print
# in lakehouse.output).
for command in (
    local.up,
    local.down,
    local.env,
    local.drop,
    local.ledger,
    local.check,
    local.generate,
    local.serve,
    local.demo,
    deploy.deploy,
    deploy.teardown,
    deploy.provision,
    deploy.drift,
    deploy.doctor,
    deploy.smoke,
    etl.etl,
    etl.curated,
    etl.table,
    pipeline.run_command,
    pipeline.executions,
    pipeline.requeue,
    query.query,
    quality.quality,
    lifecycle.lifecycle,
    cost.cost,
):
    main.add_command(command)
