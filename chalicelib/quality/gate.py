"""The quality gate's rules: the contracts' `[[rules]]`, checked on the processed tables before curated/ is
published.

All row rules of a table (not null, unique, accepted values, range, pattern, references, freshness, row count)
are computed by one SQL query, one scan of the table, in the SQL that Athena (Trino) and DuckDB share, so the
same text runs on a deployed stage and on the local stage. The volume rule compares the rows a run loaded
with the ledger's history of earlier loads, and the ETL's own rejections (by reason) and dropped duplicates
are reported beside the rules, so every anomaly a batch carried shows up in one report.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from chalicelib.athena import QueryError, QueryResult
from chalicelib.config import Contract, Rule
from chalicelib.names import table_name

SAMPLE_SIZE = 5  # failing keys kept per rule
ROW_CHECKS = ("not_null", "unique", "accepted_values", "range", "pattern", "references")
PASSED, WARN, ERROR = "PASSED", "WARN", "ERROR"


class SqlEngine(Protocol):
    """Athena on a deployed stage (`chalicelib.athena.Athena`), DuckDB on the local stage."""

    name: str

    def tables(self) -> set[str]:
        """The names of the tables that exist (`processed_orders`, ...)."""

    def run(self, sql: str, timeout: float = 300.0) -> QueryResult: ...


@dataclass
class CheckResult:
    """One rule's outcome on one table."""

    rule: str
    check: str
    severity: str
    passed: bool
    observed: Any  # failing rows, rows, age in hours, change in percent ...
    threshold: str  # what it was held against, for people
    sample: list[str] = field(default_factory=list)  # primary keys of failing rows
    detail: str = ""

    @property
    def level(self) -> str:
        return PASSED if self.passed else (ERROR if self.severity == "error" else WARN)


@dataclass
class TableQuality:
    """The quality of one dataset's batch and table in one run: what is kept as history."""

    dataset: str
    run: str
    batch: int | None
    rows: int  # rows in the table
    rows_loaded: int  # rows this run merged (the volume rule's history)
    checks: list[CheckResult]
    etl: dict[str, Any] = field(default_factory=dict)  # rows rejected by reason, duplicates dropped

    @property
    def status(self) -> str:
        levels = {c.level for c in self.checks}
        return ERROR if ERROR in levels else WARN if WARN in levels else PASSED

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "status": self.status}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TableQuality:
        fields_ = {k: v for k, v in data.items() if k != "status"}
        return cls(**{**fields_, "checks": [CheckResult(**c) for c in data["checks"]]})


def _literal(value: Any) -> str:
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _quote(name: str) -> str:
    return f'"{name}"'  # contract names are [a-z0-9_]: quoting only guards against reserved words


def _failing(rule: Rule, index: int) -> str:
    """The SQL condition a row fails `rule` by (over the scan's alias `t` and the reference join `r<index>`)."""
    col = f"t.{_quote(rule.column)}" if rule.column else ""
    if rule.check == "not_null":
        return f"{col} IS NULL"
    if rule.check == "unique":
        return f"t._n{index} > 1"
    if rule.check == "accepted_values":
        return f"{col} IS NOT NULL AND {col} NOT IN ({', '.join(_literal(v) for v in rule.values)})"
    if rule.check == "range":
        bounds = [f"{col} < {_literal(rule.min)}"] if rule.min is not None else []
        bounds += [f"{col} > {_literal(rule.max)}"] if rule.max is not None else []
        return f"({' OR '.join(bounds)})"
    if rule.check == "pattern":  # the whole value must match; regexp_like is a macro on DuckDB (duck.session)
        return f"{col} IS NOT NULL AND NOT regexp_like({col}, {_literal(f'^(?:{rule.pattern})$')})"
    if rule.check == "references":
        return f"{col} IS NOT NULL AND r{index}._ref IS NULL"
    raise ValueError(f"{rule.check} is not a row rule")


def scan_sql(contract: Contract, tables: Iterable[str]) -> str:
    """One query computing every rule of the contract's table: counts of failing rows with a sample of their
    keys, the row count, the newest value of each freshness column. Runs unchanged on Athena and DuckDB."""
    tables = set(tables)
    key_parts = [f"CAST(t.{_quote(c)} AS varchar)" for c in contract.primary_key]
    key = key_parts[0] if len(key_parts) == 1 else f"concat_ws('/', {', '.join(key_parts)})"
    needed = dict.fromkeys([*contract.primary_key, *(c for r in contract.rules for c in r.columns)])
    inner = [_quote(c) for c in needed]  # only these columns are read (Athena bills by bytes scanned)
    select = ["count(*) AS row_count"]
    joins = []
    for i, rule in enumerate(contract.rules):
        if rule.check == "freshness":
            select.append(f"CAST(max(t.{_quote(rule.column)}) AS varchar) AS v{i}")
            continue
        if rule.check not in ROW_CHECKS:
            continue
        if rule.check == "unique":  # rows whose key occurs more than once, still in the same scan
            inner.append(f"count(*) OVER (PARTITION BY {', '.join(_quote(c) for c in rule.columns)}) AS _n{i}")
        if rule.check == "references":
            parent, parent_col = rule.references
            if table_name(parent) in tables:
                joins.append(
                    f"LEFT JOIN (SELECT DISTINCT CAST({_quote(parent_col)} AS varchar) AS _ref "
                    f"FROM {table_name(parent)}) r{i} ON CAST(t.{_quote(rule.column)} AS varchar) = r{i}._ref"
                )
            else:  # no parent table yet: every value is missing from it
                joins.append(f"LEFT JOIN (VALUES (CAST(NULL AS varchar))) AS r{i}(_ref) ON 1 = 0")
        condition = _failing(rule, i)
        select.append(f"count_if({condition}) AS v{i}")
        select.append(f"array_join(min({key}, {SAMPLE_SIZE}) FILTER (WHERE {condition}), ' | ') AS s{i}")
    source = f"(SELECT {', '.join(inner)} FROM {table_name(contract.name)}) t"
    return "SELECT\n  " + ",\n  ".join(select) + f"\nFROM {source}" + "".join(f"\n{j}" for j in joins)


