"""`lakehouse lifecycle`: push, sync, history and rollback of the bucket lifecycle rules."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from lakehouse import localstage
from lakehouse.ops import LIFECYCLE_DIR, connect, definition_files
from lakehouse.output import console, out


@click.group()
def lifecycle() -> None:
    """Bucket lifecycle rules from TOML definitions (config/lifecycle/), synced nightly."""


@lifecycle.command("push")
@click.option("--stage", "stage_name", default=localstage.STAGE, show_default=True)
@click.option("--from", "folder", default=LIFECYCLE_DIR, type=click.Path(file_okay=False, path_type=Path))
def lifecycle_push(stage_name: str, folder: Path) -> None:
    """Check the definitions in FOLDER and upload them to the stage's config/lifecycle/."""
    from chalicelib.lifecycle.rules import parse_definitions
    from deploy.provision import upload_config

    _, stage, sync = lifecycle_sync_for(stage_name)
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

    from lakehouse.output import print_sync

    _, _, sync = lifecycle_sync_for(stage_name, workers)
    report = sync.run(dry_run=dry_run, who=f"{getpass.getuser()} (lakehouse lifecycle sync)")
    print_sync(out, report)
    sys.exit(1 if report.problems or report.failed else 0)


@lifecycle.command("history")
@click.argument("bucket", required=False)
@click.option("--stage", "stage_name", default=localstage.STAGE, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="The history documents as JSON (before, after, files).")
def lifecycle_history(bucket: str | None, stage_name: str, as_json: bool) -> None:
    """Recorded lifecycle changes, newest first."""
    _, _, sync = lifecycle_sync_for(stage_name)
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

    _, _, sync = lifecycle_sync_for(stage_name)
    change = sync.rollback(change_id, who=f"{getpass.getuser()} (lakehouse lifecycle rollback)")
    console.print(
        f"{change.bucket}: {change.action}; added {change.added}, removed {change.removed} ({change.change_id})",
        highlight=False,
    )


def lifecycle_sync_for(stage_name: str, workers: int = 16) -> Any:
    from chalicelib.lifecycle.sync import LifecycleSync

    settings, stage = connect(stage_name)
    return settings, stage, LifecycleSync.for_stage(settings, stage, workers)
