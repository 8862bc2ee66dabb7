"""A contract's quality rules (`[[rules]]`): each check type declares its own keys in a Struct of its own, tagged
with its `check` name, and the typed reader decodes a rule's table into the Struct its `check` names. What the
keys mean for the data (the scan, the judgement, the threshold, the DQDL form) is the check type's class in
`chalicelib.quality.checks`, registered under the same name: the configuration never imports the quality gate.

Imported only when a contract is parsed or judged: `import app` does not load msgspec.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, Literal

import msgspec
from msgspec import Meta, Struct

from chalicelib.config.columns import Column
from chalicelib.config.reader import Where, read

Severity = Literal["warn", "error"]  # error: a failing rule stops the publish; warn: reported and alerted


class Rule(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, tag_field="check"):
    """The keys every `[[rules]]` table has. An `error` rule that fails stops the publish (its dataset's batch is
    rolled back); a `warn` rule is reported and alerted, and the run goes on."""

    name: str = ""  # unique in its contract; "" until parse_rules gives the default "<check>(<columns>)"
    severity: Severity = "error"

    column_kinds: ClassVar[tuple[str, ...]] = ()  # the types its `column` may have (empty: any)

    @property
    def check(self) -> str:
        """The check type: the rule's `check` key."""
        return str(self.__struct_config__.tag)

    @property
    def columns(self) -> tuple[str, ...]:
        """The columns the rule reads (none for a rule on the whole table)."""
        return ()

    def validate(self, t: Where, columns: Mapping[str, Column]) -> None:
        """Refuse, at `t`, what relates the rule's keys to each other or to the contract's `columns` (what the
        decoding cannot see)."""


class ColumnRule(Rule, frozen=True, kw_only=True):
    """A rule on one column, of one of `column_kinds` (any type when empty)."""

    column: str

    @property
    def columns(self) -> tuple[str, ...]:
        return (self.column,)

    def validate(self, t: Where, columns: Mapping[str, Column]) -> None:
        if self.column not in columns:
            raise t.fail("column", self.column, f"no such column; the contract has {sorted(columns)}")
        col, kinds = columns[self.column], self.column_kinds
        if kinds and col.type not in kinds and not ("numeric" in kinds and col.numeric):
            raise t.fail("column", self.column, f"{self.check} applies to {' or '.join(kinds)} columns, not {col.type}")


def _check_bounds(t: Where, check: str, low: float | None, high: float | None) -> None:
    if low is None and high is None:
        raise t.fail("min", None, f"{check} needs min, max or both")
    if low is not None and high is not None and low > high:
        raise t.fail("max", high, f"is below min = {low}")


class NotNullRule(ColumnRule, frozen=True, kw_only=True, tag="not_null"):
    """`not_null`: `column`."""


class UniqueRule(Rule, frozen=True, kw_only=True, tag="unique"):
    """`unique`: `columns`, the key that must not occur twice."""

    key: tuple[str, ...] = msgspec.field(name="columns")

    @property
    def columns(self) -> tuple[str, ...]:
        return self.key

    def validate(self, t: Where, columns: Mapping[str, Column]) -> None:
        t.column_list("columns", list(self.key), columns)


class AcceptedValuesRule(ColumnRule, frozen=True, kw_only=True, tag="accepted_values"):
    """`accepted_values`: `column` (a string column) and its `values`."""

    values: tuple[str, ...]
    column_kinds = ("string",)

    def validate(self, t: Where, columns: Mapping[str, Column]) -> None:
        super().validate(t, columns)
        if not self.values:
            raise t.fail("values", [], "needs at least one value")


class RangeRule(ColumnRule, frozen=True, kw_only=True, tag="range"):
    """`range`: `column` (a numeric column), `min` and/or `max`."""

    min: int | float | None = None
    max: int | float | None = None
    column_kinds = ("numeric",)

    def validate(self, t: Where, columns: Mapping[str, Column]) -> None:
        super().validate(t, columns)
        _check_bounds(t, self.check, self.min, self.max)


class PatternRule(ColumnRule, frozen=True, kw_only=True, tag="pattern"):
    """`pattern`: `column` (a string column) and the regular expression its values must match whole."""

    pattern: str
    column_kinds = ("string",)

    def validate(self, t: Where, columns: Mapping[str, Column]) -> None:
        super().validate(t, columns)
        try:
            re.compile(self.pattern)
        except re.error as exc:
            raise t.fail("pattern", self.pattern, f"not a valid regular expression: {exc}") from None


class ReferencesRule(ColumnRule, frozen=True, kw_only=True, tag="references"):
    """`references`: `column` and `to = "dataset.column"` (checked against the other contracts by parse_settings)."""

    to: Annotated[str, Meta(pattern=r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$")]

    @property
    def references(self) -> tuple[str, str]:
        """(dataset, column) every non-null value must exist in."""
        dataset, column = self.to.split(".")
        return dataset, column


class FreshnessRule(ColumnRule, frozen=True, kw_only=True, tag="freshness"):
    """`freshness`: `column` (a date or timestamp) and `max_age_hours`, how old its newest value may be."""

    max_age_hours: Annotated[float, Meta(gt=0)]
    column_kinds = ("date", "timestamp")


class RowCountRule(Rule, frozen=True, kw_only=True, tag="row_count"):
    """`row_count`: `min` and/or `max` rows in the table."""

    min: int | float | None = None
    max: int | float | None = None

    def validate(self, t: Where, columns: Mapping[str, Column]) -> None:
        _check_bounds(t, self.check, self.min, self.max)
        if self.min is not None and self.min < 0:
            raise t.fail("min", self.min, "row counts are never negative")


class VolumeRule(Rule, frozen=True, kw_only=True, tag="volume"):
    """`volume`: rows a run loaded within `max_change_percent` of the median of the last `history` loads, judged
    once there are `min_history` of them."""

    max_change_percent: Annotated[float, Meta(gt=0)]
    history: Annotated[int, Meta(ge=1)] = 10
    min_history: Annotated[int, Meta(ge=1)] = 3

    def validate(self, t: Where, columns: Mapping[str, Column]) -> None:
        if self.min_history > self.history:
            raise t.fail("min_history", self.min_history, f"is above history = {self.history}")


# Every check type's rule, by its `check` name. A new check type adds its Struct here and its class to
# chalicelib.quality.checks.CHECKS (a test keeps the two lists equal).
RULES: dict[str, type[Rule]] = {
    str(r.__struct_config__.tag): r
    for r in (
        NotNullRule,
        UniqueRule,
        AcceptedValuesRule,
        RangeRule,
        PatternRule,
        ReferencesRule,
        FreshnessRule,
        RowCountRule,
        VolumeRule,
    )
}


def parse_rules(file: str, data: list[dict[str, Any]], columns: Mapping[str, Column]) -> tuple[Rule, ...]:
    """`[[rules]]`: every mistake a rule can carry (a key its check type does not take, a column that does not exist,
    a check that cannot apply to the column's type, a pattern that does not compile) is refused here, when the
    config is loaded."""
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
    """One `[[rules]]` table at dotted key `at`, decoded as the Struct of its `check`."""
    t = Where(file, at)
    check = data.get("check")
    if not isinstance(check, str) or check not in RULES:
        raise t.fail("check", check, f"must be one of {list(RULES)}")
    rule = read(file, data, RULES[check], at=at, what=f"a {check} rule")
    rule.validate(t, columns)
    if rule.name:
        return rule
    return msgspec.structs.replace(rule, name=f"{check}({','.join(rule.columns)})" if rule.columns else check)
