"""What the CLI prints: the consoles (progress on stderr, results on stdout) and the tables of records,
executions, findings and what-ifs.
"""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from chalicelib.ledger import FileRecord
from chalicelib.lifecycle.sync import SyncReport
from lakehouse.jobs import rejected_by_reason


def make_console(stderr: bool) -> Console:
    terminal = Console(stderr=stderr)
    # In logs and CI rich would wrap everything at 80 columns.
    return terminal if terminal.is_terminal else Console(stderr=stderr, width=160)


console = make_console(stderr=True)  # progress and messages


out = make_console(stderr=False)  # results


def print_changes(findings: list[Any], title: str) -> None:
    if not findings:
        out.print("nothing to change", highlight=False)
        return
    print_findings(findings, title, with_fix=False)
    out.print(f"{len(findings)} changes", highlight=False)


def print_records(records: list[FileRecord], waiting: tuple[str, str] | None = None) -> None:
    """The ledger's records as a table; `waiting` (from `ops.next_run`): when the run that takes a waiting file
    starts, shown in its "in Delta" column."""
    table = Table("status", "dataset", "file", "rows", "in Delta", "reason")
    colours = {
        "VALID": "green",
        "PROCESSED": "blue",
        "DUPLICATE": "yellow",
        "REJECTED": "red",
        "GONE": "magenta",
        "FAILED": "bold red",
    }
    for r in records:
        reason = f"{r.reason_code}: {r.reason}" if r.reason_code else ""
        if r.line:
            reason += f" [line {r.line}]"
        if r.raw_table is False:  # valid, but Athena's positional raw_ table reads its columns wrong
            reason = f"raw_{r.dataset} reads it wrong (header not in contract order); processed/ is right"
        merged = (
            "" if r.delta_version is None else f"v{r.delta_version}: {r.rows_merged} merged, {r.rows_rejected} rejected"
        )
        if r.delta_version is None and r.pending and waiting is not None:
            merged = f"waiting: run by {waiting[0]}" if waiting[0] else "waiting: `lakehouse run`"
        table.add_row(
            f"[{colours.get(r.status, 'white')}]{r.status}[/]",
            r.dataset,
            r.key.rsplit("/", 1)[-1],
            "" if r.rows is None else str(r.rows),
            merged,
            reason,
        )
    out.print(table)


def print_etl(reports: dict[str, list[dict[str, Any]]]) -> None:
    table = Table(
        "dataset",
        "batches",
        "files",
        "rows read",
        "merged",
        "rejected",
        "duplicates",
        "rejected by reason",
        "delta version",
    )
    for dataset, batches in reports.items():
        if dataset == "curated":
            continue
        reasons = rejected_by_reason(batches)
        table.add_row(
            dataset,
            str(len(batches)),
            str(sum(b["files"] for b in batches)),
            str(sum(b["rows_read"] for b in batches)),
            str(sum(b["rows_merged"] for b in batches)),
            str(sum(b["rows_rejected"] for b in batches)),
            str(sum(b["duplicates_dropped"] for b in batches)),
            ", ".join(f"{k} {n}" for k, n in sorted(reasons.items())),
            str(batches[-1]["delta_version"]) if batches else "-",
        )
    out.print(table)
    if "curated" in reports:
        print_curated(reports["curated"])


def print_curated(reports: list[dict[str, Any]]) -> None:
    """What the master merge did to each curated table: merged the touched groups, rebuilt it (why), or nothing."""
    out.print(
        "curated: " + ", ".join(f"{r['table']} {r['rows']} rows (v{r['delta_version']})" for r in reports),
        highlight=False,
    )
    for r in reports:
        how = {"merged": f"{r.get('groups')} groups recomputed and merged", "unchanged": "unchanged"}
        out.print(f"   {r['table']}: {how.get(r.get('mode', ''), 'rebuilt: ' + r.get('reason', ''))}", highlight=False)


def print_job_runs(runs: list[Any]) -> None:
    """The Glue job runs a command started on a deployed stage (their reports are in their CloudWatch logs)."""
    table = Table("job", "job run", "state", "minutes")
    for run in runs:
        table.add_row(run.job, run.run_id, run.state, f"{run.seconds / 60:.1f}")
    out.print(table)


# -- the pipeline ---------------------------------------------------------------------------------------------
MARKS = {"StateExited": "[green]ok[/]", "StateFailed": "[red]FAILED[/]", "StateCaught": "[yellow]caught[/]"}


def print_execution(record: dict[str, Any], details: bool = False) -> None:
    """An execution's states in order: what finished, what was retried, what failed and why."""
    from chalicelib.pipeline.steps import describe_error

    colour = {"SUCCEEDED": "green", "FAILED": "red"}.get(record["status"], "yellow")
    out.print(f"[bold]{record['name']}[/]: [{colour}]{record['status']}[/]", highlight=False)
    plan = record.get("input") or {}
    if plan.get("sizing"):
        out.print(f"   sizing {plan['sizing']}", highlight=False)
    for dataset, reason in plan.get("crawl_reasons", {}).items():
        out.print(f"   crawl  {dataset}: {reason}", highlight=False)
    for dataset, why in plan.get("engines", {}).items():
        out.print(f"   engine {dataset}: {why}", highlight=False)
    for event in record.get("history", []):
        label, kind = event["state"], event["event"]
        if kind == "StateExited" and not details and label.count(".") > 2:
            continue  # inside Map iterations only what went wrong, unless asked for every state
        if kind == "TaskRetry":
            out.print(f"   retry  {label}: {event['error']} (attempt {event['attempt']})", highlight=False)
        elif kind in MARKS:
            error = f"  {describe_error(event['error'], event.get('cause', ''))[:300]}" if "error" in event else ""
            out.print(f"   {MARKS[kind]:<6} {label}{error}", highlight=False)
    runs = record.get("glue_runs", [])
    if runs:
        failed = sum(r.get("JobRunState") == "FAILED" for r in runs)
        out.print(f"   glue job runs: {len(runs)} ({failed} failed)", highlight=False)
    for message in record.get("published", []):
        topic = message["TopicArn"].rsplit(":", 1)[-1]
        out.print(f"   sns {topic}: {message.get('Subject', '')}", highlight=False)
        if record["status"] != "SUCCEEDED":
            out.print(f"      {message['Message'][:600]}", highlight=False)


def print_what_if(estimate: dict[str, Any]) -> None:
    out.print("what if:", highlight=False)
    for what in estimate["what_if"]:
        out.print(
            f"  {what['name']}: {what['monthly_saving']:,.2f} {estimate['currency']} a month saved ({what['detail']})",
            highlight=False,
        )


def print_drift(report: Any) -> None:
    if not report.drifted:
        out.print(f"no drift on stage {report.stage}: {len(report.checked)} resources checked, {report.since()}")
        return
    print_findings(report.findings, f"drift on stage {report.stage}")
    out.print(
        f"{len(report.findings)} findings in {len(report.checked)} resources checked, {report.since()}", highlight=False
    )


def print_findings(findings: list[Any], title: str, with_fix: bool = True) -> None:
    """Drift findings, or a deployment plan's changes: what is declared against what is live."""
    from rich.markup import escape

    table = Table("resource", "property", "expected", "actual", *(["suggested fix"] if with_fix else []))
    table.title, table.title_justify = title, "left"
    for f in findings:
        values = (f.resource, f.property, f.expected, f.actual, *([f.fix] if with_fix else []))
        table.add_row(*(escape(v if isinstance(v, str) else json.dumps(v, default=str)) for v in values))
    out.print(table)


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
