"""Printing lifecycle sync reports for people (the commands are in `lakehouse.cli`)."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from chalicelib.lifecycle.sync import SyncReport


def print_sync(console: Console, report: SyncReport) -> None:
    verb = "would " if report.dry_run else ""
    table = Table(
        title=f"lifecycle sync{' (dry run: nothing changed)' if report.dry_run else ''}", title_justify="left"
    )
    for column in ("bucket", "action", "rules added", "rules removed", "change"):
        table.add_column(column, overflow="fold")
    for change in sorted(report.changes, key=lambda c: (c.action == "unchanged", c.bucket)):
        action = {"put": f"{verb}put", "delete": f"{verb}delete all rules", "failed": "[red]failed[/red]"}.get(
            change.action, change.action
        )
        table.add_row(
            escape(change.bucket),
            action,
            escape(", ".join(change.added)),
            escape(", ".join(change.removed)),
            escape(change.change_id or change.error),
        )
    console.print(table)
    unchanged = sum(c.action == "unchanged" for c in report.changes)
    changed = "would change" if report.dry_run else "changed"
    console.print(
        f"{len(report.changed)} buckets {changed}, {unchanged} unchanged, {len(report.failed)} failed", highlight=False
    )
    for bucket in report.missing:
        console.print(f"  defined but no such bucket (skipped): {escape(bucket)}", highlight=False)
    for where, problem in report.problems.items():
        console.print(f"  [yellow]not synced[/yellow] {escape(where)}: {escape(problem)}", highlight=False)
