"""`lakehouse`: the command line for the local stage and for deployed stages."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any, NoReturn

import click
from rich.markup import escape

from chalicelib.errors import LakehouseError
from lakehouse.cli import cost, deploy, etl, lifecycle, local, pipeline, quality, query, rejected
from lakehouse.output import console


class _Group(click.Group):
    """The one place that turns a failure the user can cause into one line on stderr and a non-zero exit, not a
    traceback: the project's errors (chalicelib/errors.py) and AWS's (a missing permission, no credentials, an
    endpoint that does not answer) exit 1, a bad argument exits 2 as click's own usage errors do."""

    def main(  # type: ignore[override]  # click's overloads say main never returns; ours may (not standalone)
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, standalone_mode=False, **extra)
        try:
            code = super().main(args, prog_name, standalone_mode=False, **extra)
        except click.ClickException as exc:  # a bad argument, a missing file: click's three lines made one
            command = f" ({exc.ctx.command_path} --help)" if isinstance(exc, click.UsageError) and exc.ctx else ""
            _fail(f"{exc.format_message()}{command}", exc.exit_code)
        except click.Abort:
            _fail("aborted", 1)
        sys.exit(code if isinstance(code, int) else 0)  # click returns --help's exit code instead of exiting

    def invoke(self, ctx: click.Context) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError

        try:
            return super().invoke(ctx)
        except LakehouseError as exc:
            _fail(str(exc), 1)
        except EndpointConnectionError as exc:
            _fail(f"AWS: {exc} (the local stage? `lakehouse up` starts it)", 1)
        except (BotoCoreError, ClientError) as exc:
            _fail(f"AWS: {exc}", 1)
        except OSError as exc:  # a file that cannot be read or written
            _fail(f"{exc.strerror or exc}: {exc.filename}" if exc.filename else str(exc), 1)


def _fail(message: str, code: int) -> NoReturn:
    """`error: message` as one line on stderr (never wrapped, markup in the message printed as it is), then exit."""
    console.print(f"[red]error:[/red] {escape(' '.join(message.split()))}", highlight=False, soft_wrap=True)
    sys.exit(code)


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
    rejected.rejected,
    query.query,
    quality.quality,
    lifecycle.lifecycle,
    cost.cost,
):
    main.add_command(command)
