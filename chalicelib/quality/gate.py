"""The quality gate's rules: the contracts' `[[rules]]`, checked on the processed tables before curated/ is
published.

All row rules of a table (not null, unique, accepted values, range, pattern, references, freshness, row count)
are computed by one SQL query in the SQL that Athena (Trino) and DuckDB share, so the same text runs on a deployed
stage and on the local stage. The gate judges the rows a run's batch wrote (`BatchScope`: the batch's files in the
partitions it touched, so both engines prune to them), `unique` and `references` look the batch's keys up in the
whole tables reading key columns only, and the row count comes from the Delta log: what a run reads grows with its
batch, not with the table. `lakehouse quality check --full` scans whole tables on demand.

The volume rule compares the rows a run loaded with the ledger's history of earlier loads, and the ETL's own
rejections (by reason) and dropped duplicates are reported beside the rules, so every anomaly a batch carried
shows up in one report.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Protocol

from chalicelib.athena import QueryError, QueryResult
from chalicelib.aws import error_code
from chalicelib.config import Contract
from chalicelib.config.rules import Rule
from chalicelib.names import table_name
from chalicelib.quality.checks import Evidence, Rows, check_of, judge, listed, literal, quote, scanned
from chalicelib.quality.results import ERROR, CheckResult, TableQuality


class SqlEngine(Protocol):
    """Athena on a deployed stage (`chalicelib.athena.Athena`), DuckDB on the local stage."""

    name: str

    def tables(self) -> set[str]:
        """The names of the tables that exist (`processed_orders`, ...)."""

    def run(self, sql: str, timeout: float = 300.0) -> QueryResult:
        """Run one read-only query; a failure or a timeout is a QueryError."""
        ...


@dataclass(frozen=True)
class BatchScope:
    """The rows one batch wrote to its processed table: those the ETL stamped with its number (`number`, in the
    `_batch` column), in the partitions it touched (None: not known, every partition), and the table's rows after it
    (from the Delta log). A batch merged before the ETL stamped rows (`number` None) is found by its `files`' ids:
    a condition that grows with them, past Athena's query length at about 900 files (a failed scan, then)."""

    files: Sequence[str]
    partitions: Sequence[str] | None = None
    table_rows: int | None = None
    number: int | None = None

    def where(self, contract: Contract) -> str:
        """The SQL condition selecting the batch's rows, of the same length whatever the batch's size; the partition
        values are literals, so scans are pruned."""
        part = contract.partition_column
        if not self.files or (part and self.partitions is not None and not self.partitions):
            return "1 = 0"  # the batch merged no rows
        if self.number is not None:
            condition = f'"_batch" = {int(self.number)}'  # the column lakehouse_etl's MERGE stamps
        else:
            condition = f'"_source_file" IN ({listed(sorted(self.files))})'
        if part and self.partitions is not None:
            kind = contract.column(part).type
            values = ", ".join(typed_literal(kind, v) for v in sorted(self.partitions))
            condition = f"{quote(part)} IN ({values}) AND {condition}"
        return condition


def typed_literal(kind: str, text: str) -> str:
    """A partition value (as the ETL recorded it) as a SQL literal of its column's type, for partition pruning."""
    if kind in ("date", "timestamp"):
        return f"{kind.upper()} {literal(text)}"
    if kind in ("int32", "int64") or kind.startswith("decimal") or kind == "double":
        return str(float(text)) if kind == "double" else str(text)
    if kind == "bool":
        return "true" if text.lower() == "true" else "false"
    return literal(text)


def scan_sql(contract: Contract, tables: Iterable[str], batch: BatchScope | None = None) -> str:
    """One query computing every scanned rule over the batch's rows (`batch`) or the whole table (None): counts of
    failing rows with a sample of their keys, the row count, the newest value of each freshness column. Runs
    unchanged on Athena and DuckDB."""
    tables = set(tables)
    rows = Rows(table_name(contract.name), batch.where(contract) if batch else None)
    key_parts = [f"CAST(t.{quote(c)} AS varchar)" for c in contract.primary_key]
    key = key_parts[0] if len(key_parts) == 1 else f"concat_ws('/', {', '.join(key_parts)})"
    needed = dict.fromkeys([*contract.primary_key, *(c for r in contract.rules for c in r.columns)])
    inner = [quote(c) for c in needed]  # only these columns are read (Athena bills by bytes scanned)
    select: list[str] = ["count(*) AS row_count"]
    joins: list[str] = []
    for i, rule in enumerate(contract.rules):
        if check_of(rule).scanned:
            part = check_of(rule).scan(rule, i, key, tables, rows)
            inner, select, joins = inner + part.inner, select + part.select, joins + part.joins
    where = f" WHERE {rows.where}" if rows.where else ""
    source = f"(SELECT {', '.join(inner)} FROM {rows.table}{where}) t"
    return "SELECT\n  " + ",\n  ".join(select) + f"\nFROM {source}" + "".join(f"\n{j}" for j in joins)


def rule_sql(contract: Contract, rule: Rule, tables: Iterable[str]) -> str:
    """The same rule as a query of its own (what the one scan replaces; the benchmark's baseline)."""
    return scan_sql(replace(contract, rules=(rule,)), tables)


@dataclass(frozen=True)
class Loads:
    """The rows a run loaded into a table, and what the earlier runs loaded, newest first (the `volume` rule's
    history: `earlier_loads` says how many are needed)."""

    loaded: int
    earlier: Sequence[int] = ()


