"""The quality check types: each is one class that knows its part of the table's one scan (SQL that Athena/Trino
and DuckDB share), how its result is judged, its threshold in words and its AWS Glue Data Quality (DQDL) form. Its
keys, and the column types it applies to, are its rule's Struct in `chalicelib.config.rules` (the configuration is
read below the gate, and never imports it).

Adding a check type is one class here, registered in `CHECKS`, its rule's Struct registered in
`chalicelib.config.rules.RULES` under the same name, and its test.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Generic, TypeVar

from chalicelib.config.rules import (
    AcceptedValuesRule,
    FreshnessRule,
    NotNullRule,
    PatternRule,
    RangeRule,
    ReferencesRule,
    RowCountRule,
    Rule,
    UniqueRule,
    VolumeRule,
)
from chalicelib.names import table_name
from chalicelib.quality.results import CheckResult

SAMPLE_SIZE = 5  # failing keys kept per rule


@dataclass(frozen=True)
class Rows:
    """The rows a scan judges: the batch's rows of `table` (the `where` condition over it), or all when `where` is
    None (`lakehouse quality check --full`)."""

    table: str
    where: str | None = None


@dataclass
class ScanPart:
    """What one rule adds to the table's scan: columns of the inner select, result columns, joins."""

    inner: list[str] = field(default_factory=list)
    select: list[str] = field(default_factory=list)
    joins: list[str] = field(default_factory=list)


def literal(value: Any) -> str:
    """A SQL literal (strings quoted, whole numbers without a decimal point)."""
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def listed(values: Iterable[str]) -> str:
    """`SELECT v FROM (VALUES ('a'), ('b')) AS l(v)`: strings to test a column against with `IN (...)`.

    Not a plain `IN ('a', 'b')`: DuckDB pushes that into the Arrow scan of a Delta table, where pyarrow cannot
    compare it with the string_view columns of the files a delta-rs MERGE writes ("no kernel matching (string,
    string_view)", delta-rs issue 4579); a semi-join is not pushed down. Trino (Athena) runs both alike.
    """
    rows = ", ".join(f"({literal(v)})" for v in values)
    return f"SELECT v FROM (VALUES {rows}) AS l(v)" if rows else "NULL"


def quote(name: str) -> str:
    """A column name quoted for SQL."""
    return f'"{name}"'  # contract names are [a-z0-9_]: quoting only guards against reserved words