def rule_sql(contract: Contract, rule: Rule, tables: Iterable[str]) -> str:
    """The same rule as a query of its own (what the one scan replaces; the benchmark's baseline)."""
    return scan_sql(replace(contract, rules=(rule,)), tables)


def _parse_time(text: str) -> datetime:
    """A date or timestamp as Athena or DuckDB print it ('2025-03-01 10:00:00.000 UTC', '...+00')."""
    text = text.strip().removesuffix(" UTC")
    if len(text) == 10:  # a date: its rows may arrive until the end of that day
        day = datetime.fromisoformat(text).replace(tzinfo=UTC)
        return day + timedelta(days=1)
    if text[-3:-2] in "+-" and text[-3:].lstrip("+-").isdigit():
        text += ":00"
    moment = datetime.fromisoformat(text.replace(" ", "T", 1))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _threshold(rule: Rule) -> str:
    if rule.check in ("not_null", "unique", "references", "pattern", "accepted_values"):
        extra = {
            "accepted_values": f" outside {list(rule.values)}",
            "pattern": f" not matching {rule.pattern}",
            "references": f" missing from {'.'.join(rule.references or ())}",
        }.get(rule.check, "")
        return f"0 rows{extra}"
    if rule.check in ("range", "row_count"):
        return (
            f"between {rule.min if rule.min is not None else '-inf'} and {rule.max if rule.max is not None else 'inf'}"
        )
    if rule.check == "freshness":
        return f"newest at most {rule.max_age_hours:g} h old"
    return f"within {rule.max_change_percent:g}% of the median of the last {rule.history} loads"


def evaluate(contract: Contract, row: Mapping[str, Any] | None, now: datetime) -> tuple[int, list[CheckResult]]:
    """The rules' outcomes from the scan's one result row (None: the table does not exist, so no rows)."""
    rows = int(row["row_count"]) if row else 0
    results = []
    for i, rule in enumerate(contract.rules):
        threshold = _threshold(rule)
        if rule.check in ROW_CHECKS:
            failing = int(row[f"v{i}"] or 0) if row else 0
            sample = list(dict.fromkeys(str(row[f"s{i}"]).split(" | "))) if row and row[f"s{i}"] else []
            detail = f"{failing} of {rows} rows fail" if failing else ""
            results.append(
                CheckResult(rule.name, rule.check, rule.severity, failing == 0, failing, threshold, sample, detail)
            )
        elif rule.check == "row_count":
            ok = (rule.min is None or rows >= rule.min) and (rule.max is None or rows <= rule.max)
            detail = "" if ok else f"the table has {rows} rows"
            results.append(CheckResult(rule.name, rule.check, rule.severity, ok, rows, threshold, [], detail))
        elif rule.check == "freshness":
            newest = row[f"v{i}"] if row else None
            if newest is None:
                results.append(CheckResult(rule.name, rule.check, rule.severity, False, None, threshold, [], "no rows"))
                continue
            age = round((now - _parse_time(str(newest))).total_seconds() / 3600, 1)
            ok = age <= rule.max_age_hours
            detail = "" if ok else f"newest {rule.column} is {newest}, {age:g} h old"
            results.append(CheckResult(rule.name, rule.check, rule.severity, ok, age, threshold, [], detail))
    return rows, results


def check_volume(rule: Rule, loaded: int, history: list[int]) -> CheckResult:
    """Rows loaded now against the median of the earlier loads (newest first in `history`)."""
    earlier = history[: rule.history]
    threshold = _threshold(rule)
    if len(earlier) < rule.min_history:
        detail = f"not judged: {len(earlier)} earlier loads, {rule.min_history} needed"
        return CheckResult(rule.name, rule.check, rule.severity, True, None, threshold, [], detail)
    median = statistics.median(earlier)
    change = 100.0 if median == 0 and loaded else (0.0 if median == 0 else 100.0 * (loaded - median) / median)
    ok = abs(change) <= rule.max_change_percent
    detail = f"{loaded} rows loaded, median of the last {len(earlier)} loads {median:g} ({change:+.1f}%)"
    return CheckResult(rule.name, rule.check, rule.severity, ok, round(change, 1), threshold, [], detail)


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
    engine: SqlEngine, contract: Contract, tables: set[str], now: datetime, timeout: float
) -> tuple[int, list[CheckResult]]:
    """Run the table's one scan and judge its rules. A failed or timed-out query is an error of its own (the
    batch cannot be audited, so it is not published)."""
    if not any(r.check in ROW_CHECKS or r.check in ("freshness", "row_count") for r in contract.rules):
        return 0, []
    if table_name(contract.name) not in tables:
        return evaluate(contract, None, now)
    try:
        result = engine.run(scan_sql(contract, tables), timeout)
    except QueryError as exc:
        return 0, [CheckResult("scan", "scan", "error", False, None, "the quality query succeeds", [], str(exc))]
    return evaluate(contract, dict(zip(result.columns, result.rows[0], strict=True)), now)


def summary(run: str, results: list[TableQuality], limit: int = 6000) -> str:
    """A readable report for the alert (and the run's failure cause): failures first, with counts."""
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
    text = "\n".join(lines)
    return text if len(text) <= limit else text[: limit - 20] + "\n... (truncated)"
