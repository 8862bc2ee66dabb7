"""The quality check types: each is one class that knows its TOML keys, the column types it applies to, its part of
the table's one scan (SQL that Athena/Trino and DuckDB share), how its result is judged, its threshold in words and
its AWS Glue Data Quality (DQDL) form.

Adding a check type is one class here, registered in `CHECKS`, plus its test.
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, ClassVar

from msgspec import Meta

from chalicelib.config.documents import Document
from chalicelib.config.model import Column, Rule, Severity
from chalicelib.config.reader import Where, read
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


class Keys(Document, kw_only=True):
    """The keys every `[[rules]]` table has; each check type adds its own in a subclass."""

    check: str
    severity: Severity = "error"
    name: str | None = None  # unique in its contract; defaults to "<check>(<columns>)"


class ColumnKeys(Keys, kw_only=True):
    """The keys of a rule on one column."""

    column: str


class BoundsKeys(Keys, kw_only=True):
    """The keys of a rule with a lower bound, an upper bound or both."""

    min: int | float | None = None
    max: int | float | None = None


def _bounds_text(rule: Rule) -> str:
    return f"between {rule.min if rule.min is not None else '-inf'} and {rule.max if rule.max is not None else 'inf'}"


class Check:
    """A check type. Subclasses set the class attributes and override what differs."""

    name: ClassVar[str]
    keys: ClassVar[type[Keys]] = ColumnKeys  # its TOML keys, typed: the reader checks them
    column_kinds: ClassVar[tuple[str, ...]] = ()  # the types its `column` may have (empty: any)
    scanned: ClassVar[bool] = True  # judged from the table's scan (volume: from the ledger's history)

    def parse(self, keys: Any, t: Where, columns: Mapping[str, Column]) -> dict[str, Any]:
        """The Rule fields its decoded `keys` give, checked against the contract's `columns` (mistakes at `t`)."""
        if isinstance(keys, ColumnKeys):
            return {"columns": (self._column(keys.column, t, columns),)}
        return {}

    def _column(self, name: str, t: Where, columns: Mapping[str, Column]) -> str:
        """The rule's `column`: it exists and has a type the check applies to."""
        if name not in columns:
            raise t.fail("column", name, f"no such column; the contract has {sorted(columns)}")
        col = columns[name]
        kinds = self.column_kinds
        if kinds and col.type not in kinds and not ("numeric" in kinds and col.numeric):
            raise t.fail("column", name, f"{self.name} applies to {' or '.join(kinds)} columns, not {col.type}")
        return name

    def scan(self, rule: Rule, index: int, key: str, tables: set[str], rows: Rows) -> ScanPart:
        """Its part of the one scan over `rows` (`t` is their alias, `key` the primary key as text)."""
        return ScanPart()

    def judge(self, rule: Rule, index: int, row: Mapping[str, Any] | None, rows: int, now: datetime) -> CheckResult:
        """Its outcome from the scan's one result row (None: the table does not exist, so no rows)."""
        raise NotImplementedError(f"{self.name} is not judged from the scan")

    def threshold(self, rule: Rule) -> str:
        """What the result is held against, for people."""
        raise NotImplementedError

    def dqdl(self, rule: Rule) -> tuple[str, str]:
        """The DQDL rule, and a note where its meaning differs from ours ('' where it does not)."""
        raise NotImplementedError

    def result(
        self, rule: Rule, passed: bool, observed: Any, sample: list[str] | None = None, detail: str = ""
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


class RowCheck(Check):
    """A rule rows fail one by one: the scan counts the failing rows and keeps a sample of their keys."""

    outside: ClassVar[str] = ""  # the threshold's words after "0 rows"

    def failing(self, rule: Rule, index: int) -> str:
        """The SQL condition a row fails the rule by."""
        raise NotImplementedError

    def col(self, rule: Rule) -> str:
        """The rule's column in the scan (alias `t`)."""
        return f"t.{quote(rule.columns[0])}"

    def scan(self, rule: Rule, index: int, key: str, tables: set[str], rows: Rows) -> ScanPart:
        return ScanPart(select=counted(self.failing(rule, index), index, key))

    def judge(self, rule: Rule, index: int, row: Mapping[str, Any] | None, rows: int, now: datetime) -> CheckResult:
        i = index
        failing = int(row[f"v{i}"] or 0) if row else 0
        sample = list(dict.fromkeys(str(row[f"s{i}"]).split(" | "))) if row and row[f"s{i}"] else []
        return self.result(rule, failing == 0, failing, sample, f"{failing} of {rows} rows fail" if failing else "")

    def threshold(self, rule: Rule) -> str:
        return f"0 rows{self.outside_text(rule)}"

    def outside_text(self, rule: Rule) -> str:
        """The threshold's words after "0 rows" (what a failing row is)."""
        return ""


class NotNull(RowCheck):
    """`not_null`: rows where the column is NULL."""

    name = "not_null"

    def failing(self, rule: Rule, index: int) -> str:
        return f"{self.col(rule)} IS NULL"

    def dqdl(self, rule: Rule) -> tuple[str, str]:
        return f"IsComplete {dqdl_text(rule.columns[0])}", ""


class Unique(RowCheck):
    """`unique`: rows whose key (one or more columns) occurs more than once."""

    class UniqueKeys(Keys, kw_only=True):
        columns: list[str]

    name, keys = "unique", UniqueKeys

    def parse(self, keys: Any, t: Where, columns: Mapping[str, Column]) -> dict[str, Any]:
        return {"columns": t.column_list("columns", keys.columns, columns)}

    def failing(self, rule: Rule, index: int) -> str:
        return f"t._n{index} > 1"

    def scan(self, rule: Rule, index: int, key: str, tables: set[str], rows: Rows) -> ScanPart:
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

    def dqdl(self, rule: Rule) -> tuple[str, str]:
        return "IsUnique " + " ".join(dqdl_text(c) for c in rule.columns), ""


class AcceptedValues(RowCheck):
    """`accepted_values`: non-NULL values outside the list (string columns)."""

    class ValuesKeys(ColumnKeys, kw_only=True):
        values: list[str]

    name, keys, column_kinds = "accepted_values", ValuesKeys, ("string",)

    def parse(self, keys: Any, t: Where, columns: Mapping[str, Column]) -> dict[str, Any]:
        if not keys.values:
            raise t.fail("values", [], "needs at least one value")
        return {**super().parse(keys, t, columns), "values": tuple(keys.values)}

    def failing(self, rule: Rule, index: int) -> str:
        col = self.col(rule)
        return f"{col} IS NOT NULL AND {col} NOT IN ({', '.join(literal(v) for v in rule.values)})"

    def outside_text(self, rule: Rule) -> str:
        return f" outside {list(rule.values)}"

    def dqdl(self, rule: Rule) -> tuple[str, str]:
        values = ", ".join(dqdl_text(v) for v in rule.values)
        note = "DQDL counts NULL as failing; the lakehouse ignores NULL"
        return f"ColumnValues {dqdl_text(rule.columns[0])} in [{values}]", note


def _min_max(keys: Any, t: Where, check: str) -> dict[str, Any]:
    low, high = keys.min, keys.max
    if low is None and high is None:
        raise t.fail("min", None, f"{check} needs min, max or both")
    if low is not None and high is not None and low > high:
        raise t.fail("max", high, f"is below min = {low}")
    return {"min": low, "max": high}


class Range(RowCheck):
    """`range`: values outside [min, max] (numeric columns)."""

    class RangeKeys(ColumnKeys, kw_only=True):
        min: int | float | None = None
        max: int | float | None = None

    name, keys, column_kinds = "range", RangeKeys, ("numeric",)

    def parse(self, keys: Any, t: Where, columns: Mapping[str, Column]) -> dict[str, Any]:
        return {**super().parse(keys, t, columns), **_min_max(keys, t, self.name)}

    def failing(self, rule: Rule, index: int) -> str:
        col = self.col(rule)
        bounds = [f"{col} < {literal(rule.min)}"] if rule.min is not None else []
        bounds += [f"{col} > {literal(rule.max)}"] if rule.max is not None else []
        return f"({' OR '.join(bounds)})"

    def threshold(self, rule: Rule) -> str:
        return _bounds_text(rule)

    def dqdl(self, rule: Rule) -> tuple[str, str]:
        return dqdl_bounds(f"ColumnValues {dqdl_text(rule.columns[0])}", rule.min, rule.max), ""


class Pattern(RowCheck):
    """`pattern`: non-NULL values the regular expression does not match whole (string columns)."""

    class PatternKeys(ColumnKeys, kw_only=True):
        pattern: str

    name, keys, column_kinds = "pattern", PatternKeys, ("string",)

    def parse(self, keys: Any, t: Where, columns: Mapping[str, Column]) -> dict[str, Any]:
        pattern = keys.pattern
        try:
            re.compile(pattern)
        except re.error as exc:
            raise t.fail("pattern", pattern, f"not a valid regular expression: {exc}") from None
        return {**super().parse(keys, t, columns), "pattern": pattern}

    def failing(self, rule: Rule, index: int) -> str:  # the whole value must match; regexp_like is a DuckDB macro
        col = self.col(rule)
        return f"{col} IS NOT NULL AND NOT regexp_like({col}, {literal(f'^(?:{rule.pattern})$')})"

    def outside_text(self, rule: Rule) -> str:
        return f" not matching {rule.pattern}"

    def dqdl(self, rule: Rule) -> tuple[str, str]:
        return f"ColumnValues {dqdl_text(rule.columns[0])} matches {dqdl_text(f'^(?:{rule.pattern})$')}", (
            "DQDL counts NULL as failing"
        )


class References(RowCheck):
    """`references`: non-NULL values missing from another dataset's processed table."""

    class ReferencesKeys(ColumnKeys, kw_only=True):
        to: Annotated[str, Meta(pattern=r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$")]  # dataset.column

    name, keys = "references", ReferencesKeys

    def parse(self, keys: Any, t: Where, columns: Mapping[str, Column]) -> dict[str, Any]:
        parent, column = keys.to.split(".")  # checked against the other contracts by parse_settings
        return {**super().parse(keys, t, columns), "references": (parent, column)}

    def failing(self, rule: Rule, index: int) -> str:
        return f"{self.col(rule)} IS NOT NULL AND r{index}._ref IS NULL"

    def scan(self, rule: Rule, index: int, key: str, tables: set[str], rows: Rows) -> ScanPart:
        part = super().scan(rule, index, key, tables, rows)  # the parent's key column only: a key-only read
        parent, parent_col = rule.references or ("", "")
        if table_name(parent) in tables:
            part.joins.append(
                f"LEFT JOIN (SELECT DISTINCT CAST({quote(parent_col)} AS varchar) AS _ref "
                f"FROM {table_name(parent)}) r{index} ON CAST({self.col(rule)} AS varchar) = r{index}._ref"
            )
        else:  # no parent table yet: every value is missing from it
            part.joins.append(f"LEFT JOIN (VALUES (CAST(NULL AS varchar))) AS r{index}(_ref) ON 1 = 0")
        return part

    def outside_text(self, rule: Rule) -> str:
        return f" missing from {'.'.join(rule.references or ())}"

    def dqdl(self, rule: Rule) -> tuple[str, str]:
        dataset, column = rule.references or ("", "")
        note = f"needs the processed {dataset} table as an additional data source with the alias {dataset}"
        return f"ReferentialIntegrity {dqdl_text(rule.columns[0])} {dqdl_text(f'{dataset}.{column}')} = 1.0", note


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


class Freshness(Check):
    """`freshness`: the newest value older than `max_age_hours` (a date counts until its day ends)."""

    class FreshnessKeys(ColumnKeys, kw_only=True):
        max_age_hours: Annotated[float, Meta(gt=0)]

    name, keys, column_kinds = "freshness", FreshnessKeys, ("date", "timestamp")

    def parse(self, keys: Any, t: Where, columns: Mapping[str, Column]) -> dict[str, Any]:
        return {**super().parse(keys, t, columns), "max_age_hours": keys.max_age_hours}

    def scan(self, rule: Rule, index: int, key: str, tables: set[str], rows: Rows) -> ScanPart:
        return ScanPart(select=[f"CAST(max(t.{quote(rule.columns[0])}) AS varchar) AS v{index}"])

    def judge(self, rule: Rule, index: int, row: Mapping[str, Any] | None, rows: int, now: datetime) -> CheckResult:
        newest = row[f"v{index}"] if row else None
        if newest is None:
            return self.result(rule, False, None, detail="no rows")
        age = round((now - parse_time(str(newest))).total_seconds() / 3600, 1)
        ok = age <= (rule.max_age_hours or 0)
        return self.result(rule, ok, age, detail="" if ok else f"newest {rule.columns[0]} is {newest}, {age:g} h old")

    def threshold(self, rule: Rule) -> str:
        return f"newest at most {rule.max_age_hours:g} h old"

    def dqdl(self, rule: Rule) -> tuple[str, str]:
        return f"DataFreshness {dqdl_text(rule.columns[0])} <= {_num(rule.max_age_hours or 0)} hours", ""


class RowCount(Check):
    """`row_count`: the table's rows outside [min, max] (a batch's scan is given them from the Delta log)."""

    name, keys = "row_count", BoundsKeys

    def parse(self, keys: Any, t: Where, columns: Mapping[str, Column]) -> dict[str, Any]:
        bounds = _min_max(keys, t, self.name)
        if any(v is not None and v < 0 for v in bounds.values()):
            raise t.fail("min", bounds["min"], "row counts are never negative")
        return bounds

    def judge(self, rule: Rule, index: int, row: Mapping[str, Any] | None, rows: int, now: datetime) -> CheckResult:
        rows = int(row.get("table_rows", rows)) if row else rows
        ok = (rule.min is None or rows >= rule.min) and (rule.max is None or rows <= rule.max)
        return self.result(rule, ok, rows, detail="" if ok else f"the table has {rows} rows")

    def threshold(self, rule: Rule) -> str:
        return _bounds_text(rule)

    def dqdl(self, rule: Rule) -> tuple[str, str]:
        return dqdl_bounds("RowCount", rule.min, rule.max), ""


class Volume(Check):
    """Rows a run loaded against the median of earlier loads (from the ledger's history, not the scan)."""

    class VolumeKeys(Keys, kw_only=True):
        max_change_percent: Annotated[float, Meta(gt=0)]
        history: Annotated[int, Meta(ge=1)] = 10
        min_history: Annotated[int, Meta(ge=1)] = 3

    name, keys, scanned = "volume", VolumeKeys, False

    def parse(self, keys: Any, t: Where, columns: Mapping[str, Column]) -> dict[str, Any]:
        change, history, least = keys.max_change_percent, keys.history, keys.min_history
        if least > history:
            raise t.fail("min_history", least, f"is above history = {history}")
        return {"max_change_percent": change, "history": history, "min_history": least}

    def judge_loads(self, rule: Rule, loaded: int, history: list[int]) -> CheckResult:
        """Rows loaded now against the median of the earlier loads (newest first in `history`)."""
        earlier = history[: rule.history]
        if len(earlier) < rule.min_history:
            detail = f"not judged: {len(earlier)} earlier loads, {rule.min_history} needed"
            return self.result(rule, True, None, detail=detail)
        median = statistics.median(earlier)
        change = 100.0 if median == 0 and loaded else (0.0 if median == 0 else 100.0 * (loaded - median) / median)
        ok = abs(change) <= (rule.max_change_percent or 0)
        detail = f"{loaded} rows loaded, median of the last {len(earlier)} loads {median:g} ({change:+.1f}%)"
        return self.result(rule, ok, round(change, 1), detail=detail)

    def threshold(self, rule: Rule) -> str:
        return f"within {rule.max_change_percent:g}% of the median of the last {rule.history} loads"

    def dqdl(self, rule: Rule) -> tuple[str, str]:
        share = (rule.max_change_percent or 0) / 100
        mean = f"avg(last({rule.history}))"
        return (
            f"(RowCount >= {mean} * {_num(1 - share)}) and (RowCount <= {mean} * {_num(1 + share)})",
            "DQDL judges the table's rows against the mean of earlier runs; the lakehouse judges the rows a run "
            "loaded against their median",
        )


VOLUME = Volume()
CHECKS: dict[str, Check] = {
    c.name: c
    for c in (NotNull(), Unique(), AcceptedValues(), Range(), Pattern(), References(), Freshness(), RowCount(), VOLUME)
}


def check_of(rule: Rule) -> Check:
    """The check type of a rule."""
    return CHECKS[rule.check]


def parse_rules(file: str, data: list[dict[str, Any]], columns: Mapping[str, Column]) -> tuple[Rule, ...]:
    """`[[rules]]`: every mistake a rule can carry (a column that does not exist, a check that cannot apply
    to the column's type, a pattern that does not compile) is refused here, when the config is loaded."""
    rules: list[Rule] = []
    for index, item in enumerate(data):
        rule = parse_rule(file, f"rules[{index}]", item, columns)
        if any(r.name == rule.name for r in rules):
            raise Where(file, f"rules[{index}]").fail(
                "name", rule.name, "another rule has this name; give one a `name`"
            )
        rules.append(rule)
    return tuple(rules)


def parse_rule(file: str, at: str, data: dict[str, Any], columns: Mapping[str, Column]) -> Rule:
    """One `[[rules]]` table at dotted key `at`: its check type's keys, decoded by the typed reader."""
    t = Where(file, at)
    if data.get("check") not in CHECKS:
        raise t.fail("check", data.get("check"), f"must be one of {list(CHECKS)}")
    check = CHECKS[data["check"]]
    keys = read(file, data, check.keys, at=at)
    fields_ = check.parse(keys, t, columns)
    default_name = f"{check.name}({','.join(fields_['columns'])})" if fields_.get("columns") else check.name
    return Rule(name=keys.name or default_name, check=check.name, severity=keys.severity, **fields_)


def scanned(rules: Iterable[Rule]) -> list[Rule]:
    """The rules judged from the table's one scan."""
    return [r for r in rules if check_of(r).scanned]