def dqdl_text(text: str) -> str:
    """A string literal in DQDL."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def dqdl_bounds(subject: str, low: float | None, high: float | None) -> str:
    """`subject >= low and subject <= high` (DQDL's `between` excludes its ends; ours include them)."""
    parts = [f"{subject} >= {_num(low)}"] if low is not None else []
    parts += [f"{subject} <= {_num(high)}"] if high is not None else []
    return parts[0] if len(parts) == 1 else " and ".join(f"({p})" for p in parts)


def _bounds_text(rule: RangeRule | RowCountRule) -> str:
    return f"between {rule.min if rule.min is not None else '-inf'} and {rule.max if rule.max is not None else 'inf'}"


@dataclass(frozen=True)
class Evidence:
    """What a rule is judged on: the scan's one result row (None: the table does not exist, so no rows) and the rows
    it judged, the time, and the rows the run loaded with the earlier runs' loads, newest first (None: not given,
    so the checks that compare loads are not judged)."""

    row: Mapping[str, Any] | None
    rows: int
    now: datetime
    loaded: int = 0
    earlier: Sequence[int] | None = None


R = TypeVar("R", bound=Rule)


class Check(Generic[R]):
    """A check type, judging rules of type R. Subclasses set the class attributes and override what differs."""

    name: ClassVar[str]
    scanned: ClassVar[bool] = True  # judged from the table's scan (volume: from the earlier loads)

    def earlier_loads(self, rule: R) -> int:
        """How many earlier loads of the table its judgement needs (none: it is judged from the scan alone)."""
        return 0

    def scan(self, rule: R, index: int, key: str, tables: set[str], rows: Rows) -> ScanPart:
        """Its part of the one scan over `rows` (`t` is their alias, `key` the primary key as text)."""
        return ScanPart()

    def judge(self, rule: R, index: int, seen: Evidence) -> CheckResult:
        """Its outcome, from what the scan found (its result columns are named after `index`) and the loads."""
        raise NotImplementedError

    def threshold(self, rule: R) -> str:
        """What the result is held against, for people."""
        raise NotImplementedError

    def dqdl(self, rule: R) -> tuple[str, str]:
        """The DQDL rule, and a note where its meaning differs from ours ('' where it does not)."""
        raise NotImplementedError

    def result(
        self, rule: R, passed: bool, observed: Any, sample: list[str] | None = None, detail: str = ""
    ) -> CheckResult:
        """The rule's CheckResult, with this check's threshold."""
        threshold = self.threshold(rule)
        return CheckResult(rule.name, rule.check, rule.severity, passed, observed, threshold, sample or [], detail)


def counted(condition: str, index: int, key: str) -> list[str]:
    """The scan's result columns of a row rule: how many rows fail `condition`, and a sample of their keys."""
    return [
        f"count_if({condition}) AS v{index}",
        f"array_join(min({key}, {SAMPLE_SIZE}) FILTER (WHERE {condition}), ' | ') AS s{index}",
    ]


C = TypeVar("C", bound=Rule)


class RowCheck(Check[C]):
    """A rule rows fail one by one: the scan counts the failing rows and keeps a sample of their keys."""

    def failing(self, rule: C, index: int) -> str:
        """The SQL condition a row fails the rule by."""
        raise NotImplementedError

    def col(self, rule: C) -> str:
        """The rule's column in the scan (alias `t`)."""
        return f"t.{quote(rule.columns[0])}"

    def scan(self, rule: C, index: int, key: str, tables: set[str], rows: Rows) -> ScanPart:
        return ScanPart(select=counted(self.failing(rule, index), index, key))

    def judge(self, rule: C, index: int, seen: Evidence) -> CheckResult:
        i, row = index, seen.row
        failing = int(row[f"v{i}"] or 0) if row else 0
        sample = list(dict.fromkeys(str(row[f"s{i}"]).split(" | "))) if row and row[f"s{i}"] else []
        detail = f"{failing} of {seen.rows} rows fail" if failing else ""
        return self.result(rule, failing == 0, failing, sample, detail)

    def threshold(self, rule: C) -> str:
        return f"0 rows{self.outside_text(rule)}"

    def outside_text(self, rule: C) -> str:
        """The threshold's words after "0 rows" (what a failing row is)."""
        return ""


class NotNull(RowCheck[NotNullRule]):
    """`not_null`: rows where the column is NULL."""

    name = "not_null"

    def failing(self, rule: NotNullRule, index: int) -> str:
        return f"{self.col(rule)} IS NULL"

    def dqdl(self, rule: NotNullRule) -> tuple[str, str]:
        return f"IsComplete {dqdl_text(rule.column)}", ""


class Unique(RowCheck[UniqueRule]):
    """`unique`: rows whose key (one or more columns) occurs more than once."""

    name = "unique"

    def failing(self, rule: UniqueRule, index: int) -> str:
        return f"t._n{index} > 1"

    def scan(self, rule: UniqueRule, index: int, key: str, tables: set[str], rows: Rows) -> ScanPart:
        columns = [quote(c) for c in rule.columns]
        if rows.where is None:  # the whole table: how often each row's key occurs, a window in the same scan
            part = super().scan(rule, index, key, tables, rows)
            part.inner.append(f"count(*) OVER (PARTITION BY {', '.join(columns)}) AS _n{index}")
            return part
        # A batch: how often each of its keys occurs in the whole table, reading only the key columns of the rows
        # that hold one of the batch's keys (a key-only read, joined back onto the batch's rows).
        alias = f"u{index}"
        keys = f"(SELECT DISTINCT {', '.join(columns)} FROM {rows.table} WHERE {rows.where}) b"
        occurrences = (
            f"(SELECT {', '.join('k.' + c for c in columns)}, count(*) AS _n FROM {rows.table} k JOIN {keys} "
            f"ON {' AND '.join(f'k.{c} = b.{c}' for c in columns)} GROUP BY {', '.join('k.' + c for c in columns)})"
        )
        return ScanPart(
            select=counted(f"{alias}._n > 1", index, key),
            joins=[f"LEFT JOIN {occurrences} {alias} ON {' AND '.join(f't.{c} = {alias}.{c}' for c in columns)}"],
        )

    def dqdl(self, rule: UniqueRule) -> tuple[str, str]:
        return "IsUnique " + " ".join(dqdl_text(c) for c in rule.columns), ""


class AcceptedValues(RowCheck[AcceptedValuesRule]):
    """`accepted_values`: non-NULL values outside the list (string columns)."""

    name = "accepted_values"

    def failing(self, rule: AcceptedValuesRule, index: int) -> str:
        col = self.col(rule)
        return f"{col} IS NOT NULL AND {col} NOT IN ({', '.join(literal(v) for v in rule.values)})"

    def outside_text(self, rule: AcceptedValuesRule) -> str:
        return f" outside {list(rule.values)}"

    def dqdl(self, rule: AcceptedValuesRule) -> tuple[str, str]:
        values = ", ".join(dqdl_text(v) for v in rule.values)
        note = "DQDL counts NULL as failing; the lakehouse ignores NULL"
        return f"ColumnValues {dqdl_text(rule.column)} in [{values}]", note


class Range(RowCheck[RangeRule]):
    """`range`: values outside [min, max] (numeric columns)."""

    name = "range"

    def failing(self, rule: RangeRule, index: int) -> str:
        col = self.col(rule)
        bounds = [f"{col} < {literal(rule.min)}"] if rule.min is not None else []
        bounds += [f"{col} > {literal(rule.max)}"] if rule.max is not None else []
        return f"({' OR '.join(bounds)})"

    def threshold(self, rule: RangeRule) -> str:
        return _bounds_text(rule)

    def dqdl(self, rule: RangeRule) -> tuple[str, str]:
        return dqdl_bounds(f"ColumnValues {dqdl_text(rule.column)}", rule.min, rule.max), ""


class Pattern(RowCheck[PatternRule]):
    """`pattern`: non-NULL values the regular expression does not match whole (string columns)."""

    name = "pattern"

    def failing(self, rule: PatternRule, index: int) -> str:  # the whole value must match; regexp_like: a DuckDB macro
        col = self.col(rule)
        return f"{col} IS NOT NULL AND NOT regexp_like({col}, {literal(f'^(?:{rule.pattern})$')})"

    def outside_text(self, rule: PatternRule) -> str:
        return f" not matching {rule.pattern}"

    def dqdl(self, rule: PatternRule) -> tuple[str, str]:
        return f"ColumnValues {dqdl_text(rule.column)} matches {dqdl_text(f'^(?:{rule.pattern})$')}", (
            "DQDL counts NULL as failing"
        )


class References(RowCheck[ReferencesRule]):
    """`references`: non-NULL values missing from another dataset's processed table."""

    name = "references"

    def failing(self, rule: ReferencesRule, index: int) -> str:
        return f"{self.col(rule)} IS NOT NULL AND r{index}._ref IS NULL"

    def scan(self, rule: ReferencesRule, index: int, key: str, tables: set[str], rows: Rows) -> ScanPart:
        part = super().scan(rule, index, key, tables, rows)  # the parent's key column only: a key-only read
        parent, parent_col = rule.references
        if table_name(parent) in tables:
            part.joins.append(
                f"LEFT JOIN (SELECT DISTINCT CAST({quote(parent_col)} AS varchar) AS _ref "
                f"FROM {table_name(parent)}) r{index} ON CAST({self.col(rule)} AS varchar) = r{index}._ref"
            )
        else:  # no parent table yet: every value is missing from it
            part.joins.append(f"LEFT JOIN (VALUES (CAST(NULL AS varchar))) AS r{index}(_ref) ON 1 = 0")
        return part

    def outside_text(self, rule: ReferencesRule) -> str:
        return f" missing from {rule.to}"

    def dqdl(self, rule: ReferencesRule) -> tuple[str, str]:
        dataset, _ = rule.references
        note = f"needs the processed {dataset} table as an additional data source with the alias {dataset}"
        return f"ReferentialIntegrity {dqdl_text(rule.column)} {dqdl_text(rule.to)} = 1.0", note


def parse_time(text: str) -> datetime:
    """A date or timestamp as Athena or DuckDB print it ('2025-03-01 10:00:00.000 UTC', '...+00')."""
    text = text.strip().removesuffix(" UTC")
    if len(text) == 10:  # a date: its rows may arrive until the end of that day
        day = datetime.fromisoformat(text).replace(tzinfo=UTC)
        return day + timedelta(days=1)
    if text[-3:-2] in "+-" and text[-3:].lstrip("+-").isdigit():
        text += ":00"
    moment = datetime.fromisoformat(text.replace(" ", "T", 1))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class Freshness(Check[FreshnessRule]):
    """`freshness`: the newest value older than `max_age_hours` (a date counts until its day ends)."""

    name = "freshness"

    def scan(self, rule: FreshnessRule, index: int, key: str, tables: set[str], rows: Rows) -> ScanPart:
        return ScanPart(select=[f"CAST(max(t.{quote(rule.column)}) AS varchar) AS v{index}"])

    def judge(self, rule: FreshnessRule, index: int, seen: Evidence) -> CheckResult:
        newest = seen.row[f"v{index}"] if seen.row else None
        if newest is None:
            return self.result(rule, False, None, detail="no rows")
        age = round((seen.now - parse_time(str(newest))).total_seconds() / 3600, 1)
        ok = age <= rule.max_age_hours
        return self.result(rule, ok, age, detail="" if ok else f"newest {rule.column} is {newest}, {age:g} h old")

    def threshold(self, rule: FreshnessRule) -> str:
        return f"newest at most {rule.max_age_hours:g} h old"

    def dqdl(self, rule: FreshnessRule) -> tuple[str, str]:
        return f"DataFreshness {dqdl_text(rule.column)} <= {_num(rule.max_age_hours)} hours", ""


class RowCount(Check[RowCountRule]):
    """`row_count`: the table's rows outside [min, max] (a batch's scan is given them from the Delta log)."""

    name = "row_count"

    def judge(self, rule: RowCountRule, index: int, seen: Evidence) -> CheckResult:
        rows = int(seen.row.get("table_rows", seen.rows)) if seen.row else seen.rows
        ok = (rule.min is None or rows >= rule.min) and (rule.max is None or rows <= rule.max)
        return self.result(rule, ok, rows, detail="" if ok else f"the table has {rows} rows")

    def threshold(self, rule: RowCountRule) -> str:
        return _bounds_text(rule)

    def dqdl(self, rule: RowCountRule) -> tuple[str, str]:
        return dqdl_bounds("RowCount", rule.min, rule.max), ""


class Volume(Check[VolumeRule]):
    """`volume`: rows a run loaded against the median of earlier loads (from the ledger's history, not the scan)."""

    name, scanned = "volume", False

    def earlier_loads(self, rule: VolumeRule) -> int:
        return rule.history

    def judge(self, rule: VolumeRule, index: int, seen: Evidence) -> CheckResult:
        earlier, loaded = list(seen.earlier or ())[: rule.history], seen.loaded
        if len(earlier) < rule.min_history:
            detail = f"not judged: {len(earlier)} earlier loads, {rule.min_history} needed"
            return self.result(rule, True, None, detail=detail)
        median = statistics.median(earlier)
        change = 100.0 if median == 0 and loaded else (0.0 if median == 0 else 100.0 * (loaded - median) / median)
        ok = abs(change) <= rule.max_change_percent
        detail = f"{loaded} rows loaded, median of the last {len(earlier)} loads {median:g} ({change:+.1f}%)"
        return self.result(rule, ok, round(change, 1), detail=detail)

    def threshold(self, rule: VolumeRule) -> str:
        return f"within {rule.max_change_percent:g}% of the median of the last {rule.history} loads"

    def dqdl(self, rule: VolumeRule) -> tuple[str, str]:
        share = rule.max_change_percent / 100
        mean = f"avg(last({rule.history}))"
        return (
            f"(RowCount >= {mean} * {_num(1 - share)}) and (RowCount <= {mean} * {_num(1 + share)})",
            "DQDL judges the table's rows against the mean of earlier runs; the lakehouse judges the rows a run "
            "loaded against their median",
        )


# Every check type by name; each rule's Struct is registered under the same name in chalicelib.config.rules.RULES.
CHECKS: dict[str, Check[Any]] = {
    c.name: c
    for c in (
        NotNull(),
        Unique(),
        AcceptedValues(),
        Range(),
        Pattern(),
        References(),
        Freshness(),
        RowCount(),
        Volume(),
    )
}


def check_of(rule: Rule) -> Check[Any]:
    """The check type of a rule."""
    return CHECKS[rule.check]


def judge(rules: Sequence[Rule], seen: Evidence, *, scanned: bool | None = None) -> list[CheckResult]:
    """The outcomes of `rules` (their index in `rules` names their scan columns) on what was `seen`: only the
    scanned ones or only the others when `scanned` says so, and those that compare loads only when the loads
    are given."""
    return [
        check_of(rule).judge(rule, i, seen)
        for i, rule in enumerate(rules)
        if (scanned is None or check_of(rule).scanned == scanned)
        and (seen.earlier is not None or not check_of(rule).earlier_loads(rule))
    ]


def scanned(rules: Iterable[Rule]) -> list[Rule]:
    """The rules judged from the table's one scan."""
    return [r for r in rules if check_of(r).scanned]
