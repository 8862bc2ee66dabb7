"""The quality report for people: one table of every check of a run (or of a check made now)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from chalicelib.quality.results import CheckResult

STYLE = {"PASSED": "green", "WARN": "yellow", "ERROR": "red"}


def level(check: Mapping[str, Any]) -> str:
    """PASSED, WARN or ERROR, of a check kept as a dict."""
    return CheckResult(**check).level


def counts(results: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """Checks by outcome: PASSED, WARN, ERROR."""
    out = {"PASSED": 0, "WARN": 0, "ERROR": 0}
    for result in results:
        for check in result["checks"]:
            out[level(check)] += 1
    return out


def print_report(console: Console, results: Sequence[Mapping[str, Any]], title: str) -> None:
    table = Table(title=title, title_justify="left")
    for column in ("dataset", "rule", "severity", "result", "observed", "expected", "detail"):
        table.add_column(column, overflow="fold")
    for result in results:
        for check in result["checks"]:
            outcome = level(check)
            sample = f"; e.g. {', '.join(check['sample'])}" if check.get("sample") else ""
            table.add_row(  # the rules' own text (a pattern's [a-z]) is not rich markup
                escape(result["dataset"]),
                escape(check["rule"]),
                check["severity"],
                f"[{STYLE[outcome]}]{outcome}[/]",
                "" if check["observed"] is None else str(check["observed"]),
                escape(check["threshold"]),
                escape((check.get("detail") or "") + sample),
            )
    console.print(table)
    total = counts(results)
    console.print(
        f"{total['PASSED']} passed, {total['WARN']} warnings, {total['ERROR']} errors in {len(results)} tables",
        highlight=False,
    )
    for result in results:
        etl = result.get("etl") or {}
        if etl.get("rejected_by_reason") or etl.get("duplicates_dropped"):
            reasons = ", ".join(f"{k} {v}" for k, v in sorted((etl.get("rejected_by_reason") or {}).items()))
            console.print(
                f"  {result['dataset']} batch {result['batch']}: rejected by the ETL: {reasons or 'none'}; "
                f"duplicate rows dropped: {etl.get('duplicates_dropped', 0)}",
                highlight=False,
            )