def earlier_loads(contract: Contract) -> int:
    """How many earlier loads the contract's rules are judged against (0: none looks at them)."""
    return max((check_of(r).earlier_loads(r) for r in contract.rules), default=0)


def evaluate(
    contract: Contract,
    row: Mapping[str, Any] | None,
    now: datetime,
    table_rows: int | None = None,
    loads: Loads | None = None,
) -> tuple[int, list[CheckResult]]:
    """Every rule's outcome, in the contract's order: the scanned ones from the scan's one result row (None: the
    table does not exist, so no rows), the others from the `loads` (not judged without them); and the table's
    rows: `table_rows` where the scan read only a batch, else the rows it counted."""
    rows = int(row["row_count"]) if row else 0
    if row is not None and table_rows is not None:
        row = {**row, "table_rows": table_rows}
    return rows if table_rows is None else table_rows, judge(contract.rules, _evidence(row, rows, now, loads))


def _evidence(row: Mapping[str, Any] | None, rows: int, now: datetime, loads: Loads | None) -> Evidence:
    return Evidence(row, rows, now, loads.loaded if loads else 0, loads.earlier if loads else None)


def check_rejected(percent_limit: int, etl: Mapping[str, Any]) -> CheckResult:
    """The ETL's rejections as a rule: the share of the batch's rows rejected (error above the limit)."""
    merged, rejected = int(etl.get("rows_merged", 0)), int(etl.get("rows_rejected", 0))
    percent = round(100.0 * rejected / (merged + rejected), 2) if merged + rejected else 0.0
    reasons = ", ".join(f"{k} {v}" for k, v in sorted((etl.get("rejected_by_reason") or {}).items()))
    detail = f"{rejected} of {merged + rejected} rows rejected" + (f" ({reasons})" if reasons else "")
    return CheckResult(
        "rejected_rows",
        "rejected_rows",
        "error",
        percent <= percent_limit,
        percent,
        f"at most {percent_limit}%",
        [],
        detail,
    )


def scan(
    engine: SqlEngine,
    contract: Contract,
    tables: set[str],
    now: datetime,
    timeout: float,
    batch: BatchScope | None = None,
    loads: Loads | None = None,
) -> tuple[int, list[CheckResult]]:
    """Run the one scan over the batch's rows (None: the whole table) and judge the rules (those that compare
    loads against `loads`); returns the table's rows and the results. A failed, refused or timed-out query is an
    error of its own (the batch cannot be audited, so it is rolled back and not published)."""
    table_rows = batch.table_rows if batch else None
    if not scanned(contract.rules):  # nothing to scan: the rules (if any) compare loads
        return table_rows or 0, judge(contract.rules, _evidence(None, table_rows or 0, now, loads))
    if table_name(contract.name) not in tables:
        return evaluate(contract, None, now, loads=loads)
    try:
        result = engine.run(scan_sql(contract, tables, batch), timeout)
    except Exception as exc:  # a botocore ClientError too: Athena refuses a query so (InvalidRequestException)
        if not isinstance(exc, QueryError) and not error_code(exc):
            raise
        failed = CheckResult("scan", "scan", "error", False, None, "the quality query succeeds", [], _reason(exc))
        return 0, [failed, *judge(contract.rules, _evidence(None, 0, now, loads), scanned=False)]
    return evaluate(contract, dict(zip(result.columns, result.rows[0], strict=True)), now, table_rows, loads)


def _reason(exc: Exception) -> str:
    """Why a scan failed, in one line: a refused query's AWS error code and message."""
    code = error_code(exc)
    if code:  # botocore's text names the operation; the code and AWS's message are what a reader needs
        message = getattr(exc, "response", {}).get("Error", {}).get("Message", str(exc))
        return f"the quality query was refused: {code}: {message}"
    return str(exc)


def summary(run: str, results: list[TableQuality], limit: int = 6000, stage: str = "local") -> str:
    """A readable report for the alert (and the run's failure cause): failures first, with counts. A failed run
    whose ETL rejected rows ends with the command that lists them (kept even when the report is truncated)."""
    checks = [(q.dataset, c) for q in results for c in q.checks]
    failed = [(d, c) for d, c in checks if not c.passed]
    errors = sum(c.level == ERROR for _, c in failed)
    lines = [
        f"Quality of run {run}: {errors} errors, {len(failed) - errors} warnings, "
        f"{len(checks) - len(failed)} of {len(checks)} checks passed."
    ]
    for dataset, c in sorted(failed, key=lambda f: (f[1].level != ERROR, f[0], f[1].rule)):
        sample = f"; e.g. {', '.join(c.sample)}" if c.sample else ""
        lines.append(f"{c.level} {dataset} {c.rule}: {c.detail or c.observed} (expected {c.threshold}){sample}")
    rejected = sum(int(q.etl.get("rows_rejected") or 0) for q in results)
    where = "" if stage == "local" else f" --stage {stage}"  # the CLI's default stage is the local one
    command = f"lakehouse rejected --run {run}{where}"
    hint = f"\n{rejected} rows rejected by the ETL, listed by: {command}" if errors and rejected else ""
    text = "\n".join(lines)
    if len(text) + len(hint) > limit:
        text = text[: limit - len(hint) - 20] + "\n... (truncated)"
    return text + hint
